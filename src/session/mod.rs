//! Dialogues: one actix actor per live dialogue, its state persisted to sled after every hop.
//!
//! - [`registry`] maps a session key to the actor that owns the dialogue, spawning it on the
//!   shard (Arbiter) chosen by the key's hash, lazily, on the dialogue's first hop after a start.
//! - [`actor`] is the dialogue itself: input derivation, retries, the app call under the hop's
//!   deadline, persistence, idle timeout and the end of the dialogue.
//! - [`messages`]: every message the actor takes; [`core`]: what all the actors share; `plan`:
//!   what to do with a hop, a pure function of the loaded state (tested without actix).
//! - [`state`] is what is persisted: live state, tombstones, end-of-session records.
//! - [`mask`] keeps sensitive inputs (PINs) out of all of it but the flow's own variables.
//! - [`passive`] keeps only the deadline of a dialogue idle for a while: its actor stops, and
//!   its next message resumes it from the store as after a restart.
//! - [`sweep`] ends dialogues that a crash left behind, once their idle timeout has passed.
//! - [`applied`] puts the transactions a dialogue applied in its end record.

pub mod actor;
pub mod applied;
pub mod core;
pub(crate) mod counts;
pub mod journey;
pub mod mask;
pub mod messages;
pub(crate) mod passive;
mod plan;
pub mod registry;
pub mod state;
pub mod sweep;

use crate::hop::Reply;

pub use self::core::{Core, EndEvents, Limits, Settings};
pub use registry::{Registry, Shards};

/// Why a hop got no answer from its dialogue. The front answers with the apology text.
#[derive(Debug, thiserror::Error)]
pub enum HopError {
    /// The actor system is stopping or the dialogue's actor kept disappearing.
    #[error("dialogue unavailable: {0}")]
    Unavailable(String),
}

/// The key of [`log_id`]'s hash: the installation's secret once the gateway has read it from
/// its store ([`set_log_secret`]), else a random one for this process.
static LOG_KEY: std::sync::OnceLock<ring::hmac::Key> = std::sync::OnceLock::new();

/// Keys [`log_id`] with the installation's secret (kept in the store, so a dialogue's id in
/// the logs is the same after a restart). The first call in a process wins: several gateways
/// in one process (tests) share the first one's.
pub fn set_log_secret(secret: &[u8; 32]) {
    let _ = LOG_KEY.set(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret));
}

/// A session key as logged: a short keyed hash (HMAC-SHA256 under the installation's secret,
/// cut to 48 bits), enough to follow one dialogue through the logs without writing its id
/// (which, over SMPP, contains the MSISDN) at any level. Without the secret, which only the
/// database holds, no one can tell which number a log id stands for by trying every MSISDN.
pub fn log_id(key: &str) -> String {
    use std::fmt::Write;
    let k = LOG_KEY
        .get_or_init(|| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rand::random::<[u8; 32]>()));
    let tag = ring::hmac::sign(k, key.as_bytes());
    let mut out = String::with_capacity(12);
    for b in &tag.as_ref()[..6] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Convenience for fronts: a reply or the apology.
pub fn reply_or_apology(result: Result<Reply, HopError>, apology: &str) -> Reply {
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "hop failed");
        Reply::end(apology)
    })
}
