//! Deterministic answers, steered by `[sim ...]` directives (parsed in
//! `directives.rs`).
//!
//! The simulator never guesses: the answer it streams is a pure function of
//! the conversation, so a test can compute the same string with
//! [`expected_answer`] and compare it with what the app assembled.
//!
//! The last user message may carry directives, written anywhere in the text
//! as `[sim key=value ...]`, that steer the stream (length, pacing, failures,
//! dropped connections). They are removed before the message is echoed.
//!
//! Besides the default answer (an echo of the message plus filler words),
//! three directives choose what is said:
//! * `echo`: exactly the user's text (without the directives), so a test can
//!   have any Markdown streamed back;
//! * `markdown=N`: a generated Markdown document of about N bytes (headings,
//!   lists, tables, code), for rendering benchmarks and demos;
//! * `report`: what the request carried (model, system prompt, temperature,
//!   max tokens, message count), so a test can see what reached Bedrock.
//!
//! `chunk=N` streams any answer in pieces of N characters instead of words.
//!
//! Everything here is synchronous and allocation-light; the HTTP side lives in
//! `mod.rs` and the wire shapes in `wire.rs`.

use super::{
    directives::{extract_directives, Directives, FailKind},
    ReceivedRequest, SimMessage,
};

/// Filler words appended after the echo. Fixed so answers never change.
pub(super) const WORDS: &[&str] = &[
    "alpha", "bright", "cobalt", "delta", "ember", "fjord", "granite", "harbor", "indigo", "juniper",
    "kestrel", "lantern", "meadow", "nimbus", "orchid", "pebble", "quartz", "river", "saffron", "timber",
    "umber", "velvet", "willow", "xenon", "yonder", "zephyr", "amber", "birch", "cedar", "dune", "echo",
    "fern", "glacier", "heron", "iris", "jasper", "kelp", "lagoon", "maple", "nectar", "onyx", "prairie",
    "quill", "reef", "summit", "tundra", "upland", "vista", "wren", "yarrow", "zinnia", "acorn", "breeze",
    "canyon", "drift", "estuary", "falcon", "grove", "hollow", "island", "jetty", "knoll", "ledge", "mesa",
];

/// Filler words in an answer when no `tokens=` directive is given.
pub const DEFAULT_FILLER: usize = 24;

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
    /// Reasoning before the text (when the request turned thinking on).
    pub reasoning: Option<super::tools::PlannedReasoning>,
    /// Tool calls after the text (stop reason `tool_use`).
    pub tool_calls: Vec<super::tools::PlannedCall>,
    /// What the prompt cache held of the request.
    pub cache: super::cache::CacheUse,
}

impl Plan {
    /// The output tokens reported: a token per piece of text and of
    /// reasoning, and per tool call.
    pub fn output_tokens(&self) -> i32 {
        let reasoning = self.reasoning.as_ref().map_or(0, |r| r.pieces.len());
        (self.pieces.len() + reasoning + self.tool_calls.len()).min(i32::MAX as usize) as i32
    }

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
        .find(|(_, m)| m.is_user_text())
        .map(|(i, m)| (i + 1, m.text.as_str()))
}

/// Splits an answer into pieces of `chunk` characters, or into words.
fn pieces_of(text: &str, chunk: Option<usize>) -> Vec<String> {
    match chunk {
        Some(n) => {
            let chars: Vec<char> = text.chars().collect();
            chars.chunks(n).map(|c| c.iter().collect()).collect()
        }
        None => split_pieces(text),
    }
}

/// A Markdown document of about `bytes` bytes: sections of prose, a list,
/// a table and code in turn, the same for the same size.
pub fn markdown_document(bytes: usize) -> String {
    let mut doc = String::with_capacity(bytes + 512);
    let mut section = 0;
    while doc.len() < bytes {
        section += 1;
        let word = |i: usize| WORDS[(section * 7 + i) % WORDS.len()];
        doc.push_str(&format!("## Section {section}: the {} {}\n\n", word(0), word(1)));
        doc.push_str(&format!(
            "This part explains **{}** and *{}* with `inline code`, a [link](https://example.com/{section}) \
             and enough plain words to wrap: {} {} {} {} {} {}.\n\n",
            word(2),
            word(3),
            word(4),
            word(5),
            word(6),
            word(7),
            word(8),
            word(9)
        ));
        match section % 4 {
            1 => {
                for i in 1..=4 {
                    doc.push_str(&format!("- item {i}: {} and {}\n", word(i), word(i + 10)));
                }
                doc.push_str("  - a nested point\n\n");
            }
            2 => {
                doc.push_str("| name | value | note |\n|:-----|------:|:----:|\n");
                for i in 1..=4 {
                    doc.push_str(&format!(
                        "| {} | {} | {} |\n",
                        word(i),
                        section * 10 + i,
                        word(i + 20)
                    ));
                }
                doc.push('\n');
            }
            3 => {
                doc.push_str(&format!(
                    "```rust\n// Section {section}\nfn {}(n: u32) -> u32 {{\n    let s = \"{}\";\n    n * 2 + s.len() as u32\n}}\n```\n\n",
                    word(1),
                    word(2)
                ));
            }
            _ => {
                doc.push_str(&format!(
                    "```python\ndef {}(items):\n    \"\"\"Sum {}.\"\"\"\n    return sum(x * 2 for x in items)  # {}\n```\n\n",
                    word(3),
                    word(4),
                    word(5)
                ));
                doc.push_str(&format!("> A quote about {} and {}.\n\n", word(6), word(7)));
            }
        }
    }
    doc
}

/// What `report` answers: the request as the simulator received it.
fn report(req: &ReceivedRequest) -> String {
    let show = |v: Option<String>| v.unwrap_or_else(|| "none".to_owned());
    format!(
        "model={} | system={} | temperature={} | max_tokens={} | messages={}",
        req.model_id,
        show((!req.system.is_empty()).then(|| req.system.join(" / "))),
        show(req.temperature.map(|t| format!("{t:.2}"))),
        show(req.max_tokens.map(|n| n.to_string())),
        req.messages.len()
    )
}

/// Deterministic pieces for a conversation with already-parsed directives.
/// `req` is only needed by `report`.
fn answer_pieces(
    messages: &[SimMessage],
    cleaned: &str,
    index: usize,
    d: &Directives,
    req: Option<&ReceivedRequest>,
) -> Vec<String> {
    if d.echo {
        return pieces_of(cleaned, d.chunk);
    }
    if let Some(bytes) = d.markdown {
        return pieces_of(&markdown_document(bytes), d.chunk);
    }
    if let (true, Some(req)) = (d.report, req) {
        return pieces_of(&report(req), d.chunk);
    }
    let echo = format!(
        "Demo answer to message {index} of {total}. You said: \"{cleaned}\". ",
        total = messages.len()
    );
    let mut pieces = pieces_of(&echo, d.chunk);
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
pub fn plan(req: &ReceivedRequest) -> Result<Plan, String> {
    let (system, messages, max_tokens) = (&req.system, &req.messages, req.max_tokens);
    if messages.is_empty() {
        return Err("messages must contain at least one message".into());
    }
    if let Some(m) = max_tokens {
        if m < 1 {
            return Err(format!("inferenceConfig.maxTokens must be at least 1, got {m}"));
        }
    }
    super::tools::check(req)?;
    let (index, raw) = last_user(messages).ok_or("messages must contain a user message")?;
    let (cleaned, d) = extract_directives(raw)?;
    let mut round = super::tools::plan_round(req, index, &d);
    let mut pieces = match &round.text {
        Some(text) => pieces_of(text, d.chunk),
        None => answer_pieces(messages, &cleaned, index, &d, Some(req)),
    };
    let mut stop_reason = if round.calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    if let Some(m) = max_tokens {
        if (m as usize) < pieces.len() {
            pieces.truncate(m as usize);
            stop_reason = "max_tokens";
            // A response cut short has no complete tool call.
            round.calls.clear();
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
        reasoning: round.reasoning,
        tool_calls: round.calls,
        cache: Default::default(),
    })
}

/// The full answer for `messages` when the stream ends normally (no
/// `maxTokens` cap). Directives in the last user message are honoured
/// (`tokens=`); if they are invalid the simulator would answer 400, and this
/// returns the answer as if the text had no directives. (`report` answers
/// depend on more than the messages, and are not covered.)
pub fn expected_answer(messages: &[SimMessage]) -> String {
    let Some((index, raw)) = last_user(messages) else {
        return answer_pieces(messages, "", 0, &Directives::default(), None).concat();
    };
    let (cleaned, d) =
        extract_directives(raw).unwrap_or_else(|_| (raw.trim().to_string(), Directives::default()));
    answer_pieces(messages, &cleaned, index, &d, None).concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(t: &str) -> SimMessage {
        SimMessage::text("user", t)
    }

    #[test]
    fn pieces_keep_multibyte_text() {
        let p = split_pieces("안녕하세요 세계 🌍🚀 ok");
        assert_eq!(p, vec!["안녕하세요 ", "세계 ", "🌍🚀 ", "ok"]);
    }

    fn request(messages: Vec<SimMessage>, max_tokens: Option<i32>) -> ReceivedRequest {
        ReceivedRequest {
            model_id: "m".into(),
            streaming: true,
            system: vec!["Be brief.".into()],
            messages,
            max_tokens,
            temperature: Some(0.25),
            tools: None,
            thinking_budget: None,
            cache_points: Vec::new(),
        }
    }

    #[test]
    fn echo_markdown_and_report_choose_what_is_said() {
        let text = "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```rust\nfn main() {}\n```";
        let msgs = vec![user(&format!("{text} [sim echo chunk=3]"))];
        let p = plan(&request(msgs.clone(), None)).unwrap();
        assert_eq!(p.pieces.concat(), text);
        assert!(p.pieces.iter().all(|piece| piece.chars().count() <= 3));
        assert_eq!(expected_answer(&msgs), text);

        let doc = markdown_document(5000);
        assert!((5000..6000).contains(&doc.len()), "{}", doc.len());
        assert!(doc.contains("```rust") && doc.contains("| name |") && doc.contains("- item"));
        assert_eq!(doc, markdown_document(5000), "deterministic");

        let p = plan(&request(vec![user("[sim report]")], Some(64))).unwrap();
        assert_eq!(
            p.pieces.concat(),
            "model=m | system=Be brief. | temperature=0.25 | max_tokens=64 | messages=1"
        );
        assert!(extract_directives("[sim echo report]").is_err());
    }

    #[test]
    fn tokens_directive_sets_length() {
        let msgs = vec![user("hi [sim tokens=40]")];
        let p = plan(&request(msgs.clone(), None)).unwrap();
        assert_eq!(p.pieces.len(), 40);
        assert_eq!(p.pieces.concat(), expected_answer(&msgs));
        let p = plan(&request(msgs, Some(7))).unwrap();
        assert_eq!(p.pieces.len(), 7);
        assert_eq!(p.stop_reason, "max_tokens");
    }
}
