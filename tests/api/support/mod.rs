//! Starts the real application on a loopback port with a simulator of its
//! own behind it and a database of its own (SQLite in a temp dir, or a fresh
//! PostgreSQL database), and talks to it over real HTTP.

#![allow(dead_code)] // each test binary uses a different part of this

use bedrock_chat::{
    bedrock::{simulator, BedrockChat},
    server::Application,
    settings::Settings,
    sse,
};
use futures::StreamExt;

mod instances;
#[allow(unused_imports)] // the benches share this module; not all use it
pub use instances::*;
use std::{collections::HashMap, net::SocketAddr, time::Duration};

/// Every test is bounded: no single request or stream may hang a run.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Where a test app keeps its conversations.
pub enum Db {
    /// A file in this temp dir (deleted with it).
    Sqlite(tempfile::TempDir),
    /// A database of its own on the server named by `TEST_POSTGRES_URL`.
    Postgres {
        url: String,
        admin_url: String,
        name: String,
        /// The data dir of every instance on this database (the cookie
        /// secret, the instance id).
        data_dir: tempfile::TempDir,
    },
}

impl Db {
    pub fn sqlite() -> Self {
        Db::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh database on the test PostgreSQL server, or `None` (the test
    /// is skipped) when `TEST_POSTGRES_URL` is unset outside CI. `./dev test`
    /// starts a server and sets it; in CI a missing server is a failure.
    pub async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "TEST_POSTGRES_URL is not set: run the tests with ./dev test"
            );
            eprintln!("skipped: TEST_POSTGRES_URL is not set (./dev test sets it)");
            return None;
        };
        let name = format!("bc_test_{}", uuid_simple());
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .expect("the test PostgreSQL server answers");
        sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create a test database");
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("TEST_POSTGRES_URL must end with /<database>"),
        };
        Some(Db::Postgres {
            url,
            admin_url,
            name,
            data_dir: tempfile::tempdir().expect("temp dir"),
        })
    }

    /// Settings overrides that point the app at this database.
    pub fn overrides(&self) -> Vec<(String, String)> {
        match self {
            Db::Sqlite(dir) => vec![(
                "BEDROCK_CHAT_STORAGE_DATA_DIR".into(),
                dir.path().display().to_string(),
            )],
            Db::Postgres { url, data_dir, .. } => vec![
                ("BEDROCK_CHAT_STORAGE_DATABASE_URL".into(), url.clone()),
                // The cookie secret and the instance id live in a data dir.
                (
                    "BEDROCK_CHAT_STORAGE_DATA_DIR".into(),
                    data_dir.path().display().to_string(),
                ),
            ],
        }
    }

    /// Runs SQL as an administrator of this database (PostgreSQL only).
    pub async fn admin(&self, sql: &str) {
        let Db::Postgres { admin_url, .. } = self else {
            panic!("admin SQL is for PostgreSQL")
        };
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url)
            .await
            .expect("admin connection");
        sqlx::Executor::execute(&mut admin, sql).await.expect(sql);
    }

    pub fn postgres_name(&self) -> Option<&str> {
        match self {
            Db::Postgres { name, .. } => Some(name),
            Db::Sqlite(_) => None,
        }
    }
}

/// A test's PostgreSQL database goes when the test does. `FORCE`: the app
/// under test may still hold connections.
impl Drop for Db {
    fn drop(&mut self) {
        let Db::Postgres { admin_url, name, .. } = self else {
            return;
        };
        let admin_url = admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        // Drop runs on the test's runtime, which cannot block on a future:
        // the statement runs on a thread and runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                    .await
                    .ok()?;
                sqlx::Executor::execute(&mut admin, sql.as_str()).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop the test database {name}");
        }
    }
}

fn uuid_simple() -> String {
    bedrock_chat::conversations::store::new_id().replace('-', "")
}

pub struct TestApp {
    pub base: String,
    pub sim: simulator::SimulatorHandle,
    /// The first user: a client with a cookie jar of its own.
    pub http: reqwest::Client,
    pub settings: Settings,
    pub db: Db,
    pub generations: bedrock_chat::chat::generation::Generations,
    pub store: bedrock_chat::conversations::store::Store,
    /// The app's wall clock: a test moves it instead of sleeping.
    pub clock: bedrock_chat::clock::Clock,
    pub limiter: bedrock_chat::server::limits::Limiter,
    /// The app's MCP server connections.
    pub mcp: bedrock_chat::tools::mcp::McpHub,
    /// Dropping it starts the app's shutdown (as SIGTERM would).
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the app on SQLite with settings overridden as environment
/// variables would.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_on(Db::sqlite(), overrides).await
}

pub async fn spawn_app_on(db: Db, overrides: &[(&str, &str)]) -> TestApp {
    let settings = test_settings(&db, overrides);
    let sim = simulator::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts");
    let bedrock = BedrockChat::for_simulator(sim.clone(), settings.bedrock.max_attempts);
    let clock = bedrock_chat::clock::Clock::system();
    let app = Application::build_with_clock(settings.clone(), bedrock, clock.clone())
        .await
        .expect("app starts");
    let base = format!("http://{}", app.local_addr());
    let generations = app.generations().clone();
    let store = app.store().clone();
    let mcp = app.mcp().clone();
    let limiter = app.limiter().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        sim,
        http: new_user(),
        settings,
        db,
        generations,
        store,
        clock,
        limiter,
        mcp,
        stop: Some(stop),
    }
}

/// Limits that would trip tests sending many messages in a burst are off,
/// unless a test sets them (the defences tests do).
const LIMITS_OFF: &[(&str, &str)] = &[
    ("BEDROCK_CHAT_LIMITS_MESSAGES_PER_MINUTE_PER_OWNER", "0"),
    ("BEDROCK_CHAT_LIMITS_MESSAGES_PER_MINUTE_PER_ADDRESS", "0"),
    ("BEDROCK_CHAT_LIMITS_NEW_OWNERS_PER_ADDRESS_PER_HOUR", "0"),
    ("BEDROCK_CHAT_LIMITS_MAX_CONCURRENT_ANSWERS_PER_OWNER", "0"),
];

pub fn test_settings(db: &Db, overrides: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("BEDROCK_CHAT_SERVER_SITE_ADDR", "127.0.0.1:0"),
        ("BEDROCK_CHAT_BEDROCK_BACKEND", "simulator"),
        // Errors are asserted as they come; retries would only slow tests.
        ("BEDROCK_CHAT_BEDROCK_MAX_ATTEMPTS", "1"),
    ]
    .into_iter()
    .chain(LIMITS_OFF.iter().copied())
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.extend(db.overrides());
    env.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::built_in_with(&env).expect("test settings are valid")
}

/// A browser of its own: a new anonymous owner once the app sets its cookie.
pub fn new_user() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(LIMIT)
        .cookie_store(true)
        .build()
        .unwrap()
}

impl TestApp {
    /// The model choice a message sent with no model makes: the default
    /// among the offered ones (for tests that call the store directly).
    pub fn default_model_choice(&self) -> bedrock_chat::conversations::store::ModelChoice<'_> {
        bedrock_chat::conversations::store::ModelChoice {
            requested: None,
            offered: &self.settings.bedrock.models,
            default: &self.settings.bedrock.default_model,
        }
    }

    /// Stores `owner`'s `text` as the first message of a new conversation,
    /// straight through the store (for tests of the store's own writes).
    pub fn first_message<'a>(
        &'a self,
        owner: &'a str,
        text: &'a str,
    ) -> impl std::future::Future<
        Output = Result<
            bedrock_chat::conversations::store::Exchange,
            bedrock_chat::conversations::store::StoreError,
        >,
    > + 'a {
        self.store
            .begin_exchange(bedrock_chat::conversations::store::NewExchange {
                owner,
                conversation_id: None,
                title: text,
                text,
                model: self.default_model_choice(),
                settings: None,
            })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request is answered")
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request is answered")
    }

    /// Sends a message as the first user (a new conversation when `id` is None).
    pub async fn send(&self, id: Option<&str>, text: &str) -> reqwest::Response {
        send_as(&self.http, &self.base, id, text).await
    }

    /// Sends a message and reads the whole answer stream.
    pub async fn chat(&self, id: Option<&str>, text: &str) -> Vec<sse::SseEvent> {
        let response = self.send(id, text).await;
        assert_eq!(response.status(), 200, "send {text:?}");
        read_events(response).await
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        get_json_as(&self.http, &self.url(path)).await
    }

    /// A page's HTML, as this test's user gets it.
    pub async fn page_html(&self, path: &str) -> String {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("page is answered");
        response.text().await.expect("page body")
    }
}

/// The scripts in which Leptos writes the resources' data into a page: what
/// the browser hydrates from (a conversation without the text its HTML
/// shows: `chat::page::hydration_data`).
pub fn hydration_data(html: &str) -> String {
    html.split("<script")
        .filter_map(|tag| tag.split_once("</script>").map(|(script, _)| script))
        .filter(|script| script.contains("__RESOLVED_RESOURCES"))
        .collect()
}

pub async fn send_as(http: &reqwest::Client, base: &str, id: Option<&str>, text: &str) -> reqwest::Response {
    let mut body = serde_json::json!({ "content": text });
    if let Some(id) = id {
        body["conversation_id"] = id.into();
    }
    http.post(format!("{base}/api/chat/stream"))
        .json(&body)
        .send()
        .await
        .expect("request is answered")
}

pub async fn get_json_as(http: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let response = http.get(url).send().await.expect("request is answered");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// `{"messages": [...]}` from (role, text) pairs: the compatibility
/// endpoint's request.
pub fn conversation(turns: &[(&str, &str)]) -> serde_json::Value {
    serde_json::json!({
        "messages": turns
            .iter()
            .map(|(role, content)| serde_json::json!({ "role": role, "content": content }))
            .collect::<Vec<_>>()
    })
}

pub fn sim_messages(turns: &[(&str, &str)]) -> Vec<simulator::SimMessage> {
    turns
        .iter()
        .map(|(role, text)| simulator::SimMessage::text(role, text))
        .collect()
}

/// Reads a whole SSE response with the crate's own parser.
pub async fn read_events(response: reqwest::Response) -> Vec<sse::SseEvent> {
    let mut parser = sse::Parser::new();
    let mut events = Vec::new();
    let mut body = response.bytes_stream();
    let read = async {
        while let Some(chunk) = body.next().await {
            parser.feed(&chunk.expect("stream chunk"), |e| events.push(e));
        }
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .expect("stream ends in time");
    events
}

/// The concatenated `delta` texts.
pub fn answer_text(events: &[sse::SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.event == "delta")
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            v["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

pub fn names(events: &[sse::SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

/// The status of each message of a stored conversation (as the API gives
/// it), in order.
pub fn message_statuses(conversation: &serde_json::Value) -> Vec<&str> {
    conversation["messages"]
        .as_array()
        .expect("a conversation's messages")
        .iter()
        .map(|m| m["status"].as_str().expect("a message's status"))
        .collect()
}

/// The conversation id from a stream's `start` event.
pub fn conversation_id(events: &[sse::SseEvent]) -> String {
    let start = events.first().expect("a stream has events");
    assert_eq!(start.event, "start");
    json(start)["conversation_id"].as_str().unwrap().to_owned()
}

pub fn json(event: &sse::SseEvent) -> serde_json::Value {
    serde_json::from_str(&event.data).expect("event data is JSON")
}

/// Polls `check` until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// This process's resident memory, in KiB (for benchmark figures).
pub fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The real server binary in a process of its own, so that it can be killed.
/// A loopback address with a port nobody listens on now (for a process
/// that binds it itself). Below the kernel's ephemeral range: a port that
/// `bind(0)` handed out and gave back could be taken, before the caller
/// binds it, by any of the other tests' outgoing connections (this one
/// was, once, in CI).
pub fn free_loopback_addr() -> String {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (20_000_u16, ephemeral_from.max(20_001));
    // A different start for each call, so that parallel tests rarely try
    // the same port; each is checked by binding it.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id();
    let span = u32::from(high - low);
    (0..span)
        .map(|i| low + ((seed.wrapping_add(i * 7919)) % span) as u16)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .map(|port| format!("127.0.0.1:{port}"))
        .expect("a free loopback port below the ephemeral range")
}

pub struct ServerProcess {
    pub child: std::process::Child,
    pub base: String,
}

impl ServerProcess {
    pub fn start(db: &Db, env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bedrock-chat"));
        command
            .env_remove("DATABASE_URL")
            .env("BEDROCK_CHAT_SERVER_SITE_ADDR", "127.0.0.1:0")
            .env("BEDROCK_CHAT_BEDROCK_BACKEND", "simulator")
            .env("RUST_LOG", "warn")
            .envs(LIMITS_OFF.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (key, value) in db.overrides() {
            command.env(key, value);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the server binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let listening = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|line| line.contains("listening on"))
            .expect("the server prints its address");
        let base = listening
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {listening:?}"))
            .to_owned();
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, base }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill the server");
        self.child.wait().unwrap();
    }
}

impl ServerProcess {
    /// SIGTERM: the server shuts down gracefully. Returns how long it took
    /// to exit, if it did within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        while started.elapsed() < limit {
            if self.child.try_wait().expect("wait").is_some() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads an SSE response a little at a time, keeping the connection open in
/// between (to cut it, or to act while the answer is still coming).
pub struct EventReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    parser: sse::Parser,
    pub events: Vec<sse::SseEvent>,
}

impl EventReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            parser: sse::Parser::new(),
            events: Vec::new(),
        }
    }

    /// Reads until `enough(events so far)` holds or the stream ends; each
    /// wait is bounded by [`LIMIT`].
    pub async fn read_until(&mut self, enough: impl Fn(&[sse::SseEvent]) -> bool) -> &[sse::SseEvent] {
        while !enough(&self.events) {
            match tokio::time::timeout(LIMIT, self.body.next())
                .await
                .expect("events in time")
            {
                Some(Ok(chunk)) => self.parser.feed(&chunk, |e| self.events.push(e)),
                Some(Err(_)) | None => break,
            }
        }
        &self.events
    }

    /// Reads to the end of the stream (a broken connection ends it too).
    pub async fn read_to_end(&mut self) -> &[sse::SseEvent] {
        self.read_until(|_| false).await
    }
}
