//! The internal shape of one USSD hop, shared by every front and every app.
//!
//! A front translates its wire format into a [`Hop`] and a [`Reply`] back into its wire format;
//! nothing behind the fronts (sessions, apps, flows, the store) ever sees an HTTP request or an
//! SMPP PDU. The hop and its reply live here together, below the fronts, the sessions and the
//! apps, so that each of them can name them without importing another.

use crate::msisdn::Msisdn;
use crate::text::Limit;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// What stands for an input typed on a `sensitive` screen (a PIN) in everything kept after its
/// hop: the same for every such input, whatever its length, so that the length does not leak;
/// and without `*`, so that a masked text still shows where its inputs begin and end.
pub const MASK: &str = "xxxx";

/// Which front a dialogue came in through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Front {
    /// The Africa's Talking style HTTP callback front.
    Http,
    /// A direct SMPP bind to (or from) an operator.
    Smpp,
}

impl Front {
    /// A short, fixed name, usable as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Front::Http => "http",
            Front::Smpp => "smpp",
        }
    }
}

impl fmt::Display for Front {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the gateway answers to one hop: a screen of text, and whether the dialogue goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The screen text, without any `CON `/`END ` prefix.
    pub text: String,
    /// True when this reply ends the dialogue.
    pub end: bool,
}

impl Reply {
    /// A reply that waits for the subscriber's next input.
    pub fn con(text: impl Into<String>) -> Self {
        Reply {
            text: text.into(),
            end: false,
        }
    }

    /// A reply that ends the dialogue.
    pub fn end(text: impl Into<String>) -> Self {
        Reply {
            text: text.into(),
            end: true,
        }
    }
}

/// The key of a dialogue, made by its front from the front's own session identity (AT's
/// `sessionId` for the HTTP front; the bind, the number and the session TLV for SMPP) with a
/// prefix of that front's, so that keys of different fronts never meet. Only the front that
/// makes a key reads it; behind the fronts it is an opaque name.
pub type SessionKey = Arc<str>;

/// One hop as a front hands it in.
#[derive(Debug, Clone)]
pub struct Hop {
    /// Which dialogue.
    pub key: SessionKey,
    /// Where it came from.
    pub front: Front,
    /// The subscriber, canonical.
    pub msisdn: Msisdn,
    /// The service code as dialled (may carry pre-filled inputs: `*384*303*1#`).
    pub dialled: String,
    /// The network code, if the front knows it.
    pub network: Option<String>,
    /// What the subscriber sent.
    pub input: HopInput,
    /// The front's screen limit (the route's may be smaller).
    pub limit: Limit,
    /// The dialect it came in (`africastalking`, `hubtel`, ... or `smpp`): a metric label and a
    /// log field, from a bounded set (the built-in and configured dialects).
    pub dialect: &'static str,
    /// The aggregator's number of this hop in its dialogue (1 on the dial), when it sends one:
    /// a per-hop input whose number the dialogue has already answered is a retry.
    pub seq: Option<u32>,
}

/// How a front carries the subscriber's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HopInput {
    /// Africa's Talking style: every input so far joined by `*` (empty on the first hop). The
    /// new input is derived from what the dialogue has already seen.
    Cumulative(String),
    /// SMPP style: one message per hop. `None` starts a dialogue (the dial itself), `Some` is
    /// the subscriber's next input. A start under a key that is still live ends the old
    /// dialogue as aborted.
    Single(Option<String>),
}
