//! Browser side of the answer stream: `fetch` with a streaming body, parsed
//! as SSE chunk by chunk. (`EventSource` cannot POST a message.)
//!
//! The answer belongs to the server, so a broken connection is not the end
//! of it: the client remembers the last event id it saw and reconnects with
//! backoff to `GET /api/generations/{answer_id}/events?last_event_id=N`,
//! which replays exactly the events after that one and then follows the
//! answer live. Stop asks the server to stop the answer (every tab then sees
//! it end); leaving the conversation only detaches this page.

use super::{ErrorInfo, SendRequest, StreamEnd, StreamEvent, GENERATIONS_PATH, STREAM_PATH};
use crate::{conversations::EditRequest, errors::ErrorCode, sse::Parser};
use js_sys::{Promise, Reflect, Uint8Array};
use send_wrapper::SendWrapper;
use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, ReadableStreamDefaultReader};

/// Reconnection gives up after this many attempts (about two minutes with
/// the backoff below); the server keeps an answer only so long anyway.
const MAX_RECONNECTS: u32 = 40;

/// Handle of a running answer stream.
///
/// `Send` (through `SendWrapper`; the browser runs the app on one thread) so
/// that the page can keep it in the same kind of `StoredValue` on both builds.
pub struct ActiveStream {
    control: SendWrapper<Rc<Control>>,
}

type ReconnectListener = Box<dyn Fn(bool)>;

#[derive(Default)]
struct Control {
    /// Aborts the request in flight.
    controller: RefCell<Option<AbortController>>,
    /// Known once the `start` event arrived.
    answer_id: RefCell<Option<String>>,
    /// Stop was pressed before the answer had an id.
    stop_requested: Cell<bool>,
    /// This page no longer follows the answer.
    detached: Cell<bool>,
    /// Told `true` when the connection broke and the page is reconnecting,
    /// `false` once events flow again.
    on_reconnecting: RefCell<Option<ReconnectListener>>,
}

impl Control {
    fn reconnecting(&self, now: bool) {
        if let Some(tell) = self.on_reconnecting.borrow().as_ref() {
            tell(now);
        }
    }

    fn abort(&self) {
        if let Some(controller) = self.controller.borrow().as_ref() {
            controller.abort();
        }
    }
}

impl ActiveStream {
    /// Asks the server to stop the answer; the stream then ends with `done`
    /// (`stop_reason: "stopped"`) here and in every other tab. If the server
    /// cannot be asked, the page stops listening instead.
    pub fn stop(&self) {
        let control = Rc::clone(&self.control);
        let answer_id = control.answer_id.borrow().clone();
        match answer_id {
            Some(id) => leptos::task::spawn_local(async move {
                if cancel(&id).await.is_err() {
                    control.detached.set(true);
                    control.abort();
                }
            }),
            None => control.stop_requested.set(true),
        }
    }

    /// Calls `tell(true)` when the connection breaks and the page starts
    /// reconnecting, and `tell(false)` when the answer flows again.
    pub fn on_reconnecting(&self, tell: impl Fn(bool) + 'static) {
        *self.control.on_reconnecting.borrow_mut() = Some(Box::new(tell));
    }

    /// Stops following the answer on this page; the server goes on writing
    /// and storing it.
    pub fn detach(&self) {
        self.control.detached.set(true);
        self.control.abort();
    }
}

/// How a stream begins: a new message, a new answer to the last one, an
/// earlier message rewritten, or an answer already being written (in another
/// tab, or before a reload), followed from its first event.
pub enum Opening {
    Send(SendRequest),
    Regenerate {
        conversation_id: String,
        model_id: Option<String>,
    },
    Edit {
        conversation_id: String,
        request: EditRequest,
    },
    Follow {
        answer_id: String,
    },
}

impl Opening {
    /// The URL and JSON body of the request that opens the stream; `Err`
    /// with the answer's id when there is only an answer to follow.
    fn into_request(self) -> Result<(String, String), String> {
        fn json(value: &impl serde::Serialize) -> String {
            serde_json::to_string(value).expect("a request serialises")
        }
        Ok(match self {
            Opening::Send(request) => (STREAM_PATH.to_owned(), json(&request)),
            Opening::Regenerate {
                conversation_id,
                model_id,
            } => (
                format!("{}/{conversation_id}/regenerate", crate::conversations::API_PATH),
                serde_json::json!({ "model_id": model_id, "time_zone": browser_time_zone() }).to_string(),
            ),
            Opening::Edit {
                conversation_id,
                request,
            } => (
                format!("{}/{conversation_id}/edit", crate::conversations::API_PATH),
                json(&request),
            ),
            Opening::Follow { answer_id } => return Err(answer_id),
        })
    }
}

/// The browser's IANA time zone (`Intl.DateTimeFormat().resolvedOptions()`),
/// sent with each message for the time tool.
pub fn browser_time_zone() -> Option<String> {
    let format = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new());
    js_sys::Reflect::get(&format.resolved_options(), &"timeZone".into())
        .ok()
        .and_then(|zone| zone.as_string())
        .filter(|zone| !zone.is_empty())
}

/// Opens an answer stream. `on_event` sees every event in order, exactly
/// once, across reconnections; `on_end` is called once, last.
pub fn open(
    opening: Opening,
    mut on_event: impl FnMut(StreamEvent) + 'static,
    on_end: impl FnOnce(StreamEnd) + 'static,
) -> ActiveStream {
    let control = Rc::new(Control::default());
    let request = match opening.into_request() {
        Ok(request) => Some(request),
        Err(answer_id) => {
            *control.answer_id.borrow_mut() = Some(answer_id);
            None
        }
    };
    let task_control = Rc::clone(&control);
    leptos::task::spawn_local(async move {
        let end = run(request, &task_control, &mut on_event).await;
        on_end(end);
    });
    ActiveStream {
        control: SendWrapper::new(control),
    }
}

/// Why one connection ended without a terminal event.
enum Broken {
    /// The connection broke: reconnect.
    Lost,
    /// The server refused: give up with its reason.
    Refused(ErrorInfo),
}

async fn run(
    mut request: Option<(String, String)>,
    control: &Control,
    on_event: &mut impl FnMut(StreamEvent),
) -> StreamEnd {
    let mut last_id: u64 = 0;
    let mut reconnects = 0;
    loop {
        let controller = AbortController::new().expect("AbortController is supported");
        *control.controller.borrow_mut() = Some(controller.clone());
        let answer_id = control.answer_id.borrow().clone();
        let result = match (request.take(), answer_id) {
            (Some((url, body)), _) => {
                let sent = gloo_net::http::Request::post(&url)
                    .header("accept", "text/event-stream")
                    .header("content-type", "application/json")
                    .abort_signal(Some(&controller.signal()))
                    .body(body);
                match sent {
                    Ok(sent) => read(sent, control, &mut last_id, on_event).await,
                    Err(e) => Err(Broken::Refused(ErrorInfo::new(
                        ErrorCode::RequestFailed,
                        format!("The message could not be sent: {e}"),
                        true,
                    ))),
                }
            }
            (None, Some(id)) => {
                let url = format!("{GENERATIONS_PATH}/{id}/events?last_event_id={last_id}");
                let resumed = gloo_net::http::Request::get(&url)
                    .header("accept", "text/event-stream")
                    .abort_signal(Some(&controller.signal()))
                    .build();
                match resumed {
                    Ok(resumed) => read(resumed, control, &mut last_id, on_event).await,
                    Err(_) => Err(Broken::Lost),
                }
            }
            (None, None) => return StreamEnd::Failed(connection_lost()),
        };
        match result {
            Ok(()) => {
                control.reconnecting(false);
                return StreamEnd::Finished;
            }
            Err(_) if control.detached.get() => return StreamEnd::Stopped,
            Err(Broken::Refused(info)) => return StreamEnd::Failed(info),
            Err(Broken::Lost) => {
                // Without the answer's id (the message may not even have
                // been stored) there is nothing to resume.
                if control.answer_id.borrow().is_none() || reconnects >= MAX_RECONNECTS {
                    return StreamEnd::Failed(connection_lost());
                }
                reconnects += 1;
                control.reconnecting(true);
                sleep_ms(backoff_ms(reconnects)).await;
                if control.detached.get() {
                    return StreamEnd::Stopped;
                }
            }
        }
    }
}

/// 250 ms, 500 ms, 1 s, 2 s, then every 3 s.
fn backoff_ms(attempt: u32) -> i32 {
    (250 * 2_i32.pow(attempt.saturating_sub(1).min(3))).min(3000)
}

/// Reads one response to its terminal event. Every event with an id after
/// `last_id` is passed on (a replay never repeats one) and advances it.
async fn read(
    request: gloo_net::http::Request,
    control: &Control,
    last_id: &mut u64,
    on_event: &mut impl FnMut(StreamEvent),
) -> Result<(), Broken> {
    let response = request.send().await.map_err(|_| Broken::Lost)?;
    if !response.ok() {
        let status = response.status();
        if status >= 500 && status != 503 {
            return Err(Broken::Lost);
        }
        return Err(Broken::Refused(
            crate::conversations::client::error_of(response).await,
        ));
    }
    let reader: ReadableStreamDefaultReader =
        response.body().ok_or(Broken::Lost)?.get_reader().unchecked_into();
    let mut parser = Parser::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|_| Broken::Lost)?;
        if Reflect::get(&chunk, &JsValue::from_str("done"))
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(true)
        {
            // The connection closed before `done` or `error`.
            return Err(Broken::Lost);
        }
        let bytes: Uint8Array = Reflect::get(&chunk, &JsValue::from_str("value"))
            .map_err(|_| Broken::Lost)?
            .unchecked_into();
        let mut finished = false;
        let mut started = None;
        parser.feed(&bytes.to_vec(), |frame| {
            let id = frame.id.as_deref().and_then(|id| id.parse::<u64>().ok());
            if let Some(id) = id {
                if id <= *last_id {
                    return;
                }
                *last_id = id;
            }
            if let Some(Ok(event)) = StreamEvent::decode(&frame.event, &frame.data) {
                finished |= event.is_terminal();
                if let StreamEvent::Start(s) = &event {
                    started = Some(s.answer_id.clone());
                }
                on_event(event);
            }
        });
        if let Some(answer_id) = started {
            *control.answer_id.borrow_mut() = Some(answer_id.clone());
            if control.stop_requested.get() {
                leptos::task::spawn_local(async move {
                    let _ = cancel(&answer_id).await;
                });
            }
        }
        if finished {
            let _ = reader.cancel();
            return Ok(());
        }
    }
}

/// `POST /api/generations/{id}/cancel`.
async fn cancel(answer_id: &str) -> Result<(), ()> {
    let response = gloo_net::http::Request::post(&format!("{GENERATIONS_PATH}/{answer_id}/cancel"))
        .send()
        .await
        .map_err(|_| ())?;
    if response.ok() {
        Ok(())
    } else {
        Err(())
    }
}

async fn sleep_ms(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        let _ = web_sys::window()
            .expect("a window")
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

fn connection_lost() -> ErrorInfo {
    ErrorInfo::new(
        ErrorCode::ConnectionLost,
        "The connection to the server was lost before the answer finished. Check your network and try again.",
        true,
    )
}
