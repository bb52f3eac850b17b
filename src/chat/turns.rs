//! What the model is sent of a stored conversation: history turns as the
//! Bedrock layer takes them.
//!
//! * With tools on, an answer that called tools is sent back as the
//!   messages it was: the assistant's text and calls, then a user message
//!   with their results, and so on. A call the answer never finished
//!   (stopped) gets an error result saying so, and an answer that ended on
//!   tool results is closed by a short assistant message, so that the next
//!   user message does not read as the continuation of a tool round.
//! * With tools off, only an answer's text is sent: Bedrock refuses tool
//!   blocks without a tool configuration.
//! * Earlier answers' thinking is never sent: Bedrock ignores it in earlier
//!   turns, and refuses it once thinking is off.

use crate::{
    bedrock::{Block, Turn},
    conversations::{history::HistoryTurn, AnswerBlock, Role},
};

/// What an unfinished call's result says.
const UNFINISHED: &str = "The call did not finish: the answer was stopped before it returned.";
/// The assistant message that closes an answer that ended on tool results.
const ENDED_AFTER_TOOLS: &str = "(The answer ended here.)";

pub fn model_turns(history: &[HistoryTurn], with_tools: bool) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::with_capacity(history.len());
    for turn in history {
        let has_calls = turn.blocks.iter().any(|b| matches!(b, AnswerBlock::Tool(_)));
        if turn.role == Role::User {
            push(&mut turns, true, vec![Block::Text(turn.text.clone())]);
        } else if with_tools && has_calls {
            push_answer_with_tools(&mut turns, &turn.blocks);
        } else {
            push(&mut turns, false, vec![Block::Text(turn.text.clone())]);
        }
    }
    turns
}

/// Appends blocks as a message of that side, joining the last message when
/// it is of the same side (tool results and the user's next text share one).
fn push(turns: &mut Vec<Turn>, from_user: bool, blocks: Vec<Block>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.from_user == from_user => last.blocks.extend(blocks),
        _ => turns.push(Turn { from_user, blocks }),
    }
}

fn push_answer_with_tools(turns: &mut Vec<Turn>, blocks: &[AnswerBlock]) {
    let mut said: Vec<Block> = Vec::new();
    let mut results: Vec<Block> = Vec::new();
    for block in blocks {
        match block {
            AnswerBlock::Text { text } => {
                if !results.is_empty() {
                    push(turns, false, std::mem::take(&mut said));
                    push(turns, true, std::mem::take(&mut results));
                }
                if !text.is_empty() {
                    said.push(Block::Text(text.clone()));
                }
            }
            AnswerBlock::Reasoning { .. } => {}
            AnswerBlock::Tool(call) => {
                let input = serde_json::from_str::<serde_json::Value>(&call.input)
                    .ok()
                    .filter(serde_json::Value::is_object)
                    .unwrap_or_else(|| serde_json::json!({}));
                said.push(Block::ToolUse {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    input,
                });
                results.push(match &call.result {
                    Some(result) => Block::ToolResult {
                        id: call.id.clone(),
                        ok: result.ok,
                        content: result.content.clone(),
                    },
                    None => Block::ToolResult {
                        id: call.id.clone(),
                        ok: false,
                        content: UNFINISHED.to_owned(),
                    },
                });
            }
        }
    }
    push(turns, false, said);
    if !results.is_empty() {
        push(turns, true, results);
        push(turns, false, vec![Block::Text(ENDED_AFTER_TOOLS.to_owned())]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversations::{ToolCall, ToolResult};

    fn call(id: &str, result: Option<&str>) -> AnswerBlock {
        AnswerBlock::Tool(ToolCall {
            id: id.into(),
            name: "calculator".into(),
            input: r#"{"expression":"1+1"}"#.into(),
            result: result.map(|r| ToolResult {
                ok: true,
                content: r.into(),
                duration_ms: 1,
            }),
        })
    }

    fn answer(blocks: Vec<AnswerBlock>) -> HistoryTurn {
        HistoryTurn {
            role: Role::Assistant,
            text: "text only".into(),
            blocks,
        }
    }

    #[test]
    fn an_answer_with_tools_is_sent_as_the_messages_it_was() {
        let history = [
            HistoryTurn::text(Role::User, "what is 1+1"),
            answer(vec![
                AnswerBlock::Reasoning {
                    text: "hmm".into(),
                    redacted: false,
                },
                AnswerBlock::Text {
                    text: "Let me see. ".into(),
                },
                call("a", Some("2")),
                call("b", Some("2")),
                AnswerBlock::Text {
                    text: "It is 2.".into(),
                },
            ]),
            HistoryTurn::text(Role::User, "thanks"),
        ];
        let turns = model_turns(&history, true);
        let sides: Vec<bool> = turns.iter().map(|t| t.from_user).collect();
        assert_eq!(sides, [true, false, true, false, true]);
        assert_eq!(turns[1].blocks.len(), 3, "text and two calls, no reasoning");
        assert!(matches!(
            &turns[2].blocks[..],
            [Block::ToolResult { .. }, Block::ToolResult { .. }]
        ));
        assert_eq!(turns[3].blocks, [Block::Text("It is 2.".into())]);

        let plain = model_turns(&history, false);
        assert_eq!(plain[1].blocks, [Block::Text("text only".into())]);
        assert_eq!(plain.len(), 3);
    }

    #[test]
    fn an_answer_stopped_during_a_call_is_closed_before_the_next_message() {
        let history = [
            HistoryTurn::text(Role::User, "q"),
            answer(vec![
                AnswerBlock::Text {
                    text: "Calling. ".into(),
                },
                call("a", None),
            ]),
            HistoryTurn::text(Role::User, "next"),
        ];
        let turns = model_turns(&history, true);
        let sides: Vec<bool> = turns.iter().map(|t| t.from_user).collect();
        assert_eq!(sides, [true, false, true, false, true]);
        assert!(
            matches!(&turns[2].blocks[0], Block::ToolResult { ok: false, content, .. } if content == UNFINISHED)
        );
        assert_eq!(turns[3].blocks, [Block::Text(ENDED_AFTER_TOOLS.into())]);
    }
}
