//! Tool use and reasoning, as the simulator speaks and polices them.
//!
//! It refuses what Bedrock refuses, with Bedrock's kind of sentence, so the
//! classic integration bugs fail our tests rather than our users:
//! * tool blocks in the history without a `toolConfig`;
//! * a `toolResult` whose `toolUseId` is not a `toolUse` of the assistant
//!   message just before it, or a `toolUse` the next message does not answer;
//! * a reasoning block whose signature is not the one it was sent with
//!   (reasoning must be sent back unchanged);
//! * tools offered to a model that cannot use them while streaming (Llama 3);
//! * with thinking on: a budget under 1024 tokens or not under `maxTokens`,
//!   a temperature other than 1, or a tool round whose assistant message
//!   does not start with its reasoning.
//!
//! It plans a round from the `[sim ...]` directives of the user's message:
//! `call=NAME:JSON` (several make parallel calls), `rounds=N`, `bad_args`,
//! and with thinking on `think=N` words of reasoning and `redacted`.

use super::{directives::Directives, ReceivedRequest, SimBlock};

/// Reasoning the simulator streams before its text.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedReasoning {
    pub pieces: Vec<String>,
    pub signature: String,
    /// An encrypted block follows the readable one.
    pub redacted: bool,
}

/// A tool call the simulator makes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text (cut short with `bad_args`).
    pub input: String,
}

/// What this response of a (possibly multi-round) answer says.
#[derive(Debug, Default)]
pub struct RoundPlan {
    /// The text instead of the usual answer, when tools are involved.
    pub text: Option<String>,
    pub calls: Vec<PlannedCall>,
    pub reasoning: Option<PlannedReasoning>,
}

/// Words of reasoning when `think=` is not given.
const DEFAULT_THINK_WORDS: usize = 12;

/// The signature the simulator gives a reasoning text (and checks).
pub fn signature(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"bedrock-chat-simulator-signature\0"
        .iter()
        .chain(text.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("sim-sig-{h:016x}")
}

fn tool_use_ids(blocks: &[SimBlock]) -> Vec<&str> {
    blocks
        .iter()
        .filter_map(|b| match b {
            SimBlock::ToolUse { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

fn tool_result_ids(blocks: &[SimBlock]) -> Vec<&str> {
    blocks
        .iter()
        .filter_map(|b| match b {
            SimBlock::ToolResult { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

/// Bedrock's refusals of tool and reasoning history; `Err` is the message
/// of the `ValidationException`.
pub fn check(req: &ReceivedRequest) -> Result<(), String> {
    // As Bedrock answers for the models that cannot use tools while streaming.
    if req.tools.is_some() && req.streaming && req.model_id.contains("meta.llama3") {
        return Err("This model doesn't support tool use in streaming mode.".into());
    }
    let messages = &req.messages;
    let has_tool_blocks = messages
        .iter()
        .flat_map(|m| &m.blocks)
        .any(|b| matches!(b, SimBlock::ToolUse { .. } | SimBlock::ToolResult { .. }));
    if has_tool_blocks && req.tools.is_none() {
        return Err(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.".into(),
        );
    }
    for (i, message) in messages.iter().enumerate() {
        let results = tool_result_ids(&message.blocks);
        if !results.is_empty() {
            let asked = match i.checked_sub(1).map(|p| &messages[p]) {
                Some(previous) if previous.role == "assistant" => tool_use_ids(&previous.blocks),
                _ => Vec::new(),
            };
            if message.role != "user" {
                return Err(format!(
                    "messages.{i}.content: toolResult blocks may only be sent by the user."
                ));
            }
            if let Some(stray) = results.iter().find(|id| !asked.contains(id)) {
                return Err(format!(
                    "messages.{i}.content: the toolResult with toolUseId {stray} does not match any toolUse in the previous assistant message."
                ));
            }
        }
        let uses = tool_use_ids(&message.blocks);
        if message.role == "assistant" && !uses.is_empty() {
            let answered = messages
                .get(i + 1)
                .map(|next| tool_result_ids(&next.blocks))
                .unwrap_or_default();
            let missing: Vec<&str> = uses.into_iter().filter(|id| !answered.contains(id)).collect();
            if !missing.is_empty() {
                return Err(format!(
                    "messages.{}.content: Expected toolResult blocks for the following toolUse ids: {}",
                    i + 1,
                    missing.join(", ")
                ));
            }
        }
        for block in &message.blocks {
            if let SimBlock::Reasoning {
                text,
                signature: sent,
            } = block
            {
                if sent.as_deref() != Some(signature(text).as_str()) {
                    return Err(format!(
                        "messages.{i}.content: Invalid signature in a reasoning block. Reasoning must be sent back exactly as the model wrote it."
                    ));
                }
            }
        }
    }
    if let Some(budget) = req.thinking_budget {
        if budget < 1024 {
            return Err(format!(
                "thinking.budget_tokens: must be greater than or equal to 1024, got {budget}."
            ));
        }
        if req.max_tokens.is_some_and(|max| i64::from(max) <= budget) {
            return Err("`max_tokens` must be greater than `thinking.budget_tokens`.".into());
        }
        if req.temperature.is_some_and(|t| (t - 1.0).abs() > 1e-6) {
            return Err("`temperature` may only be set to 1 when thinking is enabled.".into());
        }
        let continues_tools = messages
            .last()
            .is_some_and(|m| !tool_result_ids(&m.blocks).is_empty());
        if continues_tools {
            let last_assistant = messages.iter().rev().find(|m| m.role == "assistant");
            let starts_with_reasoning = last_assistant
                .and_then(|m| m.blocks.first())
                .is_some_and(|b| matches!(b, SimBlock::Reasoning { .. } | SimBlock::RedactedReasoning));
            if !starts_with_reasoning {
                return Err(
                    "Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a thinking block.".into(),
                );
            }
        }
    }
    Ok(())
}

/// What this response says, given the user's message (1-based `index`)
/// and its directives.
pub fn plan_round(req: &ReceivedRequest, index: usize, d: &Directives) -> RoundPlan {
    let later = req.messages.get(index..).unwrap_or_default();
    let rounds_done = later
        .iter()
        .filter(|m| m.role == "assistant" && !tool_use_ids(&m.blocks).is_empty())
        .count();
    let reasoning = req.thinking_budget.map(|_| {
        let words = d.think.unwrap_or(DEFAULT_THINK_WORDS);
        let mut pieces = vec![format!("Thinking about step {}: ", rounds_done + 1)];
        pieces.extend((0..words).map(|i| {
            let word = super::script::WORDS[(i * 7 + rounds_done) % super::script::WORDS.len()];
            if i + 1 == words {
                format!("{word}.")
            } else {
                format!("{word} ")
            }
        }));
        PlannedReasoning {
            signature: signature(&pieces.concat()),
            pieces,
            redacted: d.redacted,
        }
    });
    let wanted_rounds = if d.calls.is_empty() {
        0
    } else {
        d.rounds.unwrap_or(1)
    };
    if rounds_done < wanted_rounds && req.tools.is_some() {
        let calls: Vec<PlannedCall> = d
            .calls
            .iter()
            .enumerate()
            .map(|(i, (name, input))| PlannedCall {
                id: format!("tooluse_sim{index}r{rounds_done}c{i}"),
                name: name.clone(),
                input: if d.bad_args {
                    input.chars().take(input.chars().count() / 2).collect()
                } else {
                    input.clone()
                },
            })
            .collect();
        let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
        return RoundPlan {
            text: Some(format!(
                "Calling {} (round {}). ",
                names.join(", "),
                rounds_done + 1
            )),
            calls,
            reasoning,
        };
    }
    if rounds_done == 0 {
        return RoundPlan {
            reasoning,
            ..RoundPlan::default()
        };
    }
    // The answer after the last round: what the tools said.
    let last = req
        .messages
        .last()
        .map(|m| m.blocks.as_slice())
        .unwrap_or_default();
    let asked = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "assistant")
        .map(|m| m.blocks.as_slice())
        .unwrap_or_default();
    let name_of = |id: &str| {
        asked
            .iter()
            .find_map(|b| match b {
                SimBlock::ToolUse { id: used, name, .. } if used == id => Some(name.as_str()),
                _ => None,
            })
            .unwrap_or("?")
    };
    let said: Vec<String> = last
        .iter()
        .filter_map(|b| match b {
            SimBlock::ToolResult { id, error, text } => Some(if *error {
                format!("{} failed: {text}", name_of(id))
            } else {
                format!("{} said: {text}", name_of(id))
            }),
            _ => None,
        })
        .collect();
    RoundPlan {
        text: Some(format!(
            "After {rounds_done} round(s) of tools. {}",
            said.join(" | ")
        )),
        calls: Vec::new(),
        reasoning,
    }
}
