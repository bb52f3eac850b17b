//! The chat page: the list of conversations, a transcript that grows as the
//! answer streams, and a composer.
//!
//! The page stays mounted while the URL moves between `/` (a new chat) and
//! `/c/{id}`: the routes are children of this component, so switching
//! conversations swaps the transcript without reloading the page, and a new
//! conversation's URL is set the moment the server names it, without
//! interrupting its answer.
//!
//! | module            | what it shows or owns                                    |
//! |-------------------|----------------------------------------------------------|
//! | [`session`]       | the page's state and operations ([`ChatSession`])        |
//! | [`turn`]          | one message; a streaming answer drawn block by block      |
//! | [`topbar`]        | title, model picker, settings switch, demo badge          |
//! | [`transcript`]    | the scrolling list of turns                               |
//! | [`earlier`]       | Show earlier messages, above a long conversation's turns  |
//! | [`markdown_loader`] | the Markdown renderer, a module loaded on demand        |
//! | [`on_demand`]     | the settings panel and the editor, modules loaded when opened |
//! | [`hydration_data`] | the conversation as the page carries it, without the text its HTML shows |
//! | [`user_turn`]     | a user message, its editor and Edit button                |
//! | [`answer_footer`] | an answer's state, usage, Retry and Regenerate            |
//! | [`composer`]      | the message box, Send and Stop; Enter and IME handling    |

mod answer_footer;
mod answer_parts;
mod composer;
mod earlier;
mod hydration_data;
pub mod markdown_loader;
pub mod on_demand;
mod session;
mod tool_card;
mod topbar;
mod transcript;
mod turn;
mod user_turn;

pub use session::ChatSession;

use super::settings_panel::SettingsPanelProps;
use crate::{
    app::PageConfig,
    conversations::sidebar::{drawer_is_open, Sidebar},
};
use composer::Composer;
use leptos::{ev, prelude::*};
use topbar::TopBar;
use transcript::TranscriptPane;

#[component]
pub fn ChatPage(page: PageConfig) -> impl IntoView {
    let session = ChatSession::new(&page);
    provide_context(session);
    let i18n = crate::i18n::use_i18n();
    let settings_open = RwSignal::new(false);
    // Set once the page is interactive; end-to-end tests wait for it.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    // Esc stops the answer wherever the focus is (the composer, a button
    // just clicked, nothing). An open editor uses Esc to close itself and
    // marks the event handled.
    Effect::new(move |_| {
        let handle = window_event_listener(ev::keydown, move |ev| {
            // (Esc with the phone's drawer open closes the drawer only.)
            if ev.key() == "Escape"
                && !ev.default_prevented()
                && session.streaming.get_untracked()
                && !drawer_is_open()
            {
                session.stop();
            }
        });
        on_cleanup(move || handle.remove());
    });
    // The tab shows the conversation's title. Set from the browser only:
    // server rendering would put the user's text into <head> unescaped.
    Effect::new(move |_| {
        let title = match session.title.get() {
            Some(t) => format!("{t} · bedrock-chat"),
            None => "bedrock-chat".to_owned(),
        };
        document().set_title(&title);
    });
    let on_renamed = Callback::new(move |summary| session.renamed(summary));
    let panel_page = page.clone();
    view! {
        <div class="layout">
            // Highlighted by URL, which the server knows before anything loads.
            <Sidebar
                conversations=session.conversations
                active=session.route_id.into()
                list_version=session.list_version
                editing=session.list_editing
                on_renamed
                max_title_chars=page.max_title_chars
                settings_open
            />
            <main class="chat" data-hydrated=move || hydrated.get().to_string()>
                <p class="visually-hidden" role="status" aria-live="polite" data-testid="announcer">
                    {move || session.announcement.get()}
                </p>
                // The accessible name of every code block's Copy button.
                <span id=crate::markdown::COPY_LABEL_ID hidden>{move || i18n.t().copy_code}</span>
                <TopBar page=page.clone() settings_open/>
                <Show when=markdown_loader::failed>
                    <p class="formatting-failed" role="alert">{move || i18n.t().formatting_unavailable}</p>
                </Show>
                <Show when=move || settings_open.get()>
                    {on_demand::on_demand(on_demand::settings_panel(
                        SettingsPanelProps::builder()
                            .page(panel_page.clone())
                            .settings(session.settings)
                            .conversation(session.on_screen.into())
                            .model(session.model)
                            .open(settings_open)
                            .build(),
                    ))}
                </Show>
                <TranscriptPane/>
                <Composer/>
            </main>
        </div>
    }
}
