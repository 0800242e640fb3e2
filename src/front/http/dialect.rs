//! `POST /ussd/<dialect>`: any aggregator's USSD callback, read and answered as its dialect
//! describes (`config::dialect`).
//!
//! The front stays thin: a request becomes the same [`Hop`] the Africa's Talking front has
//! always made (a session key, the canonical subscriber, the code dialled, the input), and the
//! reply goes back in the dialect's format. The session, the apps, retries, tombstones,
//! ownership checks, rate limits and metrics are the same for every dialect. A per-hop input
//! starts a dialogue as an empty cumulative text (so a repeated dial is answered as a retry)
//! and continues it as a single input; a hop number (Hubtel's `Sequence`) tells the retries of
//! later hops apart. An end notification (Hubtel's `Release`/`Timeout`) ends the dialogue as
//! AT's end event does. Bad requests get a 400 naming the field and never reach a dialogue.

use super::ussd::{MAX_SESSION_ID, read_form};
use super::{Body, read_body, text};
use crate::config::dialect::{BodyFormat, Dialect, InputMode, ReplyFormat};
use crate::hop::{Front, Hop, HopInput, Reply, SessionKey};
use crate::msisdn::Msisdn;
use crate::session::state::{AggregatorReport, EndReason};
use crate::session::{Registry, reply_or_apology};
use crate::text::Limit;
use http::{Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Longest accepted service code.
const MAX_SERVICE_CODE: usize = 64;
/// Longest accepted network.
const MAX_NETWORK: usize = 16;
/// Longest accepted subscriber number.
const MAX_PHONE: usize = 32;

/// One dialect as served: its description, its label and its screen limit.
#[derive(Debug)]
pub struct Wire {
    /// The description.
    pub dialect: Dialect,
    /// The name, kept for the process's life: a metric label.
    pub label: &'static str,
    /// Its hops' screen limit.
    pub limit: Limit,
}

impl Wire {
    /// Serves `dialect`, with `ussd` as the screen limit it does not override.
    pub fn new(dialect: Dialect, ussd: Limit) -> Arc<Wire> {
        let label = label_of(&dialect.name);
        Arc::new(Wire {
            limit: dialect.limit(ussd),
            label,
            dialect,
        })
    }

    /// Whether `path` is this dialect's; with the values of its `{x}` segments, as the fields
    /// `path.x`.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let pattern = &self.dialect.path;
        if !pattern.contains('{') {
            return (pattern == path).then(Vec::new);
        }
        let (want, got): (Vec<&str>, Vec<&str>) =
            (pattern.split('/').collect(), path.split('/').collect());
        if want.len() != got.len() {
            return None;
        }
        let mut vars = Vec::new();
        for (w, g) in want.iter().zip(&got) {
            match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) if !g.is_empty() => {
                    vars.push((format!("path.{name}"), (*g).to_string()))
                }
                Some(_) => return None,
                None if w == g => {}
                None => return None,
            }
        }
        Some(vars)
    }

    /// The session key of this dialect's session `id`: Africa's Talking's keeps the front's
    /// historic prefix, any other is prefixed with the dialect's name, so that two aggregators'
    /// dialogues never meet.
    pub fn session_key(&self, id: &str) -> SessionKey {
        if self.dialect.name == "africastalking" {
            super::ussd::session_key(id)
        } else {
            SessionKey::from(format!("{}:{id}", self.dialect.name))
        }
    }
}

/// The metric label of dialect `name`: kept for the process's life, once per distinct name
/// (the built-in and configured names), however often a gateway starts in the process.
fn label_of(name: &str) -> &'static str {
    static LABELS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut labels = LABELS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = labels.iter().find(|l| **l == name) {
        return l;
    }
    let l: &'static str = Box::leak(name.to_string().into_boxed_str());
    labels.push(l);
    l
}

/// A request's fields: a form's or a query's pairs, or a JSON object.
#[derive(Debug)]
pub enum Fields {
    /// Name-value pairs.
    Pairs(Vec<(String, String)>),
    /// A JSON object.
    Json(Map<String, Value>),
}

impl Fields {
    /// The pairs of a form body or a query string.
    pub fn form(bytes: &[u8]) -> Fields {
        Fields::Pairs(pairs(bytes))
    }

    /// Adds the values read from the request's path.
    pub fn with_path(mut self, vars: Vec<(String, String)>) -> Fields {
        for (k, v) in vars {
            match &mut self {
                Fields::Pairs(p) => p.push((k, v)),
                Fields::Json(m) => {
                    m.insert(k, Value::String(v));
                }
            }
        }
        self
    }

    /// The value at `path` (a JSON field name, or a dotted path into nested objects).
    pub fn value(&self, path: &str) -> Option<Value> {
        match self {
            // The last of repeated fields wins, as it always did for AT's form.
            Fields::Pairs(p) => p
                .iter()
                .rev()
                .find(|(k, _)| k == path)
                .map(|(_, v)| Value::String(v.clone())),
            Fields::Json(m) => {
                if let Some(v) = m.get(path) {
                    return Some(v.clone());
                }
                let mut parts = path.split('.');
                let mut at = m.get(parts.next()?)?;
                for p in parts {
                    at = at.as_object()?.get(p)?;
                }
                Some(at.clone())
            }
        }
    }

    /// The value at `path` as text: strings as they are, numbers and booleans written out;
    /// `null` counts as absent.
    ///
    /// # Errors
    /// An object or an array, named.
    pub fn text(&self, path: &str) -> Result<Option<String>, String> {
        match self.value(path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(format!(
                "field {path} must be a string, a number or a boolean"
            )),
        }
    }
}

/// What a request asks.
#[derive(Debug)]
pub enum Request {
    /// A hop to answer.
    Hop(Hop),
    /// The aggregator says the dialogue ended (`status` is its word for why).
    End {
        /// The dialogue.
        key: SessionKey,
        /// The aggregator's word.
        status: String,
        /// The subscriber it names, if any.
        msisdn: Option<Msisdn>,
    },
}

/// A request read, with what its reply needs.
#[derive(Debug)]
pub struct Parsed {
    /// What it asks.
    pub request: Request,
    /// True when the request's kind was written in lower case (Hubtel's programmable services).
    pub lowercase: bool,
}

/// A required field, trimmed and checked.
fn required(fields: &Fields, name: &str, max: usize) -> Result<String, String> {
    let v = fields
        .text(name)?
        .ok_or_else(|| format!("missing field {name}"))?;
    let v = v.trim().to_string();
    if v.is_empty() {
        return Err(format!("empty field {name}"));
    }
    if v.len() > max {
        return Err(format!("field {name} is longer than {max} characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(format!("field {name} holds control characters"));
    }
    Ok(v)
}

/// A code sent as digits alone (`713`) as it is dialled (`*713#`).
fn as_dialled(code: &str) -> String {
    if !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()) {
        format!("*{code}#")
    } else {
        code.to_string()
    }
}

/// Reads `fields` as `wire`'s dialect says, or a one-line reason for a 400.
///
/// # Errors
/// A missing, empty, over-long or ill-typed field, an unknown kind, a bad phone number.
pub fn parse(wire: &Wire, fields: &Fields, default_cc: &str) -> Result<Parsed, String> {
    let d = &wire.dialect;
    let session_id = required(fields, &d.session, MAX_SESSION_ID)?;
    let key = wire.session_key(&session_id);
    let service_code = match &d.service_code {
        // Africa's Talking's order of checks: the code comes before the number.
        Some(f) if d.input_mode == InputMode::Cumulative => {
            Some(required(fields, f, MAX_SERVICE_CODE)?)
        }
        Some(f) => match fields.text(f)?.map(|s| s.trim().to_string()) {
            Some(s) if s.len() > MAX_SERVICE_CODE => {
                return Err(format!(
                    "field {f} is longer than {MAX_SERVICE_CODE} characters"
                ));
            }
            s => s.filter(|s| !s.is_empty()),
        },
        None => None,
    }
    .or_else(|| d.service_code_value.clone());
    let network = match &d.network {
        Some(f) => match fields.text(f)?.map(|n| n.trim().to_string()) {
            Some(n) if n.len() > MAX_NETWORK => {
                return Err(format!("field {f} is longer than {MAX_NETWORK} characters"));
            }
            n => n.filter(|n| !n.is_empty()),
        },
        None => None,
    };
    let (kind, lowercase) = match &d.kind {
        Some(f) => {
            let k = required(fields, f, 32)?;
            let lowercase = k.starts_with(|c: char| c.is_ascii_lowercase());
            (Some(k), lowercase)
        }
        None => (None, false),
    };
    let among = |values: &[String], k: &str| values.iter().any(|v| v.eq_ignore_ascii_case(k));
    let input = fields.text(&d.input)?.unwrap_or_default();
    let seq = match &d.sequence {
        Some(f) => match fields.text(f)? {
            None => None,
            Some(s) => Some(
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("field {f} must be a whole number"))?,
            ),
        },
        None => None,
    };
    let what = match &kind {
        None => Kind::Continue,
        Some(k) if among(&d.kind_start, k) => Kind::Start,
        Some(k) if among(&d.kind_continue, k) => Kind::Continue,
        Some(k) if among(&d.kind_end, k) => Kind::End,
        Some(_) => {
            let mut known = d.kind_start.clone();
            known.extend(d.kind_continue.iter().cloned());
            known.extend(d.kind_end.iter().cloned());
            return Err(format!(
                "field {} must be one of {} (any case)",
                d.kind.as_deref().unwrap_or_default(),
                known.join(", ")
            ));
        }
    };
    if what == Kind::End {
        let status = kind.unwrap_or_default();
        // The subscriber, when the notification names one: the dialogue refuses a report
        // for another number's dialogue.
        let msisdn = match fields.text(&d.subscriber)? {
            Some(p) if !p.trim().is_empty() => Some(
                Msisdn::parse(&p, default_cc)
                    .map_err(|_| format!("{} is not a valid phone number", d.subscriber))?,
            ),
            _ => None,
        };
        return Ok(Parsed {
            request: Request::End {
                key,
                status,
                msisdn,
            },
            lowercase,
        });
    }
    let phone = required(fields, &d.subscriber, MAX_PHONE)?;
    let msisdn = Msisdn::parse(&phone, default_cc)
        .map_err(|_| format!("{} is not a valid phone number", d.subscriber))?;
    let (dialled, input) = match (d.input_mode, what) {
        (InputMode::Cumulative, _) => (
            service_code.unwrap_or_default(),
            HopInput::Cumulative(input),
        ),
        (InputMode::PerHop, Kind::Start) => {
            let typed = input.trim();
            let dialled = if d.dial_in_input && typed.starts_with('*') {
                typed.to_string()
            } else {
                as_dialled(service_code.as_deref().unwrap_or_default())
            };
            // An empty cumulative text: a dial sent again is answered as a retry.
            (dialled, HopInput::Cumulative(String::new()))
        }
        // A continuation names no code: it is checked on its number alone.
        (InputMode::PerHop, _) => (String::new(), HopInput::Single(Some(input))),
    };
    let hop = Hop {
        key,
        front: Front::Http,
        msisdn,
        dialled,
        network,
        input,
        limit: wire.limit,
        dialect: wire.label,
        seq,
    };
    Ok(Parsed {
        request: Request::Hop(hop),
        lowercase,
    })
}

/// Which hop of a dialogue a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Start,
    Continue,
    End,
}

/// A template value filled in: `{text}`, `{first_line}`, `{request.<field>}` (left out when the
/// request has no such field); anything else as written.
fn fill(v: &Value, reply: &Reply, fields: &Fields) -> Option<Value> {
    match v {
        Value::String(s) if s == "{text}" => Some(Value::String(reply.text.clone())),
        Value::String(s) if s == "{first_line}" => Some(Value::String(
            reply.text.lines().next().unwrap_or_default().to_string(),
        )),
        Value::String(s) if s.starts_with("{request.") && s.ends_with('}') => {
            fields.value(&s["{request.".len()..s.len() - 1])
        }
        Value::Object(m) => Some(Value::Object(fill_object(m, reply, fields, None, false))),
        other => Some(other.clone()),
    }
}

/// A JSON template filled in; dotted keys make nested objects.
fn fill_object(
    template: &Map<String, Value>,
    reply: &Reply,
    fields: &Fields,
    reply_kind: Option<&str>,
    lowercase: bool,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in template {
        let Some(mut v) = fill(v, reply, fields) else {
            continue;
        };
        if lowercase
            && reply_kind == Some(k.as_str())
            && let Value::String(s) = &mut v
            && let Some(first) = s.chars().next()
        {
            *s = format!("{}{}", first.to_lowercase(), &s[first.len_utf8()..]);
        }
        let mut parts: Vec<&str> = k.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut at = &mut out;
        for p in parts {
            let entry = at
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(inner) = entry else {
                unreachable!("made an object above")
            };
            at = inner;
        }
        at.insert(last.to_string(), v);
    }
    out
}

/// `reply` in `d`'s format, for a request with `fields`.
pub fn render(d: &Dialect, reply: &Reply, fields: &Fields, lowercase: bool) -> Response<Body> {
    let body = render_body(d, reply, fields, lowercase);
    match d.reply {
        ReplyFormat::Json => {
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r
        }
        ReplyFormat::Text => text(StatusCode::OK, body),
    }
}

/// The body of `reply` in `d`'s format: JSON text or the text template filled in.
pub fn render_body(d: &Dialect, reply: &Reply, fields: &Fields, lowercase: bool) -> String {
    let template = if reply.end {
        &d.reply_end
    } else {
        &d.reply_continue
    };
    match template {
        Value::Object(m) => Value::Object(fill_object(
            m,
            reply,
            fields,
            d.reply_kind.as_deref(),
            lowercase,
        ))
        .to_string(),
        Value::String(s) => s.replace("{text}", &reply.text),
        // Refused when the config is checked.
        _ => reply.text.clone(),
    }
}

/// Reads the request's fields as the dialect says, or the refusal to send (405, 415, 413, 400).
async fn read_fields(
    req: http::Request<Incoming>,
    d: &Dialect,
    max_body: usize,
) -> Result<Fields, Box<Response<Body>>> {
    // A path per session (Infobip's) is also PUT to: the end of a session.
    let allowed = match d.body {
        BodyFormat::Query => req.method() == http::Method::GET,
        _ if d.path.contains('{') => {
            req.method() == http::Method::POST || req.method() == http::Method::PUT
        }
        _ => req.method() == http::Method::POST,
    };
    if !allowed {
        return Err(Box::new(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n",
        )));
    }
    let refuse = |why: String| {
        crate::metrics::http_rejected("bad_request");
        Box::new(text(StatusCode::BAD_REQUEST, format!("{why}\n")))
    };
    match d.body {
        BodyFormat::Query => {
            let q = req.uri().query().unwrap_or_default().as_bytes();
            Ok(Fields::Pairs(pairs(q)))
        }
        BodyFormat::Form => {
            let body = read_form(req, max_body).await?;
            Ok(Fields::Pairs(pairs(&body)))
        }
        BodyFormat::Json => {
            let is_json = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
            if !is_json {
                crate::metrics::http_rejected("content_type");
                return Err(Box::new(text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "content type must be application/json\n",
                )));
            }
            let body = read_body(req, max_body).await.map_err(|e| {
                crate::metrics::http_rejected("body");
                Box::new(e.response())
            })?;
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => Ok(Fields::Json(m)),
                Ok(_) => Err(refuse("the body must be a JSON object".into())),
                Err(e) => Err(refuse(format!("the body is not valid JSON: {e}"))),
            }
        }
    }
}

/// Form or query pairs.
fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Handles one request to `wire`'s path.
pub async fn handle(
    req: http::Request<Incoming>,
    wire: &Wire,
    path_fields: Vec<(String, String)>,
    registry: &Registry,
    max_body: usize,
    default_cc: &str,
    apology: &str,
) -> Response<Body> {
    let d = &wire.dialect;
    let fields = match read_fields(req, d, max_body).await {
        Ok(f) => f.with_path(path_fields),
        Err(refusal) => return *refusal,
    };
    let parsed = match parse(wire, &fields, default_cc) {
        Ok(p) => p,
        Err(reason) => {
            crate::metrics::http_rejected("bad_request");
            return text(StatusCode::BAD_REQUEST, format!("{reason}\n"));
        }
    };
    let reply = match parsed.request {
        Request::Hop(hop) => reply_or_apology(registry.hop(hop).await, apology),
        Request::End {
            key,
            status,
            msisdn,
        } => {
            let report = AggregatorReport {
                status,
                cost: None,
                error_message: None,
            };
            if !registry
                .report_end(key, report, EndReason::Abort, msisdn)
                .await
            {
                tracing::info!(
                    dialect = wire.label,
                    "end notification not applied: no such dialogue, or another number's"
                );
            }
            Reply::end("")
        }
    };
    render(d, &reply, &fields, parsed.lowercase)
}

#[cfg(test)]
#[path = "dialect_tests.rs"]
mod tests;
