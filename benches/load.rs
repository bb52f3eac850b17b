//! Load: C people press Enter in the same second.
//!
//! Starts the release server (and the Bedrock simulator as a process of its
//! own: 200 tokens 10 ms apart, or `LOAD_TOKEN_MS` apart; first token after
//! 100 ms) on loopback, sends C new messages at once from C anonymous
//! users, and prints per level:
//! time to the first delta beyond the model's own 100 ms (p50, p99), stream
//! duration p50, events/s, the server's CPU-seconds per 1,000 relayed events
//! (from `/proc`, and how much of it was the kernel's), its peak resident
//! memory, errors, this generator's own CPU, and the machine's idle time
//! while first tokens were due; then, from the server's `/metrics`, the
//! store's commits per second and writes per commit (group commit), and the
//! size of `/metrics` itself (its series stay bounded however many answers
//! were written). Levels: C = 100, 1,000, 3,000, on the page's endpoint
//! (SQLite, and PostgreSQL when `TEST_POSTGRES_URL` is set) and on the
//! compatibility endpoint. Every level is bounded in count and time. The `followups` part
//! plays the more common burst: C people who each already have a
//! conversation (made beforehand, not measured) send their next message in
//! it at once. The `spread` part sends the same C first messages evenly over
//! one second instead of at one instant, on all three endpoints: people
//! pressing Enter in the same second, while the answers of those who pressed
//! it first are already streaming.
//!
//! The simulator and this generator share the machine with the server, so
//! stream duration at 1,000 and more is bounded by the box: CPU per event
//! and first-token overhead are the figures that matter.
//!
//! Run with `./dev bench` (or `cargo bench --features ssr --bench load`).
//! `LOAD_LEVELS="1000,9000"` picks the levels and `LOAD_PARTS="postgres"`
//! the parts (see `main`); `LOAD_SERVER_ENV` adds server settings.

// The integration tests' own helpers: a bench is a crate of its own, and
// Cargo has no dev-only library target to share them through.
#[path = "../tests/api/support/mod.rs"]
mod support;

use bedrock_chat::conversations::store::Backend;
use futures::StreamExt;
use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use support::*;

/// C, unless `LOAD_LEVELS="100,1000,9000"` says otherwise.
const LEVELS: &[usize] = &[100, 1000, 3000];
const MODEL_FIRST_TOKEN_MS: f64 = 100.0;
/// The model's time between tokens, unless `LOAD_TOKEN_MS` says otherwise.
/// At 10 ms, 1,000 answers are 100,000 events a second: the simulator and
/// this generator alone then want more CPU than this 2-core box has (about
/// 26–33 µs an event between them), whatever the server costs. At 25 ms the
/// box is still full while the first tokens are due (measured: 0.1–0.4 of
/// 3.0 CPU-s idle in the first 1.5 s, streams longer than the model's own
/// 5.1 s). At 100 ms it has room for the relay (0.5–1.2 idle on SQLite and
/// the compatibility endpoint), and what the server adds to a first token
/// under a burst of arrivals shows rather than the box's queue.
const TOKEN_MS: u64 = 10;

/// What every load message asks the simulator for.
static PROMPT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let token_ms = std::env::var("LOAD_TOKEN_MS")
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .unwrap_or(TOKEN_MS);
    format!("Load [sim tokens=200 delay_ms={token_ms} first_token_ms={MODEL_FIRST_TOKEN_MS}]")
});
/// The per-owner caps as `Leptos.toml` ships them. On PostgreSQL each
/// answer's lease counts them (a lock and a statement more); the bench
/// otherwise runs with every cap off. An owner here sends at most two
/// messages, one at a time, so the caps never refuse one.
const SHIPPED_CAPS: [(&str, &str); 2] = [
    ("BEDROCK_CHAT_LIMITS_MAX_CONCURRENT_ANSWERS_PER_OWNER", "3"),
    ("BEDROCK_CHAT_LIMITS_MESSAGES_PER_MINUTE_PER_OWNER", "20"),
];
/// No level may take longer than this.
const LEVEL_LIMIT: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, PartialEq)]
enum Endpoint {
    /// `POST /api/chat/stream`: stores the message first, then the answer.
    Page,
    /// The same, each in a conversation of its own that already has an
    /// exchange.
    PageFollowUp,
    /// `POST /api/chat`: the seed's format; nothing stored.
    Compat,
}

/// When a level's C requests leave.
#[derive(Clone, Copy, PartialEq)]
enum Arrival {
    /// All at the same instant: the harshest burst, and the levels' default.
    AtOnce,
    /// Evenly over this long: request n leaves at n × spread / C. This is
    /// C people pressing Enter within the same second, as issue 14 words
    /// it; the answers that started earlier are streaming while the later
    /// ones arrive.
    Over(Duration),
}

/// What one request saw.
struct Outcome {
    first_delta_ms: Option<f64>,
    duration_ms: f64,
    events: usize,
    error: Option<String>,
}

/// CPU-seconds (user + system) of a process, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let (user, kernel) = user_and_kernel_seconds(pid);
    user + kernel
}

/// CPU-seconds a process spent in its own code and in the kernel's, from
/// `/proc/<pid>/stat`. On loopback the kernel's share of a write includes
/// the receiving socket's work too, which a network would move elsewhere.
fn user_and_kernel_seconds(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |n: usize| fields.get(n).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}

/// CPU-seconds this machine's cores have spent idle (idle and I/O wait)
/// since boot, from `/proc/stat`: what is left for the server, whoever
/// else (the simulator, this generator, PostgreSQL) runs.
fn machine_idle_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    (fields.get(3).unwrap_or(&0.0) + fields.get(4).unwrap_or(&0.0)) / 100.0
}

/// Resident memory of a process in MiB: `VmHWM` (peak) or `VmRSS` (now).
fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Each first delta's time beyond the model's own first token, in ms.
fn first_token_overheads(outcomes: &[Outcome]) -> Vec<f64> {
    outcomes
        .iter()
        .filter_map(|o| o.first_delta_ms)
        .map(|ms| ms - MODEL_FIRST_TOKEN_MS)
        .collect()
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The standalone simulator: its process (whose CPU each level reports, as
/// the box's third tenant) and its address.
struct Simulator {
    process: Child,
    url: String,
}

/// The standalone simulator on a port of its own.
fn start_simulator() -> Simulator {
    let addr = free_loopback_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_bedrock-chat"))
        .args(["simulator", "--addr", &addr])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the simulator starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the simulator did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Simulator {
        process: child,
        url: format!("http://{addr}"),
    }
}

/// The server, its limits raised so that thousands of users from one
/// address measure the server, not the limiter.
/// `LOAD_SERVER_ENV="KEY=value,KEY=value"` adds settings, to measure what
/// one changes (e.g. `BEDROCK_CHAT_SERVER_LISTEN_BACKLOG=128`).
/// `settings` come before those.
fn start_server(db: &Db, simulator: &Simulator, settings: &[(&str, &str)]) -> ServerProcess {
    let extra = std::env::var("LOAD_SERVER_ENV").unwrap_or_default();
    let mut env: Vec<(&str, &str)> = vec![
        ("BEDROCK_CHAT_BEDROCK_BACKEND", "aws"),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &simulator.url),
        ("BEDROCK_CHAT_LIMITS_MAX_LIVE_STREAMS", "20000"),
        ("BEDROCK_CHAT_LIMITS_DAILY_TOKENS_PER_OWNER", "0"),
        ("BEDROCK_CHAT_SERVER_MAX_CONNECTIONS", "20000"),
    ];
    env.extend_from_slice(settings);
    env.extend(extra.split(',').filter_map(|pair| pair.split_once('=')));
    ServerProcess::start(db, &env)
}

/// Someone with a conversation: their cookie and its id.
struct Existing {
    cookie: String,
    conversation_id: String,
}

/// A conversation of one exchange for each of `c` new people, made `AT_ONCE`
/// at a time (not measured).
async fn existing_conversations(http: &reqwest::Client, base: &str, c: usize) -> Vec<Existing> {
    const AT_ONCE: usize = 50;
    let made = futures::stream::iter(0..c)
        .map(|n| async move {
            let response = http
                .post(format!("{base}/api/chat/stream"))
                .json(&serde_json::json!({ "content": format!("Hello #{n} [sim tokens=1]") }))
                .send()
                .await
                .expect("the first message is answered");
            assert!(response.status().is_success(), "{}", response.status());
            let cookie = response
                .headers()
                .get_all(reqwest::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
                .collect::<Vec<_>>()
                .join("; ");
            let body = response.bytes().await.expect("the first answer is read");
            let mut conversation_id = None;
            bedrock_chat::sse::Parser::new().feed(&body, |e| {
                if conversation_id.is_none() {
                    conversation_id = serde_json::from_str::<serde_json::Value>(&e.data)
                        .ok()
                        .and_then(|v| v["conversation_id"].as_str().map(str::to_owned));
                }
            });
            Existing {
                cookie,
                conversation_id: conversation_id.expect("the stream names its conversation"),
            }
        })
        .buffer_unordered(AT_ONCE);
    tokio::time::timeout(LEVEL_LIMIT, made.collect())
        .await
        .expect("the conversations are made within the limit")
}

/// The request that sends `prompt` to `endpoint`: for a next message, as
/// the person who has `existing`, in that conversation.
fn request(
    http: &reqwest::Client,
    base: &str,
    endpoint: Endpoint,
    prompt: String,
    existing: Option<&Existing>,
) -> reqwest::RequestBuilder {
    match (endpoint, existing) {
        (Endpoint::PageFollowUp, Some(existing)) => http
            .post(format!("{base}/api/chat/stream"))
            .header(reqwest::header::COOKIE, &existing.cookie)
            .json(&serde_json::json!({
                "content": prompt,
                "conversation_id": existing.conversation_id,
            })),
        (Endpoint::Page | Endpoint::PageFollowUp, _) => http
            .post(format!("{base}/api/chat/stream"))
            .json(&serde_json::json!({ "content": prompt })),
        (Endpoint::Compat, _) => http
            .post(format!("{base}/api/chat"))
            .json(&serde_json::json!({ "messages": [{ "role": "user", "content": prompt }] })),
    }
}

async fn one(
    http: &reqwest::Client,
    base: &str,
    endpoint: Endpoint,
    n: usize,
    existing: Option<&Existing>,
) -> Outcome {
    let sent = Instant::now();
    let request = request(http, base, endpoint, format!("{} #{n}", *PROMPT), existing);
    let mut outcome = Outcome {
        first_delta_ms: None,
        duration_ms: 0.0,
        events: 0,
        error: None,
    };
    let response = match request.send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            // The status and our error code: "HTTP 503 storage_unavailable".
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let code = body["error"]["code"].as_str().unwrap_or("");
            outcome.error = Some(format!("HTTP {status} {code}").trim_end().to_owned());
            return outcome;
        }
        Err(e) => {
            outcome.error = Some(if e.is_timeout() {
                "timeout".into()
            } else {
                "connection".into()
            });
            return outcome;
        }
    };
    let mut parser = bedrock_chat::sse::Parser::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            outcome.error = Some("cut".into());
            break;
        };
        parser.feed(&chunk, |e| {
            outcome.events += 1;
            let is_text = match endpoint {
                Endpoint::Page | Endpoint::PageFollowUp => e.event == "delta",
                Endpoint::Compat => e.data.contains("\"content\":\"") && !e.data.contains("\"content\":\"\""),
            };
            if is_text && outcome.first_delta_ms.is_none() {
                outcome.first_delta_ms = Some(sent.elapsed().as_secs_f64() * 1e3);
            }
            if e.event == "error" || e.data.contains("\"error\":") {
                outcome.error = Some("error event".into());
            }
        });
    }
    outcome.duration_ms = sent.elapsed().as_secs_f64() * 1e3;
    outcome
}

async fn level(db: &Db, simulator: &Simulator, endpoint: Endpoint, arrival: Arrival, c: usize, label: &str) {
    let server = start_server(db, simulator, &[]);
    let pid = server.child.id();
    let pid_text = pid.to_string();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(c)
        .tcp_nodelay(true)
        .timeout(LEVEL_LIMIT)
        .build()
        .unwrap();
    let base = server.base.clone();
    let existing = match endpoint {
        Endpoint::PageFollowUp => existing_conversations(&http, &base, c).await,
        _ => Vec::new(),
    };
    // Measured from here; the commits of the conversations made are not.
    let made = ServerFigures::scrape(&http, &base).await;
    let cpu_before = user_and_kernel_seconds(&pid_text);
    let own_before = cpu_seconds("self");
    let simulator_pid = simulator.process.id().to_string();
    let simulator_before = cpu_seconds(&simulator_pid);
    let idle_rss = rss_mib(pid, "VmRSS:");
    let started = Instant::now();
    let machine_idle_before = machine_idle_seconds();
    // The machine's idle time while first tokens are due: until the last
    // request has left and the model's first token has had time to come.
    let first_tokens_due = match arrival {
        Arrival::AtOnce => Duration::ZERO,
        Arrival::Over(spread) => spread,
    } + Duration::from_millis(500);
    let idle_while_due = tokio::spawn(async move {
        tokio::time::sleep_until((started + first_tokens_due).into()).await;
        machine_idle_seconds() - machine_idle_before
    });
    let runs = (0..c).map(|n| {
        let (http, base, existing) = (&http, &base, existing.get(n));
        async move {
            if let Arrival::Over(spread) = arrival {
                // Timed from when it leaves, like every request.
                tokio::time::sleep_until((started + spread.mul_f64(n as f64 / c as f64)).into()).await;
            }
            one(http, base, endpoint, n, existing).await
        }
    });
    let outcomes = tokio::time::timeout(LEVEL_LIMIT, futures::future::join_all(runs))
        .await
        .expect("the level finishes within its limit");
    let wall = started.elapsed().as_secs_f64();
    let (server_user, server_kernel) = {
        let (user, kernel) = user_and_kernel_seconds(&pid_text);
        (user - cpu_before.0, kernel - cpu_before.1)
    };
    let server_cpu = server_user + server_kernel;
    let own_cpu = cpu_seconds("self") - own_before;
    let simulator_cpu = cpu_seconds(&simulator_pid) - simulator_before;
    let machine_idle = machine_idle_seconds() - machine_idle_before;
    let idle_while_due = idle_while_due.await.expect("the idle sampler");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let events: usize = outcomes.iter().map(|o| o.events).sum();
    let overhead = first_token_overheads(&outcomes);
    let durations: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.error.is_none())
        .map(|o| o.duration_ms)
        .collect();
    let store = ServerFigures::scrape(&http, &server.base).await.since(&made);
    let mut errors: std::collections::BTreeMap<&str, usize> = Default::default();
    for o in &outcomes {
        if let Some(e) = &o.error {
            *errors.entry(e.as_str()).or_default() += 1;
        }
    }
    println!(
        "{label:<28} C={c:>5}: first token +{:>7.1} ms p50, +{:>7.1} ms p99 | stream p50 {:>6.0} ms | {:>7.0} events/s | server {:>6.3} CPU-s/1000 events ({:.3} own code, {:.3} kernel) | peak RSS {:>6.1} MiB ({:.0} KiB per live answer) | errors {:?} | CPU-s: server {:.1}, simulator {:.1}, generator {:.1}, of {:.1} on {cores} cores",
        percentile(overhead.clone(), 0.5),
        percentile(overhead, 0.99),
        percentile(durations, 0.5),
        events as f64 / wall,
        server_cpu * 1000.0 / events.max(1) as f64,
        server_user * 1000.0 / events.max(1) as f64,
        server_kernel * 1000.0 / events.max(1) as f64,
        rss_mib(pid, "VmHWM:"),
        (rss_mib(pid, "VmHWM:") - idle_rss) * 1024.0 / c as f64,
        errors,
        server_cpu,
        simulator_cpu,
        own_cpu,
        wall * cores as f64,
    );
    let store_line = if store.commits > 0.0 {
        format!(
            "store: {:.0} commits ({:.0}/s over the level) carrying {:.1} writes each; storing a message took {:.1} ms on average, an answer's end {:.1} ms",
            store.commits,
            store.commits / wall,
            store.writes / store.commits,
            store.begin_mean() * 1e3,
            store.finish_mean() * 1e3,
        )
    } else {
        "store: not used".to_owned()
    };
    println!(
        "{:<28}          {store_line} | first token by the server's clock: {:.1} ms after the request on average | /metrics after {c} answers: {} series, {} bytes",
        "", store.first_token_mean() * 1e3, store.series, store.metrics_bytes,
    );
    // A box with no idle time left while first tokens were due sets their
    // delay by its queue of runnable threads, whatever the server does.
    println!(
        "{:<28}          machine idle: {:.1} of {:.1} CPU-s while first tokens were due (the first {:.1} s), {:.1} of {:.1} over the level",
        "",
        idle_while_due,
        first_tokens_due.as_secs_f64() * cores as f64,
        first_tokens_due.as_secs_f64(),
        machine_idle,
        wall * cores as f64,
    );
    if arrival != Arrival::AtOnce {
        // Overhead that grows with arrival order is a queue building up:
        // the box (or the store) is behind the rate people arrive at.
        let tenths: Vec<String> = outcomes
            .chunks(c.div_ceil(10))
            .map(|tenth| {
                let overhead = first_token_overheads(tenth);
                format!(
                    "+{:.0}/+{:.0}",
                    percentile(overhead.clone(), 0.5),
                    percentile(overhead, 0.99)
                )
            })
            .collect();
        println!(
            "{:<28}          first token beyond the model's own by tenth of arrivals, p50/p99 ms: {}",
            "",
            tenths.join(" "),
        );
    }
    drop(server);
}

/// What the server's `/metrics` says: its store's commits, the answers it ended, and its own size.
struct ServerFigures {
    commits: f64,
    writes: f64,
    series: usize,
    metrics_bytes: usize,
    /// Answers ended, as `/metrics` counts them.
    answers: f64,
    /// Seconds spent storing new messages (`begin_exchange`, queue
    /// included), and how many.
    begin_sum: f64,
    begin_count: f64,
    /// The same for answers' ends (`finish_answer`).
    finish_sum: f64,
    finish_count: f64,
    /// Seconds from the handler's start to the first token, as the server
    /// measures it (the model's own 100 ms included), and how many.
    first_token_sum: f64,
    first_token_count: f64,
}

impl ServerFigures {
    /// What happened after `before`.
    fn since(self, before: &Self) -> Self {
        Self {
            commits: self.commits - before.commits,
            writes: self.writes - before.writes,
            answers: self.answers - before.answers,
            begin_sum: self.begin_sum - before.begin_sum,
            begin_count: self.begin_count - before.begin_count,
            finish_sum: self.finish_sum - before.finish_sum,
            finish_count: self.finish_count - before.finish_count,
            first_token_sum: self.first_token_sum - before.first_token_sum,
            first_token_count: self.first_token_count - before.first_token_count,
            ..self
        }
    }

    /// Mean seconds to store a new message.
    fn begin_mean(&self) -> f64 {
        self.begin_sum / self.begin_count
    }

    /// Mean seconds to store an answer's end.
    fn finish_mean(&self) -> f64 {
        self.finish_sum / self.finish_count
    }

    /// Mean seconds to the first token, by the server's clock.
    fn first_token_mean(&self) -> f64 {
        self.first_token_sum / self.first_token_count
    }

    async fn scrape(http: &reqwest::Client, base: &str) -> Self {
        let text = match http.get(format!("{base}/metrics")).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let value = |name: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(name)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(0.0)
        };
        // Summed over every label set that starts so (e.g. every model).
        let sum_of = |prefix: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum()
        };
        Self {
            commits: value("bedrock_chat_store_commits_total"),
            writes: value("bedrock_chat_store_grouped_writes_total"),
            series: text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .count(),
            metrics_bytes: text.len(),
            begin_sum: sum_of(
                "bedrock_chat_store_operation_duration_seconds_sum{operation=\"begin_exchange\"}",
            ),
            begin_count: sum_of(
                "bedrock_chat_store_operation_duration_seconds_count{operation=\"begin_exchange\"}",
            ),
            finish_sum: sum_of(
                "bedrock_chat_store_operation_duration_seconds_sum{operation=\"finish_answer\"}",
            ),
            finish_count: sum_of(
                "bedrock_chat_store_operation_duration_seconds_count{operation=\"finish_answer\"}",
            ),
            first_token_sum: sum_of("bedrock_chat_time_to_first_token_seconds_sum{"),
            first_token_count: sum_of("bedrock_chat_time_to_first_token_seconds_count{"),
            answers: text
                .lines()
                .filter(|l| l.starts_with("bedrock_chat_answers_total{"))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum(),
        }
    }
}

/// What one answer costs the server before and around its first byte: 500
/// one-token answers one after another, server CPU per answer (`/proc`
/// counts it in hundredths of a second: 0.02 ms an answer). For next
/// messages, each goes to a conversation of one exchange made beforehand
/// (not measured). `settings` are the server's beyond the bench's own.
async fn one_at_a_time(
    db: &Db,
    simulator: &Simulator,
    endpoint: Endpoint,
    label: &str,
    settings: &[(&str, &str)],
) {
    const ANSWERS: usize = 500;
    let server = start_server(db, simulator, settings);
    let pid = server.child.id().to_string();
    let http = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
    // Warm: connections to the server and from it to the simulator.
    let warm = match endpoint {
        Endpoint::PageFollowUp => Endpoint::Page,
        other => other,
    };
    for n in 0..5 {
        drain_one(&http, &server.base, warm, n, None).await;
    }
    let existing = match endpoint {
        Endpoint::PageFollowUp => existing_conversations(&http, &server.base, ANSWERS).await,
        _ => Vec::new(),
    };
    let cpu_before = cpu_seconds(&pid);
    let started = Instant::now();
    for n in 0..ANSWERS {
        drain_one(&http, &server.base, endpoint, n, existing.get(n)).await;
    }
    let wall = started.elapsed().as_secs_f64() * 1e3 / ANSWERS as f64;
    let cpu = (cpu_seconds(&pid) - cpu_before) * 1e3 / ANSWERS as f64;
    println!("{label:<28} one at a time: {cpu:.2} ms of server CPU per one-token answer ({wall:.2} ms each, request to last byte)");
}

/// The size of `/metrics` after 10,000 answers (on every offered model,
/// with errors and refusals among them): its series are bounded by the
/// configuration, not by how many answers were written.
async fn metrics_after_many_answers(db: &Db, simulator: &Simulator) {
    const ANSWERS: usize = 10_000;
    const AT_ONCE: usize = 50;
    const MODELS: [&str; 3] = [
        "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "us.amazon.nova-lite-v1:0",
    ];
    let server = start_server(db, simulator, &[]);
    let http = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
    let started = Instant::now();
    let base = &server.base;
    let before = ServerFigures::scrape(&http, base).await;
    let answers = futures::stream::iter(0..ANSWERS)
        .map(|n| {
            let http = &http;
            async move {
                // One in fifty fails before its stream, as a throttled call does.
                let fail = if n % 50 == 0 { " fail=validation" } else { "" };
                let body = serde_json::json!({
                    "content": format!("Many #{n} [sim tokens=1{fail}]"),
                    "model_id": MODELS[n % MODELS.len()],
                });
                if let Ok(response) = http
                    .post(format!("{base}/api/chat/stream"))
                    .json(&body)
                    .send()
                    .await
                {
                    let _ = response.bytes().await;
                }
            }
        })
        .buffer_unordered(AT_ONCE);
    tokio::time::timeout(LEVEL_LIMIT, answers.collect::<Vec<()>>())
        .await
        .expect("10,000 answers within the limit");
    let after = ServerFigures::scrape(&http, base).await;
    println!(
        "{:<28} /metrics: {} series, {} bytes with no answer yet; {} series, {} bytes after {:.0} answers on {} models ({:.0} s)",
        "cardinality",
        before.series,
        before.metrics_bytes,
        after.series,
        after.metrics_bytes,
        after.answers,
        MODELS.len(),
        started.elapsed().as_secs_f64(),
    );
}

async fn drain_one(
    http: &reqwest::Client,
    base: &str,
    endpoint: Endpoint,
    n: usize,
    existing: Option<&Existing>,
) {
    let request = request(http, base, endpoint, format!("One [sim tokens=1] #{n}"), existing);
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.bytes().await.unwrap();
}

#[tokio::main]
async fn main() {
    // Thousands of sockets on this side too.
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    let levels: Vec<usize> = match std::env::var("LOAD_LEVELS") {
        Ok(list) => list.split(',').filter_map(|c| c.trim().parse().ok()).collect(),
        Err(_) => LEVELS.to_vec(),
    };
    // `LOAD_PARTS="sqlite,compat"` runs only those parts: single (one
    // answer at a time), cardinality, sqlite, postgres, followups, compat,
    // spread (the three endpoints with the requests spread over a second).
    let parts = std::env::var("LOAD_PARTS").unwrap_or_default();
    let runs = |part: &str| parts.is_empty() || parts.split(',').any(|p| p.trim() == part);
    let mut simulator = start_simulator();
    let sqlite = Db::sqlite();
    if runs("single") {
        one_at_a_time(&sqlite, &simulator, Endpoint::Page, "page endpoint, SQLite", &[]).await;
        one_at_a_time(
            &sqlite,
            &simulator,
            Endpoint::PageFollowUp,
            "next message, SQLite",
            &[],
        )
        .await;
        if let Some(postgres) = Db::postgres().await {
            for (caps, settings) in [("", &[][..]), (", caps", &SHIPPED_CAPS[..])] {
                let first = format!("page endpoint, PostgreSQL{caps}");
                one_at_a_time(&postgres, &simulator, Endpoint::Page, &first, settings).await;
                let next = format!("next message, PostgreSQL{caps}");
                one_at_a_time(&postgres, &simulator, Endpoint::PageFollowUp, &next, settings).await;
            }
        }
        one_at_a_time(
            &sqlite,
            &simulator,
            Endpoint::Compat,
            "compatibility endpoint",
            &[],
        )
        .await;
    }
    if runs("cardinality") {
        metrics_after_many_answers(&sqlite, &simulator).await;
    }
    // The burst parts: each runs its series at every level. A PostgreSQL
    // series gets a database of its own.
    let over_a_second = Arrival::Over(Duration::from_secs(1));
    let series = [
        (
            "sqlite",
            Backend::Sqlite,
            Endpoint::Page,
            Arrival::AtOnce,
            "page endpoint, SQLite",
        ),
        (
            "postgres",
            Backend::Postgres,
            Endpoint::Page,
            Arrival::AtOnce,
            "page endpoint, PostgreSQL",
        ),
        (
            "followups",
            Backend::Sqlite,
            Endpoint::PageFollowUp,
            Arrival::AtOnce,
            "next message, SQLite",
        ),
        (
            "followups",
            Backend::Postgres,
            Endpoint::PageFollowUp,
            Arrival::AtOnce,
            "next message, PostgreSQL",
        ),
        (
            "compat",
            Backend::Sqlite,
            Endpoint::Compat,
            Arrival::AtOnce,
            "compatibility endpoint",
        ),
        // The same people, pressing Enter over one second instead of at
        // one instant.
        (
            "spread",
            Backend::Sqlite,
            Endpoint::Page,
            over_a_second,
            "page, SQLite, over 1 s",
        ),
        (
            "spread",
            Backend::Postgres,
            Endpoint::Page,
            over_a_second,
            "page, PostgreSQL, over 1 s",
        ),
        (
            "spread",
            Backend::Sqlite,
            Endpoint::Compat,
            over_a_second,
            "compatibility, over 1 s",
        ),
    ];
    for (part, backend, endpoint, arrival, label) in series {
        if !runs(part) {
            continue;
        }
        let postgres;
        let db = match backend {
            Backend::Sqlite => &sqlite,
            Backend::Postgres => {
                postgres = Db::postgres().await;
                match &postgres {
                    Some(db) => db,
                    None => continue,
                }
            }
        };
        for &c in &levels {
            level(db, &simulator, endpoint, arrival, c, label).await;
        }
    }
    let _ = simulator.process.kill();
    let _ = simulator.process.wait();
}
