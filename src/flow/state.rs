//! What the engine hands back and forth with its caller: dialogue state, per-hop context, steps
//! and effects.
//!
//! [`FlowState`] is persisted as JSON after every hop, so it holds only what the next hop needs
//! and leaves out empty parts; it is opaque to the caller except for a few read accessors.

use crate::hop::Reply;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

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

fn no_vars(vars: &super::scope::Vars) -> bool {
    vars.is_empty()
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// Everything the engine needs between two hops of one dialogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowState {
    /// [`super::Flow::version`] of the flow the dialogue started on.
    pub(crate) version: Arc<str>,
    /// The current screen: the interactive screen on display, or the load/save screen whose
    /// effect is outstanding.
    pub(crate) screen: Arc<str>,
    #[serde(default, skip_serializing_if = "no_vars")]
    pub(crate) vars: super::scope::Vars,
    /// The dialogue's language as last resolved.
    pub(crate) lang: Arc<str>,
    /// Interactive screens to return to with the back key, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) history: Vec<Arc<str>>,
    /// Shared, not copied, when the state is (a hop's state is copied while the write-behind
    /// buffer still holds the previous one, and the hop replaces the view anyway).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) view: Arc<View>,
    /// Within one hop: the interactive screen the subscriber left, pushed onto `history` when
    /// the next interactive screen shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<Arc<str>>,
    /// Within one hop: screens entered so far (the loop guard).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) chain: u32,
    /// While "1. Continue 2. Start again" is on display: the state of the dialogue that was
    /// cut, continued on `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) offer: Option<Box<FlowState>>,
    /// What the last engine call did about resuming, for the caller's metrics (never stored).
    #[serde(skip)]
    pub(crate) resumed: Option<Resumed>,
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

    /// [`FlowState::screen`], shared (the flow's own name for it: no copy).
    pub fn screen_arc(&self) -> &Arc<str> {
        &self.screen
    }

    /// The dialogue's variables.
    pub fn vars(&self) -> &std::collections::BTreeMap<String, super::Var> {
        &self.vars
    }

    /// The page on display of a screen shown over several, and how many there are (1-based);
    /// `None` for a screen of one page.
    pub fn page(&self) -> Option<(usize, usize)> {
        (self.view.pages.len() > 1).then(|| (self.view.page + 1, self.view.pages.len()))
    }

    /// The dialogue's current language code.
    pub fn language(&self) -> &str {
        &self.lang
    }

    /// Whether the resume question is on display (such a state is not itself a resume point).
    pub fn is_resume_offer(&self) -> bool {
        self.offer.is_some()
    }

    /// Whether this state is worth coming back to: the dialogue went past its first shown
    /// screen and is not on the resume question.
    pub fn is_resume_point(&self) -> bool {
        !self.history.is_empty() && self.offer.is_none()
    }

    /// What the last engine call did about resuming: `offered`, `continued`, `restarted` or
    /// `silent`; taken once, for metrics.
    pub fn take_resume_event(&mut self) -> Option<&'static str> {
        self.resumed.take().map(Resumed::as_str)
    }
}

/// What an engine call did about resuming (one byte in every live dialogue's state, where a
/// `&'static str` would take sixteen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resumed {
    /// The resume question was shown.
    Offered,
    /// The subscriber chose to continue.
    Continued,
    /// The subscriber chose to start again (or nothing could be continued).
    Restarted,
    /// The flow resumed without asking.
    Silent,
}

impl Resumed {
    fn as_str(self) -> &'static str {
        match self {
            Resumed::Offered => "offered",
            Resumed::Continued => "continued",
            Resumed::Restarted => "restarted",
            Resumed::Silent => "silent",
        }
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
    Transact { ops: Vec<crate::txn::TxOp> },
    /// Make this HTTP request (an `http` screen's backend call) within the hop's deadline;
    /// answer [`EffectOutcome::Http`].
    Http(HttpRequest),
}

/// A backend request rendered by an `http` screen (a backend call).
///
/// Secrets appear in it only as placeholders ([`super::secret_placeholder`]): the caller puts
/// the values in with [`super::fill_secrets`] just before sending, so a request can be logged,
/// compared and used as a cache key without ever holding one.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: http::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The body, with its content type among `headers` when it has one.
    pub body: Option<String>,
    /// Extra attempts after a connection failure or a 502/503/504 (idempotent methods only).
    pub retries: u32,
    /// Keep a successful answer this long, keyed by the request (GET only).
    pub cache_ttl_secs: Option<u64>,
    /// Whether the flow expects JSON: a 2xx answer that is not JSON is not cached.
    pub expect_json: bool,
}

impl HttpRequest {
    /// The cache key: everything that makes the request what it is (secrets as placeholders).
    pub fn cache_key(&self) -> String {
        let mut key = format!("{} {}", self.method, self.url);
        for (k, v) in &self.headers {
            key.push_str(&format!("\n{}: {v}", k.to_ascii_lowercase()));
        }
        if let Some(b) = &self.body {
            key.push_str("\n\n");
            key.push_str(b);
        }
        key
    }
}

/// What came of an [`Effect::Http`].
#[derive(Debug, Clone, PartialEq)]
pub enum HttpOutcome {
    /// The backend answered (any status).
    Response {
        status: u16,
        /// The headers that matter to flows (content type, location, etag, retry-after,
        /// last-modified), names in lower case.
        headers: Vec<(String, String)>,
        body: String,
        /// Whether it came from the response cache.
        cached: bool,
    },
    /// No answer before the hop's deadline.
    Timeout,
    /// No usable answer: connection refused or closed, an invalid URL, a missing secret. The
    /// text is for logs.
    Failed(String),
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
    /// The record read, or `None` when it does not exist (or, for [`Effect::List`], the list).
    Loaded(Option<Value>),
    /// The record read, as the store shares it, or `None` when it does not exist.
    Record(Option<Arc<crate::doc::Doc>>),
    /// All writes are durable.
    Saved,
    /// The transaction ran: `failed_op` is the index of the op whose condition failed (nothing
    /// was applied), or `None` when everything was applied and is durable.
    Transacted { failed_op: Option<usize>, txn: u64 },
    /// The effect failed; the text is for logs only.
    Failed(String),
    /// The answer to an [`Effect::Http`].
    Http(HttpOutcome),
}
