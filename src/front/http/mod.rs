//! The HTTP listeners: the public front (AT USSD callbacks, health) and the admin listener.
//!
//! Plain hyper 1 with HTTP/1.1 connections: the fronts are a handful of routes, and AT speaks
//! HTTP/1.1. Each listener runs an accept loop that stops on the shutdown signal and then lets
//! the requests in flight finish (hyper-util's graceful shutdown).

pub mod admin;
pub mod guard;
pub mod ussd;
pub mod voice;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The response body type of every route.
pub type Body = Full<Bytes>;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
    match Limited::new(req.into_body(), max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

/// How a listener serves: its connection cap and how long requests in flight may take to
/// finish once shutdown starts.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// The drain grace period.
    pub grace: Duration,
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
    // At most `max_connections` open at once: past it the listener stops accepting until one
    // closes (the kernel's backlog holds the rest), so a flood of idle clients cannot exhaust
    // file descriptors or memory.
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                // unwrap-free: the semaphore is never closed; stop serving if it were.
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
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
                let _ = stream.set_nodelay(true);
                let h = handler.clone();
                let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                    let h = h.clone();
                    req.extensions_mut().insert(guard::Peer(peer));
                    async move { Ok::<_, Infallible>(h(req).await) }
                });
                let watcher = graceful.watcher();
                match &placement {
                    Placement::Tokio => {
                        let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                        connections.spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                            drop(permit);
                        });
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
                            let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                            tokio::select! {
                                ended = conn => if let Err(e) = ended {
                                    tracing::debug!(error = %e, "connection ended with an error");
                                },
                                // The stand-in was aborted (or `serve` is gone): stop serving.
                                _ = stopped => {}
                            }
                            drop(permit);
                            drop(done);
                        });
                        if spawned {
                            connections.spawn(async move {
                                let _keep_serving = stop;
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
    connections.shutdown().await;
}
