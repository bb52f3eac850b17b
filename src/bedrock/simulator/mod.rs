//! An in-process Amazon Bedrock Runtime simulator.
//!
//! It speaks the real `Converse` and `ConverseStream` HTTP API (JSON in,
//! JSON or AWS event-stream frames out), so the real `aws-sdk-bedrockruntime`
//! client can be pointed at it with `endpoint_url` and exercised end to end
//! without AWS: in tests, in browser tests, and as `bedrock-chat simulator`.
//!
//! Answers are deterministic (see [`expected_answer`]) and the last user
//! message can steer the stream with `[sim key=value ...]` directives:
//! `tokens=N`, `delay_ms=D`, `first_token_ms=F`, `fail=KIND after=K`,
//! `drop after=K`, and `echo`, `markdown=N`, `report`, `chunk=N` to choose
//! what is said (see `script.rs`).
//!
//! The server records the last [`RECORDED_REQUESTS`] requests
//! ([`SimulatorHandle::received`]; bounded, so a long demo does not grow) and
//! counts streams whose client went away before the end
//! ([`SimulatorHandle::streams_dropped`]): the response body carries a drop
//! guard, and hyper drops the body when the connection dies.

mod cache;
mod directives;
mod script;
mod tools;
mod wire;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use futures::Stream;
use tokio::sync::watch;

use self::script::{Fault, Plan};

/// One request as the simulator understood it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// Model id, percent-decoded from the path.
    pub model_id: String,
    /// `converse-stream` (true) or `converse` (false).
    pub streaming: bool,
    /// System text blocks.
    pub system: Vec<String>,
    /// Messages: role plus the concatenation of their text blocks.
    pub messages: Vec<SimMessage>,
    pub max_tokens: Option<i32>,
    pub temperature: Option<f32>,
    /// The names in `toolConfig`; `None` when the request had none.
    pub tools: Option<Vec<String>>,
    /// `budget_tokens` when thinking was asked for.
    pub thinking_budget: Option<i64>,
    /// Its cache points, in order.
    pub cache_points: Vec<cache::CachePoint>,
}

/// A conversation message: its role, the concatenation of its text blocks,
/// and all its blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct SimMessage {
    pub role: String,
    pub text: String,
    pub blocks: Vec<SimBlock>,
}

impl SimMessage {
    /// A message of plain text.
    pub fn text(role: &str, text: &str) -> Self {
        Self {
            role: role.to_owned(),
            text: text.to_owned(),
            blocks: vec![SimBlock::Text(text.to_owned())],
        }
    }

    /// Whether this is a message the user wrote (not only tool results).
    pub fn is_user_text(&self) -> bool {
        self.role == "user" && !self.text.is_empty()
    }
}

/// One content block of a request's message.
#[derive(Debug, Clone, PartialEq)]
pub enum SimBlock {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    ToolResult {
        id: String,
        error: bool,
        text: String,
    },
    Reasoning {
        text: String,
        signature: Option<String>,
    },
    RedactedReasoning,
}

/// The full deterministic answer the simulator streams for this conversation
/// (when it ends normally), so tests can compare what an app assembled
/// against it.
pub fn expected_answer(messages: &[SimMessage]) -> String {
    script::expected_answer(messages)
}

/// How many requests the simulator remembers for [`SimulatorHandle::received`].
pub const RECORDED_REQUESTS: usize = 32;

/// State shared by the server and every clone of its handle.
struct Shared {
    received: Mutex<std::collections::VecDeque<ReceivedRequest>>,
    streams_started: AtomicUsize,
    /// Count of dropped streams; a watch so waiters can be woken.
    streams_dropped: watch::Sender<usize>,
    shutdown: watch::Sender<bool>,
    request_ids: AtomicU64,
    /// How often each `times=N` fault has been served, by message text.
    faults_served: Mutex<std::collections::HashMap<String, u64>>,
    prompt_cache: cache::PromptCache,
}

/// A running simulator. Clones share the same server.
#[derive(Clone)]
pub struct SimulatorHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl SimulatorHandle {
    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL to give the SDK as `endpoint_url`, e.g. `http://127.0.0.1:4321`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The last [`RECORDED_REQUESTS`] requests received, in arrival order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.received).iter().cloned().collect()
    }

    /// Number of event streams that started (200 responses to converse-stream).
    pub fn streams_started(&self) -> usize {
        self.shared.streams_started.load(Ordering::SeqCst)
    }

    /// Number of streams whose HTTP client went away before the stream ended.
    pub fn streams_dropped(&self) -> usize {
        *self.shared.streams_dropped.borrow()
    }

    /// Waits until at least `at_least` streams were dropped; false on timeout.
    pub async fn wait_streams_dropped(&self, at_least: usize, timeout: Duration) -> bool {
        let mut rx = self.shared.streams_dropped.subscribe();
        let wait = async move { rx.wait_for(|n| *n >= at_least).await.is_ok() };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Stops accepting connections and ends the server task (in-flight
    /// responses are allowed to finish).
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Binds `addr` (port 0 picks a free port) and serves on a spawned task.
pub async fn spawn(addr: SocketAddr) -> std::io::Result<SimulatorHandle> {
    // A long accept queue, as the server has: load benchmarks open
    // thousands of model streams at once, and the default 128 would make
    // the SDK's connects retry (and time out) here rather than measure us.
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    let local = listener.local_addr()?;
    let shared = Arc::new(Shared {
        received: Mutex::default(),
        faults_served: Mutex::default(),
        prompt_cache: Default::default(),
        streams_started: AtomicUsize::new(0),
        streams_dropped: watch::Sender::new(0),
        shutdown: watch::Sender::new(false),
        request_ids: AtomicU64::new(1),
    });
    let app = router(shared.clone());
    let mut stop = shared.shutdown.subscribe();
    tokio::spawn(async move {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        // Each frame must leave at once, as Bedrock's do: no Nagle delay.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(signal).await {
            tracing::error!("bedrock simulator stopped: {e}");
        }
    });
    tracing::debug!("bedrock simulator listening on {local}");
    Ok(SimulatorHandle { addr: local, shared })
}

/// Runs the simulator in the foreground (for `bedrock-chat simulator --addr
/// ...`), printing the endpoint URL. Returns only if the server fails.
pub async fn run_standalone(addr: SocketAddr) -> std::io::Result<()> {
    let handle = spawn(addr).await?;
    println!("Bedrock simulator listening on {}", handle.endpoint_url());
    let mut stop = handle.shared.shutdown.subscribe();
    let _ = stop.wait_for(|s| *s).await;
    Ok(())
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/model/{model_id}/converse-stream", post(converse_stream))
        .route("/model/{model_id}/converse", post(converse))
        .fallback(|| async {
            wire::error_response(
                404,
                "UnknownOperationException",
                "The simulator has no such operation.",
            )
        })
        .with_state(shared)
}

/// Records the request and builds its plan, or the error response.
fn accept(shared: &Shared, model_id: &str, streaming: bool, body: &[u8]) -> Result<Plan, Box<Response>> {
    let (req, parsed) = wire::parse_request(model_id, streaming, body);
    let mut planned = parsed.and_then(|()| script::plan(&req));
    if let Ok(plan) = &mut planned {
        // Cached input is billed apart from the rest.
        plan.cache = shared.prompt_cache.serve(&req.cache_points);
        plan.input_tokens = (plan.input_tokens - plan.cache.read - plan.cache.written).max(0);
    }
    if let (Ok(plan), Some(last)) = (&mut planned, req.messages.last()) {
        if let Some(times) = plan.fault_times {
            let mut served = lock(&shared.faults_served);
            let count = served.entry(last.text.clone()).or_default();
            if *count >= times {
                plan.fault = None;
            } else {
                *count += 1;
            }
        }
    }
    tracing::debug!(
        model_id,
        streaming,
        messages = req.messages.len(),
        "simulator request"
    );
    {
        let mut received = lock(&shared.received);
        if received.len() == RECORDED_REQUESTS {
            received.pop_front();
        }
        received.push_back(req);
    }
    let plan = planned.map_err(|msg| Box::new(wire::error_response(400, "ValidationException", &msg)))?;
    if let Some(kind) = plan.pre_stream_failure() {
        return Err(Box::new(wire::error_response(
            kind.status(),
            kind.shape_name(),
            kind.message(),
        )));
    }
    Ok(plan)
}

fn with_request_id(shared: &Shared, mut resp: Response) -> Response {
    let id = shared.request_ids.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = HeaderValue::from_str(&format!("sim-{id:08x}")) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

async fn converse_stream(
    State(shared): State<Arc<Shared>>,
    Path(model_id): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let plan = match accept(&shared, &model_id, true, &body) {
        Ok(plan) => plan,
        Err(resp) => return with_request_id(&shared, *resp),
    };
    shared.streams_started.fetch_add(1, Ordering::SeqCst);
    let events = GuardedStream {
        inner: Box::pin(event_stream(plan, started)),
        finished: false,
        shared: shared.clone(),
    };
    let mut resp = Body::from_stream(events).into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    with_request_id(&shared, resp)
}

async fn converse(State(shared): State<Arc<Shared>>, Path(model_id): Path<String>, body: Bytes) -> Response {
    let started = Instant::now();
    let plan = match accept(&shared, &model_id, false, &body) {
        Ok(plan) => plan,
        Err(resp) => return with_request_id(&shared, *resp),
    };
    // Every `fail=` is answered before the body on the non-streaming API.
    if let Some(Fault::Fail { kind, .. }) = plan.fault {
        return with_request_id(
            &shared,
            wire::error_response(kind.status(), kind.shape_name(), kind.message()),
        );
    }
    let n = plan.pieces.len() as u64;
    let wait = plan
        .first_token_ms
        .saturating_add(plan.delay_ms.saturating_mul(n.saturating_sub(1)));
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    if let Some(Fault::Drop { .. }) = plan.fault {
        let broken =
            futures::stream::once(async { Err::<Bytes, _>(std::io::Error::other("simulated drop")) });
        return Body::from_stream(broken).into_response();
    }
    let text = plan.pieces.concat();
    let body = wire::converse_body(
        &text,
        plan.stop_reason,
        plan.input_tokens,
        plan.output_tokens(),
        plan.cache,
        started.elapsed().as_millis() as i64,
    );
    with_request_id(&shared, wire::json_body(&body))
}

enum Phase {
    Start,
    /// Reasoning (and a redacted block) before the text.
    Reasoning(std::vec::IntoIter<Bytes>),
    Tokens,
    BlockStop,
    /// Tool calls after the text.
    Tools(std::vec::IntoIter<Bytes>),
    MessageStop,
    Metadata,
    Done,
}

struct Play {
    plan: Plan,
    next: usize,
    phase: Phase,
    started: Instant,
    /// `contentBlockIndex` of the text block.
    text_index: usize,
}

/// Input fragments of a tool call are this many characters, as Bedrock
/// sends arguments in pieces.
const TOOL_INPUT_PIECE: usize = 8;

/// The frames of the reasoning blocks (index 0, and 1 when redacted).
fn reasoning_frames(plan: &Plan) -> Vec<Bytes> {
    let Some(reasoning) = &plan.reasoning else {
        return Vec::new();
    };
    let mut frames: Vec<Bytes> = reasoning
        .pieces
        .iter()
        .map(|piece| wire::reasoning_delta(0, serde_json::json!({ "text": piece })))
        .collect();
    frames.push(wire::reasoning_delta(
        0,
        serde_json::json!({ "signature": reasoning.signature }),
    ));
    frames.push(wire::content_block_stop(0));
    if reasoning.redacted {
        // Base64 of opaque bytes, as Bedrock sends encrypted reasoning.
        frames.push(wire::reasoning_delta(
            1,
            serde_json::json!({ "redactedContent": "c2ltdWxhdGVkLXJlZGFjdGVkLXJlYXNvbmluZw==" }),
        ));
        frames.push(wire::content_block_stop(1));
    }
    frames
}

/// The frames of the tool calls, after the text block.
fn tool_frames(plan: &Plan, text_index: usize) -> Vec<Bytes> {
    let mut frames = Vec::new();
    for (i, call) in plan.tool_calls.iter().enumerate() {
        let index = text_index + 1 + i;
        frames.push(wire::tool_use_start(index, &call.id, &call.name));
        let chars: Vec<char> = call.input.chars().collect();
        for piece in chars.chunks(TOOL_INPUT_PIECE) {
            frames.push(wire::tool_use_delta(index, &piece.iter().collect::<String>()));
        }
        frames.push(wire::content_block_stop(index));
    }
    frames
}

/// `frame`, after `delay_ms`.
async fn paced(frame: Bytes, delay_ms: u64) -> Bytes {
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    frame
}

/// The frames of one streamed answer, paced by the plan's delays. Ends with
/// an exception frame for `fail=`, or an I/O error (connection abort) for
/// `drop`.
fn event_stream(plan: Plan, started: Instant) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let text_index = match &plan.reasoning {
        None => 0,
        Some(r) if r.redacted => 2,
        Some(_) => 1,
    };
    let play = Play {
        plan,
        next: 0,
        phase: Phase::Start,
        started,
        text_index,
    };
    futures::stream::unfold(play, |mut p| async move {
        loop {
            match &mut p.phase {
                Phase::Start => {
                    p.phase = Phase::Reasoning(reasoning_frames(&p.plan).into_iter());
                    return Some((Ok(wire::message_start()), p));
                }
                // Thinking is paced like text.
                Phase::Reasoning(frames) => match frames.next() {
                    Some(frame) => return Some((Ok(paced(frame, p.plan.delay_ms).await), p)),
                    None => p.phase = Phase::Tokens,
                },
                Phase::Tokens => {
                    let total = p.plan.pieces.len();
                    match p.plan.fault {
                        Some(Fault::Fail { kind, after }) if p.next == after.min(total) => {
                            p.phase = Phase::Done;
                            let ty = kind.stream_exception_type().unwrap_or("internalServerException");
                            return Some((Ok(wire::exception_frame(ty, kind.message())), p));
                        }
                        Some(Fault::Drop { after }) if p.next == after.min(total) => {
                            p.phase = Phase::Done;
                            // Let hyper flush the frames already produced (it
                            // buffers until the body is pending), so the
                            // client sees them before the connection dies.
                            tokio::time::sleep(Duration::from_millis(25)).await;
                            let err =
                                std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "simulated drop");
                            return Some((Err(err), p));
                        }
                        _ => {}
                    }
                    if p.next >= total {
                        p.phase = Phase::BlockStop;
                        continue;
                    }
                    let wait = if p.next == 0 {
                        p.plan.first_token_ms
                    } else {
                        p.plan.delay_ms
                    };
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    let frame = wire::content_block_delta(p.text_index, &p.plan.pieces[p.next]);
                    p.next += 1;
                    return Some((Ok(frame), p));
                }
                Phase::BlockStop => {
                    p.phase = Phase::Tools(tool_frames(&p.plan, p.text_index).into_iter());
                    return Some((Ok(wire::content_block_stop(p.text_index)), p));
                }
                // Arguments are paced like text, so a test can act while
                // a call is being written.
                Phase::Tools(frames) => match frames.next() {
                    Some(frame) => return Some((Ok(paced(frame, p.plan.delay_ms).await), p)),
                    None => p.phase = Phase::MessageStop,
                },
                Phase::MessageStop => {
                    p.phase = Phase::Metadata;
                    return Some((Ok(wire::message_stop(p.plan.stop_reason)), p));
                }
                Phase::Metadata => {
                    p.phase = Phase::Done;
                    let latency = p.started.elapsed().as_millis() as i64;
                    let frame =
                        wire::metadata(p.plan.input_tokens, p.plan.output_tokens(), p.plan.cache, latency);
                    return Some((Ok(frame), p));
                }
                Phase::Done => return None,
            }
        }
    })
}

type BoxedEvents = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Response body wrapper that counts a dropped stream when hyper discards
/// the body before it ended (the client went away).
struct GuardedStream {
    inner: BoxedEvents,
    finished: bool,
    shared: Arc<Shared>,
}

impl Stream for GuardedStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finished = true,
            _ => {}
        }
        polled
    }
}

impl Drop for GuardedStream {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.streams_dropped.send_modify(|n| *n += 1);
            tracing::debug!("simulator: client went away mid-stream");
        }
    }
}
