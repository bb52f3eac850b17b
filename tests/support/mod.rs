//! Starts the real application on a loopback port with a simulator of its
//! own behind it, and reads its streams over real HTTP.

#![allow(dead_code)] // each test binary uses a different part of this

use bedrock_chat::{
    bedrock::{simulator, BedrockChat},
    server::{Application, Settings},
    sse,
};
use futures::StreamExt;
use std::{collections::HashMap, net::SocketAddr, time::Duration};

pub struct TestApp {
    pub base: String,
    pub sim: simulator::SimulatorHandle,
    pub http: reqwest::Client,
    pub settings: Settings,
}

/// Every test is bounded: no single request or stream may hang a run.
pub const LIMIT: Duration = Duration::from_secs(20);

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the app with settings overridden as environment variables would.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let mut env: HashMap<String, String> = [
        ("BEDROCK_CHAT_SERVER_SITE_ADDR", "127.0.0.1:0"),
        ("BEDROCK_CHAT_BEDROCK_BACKEND", "simulator"),
        // Errors are asserted as they come; retries would only slow tests.
        ("BEDROCK_CHAT_BEDROCK_MAX_ATTEMPTS", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = Settings::built_in_with(&env).expect("test settings are valid");

    let sim = simulator::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts");
    let bedrock = BedrockChat::for_simulator(sim.clone(), settings.bedrock.max_attempts);
    let app = Application::build_with(settings.clone(), bedrock)
        .await
        .expect("app starts");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        sim,
        http: reqwest::Client::builder().timeout(LIMIT).build().unwrap(),
        settings,
    }
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request is answered")
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request is answered")
    }
}

/// `{"messages": [...]}` from (role, text) pairs.
pub fn conversation(turns: &[(&str, &str)]) -> serde_json::Value {
    serde_json::json!({
        "messages": turns
            .iter()
            .map(|(role, content)| serde_json::json!({ "role": role, "content": content }))
            .collect::<Vec<_>>()
    })
}

pub fn sim_messages(turns: &[(&str, &str)]) -> Vec<simulator::SimMessage> {
    turns
        .iter()
        .map(|(role, text)| simulator::SimMessage {
            role: role.to_string(),
            text: text.to_string(),
        })
        .collect()
}

/// Reads a whole SSE response with the crate's own parser.
pub async fn read_events(response: reqwest::Response) -> Vec<sse::SseEvent> {
    let mut parser = sse::Parser::new();
    let mut events = Vec::new();
    let mut body = response.bytes_stream();
    let read = async {
        while let Some(chunk) = body.next().await {
            parser.feed(&chunk.expect("stream chunk"), |e| events.push(e));
        }
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .expect("stream ends in time");
    events
}

/// The concatenated `delta` texts.
pub fn answer_text(events: &[sse::SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.event == "delta")
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            v["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

pub fn json(event: &sse::SseEvent) -> serde_json::Value {
    serde_json::from_str(&event.data).expect("event data is JSON")
}
