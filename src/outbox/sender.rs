//! The background sender: finds due items in the outbox and delivers them through AT (or the
//! SMPP side).
//!
//! One task per gateway, on either backend ([`OutboxBackend`]). On the node's own store each
//! look scans from a watermark (the oldest item still pending or recently written); on the
//! cluster's, each look moves what fell due into the stream, takes over the entries a dead node
//! left unacknowledged past `[outbox] claim_timeout_secs`, and reads new entries for this node
//! (docs/cluster.md). Either way it takes the due items (pending, `next_attempt_ms` reached,
//! which for a reminder is its not-before time) and sends at most `concurrency` at once.
//!
//! Every delivery follows the same steps, all state in the store:
//! 1. claim: compare-and-swap the item to `attempts + 1` with `next_attempt_ms` pushed past the
//!    request timeout and the back-off, so a crash mid-request resends it only after that delay
//!    (and in a cluster, a node that takes the item over before then leaves it waiting);
//! 2. send (bounded by the request timeout);
//! 3. record: compare-and-swap the claimed item to its result (sent, pending again with a
//!    back-off, failed, not sent), durably (a flush; in a cluster, one script that also
//!    acknowledges the stream entry), before the slot takes another item.
//!
//! So an item marked sent is never sent again; an item whose answer was lost to a crash between
//! 2 and 3 is sent again after the restart, or by another node (at-least-once). The sender
//! wakes on [`super::notify`], on an extra `Notify` the integrator passes (the ledger's signal),
//! on a finished delivery, when the next item falls due, and at the poll interval otherwise.
//! Shutdown stops taking items, lets the requests in flight finish (at most the request
//! timeout) and records them.

use super::at::AtClient;
use super::classify::Outcome;
use super::transport::{HttpTransport, Transport};
use crate::clock::now_ms;
use crate::config::outbox::{AtConfig, RetryConfig};
use crate::effect::Status;
use crate::store::{Cursor, Due, OutboxBackend, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Optional parts of a sender.
#[derive(Debug, Default)]
pub struct SenderOptions {
    /// How requests reach AT; default [`HttpTransport::plain`] (no TLS).
    pub transport: Option<Arc<dyn Transport>>,
    /// Another signal that wakes the sender (the store's "outbox written" signal).
    pub wake: Option<Arc<Notify>>,
    /// The SMPP side, for the effects that go out over a bind.
    pub network: Option<Arc<dyn super::Network>>,
}

/// Starts the sender on `outbox` (a [`crate::store::Store`] for the node's own, or the
/// cluster's) with the plain-HTTP transport; it runs until `shutdown` turns true (or its
/// sender is dropped), then finishes the requests in flight and returns.
pub fn spawn_sender(
    outbox: impl Into<OutboxBackend>,
    config: AtConfig,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    spawn_sender_with(outbox, config, SenderOptions::default(), shutdown)
}

/// As [`spawn_sender`], with a transport of choice (TLS) and an extra wake-up signal.
pub fn spawn_sender_with(
    outbox: impl Into<OutboxBackend>,
    config: AtConfig,
    options: SenderOptions,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let transport = options
        .transport
        .unwrap_or_else(|| Arc::new(HttpTransport::plain()));
    let client = AtClient::new(&config, transport);
    let wake = super::register_waker();
    let extra = options.wake.unwrap_or_default();
    let network = options.network;
    let ctx = Ctx {
        outbox: outbox.into(),
        client,
        network,
        retry: config.retry.clone(),
        lease: config.timeout(),
    };
    tokio::spawn(run(ctx, config, wake, extra, shutdown))
}

async fn run(
    ctx: Ctx,
    config: AtConfig,
    wake: Arc<Notify>,
    extra: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = &ctx.client;
    if client.is_configured() {
        for url in client.unreachable_hosts() {
            tracing::error!(%url, "AT base URL is https but this build has no TLS connector: its effects will fail");
        }
        tracing::info!("outbox sender started");
    } else {
        tracing::warn!(
            "no AT account configured (africastalking.username and AT_API_KEY): outbox effects for AT are recorded, not sent"
        );
    }
    let slots = config.concurrency.max(1);
    let poll = config.poll_interval();
    let outbox = ctx.outbox.clone();
    let ctx = Arc::new(ctx);
    let mut failing = false;
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, u64> = HashMap::new();
    let mut cursor = Cursor::default();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = now_ms();
        let busy: HashSet<u64> = in_flight.values().copied().collect();
        let mut sleep_for = poll;
        match outbox
            .due(&mut cursor, now, &busy, slots - tasks.len())
            .await
        {
            Ok(batch) => {
                if failing {
                    failing = false;
                    tracing::info!("outbox: looking for due items works again");
                }
                crate::metrics::outbox_pending(batch.pending);
                for due in batch.due {
                    let id = due.item.id;
                    let ctx = ctx.clone();
                    let handle = tasks.spawn(async move { ctx.deliver(due).await });
                    in_flight.insert(handle.id(), id);
                }
                if let Some(at) = batch.next_due_ms {
                    sleep_for = sleep_for.min(Duration::from_millis(at.saturating_sub(now)));
                }
            }
            // Said once when it starts failing (a store or Redis down), not at every poll.
            Err(e) if !failing => {
                failing = true;
                tracing::error!(error = %e, "outbox: looking for due items failed; retrying");
            }
            Err(_) => {}
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let task = match done {
                    Ok((task, ())) => task,
                    Err(e) => {
                        tracing::error!(error = %e, "outbox delivery task failed");
                        e.id()
                    }
                };
                in_flight.remove(&task);
            }
            () = wake.notified() => {}
            () = extra.notified() => {}
            () = tokio::time::sleep(sleep_for) => {}
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "outbox delivery task failed");
        }
    }
    tracing::info!("outbox sender stopped");
}

struct Ctx {
    outbox: OutboxBackend,
    client: AtClient,
    network: Option<Arc<dyn super::Network>>,
    retry: RetryConfig,
    lease: Duration,
}

impl Ctx {
    async fn deliver(&self, due: Due) {
        let kind = due.item.effect.kind();
        let id = due.item.id;
        if let Err(e) = self.try_deliver(due).await {
            tracing::error!(id, kind, error = %e, "outbox item could not be updated");
        }
    }

    async fn try_deliver(&self, due: Due) -> Result<(), StoreError> {
        let item = &due.item;
        let kind = item.effect.kind();
        let to = item.effect.masked_recipient();
        let attempt = item.attempts.saturating_add(1);
        let mut claimed = item.clone();
        claimed.attempts = attempt;
        claimed.next_attempt_ms =
            now_ms().saturating_add(millis(self.lease + self.retry.backoff(attempt)));
        let Some(claim) = self.outbox.claim(&due, &claimed).await? else {
            tracing::debug!(
                id = item.id,
                "outbox item changed under the sender; skipped"
            );
            return Ok(());
        };
        let started = Instant::now();
        let by_network = self.network.as_ref().and_then(|n| n.deliver(&claimed));
        let outcome = match by_network {
            Some(sending) => sending.await,
            None => self.client.deliver(&claimed, attempt).await,
        };
        let took = started.elapsed();
        let now = now_ms();
        let mut done = claimed.clone();
        let mut label = outcome.label();
        match outcome {
            Outcome::Sent { detail } => {
                done.status = Status::Sent;
                done.detail = Some(detail);
                done.finished_ms = Some(now);
                tracing::info!(id = item.id, kind, %to, attempt, "outbox: sent");
            }
            Outcome::Transient {
                reason,
                retry_after,
            } if attempt < self.retry.max_attempts => {
                let wait = self
                    .retry
                    .backoff(attempt)
                    .max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
                done.next_attempt_ms = now.saturating_add(millis(wait));
                tracing::info!(id = item.id, kind, %to, attempt, retry_in_ms = millis(wait), reason = %reason, "outbox: transient failure, will retry");
                done.last_error = Some(reason);
            }
            Outcome::Transient { reason, .. } => {
                let reason = format!("gave up after {attempt} attempts: {reason}");
                tracing::warn!(id = item.id, kind, %to, reason = %reason, "outbox: failed");
                done.status = Status::Failed {
                    reason: reason.clone(),
                };
                done.last_error = Some(reason);
                done.finished_ms = Some(now);
                label = "permanent_failure";
            }
            Outcome::Permanent { reason } => {
                tracing::warn!(id = item.id, kind, %to, attempt, reason = %reason, "outbox: permanent failure, not retried");
                done.status = Status::Failed {
                    reason: reason.clone(),
                };
                done.last_error = Some(reason);
                done.finished_ms = Some(now);
            }
            Outcome::NotSent { reason } => {
                tracing::info!(id = item.id, kind, %to, "{reason}");
                done.attempts = item.attempts;
                done.status = Status::NotSent;
                done.last_error = Some(reason);
                done.finished_ms = Some(now);
            }
        }
        let attempted = label != "not_sent";
        crate::metrics::outbox_delivery(kind, label, attempted.then_some(took));
        if !self.outbox.record(&claim, &done).await? {
            tracing::warn!(
                id = item.id,
                "outbox item changed while in flight; result not recorded"
            );
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
