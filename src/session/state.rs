//! What a dialogue leaves in the store: its live state, its tombstone, its end record.

use crate::app::AppState;
use crate::clock::now_ms;
use crate::hop::{Front, Reply};
use crate::msisdn::Msisdn;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The live state of a dialogue, written to sled after every hop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dialogue {
    /// The subscriber.
    pub msisdn: Msisdn,
    /// The front it came through.
    pub front: Front,
    /// The service code as dialled.
    pub dialled: Arc<str>,
    /// The route's service code (shared with the route: a few values for all dialogues).
    pub route: Arc<str>,
    /// The network code, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Arc<str>>,
    /// When the first hop arrived.
    pub started_ms: u64,
    /// When the last hop was answered.
    pub last_hop_ms: u64,
    /// The idle timeout in force for this dialogue.
    pub idle_timeout_ms: u64,
    /// Hops answered so far.
    pub hops: u32,
    /// The cumulative input text of the last answered hop: a hop with the same text is a retry,
    /// a hop extending it by `*input` carries a new input. Once an input was sensitive (a PIN),
    /// the text with every sensitive input masked (`session::mask`), and `seen_raw` stands for
    /// the text itself.
    pub seen_text: String,
    /// The length and keyed digest of the last answered hop's text when `seen_text` is masked
    /// (absent otherwise, and in states written before it existed). Boxed: 8 bytes in every
    /// live dialogue rather than 24, for the few that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_raw: Option<Box<super::mask::RawText>>,
    /// The last reply, to answer retries without running the step again.
    pub last_reply: Reply,
    /// The version of the app definition the dialogue started on.
    pub app_version: Arc<str>,
    /// The app's own state (`None` only before the first turn is answered).
    #[serde(default)]
    pub app: Option<AppState>,
    /// The screens shown so far and when each came up (`super::journey`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journey: Vec<(Arc<str>, u64)>,
}

impl Dialogue {
    /// When this dialogue times out if no hop comes.
    pub fn idle_deadline_ms(&self) -> u64 {
        self.last_hop_ms.saturating_add(self.idle_timeout_ms)
    }
}

/// Kept for a while after a dialogue ends, to answer retries of its last hop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tombstone {
    /// The cumulative text of the last hop, sensitive inputs masked.
    pub seen_text: String,
    /// What that hop was answered (always an END).
    pub reply: Reply,
    /// When it may be purged.
    pub expires_ms: u64,
    /// When the ended dialogue started (0 in tombstones written before this field existed): a
    /// live state of the same key with this start is that dialogue's, left behind by a crash
    /// in the middle of a commit (see `session::sweep`).
    #[serde(default)]
    pub started_ms: u64,
    /// The ended dialogue's subscriber: a retry from another number is refused, never answered
    /// (absent in tombstones written before this field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msisdn: Option<Msisdn>,
    /// The ended dialogue's route (its service code), for the same check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Arc<str>>,
}

/// Why a dialogue ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The app answered END.
    End,
    /// No hop came within the idle timeout.
    IdleTimeout,
    /// The network or the subscriber aborted it.
    Abort,
    /// The gateway could not answer (store failure, deadline, incompatible state).
    Error,
}

impl EndReason {
    /// A fixed name, usable as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::End => "end",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::Abort => "abort",
            EndReason::Error => "error",
        }
    }
}

/// The end-of-session record: who, what, how long, how it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndRecord {
    /// The session key.
    pub session: String,
    /// The subscriber.
    pub msisdn: Msisdn,
    /// The front.
    pub front: Front,
    /// The route's service code.
    pub service_code: String,
    /// The service code as dialled.
    pub dialled: String,
    /// The network code, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// First hop.
    pub started_ms: u64,
    /// When it ended.
    pub ended_ms: u64,
    /// `ended_ms - started_ms`.
    pub duration_ms: u64,
    /// Hops answered.
    pub hops: u32,
    /// How it ended.
    pub reason: EndReason,
    /// All inputs, `*`-joined as AT reports them, each sensitive one (a PIN) masked.
    pub input: String,
    /// The last text the subscriber was shown.
    pub last_reply: String,
    /// Why the gateway ended it, when it was an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the aggregator reported about it (AT's end-of-session notification), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<AggregatorReport>,
    /// The ids of the transactions it applied, oldest first (the journal's `txn`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transactions: Vec<String>,
    /// Transactions applied on a hop after the last one this record counts (see
    /// [`super::applied`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpersisted_hop: Option<super::applied::UnpersistedHop>,
    /// The screens it was shown, in order, with the time spent on each (`super::journey`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journey: Vec<super::journey::JourneyStep>,
}

/// An aggregator's own account of how a dialogue ended (AT's `/ussd/events` notification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatorReport {
    /// `Success`, `Incomplete` or `Failed`.
    pub status: String,
    /// The cost as AT wrote it (format unconfirmed, kept verbatim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<String>,
    /// AT's error message, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl EndRecord {
    /// The end record of `d`, ending now for `reason`.
    pub fn of(key: &str, d: &Dialogue, reason: EndReason) -> EndRecord {
        let ended_ms = now_ms();
        EndRecord {
            session: key.to_string(),
            msisdn: d.msisdn.clone(),
            front: d.front,
            service_code: d.route.to_string(),
            dialled: d.dialled.to_string(),
            network: d.network.as_deref().map(str::to_string),
            started_ms: d.started_ms,
            ended_ms,
            duration_ms: ended_ms.saturating_sub(d.started_ms),
            hops: d.hops,
            reason,
            input: d.seen_text.clone(),
            last_reply: d.last_reply.text.clone(),
            error: None,
            aggregator: None,
            transactions: Vec::new(),
            unpersisted_hop: None,
            journey: super::journey::finish(d, ended_ms),
        }
    }
}
