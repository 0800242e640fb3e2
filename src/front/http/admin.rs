//! The admin listener: `/metrics` (no token) and `/admin/...` (bearer token).
//!
//! Nothing administrative is reachable on the public front. Every `/admin/...` call needs
//! `Authorization: Bearer <token>`, compared in constant time; when no token is configured, every
//! admin call is refused.

use super::{Body, json, text};
use crate::session::Registry;
use http::{Method, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Reloads flows and routes: `Ok` with a summary, or every error found (the old version keeps
/// serving).
pub type Reloader = Arc<dyn Fn() -> Result<String, Vec<String>> + Send + Sync>;

/// What the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    /// The dialogues.
    pub registry: Registry,
    /// The bearer token; `None` refuses everything.
    pub token: Option<Arc<str>>,
    /// Reloads flows.
    pub reload: Reloader,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("token_set", &self.token.is_some())
            .finish()
    }
}

/// Checks the bearer token. `Err` is the refusal to send.
fn authorize(
    req: &http::Request<Incoming>,
    token: Option<&str>,
) -> Result<(), Box<Response<Body>>> {
    let Some(token) = token else {
        return Err(Box::new(text(
            StatusCode::FORBIDDEN,
            "admin endpoints are disabled: no admin token is configured\n",
        )));
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        let mut r = text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        Err(Box::new(r))
    }
}

/// Routes one admin request.
pub async fn handle(req: http::Request<Incoming>, state: AdminState) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/metrics" {
        return if req.method() == Method::GET {
            let mut r = text(StatusCode::OK, crate::metrics::render());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        } else {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        };
    }
    if !path.starts_with("/admin/") {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if let Err(refusal) = authorize(&req, state.token.as_deref()) {
        return *refusal;
    }
    match (req.method(), path.as_str()) {
        (&Method::GET, "/admin/status") => {
            let core = state.registry.core();
            let routes = core.routes.load();
            let routes: Vec<_> = routes
                .routes()
                .iter()
                .map(|r| {
                    json!({
                        "service_code": r.service_code,
                        "app": r.app.kind(),
                        "version": r.app.version(),
                    })
                })
                .collect();
            json(
                StatusCode::OK,
                &json!({
                    "dialogues_in_memory": state.registry.live(),
                    "dialogues_persisted": core.store.live_count(),
                    "dialogues_ended": core.store.ended_count(),
                    "routes": routes,
                }),
            )
        }
        (&Method::POST, "/admin/reload") => {
            let reload = state.reload.clone();
            match tokio::task::spawn_blocking(move || reload()).await {
                Ok(Ok(summary)) => text(StatusCode::OK, format!("{summary}\n")),
                Ok(Err(errors)) => text(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "reload refused, the running version keeps serving:\n{}\n",
                        errors.join("\n")
                    ),
                ),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reload failed: {e}\n"),
                ),
            }
        }
        (_, "/admin/status" | "/admin/reload") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
