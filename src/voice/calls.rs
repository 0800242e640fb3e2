//! Call records: what the final `isActive=0` callback says about a call, kept in the store
//! oldest first, once per call even when AT posts the final callback twice
//! ([`Store::store_call_once`]).
//!
//! Phone numbers are stored canonical (digits with country code, no `+`) when they are `+`
//! international numbers, and as AT sent them otherwise (SIP addresses).

use super::callback::VoiceCallback;
use crate::msisdn::Msisdn;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// One finished call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// AT's `sessionId`.
    pub session_id: String,
    /// `callerNumber` (canonical when it is a phone number).
    pub caller: Option<String>,
    /// `destinationNumber` (canonical when it is a phone number).
    pub destination: Option<String>,
    /// `Inbound` or `Outbound`.
    pub direction: Option<String>,
    /// `durationInSeconds`.
    pub duration_seconds: Option<u64>,
    /// `currencyCode` of the cost.
    pub currency: Option<String>,
    /// `amount`: the cost, as AT wrote it.
    pub amount: Option<String>,
    /// `hangupCause`.
    pub hangup_cause: Option<String>,
    /// `callStartTime`, as AT wrote it.
    pub call_start_time: Option<String>,
    /// `callSessionState`, e.g. `Completed`.
    pub call_session_state: Option<String>,
    /// `recordingUrl` (Dial with record, or a terminal Record).
    pub recording_url: Option<String>,
    /// `dialDestinationNumber` (canonical when it is a phone number).
    pub dial_destination: Option<String>,
    /// `dialDurationInSeconds`.
    pub dial_duration_seconds: Option<u64>,
    /// `clientRequestId` of a call we placed.
    pub client_request_id: Option<String>,
    /// When the gateway stored it (RFC 3339, UTC).
    pub recorded_at: String,
}

impl CallRecord {
    /// The record of a callback, stamped `recorded_at`.
    pub fn from_callback(cb: &VoiceCallback, recorded_at: jiff::Timestamp) -> CallRecord {
        CallRecord {
            session_id: cb.session_id.clone(),
            caller: cb.caller_number.as_deref().map(canonical),
            destination: cb.destination_number.as_deref().map(canonical),
            direction: cb.direction.clone(),
            duration_seconds: cb.duration_seconds,
            currency: cb.currency_code.clone(),
            amount: cb.amount.clone(),
            hangup_cause: cb.hangup_cause.clone(),
            call_start_time: cb.call_start_time.clone(),
            call_session_state: cb.call_session_state.clone(),
            recording_url: cb.recording_url.clone(),
            dial_destination: cb.dial_destination_number.as_deref().map(canonical),
            dial_duration_seconds: cb.dial_duration_seconds,
            client_request_id: cb.client_request_id.clone(),
            recorded_at: recorded_at.to_string(),
        }
    }
}

fn canonical(raw: &str) -> String {
    if raw.trim_start().starts_with('+')
        && let Ok(m) = Msisdn::parse(raw, "")
    {
        return m.as_str().to_string();
    }
    raw.to_string()
}

/// Stores the call record of a (final) callback, unless one for the same session is already
/// stored, and returns once it is durable.
///
/// # Errors
/// Store or serialisation errors.
pub async fn store_call_record(store: &Store, cb: &VoiceCallback) -> Result<(), StoreError> {
    let record = CallRecord::from_callback(cb, jiff::Timestamp::now());
    let stored = store.store_call_once(&record.session_id, &record).await?;
    if !stored {
        tracing::debug!(session = ?crate::logsafe::untrusted(&record.session_id), "voice: call record already stored");
    }
    Ok(())
}

/// Every stored call record, oldest first.
///
/// # Errors
/// Store errors, or a record that no longer parses.
pub async fn call_records(store: &Store) -> Result<Vec<CallRecord>, StoreError> {
    store.call_records().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_canonical_unless_sip() {
        assert_eq!(canonical("+254711000001"), "254711000001");
        assert_eq!(
            canonical("agent@ke.sip.africastalking.com"),
            "agent@ke.sip.africastalking.com"
        );
    }

    #[tokio::test]
    async fn a_retried_final_callback_is_stored_once() {
        let store = Store::temporary().unwrap();
        let cb = VoiceCallback {
            session_id: "ATVId_1".into(),
            ..VoiceCallback::default()
        };
        store_call_record(&store, &cb).await.unwrap();
        store_call_record(&store, &cb).await.unwrap();
        assert_eq!(call_records(&store).await.unwrap().len(), 1);
    }
}
