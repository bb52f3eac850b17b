//! Deterministic answers and `[sim ...]` directives.
//!
//! The simulator never guesses: the answer it streams is a pure function of
//! the conversation, so a test can compute the same string with
//! [`expected_answer`] and compare it with what the app assembled.
//!
//! The last user message may carry directives, written anywhere in the text
//! as `[sim key=value ...]`, that steer the stream (length, pacing, failures,
//! dropped connections). They are removed before the message is echoed.
//!
//! Everything here is synchronous and allocation-light; the HTTP side lives in
//! `mod.rs` and the wire shapes in `wire.rs`.

use super::SimMessage;

/// Filler words appended after the echo. Fixed so answers never change.
const WORDS: &[&str] = &[
    "alpha", "bright", "cobalt", "delta", "ember", "fjord", "granite", "harbor", "indigo", "juniper",
    "kestrel", "lantern", "meadow", "nimbus", "orchid", "pebble", "quartz", "river", "saffron", "timber",
    "umber", "velvet", "willow", "xenon", "yonder", "zephyr", "amber", "birch", "cedar", "dune", "echo",
    "fern", "glacier", "heron", "iris", "jasper", "kelp", "lagoon", "maple", "nectar", "onyx", "prairie",
    "quill", "reef", "summit", "tundra", "upland", "vista", "wren", "yarrow", "zinnia", "acorn", "breeze",
    "canyon", "drift", "estuary", "falcon", "grove", "hollow", "island", "jetty", "knoll", "ledge", "mesa",
];

/// Filler words in an answer when no `tokens=` directive is given.
pub const DEFAULT_FILLER: usize = 24;

const MAX_TOKENS_DIRECTIVE: usize = 100_000;
const MAX_DELAY_MS: u64 = 60_000;

/// A failure the simulator can inject, named like the Bedrock error shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    Throttling,
    Validation,
    AccessDenied,
    ModelNotReady,
    ServiceUnavailable,
    ModelStreamError,
    Internal,
    ModelTimeout,
    ResourceNotFound,
    ModelError,
}

impl FailKind {
    /// Parses the directive spelling (`throttling`, `access_denied`, ...).
    pub fn parse(s: &str) -> Option<FailKind> {
        Some(match s {
            "throttling" => FailKind::Throttling,
            "validation" => FailKind::Validation,
            "access_denied" => FailKind::AccessDenied,
            "model_not_ready" => FailKind::ModelNotReady,
            "service_unavailable" => FailKind::ServiceUnavailable,
            "model_stream_error" => FailKind::ModelStreamError,
            "internal" => FailKind::Internal,
            "model_timeout" => FailKind::ModelTimeout,
            "resource_not_found" => FailKind::ResourceNotFound,
            "model_error" => FailKind::ModelError,
            _ => return None,
        })
    }

    /// The error shape name, as sent in `x-amzn-errortype`.
    pub fn shape_name(self) -> &'static str {
        match self {
            FailKind::Throttling => "ThrottlingException",
            FailKind::Validation => "ValidationException",
            FailKind::AccessDenied => "AccessDeniedException",
            FailKind::ModelNotReady => "ModelNotReadyException",
            FailKind::ServiceUnavailable => "ServiceUnavailableException",
            FailKind::ModelStreamError => "ModelStreamErrorException",
            FailKind::Internal => "InternalServerException",
            FailKind::ModelTimeout => "ModelTimeoutException",
            FailKind::ResourceNotFound => "ResourceNotFoundException",
            FailKind::ModelError => "ModelErrorException",
        }
    }

    /// HTTP status of the pre-stream error response.
    pub fn status(self) -> u16 {
        match self {
            FailKind::Throttling => 429,
            FailKind::Validation => 400,
            FailKind::AccessDenied => 403,
            FailKind::ModelNotReady => 429,
            FailKind::ServiceUnavailable => 503,
            FailKind::ModelStreamError => 424,
            FailKind::Internal => 500,
            FailKind::ModelTimeout => 408,
            FailKind::ResourceNotFound => 404,
            FailKind::ModelError => 424,
        }
    }

    /// The `:exception-type` of the mid-stream exception frame, or `None`
    /// for kinds the ConverseStream error union does not carry (those are
    /// always answered as a pre-stream HTTP error).
    pub fn stream_exception_type(self) -> Option<&'static str> {
        match self {
            FailKind::Throttling => Some("throttlingException"),
            FailKind::Validation => Some("validationException"),
            FailKind::ServiceUnavailable => Some("serviceUnavailableException"),
            FailKind::ModelStreamError => Some("modelStreamErrorException"),
            FailKind::Internal => Some("internalServerException"),
            _ => None,
        }
    }

    /// Human-readable message for the error body.
    pub fn message(self) -> &'static str {
        match self {
            FailKind::Throttling => "Too many requests, please wait before trying again. (simulated)",
            FailKind::Validation => "The request was rejected by validation. (simulated)",
            FailKind::AccessDenied => {
                "You don't have access to the model with the specified model ID. (simulated)"
            }
            FailKind::ModelNotReady => "The model is not ready to serve inference requests. (simulated)",
            FailKind::ServiceUnavailable => "The service is temporarily unavailable. (simulated)",
            FailKind::ModelStreamError => "An error occurred while streaming the response. (simulated)",
            FailKind::Internal => "An internal server error occurred. (simulated)",
            FailKind::ModelTimeout => "The model timed out while processing the request. (simulated)",
            FailKind::ResourceNotFound => "The specified model was not found. (simulated)",
            FailKind::ModelError => "The model returned an error. (simulated)",
        }
    }
}

/// What the directives of the last user message asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    pub tokens: Option<usize>,
    pub delay_ms: u64,
    pub first_token_ms: u64,
    pub fail: Option<FailKind>,
    pub after: Option<usize>,
    pub drop: bool,
    /// Fail only the first N requests carrying this message; later ones
    /// (the SDK's retries, say) are answered normally.
    pub times: Option<u64>,
}

/// How a stream ends abnormally, and after how many tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    Fail { kind: FailKind, after: usize },
    Drop { after: usize },
}

/// Everything needed to play one answer.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Token-sized pieces; their concatenation is the answer.
    pub pieces: Vec<String>,
    pub stop_reason: &'static str,
    pub input_tokens: i32,
    pub delay_ms: u64,
    pub first_token_ms: u64,
    pub fault: Option<Fault>,
    /// `times=N`: the fault applies to the first N such requests only.
    pub fault_times: Option<u64>,
}

impl Plan {
    /// The error to answer with before any stream starts, if any: `fail`
    /// with `after=0` or a kind that cannot occur mid-stream.
    pub fn pre_stream_failure(&self) -> Option<FailKind> {
        match self.fault {
            Some(Fault::Fail { kind, after }) if after == 0 || kind.stream_exception_type().is_none() => {
                Some(kind)
            }
            _ => None,
        }
    }
}

/// Removes every `[sim ...]` block from `text` and parses their keys.
pub fn extract_directives(text: &str) -> Result<(String, Directives), String> {
    let mut d = Directives::default();
    let mut rest = text.to_string();
    while let Some(start) = find_block(&rest) {
        let close = rest[start..]
            .find(']')
            .map(|i| start + i)
            .ok_or_else(|| "unterminated [sim ...] directive: missing `]`".to_string())?;
        let inner = rest[start + 4..close].to_string();
        for word in inner.split_whitespace() {
            apply_word(&mut d, word)?;
        }
        let before = rest[..start].trim_end();
        let after = rest[close + 1..].trim_start();
        let sep = if before.is_empty() || after.is_empty() {
            ""
        } else {
            " "
        };
        rest = format!("{before}{sep}{after}");
    }
    if d.after.is_some() && d.fail.is_none() && !d.drop {
        return Err("directive `after=` needs `fail=KIND` or `drop`".into());
    }
    if d.times.is_some() && d.fail.is_none() && !d.drop {
        return Err("directive `times=` needs `fail=KIND` or `drop`".into());
    }
    if d.fail.is_some() && d.drop {
        return Err("directives `fail=` and `drop` cannot be combined".into());
    }
    Ok((rest.trim().to_string(), d))
}

/// Byte offset of the next `[sim` that starts a directive block.
fn find_block(s: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find("[sim") {
        let at = from + i;
        match s[at + 4..].chars().next() {
            Some(c) if c.is_whitespace() || c == ']' => return Some(at),
            _ => from = at + 4,
        }
    }
    None
}

fn apply_word(d: &mut Directives, word: &str) -> Result<(), String> {
    if word == "drop" {
        d.drop = true;
        return Ok(());
    }
    let (key, value) = word
        .split_once('=')
        .ok_or_else(|| format!("directive `{word}` is not of the form key=value"))?;
    match key {
        "tokens" => {
            let n = parse_num(key, value, 1, MAX_TOKENS_DIRECTIVE as u64)?;
            d.tokens = Some(n as usize);
        }
        "delay_ms" => d.delay_ms = parse_num(key, value, 0, MAX_DELAY_MS)?,
        "first_token_ms" => d.first_token_ms = parse_num(key, value, 0, MAX_DELAY_MS)?,
        "after" => d.after = Some(parse_num(key, value, 0, MAX_TOKENS_DIRECTIVE as u64)? as usize),
        "times" => d.times = Some(parse_num(key, value, 1, 1000)?),
        "fail" => {
            d.fail = Some(FailKind::parse(value).ok_or_else(|| {
                format!(
                    "unknown fail kind `{value}` (expected one of throttling, validation, access_denied, \
                     model_not_ready, service_unavailable, model_stream_error, internal, model_timeout, \
                     resource_not_found, model_error)"
                )
            })?)
        }
        _ => {
            return Err(format!(
                "unknown directive key `{key}` (expected tokens, delay_ms, first_token_ms, fail, after, times, drop)"
            ))
        }
    }
    Ok(())
}

fn parse_num(key: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "directive `{key}` needs an integer from {min} to {max}, got `{value}`"
        )),
    }
}

/// Splits text into word-sized pieces: a word plus the whitespace after it.
pub fn split_pieces(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_ws = false;
    for ch in s.chars() {
        if ch.is_whitespace() {
            in_ws = true;
        } else if in_ws {
            if !cur.trim().is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            in_ws = false;
        }
        cur.push(ch);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// FNV-1a over the conversation: roles and texts, separated.
fn fnv1a(messages: &[SimMessage]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for m in messages {
        feed(m.role.as_bytes());
        feed(&[0]);
        feed(m.text.as_bytes());
        feed(&[0xff]);
    }
    h
}

/// `count` filler pieces picked from the word list by a PRNG seeded with the
/// conversation hash; the last one ends the sentence.
fn filler(messages: &[SimMessage], count: usize) -> Vec<String> {
    let mut state = fnv1a(messages) | 1;
    (0..count)
        .map(|i| {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            let word = WORDS[((r >> 33) % WORDS.len() as u64) as usize];
            if i + 1 == count {
                format!("{word}.")
            } else {
                format!("{word} ")
            }
        })
        .collect()
}

/// Index (1-based) and text of the last user message.
fn last_user(messages: &[SimMessage]) -> Option<(usize, &str)> {
    messages
        .iter()
        .enumerate()
        .rev()
        .find(|(_, m)| m.role == "user")
        .map(|(i, m)| (i + 1, m.text.as_str()))
}

/// Deterministic pieces for a conversation with already-parsed directives.
fn answer_pieces(messages: &[SimMessage], cleaned: &str, index: usize, d: &Directives) -> Vec<String> {
    let echo = format!(
        "Demo answer to message {index} of {total}. You said: \"{cleaned}\". ",
        total = messages.len()
    );
    let mut pieces = split_pieces(&echo);
    let wanted = d.tokens.unwrap_or(pieces.len() + DEFAULT_FILLER);
    if wanted <= pieces.len() {
        pieces.truncate(wanted);
    } else {
        let extra = wanted - pieces.len();
        pieces.extend(filler(messages, extra));
    }
    pieces
}

/// Builds the plan for a request, or a validation message.
pub fn plan(system: &[String], messages: &[SimMessage], max_tokens: Option<i32>) -> Result<Plan, String> {
    if messages.is_empty() {
        return Err("messages must contain at least one message".into());
    }
    if let Some(m) = max_tokens {
        if m < 1 {
            return Err(format!("inferenceConfig.maxTokens must be at least 1, got {m}"));
        }
    }
    let (index, raw) = last_user(messages).ok_or("messages must contain a user message")?;
    let (cleaned, d) = extract_directives(raw)?;
    let mut pieces = answer_pieces(messages, &cleaned, index, &d);
    let mut stop_reason = "end_turn";
    if let Some(m) = max_tokens {
        if (m as usize) < pieces.len() {
            pieces.truncate(m as usize);
            stop_reason = "max_tokens";
        }
    }
    let fault = match (d.fail, d.drop) {
        (Some(kind), _) => Some(Fault::Fail {
            kind,
            after: d.after.unwrap_or(0),
        }),
        (None, true) => Some(Fault::Drop {
            after: d.after.unwrap_or(0),
        }),
        _ => None,
    };
    let words: usize = system
        .iter()
        .map(String::as_str)
        .chain(messages.iter().map(|m| m.text.as_str()))
        .map(|t| t.split_whitespace().count())
        .sum();
    Ok(Plan {
        pieces,
        stop_reason,
        input_tokens: words.clamp(1, i32::MAX as usize) as i32,
        delay_ms: d.delay_ms,
        first_token_ms: d.first_token_ms,
        fault,
        fault_times: d.times,
    })
}

/// The full answer for `messages` when the stream ends normally (no
/// `maxTokens` cap). Directives in the last user message are honoured
/// (`tokens=`); if they are invalid the simulator would answer 400, and this
/// returns the answer as if the text had no directives.
pub fn expected_answer(messages: &[SimMessage]) -> String {
    let Some((index, raw)) = last_user(messages) else {
        return answer_pieces(messages, "", 0, &Directives::default()).concat();
    };
    let (cleaned, d) =
        extract_directives(raw).unwrap_or_else(|_| (raw.trim().to_string(), Directives::default()));
    answer_pieces(messages, &cleaned, index, &d).concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(t: &str) -> SimMessage {
        SimMessage {
            role: "user".into(),
            text: t.into(),
        }
    }

    #[test]
    fn directives_are_removed_and_parsed() {
        let (t, d) = extract_directives("hello [sim tokens=5 delay_ms=10] world").unwrap();
        assert_eq!(t, "hello world");
        assert_eq!(d.tokens, Some(5));
        assert_eq!(d.delay_ms, 10);
        let (t, d) = extract_directives("[sim fail=throttling after=3]").unwrap();
        assert_eq!(t, "");
        assert_eq!(d.fail, Some(FailKind::Throttling));
        assert!(extract_directives("[sim bogus=1]").unwrap_err().contains("bogus"));
        assert!(extract_directives("[sim tokens=x]")
            .unwrap_err()
            .contains("tokens"));
        assert!(extract_directives("[sim tokens=3").is_err());
        assert_eq!(extract_directives("[simple] text").unwrap().0, "[simple] text");
    }

    #[test]
    fn pieces_keep_multibyte_text() {
        let p = split_pieces("안녕하세요 세계 🌍🚀 ok");
        assert_eq!(p, vec!["안녕하세요 ", "세계 ", "🌍🚀 ", "ok"]);
    }

    #[test]
    fn tokens_directive_sets_length() {
        let msgs = vec![user("hi [sim tokens=40]")];
        let p = plan(&[], &msgs, None).unwrap();
        assert_eq!(p.pieces.len(), 40);
        assert_eq!(p.pieces.concat(), expected_answer(&msgs));
        let p = plan(&[], &msgs, Some(7)).unwrap();
        assert_eq!(p.pieces.len(), 7);
        assert_eq!(p.stop_reason, "max_tokens");
    }
}
