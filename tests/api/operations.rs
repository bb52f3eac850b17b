//! What an operator's tools ask of the server: `/healthz` and `/readyz` for
//! load balancers and probes, `/metrics` for Prometheus.
//!
//! The tests that count metrics exactly start the server as a process of
//! its own: the metrics recorder is one per process, and the other tests of
//! this binary write answers beside them.

use crate::support::*;
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::Value;
use std::time::Duration;

async fn get(http: &reqwest::Client, url: &str, host: Option<&str>) -> (u16, String) {
    let mut request = http.get(url);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    assert!(
        response.headers().get("set-cookie").is_none(),
        "a probe gets no cookie"
    );
    (status, response.text().await.unwrap())
}

/// A probe names the server by its address, which is not one of the
/// allowed hosts: it is answered anyway, with no cookie.
#[tokio::test]
async fn health_and_readiness_answer_probes() {
    let app = spawn_app().await;
    let probe = reqwest::Client::new();
    let (status, body) = get(&probe, &app.url("/healthz"), Some("10.1.2.3:3000")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["status"], "ok");

    let (status, body) = get(&probe, &app.url("/readyz"), Some("10.1.2.3:3000")).await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["database"], "sqlite");
    assert_eq!(ready["bedrock"], "simulator");
}

/// Draining: not ready (so the load balancer sends new users elsewhere),
/// while the answer being written goes on; healthy all along.
#[tokio::test]
async fn readiness_fails_while_draining() {
    let mut app = spawn_app().await;
    let probe = reqwest::Client::new();
    let mut answer = EventReader::new(app.send(None, "Long [sim tokens=30 delay_ms=50]").await);
    answer.read_until(|e| e.iter().any(|e| e.event == "delta")).await;
    drop(app.stop.take());
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(&probe, &app.url("/readyz"), None).await.0 == 503
        })
        .await,
        "/readyz turns 503 when the drain begins"
    );
    let (_, body) = get(&probe, &app.url("/readyz"), None).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["check"], "draining");
    assert!(body["reason"].as_str().unwrap().contains("shutting down"));
    let (status, _) = get(&probe, &app.url("/healthz"), None).await;
    assert_eq!(status, 200, "still healthy while it drains");
    assert_eq!(names(answer.read_to_end().await).last(), Some(&"done"));
}

/// PostgreSQL refusing connections: 503 naming the database, then ready
/// again once it is back, without a restart.
#[tokio::test]
async fn readiness_follows_the_database() {
    let Some(db) = Db::postgres().await else { return };
    let name = db.postgres_name().unwrap().to_owned();
    let app = spawn_app_on(db, &[]).await;
    let probe = reqwest::Client::new();
    assert_eq!(get(&probe, &app.url("/readyz"), None).await.0, 200);

    app.db
        .admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await;
    app.db
        .admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .await;
    let (status, body) = get(&probe, &app.url("/readyz"), None).await;
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["check"], "database");
    assert_eq!(body["reason"], "the database cannot be reached");

    app.db
        .admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&probe, &app.url("/readyz"), None).await.0 == 200
        })
        .await,
        "ready again once the database is back"
    );
}

/// The samples of `name` whose labels include every pair of `labels`.
fn matching<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The sum of the counters (or gauges) of `name` with `labels`.
fn total(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    matching(scrape, name, labels)
        .iter()
        .map(|s| match &s.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
            other => panic!("{name} is not a counter or gauge: {other:?}"),
        })
        .sum()
}

/// How many observations a histogram of `name` with `labels` holds.
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> u64 {
    matching(scrape, name, labels)
        .iter()
        .map(|s| match &s.value {
            Metric::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count) as u64,
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

async fn scrape(url: &str) -> (Scrape, String) {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    (Scrape::parse(lines).expect("/metrics is Prometheus text"), text)
}

/// Three answers, one stopped, one throttled (with the SDK's retries), one
/// refused by the rate limit: `/metrics` counts exactly that, by model and
/// status, and its labels carry no user text or ids.
#[tokio::test]
async fn metrics_count_what_happened() {
    const MODEL: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
    let db = Db::sqlite();
    let server = ServerProcess::start(
        &db,
        &[
            ("BEDROCK_CHAT_BEDROCK_MAX_ATTEMPTS", "3"),
            ("BEDROCK_CHAT_LIMITS_MESSAGES_PER_MINUTE_PER_OWNER", "5"),
        ],
    );
    let user = new_user();
    let base = &server.base;
    let mut ids = Vec::new();
    for n in 0..3 {
        let events =
            read_events(send_as(&user, base, None, &format!("Secret words {n} [sim tokens=5]")).await).await;
        assert_eq!(names(&events).last(), Some(&"done"));
        ids.push(conversation_id(&events));
    }

    let mut long = EventReader::new(send_as(&user, base, None, "Stop me [sim tokens=200 delay_ms=20]").await);
    let head = long.read_until(|e| e.iter().any(|e| e.event == "delta")).await;
    let answer_id = json(&head[0])["answer_id"].as_str().unwrap().to_owned();
    let cancel = user
        .post(format!("{base}/api/generations/{answer_id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    assert_eq!(names(long.read_to_end().await).last(), Some(&"done"));

    let throttled = read_events(send_as(&user, base, None, "Busy [sim fail=throttling]").await).await;
    assert_eq!(json(throttled.last().unwrap())["code"], "throttled");

    let refused = send_as(&user, base, None, "One too many").await;
    assert_eq!(refused.status(), 429);

    let (metrics, text) = scrape(&format!("{base}/metrics")).await;
    let model = [("model", MODEL)];
    assert_eq!(total(&metrics, "bedrock_chat_answers_started_total", &model), 5.0);
    let finished = |status: &str| {
        total(
            &metrics,
            "bedrock_chat_answers_total",
            &[("model", MODEL), ("status", status)],
        )
    };
    assert_eq!(finished("complete"), 3.0, "{text}");
    assert_eq!(finished("stopped"), 1.0);
    assert_eq!(finished("throttled"), 1.0);
    assert_eq!(
        total(
            &metrics,
            "bedrock_chat_bedrock_errors_total",
            &[("code", "throttled")]
        ),
        1.0,
        "one call failed, after its retries"
    );
    assert_eq!(total(&metrics, "bedrock_chat_bedrock_retries_total", &[]), 2.0);
    assert_eq!(
        total(
            &metrics,
            "bedrock_chat_limit_refusals_total",
            &[("kind", "rate_limited")]
        ),
        1.0
    );
    assert_eq!(
        observations(&metrics, "bedrock_chat_time_to_first_token_seconds", &model),
        4,
        "the three answers and the stopped one had a first token"
    );
    assert_eq!(
        observations(&metrics, "bedrock_chat_answer_duration_seconds", &model),
        5
    );
    assert_eq!(
        observations(&metrics, "bedrock_chat_stop_latency_seconds", &[]),
        1
    );
    assert!(
        total(
            &metrics,
            "bedrock_chat_tokens_total",
            &[("model", MODEL), ("kind", "output")]
        ) >= 15.0
    );
    assert_eq!(
        total(
            &metrics,
            "bedrock_chat_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/chat/stream"),
                ("status", "200")
            ]
        ),
        5.0
    );
    assert_eq!(total(&metrics, "bedrock_chat_answers_in_progress", &[]), 0.0);
    assert!(
        observations(
            &metrics,
            "bedrock_chat_store_operation_duration_seconds",
            &[("operation", "begin_exchange")]
        ) >= 5
    );

    assert!(!text.contains("Secret"), "no user text in /metrics");
    for id in ids.iter().chain([&answer_id]) {
        assert!(!text.contains(id.as_str()), "no ids in /metrics");
    }
}

/// `metrics.listen_addr` moves `/metrics` to a listener of its own, off the
/// public one.
#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let addr = free_loopback_addr();
    let app = spawn_app_with(&[("BEDROCK_CHAT_METRICS_LISTEN_ADDR", &addr)]).await;
    let probe = reqwest::Client::new();
    let public = probe.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404, "not on the public listener");
    let (status, text) = get(&probe, &format!("http://{addr}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE "), "{text}");
}

/// The Grafana dashboard and the example alerts query only metrics the
/// server exports (a rename would otherwise leave them silently empty).
#[test]
fn the_dashboard_and_alerts_name_only_exported_metrics() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard = std::fs::read_to_string(format!("{root}/ops/grafana/bedrock-chat.json")).unwrap();
    let parsed: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().unwrap().len() >= 6);
    let alerts = std::fs::read_to_string(format!("{root}/ops/prometheus/alerts.yml")).unwrap();
    let mut named = 0;
    for text in [&dashboard, &alerts] {
        for (at, _) in text.match_indices("bedrock_chat_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                bedrock_chat::telemetry::ALL.contains(&base),
                "{name} is not a metric of the server"
            );
            named += 1;
        }
    }
    assert!(named >= 15, "the files query the metrics ({named} names)");
}

/// What a small OTLP/HTTP (JSON) collector on loopback received: every
/// span, flattened.
#[derive(Clone, Default)]
struct Collector {
    spans: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Collector {
    async fn start() -> (Self, String) {
        let collector = Self::default();
        let spans = collector.spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let spans = spans.clone();
                async move {
                    let export: Value = serde_json::from_slice(&body).expect("OTLP JSON");
                    let found = export["resourceSpans"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|r| r["scopeSpans"].as_array().into_iter().flatten())
                        .flat_map(|s| s["spans"].as_array().into_iter().flatten())
                        .cloned();
                    spans.lock().unwrap().extend(found);
                    axum::Json(serde_json::json!({}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (collector, url)
    }

    fn named(&self, name: &str) -> Vec<Value> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s["name"] == name).cloned().collect()
    }
}

/// A span attribute's value, as text (OTLP JSON writes integers as strings).
fn attribute(span: &Value, key: &str) -> Option<String> {
    let value = &span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?["value"];
    ["stringValue", "intValue", "boolValue", "doubleValue"]
        .iter()
        .find_map(|kind| value.get(*kind))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
}

/// With an OTLP endpoint set, an answer is traced: the request, the answer
/// under it, and the Bedrock call under that with the model, tokens, time
/// to first token and stop reason; an error body's request id is its trace
/// id.
#[tokio::test]
async fn answers_are_traced_over_otlp() {
    const MODEL: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
    let (collector, endpoint) = Collector::start().await;
    let db = Db::sqlite();
    let server = ServerProcess::start(
        &db,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let user = new_user();
    let events = read_events(send_as(&user, &server.base, None, "Trace me [sim tokens=5]").await).await;
    assert_eq!(names(&events).last(), Some(&"done"));
    let refused = send_as(&user, &server.base, None, "   ").await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    let request_id = body["request_id"].as_str().unwrap().to_owned();
    assert_eq!(request_id.len(), 32, "a trace id: {request_id}");

    let arrived = eventually(Duration::from_secs(10), || async {
        !collector.named("bedrock.converse_stream").is_empty()
            && collector
                .named("request")
                .iter()
                .any(|s| s["traceId"] == request_id.as_str())
    })
    .await;
    assert!(
        arrived,
        "spans reach the collector: {:?}",
        collector.spans.lock().unwrap()
    );

    let call = collector.named("bedrock.converse_stream").remove(0);
    assert_eq!(attribute(&call, "gen_ai.request.model").as_deref(), Some(MODEL));
    assert_eq!(
        attribute(&call, "gen_ai.usage.output_tokens").as_deref(),
        Some("5")
    );
    assert!(attribute(&call, "gen_ai.usage.input_tokens").is_some());
    assert!(attribute(&call, "time_to_first_token_ms").is_some());
    assert_eq!(
        attribute(&call, "gen_ai.response.finish_reasons").as_deref(),
        Some("end_turn")
    );
    let answer = collector
        .named("answer")
        .into_iter()
        .find(|a| a["spanId"] == call["parentSpanId"])
        .expect("the call's parent is the answer");
    assert_eq!(attribute(&answer, "answer.status").as_deref(), Some("complete"));
    let request = collector
        .named("request")
        .into_iter()
        .find(|r| r["spanId"] == answer["parentSpanId"])
        .expect("the answer's parent is its request");
    assert_eq!(
        attribute(&request, "http.route").as_deref(),
        Some("/api/chat/stream")
    );
    assert_eq!(request["traceId"], call["traceId"]);
    let spans = collector.spans.lock().unwrap();
    assert!(
        !spans.iter().any(|s| s.to_string().contains("Trace me")),
        "no user text in traces"
    );
}
