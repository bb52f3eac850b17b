//! One log line per request, and the request id that ties an error body to
//! its line.
//!
//! The line names the method, the route (the matched pattern, never a path
//! with ids or user text in it), the status, the latency (to the response's
//! head: a streamed answer has its own line when it ends), the client's
//! address, a one-way tag of the owner, the request id and, for errors, the
//! error's code. The id is set as `X-Request-Id` and in every error body
//! (see [`current_request_id`]). With traces on, the request's span is the
//! root of its trace, and the request id is the trace id.

use super::error::LoggedCode;
use super::identity::{OwnerTag, Requester};
use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderValue, Method},
    middleware::Next,
    response::Response,
};
use std::time::Instant;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled (in its task), if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

fn new_request_id() -> String {
    let mut bytes = [0_u8; 8];
    getrandom::fill(&mut bytes).expect("the system has randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Middleware: gives the request an id and logs it when answered.
pub async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    // The request's trace span (exported when traces are on: then its trace
    // id is the request id, so an error body leads to its trace).
    // Made only when exported: every request, static files included, passes here.
    let span = if crate::telemetry::traces::exporting() {
        tracing::info_span!(
            "request",
            http.request.method = %method,
            http.route = route.as_deref().unwrap_or(""),
            http.response.status_code = tracing::field::Empty,
            request.id = tracing::field::Empty,
        )
    } else {
        tracing::Span::none()
    };
    let id = crate::telemetry::traces::trace_id(&span).unwrap_or_else(new_request_id);
    span.record("request.id", id.as_str());
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(request).instrument(span.clone()))
        .await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    let route = route.unwrap_or_else(|| {
        // Static files and pages are answered by the fallback.
        if status == 404 {
            "(none)"
        } else {
            "(static or page)"
        }
        .to_owned()
    });
    let extensions = response.extensions();
    let peer = extensions
        .get::<Requester>()
        .map(|r| r.address.to_string())
        .unwrap_or_default();
    let owner = extensions.get::<OwnerTag>().map(|t| t.0.as_str()).unwrap_or("-");
    let error = extensions.get::<LoggedCode>().map(|c| c.0.as_str()).unwrap_or("");
    tracing::info!(
        target: "bedrock_chat::access",
        request_id = %id,
        method = %method,
        route = %route,
        status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        peer = %peer,
        owner = %owner,
        error = %error,
        "request"
    );
    count(&method, route, status, started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The request in `/metrics`. Labels stay bounded: the route is a pattern
/// (or one of two names), the method one of the standard ones.
fn count(method: &Method, route: String, status: u16, seconds: f64) {
    let method = match *method {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => method.as_str().to_owned(),
        _ => "other".to_owned(),
    };
    metrics::histogram!(crate::telemetry::HTTP_DURATION, "route" => route.clone()).record(seconds);
    metrics::counter!(
        crate::telemetry::HTTP_REQUESTS,
        "method" => method,
        "route" => route,
        "status" => status.to_string()
    )
    .increment(1);
}
