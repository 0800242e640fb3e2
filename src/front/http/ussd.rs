//! `POST /ussd`: the Africa's Talking USSD callback.
//!
//! A form POST with `sessionId`, `serviceCode`, `phoneNumber` (required), `text` (absent means
//! empty: every input so far joined by `*`) and `networkCode` (optional). The answer is 200
//! `text/plain` starting `CON ` (wait for input) or `END ` (close). Bad requests are refused
//! here, at the edge, and never reach a dialogue.

use super::{Body, read_body, text};
use crate::hop::{Front, Hop, HopInput, Reply, SessionKey};
use crate::msisdn::Msisdn;
use crate::session::{Registry, reply_or_apology};
use http::{Response, StatusCode, header};
use hyper::body::Incoming;

/// Longest accepted `sessionId`.
pub(super) const MAX_SESSION_ID: usize = 128;
/// Longest accepted `serviceCode`.
const MAX_SERVICE_CODE: usize = 64;
/// Longest accepted `networkCode`.
const MAX_NETWORK_CODE: usize = 16;

/// What this front's session keys start with: the rest is AT's `sessionId`, so that AT's
/// dialogues never meet another front's.
const KEY_PREFIX: &str = "http:";

/// The session key of AT's dialogue `session_id`.
pub fn session_key(session_id: &str) -> SessionKey {
    let mut key = String::with_capacity(KEY_PREFIX.len() + session_id.len());
    key.push_str(KEY_PREFIX);
    key.push_str(session_id);
    SessionKey::from(key)
}

/// The `sessionId` AT knows the dialogue of `key` by; a key this front did not make (an SMPP
/// dialogue's) stands for itself.
pub fn at_session_id(key: &str) -> &str {
    key.strip_prefix(KEY_PREFIX).unwrap_or(key)
}

/// One AT callback, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtCallback {
    /// AT's session id.
    pub session_id: String,
    /// The code dialled.
    pub service_code: String,
    /// The subscriber, canonical.
    pub msisdn: Msisdn,
    /// The cumulative text.
    pub text: String,
    /// The network code, if sent.
    pub network_code: Option<String>,
}

/// Parses a form body into a callback, or a one-line reason for a 400.
///
/// # Errors
/// A missing or empty required field, an over-long field, or an invalid phone number.
pub fn parse_callback(body: &[u8], default_cc: &str) -> Result<AtCallback, String> {
    let (mut session_id, mut service_code, mut phone, mut text_field, mut network) =
        (None, None, None, None, None);
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "sessionId" => session_id = Some(v.into_owned()),
            "serviceCode" => service_code = Some(v.into_owned()),
            "phoneNumber" => phone = Some(v.into_owned()),
            "text" => text_field = Some(v.into_owned()),
            "networkCode" => network = Some(v.into_owned()),
            _ => {}
        }
    }
    let required = |name: &str, v: Option<String>, max: usize| -> Result<String, String> {
        let v = v.ok_or_else(|| format!("missing field {name}"))?;
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
    };
    let session_id = required("sessionId", session_id, MAX_SESSION_ID)?;
    let service_code = required("serviceCode", service_code, MAX_SERVICE_CODE)?;
    let phone = required("phoneNumber", phone, 32)?;
    let msisdn = Msisdn::parse(&phone, default_cc).map_err(|e| e.to_string())?;
    let network_code = match network.map(|n| n.trim().to_string()) {
        Some(n) if n.len() > MAX_NETWORK_CODE => {
            return Err(format!(
                "field networkCode is longer than {MAX_NETWORK_CODE} characters"
            ));
        }
        Some(n) if n.is_empty() => None,
        n => n,
    };
    Ok(AtCallback {
        session_id,
        service_code,
        msisdn,
        text: text_field.unwrap_or_default(),
        network_code,
    })
}

/// Reads a form-urlencoded body, or the refusal to send (415, 413, 400), counted.
pub async fn read_form(
    req: http::Request<Incoming>,
    max_body: usize,
) -> Result<bytes::Bytes, Box<Response<Body>>> {
    if !is_form(&req) {
        crate::metrics::http_rejected("content_type");
        return Err(Box::new(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type must be application/x-www-form-urlencoded\n",
        )));
    }
    read_body(req, max_body).await.map_err(|e| {
        crate::metrics::http_rejected("body");
        Box::new(e.response())
    })
}

/// The AT wire form of a reply.
pub fn render(reply: &Reply) -> String {
    let prefix = if reply.end { "END " } else { "CON " };
    let mut s = String::with_capacity(prefix.len() + reply.text.len());
    s.push_str(prefix);
    s.push_str(&reply.text);
    s
}

/// True when the request's content type is form-urlencoded (parameters such as a charset are
/// allowed).
pub fn is_form(req: &http::Request<Incoming>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Handles `POST /ussd`.
pub async fn handle(
    req: http::Request<Incoming>,
    registry: &Registry,
    max_body: usize,
    limit: crate::text::Limit,
    default_cc: &str,
    apology: &str,
) -> Response<Body> {
    let body = match read_form(req, max_body).await {
        Ok(b) => b,
        Err(refusal) => return *refusal,
    };
    let cb = match parse_callback(&body, default_cc) {
        Ok(cb) => cb,
        Err(reason) => {
            crate::metrics::http_rejected("bad_request");
            return text(StatusCode::BAD_REQUEST, format!("{reason}\n"));
        }
    };
    let hop = Hop {
        key: session_key(&cb.session_id),
        front: Front::Http,
        msisdn: cb.msisdn,
        dialled: cb.service_code,
        network: cb.network_code,
        input: HopInput::Cumulative(cb.text),
        limit,
    };
    let reply = reply_or_apology(registry.hop(hop).await, apology);
    text(StatusCode::OK, render(&reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_callback_parses_and_normalises_the_phone() {
        let cb = parse_callback(
            b"sessionId=ATUid_1&serviceCode=%2A123%23&phoneNumber=%2B254700000001&networkCode=63902&text=1%2A2",
            "254",
        )
        .unwrap();
        assert_eq!(cb.session_id, "ATUid_1");
        assert_eq!(cb.service_code, "*123#");
        assert_eq!(cb.msisdn.as_str(), "254700000001");
        assert_eq!(cb.text, "1*2");
        assert_eq!(cb.network_code.as_deref(), Some("63902"));
    }

    #[test]
    fn text_and_network_are_optional() {
        let cb = parse_callback(
            b"sessionId=s&serviceCode=*123%23&phoneNumber=0700000001",
            "254",
        )
        .unwrap();
        assert_eq!(cb.text, "");
        assert_eq!(cb.network_code, None);
        assert_eq!(cb.msisdn.as_str(), "254700000001");
    }

    #[test]
    fn missing_and_bad_fields_say_which() {
        let e = parse_callback(b"serviceCode=*1%23&phoneNumber=254700000001", "254").unwrap_err();
        assert_eq!(e, "missing field sessionId");
        let e = parse_callback(b"sessionId=s&phoneNumber=254700000001", "254").unwrap_err();
        assert_eq!(e, "missing field serviceCode");
        let e = parse_callback(b"sessionId=s&serviceCode=*1%23", "254").unwrap_err();
        assert_eq!(e, "missing field phoneNumber");
        let e = parse_callback(b"sessionId=&serviceCode=*1%23&phoneNumber=1", "254").unwrap_err();
        assert_eq!(e, "empty field sessionId");
        let e =
            parse_callback(b"sessionId=s&serviceCode=*1%23&phoneNumber=hello", "254").unwrap_err();
        assert_eq!(e, "phoneNumber is not a valid phone number");
    }

    #[test]
    fn replies_carry_the_at_prefix() {
        assert_eq!(render(&Reply::con("Menu")), "CON Menu");
        assert_eq!(render(&Reply::end("Bye")), "END Bye");
    }
}
