//! Conversation page benchmark: the cost of a stored conversation.
//!
//! (a) Server-side rendering of `/c/{id}` for a conversation of 200 messages
//!     (100 exchanges), built through the real HTTP API by one owner (a
//!     client with a cookie jar), then fetched in full again and again.
//! (b) What the store writes per answer: on PostgreSQL the transactions
//!     committed (`pg_stat_database`), the write transactions (transaction
//!     ids used) and, when `pg_stat_statements` is loaded, the statements run;
//!     on SQLite the commits and pages appended to the write-ahead log.
//!
//! SQLite always (a temp dir); PostgreSQL too when `TEST_POSTGRES_URL` names
//! an admin URL (a fresh database is created on it and dropped afterwards).
//! `./dev bench` starts a throwaway server for it (`./dev postgres`).
//!
//! Everything runs on loopback against the built-in simulator. Every loop is
//! bounded in count, every request and the whole run in time. Prints
//! figures; asserts nothing about time (timed assertions flake on shared
//! machines).
//!
//! Run with `./dev bench` (or `cargo bench --features ssr --bench conversation_page`).

use bedrock_chat::{
    bedrock::{simulator, BedrockChat},
    server::Application,
    settings::Settings,
    sse,
};
use futures::StreamExt;
use sqlx::{Connection, PgConnection};
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

/// Exchanges (a user message and its answer) in the rendered conversation.
const EXCHANGES: usize = 100;
/// Answers whose writes are counted: the 2nd to the 21st (the first one
/// creates the conversation, which is not the common case).
const COUNTED_ANSWERS: usize = 20;
const WARMUPS: usize = 5;
const RUNS: usize = 30;
/// No single request or stream may hang a run.
const REQUEST_LIMIT: Duration = Duration::from_secs(20);
/// Nor may the whole benchmark.
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// A PostgreSQL backend publishes its transaction counts at most 10 s after
/// going idle (PGSTAT_IDLE_INTERVAL); reading earlier would miss some.
const PG_STATS_DELAY: Duration = Duration::from_millis(10_500);

#[tokio::main]
async fn main() {
    // Measure on worker threads, as the server's own tasks run.
    tokio::time::timeout(RUN_LIMIT, tokio::spawn(run()))
        .await
        .expect("the benchmark ends in time")
        .unwrap();
}

async fn run() {
    println!(
        "conversation page /c/{{id}}: {EXCHANGES} exchanges ({} messages)",
        EXCHANGES * 2
    );
    bench(Db::sqlite()).await;
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin_url) => bench(Db::postgres(&admin_url).await).await,
        Err(_) => println!("\nPostgreSQL: skipped (TEST_POSTGRES_URL is not set; ./dev bench sets it)"),
    }
}

/// Where the app under test keeps its conversations.
enum Db {
    Sqlite {
        dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
        secrets: tempfile::TempDir,
    },
}

impl Db {
    fn sqlite() -> Self {
        Db::Sqlite {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    async fn postgres(admin_url: &str) -> Self {
        let name = format!(
            "bc_bench_{}",
            bedrock_chat::conversations::store::new_id().replace('-', "")
        );
        let mut admin = PgConnection::connect(admin_url)
            .await
            .expect("the PostgreSQL server named by TEST_POSTGRES_URL answers");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the benchmark database");
        let server = admin_url
            .rsplit_once('/')
            .expect("TEST_POSTGRES_URL ends with /<database>")
            .0;
        Db::Postgres {
            admin_url: admin_url.to_owned(),
            url: format!("{server}/{name}"),
            name,
            secrets: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "SQLite",
            Db::Postgres { .. } => "PostgreSQL",
        }
    }

    fn overrides(&self) -> Vec<(&'static str, String)> {
        match self {
            Db::Sqlite { dir } => vec![("BEDROCK_CHAT_STORAGE_DATA_DIR", dir.path().display().to_string())],
            Db::Postgres { url, secrets, .. } => vec![
                ("BEDROCK_CHAT_STORAGE_DATABASE_URL", url.clone()),
                // The cookie secret still lives in a data dir.
                (
                    "BEDROCK_CHAT_STORAGE_DATA_DIR",
                    secrets.path().display().to_string(),
                ),
            ],
        }
    }

    async fn drop_database(&self) {
        if let Db::Postgres { admin_url, name, .. } = self {
            // FORCE: the app (still running) holds pooled connections.
            let dropped = match PgConnection::connect(admin_url).await {
                Ok(mut admin) => sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = dropped {
                eprintln!("could not drop the benchmark database {name}: {e}");
            }
        }
    }
}

struct App {
    base: String,
    /// One browser: every request carries the same owner cookie.
    http: reqwest::Client,
    _sim: simulator::SimulatorHandle,
}

async fn spawn_app(db: &Db) -> App {
    let env: HashMap<String, String> = [
        ("BEDROCK_CHAT_SERVER_SITE_ADDR", "127.0.0.1:0".to_owned()),
        ("BEDROCK_CHAT_BEDROCK_BACKEND", "simulator".to_owned()),
        ("BEDROCK_CHAT_BEDROCK_MAX_ATTEMPTS", "1".to_owned()),
        // One owner sends every message as fast as it can: no rate limits.
        (
            "BEDROCK_CHAT_LIMITS_MESSAGES_PER_MINUTE_PER_OWNER",
            "0".to_owned(),
        ),
        (
            "BEDROCK_CHAT_LIMITS_MESSAGES_PER_MINUTE_PER_ADDRESS",
            "0".to_owned(),
        ),
        (
            "BEDROCK_CHAT_LIMITS_NEW_OWNERS_PER_ADDRESS_PER_HOUR",
            "0".to_owned(),
        ),
    ]
    .into_iter()
    .chain(db.overrides())
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::built_in_with(&env).expect("benchmark settings are valid");
    let sim = simulator::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts");
    let bedrock = BedrockChat::for_simulator(sim.clone(), settings.bedrock.max_attempts);
    let app = Application::build_with(settings, bedrock)
        .await
        .expect("app starts");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder()
        .timeout(REQUEST_LIMIT)
        .cookie_store(true)
        .no_proxy()
        .build()
        .unwrap();
    App {
        base,
        http,
        _sim: sim,
    }
}

impl App {
    /// Sends one message and reads its answer stream to the end; returns the
    /// conversation's id.
    async fn exchange(&self, conversation_id: Option<&str>, text: &str) -> String {
        let response = self
            .http
            .post(format!("{}/api/chat/stream", self.base))
            .json(&serde_json::json!({ "content": text, "conversation_id": conversation_id }))
            .send()
            .await
            .expect("send is answered");
        assert_eq!(response.status(), 200, "send {text:?}");
        let mut parser = sse::Parser::new();
        let mut body = response.bytes_stream();
        let mut id = None;
        let mut done = false;
        while let Some(chunk) = body.next().await {
            parser.feed(&chunk.expect("stream chunk"), |e| match e.event.as_str() {
                "start" => {
                    let start: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                    id = start["conversation_id"].as_str().map(str::to_owned);
                }
                "error" => panic!("the answer to {text:?} failed: {}", e.data),
                "done" => done = true,
                _ => {}
            });
        }
        assert!(done, "the answer to {text:?} ends with `done`");
        id.expect("a `start` event names the conversation")
    }

    /// Reads the whole page; with `gzip`, as compressed as the app sends it.
    async fn page(&self, path: &str, gzip: bool) -> (Duration, Vec<u8>) {
        let started = Instant::now();
        let mut request = self.http.get(format!("{}{path}", self.base));
        if gzip {
            request = request.header("accept-encoding", "gzip");
        }
        let response = request.send().await.expect("page is answered");
        assert_eq!(response.status(), 200, "GET {path}");
        let body = response.bytes().await.expect("page body");
        (started.elapsed(), body.to_vec())
    }
}

fn message(i: usize) -> String {
    format!(
        "Question {i} of the benchmark: how does the relay keep each answer flowing to the browser \
         while the store writes it? [sim tokens=80]"
    )
}

async fn bench(db: Db) {
    println!("\n{}:", db.label());
    let app = spawn_app(&db).await;
    let mut pg = match &db {
        Db::Postgres { admin_url, name, .. } => Some(PgStats::new(admin_url, name).await),
        Db::Sqlite { .. } => None,
    };
    let wal = match &db {
        Db::Sqlite { dir } => Some(dir.path().join("bedrock-chat.sqlite3-wal")),
        Db::Postgres { .. } => None,
    };

    // Build the conversation through the API, counting the writes of
    // answers 2..=COUNTED_ANSWERS+1 (reported last).
    let mut writes = Vec::new();
    let mut answer_ms = Vec::with_capacity(EXCHANGES);
    let started = Instant::now();
    let id = app.exchange(None, &message(1)).await;
    answer_ms.push(started.elapsed().as_secs_f64() * 1e3);
    let wal_before = wal.as_deref().map(WalCount::read);
    let pg_before = match pg.as_mut() {
        Some(pg) => Some(pg.snapshot(true).await),
        None => None,
    };
    for i in 2..=EXCHANGES {
        let started = Instant::now();
        app.exchange(Some(&id), &message(i)).await;
        answer_ms.push(started.elapsed().as_secs_f64() * 1e3);
        if i == COUNTED_ANSWERS + 1 {
            if let (Some(before), Some(path)) = (&wal_before, &wal) {
                report_wal(before, &WalCount::read(path), &mut writes);
            }
            if let (Some(before), Some(pg)) = (&pg_before, pg.as_mut()) {
                pg.snapshot(true).await.report(before, &mut writes);
            }
        }
    }
    let total_s = answer_ms.iter().sum::<f64>() / 1e3;
    let (median, p90, min) = stats(answer_ms);
    println!(
        "  building it: {EXCHANGES} answers in {total_s:.1} s (send -> end of stream: median {median:.1} ms, \
         p90 {p90:.1} ms, min {min:.1} ms)"
    );

    // (a) Render the page.
    let path = format!("/c/{id}");
    let last = format!("Question {EXCHANGES} of the benchmark");
    for _ in 0..WARMUPS {
        let (_, body) = app.page(&path, false).await;
        assert!(
            String::from_utf8_lossy(&body).contains(&last),
            "the page renders the whole conversation"
        );
    }
    let mut times = Vec::with_capacity(RUNS);
    let mut size = 0;
    for _ in 0..RUNS {
        let (t, body) = app.page(&path, false).await;
        times.push(t.as_secs_f64() * 1e3);
        size = body.len();
    }
    let (gzip_time, gzipped) = app.page(&path, true).await;
    let (median, p90, min) = stats(times);
    println!(
        "  GET {path} ({RUNS} runs after {WARMUPS} warm-ups): median {median:.2} ms, p90 {p90:.2} ms, \
         min {min:.2} ms"
    );
    println!(
        "  page size: {size} bytes ({} bytes gzipped, {:.2} ms with gzip)",
        gzipped.len(),
        gzip_time.as_secs_f64() * 1e3
    );
    for line in writes {
        println!("{line}");
    }

    db.drop_database().await;
}

/// (median, p90, min) of milliseconds.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[v.len() * 9 / 10], v[0])
}

/// The valid frames of an SQLite write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WalCount {
    /// Change when the log is restarted after a checkpoint.
    salts: (u32, u32),
    frames: u64,
    /// Frames that end a transaction.
    commits: u64,
}

impl WalCount {
    /// Parses the log (format: sqlite.org/fileformat2.html#walformat): a
    /// 32-byte header, then frames of a 24-byte header and one page; a frame
    /// belongs to the current log while its salts match the header's.
    fn read(path: &Path) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        if bytes.len() < 32 {
            return None;
        }
        let page = match be(8) {
            1 => 65536,
            n => n as usize,
        };
        let salts = (be(16), be(20));
        let (mut frames, mut commits, mut at) = (0, 0, 32);
        while at + 24 + page <= bytes.len() && (be(at + 8), be(at + 12)) == salts {
            frames += 1;
            if be(at + 4) != 0 {
                commits += 1;
            }
            at += 24 + page;
        }
        Some(Self {
            salts,
            frames,
            commits,
        })
    }
}

fn report_wal(before: &Option<WalCount>, after: &Option<WalCount>, out: &mut Vec<String>) {
    let n = COUNTED_ANSWERS as f64;
    out.push(match (before, after) {
        (Some(b), Some(a)) if a.salts == b.salts => format!(
            "  store writes per answer (answers 2..={}, WAL): {:.2} commits, {:.2} pages written",
            COUNTED_ANSWERS + 1,
            (a.commits - b.commits) as f64 / n,
            (a.frames - b.frames) as f64 / n
        ),
        _ => "  store writes per answer (WAL): not measured (the log was restarted or is missing)".to_owned(),
    });
}

/// Counters of one PostgreSQL database, read from another (the admin one)
/// so that reading them does not count.
struct PgStats {
    admin: PgConnection,
    name: String,
    statements: bool,
}

struct PgSnapshot {
    xact_commit: i64,
    next_xid: i64,
    statements: HashMap<String, i64>,
}

impl PgStats {
    async fn new(admin_url: &str, name: &str) -> Self {
        let mut admin = PgConnection::connect(admin_url).await.expect("admin connection");
        // Only there when the server preloads it (./dev postgres does).
        let statements = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut admin)
            .await
            .is_ok()
            && sqlx::query("SELECT 1 FROM pg_stat_statements LIMIT 1")
                .execute(&mut admin)
                .await
                .is_ok();
        Self {
            admin,
            name: name.to_owned(),
            statements,
        }
    }

    /// With `settle`, first waits until every backend has published its
    /// counts (bounded: one fixed delay).
    async fn snapshot(&mut self, settle: bool) -> PgSnapshot {
        if settle {
            tokio::time::sleep(PG_STATS_DELAY).await;
        }
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut self.admin)
            .await
            .unwrap();
        let xact_commit: i64 =
            sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
                .bind(&self.name)
                .fetch_one(&mut self.admin)
                .await
                .unwrap();
        // The next transaction id: only transactions that write take one.
        let next_xid: i64 =
            sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
                .fetch_one(&mut self.admin)
                .await
                .unwrap();
        let mut statements = HashMap::new();
        if self.statements {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT s.query, s.calls FROM pg_stat_statements s \
                 JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
            )
            .bind(&self.name)
            .fetch_all(&mut self.admin)
            .await
            .unwrap();
            for (query, calls) in rows {
                *statements.entry(query).or_default() += calls;
            }
        }
        PgSnapshot {
            xact_commit,
            next_xid,
            statements,
        }
    }
}

impl PgSnapshot {
    fn report(&self, before: &PgSnapshot, out: &mut Vec<String>) {
        let n = COUNTED_ANSWERS as f64;
        out.push(format!(
            "  store writes per answer (answers 2..={}): {:.2} transactions committed \
             (pg_stat_database), {:.2} of them writing (transaction ids)",
            COUNTED_ANSWERS + 1,
            (self.xact_commit - before.xact_commit) as f64 / n,
            (self.next_xid - before.next_xid) as f64 / n
        ));
        if self.statements.is_empty() {
            out.push("  statements per answer: not measured (pg_stat_statements is not loaded)".to_owned());
            return;
        }
        let mut ran: Vec<(i64, &str)> = self
            .statements
            .iter()
            .map(|(q, calls)| (calls - before.statements.get(q).copied().unwrap_or(0), q.as_str()))
            .filter(|(calls, _)| *calls > 0)
            .collect();
        ran.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let total: i64 = ran.iter().map(|r| r.0).sum();
        out.push(format!(
            "  statements per answer (pg_stat_statements): {:.2}",
            total as f64 / n
        ));
        for (calls, query) in ran {
            let query: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = query.chars().take(90).collect();
            let more = if short.len() < query.len() { "…" } else { "" };
            out.push(format!("    {:5.2}  {short}{more}", calls as f64 / n));
        }
    }
}
