//! Incremental rendering of an answer that arrives in deltas.
//!
//! The renderer keeps the source, the offset where the unfinished (tail) block starts and the
//! offset of the first incomplete line. Each complete line is classified once by the block
//! splitter; when a block is final it is rendered once and handed out as `done`. Only the tail
//! is re-rendered per push, so a push costs the delta plus the current block, never the whole
//! answer. An open fenced code block (the usual long tail) is cheaper still: only the new lines
//! are highlighted and sent as `CodeLines`.

use super::blocks::Splitter;
use super::highlight::Highlighter;
use super::html::{code_block_open, lang_from_info, render_block, CODE_BLOCK_CLOSE};

/// What changed on screen after a `push` or `finish`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// HTML of blocks that just became final: append to the done container. Never changed later.
    pub done: String,
    pub tail: TailUpdate,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TailUpdate {
    #[default]
    Unchanged,
    /// Replace the whole tail container's innerHTML.
    Html(String),
    /// The tail is an open fenced code block that an earlier `Html` update put on screen. Its
    /// `<code>` element ends with a `<span class="code-partial">` child: insert `finished`
    /// (newly completed lines, each ending with "\n") just before that span and set the span's
    /// innerHTML to `partial` (the unfinished last line).
    CodeLines { finished: String, partial: String },
}

/// The tail block is an open top-level fence.
struct CodeTail {
    hl: Highlighter,
    lang: Option<String>,
    /// Spaces before the opening fence, stripped from code lines as CommonMark does.
    indent: usize,
    /// Highlighted lines completed since the last update.
    pending: String,
    /// Its skeleton is not on screen yet.
    fresh: bool,
}

/// What the tail container shows now, to avoid sending unchanged HTML.
enum Shown {
    Html(String),
    Code { partial: String },
}

pub struct StreamRenderer {
    src: String,
    /// Start of the unfinished block.
    block_start: usize,
    /// Start of the first incomplete line; every line before it has been classified.
    scan: usize,
    splitter: Splitter,
    code: Option<CodeTail>,
    shown: Shown,
    finished: bool,
    /// Bytes handed to pulldown-cmark, to guard against quadratic behaviour in tests.
    #[cfg(test)]
    pub(super) parsed: usize,
}

impl Default for StreamRenderer {
    fn default() -> Self {
        StreamRenderer {
            src: String::new(),
            block_start: 0,
            scan: 0,
            splitter: Splitter::default(),
            code: None,
            shown: Shown::Html(String::new()),
            finished: false,
            #[cfg(test)]
            parsed: 0,
        }
    }
}

impl StreamRenderer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a delta of the answer. Deltas may split anywhere (inside a line, a word, a
    /// fence marker). After `finish` further pushes are ignored.
    pub fn push(&mut self, delta: &str) -> Update {
        if self.finished || delta.is_empty() {
            return Update::default();
        }
        // Only the new bytes can hold new newlines; everything before `old_len` was searched.
        let old_len = self.src.len();
        self.src.push_str(delta);
        let mut done = String::new();
        let mut from = old_len;
        while let Some(i) = self.src[from..].find('\n') {
            let end = from + i + 1;
            self.line(end - 1, end, &mut done);
            from = end;
        }
        let tail = self.tail_update();
        Update { done, tail }
    }

    /// The answer ended: the last line counts even without a newline, everything becomes
    /// done and the tail becomes empty.
    pub fn finish(&mut self) -> Update {
        if self.finished {
            return Update::default();
        }
        self.finished = true;
        let mut done = String::new();
        let len = self.src.len();
        if self.scan < len {
            self.line(len, len, &mut done);
        }
        if self.block_start < len {
            self.flush(len, &mut done);
        }
        let tail = match &self.shown {
            Shown::Html(html) if html.is_empty() => TailUpdate::Unchanged,
            _ => TailUpdate::Html(String::new()),
        };
        self.shown = Shown::Html(String::new());
        Update { done, tail }
    }

    /// Classify the line `scan..text_end` (its newline ends at `end`).
    fn line(&mut self, text_end: usize, end: usize, done: &mut String) {
        let start = self.scan;
        let info = self.splitter.feed(&self.src[start..text_end]);
        if info.starts_block {
            self.flush(start, done);
        }
        if let Some(open) = info.opens_code {
            let lang = lang_from_info(&self.src[start + open.info_start..text_end]);
            let hl = Highlighter::new(lang.as_deref().unwrap_or(""));
            self.code = Some(CodeTail {
                hl,
                lang,
                indent: open.indent,
                pending: String::new(),
                fresh: true,
            });
        } else if info.ends_block {
            self.flush(end, done);
        } else if let Some(code) = &mut self.code {
            let text = code_text(&self.src[start..text_end], code.indent);
            code.pending.push_str(&code.hl.line(text));
            code.pending.push('\n');
        }
        self.scan = end;
    }

    /// The block `block_start..end` is final.
    fn flush(&mut self, end: usize, done: &mut String) {
        done.push_str(&self.render(self.block_start, end));
        self.block_start = end;
        self.code = None;
    }

    fn render(&mut self, start: usize, end: usize) -> String {
        #[cfg(test)]
        {
            self.parsed += end - start;
        }
        render_block(&self.src[start..end])
    }

    fn tail_update(&mut self) -> TailUpdate {
        let Some(code) = &mut self.code else {
            let html = self.render(self.block_start, self.src.len());
            if matches!(&self.shown, Shown::Html(old) if *old == html) {
                return TailUpdate::Unchanged;
            }
            self.shown = Shown::Html(html.clone());
            return TailUpdate::Html(html);
        };
        // Highlight the unfinished line with a copy of the state: it is redone when complete.
        let text = code_text(&self.src[self.scan..], code.indent);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let partial = code.hl.clone().line(text);
        let finished = std::mem::take(&mut code.pending);
        if code.fresh {
            code.fresh = false;
            let mut html = code_block_open(code.lang.as_deref());
            html.push_str(&finished);
            html.push_str(PARTIAL_OPEN);
            html.push_str(&partial);
            html.push_str("</span>");
            html.push_str(CODE_BLOCK_CLOSE);
            self.shown = Shown::Code { partial };
            return TailUpdate::Html(html);
        }
        match &mut self.shown {
            Shown::Code { partial: old } if finished.is_empty() && *old == partial => TailUpdate::Unchanged,
            shown => {
                *shown = Shown::Code {
                    partial: partial.clone(),
                };
                TailUpdate::CodeLines { finished, partial }
            }
        }
    }
}

pub(super) const PARTIAL_OPEN: &str = "<span class=\"code-partial\">";

/// A code line as CommonMark sees it: without "\r" and up to `indent` leading spaces.
fn code_text(line: &str, indent: usize) -> &str {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let spaces = line.bytes().take(indent).take_while(|&b| b == b' ').count();
    &line[spaces..]
}
