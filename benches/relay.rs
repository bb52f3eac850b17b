//! Relay benchmark: what our HTTP layer adds on top of the Bedrock SDK.
//!
//! Everything runs on loopback against the built-in simulator with no
//! artificial delays, so the figures are the cost of framing, relaying and
//! parsing, not of a model. Every loop is bounded in count. Prints figures;
//! asserts nothing about time (timed assertions flake on shared machines).
//!
//! Run with `./dev bench` (or `cargo bench --features ssr --bench relay`).

// The integration tests' own helpers: a bench is a crate of its own, and
// Cargo has no dev-only library target to share them through.
#[path = "../tests/api/support/mod.rs"]
mod support;

use bedrock_chat::bedrock::{BedrockChat, ConverseInput, Turn};
use futures::StreamExt;
use std::time::{Duration, Instant};
use support::*;

const TOKENS: usize = 2000;
const RUNS: usize = 7;
const TTFB_RUNS: usize = 40;
const CONCURRENT: usize = 20;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Drains one answer straight from the SDK (no HTTP layer): the baseline.
async fn sdk_only(bedrock: &BedrockChat, prompt: &str) -> (Duration, usize) {
    let input = ConverseInput::text("bench", "", vec![Turn::text(true, prompt)], 100_000, 0.5);
    let started = Instant::now();
    let mut stream = bedrock.converse_stream(&input).await.unwrap();
    let mut events = 0;
    while let Some(event) = stream.next().await {
        event.unwrap();
        events += 1;
    }
    (started.elapsed(), events)
}

/// One answer through our SSE endpoint, parsed as the browser parses it.
async fn through_app(app: &TestApp, prompt: &str) -> (Duration, usize, Duration) {
    let started = Instant::now();
    // A new conversation each time: the message is stored (one commit)
    // before the model is called, and the answer when it ends.
    let response = app.send(None, prompt).await;
    let mut parser = bedrock_chat::sse::Parser::new();
    let mut body = response.bytes_stream();
    let mut events = 0;
    let mut first = None;
    while let Some(chunk) = body.next().await {
        parser.feed(&chunk.unwrap(), |e| {
            if e.event == "delta" && first.is_none() {
                first = Some(started.elapsed());
            }
            events += 1;
        });
    }
    (started.elapsed(), events, first.unwrap_or_default())
}

/// The server's own time per tool round, seen from the client: from the
/// model's last argument fragment to the call running, and from the call's
/// result to the next round's first event (building the next request,
/// the SDK, loopback to the simulator and back). The tool's own run time
/// (running -> result) is left out.
async fn tool_round_overheads(app: &TestApp, rounds: usize) -> Vec<f64> {
    let prompt = format!(r#"Rounds [sim call=calculator:{{"expression":"1+1"}} rounds={rounds}]"#);
    let started = Instant::now();
    let response = app.send(None, &prompt).await;
    let mut parser = bedrock_chat::sse::Parser::new();
    let mut body = response.bytes_stream();
    let mut timeline: Vec<(String, f64)> = Vec::new();
    while let Some(chunk) = body.next().await {
        let at = started.elapsed().as_secs_f64() * 1e3;
        parser.feed(&chunk.unwrap(), |e| timeline.push((e.event, at)));
    }
    let mut overheads = Vec::new();
    for (i, (name, at)) in timeline.iter().enumerate() {
        if name == "tool_running" {
            let before = timeline[..i].iter().rev().find(|(n, _)| n == "tool_input");
            let result = timeline[i..].iter().find(|(n, _)| n == "tool_result");
            let next = timeline[i..]
                .iter()
                .skip_while(|(n, _)| n != "tool_result")
                .find(|(n, _)| n == "delta");
            if let (Some(before), Some(result), Some(next)) = (before, result, next) {
                overheads.push((at - before.1) + (next.1 - result.1));
            }
        }
    }
    overheads
}

#[tokio::main]
async fn main() {
    // Measure on worker threads, as the server's own tasks run.
    tokio::spawn(run()).await.unwrap();
}

async fn run() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_BEDROCK_MAX_TOKENS", "100000")]).await;
    let direct = BedrockChat::for_simulator(app.sim.clone(), 1);
    let long = format!("Benchmark [sim tokens={TOKENS}]");

    // Warm up connections and caches.
    sdk_only(&direct, &long).await;
    through_app(&app, &long).await;

    let mut sdk_per_event = Vec::new();
    let mut app_per_event = Vec::new();
    for _ in 0..RUNS {
        let (t, n) = sdk_only(&direct, &long).await;
        sdk_per_event.push(t.as_secs_f64() * 1e6 / n as f64);
        let (t, n, _) = through_app(&app, &long).await;
        app_per_event.push(t.as_secs_f64() * 1e6 / n as f64);
    }
    let sdk = median(sdk_per_event);
    let full = median(app_per_event);
    println!("answer of {TOKENS} deltas, median of {RUNS} runs:");
    println!("  simulator -> SDK only:                    {sdk:8.2} us/event");
    println!("  simulator -> SDK -> SSE relay -> client:  {full:8.2} us/event");
    println!(
        "  relay overhead (HTTP + SSE framing + parse): {:8.2} us/event",
        full - sdk
    );

    let short = "Hi [sim tokens=5 first_token_ms=0]";
    let mut ttfb = Vec::new();
    for _ in 0..TTFB_RUNS {
        ttfb.push(through_app(&app, short).await.2.as_secs_f64() * 1e3);
    }
    ttfb.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "request -> first delta at the client ({TTFB_RUNS} runs): median {:.2} ms, p90 {:.2} ms, min {:.2} ms",
        ttfb[TTFB_RUNS / 2],
        ttfb[TTFB_RUNS * 9 / 10],
        ttfb[0]
    );

    const ROUNDS: usize = 5;
    let tools = spawn_app_with(&[("BEDROCK_CHAT_TOOLS_MAX_ROUNDS", "10")]).await;
    tool_round_overheads(&tools, ROUNDS).await;
    let mut per_round = Vec::new();
    for _ in 0..RUNS {
        per_round.extend(tool_round_overheads(&tools, ROUNDS).await);
    }
    per_round.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "server time added per tool round, without the tool's run ({} rounds): median {:.2} ms, p90 {:.2} ms",
        per_round.len(),
        per_round[per_round.len() / 2],
        per_round[per_round.len() * 9 / 10]
    );

    let started = Instant::now();
    let mid = format!("Concurrent [sim tokens={}]", TOKENS / 4);
    let results = futures::future::join_all((0..CONCURRENT).map(|_| through_app(&app, &mid))).await;
    let events: usize = results.iter().map(|r| r.1).sum();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{CONCURRENT} concurrent answers of {} deltas: {:.0} events/s relayed in total ({elapsed:.2} s)",
        TOKENS / 4,
        events as f64 / elapsed
    );
}
