//! What the engine hands back and forth with its caller: dialogue state, per-hop context, steps
//! and effects.
//!
//! [`FlowState`] is persisted as JSON after every hop, so it holds only what the next hop needs
//! and leaves out empty parts; it is opaque to the caller except for a few read accessors.

use crate::hop::Reply;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a shown number selects on the current screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Pick {
    /// The fixed option with this index in the screen's `options`.
    Option(usize),
    /// A dynamic item, with the value to store in the items' `into` variable.
    Item(Value),
}

/// The screen as last shown: its pages, the page on display and the numbered choices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct View {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub page: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<(String, Pick)>,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// Everything the engine needs between two hops of one dialogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowState {
    /// [`super::Flow::version`] of the flow the dialogue started on.
    pub(crate) version: String,
    /// The current screen: the interactive screen on display, or the load/save screen whose
    /// effect is outstanding.
    pub(crate) screen: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(crate) vars: Map<String, Value>,
    /// The dialogue's language as last resolved.
    pub(crate) lang: String,
    /// Interactive screens to return to with the back key, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) history: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) view: View,
    /// Within one hop: the interactive screen the subscriber left, pushed onto `history` when
    /// the next interactive screen shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<String>,
    /// Within one hop: screens entered so far (the loop guard).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) chain: u32,
}

impl FlowState {
    /// The version of the flow this dialogue runs on.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The current screen's name.
    pub fn screen(&self) -> &str {
        &self.screen
    }

    /// The dialogue's variables.
    pub fn vars(&self) -> &Map<String, Value> {
        &self.vars
    }

    /// The dialogue's current language code.
    pub fn language(&self) -> &str {
        &self.lang
    }
}

/// Per-hop context supplied by the caller (the session actor).
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    /// Canonical MSISDN digits, e.g. `254700000001`.
    pub phone: &'a str,
    /// The dialled service code, e.g. `*123#`.
    pub service_code: &'a str,
    /// The network (operator) code, when the front knows it.
    pub network: Option<&'a str>,
    /// The dialogue's session id.
    pub session_id: &'a str,
    /// The screen size limit of this dialogue's route.
    pub limit: crate::text::Limit,
    /// The hop's time (the engine has no clock of its own).
    pub now: jiff::Timestamp,
}

/// The outcome of one engine call.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send this reply; persist `state` (unless the reply ends the dialogue).
    Reply { state: FlowState, reply: Reply },
    /// Run `effect`, then call [`super::resume`] with `state` and its outcome.
    Effect { state: FlowState, effect: Effect },
}

/// Work the caller performs on the engine's behalf.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Read the record `collection/id`; answer with [`EffectOutcome::Loaded`].
    Load { collection: String, id: String },
    /// Read every record of `collection`; answer with [`EffectOutcome::Loaded`] holding a list
    /// of the documents, each with its `id` added.
    List { collection: String },
    /// Apply all writes in ONE transaction and make them durable before the next reply; answer
    /// [`EffectOutcome::Saved`] or [`EffectOutcome::Failed`].
    Save { writes: Vec<Write> },
    /// Apply these operations in ONE transaction under the hop's idempotency key, make them
    /// durable before the next reply, and answer [`EffectOutcome::Transacted`] (or `Failed`).
    Transact {
        ops: Vec<crate::store::ledger::TxOp>,
    },
}

/// One record write of a [`Effect::Save`].
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub collection: String,
    pub id: String,
    /// The fields to write (a JSON object).
    pub value: Value,
    /// Merge the object's fields into an existing record (true) or replace it (false).
    pub merge: bool,
}

/// What came of an [`Effect`].
#[derive(Debug, Clone, PartialEq)]
pub enum EffectOutcome {
    /// The record read, or `None` when it does not exist.
    Loaded(Option<Value>),
    /// All writes are durable.
    Saved,
    /// The transaction ran: `failed_op` is the index of the op whose condition failed (nothing
    /// was applied), or `None` when everything was applied and is durable.
    Transacted { failed_op: Option<usize>, txn: u64 },
    /// The effect failed; the text is for logs only.
    Failed(String),
}
