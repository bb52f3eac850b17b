//! Streaming equals rendering at once, for many documents and chunkings, and output is safe.

use super::stream::PARTIAL_OPEN;
use super::*;

const DOCS: &[&str] = &[
    "",
    "Hello",
    "# Title\n\nSome *text* with `code` and **bold**.\nA soft break.  \nA hard break.\n\n## Sub\n\nMore.\n",
    "Intro:\n\n1. First item\n\n   Continued paragraph.\n\n   - nested a\n   - nested b\n\n     ```bash\n     \
     cargo build\n\n     cargo test\n     ```\n\n2. Second item\n\n10) other\n\nAfter the list.\n",
    "| Name | Qty | Note |\n|:-----|----:|:----:|\n| a | 1 | x |\n| b | 22 | *y* |\n\nAfter table.\n",
    "Code:\n```rust\n/// Docs\nfn main() {\n    let s = \"a /* not */ b\";\n    /* block\n       comment */\n    \
     println!(\"{s}\");\n}\n```\nText right after.\n\n~~~python\ndef f():\n    '''doc\n\n    string'''\n    \
     return None  # c\n~~~\n\n```js\nconst t = `multi\nline ${x}`;\n```\n",
    "Before\n\n```python\nprint('unclosed')\n\nx = 1",
    "Try <script>alert(1)</script> and <img src=x onerror=alert(1)>.\n\n<div onclick=\"x()\">\nblock html\n</div>\n\n\
     <script>\nalert(2)\n</script>\n",
    "[bad](javascript:alert(1)) [bad2](java\tscript:alert(1)) [bad3]( JAVASCRIPT:alert(1)) \
     [data](data:text/html,<b>x</b>) [vb](vbscript:x) <javascript:alert(1)> [bad4](<java\tscript:x>)\n\n[ok](https://example.com/a?b=1&c=2 \"t\") \
     [rel](/docs) [anchor](#top) <https://x.y> ![pixel](https://t.example/p.gif) ![](javascript:alert(1))\n",
    "Line one\r\nline two\r\n\r\n```toml\r\n[a]\r\nb = \"c\" # d\r\n```\r\n\r\n- x\r\n- y\r\n",
    "안녕하세요! 🎉 **굵게** 그리고 `코드`.\n\n```go\n// 주석 🚀\nfunc main() { s := \"한글\" }\n```\n\n마지막 문단 😀",
    "Setext heading\n==============\n\nAnother\n---\n\n---\n\n> quote line\n>\n> still quote\n\n> second quote\n\n\
     - [ ] todo\n- [x] done\n\n    indented code\n\n***\n",
    "```\nno lang\n```\n````md\n```\ninner\n```\n````\n  ```sql\n  SELECT 1; -- x\n  ```\n",
    "``` rust\nlet a = 1;\n",
    "Para\n```\nfence right after para\n```",
    "- a\n\n  ```\n  x\n\nnot code?\n\n- b\n",
    "\n\n\n   \n",
];

/// The page, simulated with strings.
#[derive(Default)]
struct Dom {
    done: String,
    tail: String,
}

impl Dom {
    fn apply(&mut self, update: Update) {
        self.done.push_str(&update.done);
        match update.tail {
            TailUpdate::Unchanged => {}
            TailUpdate::Html(html) => self.tail = html,
            TailUpdate::CodeLines { finished, partial } => {
                let at = self.tail.find(PARTIAL_OPEN).expect("code-partial span on screen");
                let end = self
                    .tail
                    .rfind("</span></code>")
                    .expect("span is code's last child");
                assert!(end >= at + PARTIAL_OPEN.len());
                self.tail = format!(
                    "{}{finished}{PARTIAL_OPEN}{partial}{}",
                    &self.tail[..at],
                    &self.tail[end..]
                );
            }
        }
    }
}

/// Tiny xorshift PRNG, so chunkings are reproducible without dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Cut `doc` into chunks of `1..=max` bytes (moved back to char boundaries, at least one char).
fn random_chunks(doc: &str, seed: u64, max: u64) -> Vec<&str> {
    let mut rng = Rng(seed);
    let mut chunks = Vec::new();
    let mut pos = 0;
    while pos < doc.len() {
        let want = (pos + 1 + (rng.next() % max) as usize).min(doc.len());
        let mut end = floor_boundary(doc, want);
        if end == pos {
            end = pos + doc[pos..].chars().next().unwrap().len_utf8();
        }
        chunks.push(&doc[pos..end]);
        pos = end;
    }
    chunks
}

fn char_chunks(doc: &str) -> Vec<&str> {
    doc.char_indices()
        .map(|(i, c)| &doc[i..i + c.len_utf8()])
        .collect()
}

fn chunkings(doc: &str) -> Vec<Vec<&str>> {
    let mut all = vec![vec![doc], char_chunks(doc), doc.split_inclusive('\n').collect()];
    for seed in 1..=6 {
        all.push(random_chunks(
            doc,
            seed * 0x9E37_79B9,
            [3, 7, 16][seed as usize % 3],
        ));
    }
    all
}

/// Stream `chunks`, checking the contract at every step; returns every tail seen.
fn stream(doc: &str, chunks: &[&str]) -> Vec<String> {
    let expected = render(doc);
    let mut r = StreamRenderer::new();
    let mut dom = Dom::default();
    let mut tails = Vec::new();
    for chunk in chunks {
        let before = dom.done.clone();
        dom.apply(r.push(chunk));
        assert!(dom.done.starts_with(&before));
        assert!(
            expected.starts_with(&dom.done),
            "done is final\ndoc: {doc:?}\ndone: {}",
            dom.done
        );
        tails.push(dom.tail.clone());
    }
    dom.apply(r.finish());
    assert_eq!(dom.done, expected, "doc: {doc:?} chunks: {chunks:?}");
    assert_eq!(dom.tail, "");
    tails
}

#[test]
fn streamed_equals_render_for_all_chunkings() {
    for doc in DOCS {
        for chunks in chunkings(doc) {
            stream(doc, &chunks);
        }
    }
}

#[test]
fn streamed_code_tail_equals_rendered_code() {
    // Mid-stream, the tail assembled from CodeLines must be what rendering the prefix gives.
    let doc = "```rust\nfn a() {}\n/* x\ny */ let s = \"q\";\n";
    let mut r = StreamRenderer::new();
    let mut dom = Dom::default();
    for c in char_chunks(doc) {
        dom.apply(r.push(c));
    }
    let shown = dom.tail.replace(&format!("{PARTIAL_OPEN}</span>"), "");
    assert_eq!(shown, render(doc));
}

#[test]
fn render_edge_cases() {
    assert_eq!(render(""), "");
    assert_eq!(render("\n\n"), "");
    assert_eq!(render("a\r\n\r\nb"), "<p>a</p>\n<p>b</p>\n");
    assert!(render("Setext\n===\n").starts_with("<h1>Setext</h1>"));
    // A fence marker split across deltas still ends up as one code block.
    let mut r = StreamRenderer::new();
    let mut dom = Dom::default();
    for c in ["``", "`rust\nlet x", " = 1;\n``", "`\nafter"] {
        dom.apply(r.push(c));
    }
    dom.apply(r.finish());
    assert_eq!(dom.done, render("```rust\nlet x = 1;\n```\nafter"));
    assert_eq!(dom.done.matches("code-block").count(), 1);
}

#[test]
fn table_rows_in_separate_deltas() {
    let mut r = StreamRenderer::new();
    let mut dom = Dom::default();
    dom.apply(r.push("| a | b |\n"));
    assert!(!dom.tail.contains("<table>"));
    dom.apply(r.push("|---|---|\n"));
    assert!(dom.tail.contains("<table>"), "{}", dom.tail);
    dom.apply(r.push("| 1 | 2 |"));
    assert!(dom.tail.contains("<td>1</td>"));
    dom.apply(r.finish());
    assert!(dom.done.contains("<td>2</td>") && dom.tail.is_empty());
}

#[test]
fn unclosed_fence_mid_stream_is_code() {
    for doc in [
        "Intro\n\n```python\nprint(1)\nx = ",
        "Intro\n```",
        "- item\n  ```js\n  let a",
    ] {
        for chunks in chunkings(doc) {
            let tails = stream(doc, &chunks);
            let last = tails.last().unwrap();
            assert!(!last.contains("```"), "raw fence shown: {last}");
            assert!(last.contains("<pre><code"), "{last}");
        }
    }
    let mut r = StreamRenderer::new();
    let u = r.push("Text\n\n```rust\nfn");
    assert!(u.done.contains("<p>Text</p>"));
    match u.tail {
        TailUpdate::Html(h) => {
            assert!(h.contains(
                "<code class=\"language-rust\"><span class=\"code-partial\"><span class=\"tok-kw\">fn"
            ))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r.push(" main\n"),
        Update {
            done: String::new(),
            tail: TailUpdate::CodeLines {
                finished: "<span class=\"tok-kw\">fn</span> main\n".into(),
                partial: String::new()
            }
        }
    );
    assert_eq!(r.push(""), Update::default());
}

/// Every tag in `html`, as the text between `<` and `>`.
fn tags(html: &str) -> Vec<&str> {
    html.split('<')
        .skip(1)
        .map(|t| t.split('>').next().unwrap())
        .collect()
}

fn assert_safe(html: &str) {
    const ALLOWED: &[&str] = &[
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "ul",
        "ol",
        "li",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "em",
        "strong",
        "del",
        "code",
        "pre",
        "br",
        "hr",
        "a",
        "span",
        "div",
        "button",
        "input",
        "sup",
        "sub",
    ];
    for tag in tags(html) {
        let name = tag.trim_start_matches('/').split([' ', '\n']).next().unwrap();
        assert!(ALLOWED.contains(&name), "tag {name:?} in {html}");
        let lower = tag.to_ascii_lowercase();
        assert!(
            !lower.contains(" on") && !lower.contains("style="),
            "attribute in <{tag}>"
        );
        if let Some(href) = lower.split("href=\"").nth(1) {
            let href = href.split('"').next().unwrap();
            assert!(
                href.starts_with("http://")
                    || href.starts_with("https://")
                    || href.starts_with("mailto:")
                    || !href.contains(':'),
                "href {href:?}"
            );
            assert!(tag.contains("rel=\"noopener noreferrer nofollow\""));
        }
    }
    assert!(!html.to_ascii_lowercase().contains("<script"));
}

#[test]
fn output_is_safe() {
    for doc in DOCS {
        assert_safe(&render(doc));
        for tail in stream(doc, &random_chunks(doc, 7, 5)) {
            assert_safe(&tail);
        }
    }
    let html = render(DOCS[7]);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("&lt;div onclick=&quot;x()&quot;&gt;"));
    let links = render(DOCS[8]);
    assert!(!links.to_ascii_lowercase().contains("href=\"java"));
    assert!(!links.contains("href=\"data") && !links.contains("href=\"vbscript"));
    assert!(links.contains(
        "<a href=\"https://example.com/a?b=1&amp;c=2\" title=\"t\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">ok</a>"
    ));
    assert!(links.contains("<a href=\"#top\" rel="));
    assert!(links.contains("<a class=\"md-image\" href=\"https://t.example/p.gif\""));
    // pulldown-cmark does not take a bare tab in a destination as a link at all.
    assert!(
        links.starts_with("<p>bad [bad2](java\tscript:alert(1)) bad3 data vb javascript:alert(1) bad4</p>")
    );
}

#[test]
fn big_answer_in_tiny_deltas_is_linear() {
    let section = "## Section NUM\n\nA paragraph about item NUM with *emphasis*, `code` and a [link](https://e.x/NUM).\n\
                   Second line of the paragraph.\n\n- point one\n- point two\n  - nested\n\n```rust\nfn f() -> u32 {\n    \
                   // comment\n    NUM\n}\n```\n\n| k | v |\n|---|---|\n| a | NUM |\n\n> quote NUM\n\n";
    let mut doc = String::new();
    let mut n = 0;
    while doc.len() < 100_000 {
        doc.push_str(&section.replace("NUM", &n.to_string()));
        n += 1;
    }
    let mut r = StreamRenderer::new();
    let mut done = String::new();
    let mut pos = 0;
    while pos < doc.len() {
        let end = (pos + 5).min(doc.len());
        done.push_str(&r.push(&doc[pos..end]).done);
        pos = end;
    }
    done.push_str(&r.finish().done);
    assert_eq!(done, render(&doc));
    assert!(
        r.parsed < 40 * doc.len(),
        "parsed {} bytes for {}",
        r.parsed,
        doc.len()
    );
}
