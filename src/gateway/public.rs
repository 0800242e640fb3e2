//! The public front's routes: each HTTP dialect's path (`POST /ussd` for Africa's Talking,
//! `/ussd/<dialect>` for the others by default), `POST /ussd/events`, `POST /voice/...`, and
//! the probes `GET /health` and `GET /ready`. Each request passes the source and shared-secret
//! guard (the probes excepted), then goes to its front's handler.

use crate::front::http::{self, dialect, events, voice};
use crate::front::smpp::SmppHealth;
use crate::session::Registry;
use crate::voice::VoicePath;
use ::http::{Method, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the public front's handler reads, shared by every request: one handle per request on
/// everything (cloning each part for every request, the store alone a dozen reference counts,
/// was a few percent of a hop).
pub(super) struct PublicFront {
    pub guard: http::guard::Guard,
    pub registry: Registry,
    pub voice: voice::VoiceState,
    /// True once every listener is up.
    pub ready: Arc<AtomicBool>,
    pub smpp_health: Option<SmppHealth>,
    pub max_body: usize,
    /// The HTTP dialects served, each at its path.
    pub dialects: Vec<Arc<dialect::Wire>>,
    /// The default country code, for phone numbers without one.
    pub cc: String,
    pub apology: String,
}

impl PublicFront {
    /// Answers one request.
    pub async fn route(
        &self,
        mut req: hyper::Request<hyper::body::Incoming>,
    ) -> Response<http::Body> {
        let f = self;
        let probe = matches!(req.uri().path(), "/health" | "/ready");
        if !probe && let Err(refusal) = f.guard.check(&mut req) {
            return *refusal;
        }
        if req.uri().path().starts_with("/voice/") {
            return match (req.method(), VoicePath::from_path(req.uri().path())) {
                (&Method::POST, Some(path)) => voice::handle(req, path, &f.voice).await,
                (_, Some(_)) => http::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
                (_, None) => http::text(StatusCode::NOT_FOUND, "not found\n"),
            };
        }
        let path = req.uri().path();
        let own = matches!(path, "/ussd/events" | "/health" | "/ready");
        if !own
            && let Some((wire, vars)) = f
                .dialects
                .iter()
                .find_map(|w| w.matches(path).map(|vars| (w, vars)))
        {
            return dialect::handle(req, wire, vars, &f.registry, f.max_body, &f.cc, &f.apology)
                .await;
        }
        match (req.method(), req.uri().path()) {
            (&Method::POST, "/ussd/events") => {
                events::handle(req, &f.registry, f.max_body, &f.cc).await
            }
            (&Method::GET, "/health") => http::text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/ready") => {
                let smpp_ok = f.smpp_health.as_ref().is_none_or(|h| h.ready());
                // In a cluster, a node whose Redis does not answer can only answer busy.
                let redis_ok = f
                    .registry
                    .core()
                    .cluster
                    .as_ref()
                    .is_none_or(|c| c.dialogues.is_up());
                if f.ready.load(Ordering::Acquire) && smpp_ok && redis_ok {
                    http::text(StatusCode::OK, "ready\n")
                } else {
                    http::text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }
            (_, "/ussd/events" | "/health" | "/ready") => {
                http::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            _ => http::text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}
