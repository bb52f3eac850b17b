//! What an operator sees across all answers: Prometheus metrics, and
//! OpenTelemetry traces when an OTLP endpoint is configured ([`traces`]).
//!
//! Every layer records through the `metrics` facade, as it logs through
//! `tracing`: the Bedrock layer its errors and retries, the generations
//! their answers, the store its operations, the HTTP layer its requests and
//! refusals. This module names the metrics (one list, below), describes
//! them, installs the process's one recorder and renders it for
//! `GET /metrics` (see `server::ops`).
//!
//! Invariants:
//! * **Bounded cardinality.** Labels never carry user text, ids or owners:
//!   only a configured model id, a status or error code (one enum each), a
//!   route pattern, a method, or a store operation's name. The number of
//!   series depends on the configuration, not on how many answers were
//!   written.
//! * **Nothing per delta.** An answer is counted when it starts and when it
//!   ends; gauges are read when `/metrics` is scraped. The relay's hot path
//!   records nothing.
//! * **One recorder per process.** Tests that start several applications in
//!   one process share it; a test that counts exactly starts the server as
//!   a process of its own.

pub mod traces;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{sync::OnceLock, time::Duration};

/// Answers begun, by model.
pub const ANSWERS_STARTED: &str = "bedrock_chat_answers_started_total";
/// Answers ended, by model and status (`complete`, `stopped`,
/// `interrupted`, or the error code of one that failed).
pub const ANSWERS: &str = "bedrock_chat_answers_total";
/// Answers being written now (gauge).
pub const ANSWERS_IN_PROGRESS: &str = "bedrock_chat_answers_in_progress";
/// Streams attached to answers of this instance now (gauge).
pub const LISTENERS: &str = "bedrock_chat_listeners";
/// Reconnections that resumed an answer (`Last-Event-ID`, a second tab).
pub const RESUMES: &str = "bedrock_chat_resumes_total";
/// From the request to the first token, by model.
pub const FIRST_TOKEN: &str = "bedrock_chat_time_to_first_token_seconds";
/// From the request to the stored answer, by model.
pub const ANSWER_DURATION: &str = "bedrock_chat_answer_duration_seconds";
/// Tokens Bedrock counted, by model and `kind` (`input`, `output`,
/// `cache_read`, `cache_write`).
pub const TOKENS: &str = "bedrock_chat_tokens_total";
/// What answers cost, in billionths of the currency, by model and currency.
pub const COST: &str = "bedrock_chat_cost_nanos_total";
/// Bedrock's failures, by our error code.
pub const BEDROCK_ERRORS: &str = "bedrock_chat_bedrock_errors_total";
/// Attempts the SDK made again after a throttle or a transient error.
pub const BEDROCK_RETRIES: &str = "bedrock_chat_bedrock_retries_total";
/// From a Stop to the stopped answer being stored.
pub const STOP_LATENCY: &str = "bedrock_chat_stop_latency_seconds";
/// Requests a limit refused, by `kind` (the error code).
pub const LIMIT_REFUSALS: &str = "bedrock_chat_limit_refusals_total";
/// HTTP requests, by method, route pattern and status.
pub const HTTP_REQUESTS: &str = "bedrock_chat_http_requests_total";
/// From a request to its response's head, by route pattern.
pub const HTTP_DURATION: &str = "bedrock_chat_http_request_duration_seconds";
/// The store's operations, by `operation`.
pub const STORE_DURATION: &str = "bedrock_chat_store_operation_duration_seconds";
/// Transactions the store's group commit made, and the writes they carried.
pub const STORE_COMMITS: &str = "bedrock_chat_store_commits_total";
pub const STORE_WRITES: &str = "bedrock_chat_store_grouped_writes_total";

/// Every metric above (the dashboard's and alerts' names are checked
/// against it).
pub const ALL: &[&str] = &[
    ANSWERS_STARTED,
    ANSWERS,
    ANSWERS_IN_PROGRESS,
    LISTENERS,
    RESUMES,
    FIRST_TOKEN,
    ANSWER_DURATION,
    TOKENS,
    COST,
    BEDROCK_ERRORS,
    BEDROCK_RETRIES,
    STOP_LATENCY,
    LIMIT_REFUSALS,
    HTTP_REQUESTS,
    HTTP_DURATION,
    STORE_DURATION,
    STORE_COMMITS,
    STORE_WRITES,
];

/// Bucket bounds of every `_seconds` histogram: from a fast store write to
/// a long answer.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed by the first caller.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder was installed first: /metrics stays empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(ANSWERS_STARTED, Unit::Count, "Answers begun, by model.");
    describe_counter!(
        ANSWERS,
        Unit::Count,
        "Answers ended, by model and status (complete, stopped, interrupted, or an error code)."
    );
    describe_gauge!(ANSWERS_IN_PROGRESS, Unit::Count, "Answers being written now.");
    describe_gauge!(
        LISTENERS,
        Unit::Count,
        "Streams attached to answers of this instance."
    );
    describe_counter!(RESUMES, Unit::Count, "Reconnections that resumed an answer.");
    describe_histogram!(
        FIRST_TOKEN,
        Unit::Seconds,
        "Time from the request to the answer's first token, by model."
    );
    describe_histogram!(
        ANSWER_DURATION,
        Unit::Seconds,
        "Time from the request to the stored answer, by model."
    );
    describe_counter!(
        TOKENS,
        Unit::Count,
        "Tokens Bedrock counted, by model and kind (input, output, cache_read, cache_write)."
    );
    describe_counter!(
        COST,
        Unit::Count,
        "What answers cost, in billionths of the currency, by model and currency."
    );
    describe_counter!(BEDROCK_ERRORS, Unit::Count, "Bedrock failures, by error code.");
    describe_counter!(
        BEDROCK_RETRIES,
        Unit::Count,
        "Bedrock calls the SDK attempted again."
    );
    describe_histogram!(
        STOP_LATENCY,
        Unit::Seconds,
        "Time from a Stop to the stopped answer being stored."
    );
    describe_counter!(
        LIMIT_REFUSALS,
        Unit::Count,
        "Requests refused by a limit, by kind."
    );
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests, by method, route and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request to its response's head, by route."
    );
    describe_histogram!(STORE_DURATION, Unit::Seconds, "Store operations, by operation.");
    describe_counter!(
        STORE_COMMITS,
        Unit::Count,
        "Transactions made by the store's group commit."
    );
    describe_counter!(
        STORE_WRITES,
        Unit::Count,
        "Writes carried by the group commit's transactions."
    );
}

/// Keeps the recorder's histograms from growing between scrapes.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        handle.run_upkeep();
    }
}

/// Times `operation` of the store into [`STORE_DURATION`].
pub async fn time_store<T>(operation: &'static str, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = work.await;
    metrics::histogram!(STORE_DURATION, "operation" => operation).record(started.elapsed().as_secs_f64());
    out
}
