//! A user message: its text, the editor that rewrites it, and its footer
//! (Edit, or "not sent" when it was refused before it was stored).

use super::{
    composer::{key_intent, KeyIntent},
    on_demand,
    turn::Turn,
    ChatSession,
};
use crate::{conversations::MessageStatus, i18n::use_i18n};
use leptos::{ev, html, prelude::*};

/// A user message: its text, or the editor that rewrites it.
#[component]
pub fn UserText(turn: Turn, initial: Option<String>) -> impl IntoView {
    let session = expect_context::<ChatSession>();
    let open = move || session.editing_turn.get() == Some(turn.id);
    view! {
        // The text stays in the page (hidden) while the editor is open, so
        // its node is still there if the edit is cancelled.
        <div class="user-text" class:editing=open>
            <div class="text" node_ref=turn.body>{initial}</div>
        </div>
        <Show when=open>
            {on_demand::on_demand(on_demand::editor(EditorProps::builder().turn(turn).build()))}
        </Show>
    }
}

/// Rewrites an earlier message; sending replaces it and every turn after it.
/// Fetched when first opened ([`on_demand`]).
#[component]
pub fn Editor(turn: Turn) -> impl IntoView {
    let i18n = use_i18n();
    let session = expect_context::<ChatSession>();
    // The text as the page shows it: a message opened with the page has
    // it only there (`Turn::text_on_page`).
    let shown = turn.body.get_untracked().and_then(|body| body.text_content());
    let draft = RwSignal::new(shown.unwrap_or_else(|| turn.text.get_value()));
    // The editor opens with the caret in it, at the end of the text (an
    // offset past the end is the end). In the next frame: fetched on demand,
    // it is built before it is put in the document, which cannot focus it.
    let field = NodeRef::<html::Textarea>::new();
    Effect::new(move |_| {
        if let Some(field) = field.get() {
            request_animation_frame(move || {
                let _ = field.focus();
                let _ = field.set_selection_range(u32::MAX, u32::MAX);
            });
        }
    });
    let close = move || {
        session.editing_turn.set(None);
        session.edit_error.set(None);
    };
    let submit = move || session.resend(turn, draft.get_untracked());
    view! {
        <form class="edit-form" on:submit=move |ev: ev::SubmitEvent| {
            ev.prevent_default();
            submit();
        }>
            <textarea
                node_ref=field
                aria-label=move || i18n.t().edit_label
                rows="3"
                prop:value=move || draft.get()
                on:input=move |ev| draft.set(event_target_value(&ev))
                on:keydown=move |ev: ev::KeyboardEvent| match key_intent(&ev) {
                    KeyIntent::Send => {
                        ev.prevent_default();
                        submit();
                    }
                    // Marked handled, so the page's Esc does not also stop
                    // an answer.
                    KeyIntent::Cancel => {
                        ev.prevent_default();
                        close();
                    }
                    KeyIntent::Type => {}
                }
            ></textarea>
            <p class="edit-note">{move || i18n.t().edit_note}</p>
            {move || session.edit_error.get().map(|message| view! { <p class="state error" role="alert">{message}</p> })}
            <div class="edit-actions">
                <button
                    type="submit"
                    class="small save-edit"
                    // (A page-wide signal: it can change while the editor
                    // is being disposed, when `try_` gives up quietly.)
                    disabled=move || session.streaming.get() || draft.try_with(|d| d.trim().is_empty()).unwrap_or(true)
                >
                    {move || i18n.t().send}
                </button>
                <button type="button" class="small cancel-edit" on:click=move |_| close()>
                    {move || i18n.t().cancel}
                </button>
            </div>
        </form>
    }
}

/// A user message refused before it was stored says so; a stored one can
/// be edited while no answer is being written.
#[component]
pub fn UserFooter(turn: Turn) -> impl IntoView {
    let i18n = use_i18n();
    let session = expect_context::<ChatSession>();
    let edit_button = move || {
        // This reacts to page-wide signals too, which can change while the
        // turn is being disposed (another conversation loading): `try_`
        // reads give up quietly then.
        let status = turn.status.try_get()?;
        let can_edit = !session.streaming.get()
            && session.editing_turn.get() != Some(turn.id)
            && status != MessageStatus::Error
            && turn.message_id.try_with_value(Option::is_some)?;
        can_edit.then(|| {
            view! {
                <button
                    type="button"
                    class="small edit-message"
                    on:pointerenter=move |_| on_demand::preload()
                    on:focus=move |_| on_demand::preload()
                    aria-label=move || i18n.t().edit_label
                    on:click=move |_| {
                        session.edit_error.set(None);
                        session.editing_turn.set(Some(turn.id));
                    }
                >
                    {move || i18n.t().edit}
                </button>
            }
        })
    };
    view! {
        {move || {
            (turn.status.get() == MessageStatus::Error).then(|| {
                view! { <p class="state error">{move || i18n.t().not_sent}</p> }
            })
        }}
        {edit_button}
    }
}
