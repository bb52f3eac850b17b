//! The `[sim key=value ...]` directives a user message may carry, and the
//! failures they can inject. Written anywhere in the text; removed before the
//! message is echoed. What each key does is in the README (The simulator).

const MAX_TOKENS_DIRECTIVE: usize = 100_000;
const MAX_DELAY_MS: u64 = 60_000;
const MAX_MARKDOWN_BYTES: u64 = 1_000_000;

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
    /// Answer with the user's text itself.
    pub echo: bool,
    /// Answer with a Markdown document of about this many bytes.
    pub markdown: Option<usize>,
    /// Answer with a description of the request.
    pub report: bool,
    /// Stream pieces of this many characters.
    pub chunk: Option<usize>,
    /// `call=NAME:JSON`: tool calls to make (all in one round, in parallel).
    pub calls: Vec<(String, String)>,
    /// How many rounds of those calls before the answer.
    pub rounds: Option<usize>,
    /// `bad_args`: the calls' arguments are cut-off JSON.
    pub bad_args: bool,
    /// Words of reasoning when thinking is on.
    pub think: Option<usize>,
    /// `redacted`: an encrypted reasoning block as well.
    pub redacted: bool,
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
    if usize::from(d.echo) + usize::from(d.report) + usize::from(d.markdown.is_some()) > 1 {
        return Err("directives `echo`, `report` and `markdown=` cannot be combined".into());
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
    match word {
        "drop" => d.drop = true,
        "echo" => d.echo = true,
        "report" => d.report = true,
        "bad_args" => d.bad_args = true,
        "redacted" => d.redacted = true,
        _ => return apply_key_value(d, word),
    }
    Ok(())
}

fn apply_key_value(d: &mut Directives, word: &str) -> Result<(), String> {
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
        "markdown" => d.markdown = Some(parse_num(key, value, 1, MAX_MARKDOWN_BYTES)? as usize),
        "chunk" => d.chunk = Some(parse_num(key, value, 1, 10_000)? as usize),
        "rounds" => d.rounds = Some(parse_num(key, value, 1, 100)? as usize),
        "think" => d.think = Some(parse_num(key, value, 1, MAX_TOKENS_DIRECTIVE as u64)? as usize),
        "call" => {
            let (name, input) = value.split_once(':').unwrap_or((value, "{}"));
            if name.is_empty() {
                return Err("directive `call=` needs a tool name: call=NAME or call=NAME:{JSON}".into());
            }
            d.calls.push((name.to_owned(), input.to_owned()));
        }
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
            "unknown directive key `{key}` (expected tokens, delay_ms, first_token_ms, fail, after, times, \
                 drop, echo, report, markdown, chunk, call, rounds, bad_args, think, redacted)"
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
