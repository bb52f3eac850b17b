//! The three layers of the settings: the shipped defaults, the file read at
//! start, then `BEDROCK_CHAT_*` variables (and the standard `DATABASE_URL`
//! and cargo-leptos's `LEPTOS_SITE_ADDR`), merged into one TOML table.
//! Anything that names no known setting is an error.

use super::SettingsError;
use std::{collections::HashMap, path::Path};

/// Prefix of every environment override.
const ENV_PREFIX: &str = "BEDROCK_CHAT";

/// The settings file shipped with the source: the defaults of every key, and
/// the whole settings when no file is found (so that the binary also runs
/// outside the repository).
pub(super) const BUILT_IN: &str = include_str!("../../Leptos.toml");

/// `BEDROCK_CHAT_*` variables that are not settings: which file to read, and
/// the development scripts' own (they reach the server through the test
/// runners' environment).
const NOT_SETTINGS: &[&str] = &[
    "BEDROCK_CHAT_CONFIG",
    "BEDROCK_CHAT_E2E_BINARY",
    "BEDROCK_CHAT_PG_PORT",
];

/// The settings as one table: `text` (the file) over the defaults, then the
/// environment over both.
pub(super) fn layered(text: &str, env: &HashMap<String, String>) -> Result<toml::Table, SettingsError> {
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
    Ok(table)
}

pub(super) fn read(path: &Path) -> Result<String, SettingsError> {
    std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.display().to_string(),
        source,
    })
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
