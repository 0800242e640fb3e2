//! What the outbox holds: side effects that leave the process (SMS, airtime, calls), written in
//! the same store transaction as the change they belong to and sent later in the background.
//!
//! The model sits below both its writers and its sender: the store writes items (with a flow's
//! transaction, with a dialogue's end) without importing the outbox, and a flow's transaction
//! names its effects (`TxOp::Outbox`) without importing either. The outbox re-exports it
//! (`outbox::Effect`, `outbox::Item`).

use serde::{Deserialize, Serialize};

/// One effect to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    /// An SMS through the AT messaging API.
    Sms {
        /// Canonical MSISDN (digits, country code, no `+`).
        to: String,
        /// The text.
        message: String,
    },
    /// Airtime through the AT airtime API.
    Airtime {
        /// Canonical MSISDN.
        to: String,
        /// ISO currency code, e.g. `KES`.
        currency: String,
        /// Amount in cents (minor units).
        amount_cents: i64,
    },
    /// An outbound voice call through the AT voice API, from the configured AT number.
    Call {
        /// Canonical MSISDN.
        to: String,
    },
    /// A USSD notification (USSN push) over an SMPP bind.
    Ussn {
        /// Canonical MSISDN.
        to: String,
        /// The text.
        message: String,
        /// The `[[smpp.binds]]` name; the first bind up when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bind: Option<String>,
    },
    /// A network-initiated USSD dialogue (USSR) over an SMPP bind: the subscriber's phone
    /// shows the first screen of the route for `service_code`, as if they had dialled it.
    Ussr {
        /// Canonical MSISDN.
        to: String,
        /// The service code whose route answers (`*384*303#`).
        service_code: String,
        /// The `[[smpp.binds]]` name; the first bind up when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bind: Option<String>,
    },
    /// An end-of-session notification in Africa's Talking's format, POSTed as a form to the
    /// configured events URL until it answers 200.
    Event {
        /// The receiver.
        url: String,
        /// The form fields, in order.
        fields: Vec<(String, String)>,
    },
}

impl Effect {
    /// A fixed name, usable as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::Sms { .. } => "sms",
            Effect::Airtime { .. } => "airtime",
            Effect::Call { .. } => "call",
            Effect::Event { .. } => "event",
            Effect::Ussn { .. } => "ussn",
            Effect::Ussr { .. } => "ussr",
        }
    }

    /// The subscriber it goes to (canonical MSISDN); `None` for an event.
    pub fn recipient(&self) -> Option<&str> {
        match self {
            Effect::Sms { to, .. }
            | Effect::Airtime { to, .. }
            | Effect::Call { to }
            | Effect::Ussn { to, .. }
            | Effect::Ussr { to, .. } => Some(to),
            Effect::Event { .. } => None,
        }
    }

    /// The recipient as logs and the admin listener show it: country code and last three
    /// digits, or "events receiver".
    pub fn masked_recipient(&self) -> String {
        match self.recipient() {
            Some(to) => crate::msisdn::Msisdn::parse(to, "")
                .map(|m| m.masked().to_string())
                .unwrap_or_else(|_| "***".into()),
            None => "events receiver".into(),
        }
    }
}

/// Where an item stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Waiting to be sent (first time, or again after a transient failure).
    Pending,
    /// The API accepted it.
    Sent,
    /// A permanent failure (401, a rejected recipient): not retried.
    Failed {
        /// Why, in one line.
        reason: String,
    },
    /// No AT account is configured: recorded and logged, never sent.
    NotSent,
    /// Voided before it was sent by a later change (a cancelled appointment's reminder): never
    /// sent.
    Voided,
}

/// One outbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The store-wide unique id (also the key).
    pub id: u64,
    /// What to send.
    pub effect: Effect,
    /// When it was written.
    pub created_ms: u64,
    /// Not before this time (reminders); `created_ms` for immediate effects.
    pub not_before_ms: u64,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (back-off after transient failures).
    pub next_attempt_ms: u64,
    /// Where it stands.
    pub status: Status,
    /// The last error seen, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The dialogue that caused it, for tracing (the session key, never shown in metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// What AT answered when it accepted the item (message, request or call session id, cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When it reached a final status (sent, failed, not sent); `None` while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
}

impl Item {
    /// A new pending item.
    pub fn new(
        id: u64,
        effect: Effect,
        now_ms: u64,
        not_before_ms: Option<u64>,
        session: Option<String>,
    ) -> Item {
        // A time in the past simply means "now"; it is kept as given for the record.
        let not_before_ms = not_before_ms.unwrap_or(now_ms);
        Item {
            id,
            effect,
            created_ms: now_ms,
            not_before_ms,
            attempts: 0,
            next_attempt_ms: not_before_ms,
            status: Status::Pending,
            last_error: None,
            session,
            detail: None,
            finished_ms: None,
        }
    }

    /// The key of this item in the store's outbox tree: its id, big-endian.
    pub fn key(&self) -> [u8; 8] {
        self.id.to_be_bytes()
    }
}
