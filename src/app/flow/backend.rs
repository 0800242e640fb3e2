//! Backend calls, the I/O half: what a flow's `http` screen (a backend call) asks for is sent
//! here, over the pooled keep-alive connections of the gateway's one client (`crate::net`),
//! within the hop's deadline, with retries for
//! idempotent methods, secrets from the environment and a response cache. The pure half (the
//! screen's YAML, checks, request and answer) is `crate::flow`'s `backend` screen module.
//!
//! - Every call of a hop runs against the same deadline (the hop's, less a margin the caller
//!   keeps so that the flow's fallback screen can still be rendered and returned in time).
//! - GET, PUT, DELETE and HEAD are tried again after a connection failure or a 502, 503 or 504,
//!   as often as the screen's `retries` says and only while the deadline leaves room; other
//!   methods are sent once (the checker refuses `retries` on them).
//! - Secret placeholders are filled in from the environment just before sending; the filled-in
//!   request is never logged, cached or stored.
//! - With `cache_ttl_secs`, a successful answer is kept that long under the rendered request
//!   (placeholders, not secrets), in a moka cache with a per-entry time to live.

use crate::flow::{HttpOutcome, HttpRequest, fill_secrets};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The largest backend answer read.
const MAX_BODY: usize = 64 * 1024;
/// Entries the response cache holds at most.
const CACHE_ENTRIES: u64 = 10_000;
/// The first pause before a retry; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
/// Response headers kept for flows.
const KEPT_HEADERS: [&str; 6] = [
    "content-type",
    "location",
    "etag",
    "retry-after",
    "last-modified",
    "cache-control",
];

/// A cached answer and how long it may be served.
#[derive(Debug)]
struct Cached {
    ttl: Duration,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// Each entry lives as long as its screen's `cache_ttl_secs`.
struct PerEntryTtl;

impl moka::Expiry<String, Arc<Cached>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Cached>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The backend side of one flow app: its connection pool and its response cache.
pub(super) struct Backend {
    client: reqwest::Client,
    cache: moka::sync::Cache<String, Arc<Cached>>,
    /// The secrets the flow declared; only these are read from the environment.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("cached", &self.cache.entry_count())
            .finish()
    }
}

/// An answer, or why there was none.
type Exchange = Result<(u16, Vec<(String, String)>, String), String>;

impl Backend {
    pub(super) fn new(secrets: &[String], client: reqwest::Client) -> Backend {
        Backend {
            client,
            cache: moka::sync::Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .expire_after(PerEntryTtl)
                .build(),
            secrets: secrets.to_vec(),
        }
    }

    fn secret(&self, name: &str) -> Option<String> {
        if !self.secrets.iter().any(|s| s == name) {
            return None;
        }
        std::env::var(name).ok()
    }

    /// Makes `req`, answering by `deadline` at the latest.
    pub(super) async fn call(
        &self,
        req: HttpRequest,
        deadline: Instant,
        route: &str,
    ) -> HttpOutcome {
        let key = req.cache_ttl_secs.map(|_| req.cache_key());
        if let Some(hit) = key.as_ref().and_then(|k| self.cache.get(k)) {
            crate::metrics::flow_http(route, "cache_hit", None);
            return HttpOutcome::Response {
                status: hit.status,
                headers: hit.headers.clone(),
                body: hit.body.clone(),
                cached: true,
            };
        }
        let started = Instant::now();
        let outcome = self.send(&req, deadline, route).await;
        let label = match &outcome {
            HttpOutcome::Response { status, .. } if (200..300).contains(status) => "ok",
            HttpOutcome::Response { .. } => "status",
            HttpOutcome::Timeout => "timeout",
            HttpOutcome::Failed(_) => "connection",
        };
        crate::metrics::flow_http(route, label, Some(started.elapsed()));
        if let (
            Some(key),
            Some(ttl),
            HttpOutcome::Response {
                status,
                headers,
                body,
                ..
            },
        ) = (key, req.cache_ttl_secs, &outcome)
            && (200..300).contains(status)
            && (!req.expect_json || serde_json::from_str::<serde_json::Value>(body).is_ok())
        {
            let entry = Cached {
                ttl: Duration::from_secs(ttl),
                status: *status,
                headers: headers.clone(),
                body: body.clone(),
            };
            self.cache.insert(key, Arc::new(entry));
        }
        outcome
    }

    async fn send(&self, req: &HttpRequest, deadline: Instant, route: &str) -> HttpOutcome {
        let filled = (|| {
            let url = fill_secrets(&req.url, |n| self.secret(n))?;
            let mut headers = Vec::with_capacity(req.headers.len());
            for (k, v) in &req.headers {
                headers.push((k.clone(), fill_secrets(v, |n| self.secret(n))?));
            }
            let body = match &req.body {
                Some(b) => Some(fill_secrets(b, |n| self.secret(n))?),
                None => None,
            };
            Ok::<_, String>((url, headers, body))
        })();
        let (url, headers, body) = match filled {
            Ok(f) => f,
            Err(name) => {
                tracing::error!(secret = %name, "a flow secret is not set in the environment");
                return HttpOutcome::Failed(format!("secret {name} is not set"));
            }
        };
        let url = match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => u,
            // The URL is not logged: it may hold a secret or subscriber data.
            _ => return HttpOutcome::Failed("not an http(s) URL".into()),
        };
        let idempotent = crate::flow::is_idempotent(&req.method);
        let attempts = 1 + if idempotent { req.retries } else { 0 };
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=attempts {
            let mut builder = self.client.request(req.method.clone(), url.clone());
            for (k, v) in &headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let request = match builder.body(body.clone().unwrap_or_default()).build() {
                Ok(r) => r,
                Err(e) => {
                    let why = crate::net::error_chain(&e);
                    return HttpOutcome::Failed(format!("building the request: {why}"));
                }
            };
            let result = match tokio::time::timeout_at(deadline, self.exchange(request)).await {
                Ok(r) => r,
                Err(_) => return HttpOutcome::Timeout,
            };
            let again = match &result {
                Ok((status, ..)) => matches!(status, 502..=504),
                Err(_) => true,
            };
            if again && attempt < attempts && Instant::now() + backoff < deadline {
                crate::metrics::flow_http(route, "retry", None);
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                continue;
            }
            return match result {
                Ok((status, headers, body)) => HttpOutcome::Response {
                    status,
                    headers,
                    body,
                    cached: false,
                },
                Err(why) => HttpOutcome::Failed(why),
            };
        }
        HttpOutcome::Failed("no attempt was made".into())
    }

    async fn exchange(&self, request: reqwest::Request) -> Exchange {
        // The error's source chain says why (refused, reset, closed early), never the URL.
        let resp = self
            .client
            .execute(request)
            .await
            .map_err(|e| crate::net::error_chain(&e))?;
        let status = resp.status().as_u16();
        let headers = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let v = resp.headers().get(*name)?.to_str().ok()?;
                Some((name.to_string(), v.to_string()))
            })
            .collect();
        let body = crate::net::read_limited(resp, MAX_BODY)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
    }
}
