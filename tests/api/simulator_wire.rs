//! Wire-level tests of the Bedrock Runtime simulator: the real
//! `aws-sdk-bedrockruntime` client talks to it over loopback, and every
//! event, error and disconnect path must look exactly like the real service.
//!
//! Run with `cargo test --features ssr --test simulator_wire`.
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_bedrockruntime as br;
use br::config::retry::RetryConfig;
use br::error::SdkError;
use br::primitives::event_stream::EventReceiver;
use br::types::error::ConverseStreamOutputError;
use br::types::{
    ContentBlock, ContentBlockDelta, ConversationRole, ConverseStreamOutput, InferenceConfiguration, Message,
    StopReason, SystemContentBlock,
};

use bedrock_chat::bedrock::simulator::{self, SimMessage, SimulatorHandle};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// Every test is bounded in time.
async fn bounded<F: Future<Output = ()>>(fut: F) {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("test timed out");
}

async fn sim() -> SimulatorHandle {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    simulator::spawn(addr).await.expect("spawn simulator")
}

fn client(handle: &SimulatorHandle) -> br::Client {
    let conf = br::config::Builder::new()
        .behavior_version(br::config::BehaviorVersion::latest())
        .region(br::config::Region::new("us-east-1"))
        .credentials_provider(br::config::Credentials::new(
            "demo",
            "demo",
            None,
            None,
            "simulator",
        ))
        .endpoint_url(handle.endpoint_url())
        .retry_config(RetryConfig::disabled())
        .build();
    br::Client::from_conf(conf)
}

fn msg(role: ConversationRole, text: &str) -> Message {
    Message::builder()
        .role(role)
        .content(ContentBlock::Text(text.to_string()))
        .build()
        .unwrap()
}

fn user(text: &str) -> Message {
    msg(ConversationRole::User, text)
}

fn assistant(text: &str) -> Message {
    msg(ConversationRole::Assistant, text)
}

fn sim_msg(role: &str, text: &str) -> SimMessage {
    SimMessage::text(role, text)
}

#[derive(Default)]
struct Collected {
    text: String,
    deltas: usize,
    message_start: bool,
    block_stop: bool,
    stop: Option<StopReason>,
    usage: Option<(i32, i32, i32)>,
    latency_ms: Option<i64>,
    /// The stream's error, as the service error (non-service errors become `Unhandled`).
    error: Option<ConverseStreamOutputError>,
    /// Whether that error was a service error (an exception frame).
    service_error: bool,
}

async fn collect(mut rx: EventReceiver<ConverseStreamOutput, ConverseStreamOutputError>) -> Collected {
    let mut c = Collected::default();
    loop {
        match rx.recv().await {
            Ok(Some(ConverseStreamOutput::MessageStart(e))) => {
                assert_eq!(e.role(), &ConversationRole::Assistant);
                c.message_start = true;
            }
            Ok(Some(ConverseStreamOutput::ContentBlockDelta(e))) => {
                assert_eq!(e.content_block_index(), 0);
                match e.delta() {
                    Some(ContentBlockDelta::Text(t)) => c.text.push_str(t),
                    other => panic!("unexpected delta {other:?}"),
                }
                c.deltas += 1;
            }
            Ok(Some(ConverseStreamOutput::ContentBlockStop(e))) => {
                assert_eq!(e.content_block_index(), 0);
                c.block_stop = true;
            }
            Ok(Some(ConverseStreamOutput::MessageStop(e))) => c.stop = Some(e.stop_reason().clone()),
            Ok(Some(ConverseStreamOutput::Metadata(e))) => {
                let u = e.usage().expect("usage");
                c.usage = Some((u.input_tokens(), u.output_tokens(), u.total_tokens()));
                c.latency_ms = e.metrics().map(|m| m.latency_ms());
            }
            Ok(Some(other)) => panic!("unexpected event {other:?}"),
            Ok(None) => return c,
            Err(e) => {
                c.service_error = matches!(e, SdkError::ServiceError(_));
                c.error = Some(e.into_service_error());
                return c;
            }
        }
    }
}

async fn stream(client: &br::Client, messages: Vec<Message>) -> Collected {
    let out = client
        .converse_stream()
        .model_id(MODEL)
        .set_messages(Some(messages))
        .send()
        .await
        .expect("converse_stream send");
    collect(out.stream).await
}

#[tokio::test]
async fn streams_the_expected_answer() {
    bounded(async {
        let h = sim().await;
        let c = client(&h);
        let got = stream(&c, vec![user("Hello there, simulator")]).await;
        assert!(got.error.is_none(), "{:?}", got.error);
        let expected = simulator::expected_answer(&[sim_msg("user", "Hello there, simulator")]);
        assert_eq!(got.text, expected);
        assert!(got.text.contains("You said: \"Hello there, simulator\""));
        assert!(got.message_start && got.block_stop);
        assert_eq!(got.stop, Some(StopReason::EndTurn));
        let (input, output, total) = got.usage.expect("usage");
        assert_eq!(input, 3);
        assert_eq!(output as usize, got.deltas);
        assert_eq!(total, input + output);
        assert!(got.latency_ms.is_some());
        assert_eq!(h.streams_started(), 1);
        assert_eq!(h.streams_dropped(), 0);
        let rec = h.received();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].model_id, MODEL);
        assert!(rec[0].streaming);
        // Same conversation, same answer.
        let again = stream(&c, vec![user("Hello there, simulator")]).await;
        assert_eq!(again.text, expected);
        h.shutdown();
    })
    .await;
}

#[tokio::test]
async fn multi_turn_history_and_system_prompt_arrive() {
    bounded(async {
        let h = sim().await;
        let c = client(&h);
        let out = c
            .converse_stream()
            .model_id(MODEL)
            .system(SystemContentBlock::Text("You are terse.".into()))
            .messages(user("first question"))
            .messages(assistant("first answer"))
            .messages(user("second question"))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(500)
                    .temperature(0.5)
                    .build(),
            )
            .send()
            .await
            .expect("send");
        let got = collect(out.stream).await;
        assert!(got.error.is_none());
        let history = vec![
            sim_msg("user", "first question"),
            sim_msg("assistant", "first answer"),
            sim_msg("user", "second question"),
        ];
        assert_eq!(got.text, simulator::expected_answer(&history));
        assert!(
            got.text.starts_with("Demo answer to message 3 of 3."),
            "{}",
            got.text
        );
        let rec = h.received();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].messages, history);
        assert_eq!(rec[0].system, vec!["You are terse.".to_string()]);
        assert_eq!(rec[0].max_tokens, Some(500));
        assert_eq!(rec[0].temperature, Some(0.5));
    })
    .await;
}

#[tokio::test]
async fn korean_and_emoji_round_trip() {
    bounded(async {
        let h = sim().await;
        let c = client(&h);
        let text = "안녕하세요, 세계! 🌍🚀 이모지 👩‍👩‍👧 테스트";
        let got = stream(&c, vec![user(text)]).await;
        assert!(got.error.is_none());
        assert!(
            got.text.contains(&format!("You said: \"{text}\"")),
            "{}",
            got.text
        );
        assert_eq!(got.text, simulator::expected_answer(&[sim_msg("user", text)]));
        assert_eq!(h.received()[0].messages[0].text, text);
    })
    .await;
}

#[tokio::test]
async fn tokens_directive_and_max_tokens_cap() {
    bounded(async {
        let h = sim().await;
        let c = client(&h);
        let text = "count please [sim tokens=50]";
        let got = stream(&c, vec![user(text)]).await;
        assert_eq!(got.deltas, 50);
        assert_eq!(got.stop, Some(StopReason::EndTurn));
        assert_eq!(got.text, simulator::expected_answer(&[sim_msg("user", text)]));
        assert!(!got.text.contains("[sim"));
        assert!(got.text.contains("You said: \"count please\""));

        let out = c
            .converse_stream()
            .model_id(MODEL)
            .messages(user(text))
            .inference_config(InferenceConfiguration::builder().max_tokens(7).build())
            .send()
            .await
            .expect("send");
        let capped = collect(out.stream).await;
        assert_eq!(capped.deltas, 7);
        assert_eq!(capped.stop, Some(StopReason::MaxTokens));
        assert!(got.text.starts_with(&capped.text));
        assert_eq!(capped.usage.unwrap().1, 7);
    })
    .await;
}

#[tokio::test]
async fn mid_stream_failures_surface_as_stream_errors() {
    bounded(async {
        let h = sim().await;
        let c = client(&h);
        type Check = fn(&ConverseStreamOutputError) -> bool;
        let kinds: [(&str, Check); 5] = [
            ("throttling", ConverseStreamOutputError::is_throttling_exception),
            ("validation", ConverseStreamOutputError::is_validation_exception),
            (
                "service_unavailable",
                ConverseStreamOutputError::is_service_unavailable_exception,
            ),
            (
                "model_stream_error",
                ConverseStreamOutputError::is_model_stream_error_exception,
            ),
            (
                "internal",
                ConverseStreamOutputError::is_internal_server_exception,
            ),
        ];
        for (kind, check) in kinds {
            let got = stream(&c, vec![user(&format!("hi [sim fail={kind} after=3]"))]).await;
            assert_eq!(got.deltas, 3, "{kind}");
            assert!(got.stop.is_none(), "{kind}");
            assert!(got.service_error, "{kind}");
            let service = got.error.unwrap_or_else(|| panic!("{kind}: no error"));
            assert!(check(&service), "{kind}: got {service:?}");
            assert!(br::error::ProvideErrorMetadata::message(&service)
                .unwrap_or("")
                .contains("simulated"));
        }
        assert_eq!(h.streams_dropped(), 0);
    })
    .await;
}

#[tokio::test]
async fn pre_stream_failures_surface_from_send() {
    bounded(async {
        use br::operation::converse_stream::ConverseStreamError as E;
        let h = sim().await;
        let c = client(&h);
        type Check = fn(&E) -> bool;
        let kinds: [(&str, Check); 10] = [
            ("throttling", E::is_throttling_exception),
            ("validation", E::is_validation_exception),
            ("access_denied", E::is_access_denied_exception),
            ("model_not_ready", E::is_model_not_ready_exception),
            ("service_unavailable", E::is_service_unavailable_exception),
            ("model_stream_error", E::is_model_stream_error_exception),
            ("internal", E::is_internal_server_exception),
            ("model_timeout", E::is_model_timeout_exception),
            ("resource_not_found", E::is_resource_not_found_exception),
            ("model_error", E::is_model_error_exception),
        ];
        for (kind, check) in kinds {
            let res = c
                .converse_stream()
                .model_id(MODEL)
                .messages(user(&format!("[sim fail={kind} after=0]")))
                .send()
                .await;
            let err = res.err().unwrap_or_else(|| panic!("{kind}: send succeeded"));
            let service = err.into_service_error();
            assert!(check(&service), "{kind}: got {service:?}");
        }
        // Kinds that cannot happen mid-stream are pre-stream even with after>0.
        for (kind, check) in [
            ("access_denied", E::is_access_denied_exception as Check),
            ("model_timeout", E::is_model_timeout_exception),
            ("model_not_ready", E::is_model_not_ready_exception),
        ] {
            let res = c
                .converse_stream()
                .model_id(MODEL)
                .messages(user(&format!("[sim fail={kind} after=3]")))
                .send()
                .await;
            assert!(check(&res.expect_err("error").into_service_error()), "{kind}");
        }
        assert_eq!(h.streams_started(), 0);
    })
    .await;
}

#[tokio::test]
async fn bad_directives_and_bodies_are_validation_errors() {
    bounded(async {
        let h = sim().await;
        let c = client(&h);
        for (text, needle) in [
            ("[sim colour=blue]", "colour"),
            ("[sim tokens=lots]", "tokens"),
            ("[sim fail=meteor]", "meteor"),
            ("[sim after=2]", "after"),
        ] {
            let err = c
                .converse_stream()
                .model_id(MODEL)
                .messages(user(text))
                .send()
                .await
                .expect_err("error");
            let service = err.into_service_error();
            assert!(service.is_validation_exception(), "{text}: {service:?}");
            let message = br::error::ProvideErrorMetadata::message(&service)
                .unwrap_or("")
                .to_string();
            assert!(message.contains(needle), "{text}: {message}");
        }
        // No messages at all.
        let err = c
            .converse_stream()
            .model_id(MODEL)
            .send()
            .await
            .expect_err("error");
        assert!(err.into_service_error().is_validation_exception());
        assert_eq!(h.received().len(), 5);
    })
    .await;
}

#[tokio::test]
async fn drop_directive_aborts_the_connection() {
    bounded(async {
        let h = sim().await;
        let c = client(&h);
        let got = stream(&c, vec![user("bye [sim drop after=2]")]).await;
        assert_eq!(got.deltas, 2);
        assert!(got.error.is_some(), "recv should fail after the abort");
        assert!(!got.service_error, "{:?}", got.error);
        assert!(got.stop.is_none());
        // The server aborted on purpose; that is not a client disconnect.
        assert_eq!(h.streams_dropped(), 0);
    })
    .await;
}

#[tokio::test]
async fn client_disconnect_is_detected() {
    bounded(async {
        let h = sim().await;
        {
            let c = client(&h);
            let mut out = c
                .converse_stream()
                .model_id(MODEL)
                .messages(user("long one [sim delay_ms=20 tokens=200]"))
                .send()
                .await
                .expect("send");
            for _ in 0..3 {
                let ev = out.stream.recv().await.expect("recv");
                assert!(ev.is_some());
            }
            drop(out);
            drop(c);
        }
        assert!(
            h.wait_streams_dropped(1, Duration::from_secs(2)).await,
            "disconnect not observed"
        );
        assert_eq!(h.streams_dropped(), 1);
        assert_eq!(h.streams_started(), 1);
    })
    .await;
}

#[tokio::test]
async fn first_token_delay_is_honoured() {
    bounded(async {
        let h = sim().await;
        let c = client(&h);
        let t0 = std::time::Instant::now();
        let got = stream(&c, vec![user("slow start [sim first_token_ms=300 tokens=3]")]).await;
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert_eq!(got.deltas, 3);
        assert!(got.latency_ms.unwrap() >= 300);
    })
    .await;
}

#[tokio::test]
async fn non_streaming_converse_returns_the_same_answer() {
    bounded(async {
        let h = sim().await;
        let c = client(&h);
        let out = c
            .converse()
            .model_id(MODEL)
            .messages(user("plain request"))
            .send()
            .await
            .expect("converse");
        let text = match out.output() {
            Some(br::types::ConverseOutput::Message(m)) => m
                .content()
                .iter()
                .filter_map(|b| b.as_text().ok().cloned())
                .collect::<String>(),
            other => panic!("unexpected output {other:?}"),
        };
        assert_eq!(
            text,
            simulator::expected_answer(&[sim_msg("user", "plain request")])
        );
        assert_eq!(out.stop_reason(), &StopReason::EndTurn);
        let usage = out.usage().expect("usage");
        assert_eq!(usage.total_tokens(), usage.input_tokens() + usage.output_tokens());
        assert!(!h.received()[0].streaming);

        let err = c
            .converse()
            .model_id(MODEL)
            .messages(user("[sim fail=throttling after=2]"))
            .send()
            .await
            .expect_err("error");
        assert!(err.into_service_error().is_throttling_exception());

        let dropped = c
            .converse()
            .model_id(MODEL)
            .messages(user("[sim drop]"))
            .send()
            .await;
        assert!(dropped.is_err(), "a dropped converse must fail");
    })
    .await;
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    bounded(async {
        let h = sim().await;
        let c = client(&h);
        assert!(stream(&c, vec![user("before")]).await.error.is_none());
        h.shutdown();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let fresh = client(&h);
        let res = fresh
            .converse()
            .model_id(MODEL)
            .messages(user("after"))
            .send()
            .await;
        assert!(res.is_err(), "server still answering after shutdown");
    })
    .await;
}

#[tokio::test]
async fn malformed_json_is_a_validation_error() {
    bounded(async {
        let h = sim().await;
        let sock = tokio::net::TcpStream::connect(h.local_addr()).await.expect("connect");
        let body = "{not json";
        let req = format!(
            "POST /model/demo%3Amodel/converse-stream HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            h.local_addr(),
            body.len()
        );
        // Plain `net` APIs only (no tokio `io-util` feature needed).
        let mut sent = 0;
        while sent < req.len() {
            sock.writable().await.expect("writable");
            match sock.try_write(&req.as_bytes()[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("write: {e}"),
            }
        }
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            sock.readable().await.expect("readable");
            match sock.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("read: {e}"),
            }
        }
        let resp = String::from_utf8_lossy(&raw).to_string();
        assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
        assert!(resp.to_ascii_lowercase().contains("x-amzn-errortype: validationexception"), "{resp}");
        assert!(resp.contains("\"message\""), "{resp}");
        let rec = h.received();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].model_id, "demo:model");
        assert_eq!(h.streams_started(), 0);
    })
    .await;
}
