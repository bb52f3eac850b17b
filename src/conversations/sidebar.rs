//! The list of the user's conversations: new chat, switch, rename, delete.

use super::{client, page_path, ConversationSummary};
use crate::{errors::ErrorInfo, i18n::use_i18n, preferences::Preferences};
use leptos::{ev, html, prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

type ListResource = Resource<Result<Vec<ConversationSummary>, ErrorInfo>>;

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
) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <nav class="sidebar" aria-label=move || i18n.t().conversations_label>
            <div class="sidebar-head">
                <span class="brand">"bedrock-chat"</span>
                <a class="new-chat" href="/">{move || i18n.t().new_chat}</a>
            </div>
            <Transition fallback=move || view! { <p class="sidebar-note">{move || i18n.t().loading_conversations}</p> }>
                {move || Suspend::new(async move {
                    match conversations.await {
                        Ok(list) if list.is_empty() => {
                            view! { <p class="sidebar-note">{move || i18n.t().no_conversations}</p> }.into_any()
                        }
                        Ok(list) => view! {
                            <ul class="conversation-list">
                                {list
                                    .into_iter()
                                    .map(|summary| view! {
                                        <ConversationItem summary active list_version editing on_renamed max_title_chars/>
                                    })
                                    .collect_view()}
                            </ul>
                        }
                        .into_any(),
                        Err(info) => view! { <p class="sidebar-note error" role="alert">{info.message}</p> }.into_any(),
                    }
                })}
            </Transition>
            <a class="usage-link" href="/usage">{move || i18n.t().usage_link}</a>
            <Preferences/>
        </nav>
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Showing,
    Renaming,
    ConfirmingDelete,
}

#[component]
fn ConversationItem(
    summary: ConversationSummary,
    active: Signal<Option<String>>,
    list_version: RwSignal<u64>,
    editing: RwSignal<Option<String>>,
    on_renamed: Callback<ConversationSummary>,
    max_title_chars: usize,
) -> impl IntoView {
    let i18n = use_i18n();
    let mode = RwSignal::new(Mode::Showing);
    let id = StoredValue::new(summary.id.clone());
    let mine = move |editing: &Option<String>| id.with_value(|id| editing.as_deref() == Some(id.as_str()));
    let open = move |to: Mode| {
        editing.set(Some(id.get_value()));
        mode.set(to);
    };
    let close = move || {
        mode.set(Mode::Showing);
        editing.update(|editing| {
            if mine(editing) {
                *editing = None;
            }
        });
    };
    // Opening another item's form closes this one's.
    Effect::new(move |_| {
        if !editing.with(mine) && mode.get_untracked() != Mode::Showing {
            mode.set(Mode::Showing);
        }
    });
    // An item removed with its form open must not hold the list's reloads.
    on_cleanup({
        let id = summary.id.clone();
        move || {
            editing.update(|editing| {
                if editing.as_deref() == Some(id.as_str()) {
                    *editing = None;
                }
            })
        }
    });
    // Which mode was just left without a change, so that its button gets the
    // focus back (the form or confirmation that had it is gone).
    let left = StoredValue::new(None::<Mode>);
    let title_input = NodeRef::<html::Input>::new();
    let cancel_button = NodeRef::<html::Button>::new();
    let rename_button = NodeRef::<html::Button>::new();
    let delete_button = NodeRef::<html::Button>::new();
    // `autofocus` only works for the first element of a page to have it, so
    // the form and the confirmation take the focus as they appear: typing
    // goes to the title at once, and Enter on a confirmation cannot delete.
    // (Effects, not `on_load`: these elements mount again each time.)
    Effect::new(move |_| {
        if let Some(input) = title_input.get() {
            let _ = input.focus();
            input.select();
        }
    });
    Effect::new(move |_| {
        if let Some(button) = cancel_button.get() {
            let _ = button.focus();
        }
    });
    for (button, from) in [
        (rename_button, Mode::Renaming),
        (delete_button, Mode::ConfirmingDelete),
    ] {
        Effect::new(move |_| {
            if let Some(button) = button.get() {
                if left.get_value() == Some(from) {
                    left.set_value(None);
                    let _ = button.focus();
                }
            }
        });
    }
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let title = StoredValue::new(summary.title.clone());
    let draft = RwSignal::new(summary.title.clone());
    let is_active = move || active.with(|a| a.as_deref() == Some(id.read_value().as_str()));
    let navigate = use_navigate();
    let refresh = move || list_version.update(|v| *v += 1);

    let save = move || {
        let new_title = draft.get_untracked();
        busy.set(true);
        spawn_local(async move {
            match client::rename(id.get_value(), new_title).await {
                Ok(renamed) => {
                    error.set(None);
                    close();
                    on_renamed.run(renamed);
                    refresh();
                }
                Err(info) => error.set(Some(info.message)),
            }
            busy.set(false);
        });
    };
    let delete = move || {
        busy.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            match client::delete(id.get_value()).await {
                Ok(()) => {
                    if is_active() {
                        navigate("/", Default::default());
                    }
                    close();
                    refresh();
                }
                Err(info) => error.set(Some(info.message)),
            }
            busy.set(false);
        });
    };
    let cancel = move || {
        error.set(None);
        draft.set(title.get_value());
        left.set_value(Some(mode.get_untracked()));
        close();
    };

    let title_text = summary.title.clone();
    view! {
        <li class="conversation" class:active=is_active data-id=summary.id.clone()>
            {move || match mode.get() {
                Mode::Showing => view! {
                    <a
                        class="conversation-link"
                        href=page_path(&id.read_value())
                        aria-current=move || is_active().then_some("page")
                    >
                        {title_text.clone()}
                    </a>
                    <button type="button" class="icon rename" title=move || i18n.t().rename
                        aria-label=move || (i18n.t().rename_label)(&title.read_value())
                        node_ref=rename_button on:click=move |_| open(Mode::Renaming)>"✎"</button>
                    <button type="button" class="icon delete" title=move || i18n.t().delete
                        aria-label=move || (i18n.t().delete_label)(&title.read_value())
                        node_ref=delete_button on:click=move |_| open(Mode::ConfirmingDelete)>"✕"</button>
                }
                .into_any(),
                Mode::Renaming => view! {
                    <form class="rename-form" on:submit=move |ev: ev::SubmitEvent| {
                        ev.prevent_default();
                        save();
                    }>
                        <input
                            type="text"
                            aria-label=move || i18n.t().conversation_title_label
                            maxlength=max_title_chars.to_string()
                            prop:value=move || draft.get()
                            on:input=move |ev| draft.set(event_target_value(&ev))
                            on:keydown=move |ev: ev::KeyboardEvent| if ev.key() == "Escape" { ev.prevent_default(); cancel() }
                            node_ref=title_input
                        />
                        <button type="submit" class="small" disabled=move || busy.get()>{move || i18n.t().save}</button>
                        <button type="button" class="small secondary" on:click=move |_| cancel()>
                            {move || i18n.t().cancel}
                        </button>
                    </form>
                }
                .into_any(),
                Mode::ConfirmingDelete => view! {
                    <div
                        class="confirm"
                        role="alertdialog"
                        aria-label=move || i18n.t().delete_dialog_label
                        on:keydown=move |ev: ev::KeyboardEvent| if ev.key() == "Escape" { ev.prevent_default(); cancel() }
                    >
                        <p>{move || (i18n.t().delete_confirm)(&title.read_value())}</p>
                        <button type="button" class="small danger confirm-delete" disabled=move || busy.get()
                            on:click={
                                let delete = delete.clone();
                                move |_| delete()
                            }>{move || i18n.t().delete}</button>
                        <button type="button" class="small secondary" node_ref=cancel_button on:click=move |_| cancel()>
                            {move || i18n.t().cancel}
                        </button>
                    </div>
                }
                .into_any(),
            }}
            <Show when=move || error.with(Option::is_some)>
                <p class="sidebar-note error" role="alert">{move || error.get().unwrap_or_default()}</p>
            </Show>
        </li>
    }
}
