//! The HTTP layer: assembles the axum application and runs it.
//!
//! [`Application::build`] binds the listener and picks the Bedrock backend,
//! so that tests start exactly what `main` starts, on a port of their own.
//!
//! Every request passes, outermost first: the access log (and its request
//! id), gzip, the browser defences ([`protect`]: host, cross-site writes,
//! security headers), the body deadline ([`serve::read_body_in_time`]), and
//! the owner ([`crate::conversations::identity`]). Connections are limited
//! in [`serve`]; answers by [`limits`].

pub mod access_log;
mod error;
pub mod extract;
pub mod identity;
pub mod limits;
pub mod protect;
mod routes;
pub mod serve;

use crate::settings::{self, BackendChoice, Settings};
pub use error::ApiError;

use crate::{
    app::{shell, App, PageConfig},
    bedrock::{self, BedrockChat},
    chat::{
        self,
        cluster::{Cluster, ClusterTiming},
        generation::{Generations, Timing},
    },
    conversations::{
        self,
        store::{Backend, LeasePolicy, Store, StoreErrorKind},
    },
};
use axum::{
    extract::DefaultBodyLimit,
    routing::{get, post},
    Router,
};
use identity::Identity;
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::{net::SocketAddr, sync::Arc};
use tokio::net::TcpListener;

/// Shared by every handler. axum clones it for each request (`State`), so
/// it is one reference count: the parts themselves (the page config's
/// strings and lists above all) are not copied per request.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// Server rendering and leptos_axum's handlers read the Leptos options
/// from the state.
impl axum::extract::FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// What [`AppState`] shares.
pub struct AppParts {
    pub settings: Arc<Settings>,
    pub bedrock: BedrockChat,
    pub store: Store,
    pub generations: Generations,
    pub identity: Identity,
    pub limiter: limits::Limiter,
    pub leptos_options: LeptosOptions,
    pub page: PageConfig,
    /// The MCP servers' connections (their tools are offered beside the built-in ones).
    pub mcp: crate::tools::mcp::McpHub,
    /// The Prometheus recorder, unless metrics are off.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    bedrock: BedrockChat,
    generations: Generations,
    store: Store,
    limiter: limits::Limiter,
    settings: Arc<Settings>,
    mcp: crate::tools::mcp::McpHub,
    /// `/metrics` on a listener of its own (`metrics.listen_addr`).
    metrics_listener: Option<(TcpListener, Router)>,
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
        Self::build_with_clock(settings, bedrock, crate::clock::Clock::system()).await
    }

    /// Like [`Application::build_with`] with a clock the caller can move
    /// (tests of the daily budget).
    pub async fn build_with_clock(
        settings: Settings,
        bedrock: BedrockChat,
        clock: crate::clock::Clock,
    ) -> std::io::Result<Self> {
        let storage = &settings.storage;
        create_private_dir(&storage.data_dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("data directory {}: {e}", storage.data_dir.display()),
            )
        })?;
        let url = storage.url();
        let store = Store::connect(&url).await.map_err(|e| {
            std::io::Error::other(format!(
                "cannot open the conversation store at {}: {}",
                without_password(&url),
                without_password(&e.detail)
            ))
        })?;
        make_sqlite_files_private(&url);
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
        )?
        .with_trusted_proxies(id.trusted_proxies.clone());
        let limiter = limits::Limiter::new(&settings.limits, id.allow_anonymous, clock);
        let timing = Timing::from_settings(&settings.streams);
        let (store, generations) = share_with_instances(&settings, &url, store, &identity, timing).await?;
        let store = if settings.storage.group_commit {
            store.with_group_commit()
        } else {
            store
        };
        let listener = serve::bind(settings.server.site_addr, settings.server.listen_backlog)?;
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
            tools: settings.tools.choices(),
            tools_on_by_default: settings.tools.on_by_default.clone(),
            default_thinking_budget: settings.bedrock.default_thinking_budget,
            // Chosen per request when the page is rendered (see `page_for_request`).
            locale: crate::i18n::Locale::En,
            currency: settings.pricing.currency.clone(),
        };
        let mcp = crate::tools::mcp::McpHub::start(settings.tools.mcp_servers.clone());
        let metrics = settings.metrics.enabled.then(crate::telemetry::install);
        let metrics_listener =
            match settings.metrics.own_listener() {
                Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                    std::io::Error::new(e.kind(), format!("metrics.listen_addr {addr}: {e}"))
                })?),
                None => None,
            };
        let state = AppState(Arc::new(AppParts {
            metrics,
            mcp,
            settings: Arc::new(settings),
            bedrock: bedrock.clone(),
            store,
            generations,
            identity,
            limiter: limiter.clone(),
            leptos_options,
            page,
        }));
        let generations = state.generations.clone();
        let store = state.store.clone();
        let settings = state.settings.clone();
        let mcp = state.mcp.clone();
        let metrics_listener =
            metrics_listener.map(|listener| (listener, routes::ops::metrics_router(state.clone())));
        Ok(Self {
            mcp,
            metrics_listener,
            listener,
            router: router(state),
            bedrock,
            generations,
            store,
            limiter,
            settings,
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

    /// The conversation store (for tests and figures).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The answers being written (for tests and benchmarks).
    pub fn generations(&self) -> &Generations {
        &self.generations
    }

    /// The MCP servers' connections (for tests).
    pub fn mcp(&self) -> &crate::tools::mcp::McpHub {
        &self.mcp
    }

    /// The limits (for tests and figures).
    pub fn limiter(&self) -> &limits::Limiter {
        &self.limiter
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` resolves. Then no new answers are taken; running
    /// ones finish (until the shutdown deadline, then they are stored as
    /// interrupted); their listeners' streams end with them, and then the
    /// server exits.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let generations = self.generations.clone();
        let deadline = self.settings.streams.shutdown_deadline();
        let sweeper = tokio::spawn(sweep(
            self.store.clone(),
            self.generations.clone(),
            self.limiter.clone(),
            self.settings.streams.sweep_interval(),
        ));
        // `install` hands back the recorder `build` installed.
        let metrics_upkeep = self
            .settings
            .metrics
            .enabled
            .then(|| tokio::spawn(crate::telemetry::upkeep(crate::telemetry::install())));
        let metrics_server = self.metrics_listener.map(|(listener, router)| {
            tracing::info!(
                "metrics on http://{}/metrics",
                listener.local_addr().map(|a| a.to_string()).unwrap_or_default()
            );
            // Plain `axum::serve`: a scrape port on a private address needs
            // none of the public listener's connection limits.
            tokio::spawn(async move { axum::serve(listener, router).await })
        });
        let server = &self.settings.server;
        let limits = serve::ConnectionLimits {
            header_read_timeout: settings::secs(server.header_read_timeout_secs),
            max_connections: server.max_connections,
            close_deadline: std::time::Duration::from_secs(10),
        };
        let result = serve::serve(self.listener, self.router, limits, async move {
            stop.await;
            tracing::info!("shutting down: letting running answers finish");
            generations.drain(deadline).await;
        })
        .await;
        sweeper.abort();
        if let Some(task) = metrics_upkeep {
            task.abort();
        }
        if let Some(task) = metrics_server {
            task.abort();
        }
        result
    }
}

/// On PostgreSQL, several instances may serve the database: every answer
/// begun is leased to this instance, and its events are shared with the
/// others ([`chat::cluster`]). SQLite has one process: answers live in
/// this one's memory only.
async fn share_with_instances(
    settings: &Settings,
    url: &str,
    store: Store,
    identity: &Identity,
    timing: Timing,
) -> std::io::Result<(Store, Generations)> {
    let generations = Generations::new(timing);
    if store.backend() != Backend::Postgres {
        return Ok((store, generations));
    }
    let streams = &settings.streams;
    let (instance_id, id_lock) = instance_identity(&settings.storage.data_dir)?;
    let store = store.with_leases(LeasePolicy {
        instance_id: instance_id.clone(),
        ttl_ms: settings::secs(streams.lease_secs).as_millis() as i64,
        per_owner: settings.limits.max_concurrent_answers_per_owner,
        per_owner_per_minute: settings.limits.messages_per_minute_per_owner,
    });
    let cluster_timing = ClusterTiming {
        lease: settings::secs(streams.lease_secs),
        flush: std::time::Duration::from_millis(streams.event_flush_ms),
        linger: timing.linger,
        keep_alive: timing.keep_alive,
    };
    let cluster = Cluster::start(
        url,
        store.clone(),
        instance_id,
        id_lock,
        &identity.secret_tag(),
        cluster_timing,
    )
    .await
    .map_err(|e| std::io::Error::other(without_password(&e)))?;
    Ok((store, generations.with_cluster(cluster)))
}

/// This instance's id among those sharing the database: the one kept in
/// the data directory, so that a restart knows the leases of its previous
/// run are dead, unless another process running now holds that file (its
/// lock), in which case a new one.
fn instance_identity(data_dir: &std::path::Path) -> std::io::Result<(String, Option<std::fs::File>)> {
    let path = data_dir.join("instance-id");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    if file.try_lock().is_err() {
        return Ok((conversations::store::new_id(), None));
    }
    let mut id = std::fs::read_to_string(&path)?.trim().to_owned();
    if id.is_empty() {
        id = conversations::store::new_id();
        std::fs::write(&path, &id)?;
    }
    Ok((id, Some(file)))
}

/// Answers left `streaming` that nobody writes become `interrupted` (their
/// last checkpoint kept), every `interval`; the limiters forget idle keys.
/// A row is left alone for a minute after it began, while its model call
/// may still be starting.
async fn sweep(
    store: Store,
    generations: Generations,
    limiter: limits::Limiter,
    interval: std::time::Duration,
) {
    const SETTLING_MS: i64 = 60_000;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        limiter.forget_idle();
        let before = crate::conversations::store::now_ms() - SETTLING_MS;
        match store.sweep_orphans(|id| generations.is_writing(id), before).await {
            Ok(0) => {}
            Ok(swept) => tracing::warn!(swept, "answers nobody was writing are marked interrupted"),
            Err(err) => tracing::debug!(error = %err, "sweep skipped: the store is not answering"),
        }
    }
}

/// Creates the data directory readable by this user only.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The SQLite file (and its journal files) readable by this user only.
fn make_sqlite_files_private(url: &str) {
    #[cfg(unix)]
    if let Some(path) = url.strip_prefix("sqlite://") {
        use std::os::unix::fs::PermissionsExt;
        let path = path.split('?').next().unwrap_or(path);
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{path}{suffix}");
            if std::path::Path::new(&file).exists() {
                let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
}

/// `text` with the password of any `scheme://user:password@host` in it
/// replaced by `***`, for messages and logs.
pub fn without_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', ' ', '?', '#']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
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
        Ok(LeptosOptions::builder()
            .output_name("bedrock-chat")
            .site_root("target/site")
            .build())
    }
}

fn router(state: AppState) -> Router {
    use axum::handler::Handler;
    let routes = generate_route_list({
        let page = state.page.clone();
        move || leptos::view! { <App page=page.clone()/> }
    });
    let by_id = format!("{}/{{id}}", conversations::API_PATH);
    let api = Router::new()
        .route(chat::STREAM_PATH, post(routes::chat::stream_chat))
        .route(chat::COMPAT_PATH, post(routes::chat::compat_chat))
        .route(
            &format!("{}/{{id}}/events", chat::GENERATIONS_PATH),
            get(routes::chat::resume),
        )
        .route(
            &format!("{}/{{id}}/cancel", chat::GENERATIONS_PATH),
            post(routes::chat::cancel),
        )
        .route(
            &format!("{}/{{id}}/tools/{{call_id}}", chat::GENERATIONS_PATH),
            post(routes::chat::decide),
        )
        .route(conversations::API_PATH, get(routes::conversations::list))
        .route(
            &by_id,
            get(routes::conversations::get)
                .patch(routes::conversations::rename)
                .delete(routes::conversations::delete),
        )
        .route(&format!("{by_id}/regenerate"), post(routes::chat::regenerate))
        .route(&format!("{by_id}/edit"), post(routes::chat::edit))
        .route(
            &format!("{by_id}/settings"),
            axum::routing::put(routes::conversations::save_settings),
        )
        .layer(DefaultBodyLimit::max(state.settings.limits.max_body_bytes));
    let protection = protect::Protection::new(
        state.settings.server.hosts(),
        state.settings.identity.secure_cookie,
    );
    let body_deadline = (
        settings::secs(state.settings.server.request_body_timeout_secs),
        state.settings.limits.max_body_bytes,
    );
    let not_found = leptos_axum::file_and_error_handler::<AppState, _>({
        let page = state.page.clone();
        move |options| shell(options, page_for_request(&page))
    });
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
        // The site's files (the bundle, the favicon), precompressed where
        // `./dev release` wrote `.br` and `.gz` beside them; anything else
        // gets the page's "not found". Served by tower-http rather than
        // leptos_axum's `file_and_error_handler`: for a file, that handler
        // makes its reactive owner a child of whatever page is rendering on
        // the same worker thread and takes that page's response headers,
        // its Content-Security-Policy included, so the page went out with
        // the not-a-page policy and its scripts never ran.
        .fallback_service(
            tower_http::services::ServeDir::new(&*state.leptos_options.site_root)
                .precompressed_br()
                .precompressed_gzip()
                .fallback(not_found.with_state(state.clone())),
        )
        // Innermost: every request knows its owner (and a new browser gets
        // its cookie).
        .layer(axum::middleware::from_fn_with_state(
            state.identity.clone(),
            identity::attach_owner,
        ))
        .layer(axum::middleware::from_fn_with_state(
            body_deadline,
            serve::read_body_in_time,
        ))
        .layer(axum::middleware::from_fn_with_state(protection, protect::defend))
        // After the defences' layers, so outside them: probes and scrapers
        // name the server by address and carry no cookie.
        .merge(routes::ops::router(&state))
        // gzip for pages and the WASM bundle (518 KB -> 210 KB). The default
        // predicate never compresses text/event-stream, whose events must
        // leave one by one rather than wait in an encoder's buffer.
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn(access_log::log_request))
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

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_never_printed() {
        assert_eq!(
            super::without_password("mysql://me:s3cret@db:5432/x is unsupported"),
            "mysql://me:***@db:5432/x is unsupported"
        );
        assert_eq!(super::without_password("postgres://db/x"), "postgres://db/x");
        assert_eq!(
            super::without_password("sqlite://data/x?mode=rwc"),
            "sqlite://data/x?mode=rwc"
        );
    }
}
