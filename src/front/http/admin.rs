//! The admin listener: `/metrics` (no token) and `/admin/...` (bearer token).
//!
//! Nothing administrative is reachable on the public front. Every `/admin/...` call needs
//! `Authorization: Bearer <token>`, compared in constant time; when no token is configured, every
//! admin call is refused.
//!
//! | call | what it does |
//! | --- | --- |
//! | `GET /admin/status` | dialogue counts and the routes in force |
//! | `POST /admin/reload` | reloads routes and flows (live dialogues keep their version) |
//! | `GET /admin/dialogues` | live dialogues, MSISDNs masked (in session keys too) |
//! | `POST /admin/dialogues/end` | ends one (`{"id": "3fa2..."}` as listed, or `{"session": "http:ATUid_..."}`), as an abort |
//! | `GET /admin/outbox` | outbox items (pending first), recipients masked |
//! | `POST /admin/outbox/requeue` | puts a failed or not-sent item back (`{"id": 42}`) |
//! | `POST /admin/push` | over SMPP: a USSN push (`{"msisdn", "text", "bind"?}`) or a network-initiated dialogue (`{"msisdn", "service_code", "bind"?}`) |
//! | `GET /admin/export/{ended,calls,outbox,journal}` | JSON lines, or CSV with `?format=csv` |
//! | `POST /admin/ui/hop` | the workbench's simulator: one hop through the public front (`ui.rs`) |
//! | `GET /admin/ui/graph?route=` | the graph of a route's flow, as JSON |
//! | `GET /admin/journeys?route=&since=` | per screen: arrived, went on, ended, timed out, aborted, median time; recent journeys |
//!
//! `/ui/` is the workbench page itself (`ui.rs`): its files need no token, its calls do.

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
    /// The SMPP front, for pushes, when one runs.
    pub smpp: Option<Arc<crate::front::smpp::SmppFront>>,
    /// Largest accepted request body.
    pub max_body: usize,
    /// The workbench's way to the public front (`None`: no simulator).
    pub ui: Option<super::ui::UiState>,
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
    if req.method() == Method::GET
        && let Some(page) = super::ui::asset(&path)
    {
        return page;
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
                    "dialogues_passivated": state.registry.passivated(),
                    // In cluster mode: the cluster's, from Redis (tombstones there are not
                    // counted: they expire by themselves).
                    "dialogues_persisted": match &core.cluster {
                        Some(cluster) => cluster.dialogues.live_count().await.ok(),
                        None => Some(core.store.live_count()),
                    },
                    "dialogues_ended": match &core.cluster {
                        Some(cluster) => cluster.dialogues.ended_count().await.ok(),
                        None => Some(core.store.ended_count()),
                    },
                    "tombstones_kept": match &core.cluster {
                        Some(_) => None,
                        None => Some(core.store.tombstone_count()),
                    },
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
        (&Method::GET, "/admin/dialogues") => dialogues(&state).await,
        (&Method::GET, p) if p.starts_with("/admin/export/") => {
            let format = req.uri().query().unwrap_or_default().contains("format=csv");
            export(&state, &p["/admin/export/".len()..], format).await
        }
        (&Method::GET, "/admin/outbox") => outbox(&state).await,
        (&Method::GET, "/admin/ui/graph") => super::ui::graph(&state, req.uri().query()),
        (&Method::GET, "/admin/journeys") => super::ui::journeys(&state, req.uri().query()).await,
        (
            &Method::POST,
            "/admin/dialogues/end" | "/admin/outbox/requeue" | "/admin/push" | "/admin/ui/hop",
        ) => {
            let body = match super::read_body(req, state.max_body).await {
                Ok(b) => b,
                Err(e) => return e.response(),
            };
            let Ok(args) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return text(StatusCode::BAD_REQUEST, "the body must be a JSON object\n");
            };
            match path.as_str() {
                "/admin/dialogues/end" => end_dialogue(&state, &args).await,
                "/admin/outbox/requeue" => requeue(&state, &args).await,
                "/admin/ui/hop" => super::ui::hop(&state, &args).await,
                _ => push(&state, &args).await,
            }
        }
        (
            _,
            "/admin/status"
            | "/admin/reload"
            | "/admin/dialogues"
            | "/admin/dialogues/end"
            | "/admin/outbox"
            | "/admin/outbox/requeue"
            | "/admin/push"
            | "/admin/ui/hop"
            | "/admin/ui/graph"
            | "/admin/journeys",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `GET /admin/export/{ended|calls|outbox|journal}[?format=csv]`: everything kept of that kind,
/// for billing reconciliation before retention removes it.
async fn export(state: &AdminState, what: &str, csv: bool) -> Response<Body> {
    use crate::retention::{Format, Kind, export, write_documents};
    let kind: Kind = match what.parse() {
        Ok(k) => k,
        Err(e) => return text(StatusCode::NOT_FOUND, format!("{e}\n")),
    };
    let format = if csv { Format::Csv } else { Format::JsonLines };
    let store = state.registry.core().store.clone();
    let written = match super::cluster_admin::documents(state, kind).await {
        // The cluster's, in Redis.
        Some(docs) => Ok(docs.and_then(|docs| {
            let mut out = Vec::new();
            write_documents(&docs, format, &mut out).map(|_| out)
        })),
        None => {
            tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                export(&store, kind, format, &mut out).map(|_| out)
            })
            .await
        }
    };
    match written {
        Ok(Ok(bytes)) => {
            let mut r = text(StatusCode::OK, String::from_utf8_lossy(&bytes).into_owned());
            let ct = if csv {
                "text/csv; charset=utf-8"
            } else {
                "application/x-ndjson"
            };
            r.headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
            r
        }
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// Every live dialogue's key and persisted state: this node's store's, or in cluster mode the
/// cluster's (read from Redis).
async fn live_states(state: &AdminState) -> Result<Vec<(String, Vec<u8>)>, String> {
    match &state.registry.core().cluster {
        Some(cluster) => cluster
            .dialogues
            .live_states()
            .await
            .map_err(|e| e.to_string()),
        None => Ok(state
            .registry
            .core()
            .store
            .live_entries()
            .filter_map(Result::ok)
            .collect()),
    }
}

/// Live dialogues (persisted state), MSISDNs masked.
async fn dialogues(state: &AdminState) -> Response<Body> {
    let now = crate::clock::now_ms();
    let mut out = Vec::new();
    let live = match live_states(state).await {
        Ok(live) => live,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    };
    for (key, bytes) in live {
        let Ok(d) = serde_json::from_slice::<crate::session::state::Dialogue>(&bytes) else {
            continue;
        };
        out.push(json!({
            // The key as logged (`session=` in log lines), and as `/admin/dialogues/end` takes
            // it; the key itself carries the MSISDN over SMPP, so it is shown masked.
            "id": crate::session::log_id(&key),
            "session": crate::msisdn::mask_numbers(&key),
            "msisdn": d.msisdn.masked().to_string(),
            "service_code": d.route,
            "front": d.front.as_str(),
            "hops": d.hops,
            // The screen on display (a flow's), for the admin page's inspector.
            "screen": match &d.app {
                Some(crate::app::AppState::Flow(f)) => Some(f.screen()),
                _ => None,
            },
            "age_ms": now.saturating_sub(d.started_ms),
            "idle_ms": now.saturating_sub(d.last_hop_ms),
        }));
    }
    json(StatusCode::OK, &json!({ "dialogues": out }))
}

/// Ends one live dialogue, named by its `session` key or by its `id` (as `/admin/dialogues`
/// and the logs show it).
async fn end_dialogue(state: &AdminState, args: &serde_json::Value) -> Response<Body> {
    let field = |name| args.get(name).and_then(|s| s.as_str());
    let session: crate::hop::SessionKey = match (field("session"), field("id")) {
        (Some(session), _) => session.into(),
        (None, Some(id)) => {
            let live = match live_states(state).await {
                Ok(live) => live,
                Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
            };
            let found = live
                .into_iter()
                .map(|(key, _)| key)
                .find(|key| crate::session::log_id(key) == id);
            match found {
                Some(key) => key.into(),
                None => {
                    return text(StatusCode::NOT_FOUND, "no live dialogue with that id\n");
                }
            }
        }
        (None, None) => {
            return text(StatusCode::BAD_REQUEST, "missing \"session\" or \"id\"\n");
        }
    };
    if state.registry.abort(session).await {
        tracing::info!("dialogue ended by an operator");
        json(StatusCode::OK, &json!({ "ended": true }))
    } else {
        text(
            StatusCode::NOT_FOUND,
            "no live dialogue with that session\n",
        )
    }
}

/// Outbox items, pending first, recipients masked.
async fn outbox(state: &AdminState) -> Response<Body> {
    let mut items = match state.registry.core().outbox().list().await {
        Ok(items) => items,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    };
    items.sort_by_key(|i| (i.status != crate::outbox::Status::Pending, i.id));
    let out: Vec<_> = items
        .iter()
        .map(|i| {
            let to = i.effect.masked_recipient();
            json!({
                "id": i.id,
                "kind": i.effect.kind(),
                "to": to,
                "status": i.status,
                "attempts": i.attempts,
                "created_ms": i.created_ms,
                "not_before_ms": i.not_before_ms,
                "last_error": i.last_error,
            })
        })
        .collect();
    json(StatusCode::OK, &json!({ "items": out }))
}

async fn requeue(state: &AdminState, args: &serde_json::Value) -> Response<Body> {
    let Some(id) = args.get("id").and_then(|i| i.as_u64()) else {
        return text(StatusCode::BAD_REQUEST, "missing \"id\"\n");
    };
    match crate::outbox::requeue_on(&state.registry.core().outbox(), id).await {
        Ok(true) => {
            state.registry.core().store.outbox_signal().notify_one();
            json(StatusCode::OK, &json!({ "requeued": id }))
        }
        Ok(false) => text(StatusCode::NOT_FOUND, "no outbox item with that id\n"),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

async fn push(state: &AdminState, args: &serde_json::Value) -> Response<Body> {
    use crate::front::smpp::SmppError;
    let field = |name| args.get(name).and_then(|s| s.as_str());
    let (msisdn, message, code) = (field("msisdn"), field("text"), field("service_code"));
    let (Some(msisdn), true) = (msisdn, message.is_some() != code.is_some()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "\"msisdn\" and one of \"text\" (a USSN notification) or \"service_code\" (a network-initiated dialogue) are required\n",
        );
    };
    let Some(smpp) = &state.smpp else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no SMPP bind is configured\n",
        );
    };
    let bind = field("bind");
    let pusher = smpp.pusher();
    let result = match (message, code) {
        (Some(message), _) => pusher
            .push_ussn(bind, msisdn, message)
            .await
            .map(|()| json!({ "pushed": true })),
        (None, Some(code)) => pusher
            .initiate(bind, msisdn, code)
            .await
            .map(|open| json!({ "pushed": true, "dialogue": open })),
        (None, None) => unreachable!("checked above"),
    };
    match result {
        Ok(body) => json(StatusCode::OK, &body),
        Err(e) => {
            let status = match e {
                SmppError::UnknownBind(_) => StatusCode::NOT_FOUND,
                SmppError::NotBound => StatusCode::SERVICE_UNAVAILABLE,
                SmppError::Invalid(_) => StatusCode::BAD_REQUEST,
                SmppError::Closed | SmppError::Link(_) | SmppError::Refused(_) => {
                    StatusCode::BAD_GATEWAY
                }
            };
            text(status, format!("{e}\n"))
        }
    }
}
