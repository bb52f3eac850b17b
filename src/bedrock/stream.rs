//! One ConverseStream response: the SDK's events translated into our
//! [`ModelEvent`]s, and the assistant message they make kept as it grows
//! (a tool round sends it back to the model unchanged).

use super::{messages::Block, BedrockError};
use aws_sdk_bedrockruntime::{
    primitives::event_stream::EventReceiver,
    types::{
        error::ConverseStreamOutputError, ContentBlockDelta, ContentBlockStart,
        ConverseStreamOutput as SdkEvent, ReasoningContentBlockDelta,
    },
};
use std::{collections::HashMap, time::Instant};

/// Our own typed view of what the model sends (and, for tool rounds, what
/// the tools answered).
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// More answer text.
    Text(String),
    /// More reasoning text.
    Reasoning(String),
    /// The provider sent encrypted reasoning: it exists and is not shown.
    ReasoningRedacted,
    /// The model began a tool call.
    ToolCall { id: String, name: String },
    /// More of a tool call's arguments (JSON text, in pieces).
    ToolInput { id: String, fragment: String },
    /// The arguments are complete and the tool runs.
    ToolRunning { id: String },
    /// The arguments are complete; the call waits for the user's approval.
    ToolAwaitingApproval { id: String },
    /// A tool call ended.
    ToolResult { id: String, result: ToolOutcome },
    /// The model finished generating, for this reason.
    Stop(StopReason),
    /// Token counts and Bedrock's latency figure; arrives after `Stop`.
    Usage(TokenUsage),
}

/// How a tool call ended, as the model is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutcome {
    pub ok: bool,
    pub content: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReason(pub String);

impl StopReason {
    /// The model wants its tool calls run.
    pub fn is_tool_use(&self) -> bool {
        self.0 == "tool_use"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    pub latency_ms: u64,
    /// Input tokens read from, and written to, the prompt cache.
    pub cache_read_tokens: u32,
    pub cache_write_tokens: u32,
}

impl std::ops::AddAssign for TokenUsage {
    fn add_assign(&mut self, other: Self) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.total_tokens = self.total_tokens.saturating_add(other.total_tokens);
        self.latency_ms = self.latency_ms.saturating_add(other.latency_ms);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(other.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(other.cache_write_tokens);
    }
}

/// A tool call the model asked for in this response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedCall {
    pub id: String,
    pub name: String,
    /// The arguments as written (JSON text; empty for a tool without any).
    pub input: String,
}

/// The answer as it arrives.
pub struct ModelStream {
    events: EventReceiver<SdkEvent, ConverseStreamOutputError>,
    started: Instant,
    message: AssistantMessage,
}

/// The assistant message a response makes, block by block.
#[derive(Debug, Default)]
pub struct AssistantMessage {
    blocks: Vec<Block>,
    /// Bedrock's `contentBlockIndex` → our index in `blocks`.
    by_index: HashMap<i32, usize>,
    /// Tool calls' arguments as written, by index in `blocks`.
    inputs: HashMap<usize, String>,
}

impl AssistantMessage {
    /// The block at Bedrock's `index`, made by `new` the first time.
    fn block(&mut self, index: i32, new: impl FnOnce() -> Block) -> (usize, &mut Block) {
        let at = *self.by_index.entry(index).or_insert_with(|| {
            self.blocks.push(new());
            self.blocks.len() - 1
        });
        (at, &mut self.blocks[at])
    }

    /// The blocks to send back, with tool calls' arguments parsed (invalid
    /// JSON is sent as `{}`: its call gets an error result), and the calls.
    pub fn finish(mut self) -> (Vec<Block>, Vec<RequestedCall>) {
        let mut calls = Vec::new();
        for (at, block) in self.blocks.iter_mut().enumerate() {
            if let Block::ToolUse { id, name, input } = block {
                let written = self.inputs.remove(&at).unwrap_or_default();
                *input = serde_json::from_str::<serde_json::Value>(&written)
                    .ok()
                    .filter(serde_json::Value::is_object)
                    .unwrap_or_else(|| serde_json::json!({}));
                calls.push(RequestedCall {
                    id: id.clone(),
                    name: name.clone(),
                    input: written,
                });
            }
        }
        // Bedrock refuses empty text blocks in history.
        self.blocks
            .retain(|b| !matches!(b, Block::Text(t) if t.is_empty()));
        (self.blocks, calls)
    }
}

impl ModelStream {
    pub(super) fn new(events: EventReceiver<SdkEvent, ConverseStreamOutputError>, started: Instant) -> Self {
        Self {
            events,
            started,
            message: AssistantMessage::default(),
        }
    }

    /// The assistant message so far (all of it once `next` gave `None`).
    pub fn into_message(self) -> AssistantMessage {
        self.message
    }

    /// The next event; `None` once Bedrock has closed the stream.
    pub async fn next(&mut self) -> Option<Result<ModelEvent, BedrockError>> {
        loop {
            let event = match self.events.recv().await {
                Ok(Some(event)) => event,
                Ok(None) => return None,
                Err(err) => return Some(Err(err.into())),
            };
            if let Some(event) = self.translate(event) {
                return Some(Ok(event));
            }
        }
    }

    fn translate(&mut self, event: SdkEvent) -> Option<ModelEvent> {
        match event {
            SdkEvent::ContentBlockStart(start) => match start.start? {
                ContentBlockStart::ToolUse(tool) => {
                    let (id, name) = (tool.tool_use_id, tool.name);
                    self.message.block(start.content_block_index, || Block::ToolUse {
                        id: id.clone(),
                        name: name.clone(),
                        input: serde_json::Value::Null,
                    });
                    Some(ModelEvent::ToolCall { id, name })
                }
                _ => None,
            },
            SdkEvent::ContentBlockDelta(block) => {
                let index = block.content_block_index;
                match block.delta? {
                    ContentBlockDelta::Text(text) => {
                        if text.is_empty() {
                            return None;
                        }
                        if let (_, Block::Text(so_far)) =
                            self.message.block(index, || Block::Text(String::new()))
                        {
                            so_far.push_str(&text);
                        }
                        Some(ModelEvent::Text(text))
                    }
                    ContentBlockDelta::ToolUse(delta) => {
                        let (at, block) = self.message.block(index, || Block::ToolUse {
                            id: String::new(),
                            name: String::new(),
                            input: serde_json::Value::Null,
                        });
                        let Block::ToolUse { id, .. } = block else {
                            return None;
                        };
                        let id = id.clone();
                        self.message.inputs.entry(at).or_default().push_str(&delta.input);
                        Some(ModelEvent::ToolInput {
                            id,
                            fragment: delta.input,
                        })
                    }
                    ContentBlockDelta::ReasoningContent(reasoning) => self.reasoning(index, reasoning),
                    _ => None,
                }
            }
            SdkEvent::MessageStop(stop) => {
                Some(ModelEvent::Stop(StopReason(stop.stop_reason.as_str().to_owned())))
            }
            SdkEvent::Metadata(meta) => {
                let usage = meta.usage.as_ref();
                let to_u32 = |n: i32| u32::try_from(n).unwrap_or(0);
                Some(ModelEvent::Usage(TokenUsage {
                    input_tokens: usage.map_or(0, |u| to_u32(u.input_tokens)),
                    output_tokens: usage.map_or(0, |u| to_u32(u.output_tokens)),
                    total_tokens: usage.map_or(0, |u| to_u32(u.total_tokens)),
                    cache_read_tokens: usage.and_then(|u| u.cache_read_input_tokens).map_or(0, to_u32),
                    cache_write_tokens: usage.and_then(|u| u.cache_write_input_tokens).map_or(0, to_u32),
                    latency_ms: meta
                        .metrics
                        .as_ref()
                        .and_then(|m| u64::try_from(m.latency_ms).ok())
                        .unwrap_or_else(|| self.started.elapsed().as_millis() as u64),
                }))
            }
            // Message start and block stop carry nothing we use.
            _ => None,
        }
    }

    fn reasoning(&mut self, index: i32, delta: ReasoningContentBlockDelta) -> Option<ModelEvent> {
        match delta {
            ReasoningContentBlockDelta::Text(text) => {
                if let (_, Block::Reasoning { text: so_far, .. }) =
                    self.message.block(index, || Block::Reasoning {
                        text: String::new(),
                        signature: None,
                    })
                {
                    so_far.push_str(&text);
                }
                (!text.is_empty()).then_some(ModelEvent::Reasoning(text))
            }
            ReasoningContentBlockDelta::Signature(signature) => {
                if let (_, Block::Reasoning { signature: kept, .. }) =
                    self.message.block(index, || Block::Reasoning {
                        text: String::new(),
                        signature: None,
                    })
                {
                    *kept = Some(signature);
                }
                None
            }
            ReasoningContentBlockDelta::RedactedContent(blob) => {
                let (_, block) = self.message.block(index, || Block::RedactedReasoning(Vec::new()));
                if let Block::RedactedReasoning(bytes) = block {
                    let first = bytes.is_empty();
                    bytes.extend_from_slice(blob.as_ref());
                    return first.then_some(ModelEvent::ReasoningRedacted);
                }
                None
            }
            _ => None,
        }
    }
}
