//! The transcript: the turns of the conversation on screen, kept pinned to
//! the newest text while it grows, with a button back to it once the user
//! has scrolled away.
//!
//! It is a keyed list, so adding a turn never re-renders earlier ones. User
//! messages are inserted as text; model output only as the markdown
//! module's escaped, sanitised HTML.

use super::{
    answer_footer::AnswerFooter,
    answer_parts::AnswerParts,
    turn::Turn,
    user_turn::{UserFooter, UserText},
    ChatSession,
};
use crate::{
    chat::{clipboard, ErrorInfo, Role},
    i18n::{use_i18n, Strings},
};
use leptos::{html, prelude::*};

/// How far above the newest text (in CSS pixels) counts as "scrolled up".
const JUMP_THRESHOLD_PX: i32 = 80;

/// The scrolling box around the transcript, which loads the conversation
/// named by the URL.
#[component]
pub fn TranscriptPane() -> impl IntoView {
    let i18n = use_i18n();
    let session = expect_context::<ChatSession>();
    let conversation = session.conversation;
    let turns = session.turns;
    let transcript = NodeRef::<html::Section>::new();
    let scrolled_up = RwSignal::new(false);
    view! {
        // column-reverse keeps the view pinned to the newest text while it
        // grows, with no script, and leaves it alone once the user scrolls up.
        <div class="transcript-wrap">
            <section
                class="transcript"
                aria-label=move || i18n.t().transcript_label
                node_ref=transcript
                on:click=move |ev| clipboard::copy_code_on_click(&ev)
                on:scroll=move |_| {
                    // In a column-reverse box, 0 is the bottom and scrolling
                    // up goes negative.
                    if let Some(el) = transcript.get_untracked() {
                        scrolled_up.set(el.scroll_top() < -JUMP_THRESHOLD_PX);
                    }
                }
            >
                <div class="transcript-inner">
                    <Transition fallback=move || view! { <p class="loading">{move || i18n.t().loading_conversation}</p> }>
                        {move || Suspend::new(async move {
                            let error = session.show(conversation.await);
                            view! { <Transcript turns error/> }
                        })}
                    </Transition>
                </div>
            </section>
            <Show when=move || scrolled_up.get()>
                <button
                    type="button"
                    class="jump-to-latest"
                    on:click=move |_| {
                        if let Some(el) = transcript.get_untracked() {
                            el.set_scroll_top(0);
                        }
                        scrolled_up.set(false);
                    }
                >
                    {move || i18n.t().jump_to_latest}
                </button>
            </Show>
        </div>
    }
}

/// The turns on screen, or why the conversation could not be shown.
#[component]
fn Transcript(turns: RwSignal<Vec<Turn>>, error: Option<ErrorInfo>) -> impl IntoView {
    let i18n = use_i18n();
    let has_error = error.is_some();
    view! {
        // Until a message sent from here starts a new conversation.
        <Show when=move || turns.with(Vec::is_empty)>
            {error.clone().map(|info| view! {
                <div class="load-error" role="alert">
                    <p>{info.message}</p>
                    <a href="/">{move || i18n.t().start_new_chat}</a>
                </div>
            })}
        </Show>
        <Show when=move || !has_error && turns.with(Vec::is_empty)>
            <p class="empty-state">{move || i18n.t().empty_state}</p>
        </Show>
        <For each=move || turns.get() key=|turn| turn.id children=move |turn| view! { <TurnView turn/> }/>
    }
}

#[component]
fn TurnView(turn: Turn) -> impl IntoView {
    let i18n = use_i18n();
    let (class, who): (_, fn(&Strings) -> &'static str) = match turn.role {
        Role::User => ("turn user", |t| t.you),
        Role::Assistant => ("turn assistant", |t| t.assistant),
    };
    let body = match turn.role {
        // The answer's parts: Markdown text, thinking, tool cards.
        Role::Assistant => view! { <AnswerParts parts=turn.parts/> }.into_any(),
        // The user's own words, as text. An empty text is left out rather
        // than rendered: server rendering writes an empty text node as a space.
        Role::User => {
            let initial = Some(turn.text.get_value()).filter(|text| !text.is_empty());
            view! { <UserText turn initial/> }.into_any()
        }
    };
    view! {
        <article class=class data-status=move || turn.status.get().as_str()>
            <div class="who">{move || who(i18n.t())}</div>
            {body}
            {match turn.role {
                Role::Assistant => view! { <AnswerFooter turn/> }.into_any(),
                Role::User => view! { <UserFooter turn/> }.into_any(),
            }}
        </article>
    }
}
