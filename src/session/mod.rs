//! Dialogues: one actix actor per live dialogue, its state persisted to sled after every hop.
//!
//! - [`registry`] maps a session key to the actor that owns the dialogue, spawning it on the
//!   shard (Arbiter) chosen by the key's hash, lazily, on the dialogue's first hop after a start.
//! - [`actor`] is the dialogue itself: input derivation, retries, the app call under the hop's
//!   deadline, persistence, idle timeout and the end of the dialogue.
//! - [`state`] is what is persisted: live state, tombstones, end-of-session records.
//! - [`sweep`] ends dialogues that a crash left behind, once their idle timeout has passed.
//! - [`applied`] puts the transactions a dialogue applied in its end record.

pub mod actor;
pub mod applied;
pub mod registry;
pub mod state;
pub mod sweep;

use crate::hop::{Front, Reply};
use crate::msisdn::Msisdn;
use crate::text::Limit;
use std::sync::Arc;

pub use registry::{Core, Registry, Settings, Shards};

/// The key of a dialogue: its front's prefix and the front's own session identity
/// (`http:ATUid_...`).
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

/// Why a hop got no answer from its dialogue. The front answers with the apology text.
#[derive(Debug, thiserror::Error)]
pub enum HopError {
    /// The actor system is stopping or the dialogue's actor kept disappearing.
    #[error("dialogue unavailable: {0}")]
    Unavailable(String),
}

/// A session key as logged: a short hash, enough to follow one dialogue through the logs without
/// writing its id (which, over SMPP, contains the MSISDN) at any level.
pub fn log_id(key: &str) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// Convenience for fronts: a reply or the apology.
pub fn reply_or_apology(result: Result<Reply, HopError>, apology: &str) -> Reply {
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "hop failed");
        Reply::end(apology)
    })
}
