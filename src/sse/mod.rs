//! Server-sent events: the framing of `text/event-stream`.
//!
//! [`encode`] (server) writes frames; [`Parser`] (both sides, used by the
//! browser) reads them back incrementally from arbitrary byte chunks, as
//! `fetch` hands them over: a chunk may end in the middle of a line or of a
//! multi-byte character.

#[cfg(feature = "ssr")]
pub mod encode;
#[cfg(feature = "ssr")]
pub mod pace;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    /// `message` when the frame named none, as in the EventSource spec.
    pub event: String,
    pub data: String,
}

/// Incremental SSE parser. Work per chunk is proportional to the chunk (plus
/// at most one partial line carried over), never to the stream so far.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of an unfinished line.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a following `\n` belongs to it.
    after_cr: bool,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; calls `emit` for every event completed by it.
    pub fn feed(&mut self, chunk: &[u8], mut emit: impl FnMut(SseEvent)) {
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = rest.split_at(pos);
            let line = if self.line.is_empty() {
                head
            } else {
                self.line.extend_from_slice(head);
                &self.line[..]
            };
            let line = String::from_utf8_lossy(line).into_owned();
            self.line.clear();
            if tail[0] == b'\r' {
                match tail.get(1) {
                    Some(b'\n') => rest = &tail[2..],
                    Some(_) => rest = &tail[1..],
                    None => {
                        self.after_cr = true;
                        rest = &tail[1..];
                    }
                }
            } else {
                rest = &tail[1..];
            }
            if let Some(event) = self.take_line(&line) {
                emit(event);
            }
        }
        self.line.extend_from_slice(rest);
    }

    fn take_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None; // comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {} // "retry" and unknown fields are not used by our clients
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let data = self.data.take()?;
        Some(SseEvent {
            id: self.id.clone(),
            event: event.unwrap_or_else(|| "message".to_owned()),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |e| out.push(e));
        }
        out
    }

    #[test]
    fn parses_named_events_with_ids() {
        let events = parse_chunks(&[b"id: 1\nevent: delta\ndata: {\"text\":\"a\"}\n\n: keep-alive\n\n"]);
        assert_eq!(
            events,
            vec![SseEvent {
                id: Some("1".into()),
                event: "delta".into(),
                data: "{\"text\":\"a\"}".into()
            }]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let stream = "id: 7\r\nevent: delta\r\ndata: 안녕 😀\r\n\r\ndata: [DONE]\r\rdata: x\ndata: y\n\n";
        let whole = parse_chunks(&[stream.as_bytes()]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].data, "안녕 😀");
        assert_eq!(whole[1].event, "message");
        assert_eq!(whole[2].data, "x\ny");
        let bytes = stream.as_bytes();
        for i in 0..bytes.len() {
            for j in i..bytes.len() {
                let got = parse_chunks(&[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                assert_eq!(got, whole, "split at {i}, {j}");
            }
        }
    }
}
