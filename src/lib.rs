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
//! Layers, each knowing nothing of the one below its neighbour:
//!
//! | module      | side    | what it owns                                                  |
//! |-------------|---------|---------------------------------------------------------------|
//! | [`bedrock`] | server  | ConverseStream, SDK errors, our typed deltas; the simulator   |
//! | [`server`]  | server  | axum router, settings, validation, the SSE endpoints          |
//! | [`sse`]     | both    | the SSE wire format: encoding (server) and parsing (browser)  |
//! | [`chat`]    | both    | the chat wire types, the chat page, and its stream client     |
//! | [`conversations`] | both | stored conversations: store, owners, API, sidebar        |
//! | [`app`]     | both    | the HTML shell and routes                                     |
//! | [`markdown`] | both   | answers as safe HTML, rendered whole or block by block as they stream |
//! | [`i18n`]    | both    | the UI's words in English and Korean; the request's locale    |
//! | [`preferences`] | both | the language and colour-theme switches                      |

// The chat page's statically typed view tree is deep; the release WASM build
// needs more than the default 128 levels to compute its layout.
#![recursion_limit = "256"]

pub mod app;
pub mod chat;
pub mod conversations;
pub mod errors;
pub mod i18n;
pub mod markdown;
pub mod preferences;
pub mod sse;

#[cfg(feature = "ssr")]
pub mod bedrock;
#[cfg(feature = "ssr")]
pub mod clock;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod settings;

/// Entry point of the WebAssembly bundle: attaches the Leptos app to the
/// server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    use app::{App, PageConfig};
    use leptos::prelude::*;

    console_error_panic_hook::set_once();
    let page = PageConfig::from_document();
    leptos::mount::hydrate_body(move || view! { <App page/> });
}
