//! What answers cost: tokens times the configured prices, on the answer's
//! `usage` event, stored with it, and summed on the owner's usage page
//! (which agrees with the daily token budget's count).

use crate::support::*;
use serde_json::Value;

const HAIKU: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
/// The price the tests set (not Leptos.toml's defaults, which may change),
/// and the same in billionths per token: input, output, cache read, cache
/// write.
const HAIKU_PRICE: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0|0.80|4.00|0.08|1.00";
const HAIKU_NANOS: [u64; 4] = [800, 4000, 80, 1000];

fn usage_of(events: &[bedrock_chat::sse::SseEvent]) -> Value {
    json(events.iter().find(|e| e.event == "usage").expect("a usage event"))
}

fn tokens(usage: &Value, key: &str) -> u64 {
    usage[key].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn an_answer_costs_its_tokens_at_the_configured_prices() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_PRICING_PRICES", HAIKU_PRICE)]).await;
    let events = app.chat(None, "What does this cost? [sim tokens=7]").await;
    let usage = usage_of(&events);
    let (input, output) = (tokens(&usage, "input_tokens"), tokens(&usage, "output_tokens"));
    assert!(input > 0 && output == 7, "{usage}");
    let expected = input * HAIKU_NANOS[0] + output * HAIKU_NANOS[1];
    assert_eq!(usage["cost_nanos"], expected, "{usage}");

    let id = conversation_id(&events);
    let (_, stored) = app.get_json(&format!("/api/conversations/{id}")).await;
    let answer = &stored["messages"][1];
    assert_eq!(answer["usage"]["cost_nanos"], expected, "stored with the answer");
}

#[tokio::test]
async fn a_model_without_a_price_has_no_cost() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_PRICING_PRICES", "")]).await;
    let events = app.chat(None, "Free? [sim tokens=3]").await;
    let usage = usage_of(&events);
    assert!(usage.get("cost_nanos").is_none(), "no price, no cost: {usage}");
}

/// A browser signed in as `name` by the (trusted) proxy header.
fn signed_in(name: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-user", name.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_usage_page_sums_the_stored_answers_and_agrees_with_the_budget() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_IDENTITY_TRUSTED_USER_HEADER", "X-Forwarded-User")]).await;
    let alice = signed_in("alice");
    let chat = |id: Option<String>, text: &'static str| {
        let (alice, base) = (alice.clone(), app.base.clone());
        async move { read_events(send_as(&alice, &base, id.as_deref(), text).await).await }
    };
    let mut expected = (0_u64, 0_u64, 0_u64);
    let first = chat(None, "One [sim tokens=4]").await;
    let id = conversation_id(&first);
    let second = chat(Some(id), "Two [sim tokens=6]").await;
    let other = chat(None, "Three [sim tokens=2]").await;
    for events in [&first, &second, &other] {
        let usage = usage_of(events);
        expected.0 += tokens(&usage, "input_tokens");
        expected.1 += tokens(&usage, "output_tokens");
        expected.2 += tokens(&usage, "cost_nanos");
    }
    assert!(expected.2 > 0, "the default model has a price");
    // A deleted conversation's answers were still paid for.
    let deleted = alice
        .delete(app.url(&format!("/api/conversations/{}", conversation_id(&other))))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);

    let (status, report) = get_json_as(&alice, &app.url("/api/page/usage")).await;
    assert_eq!(status, 200, "{report}");
    for period in ["today", "month"] {
        let totals = &report[period];
        assert_eq!(totals["answers"], 3, "{period}: {report}");
        assert_eq!(totals["input_tokens"], expected.0);
        assert_eq!(totals["output_tokens"], expected.1);
        assert_eq!(totals["cost_nanos"], expected.2);
    }
    let by_model = report["by_model"].as_array().unwrap();
    assert_eq!(by_model.len(), 1);
    assert_eq!(by_model[0]["model_id"], HAIKU);
    assert_eq!(by_model[0]["totals"]["cost_nanos"], expected.2);

    // The daily budget counts the same tokens.
    let today = bedrock_chat::conversations::store::now_ms().div_euclid(86_400_000);
    let standing = app.store.owner_standing("user:alice", today).await.unwrap();
    assert_eq!(standing.tokens_today, expected.0 + expected.1);

    // Another owner sees none of it.
    let (_, theirs) = get_json_as(&signed_in("bob"), &app.url("/api/page/usage")).await;
    assert_eq!(theirs["today"]["answers"], 0, "{theirs}");
}

#[tokio::test]
async fn the_system_prompt_and_history_are_cached_once_and_then_read_at_the_cache_price() {
    let system_prompt = vec!["rule"; 1200].join(" ");
    let app = spawn_app_with(&[
        ("BEDROCK_CHAT_BEDROCK_SYSTEM_PROMPT", &system_prompt),
        ("BEDROCK_CHAT_PRICING_PRICES", HAIKU_PRICE),
    ])
    .await;

    let first = app.chat(None, "First question [sim tokens=3]").await;
    let usage = usage_of(&first);
    assert_eq!(
        tokens(&usage, "cache_write_tokens"),
        1200,
        "the system prompt is written: {usage}"
    );
    assert_eq!(tokens(&usage, "cache_read_tokens"), 0);
    // The simulator counts words: the four of the message.
    assert_eq!(
        tokens(&usage, "input_tokens"),
        4,
        "only the new message is plain input"
    );
    assert_eq!(app.sim.received().last().unwrap().cache_points.len(), 1);

    let id = conversation_id(&first);
    let second = app.chat(Some(&id), "Second question [sim tokens=3]").await;
    let usage = usage_of(&second);
    let (read, written) = (
        tokens(&usage, "cache_read_tokens"),
        tokens(&usage, "cache_write_tokens"),
    );
    assert_eq!(read, 1200, "the system prompt is read from the cache: {usage}");
    assert!(written > 0, "the first exchange is written after it: {usage}");
    assert_eq!(
        app.sim.received().last().unwrap().cache_points.len(),
        2,
        "a point after the system prompt and one after the history"
    );
    let [input, output, cache_read, cache_write] = HAIKU_NANOS;
    let expected = tokens(&usage, "input_tokens") * input
        + tokens(&usage, "output_tokens") * output
        + read * cache_read
        + written * cache_write;
    assert_eq!(tokens(&usage, "cost_nanos"), expected, "{usage}");

    // Stored with the answer, as sent.
    let (_, stored) = app.get_json(&format!("/api/conversations/{id}")).await;
    assert_eq!(stored["messages"][3]["usage"]["cache_read_tokens"], 1200);
}

#[tokio::test]
async fn a_model_that_takes_no_cache_points_gets_none_and_bedrock_refuses_them() {
    const LLAMA: &str = "meta.llama3-70b-instruct-v1:0";
    let system_prompt = vec!["rule"; 1200].join(" ");
    let models = format!("{HAIKU},{LLAMA}");
    let app = spawn_app_with(&[
        ("BEDROCK_CHAT_BEDROCK_SYSTEM_PROMPT", &system_prompt),
        ("BEDROCK_CHAT_BEDROCK_MODELS", &models),
    ])
    .await;
    let response = app
        .post_json(
            "/api/chat/stream",
            &serde_json::json!({ "content": "Hi [sim tokens=2]", "model_id": LLAMA }),
        )
        .await;
    let events = read_events(response).await;
    assert_eq!(names(&events).last(), Some(&"done"));
    assert!(app.sim.received().last().unwrap().cache_points.is_empty());

    // Misconfigured, the app would send them; the simulator refuses them
    // as Bedrock does, and the user reads why.
    let misconfigured = spawn_app_with(&[
        ("BEDROCK_CHAT_BEDROCK_SYSTEM_PROMPT", &system_prompt),
        ("BEDROCK_CHAT_BEDROCK_MODELS", &models),
        ("BEDROCK_CHAT_BEDROCK_CACHE_MODELS", "meta.llama"),
    ])
    .await;
    let response = misconfigured
        .post_json(
            "/api/chat/stream",
            &serde_json::json!({ "content": "Hi", "model_id": LLAMA }),
        )
        .await;
    let events = read_events(response).await;
    let error = json(events.last().unwrap());
    assert_eq!(error["code"], "model_rejected_input", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("prompt caching"),
        "{error}"
    );
}
