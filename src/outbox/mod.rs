//! The outbox: every side effect that leaves the process goes through it.
//!
//! Effects are written to the store's outbox in the same transaction as the change they
//! belong to (a confirmed deposit and its SMS, a booking and its reminder), so a crash can lose
//! neither one without the other. A background sender ([`spawn_sender`]) delivers them through
//! the Africa's Talking APIs ([`AtClient`]) with timeouts and retries; a slow or failing API
//! never delays a USSD answer. Delivery is at-least-once: see [`sender`] and docs/outbox.md.
//!
//! - [`crate::effect`]: the stored model (key = id big-endian, value = JSON of [`Item`]);
//! - [`queue`]: enqueue, inspect, re-queue and purge outside a flow's transaction, on either
//!   backend ([`crate::store::OutboxBackend`]: the node's own store or the cluster's);
//! - `[africastalking]`, the account, hosts and retry policy, is configured in
//!   [`crate::config::outbox`];
//! - [`at`], [`classify`], [`transport`]: requests, what the answers mean, the HTTP client;
//! - [`sender`]: the background task.

pub mod at;
pub mod classify;
pub mod queue;
pub mod sender;
pub mod transport;

pub use crate::config::outbox::{API_KEY_ENV, AtConfig, RetryConfig, Secret, USERNAME_ENV};
pub use crate::effect::{Effect, Item, Status};
pub use at::AtClient;
pub use classify::Outcome;
pub use queue::{enqueue, enqueue_on, get, list, pending, purge_finished, requeue, requeue_on};
pub use sender::{SenderOptions, spawn_sender, spawn_sender_with};
pub use transport::{HttpTransport, HyperTransport, Transport};

use futures_util::future::BoxFuture;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// A network side that sends some effects itself instead of Africa's Talking: the SMPP front
/// (USSN pushes, network-initiated dialogues, and SMS when `[smpp.sms]` says so).
pub trait Network: Send + Sync + std::fmt::Debug {
    /// Sends `item` if it is this network's to send; `None` leaves it to AT.
    fn deliver<'a>(&'a self, item: &'a Item) -> Option<BoxFuture<'a, Outcome>>;
}

/// The wake-up signals of the running senders.
static WAKERS: Mutex<Vec<Weak<Notify>>> = Mutex::new(Vec::new());

/// Wakes every running sender: call it after a transaction that wrote outbox items.
/// [`enqueue`] calls it itself. Cheap; a wake-up with nothing due costs one scan.
pub fn notify() {
    let mut wakers = WAKERS.lock().unwrap_or_else(|e| e.into_inner());
    wakers.retain(|w| match w.upgrade() {
        Some(n) => {
            n.notify_one();
            true
        }
        None => false,
    });
}

fn register_waker() -> Arc<Notify> {
    let n = Arc::new(Notify::new());
    let mut wakers = WAKERS.lock().unwrap_or_else(|e| e.into_inner());
    wakers.retain(|w| w.strong_count() > 0);
    wakers.push(Arc::downgrade(&n));
    n
}
