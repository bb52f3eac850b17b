//! Writing SSE frames and responses (server side).
//!
//! Each frame is built in one buffer sized up front, so relaying a delta
//! costs one allocation: the frame itself.

use axum::{
    body::Body,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde::Serialize;
use std::io::Write;

/// `id: {id}\nevent: {name}\ndata: {json}\n\n`. JSON never contains a raw
/// newline, so one `data:` line always suffices.
/// An SSE comment: ignored by clients, but it keeps proxies from closing an
/// idle connection.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

pub fn event(id: u64, name: &str, data: &impl Serialize, size_hint: usize) -> Bytes {
    let mut buf = Vec::with_capacity(32 + name.len() + size_hint);
    // Writing into a Vec cannot fail, and our payload types always serialise.
    let _ = write!(buf, "id: {id}\nevent: {name}\ndata: ");
    serde_json::to_writer(&mut buf, data).expect("SSE payloads serialise to JSON");
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// An unnamed event with raw data (`data: {data}\n\n`), as the seed's client expects.
pub fn data_only(data: &impl Serialize, size_hint: usize) -> Bytes {
    let mut buf = Vec::with_capacity(10 + size_hint);
    buf.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut buf, data).expect("SSE payloads serialise to JSON");
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// A streaming `text/event-stream` response that no proxy should buffer or cache.
pub fn response(body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::Parser;

    #[test]
    fn encoded_frames_parse_back() {
        let text = "line one\nline two \"quoted\" <script>";
        let frame = event(3, "delta", &serde_json::json!({ "text": text }), text.len());
        let mut parser = Parser::new();
        let mut got = Vec::new();
        parser.feed(&frame, |e| got.push(e));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id.as_deref(), Some("3"));
        assert_eq!(got[0].event, "delta");
        let v: serde_json::Value = serde_json::from_str(&got[0].data).unwrap();
        assert_eq!(v["text"], text);
    }
}
