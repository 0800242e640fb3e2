//! `POST /voice/callback`, `/voice/dtmf/{ivr}[/{menu}]`, `/voice/menu/{ivr}[/{menu}]`: Africa's
//! Talking voice callbacks, answered with IVR XML.
//!
//! The front only translates: it checks the form, hands the callback to [`crate::voice`], and
//! writes the answer. The final callback of a call (`isActive=0`) carries its record (duration,
//! cost), which is stored and flushed before the empty 200 that AT expects.

use super::{Body, text};
use crate::store::Store;
use crate::voice::{self, IvrSet, RenderOptions, VoiceAnswer, VoicePath};
use http::{Response, StatusCode, header};
use hyper::body::Incoming;
use std::sync::Arc;

/// What the voice routes need.
#[derive(Debug, Clone)]
pub struct VoiceState {
    /// The IVRs from config.
    pub ivrs: Arc<IvrSet>,
    /// Where call records go.
    pub store: Store,
    /// The public base URL placed in the XML's callback URLs.
    pub base_url: Arc<str>,
    /// XML rendering choices.
    pub render: Arc<RenderOptions>,
    /// Largest accepted body.
    pub max_body: usize,
    /// The currencies call costs are counted under (`[voice] cost_currencies`).
    pub cost_currencies: Arc<[String]>,
}

/// Handles one voice callback on `path`.
pub async fn handle(
    req: http::Request<Incoming>,
    path: VoicePath,
    state: &VoiceState,
) -> Response<Body> {
    let body = match super::ussd::read_form(req, state.max_body).await {
        Ok(b) => b,
        Err(refusal) => return *refusal,
    };
    let cb = match voice::parse_callback(&body) {
        Ok(cb) => cb,
        Err(reason) => {
            crate::metrics::http_rejected("bad_request");
            return text(StatusCode::BAD_REQUEST, format!("{reason}\n"));
        }
    };
    match voice::answer(&state.ivrs, path, &cb, &state.base_url, &state.render) {
        VoiceAnswer::Recorded => {
            crate::metrics::voice_callback(
                "final",
                cb.currency_code.as_deref(),
                cb.amount.as_deref(),
                &state.cost_currencies,
            );
            if let Err(e) = voice::store_call_record(&state.store, &cb).await {
                tracing::error!(error = %e, "call record not stored");
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "call record not stored\n",
                );
            }
            text(StatusCode::OK, "")
        }
        VoiceAnswer::Xml(xml) => {
            crate::metrics::voice_callback("active", None, None, &[]);
            let mut r = text(StatusCode::OK, xml);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(voice::CONTENT_TYPE),
            );
            r
        }
    }
}
