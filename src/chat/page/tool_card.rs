//! How thinking and a tool call look in an answer.
//!
//! * Thinking streams open under "Thinking…", and collapses when the answer
//!   moves on, saying how long it took; encrypted thinking says so.
//! * A tool card shows the tool, its arguments as the model writes them
//!   (pretty JSON once complete), a running state with the seconds so far,
//!   then the result (collapsed; long ones cut with a way to see all) or
//!   the error. Tool output is text, never HTML.

use super::answer_parts::{now_ms, ThinkingPart, ToolPart, ToolState};
use crate::i18n::use_i18n;
use leptos::prelude::*;
use std::time::Duration;

/// Characters of a result shown before "Show all".
const RESULT_PREVIEW_CHARS: usize = 1200;

#[component]
pub fn ThinkingView(part: ThinkingPart) -> impl IntoView {
    let i18n = use_i18n();
    // Open while it streams, closed once the answer moves on (the user may
    // open it again).
    let open = RwSignal::new(!part.done.get_untracked());
    Effect::new(move |_| {
        if part.done.get() {
            open.set(false);
        }
    });
    let label = move || {
        let t = i18n.t();
        match (part.done.get(), part.took_ms.get()) {
            (false, _) => t.thinking.to_owned(),
            (true, Some(ms)) => (t.thought_for)(ms as f64 / 1000.0),
            (true, None) => t.thought.to_owned(),
        }
    };
    view! {
        <div class="thinking" class:live=move || !part.done.get()>
            <button
                type="button"
                class="thinking-toggle"
                aria-expanded=move || open.get().to_string()
                on:click=move |_| open.update(|o| *o = !*o)
            >
                {label}
            </button>
            <Show when=move || open.get()>
                <div class="thinking-text">{move || part.text.get()}</div>
                <Show when=move || part.redacted.get()>
                    <p class="thinking-redacted">{move || i18n.t().thinking_redacted}</p>
                </Show>
            </Show>
        </div>
    }
}

#[component]
pub fn ToolCard(part: ToolPart) -> impl IntoView {
    let i18n = use_i18n();
    let name = part.name.get_value();
    let shown_name = {
        let name = name.clone();
        move || (i18n.t().tool_name)(&name)
    };
    // Ticks once a second while the call runs (effects run in the browser only).
    let now = RwSignal::new(0_u64);
    Effect::new(move |_| {
        if let ToolState::Running { .. } = part.state.get() {
            now.set(now_ms());
            if let Ok(handle) =
                set_interval_with_handle(move || now.set(now_ms()), Duration::from_millis(1000))
            {
                on_cleanup(move || handle.clear());
            }
        }
    });
    let state_class = move || match part.state.get() {
        ToolState::Writing => "tool-card writing",
        ToolState::Awaiting => "tool-card awaiting",
        ToolState::Running { .. } => "tool-card running",
        ToolState::Finished(f) if f.ok => "tool-card ok",
        ToolState::Finished(_) => "tool-card failed",
        ToolState::Stopped => "tool-card stopped",
    };
    let status = move || {
        let t = i18n.t();
        match part.state.get() {
            ToolState::Writing => t.tool_writing.to_owned(),
            ToolState::Awaiting => t.tool_awaiting.to_owned(),
            ToolState::Running { since_ms } => (t.tool_running)(now.get().saturating_sub(since_ms) / 1000),
            ToolState::Finished(f) if f.ok => (t.tool_done)(f.duration_ms),
            ToolState::Finished(_) => t.tool_failed.to_owned(),
            ToolState::Stopped => t.tool_stopped.to_owned(),
        }
    };
    // The arguments as written; pretty once the model finished them.
    let arguments = move || {
        let raw = part.input.get();
        let complete = !matches!(part.state.get(), ToolState::Writing);
        match serde_json::from_str::<serde_json::Value>(&raw) {
            Ok(value) if complete => serde_json::to_string_pretty(&value).unwrap_or(raw),
            _ => raw,
        }
    };
    view! {
        <div class=state_class data-tool=name>
            <div class="tool-head">
                <span class="tool-name">{shown_name}</span>
                <span class="tool-status" aria-live="polite">{status}</span>
            </div>
            <div class="tool-section">
                <span class="tool-label">{move || i18n.t().tool_arguments}</span>
                <pre class="tool-args">{arguments}</pre>
            </div>
            {move || match part.state.get() {
                ToolState::Finished(finished) => {
                    view! { <ToolResultView ok=finished.ok content=finished.content/> }.into_any()
                }
                ToolState::Awaiting => view! { <ApprovalButtons part/> }.into_any(),
                _ => ().into_any(),
            }}
        </div>
    }
}

/// A finished call's result or error: collapsed, and cut when long.
#[component]
fn ToolResultView(ok: bool, content: String) -> impl IntoView {
    let i18n = use_i18n();
    // Errors are short and the reason matters: shown open.
    let open = RwSignal::new(!ok);
    let show_all = RwSignal::new(false);
    let total = content.chars().count();
    let preview: String = content.chars().take(RESULT_PREVIEW_CHARS).collect();
    let shown = preview.chars().count();
    let text = move || {
        if show_all.get() {
            content.clone()
        } else {
            preview.clone()
        }
    };
    view! {
        <div class="tool-section tool-result" class:error=!ok>
            <button
                type="button"
                class="tool-result-toggle"
                aria-expanded=move || open.get().to_string()
                on:click=move |_| open.update(|o| *o = !*o)
            >
                {move || i18n.t().tool_result}
            </button>
            <Show when=move || open.get()>
                <pre class="tool-output">{text.clone()}</pre>
                <Show when=move || shown < total && !show_all.get()>
                    <button type="button" class="small tool-show-all" on:click=move |_| show_all.set(true)>
                        {move || (i18n.t().tool_show_all)(shown, total)}
                    </button>
                </Show>
            </Show>
        </div>
    }
}

/// Approve and Deny on a call that waits for the user. The card changes
/// when the answer's stream says what happened (in every tab that follows
/// it), not when the button is pressed.
#[component]
fn ApprovalButtons(part: ToolPart) -> impl IntoView {
    let i18n = use_i18n();
    let sending = RwSignal::new(false);
    let refused = RwSignal::new(None::<String>);
    let decide = move |approve: bool| {
        let Some(answer) = part.answer.get_value() else {
            return;
        };
        sending.set(true);
        let call = part.id.get_value();
        leptos::task::spawn_local(async move {
            if let Err(info) = crate::conversations::client::decide(answer, call, approve).await {
                refused.set(Some(info.message));
                sending.set(false);
            }
        });
    };
    view! {
        <div class="tool-section tool-approval">
            <button type="button" class="small approve" prop:disabled=move || sending.get() on:click=move |_| decide(true)>
                {move || i18n.t().tool_approve}
            </button>
            <button type="button" class="small deny" prop:disabled=move || sending.get() on:click=move |_| decide(false)>
                {move || i18n.t().tool_deny}
            </button>
            {move || refused.get().map(|message| view! { <p class="error" role="alert">{message}</p> })}
        </div>
    }
}
