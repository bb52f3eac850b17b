//! Markdown answers to safe HTML, at once or while they stream in.
//!
//! A chat model's answer is Markdown that arrives token by token. We want it formatted while
//! it streams, without re-rendering the whole answer on every token (that is quadratic and
//! makes long answers stutter), and a reloaded page must show exactly what the stream showed.
//!
//! The answer is cut into top-level blocks by a prefix-stable splitter (`blocks`): once a
//! boundary is found it stays a boundary however the text goes on. Each finished block is
//! rendered once, with pulldown-cmark and our own safe writer (`html`), and never touched
//! again. Only the last, unfinished block is re-rendered per delta; an open fenced code block
//! is not re-rendered at all, its new lines are highlighted (`highlight`) and appended.
//! [`render`] runs the same splitter over the whole text, so a streamed answer and a rendered
//! one are byte-for-byte equal by construction.
//!
//! # DOM contract
//!
//! An answer's element holds two containers:
//!
//! ```html
//! <div class="md-done">…</div><div class="md-tail">…</div>
//! ```
//!
//! - [`Update::done`] is appended to `md-done` (`insertAdjacentHTML("beforeend", …)`); the
//!   page puts it in groups of a few blocks (`<div class="md-group">`), which layout skips
//!   while out of view.
//! - [`TailUpdate::Html`] replaces the innerHTML of `md-tail`.
//! - [`TailUpdate::CodeLines`] applies to the open code block in `md-tail`: `finished` is
//!   inserted before its `<span class="code-partial">` (the last child of `<code>`) and the
//!   span's innerHTML becomes `partial`.
//!
//! After [`StreamRenderer::finish`], `md-done` holds exactly `render(full_text)` (in those
//! groups) and `md-tail` is empty. The server renders a stored answer as `render(text)` inside `md-done`.
//!
//! Code blocks render as
//!
//! ```html
//! <div class="code-block"><div class="code-head"><span class="code-lang">rust</span><button
//! type="button" class="copy-code" aria-labelledby="copy-code-label"></button></div><pre><code class="language-rust">…</code></pre></div>
//! ```
//!
//! where `<code>`'s textContent is exactly the code (for the `.copy-code` handler; the
//! button's label comes from the stylesheet, in the page's language), and tokens
//! are `<span class="tok-kw|tok-str|tok-com|tok-num|tok-lit|tok-ty">`.
//!
//! # Safety
//!
//! Model output is untrusted. All text is escaped, raw HTML is shown as text, links keep their
//! `href` only for http, https, mailto and relative URLs (and open with
//! `rel="noopener noreferrer nofollow" target="_blank"`), images are never loaded but shown as
//! `<a class="md-image">` links, and no `style` or event attributes are ever written.

mod blocks;
mod highlight;
mod html;
mod stream;

#[cfg(test)]
mod tests;

pub use highlight::Highlighter;
pub use html::COPY_LABEL_ID;
pub use stream::{StreamRenderer, TailUpdate, Update};

/// `text` as HTML text: shown as it is, never as markup.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    html::escape_into(&mut out, text);
    out
}

/// The whole answer's HTML: exactly what a [`StreamRenderer`]'s done-HTML is after pushing the
/// same text in any chunks and calling `finish()`.
pub fn render(source: &str) -> String {
    let mut out = String::with_capacity(source.len() * 3 / 2);
    for block in blocks::split(source) {
        out.push_str(&html::render_block(&source[block]));
    }
    out
}
