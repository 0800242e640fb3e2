//! Dialogues a crash or restart left behind, and tombstones past their time.
//!
//! After a start, persisted dialogues have no actor until their next hop. The sweep reads them
//! once, in the background (the first hop is never delayed by it): those idle past their timeout
//! end at once with an end-of-session record; the others are remembered with their deadline and
//! ended then, unless a hop brought them back into an actor, which then owns their timer.
//!
//! A crash in the middle of a commit can leave a dialogue's end written (its record, its
//! tombstone) with its live state still there: a live state whose key has the tombstone of a
//! dialogue with the same start is such a leftover, and is removed without a second end, by
//! the sweep or by the first hop that finds it, whichever comes first. (A crash within the
//! writes of one chunk of ends, after some of its notifications or its records and before its
//! chunk of tombstones, can still give those of its dialogues whose live state was committed
//! before a second end: at most a chunk's worth,
//! `store::format::end_chunk::CHUNK_RECORDS`.) Tombstones past their time are kept, and found,
//! until the first purge, which runs after the sweep.

use super::registry::Registry;
use super::state::{Dialogue, Tombstone};
use crate::clock::now_ms;
use crate::hop::SessionKey;
use std::time::Duration;

/// How often expired tombstones are purged.
const TOMBSTONE_PURGE_EVERY: Duration = Duration::from_secs(60);

/// What the start-up scan found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Dialogues ended because their idle timeout had passed.
    pub expired: usize,
    /// Dialogues still live, waiting for their next hop or their deadline.
    pub pending: usize,
    /// Live states of dialogues that had already ended (a crash cut their commit short).
    pub already_ended: usize,
    /// The store could not be read whole: the sweep must run again before any tombstone is
    /// purged (one may be all that marks a leftover it did not see).
    pub incomplete: bool,
}

/// Scans persisted dialogues once: ends the expired ones now, and returns the others' keys with
/// their deadlines (ms since the epoch), soonest first.
pub async fn startup_sweep(registry: &Registry) -> (SweepReport, Vec<(u64, SessionKey)>) {
    let store = registry.core().store.clone();
    let scanned = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut already_ended = 0;
        let mut incomplete = false;
        for item in store.live_entries() {
            match item {
                Ok((key, bytes)) => match serde_json::from_slice::<Dialogue>(&bytes) {
                    Ok(d) if drop_leftover(&store, &key, &d) => already_ended += 1,
                    Ok(d) => out.push((d.idle_deadline_ms(), SessionKey::from(key))),
                    // A document that no longer parses cannot be resumed or ended normally.
                    Err(e) => {
                        tracing::error!(error = %e, "unreadable persisted dialogue removed");
                        if let Err(e) = store.remove_live_if(&key, |_| true) {
                            tracing::error!(error = %e, "store write failed");
                        }
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "start-up sweep: store scan failed");
                    incomplete = true;
                }
            }
        }
        (out, already_ended, incomplete)
    })
    .await
    .unwrap_or((Vec::new(), 0, true));
    let (scanned, already_ended, incomplete) = scanned;
    let now = now_ms();
    let mut report = SweepReport {
        already_ended,
        incomplete,
        ..SweepReport::default()
    };
    let mut pending = Vec::new();
    for (deadline, key) in scanned {
        if deadline <= now {
            if registry.expire_if_idle(key).await {
                report.expired += 1;
            }
        } else {
            pending.push((deadline, key));
        }
    }
    pending.sort_unstable_by_key(|(d, _)| *d);
    report.pending = pending.len();
    if report.expired > 0 || report.pending > 0 || report.already_ended > 0 {
        tracing::info!(
            expired = report.expired,
            pending = report.pending,
            already_ended = report.already_ended,
            "start-up sweep of persisted dialogues"
        );
    }
    (report, pending)
}

/// Whether `d`, found live under `key`, already ended (its tombstone names its start): then
/// its live state is removed, unless something newer replaced it meanwhile.
pub(crate) fn drop_leftover(store: &crate::store::Store, key: &str, d: &Dialogue) -> bool {
    match store.tombstone::<Tombstone>(key) {
        Ok(Some(t)) if t.started_ms != 0 && t.started_ms == d.started_ms => {}
        Ok(_) => return false,
        Err(e) => {
            tracing::error!(error = %e, "unreadable tombstone");
            return false;
        }
    }
    let same = |bytes: &[u8]| {
        serde_json::from_slice::<Dialogue>(bytes).is_ok_and(|s| s.started_ms == d.started_ms)
    };
    if let Err(e) = store.remove_live_if(key, same) {
        tracing::error!(error = %e, "store write failed");
    }
    tracing::info!(session = %super::log_id(key), "live state of a dialogue that had ended before a crash removed");
    true
}

/// Sweeps until a sweep has read the whole store (every `retry`), calling `swept` then: the
/// tombstone purge waits for it. Returns the dialogues to end later, soonest first.
pub async fn sweep_until_complete(
    registry: &Registry,
    retry: Duration,
    swept: impl FnOnce(),
) -> Vec<(u64, SessionKey)> {
    let mut pending = Vec::new();
    loop {
        let (report, more) = startup_sweep(registry).await;
        pending.extend(more);
        if !report.incomplete {
            break;
        }
        tracing::error!(
            retry_secs = retry.as_secs(),
            "start-up sweep incomplete: tombstones are not purged until a sweep completes"
        );
        tokio::time::sleep(retry).await;
    }
    swept();
    pending.sort_unstable_by_key(|(d, _)| *d);
    pending
}

/// Ends each pending dialogue at its deadline unless it came back to life.
pub async fn expire_pending(registry: Registry, pending: Vec<(u64, SessionKey)>) {
    for (deadline, key) in pending {
        let now = now_ms();
        if deadline > now {
            tokio::time::sleep(Duration::from_millis(deadline - now)).await;
        }
        // An actor that resumed the dialogue re-arms its own timer; this is then a no-op.
        registry.expire_if_idle(key).await;
    }
}

/// Cluster mode: how often every node reads the shared deadlines, and how long past a
/// dialogue's deadline it waits before ending it itself (the node that answered its last hop
/// normally ends it with its own timer).
const SHARED_SWEEP_EVERY: Duration = Duration::from_secs(1);
const SHARED_SWEEP_MARGIN_MS: u64 = 2_000;

/// Cluster mode: sweeps the shared dialogues' deadlines, forever, for those idle past their
/// time whose node did not end them (it died, or was restarted): each is claimed before it is
/// ended, so exactly one node ends it. Does nothing on one node.
pub async fn sweep_shared(registry: Registry) {
    let Some(cluster) = registry.core().cluster.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(SHARED_SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let due_at = now_ms().saturating_sub(SHARED_SWEEP_MARGIN_MS);
        match cluster.dialogues.due(due_at, 100).await {
            Ok(keys) => {
                for key in keys {
                    registry.expire_if_idle(SessionKey::from(key)).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "shared sweep: deadlines unreadable"),
        }
    }
}

/// Purges expired tombstones, forever (until the task is dropped).
pub async fn purge_tombstones(registry: Registry) {
    let mut tick = tokio::time::interval(TOMBSTONE_PURGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The per-MSISDN rate limiter keeps one entry per number seen: forget the idle ones.
        if let Some(limiter) = &registry.core().limits.per_msisdn {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let store = registry.core().store.clone();
        let purged = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            store.purge_tombstones::<Tombstone>(now, |t| t.expires_ms <= now)
        })
        .await;
        match purged {
            Ok(Ok(n)) if n > 0 => tracing::debug!(purged = n, "tombstones purged"),
            Ok(Err(e)) => tracing::error!(error = %e, "tombstone purge failed"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::registry::{Shards, test_registry};
    use crate::store::Store;

    /// A store that cannot be read whole makes the sweep say so, and the purge of tombstones
    /// waits for one that could.
    #[test]
    fn a_sweep_that_could_not_read_the_store_is_run_again_before_any_purge() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16, 500).unwrap();
        let shards = Shards::start(1).unwrap();
        let registry = test_registry(store.clone(), &shards);
        // A write waits for its commit, and the disk refuses it: the scan cannot begin.
        store
            .put_live("http:waiting", serde_json::json!({}))
            .unwrap();
        store.fail_writes(true);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (report, _) = rt.block_on(startup_sweep(&registry));
        assert!(report.incomplete);
        // Swept only once the disk takes writes again.
        let swept = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let store2 = store.clone();
        let flag = swept.clone();
        rt.block_on(async move {
            let sweep = sweep_until_complete(&registry, Duration::from_millis(20), move || {
                flag.store(true, std::sync::atomic::Ordering::Release);
            });
            tokio::pin!(sweep);
            tokio::select! {
                _ = &mut sweep => panic!("swept while the store could not be read"),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            store2.fail_writes(false);
            tokio::time::timeout(Duration::from_secs(10), sweep)
                .await
                .expect("a sweep completes once the store can be read");
        });
        assert!(swept.load(std::sync::atomic::Ordering::Acquire));
        shards.stop();
    }
}
