//! Checks a [`SendRequest`] (or the compatibility endpoint's [`ChatRequest`]) before any Bedrock call, so that bad input costs
//! nothing and gets an answer a person understands.

use super::{ChatRequest, Role, SendRequest};
use crate::{
    bedrock::Turn,
    server::{ApiError, Settings},
};
use axum::http::StatusCode;

/// A new message that passed every check.
#[derive(Debug)]
pub struct ValidSend<'a> {
    pub conversation_id: Option<&'a str>,
    pub text: &'a str,
    pub model_id: &'a str,
}

pub fn validate_send<'a>(
    request: &'a SendRequest,
    settings: &'a Settings,
) -> Result<ValidSend<'a>, ApiError> {
    let conversation_id = match request.conversation_id.as_deref() {
        Some(id) => {
            crate::conversations::api::check_id(id)?;
            Some(id)
        }
        None => None,
    };
    check_text(&request.content, "Your message", settings)?;
    Ok(ValidSend {
        conversation_id,
        text: &request.content,
        model_id: pick_model(request.model_id.as_deref(), settings)?,
    })
}

/// A message's text: not blank, within the length limit (in characters,
/// not bytes), no control characters but line breaks and tabs.
fn check_text(text: &str, label: &str, settings: &Settings) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "empty_message",
            if label == "Your message" {
                "Your message is empty. Type something before sending.".to_owned()
            } else {
                format!("{label} is empty.")
            },
        ));
    }
    let max = settings.limits.max_message_chars;
    let chars = text.chars().count();
    if chars > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_long",
            format!("{label} is {chars} characters long; the limit is {max}. Shorten it or split it into several messages."),
            false,
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::bad_request(
            "invalid_characters",
            format!("{label} contains control characters that cannot be sent to the model. Remove them and try again."),
        ));
    }
    Ok(())
}

/// The requested model if it is offered, else the default.
pub fn pick_model<'a>(requested: Option<&'a str>, settings: &'a Settings) -> Result<&'a str, ApiError> {
    match requested {
        None => Ok(settings.bedrock.default_model.as_str()),
        Some(id) if settings.bedrock.offers(id) => Ok(id),
        Some(id) => {
            let names: Vec<_> = settings.bedrock.models.iter().map(|m| m.id.as_str()).collect();
            Err(ApiError::bad_request(
                "unknown_model",
                format!(
                    "The model {id:?} is not offered here. Choose one of: {}.",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// A request that passed every check, borrowing its text from the request.
#[derive(Debug)]
pub struct ValidChat<'a> {
    pub model_id: &'a str,
    pub turns: Vec<Turn<'a>>,
}

pub fn validate<'a>(request: &'a ChatRequest, settings: &'a Settings) -> Result<ValidChat<'a>, ApiError> {
    let limits = &settings.limits;
    let messages = &request.messages;
    let Some(last) = messages.last() else {
        return Err(ApiError::bad_request(
            "empty_conversation",
            "The request has no messages. Send at least one message.",
        ));
    };
    if messages.len() > limits.max_messages {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_messages",
            format!(
                "This conversation has {} messages; the limit is {}. Start a new conversation to continue.",
                messages.len(),
                limits.max_messages
            ),
            false,
        ));
    }
    if last.role != Role::User {
        return Err(ApiError::bad_request(
            "bad_turn_order",
            "The last message must be the user's: there is nothing for the model to answer.",
        ));
    }
    for (index, pair) in messages.windows(2).enumerate() {
        if pair[0].role == pair[1].role {
            return Err(ApiError::bad_request(
                "bad_turn_order",
                format!(
                    "Messages {} and {} are both from the {}; user and assistant must take turns.",
                    index + 1,
                    index + 2,
                    if pair[0].role == Role::User {
                        "user"
                    } else {
                        "assistant"
                    }
                ),
            ));
        }
    }
    for (index, message) in messages.iter().enumerate() {
        let is_last = index + 1 == messages.len();
        let label = if is_last {
            "Your message".to_owned()
        } else {
            format!("Message {} of the conversation", index + 1)
        };
        check_text(&message.content, &label, settings)?;
    }
    let model_id = pick_model(request.model_id.as_deref(), settings)?;
    Ok(ValidChat {
        model_id,
        turns: messages
            .iter()
            .map(|m| Turn {
                from_user: m.role == Role::User,
                text: &m.content,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ChatMessage;

    fn settings() -> Settings {
        let mut env = std::collections::HashMap::new();
        env.insert(
            "BEDROCK_CHAT_LIMITS_MAX_MESSAGE_CHARS".to_owned(),
            "10".to_owned(),
        );
        env.insert("BEDROCK_CHAT_LIMITS_MAX_MESSAGES".to_owned(), "3".to_owned());
        Settings::built_in_with(&env).unwrap()
    }

    fn request(model: Option<&str>, msgs: &[(Role, &str)]) -> ChatRequest {
        ChatRequest {
            model_id: model.map(str::to_owned),
            messages: msgs
                .iter()
                .map(|(role, text)| ChatMessage {
                    role: *role,
                    content: (*text).to_owned(),
                })
                .collect(),
        }
    }

    fn code(req: ChatRequest) -> String {
        validate(&req, &settings()).unwrap_err().info.code
    }

    #[test]
    fn accepts_a_normal_conversation() {
        let s = settings();
        let req = request(
            None,
            &[
                (Role::User, "hi"),
                (Role::Assistant, "hello"),
                (Role::User, "안녕 😀"),
            ],
        );
        let ok = validate(&req, &s).unwrap();
        assert_eq!(ok.model_id, s.bedrock.default_model);
        assert_eq!(ok.turns.len(), 3);
    }

    #[test]
    fn rejects_each_kind_of_bad_input() {
        use Role::*;
        assert_eq!(code(request(None, &[])), "empty_conversation");
        assert_eq!(code(request(None, &[(User, "  \n ")])), "empty_message");
        assert_eq!(code(request(None, &[(User, "12345678901")])), "message_too_long");
        assert_eq!(
            code(request(
                None,
                &[(User, "a"), (Assistant, "b"), (User, "c"), (Assistant, "d")]
            )),
            "too_many_messages"
        );
        assert_eq!(code(request(None, &[(User, "a"), (User, "b")])), "bad_turn_order");
        assert_eq!(
            code(request(None, &[(User, "a"), (Assistant, "b")])),
            "bad_turn_order"
        );
        assert_eq!(code(request(None, &[(User, "a\u{0}b")])), "invalid_characters");
        assert_eq!(code(request(Some("gpt-4"), &[(User, "a")])), "unknown_model");
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // Ten Korean syllables are 30 bytes but 10 characters: allowed.
        let req = request(None, &[(Role::User, "가나다라마바사아자차")]);
        assert!(validate(&req, &settings()).is_ok());
    }
}
