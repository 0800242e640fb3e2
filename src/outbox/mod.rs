//! The outbox: every side effect that leaves the process goes through it.
//!
//! Effects are written to the `outbox` sled tree in the same transaction as the change they
//! belong to (a confirmed deposit and its SMS, a booking and its reminder), so a crash can lose
//! neither one without the other. A background sender delivers them with timeouts and retries;
//! a slow or failing API never delays a USSD answer.

pub mod item;

pub use item::{Effect, Item, Status, TREE};
