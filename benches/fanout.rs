//! Generations benchmark: what it costs that an answer belongs to the server.
//!
//! * relay cost per event with 1, 10 and 100 listeners on one answer;
//! * resume latency: a reconnect with `last_event_id` until its first byte;
//! * memory per live generation: its log, and the process's resident memory.
//!
//! Loopback only, against the built-in simulator; every loop is bounded in
//! count. Prints figures; asserts nothing about time.
//!
//! Run with `./dev bench` (or `cargo bench --features ssr --bench fanout`).

// The integration tests' own helpers: a bench is a crate of its own, and
// Cargo has no dev-only library target to share them through.
#[path = "../tests/api/support/mod.rs"]
mod support;

use futures::StreamExt;
use std::time::{Duration, Instant};
use support::*;

const TOKENS: usize = 2000;
const RUNS: usize = 5;
const RESUMES: usize = 40;
const LIVE: usize = 100;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Reads a stream to its end; returns the events and the time of the first byte.
async fn drain(response: reqwest::Response, since: Instant) -> (usize, Duration) {
    let mut parser = bedrock_chat::sse::Parser::new();
    let mut body = response.bytes_stream();
    let mut events = 0;
    let mut first = None;
    while let Some(chunk) = body.next().await {
        first.get_or_insert_with(|| since.elapsed());
        parser.feed(&chunk.unwrap(), |_| events += 1);
    }
    (events, first.unwrap_or_default())
}

async fn answer_id_of(
    response: reqwest::Response,
) -> (String, impl futures::Stream<Item = reqwest::Result<bytes::Bytes>>) {
    let mut body = response.bytes_stream();
    let mut parser = bedrock_chat::sse::Parser::new();
    let mut start = None;
    while start.is_none() {
        let chunk = body.next().await.unwrap().unwrap();
        parser.feed(&chunk, |e| {
            if e.event == "start" {
                start = Some(e);
            }
        });
    }
    let data: serde_json::Value = serde_json::from_str(&start.unwrap().data).unwrap();
    (data["answer_id"].as_str().unwrap().to_owned(), body)
}

/// One answer of `TOKENS` deltas read by `listeners` clients at once; the
/// time until the last of them has the whole answer, per event.
async fn fan_out(app: &TestApp, listeners: usize, run: usize) -> f64 {
    let prompt = format!("Fan-out {listeners} run {run} [sim tokens={TOKENS}]");
    let started = Instant::now();
    let (answer_id, first) = answer_id_of(app.send(None, &prompt).await).await;
    let url = app.url(&format!("/api/generations/{answer_id}/events?last_event_id=1"));
    let others = (1..listeners).map(|_| {
        let url = url.clone();
        async move { drain(app.http.get(&url).send().await.unwrap(), started).await.0 }
    });
    let first = async move { first.count().await };
    let (_, counts) = futures::join!(first, futures::future::join_all(others));
    let events = counts.first().copied().unwrap_or(TOKENS + 2).max(1);
    started.elapsed().as_secs_f64() * 1e6 / events as f64
}

#[tokio::main]
async fn main() {
    tokio::spawn(run()).await.unwrap();
}

async fn run() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_BEDROCK_MAX_TOKENS", "100000")]).await;
    app.get_json("/api/conversations").await; // the owner's cookie
    fan_out(&app, 1, 0).await; // warm-up

    println!("answer of {TOKENS} deltas, no model delay, median of {RUNS} runs (the listeners run in");
    println!("this process too, so their HTTP and SSE parsing is part of the figures):");
    for listeners in [1, 10, 100] {
        let mut per_event = Vec::new();
        for run in 0..RUNS {
            per_event.push(fan_out(&app, listeners, run).await);
        }
        let per_event = median(per_event);
        println!(
            "  {listeners:>3} listener(s): {per_event:8.2} us per event until the last has the answer \
             ({:.2} us per event per listener)",
            per_event / listeners as f64
        );
    }

    // Resume: a client comes back with the id of the last event it saw,
    // halfway through a long answer.
    let (answer_id, first) =
        answer_id_of(app.send(None, "Resume me [sim tokens=4000 delay_ms=2]").await).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for i in 0..RESUMES {
        let url = app.url(&format!(
            "/api/generations/{answer_id}/events?last_event_id={}",
            50 + i
        ));
        let asked = Instant::now();
        let response = app.http.get(&url).send().await.unwrap();
        let mut body = response.bytes_stream();
        body.next().await.unwrap().unwrap();
        latencies.push(asked.elapsed().as_secs_f64() * 1e3);
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "resume (reconnect with last_event_id -> first replayed byte, {RESUMES} runs): median {:.2} ms, p90 {:.2} ms",
        latencies[RESUMES / 2],
        latencies[RESUMES * 9 / 10]
    );

    // Memory: LIVE answers running at once, each about 250 deltas in.
    let before = resident_kib();
    let (held_before, bytes_before) = app.generations.held();
    let mut streams = Vec::new();
    for i in 0..LIVE {
        let prompt = format!("Live {i} [sim tokens=500 delay_ms=20]");
        streams.push(answer_id_of(app.send(None, &prompt).await).await.1);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = resident_kib();
    let (held, log_bytes) = app.generations.held();
    let live = held - held_before;
    println!(
        "{live} live answers, about 250 deltas in: logs hold {:.1} KiB per answer; \
         process memory grew {:.1} KiB per answer (SDK, HTTP and log together)",
        (log_bytes - bytes_before) as f64 / 1024.0 / live as f64,
        before.abs_diff(during) as f64 / live as f64
    );
    drop(streams);
}
