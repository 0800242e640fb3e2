//! The internal shape of one USSD hop, shared by every front and every app.
//!
//! A front translates its wire format into a [`Hop`] and a [`Reply`] back into its wire format;
//! nothing behind the fronts (sessions, apps, flows, the store) ever sees an HTTP request or an
//! SMPP PDU.

use serde::{Deserialize, Serialize};
use std::fmt;

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
