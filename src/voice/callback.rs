//! AT voice callbacks, transport-free: parse the form body, decide the answer.
//!
//! AT posts a form to the number's callback URL when a call arrives or an outbound call is
//! answered, to a GetDigits `callbackUrl` after digits are collected, and once more with
//! `isActive=0` when the call is over (that last one carries duration and cost, and expects no
//! actions). The HTTP front maps its routes to [`VoicePath`], calls [`parse_callback`] (an error
//! is a 400 with the message) and [`answer`], and for `isActive=0` stores the call record with
//! [`super::store_call_record`] before answering [`VoiceAnswer::Recorded`] (200, empty body).

use super::ivr::{Ivr, IvrSet};
use super::xml::{Action, RenderOptions, Say, render};
use crate::msisdn::Msisdn;

/// What a caller hears when the number or IVR is unknown (always valid XML, never a Reject).
pub const NOT_IN_SERVICE: &str = "Sorry, this number is not in service.";

/// One AT voice callback, as posted. Empty values are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoiceCallback {
    /// `sessionId`: the same for the whole call.
    pub session_id: String,
    /// `isActive`: `1` while the call is up, `0` on the final callback.
    pub is_active: bool,
    /// `direction`: `Inbound` or `Outbound`.
    pub direction: Option<String>,
    /// `callerNumber`, `+` international (our number for calls we placed).
    pub caller_number: Option<String>,
    /// `destinationNumber`, `+` international (our number for inbound calls).
    pub destination_number: Option<String>,
    /// `dtmfDigits`: what was pressed in a GetDigits (possibly with the finishOnKey).
    pub dtmf_digits: Option<String>,
    /// `durationInSeconds` (final callback).
    pub duration_seconds: Option<u64>,
    /// `currencyCode` (final callback), e.g. `KES`.
    pub currency_code: Option<String>,
    /// `amount` (final callback): the cost, as AT wrote it.
    pub amount: Option<String>,
    /// `hangupCause` (final callback), e.g. `NORMAL_CLEARING`.
    pub hangup_cause: Option<String>,
    /// `callStartTime`, as AT wrote it.
    pub call_start_time: Option<String>,
    /// `recordingUrl`: after a Record, or on the final callback for recorded calls.
    pub recording_url: Option<String>,
    /// `callSessionState` (final callback), e.g. `Completed`.
    pub call_session_state: Option<String>,
    /// `callerCarrierName`, e.g. `Safaricom`.
    pub caller_carrier_name: Option<String>,
    /// `callerCountryCode`, e.g. `KE`.
    pub caller_country_code: Option<String>,
    /// `dialDestinationNumber`: the party a Dial reached.
    pub dial_destination_number: Option<String>,
    /// `dialDurationInSeconds`.
    pub dial_duration_seconds: Option<u64>,
    /// `dialStartTime`.
    pub dial_start_time: Option<String>,
    /// `clientRequestId`: the tag set when we placed the call.
    pub client_request_id: Option<String>,
}

/// Parses a form-encoded AT voice callback. Only `isActive` (0 or 1) and `sessionId` are
/// required; a number field that does not parse is dropped with a warning rather than losing
/// the callback. The first occurrence of a repeated field wins.
///
/// # Errors
/// A one-line message for a 400: `missing field isActive`, `isActive must be 0 or 1`,
/// `missing field sessionId`.
pub fn parse_callback(form_body: &[u8]) -> Result<VoiceCallback, String> {
    let mut cb = VoiceCallback::default();
    let mut is_active = None;
    let mut seen = std::collections::HashSet::new();
    for (key, value) in form_urlencoded::parse(form_body) {
        if !seen.insert(key.clone()) {
            continue;
        }
        let value = value.trim();
        let text = (!value.is_empty()).then(|| value.to_string());
        match key.as_ref() {
            "isActive" => is_active = Some(value.to_string()),
            "sessionId" => cb.session_id = value.to_string(),
            "direction" => cb.direction = text,
            "callerNumber" => cb.caller_number = text,
            "destinationNumber" => cb.destination_number = text,
            "dtmfDigits" => cb.dtmf_digits = text,
            "durationInSeconds" => cb.duration_seconds = seconds("durationInSeconds", value),
            "currencyCode" => cb.currency_code = text,
            "amount" => cb.amount = text,
            "hangupCause" => cb.hangup_cause = text,
            "callStartTime" => cb.call_start_time = text,
            "recordingUrl" => cb.recording_url = text,
            "callSessionState" => cb.call_session_state = text,
            "callerCarrierName" => cb.caller_carrier_name = text,
            "callerCountryCode" => cb.caller_country_code = text,
            "dialDestinationNumber" => cb.dial_destination_number = text,
            "dialDurationInSeconds" => {
                cb.dial_duration_seconds = seconds("dialDurationInSeconds", value);
            }
            "dialStartTime" => cb.dial_start_time = text,
            "clientRequestId" => cb.client_request_id = text,
            _ => {}
        }
    }
    cb.is_active = match is_active.as_deref() {
        None | Some("") => return Err("missing field isActive".into()),
        Some("1") => true,
        Some("0") => false,
        Some(_) => return Err("isActive must be 0 or 1".into()),
    };
    if cb.session_id.is_empty() {
        return Err("missing field sessionId".into());
    }
    check_session_id(&cb.session_id)?;
    Ok(cb)
}

/// The longest voice `sessionId` accepted (AT's are about 40 characters).
pub const MAX_SESSION_ID: usize = 128;

/// A voice `sessionId` is stored (call records are keyed by it), logged and sent back: it must
/// be at most [`MAX_SESSION_ID`] characters of letters, digits, `_`, `-`, `.` and `:`, as AT's
/// (`ATVId_...`) are.
fn check_session_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_SESSION_ID {
        return Err(format!(
            "field sessionId is longer than {MAX_SESSION_ID} characters"
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
    {
        return Err(
            "field sessionId may hold only letters, digits and the characters _ - . :".into(),
        );
    }
    Ok(())
}

fn seconds(field: &str, value: &str) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    match value.parse() {
        Ok(n) => Some(n),
        Err(_) => {
            tracing::warn!(
                field,
                value = ?crate::logsafe::untrusted(value),
                "voice: ignoring a duration that is not a whole number"
            );
            None
        }
    }
}

/// Which endpoint a callback reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoicePath {
    /// `POST /voice/callback`: the number's callback URL (call start, final callback).
    Callback,
    /// `POST /voice/dtmf/{ivr}` (start menu) or `/voice/dtmf/{ivr}/{menu}`: digits pressed.
    Dtmf {
        /// The IVR's name.
        ivr: String,
        /// The menu the digits answer (`None`: the start menu).
        menu: Option<String>,
    },
    /// `POST /voice/menu/{ivr}` (start menu) or `/voice/menu/{ivr}/{menu}`: present a menu.
    Menu {
        /// The IVR's name.
        ivr: String,
        /// The menu to present (`None`: the start menu).
        menu: Option<String>,
    },
}

impl VoicePath {
    /// Maps a request path (query string already removed) to an endpoint; `None` for any
    /// other path, which the front answers 404.
    pub fn from_path(path: &str) -> Option<VoicePath> {
        let rest = path.strip_prefix("/voice/")?.trim_end_matches('/');
        let mut parts = rest.split('/');
        let kind = parts.next()?;
        let ivr = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
        let menu = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
        if parts.next().is_some() {
            return None;
        }
        match (kind, ivr) {
            ("callback", None) => Some(VoicePath::Callback),
            ("dtmf", Some(ivr)) => Some(VoicePath::Dtmf { ivr, menu }),
            ("menu", Some(ivr)) => Some(VoicePath::Menu { ivr, menu }),
            _ => None,
        }
    }
}

/// What to send back to AT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceAnswer {
    /// 200 with this XML document (Content-Type [`super::CONTENT_TYPE`]).
    Xml(String),
    /// The final `isActive=0` callback: store the call record, answer 200 with an empty body.
    Recorded,
}

/// Decides the answer to a callback.
///
/// - `isActive=0` on any path: [`VoiceAnswer::Recorded`].
/// - a callback carrying `dialDestinationNumber` and no digits (AT re-posting when a dialled
///   party picks up; UNCONFIRMED): an empty `<Response/>`, which keeps the bridge up.
/// - `/voice/callback`: the IVR of our number (for an Outbound call `callerNumber` is tried
///   before `destinationNumber`, otherwise the reverse); its start menu, or, if digits came
///   with the callback, their route in the start menu.
/// - `/voice/dtmf/..`: the route of the digits pressed; `/voice/menu/..`: the menu.
/// - unknown number, IVR or menu: `<Say>` [`NOT_IN_SERVICE`] (the call then ends).
pub fn answer(
    ivrs: &IvrSet,
    path: VoicePath,
    cb: &VoiceCallback,
    base_url: &str,
    opts: &RenderOptions,
) -> VoiceAnswer {
    if !cb.is_active {
        return VoiceAnswer::Recorded;
    }
    if cb.dial_destination_number.is_some() && cb.dtmf_digits.is_none() {
        return VoiceAnswer::Xml(render(&[], opts));
    }
    let actions = match &path {
        VoicePath::Callback => find_ivr(ivrs, cb).and_then(|ivr| {
            tracing::info!(session = ?crate::logsafe::untrusted(&cb.session_id), ivr = ivr.name(), caller = %masked(cb.caller_number.as_deref()), "voice: call answered");
            match cb.dtmf_digits.as_deref() {
                Some(d) => ivr.dtmf_actions(None, Some(d), base_url),
                None => ivr.menu_actions(None, base_url),
            }
        }),
        VoicePath::Dtmf { ivr, menu } => ivrs
            .get(ivr)
            .and_then(|i| i.dtmf_actions(menu.as_deref(), cb.dtmf_digits.as_deref(), base_url)),
        VoicePath::Menu { ivr, menu } => ivrs.get(ivr).and_then(|i| i.menu_actions(menu.as_deref(), base_url)),
    };
    let actions = actions.unwrap_or_else(|| {
        tracing::warn!(session = ?crate::logsafe::untrusted(&cb.session_id), ?path, destination = %masked(cb.destination_number.as_deref()), "voice: no IVR for this call");
        vec![Action::Say(Say::text(NOT_IN_SERVICE))]
    });
    VoiceAnswer::Xml(render(&actions, opts))
}

/// The IVR of our number in this call, looked up in the order the direction suggests.
fn find_ivr<'a>(ivrs: &'a IvrSet, cb: &VoiceCallback) -> Option<&'a Ivr> {
    let outbound = cb
        .direction
        .as_deref()
        .is_some_and(|d| d.eq_ignore_ascii_case("outbound"));
    let (first, second) = if outbound {
        (&cb.caller_number, &cb.destination_number)
    } else {
        (&cb.destination_number, &cb.caller_number)
    };
    [first, second]
        .into_iter()
        .flatten()
        .find_map(|n| ivrs.by_number(n))
}

/// A phone number for logs: masked when it parses, `-` when absent, `?` otherwise.
fn masked(raw: Option<&str>) -> String {
    match raw {
        None => "-".into(),
        Some(r) => Msisdn::parse(r, "").map_or_else(|_| "?".into(), |m| m.masked().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            VoicePath::from_path("/voice/callback"),
            Some(VoicePath::Callback)
        );
        assert_eq!(
            VoicePath::from_path("/voice/dtmf/microfinance"),
            Some(VoicePath::Dtmf {
                ivr: "microfinance".into(),
                menu: None
            })
        );
        assert_eq!(
            VoicePath::from_path("/voice/menu/m/loans"),
            Some(VoicePath::Menu {
                ivr: "m".into(),
                menu: Some("loans".into())
            })
        );
        for bad in [
            "/voice/dtmf",
            "/voice/dtmf/",
            "/voice/callback/x",
            "/voice/x/y",
            "/ussd",
            "/voice/menu/a/b/c",
        ] {
            assert_eq!(VoicePath::from_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_numbers_are_not_fatal() {
        let cb = parse_callback(b"isActive=0&sessionId=s&durationInSeconds=abc").unwrap();
        assert_eq!(cb.duration_seconds, None);
    }
}
