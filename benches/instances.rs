//! Several instances on one PostgreSQL: what sharing an answer costs.
//!
//! * delivery lag: how much later a follower on another instance gets each
//!   event than a listener on the instance writing the answer;
//! * under load: 200 answers at once on one instance, each followed from
//!   another: time to the first token on the writer, and how much later the
//!   followers get the end;
//! * the same 200 answers on one instance with SQLite, for comparison.
//!
//! Loopback only; every loop is bounded in count. Prints figures; asserts
//! nothing about time. Needs `TEST_POSTGRES_URL` (`./dev bench` sets it).

// The integration tests' own helpers: a bench is a crate of its own, and
// Cargo has no dev-only library target to share them through.
#[path = "../tests/api/support/mod.rs"]
mod support;

use futures::StreamExt;
use std::time::{Duration, Instant};
use support::*;
use tokio::sync::oneshot;

const LAG_RUNS: usize = 5;
const LOAD: usize = 200;

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Reads an SSE response to its end: when each event id arrived. `start`
/// gets the answer id as soon as the `start` event arrives, so that a
/// follower can begin while this stream goes on.
async fn arrivals(
    response: reqwest::Response,
    start: Option<oneshot::Sender<String>>,
) -> Vec<(u64, Instant)> {
    let mut start = start;
    let mut parser = bedrock_chat::sse::Parser::new();
    let mut body = response.bytes_stream();
    let mut seen = Vec::new();
    while let Some(chunk) = body.next().await {
        let now = Instant::now();
        parser.feed(&chunk.unwrap(), |e| {
            if let Some(id) = e.id.as_deref().and_then(|id| id.parse().ok()) {
                seen.push((id, now));
            }
            if e.event == "start" {
                let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                if let Some(start) = start.take() {
                    let _ = start.send(data["answer_id"].as_str().unwrap().to_owned());
                }
            }
        });
    }
    seen
}

/// Follows the answer (once its id is known) on the instance at `base`.
async fn follow(
    http: &reqwest::Client,
    base: &str,
    answer_id: oneshot::Receiver<String>,
) -> Vec<(u64, Instant)> {
    let answer = answer_id.await.unwrap();
    let url = format!("{base}/api/generations/{answer}/events?last_event_id=0");
    arrivals(http.get(&url).send().await.unwrap(), None).await
}

/// One answer on `writer`, followed from `follower`: per event, how much
/// later the follower had it (ms).
async fn lag(http: &reqwest::Client, writer: &Instance, follower: &Instance, run: usize) -> Vec<f64> {
    let prompt = format!("Lag run {run} [sim tokens=200 delay_ms=5]");
    let response = send_as(http, &writer.base, None, &prompt).await;
    let (answer_id, known) = oneshot::channel();
    let (here, there) = futures::join!(
        arrivals(response, Some(answer_id)),
        follow(http, &follower.base, known)
    );
    let at: std::collections::HashMap<u64, Instant> = here.into_iter().collect();
    there
        .into_iter()
        .filter(|(id, _)| *id > 1)
        .filter_map(|(id, t)| {
            at.get(&id)
                .map(|h| t.saturating_duration_since(*h).as_secs_f64() * 1e3)
        })
        .collect()
}

/// `LOAD` answers at once on `writer` (followed from `follower`, if any):
/// time to the first delta beyond the model's own (ms), and how much later
/// followers got `done` than the writer's listeners (ms).
async fn load(writer: &str, follower: Option<&str>, label: &str) {
    let http = new_user();
    get_json_as(&http, &format!("{writer}/api/conversations")).await;
    let started = Instant::now();
    let runs = (0..LOAD).map(|n| {
        let http = &http;
        async move {
            let prompt = format!("Load {n} [sim tokens=100 delay_ms=10]");
            let sent = Instant::now();
            let response = send_as(http, writer, None, &prompt).await;
            let (answer_id, known) = oneshot::channel();
            let followed = async {
                let base = follower?;
                follow(http, base, known).await.last().map(|(_, t)| *t)
            };
            let (here, there) = futures::join!(arrivals(response, Some(answer_id)), followed);
            let first_delta = here.iter().find(|(id, _)| *id == 2).map(|(_, t)| *t).unwrap();
            let done = here.last().unwrap().1;
            (
                first_delta.duration_since(sent).as_secs_f64() * 1e3,
                there.map(|t| t.saturating_duration_since(done).as_secs_f64() * 1e3),
            )
        }
    });
    let results = futures::future::join_all(runs).await;
    let took = started.elapsed();
    let first: Vec<f64> = results.iter().map(|(f, _)| *f).collect();
    println!(
        "{label}: {LOAD} answers at once in {took:.2?}; first delta p50 {:.1} ms, p99 {:.1} ms (the simulator's own first token: ~0 ms)",
        percentile(first.clone(), 0.5),
        percentile(first, 0.99)
    );
    let ends: Vec<f64> = results.iter().filter_map(|(_, e)| *e).collect();
    if !ends.is_empty() {
        println!(
            "{label}: followers on another instance got `done` later by p50 {:.1} ms, p99 {:.1} ms",
            percentile(ends.clone(), 0.5),
            percentile(ends, 0.99)
        );
    }
}

#[tokio::main]
async fn main() {
    let Some((db, instances)) = start_instances(2, &[]).await else {
        println!("instances bench skipped: TEST_POSTGRES_URL is not set");
        return;
    };
    let http = new_user();
    get_json_as(&http, &instances[0].url("/api/conversations")).await;
    let mut lags = Vec::new();
    for run in 0..LAG_RUNS {
        lags.extend(lag(&http, &instances[0], &instances[1], run).await);
    }
    println!(
        "delivery lag, follower on another instance vs listener on the writer, {} events: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms (event_flush_ms = 100)",
        lags.len(),
        percentile(lags.clone(), 0.5),
        percentile(lags.clone(), 0.9),
        percentile(lags, 1.0)
    );

    load(
        &instances[0].base,
        Some(&instances[1].base),
        "PostgreSQL, 2 instances",
    )
    .await;
    let events: i64 = {
        let Db::Postgres { url, .. } = &db else {
            unreachable!()
        };
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM answer_events")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    println!("answer_events rows held (finished answers linger 60 s): {events}");
    drop(instances);

    let single = spawn_app().await;
    load(&single.base, None, "SQLite, 1 instance").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
}
