//! What one ConverseStream call is sent: our own message and tool types, and
//! their translation into the SDK's request.

use super::{BedrockError, ErrorKind};
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ConversationRole, Message, ReasoningContentBlock,
    ReasoningTextBlock, Tool, ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock,
    ToolResultStatus, ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::{Blob, Document, Number};
use serde_json::Value;
use std::collections::HashMap;

/// One part of a message sent to the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    /// Reasoning the model wrote earlier in this answer, sent back unchanged
    /// (Bedrock checks the signature when thinking and tools are combined).
    Reasoning {
        text: String,
        signature: Option<String>,
    },
    /// Reasoning the provider encrypted, sent back as it came.
    RedactedReasoning(Vec<u8>),
    /// A tool call of the model's (assistant messages).
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// What a call returned (user messages).
    ToolResult {
        id: String,
        ok: bool,
        content: String,
    },
}

/// A message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub from_user: bool,
    pub blocks: Vec<Block>,
}

impl Turn {
    /// A message of plain text.
    pub fn text(from_user: bool, text: impl Into<String>) -> Self {
        Self {
            from_user,
            blocks: vec![Block::Text(text.into())],
        }
    }
}

/// A tool the model may call: its name, what it does, and the JSON schema
/// of its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// Everything one answer needs (all its rounds, when it calls tools).
#[derive(Debug, Clone)]
pub struct ConverseInput {
    pub model_id: String,
    pub system_prompt: String,
    pub turns: Vec<Turn>,
    pub max_tokens: i32,
    /// Left out while thinking is on: Bedrock refuses one then.
    pub temperature: Option<f32>,
    /// Tokens the model may think for; `None` is no thinking.
    pub reasoning_budget: Option<u32>,
    /// Sent as `toolConfig` on every round when not empty.
    pub tools: Vec<ToolSpec>,
    /// Mark the stable part of the request for Bedrock's prompt cache (the
    /// model takes cache points: `[bedrock] cache_models`).
    pub cache: bool,
}

impl ConverseInput {
    /// A plain text conversation: no tools, no thinking.
    pub fn text(
        model_id: &str,
        system_prompt: &str,
        turns: Vec<Turn>,
        max_tokens: i32,
        temperature: f32,
    ) -> Self {
        Self {
            model_id: model_id.to_owned(),
            system_prompt: system_prompt.to_owned(),
            turns,
            max_tokens,
            temperature: Some(temperature),
            reasoning_budget: None,
            tools: Vec::new(),
            cache: false,
        }
    }

    /// The messages, with a cache point after the history (when caching):
    /// at the end of the message before the user's latest one, which stays
    /// put while tool rounds append after it, so every round of an answer,
    /// and the next message's request, read the same prefix from the cache.
    pub(super) fn sdk_messages(&self) -> Result<Vec<Message>, BedrockError> {
        let history_end = self
            .cache
            .then(|| {
                self.turns
                    .iter()
                    .rposition(|t| t.from_user && t.blocks.iter().any(|b| matches!(b, Block::Text(_))))
            })
            .flatten()
            .and_then(|latest| latest.checked_sub(1));
        self.turns
            .iter()
            .enumerate()
            .map(|(at, turn)| sdk_message(turn, history_end == Some(at)))
            .collect()
    }

    /// Whether the system prompt ends with a cache point.
    pub(super) fn caches_system_prompt(&self) -> bool {
        self.cache && !self.system_prompt.is_empty()
    }

    pub(super) fn sdk_tool_config(&self) -> Result<Option<ToolConfiguration>, BedrockError> {
        if self.tools.is_empty() {
            return Ok(None);
        }
        let tools = self
            .tools
            .iter()
            .map(|spec| {
                ToolSpecification::builder()
                    .name(&spec.name)
                    .description(&spec.description)
                    .input_schema(ToolInputSchema::Json(document(&spec.input_schema)))
                    .build()
                    .map(Tool::ToolSpec)
                    .map_err(setup)
            })
            .collect::<Result<Vec<_>, _>>()?;
        ToolConfiguration::builder()
            .set_tools(Some(tools))
            .build()
            .map(Some)
            .map_err(setup)
    }

    /// `additionalModelRequestFields`: how Anthropic models on Bedrock are
    /// asked to think.
    pub(super) fn sdk_additional_fields(&self) -> Option<Document> {
        self.reasoning_budget.map(|budget| {
            document(&serde_json::json!({
                "thinking": { "type": "enabled", "budget_tokens": budget }
            }))
        })
    }
}

fn setup(err: impl std::fmt::Display) -> BedrockError {
    BedrockError::new(ErrorKind::Setup, err.to_string())
}

fn sdk_message(turn: &Turn, cache_point_after: bool) -> Result<Message, BedrockError> {
    let mut content = turn.blocks.iter().map(sdk_block).collect::<Result<Vec<_>, _>>()?;
    if cache_point_after {
        content.push(ContentBlock::CachePoint(cache_point()?));
    }
    Message::builder()
        .role(if turn.from_user {
            ConversationRole::User
        } else {
            ConversationRole::Assistant
        })
        .set_content(Some(content))
        .build()
        .map_err(setup)
}

fn sdk_block(block: &Block) -> Result<ContentBlock, BedrockError> {
    Ok(match block {
        Block::Text(text) => ContentBlock::Text(text.clone()),
        Block::Reasoning { text, signature } => {
            ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(
                ReasoningTextBlock::builder()
                    .text(text)
                    .set_signature(signature.clone())
                    .build()
                    .map_err(setup)?,
            ))
        }
        Block::RedactedReasoning(bytes) => {
            ContentBlock::ReasoningContent(ReasoningContentBlock::RedactedContent(Blob::new(bytes.clone())))
        }
        Block::ToolUse { id, name, input } => ContentBlock::ToolUse(
            ToolUseBlock::builder()
                .tool_use_id(id)
                .name(name)
                .input(document(input))
                .build()
                .map_err(setup)?,
        ),
        Block::ToolResult { id, ok, content } => ContentBlock::ToolResult(
            ToolResultBlock::builder()
                .tool_use_id(id)
                .content(ToolResultContentBlock::Text(content.clone()))
                .status(if *ok {
                    ToolResultStatus::Success
                } else {
                    ToolResultStatus::Error
                })
                .build()
                .map_err(setup)?,
        ),
    })
}

/// A cache point: everything before it may be read from Bedrock's prompt cache.
pub(super) fn cache_point() -> Result<CachePointBlock, BedrockError> {
    CachePointBlock::builder()
        .r#type(CachePointType::Default)
        .build()
        .map_err(setup)
}

/// JSON as the SDK's document type.
pub fn document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or_default())
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_becomes_the_same_document() {
        let value = serde_json::json!({"a": [1, -2, 2.5, "x", true, null], "b": {}});
        let Document::Object(map) = document(&value) else {
            panic!("an object")
        };
        assert_eq!(
            map["a"],
            Document::Array(vec![
                Document::Number(Number::PosInt(1)),
                Document::Number(Number::NegInt(-2)),
                Document::Number(Number::Float(2.5)),
                Document::String("x".into()),
                Document::Bool(true),
                Document::Null,
            ])
        );
        assert_eq!(map["b"], Document::Object(HashMap::new()));
    }
}
