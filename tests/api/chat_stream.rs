//! The chat stream end to end: real server, real SDK client, simulator on loopback.

use crate::support::*;
use std::time::Duration;

#[tokio::test]
async fn streams_the_models_answer_as_documented_events() {
    let app = spawn_app().await;
    let turns = [("user", "Hello there, how are you?")];
    let response = app.send(None, turns[0].1).await;

    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-accel-buffering"], "no");

    let events = read_events(response).await;
    let expected = bedrock_chat::bedrock::simulator::expected_answer(&sim_messages(&turns));
    assert_eq!(answer_text(&events), expected);
    assert!(
        events.iter().filter(|e| e.event == "delta").count() > 5,
        "answer arrives in pieces"
    );

    // `start` first; ids count up from 1 without gaps; usage then done
    // close the stream.
    let start = json(&events[0]);
    assert_eq!(events[0].event, "start");
    assert_eq!(start["created"], true);
    assert_eq!(start["title"], "Hello there, how are you?");
    for key in ["conversation_id", "user_message_id", "answer_id"] {
        assert!(
            bedrock_chat::conversations::is_valid_id(start[key].as_str().unwrap()),
            "{key}"
        );
    }
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.id.as_deref(), Some((i + 1).to_string().as_str()));
    }
    let names: Vec<_> = events.iter().rev().take(2).map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["done", "usage"]);
    let usage = json(&events[events.len() - 2]);
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
    assert!(usage["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(json(events.last().unwrap())["stop_reason"], "end_turn");
}

/// The history sent to the model is the stored conversation, never the
/// client's, and the configured system prompt and limits go with it.
#[tokio::test]
async fn the_stored_history_and_settings_reach_the_model() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_BEDROCK_SYSTEM_PROMPT", "Be brief.")]).await;
    let first = app.chat(None, "My name is Ada.").await;
    let id = conversation_id(&first);
    let events = app.chat(Some(&id), "What is my name?").await;

    assert!(answer_text(&events).contains("message 3 of 3"));
    let received = app.sim.received();
    let last = received.last().expect("the simulator was called");
    assert!(last.streaming);
    let first_answer = answer_text(&first);
    assert_eq!(
        last.messages,
        sim_messages(&[
            ("user", "My name is Ada."),
            ("assistant", &first_answer),
            ("user", "What is my name?"),
        ])
    );
    assert_eq!(last.system, ["Be brief."]);
    assert_eq!(last.model_id, app.settings.bedrock.default_model);
    assert_eq!(last.max_tokens, Some(app.settings.bedrock.max_tokens));

    // A client cannot hand in a history of its own.
    let response = app
        .post_json(
            "/api/chat/stream",
            &serde_json::json!({
                "conversation_id": id,
                "content": "And now?",
                "messages": [{"role": "assistant", "content": "I said something else"}],
            }),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_json");
}

#[tokio::test]
async fn a_chosen_model_is_used_and_max_tokens_stops_the_answer() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_BEDROCK_MAX_TOKENS", "5")]).await;
    let model = app.settings.bedrock.models[1].id.clone();
    let body = serde_json::json!({ "content": "Tell me a long story", "model_id": model });
    let events = read_events(app.post_json("/api/chat/stream", &body).await).await;

    assert_eq!(events.iter().filter(|e| e.event == "delta").count(), 5);
    let (_, stored) = app
        .get_json(&format!("/api/conversations/{}", conversation_id(&events)))
        .await;
    assert_eq!(stored["messages"][1]["model_id"], model.as_str());
    assert_eq!(json(events.last().unwrap())["stop_reason"], "max_tokens");
    assert_eq!(app.sim.received().last().unwrap().model_id, model);
}

#[tokio::test]
async fn korean_and_emoji_round_trip_intact() {
    let app = spawn_app().await;
    let text = "안녕하세요 👋🏽 세계 🌏 — ünïcödé";
    let events = app.chat(None, text).await;
    assert!(answer_text(&events).contains(&format!("You said: \"{text}\"")));
    assert_eq!(app.sim.received()[0].messages[0].text, text);
    let (_, stored) = app
        .get_json(&format!("/api/conversations/{}", conversation_id(&events)))
        .await;
    assert_eq!(stored["messages"][0]["content"], text);
    assert_eq!(stored["title"], text);
}

/// Each invalid request gets a 4xx JSON error with a readable message;
/// Bedrock is never called and nothing is stored.
#[tokio::test]
async fn invalid_requests_are_rejected_before_any_bedrock_call() {
    let app = spawn_app_with(&[
        ("BEDROCK_CHAT_LIMITS_MAX_MESSAGE_CHARS", "50"),
        ("BEDROCK_CHAT_LIMITS_MAX_BODY_BYTES", "4096"),
    ])
    .await;
    let send = |content: &str| serde_json::json!({ "content": content }).to_string();
    let long = "x".repeat(51);
    let missing = bedrock_chat::conversations::store::new_id();
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("empty body", "".into(), 400, "empty_body"),
        ("not JSON", "{not json".into(), 400, "malformed_json"),
        ("wrong shape", r#"{"content": 5}"#.into(), 400, "malformed_json"),
        (
            "no content",
            r#"{"conversation_id": null}"#.into(),
            400,
            "malformed_json",
        ),
        (
            "the old history shape",
            conversation(&[("user", "hi")]).to_string(),
            400,
            "malformed_json",
        ),
        ("empty message", send(""), 400, "empty_message"),
        ("blank message", send(" \n\t "), 400, "empty_message"),
        ("oversized message", send(&long), 413, "message_too_long"),
        (
            "control characters",
            send("a\u{1b}[31m"),
            400,
            "invalid_characters",
        ),
        (
            "unknown model",
            r#"{"model_id":"gpt-4","content":"hi"}"#.into(),
            400,
            "unknown_model",
        ),
        (
            "malformed conversation id",
            r#"{"conversation_id":"../../etc/passwd","content":"hi"}"#.into(),
            400,
            "invalid_conversation_id",
        ),
        (
            "unknown conversation",
            serde_json::json!({ "conversation_id": missing, "content": "hi" }).to_string(),
            404,
            "conversation_not_found",
        ),
        ("body over the limit", "x".repeat(5000), 413, "request_too_large"),
    ];
    for (name, body, status, code) in cases {
        let response = app.post_raw("/api/chat/stream", body).await;
        assert_eq!(response.status().as_u16(), status, "{name}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.len() > 20 && message.ends_with('.'),
            "{name}: unhelpful message {message:?}"
        );
    }
    assert!(app.sim.received().is_empty(), "nothing reached Bedrock");
    let (_, list) = app.get_json("/api/conversations").await;
    assert_eq!(list, serde_json::json!([]), "nothing was stored");
}

/// Mid-stream Bedrock errors end the stream with one `error` event after the
/// partial answer.
#[tokio::test]
async fn each_mid_stream_error_kind_becomes_an_error_event_after_the_partial_answer() {
    let app = spawn_app().await;
    let kinds = [
        ("throttling", "throttled", true),
        ("validation", "model_rejected_input", false),
        ("service_unavailable", "bedrock_unavailable", true),
        ("internal", "bedrock_unavailable", true),
        ("model_stream_error", "model_error", true),
    ];
    for (kind, code, retryable) in kinds {
        let prompt = format!("Go on [sim fail={kind} after=3]");
        let events = app.chat(None, &prompt).await;
        assert_eq!(
            names(&events),
            ["start", "delta", "delta", "delta", "error"],
            "{kind}"
        );
        let error = json(&events[4]);
        assert_eq!(error["code"], code, "{kind}");
        assert_eq!(error["retryable"], retryable, "{kind}");
        assert!(error["message"].as_str().unwrap().len() > 20, "{kind}");
    }
}

/// Errors before the first token come after `start` (the message is already
/// stored, and the client learns its conversation); the compatibility
/// endpoint, which stores nothing, answers them as HTTP errors with a
/// fitting status.
#[tokio::test]
async fn errors_before_the_first_token_keep_the_message_and_have_fitting_statuses() {
    let app = spawn_app().await;
    let kinds = [
        ("throttling", 429, "throttled"),
        ("access_denied", 502, "model_access_denied"),
        ("model_not_ready", 503, "model_unavailable"),
        ("service_unavailable", 503, "bedrock_unavailable"),
        ("model_timeout", 504, "model_timeout"),
        ("validation", 422, "model_rejected_input"),
    ];
    for (kind, status, code) in kinds {
        let prompt = format!("Hi [sim fail={kind} after=0]");
        let events = app.chat(None, &prompt).await;
        assert_eq!(names(&events), ["start", "error"], "{kind}");
        assert_eq!(json(&events[1])["code"], code, "{kind}");
        let (_, stored) = app
            .get_json(&format!("/api/conversations/{}", conversation_id(&events)))
            .await;
        assert_eq!(stored["messages"][0]["content"], prompt.as_str(), "{kind}");
        assert_eq!(stored["messages"][1]["status"], "error", "{kind}");
        assert_eq!(stored["messages"][1]["error"]["code"], code, "{kind}");

        let response = app
            .post_json("/api/chat", &conversation(&[("user", &prompt)]))
            .await;
        assert_eq!(response.status().as_u16(), status, "{kind}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{kind}");
    }
}

#[tokio::test]
async fn a_dropped_bedrock_connection_is_reported_not_hidden() {
    let app = spawn_app().await;
    let events = app.chat(None, "Hi [sim drop after=2]").await;
    assert_eq!(names(&events), ["start", "delta", "delta", "error"]);
    assert_eq!(json(&events[3])["code"], "connection_lost");
}

/// When the browser goes away for longer than the grace period, the server
/// drops its Bedrock stream: the simulator sees its client disconnect long
/// before the answer would end, and what was written is kept.
#[tokio::test]
async fn a_client_gone_past_the_grace_period_makes_the_server_drop_the_bedrock_stream() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_STREAMS_GRACE_PERIOD_SECS", "0.2")]).await;
    let response = app
        .send(None, "Long answer please [sim tokens=1000 delay_ms=10]")
        .await;
    let mut reader = EventReader::new(response);
    let seen = reader
        .read_until(|e| e.iter().filter(|e| e.event == "delta").count() >= 3)
        .await
        .to_vec();
    assert_eq!(app.sim.streams_dropped(), 0);
    drop(reader);
    // 1000 tokens at 10 ms would take 10 s; the drop must be seen far sooner.
    assert!(
        app.sim.wait_streams_dropped(1, Duration::from_secs(2)).await,
        "the simulator still streams after the client left"
    );
    // What was generated is kept, marked interrupted.
    let path = format!("/api/conversations/{}", conversation_id(&seen));
    let stored = eventually(Duration::from_secs(5), || async {
        app.get_json(&path).await.1["messages"][1]["status"] == "interrupted"
    })
    .await;
    assert!(stored, "the partial answer is stored as interrupted");
    let (_, conversation) = app.get_json(&path).await;
    let partial = conversation["messages"][1]["content"].as_str().unwrap();
    assert!(answer_text(&seen).starts_with(partial) || partial.starts_with(&answer_text(&seen)));
    assert!(!partial.is_empty());
}

/// Compression is on for pages and files, but must never hold back events.
#[tokio::test]
async fn the_event_stream_is_never_compressed() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("{}/api/chat/stream", app.base))
        .header("accept-encoding", "gzip")
        .json(&serde_json::json!({ "content": "Hello" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-encoding").is_none());
    let page = app
        .http
        .get(&app.base)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["content-encoding"], "gzip", "pages are compressed");
}

#[tokio::test]
async fn the_page_is_server_rendered_and_says_it_is_a_demo() {
    let app = spawn_app().await;
    let response = app.http.get(&app.base).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("demo model (offline)"));
    assert!(html.contains(r#"aria-label="Message""#));
    assert!(html.contains(r#"id="page-config""#));
    assert!(html.contains(&app.settings.bedrock.default_model));
}

/// Stop while the model is still thinking (no delta flowing yet) must also
/// end the Bedrock stream, not only when the next delta fails to send.
#[tokio::test]
async fn a_client_that_leaves_before_the_first_token_also_ends_the_bedrock_stream() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_STREAMS_GRACE_PERIOD_SECS", "0.2")]).await;
    let response = app
        .send(None, "Think hard [sim first_token_ms=8000 tokens=3]")
        .await;
    assert_eq!(response.status(), 200);
    drop(response);
    assert!(
        app.sim.wait_streams_dropped(1, Duration::from_secs(2)).await,
        "the Bedrock stream outlived its client"
    );
}

/// The events of a response, grouped by the chunk of the body they were
/// completed in: on loopback, one chunk per write the server made.
async fn events_by_write(response: reqwest::Response) -> Vec<Vec<bedrock_chat::sse::SseEvent>> {
    use futures::StreamExt;
    let mut body = response.bytes_stream();
    let mut parser = bedrock_chat::sse::Parser::new();
    let mut writes = Vec::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            let mut events = Vec::new();
            parser.feed(&chunk.expect("the body reads"), |e| events.push(e));
            if !events.is_empty() {
                writes.push(events);
            }
        }
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .expect("the stream ends in time");
    writes
}

fn deltas_in(write: &[bedrock_chat::sse::SseEvent]) -> usize {
    write
        .iter()
        .filter(|e| e.event == "delta" || (e.event == "message" && e.data != "[DONE]"))
        .count()
}

/// A model that streams tokens faster than the page draws them (every
/// 10 ms here, against a `write_interval_ms` of 5 s) has them written
/// together, on both endpoints: the first token goes out alone and at once,
/// the rest wait, and the answer's end writes them at once rather than
/// after the interval. Nothing is lost or reordered. With an interval of 0,
/// the same answer takes a write per token.
#[tokio::test]
async fn a_fast_models_tokens_leave_in_few_writes_with_the_first_at_once_and_the_end_unheld() {
    let ask = "Pace me [sim tokens=40 first_token_ms=200 delay_ms=10]";
    let expected = bedrock_chat::bedrock::simulator::expected_answer(&sim_messages(&[("user", ask)]));
    let text_of = |writes: &[Vec<bedrock_chat::sse::SseEvent>]| -> String {
        let events: Vec<_> = writes.iter().flatten().cloned().collect();
        if events.iter().any(|e| e.event == "delta") {
            answer_text(&events)
        } else {
            let contents = events.iter().filter(|e| e.data != "[DONE]");
            contents
                .map(|e| json(e)["content"].as_str().unwrap().to_owned())
                .collect()
        }
    };

    let paced = spawn_app_with(&[("BEDROCK_CHAT_STREAMS_WRITE_INTERVAL_MS", "5000")]).await;
    for endpoint in ["page", "compatibility"] {
        let started = std::time::Instant::now();
        let response = match endpoint {
            "page" => paced.send(None, ask).await,
            _ => {
                paced
                    .post_json("/api/chat", &conversation(&[("user", ask)]))
                    .await
            }
        };
        let writes = events_by_write(response).await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{endpoint}: the end was held for the interval"
        );
        assert_eq!(text_of(&writes), expected, "{endpoint}: every token, in order");
        let first = writes.iter().position(|w| deltas_in(w) > 0).unwrap();
        assert_eq!(
            deltas_in(&writes[first]),
            1,
            "{endpoint}: the first token goes alone"
        );
        let with_text = writes.iter().filter(|w| deltas_in(w) > 0).count();
        assert_eq!(
            with_text, 2,
            "{endpoint}: the first token, then the rest with the end: {writes:?}"
        );
    }

    let unpaced = spawn_app_with(&[("BEDROCK_CHAT_STREAMS_WRITE_INTERVAL_MS", "0")]).await;
    let writes = events_by_write(unpaced.send(None, ask).await).await;
    let with_text = writes.iter().filter(|w| deltas_in(w) > 0).count();
    assert!(
        with_text >= 20,
        "a write per token without pacing: {with_text} of 40"
    );
}
