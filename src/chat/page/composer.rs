//! Where a message is written: the text box, Send (or Stop while an answer
//! is being written), and the length limit.

use super::ChatSession;
use crate::i18n::use_i18n;
use leptos::{ev, prelude::*};

/// What a key press in a message box asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyIntent {
    /// Enter: send the text.
    Send,
    /// Escape: close or stop.
    Cancel,
    /// Anything else, Shift+Enter (a new line) included.
    Type,
}

/// Enter sends and Shift+Enter is a new line; Enter that confirms an IME
/// composition (Korean, Japanese, Chinese) must never send. Used by the
/// composer and by the editor of an earlier message.
pub fn key_intent(ev: &ev::KeyboardEvent) -> KeyIntent {
    let composing = ev.is_composing() || ev.key_code() == 229;
    match ev.key().as_str() {
        "Enter" if !ev.shift_key() && !composing => KeyIntent::Send,
        "Escape" => KeyIntent::Cancel,
        _ => KeyIntent::Type,
    }
}

#[component]
pub fn Composer() -> impl IntoView {
    let i18n = use_i18n();
    let session = expect_context::<ChatSession>();
    let draft = session.draft;
    let too_long = move || session.too_long();
    view! {
        <form class="composer" on:submit=move |ev: ev::SubmitEvent| {
            ev.prevent_default();
            session.send();
        }>
            <textarea
                name="message"
                aria-label=move || i18n.t().message_label
                placeholder=move || i18n.t().message_placeholder
                rows="2"
                prop:value=move || draft.get()
                on:input=move |ev| draft.set(event_target_value(&ev))
                on:keydown=move |ev: ev::KeyboardEvent| {
                    if key_intent(&ev) == KeyIntent::Send {
                        ev.prevent_default();
                        session.send();
                    }
                }
            ></textarea>
            <Show
                when=move || session.streaming.get()
                fallback=move || view! {
                    <button type="submit" class="send" disabled=move || !session.can_send()>{move || i18n.t().send}</button>
                }
            >
                <button type="button" class="stop" on:click=move |_| session.stop()>{move || i18n.t().stop}</button>
            </Show>
            <Show when=too_long>
                <p class="limit" role="alert">
                    {move || (i18n.t().too_long)(session.draft_chars.get(), session.max_chars)}
                </p>
            </Show>
        </form>
    }
}
