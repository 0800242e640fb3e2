//! The workbench page on the admin listener (`/ui/`): a phone simulator, a dialogue inspector
//! and a flow view, for people building USSD apps (docs/workbench.md).
//!
//! The page is three small files built into the binary (no CDN, nothing fetched from the
//! internet). They are served without the token: they hold no data. Everything the page shows
//! comes from `/admin/...` calls made with the token the page's login form keeps in the
//! browser's `sessionStorage` (never in a URL, gone with the tab).
//!
//! The simulator's hops go through the real public front, as the aggregator's do: the page
//! posts each hop to `POST /admin/ui/hop`, which sends Africa's Talking's form to the public
//! listener over loopback (with the shared secret, when one is configured: it never reaches the
//! browser) and answers what came back, with the screen's size in its alphabet, the page of a
//! paginated screen and the time the hop took. A public front that refuses loopback
//! (`allow_from`) refuses the simulator too, and the page says so.

use super::admin::AdminState;
use super::{Body, json, text};
use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// How long the simulator waits for the public front (longer than any hop's deadline).
const HOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the simulator needs to reach the public front as the aggregator does.
#[derive(Clone)]
pub struct UiState {
    /// Where the public front listens (an unspecified address is reached over loopback).
    pub public: SocketAddr,
    /// The public front's shared secret, sent in `secret_header`.
    pub secret: Option<Arc<str>>,
    pub secret_header: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for UiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiState")
            .field("public", &self.public)
            .field("secret_set", &self.secret.is_some())
            .finish()
    }
}

impl UiState {
    /// The simulator's way to the public front listening on `public`.
    pub fn new(public: SocketAddr, secret: Option<Arc<str>>, secret_header: String) -> UiState {
        let mut public = public;
        if public.ip().is_unspecified() {
            public.set_ip(match public {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        UiState {
            public,
            secret,
            secret_header,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

/// The page's files: `/ui/` (and `/ui/index.html`), `/ui/app.js`, `/ui/app.css`.
pub fn asset(path: &str) -> Option<Response<Body>> {
    let (body, kind) = match path {
        "/ui" | "/ui/" | "/ui/index.html" => (INDEX, "text/html; charset=utf-8"),
        "/ui/app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/ui/app.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut r = text(StatusCode::OK, body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    // Only the page's own files and calls; no framing by other sites.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    Some(r)
}

/// `POST /admin/ui/hop` `{"session", "dial", "phone", "text"}`: one hop through the public
/// front, as the aggregator sends it.
pub async fn hop(state: &AdminState, args: &Value) -> Response<Body> {
    let Some(ui) = &state.ui else {
        return text(StatusCode::NOT_FOUND, "the simulator is not available\n");
    };
    let field = |k: &str| args.get(k).and_then(Value::as_str);
    let (Some(session), Some(dial), Some(phone)) =
        (field("session"), field("dial"), field("phone"))
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "expected {\"session\", \"dial\", \"phone\", \"text\"}\n",
        );
    };
    let typed = field("text").unwrap_or("");
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("sessionId", session)
        .append_pair("serviceCode", dial)
        .append_pair("phoneNumber", phone)
        .append_pair("text", typed)
        .finish();
    let mut req = http::Request::post(format!("http://{}/ussd", ui.public))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::USER_AGENT, "ussd-gateway-workbench");
    if let Some(secret) = &ui.secret {
        req = req.header(ui.secret_header.as_str(), secret.as_ref());
    }
    let Ok(req) = req.body(Full::new(Bytes::from(form))) else {
        return text(StatusCode::BAD_REQUEST, "invalid hop\n");
    };
    let started = Instant::now();
    let answer = tokio::time::timeout(HOP_TIMEOUT, async {
        let resp = ui.client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
    })
    .await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (status, body) = match answer {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return text(StatusCode::BAD_GATEWAY, format!("public front: {e}\n")),
        Err(_) => return text(StatusCode::GATEWAY_TIMEOUT, "public front: no answer\n"),
    };
    let screen = body
        .strip_prefix("CON ")
        .or_else(|| body.strip_prefix("END "))
        .unwrap_or(&body);
    let (encoding, units) = crate::text::screen_units(screen);
    let core = state.registry.core();
    let limit = core
        .routes
        .load()
        .resolve(dial)
        .map_or_else(crate::text::Limit::default, |(r, _)| r.limit);
    let ucs2 = encoding == crate::text::Encoding::Ucs2;
    // The dialogue as it stands after the hop (gone when the hop ended it).
    let live = core
        .store
        .live::<crate::session::state::Dialogue>(&super::ussd::session_key(session))
        .ok()
        .flatten();
    let flow = live.as_ref().and_then(|d| match &d.app {
        Some(crate::app::AppState::Flow(f)) => Some(f),
        _ => None,
    });
    json(
        StatusCode::OK,
        &json!({
            "status": status,
            "body": body,
            "ms": (ms * 10.0).round() / 10.0,
            "alphabet": if ucs2 { "UCS-2" } else { "GSM-7" },
            "units": units,
            "limit": if ucs2 { limit.ucs2 } else { limit.septets },
            "screen": flow.map(|f| f.screen()),
            "page": flow.and_then(|f| f.page()),
        }),
    )
}

/// `GET /admin/ui/graph?route=*123#`: the graph of the flow a route runs, as `graph` prints it
/// (screens with their type, transitions with their labels), in JSON.
pub fn graph(state: &AdminState, query: Option<&str>) -> Response<Body> {
    let route = query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "route")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let routes = state.registry.core().routes.load();
    let Some(r) = routes.get(&route) else {
        return text(StatusCode::NOT_FOUND, format!("no route {route}\n"));
    };
    match r.app.graph() {
        Some(g) => json(StatusCode::OK, &json!(g)),
        None => text(
            StatusCode::NOT_FOUND,
            format!("{route} is answered by an upstream app: no flow to draw\n"),
        ),
    }
}

/// The ended dialogues listed with their journeys by `GET /admin/journeys`, newest first.
const RECENT: usize = 20;

/// `GET /admin/journeys?route=*123%23&since=...`: per screen, how many dialogues (ended at
/// `since` or later: epoch milliseconds or an RFC 3339 time; default all that are kept) arrived,
/// went on, ended, timed out, aborted or failed there, and the median time spent; and the most
/// recent of them with their journeys (numbers masked).
pub async fn journeys(state: &AdminState, query: Option<&str>) -> Response<Body> {
    let mut route = None;
    let mut since_ms = 0;
    for (k, v) in query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
    {
        match &*k {
            "route" if !v.is_empty() => route = Some(v.into_owned()),
            "since" if !v.is_empty() => {
                let parsed = v.parse::<u64>().ok().or_else(|| {
                    v.parse::<jiff::Timestamp>()
                        .ok()
                        .and_then(|t| u64::try_from(t.as_millisecond()).ok())
                });
                match parsed {
                    Some(ms) => since_ms = ms,
                    None => {
                        return text(
                            StatusCode::BAD_REQUEST,
                            "since: epoch milliseconds or an RFC 3339 time\n",
                        );
                    }
                }
            }
            _ => {}
        }
    }
    let store = state.registry.core().store.clone();
    let records: Vec<crate::session::state::EndRecord> =
        match super::cluster_admin::end_records(state).await {
            // The cluster's, in Redis.
            Some(Ok(records)) => records,
            Some(Err(e)) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
            None => tokio::task::spawn_blocking(move || {
                store
                    .ended_records::<crate::session::state::EndRecord>()
                    .filter_map(Result::ok)
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default(),
        };
    let (dialogues, screens) =
        crate::session::journey::summarize(&records, route.as_deref(), since_ms);
    let mut recent: Vec<&crate::session::state::EndRecord> = records
        .iter()
        .filter(|r| r.ended_ms >= since_ms && route.as_deref().is_none_or(|c| c == r.service_code))
        .collect();
    recent.sort_by_key(|r| std::cmp::Reverse(r.ended_ms));
    let recent: Vec<Value> = recent
        .into_iter()
        .take(RECENT)
        .map(|r| {
            json!({
                "msisdn": r.msisdn.masked().to_string(),
                "route": r.service_code,
                "ended_ms": r.ended_ms,
                "reason": r.reason.as_str(),
                "input": r.input,
                "journey": r.journey,
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({
            "route": route,
            "since_ms": since_ms,
            "dialogues": dialogues,
            "screens": screens,
            "recent": recent,
        }),
    )
}
