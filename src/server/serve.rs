//! The accept loop: HTTP/1.1 and HTTP/2 over hyper, with the limits that
//! keep slow or idle clients from holding the server.
//!
//! Invariants:
//! * At most `max_connections` connections are served at once; further ones
//!   wait in the kernel's accept queue (`listen_backlog` long, so that a
//!   burst is queued rather than made to retry a second later) until one
//!   closes.
//! * A client must send a request's headers within `header_read_timeout`
//!   (hyper's own timer, which axum's `serve` leaves without a clock). The
//!   same timer closes a keep-alive connection that sends nothing.
//! * A request's body must arrive whole within `body_timeout` (see
//!   [`read_body_in_time`]); an answer being streamed is never cut by either.
//! * Every request carries its peer's address as axum's `ConnectInfo`.
//! * On shutdown no new connection is accepted; open ones finish their
//!   request in flight (bounded by `close_deadline`).

use crate::errors::ErrorCode;
use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
    Router,
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
};
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
};
use tower::ServiceExt;

/// Binds `addr` with an accept queue of `backlog` connections (tokio's
/// `TcpListener::bind` leaves it at 128).
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As std and tokio do: a restarted server may bind at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// The soft limit on open files raised to the hard one: each stream takes
/// two descriptors (the client's and Bedrock's), and the usual soft limit
/// of 1,024 would stop the server at about 500 concurrent answers.
pub fn raise_open_file_limit() {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, hard)) if soft < hard => match rlimit::Resource::NOFILE.set(hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-file limit"),
            Err(err) => tracing::warn!(error = %err, soft, hard, "could not raise the open-file limit"),
        },
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "could not read the open-file limit"),
    }
}

/// How connections are limited; from `[server]` in Leptos.toml.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// How long open connections may take to finish after shutdown began.
    pub close_deadline: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open
/// connections finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Dropping the receiver tells every connection to finish gracefully.
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(stop_rx);
    });
    // Each connection task holds a receiver; all dropped means all closed.
    let (closed_tx, closed_rx) = watch::channel(());
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);

    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = stop_tx.closed() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a little rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop_tx.closed() => break,
        };
        // Send each SSE event the moment it is written: with Nagle's
        // algorithm a small write waits for the previous one's ACK, which
        // the browser delays (~40 ms), and the first delta would arrive that
        // much later.
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(Body::new))
        });
        let builder = builder.clone();
        let stop = stop_tx.clone();
        let closed = closed_rx.clone();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            tokio::pin!(connection);
            let mut stopping = std::pin::pin!(stop.closed());
            let mut stopped = false;
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    _ = &mut stopping, if !stopped => {
                        stopped = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(permit);
            drop(closed);
        });
    }
    drop(closed_rx);
    drop(listener);
    if tokio::time::timeout(limits.close_deadline, closed_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at the close deadline; exiting anyway");
    }
    Ok(())
}

/// Middleware: reads a request's body whole within `timeout` (408 and the
/// connection closed otherwise), so a client dribbling a body byte by byte
/// cannot hold a connection. The bodies this server takes are small JSON,
/// capped by `max_bytes`.
pub async fn read_body_in_time(
    axum::extract::State((timeout, max_bytes)): axum::extract::State<(Duration, usize)>,
    request: Request,
    next: Next,
) -> Response {
    if !has_body(request.headers()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // One more byte than allowed, so that the handler's own limit still
    // answers 413 with its sentence.
    let limit = max_bytes.saturating_add(1);
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(_)) => closing(super::ApiError::new(
            ErrorCode::RequestTooLarge,
            "The request is larger than this server accepts. Send a shorter message.",
            false,
        )),
        Err(_) => closing(super::ApiError::new(
            ErrorCode::RequestTimeout,
            "The request's body did not arrive in time. Check your connection and send it again.",
            true,
        )),
    }
}

/// The error's response, closing the connection (its unread body is left
/// behind).
fn closing(error: super::ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    response
}

/// Whether a request says it has a body.
pub fn has_body(headers: &header::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// The peer of a request, when it came through [`serve`].
pub fn peer_of(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
