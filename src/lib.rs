//! bedrock-chat: chat with Amazon Bedrock models in the browser, each answer
//! streamed onto the page as the model generates it.
//!
//! The crate is built twice by cargo-leptos:
//!
//! * with `ssr` as the server binary: axum serves the server-rendered page,
//!   the SSE chat endpoints, and talks to Bedrock through
//!   `aws-sdk-bedrockruntime` (or to the built-in simulator when no AWS
//!   credentials are configured);
//! * with `hydrate` as WebAssembly: the page becomes interactive and reads the
//!   answer stream with `fetch`.
//!
//! Layers, top to bottom; each uses only those below it (the HTTP layer is
//! the only one that knows HTTP, the Bedrock layer the only one that knows
//! Bedrock's wire types):
//!
//! | module      | side    | what it owns                                                  |
//! |-------------|---------|---------------------------------------------------------------|
//! | [`app`]     | both    | the HTML shell and routes                                     |
//! | [`server`]  | server  | HTTP: router, extractors, identity, limits, defences, the handlers |
//! | [`chat`]    | both    | answers: the stream's wire types, generations, the instances' shared log, the chat page |
//! | [`conversations`] | both | stored conversations: ids, owners, the store, the sidebar |
//! | [`bedrock`] | server  | ConverseStream, SDK errors, our typed deltas; the simulator   |
//! | [`settings`] | server | layered configuration: defaults, file, environment            |
//! | [`errors`]  | both    | error codes (with their statuses) and `ErrorInfo`             |
//! | [`sse`]     | both    | the SSE wire format: encoding (server) and parsing (browser)  |
//! | [`markdown`] | both   | answers as safe HTML, rendered whole or block by block as they stream |
//! | [`i18n`]    | both    | the UI's words in English and Korean; the request's locale    |
//! | [`preferences`] | both | the language and colour-theme switches                      |
//! | [`early_input`] | both | clicks and Enter made before hydration, held and replayed    |
//! | [`telemetry`] | server | the metrics every layer records, and their one recorder     |

// The chat page's statically typed view tree is deep; the release WASM build
// needs more than the default 128 levels to compute its layout.
#![recursion_limit = "256"]

pub mod app;
pub mod chat;
pub mod conversations;
pub mod early_input;
pub mod errors;
pub mod i18n;
pub mod markdown;
pub mod preferences;
pub mod sse;
pub mod tools;

#[cfg(feature = "ssr")]
pub mod bedrock;
#[cfg(feature = "ssr")]
pub mod clock;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod settings;
#[cfg(feature = "ssr")]
pub mod telemetry;

/// Entry point of the WebAssembly bundle: attaches the Leptos app to the
/// server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    use app::{App, PageConfig};
    use leptos::prelude::*;

    console_error_panic_hook::set_once();
    early_input::started();
    let page = PageConfig::from_document();
    // Asynchronous, so that a route whose code is fetched when it is opened
    // (the usage page) is fetched before its part of the page is hydrated.
    // (Leptos's executor is set up by `hydrate_from_async`, inside the task.)
    wasm_bindgen_futures::spawn_local(async move {
        if !conversations::usage_page::hydrating_can_start(&page).await {
            return;
        }
        let body = document().body().expect("the page has a body");
        let app = leptos::mount::hydrate_from_async(body, move || view! { <App page/> }).await;
        app.forget();
        early_input::release();
        // Hydrating did not need the Markdown renderer; the first answer will.
        chat::page::markdown_loader::preload();
    });
}
