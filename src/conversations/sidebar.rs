//! The list of the user's conversations: new chat, switch, rename, delete;
//! the usage page, and the language and theme switches.
//!
//! On a wide screen it is a column beside the chat. Below 720 px it is a
//! drawer over the chat, opened by the top bar's menu button and holding the
//! Settings switch too, so that the transcript gets the screen. The drawer
//! is an HTML popover: it opens, closes on Esc or a tap outside, and gives
//! the focus back to the menu button without any script, so it works before
//! the page has hydrated.

use super::{conversation_item::ConversationItem, ConversationSummary};
use crate::{chat::page::on_demand, errors::ErrorInfo, i18n::use_i18n, preferences::Preferences};
use leptos::{ev, html, prelude::*};
use wasm_bindgen::JsCast;

type ListResource = Resource<Result<Vec<ConversationSummary>, ErrorInfo>>;

/// The id of the sidebar, which is the drawer on phones.
pub const DRAWER_ID: &str = "conversation-drawer";

/// Where the keyboard focus goes once the list has been reloaded after a
/// change, since the reload replaces the element that had it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FocusTarget {
    /// A conversation's Rename button (after a rename: where the user was).
    Rename(String),
    /// A conversation's link (after a delete: the next conversation).
    Link(String),
}

/// A [`FocusTarget`] for the list of this version (`list_version`) or later.
pub type FocusAfter = Option<(u64, FocusTarget)>;

#[component]
pub fn Sidebar(
    conversations: ListResource,
    /// The conversation on screen.
    active: Signal<Option<String>>,
    /// Bumped to reload the list.
    list_version: RwSignal<u64>,
    /// The conversation whose rename form or delete confirmation is open, if
    /// any. One at a time; the page holds reloads of the list while it is
    /// open, since a reload renders the items anew and would close it.
    editing: RwSignal<Option<String>>,
    /// Told of every rename, so that the page can retitle the conversation on screen.
    on_renamed: Callback<ConversationSummary>,
    max_title_chars: usize,
    /// The conversation settings panel, which the drawer opens on phones.
    settings_open: RwSignal<bool>,
) -> impl IntoView {
    let i18n = use_i18n();
    let focus_after = RwSignal::new(FocusAfter::None);
    let new_chat = NodeRef::<html::A>::new();
    // A delete that leaves no conversation sends the focus to New chat,
    // which a reload does not replace.
    let on_emptied = Callback::new(move |()| {
        if let Some(link) = new_chat.get_untracked() {
            let _ = link.focus();
        }
    });
    view! {
        <nav
            class="sidebar"
            id=DRAWER_ID
            popover="auto"
            aria-label=move || i18n.t().conversations_label
            // Following a link closes the drawer: the chat is what the user asked for.
            on:click=move |ev: ev::MouseEvent| {
                let on_link = ev
                    .target()
                    .and_then(|target| target.dyn_into::<web_sys::Element>().ok())
                    .and_then(|el| el.closest("a").ok().flatten())
                    .is_some();
                if on_link {
                    close_drawer();
                }
            }
        >
            <div class="sidebar-head">
                <span class="brand">"bedrock-chat"</span>
                <a class="new-chat" href="/" node_ref=new_chat>{move || i18n.t().new_chat}</a>
                <button
                    type="button"
                    class="icon drawer-close"
                    popovertarget=DRAWER_ID
                    popovertargetaction="hide"
                    aria-label=move || i18n.t().close_menu
                    title=move || i18n.t().close_menu
                >
                    "✕"
                </button>
            </div>
            <Transition fallback=move || view! { <p class="sidebar-note">{move || i18n.t().loading_conversations}</p> }>
                {move || Suspend::new(async move {
                    let listed = conversations.await;
                    // Items know which reload made them, for `focus_after`.
                    let rendered_at = list_version.get_untracked();
                    match listed {
                        Ok(list) if list.is_empty() => {
                            view! { <p class="sidebar-note">{move || i18n.t().no_conversations}</p> }.into_any()
                        }
                        Ok(list) => {
                            let ids: Vec<String> = list.iter().map(|s| s.id.clone()).collect();
                            view! {
                                <ul class="conversation-list">
                                    {list
                                        .into_iter()
                                        .enumerate()
                                        .map(|(index, summary)| {
                                            // Where the focus goes if this one is deleted.
                                            let neighbour = ids
                                                .get(index + 1)
                                                .or_else(|| index.checked_sub(1).and_then(|i| ids.get(i)))
                                                .cloned();
                                            view! {
                                                <ConversationItem
                                                    summary active list_version editing on_renamed max_title_chars
                                                    focus_after rendered_at neighbour on_emptied
                                                />
                                            }
                                        })
                                        .collect_view()}
                                </ul>
                            }
                            .into_any()
                        }
                        Err(info) => view! { <p class="sidebar-note error" role="alert">{info.message}</p> }.into_any(),
                    }
                })}
            </Transition>
            // On phones the top bar has no room for Settings: it lives here.
            <button
                type="button"
                class="drawer-settings"
                aria-controls="conversation-settings"
                aria-expanded=move || settings_open.get().to_string()
                on:click=move |_| {
                    close_drawer();
                    settings_open.update(|open| *open = !*open);
                }
                on:pointerenter=move |_| on_demand::preload()
                on:focus=move |_| on_demand::preload()
            >
                {move || i18n.t().settings}
            </button>
            <a
                class="usage-link"
                href=super::usage_page::USAGE_PATH
                on:pointerenter=move |_| on_demand::preload()
                on:focus=move |_| on_demand::preload()
            >
                {move || i18n.t().usage_link}
            </a>
            <Preferences/>
        </nav>
    }
}

/// The drawer element, when it is open (only ever on phones).
fn open_drawer() -> Option<web_sys::HtmlElement> {
    document()
        .get_element_by_id(DRAWER_ID)
        .filter(|el| el.matches(":popover-open").unwrap_or(false))
        .and_then(|el| el.dyn_into().ok())
}

/// Whether the conversation drawer is open. Browser only.
pub fn drawer_is_open() -> bool {
    open_drawer().is_some()
}

/// Closes the conversation drawer if it is open. Browser only.
pub fn close_drawer() {
    if let Some(drawer) = open_drawer() {
        let _ = drawer.hide_popover();
    }
}
