//! The HTTP layer: assembles the axum application and runs it.
//!
//! [`Application::build`] binds the listener and picks the Bedrock backend,
//! so that tests start exactly what `main` starts, on a port of their own.

mod error;
pub mod settings;

pub use error::{parse_json, ApiError};
pub use settings::{BackendChoice, Settings};

use crate::{
    app::{shell, App, PageConfig},
    bedrock::{self, BedrockChat},
    chat::{self, generation::Generations},
    conversations::{
        self,
        identity::Identity,
        store::{Store, StoreErrorKind},
    },
};
use axum::{
    extract::DefaultBodyLimit,
    routing::{get, post},
    serve::ListenerExt,
    Router,
};
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::{net::SocketAddr, sync::Arc};
use tokio::net::TcpListener;

/// Shared by every handler; cheap to clone.
#[derive(Clone, axum::extract::FromRef)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub bedrock: BedrockChat,
    pub store: Store,
    pub generations: Generations,
    pub identity: Identity,
    pub leptos_options: LeptosOptions,
    pub page: PageConfig,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    bedrock: BedrockChat,
    generations: Generations,
    shutdown_deadline: std::time::Duration,
}

impl Application {
    /// Connects to Bedrock as the settings say and binds `server.site_addr`.
    pub async fn build(settings: Settings) -> std::io::Result<Self> {
        let use_aws = match settings.bedrock.backend {
            BackendChoice::Aws => true,
            BackendChoice::Simulator => false,
            BackendChoice::Auto => {
                bedrock::aws_credentials_configured()
                    || std::env::var_os("AWS_ENDPOINT_URL_BEDROCK_RUNTIME").is_some()
            }
        };
        let b = &settings.bedrock;
        let bedrock = bedrock::connect(use_aws, &b.fallback_region, b.max_attempts).await?;
        Self::build_with(settings, bedrock).await
    }

    /// Like [`Application::build`] with a Bedrock client made by the caller
    /// (tests hand in one bound to a simulator they control).
    pub async fn build_with(settings: Settings, bedrock: BedrockChat) -> std::io::Result<Self> {
        let storage = &settings.storage;
        std::fs::create_dir_all(&storage.data_dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("data directory {}: {e}", storage.data_dir.display()),
            )
        })?;
        let store = Store::connect(&storage.url()).await.map_err(|e| {
            std::io::Error::other(format!("cannot open the conversation store: {}", e.detail))
        })?;
        let interrupted = match store.recover_interrupted().await {
            Ok(n) => n,
            Err(e) if e.kind == StoreErrorKind::ReadOnly => 0,
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "cannot recover the conversation store: {}",
                    e.detail
                )))
            }
        };
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "answers cut off by the last shutdown are marked interrupted"
            );
        }
        let id = &settings.identity;
        let identity = Identity::new(
            &id.cookie_secret,
            &storage.data_dir,
            &id.trusted_user_header,
            id.secure_cookie,
        )?;
        let listener = TcpListener::bind(settings.server.site_addr).await?;
        let mut leptos_options = leptos_options()?;
        leptos_options.site_addr = listener.local_addr()?;

        let page = PageConfig {
            models: settings.bedrock.models.clone(),
            default_model: settings.bedrock.default_model.clone(),
            demo: bedrock.is_demo(),
            max_message_chars: settings.limits.max_message_chars,
            max_title_chars: settings.limits.max_title_chars,
            default_system_prompt: settings.bedrock.system_prompt.clone(),
            default_temperature: settings.bedrock.temperature,
            default_max_tokens: settings.bedrock.max_tokens,
            max_output_tokens: settings.limits.max_output_tokens,
            max_system_prompt_chars: settings.limits.max_system_prompt_chars,
            // Chosen per request when the page is rendered (see `page_for_request`).
            locale: crate::i18n::Locale::En,
        };
        let timing = settings.streams.timing();
        let state = AppState {
            settings: Arc::new(settings),
            bedrock: bedrock.clone(),
            store,
            generations: Generations::new(timing),
            identity,
            leptos_options,
            page,
        };
        let generations = state.generations.clone();
        let shutdown_deadline = state.settings.streams.shutdown_deadline();
        Ok(Self {
            listener,
            router: router(state),
            bedrock,
            generations,
            shutdown_deadline,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn bedrock(&self) -> &BedrockChat {
        &self.bedrock
    }

    /// The answers being written (for tests and benchmarks).
    pub fn generations(&self) -> &Generations {
        &self.generations
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // Send each SSE event the moment it is written: with Nagle's algorithm
        // a small write waits for the previous one's ACK, which the browser
        // delays (~40 ms), and the first delta would arrive that much later.
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let generations = self.generations.clone();
        let deadline = self.shutdown_deadline;
        // On SIGTERM: no new answers; running ones finish (until the
        // deadline, then they are stored as interrupted); their listeners'
        // streams end with them, and then the server exits.
        axum::serve(listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                tracing::info!("shutting down: letting running answers finish");
                generations.drain(deadline).await;
            })
            .await
    }
}

/// cargo-leptos passes the site layout through `LEPTOS_*` variables (at build
/// and run time); a binary built by plain cargo (tests, benchmarks) gets the
/// same layout from defaults.
fn leptos_options() -> std::io::Result<LeptosOptions> {
    if option_env!("LEPTOS_OUTPUT_NAME").is_some() || std::env::var_os("LEPTOS_OUTPUT_NAME").is_some() {
        leptos::config::get_configuration(None)
            .map(|conf| conf.leptos_options)
            .map_err(std::io::Error::other)
    } else {
        Ok(LeptosOptions::builder().output_name("bedrock-chat").build())
    }
}

fn router(state: AppState) -> Router {
    let routes = generate_route_list({
        let page = state.page.clone();
        move || leptos::view! { <App page=page.clone()/> }
    });
    let by_id = format!("{}/{{id}}", conversations::API_PATH);
    let api = Router::new()
        .route(chat::STREAM_PATH, post(chat::api::stream_chat))
        .route(chat::COMPAT_PATH, post(chat::api::compat_chat))
        .route(
            &format!("{}/{{id}}/events", chat::GENERATIONS_PATH),
            get(chat::api::resume),
        )
        .route(
            &format!("{}/{{id}}/cancel", chat::GENERATIONS_PATH),
            post(chat::api::cancel),
        )
        .route(conversations::API_PATH, get(conversations::api::list))
        .route(
            &by_id,
            get(conversations::api::get)
                .patch(conversations::api::rename)
                .delete(conversations::api::delete),
        )
        .route(&format!("{by_id}/regenerate"), post(chat::api::regenerate))
        .route(&format!("{by_id}/edit"), post(chat::api::edit))
        .route(
            &format!("{by_id}/settings"),
            axum::routing::put(conversations::api::save_settings),
        )
        .layer(DefaultBodyLimit::max(state.settings.limits.max_body_bytes));
    Router::new()
        .merge(api)
        .leptos_routes_with_context(
            &state,
            routes,
            {
                // Server rendering reads conversations straight from the store.
                let store = state.store.clone();
                move || leptos::prelude::provide_context(store.clone())
            },
            {
                let state = state.clone();
                move || shell(state.leptos_options.clone(), page_for_request(&state.page))
            },
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>({
            let page = state.page.clone();
            move |options| shell(options, page_for_request(&page))
        }))
        // gzip for pages and the WASM bundle (518 KB -> 210 KB). The default
        // predicate never compresses text/event-stream, whose events must
        // leave one by one rather than wait in an encoder's buffer.
        .layer(tower_http::compression::CompressionLayer::new())
        // Every request knows its owner (and a new browser gets its cookie).
        .layer(axum::middleware::from_fn_with_state(
            state.identity.clone(),
            conversations::identity::attach_owner,
        ))
        .with_state(state)
}

// --- i18n: the page config of one request (its locale) -----------------
/// The page config for the request being rendered: the server's, in the
/// language the request asks for (`lang` cookie, else `Accept-Language`).
fn page_for_request(page: &PageConfig) -> PageConfig {
    PageConfig {
        locale: crate::i18n::request_locale(),
        ..page.clone()
    }
}
// --- end i18n ------------------------------------------------------------

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}
