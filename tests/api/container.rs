//! The container files, checked without a container engine (none runs on
//! the build machines): the image is built by the same `./dev release` as
//! everything else, runs what that build makes, and every setting the
//! Dockerfile and compose.yaml pass is one the server accepts.

use bedrock_chat::settings::Settings;
use std::collections::HashMap;

fn read(path: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `KEY=value` pairs of the Dockerfile's `ENV` instructions (with `\`
/// continuations).
fn dockerfile_env(dockerfile: &str) -> HashMap<String, String> {
    let joined = dockerfile.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| line.strip_prefix("ENV "))
        .flat_map(|pairs| pairs.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The app service's settings in compose.yaml, `${VAR:-default}` taken as
/// its default.
fn compose_env(compose: &str) -> HashMap<String, String> {
    compose
        .lines()
        .filter_map(|line| line.trim().split_once(": "))
        .filter(|(key, _)| key.starts_with("BEDROCK_CHAT_") || *key == "DATABASE_URL")
        .map(|(key, value)| {
            let value = match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                Some(var) => var.split_once(":-").map_or("", |(_, default)| default),
                None => value,
            };
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn the_image_is_built_by_dev_release_and_runs_what_it_makes() {
    let dockerfile = read("Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("RUN ./dev"))
        .collect();
    assert_eq!(
        instructions,
        ["RUN ./dev setup release", "RUN ./dev release"],
        "the image builds as a developer's release build does"
    );
    let dev = read("dev");
    assert!(dev.contains("release) setup_rust; setup_npm_packages ;;"));
    assert!(dev.contains("cargo leptos build --release"));

    // What `cargo leptos build --release` makes, where Cargo.toml says.
    let manifest = read("Cargo.toml");
    assert!(manifest.contains("site-root = \"target/site\""));
    assert!(manifest.contains("output-name = \"bedrock-chat\""));
    assert!(dockerfile.contains("COPY --from=build /src/target/release/bedrock-chat /app/bedrock-chat"));
    assert!(dockerfile.contains("COPY --from=build /src/target/site /app/site"));
    let env = dockerfile_env(&dockerfile);
    assert_eq!(env["LEPTOS_SITE_ROOT"], "/app/site");
    assert_eq!(env["LEPTOS_OUTPUT_NAME"], "bedrock-chat");

    // A toolchain at least as new as the crate needs.
    let image = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .expect("a rust build stage");
    let version = image.split('-').next().unwrap();
    let needed = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .unwrap()
        .trim_end_matches('"');
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(
        parse(version) >= parse(needed),
        "rust:{version} builds rust-version {needed}"
    );
}

#[test]
fn the_image_runs_as_a_user_with_its_data_on_a_volume_and_a_health_check() {
    let dockerfile = read("Dockerfile");
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "not root: {user}"
    );
    let env = dockerfile_env(&dockerfile);
    assert!(dockerfile.contains(&format!("VOLUME [\"{}\"]", env["BEDROCK_CHAT_STORAGE_DATA_DIR"])));
    let settings = Settings::built_in_with(&env).expect("the image's settings are valid");
    let port = settings.server.site_addr.port();
    assert!(
        settings.server.site_addr.ip().is_unspecified(),
        "reachable from outside the container"
    );
    assert!(dockerfile.contains(&format!("EXPOSE {port}")));
    assert!(dockerfile.contains(&format!("curl -fsS http://127.0.0.1:{port}/healthz")));
}

#[test]
fn compose_passes_settings_the_server_accepts() {
    let compose = read("compose.yaml");
    let mut env = dockerfile_env(&read("Dockerfile"));
    let passed = compose_env(&compose);
    assert!(
        passed["DATABASE_URL"].starts_with("postgres://"),
        "compose runs with PostgreSQL"
    );
    env.extend(passed);
    let settings = Settings::built_in_with(&env).expect("compose's settings are valid");
    assert!(settings.storage.url().starts_with("postgres://"));
    assert_eq!(settings.server.hosts(), ["localhost"]);
}
