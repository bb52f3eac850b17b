//! Loading settings: layers, overrides, refusals.

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
    let s = Settings::from_toml_and_env(file, &env(&[("BEDROCK_CHAT_BEDROCK_MAX_TOKENS", "55")])).unwrap();
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
    let s =
        Settings::built_in_with(&env(&[("BEDROCK_CHAT_SERVER_ALLOWED_HOSTS", "Chat.Example.com")])).unwrap();
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

#[test]
fn tools_and_mcp_servers_are_checked_at_start() {
    let s = Settings::built_in_with(&env(&[
        (
            "BEDROCK_CHAT_TOOLS_MCP_SERVERS",
            "files=stdio:mcp-files /srv, docs=http:https://mcp.example.com/mcp",
        ),
        ("BEDROCK_CHAT_TOOLS_ON_BY_DEFAULT", "calculator,docs"),
    ]))
    .unwrap();
    assert_eq!(s.tools.mcp_servers.len(), 2);
    assert!(s.tools.offers("docs") && s.tools.offers("calculator") && !s.tools.offers("shell"));
    assert_eq!(s.tools.choices().last().map(String::as_str), Some("docs"));
    assert!(s
        .bedrock
        .can_think("us.anthropic.claude-3-7-sonnet-20250219-v1:0"));
    assert!(!s.bedrock.can_think("us.amazon.nova-lite-v1:0"));

    for (key, value, says) in [
        (
            "BEDROCK_CHAT_TOOLS_MCP_SERVERS",
            "files=ftp:x",
            "tools.mcp_servers",
        ),
        ("BEDROCK_CHAT_TOOLS_MCP_SERVERS", "a=stdio:x, a=stdio:y", "twice"),
        ("BEDROCK_CHAT_TOOLS_OFFERED", "shell", "not a tool of this server"),
        ("BEDROCK_CHAT_TOOLS_ON_BY_DEFAULT", "files", "neither"),
        ("BEDROCK_CHAT_TOOLS_MAX_ROUNDS", "0", "must be positive"),
        (
            "BEDROCK_CHAT_BEDROCK_DEFAULT_THINKING_BUDGET",
            "100",
            "at least 1024",
        ),
    ] {
        let err = Settings::built_in_with(&env(&[(key, value)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{key}={value}: {err}");
    }
}

#[test]
fn the_metrics_listener_must_be_an_address_with_a_port() {
    let err = Settings::built_in_with(&env(&[("BEDROCK_CHAT_METRICS_LISTEN_ADDR", "localhost")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("metrics.listen_addr"), "{err}");
    let own =
        Settings::built_in_with(&env(&[("BEDROCK_CHAT_METRICS_LISTEN_ADDR", "127.0.0.1:9464")])).unwrap();
    assert_eq!(
        own.metrics.own_listener(),
        Some("127.0.0.1:9464".parse().unwrap())
    );
    let off = Settings::built_in_with(&env(&[
        ("BEDROCK_CHAT_METRICS_LISTEN_ADDR", "127.0.0.1:9464"),
        ("BEDROCK_CHAT_METRICS_ENABLED", "false"),
    ]))
    .unwrap();
    assert_eq!(off.metrics.own_listener(), None);
}

#[test]
fn prices_are_read_per_model_and_a_bad_one_is_named() {
    let settings = Settings::built_in_with(&env(&[])).unwrap();
    let haiku = settings
        .pricing
        .price_of("us.anthropic.claude-3-5-haiku-20241022-v1:0")
        .unwrap();
    assert_eq!(
        (haiku.input, haiku.output, haiku.cache_read, haiku.cache_write),
        (0.8, 4.0, 0.08, 1.0)
    );
    assert_eq!(settings.pricing.price_of("meta.llama3-70b-instruct-v1:0"), None);
    let err = Settings::built_in_with(&env(&[("BEDROCK_CHAT_PRICING_PRICES", "m|1|2|x|4")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pricing.prices") && err.contains("m|1|2|x|4"),
        "{err}"
    );
    let err = Settings::built_in_with(&env(&[("BEDROCK_CHAT_PRICING_CURRENCY", "dollars")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pricing.currency"), "{err}");
}
