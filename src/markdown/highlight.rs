//! A small line-by-line syntax highlighter.
//!
//! Code arrives one line at a time while an answer streams, so the highlighter works on single
//! lines and carries only a tiny state between them (inside a block comment or a multi-line
//! string). Each returned line is balanced HTML, so finished lines can be appended to the page
//! independently. One table-driven lexer serves every language: keywords, literals, comment
//! starters and string quotes are data. It is a visual aid, not a parser; it need not be exact.

use super::html::escape_into;

/// A string delimiter: (quote, may span lines, backslash escapes).
type Quote = (&'static str, bool, bool);

struct Lang {
    /// Space-separated word lists (compact to write, cheap enough to scan).
    keywords: &'static str,
    literals: &'static str,
    types: &'static str,
    /// Capitalised identifiers are type names.
    cap_types: bool,
    ignore_case: bool,
    line_comments: &'static [&'static str],
    block_comment: Option<(&'static str, &'static str)>,
    /// Longest first, so `"""` wins over `"`.
    quotes: &'static [Quote],
    /// Extra bytes that may start / continue an identifier (`$`, `#include`, `@media`, `font-size`).
    ident_start: &'static [u8],
    ident_cont: &'static [u8],
    /// Rust: `'` is a char literal only when it looks like one (`'a'`, `'\n'`); else a lifetime.
    char_check: bool,
    /// HTML/XML: names right after `<` or `</` are tags.
    tags: bool,
}

const BASE: Lang = Lang {
    keywords: "",
    literals: "",
    types: "",
    cap_types: false,
    ignore_case: false,
    line_comments: &[],
    block_comment: None,
    quotes: &[],
    ident_start: &[],
    ident_cont: &[],
    char_check: false,
    tags: false,
};

const C_COMMENT: Option<(&str, &str)> = Some(("/*", "*/"));
const DQ: Quote = ("\"", false, true);
const SQ: Quote = ("'", false, true);

const RUST: Lang = Lang {
    keywords: "as async await break const continue crate dyn else enum extern fn for if impl in let loop \
         match mod move mut pub ref return self Self static struct super trait type unsafe use \
         where while yield",
    literals: "true false",
    types: "i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64 bool char str",
    cap_types: true,
    line_comments: &["//"],
    block_comment: C_COMMENT,
    quotes: &[("\"", true, true), SQ],
    char_check: true,
    ..BASE
};

const PYTHON: Lang = Lang {
    keywords: "and as assert async await break class continue def del elif else except finally for from \
         global if import in is lambda nonlocal not or pass raise return try while with yield match \
         case",
    literals: "True False None",
    types: "int str float bool list dict set tuple bytes object",
    line_comments: &["#"],
    quotes: &[("\"\"\"", true, true), ("'''", true, true), DQ, SQ],
    ..BASE
};

const JS_KEYWORDS: &str =
    "async await break case catch class const continue debugger default delete do else export \
    extends finally for function if import in instanceof let new of return static super switch \
    this throw try typeof var void while with yield from";

const JAVASCRIPT: Lang = Lang {
    keywords: JS_KEYWORDS,
    literals: "true false null undefined NaN Infinity",
    cap_types: true,
    line_comments: &["//"],
    block_comment: C_COMMENT,
    quotes: &[("`", true, true), DQ, SQ],
    ident_start: b"$",
    ident_cont: b"$",
    ..BASE
};

const TYPESCRIPT: Lang = Lang {
    keywords: "async await break case catch class const continue debugger default delete do else export \
         extends finally for function if import in instanceof let new of return static super switch \
         this throw try typeof var void while with yield from interface type enum implements \
         private protected public readonly declare namespace abstract as is keyof",
    types: "string number boolean any never unknown object bigint",
    ..JAVASCRIPT
};

const JSON: Lang = Lang {
    literals: "true false null",
    quotes: &[DQ],
    ..BASE
};

const BASH: Lang = Lang {
    keywords: "if then else elif fi for while until do done case esac in function return select local \
         export declare readonly unset shift break continue exit source alias sudo",
    literals: "true false",
    line_comments: &["#"],
    // Single-line only: an apostrophe in command output must not colour the rest of the block.
    quotes: &[DQ, ("'", false, false)],
    ..BASE
};

const GO: Lang = Lang {
    keywords: "break case chan const continue default defer else fallthrough for func go goto if import \
         interface map package range return select struct switch type var",
    literals: "true false nil iota",
    types: "int int8 int16 int32 int64 uint uint8 uint16 uint32 uint64 uintptr float32 float64 string \
         bool byte rune error any",
    line_comments: &["//"],
    block_comment: C_COMMENT,
    quotes: &[DQ, ("`", true, false), SQ],
    ..BASE
};

const JAVA: Lang = Lang {
    keywords: "abstract assert break case catch class continue default do else enum extends final finally \
         for if implements import instanceof interface native new package private protected public \
         return static super switch synchronized this throw throws transient try var void volatile \
         while record yield",
    literals: "true false null",
    types: "int long short byte char boolean float double",
    cap_types: true,
    line_comments: &["//"],
    block_comment: C_COMMENT,
    quotes: &[("\"\"\"", true, true), DQ, SQ],
    ..BASE
};

const C_KEYWORDS: &str =
    "auto break case const continue default do else enum extern for goto if inline register \
    restrict return sizeof static struct switch typedef union volatile while #include #define \
    #if #ifdef #ifndef #else #elif #endif #pragma #undef";

const C: Lang = Lang {
    keywords: C_KEYWORDS,
    literals: "NULL true false",
    types: "int char short long float double void unsigned signed bool size_t",
    line_comments: &["//"],
    block_comment: C_COMMENT,
    quotes: &[DQ, SQ],
    ident_start: b"#",
    ..BASE
};

const CPP: Lang = Lang {
    keywords: "auto break case const continue default do else enum extern for goto if inline register \
         return sizeof static struct switch typedef union volatile while #include #define #if \
         #ifdef #ifndef #else #elif #endif #pragma #undef class namespace template typename public \
         private protected virtual override new delete this using try catch throw constexpr \
         noexcept operator friend explicit mutable static_cast dynamic_cast reinterpret_cast \
         const_cast",
    literals: "nullptr NULL true false",
    ..C
};

const SQL: Lang = Lang {
    keywords: "select from where insert into values update set delete create table drop alter add index \
         primary key foreign references join left right inner outer on group by order having limit \
         offset as and or not in is like between distinct union all exists case when then else end \
         begin commit rollback default unique view if returning with asc desc count",
    literals: "null true false",
    types: "int integer bigint text varchar boolean timestamp date serial",
    ignore_case: true,
    line_comments: &["--"],
    block_comment: C_COMMENT,
    quotes: &[SQ, DQ],
    ..BASE
};

const TOML: Lang = Lang {
    literals: "true false",
    line_comments: &["#"],
    quotes: &[
        ("\"\"\"", true, true),
        ("'''", true, false),
        DQ,
        ("'", false, false),
    ],
    ident_cont: b"-",
    ..BASE
};

const YAML: Lang = Lang {
    literals: "true false null yes no on off",
    line_comments: &["#"],
    quotes: &[DQ, ("'", false, false)],
    ident_cont: b"-",
    ..BASE
};

const CSS: Lang = Lang {
    keywords: "@media @import @keyframes @font-face @supports @layer important",
    block_comment: C_COMMENT,
    quotes: &[DQ, SQ],
    ident_start: b"@",
    ident_cont: b"-",
    ..BASE
};

const MARKUP: Lang = Lang {
    block_comment: Some(("<!--", "-->")),
    quotes: &[DQ],
    ident_cont: b"-:",
    tags: true,
    ..BASE
};

fn lang_for(name: &str) -> Option<&'static Lang> {
    Some(match name {
        "rust" | "rs" => &RUST,
        "python" | "py" => &PYTHON,
        "javascript" | "js" | "jsx" | "mjs" => &JAVASCRIPT,
        "typescript" | "ts" | "tsx" => &TYPESCRIPT,
        "json" => &JSON,
        "bash" | "sh" | "shell" | "zsh" | "console" => &BASH,
        "go" => &GO,
        "java" => &JAVA,
        "c" => &C,
        "cpp" | "c++" | "cc" | "h" | "hpp" => &CPP,
        "sql" => &SQL,
        "toml" => &TOML,
        "yaml" | "yml" => &YAML,
        "css" => &CSS,
        "html" | "xml" => &MARKUP,
        _ => return None,
    })
}

/// What the previous line left open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Code,
    Comment(&'static str),
    /// Index into the language's quotes.
    Str(usize),
}

#[derive(Clone)]
pub struct Highlighter {
    lang: Option<&'static Lang>,
    state: State,
}

impl Highlighter {
    /// `name` is the info string's first word, lowercase; unknown names give plain text.
    pub fn new(name: &str) -> Self {
        Highlighter {
            lang: lang_for(name),
            state: State::Code,
        }
    }

    /// The escaped, highlighted HTML of one line (without its newline).
    pub fn line(&mut self, line: &str) -> String {
        let mut out = String::with_capacity(line.len() + line.len() / 2);
        let Some(lang) = self.lang else {
            escape_into(&mut out, line);
            return out;
        };
        let b = line.as_bytes();
        let mut i = 0;
        if self.state != State::Code {
            let class = self.class_for_close();
            i = self.close(lang, b, 0);
            span(&mut out, class, &line[..i]);
            self.after_close(lang);
        }
        // Start of the current run of unhighlighted text. Tokens only start on ASCII bytes, so
        // every slice boundary below is a char boundary.
        let mut plain = i;
        while i < b.len() {
            let Some((end, class)) = self.token(lang, line, i) else {
                i += 1;
                continue;
            };
            escape_into(&mut out, &line[plain..i]);
            span(&mut out, class, &line[i..end]);
            i = end;
            plain = end;
        }
        escape_into(&mut out, &line[plain..]);
        out
    }

    fn class_for_close(&self) -> &'static str {
        match self.state {
            State::Str(_) => "tok-str",
            _ => "tok-com",
        }
    }

    /// Scan from `from` for the end of the open comment or string; returns the end offset.
    /// The state stays open when the line ends first.
    fn close(&mut self, lang: &Lang, b: &[u8], from: usize) -> usize {
        match self.state {
            State::Code => from,
            State::Comment(end) => match find(b, from, end.as_bytes(), false) {
                Some(e) => {
                    self.state = State::Code;
                    e
                }
                None => b.len(),
            },
            State::Str(k) => {
                let (quote, _, escapes) = lang.quotes[k];
                match find(b, from, quote.as_bytes(), escapes) {
                    Some(e) => {
                        self.state = State::Code;
                        e
                    }
                    None => b.len(),
                }
            }
        }
    }

    /// Single-line strings end with their line even when unterminated.
    fn after_close(&mut self, lang: &Lang) {
        if let State::Str(k) = self.state {
            if !lang.quotes[k].1 {
                self.state = State::Code;
            }
        }
    }

    /// The token starting at `i`, if any: (end offset, class). Comments and strings that do not
    /// end on this line leave their state set for the next line.
    fn token(&mut self, lang: &Lang, line: &str, i: usize) -> Option<(usize, &'static str)> {
        let b = line.as_bytes();
        let c = b[i];
        if !c.is_ascii() {
            return None;
        }
        let prev = if i == 0 { None } else { Some(b[i - 1]) };
        for start in lang.line_comments {
            // `#` is a comment only at a word boundary (`$#`, `${#a}` in shell are not).
            let boundary = *start != "#" || matches!(prev, None | Some(b' ' | b'\t'));
            if boundary && b[i..].starts_with(start.as_bytes()) {
                return Some((b.len(), "tok-com"));
            }
        }
        if let Some((open, end)) = lang.block_comment {
            if b[i..].starts_with(open.as_bytes()) {
                self.state = State::Comment(end);
                return Some((self.close(lang, b, i + open.len()), "tok-com"));
            }
        }
        for (k, &(quote, _, _)) in lang.quotes.iter().enumerate() {
            if b[i..].starts_with(quote.as_bytes()) {
                if lang.char_check && quote == "'" && !looks_like_char(line, i) {
                    continue;
                }
                self.state = State::Str(k);
                let end = self.close(lang, b, i + quote.len());
                self.after_close(lang);
                return Some((end, "tok-str"));
            }
        }
        let ident_byte = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || lang.ident_cont.contains(&c);
        if prev.is_some_and(ident_byte) {
            return None;
        }
        if c.is_ascii_digit() {
            let len = b[i..]
                .iter()
                .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
                .count();
            return Some((i + len, "tok-num"));
        }
        if c.is_ascii_alphabetic() || c == b'_' || lang.ident_start.contains(&c) {
            let len = 1 + b[i + 1..].iter().take_while(|&&c| ident_byte(c)).count();
            let end = i + len;
            let word = &line[i..end];
            let is = |list: &str| {
                let mut words = list.split(' ');
                if lang.ignore_case {
                    words.any(|w| w.eq_ignore_ascii_case(word))
                } else {
                    words.any(|w| w == word)
                }
            };
            let tag = lang.tags && (prev == Some(b'<') || (prev == Some(b'/') && i >= 2 && b[i - 2] == b'<'));
            let class = if tag || is(lang.keywords) {
                "tok-kw"
            } else if is(lang.literals) {
                "tok-lit"
            } else if is(lang.types) || (lang.cap_types && c.is_ascii_uppercase()) {
                "tok-ty"
            } else {
                ""
            };
            return Some((end, class));
        }
        None
    }
}

/// `'x'` or `'\…'` (a char literal), as opposed to a lifetime `'a`.
fn looks_like_char(line: &str, i: usize) -> bool {
    let rest = &line[i + 1..];
    match rest.chars().next() {
        Some('\\') => true,
        Some(ch) => rest[ch.len_utf8()..].starts_with('\''),
        None => false,
    }
}

/// The offset just past the first `pat` at or after `from`, skipping backslash escapes.
fn find(b: &[u8], mut from: usize, pat: &[u8], escapes: bool) -> Option<usize> {
    while from < b.len() {
        if escapes && b[from] == b'\\' {
            from += 2;
            continue;
        }
        if b[from..].starts_with(pat) {
            return Some(from + pat.len());
        }
        from += 1;
    }
    None
}

fn span(out: &mut String, class: &str, text: &str) {
    if text.is_empty() {
        return;
    }
    if class.is_empty() {
        escape_into(out, text);
        return;
    }
    out.push_str("<span class=\"");
    out.push_str(class);
    out.push_str("\">");
    escape_into(out, text);
    out.push_str("</span>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(lang: &str, code: &str) -> Vec<String> {
        let mut h = Highlighter::new(lang);
        code.lines().map(|l| h.line(l)).collect()
    }

    #[test]
    fn rust_tokens() {
        let l = lines(
            "rust",
            "fn main() { let s = \"hi<\"; // note\n let c = 'x'; f::<'a>(1.5) }",
        );
        assert_eq!(
            l[0],
            "<span class=\"tok-kw\">fn</span> main() { <span class=\"tok-kw\">let</span> s = \
             <span class=\"tok-str\">&quot;hi&lt;&quot;</span>; <span class=\"tok-com\">// note</span>"
        );
        assert!(l[1].contains("<span class=\"tok-str\">&#39;x&#39;</span>"));
        assert!(l[1].contains("::&lt;&#39;a&gt;(<span class=\"tok-num\">1.5</span>)"));
    }

    #[test]
    fn block_comment_across_lines() {
        let l = lines("rs", "a /* one\ntwo\nthree */ fn");
        assert_eq!(l[0], "a <span class=\"tok-com\">/* one</span>");
        assert_eq!(l[1], "<span class=\"tok-com\">two</span>");
        assert_eq!(
            l[2],
            "<span class=\"tok-com\">three */</span> <span class=\"tok-kw\">fn</span>"
        );
    }

    #[test]
    fn python_tokens_and_triple_quotes() {
        let l = lines(
            "py",
            "def f(x):  # c\n    s = \"\"\"doc\n    more\"\"\" + 'q'\n    return None",
        );
        assert!(
            l[0].starts_with("<span class=\"tok-kw\">def</span> f(x):  <span class=\"tok-com\"># c</span>")
        );
        assert!(l[1].ends_with("<span class=\"tok-str\">&quot;&quot;&quot;doc</span>"));
        assert!(l[2].starts_with("<span class=\"tok-str\">    more&quot;&quot;&quot;</span> + "));
        assert!(l[2].ends_with("<span class=\"tok-str\">&#39;q&#39;</span>"));
        assert!(l[3].contains("<span class=\"tok-lit\">None</span>"));
    }

    #[test]
    fn single_line_strings_do_not_leak() {
        let l = lines("bash", "echo \"unterminated\necho $# it's");
        assert_eq!(l[1], "echo $# it<span class=\"tok-str\">&#39;s</span>");
    }

    #[test]
    fn unknown_language_and_non_ascii() {
        assert_eq!(lines("klingon", "<b> & 'x'")[0], "&lt;b&gt; &amp; &#39;x&#39;");
        let l = lines("js", "const 한 = `안녕 ${x}\n🎉` // 끝");
        assert!(l[0].starts_with("<span class=\"tok-kw\">const</span> 한 = <span class=\"tok-str\">`안녕"));
        assert_eq!(
            l[1],
            "<span class=\"tok-str\">🎉`</span> <span class=\"tok-com\">// 끝</span>"
        );
        assert!(lines("sql", "SELECT 1 -- x")[0].starts_with("<span class=\"tok-kw\">SELECT</span>"));
        assert!(lines("html", "<div class=\"a\">")[0].starts_with("&lt;<span class=\"tok-kw\">div</span>"));
    }
}
