//! The HTTP listeners: the public front (aggregators' USSD callbacks in their dialects, voice,
//! health) and the admin listener.
//!
//! Plain hyper 1 with HTTP/1.1 connections: the fronts are a handful of routes, and AT speaks
//! HTTP/1.1. Each listener runs an accept loop that stops on the shutdown signal and then lets
//! the requests in flight finish (hyper-util's graceful shutdown).

pub mod admin;
mod cluster_admin;
pub mod conn;
pub mod dialect;
pub mod events;
pub mod guard;
pub mod ui;
pub mod ussd;
pub mod voice;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The response body type of every route.
pub type Body = Full<Bytes>;

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Why a request body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Over the limit: 413.
    TooLarge,
    /// The connection failed while reading: 400.
    Read(String),
}

impl BodyError {
    /// The response for this error.
    pub fn response(&self) -> Response<Body> {
        match self {
            BodyError::TooLarge => text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
            BodyError::Read(e) => text(
                StatusCode::BAD_REQUEST,
                format!("could not read body: {e}\n"),
            ),
        }
    }
}

/// Reads a whole body, refusing more than `max` bytes (checked against Content-Length first,
/// then while reading, so a lying or chunked client cannot exceed it).
pub async fn read_body(req: http::Request<Incoming>, max: usize) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let activity = req.extensions().get::<Arc<conn::Activity>>().cloned();
    match Limited::new(req.into_body(), max).collect().await {
        Ok(collected) => {
            // The request is in: its connection's deadline stops counting.
            if let Some(a) = activity {
                a.body_read();
            }
            Ok(collected.to_bytes())
        }
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

/// How a listener serves: its connection cap, its clients' deadlines and how long requests in
/// flight may take to finish once shutdown starts.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Which listener (`public`, `admin`), for logs.
    pub listener: &'static str,
    /// Open connections at most; past it, new ones are answered 503 and closed.
    pub max_connections: usize,
    /// The drain grace period.
    pub grace: Duration,
    /// Request and idle deadlines of each connection.
    pub deadlines: conn::Deadlines,
    /// Largest request head, in bytes (431 past it).
    pub max_header_bytes: usize,
}

impl ServeLimits {
    /// From `[limits]`, with the drain grace period.
    pub fn from_config(
        listener: &'static str,
        limits: &crate::config::LimitsConfig,
        grace: Duration,
    ) -> ServeLimits {
        ServeLimits {
            listener,
            max_connections: limits.max_connections,
            grace,
            deadlines: conn::Deadlines {
                request: Duration::from_secs(limits.request_timeout_secs),
                idle: Duration::from_secs(limits.idle_timeout_secs),
            },
            max_header_bytes: limits.max_header_bytes,
        }
    }
}

/// What a connection past the cap is told before it is closed.
const AT_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 28\r\n\r\ntoo many connections; retry\n";

static CAP_REFUSALS: conn::Throttled = conn::Throttled::new(Duration::from_secs(10));
static REQUEST_TIMEOUTS: conn::Throttled = conn::Throttled::new(Duration::from_secs(10));

/// Serves one connection until it ends or its watchdog closes it. Its slot (`permit`) is
/// given back, and a closing counted, before the socket closes: a client that sees the close
/// and connects again finds the slot free.
async fn serve_connection<F>(
    conn: F,
    activity: Arc<conn::Activity>,
    limits: ServeLimits,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    F: Future<Output = Result<(), hyper::Error>>,
{
    let mut conn = std::pin::pin!(conn);
    let why = tokio::select! {
        ended = &mut conn => {
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        why = activity.expired() => why,
    };
    drop(permit);
    if why == conn::Expired::Request {
        crate::metrics::http_rejected("request_timeout");
        if let Some(n) = REQUEST_TIMEOUTS.due() {
            tracing::warn!(
                listener = limits.listener,
                closed = n,
                timeout_secs = limits.deadlines.request.as_secs(),
                "connections closed: a request was not received in time (slow or stalled clients)"
            );
        }
    }
}

/// Where a listener runs its connections.
#[derive(Debug, Clone)]
pub enum Placement {
    /// On the tokio runtime that accepts them (the admin listener).
    Tokio,
    /// On the actors' shard threads, in turn (the public front): a dialogue started over a
    /// connection gets its actor on the same thread, so its hops cross no thread. About a
    /// tenth of a hop's CPU went to waking and parking threads when every hop crossed from a
    /// tokio worker to the actor's arbiter and back (docs/architecture.md).
    Shards(crate::session::Registry),
}

/// Accepts connections on `listener` and serves each with `handler` (where `placement` says)
/// until `shutdown` turns true; then stops accepting and waits (up to the grace period) for
/// requests in flight.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    limits: ServeLimits,
    placement: Placement,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(http::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Connection tasks are tracked so that none outlives `serve` (they hold the handler, and
    // through it the store). One served on a shard is tracked by a stand-in task here, which
    // ends when the connection does and, when aborted, makes the connection stop.
    let mut connections = tokio::task::JoinSet::new();
    // Tells the stand-ins of connections served on shards to stop them, and to wait until
    // they are gone (and with them their handles on the store) before `serve` returns.
    let (stop_all, stopping) = watch::channel(false);
    // At most `max_connections` open at once: past it a new connection is told 503 and
    // closed at once (counted and logged), so a flood of clients cannot exhaust file
    // descriptors or memory, and the refusal is seen rather than left in the kernel's backlog.
    // The watchdog of each connection (`conn`) closes the ones that hold a slot without
    // sending a request in time.
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The watchdog times the whole request from its first byte; hyper's own header timer
        // would also run while a keep-alive connection is idle.
        .header_read_timeout(None)
        .max_header_size(limits.max_header_bytes)
        // A client that half-closes after a complete request still gets its answer.
        .half_close(true)
        .keep_alive(true);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    // A best-effort answer: the socket is new, its send buffer empty.
                    let _ = stream.try_write(AT_CAPACITY);
                    crate::metrics::http_rejected("connections");
                    if let Some(n) = CAP_REFUSALS.due() {
                        tracing::warn!(
                            listener = limits.listener,
                            refused = n,
                            max_connections = limits.max_connections,
                            "connections refused: the listener is at its connection cap"
                        );
                    }
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let activity = conn::Activity::opened(limits.deadlines);
                let h = handler.clone();
                let seen = activity.clone();
                let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                    let h = h.clone();
                    let seen = seen.clone();
                    seen.handed(hyper::body::Body::is_end_stream(req.body()));
                    req.extensions_mut().insert(guard::Peer(peer));
                    req.extensions_mut().insert(seen.clone());
                    async move {
                        let response = h(req).await;
                        seen.answered();
                        Ok::<_, Infallible>(response)
                    }
                });
                let watcher = graceful.watcher();
                match &placement {
                    Placement::Tokio => {
                        let io = TokioIo::new(conn::Watched::new(stream, activity.clone()));
                        let conn = watcher.watch(builder.serve_connection(io, service));
                        connections.spawn(serve_connection(conn, activity, limits, permit));
                    }
                    Placement::Shards(registry) => {
                        // A socket belongs to the runtime that registered it: handed over as a
                        // std socket and registered again on the shard's own runtime.
                        let stream = match stream.into_std() {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::warn!(error = %e, "connection dropped: cannot hand it to a shard");
                                continue;
                            }
                        };
                        let builder = builder.clone();
                        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                        let (done, finished) = tokio::sync::oneshot::channel::<()>();
                        let spawned = registry.spawn_on_shard(async move {
                            let stream = match tokio::net::TcpStream::from_std(stream) {
                                Ok(s) => s,
                                Err(e) => {
                                    tracing::warn!(error = %e, "connection dropped: cannot register it on a shard");
                                    return;
                                }
                            };
                            let io = TokioIo::new(conn::Watched::new(stream, activity.clone()));
                            let conn = watcher.watch(builder.serve_connection(io, service));
                            tokio::select! {
                                _ = serve_connection(conn, activity, limits, permit) => {}
                                // The stand-in was aborted (or `serve` is gone): stop serving.
                                _ = stopped => {}
                            }
                            drop(done);
                        });
                        if spawned {
                            let mut stopping = stopping.clone();
                            connections.spawn(async move {
                                let mut finished = finished;
                                tokio::select! {
                                    _ = &mut finished => return,
                                    _ = stopping.changed() => {}
                                }
                                // Stop serving, and wait until the shard's task is done.
                                drop(stop);
                                let _ = finished.await;
                            });
                        }
                    }
                }
            }
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            // Only `true` is ever sent; a dropped sender also means stop.
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the grace period");
    }
    // The connections were told to close after their answers; those on shards are also told
    // to stop, and each is waited for until it is gone, with its handles on the store (what is
    // left after another grace period is aborted).
    let _ = stop_all.send(true);
    let drained = async {
        while let Some(joined) = connections.join_next().await {
            if let Err(e) = joined
                && e.is_panic()
            {
                tracing::error!(error = %e, "a connection task panicked");
            }
        }
    };
    if tokio::time::timeout(limits.grace, drained).await.is_err() {
        tracing::warn!("connections still open after the grace period: closed");
    }
    connections.shutdown().await;
}
