//! Checks a [`SendRequest`] (or the compatibility endpoint's [`ChatRequest`]) before any Bedrock call, so that bad input costs
//! nothing and gets an answer a person understands.

use super::{ChatRequest, ErrorInfo, Role, SendRequest};
use crate::errors::ErrorCode;
use crate::{
    conversations::{history::HistoryTurn, store::ModelChoice, ConversationId, ConversationSettings},
    settings::{Settings, MIN_THINKING_BUDGET},
};

/// A new message that passed every check.
#[derive(Debug)]
pub struct ValidSend<'a> {
    pub conversation_id: Option<ConversationId>,
    pub text: MessageText<'a>,
    pub model: ModelChoice<'a>,
    pub settings: Option<ConversationSettings>,
}

pub fn validate_send<'a>(
    request: &'a SendRequest,
    settings: &'a Settings,
) -> Result<ValidSend<'a>, ErrorInfo> {
    let conversation_id = request
        .conversation_id
        .as_deref()
        .map(ConversationId::parse)
        .transpose()?;
    let text = MessageText::parse(
        &request.content,
        "Your message",
        settings.limits.max_message_chars,
    )?;
    Ok(ValidSend {
        conversation_id,
        text,
        model: model_choice(request.model_id.as_deref(), settings)?,
        settings: request
            .settings
            .as_ref()
            .map(|s| validate_settings(s, settings))
            .transpose()?,
    })
}

/// The text of an edited message: checked like a new one.
pub fn check_edit_text<'a>(text: &'a str, settings: &Settings) -> Result<MessageText<'a>, ErrorInfo> {
    MessageText::parse(text, "Your message", settings.limits.max_message_chars)
}

/// Settings a user chose for a conversation, checked and normalised: a
/// blank system prompt means the default one.
pub fn validate_settings(
    requested: &ConversationSettings,
    settings: &Settings,
) -> Result<ConversationSettings, ErrorInfo> {
    let limits = &settings.limits;
    let model_id = match requested.model_id.as_deref() {
        Some(id) => Some(pick_model(Some(id), settings)?.to_owned()),
        None => None,
    };
    let system_prompt = match requested.system_prompt.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(prompt) => {
            let chars = prompt.chars().count();
            if chars > limits.max_system_prompt_chars {
                return Err(ErrorInfo::new(
                    ErrorCode::SystemPromptTooLong,
                    format!(
                        "The system prompt is {chars} characters long; the limit is {}. Shorten it.",
                        limits.max_system_prompt_chars
                    ),
                    false,
                ));
            }
            if has_control_characters(prompt) {
                return Err(ErrorInfo::refused(
                    ErrorCode::InvalidCharacters,
                    "The system prompt contains control characters. Remove them and try again.",
                ));
            }
            Some(prompt.to_owned())
        }
    };
    if let Some(t) = requested.temperature {
        if !(0.0..=1.0).contains(&t) {
            return Err(ErrorInfo::refused(
                ErrorCode::BadTemperature,
                format!("Temperature must be between 0 and 1 (0 is the most predictable); {t} is not."),
            ));
        }
    }
    if let Some(n) = requested.max_tokens {
        if n == 0 || n > limits.max_output_tokens {
            return Err(ErrorInfo::refused(
                ErrorCode::BadMaxTokens,
                format!(
                    "Max tokens must be from 1 to {}; {n} is not.",
                    limits.max_output_tokens
                ),
            ));
        }
    }
    let tools = match &requested.tools {
        None => None,
        Some(names) => {
            let offered = settings.tools.choices();
            if let Some(unknown) = names.iter().find(|name| !offered.contains(name)) {
                return Err(ErrorInfo::refused(
                    ErrorCode::UnknownTool,
                    if offered.is_empty() {
                        format!("{unknown:?} is not a tool of this server; it offers none.")
                    } else {
                        format!(
                            "{unknown:?} is not a tool of this server. It offers: {}.",
                            offered.join(", ")
                        )
                    },
                ));
            }
            // In the operator's order, each once.
            Some(
                offered
                    .iter()
                    .filter(|name| names.contains(name))
                    .cloned()
                    .collect(),
            )
        }
    };
    let thinking_budget = match requested.thinking_budget {
        None | Some(0) => None,
        Some(budget) => {
            // Bedrock wants max tokens above the budget. One the user chose
            // is held to that; the server's default is raised to fit when
            // the answer is asked for.
            if budget < MIN_THINKING_BUDGET || requested.max_tokens.is_some_and(|max| budget >= max) {
                return Err(ErrorInfo::refused(
                    ErrorCode::BadThinking,
                    match requested.max_tokens {
                        Some(max) if budget >= MIN_THINKING_BUDGET => format!(
                            "A thinking budget must be less than the answer's max tokens ({max}); {budget} is not. Raise max tokens or lower the budget."
                        ),
                        _ => format!(
                            "A thinking budget must be at least {MIN_THINKING_BUDGET} tokens; {budget} is not."
                        ),
                    },
                ));
            }
            Some(budget)
        }
    };
    Ok(ConversationSettings {
        model_id,
        system_prompt,
        temperature: requested.temperature,
        max_tokens: requested.max_tokens,
        tools,
        thinking_budget,
    })
}

/// The browser's time zone, when it sent one: an IANA name this server knows.
pub fn check_time_zone(zone: Option<&str>) -> Result<Option<String>, ErrorInfo> {
    match zone.map(str::trim) {
        None | Some("") => Ok(None),
        Some(name) if name.len() <= 64 && jiff::tz::db().get(name).is_ok() => Ok(Some(name.to_owned())),
        Some(name) => Err(ErrorInfo::refused(
            ErrorCode::BadTimeZone,
            format!(
                "{:?} is not a time zone this server knows. Send an IANA name such as \"Asia/Seoul\", or none.",
                name.chars().take(64).collect::<String>()
            ),
        )),
    }
}

/// Control characters other than line breaks and tabs.
fn has_control_characters(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// A message's text that passed the checks: not blank, within the length
/// limit (in characters, not bytes), no control characters but line breaks
/// and tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageText<'a>(&'a str);

impl<'a> MessageText<'a> {
    /// `text` as a message, or why it cannot be one; `label` names it in
    /// the refusal ("Your message", "Message 2 of the conversation").
    pub fn parse(text: &'a str, label: &str, max_chars: usize) -> Result<Self, ErrorInfo> {
        if text.trim().is_empty() {
            return Err(ErrorInfo::refused(
                ErrorCode::EmptyMessage,
                if label == "Your message" {
                    "Your message is empty. Type something before sending.".to_owned()
                } else {
                    format!("{label} is empty.")
                },
            ));
        }
        let chars = text.chars().count();
        if chars > max_chars {
            return Err(ErrorInfo::new(
                ErrorCode::MessageTooLong,
                format!(
                    "{label} is {chars} characters long; the limit is {max_chars}. Shorten it or split it into several messages."
                ),
                false,
            ));
        }
        if has_control_characters(text) {
            return Err(ErrorInfo::refused(
                ErrorCode::InvalidCharacters,
                format!(
                    "{label} contains control characters that cannot be sent to the model. Remove them and try again."
                ),
            ));
        }
        Ok(Self(text))
    }

    pub fn as_str(self) -> &'a str {
        self.0
    }
}

/// The model a request asks for, checked; without one, the conversation's
/// own or the default answers.
pub fn model_choice<'a>(
    requested: Option<&'a str>,
    settings: &'a Settings,
) -> Result<ModelChoice<'a>, ErrorInfo> {
    Ok(ModelChoice {
        requested: requested.map(|id| pick_model(Some(id), settings)).transpose()?,
        offered: &settings.bedrock.models,
        default: &settings.bedrock.default_model,
    })
}

/// The requested model if it is offered, else the default.
pub fn pick_model<'a>(requested: Option<&'a str>, settings: &'a Settings) -> Result<&'a str, ErrorInfo> {
    match requested {
        None => Ok(settings.bedrock.default_model.as_str()),
        Some(id) if settings.bedrock.offers(id) => Ok(id),
        Some(id) => {
            let names: Vec<_> = settings.bedrock.models.iter().map(|m| m.id.as_str()).collect();
            Err(ErrorInfo::refused(
                ErrorCode::UnknownModel,
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
    pub turns: Vec<HistoryTurn>,
}

pub fn validate<'a>(request: &'a ChatRequest, settings: &'a Settings) -> Result<ValidChat<'a>, ErrorInfo> {
    let limits = &settings.limits;
    let messages = &request.messages;
    let Some(last) = messages.last() else {
        return Err(ErrorInfo::refused(
            ErrorCode::EmptyConversation,
            "The request has no messages. Send at least one message.",
        ));
    };
    if messages.len() > limits.max_messages {
        return Err(ErrorInfo::new(
            ErrorCode::TooManyMessages,
            format!(
                "This conversation has {} messages; the limit is {}. Start a new conversation to continue.",
                messages.len(),
                limits.max_messages
            ),
            false,
        ));
    }
    if last.role != Role::User {
        return Err(ErrorInfo::refused(
            ErrorCode::BadTurnOrder,
            "The last message must be the user's: there is nothing for the model to answer.",
        ));
    }
    for (index, pair) in messages.windows(2).enumerate() {
        if pair[0].role == pair[1].role {
            return Err(ErrorInfo::refused(
                ErrorCode::BadTurnOrder,
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
        MessageText::parse(&message.content, &label, limits.max_message_chars)?;
    }
    let model_id = pick_model(request.model_id.as_deref(), settings)?;
    Ok(ValidChat {
        model_id,
        turns: messages
            .iter()
            .map(|m| HistoryTurn::text(m.role, m.content.clone()))
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

    fn code(req: ChatRequest) -> ErrorCode {
        validate(&req, &settings()).unwrap_err().code
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
    fn conversation_settings_are_checked_and_normalised() {
        let s = settings();
        let ok = validate_settings(
            &ConversationSettings {
                model_id: Some(s.bedrock.default_model.clone()),
                system_prompt: Some("  Be brief.  ".into()),
                temperature: Some(0.2),
                max_tokens: Some(100),
                tools: Some(vec![
                    "calculator".into(),
                    "current_time".into(),
                    "calculator".into(),
                ]),
                thinking_budget: Some(0),
            },
            &s,
        )
        .unwrap();
        assert_eq!(
            ok.tools.as_deref(),
            Some(&["current_time".to_owned(), "calculator".to_owned()][..]),
            "the operator's order, each once"
        );
        assert_eq!(ok.thinking_budget, None, "0 is off");
        assert_eq!(ok.system_prompt.as_deref(), Some("Be brief."));
        let blank = ConversationSettings {
            system_prompt: Some("   ".into()),
            ..Default::default()
        };
        assert_eq!(validate_settings(&blank, &s).unwrap().system_prompt, None);
        let code = |c: ConversationSettings| validate_settings(&c, &s).unwrap_err().code;
        assert_eq!(
            code(ConversationSettings {
                tools: Some(vec!["shell".into()]),
                ..Default::default()
            }),
            "unknown_tool"
        );
        for budget in [1000, 5000] {
            assert_eq!(
                code(ConversationSettings {
                    thinking_budget: Some(budget),
                    max_tokens: Some(4096),
                    ..Default::default()
                }),
                "bad_thinking",
                "{budget}"
            );
        }
        assert_eq!(
            code(ConversationSettings {
                temperature: Some(1.5),
                ..Default::default()
            }),
            "bad_temperature"
        );
        assert_eq!(
            code(ConversationSettings {
                temperature: Some(f32::NAN),
                ..Default::default()
            }),
            "bad_temperature"
        );
        assert_eq!(
            code(ConversationSettings {
                max_tokens: Some(0),
                ..Default::default()
            }),
            "bad_max_tokens"
        );
        assert_eq!(
            code(ConversationSettings {
                system_prompt: Some("x".repeat(s.limits.max_system_prompt_chars + 1)),
                ..Default::default()
            }),
            "system_prompt_too_long"
        );
        assert_eq!(
            code(ConversationSettings {
                model_id: Some("gpt-4".into()),
                ..Default::default()
            }),
            "unknown_model"
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // Ten Korean syllables are 30 bytes but 10 characters: allowed.
        let req = request(None, &[(Role::User, "가나다라마바사아자차")]);
        assert!(validate(&req, &settings()).is_ok());
    }
}
