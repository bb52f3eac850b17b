//! Wire shapes of the Bedrock Runtime Converse API.
//!
//! Requests are read leniently from `serde_json::Value` (the simulator only
//! needs text, system prompts and two inference settings, and must never
//! panic on odd input). Responses are written exactly as the real service
//! does: JSON for `converse`, AWS event-stream binary frames for
//! `converse-stream`, and restJson1 errors (`x-amzn-errortype` header plus a
//! `{"message": ...}` body).

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::http::{HeaderValue as HttpHeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

use super::{ReceivedRequest, SimBlock, SimMessage};

/// Reads a Converse / ConverseStream request body. Returns what could be
/// parsed (for `received()`) and, on failure, a validation message.
pub fn parse_request(model_id: &str, streaming: bool, body: &[u8]) -> (ReceivedRequest, Result<(), String>) {
    let mut req = ReceivedRequest {
        model_id: model_id.to_string(),
        streaming,
        system: Vec::new(),
        messages: Vec::new(),
        max_tokens: None,
        temperature: None,
        tools: None,
        thinking_budget: None,
        cache_points: Vec::new(),
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return (req, Err("request body must be a JSON object".into())),
        Err(e) => return (req, Err(format!("malformed request body: {e}"))),
    };
    let mut prefix = super::cache::Prefix::new(model_id);
    if let Some(system) = value.get("system").and_then(Value::as_array) {
        for block in system {
            if let Some(text) = block.get("text").and_then(Value::as_str) {
                prefix.add(text);
                req.system.push(text.to_string());
            } else if block.get("cachePoint").is_some() {
                prefix.point();
            }
        }
    }
    if let Some(messages) = value.get("messages").and_then(Value::as_array) {
        req.messages = messages
            .iter()
            .map(|m| SimMessage {
                role: m.get("role").and_then(Value::as_str).unwrap_or("").to_string(),
                text: m
                    .get("content")
                    .and_then(Value::as_array)
                    .map(|blocks| {
                        blocks
                            .iter()
                            .filter_map(|b| b.get("text").and_then(Value::as_str))
                            .collect::<String>()
                    })
                    .unwrap_or_default(),
                blocks: m
                    .get("content")
                    .and_then(Value::as_array)
                    .map(|blocks| blocks.iter().filter_map(parse_block).collect())
                    .unwrap_or_default(),
            })
            .collect();
    }
    // A message is one part of the prefix; its cache point (at its end, as
    // this app places them) comes after all of its text.
    for (message, raw) in req.messages.iter().zip(
        value
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    ) {
        prefix.add(&message.text);
        let blocks = raw.get("content").and_then(Value::as_array).into_iter().flatten();
        for _ in blocks.filter(|b| b.get("cachePoint").is_some()) {
            prefix.point();
        }
    }
    req.cache_points = prefix.points;
    if let Some(refusal) = super::cache::refusal(model_id, &req.cache_points) {
        return (req, Err(refusal));
    }
    if let Some(config) = value.get("toolConfig") {
        req.tools = Some(
            config
                .get("tools")
                .and_then(Value::as_array)
                .map(|tools| {
                    tools
                        .iter()
                        .filter_map(|t| t.pointer("/toolSpec/name").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        );
    }
    if let Some(thinking) = value.pointer("/additionalModelRequestFields/thinking") {
        if thinking.get("type").and_then(Value::as_str) == Some("enabled") {
            req.thinking_budget = Some(thinking.get("budget_tokens").and_then(Value::as_i64).unwrap_or(0));
        }
    }
    if let Some(cfg) = value.get("inferenceConfig") {
        req.max_tokens = cfg
            .get("maxTokens")
            .and_then(Value::as_i64)
            .map(|n| n.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
        req.temperature = cfg.get("temperature").and_then(Value::as_f64).map(|t| t as f32);
    }
    if req.messages.is_empty() {
        return (req, Err("messages must contain at least one message".into()));
    }
    (req, Ok(()))
}

/// The blocks other than text that the simulator checks.
fn parse_block(block: &Value) -> Option<SimBlock> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    if let Some(tool) = block.get("toolUse") {
        return Some(SimBlock::ToolUse {
            id: text(tool.get("toolUseId")),
            name: text(tool.get("name")),
            input: tool.get("input").cloned().unwrap_or(Value::Null),
        });
    }
    if let Some(result) = block.get("toolResult") {
        return Some(SimBlock::ToolResult {
            id: text(result.get("toolUseId")),
            error: result.get("status").and_then(Value::as_str) == Some("error"),
            text: result
                .get("content")
                .and_then(Value::as_array)
                .map(|parts| {
                    parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<String>()
                })
                .unwrap_or_default(),
        });
    }
    if let Some(reasoning) = block.get("reasoningContent") {
        if let Some(r) = reasoning.get("reasoningText") {
            return Some(SimBlock::Reasoning {
                text: text(r.get("text")),
                signature: r.get("signature").and_then(Value::as_str).map(str::to_owned),
            });
        }
        return Some(SimBlock::RedactedReasoning);
    }
    block.get("text").map(|t| SimBlock::Text(text(Some(t))))
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_string().into()))
}

fn encode(message: &Message) -> Bytes {
    let mut buf = Vec::with_capacity(message.payload().len() + 128);
    // Only fails for headers/payloads over 16 MiB, which we never build.
    if let Err(e) = aws_smithy_eventstream::frame::write_message_to(message, &mut buf) {
        tracing::error!("simulator: cannot encode event-stream frame: {e}");
        return Bytes::new();
    }
    Bytes::from(buf)
}

/// One `:message-type: event` frame with a JSON payload.
pub fn event_frame(event_type: &'static str, payload: &Value) -> Bytes {
    let message = Message::new(Bytes::from(payload.to_string()))
        .add_header(string_header(":event-type", event_type))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "event"));
    encode(&message)
}

/// One `:message-type: exception` frame, e.g. `throttlingException`.
pub fn exception_frame(exception_type: &'static str, message: &str) -> Bytes {
    let message = Message::new(Bytes::from(json!({ "message": message }).to_string()))
        .add_header(string_header(":exception-type", exception_type))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "exception"));
    encode(&message)
}

pub fn message_start() -> Bytes {
    event_frame("messageStart", &json!({ "role": "assistant" }))
}

pub fn content_block_delta(index: usize, text: &str) -> Bytes {
    event_frame(
        "contentBlockDelta",
        &json!({ "contentBlockIndex": index, "delta": { "text": text } }),
    )
}

pub fn content_block_stop(index: usize) -> Bytes {
    event_frame("contentBlockStop", &json!({ "contentBlockIndex": index }))
}

/// A `reasoningContent` delta: `{"text": ...}`, `{"signature": ...}` or
/// `{"redactedContent": base64}`.
pub fn reasoning_delta(index: usize, delta: Value) -> Bytes {
    event_frame(
        "contentBlockDelta",
        &json!({ "contentBlockIndex": index, "delta": { "reasoningContent": delta } }),
    )
}

pub fn tool_use_start(index: usize, id: &str, name: &str) -> Bytes {
    event_frame(
        "contentBlockStart",
        &json!({ "contentBlockIndex": index, "start": { "toolUse": { "toolUseId": id, "name": name } } }),
    )
}

pub fn tool_use_delta(index: usize, input: &str) -> Bytes {
    event_frame(
        "contentBlockDelta",
        &json!({ "contentBlockIndex": index, "delta": { "toolUse": { "input": input } } }),
    )
}

pub fn message_stop(stop_reason: &str) -> Bytes {
    event_frame("messageStop", &json!({ "stopReason": stop_reason }))
}

/// Bedrock's usage object; cache figures only when the request used the
/// cache, as Bedrock reports them.
fn usage(input: i32, output: i32, cache: super::cache::CacheUse) -> Value {
    let total = input
        .saturating_add(output)
        .saturating_add(cache.read)
        .saturating_add(cache.written);
    let mut usage = json!({ "inputTokens": input, "outputTokens": output, "totalTokens": total });
    if cache.read > 0 || cache.written > 0 {
        usage["cacheReadInputTokens"] = cache.read.into();
        usage["cacheWriteInputTokens"] = cache.written.into();
    }
    usage
}

pub fn metadata(input: i32, output: i32, cache: super::cache::CacheUse, latency_ms: i64) -> Bytes {
    event_frame(
        "metadata",
        &json!({ "usage": usage(input, output, cache), "metrics": { "latencyMs": latency_ms } }),
    )
}

/// The JSON body of a non-streaming `converse` answer.
pub fn converse_body(
    text: &str,
    stop_reason: &str,
    input: i32,
    output: i32,
    cache: super::cache::CacheUse,
    latency_ms: i64,
) -> Value {
    json!({
        "output": { "message": { "role": "assistant", "content": [ { "text": text } ] } },
        "stopReason": stop_reason,
        "usage": usage(input, output, cache),
        "metrics": { "latencyMs": latency_ms },
    })
}

/// A restJson1 error response: status, `x-amzn-errortype`, `{"message"}`.
pub fn error_response(status: u16, shape: &'static str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, json_body(&json!({ "message": message }))).into_response();
    resp.headers_mut()
        .insert("x-amzn-errortype", HttpHeaderValue::from_static(shape));
    resp
}

/// A JSON body with the right content type.
pub fn json_body(value: &Value) -> Response {
    let mut resp = value.to_string().into_response();
    resp.headers_mut()
        .insert("content-type", HttpHeaderValue::from_static("application/json"));
    resp
}
