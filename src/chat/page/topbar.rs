//! The bar above the transcript: the conversation's title, what its answers
//! used and cost, the model picker, the settings switch and, offline, the
//! demo badge. On phones it is one row: the menu button (which opens the
//! conversation drawer, where Settings then lives), the title, a compact
//! model picker and the badge.

use super::{on_demand, ChatSession};
use crate::{
    app::PageConfig,
    conversations::{format_cost, sidebar::DRAWER_ID},
    i18n::use_i18n,
};
use leptos::prelude::*;

#[component]
pub fn TopBar(page: PageConfig, settings_open: RwSignal<bool>) -> impl IntoView {
    let i18n = use_i18n();
    let session = expect_context::<ChatSession>();
    let conversation = session.conversation;
    let default_model = page.default_model.clone();
    view! {
        <header class="topbar">
            // Phones only (the style sheet hides it on wider screens). A
            // popover button: it works before the page has hydrated.
            <button
                type="button"
                class="icon menu-toggle"
                popovertarget=DRAWER_ID
                aria-label=move || i18n.t().open_menu
                title=move || i18n.t().open_menu
            >
                <span aria-hidden="true">"☰"</span>
            </button>
            <h1 class="conversation-title">
                // `show` sets the title when the transcript renders, after
                // this header: until then (on the server, while hydrating)
                // the header names the conversation as loaded.
                <Transition fallback=move || i18n.t().new_chat>
                    {move || Suspend::new(async move {
                        let loaded = match &*conversation.by_ref().await {
                            Ok(Some(found)) => Some(found.summary.title.clone()),
                            _ => None,
                        };
                        move || {
                            session
                                .title
                                .get()
                                .or_else(|| loaded.clone())
                                .unwrap_or_else(|| i18n.t().new_chat.to_owned())
                        }
                    })}
                </Transition>
            </h1>
            {move || {
                session.totals().map(|(tokens, cost)| {
                    let cost = cost.map(|nanos| format_cost(nanos, &session.currency.read_value()));
                    view! {
                        <span class="conversation-total" title=move || i18n.t().usage_title>
                            {(i18n.t().conversation_total)(tokens, cost.as_deref())}
                        </span>
                    }
                })
            }}
            <label class="model-picker">
                <span class="visually-hidden">{move || i18n.t().model_label}</span>
                <select
                    aria-label=move || i18n.t().model_label
                    on:change=move |ev| session.pick_model(event_target_value(&ev))
                    prop:value=move || session.model.get()
                >
                    {page
                        .models
                        .into_iter()
                        .map(|m| {
                            let selected = m.id == default_model;
                            view! { <option value=m.id selected=selected>{m.label}</option> }
                        })
                        .collect_view()}
                </select>
            </label>
            <button
                type="button"
                class="small settings-toggle"
                aria-expanded=move || settings_open.get().to_string()
                aria-controls="conversation-settings"
                on:click=move |_| settings_open.update(|open| *open = !*open)
                on:pointerenter=move |_| on_demand::preload()
                on:focus=move |_| on_demand::preload()
            >
                {move || i18n.t().settings}
            </button>
            {page.demo.then(|| view! {
                <span class="badge demo" title=move || i18n.t().demo_title>
                    {move || i18n.t().demo_badge}
                </span>
            })}
        </header>
    }
}
