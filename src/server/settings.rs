//! Runtime settings: `Leptos.toml`, then environment overrides.
//!
//! Every leaf key `[section] key` can be replaced by the environment variable
//! `BEDROCK_CHAT_<SECTION>_<KEY>`; the value is parsed as the same type as the
//! file's value (lists are comma-separated). Loading is a pure function of the
//! file text and an environment map so that tests can exercise it directly.

use crate::chat::ModelOption;
use serde::Deserialize;
use std::{collections::HashMap, net::SocketAddr, path::Path};

/// Prefix of every environment override.
const ENV_PREFIX: &str = "BEDROCK_CHAT";

/// The settings file shipped with the source, used when no file is found so
/// that the binary also runs outside the repository.
const BUILT_IN: &str = include_str!("../../Leptos.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub bedrock: BedrockSettings,
    pub limits: Limits,
    pub storage: StorageSettings,
    pub identity: IdentitySettings,
    pub streams: StreamSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamSettings {
    pub grace_period_secs: f64,
    pub keep_alive_secs: f64,
    pub linger_secs: f64,
    pub shutdown_deadline_secs: f64,
}

impl StreamSettings {
    pub fn timing(&self) -> crate::chat::generation::Timing {
        crate::chat::generation::Timing {
            grace: secs(self.grace_period_secs),
            keep_alive: secs(self.keep_alive_secs),
            linger: secs(self.linger_secs),
        }
    }

    pub fn shutdown_deadline(&self) -> std::time::Duration {
        secs(self.shutdown_deadline_secs)
    }
}

fn secs(s: f64) -> std::time::Duration {
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
    pub cookie_secret: String,
    pub secure_cookie: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub site_addr: SocketAddr,
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
    #[serde(default = "default_max_system_prompt_chars")]
    pub max_system_prompt_chars: usize,
    /// Highest "max tokens" a conversation may ask for.
    #[serde(default = "default_max_output_tokens")]
    pub max_output_tokens: u32,
}

fn default_max_system_prompt_chars() -> usize {
    8000
}

fn default_max_output_tokens() -> u32 {
    8192
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

    pub fn from_toml_and_env(text: &str, env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut table: toml::Table = text.parse()?;
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
        if !(t.keep_alive_secs > 0.0 && t.grace_period_secs >= 0.0 && t.linger_secs >= 0.0) {
            return Err(SettingsError::Invalid(
                "streams: keep_alive_secs must be positive, the others not negative".into(),
            ));
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

/// Replaces each `[section] key` with `BEDROCK_CHAT_SECTION_KEY` when that is set.
fn apply_env(table: &mut toml::Table, env: &HashMap<String, String>) -> Result<(), SettingsError> {
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
