//! pulldown-cmark events to safe HTML.
//!
//! The input is model output, which may be steered by hostile content, so this writer treats
//! it as untrusted: every piece of text is escaped, raw HTML is shown as text, links keep their
//! `href` only for a few harmless schemes and images become links (never loaded, so no
//! tracking pixels). We write our own writer instead of using pulldown-cmark's `html` module
//! because that one passes raw HTML and any URL through.

use pulldown_cmark::{Alignment, CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

use super::highlight::Highlighter;

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// Render one block (or any Markdown fragment) to safe HTML.
pub(super) fn render_block(src: &str) -> String {
    let mut w = Writer {
        out: String::with_capacity(src.len() + src.len() / 2),
        ..Writer::default()
    };
    for event in Parser::new_ext(src, options()) {
        w.event(event);
    }
    w.out
}

/// Escape text for use in element content and in quoted attribute values.
pub(super) fn escape_into(out: &mut String, text: &str) {
    let mut last = 0;
    for (i, b) in text.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&text[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&text[last..]);
}

/// The language of a fence's info string: its first word, lowercase, reduced to
/// `[a-z0-9_+-]` so it is safe in a class name. `None` when nothing is left.
pub(super) fn lang_from_info(info: &str) -> Option<String> {
    let word = info
        .trim()
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
        .next()?;
    let lang: String = word
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (!lang.is_empty()).then_some(lang)
}

/// The code-block wrapper up to and including `<code …>`. The copy button relies on `<code>`
/// holding exactly the code, so the label lives outside `<pre>`. The button's
/// visible label is CSS (in the page's language; answers are the same HTML in
/// every language); its accessible name is the page's `#copy-code-label`
/// ([`COPY_LABEL_ID`]), which screen readers read and the page translates.
pub const COPY_LABEL_ID: &str = "copy-code-label";

pub(super) fn code_block_open(lang: Option<&str>) -> String {
    let mut out =
        String::from("<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">");
    out.push_str(lang.unwrap_or("text"));
    out.push_str("</span><button type=\"button\" class=\"copy-code\" aria-labelledby=\"copy-code-label\"></button></div><pre><code");
    if let Some(lang) = lang {
        out.push_str(" class=\"language-");
        out.push_str(lang);
        out.push('"');
    }
    out.push('>');
    out
}

pub(super) const CODE_BLOCK_CLOSE: &str = "</code></pre></div>\n";

/// Whether a link target may be kept. Browsers drop ASCII tab and newlines anywhere in a URL
/// and trim leading/trailing C0 controls and spaces before reading the scheme, so we do the
/// same before comparing it; anything with a scheme other than http(s)/mailto is refused.
pub(super) fn safe_url(url: &str) -> bool {
    let cleaned: String = url.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let trimmed = cleaned.trim_matches(|c: char| c <= ' ');
    match trimmed.find([':', '/', '?', '#']) {
        Some(i) if trimmed.as_bytes()[i] == b':' => {
            let scheme = trimmed[..i].to_ascii_lowercase();
            matches!(scheme.as_str(), "http" | "https" | "mailto")
        }
        // No scheme: a relative URL or an #anchor.
        _ => true,
    }
}

fn push_link_open(out: &mut String, href: &str, title: &str, class: Option<&str>) {
    out.push_str("<a");
    if let Some(class) = class {
        out.push_str(" class=\"");
        out.push_str(class);
        out.push('"');
    }
    out.push_str(" href=\"");
    escape_into(out, href);
    out.push('"');
    if !title.is_empty() {
        out.push_str(" title=\"");
        escape_into(out, title);
        out.push('"');
    }
    out.push_str(" rel=\"noopener noreferrer nofollow\" target=\"_blank\">");
}

struct Code {
    lang: Option<String>,
    text: String,
}

struct Image {
    href: Option<String>,
    title: String,
    alt: String,
    /// Images nested in the alt text.
    depth: usize,
}

#[derive(Default)]
struct Writer {
    out: String,
    code: Option<Code>,
    image: Option<Image>,
    /// For each open link: whether an `<a>` was written (refused links write none).
    links: Vec<bool>,
    aligns: Vec<Alignment>,
    col: usize,
    in_head: bool,
    in_body: bool,
}

impl Writer {
    fn event(&mut self, event: Event) {
        if let Some(code) = &mut self.code {
            match event {
                Event::Text(t) => code.text.push_str(&t),
                Event::End(TagEnd::CodeBlock) => self.end_code(),
                _ => {}
            }
            return;
        }
        if let Some(image) = &mut self.image {
            // Alt text is plain text: keep only the words.
            match event {
                Event::Text(t) | Event::Code(t) | Event::InlineHtml(t) | Event::Html(t) => {
                    image.alt.push_str(&t)
                }
                Event::SoftBreak | Event::HardBreak => image.alt.push(' '),
                Event::Start(Tag::Image { .. }) => image.depth += 1,
                Event::End(TagEnd::Image) if image.depth > 0 => image.depth -= 1,
                Event::End(TagEnd::Image) => self.end_image(),
                _ => {}
            }
            return;
        }
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) | Event::InlineMath(t) | Event::DisplayMath(t) => escape_into(&mut self.out, &t),
            Event::Code(t) => {
                self.out.push_str("<code>");
                escape_into(&mut self.out, &t);
                self.out.push_str("</code>");
            }
            // Raw HTML is shown, never interpreted.
            Event::Html(t) | Event::InlineHtml(t) => escape_into(&mut self.out, &t),
            Event::FootnoteReference(t) => {
                self.out.push_str("[^");
                escape_into(&mut self.out, &t);
                self.out.push(']');
            }
            Event::SoftBreak => self.out.push('\n'),
            Event::HardBreak => self.out.push_str("<br>\n"),
            Event::Rule => self.out.push_str("<hr>\n"),
            Event::TaskListMarker(checked) => self.out.push_str(if checked {
                "<input type=\"checkbox\" checked disabled> "
            } else {
                "<input type=\"checkbox\" disabled> "
            }),
        }
    }

    fn start(&mut self, tag: Tag) {
        let out = &mut self.out;
        match tag {
            Tag::Paragraph | Tag::HtmlBlock => out.push_str("<p>"),
            Tag::Heading { level, .. } => {
                out.push_str("<h");
                out.push(char::from(b'0' + level as u8));
                out.push('>');
            }
            Tag::BlockQuote(_) => out.push_str("<blockquote>\n"),
            Tag::CodeBlock(kind) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => lang_from_info(&info),
                    CodeBlockKind::Indented => None,
                };
                self.code = Some(Code {
                    lang,
                    text: String::new(),
                });
            }
            Tag::List(Some(1)) => out.push_str("<ol>\n"),
            Tag::List(Some(start)) => {
                out.push_str("<ol start=\"");
                out.push_str(&start.to_string());
                out.push_str("\">\n");
            }
            Tag::List(None) => out.push_str("<ul>\n"),
            Tag::Item => out.push_str("<li>"),
            Tag::Table(aligns) => {
                self.aligns = aligns;
                self.in_body = false;
                out.push_str("<table>\n");
            }
            Tag::TableHead => {
                self.in_head = true;
                self.col = 0;
                out.push_str("<thead>\n<tr>");
            }
            Tag::TableRow => {
                if !self.in_body {
                    self.in_body = true;
                    out.push_str("<tbody>\n");
                }
                self.col = 0;
                out.push_str("<tr>");
            }
            Tag::TableCell => {
                out.push_str(if self.in_head { "<th" } else { "<td" });
                match self.aligns.get(self.col) {
                    Some(Alignment::Left) => out.push_str(" class=\"align-left\""),
                    Some(Alignment::Center) => out.push_str(" class=\"align-center\""),
                    Some(Alignment::Right) => out.push_str(" class=\"align-right\""),
                    _ => {}
                }
                out.push('>');
            }
            Tag::Emphasis => out.push_str("<em>"),
            Tag::Strong => out.push_str("<strong>"),
            Tag::Strikethrough => out.push_str("<del>"),
            Tag::Superscript => out.push_str("<sup>"),
            Tag::Subscript => out.push_str("<sub>"),
            Tag::Link {
                link_type,
                dest_url,
                title,
                ..
            } => {
                let href = match link_type {
                    LinkType::Email => format!("mailto:{dest_url}"),
                    _ => dest_url.to_string(),
                };
                let safe = safe_url(&href);
                if safe {
                    push_link_open(out, &href, &title, None);
                }
                self.links.push(safe);
            }
            Tag::Image { dest_url, title, .. } => {
                let href = safe_url(&dest_url).then(|| dest_url.to_string());
                self.image = Some(Image {
                    href,
                    title: title.to_string(),
                    alt: String::new(),
                    depth: 0,
                });
            }
            // Not enabled; their content still renders.
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        let out = &mut self.out;
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => out.push_str("</p>\n"),
            TagEnd::Heading(level) => {
                out.push_str("</h");
                out.push(char::from(b'0' + level as u8));
                out.push_str(">\n");
            }
            TagEnd::BlockQuote(_) => out.push_str("</blockquote>\n"),
            TagEnd::List(true) => out.push_str("</ol>\n"),
            TagEnd::List(false) => out.push_str("</ul>\n"),
            TagEnd::Item => out.push_str("</li>\n"),
            TagEnd::Table => {
                if self.in_body {
                    out.push_str("</tbody>\n");
                }
                out.push_str("</table>\n");
            }
            TagEnd::TableHead => {
                self.in_head = false;
                out.push_str("</tr>\n</thead>\n");
            }
            TagEnd::TableRow => out.push_str("</tr>\n"),
            TagEnd::TableCell => {
                out.push_str(if self.in_head { "</th>" } else { "</td>" });
                self.col += 1;
            }
            TagEnd::Emphasis => out.push_str("</em>"),
            TagEnd::Strong => out.push_str("</strong>"),
            TagEnd::Strikethrough => out.push_str("</del>"),
            TagEnd::Superscript => out.push_str("</sup>"),
            TagEnd::Subscript => out.push_str("</sub>"),
            TagEnd::Link => {
                if self.links.pop() == Some(true) {
                    out.push_str("</a>");
                }
            }
            // Handled in `event` while their content is collected.
            TagEnd::CodeBlock | TagEnd::Image => {}
            TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::MetadataBlock(_) => {}
        }
    }

    fn end_code(&mut self) {
        let Some(code) = self.code.take() else { return };
        self.out.push_str(&code_block_open(code.lang.as_deref()));
        let mut hl = Highlighter::new(code.lang.as_deref().unwrap_or(""));
        // Line by line, exactly as the streaming path does, so both give the same HTML.
        for line in code.text.lines() {
            self.out.push_str(&hl.line(line));
            self.out.push('\n');
        }
        self.out.push_str(CODE_BLOCK_CLOSE);
    }

    fn end_image(&mut self) {
        let Some(image) = self.image.take() else { return };
        let out = &mut self.out;
        // Inside a link the image is just its alt text: anchors must not nest.
        let in_link = self.links.iter().any(|&open| open);
        match &image.href {
            Some(href) if !in_link => {
                push_link_open(out, href, &image.title, Some("md-image"));
                escape_into(out, if image.alt.is_empty() { href } else { &image.alt });
                out.push_str("</a>");
            }
            _ => escape_into(out, &image.alt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_schemes() {
        for ok in [
            "https://a.b/c",
            "http://x",
            "MAILTO:a@b.c",
            "/rel",
            "rel/x",
            "#top",
            "?q=1",
            "a/b:c",
        ] {
            assert!(safe_url(ok), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "java\tscript:alert(1)",
            " JAVASCRIPT:alert(1)",
            "\u{1}javascript:x",
            "java\nscript:x",
            "data:text/html,<b>",
            "vbscript:x",
            "file:///etc/passwd",
        ] {
            assert!(!safe_url(bad), "{bad:?}");
        }
    }

    #[test]
    fn lang_names() {
        assert_eq!(lang_from_info("Rust,ignore"), Some("rust".into()));
        assert_eq!(lang_from_info(" c++ {x}"), Some("c++".into()));
        assert_eq!(lang_from_info("\"><script>"), Some("script".into()));
        assert_eq!(lang_from_info("  "), None);
    }

    #[test]
    fn elements() {
        let html = render_block("# T\n\n| a | b |\n|:-|-:|\n| 1 | *2* |\n\n- [x] done\n- [ ] todo\n\n3. x\n");
        assert!(html.starts_with("<h1>T</h1>\n<table>\n<thead>\n<tr><th class=\"align-left\">a</th>"));
        assert!(html.contains("<td class=\"align-right\"><em>2</em></td>"));
        assert!(html.contains("<li><input type=\"checkbox\" checked disabled> done</li>"));
        assert!(html.contains("<ol start=\"3\">"));
        assert_eq!(
            render_block("a  \nb ~~c~~ `<x>`"),
            "<p>a<br>\nb <del>c</del> <code>&lt;x&gt;</code></p>\n"
        );
    }

    #[test]
    fn images_and_links() {
        assert_eq!(
            render_block("![cat](http://x/c.png \"t\") ![](/p.gif) ![a *b*](javascript:x)"),
            "<p><a class=\"md-image\" href=\"http://x/c.png\" title=\"t\" rel=\"noopener noreferrer nofollow\" \
             target=\"_blank\">cat</a> <a class=\"md-image\" href=\"/p.gif\" rel=\"noopener noreferrer nofollow\" \
             target=\"_blank\">/p.gif</a> a b</p>\n"
        );
        assert_eq!(render_block("[x](javascript:alert(1))"), "<p>x</p>\n");
        assert!(render_block("<a@b.c>").contains("href=\"mailto:a@b.c\""));
        assert_eq!(render_block("[x](java&#9;script:y)"), "<p>x</p>\n");
        assert_eq!(render_block("[![a](/i.png)](/p)").matches("<a ").count(), 1);
    }

    #[test]
    fn code_blocks() {
        assert_eq!(
            render_block("```Rust\nlet x = 1;\n```"),
            "<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">rust</span>\
             <button type=\"button\" class=\"copy-code\" aria-labelledby=\"copy-code-label\"></button></div><pre><code class=\"language-rust\">\
             <span class=\"tok-kw\">let</span> x = <span class=\"tok-num\">1</span>;\n</code></pre></div>\n"
        );
        assert!(render_block("    <b>\n").contains("<span class=\"code-lang\">text</span>"));
        assert!(render_block("    <b>\n").contains("<pre><code>&lt;b&gt;\n</code>"));
    }
}
