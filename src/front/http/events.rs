//! Africa's Talking's end-of-session notification, both ways: AT's own (`POST /ussd/events`),
//! which ends the dialogue at once, and the gateway's, sent to the operator's receiver
//! (`[events] url`) through the outbox when a dialogue ends, in AT's format.
//!
//! The format is AT's, so it is this front's; the session only knows that a dialogue ended and
//! what its end record says, and reports it through [`EndEvents`].

use super::ussd::{MAX_SESSION_ID, at_session_id, read_form, session_key};
use super::{Body, text};
use crate::msisdn::Msisdn;
use crate::outbox::Effect;
use crate::session::state::{AggregatorReport, EndReason, EndRecord};
use crate::session::{EndEvents, Registry};
use http::{Response, StatusCode};
use hyper::body::Incoming;

/// Handles `POST /ussd/events`: AT's end-of-session notification. It ends the dialogue at once
/// (instead of waiting for its idle timeout) and keeps AT's status, cost and error message with
/// the end-of-session record. Answers 200 `OK` whenever the notification is well formed, known
/// dialogue or not, so AT does not retry it.
pub async fn handle(
    req: http::Request<Incoming>,
    registry: &Registry,
    max_body: usize,
    default_cc: &str,
) -> Response<Body> {
    let body = match read_form(req, max_body).await {
        Ok(b) => b,
        Err(refusal) => return *refusal,
    };
    let mut session_id = None;
    let mut status = None;
    let mut cost = None;
    let mut error_message = None;
    let mut phone = None;
    for (k, v) in form_urlencoded::parse(&body) {
        let v = v.trim().to_string();
        match k.as_ref() {
            "sessionId" => session_id = Some(v),
            "phoneNumber" => phone = Some(v).filter(|p| !p.is_empty()),
            "status" => status = Some(v),
            "cost" => cost = Some(v).filter(|c| !c.is_empty()),
            "errorMessage" => error_message = Some(v).filter(|e| !e.is_empty() && e != "None"),
            _ => {}
        }
    }
    let refuse = |why: String| {
        crate::metrics::http_rejected("bad_request");
        text(StatusCode::BAD_REQUEST, why)
    };
    let session_id = match session_id {
        None => return refuse("missing field sessionId\n".into()),
        Some(s) if s.is_empty() => return refuse("empty field sessionId\n".into()),
        Some(s) if s.len() > MAX_SESSION_ID => {
            return refuse(format!(
                "field sessionId is longer than {MAX_SESSION_ID} characters\n"
            ));
        }
        Some(s) if s.chars().any(char::is_control) => {
            return refuse("field sessionId holds control characters\n".into());
        }
        Some(s) => s,
    };
    let Some(status) = status.filter(|s| matches!(s.as_str(), "Success" | "Incomplete" | "Failed"))
    else {
        return refuse("field status must be Success, Incomplete or Failed\n".into());
    };
    // A live dialogue that AT says succeeded ended as the app meant; any other status is AT's
    // abandoning it.
    let reason = if status == "Success" {
        EndReason::End
    } else {
        EndReason::Abort
    };
    // The subscriber AT names: a report for another number's dialogue is refused by the
    // dialogue (as a hop naming it would be).
    let msisdn = match phone.map(|p| Msisdn::parse(&p, default_cc)) {
        Some(Ok(m)) => Some(m),
        Some(Err(_)) => return refuse("field phoneNumber is not a valid phone number\n".into()),
        None => None,
    };
    let report = AggregatorReport {
        status,
        cost,
        error_message,
    };
    if !registry
        .report_end(session_key(&session_id), report, reason, msisdn)
        .await
    {
        tracing::info!(
            "end-of-session notification not applied: no such dialogue, or another number's"
        );
    }
    text(StatusCode::OK, "OK")
}

/// The status AT reports for a dialogue that ended for `reason`.
pub fn status(reason: EndReason) -> &'static str {
    match reason {
        EndReason::End => "Success",
        EndReason::IdleTimeout | EndReason::Abort => "Incomplete",
        EndReason::Error => "Failed",
    }
}

/// `record` as an AT end-of-session notification (form fields in order); `last_reply_end`
/// says whether the last reply ended the dialogue.
pub fn fields(record: &EndRecord, last_reply_end: bool) -> Vec<(String, String)> {
    let date = jiff::Timestamp::from_millisecond(record.ended_ms as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let prefix = if last_reply_end { "END " } else { "CON " };
    [
        ("date", date),
        ("sessionId", at_session_id(&record.session).to_string()),
        ("serviceCode", record.service_code.clone()),
        ("networkCode", record.network.clone().unwrap_or_default()),
        ("phoneNumber", record.msisdn.international()),
        ("status", status(record.reason).to_string()),
        ("durationInMillis", record.duration_ms.to_string()),
        ("hopsCount", record.hops.to_string()),
        ("input", record.input.clone()),
        ("lastAppResponse", format!("{prefix}{}", record.last_reply)),
        ("errorMessage", record.error.clone().unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The gateway's end-of-session notifications, in AT's format, to the operator's receiver.
#[derive(Debug, Clone)]
pub struct AtEvents {
    /// The receiver's URL.
    pub url: String,
}

impl EndEvents for AtEvents {
    fn event(&self, record: &EndRecord, last_reply_end: bool) -> Effect {
        Effect::Event {
            url: self.url.clone(),
            fields: fields(record, last_reply_end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hop::Front;
    use crate::msisdn::Msisdn;

    #[test]
    fn an_end_record_reads_as_ats_notification() {
        let record = EndRecord {
            session: session_key("ATUid_1").to_string(),
            msisdn: Msisdn::parse("254700000001", "254").unwrap(),
            front: Front::Http,
            service_code: "*384*303#".into(),
            dialled: "*384*303#".into(),
            network: Some("63902".into()),
            started_ms: 0,
            ended_ms: 1_000,
            duration_ms: 1_000,
            hops: 2,
            reason: EndReason::IdleTimeout,
            input: "1*xxxx".into(),
            last_reply: "Enter PIN".into(),
            error: None,
            aggregator: None,
            transactions: Vec::new(),
            unpersisted_hop: None,
            journey: Vec::new(),
        };
        let fields = fields(&record, false);
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "date",
                "sessionId",
                "serviceCode",
                "networkCode",
                "phoneNumber",
                "status",
                "durationInMillis",
                "hopsCount",
                "input",
                "lastAppResponse",
                "errorMessage"
            ]
        );
        let field = |name: &str| &fields.iter().find(|(k, _)| k == name).unwrap().1;
        assert_eq!(field("date"), "1970-01-01 00:00:01");
        assert_eq!(field("sessionId"), "ATUid_1");
        assert_eq!(field("status"), "Incomplete");
        assert_eq!(field("lastAppResponse"), "CON Enter PIN");
        assert_eq!(field("errorMessage"), "");
    }

    #[test]
    fn status_words_and_session_ids() {
        assert_eq!(status(EndReason::End), "Success");
        assert_eq!(status(EndReason::Abort), "Incomplete");
        assert_eq!(status(EndReason::Error), "Failed");
        assert_eq!(&*session_key("ATUid_1"), "http:ATUid_1");
        assert_eq!(at_session_id(&session_key("ATUid_1")), "ATUid_1");
        assert_eq!(
            at_session_id("smpp:op:254700000001:7"),
            "smpp:op:254700000001:7"
        );
    }
}
