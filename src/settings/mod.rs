//! Runtime settings, layered: built-in defaults, then `Leptos.toml` (or the
//! file `BEDROCK_CHAT_CONFIG` names), then environment overrides.
//!
//! * The defaults are the `Leptos.toml` shipped with the source, built into
//!   the binary: a file that omits a key still gets its default (and its
//!   variable).
//! * Every leaf key `[section] key` can be replaced by the environment
//!   variable `BEDROCK_CHAT_<SECTION>_<KEY>`; the value is parsed as the same
//!   type as the default (lists are comma-separated).
//! * An unknown key in the file, or an unknown `BEDROCK_CHAT_*` variable,
//!   stops the start with a sentence: a misspelt setting never silently
//!   falls back to its default.
//!
//! Loading is a pure function of the file text and an environment map so
//! that tests can exercise it directly: the layering is in `layers`, the
//! types and their checks here. (Our own ~50 lines over `toml`
//! rather than `figment`: the layering is three steps, and the errors name
//! the file key or variable exactly as the operator wrote it.)

mod layers;
#[cfg(test)]
mod tests;

use crate::conversations::ModelOption;
use serde::Deserialize;
use std::{collections::HashMap, net::SocketAddr};

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub bedrock: BedrockSettings,
    pub limits: Limits,
    pub storage: StorageSettings,
    pub identity: IdentitySettings,
    pub streams: StreamSettings,
    pub tools: ToolSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub pricing: PricingSettings,
}

/// `[pricing]`: what answers cost, shown beside their tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct PricingSettings {
    /// An ISO 4217 code, e.g. "USD".
    pub currency: String,
    /// Per model, written `"model-id|input|output|cache_read|cache_write"`
    /// (per million tokens) and parsed once here.
    #[serde(deserialize_with = "model_prices")]
    pub prices: Vec<(String, crate::conversations::Price)>,
}

impl PricingSettings {
    /// The price of `model_id`, if it has one.
    pub fn price_of(&self, model_id: &str) -> Option<crate::conversations::Price> {
        self.prices
            .iter()
            .find(|(id, _)| id == model_id)
            .map(|(_, price)| *price)
    }
}

/// `[metrics]`: Prometheus metrics at `GET /metrics`.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    pub enabled: bool,
    /// A listener of their own (empty: the app's own listener).
    pub listen_addr: String,
}

impl MetricsSettings {
    /// The address of the metrics' own listener, if they have one.
    pub fn own_listener(&self) -> Option<SocketAddr> {
        let addr = self.listen_addr.trim();
        (self.enabled && !addr.is_empty())
            .then(|| addr.parse().ok())
            .flatten()
    }
}

/// `[tools]`: what the model may call, and the bounds on it.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolSettings {
    pub offered: Vec<String>,
    /// Parsed once here: an entry that cannot be read stops the start.
    #[serde(deserialize_with = "mcp_servers")]
    pub mcp_servers: Vec<crate::tools::mcp::McpServerConfig>,
    pub on_by_default: Vec<String>,
    pub requires_approval: Vec<String>,
    pub fetch_allow_private: bool,
    pub approval_timeout_secs: f64,
    pub max_rounds: u32,
    pub timeout_secs: f64,
    pub max_result_chars: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamSettings {
    pub grace_period_secs: f64,
    pub keep_alive_secs: f64,
    pub linger_secs: f64,
    pub shutdown_deadline_secs: f64,
    pub first_delta_grace_secs: f64,
    pub checkpoint_secs: f64,
    pub checkpoint_bytes: usize,
    pub sweep_interval_secs: f64,
    pub lease_secs: f64,
    pub event_flush_ms: u64,
    pub write_interval_ms: u64,
}

impl StreamSettings {
    pub fn shutdown_deadline(&self) -> std::time::Duration {
        secs(self.shutdown_deadline_secs)
    }

    pub fn sweep_interval(&self) -> std::time::Duration {
        secs(self.sweep_interval_secs)
    }
}

pub fn secs(s: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(s.max(0.0))
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    pub database_url: String,
    pub data_dir: std::path::PathBuf,
    pub group_commit: bool,
}

impl StorageSettings {
    /// The database to use: `database_url`, or an SQLite file in `data_dir`.
    pub fn url(&self) -> String {
        if self.database_url.trim().is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("bedrock-chat.sqlite3").display()
            )
        } else {
            self.database_url.trim().to_owned()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdentitySettings {
    pub trusted_user_header: String,
    /// Peers allowed to name the client (X-Forwarded-For) and the user.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub allow_anonymous: bool,
    pub cookie_secret: String,
    pub secure_cookie: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub site_addr: SocketAddr,
    pub allowed_hosts: Vec<String>,
    pub compat_api: bool,
    pub header_read_timeout_secs: f64,
    pub request_body_timeout_secs: f64,
    pub max_connections: usize,
    pub listen_backlog: u32,
}

impl ServerSettings {
    /// The host names (lower case, without port) this server answers to.
    pub fn hosts(&self) -> Vec<String> {
        if !self.allowed_hosts.is_empty() {
            return self
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect();
        }
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"].map(String::from).into();
        let own = match self.site_addr.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        if !hosts.contains(&own) && !self.site_addr.ip().is_unspecified() {
            hosts.push(own);
        }
        hosts
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    Auto,
    Aws,
    Simulator,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BedrockSettings {
    pub backend: BackendChoice,
    pub fallback_region: String,
    /// Offered models, written `"model-id"` or `"model-id|Label"` and parsed
    /// once here, not on every request.
    #[serde(deserialize_with = "model_options")]
    pub models: Vec<ModelOption>,
    pub default_model: String,
    pub system_prompt: String,
    pub max_tokens: i32,
    pub temperature: f32,
    pub max_attempts: u32,
    pub history_token_budget: usize,
    pub reasoning_models: Vec<String>,
    pub default_thinking_budget: u32,
    /// Parts of the ids of models that take prompt-cache points.
    pub cache_models: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Limits {
    pub max_message_chars: usize,
    pub max_messages: usize,
    pub max_body_bytes: usize,
    pub max_title_chars: usize,
    /// Longest system prompt a conversation may set, in characters.
    pub max_system_prompt_chars: usize,
    /// Highest "max tokens" a conversation may ask for.
    pub max_output_tokens: u32,
    pub max_concurrent_answers_per_owner: usize,
    pub messages_per_minute_per_owner: u32,
    pub messages_per_minute_per_address: u32,
    pub daily_tokens_per_owner: u64,
    pub max_live_streams: usize,
    pub new_owners_per_address_per_hour: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("settings are not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("environment variable {var}={value:?} is not a valid {expected}")]
    Env {
        var: String,
        value: String,
        expected: &'static str,
    },
    #[error("invalid settings: {0}")]
    Invalid(String),
    #[error("{0}")]
    Unknown(String),
}

impl Settings {
    /// Reads `BEDROCK_CHAT_CONFIG` or `./Leptos.toml` (falling back to the
    /// built-in copy) and applies the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let text = match env.get("BEDROCK_CHAT_CONFIG") {
            Some(path) => layers::read(std::path::Path::new(path))?,
            None if std::path::Path::new("Leptos.toml").exists() => {
                layers::read(std::path::Path::new("Leptos.toml"))?
            }
            None => layers::BUILT_IN.to_owned(),
        };
        Self::from_toml_and_env(&text, &env)
    }

    /// The built-in settings with the given overrides only (for tests and tools).
    pub fn built_in_with(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        Self::from_toml_and_env(layers::BUILT_IN, env)
    }

    /// `text` is the settings file (it may set only some keys) and `env`
    /// the environment.
    /// `text` is the settings file (it may set only some keys) and `env`
    /// the environment.
    pub fn from_toml_and_env(text: &str, env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut settings: Settings = toml::Value::Table(layers::layered(text, env)?).try_into()?;
        settings.check()?;
        let reasoning = settings.bedrock.reasoning_models.clone();
        for model in &mut settings.bedrock.models {
            model.reasoning = reasoning
                .iter()
                .any(|part| !part.is_empty() && model.id.contains(part.as_str()));
        }
        Ok(settings)
    }

    fn check(&self) -> Result<(), SettingsError> {
        let currency = &self.pricing.currency;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(SettingsError::Invalid(format!(
                "pricing.currency {currency:?} is not a currency code such as \"USD\""
            )));
        }
        let metrics_addr = self.metrics.listen_addr.trim();
        if !metrics_addr.is_empty() && metrics_addr.parse::<SocketAddr>().is_err() {
            return Err(SettingsError::Invalid(format!(
                "metrics.listen_addr {metrics_addr:?} is not an address with a port, such as \"127.0.0.1:9464\""
            )));
        }
        let b = &self.bedrock;
        if b.models.is_empty() {
            return Err(SettingsError::Invalid("bedrock.models is empty".into()));
        }
        if !b.offers(&b.default_model) {
            return Err(SettingsError::Invalid(format!(
                "bedrock.default_model {:?} is not one of bedrock.models",
                b.default_model
            )));
        }
        if b.max_tokens < 1 {
            return Err(SettingsError::Invalid(
                "bedrock.max_tokens must be at least 1".into(),
            ));
        }
        if b.max_attempts < 1 {
            return Err(SettingsError::Invalid(
                "bedrock.max_attempts must be at least 1".into(),
            ));
        }
        if !(0.0..=1.0).contains(&b.temperature) {
            return Err(SettingsError::Invalid(
                "bedrock.temperature must be within 0..=1".into(),
            ));
        }
        let tools = &self.tools;
        if let Some(unknown) = tools
            .offered
            .iter()
            .find(|name| !crate::tools::BUILT_IN.contains(&name.as_str()))
        {
            return Err(SettingsError::Invalid(format!(
                "tools.offered names {unknown:?}, which is not a tool of this server (built in: {})",
                crate::tools::BUILT_IN.join(", ")
            )));
        }
        if let Some(stray) = tools.on_by_default.iter().find(|name| !tools.offers(name)) {
            return Err(SettingsError::Invalid(format!(
                "tools.on_by_default names {stray:?}, which neither tools.offered nor tools.mcp_servers lists"
            )));
        }
        let mut names: Vec<&str> = tools.mcp_servers.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(SettingsError::Invalid(format!(
                "tools.mcp_servers names {:?} twice",
                twice[0]
            )));
        }
        if let Some(stray) = tools.requires_approval.iter().find(|name| {
            // A server's own tool (`SERVER__TOOL`) is named by its server.
            let owner = name
                .split_once(crate::tools::mcp::SEPARATOR)
                .map_or(name.as_str(), |(server, _)| server);
            !tools.offers(owner)
        }) {
            return Err(SettingsError::Invalid(format!(
                "tools.requires_approval names {stray:?}, which is neither an offered tool nor a tool of an MCP server"
            )));
        }
        if tools.max_rounds == 0
            || tools.timeout_secs <= 0.0
            || tools.approval_timeout_secs <= 0.0
            || tools.max_result_chars == 0
        {
            return Err(SettingsError::Invalid(
                "tools: max_rounds, timeout_secs and max_result_chars must be positive".into(),
            ));
        }
        if b.default_thinking_budget < MIN_THINKING_BUDGET {
            return Err(SettingsError::Invalid(format!(
                "bedrock.default_thinking_budget must be at least {MIN_THINKING_BUDGET}"
            )));
        }
        let t = &self.streams;
        if !(t.keep_alive_secs > 0.0
            && t.checkpoint_secs > 0.0
            && t.sweep_interval_secs > 0.0
            && t.lease_secs >= 1.0
            && (10..=5_000).contains(&t.event_flush_ms)
            && t.write_interval_ms <= 10_000
            && t.grace_period_secs >= 0.0
            && t.first_delta_grace_secs >= 0.0
            && t.linger_secs >= 0.0)
        {
            return Err(SettingsError::Invalid(
                "streams: keep_alive_secs, checkpoint_secs and sweep_interval_secs must be positive, lease_secs at least 1, event_flush_ms between 10 and 5000, write_interval_ms at most 10000, the others not negative".into(),
            ));
        }
        let s = &self.server;
        if !(s.header_read_timeout_secs > 0.0
            && s.request_body_timeout_secs > 0.0
            && s.max_connections > 0
            && s.listen_backlog > 0)
        {
            return Err(SettingsError::Invalid(
                "server: header_read_timeout_secs, request_body_timeout_secs, max_connections and listen_backlog must be positive".into(),
            ));
        }
        let secret = &self.identity.cookie_secret;
        if !secret.is_empty() && secret.len() < 32 {
            return Err(SettingsError::Invalid(format!(
                "identity.cookie_secret is {} bytes; it must be at least 32 (e.g. the output of `openssl rand -hex 32`), or empty to generate one",
                secret.len()
            )));
        }
        let l = &self.limits;
        if l.max_message_chars == 0
            || l.max_messages == 0
            || l.max_body_bytes == 0
            || l.max_title_chars == 0
            || l.max_system_prompt_chars == 0
            || l.max_output_tokens == 0
        {
            return Err(SettingsError::Invalid("limits must be positive".into()));
        }
        Ok(())
    }
}

impl ToolSettings {
    /// Whether `name` is a tool or MCP server a conversation may turn on.
    pub fn offers(&self, name: &str) -> bool {
        self.offered.iter().any(|n| n == name) || self.mcp_servers.iter().any(|s| s.name == name)
    }

    /// Whether a call of `name` waits for the user's approval: it, or its
    /// MCP server, is listed in `requires_approval`.
    pub fn needs_approval(&self, name: &str) -> bool {
        let server = name
            .split_once(crate::tools::mcp::SEPARATOR)
            .map(|(server, _)| server);
        self.requires_approval
            .iter()
            .any(|listed| listed == name || Some(listed.as_str()) == server)
    }

    /// Every name a conversation may turn on: the tools, then the MCP servers.
    pub fn choices(&self) -> Vec<String> {
        self.offered
            .iter()
            .cloned()
            .chain(self.mcp_servers.iter().map(|s| s.name.clone()))
            .collect()
    }
}

fn mcp_servers<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<crate::tools::mcp::McpServerConfig>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            crate::tools::mcp::parse(entry)
                .map_err(|e| serde::de::Error::custom(format!("tools.mcp_servers: {e}")))
        })
        .collect()
}

fn model_prices<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, crate::conversations::Price)>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let fields: Vec<&str> = entry.split('|').map(str::trim).collect();
            let numbers: Vec<f64> = fields
                .iter()
                .skip(1)
                .filter_map(|f| f.parse::<f64>().ok())
                .filter(|n| n.is_finite() && *n >= 0.0)
                .collect();
            match (fields.first(), numbers.as_slice()) {
                (Some(id), &[input, output, cache_read, cache_write])
                    if !id.is_empty() && fields.len() == 5 =>
                {
                    Ok((
                        (*id).to_owned(),
                        crate::conversations::Price {
                            input,
                            output,
                            cache_read,
                            cache_write,
                        },
                    ))
                }
                _ => Err(serde::de::Error::custom(format!(
                    "pricing.prices: {entry:?} is not \"model-id|input|output|cache_read|cache_write\" \
                     with prices per million tokens (numbers, 0 or more)"
                ))),
            }
        })
        .collect()
}

/// The fewest tokens Bedrock lets a model think for.
pub const MIN_THINKING_BUDGET: u32 = 1024;

impl BedrockSettings {
    /// Whether `model_id` is offered and can think before answering.
    pub fn can_think(&self, model_id: &str) -> bool {
        self.models.iter().any(|m| m.id == model_id && m.reasoning)
    }

    /// Whether requests to `model_id` mark their stable part for Bedrock's
    /// prompt cache.
    pub fn caches(&self, model_id: &str) -> bool {
        self.cache_models
            .iter()
            .any(|part| !part.is_empty() && model_id.contains(part.as_str()))
    }

    /// Whether `model_id` is one of the offered models.
    pub fn offers(&self, model_id: &str) -> bool {
        self.models.iter().any(|m| m.id == model_id)
    }
}

fn model_options<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ModelOption>, D::Error> {
    let entries = Vec::<String>::deserialize(d)?;
    Ok(entries
        .iter()
        .map(|entry| {
            let (id, label) = entry.split_once('|').unwrap_or((entry, entry));
            ModelOption {
                id: id.trim().to_owned(),
                label: label.trim().to_owned(),
                reasoning: false,
            }
        })
        .collect())
}

fn networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "identity.trusted_proxies: {entry:?} is neither an address nor a CIDR range"
                    ))
                })
        })
        .collect()
}
