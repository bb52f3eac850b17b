//! Answers that call tools and think: the real SDK against the simulator,
//! which speaks tool use and reasoning as Bedrock does and refuses what
//! Bedrock refuses (so a history the app rebuilds wrongly fails here).

use crate::support::*;
use bedrock_chat::bedrock::{simulator::SimBlock, Block, ConverseInput, Turn};
use serde_json::json;

const SONNET_37: &str = "us.anthropic.claude-3-7-sonnet-20250219-v1:0";

fn of<'a>(events: &'a [bedrock_chat::sse::SseEvent], name: &str) -> Vec<&'a bedrock_chat::sse::SseEvent> {
    events.iter().filter(|e| e.event == name).collect()
}

#[tokio::test]
async fn a_tool_round_runs_the_call_and_the_answer_goes_on() {
    let app = spawn_app().await;
    let events = app
        .chat(
            None,
            r#"What is six times seven? [sim call=calculator:{"expression":"6*7"}]"#,
        )
        .await;
    let calls = of(&events, "tool_call");
    assert_eq!(calls.len(), 1);
    assert_eq!(json(calls[0])["name"], "calculator");
    let id = json(calls[0])["id"].as_str().unwrap().to_owned();
    let input: String = of(&events, "tool_input")
        .iter()
        .map(|e| json(e)["fragment"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(input, r#"{"expression":"6*7"}"#);
    assert!(of(&events, "tool_input").len() > 1, "arguments arrive in pieces");
    let result = json(of(&events, "tool_result")[0]);
    assert_eq!(result["id"], id.as_str());
    assert_eq!(result["ok"], true);
    assert_eq!(result["content"], "6*7 = 42");
    // Text, then the call, then the text after it, in that order.
    let order: Vec<&str> = names(&events)
        .into_iter()
        .filter(|n| ["delta", "tool_call", "tool_running", "tool_result"].contains(n))
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] != w[1])
        .map(|w| w[1])
        .collect();
    assert_eq!(order, ["tool_call", "tool_running", "tool_result", "delta"]);
    assert!(
        answer_text(&events).contains("calculator said: 6*7 = 42"),
        "{}",
        answer_text(&events)
    );
    let done = json(events.last().unwrap());
    assert_eq!(done["stop_reason"], "end_turn");
    assert_eq!(
        names(&events).iter().filter(|n| **n == "usage").count(),
        1,
        "usage once, summed"
    );

    // Two Bedrock calls: the second carries the tools, the model's own
    // message and the result.
    let received = app.sim.received();
    assert_eq!(received.len(), 2);
    let second = &received[1];
    assert!(second.tools.as_ref().unwrap().contains(&"calculator".to_owned()));
    let last = second.messages.last().unwrap();
    assert!(
        matches!(&last.blocks[..], [SimBlock::ToolResult { error: false, text, .. }] if text == "6*7 = 42")
    );

    // Stored in order, and the next message's history is accepted by the
    // simulator's Bedrock checks (toolUse answered by toolResult).
    let conversation = conversation_id(&events);
    let (_, stored) = app.get_json(&format!("/api/conversations/{conversation}")).await;
    let blocks = stored["messages"][1]["blocks"].as_array().unwrap().clone();
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "tool", "text"]);
    assert_eq!(blocks[1]["result"]["content"], "6*7 = 42");
    assert_eq!(blocks[1]["input"], r#"{"expression":"6*7"}"#);
    let next = app.chat(Some(&conversation), "Thanks!").await;
    assert_eq!(json(next.last().unwrap())["stop_reason"], "end_turn", "{next:?}");
    let history = &app.sim.received()[2].messages;
    assert_eq!(history.len(), 5, "user, assistant+call, results, answer, user");
    assert!(matches!(history[1].blocks.last(), Some(SimBlock::ToolUse { .. })));
}

#[tokio::test]
async fn parallel_calls_each_get_a_card_and_failures_are_results_the_model_reads() {
    let app = spawn_app().await;
    let events = app
        .chat(
            None,
            r#"[sim call=current_time call=calculator:{"expression":"2+*("} call=shell:{"cmd":"ls"}]"#,
        )
        .await;
    assert_eq!(of(&events, "tool_call").len(), 3);
    let results: Vec<serde_json::Value> = of(&events, "tool_result").iter().map(|e| json(e)).collect();
    assert_eq!(results.len(), 3);
    let by_name = |name: &str| {
        let id = of(&events, "tool_call")
            .iter()
            .map(|e| json(e))
            .find(|c| c["name"] == name)
            .unwrap()["id"]
            .clone();
        results.iter().find(|r| r["id"] == id).unwrap().clone()
    };
    assert_eq!(by_name("current_time")["ok"], true);
    let bad = by_name("calculator");
    assert_eq!(bad["ok"], false);
    assert!(
        bad["content"].as_str().unwrap().contains("cannot be computed"),
        "{bad}"
    );
    let unknown = by_name("shell");
    assert_eq!(unknown["ok"], false);
    assert!(
        unknown["content"].as_str().unwrap().contains("calculator"),
        "names the tools offered: {unknown}"
    );
    let text = answer_text(&events);
    assert!(text.contains("shell failed: There is no tool"), "{text}");
    assert_eq!(json(events.last().unwrap())["stop_reason"], "end_turn");
    // Results go back in the order the model asked.
    let last = app.sim.received()[1].messages.last().unwrap().clone();
    let errors: Vec<bool> = last
        .blocks
        .iter()
        .map(|b| matches!(b, SimBlock::ToolResult { error: true, .. }))
        .collect();
    assert_eq!(errors, [false, true, true]);
}

#[tokio::test]
async fn invalid_arguments_become_an_error_result() {
    let app = spawn_app().await;
    let events = app
        .chat(None, r#"[sim call=calculator:{"expression":"1+1"} bad_args]"#)
        .await;
    let result = json(of(&events, "tool_result")[0]);
    assert_eq!(result["ok"], false);
    assert!(
        result["content"].as_str().unwrap().contains("not valid JSON"),
        "{result}"
    );
    assert_eq!(json(events.last().unwrap())["stop_reason"], "end_turn");
}

#[tokio::test]
async fn past_the_most_rounds_the_answer_ends_with_a_clear_message() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_TOOLS_MAX_ROUNDS", "2")]).await;
    let events = app
        .chat(None, r#"[sim call=calculator:{"expression":"1+1"} rounds=5]"#)
        .await;
    assert_eq!(of(&events, "tool_result").len(), 2);
    let end = events.last().unwrap();
    assert_eq!(end.event, "error");
    assert_eq!(json(end)["code"], "tool_rounds_exceeded");
    assert!(json(end)["message"].as_str().unwrap().contains("rounds"));
    let (_, stored) = app
        .get_json(&format!("/api/conversations/{}", conversation_id(&events)))
        .await;
    assert_eq!(stored["messages"][1]["status"], "error");
    // Two rounds run; the third call asked for was not.
    let blocks = stored["messages"][1]["blocks"].as_array().unwrap().clone();
    assert_eq!(blocks.len(), 6);
    assert!(blocks[5]["result"].is_null() && blocks[3]["result"]["ok"] == true);
}

#[tokio::test]
async fn thinking_streams_and_its_signature_goes_back_unchanged_in_tool_rounds() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/chat/stream",
            &json!({
                "content": r#"[sim call=calculator:{"expression":"2^10"} think=6 redacted]"#,
                "model_id": SONNET_37,
                "settings": { "thinking_budget": 1024, "max_tokens": 4096, "temperature": 0.3 },
            }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let events = read_events(response).await;
    assert_eq!(
        json(events.last().unwrap())["stop_reason"],
        "end_turn",
        "{events:?}"
    );
    let reasoning: String = of(&events, "reasoning")
        .iter()
        .map(|e| json(e)["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(reasoning.starts_with("Thinking about step 1:"), "{reasoning}");
    assert_eq!(of(&events, "reasoning_redacted").len(), 2, "one per round");
    // Reasoning comes before the round's text.
    let first_reasoning = names(&events).iter().position(|n| *n == "reasoning").unwrap();
    let first_delta = names(&events).iter().position(|n| *n == "delta").unwrap();
    assert!(first_reasoning < first_delta);

    let received = app.sim.received();
    assert_eq!(received[0].thinking_budget, Some(1024));
    assert_eq!(received[0].temperature, None, "no temperature while thinking");
    // The second round sent the first's reasoning back, signed, first.
    let assistant = &received[1].messages[1];
    assert!(matches!(
        &assistant.blocks[0],
        SimBlock::Reasoning {
            signature: Some(_),
            ..
        }
    ));
    assert!(matches!(&assistant.blocks[1], SimBlock::RedactedReasoning));

    let (_, stored) = app
        .get_json(&format!("/api/conversations/{}", conversation_id(&events)))
        .await;
    let kinds: Vec<String> = stored["messages"][1]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds[0], "reasoning");
    assert!(kinds.contains(&"tool".to_owned()));
}

#[tokio::test]
async fn a_resume_cut_inside_a_tool_call_replays_it_exactly() {
    let app = spawn_app().await;
    let events = app
        .chat(
            None,
            r#"[sim call=calculator:{"expression":"123456789*987654321"}]"#,
        )
        .await;
    let answer_id = json(&events[0])["answer_id"].as_str().unwrap().to_owned();
    let cut = names(&events).iter().position(|n| *n == "tool_input").unwrap() + 1;
    let resumed = read_events(
        app.http
            .get(app.url(&format!(
                "/api/generations/{answer_id}/events?last_event_id={cut}"
            )))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resumed, events[cut..].to_vec());
}

/// The search tool's query on each database: owner-scoped, and `%` and
/// `_` in a query are the characters themselves, not wildcards.
async fn the_search_tool_finds_only_the_owners_own_messages(db: Db) {
    let app = spawn_app_on(db, &[]).await;
    app.chat(None, "My zebra password is hunter2 [sim tokens=3]")
        .await;
    let other = new_user();
    read_events(
        send_as(
            &other,
            &app.base,
            None,
            "I saw a zebra at the zoo, 100% real [sim tokens=3]",
        )
        .await,
    )
    .await;
    let search = |query: &str| {
        let text = format!(r#"[sim call=search_conversations:{{"query":"{query}"}}]"#);
        let (other, base) = (other.clone(), app.base.clone());
        async move {
            // From a new conversation: the one asking is not searched.
            let events = read_events(send_as(&other, &base, None, &text).await).await;
            json(of(&events, "tool_result")[0])["content"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let found = search("ZEBRA").await;
    assert!(found.contains("zoo"), "{found}");
    assert!(
        !found.contains("hunter2"),
        "another owner's message leaked: {found}"
    );
    assert!(search("100%").await.contains("zoo"));
    assert!(
        search("1_0").await.starts_with("No message"),
        "`_` is not a wildcard"
    );
}

#[tokio::test]
async fn the_search_tool_finds_only_the_owners_own_messages_on_sqlite() {
    the_search_tool_finds_only_the_owners_own_messages(Db::sqlite()).await
}

#[tokio::test]
async fn the_search_tool_finds_only_the_owners_own_messages_on_postgres() {
    if let Some(db) = Db::postgres().await {
        the_search_tool_finds_only_the_owners_own_messages(db).await
    }
}

#[tokio::test]
async fn tool_and_thinking_settings_are_checked() {
    let app = spawn_app_with(&[
        ("BEDROCK_CHAT_TOOLS_OFFERED", "calculator"),
        ("BEDROCK_CHAT_TOOLS_ON_BY_DEFAULT", "calculator"),
    ])
    .await;
    for (settings, code) in [
        (json!({"tools": ["search_conversations"]}), "unknown_tool"),
        (json!({"tools": ["rm -rf"]}), "unknown_tool"),
        (json!({"thinking_budget": 100}), "bad_thinking"),
        (
            json!({"thinking_budget": 4096, "max_tokens": 2048}),
            "bad_thinking",
        ),
    ] {
        let response = app
            .post_json(
                "/api/chat/stream",
                &json!({"content": "hi", "settings": settings}),
            )
            .await;
        assert_eq!(response.status(), 400, "{settings}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
        assert!(body["error"]["message"].as_str().unwrap().ends_with('.'));
    }
    let response = app
        .post_json(
            "/api/chat/stream",
            &json!({"content": "hi", "time_zone": "Mars/Olympus"}),
        )
        .await;
    assert_eq!(response.status(), 400);
    assert!(app.sim.received().is_empty(), "nothing reached Bedrock");

    // Tools turned off: the model is offered none.
    let response = app
        .post_json(
            "/api/chat/stream",
            &json!({"content": "hi [sim call=calculator]", "settings": {"tools": []}}),
        )
        .await;
    let events = read_events(response).await;
    assert!(of(&events, "tool_call").is_empty());
    assert_eq!(app.sim.received()[0].tools, None);
}

#[tokio::test]
async fn the_simulator_refuses_the_histories_bedrock_refuses() {
    let app = spawn_app().await;
    let bedrock = bedrock_chat::bedrock::BedrockChat::for_simulator(app.sim.clone(), 1);
    let tool = |id: &str| Block::ToolUse {
        id: id.into(),
        name: "calculator".into(),
        input: json!({}),
    };
    let result = |id: &str| Block::ToolResult {
        id: id.into(),
        ok: true,
        content: "1".into(),
    };
    let spec = bedrock_chat::tools::specs(&["calculator".to_owned()], &Default::default());
    let cases: Vec<(Vec<Turn>, Vec<_>, Option<u32>, &str)> = vec![
        (
            vec![
                Turn::text(true, "q"),
                Turn {
                    from_user: false,
                    blocks: vec![tool("a")],
                },
                Turn {
                    from_user: true,
                    blocks: vec![result("a")],
                },
            ],
            Vec::new(),
            None,
            "toolConfig",
        ),
        (
            vec![
                Turn::text(true, "q"),
                Turn::text(false, "x"),
                Turn {
                    from_user: true,
                    blocks: vec![result("a")],
                },
            ],
            spec.clone(),
            None,
            "does not match any toolUse",
        ),
        (
            vec![
                Turn::text(true, "q"),
                Turn {
                    from_user: false,
                    blocks: vec![tool("a")],
                },
                Turn::text(true, "next"),
            ],
            spec.clone(),
            None,
            "Expected toolResult",
        ),
        (
            vec![
                Turn::text(true, "q"),
                Turn {
                    from_user: false,
                    blocks: vec![
                        Block::Reasoning {
                            text: "t".into(),
                            signature: Some("forged".into()),
                        },
                        tool("a"),
                    ],
                },
                Turn {
                    from_user: true,
                    blocks: vec![result("a")],
                },
            ],
            spec.clone(),
            Some(2048),
            "signature",
        ),
        (
            vec![
                Turn::text(true, "q"),
                Turn {
                    from_user: false,
                    blocks: vec![tool("a")],
                },
                Turn {
                    from_user: true,
                    blocks: vec![result("a")],
                },
            ],
            spec.clone(),
            Some(2048),
            "must start with a thinking block",
        ),
    ];
    for (turns, tools, budget, wanted) in cases {
        let input = ConverseInput {
            model_id: "m".into(),
            system_prompt: String::new(),
            turns,
            max_tokens: 4096,
            temperature: None,
            reasoning_budget: budget,
            tools,
            cache: false,
        };
        let err = match bedrock.converse_stream(&input).await {
            Ok(_) => panic!("{wanted}: accepted"),
            Err(err) => err,
        };
        assert!(err.detail.contains(wanted), "{wanted}: {}", err.detail);
    }
}

/// Starts an answer (on the app at `base`) whose calculator call waits for
/// approval; returns the reader (stopped at `tool_approval`), the answer's
/// id and the call's id.
pub(crate) async fn awaiting_approval(http: &reqwest::Client, base: &str) -> (EventReader, String, String) {
    let response = send_as(http, base, None, r#"[sim call=calculator:{"expression":"6*7"}]"#).await;
    let mut reader = EventReader::new(response);
    let events = reader
        .read_until(|events| events.iter().any(|e| e.event == "tool_approval"))
        .await
        .to_vec();
    assert!(
        !events.iter().any(|e| e.event == "tool_running"),
        "nothing runs before the decision"
    );
    let answer_id = json(&events[0])["answer_id"].as_str().unwrap().to_owned();
    let call_id = json(events.iter().find(|e| e.event == "tool_approval").unwrap())["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (reader, answer_id, call_id)
}

#[tokio::test]
async fn a_call_that_needs_approval_runs_when_approved_and_is_declined_when_denied() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_TOOLS_REQUIRES_APPROVAL", "calculator")]).await;
    let decide = |answer: &str, call: &str, approve: bool| {
        app.http
            .post(app.url(&format!("/api/generations/{answer}/tools/{call}")))
            .json(&json!({ "approve": approve }))
            .send()
    };

    let (mut reader, answer, call) = awaiting_approval(&app.http, &app.base).await;
    // Someone else cannot decide.
    let stranger = new_user()
        .post(app.url(&format!("/api/generations/{answer}/tools/{call}")))
        .json(&json!({ "approve": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 404);
    assert_eq!(decide(&answer, &call, true).await.unwrap().status(), 200);
    let again = decide(&answer, &call, false).await.unwrap();
    assert_eq!(again.status(), 409, "decided once");
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_awaiting_approval");
    let events = reader.read_to_end().await.to_vec();
    let after: Vec<&str> = names(&events)
        .into_iter()
        .skip_while(|n| *n != "tool_approval")
        .filter(|n| n.starts_with("tool_"))
        .collect();
    assert_eq!(after, ["tool_approval", "tool_running", "tool_result"]);
    assert_eq!(json(of(&events, "tool_result")[0])["content"], "6*7 = 42");

    let (mut reader, answer, call) = awaiting_approval(&app.http, &app.base).await;
    assert_eq!(decide(&answer, &call, false).await.unwrap().status(), 200);
    let events = reader.read_to_end().await.to_vec();
    let result = json(of(&events, "tool_result")[0]);
    assert_eq!(result["ok"], false);
    assert_eq!(result["content"], "The user declined to run this tool call.");
    assert!(answer_text(&events).contains("calculator failed: The user declined"));
    assert_eq!(json(events.last().unwrap())["stop_reason"], "end_turn");
}

#[tokio::test]
async fn a_call_nobody_decides_on_is_not_run() {
    let app = spawn_app_with(&[
        ("BEDROCK_CHAT_TOOLS_REQUIRES_APPROVAL", "calculator"),
        ("BEDROCK_CHAT_TOOLS_APPROVAL_TIMEOUT_SECS", "0.3"),
    ])
    .await;
    let (mut reader, _, _) = awaiting_approval(&app.http, &app.base).await;
    let events = reader.read_to_end().await.to_vec();
    let result = json(of(&events, "tool_result")[0]);
    assert_eq!(result["ok"], false);
    assert!(result["content"].as_str().unwrap().contains("in time"));
    assert_eq!(json(events.last().unwrap())["stop_reason"], "end_turn");
}

#[tokio::test]
async fn a_model_that_takes_no_tools_answers_without_them() {
    let llama = "meta.llama3-8b-instruct-v1:0";
    let models = format!("{llama}|Llama 3,us.anthropic.claude-3-5-haiku-20241022-v1:0");
    let app = spawn_app_with(&[("BEDROCK_CHAT_BEDROCK_MODELS", models.as_str())]).await;
    let response = app
        .post_json(
            "/api/chat/stream",
            &json!({"content": "hello", "model_id": llama}),
        )
        .await;
    let events = read_events(response).await;
    assert_eq!(
        json(events.last().unwrap())["stop_reason"],
        "end_turn",
        "{events:?}"
    );
    let received = app.sim.received();
    assert_eq!(received.len(), 2, "refused with tools, then answered without");
    assert!(received[0].tools.is_some() && received[1].tools.is_none());
}

/// A page on loopback, for the fetch tool.
async fn loopback_page() -> String {
    let app = axum::Router::new()
        .route("/page", axum::routing::get(|| async { "hello from the page" }))
        .route(
            "/moved",
            axum::routing::get(|| async { axum::response::Redirect::temporary("/page") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_fetch_tool_refuses_local_addresses_unless_allowed() {
    let page = loopback_page().await;
    let call = format!(r#"[sim call=fetch_url:{{"url":"{page}/moved"}}]"#);
    let refusing = spawn_app_with(&[("BEDROCK_CHAT_TOOLS_ON_BY_DEFAULT", "fetch_url")]).await;
    let result = json(of(&refusing.chat(None, &call).await, "tool_result")[0]);
    assert_eq!(result["ok"], false);
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .contains("private or local network"),
        "{result}"
    );

    let allowing = spawn_app_with(&[
        ("BEDROCK_CHAT_TOOLS_ON_BY_DEFAULT", "fetch_url"),
        ("BEDROCK_CHAT_TOOLS_FETCH_ALLOW_PRIVATE", "true"),
    ])
    .await;
    let result = json(of(&allowing.chat(None, &call).await, "tool_result")[0]);
    assert_eq!(result["ok"], true, "{result}");
    let content = result["content"].as_str().unwrap();
    assert!(
        content.contains("/page answered 200") && content.ends_with("hello from the page"),
        "{content}"
    );
}
