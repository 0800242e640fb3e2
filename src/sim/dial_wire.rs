//! `dial --dialect`: a hop written as the dialect's aggregator writes it, and its reply read
//! back, from the same description the gateway's front reads (`config::dialect`).
//!
//! The inverse of the front: the dial is the first kind value of `kind_start` (the dial string
//! as input when `dial_in_input`), each later hop the first of `kind_continue` with the latest
//! input, or the cumulative text; `"true"`/`"false"` kinds go as JSON booleans and the hop
//! number as a number. A reply is read by its template: the text where `{text}` is, and
//! continue or end by the fixed values in which the two templates differ.

use crate::config::dialect::{BodyFormat, Dialect, InputMode};
use serde_json::{Map, Value};

/// One hop to send.
#[derive(Debug)]
pub struct Played<'a> {
    /// The session id.
    pub session_id: &'a str,
    /// The code dialled.
    pub service_code: &'a str,
    /// The subscriber.
    pub phone: &'a str,
    /// The network, if any.
    pub network: Option<&'a str>,
    /// Every input so far (none on the dial).
    pub inputs: &'a [String],
}

/// A request to make: GET with a query, or POST with a content type and a body.
#[derive(Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// `GET <path>?<query>`.
    Query(String),
    /// `POST` with this content type and body.
    Post(&'static str, String),
}

/// The dialect's path for `hop`, its `{session}` and `{kind}` segments filled in (Infobip's
/// `/session/{session}/{kind}`); `None` when the path has no such segment.
pub fn path(d: &Dialect, hop: &Played<'_>) -> Option<String> {
    if !d.path.contains('{') {
        return None;
    }
    let kind = if hop.inputs.is_empty() {
        &d.kind_start
    } else {
        &d.kind_continue
    };
    let mut filled = d.path.clone();
    for (field, value) in [
        (d.session.as_str(), hop.session_id),
        (
            d.kind.as_deref().unwrap_or_default(),
            kind.first().map(String::as_str).unwrap_or_default(),
        ),
    ] {
        if let Some(name) = field.strip_prefix("path.") {
            filled = filled.replace(&format!("{{{name}}}"), value);
        }
    }
    Some(filled)
}

/// The request that plays `hop` in dialect `d`.
pub fn request(d: &Dialect, hop: &Played<'_>) -> Outgoing {
    let start = hop.inputs.is_empty();
    let mut fields: Vec<(String, Value)> = Vec::new();
    // Fields read from the path (`path.x`) are in the URL, not the body.
    let mut put = |name: &str, v: Value| {
        if !name.starts_with("path.") {
            fields.push((name.to_string(), v));
        }
    };
    put(&d.session, Value::String(hop.session_id.into()));
    put(&d.subscriber, Value::String(hop.phone.into()));
    if let Some(f) = &d.service_code {
        put(f, Value::String(hop.service_code.into()));
    }
    if let (Some(f), Some(n)) = (&d.network, hop.network) {
        put(f, Value::String(n.into()));
    }
    if let Some(f) = &d.kind {
        let values = if start {
            &d.kind_start
        } else {
            &d.kind_continue
        };
        let v = values.first().cloned().unwrap_or_default();
        let v = match v.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(v),
        };
        put(f, v);
    }
    if let Some(f) = &d.sequence {
        put(f, Value::from(hop.inputs.len() as u64 + 1));
    }
    let input = match (d.input_mode, hop.inputs.last()) {
        (InputMode::Cumulative, _) => hop.inputs.join("*"),
        (InputMode::PerHop, Some(last)) => last.clone(),
        (InputMode::PerHop, None) if d.dial_in_input => hop.service_code.to_string(),
        (InputMode::PerHop, None) => String::new(),
    };
    put(&d.input, Value::String(input));
    match d.body {
        BodyFormat::Json => {
            let mut m = Map::new();
            for (k, v) in fields {
                insert(&mut m, &k, v);
            }
            Outgoing::Post("application/json", Value::Object(m).to_string())
        }
        BodyFormat::Form | BodyFormat::Query => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &fields {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                form.append_pair(k, &v);
            }
            let body = form.finish();
            if d.body == BodyFormat::Query {
                Outgoing::Query(body)
            } else {
                Outgoing::Post("application/x-www-form-urlencoded", body)
            }
        }
    }
}

/// Puts `v` at the dotted path `key` of `m`.
fn insert(m: &mut Map<String, Value>, key: &str, v: Value) {
    match key.split_once('.') {
        None => {
            m.insert(key.to_string(), v);
        }
        Some((head, rest)) => {
            let inner = m
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(Map::new());
            }
            if let Value::Object(inner) = inner {
                insert(inner, rest, v);
            }
        }
    }
}

/// Reads a reply of dialect `d`: whether it ends the dialogue, and the screen.
///
/// # Errors
/// A reply that matches neither template.
pub fn reply(d: &Dialect, body: &str) -> Result<(bool, String), String> {
    match (&d.reply_continue, &d.reply_end) {
        (Value::String(con), Value::String(end)) => {
            for (template, is_end) in [(end, true), (con, false)] {
                let (pre, post) = template.split_once("{text}").unwrap_or((template, ""));
                if let Some(t) = body.strip_prefix(pre).and_then(|b| b.strip_suffix(post)) {
                    return Ok((is_end, t.to_string()));
                }
            }
            Err(format!("reply matches neither template: {body:?}"))
        }
        (Value::Object(con), Value::Object(end)) => {
            let got: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
            let text = text_path(end, "")
                .and_then(|p| at(&got, &p).and_then(Value::as_str).map(str::to_string))
                .ok_or_else(|| format!("reply has no screen text: {body}"))?;
            let marks = |mine: &Map<String, Value>, other: &Map<String, Value>| {
                mine.iter()
                    .filter(|(k, v)| !is_placeholder(v) && other.get(*k) != Some(*v))
                    .all(|(k, v)| at(&got, k).is_some_and(|g| same(g, v)))
            };
            if marks(end, con) {
                Ok((true, text))
            } else if marks(con, end) {
                Ok((false, text))
            } else {
                Err(format!("reply is neither a continue nor an end: {body}"))
            }
        }
        _ => Err("the dialect's reply templates are not usable".into()),
    }
}

/// Whether a template value is filled in by the gateway.
fn is_placeholder(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.starts_with('{') && s.ends_with('}'))
        || matches!(v, Value::Object(_))
}

/// Equal, strings ignoring case (a reply answered in the request's casing).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

/// The dotted path of `{text}` in a template.
fn text_path(m: &Map<String, Value>, prefix: &str) -> Option<String> {
    m.iter().find_map(|(k, v)| {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::String(s) if s == "{text}" => Some(path),
            Value::Object(inner) => text_path(inner, &path),
            _ => None,
        }
    })
}

/// The value at a dotted path.
fn at<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, p| v.get(p))
}
