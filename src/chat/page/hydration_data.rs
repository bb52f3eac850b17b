//! The copy of the conversation that a page carries for its hydration,
//! without the text its HTML already shows.
//!
//! Leptos writes every resource a server render read into the page, and the
//! browser hydrates from that copy. The messages are in the page already, as
//! HTML, and hydration keeps that HTML (`inner_html` writes nothing while
//! hydrating, and a text node is adopted as the server wrote it), so their
//! text would be sent a second time for nothing: most of a long
//! conversation's page. Such messages come without text
//! ([`StoredMessage::text_left_out`]), and are never drawn again in the
//! browser: an answer's text parts adopt the page's elements, and the editor
//! reads a user's message from the page. Whatever the browser draws itself
//! comes from the API, whole: another conversation, earlier messages, a new
//! answer.
//!
//! Kept: each answer's parts (so that the browser hydrates the same
//! elements), and its thinking and tool calls (opened on demand).

use super::session::Loaded;
use crate::{
    chat::Role,
    conversations::{AnswerBlock, MessageStatus, StoredMessage},
};
use leptos::server::codee::{Decoder, Encoder};

/// The codec of the transcript's resource: JSON, without the text the page
/// shows.
pub struct WithoutTextOnPage;

impl Encoder<Loaded> for WithoutTextOnPage {
    type Error = serde_json::Error;
    type Encoded = String;

    fn encode(loaded: &Loaded) -> Result<String, serde_json::Error> {
        match loaded {
            Ok(Some(conversation)) => {
                let mut copy = conversation.clone();
                copy.messages.iter_mut().for_each(leave_out_text_on_page);
                serde_json::to_string(&Loaded::Ok(Some(copy)))
            }
            _ => serde_json::to_string(loaded),
        }
    }
}

impl Decoder<Loaded> for WithoutTextOnPage {
    type Error = serde_json::Error;
    type Encoded = str;

    fn decode(json: &str) -> Result<Loaded, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// Takes a message's text out of the page's copy of it.
fn leave_out_text_on_page(message: &mut StoredMessage) {
    if message.role == Role::User {
        // (An empty one is drawn as nothing, and has no text node to adopt.)
        message.text_left_out = !message.content.is_empty();
        message.content.clear();
        return;
    }
    if message.status == MessageStatus::Streaming {
        // Followed from its first event, which draws it anew: nothing of
        // this copy is shown (see `ChatSession::turns_of`).
        message.content.clear();
        message.blocks.clear();
        return;
    }
    // (`content` is the text blocks joined, but the parts are drawn from
    // the blocks when there are any: either one with text counts.)
    message.text_left_out = !message.content.is_empty()
        || message
            .blocks
            .iter()
            .any(|block| matches!(block, AnswerBlock::Text { text } if !text.is_empty()));
    message.content.clear();
    message.blocks.retain_mut(|block| match block {
        // An empty text block is drawn as nothing; with `text_left_out`,
        // every text block left is one the page shows.
        AnswerBlock::Text { text } if text.is_empty() => false,
        AnswerBlock::Text { text } => {
            text.clear();
            true
        }
        AnswerBlock::Reasoning { .. } | AnswerBlock::Tool(_) => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversations::{Conversation, ConversationSummary};

    fn message(role: Role, content: &str, status: MessageStatus, blocks: Vec<AnswerBlock>) -> StoredMessage {
        StoredMessage {
            blocks,
            ..StoredMessage::of(role, content, status)
        }
    }

    fn text(t: &str) -> AnswerBlock {
        AnswerBlock::Text { text: t.to_owned() }
    }

    fn round_trip(messages: Vec<StoredMessage>) -> Vec<StoredMessage> {
        let conversation = Conversation {
            summary: ConversationSummary {
                id: "c".into(),
                title: "A title".into(),
                created_at: 0,
                updated_at: 0,
            },
            settings: Default::default(),
            messages,
            earlier: Default::default(),
        };
        let json = WithoutTextOnPage::encode(&Ok(Some(conversation))).unwrap();
        assert!(
            json.contains("A title"),
            "the rest of the conversation is kept: {json}"
        );
        WithoutTextOnPage::decode(&json)
            .unwrap()
            .unwrap()
            .unwrap()
            .messages
    }

    /// The page's copy of one answer.
    fn answer_copy(content: &str, status: MessageStatus, blocks: Vec<AnswerBlock>) -> StoredMessage {
        round_trip(vec![message(Role::Assistant, content, status, blocks)]).remove(0)
    }

    #[test]
    fn answers_and_users_messages_lose_their_text() {
        let copy = round_trip(vec![
            message(Role::User, "What is **bold**?", MessageStatus::Complete, vec![]),
            message(Role::Assistant, "It is *this*.", MessageStatus::Complete, vec![]),
        ]);
        for message in copy {
            assert_eq!(message.content, "");
            assert!(message.text_left_out);
        }
    }

    #[test]
    fn an_empty_users_message_says_none_was_left_out() {
        let copy = round_trip(vec![message(Role::User, "", MessageStatus::Complete, vec![])]);
        assert!(!copy[0].text_left_out, "it has no text node to adopt");
    }

    #[test]
    fn an_answer_with_no_text_says_none_was_left_out() {
        let copy = answer_copy("", MessageStatus::Error, vec![]);
        assert!(!copy.text_left_out, "it has no part to hydrate");
    }

    #[test]
    fn blocks_keep_their_order_thinking_and_tools_without_the_text() {
        let thinking = AnswerBlock::Reasoning {
            text: "Let me think.".into(),
            redacted: false,
        };
        let copy = answer_copy(
            "Before.After.",
            MessageStatus::Complete,
            vec![text("Before."), thinking.clone(), text(""), text("After.")],
        );
        assert!(copy.text_left_out);
        assert_eq!(copy.blocks, vec![text(""), thinking, text("")]);
    }

    #[test]
    fn text_in_the_blocks_alone_is_left_out_too() {
        let copy = answer_copy("", MessageStatus::Complete, vec![text("Only here.")]);
        assert!(
            copy.text_left_out,
            "its text part is still made, for the page's element"
        );
        assert_eq!(copy.blocks, vec![text("")]);
    }

    #[test]
    fn an_answer_being_written_is_sent_empty() {
        let copy = answer_copy("So far", MessageStatus::Streaming, vec![text("So far")]);
        assert_eq!((copy.content.as_str(), copy.blocks.len()), ("", 0));
    }

    #[test]
    fn errors_and_new_chats_are_sent_as_they_are() {
        let new_chat: Loaded = Ok(None);
        let json = WithoutTextOnPage::encode(&new_chat).unwrap();
        assert_eq!(WithoutTextOnPage::decode(&json).unwrap(), new_chat);
    }
}
