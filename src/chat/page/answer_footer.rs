//! The footer of an answer: its state while it is written, how it ended
//! (with its usage and speed), and Retry or Regenerate.

use super::{turn::Turn, ChatSession};
use crate::{
    chat::Usage,
    conversations::format_cost,
    conversations::MessageStatus,
    i18n::{use_i18n, Strings},
};
use leptos::prelude::*;

/// Under an answer: how it is going or how it ended, and Retry or
/// Regenerate on the last one.
#[component]
pub fn AnswerFooter(turn: Turn) -> impl IntoView {
    let session = expect_context::<ChatSession>();
    let i18n = use_i18n();
    let retry_button = move || {
        (session.retryable.get() == Some(turn.id)).then(|| {
            // After a complete answer it is Regenerate; otherwise Retry.
            let complete = turn.status.try_get() == Some(MessageStatus::Complete);
            view! {
                <button
                    type="button"
                    class=if complete { "small regenerate" } else { "small retry" }
                    on:click=move |_| session.retry()
                >
                    {move || if complete { i18n.t().regenerate } else { i18n.t().retry }}
                </button>
            }
        })
    };
    let state = move || {
        let t = i18n.t();
        match turn.status.get() {
            MessageStatus::Streaming if turn.reconnecting.get() => view! {
                <p class="state streaming reconnecting">{t.reconnecting}</p>
            }
            .into_any(),
            MessageStatus::Streaming => view! { <p class="state streaming">{t.generating}</p> }.into_any(),
            MessageStatus::Stopped => view! { <p class="state stopped">{t.stopped}</p> }.into_any(),
            MessageStatus::Interrupted => view! { <p class="state stopped">{t.interrupted}</p> }.into_any(),
            MessageStatus::Error => {
                let message = turn
                    .error
                    .get()
                    .map(|e| e.message)
                    .unwrap_or_else(|| t.answer_failed.to_owned());
                view! { <p class="state error" role="alert">{message}</p> }.into_any()
            }
            MessageStatus::Complete => turn
                .usage
                .get()
                .map(|u| {
                    let text = usage_line(t, u, turn.timing.get(), &session.currency.read_value());
                    view! { <p class="state usage">{text}</p> }
                })
                .into_any(),
        }
    };
    view! {
        {state}
        {retry_button}
    }
}

/// "12 tokens in · 40 out · 900 from cache · first token 0.3 s · 85 tokens/s
/// · 0.8 s · $0.00012".
fn usage_line(
    t: &Strings,
    u: Usage,
    (first_token_ms, duration_ms): (Option<u64>, Option<u64>),
    currency: &str,
) -> String {
    let mut parts = vec![(t.usage_in)(u.input_tokens), (t.usage_out)(u.output_tokens)];
    if u.cache_read_tokens > 0 {
        parts.push((t.usage_cache_read)(u.cache_read_tokens));
    }
    if u.cache_write_tokens > 0 {
        parts.push((t.usage_cache_write)(u.cache_write_tokens));
    }
    if let Some(first) = first_token_ms {
        parts.push((t.usage_first_token)(first as f64 / 1000.0));
    }
    if let (Some(first), Some(total)) = (first_token_ms, duration_ms) {
        // Tokens after the first, over the time they took.
        let writing_ms = total.saturating_sub(first);
        if writing_ms > 0 && u.output_tokens > 1 {
            let rate = f64::from(u.output_tokens - 1) * 1000.0 / writing_ms as f64;
            parts.push((t.usage_rate)(rate));
        }
    }
    let seconds = duration_ms.unwrap_or(u.latency_ms) as f64 / 1000.0;
    parts.push((t.usage_total)(seconds));
    if let Some(nanos) = u.cost_nanos {
        parts.push(format_cost(nanos, currency));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{EN, KO};

    #[test]
    fn the_usage_line_shows_speed_when_timings_are_known() {
        let usage = Usage {
            input_tokens: 12,
            output_tokens: 41,
            total_tokens: 53,
            latency_ms: 900,
            ..Default::default()
        };
        assert_eq!(
            usage_line(&EN, usage, (Some(300), Some(800)), "USD"),
            "12 tokens in · 41 out · first token 0.3 s · 80 tokens/s · 0.8 s"
        );
        assert_eq!(
            usage_line(&EN, usage, (None, None), "USD"),
            "12 tokens in · 41 out · 0.9 s"
        );
        assert_eq!(
            usage_line(&KO, usage, (Some(300), Some(800)), "USD"),
            "입력 12토큰 · 출력 41토큰 · 첫 토큰 0.3초 · 초당 80토큰 · 총 0.8초"
        );
        let cached = Usage {
            cache_read_tokens: 900,
            cost_nanos: Some(120_000),
            ..usage
        };
        assert_eq!(
            usage_line(&EN, cached, (None, None), "USD"),
            "12 tokens in · 41 out · 900 from cache · 0.9 s · $0.000120"
        );
    }
}
