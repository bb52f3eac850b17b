//! The wire format of the FastAPI service we replace, read exactly as its
//! Streamlit client reads it (`requests.post(stream=True).iter_lines()`).

use crate::support::*;
use futures::StreamExt;

/// What the seed client does: split the body into lines, keep `data:` lines,
/// strip the prefix, stop at `[DONE]`, parse the rest as JSON.
async fn read_like_the_seed_client(response: reqwest::Response) -> (Vec<serde_json::Value>, bool) {
    let mut buffer = Vec::new();
    let mut body = response.bytes_stream();
    let read = async {
        while let Some(chunk) = body.next().await {
            buffer.extend_from_slice(&chunk.unwrap());
        }
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .expect("stream ends in time");
    let mut chunks = Vec::new();
    for line in buffer.split(|&b| b == b'\n') {
        if !line.starts_with(b"data:") {
            continue;
        }
        let json_str = std::str::from_utf8(&line[5..]).unwrap().trim();
        if json_str == "[DONE]" {
            return (chunks, true);
        }
        chunks.push(serde_json::from_str(json_str).expect("each data line is JSON"));
    }
    (chunks, false)
}

#[tokio::test]
async fn the_seed_client_reads_our_answer_unchanged() {
    let app = spawn_app().await;
    let turns = [("user", "안녕하세요, 스트리밍 테스트입니다")];
    let response = app.post_json("/api/chat", &conversation(&turns)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-accel-buffering"], "no");

    let (chunks, done) = read_like_the_seed_client(response).await;
    assert!(done, "the stream ends with data: [DONE]");
    assert!(chunks.len() > 5);
    let mut text = String::new();
    for chunk in &chunks {
        assert_eq!(chunk["role"], "assistant");
        text.push_str(chunk["content"].as_str().unwrap());
    }
    assert_eq!(
        text,
        bedrock_chat::bedrock::simulator::expected_answer(&sim_messages(&turns))
    );
}

#[tokio::test]
async fn a_mid_stream_error_keeps_the_seed_shape_and_still_ends_with_done() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/chat",
            &conversation(&[("user", "Hi [sim fail=model_stream_error after=2]")]),
        )
        .await;
    let (chunks, done) = read_like_the_seed_client(response).await;
    assert!(done);
    assert_eq!(chunks.len(), 3);
    let last = &chunks[2];
    assert_eq!(last["role"], "assistant");
    assert_eq!(last["content"], "");
    assert_eq!(last["error"]["code"], "model_error");
}

#[tokio::test]
async fn bad_input_gets_the_same_clear_errors_as_the_main_endpoint() {
    let app = spawn_app().await;
    let response = app
        .post_json("/api/chat", &conversation(&[("user", "   ")]))
        .await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "empty_message");
}
