//! Adapter mode: an existing Africa's Talking-style (or Hubtel-style) app answers the hops.
//!
//! For every hop the gateway POSTs the AT callback form to the app (a stable `sessionId`, the
//! route's `serviceCode`, `phoneNumber` in `+` international form, `networkCode`, and `text` as
//! every input so far joined by `*`) and relays its `CON`/`END` answer, whatever content type it
//! comes with; a route with `upstream_style = "hubtel"` speaks Hubtel's JSON instead
//! (`upstream_wire`). So an app written for an aggregator runs unchanged behind any other
//! aggregator or a direct operator bind.
//!
//! - One deadline per hop (the route's): a timeout, a non-200 answer or a body that does not
//!   start with `CON `/`END ` ends the dialogue with the route's apology, logged and counted.
//! - Pooled keep-alive connections (the gateway's one HTTP client, `crate::net`: a bank's CA
//!   and a client certificate for mutual TLS come from `[http_client]`); a concurrency limit
//!   per upstream that fails fast when
//!   saturated; a circuit breaker that stops calling an upstream after consecutive failures and
//!   lets one probe through after a cool-down.
//! - Screens longer than the effective limit (the first one too) are paginated by the gateway,
//!   or cut if the route says so (counted). On a paginated screen `98` and `0` are the
//!   gateway's on every page and never reach the app; read again, the pages are the app's
//!   answer (but for a blank line or space a break falls on), its trailing line breaks kept.

use super::{App, AppError, AppState, HopEnv, Sensitive, Turn};
use crate::config::LongScreens;
use crate::hop::Reply;
use crate::text::{Limit, Nav, fits, paginate};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The largest answer read from an upstream app.
const MAX_BODY: usize = 64 * 1024;

/// An upstream route's settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The app's callback URL.
    pub url: http::Uri,
    /// The route's service code, for metric labels.
    pub route: String,
    /// How the app is spoken to (`super::upstream_wire`).
    pub style: crate::config::UpstreamStyle,
    /// `networkCode` to send when the front does not know it.
    pub network_code: Option<String>,
    /// What the subscriber is told when the app fails.
    pub apology: String,
    /// Long answers: paginate or cut.
    pub long_screens: LongScreens,
    /// Requests in flight at most; past it, hops fail fast.
    pub concurrency: usize,
    /// Consecutive failures that open the circuit.
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls before letting one probe through.
    pub breaker_cooldown: Duration,
    /// The `sessionId` the app is sent for a dialogue's session key: the id its front knows
    /// it by (AT's `sessionId` for the HTTP front's dialogues, the key itself for SMPP's). The
    /// fronts make the keys, so a front reads them (`front::http::ussd::at_session_id`).
    pub session_id: fn(&str) -> &str,
}

/// The per-dialogue state of an upstream route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct UpstreamState {
    /// The inputs the app has been sent so far (never the gateway's page keys).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// The pages of the app's last answer, when it did not fit one screen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<String>,
    /// The page on display.
    #[serde(default)]
    pub page: usize,
    /// Whether the paged answer ends the dialogue (on its last page).
    #[serde(default)]
    pub end: bool,
    /// What a Hubtel-style app asked to get back on the next call (`ClientState`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_state: Option<String>,
}

/// A circuit breaker: closed, open until a time, or half-open with one probe in flight.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// An AT-style app reached over HTTP.
pub struct UpstreamApp {
    config: UpstreamConfig,
    client: reqwest::Client,
    /// `config.url` as the client takes it.
    url: Result<reqwest::Url, String>,
    permits: Arc<Semaphore>,
    breaker: Mutex<Breaker>,
    version: Arc<str>,
}

impl std::fmt::Debug for UpstreamApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamApp")
            .field("url", &self.config.url)
            .finish()
    }
}

/// Why an upstream call failed, as logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer before the hop's deadline.
    Timeout,
    /// Connecting or reading failed.
    Connection,
    /// An HTTP status other than 200.
    Status,
    /// An answer not in the app's style (not `CON `/`END `, or not Hubtel's JSON).
    Malformed,
    /// The concurrency limit was reached.
    Saturated,
    /// The circuit is open.
    CircuitOpen,
}

impl Failure {
    /// A fixed label.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Connection => "connection",
            Failure::Status => "bad_status",
            Failure::Malformed => "malformed",
            Failure::Saturated => "saturated",
            Failure::CircuitOpen => "circuit_open",
        }
    }
}

impl UpstreamApp {
    /// An app at `config.url`, called through `client` (the gateway's shared one).
    pub fn new(config: UpstreamConfig, client: reqwest::Client) -> UpstreamApp {
        let url = reqwest::Url::parse(&config.url.to_string()).map_err(|e| e.to_string());
        UpstreamApp {
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            version: format!("upstream:{}", config.url).into(),
            config,
            client,
            url,
            breaker: Mutex::new(Breaker::default()),
        }
    }

    /// Whether a call may go out now; a half-open circuit lets exactly one probe through.
    fn admit(&self) -> bool {
        // unwrap-free: a poisoned lock only means a panic elsewhere; keep the state anyway.
        let mut b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        match b.open_until {
            None => true,
            Some(until) if Instant::now() < until => false,
            Some(_) if b.probing => false,
            Some(_) => {
                b.probing = true;
                true
            }
        }
    }

    fn record(&self, ok: bool) {
        let mut b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        b.probing = false;
        if ok {
            b.failures = 0;
            b.open_until = None;
        } else {
            b.failures += 1;
            if b.failures >= self.config.breaker_failures || b.open_until.is_some() {
                if b.open_until.is_none() {
                    tracing::warn!(route = %self.config.route, "upstream circuit opened");
                }
                b.open_until = Some(Instant::now() + self.config.breaker_cooldown);
            }
        }
    }

    /// One POST to the app, bounded by `deadline`: the reply, and what a Hubtel-style app asked
    /// to get back.
    async fn call(
        &self,
        state: &UpstreamState,
        latest: &str,
        first: bool,
        env: &HopEnv,
    ) -> Result<(Reply, Option<String>), (Failure, String)> {
        if !self.admit() {
            return Err((Failure::CircuitOpen, "circuit open".into()));
        }
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            // Saturation is load, not a fault of the app: it does not count for the breaker,
            // but a probe that was let through must be released.
            self.breaker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .probing = false;
            return Err((Failure::Saturated, "concurrency limit reached".into()));
        };
        let network = env
            .network
            .as_deref()
            .or(self.config.network_code.as_deref())
            .unwrap_or_default();
        let text = state.inputs.join("*");
        let call = super::upstream_wire::Call {
            session_id: (self.config.session_id)(&env.session_id),
            service_code: &env.service_code,
            msisdn: &env.msisdn,
            network,
            text: &text,
            latest,
            first,
            sequence: env.hop,
            client_state: state.client_state.as_deref(),
        };
        let (content_type, accept, body) = super::upstream_wire::request(self.config.style, &call);
        let url = self
            .url
            .clone()
            .map_err(|e| (Failure::Connection, format!("the URL: {e}")))?;
        let req = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::ACCEPT, accept)
            .body(body);
        let exchange = async {
            let resp = req
                .send()
                .await
                .map_err(|e| (Failure::Connection, crate::net::error_chain(&e)))?;
            let status = resp.status();
            let body = crate::net::read_limited(resp, MAX_BODY)
                .await
                .map_err(|e| (Failure::Connection, format!("reading the answer: {e}")))?;
            if status != http::StatusCode::OK {
                return Err((Failure::Status, format!("HTTP {}", status.as_u16())));
            }
            let body = String::from_utf8_lossy(&body);
            super::upstream_wire::answer(self.config.style, &body)
                .map_err(|why| (Failure::Malformed, why))
        };
        let result = match tokio::time::timeout_at(env.deadline, exchange).await {
            Ok(r) => r,
            Err(_) => Err((
                Failure::Timeout,
                "no answer before the hop's deadline".into(),
            )),
        };
        self.record(result.is_ok());
        result
    }

    /// Shows `reply`, paginated (or cut) to the effective limit.
    fn present(&self, state: &mut UpstreamState, reply: Reply, env: &HopEnv) -> Reply {
        state.pages.clear();
        state.page = 0;
        state.end = false;
        if fits(&reply.text, env.limit) {
            return reply;
        }
        match self.config.long_screens {
            LongScreens::Cut => {
                crate::metrics::upstream_cut(&self.config.route);
                tracing::warn!(route = %self.config.route, "upstream screen cut to the limit");
                let mut cut = String::new();
                for c in reply.text.chars() {
                    let mut next = cut.clone();
                    next.push(c);
                    if !fits(&next, env.limit) {
                        break;
                    }
                    cut = next;
                }
                Reply {
                    text: cut,
                    end: reply.end,
                }
            }
            LongScreens::Paginate => {
                let body = reply.text.trim_end();
                if fits(body, env.limit) {
                    // Only the trailing whitespace did not fit: one screen without it.
                    return Reply {
                        text: body.to_string(),
                        end: reply.end,
                    };
                }
                state.pages = pages_of(&reply.text, env.limit, reply.end);
                state.end = reply.end;
                self.page(state)
            }
        }
    }

    /// The current page of a paginated answer: CON until the last page of an END answer.
    fn page(&self, state: &UpstreamState) -> Reply {
        let text = state.pages.get(state.page).cloned().unwrap_or_default();
        let last = state.page + 1 >= state.pages.len();
        if last && state.end {
            Reply::end(closing(&text).to_string())
        } else {
            Reply::con(text)
        }
    }
}

/// The last page of an END answer as shown: without the "Back" line, which makes no sense on
/// a closing screen.
fn closing(page: &str) -> &str {
    let back = format!("\n{}", Nav::default().back_line());
    page.strip_suffix(&back).unwrap_or(page)
}

/// The pages of an answer too long for one screen under `limit` (`end`: it ends the dialogue).
/// The answer's trailing line breaks stay on its last page, before the gateway's Back line, so
/// the pages read again are the app's answer. When they do not fit there, the answer is paged
/// again with room kept for them; if even that fails they are left out.
fn pages_of(text: &str, limit: Limit, end: bool) -> Vec<String> {
    let nav = Nav::default();
    let body = text.trim_end();
    let tail = &text[body.len()..];
    let mut pages = paginate(body, &[], limit, &nav);
    if tail.is_empty() || pages.len() < 2 {
        return pages;
    }
    // The last of two pages or more: its content, then the gateway's Back line.
    let back = format!("\n{}", nav.back_line());
    let keep_tail = |pages: &mut Vec<String>| -> bool {
        let Some(content) = pages.last().and_then(|p| p.strip_suffix(&back)) else {
            return false;
        };
        let page = format!("{content}{tail}{back}");
        let shown = if end { closing(&page) } else { &page };
        if !fits(shown, limit) {
            return false;
        }
        pages.pop();
        pages.push(page);
        true
    };
    if keep_tail(&mut pages) {
        return pages;
    }
    let room = tail.encode_utf16().count();
    let smaller = Limit {
        septets: limit.septets.saturating_sub(room),
        ucs2: limit.ucs2.saturating_sub(room),
    };
    let mut again = paginate(body, &[], smaller, &nav);
    // (Under a limit too small for the nav lines, paginate makes pages over it: not those.)
    if again.iter().all(|p| fits(p, smaller)) && keep_tail(&mut again) {
        again
    } else {
        pages
    }
}

impl App for UpstreamApp {
    fn kind(&self) -> &'static str {
        "upstream"
    }

    fn version(&self) -> Arc<str> {
        self.version.clone()
    }

    fn hop(
        self: Arc<Self>,
        state: Option<AppState>,
        inputs: Vec<String>,
        env: HopEnv,
    ) -> BoxFuture<'static, Result<Turn, AppError>> {
        Box::pin(async move {
            let mut state = match state {
                None => UpstreamState::default(),
                Some(AppState::Upstream(s)) => s,
                Some(_) => {
                    return Err(AppError::Incompatible("not an upstream dialogue".into()));
                }
            };
            let nav = Nav::default();
            let mut fresh = Vec::new();
            for input in inputs {
                // On a paginated answer the page keys are the gateway's, on every page (at
                // either end they show the same page again): they never reach the app.
                if !state.pages.is_empty() {
                    if input == nav.next_key {
                        state.page = (state.page + 1).min(state.pages.len() - 1);
                        continue;
                    }
                    if input == nav.back_key {
                        state.page = state.page.saturating_sub(1);
                        continue;
                    }
                }
                fresh.push(input);
            }
            // The app is asked on the first hop and for each input of its own. A dialogue that
            // holds pages has started, even with no input yet (its first screen was long).
            let first_hop = state.inputs.is_empty() && state.pages.is_empty();
            if fresh.is_empty() && !first_hop {
                let reply = self.page(&state);
                return Ok(Turn {
                    state: AppState::Upstream(state),
                    reply,
                    sensitive: Sensitive::NONE,
                    transacted: false,
                });
            }
            let latest = fresh.join("*");
            state.inputs.extend(fresh);
            let t = Instant::now();
            match self.call(&state, &latest, env.hop <= 1, &env).await {
                Ok((reply, client_state)) => {
                    state.client_state = client_state;
                    crate::metrics::upstream(&self.config.route, "ok", t.elapsed());
                    let reply = self.present(&mut state, reply, &env);
                    Ok(Turn {
                        state: AppState::Upstream(state),
                        reply,
                        sensitive: Sensitive::NONE,
                        transacted: false,
                    })
                }
                Err((failure, reason)) => {
                    crate::metrics::upstream(&self.config.route, failure.as_str(), t.elapsed());
                    tracing::error!(
                        route = %self.config.route,
                        failure = failure.as_str(),
                        %reason,
                        "upstream app failed; dialogue ends with the apology"
                    );
                    Err(AppError::Upstream {
                        reason: format!("{}: {reason}", failure.as_str()),
                        apology: self.config.apology.clone(),
                    })
                }
            }
        })
    }
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
