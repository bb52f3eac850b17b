//! Ids of conversations and messages: UUIDs in their canonical lowercase
//! form, checked when parsed, so that nothing else reaches the store.

use crate::errors::{ErrorCode, ErrorInfo};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether `id` has the shape of one of our ids (a UUID in its canonical
/// lowercase form). Anything else is refused before touching the store.
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

/// Declares an id newtype that can only hold a valid id.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $code:expr, $refusal:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id named by `raw`, or a refusal a person understands.
            pub fn parse(raw: &str) -> Result<Self, ErrorInfo> {
                if is_valid_id(raw) {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(ErrorInfo::refused($code, $refusal))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(raw: String) -> Result<Self, String> {
                Self::parse(&raw).map_err(|refusal| refusal.message)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A conversation's id.
    ConversationId,
    ErrorCode::InvalidConversationId,
    "That is not a conversation id. Open the conversation from the list instead."
);

id_type!(
    /// A stored message's id; an answer's id is its message's.
    MessageId,
    ErrorCode::InvalidMessageId,
    "That is not the id of a message. Edit a message from the conversation instead."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_uuids_are_ids() {
        let id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        assert_eq!(ConversationId::parse(id).unwrap().as_str(), id);
        for bad in ["", "../../etc/passwd", &id.to_uppercase(), &format!("{id}0")] {
            let refusal = ConversationId::parse(bad).unwrap_err();
            assert_eq!(refusal.code, ErrorCode::InvalidConversationId);
        }
        assert_eq!(
            MessageId::parse("nope").unwrap_err().code,
            ErrorCode::InvalidMessageId
        );
        assert!(serde_json::from_str::<MessageId>("\"nope\"").is_err());
    }
}
