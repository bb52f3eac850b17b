//! An answer's parts in the order the model wrote them: text, reasoning and
//! tool calls with their results. Stored with the answer (`messages.blocks`,
//! JSON) and sent to the page; the history sent to the model is rebuilt from
//! them. An answer with only text has no blocks: its `content` says it all.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnswerBlock {
    /// Answer text (Markdown).
    Text { text: String },
    /// What the model thought before (or between) its answer's parts.
    Reasoning {
        text: String,
        /// The provider sent this reasoning encrypted: it exists, and is not shown.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        redacted: bool,
    },
    /// A call of one of the conversation's tools, and how it ended.
    Tool(ToolCall),
}

/// One tool call: what the model asked for and what it got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The model's id of the call (`tooluse_…`).
    pub id: String,
    pub name: String,
    /// The arguments exactly as the model wrote them (JSON text, maybe invalid).
    pub input: String,
    /// `None` while it runs, or when the answer ended before it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ToolResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResult {
    /// False: the tool failed, was refused or timed out (`content` says why).
    pub ok: bool,
    pub content: String,
    pub duration_ms: u64,
}

/// Appends to `blocks` the way the stream grows an answer: text joins the
/// text block it follows, reasoning the reasoning block it follows.
pub fn push_text(blocks: &mut Vec<AnswerBlock>, text: &str) {
    match blocks.last_mut() {
        Some(AnswerBlock::Text { text: last }) => last.push_str(text),
        _ => blocks.push(AnswerBlock::Text {
            text: text.to_owned(),
        }),
    }
}

pub fn push_reasoning(blocks: &mut Vec<AnswerBlock>, text: &str) {
    match blocks.last_mut() {
        Some(AnswerBlock::Reasoning {
            text: last,
            redacted: false,
        }) => last.push_str(text),
        _ => blocks.push(AnswerBlock::Reasoning {
            text: text.to_owned(),
            redacted: false,
        }),
    }
}

/// The tool call with this id, for its input fragments and result.
pub fn tool_call_mut<'a>(blocks: &'a mut [AnswerBlock], id: &str) -> Option<&'a mut ToolCall> {
    blocks.iter_mut().rev().find_map(|block| match block {
        AnswerBlock::Tool(call) if call.id == id => Some(call),
        _ => None,
    })
}

/// Whether an answer's blocks say more than its text (reasoning, tools).
pub fn has_more_than_text(blocks: &[AnswerBlock]) -> bool {
    blocks.iter().any(|b| !matches!(b, AnswerBlock::Text { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_reasoning_join_the_block_they_follow() {
        let mut blocks = Vec::new();
        push_reasoning(&mut blocks, "think ");
        push_reasoning(&mut blocks, "more");
        push_text(&mut blocks, "Hello ");
        blocks.push(AnswerBlock::Tool(ToolCall {
            id: "t1".into(),
            name: "calculator".into(),
            input: String::new(),
            result: None,
        }));
        push_text(&mut blocks, "after");
        push_text(&mut blocks, " it");
        assert_eq!(blocks.len(), 4);
        assert_eq!(
            blocks[3],
            AnswerBlock::Text {
                text: "after it".into()
            }
        );
        tool_call_mut(&mut blocks, "t1").unwrap().input.push_str("{}");
        let json = serde_json::to_string(&blocks).unwrap();
        assert!(
            json.contains(r#"{"type":"reasoning","text":"think more"}"#),
            "{json}"
        );
        let back: Vec<AnswerBlock> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, blocks);
        assert!(has_more_than_text(&blocks));
    }
}
