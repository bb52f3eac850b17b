//! One conversation in the sidebar's list: its link, and its rename form or
//! delete confirmation when open. The keyboard focus is never dropped on the
//! page: opening a form moves it in, leaving one without a change moves it
//! back to the button that opened it, and after a rename or a delete it goes
//! to the renamed item or the next one once the list has been reloaded.

use super::{
    client, page_path,
    sidebar::{FocusAfter, FocusTarget},
    ConversationSummary,
};
use crate::i18n::use_i18n;
use leptos::{ev, html, prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Showing,
    Renaming,
    ConfirmingDelete,
}

#[component]
pub fn ConversationItem(
    summary: ConversationSummary,
    active: Signal<Option<String>>,
    list_version: RwSignal<u64>,
    editing: RwSignal<Option<String>>,
    on_renamed: Callback<ConversationSummary>,
    max_title_chars: usize,
    /// Where the focus goes after the next reload, shared by the list.
    focus_after: RwSignal<FocusAfter>,
    /// The `list_version` of the reload that rendered this item.
    rendered_at: u64,
    /// The conversation that gets the focus if this one is deleted.
    neighbour: Option<String>,
    /// Called when a delete leaves the list empty.
    on_emptied: Callback<()>,
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
    let link = NodeRef::<html::A>::new();
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
    // The focus a rename or delete asked for, once this item is of the
    // reloaded list (the one that had it is gone).
    Effect::new(move |_| {
        let Some((at, target)) = focus_after.get() else {
            return;
        };
        if rendered_at < at {
            return;
        }
        let focused = id.with_value(|id| match &target {
            FocusTarget::Rename(it) if it == id => rename_button.get().map(|b| b.focus()),
            FocusTarget::Link(it) if it == id => link.get().map(|a| a.focus()),
            _ => None,
        });
        if focused.is_some() {
            focus_after.set(None);
        }
    });
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let title = StoredValue::new(summary.title.clone());
    let draft = RwSignal::new(summary.title.clone());
    let is_active = move || active.with(|a| a.as_deref() == Some(id.read_value().as_str()));
    let navigate = use_navigate();
    // Reloads the list; the item of the new list named by `then` gets the focus.
    let refresh = move |then: Option<FocusTarget>| {
        list_version.update(|v| *v += 1);
        focus_after.set(then.map(|target| (list_version.get_untracked(), target)));
    };

    let save = move || {
        let new_title = draft.get_untracked();
        busy.set(true);
        spawn_local(async move {
            match client::rename(id.get_value(), new_title).await {
                Ok(renamed) => {
                    error.set(None);
                    close();
                    on_renamed.run(renamed);
                    refresh(Some(FocusTarget::Rename(id.get_value())));
                }
                Err(info) => error.set(Some(info.message)),
            }
            busy.set(false);
        });
    };
    let delete = move || {
        busy.set(true);
        let navigate = navigate.clone();
        let neighbour = neighbour.clone();
        spawn_local(async move {
            match client::delete(id.get_value()).await {
                Ok(()) => {
                    if is_active() {
                        navigate("/", Default::default());
                    }
                    close();
                    match neighbour {
                        Some(next) => refresh(Some(FocusTarget::Link(next))),
                        None => {
                            refresh(None);
                            on_emptied.run(());
                        }
                    }
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
                        node_ref=link
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
