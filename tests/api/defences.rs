//! Safe to put on the internet: the limits that protect the bill, the
//! browser defences, the connection timeouts, and answers that survive the
//! database going away or the server being killed. The real app over HTTP
//! (and raw TCP for the slow clients), the real SDK against the simulator,
//! SQLite and PostgreSQL.

use crate::support::*;
use bedrock_chat::bedrock::simulator;
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response's status and JSON body (or its text).
async fn status_and_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn conversation_path(id: &str) -> String {
    format!("/api/conversations/{id}")
}

async fn stored_answer(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get_json(&conversation_path(id)).await;
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().unwrap().last().unwrap().clone()
}

// --- limits ---------------------------------------------------------------

#[tokio::test]
async fn concurrent_answers_per_owner_are_capped_while_another_owner_is_served() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_LIMITS_MAX_CONCURRENT_ANSWERS_PER_OWNER", "3")]).await;
    // The browser has its cookie (it loaded the page): one owner.
    let (status, _) = app.get_json("/api/conversations").await;
    assert_eq!(status, 200);
    let slow = "Slow [sim tokens=40 delay_ms=100]";
    let responses = futures::future::join_all((0..20).map(|_| app.send(None, slow))).await;
    let mut kept = Vec::new();
    let mut refused = 0;
    for response in responses {
        match response.status() {
            StatusCode::OK => kept.push(EventReader::new(response)),
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after: u64 = response.headers()[header::RETRY_AFTER]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry_after >= 1);
                let (_, body) = status_and_body(response).await;
                assert_eq!(body["error"]["code"], "too_many_answers", "{body}");
                assert!(
                    body["error"]["message"].as_str().unwrap().contains("3 answers"),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((kept.len(), refused), (3, 17));
    // Another owner is served meanwhile.
    let other = send_as(&new_user(), &app.base, None, "Me [sim tokens=3]").await;
    assert_eq!(other.status(), 200);
    assert_eq!(names(&read_events(other).await).last(), Some(&"done"));
    // The refused messages reached no model: three streams for the owner,
    // one for the other.
    assert_eq!(app.sim.streams_started(), 4);
    drop(kept);
}

#[tokio::test]
async fn dropping_the_cookie_does_not_escape_the_per_address_limits() {
    let app = spawn_app_with(&[
        ("BEDROCK_CHAT_LIMITS_MESSAGES_PER_MINUTE_PER_ADDRESS", "5"),
        ("BEDROCK_CHAT_LIMITS_NEW_OWNERS_PER_ADDRESS_PER_HOUR", "100"),
    ])
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        // A new browser each time: no cookie, a new owner.
        let response = send_as(&new_user(), &app.base, None, "Hi [sim tokens=2]").await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let (_, body) = status_and_body(response).await;
            assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        } else {
            read_events(response).await;
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);

    let app = spawn_app_with(&[("BEDROCK_CHAT_LIMITS_NEW_OWNERS_PER_ADDRESS_PER_HOUR", "3")]).await;
    // A browser that loads the page first (and so has its cookie) is still
    // new until its first message is stored: it counts as well.
    let first = app.chat(None, "Known browser [sim tokens=2]").await;
    assert_eq!(names(&first).last(), Some(&"done"));
    let mut codes = Vec::new();
    for _ in 0..4 {
        let (status, body) =
            status_and_body(send_as(&new_user(), &app.base, None, "Hi [sim tokens=2]").await).await;
        codes.push(if status == 200 {
            "ok".to_owned()
        } else {
            body["error"]["code"].as_str().unwrap().to_owned()
        });
    }
    assert_eq!(codes, ["ok", "ok", "too_many_new_users", "too_many_new_users"]);
    let fetched_first = new_user();
    let _ = get_json_as(&fetched_first, &app.url("/api/conversations")).await;
    let (status, body) = status_and_body(send_as(&fetched_first, &app.base, None, "Hi").await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_new_users"))
    );
    // An owner that has stored messages keeps going.
    let events = app.chat(None, "Known browser again [sim tokens=2]").await;
    assert_eq!(names(&events).last(), Some(&"done"));
}

#[tokio::test]
async fn anonymous_owners_can_be_refused_entirely() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_IDENTITY_ALLOW_ANONYMOUS", "false")]).await;
    let (status, body) = status_and_body(app.send(None, "Hello").await).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "anonymous_not_allowed");
    assert!(app.sim.received().is_empty());
}

#[tokio::test]
async fn the_daily_budget_refuses_once_spent_and_starts_again_the_next_day() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_LIMITS_DAILY_TOKENS_PER_OWNER", "60")]).await;
    let id = conversation_id(&app.chat(None, "Spend [sim tokens=40]").await);
    let events = app.chat(Some(&id), "More [sim tokens=40]").await;
    assert_eq!(names(&events).last(), Some(&"done"));
    let refused = app.send(Some(&id), "Still more [sim tokens=40]").await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=24 * 3600).contains(&retry_after), "{retry_after}");
    let (_, body) = status_and_body(refused).await;
    assert_eq!(body["error"]["code"], "daily_budget_spent");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("midnight UTC"));
    // Deleting the conversation gives nothing back.
    let deleted = app
        .http
        .delete(app.url(&conversation_path(&id)))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.send(None, "New chat [sim tokens=2]").await.status(), 429);

    app.clock.advance(Duration::from_secs(24 * 3600));
    let events = app.chat(None, "A new day [sim tokens=2]").await;
    assert_eq!(names(&events).last(), Some(&"done"));
}

#[tokio::test]
async fn a_hang_up_right_after_start_stops_the_answer_within_the_short_grace() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_STREAMS_FIRST_DELTA_GRACE_SECS", "0.5")]).await;
    let started = Instant::now();
    let response = app
        .send(
            None,
            "Fire and forget [sim tokens=50 first_token_ms=3000 delay_ms=50]",
        )
        .await;
    let mut body = EventReader::new(response);
    let seen = body.read_until(|e| !e.is_empty()).await.to_vec();
    let id = conversation_id(&seen);
    drop(body);
    assert!(
        app.sim.wait_streams_dropped(1, Duration::from_secs(5)).await,
        "the Bedrock stream is dropped"
    );
    let stopped_after = started.elapsed();
    assert!(
        stopped_after < Duration::from_millis(2800),
        "{stopped_after:?}: before the first token, not after the long grace"
    );
    assert!(
        eventually(LIMIT, || async {
            stored_answer(&app, &id).await["status"] == "interrupted"
        })
        .await,
        "stored as interrupted"
    );
}

#[tokio::test]
async fn the_compatibility_endpoint_trims_history_and_can_be_turned_off() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_BEDROCK_HISTORY_TOKEN_BUDGET", "2000")]).await;
    let long = "word ".repeat(400);
    let mut turns: Vec<(&str, &str)> = Vec::new();
    for _ in 0..49 {
        turns.push(("user", &long));
        turns.push(("assistant", &long));
    }
    turns.push(("user", "And now? [sim tokens=3]"));
    let response = reqwest::Client::new()
        .post(app.url("/api/chat"))
        .json(&conversation(&turns))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let sent = app.sim.received().last().unwrap().messages.len();
    assert!(sent < 10, "{sent} of 99 messages reached the model");
    assert!(app
        .sim
        .received()
        .last()
        .unwrap()
        .messages
        .last()
        .unwrap()
        .text
        .starts_with("And now?"));

    let app = spawn_app_with(&[("BEDROCK_CHAT_SERVER_COMPAT_API", "false")]).await;
    let (status, body) =
        status_and_body(app.post_json("/api/chat", &conversation(&[("user", "hi")])).await).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "compat_api_off");
}

#[tokio::test]
async fn the_compatibility_endpoint_is_refused_while_shutting_down_and_drained() {
    let mut app = spawn_app().await;
    let slow = reqwest::Client::new()
        .post(app.url("/api/chat"))
        .json(&conversation(&[("user", "Slow [sim tokens=20 delay_ms=100]")]))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 200);
    assert_eq!(app.generations.running(), 1, "the drain counts it");
    drop(app.stop.take());
    let refused = eventually(LIMIT, || async {
        let response = reqwest::Client::new()
            .post(app.url("/api/chat"))
            .json(&conversation(&[("user", "hi")]))
            .send()
            .await;
        matches!(response, Ok(r) if r.status() == 503)
    })
    .await;
    assert!(refused, "a new compatibility request is refused while draining");
    // The one in flight is let finish.
    let text = slow.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

// --- cross-site requests, hosts, headers ------------------------------------

/// Every state-changing endpoint, with a valid JSON body where it takes one.
fn state_changing(conversation: &str, message: &str, answer: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/api/chat/stream".into(),
            Some(json!({"content": "hi"})),
        ),
        (Method::POST, "/api/chat".into(), Some(conversation_json())),
        (
            Method::POST,
            format!("/api/conversations/{conversation}/regenerate"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/conversations/{conversation}/edit"),
            Some(json!({"message_id": message, "content": "x"})),
        ),
        (
            Method::PUT,
            format!("/api/conversations/{conversation}/settings"),
            Some(json!({})),
        ),
        (
            Method::PATCH,
            format!("/api/conversations/{conversation}"),
            Some(json!({"title": "t"})),
        ),
        (Method::DELETE, format!("/api/conversations/{conversation}"), None),
        (Method::POST, format!("/api/generations/{answer}/cancel"), None),
    ]
}

fn conversation_json() -> Value {
    conversation(&[("user", "hi [sim tokens=2]")])
}

#[tokio::test]
async fn cross_site_writes_are_refused_on_every_state_changing_endpoint() {
    let app = spawn_app().await;
    let events = app.chat(None, "Mine [sim tokens=2]").await;
    let id = conversation_id(&events);
    let start = json(&events[0]);
    let (message, answer) = (
        start["user_message_id"].as_str().unwrap(),
        start["answer_id"].as_str().unwrap(),
    );
    let origin = app.base.clone();
    let mut checked = 0;
    for (method, path, body) in state_changing(&id, message, answer) {
        let request = |content_type: Option<&str>, extra: &[(&str, &str)]| {
            let mut r = app.http.request(method.clone(), app.url(&path));
            if let Some(body) = &body {
                r = r.body(body.to_string());
            }
            if let Some(ct) = content_type {
                r = r.header(header::CONTENT_TYPE, ct);
            }
            for (k, v) in extra {
                r = r.header(*k, *v);
            }
            r
        };
        if body.is_some() {
            for ct in [
                Some("text/plain"),
                Some("application/x-www-form-urlencoded"),
                Some("multipart/form-data; boundary=x"),
                None,
            ] {
                let (status, error) = status_and_body(request(ct, &[]).send().await.unwrap()).await;
                assert_eq!(status, 415, "{method} {path} as {ct:?}: {error}");
                assert_eq!(error["error"]["code"], "unsupported_media_type");
                checked += 1;
            }
        }
        let json_type = body.as_ref().map(|_| "application/json");
        for headers in [
            &[("origin", "http://evil.example")][..],
            &[("origin", "null")],
            &[("sec-fetch-site", "cross-site")],
            &[("sec-fetch-site", "same-site"), ("origin", "http://127.0.0.1:1")],
        ] {
            let (status, error) = status_and_body(request(json_type, headers).send().await.unwrap()).await;
            assert_eq!(status, 403, "{method} {path} with {headers:?}: {error}");
            assert_eq!(error["error"]["code"], "cross_site_request");
            assert!(error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("another site"));
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * 4 + 8 * 4);
    // Nothing was changed by any of them.
    let (_, list) = app.get_json("/api/conversations").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0]["title"].as_str().unwrap().starts_with("Mine"), "{list}");

    // What the page's own fetch sends is served...
    let same_origin = app
        .http
        .patch(app.url(&conversation_path(&id)))
        .header("origin", origin.as_str())
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"title": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200);
    // ...and so is the seed's Python client (JSON, no Origin, no cookie).
    let seed = reqwest::Client::new()
        .post(app.url("/api/chat"))
        .json(&conversation_json())
        .send()
        .await
        .unwrap();
    assert_eq!(seed.status(), 200);
}

#[tokio::test]
async fn a_foreign_host_is_refused_and_listed_ones_are_served() {
    let app = spawn_app().await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    for (host, expected) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("attacker.example:{port}"), 421),
        ("rebind.example".to_owned(), 421),
    ] {
        let response = app
            .http
            .get(app.url("/api/conversations"))
            .header(header::HOST, &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{host}");
        if expected == 421 {
            let (_, body) = status_and_body(response).await;
            assert_eq!(body["error"]["code"], "unknown_host");
        }
    }
    let app = spawn_app_with(&[("BEDROCK_CHAT_SERVER_ALLOWED_HOSTS", "chat.example.com")]).await;
    let ok = app
        .http
        .get(app.url("/api/conversations"))
        .header(header::HOST, "chat.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let refused = app.http.get(app.url("/api/conversations")).send().await.unwrap();
    assert_eq!(refused.status(), 421, "127.0.0.1 is no longer listed");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let events = app.chat(None, "Hello [sim tokens=3]").await;
    let id = conversation_id(&events);
    let page = app.http.get(app.url(&format!("/c/{id}"))).send().await.unwrap();
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the page's policy names a nonce")
        .to_owned();
    for directive in [
        "script-src 'self'",
        "'wasm-unsafe-eval'",
        "'sha256-",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let cache = page.headers()[header::CACHE_CONTROL].to_str().unwrap().to_owned();
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "Leptos's scripts carry the policy's nonce"
    );
    assert_eq!(cache, "no-store");

    let stream = app.send(Some(&id), "Again [sim tokens=2]").await;
    let cancel = app
        .http
        .post(app.url("/api/generations/00000000-0000-7000-8000-000000000000/cancel"))
        .send()
        .await
        .unwrap();
    let checks = [
        ("page /", app.http.get(app.url("/")).send().await.unwrap(), true),
        (
            "API",
            app.http.get(app.url("/api/conversations")).send().await.unwrap(),
            true,
        ),
        ("event stream", stream, true),
        ("error", cancel, true),
        (
            "static file",
            app.http.get(app.url("/favicon.svg")).send().await.unwrap(),
            false,
        ),
    ];
    for (what, response, private) in checks {
        let h = response.headers();
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{what}");
        assert!(h.contains_key(header::REFERRER_POLICY), "{what}");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin", "{what}");
        assert!(
            h[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{what}"
        );
        assert!(h.contains_key("x-request-id"), "{what}");
        assert_eq!(
            h.get(header::CACHE_CONTROL).map(|v| v.to_str().unwrap()) == Some("no-store"),
            private,
            "{what}: {h:?}"
        );
        assert!(
            !h.contains_key(header::STRICT_TRANSPORT_SECURITY),
            "{what}: no HSTS without secure cookies"
        );
    }

    let secure = spawn_app_with(&[("BEDROCK_CHAT_IDENTITY_SECURE_COOKIE", "true")]).await;
    let response = reqwest::Client::new().get(secure.url("/")).send().await.unwrap();
    assert!(response.headers().contains_key(header::STRICT_TRANSPORT_SECURITY));
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-bc_owner=") && cookie.contains("Secure"),
        "{cookie}"
    );
}

/// A page keeps its own policy while static files are served beside it.
/// (leptos_axum's static-file handler made its owner a child of whatever
/// page was rendering on the same worker thread, and took that page's
/// headers: the page went out with the not-a-page policy and never ran.)
#[tokio::test]
async fn pages_keep_their_policy_while_static_files_are_served_at_once() {
    // The file the app serves from its site root, as `cargo leptos build`
    // puts it there (the Rust tests run before that build on a fresh
    // checkout).
    let site_favicon = std::path::Path::new("target/site/favicon.svg");
    if !site_favicon.exists() {
        std::fs::create_dir_all("target/site").unwrap();
        std::fs::copy("public/favicon.svg", site_favicon).unwrap();
    }
    let app = spawn_app().await;
    let mut id = None;
    for n in 0..20 {
        let events = app
            .chat(id.as_deref(), &format!("Message {n} [sim tokens=20]"))
            .await;
        id.get_or_insert_with(|| conversation_id(&events));
    }
    let page = app.url(&format!("/c/{}", id.unwrap()));
    let policy = |response: &reqwest::Response| {
        response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned()
    };
    for round in 0..5 {
        let pages = (0..16).map(|_| app.http.get(&page).send());
        let files = (0..64).map(|_| app.http.get(app.url("/favicon.svg")).send());
        let (pages, files) = tokio::join!(futures::future::join_all(pages), futures::future::join_all(files));
        for response in pages {
            let response = response.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let csp = policy(&response);
            assert!(
                csp.contains("'nonce-"),
                "round {round}: a page went out with {csp}"
            );
        }
        for response in files {
            let response = response.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let csp = policy(&response);
            assert!(
                !csp.contains("'nonce-"),
                "round {round}: {} took a page's policy: {csp}",
                response.url()
            );
        }
    }
}

#[tokio::test]
async fn error_bodies_carry_the_request_id_of_their_log_line() {
    let app = spawn_app().await;
    let response = app.post_json("/api/chat/stream", &json!({"content": ""})).await;
    let header_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (status, body) = status_and_body(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["request_id"], header_id.as_str());
    assert_eq!(header_id.len(), 16);
}

// --- identity -------------------------------------------------------------

#[tokio::test]
async fn the_trusted_header_must_be_single_and_come_from_a_trusted_proxy() {
    let app = spawn_app_with(&[("BEDROCK_CHAT_IDENTITY_TRUSTED_USER_HEADER", "X-Forwarded-User")]).await;
    let response = reqwest::Client::new()
        .get(app.url("/api/conversations"))
        .header("x-forwarded-user", "alice")
        .header("x-forwarded-user", "mallory")
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(response).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "repeated_user_header");

    let user = |app: &TestApp| {
        reqwest::Client::new()
            .get(app.url("/api/conversations"))
            .header("x-forwarded-user", "alice")
            .send()
    };
    let elsewhere = spawn_app_with(&[
        ("BEDROCK_CHAT_IDENTITY_TRUSTED_USER_HEADER", "X-Forwarded-User"),
        ("BEDROCK_CHAT_IDENTITY_TRUSTED_PROXIES", "10.0.0.0/8"),
    ])
    .await;
    let (status, body) = status_and_body(user(&elsewhere).await.unwrap()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "untrusted_proxy");
    let through = spawn_app_with(&[
        ("BEDROCK_CHAT_IDENTITY_TRUSTED_USER_HEADER", "X-Forwarded-User"),
        ("BEDROCK_CHAT_IDENTITY_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    assert_eq!(user(&through).await.unwrap().status(), 200);
}

#[test]
fn a_misspelt_variable_or_a_short_secret_stops_the_start_with_a_sentence() {
    for (var, value, says) in [
        (
            "BEDROCK_CHAT_IDENTITY_TRUSTED_USER_HEDER",
            "X-User",
            "did you mean BEDROCK_CHAT_IDENTITY_TRUSTED_USER_HEADER",
        ),
        ("BEDROCK_CHAT_IDENTITY_COOKIE_SECRET", "short", "at least 32"),
        (
            "BEDROCK_CHAT_STORAGE_DATABASE_URL",
            "mysql://me:s3cret@db/x",
            "mysql://me:***@db/x",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_bedrock-chat"))
            .env("BEDROCK_CHAT_SERVER_SITE_ADDR", "127.0.0.1:0")
            .env("BEDROCK_CHAT_STORAGE_DATA_DIR", dir.path())
            .env(var, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{var} must stop the start");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{var}: {stderr}");
        assert!(!stderr.contains("s3cret"), "a password was printed: {stderr}");
    }
}

#[tokio::test]
async fn the_data_directory_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    let Db::Sqlite(dir) = &app.db else { unreachable!() };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&dir.path().join("bedrock-chat.sqlite3")), 0o600);
    assert_eq!(mode(&dir.path().join("cookie-secret")), 0o600);
}

// --- slow clients ---------------------------------------------------------

/// Opens `n` connections that each run `dribble`, and returns how long each
/// took to be closed by the server (bounded by `limit`), with what it said.
async fn dribblers(base: &str, n: usize, head: String, limit: Duration) -> Vec<(Option<Duration>, String)> {
    let addr = base.trim_start_matches("http://").to_owned();
    let tasks = (0..n).map(|_| {
        let addr = addr.clone();
        let head = head.clone();
        tokio::spawn(async move {
            let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
            socket.write_all(head.as_bytes()).await.unwrap();
            let started = Instant::now();
            let mut said = Vec::new();
            let mut buf = [0_u8; 4096];
            while started.elapsed() < limit {
                // One more byte of a header or body every 300 ms.
                let _ = socket.write_all(b"x").await;
                match tokio::time::timeout(Duration::from_millis(300), socket.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        return (
                            Some(started.elapsed()),
                            String::from_utf8_lossy(&said).into_owned(),
                        )
                    }
                    Ok(Ok(n)) => said.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
            (None, String::from_utf8_lossy(&said).into_owned())
        })
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn slow_clients_are_cut_off_within_the_timeouts() {
    let app = spawn_app_with(&[
        ("BEDROCK_CHAT_SERVER_HEADER_READ_TIMEOUT_SECS", "1"),
        ("BEDROCK_CHAT_SERVER_REQUEST_BODY_TIMEOUT_SECS", "1"),
    ])
    .await;
    let limit = Duration::from_secs(6);
    let host = app.base.trim_start_matches("http://").to_owned();

    // Headers that never end.
    let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Slow: ");
    for (closed, _) in dribblers(&app.base, 10, head, limit).await {
        let closed = closed.expect("a header dribbler is disconnected");
        assert!(closed < Duration::from_secs(3), "{closed:?}");
    }

    // A body that never ends.
    let head = format!(
        "POST /api/chat/stream HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    for (closed, said) in dribblers(&app.base, 10, head, limit).await {
        let closed = closed.expect("a body dribbler is disconnected");
        assert!(closed < Duration::from_secs(3), "{closed:?}");
        assert!(said.starts_with("HTTP/1.1 408"), "{said}");
        assert!(said.contains("request_timeout"), "{said}");
    }

    // An idle keep-alive connection is closed by the same timer.
    let mut idle = tokio::net::TcpStream::connect(&host).await.unwrap();
    idle.write_all(format!("GET /favicon.svg HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = [0_u8; 8192];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 "));
    let started = Instant::now();
    let closed = tokio::time::timeout(limit, async {
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle connection is closed");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The server still answers, and a long answer is not cut by either.
    let events = app.chat(None, "Still here [sim tokens=30 delay_ms=100]").await;
    assert_eq!(names(&events).last(), Some(&"done"));
}

// --- the database going away, the server being killed -----------------------

/// Runs an answer whose end falls while `outage` keeps the database away
/// for `away`; the answer is stored whole once it is back, and the
/// conversation takes the next message without a restart.
async fn an_answer_outlives_a_database_outage<F, Fut, G, Gut>(app: TestApp, outage: F, recover: G)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
    G: FnOnce() -> Gut,
    Gut: std::future::Future<Output = ()>,
{
    let text = "Through the outage [sim tokens=10 delay_ms=100]";
    let response = app.send(None, text).await;
    assert_eq!(response.status(), 200);
    let mut body = EventReader::new(response);
    let id = conversation_id(body.read_until(|e| !e.is_empty()).await);
    outage().await;
    let away = Instant::now();
    // The answer's last delta comes a second later; its final save fails
    // until the database is back.
    let reading = tokio::spawn(async move { body.read_to_end().await.to_vec() });
    tokio::time::sleep(Duration::from_secs(7)).await;
    recover().await;
    let events = reading.await.unwrap();
    assert!(away.elapsed() >= Duration::from_secs(7));
    assert_eq!(
        names(&events).last(),
        Some(&"done"),
        "done once stored: {events:?}"
    );
    let expected = simulator::expected_answer(&sim_messages(&[("user", text)]));
    assert_eq!(answer_text(&events), expected);
    let stored = stored_answer(&app, &id).await;
    assert_eq!(stored["status"], "complete");
    assert_eq!(stored["content"], expected.as_str());
    let next = app.chat(Some(&id), "And after it? [sim tokens=3]").await;
    assert_eq!(names(&next).last(), Some(&"done"), "no 409, no restart");
}

#[tokio::test]
async fn an_answer_outlives_an_sqlite_write_lock_past_the_busy_timeout() {
    let app = spawn_app().await;
    let Db::Sqlite(dir) = &app.db else { unreachable!() };
    let file = dir.path().join("bedrock-chat.sqlite3");
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    // A writer of its own holds the write lock (as a backup tool or a
    // second process might), from just after the answer started.
    let holder = tokio::spawn(async move {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        go_rx.await.unwrap();
        conn.execute("BEGIN IMMEDIATE").await.unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.await;
        conn.execute("COMMIT").await.unwrap();
    });
    let mut locked = Some((go_tx, locked_rx));
    let mut release = Some(release_tx);
    an_answer_outlives_a_database_outage(
        app,
        || async {
            let (go, locked) = locked.take().unwrap();
            go.send(()).unwrap();
            locked.await.unwrap();
        },
        || async {
            release.take().unwrap().send(()).unwrap();
        },
    )
    .await;
    holder.await.unwrap();
}

#[tokio::test]
async fn an_answer_outlives_postgresql_refusing_connections() {
    let Some(db) = Db::postgres().await else { return };
    let name = db.postgres_name().unwrap().to_owned();
    let app = spawn_app_on(db, &[]).await;
    let admin = match &app.db {
        Db::Postgres { admin_url, .. } => admin_url.clone(),
        Db::Sqlite(_) => unreachable!(),
    };
    let run = |sql: String| {
        let admin = admin.clone();
        async move {
            use sqlx::{Connection, Executor};
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            conn.execute(sql.as_str()).await.unwrap();
        }
    };
    let (off, kill, on) = (
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"),
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
    );
    let (run_a, run_b) = (run, run);
    an_answer_outlives_a_database_outage(
        app,
        || async move {
            run_a(off).await;
            run_a(kill).await;
        },
        || async move { run_b(on).await },
    )
    .await;
}

#[tokio::test]
async fn a_killed_server_keeps_the_answer_up_to_its_last_checkpoint() {
    let db = Db::sqlite();
    let user = new_user();
    let mut server = ServerProcess::start(&db, &[("BEDROCK_CHAT_STREAMS_CHECKPOINT_SECS", "0.2")]);
    let text = "Keep this [sim tokens=200 delay_ms=20]";
    let response = send_as(&user, &server.base, None, text).await;
    let mut body = EventReader::new(response);
    let seen = body
        .read_until(|e| e.iter().filter(|e| e.event == "delta").count() >= 60)
        .await
        .to_vec();
    let id = conversation_id(&seen);
    let seen_text = answer_text(&seen);
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.kill();
    drop(body);

    let server = ServerProcess::start(&db, &[]);
    let (status, stored) = get_json_as(&user, &format!("{}{}", server.base, conversation_path(&id))).await;
    assert_eq!(status, 200, "{stored}");
    let answer = &stored["messages"][1];
    assert_eq!(answer["status"], "interrupted");
    let kept = answer["content"].as_str().unwrap();
    let full = simulator::expected_answer(&sim_messages(&[("user", text)]));
    assert!(full.starts_with(kept), "the checkpoint is a prefix of the answer");
    assert!(
        kept.len() >= seen_text.len(),
        "kept {} bytes; the client had seen {} bytes 0.6 s before the kill",
        kept.len(),
        seen_text.len()
    );
}

/// Marks a stored answer `streaming` again, begun long ago, as a failed
/// final save of an older version would have left it.
async fn orphan(app: &TestApp, answer: &str) {
    use sqlx::Connection;
    let Db::Sqlite(dir) = &app.db else { unreachable!() };
    let file = dir.path().join("bedrock-chat.sqlite3");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET status = 'streaming', created_at = 0 WHERE id = ?")
        .bind(answer)
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_row_left_streaming_is_not_busy_and_the_sweeper_settles_it() {
    // Busy means an answer is being written, not that a row says so.
    let app = spawn_app().await;
    let events = app.chat(None, "First [sim tokens=3]").await;
    let id = conversation_id(&events);
    orphan(&app, json(&events[0])["answer_id"].as_str().unwrap()).await;
    let events = app.chat(Some(&id), "Second [sim tokens=3]").await;
    assert_eq!(names(&events).last(), Some(&"done"));
    let (_, stored) = app.get_json(&conversation_path(&id)).await;
    assert_eq!(stored["messages"][1]["status"], "interrupted");
    assert_eq!(stored["messages"][3]["status"], "complete");

    // While the server runs, the sweeper settles one nobody touches.
    let app = spawn_app_with(&[("BEDROCK_CHAT_STREAMS_SWEEP_INTERVAL_SECS", "0.2")]).await;
    let events = app.chat(None, "Alone [sim tokens=3]").await;
    let id = conversation_id(&events);
    orphan(&app, json(&events[0])["answer_id"].as_str().unwrap()).await;
    assert!(
        eventually(LIMIT, || async {
            stored_answer(&app, &id).await["status"] == "interrupted"
        })
        .await,
        "the sweeper marks it interrupted while the server runs"
    );
}

// --- logs -----------------------------------------------------------------

#[tokio::test]
async fn requests_and_answers_are_logged_as_json_lines() {
    use std::io::BufRead;
    let db = Db::sqlite();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bedrock-chat"));
    command
        .env_remove("DATABASE_URL")
        .env("BEDROCK_CHAT_SERVER_SITE_ADDR", "127.0.0.1:0")
        .env("BEDROCK_CHAT_BEDROCK_BACKEND", "simulator")
        .env("BEDROCK_CHAT_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (key, value) in db.overrides() {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let base = loop {
        let line = lines_rx
            .recv_timeout(LIMIT)
            .expect("the server prints its address");
        if let Some(at) = line.find("http://") {
            break line[at..].split_whitespace().next().unwrap().to_owned();
        }
    };
    let user = new_user();
    let events = read_events(send_as(&user, &base, None, "Log me [sim tokens=4]").await).await;
    let id = conversation_id(&events);
    let _ = user
        .get(format!("{base}/api/conversations/not-an-id"))
        .send()
        .await
        .unwrap();

    let mut access = Vec::new();
    let mut answers = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while (access.len() < 2 || answers.is_empty()) && Instant::now() < deadline {
        let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        assert!(
            !line.contains('\x1b'),
            "no colour codes outside a terminal: {line}"
        );
        let Ok(record) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        match record["target"].as_str() {
            Some("bedrock_chat::access") => access.push(record),
            Some("bedrock_chat::answer") => answers.push(record),
            _ => {}
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let send = access
        .iter()
        .find(|r| r["fields"]["route"] == "/api/chat/stream")
        .expect("the send is logged");
    assert_eq!(send["fields"]["method"], "POST");
    assert_eq!(send["fields"]["status"], 200);
    assert_eq!(send["fields"]["peer"], "127.0.0.1");
    let owner = send["fields"]["owner"].as_str().unwrap();
    assert_eq!(owner.len(), 12, "a tag, not the owner id");
    let bad = access
        .iter()
        .find(|r| r["fields"]["status"] == 400)
        .expect("the bad id is logged");
    assert_eq!(
        bad["fields"]["route"], "/api/conversations/{id}",
        "the pattern, not the path"
    );
    assert_eq!(bad["fields"]["error"], "invalid_conversation_id");
    let answer = &answers[0]["fields"];
    assert_eq!(answer["conversation"], id.as_str());
    assert_eq!(answer["owner"], owner);
    assert_eq!(answer["status"], "complete");
    assert!(answer["tokens_out"].as_u64().unwrap() > 0, "{answer}");
    assert!(answer["model"].as_str().unwrap().contains("anthropic"));
}
