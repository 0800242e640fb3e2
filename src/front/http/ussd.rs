//! Africa's Talking's session keys and form bodies, shared by its dialect (`POST /ussd`,
//! served by [`super::dialect`] from its description), its end events and the voice callback.
//!
//! AT posts a form with `sessionId`, `serviceCode`, `phoneNumber` (required), `text` (absent
//! means empty: every input so far joined by `*`) and `networkCode` (optional), and reads 200
//! `text/plain` starting `CON ` (wait for input) or `END ` (close).

use super::{Body, read_body, text};
use crate::hop::SessionKey;
use http::{Response, StatusCode, header};
use hyper::body::Incoming;

/// Longest accepted `sessionId`.
pub(super) const MAX_SESSION_ID: usize = 128;

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
