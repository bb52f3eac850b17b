//! Parts of the app that only some people open, fetched the first time one
//! is: the conversation's settings panel, the message editor, and the usage
//! page (a route: `conversations::usage_page::UsageRoute`).
//!
//! With the `split` feature (`./dev` builds with it and `cargo leptos
//! --split`) they are a WebAssembly module of their own, so the chat page is
//! interactive without them; without it they are in the main module, and
//! "loading" one is immediate. The panel and the editor are never in a
//! server-rendered page (both start closed), so nothing hydrates them.
//!
//! One module for all of them, not one each: split modules that share code
//! or a constant (even the string "3") get a shared chunk besides, one more
//! fetch. (The split loader of wasm_split_cli_support 0.2.3 fetches a
//! module while it waits for its chunks; if that fetch fails meanwhile, the
//! page gets an uncaught rejection too, though the load is still reported
//! failed.)
//!
//! As with the Markdown renderer ([`super::markdown_loader`]), the split
//! tool moves code to a part's module only when nothing in the main module
//! reaches it: only the split functions here may name a part's component.
//!
//! A part that cannot be fetched (the network dropped) shows a sentence in
//! its place; opening it again tries again (a failed load is not kept).

use crate::{
    chat::settings_panel::{SettingsPanel, SettingsPanelProps},
    i18n::use_i18n,
};
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use std::future::Future;

use super::{
    markdown_loader::LoadFailed,
    user_turn::{Editor, EditorProps},
};

/// A part, shown once its code is loaded: "Loading…" while it loads, a
/// sentence if it cannot be.
pub fn on_demand(load: impl Future<Output = Result<AnyView, LoadFailed>> + 'static) -> impl IntoView {
    // (The browser's fetch is not `Send`; the page has one thread.)
    let load = SendWrapper::new(load);
    // A boundary of its own, so that the load does not count as pending for
    // one around it (the transcript's keeps the old conversation on screen
    // while a new one loads). The part is made inside it, under the owner
    // its view is built in, so that both are disposed together. "Loading…"
    // shows only after a moment (in CSS): most loads take less.
    let i18n = use_i18n();
    view! {
        <Suspense fallback=move || {
            view! { <p class="state part-loading" role="status">{move || i18n.t().loading_part}</p> }
        }>
            {Suspend::new(async move {
                match load.await {
                    Ok(part) => part,
                    Err(LoadFailed) => {
                        view! { <p class="state error part-failed" role="alert">{move || i18n.t().part_unavailable}</p> }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// Starts fetching the module, so that the part opened next shows at once:
/// called when the pointer or the focus reaches a control that opens one.
/// Once it is here (or when everything is in one module) this does nothing;
/// a failed fetch is not kept, and opening the part tries again.
pub fn preload() {
    #[cfg(all(feature = "hydrate", feature = "split"))]
    leptos::task::spawn_local(async {
        let _ = preload_module().await;
    });
}

/// The settings panel ([`SettingsPanel`]).
pub async fn settings_panel(props: SettingsPanelProps) -> Result<AnyView, LoadFailed> {
    #[cfg(all(feature = "hydrate", feature = "split"))]
    return split_settings_panel(props).await.map_err(|_| LoadFailed);
    #[cfg(not(all(feature = "hydrate", feature = "split")))]
    Ok(SettingsPanel(props).into_any())
}

/// The editor of a user's message ([`Editor`]).
pub async fn editor(props: EditorProps) -> Result<AnyView, LoadFailed> {
    #[cfg(all(feature = "hydrate", feature = "split"))]
    return split_editor(props).await.map_err(|_| LoadFailed);
    #[cfg(not(all(feature = "hydrate", feature = "split")))]
    Ok(Editor(props).into_any())
}

#[cfg(all(feature = "hydrate", feature = "split"))]
#[wasm_split_helpers::wasm_split(on_demand, fallible, preload(preload_module))]
fn split_settings_panel(props: SettingsPanelProps) -> Result<AnyView, wasm_split_helpers::SplitLoaderError> {
    Ok(SettingsPanel(props).into_any())
}

#[cfg(all(feature = "hydrate", feature = "split"))]
#[wasm_split_helpers::wasm_split(on_demand, fallible)]
fn split_editor(props: EditorProps) -> Result<AnyView, wasm_split_helpers::SplitLoaderError> {
    Ok(Editor(props).into_any())
}
