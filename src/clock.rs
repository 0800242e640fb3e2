//! The wall clock, in the one unit everything persisted uses.
//!
//! Dialogue state, tombstones, end records, outbox items, transactions and resume points all
//! carry times as milliseconds since the Unix epoch. The clock sits apart, at the bottom of the
//! crate, so that the store, the outbox and the sessions read the same one without importing
//! each other.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the time unit of everything persisted.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
