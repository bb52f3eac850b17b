//! Browser defences, as middleware around every route.
//!
//! * **Host:** only the configured host names are served (421 otherwise), so
//!   a page on another name that resolves to a developer's local instance
//!   (DNS rebinding) cannot use it.
//! * **Cross-site requests** (the scheme of Go 1.25's
//!   `CrossOriginProtection`): a state-changing request (POST, PUT, PATCH,
//!   DELETE) with a body must be `Content-Type: application/json` (415), and
//!   one that a browser marks as cross-site (`Sec-Fetch-Site`), or whose
//!   `Origin` is not this server's own, is refused with 403. A request with
//!   neither header comes from no browser (the seed's Python client, curl)
//!   and passes: there is no victim's cookie to abuse.
//! * **Headers on every response:** `nosniff`, `Referrer-Policy`,
//!   `Cross-Origin-Opener-Policy`, `X-Frame-Options`, HSTS when cookies are
//!   secure, a strict CSP (pages set their own, with the nonce Leptos puts
//!   on its scripts: see [`page_policy`]), and `Cache-Control: no-store` on
//!   everything but the static bundle (pages and the API are private).

use super::ApiError;
use crate::errors::ErrorCode;
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;

/// What the defences need to know; built once at start.
#[derive(Debug, Clone)]
pub struct Protection {
    hosts: Arc<[String]>,
    hsts: bool,
}

impl Protection {
    pub fn new(hosts: Vec<String>, hsts: bool) -> Self {
        Self {
            hosts: hosts.into(),
            hsts,
        }
    }
}

/// The policy of a server-rendered page: scripts only from this origin,
/// Leptos's own (with this response's nonce), the theme script (by hash),
/// and WebAssembly compiled from them.
pub fn page_policy(nonce: &str, reload_port: Option<u32>) -> String {
    // cargo-leptos's live reload talks over a WebSocket of its own.
    let reload = reload_port
        .map(|port| format!(" ws://127.0.0.1:{port} ws://localhost:{port}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' '{theme}' '{early_input}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'{reload}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        theme = inline_script_hashes()[0],
        early_input = inline_script_hashes()[1],
    )
}

/// Every other response's policy: it is not a page, so nothing may run.
const NOT_A_PAGE_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// `sha256-…` of the page's two inline scripts (the theme, then the early
/// input), computed once.
fn inline_script_hashes() -> &'static [String; 2] {
    static HASHES: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    HASHES.get_or_init(|| {
        use base64::Engine;
        use sha2::Digest;
        [
            crate::preferences::THEME_SCRIPT,
            crate::early_input::EARLY_INPUT_SCRIPT,
        ]
        .map(|script| {
            let digest = sha2::Sha256::digest(script.as_bytes());
            format!(
                "sha256-{}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
    })
}

/// Middleware: refuses foreign hosts and cross-site writes, and adds the
/// security headers to whatever is answered.
pub async fn defend(State(protection): State<Protection>, request: Request, next: Next) -> Response {
    let path_is_static = is_static(request.uri().path());
    let refusal = check_host(&protection, request.headers()).or_else(|| check_cross_site(&request));
    let mut response = match refusal {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    };
    let headers = response.headers_mut();
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    if protection.hsts {
        set(headers, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        set(headers, header::CONTENT_SECURITY_POLICY, NOT_A_PAGE_POLICY);
    }
    if !path_is_static {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn set(headers: &mut HeaderMap, name: impl header::IntoHeaderName, value: &'static str) {
    headers.insert(name, HeaderValue::from_static(value));
}

/// The bundle and the public assets: the same for everyone.
fn is_static(path: &str) -> bool {
    path.starts_with("/pkg/") || path == "/favicon.svg" || path == "/favicon.ico"
}

fn check_host(protection: &Protection, headers: &HeaderMap) -> Option<ApiError> {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return Some(ApiError::bad_request(
            ErrorCode::MissingHost,
            "The request has no Host header. Send it with the name of this server.",
        ));
    };
    let name = host_name(host).to_ascii_lowercase();
    if protection.hosts.contains(&name) {
        return None;
    }
    Some(ApiError::new(ErrorCode::UnknownHost,
        format!(
            "This server does not answer to the name {name:?}. Its administrator can add it to server.allowed_hosts."
        ),
        false,
    ))
}

/// `host` without its port: `example.com:80` → `example.com`, `[::1]:3000`
/// → `[::1]`.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(end) = host.find(']') {
        return &host[..=end];
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn check_cross_site(request: &Request) -> Option<ApiError> {
    if !matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return None;
    }
    let headers = request.headers();
    if super::serve::has_body(headers) && !is_json(headers) {
        return Some(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "This endpoint takes JSON: send the body with Content-Type: application/json.",
            false,
        ));
    }
    let cross_site = || {
        ApiError::new(
            ErrorCode::CrossSiteRequest,
            "This request came from another site, so it was refused. Use bedrock-chat from its own page.",
            false,
        )
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        // "same-origin", or "none" (typed into the address bar, a bookmark).
        return match site.as_bytes() {
            b"same-origin" | b"none" => None,
            _ => Some(cross_site()),
        };
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(_, authority)| Some(authority) == host);
        if !same {
            return Some(cross_site());
        }
    }
    None
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("example.com:8080"), "example.com");
        assert_eq!(host_name("[::1]:3000"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("localhost"), "localhost");
    }

    #[test]
    fn the_inline_script_hashes_are_csp_sources() {
        let policy = page_policy("abc", None);
        assert!(policy.contains("'nonce-abc'"), "{policy}");
        for hash in inline_script_hashes() {
            assert!(hash.starts_with("sha256-") && hash.len() == 7 + 44, "{hash}");
            assert!(policy.contains(&format!("'{hash}'")), "{policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{policy}");
    }
}
