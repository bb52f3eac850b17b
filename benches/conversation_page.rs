//! Conversation page benchmark: the cost of a stored conversation.
//!
//! (a) Server-side rendering of `/c/{id}` for a conversation of 200 messages
//!     (100 exchanges), built through the real HTTP API by one owner (a
//!     client with a cookie jar), then fetched in full again and again.
//! (b) The same conversation grown to 1,000 messages: the page's server
//!     function for its newest page and for the page before it (what the
//!     browser fetches when it opens it and on "Show earlier messages").
//! (c) What the store writes per answer: on PostgreSQL the transactions
//!     committed (`pg_stat_database`), the write transactions (transaction
//!     ids used) and, when `pg_stat_statements` is loaded, the statements run;
//!     on SQLite the commits and pages appended to the write-ahead log.
//! (d) A burst through the store: [`BURST`] people each start a
//!     conversation at the same moment, then all their answers save their
//!     text so far (a checkpoint) at the same moment, then all end at the
//!     same moment; with group commit (writes in sets) and without it (a
//!     transaction each): the time to store them all, and the commits.
//!
//! SQLite always (a temp dir); PostgreSQL too when `TEST_POSTGRES_URL` names
//! an admin URL (a fresh database is created on it and dropped afterwards).
//! The app is started by the integration tests' own helpers.
//! `./dev bench` starts a throwaway server for it (`./dev postgres`).
//!
//! Everything runs on loopback against the built-in simulator. Every loop is
//! bounded in count, every request and the whole run in time. Prints
//! figures; asserts nothing about time (timed assertions flake on shared
//! machines).
//!
//! Run with `./dev bench` (or `cargo bench --features ssr --bench conversation_page`).

// The integration tests' own helpers: a bench is a crate of its own, and
// Cargo has no dev-only library target to share them through.
#[path = "../tests/api/support/mod.rs"]
mod support;

use bedrock_chat::conversations::store::GroupCommitFigures;
use sqlx::{Connection, PgConnection};
use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};
use support::{conversation_id, hydration_data, names, spawn_app_on, Db, TestApp};

/// Exchanges (a user message and its answer) in the rendered conversation.
const EXCHANGES: usize = 100;
/// Answers whose writes are counted: the 2nd to the 21st (the first one
/// creates the conversation, which is not the common case).
const COUNTED_ANSWERS: usize = 20;
/// Exchanges the conversation grows to for (b).
const LONG_EXCHANGES: usize = 500;
const WARMUPS: usize = 5;
const RUNS: usize = 30;
/// People in the store burst of (d).
const BURST: usize = 1_000;
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
    match Db::postgres().await {
        Some(db) => bench(db).await,
        None => println!("\nPostgreSQL: skipped (TEST_POSTGRES_URL is not set; ./dev bench sets it)"),
    }
    println!(
        "\nstore burst: {BURST} people start a conversation at once, then their answers save their text at once, then end at once"
    );
    for group_commit in [false, true] {
        burst(Db::sqlite(), group_commit).await;
        if let Some(db) = Db::postgres().await {
            burst(db, group_commit).await;
        }
    }
}

/// (d) [`BURST`] first messages stored at once through the store itself,
/// then their answers' ends at once.
async fn burst(db: Db, group_commit: bool) {
    use bedrock_chat::conversations::{store::FinishedAnswer, usage::Usage, MessageStatus};
    let name = label(&db);
    let app = spawn_app_on(
        db,
        &[(
            "BEDROCK_CHAT_STORAGE_GROUP_COMMIT",
            if group_commit { "true" } else { "false" },
        )],
    )
    .await;
    let people: Vec<(String, String)> = (0..BURST)
        .map(|n| (format!("anon:burst-{n}"), message(n)))
        .collect();
    let figures = || app.store.group_commit_figures();

    let before = figures();
    let started = Instant::now();
    let begun =
        futures::future::join_all(people.iter().map(|(owner, text)| app.first_message(owner, text))).await;
    let begin_time = started.elapsed();
    let begin_figures = figures();
    let begin_failed = begun.iter().filter(|r| r.is_err()).count();

    let content = "An answer of a few paragraphs, as a model writes them. ".repeat(20);
    let answers: Vec<(&str, &str)> = begun
        .iter()
        .zip(&people)
        .filter_map(|(exchange, (owner, _))| {
            Some((owner.as_str(), exchange.as_ref().ok()?.answer_id.as_str()))
        })
        .collect();
    let half = &content[..content.len() / 2];
    let started = Instant::now();
    let saved = futures::future::join_all(
        answers
            .iter()
            .map(|(owner, answer)| app.store.checkpoint(owner, answer, half, &[])),
    )
    .await;
    let save_time = started.elapsed();
    let save_figures = figures();
    let save_failed = saved.iter().filter(|r| r.is_err()).count();

    let ends: Vec<FinishedAnswer> = begun
        .iter()
        .zip(&people)
        .filter_map(|(exchange, (owner, _))| {
            let exchange = exchange.as_ref().ok()?;
            Some(FinishedAnswer {
                owner: owner.clone(),
                day: 20_000,
                answer_id: exchange.answer_id.clone(),
                conversation_id: exchange.conversation.id.clone(),
                content: content.clone(),
                blocks: Vec::new(),
                status: MessageStatus::Complete,
                usage: Some(Usage {
                    input_tokens: 40,
                    output_tokens: 200,
                    total_tokens: 240,
                    latency_ms: 2_000,
                    cache_read_tokens: 0,
                    cache_write_tokens: 0,
                    cost_nanos: Some(1_000_000),
                }),
                first_token_ms: Some(300),
                duration_ms: 2_000,
                error: None,
            })
        })
        .collect();
    let started = Instant::now();
    let finished = futures::future::join_all(ends.iter().map(|end| app.store.finish_answer(end))).await;
    let finish_time = started.elapsed();
    let finish_figures = figures();
    let finish_failed = finished.iter().filter(|r| r.is_err()).count();

    let how = if group_commit {
        "group commit"
    } else {
        "a transaction each"
    };
    let commits = |from: Option<GroupCommitFigures>,
                   to: Option<GroupCommitFigures>,
                   together: fn(&GroupCommitFigures) -> u64| {
        match (from, to) {
            (Some(from), Some(to)) => format!(
                ", {} commits, {} in sets",
                to.transactions - from.transactions,
                together(&to) - together(&from)
            ),
            _ => String::new(),
        }
    };
    println!(
        "  {name}, {how}: first messages {:.0} ms ({:.0}/s{}{}); checkpoints {:.0} ms ({:.0}/s{}{}); ends {:.0} ms ({:.0}/s{}{})",
        begin_time.as_secs_f64() * 1e3,
        BURST as f64 / begin_time.as_secs_f64(),
        commits(before, begin_figures, |f| f.begun_together),
        failed_note(begin_failed),
        save_time.as_secs_f64() * 1e3,
        answers.len() as f64 / save_time.as_secs_f64(),
        commits(begin_figures, save_figures, |f| f.checkpointed_together),
        failed_note(save_failed),
        finish_time.as_secs_f64() * 1e3,
        ends.len() as f64 / finish_time.as_secs_f64(),
        commits(save_figures, finish_figures, |f| f.finished_together),
        failed_note(finish_failed),
    );
}

fn failed_note(failed: usize) -> String {
    if failed == 0 {
        String::new()
    } else {
        format!(", {failed} failed")
    }
}

fn label(db: &Db) -> &'static str {
    match db {
        Db::Sqlite(_) => "SQLite",
        Db::Postgres { .. } => "PostgreSQL",
    }
}

/// Sends one message and reads its answer stream to the end; returns the
/// conversation's id.
async fn exchange(app: &TestApp, conversation: Option<&str>, text: &str) -> String {
    let events = app.chat(conversation, text).await;
    assert_eq!(
        names(&events).last(),
        Some(&"done"),
        "the answer to {text:?} ends with `done`"
    );
    conversation_id(&events)
}

/// Reads the whole page; with `gzip`, as compressed as the app sends it.
async fn page(app: &TestApp, path: &str, gzip: bool) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut request = app.http.get(app.url(path));
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let response = request.send().await.expect("page is answered");
    assert_eq!(response.status(), 200, "GET {path}");
    let body = response.bytes().await.expect("page body");
    (started.elapsed(), body.to_vec())
}

fn message(i: usize) -> String {
    format!(
        "Question {i} of the benchmark: how does the relay keep each answer flowing to the browser \
         while the store writes it? [sim tokens=80]"
    )
}

async fn bench(db: Db) {
    println!("\n{}:", label(&db));
    let app = spawn_app_on(db, &[]).await;
    let mut pg = match &app.db {
        Db::Postgres { admin_url, name, .. } => Some(PgStats::new(admin_url, name).await),
        Db::Sqlite(_) => None,
    };
    let wal = match &app.db {
        Db::Sqlite(dir) => Some(dir.path().join("bedrock-chat.sqlite3-wal")),
        Db::Postgres { .. } => None,
    };

    // Build the conversation through the API, counting the writes of
    // answers 2..=COUNTED_ANSWERS+1 (reported last).
    let mut writes = Vec::new();
    let mut answer_ms = Vec::with_capacity(EXCHANGES);
    let started = Instant::now();
    let id = exchange(&app, None, &message(1)).await;
    answer_ms.push(started.elapsed().as_secs_f64() * 1e3);
    let wal_before = wal.as_deref().map(WalCount::read);
    let pg_before = match pg.as_mut() {
        Some(pg) => Some(pg.snapshot(true).await),
        None => None,
    };
    for i in 2..=EXCHANGES {
        let started = Instant::now();
        exchange(&app, Some(&id), &message(i)).await;
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
        let (_, body) = page(&app, &path, false).await;
        assert!(
            String::from_utf8_lossy(&body).contains(&last),
            "the page renders the whole conversation"
        );
    }
    let mut times = Vec::with_capacity(RUNS);
    let mut body = Vec::new();
    for _ in 0..RUNS {
        let (t, fetched) = page(&app, &path, false).await;
        times.push(t.as_secs_f64() * 1e3);
        body = fetched;
    }
    let size = body.len();
    let (gzip_time, gzipped) = page(&app, &path, true).await;
    let (median, p90, min) = stats(times);
    println!(
        "  GET {path} ({RUNS} runs after {WARMUPS} warm-ups): median {median:.2} ms, p90 {p90:.2} ms, \
         min {min:.2} ms"
    );
    println!(
        "  page size: {size} bytes ({} bytes gzipped, {:.2} ms with gzip), of which the data the \
         browser hydrates from: {} bytes",
        gzipped.len(),
        gzip_time.as_secs_f64() * 1e3,
        hydration_data(&String::from_utf8_lossy(&body)).len()
    );

    // (b) Grown long: the newest page and the one before it.
    for i in EXCHANGES + 1..=LONG_EXCHANGES {
        exchange(&app, Some(&id), &format!("Turn {i} [sim tokens=1]")).await;
    }
    let newest = format!("/api/page/conversation?id={id}");
    let (_, body) = page(&app, &newest, false).await;
    let first: serde_json::Value = serde_json::from_slice(&body).expect("a page is JSON");
    let oldest_shown = first["messages"][0]["id"]
        .as_str()
        .expect("the page has messages");
    let earlier = format!("/api/page/earlier?id={id}&before={oldest_shown}");
    for (what, path) in [("newest page", &newest), ("page before it", &earlier)] {
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..WARMUPS {
            page(&app, path, false).await;
        }
        for _ in 0..RUNS {
            times.push(page(&app, path, false).await.0.as_secs_f64() * 1e3);
        }
        let (median, p90, min) = stats(times);
        println!(
            "  {} messages, {what} (GET /api/page/…): median {median:.2} ms, p90 {p90:.2} ms, min {min:.2} ms",
            LONG_EXCHANGES * 2
        );
    }
    for line in writes {
        println!("{line}");
    }
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
