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
//! that tests can exercise it directly. (Our own ~50 lines over `toml`
//! rather than `figment`: the layering is three steps, and the errors name
//! the file key or variable exactly as the operator wrote it.)

use crate::chat::ModelOption;
use serde::Deserialize;
use std::{collections::HashMap, net::SocketAddr, path::Path};

/// Prefix of every environment override.
const ENV_PREFIX: &str = "BEDROCK_CHAT";

/// The settings file shipped with the source: the defaults of every key, and
/// the whole settings when no file is found (so that the binary also runs
/// outside the repository).
const BUILT_IN: &str = include_str!("../../Leptos.toml");

/// `BEDROCK_CHAT_*` variables that are not settings: which file to read, and
/// the development scripts' own (they reach the server through the test
/// runners' environment).
const NOT_SETTINGS: &[&str] = &[
    "BEDROCK_CHAT_CONFIG",
    "BEDROCK_CHAT_E2E_BINARY",
    "BEDROCK_CHAT_PG_PORT",
];

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub bedrock: BedrockSettings,
    pub limits: Limits,
    pub storage: StorageSettings,
    pub identity: IdentitySettings,
    pub streams: StreamSettings,
    pub log: LogSettings,
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
}

impl StreamSettings {
    pub fn timing(&self) -> crate::chat::generation::Timing {
        crate::chat::generation::Timing {
            grace: secs(self.grace_period_secs),
            first_delta_grace: secs(self.first_delta_grace_secs.min(self.grace_period_secs)),
            keep_alive: secs(self.keep_alive_secs),
            linger: secs(self.linger_secs),
            checkpoint: secs(self.checkpoint_secs),
            checkpoint_bytes: self.checkpoint_bytes,
        }
    }

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
            Some(path) => read(Path::new(path))?,
            None if Path::new("Leptos.toml").exists() => read(Path::new("Leptos.toml"))?,
            None => BUILT_IN.to_owned(),
        };
        Self::from_toml_and_env(&text, &env)
    }

    /// The built-in settings with the given overrides only (for tests and tools).
    pub fn built_in_with(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        Self::from_toml_and_env(BUILT_IN, env)
    }

    /// `text` is the settings file (it may set only some keys) and `env`
    /// the environment.
    pub fn from_toml_and_env(text: &str, env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut table: toml::Table = BUILT_IN.parse().expect("the built-in settings are TOML");
        overlay_file(&mut table, &text.parse()?)?;
        apply_env(&mut table, env)?;
        // cargo-leptos tells the server where to listen through LEPTOS_SITE_ADDR;
        // our own variable wins when both are set.
        if !env.contains_key("BEDROCK_CHAT_SERVER_SITE_ADDR") {
            if let (Some(addr), Some(server)) = (
                env.get("LEPTOS_SITE_ADDR"),
                table.get_mut("server").and_then(|s| s.as_table_mut()),
            ) {
                server.insert("site_addr".into(), toml::Value::String(addr.clone()));
            }
        }
        // The standard variable for a database; ours wins when both are set.
        if !env.contains_key("BEDROCK_CHAT_STORAGE_DATABASE_URL") {
            if let (Some(url), Some(storage)) = (
                env.get("DATABASE_URL").filter(|u| !u.is_empty()),
                table.get_mut("storage").and_then(|s| s.as_table_mut()),
            ) {
                storage.insert("database_url".into(), toml::Value::String(url.clone()));
            }
        }
        let settings: Settings = toml::Value::Table(table).try_into()?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), SettingsError> {
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
        let t = &self.streams;
        if !(t.keep_alive_secs > 0.0
            && t.checkpoint_secs > 0.0
            && t.sweep_interval_secs > 0.0
            && t.grace_period_secs >= 0.0
            && t.first_delta_grace_secs >= 0.0
            && t.linger_secs >= 0.0)
        {
            return Err(SettingsError::Invalid(
                "streams: keep_alive_secs, checkpoint_secs and sweep_interval_secs must be positive, the others not negative".into(),
            ));
        }
        let s = &self.server;
        if !(s.header_read_timeout_secs > 0.0 && s.request_body_timeout_secs > 0.0 && s.max_connections > 0) {
            return Err(SettingsError::Invalid(
                "server: header_read_timeout_secs, request_body_timeout_secs and max_connections must be positive".into(),
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

impl BedrockSettings {
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
            }
        })
        .collect())
}

fn read(path: &Path) -> Result<String, SettingsError> {
    std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.display().to_string(),
        source,
    })
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

/// Puts the file's values over the defaults; a key the defaults do not have
/// is an error.
fn overlay_file(defaults: &mut toml::Table, file: &toml::Table) -> Result<(), SettingsError> {
    for (section, values) in file {
        let Some(known) = defaults.get_mut(section).and_then(|v| v.as_table_mut()) else {
            return Err(SettingsError::Unknown(format!(
                "the settings file has an unknown section [{section}]; known sections: {}",
                defaults
                    .keys()
                    .map(|k| format!("[{k}]"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let Some(values) = values.as_table() else {
            return Err(SettingsError::Unknown(format!(
                "[{section}] in the settings file must be a table of keys"
            )));
        };
        for (key, value) in values {
            if !known.contains_key(key) {
                return Err(SettingsError::Unknown(format!(
                    "the settings file sets [{section}] {key}, which is not a setting; [{section}] has: {}",
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            known.insert(key.clone(), value.clone());
        }
    }
    Ok(())
}

/// Replaces each `[section] key` with `BEDROCK_CHAT_SECTION_KEY` when that is
/// set; any other `BEDROCK_CHAT_*` variable is an error.
fn apply_env(table: &mut toml::Table, env: &HashMap<String, String>) -> Result<(), SettingsError> {
    let known: Vec<String> = table
        .iter()
        .filter_map(|(section, values)| Some((section, values.as_table()?)))
        .flat_map(|(section, values)| {
            values
                .keys()
                .map(move |key| format!("{ENV_PREFIX}_{section}_{key}").to_uppercase())
        })
        .collect();
    let mut unknown: Vec<&String> = env
        .keys()
        .filter(|var| var.starts_with(&format!("{ENV_PREFIX}_")))
        .filter(|var| !known.contains(var) && !NOT_SETTINGS.contains(&var.as_str()))
        .collect();
    unknown.sort();
    if let Some(first) = unknown.first() {
        let hint = known
            .iter()
            .min_by_key(|k| edit_distance(k, first))
            .map(|k| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        return Err(SettingsError::Unknown(format!(
            "unknown settings variable {}{hint}; each setting [section] key is BEDROCK_CHAT_SECTION_KEY, see Leptos.toml",
            unknown.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    for (section, values) in table.iter_mut() {
        let Some(values) = values.as_table_mut() else {
            continue;
        };
        for (key, value) in values.iter_mut() {
            let var = format!("{ENV_PREFIX}_{section}_{key}").to_uppercase();
            if let Some(raw) = env.get(&var) {
                *value = parse_like(value, raw).ok_or_else(|| SettingsError::Env {
                    var: var.clone(),
                    value: raw.clone(),
                    expected: value.type_str(),
                })?;
            }
        }
    }
    Ok(())
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// Parses `raw` as a value of the same TOML type as `current`.
fn parse_like(current: &toml::Value, raw: &str) -> Option<toml::Value> {
    use toml::Value;
    Some(match current {
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Integer(_) => Value::Integer(raw.trim().parse().ok()?),
        Value::Float(_) => Value::Float(raw.trim().parse().ok()?),
        Value::Boolean(_) => Value::Boolean(raw.trim().parse().ok()?),
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        Value::Datetime(_) | Value::Table(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn built_in_settings_are_valid() {
        let s = Settings::built_in_with(&env(&[])).unwrap();
        assert_eq!(s.bedrock.backend, BackendChoice::Auto);
        assert!(s.bedrock.models.len() >= 2);
    }

    #[test]
    fn environment_overrides_each_type() {
        let s = Settings::built_in_with(&env(&[
            ("BEDROCK_CHAT_BEDROCK_MAX_TOKENS", "77"),
            ("BEDROCK_CHAT_BEDROCK_TEMPERATURE", "0.25"),
            ("BEDROCK_CHAT_BEDROCK_BACKEND", "simulator"),
            ("BEDROCK_CHAT_BEDROCK_MODELS", "a|Model A, b"),
            ("BEDROCK_CHAT_BEDROCK_DEFAULT_MODEL", "b"),
            ("BEDROCK_CHAT_SERVER_SITE_ADDR", "127.0.0.1:0"),
        ]))
        .unwrap();
        assert_eq!(s.bedrock.max_tokens, 77);
        assert_eq!(s.bedrock.temperature, 0.25);
        assert_eq!(s.bedrock.backend, BackendChoice::Simulator);
        let models = &s.bedrock.models;
        assert_eq!(
            (models[0].id.as_str(), models[0].label.as_str()),
            ("a", "Model A")
        );
        assert_eq!((models[1].id.as_str(), models[1].label.as_str()), ("b", "b"));
        assert_eq!(s.server.site_addr.port(), 0);
    }

    #[test]
    fn bad_override_names_the_variable() {
        let err = Settings::built_in_with(&env(&[("BEDROCK_CHAT_LIMITS_MAX_MESSAGES", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("BEDROCK_CHAT_LIMITS_MAX_MESSAGES"), "{err}");
    }

    #[test]
    fn default_model_must_be_offered() {
        let err = Settings::built_in_with(&env(&[("BEDROCK_CHAT_BEDROCK_DEFAULT_MODEL", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn a_misspelt_variable_stops_the_start_and_names_the_setting() {
        let err = Settings::built_in_with(&env(&[("BEDROCK_CHAT_IDENTITY_TRUSTED_USER_HEDER", "X-User")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("BEDROCK_CHAT_IDENTITY_TRUSTED_USER_HEDER"), "{err}");
        assert!(
            err.contains("did you mean BEDROCK_CHAT_IDENTITY_TRUSTED_USER_HEADER"),
            "{err}"
        );
        // Not settings, but ours: accepted.
        Settings::built_in_with(&env(&[
            ("BEDROCK_CHAT_CONFIG", "x"),
            ("BEDROCK_CHAT_PG_PORT", "1"),
        ]))
        .unwrap();
    }

    #[test]
    fn a_file_may_set_some_keys_and_the_rest_keep_their_defaults_and_variables() {
        let file = "[limits]\nmax_message_chars = 99\n";
        let s =
            Settings::from_toml_and_env(file, &env(&[("BEDROCK_CHAT_BEDROCK_MAX_TOKENS", "55")])).unwrap();
        assert_eq!(s.limits.max_message_chars, 99);
        assert_eq!(s.bedrock.max_tokens, 55);
        assert_eq!(s.limits.max_concurrent_answers_per_owner, 3, "a default");
    }

    #[test]
    fn an_unknown_key_or_section_in_the_file_stops_the_start() {
        for file in [
            "[limits]\nmax_mesage_chars = 9\n",
            "[limit]\nmax_message_chars = 9\n",
        ] {
            let err = Settings::from_toml_and_env(file, &env(&[]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("max_mesage_chars") || err.contains("[limit]"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_short_cookie_secret_or_a_bad_proxy_range_is_refused() {
        let err = Settings::built_in_with(&env(&[("BEDROCK_CHAT_IDENTITY_COOKIE_SECRET", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 32"), "{err}");
        let err = Settings::built_in_with(&env(&[(
            "BEDROCK_CHAT_IDENTITY_TRUSTED_PROXIES",
            "10.0.0.0/8, nope",
        )]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("nope"), "{err}");
        let ok = Settings::built_in_with(&env(&[(
            "BEDROCK_CHAT_IDENTITY_TRUSTED_PROXIES",
            "10.0.0.0/8, 127.0.0.1",
        )]))
        .unwrap();
        assert_eq!(ok.identity.trusted_proxies.len(), 2);
    }

    #[test]
    fn allowed_hosts_default_to_loopback_names_and_the_listen_address() {
        let s = Settings::built_in_with(&env(&[("BEDROCK_CHAT_SERVER_SITE_ADDR", "192.0.2.7:80")])).unwrap();
        assert_eq!(s.server.hosts(), ["localhost", "127.0.0.1", "[::1]", "192.0.2.7"]);
        let s = Settings::built_in_with(&env(&[("BEDROCK_CHAT_SERVER_ALLOWED_HOSTS", "Chat.Example.com")]))
            .unwrap();
        assert_eq!(s.server.hosts(), ["chat.example.com"]);
    }

    #[test]
    fn cargo_leptos_site_addr_is_honoured() {
        let s = Settings::built_in_with(&env(&[("LEPTOS_SITE_ADDR", "127.0.0.1:4567")])).unwrap();
        assert_eq!(s.server.site_addr.port(), 4567);
    }

    #[test]
    fn database_url_comes_from_the_standard_variable_unless_ours_is_set() {
        let built_in = Settings::built_in_with(&env(&[])).unwrap();
        assert!(
            built_in.storage.url().starts_with("sqlite://"),
            "SQLite by default"
        );
        assert!(built_in.storage.url().contains("bedrock-chat.sqlite3"));

        let pg = Settings::built_in_with(&env(&[("DATABASE_URL", "postgres://u@h/db")])).unwrap();
        assert_eq!(pg.storage.url(), "postgres://u@h/db");

        let ours = Settings::built_in_with(&env(&[
            ("DATABASE_URL", "postgres://u@h/db"),
            ("BEDROCK_CHAT_STORAGE_DATABASE_URL", "sqlite:///tmp/x.sqlite3"),
        ]))
        .unwrap();
        assert_eq!(ours.storage.url(), "sqlite:///tmp/x.sqlite3");
    }
}
