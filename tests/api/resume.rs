//! Answers that survive their connection: resume from the last event id,
//! many listeners, stop, the grace period and keep-alives. Real server, real
//! SDK, simulator on loopback.

use crate::support::*;
use bedrock_chat::{bedrock::simulator, sse::SseEvent};
use std::time::{Duration, Instant};

/// Reads events from `response` until `stop(events so far)` says so (or the
/// stream ends), then drops the connection.
async fn read_until(response: reqwest::Response, stop: impl Fn(&[SseEvent]) -> bool) -> Vec<SseEvent> {
    EventReader::new(response).read_until(stop).await.to_vec()
}

fn last_id(events: &[SseEvent]) -> u64 {
    events
        .last()
        .and_then(|e| e.id.as_deref())
        .map_or(0, |id| id.parse().unwrap())
}

async fn resume(app: &TestApp, answer_id: &str, last: u64) -> reqwest::Response {
    app.http
        .get(app.url(&format!(
            "/api/generations/{answer_id}/events?last_event_id={last}"
        )))
        .send()
        .await
        .unwrap()
}

/// A small deterministic generator, so the cut points are reproducible.
fn cut_points(seed: u64, count: usize, max: u64) -> Vec<u64> {
    let mut x = seed;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1 + x % max
        })
        .collect()
}

/// For 100 seeded cut points: read up to the cut, drop the TCP connection,
/// resume with the last id seen. Ids run 1, 2, 3, ... with no gap and no
/// repeat across the cut, and the text is exactly the simulator's answer.
#[tokio::test]
async fn resuming_after_a_cut_at_any_point_loses_and_repeats_nothing() {
    let app = spawn_app().await;
    resume_sweep(&app.http, &app.base, std::slice::from_ref(&app.base)).await;
}

/// The resume sweep: answers sent to `send_to`; the resume of the n-th cut
/// goes to `resume_at[n % len]` (another instance, when there are several).
pub(crate) async fn resume_sweep(http: &reqwest::Client, send_to: &str, resume_at: &[String]) {
    const TOKENS: u64 = 40;
    let cuts = cut_points(0x5eed, 100, TOKENS + 1);
    // One owner for all: get the cookie before sending concurrently.
    get_json_as(http, &format!("{send_to}/api/conversations")).await;
    // Ten answers at a time keep the run short on a small machine.
    for (b, batch) in cuts.chunks(10).enumerate() {
        let runs = batch.iter().enumerate().map(|(i, &cut)| {
            let resume_base = &resume_at[(b * 10 + i) % resume_at.len()];
            async move {
                let text = format!("Cut at {cut}, run {i} [sim tokens={TOKENS} delay_ms=2]");
                let response = send_as(http, send_to, None, &text).await;
                let before = read_until(response, |e| e.len() as u64 > cut).await;
                let start = crate::support::json(&before[0]);
                let answer_id = start["answer_id"].as_str().unwrap().to_owned();
                let resumed = http
                    .get(format!(
                        "{resume_base}/api/generations/{answer_id}/events?last_event_id={}",
                        last_id(&before)
                    ))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resumed.status(), 200, "resume at {resume_base}, cut at {cut}");
                let after = read_events(resumed).await;

                let all: Vec<&SseEvent> = before.iter().chain(&after).collect();
                let ids: Vec<u64> = all
                    .iter()
                    .map(|e| e.id.as_deref().unwrap().parse().unwrap())
                    .collect();
                let expected_ids: Vec<u64> = (1..=ids.len() as u64).collect();
                assert_eq!(ids, expected_ids, "cut at {cut}");
                assert_eq!(
                    all.last().unwrap().event,
                    "done",
                    "cut at {cut}: before {:?} after {:?}",
                    names(&before),
                    names(&after)
                );
                let joined: Vec<SseEvent> = all.into_iter().cloned().collect();
                let expected = simulator::expected_answer(&sim_messages(&[("user", &text)]));
                assert_eq!(answer_text(&joined), expected, "cut at {cut}");
            }
        });
        futures::future::join_all(runs).await;
    }
}

/// Fifty listeners on one answer all assemble the same text; one that stops
/// reading does not hold the answer back.
#[tokio::test]
async fn many_listeners_get_the_same_answer_and_a_stalled_one_slows_nobody() {
    let app = spawn_app().await;
    let prompt = "Fan out [sim tokens=200 delay_ms=2]";

    let timed = |stalled: bool| {
        let app = &app;
        async move {
            app.get_json("/api/conversations").await;
            let started = Instant::now();
            let first = app.send(None, prompt).await;
            let head = read_until(first, |e| !e.is_empty()).await;
            let answer_id = crate::support::json(&head[0])["answer_id"]
                .as_str()
                .unwrap()
                .to_owned();
            // A listener that never reads past its first chunk.
            let stalled_listener = if stalled {
                Some(resume(app, &answer_id, 0).await)
            } else {
                None
            };
            let listeners = (0..50).map(|_| {
                let answer_id = answer_id.clone();
                async move { read_events(resume(app, &answer_id, 0).await).await }
            });
            let all = futures::future::join_all(listeners).await;
            let elapsed = started.elapsed();
            let text = answer_text(&all[0]);
            assert!(!text.is_empty());
            for events in &all {
                assert_eq!(answer_text(events), text);
                assert_eq!(events.last().unwrap().event, "done");
            }
            drop(stalled_listener);
            elapsed
        }
    };
    let free = timed(false).await;
    let with_stalled = timed(true).await;
    println!("50 listeners: answer took {free:?}; with one stalled listener: {with_stalled:?}");
    // Generous: a stalled listener must not make the answer wait for it.
    assert!(
        with_stalled < free * 3 + Duration::from_secs(1),
        "{with_stalled:?} vs {free:?}"
    );
}

/// Stop: the Bedrock stream is dropped within 500 ms, every listener sees
/// `done` with `stop_reason: "stopped"`, and cancelling again is a no-op
/// that says so. Someone else cannot cancel it.
#[tokio::test]
async fn stop_drops_the_bedrock_stream_at_once_and_tells_every_listener() {
    let app = spawn_app().await;
    let response = app.send(None, "Go on and on [sim tokens=2000 delay_ms=10]").await;
    let head = read_until(response, |e| e.len() >= 3).await;
    let answer_id = crate::support::json(&head[0])["answer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_tab = resume(&app, &answer_id, 0).await;

    let intruder = new_user();
    let refused = intruder
        .post(app.url(&format!("/api/generations/{answer_id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);

    let asked = Instant::now();
    let cancel = app
        .http
        .post(app.url(&format!("/api/generations/{answer_id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    let outcome: serde_json::Value = cancel.json().await.unwrap();
    assert_eq!(outcome["cancelled"], true);
    assert!(
        app.sim.wait_streams_dropped(1, Duration::from_millis(500)).await,
        "the Bedrock stream was not dropped within 500 ms"
    );
    println!("stop -> Bedrock stream dropped in {:?}", asked.elapsed());

    let seen = read_events(other_tab).await;
    let done = seen.last().unwrap();
    assert_eq!(done.event, "done");
    assert_eq!(crate::support::json(done)["stop_reason"], "stopped");

    let again = app
        .http
        .post(app.url(&format!("/api/generations/{answer_id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["cancelled"], false);
    assert!(again["message"].as_str().unwrap().contains("already finished"));
}

/// With nobody listening past the grace period the answer is dropped (the
/// simulator sees it within grace + 1 s) and stored as interrupted.
#[tokio::test]
async fn an_answer_nobody_listens_to_ends_after_the_grace_period() {
    let grace = Duration::from_millis(500);
    let app = spawn_app_with(&[("BEDROCK_CHAT_STREAMS_GRACE_PERIOD_SECS", "0.5")]).await;
    let response = app.send(None, "Nobody home [sim tokens=2000 delay_ms=10]").await;
    let head = read_until(response, |e| e.len() >= 2).await;
    let gone = Instant::now();
    assert!(
        app.sim
            .wait_streams_dropped(1, grace + Duration::from_secs(1))
            .await,
        "the Bedrock stream outlived the grace period"
    );
    println!(
        "client gone -> Bedrock stream dropped in {:?} (grace {grace:?})",
        gone.elapsed()
    );
    let path = format!("/api/conversations/{}", conversation_id(&head));
    let stored = eventually(Duration::from_secs(3), || async {
        app.get_json(&path).await.1["messages"][1]["status"] == "interrupted"
    })
    .await;
    assert!(stored, "stored as interrupted");
}

/// A client back within the grace period keeps the answer alive.
#[tokio::test]
async fn a_client_back_within_the_grace_period_gets_the_whole_answer() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_STREAMS_GRACE_PERIOD_SECS", "2")]).await;
    let text = "Back soon [sim tokens=60 delay_ms=10]";
    let head = read_until(app.send(None, text).await, |e| e.len() >= 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer_id = crate::support::json(&head[0])["answer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rest = read_events(resume(&app, &answer_id, last_id(&head)).await).await;
    let all: Vec<SseEvent> = head.into_iter().chain(rest).collect();
    assert_eq!(all.last().unwrap().event, "done");
    assert_eq!(
        answer_text(&all),
        simulator::expected_answer(&sim_messages(&[("user", text)]))
    );
    assert_eq!(app.sim.streams_dropped(), 0);
}

/// While the model is silent, listeners get SSE comments so that proxies
/// keep the connection open.
#[tokio::test]
async fn an_idle_stream_carries_keep_alive_comments() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_STREAMS_KEEP_ALIVE_SECS", "0.1")]).await;
    let response = app
        .send(None, "Think first [sim first_token_ms=700 tokens=2]")
        .await;
    let raw = tokio::time::timeout(LIMIT, response.text())
        .await
        .unwrap()
        .unwrap();
    let comments = raw.matches(": keep-alive\n\n").count();
    assert!(comments >= 3, "{comments} keep-alives in {raw:?}");
    // Comments are invisible to SSE clients: the events are as usual.
    let mut parser = bedrock_chat::sse::Parser::new();
    let mut events = Vec::new();
    parser.feed(raw.as_bytes(), |e| events.push(e));
    assert_eq!(names(&events), ["start", "delta", "delta", "usage", "done"]);
}

/// Resume requests that cannot be served say why.
#[tokio::test]
async fn bad_resume_requests_get_clear_errors() {
    let app = spawn_app().await;
    let events = app.chat(None, "Short").await;
    let answer_id = crate::support::json(&events[0])["answer_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let past_the_end = resume(&app, &answer_id, 999).await;
    assert_eq!(past_the_end.status(), 400);
    let not_a_number = app
        .http
        .get(app.url(&format!("/api/generations/{answer_id}/events")))
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_number.status(), 400);
    let body: serde_json::Value = not_a_number.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_last_event_id");

    // The Last-Event-ID header works like the query parameter.
    let tail = app
        .http
        .get(app.url(&format!("/api/generations/{answer_id}/events")))
        .header("last-event-id", (events.len() - 1).to_string())
        .send()
        .await
        .unwrap();
    let tail = read_events(tail).await;
    assert_eq!(names(&tail), ["done"]);

    let someone_else = new_user()
        .get(app.url(&format!("/api/generations/{answer_id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(someone_else.status(), 404);
    let unknown = resume(&app, &bedrock_chat::conversations::store::new_id(), 0).await;
    assert_eq!(unknown.status(), 404);
}

/// Retry: a new answer to the last message after a failed one. The failed
/// answer stays stored; the model sees the conversation without it.
#[tokio::test]
async fn retry_regenerates_the_answer_and_keeps_the_failed_one() {
    let app = spawn_app().await;
    let text = "Please answer [sim fail=model_stream_error after=3]";
    let failed = app.chat(None, text).await;
    let id = conversation_id(&failed);
    assert_eq!(names(&failed).last(), Some(&"error"));

    let path = format!("/api/conversations/{id}/regenerate");
    let retried = read_events(app.http.post(app.url(&path)).send().await.unwrap()).await;
    assert_eq!(names(&retried).first(), Some(&"start"));
    assert_eq!(crate::support::json(&retried[0])["created"], false);
    // The simulator fails again on the same text, after the same 3 tokens:
    // what matters is that it was asked the same question, alone.
    let sent = app.sim.received().last().unwrap().messages.clone();
    assert_eq!(sent, sim_messages(&[("user", text)]));

    let (_, stored) = app.get_json(&format!("/api/conversations/{id}")).await;
    let statuses = message_statuses(&stored);
    assert_eq!(statuses, ["complete", "error", "error"]);
    assert_eq!(stored["messages"][1]["content"], answer_text(&failed).as_str());

    // Someone else cannot retry it; a busy or a finished-fine conversation
    // is handled.
    let intruder = new_user().post(app.url(&path)).send().await.unwrap();
    assert_eq!(intruder.status(), 404);
    let unknown = app
        .http
        .post(app.url("/api/conversations/not-an-id/regenerate"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
}

/// Retry after a stop gives a complete answer, which later turns build on.
#[tokio::test]
async fn retry_after_a_stop_completes_and_the_conversation_goes_on() {
    let app = spawn_app().await;
    let response = app.send(None, "Stop me [sim tokens=300 delay_ms=10]").await;
    let head = read_until(response, |e| e.len() >= 3).await;
    let id = conversation_id(&head);
    let answer_id = crate::support::json(&head[0])["answer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.http
        .post(app.url(&format!("/api/generations/{answer_id}/cancel")))
        .send()
        .await
        .unwrap();
    let path = format!("/api/conversations/{id}");
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.get_json(&path).await.1["messages"][1]["status"] == "stopped"
        })
        .await
    );
    let retried = read_events(
        app.http
            .post(app.url(&format!("{path}/regenerate")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(names(&retried).last(), Some(&"done"));
    let full = answer_text(&retried);
    app.chat(Some(&id), "And then?").await;
    let sent = app.sim.received().last().unwrap().messages.clone();
    let roles: Vec<&str> = sent.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(sent[1].text, full, "the retried answer replaces the stopped one");
}

/// SIGTERM lets a running answer finish within the deadline, stores it,
/// and then the server exits.
#[tokio::test]
async fn shutdown_lets_running_answers_finish_and_stores_them() {
    let db = Db::sqlite();
    let user = new_user();
    let mut server = ServerProcess::start(&db, &[("BEDROCK_CHAT_STREAMS_SHUTDOWN_DEADLINE_SECS", "10")]);
    let text = "Finish me [sim tokens=40 delay_ms=25]";
    let response = send_as(&user, &server.base, None, text).await;
    let mut body = EventReader::new(response);
    body.read_until(|e| e.len() >= 3).await;
    let exited = tokio::task::spawn_blocking(move || {
        let took = server.terminate(Duration::from_secs(15));
        (server, took)
    });
    // The answer goes on to its end on the open connection.
    let events = body.read_to_end().await.to_vec();
    let (_server, took) = exited.await.unwrap();
    let took = took.expect("the server exits after its answers");
    assert!(
        took < Duration::from_secs(10),
        "it did not wait for the whole deadline: {took:?}"
    );
    assert_eq!(names(&events).last(), Some(&"done"));
    assert_eq!(
        answer_text(&events),
        simulator::expected_answer(&sim_messages(&[("user", text)]))
    );

    let restarted = ServerProcess::start(&db, &[]);
    let id = conversation_id(&events);
    let (_, stored) = get_json_as(&user, &format!("{}/api/conversations/{id}", restarted.base)).await;
    assert_eq!(stored["messages"][1]["status"], "complete");
}

/// An answer still running at the deadline is stopped and stored as
/// interrupted, with its text so far; the server then exits.
#[tokio::test]
async fn shutdown_interrupts_what_outlives_the_deadline() {
    let db = Db::sqlite();
    let user = new_user();
    let mut server = ServerProcess::start(&db, &[("BEDROCK_CHAT_STREAMS_SHUTDOWN_DEADLINE_SECS", "0.5")]);
    let response = send_as(
        &user,
        &server.base,
        None,
        "Too long [sim tokens=2000 delay_ms=10]",
    )
    .await;
    let mut body = EventReader::new(response);
    let events = body.read_until(|e| e.len() >= 3).await.to_vec();
    let took = tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the server exits soon after its deadline");
    println!("SIGTERM -> exit in {took:?} (deadline 0.5 s)");
    drop(body);
    let restarted = ServerProcess::start(&db, &[]);
    let id = conversation_id(&events);
    let (_, stored) = get_json_as(&user, &format!("{}/api/conversations/{id}", restarted.base)).await;
    assert_eq!(stored["messages"][1]["status"], "interrupted");
    assert!(!stored["messages"][1]["content"].as_str().unwrap().is_empty());
}

/// Throttling before the first token is retried by the SDK with backoff
/// (`bedrock.max_attempts`), and the user just sees the answer.
#[tokio::test]
async fn throttling_before_the_first_token_is_retried_then_succeeds() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_BEDROCK_MAX_ATTEMPTS", "3")]).await;
    let text = "Busy at first [sim fail=throttling after=0 times=2]";
    let started = Instant::now();
    let events = app.chat(None, text).await;
    println!(
        "two throttled attempts, then the answer, in {:?}",
        started.elapsed()
    );
    assert_eq!(names(&events).last(), Some(&"done"));
    assert_eq!(
        app.sim.received().len(),
        3,
        "two throttled attempts and one that worked"
    );
    assert_eq!(
        answer_text(&events),
        simulator::expected_answer(&sim_messages(&[("user", text)]))
    );
    let (_, stored) = app
        .get_json(&format!("/api/conversations/{}", conversation_id(&events)))
        .await;
    assert_eq!(stored["messages"][1]["status"], "complete");
}
