//! Prefix-stable block splitting.
//!
//! The answer is cut into top-level blocks that are rendered independently. The splitter looks
//! only at complete lines, one at a time, and never revises a decision: a boundary found on a
//! prefix of the text is a boundary of every extension of it. `render` and `StreamRenderer` both
//! drive this same splitter, which is what makes a streamed answer identical to one rendered at
//! once.
//!
//! The rules are deliberately conservative. Splitting in the wrong place would change the
//! rendering, while not splitting only costs re-rendering time, so whenever a line might
//! continue the current block (indented content, list items, lines inside a fence) it does.

use std::ops::Range;

/// An open top-level fenced code block.
#[derive(Clone, Copy, Debug)]
struct Fence {
    ch: u8,
    len: usize,
}

/// A line that opens a top-level fenced code block, which is then the block's first content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FenceOpen {
    /// Spaces before the fence; CommonMark strips up to this many from every code line.
    pub indent: usize,
    /// Byte offset in the line where the info string starts.
    pub info_start: usize,
}

/// What one complete line means for the block structure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct LineInfo {
    /// A new block starts at this line; everything before it is final.
    pub starts_block: bool,
    /// This line opens a top-level fence.
    pub opens_code: Option<FenceOpen>,
    /// This line closes the top-level fence; the block ends right after it.
    pub ends_block: bool,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Splitter {
    fence: Option<Fence>,
    /// The current block has a non-blank line (leading blank lines do not make a block).
    has_content: bool,
    prev_blank: bool,
    /// The current block contains a list, so indented fences belong to list items.
    in_list: bool,
}

impl Splitter {
    /// Classify the next complete line (without its "\n"; a trailing "\r" is ignored).
    pub(super) fn feed(&mut self, line: &str) -> LineInfo {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut info = LineInfo::default();

        if let Some(fence) = self.fence {
            if closes_fence(line, fence) {
                self.fence = None;
                self.reset();
                info.ends_block = true;
            }
            return info;
        }
        if is_blank(line) {
            self.prev_blank = true;
            return info;
        }

        // An unindented fence is always top level: fences are never lazy continuation lines,
        // so it closes any list or quote. An indented one is top level only outside lists.
        let opener = fence_open(line).filter(|(open, _)| open.indent == 0 || !self.in_list);
        let starts =
            opener.is_some() || (self.prev_blank && !line.starts_with([' ', '\t']) && !is_list_marker(line));
        if starts && self.has_content {
            info.starts_block = true;
            self.reset();
        }
        self.has_content = true;
        self.prev_blank = false;

        if let Some((open, fence)) = opener {
            self.fence = Some(fence);
            info.opens_code = Some(open);
            return info;
        }
        let trimmed = line.trim_start_matches(' ');
        if line.len() - trimmed.len() <= 3 && is_list_marker(trimmed) {
            self.in_list = true;
        }
        info
    }

    fn reset(&mut self) {
        self.has_content = false;
        self.prev_blank = false;
        self.in_list = false;
    }
}

/// The byte ranges of the blocks of a complete text, in order, covering all of it.
pub(super) fn split(source: &str) -> Vec<Range<usize>> {
    let mut blocks = Vec::new();
    let mut splitter = Splitter::default();
    let mut block_start = 0;
    let mut pos = 0;
    while pos < source.len() {
        let (text_end, end) = match source[pos..].find('\n') {
            Some(i) => (pos + i, pos + i + 1),
            // The last line counts even without its newline: the text is complete.
            None => (source.len(), source.len()),
        };
        let info = splitter.feed(&source[pos..text_end]);
        if info.starts_block {
            blocks.push(block_start..pos);
            block_start = pos;
        }
        if info.ends_block {
            blocks.push(block_start..end);
            block_start = end;
        }
        pos = end;
    }
    if block_start < source.len() {
        blocks.push(block_start..source.len());
    }
    blocks
}

fn is_blank(line: &str) -> bool {
    line.bytes().all(|b| b == b' ' || b == b'\t' || b == b'\r')
}

fn leading_spaces(line: &str) -> usize {
    line.bytes().take_while(|&b| b == b' ').count()
}

/// `-`, `*`, `+` or 1-9 digits and `.`/`)`, followed by whitespace or the end of the line.
fn is_list_marker(line: &str) -> bool {
    let b = line.as_bytes();
    let after = match b.first() {
        Some(b'-' | b'*' | b'+') => 1,
        Some(c) if c.is_ascii_digit() => {
            let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 9 || !matches!(b.get(digits), Some(b'.' | b')')) {
                return false;
            }
            digits + 1
        }
        _ => return false,
    };
    matches!(b.get(after), None | Some(b' ' | b'\t'))
}

fn fence_open(line: &str) -> Option<(FenceOpen, Fence)> {
    let indent = leading_spaces(line);
    if indent > 3 {
        return None;
    }
    let rest = &line.as_bytes()[indent..];
    let ch = *rest.first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let len = rest.iter().take_while(|&&c| c == ch).count();
    if len < 3 {
        return None;
    }
    // A backtick fence's info string may not contain backticks (that is inline code).
    if ch == b'`' && rest[len..].contains(&b'`') {
        return None;
    }
    Some((
        FenceOpen {
            indent,
            info_start: indent + len,
        },
        Fence { ch, len },
    ))
}

fn closes_fence(line: &str, fence: Fence) -> bool {
    let indent = leading_spaces(line);
    if indent > 3 {
        return false;
    }
    let rest = &line.as_bytes()[indent..];
    let len = rest.iter().take_while(|&&c| c == fence.ch).count();
    len >= fence.len && rest[len..].iter().all(|&c| c == b' ' || c == b'\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(s: &str) -> Vec<&str> {
        split(s).into_iter().map(|r| &s[r]).collect()
    }

    #[test]
    fn splits_paragraphs_and_fences() {
        let s = "a\nb\n\nc\n```rust\nx\n\ny\n```\nd\n\n- i\n\n- j\n\n  k\n\ne";
        assert_eq!(
            pieces(s),
            [
                "a\nb\n\n",
                "c\n",
                "```rust\nx\n\ny\n```\n",
                "d\n\n- i\n\n- j\n\n  k\n\n",
                "e"
            ]
        );
    }

    #[test]
    fn indented_fence_in_list_stays_in_list() {
        let s = "1. step\n\n   ```bash\n   ls\n\n   ```\n\n2. next\n\nend\n";
        assert_eq!(
            pieces(s),
            ["1. step\n\n   ```bash\n   ls\n\n   ```\n\n2. next\n\n", "end\n"]
        );
    }

    #[test]
    fn fence_rules() {
        assert!(fence_open("```rust").is_some());
        assert!(fence_open("   ~~~").is_some());
        assert!(fence_open("    ```").is_none());
        assert!(fence_open("``").is_none());
        assert!(fence_open("``` a`b").is_none());
        let f = Fence { ch: b'`', len: 4 };
        assert!(closes_fence("````  ", f));
        assert!(!closes_fence("```", f));
        assert!(!closes_fence("```` x", f));
        assert!(is_list_marker("12) x") && is_list_marker("-") && !is_list_marker("-x"));
    }

    #[test]
    fn crlf_and_empty() {
        assert!(split("").is_empty());
        assert_eq!(pieces("a\r\n\r\nb\r\n"), ["a\r\n\r\n", "b\r\n"]);
        assert_eq!(pieces("```\r\nx\r\n```\r\ny"), ["```\r\nx\r\n```\r\n", "y"]);
    }
}
