//! The HTML shell and the routes, shared by server rendering and hydration.

use crate::{
    chat::{page::ChatPage, ModelOption},
    conversations::usage_page::UsageRoute,
    early_input::EARLY_INPUT_SCRIPT,
    i18n::{use_i18n, I18n, Locale},
    preferences::THEME_SCRIPT,
};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Outlet, ParentRoute, Route, Router, Routes},
    path, Lazy, SsrMode,
};
use serde::{Deserialize, Serialize};

/// What the page needs to know about the server's configuration. The server
/// renders it into the shell as JSON so that hydration sees the same values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageConfig {
    pub models: Vec<ModelOption>,
    pub default_model: String,
    /// Answers come from the built-in simulator, not from Bedrock.
    pub demo: bool,
    pub max_message_chars: usize,
    pub max_title_chars: usize,
    /// What a conversation gets when it sets nothing of its own: the
    /// settings panel shows them as placeholders.
    pub default_system_prompt: String,
    pub default_temperature: f32,
    pub default_max_tokens: i32,
    pub max_output_tokens: u32,
    pub max_system_prompt_chars: usize,
    /// The tools the operator offers, and those a new conversation starts with.
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub tools_on_by_default: Vec<String>,
    /// The thinking budget a conversation that turns thinking on starts with.
    #[serde(default)]
    pub default_thinking_budget: u32,
    /// The language of the UI, chosen by the server for this request (see
    /// [`crate::i18n::from_request`]).
    #[serde(default)]
    pub locale: Locale,
    /// The currency of answers' costs (`[pricing]`).
    #[serde(default)]
    pub currency: String,
}

const PAGE_CONFIG_ID: &str = "page-config";

impl PageConfig {
    /// JSON safe to place inside `<script>`: `<` is escaped so no value can
    /// close the element.
    fn to_script_json(&self) -> String {
        serde_json::to_string(self)
            .expect("page config serialises")
            .replace('<', "\\u003c")
    }

    /// Reads the configuration the server rendered into the page.
    #[cfg(feature = "hydrate")]
    pub fn from_document() -> Self {
        let text = document()
            .get_element_by_id(PAGE_CONFIG_ID)
            .and_then(|el| el.text_content())
            .unwrap_or_default();
        serde_json::from_str(&text).expect("the server renders a valid page config")
    }
}

pub fn shell(options: LeptosOptions, page: PageConfig) -> impl IntoView {
    #[cfg(feature = "ssr")]
    content_security_policy(&options);
    let config_json = page.to_script_json();
    let lang = page.locale.code();
    view! {
        <!DOCTYPE html>
        <html lang=lang>
            <head>
                <meta charset="utf-8"/>
                // `resizes-content`: the on-screen keyboard shrinks the layout, so the
                // composer (at the bottom of a full-height page) stays above it.
                <meta name="viewport" content="width=device-width, initial-scale=1, interactive-widget=resizes-content"/>
                <meta name="color-scheme" content="light dark"/>
                // The stored colour theme, applied before the first paint.
                <script inner_html=THEME_SCRIPT></script>
                // Clicks and Enter made before the app is interactive are held
                // and replayed after hydration.
                <script inner_html=EARLY_INPUT_SCRIPT></script>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <script type="application/json" id=PAGE_CONFIG_ID inner_html=config_json></script>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App page/>
            </body>
        </html>
    }
}

/// Sends this page's Content-Security-Policy, naming the nonce Leptos puts
/// on the scripts it writes for this response.
#[cfg(feature = "ssr")]
fn content_security_policy(options: &LeptosOptions) {
    use axum::http::{header::CONTENT_SECURITY_POLICY, HeaderValue};
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    let reload = std::env::var_os("LEPTOS_WATCH").map(|_| options.reload_port);
    let policy = crate::server::protect::page_policy(&nonce.to_string(), reload);
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.insert_header(CONTENT_SECURITY_POLICY, value);
    }
}

#[component]
pub fn App(page: PageConfig) -> impl IntoView {
    provide_meta_context();
    I18n::provide(page.locale);
    provide_context(page.clone());
    view! {
        <Stylesheet id="leptos" href="/pkg/bedrock-chat.css"/>
        <Title text="bedrock-chat"/>
        <Router>
            <Routes fallback=|| {
                let i18n = use_i18n();
                view! { <p class="not-found">{move || i18n.t().not_found}</p> }
            }>
                // One page for a new chat (`/`) and each conversation
                // (`/c/{id}`): moving between them keeps it mounted, and it
                // reads the conversation id from the URL.
                // Rendered whole once the conversation is loaded (not
                // streamed), so a missing one answers with a real 404 status.
                // Its code is fetched when it is opened (`UsageRoute`).
                <Route path=path!("usage") view={Lazy::<UsageRoute>::new()} ssr=SsrMode::Async/>
                <ParentRoute path=path!("") view=move || view! { <ChatPage page=page.clone()/><Outlet/> } ssr=SsrMode::Async>
                    <Route path=path!("") view=|| () ssr=SsrMode::Async/>
                    <Route path=path!("c/:id") view=|| () ssr=SsrMode::Async/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_config_json_cannot_close_its_script_element() {
        let page = PageConfig {
            models: vec![ModelOption {
                id: "m".into(),
                label: "</script><script>alert(1)</script>".into(),
                reasoning: false,
            }],
            default_model: "m".into(),
            demo: true,
            max_message_chars: 10,
            max_title_chars: 10,
            default_system_prompt: "</script>".into(),
            default_temperature: 0.5,
            default_max_tokens: 100,
            max_output_tokens: 200,
            max_system_prompt_chars: 1000,
            tools: Vec::new(),
            tools_on_by_default: Vec::new(),
            default_thinking_budget: 2048,
            locale: Locale::Ko,
            currency: "USD".into(),
        };
        let json = page.to_script_json();
        assert!(!json.contains('<'), "{json}");
        let back: PageConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, page);
    }
}
