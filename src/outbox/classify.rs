//! What an AT answer means for an outbox item: sent, retry later, or never.
//!
//! The rules (see docs/outbox.md):
//! - no answer (timeout, connection error), HTTP 408, 429 and 5xx: transient, retried;
//! - 401 and 403 (bad key or username), any other 4xx: permanent, not retried;
//! - 2xx: the recipient entry decides. SMS `statusCode` 100/101/102 = sent, 500/501 (AT's own
//!   internal and gateway errors) = transient, anything else (401-407 and the rest) = rejected;
//!   a call entry `Queued` = sent, any other entry status (`InvalidPhoneNumber`, ...) = rejected;
//!   airtime `Sent`/`Success`/`Queued` = sent, `Failed` = rejected unless its reason reads as
//!   temporary.
//!
//! Recipient status values are UNCONFIRMED against AT's official docs (third-party code agrees
//! on them). Everything unknown in a 2xx answer is treated as a permanent failure, recorded with
//! what AT said: AT accepted the request, so sending it again could deliver it twice, and an
//! operator can see and re-queue a failed item, never take back a duplicate SMS or airtime.

use super::transport::{RawResponse, TransportError};
use serde_json::Value;
use std::time::Duration;

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// AT accepted it.
    Sent {
        /// AT's reference and cost, for the record.
        detail: String,
    },
    /// Try again later.
    Transient {
        /// Why, in one line.
        reason: String,
        /// How long the server asked us to wait, if it did.
        retry_after: Option<Duration>,
    },
    /// Never try again.
    Permanent {
        /// Why, in one line.
        reason: String,
    },
    /// Not attempted: the account (or the voice number) is not configured.
    NotSent {
        /// Why, in one line.
        reason: String,
    },
}

impl Outcome {
    /// The metric label of this outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Sent { .. } => "sent",
            Outcome::Transient { .. } => "transient_failure",
            Outcome::Permanent { .. } => "permanent_failure",
            Outcome::NotSent { .. } => "not_sent",
        }
    }

    pub(crate) fn transient(reason: impl Into<String>) -> Outcome {
        Outcome::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub(crate) fn permanent(reason: impl Into<String>) -> Outcome {
        Outcome::Permanent {
            reason: reason.into(),
        }
    }
}

/// A request that got no answer.
pub fn from_transport(e: &TransportError) -> Outcome {
    match e {
        TransportError::Unsupported(m) => Outcome::permanent(m.clone()),
        other => Outcome::transient(scrub(&other.to_string())),
    }
}

/// A non-2xx answer; `None` for 2xx (the body decides).
fn by_status(resp: &RawResponse) -> Option<Outcome> {
    let status = resp.status;
    if status.is_success() {
        return None;
    }
    let what = format!("HTTP {}: {}", status.as_u16(), snippet(&resp.body));
    Some(match status.as_u16() {
        401 | 403 => Outcome::permanent(format!("authentication refused, {what}")),
        408 | 429 => Outcome::Transient {
            reason: what,
            retry_after: resp.retry_after,
        },
        500..=599 => Outcome::Transient {
            reason: what,
            retry_after: resp.retry_after,
        },
        _ => Outcome::permanent(what),
    })
}

fn json(resp: &RawResponse) -> Result<Value, Outcome> {
    serde_json::from_slice(&resp.body).map_err(|_| {
        Outcome::permanent(format!(
            "HTTP {} with an unreadable answer: {}",
            resp.status.as_u16(),
            snippet(&resp.body)
        ))
    })
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An `errorMessage` that means something went wrong ("None" and absent mean all is well).
fn error_message(v: &Value) -> Option<&str> {
    match v.get("errorMessage").and_then(Value::as_str) {
        None | Some("None" | "") => None,
        Some(m) => Some(m),
    }
}

/// Whether a failure reason reads as temporary (AT's internal errors, timeouts).
fn sounds_temporary(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "timeout",
        "timed out",
        "temporar",
        "internal",
        "system error",
        "try again",
    ]
    .iter()
    .any(|w| r.contains(w))
}

/// The answer of `POST /version1/messaging`.
pub fn sms(resp: &RawResponse) -> Outcome {
    if let Some(o) = by_status(resp) {
        return o;
    }
    let v = match json(resp) {
        Ok(v) => v,
        Err(o) => return o,
    };
    let data = v.get("SMSMessageData").unwrap_or(&Value::Null);
    let Some(r) = data
        .get("Recipients")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    else {
        let message = scrub(text(data, "Message"));
        return Outcome::permanent(format!("no recipient accepted: {message}"));
    };
    let code = r.get("statusCode").and_then(|c| match c {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    let status = text(r, "status");
    let detail = format!(
        "statusCode {} {status}, messageId {}, cost {}",
        code.map_or_else(|| "?".into(), |c| c.to_string()),
        text(r, "messageId"),
        text(r, "cost")
    );
    match code {
        Some(100..=102) => Outcome::Sent { detail },
        None if status.eq_ignore_ascii_case("success") => Outcome::Sent { detail },
        Some(500 | 501) => Outcome::transient(format!("recipient not reached: {detail}")),
        _ => Outcome::permanent(format!("recipient rejected: {detail}")),
    }
}

/// The answer of `POST /call`.
pub fn call(resp: &RawResponse) -> Outcome {
    if let Some(o) = by_status(resp) {
        return o;
    }
    let v = match json(resp) {
        Ok(v) => v,
        Err(o) => return o,
    };
    let Some(entry) = v
        .get("entries")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    else {
        let reason = scrub(error_message(&v).unwrap_or("no entries in the answer"));
        return if sounds_temporary(&reason) {
            Outcome::transient(format!("call not placed: {reason}"))
        } else {
            Outcome::permanent(format!("call not placed: {reason}"))
        };
    };
    let status = text(entry, "status");
    if status.eq_ignore_ascii_case("queued") {
        Outcome::Sent {
            detail: format!("Queued, sessionId {}", text(entry, "sessionId")),
        }
    } else {
        let extra = error_message(entry)
            .or_else(|| error_message(&v))
            .unwrap_or("");
        Outcome::permanent(scrub(format!("call rejected: {status} {extra}").trim_end()))
    }
}

/// The answer of `POST /version1/airtime/send`. `attempt` is 1 for the first try: AT refuses
/// the same number and amount twice within a few minutes, which on a retry means our earlier
/// attempt got through (its answer was lost), and on a first try means another purchase of the
/// same amount (wait and send).
pub fn airtime(resp: &RawResponse, attempt: u32) -> Outcome {
    if let Some(o) = by_status(resp) {
        return o;
    }
    let v = match json(resp) {
        Ok(v) => v,
        Err(o) => return o,
    };
    let Some(r) = v
        .get("responses")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    else {
        let reason = scrub(error_message(&v).unwrap_or("no responses in the answer"));
        return failed_airtime(reason, attempt);
    };
    let status = text(r, "status");
    let detail = format!(
        "{status}, requestId {}, amount {}, discount {}",
        text(r, "requestId"),
        text(r, "amount"),
        text(r, "discount")
    );
    match status.to_ascii_lowercase().as_str() {
        "sent" | "success" | "queued" => Outcome::Sent { detail },
        "failed" => {
            let reason = error_message(r).or_else(|| error_message(&v)).unwrap_or("");
            failed_airtime(scrub(&format!("{detail}: {reason}")), attempt)
        }
        _ => Outcome::permanent(format!("unrecognised airtime status: {detail}")),
    }
}

fn failed_airtime(reason: String, attempt: u32) -> Outcome {
    if reason.to_ascii_lowercase().contains("duplicate") {
        if attempt > 1 {
            return Outcome::Sent {
                detail: format!("AT reports a duplicate of our earlier attempt: {reason}"),
            };
        }
        return Outcome::Transient {
            reason: format!("airtime refused as a duplicate: {reason}"),
            retry_after: Some(Duration::from_secs(300)),
        };
    }
    if sounds_temporary(&reason) {
        Outcome::transient(format!("airtime failed: {reason}"))
    } else {
        Outcome::permanent(format!("airtime failed: {reason}"))
    }
}

/// At most 200 characters of a body, on one line, phone numbers masked.
fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let one_line: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect();
    scrub(&one_line)
}

/// Masks every run of 7 or more digits (a phone number) to its first and last three digits, so
/// that reasons can be logged and counted without PII.
pub fn scrub(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 7 {
            out.push_str(&run[..3]);
            out.extend(std::iter::repeat_n('*', run.len() - 6));
            out.push_str(&run[run.len() - 3..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> RawResponse {
        RawResponse {
            status: http::StatusCode::CREATED,
            retry_after: None,
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn phone_numbers_are_masked_in_reasons() {
        assert_eq!(scrub("to +254711000001: no"), "to +254******001: no");
        assert_eq!(scrub("KES 0.8000, code 403"), "KES 0.8000, code 403");
    }

    #[test]
    fn sms_recipient_codes() {
        let body = |code: &str| {
            format!(
                r#"{{"SMSMessageData":{{"Recipients":[{{"statusCode":{code},"status":"X"}}]}}}}"#
            )
        };
        for code in ["100", "101", "102", "\"101\""] {
            assert_eq!(sms(&ok(&body(code))).label(), "sent", "{code}");
        }
        for code in [
            "401", "402", "403", "404", "405", "406", "407", "409", "502",
        ] {
            assert_eq!(sms(&ok(&body(code))).label(), "permanent_failure", "{code}");
        }
        for code in ["500", "501"] {
            assert_eq!(sms(&ok(&body(code))).label(), "transient_failure", "{code}");
        }
    }

    #[test]
    fn airtime_statuses_and_duplicates() {
        let body = |status: &str, error: &str| {
            format!(
                r#"{{"errorMessage":"None","responses":[{{"status":"{status}","errorMessage":"{error}"}}]}}"#
            )
        };
        assert_eq!(airtime(&ok(&body("Sent", "None")), 1).label(), "sent");
        assert_eq!(airtime(&ok(&body("Success", "None")), 1).label(), "sent");
        let failed = airtime(&ok(&body("Failed", "Insufficient Credit")), 1);
        assert_eq!(failed.label(), "permanent_failure");
        let busy = airtime(&ok(&body("Failed", "Internal system error")), 1);
        assert_eq!(busy.label(), "transient_failure");
        let dup = "A duplicate request was received within the last 5 minutes";
        assert_eq!(
            airtime(&ok(&body("Failed", dup)), 1).label(),
            "transient_failure"
        );
        assert_eq!(airtime(&ok(&body("Failed", dup)), 2).label(), "sent");
        assert_eq!(
            airtime(&ok(&body("Weird", "")), 1).label(),
            "permanent_failure"
        );
        let refused = r#"{"errorMessage":"Invalid username","numSent":0,"responses":[]}"#;
        assert_eq!(airtime(&ok(refused), 1).label(), "permanent_failure");
    }
}
