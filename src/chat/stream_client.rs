//! Browser side of the answer stream: `fetch` with a streaming body, parsed
//! as SSE chunk by chunk. (`EventSource` cannot POST a message.)

use super::{ErrorBody, ErrorInfo, SendRequest, StreamEnd, StreamEvent, STREAM_PATH};
use crate::sse::Parser;
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal, ReadableStreamDefaultReader};

/// Handle of a running answer stream.
///
/// `Send` (through `SendWrapper`; the browser runs the app on one thread) so
/// that the page can keep it in the same kind of `StoredValue` on both builds.
pub struct ActiveStream {
    controller: send_wrapper::SendWrapper<AbortController>,
}

impl ActiveStream {
    /// Aborts the request: the server sees the connection close and drops
    /// its Bedrock stream.
    pub fn stop(&self) {
        self.controller.abort();
    }
}

/// Starts streaming the answer to `request`. `on_event` sees every event in
/// order; `on_end` is called once, last.
pub fn start(
    request: SendRequest,
    mut on_event: impl FnMut(StreamEvent) + 'static,
    on_end: impl FnOnce(StreamEnd) + 'static,
) -> ActiveStream {
    let controller = AbortController::new().expect("AbortController is supported");
    let signal = controller.signal();
    leptos::task::spawn_local(async move {
        let end = match read_stream(&request, &signal, &mut on_event).await {
            Ok(end) => end,
            Err(_) if signal.aborted() => StreamEnd::Stopped,
            Err(info) => StreamEnd::Failed(info),
        };
        on_end(end);
    });
    ActiveStream {
        controller: send_wrapper::SendWrapper::new(controller),
    }
}

async fn read_stream(
    request: &SendRequest,
    signal: &AbortSignal,
    on_event: &mut impl FnMut(StreamEvent),
) -> Result<StreamEnd, ErrorInfo> {
    let response = gloo_net::http::Request::post(STREAM_PATH)
        .header("accept", "text/event-stream")
        .abort_signal(Some(signal))
        .json(request)
        .map_err(|e| client_error("request_failed", format!("The message could not be sent: {e}")))?
        .send()
        .await
        .map_err(|_| connection_lost())?;
    if !response.ok() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(serde_json::from_str::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| ErrorInfo {
                code: format!("http_{status}"),
                message: format!("The server answered with status {status}. Try again."),
                retryable: status >= 500,
            }));
    }
    let reader: ReadableStreamDefaultReader = response
        .body()
        .ok_or_else(connection_lost)?
        .get_reader()
        .unchecked_into();
    let mut parser = Parser::new();
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|_| connection_lost())?;
        if Reflect::get(&chunk, &JsValue::from_str("done"))
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(true)
        {
            // The server closed the stream without `done` or `error`.
            return Err(connection_lost());
        }
        let bytes: Uint8Array = Reflect::get(&chunk, &JsValue::from_str("value"))
            .map_err(|_| connection_lost())?
            .unchecked_into();
        let mut finished = false;
        parser.feed(&bytes.to_vec(), |frame| {
            if let Some(Ok(event)) = StreamEvent::decode(&frame.event, &frame.data) {
                finished |= event.is_terminal();
                on_event(event);
            }
        });
        if finished {
            let _ = reader.cancel();
            return Ok(StreamEnd::Finished);
        }
    }
}

fn connection_lost() -> ErrorInfo {
    client_error(
        "connection_lost",
        "The connection to the server was lost before the answer finished. Check your network and try again.",
    )
}

fn client_error(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo {
        code: code.to_owned(),
        message: message.into(),
        retryable: true,
    }
}
