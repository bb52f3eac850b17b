//! Tools of MCP servers: the demo server written with `rmcp`
//! (examples/mcp_demo_server.rs) reached over stdio (a process the app
//! starts and restarts) and over Streamable HTTP on loopback, through the
//! real chat stream.

use crate::support::*;
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// The demo server's binary, which `cargo test` builds with the examples.
fn demo_server() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = debug.join("examples").join("mcp_demo_server");
    assert!(path.exists(), "build the example first: {}", path.display());
    path
}

fn result_of(events: &[bedrock_chat::sse::SseEvent]) -> serde_json::Value {
    let found = events.iter().find(|e| e.event == "tool_result");
    json(found.unwrap_or_else(|| panic!("no tool_result in {events:?}")))
}

async fn app_with_stdio_server(extra: &[(&str, &str)]) -> TestApp {
    let entry = format!("demo=stdio:{}", demo_server().display());
    let mut settings = vec![
        ("BEDROCK_CHAT_TOOLS_MCP_SERVERS", entry.as_str()),
        ("BEDROCK_CHAT_TOOLS_ON_BY_DEFAULT", "calculator,demo"),
    ];
    settings.extend_from_slice(extra);
    let app = spawn_app_with(&settings).await;
    assert!(
        app.mcp.connected("demo", Duration::from_secs(20)).await,
        "the demo server connects"
    );
    app
}

#[tokio::test]
async fn a_stdio_servers_tools_are_offered_and_called() {
    let app = app_with_stdio_server(&[]).await;
    let events = app.chat(None, r#"[sim call=demo__echo:{"text":"hi"}]"#).await;
    let result = result_of(&events);
    assert_eq!(result["ok"], true);
    assert_eq!(result["content"], "echo: hi");
    let offered = app.sim.received()[0].tools.clone().unwrap();
    for name in ["calculator", "demo__echo", "demo__add", "demo__hang"] {
        assert!(offered.contains(&name.to_owned()), "{name} in {offered:?}");
    }

    // An error result of the server's is an error result for the model.
    let events = app.chat(None, "[sim call=demo__fail]").await;
    let result = result_of(&events);
    assert_eq!(result["ok"], false);
    assert_eq!(result["content"], "the demo tool failed on purpose");
    assert_eq!(json(events.last().unwrap())["stop_reason"], "end_turn");
}

#[tokio::test]
async fn a_server_that_dies_mid_call_gives_an_error_and_is_restarted() {
    let app = app_with_stdio_server(&[]).await;
    let events = app.chat(None, "[sim call=demo__crash]").await;
    let result = result_of(&events);
    assert_eq!(result["ok"], false);
    assert!(
        result["content"].as_str().unwrap().contains("\"demo\""),
        "names the server: {result}"
    );
    assert_eq!(json(events.last().unwrap())["stop_reason"], "end_turn");
    // Started again (with backoff), and answering.
    assert!(app.mcp.connected("demo", Duration::from_secs(20)).await);
    let mut answered = false;
    for _ in 0..20 {
        let events = app.chat(None, r#"[sim call=demo__add:{"a":2,"b":40}]"#).await;
        if result_of(&events)["content"] == "42" {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(answered, "the restarted server answers");
}

#[tokio::test]
async fn a_server_that_never_answers_is_bounded_by_the_call_timeout() {
    let app = app_with_stdio_server(&[("BEDROCK_CHAT_TOOLS_TIMEOUT_SECS", "1")]).await;
    let started = std::time::Instant::now();
    let events = app.chat(None, "[sim call=demo__hang]").await;
    let result = result_of(&events);
    assert_eq!(result["ok"], false);
    assert!(result["content"]
        .as_str()
        .unwrap()
        .contains("did not answer within 1 seconds"));
    assert_eq!(json(events.last().unwrap())["stop_reason"], "end_turn");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The demo server over Streamable HTTP, killed when dropped.
struct HttpServer {
    child: Child,
    url: String,
}

impl HttpServer {
    fn start(bearer: &str) -> Self {
        let mut child = Command::new(demo_server())
            .args(["--http", "127.0.0.1:0", "--bearer", bearer])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap().to_owned();
        Self { child, url }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_streamable_http_server_with_a_bearer_token() {
    let server = HttpServer::start("s3cret");
    // Read by the app from the environment, never from the settings.
    std::env::set_var("MCP_DEMO_TOKEN", "s3cret");
    let entry = format!("web=http:{} bearer=MCP_DEMO_TOKEN", server.url);
    let app = spawn_app_with(&[
        ("BEDROCK_CHAT_TOOLS_MCP_SERVERS", entry.as_str()),
        ("BEDROCK_CHAT_TOOLS_ON_BY_DEFAULT", "web"),
    ])
    .await;
    assert!(app.mcp.connected("web", Duration::from_secs(20)).await);
    let events = app.chat(None, r#"[sim call=web__add:{"a":20,"b":22}]"#).await;
    assert_eq!(result_of(&events)["content"], "42");

    // A wrong token: the server stays unconnected, and has no tools to offer
    // (the answer goes on without them).
    let wrong = format!("wrong=http:{} bearer=PATH", server.url);
    let refused = spawn_app_with(&[
        ("BEDROCK_CHAT_TOOLS_MCP_SERVERS", wrong.as_str()),
        ("BEDROCK_CHAT_TOOLS_ON_BY_DEFAULT", "wrong"),
    ])
    .await;
    assert!(!refused.mcp.connected("wrong", Duration::from_secs(2)).await);
    let events = refused.chat(None, "[sim call=wrong__add]").await;
    assert_eq!(json(events.last().unwrap())["stop_reason"], "end_turn");
    assert_eq!(refused.sim.received()[0].tools, None);
}

#[tokio::test]
async fn stop_during_a_call_ends_the_call_and_the_answer_at_once() {
    let app = app_with_stdio_server(&[]).await;
    let response = app.send(None, "[sim call=demo__hang]").await;
    let mut reader = EventReader::new(response);
    let events = reader
        .read_until(|events| events.iter().any(|e| e.event == "tool_running"))
        .await
        .to_vec();
    let answer_id = json(&events[0])["answer_id"].as_str().unwrap().to_owned();
    let stopped_at = std::time::Instant::now();
    let cancel = app
        .http
        .post(app.url(&format!("/api/generations/{answer_id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    let events = reader.read_to_end().await.to_vec();
    assert!(
        stopped_at.elapsed() < Duration::from_secs(5),
        "not held by the hung call"
    );
    assert_eq!(json(events.last().unwrap())["stop_reason"], "stopped");
    assert!(!events.iter().any(|e| e.event == "tool_result"));
    let (_, stored) = app
        .get_json(&format!("/api/conversations/{}", conversation_id(&events)))
        .await;
    let answer = &stored["messages"][1];
    assert_eq!(answer["status"], "stopped");
    let call = answer["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool")
        .unwrap();
    assert!(call["result"].is_null(), "stored as not finished: {call}");
    // The conversation goes on: the unfinished call is closed in the history.
    let next = app.chat(Some(&conversation_id(&events)), "And now?").await;
    assert_eq!(json(next.last().unwrap())["stop_reason"], "end_turn", "{next:?}");
}
