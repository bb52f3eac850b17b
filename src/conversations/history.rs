//! What of a stored conversation the model sees.
//!
//! History always comes from the store, never from the browser, so a
//! tampered client cannot rewrite the past. It is shaped for ConverseStream:
//! user and assistant strictly take turns, starting with the user; answers
//! with no text (failed before the first token, interrupted) are left out and
//! the user messages around them are joined; of answers in a row (a retry
//! follows the answer it replaces) the last one counts. Long conversations are trimmed
//! to a token budget, oldest turns first; the newest user message is always
//! kept, and the system prompt is sent separately and never trimmed.

use super::Role;
use super::StoredMessage;
use super::{blocks::has_more_than_text, AnswerBlock};

/// One message as the model will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryTurn {
    pub role: Role,
    pub text: String,
    /// An answer's parts, when it has more than text (tool calls are sent
    /// back as the messages they were; see `chat::turns`).
    pub blocks: Vec<AnswerBlock>,
}

impl HistoryTurn {
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            text: text.into(),
            blocks: Vec::new(),
        }
    }

    /// Its estimated tokens: text, and tool calls' arguments and results.
    fn tokens(&self) -> usize {
        let tools: usize = self
            .blocks
            .iter()
            .map(|b| match b {
                AnswerBlock::Tool(call) => {
                    estimate_tokens(&call.input)
                        + call.result.as_ref().map_or(0, |r| estimate_tokens(&r.content))
                }
                _ => 0,
            })
            .sum();
        estimate_tokens(&self.text) + tools
    }
}

/// A rough token count: about three bytes of UTF-8 per token. It overcounts
/// English (~4 bytes per token) and is close for Korean (~3 bytes per
/// character, about a token each), so trimming errs on the safe side.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(3)
}

/// The turns to send for `earlier` messages followed by the user's `latest`
/// text, within `token_budget` (estimated) and at most `max_messages`.
pub fn build(
    earlier: &[StoredMessage],
    latest: &str,
    token_budget: usize,
    max_messages: usize,
) -> Vec<HistoryTurn> {
    let mut turns: Vec<HistoryTurn> = Vec::with_capacity(earlier.len() + 1);
    let messages = earlier
        .iter()
        .filter(|m| !m.content.trim().is_empty() || has_more_than_text(&m.blocks))
        .map(|m| (m.role, m.content.as_str(), m.blocks.as_slice()))
        .chain(std::iter::once((Role::User, latest, &[][..])));
    for (role, text, blocks) in messages {
        let blocks = if has_more_than_text(blocks) {
            blocks.to_vec()
        } else {
            Vec::new()
        };
        match turns.last_mut() {
            Some(last) if last.role == role && role == Role::Assistant => {
                last.text = text.to_owned();
                last.blocks = blocks;
            }
            Some(last) if last.role == role => {
                last.text.push_str("\n\n");
                last.text.push_str(text);
            }
            None if role == Role::Assistant => {}
            _ => turns.push(HistoryTurn {
                role,
                text: text.to_owned(),
                blocks,
            }),
        }
    }
    trim(turns, token_budget, max_messages)
}

/// Drops the oldest exchanges (a user turn and its answer) until the rest
/// fits. The newest turn, the user's message, is kept even when it alone is
/// over the budget: the model then answers, or says it is too long.
pub fn trim(turns: Vec<HistoryTurn>, token_budget: usize, max_messages: usize) -> Vec<HistoryTurn> {
    let mut total: usize = turns.iter().map(HistoryTurn::tokens).sum();
    let mut start = 0;
    while turns.len() - start > 1 && (total > token_budget || turns.len() - start > max_messages) {
        // Remove one user turn and the answer after it, so the history still
        // starts with the user.
        for _ in 0..2 {
            if turns.len() - start > 1 {
                total -= turns[start].tokens();
                start += 1;
            }
        }
    }
    turns.into_iter().skip(start).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversations::MessageStatus;

    fn msg(role: Role, text: &str, status: MessageStatus) -> StoredMessage {
        StoredMessage::of(role, text, status)
    }

    fn roles(turns: &[HistoryTurn]) -> Vec<Role> {
        turns.iter().map(|t| t.role).collect()
    }

    #[test]
    fn answers_without_text_are_skipped_and_turns_still_alternate() {
        use MessageStatus::*;
        let earlier = [
            msg(Role::User, "first", Complete),
            msg(Role::Assistant, "", Error),
            msg(Role::User, "second", Complete),
            msg(Role::Assistant, "partial", Stopped),
        ];
        let turns = build(&earlier, "third", 10_000, 100);
        assert_eq!(roles(&turns), [Role::User, Role::Assistant, Role::User]);
        assert_eq!(turns[0].text, "first\n\nsecond");
        assert_eq!(turns[1].text, "partial");
        assert_eq!(turns[2].text, "third");
    }

    #[test]
    fn a_retried_answer_replaces_the_one_before_it() {
        use MessageStatus::*;
        let earlier = [
            msg(Role::User, "question", Complete),
            msg(Role::Assistant, "half an ans", Error),
            msg(Role::Assistant, "the full answer", Complete),
        ];
        let turns = build(&earlier, "next", 10_000, 100);
        assert_eq!(turns[1].text, "the full answer");
        assert_eq!(turns.len(), 3);
    }

    #[test]
    fn oldest_exchanges_go_first_and_the_newest_message_stays() {
        use MessageStatus::Complete;
        let long = "x".repeat(300); // 100 estimated tokens
        let earlier = [
            msg(Role::User, &long, Complete),
            msg(Role::Assistant, &long, Complete),
            msg(Role::User, "recent question", Complete),
            msg(Role::Assistant, "recent answer", Complete),
        ];
        let turns = build(&earlier, "now", 50, 100);
        assert_eq!(turns.len(), 3);
        assert_eq!(turns[0].text, "recent question");
        assert_eq!(turns[2].text, "now");

        let only = build(&earlier, &"y".repeat(3000), 10, 100);
        assert_eq!(only.len(), 1, "the newest message is never dropped");

        let counted = build(&earlier, "now", 10_000, 3);
        assert_eq!(roles(&counted), [Role::User, Role::Assistant, Role::User]);
    }
}
