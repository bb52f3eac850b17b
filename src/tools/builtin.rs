//! The built-in tools' work. Each returns its text result, or a sentence
//! saying why it failed (which the model reads).

use crate::conversations::store::Store;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long one calculation may run (fend can be asked for 10^10^10).
const CALCULATION_TIME: Duration = Duration::from_secs(2);

fn string_arg<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `current_time`: now, in `time_zone` (the model's choice), else the user's.
pub fn current_time(input: &Value, users_zone: Option<&str>) -> Result<String, String> {
    let name = string_arg(input, "time_zone").or(users_zone).unwrap_or("UTC");
    let zone = jiff::tz::db().get(name).map_err(|_| {
        format!("{name:?} is not a time zone name. Use an IANA name such as \"Asia/Seoul\" or \"America/New_York\".")
    })?;
    let now = jiff::Timestamp::now().to_zoned_datetime(zone);
    Ok(format!(
        "{} ({}, time zone {name}, UTC{})",
        now.strftime("%Y-%m-%dT%H:%M:%S%:z"),
        now.strftime("%A %-d %B %Y, %H:%M"),
        now.strftime("%:z"),
    ))
}

/// Stops a calculation that runs past its deadline.
struct Deadline(Instant);

impl fend_core::Interrupt for Deadline {
    fn should_interrupt(&self) -> bool {
        Instant::now() >= self.0
    }
}

/// `calculator`: the expression's exact value.
pub async fn calculate(input: Value) -> Result<String, String> {
    let expression = string_arg(&input, "expression")
        .ok_or("Give the expression to evaluate as \"expression\".")?
        .to_owned();
    // fend works synchronously; a blocking thread keeps the runtime free
    // while it does, and the deadline bounds it.
    tokio::task::spawn_blocking(move || {
        let mut context = fend_core::Context::new();
        let deadline = Deadline(Instant::now() + CALCULATION_TIME);
        match fend_core::evaluate_with_interrupt(&expression, &mut context, &deadline) {
            Ok(result) if result.get_main_result().is_empty() => {
                Err(format!("{expression:?} has no value to compute."))
            }
            Ok(result) => Ok(format!("{expression} = {}", result.get_main_result())),
            Err(_) if Instant::now() >= deadline.0 => Err(format!(
                "Computing {expression:?} took longer than {} seconds; it was stopped.",
                CALCULATION_TIME.as_secs()
            )),
            Err(why) => Err(format!("{expression:?} cannot be computed: {why}")),
        }
    })
    .await
    .unwrap_or_else(|_| Err("The calculation failed.".to_owned()))
}

/// Matches one search returns by default, and at most.
const SEARCH_DEFAULT: i64 = 5;
const SEARCH_MAX: i64 = 20;
/// Characters of a message shown around a match.
const SNIPPET_CHARS: usize = 160;

/// `search_conversations`: the owner's messages containing `query`.
pub async fn search(store: Store, owner: String, asking: String, input: Value) -> Result<String, String> {
    let query = string_arg(&input, "query").ok_or("Give the words to search for as \"query\".")?;
    if query.chars().count() > 200 {
        return Err("The query is too long; use a few words.".to_owned());
    }
    let limit = input
        .get("limit")
        .and_then(Value::as_i64)
        .unwrap_or(SEARCH_DEFAULT)
        .clamp(1, SEARCH_MAX);
    let found = store
        .search_messages(&owner, &asking, query, limit)
        .await
        .map_err(|_| "The conversations cannot be searched right now.".to_owned())?;
    if found.is_empty() {
        return Ok(format!(
            "No message in the user's other conversations contains {query:?}."
        ));
    }
    let lines: Vec<String> = found
        .iter()
        .map(|hit| {
            let day = jiff::Timestamp::from_millisecond(hit.created_at)
                .map(|t| t.strftime("%Y-%m-%d").to_string())
                .unwrap_or_default();
            let who = if hit.from_user { "user" } else { "assistant" };
            format!(
                "- \"{}\" ({day}, {who}, conversation {}): {}",
                hit.title,
                hit.conversation_id,
                snippet(&hit.content, query)
            )
        })
        .collect();
    Ok(lines.join("\n"))
}

/// Up to [`SNIPPET_CHARS`] characters of `text` around the first match.
fn snippet(text: &str, query: &str) -> String {
    let lower = text.to_lowercase();
    let chars: Vec<char> = text.chars().collect();
    // Position in characters (lower-casing can change byte lengths).
    let at = lower
        .find(&query.to_lowercase())
        .map(|byte| lower[..byte].chars().count())
        .unwrap_or(0)
        .min(chars.len());
    let start = at.saturating_sub(SNIPPET_CHARS / 3);
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let mut out: String = chars[start..end].iter().collect::<String>().replace('\n', " ");
    if start > 0 {
        out.insert(0, '…');
    }
    if end < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn the_calculator_is_exact_and_says_what_it_cannot_do() {
        assert_eq!(
            calculate(json!({"expression": "2^100"})).await.unwrap(),
            "2^100 = 1267650600228229401496703205376"
        );
        assert_eq!(
            calculate(json!({"expression": "1/3 + 1/6"})).await.unwrap(),
            "1/3 + 1/6 = 0.5"
        );
        assert!(calculate(json!({"expression": "5 km to miles"}))
            .await
            .unwrap()
            .contains("miles"));
        assert!(calculate(json!({"expression": "2 +* ("}))
            .await
            .unwrap_err()
            .contains("cannot be computed"));
        assert!(calculate(json!({})).await.unwrap_err().contains("expression"));
    }

    #[test]
    fn the_time_is_in_the_zone_asked_for() {
        let seoul = current_time(&json!({}), Some("Asia/Seoul")).unwrap();
        assert!(
            seoul.contains("+09:00") && seoul.contains("Asia/Seoul"),
            "{seoul}"
        );
        let paris = current_time(&json!({"time_zone": "Europe/Paris"}), Some("Asia/Seoul")).unwrap();
        assert!(paris.contains("Europe/Paris"), "{paris}");
        assert!(current_time(&json!({"time_zone": "Mars/Olympus"}), None)
            .unwrap_err()
            .contains("not a time zone"));
    }

    #[test]
    fn snippets_show_the_match() {
        let text = format!("{} needle {}", "a ".repeat(200), "b ".repeat(200));
        let s = snippet(&text, "NEEDLE");
        assert!(
            s.contains("needle") && s.starts_with('…') && s.ends_with('…'),
            "{s}"
        );
        assert_eq!(snippet("짧은 글", "글"), "짧은 글");
    }
}
