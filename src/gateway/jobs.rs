//! The background jobs of a running gateway: the start-up sweep of dialogues a crash left
//! behind and the tombstone purge after it, the outbox sender, the retention purge, the commit
//! of dialogue state, and the metrics' upkeep.

use crate::config::Config;
use crate::front::smpp::SmppFront;
use crate::session::{Registry, sweep};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The jobs' tasks.
pub(super) struct Jobs {
    /// Awaited on shutdown (not aborted), so that what is in flight is recorded: the outbox
    /// sender and the committer.
    pub awaited: Vec<JoinHandle<()>>,
    /// Aborted on shutdown.
    pub aborted: Vec<JoinHandle<()>>,
}

/// Spawns every job; outbound calls go from `calling_number` (the number an IVR answers).
pub(super) fn spawn(
    config: &Config,
    calling_number: Option<String>,
    registry: &Registry,
    store: &Store,
    smpp: Option<&Arc<SmppFront>>,
    started: Option<tokio::sync::mpsc::Receiver<crate::session::core::Started>>,
    shutdown: &watch::Receiver<bool>,
) -> Jobs {
    // Tombstones are purged only after the start-up sweep has read them: one may be all that
    // tells a dialogue cut short by a crash from a live one.
    let (swept_tx, swept_rx) = tokio::sync::oneshot::channel::<()>();
    let sweeper = {
        let registry = registry.clone();
        tokio::spawn(async move {
            if registry.core().cluster.is_some() {
                // The dialogues are shared: none is kept in this node's store to sweep.
                let _ = swept_tx.send(());
                sweep::sweep_shared(registry).await;
                return;
            }
            let pending = sweep::sweep_until_complete(&registry, Duration::from_secs(5), || {
                let _ = swept_tx.send(());
            })
            .await;
            sweep::expire_pending(registry, pending).await;
        })
    };
    let purger = {
        let registry = registry.clone();
        tokio::spawn(async move {
            let _ = swept_rx.await;
            sweep::purge_tombstones(registry).await;
        })
    };
    let at = crate::config::outbox::AtConfig {
        voice_number: calling_number,
        ..config.africastalking.clone()
    };
    let transport: Arc<dyn crate::outbox::Transport> = Arc::new(transport(config));
    let network = smpp.map(|s| Arc::new(s.pusher()) as Arc<dyn crate::outbox::Network>);
    // The node's own outbox, or in cluster mode the cluster's, which every node sends from
    // (each item goes to one).
    let backend: crate::store::OutboxBackend = match &registry.core().cluster {
        Some(cluster) => cluster.outbox.clone().into(),
        None => store.clone().into(),
    };
    let mut senders = vec![crate::outbox::spawn_sender_with(
        backend,
        at,
        crate::outbox::SenderOptions {
            transport: Some(transport),
            wake: Some(store.outbox_signal()),
            network,
        },
        shutdown.clone(),
    )];
    let committer = spawn_committer(
        store.clone(),
        Duration::from_millis(config.store.flush_every_ms),
        shutdown.clone(),
    );
    let upkeep = {
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                crate::metrics::upkeep();
                crate::metrics::passivated(registry.passivated());
            }
        })
    };
    senders.push(committer);
    let mut aborted = vec![sweeper, purger, upkeep];
    if let Some(cluster) = &registry.core().cluster {
        aborted.push(spawn_event_mover(cluster.clone()));
    }
    if let Some(started) = started {
        aborted.push(spawn_superseder(registry.clone(), started));
    }
    aborted.push(spawn_retention(
        store.clone(),
        config.retention.clone(),
        registry.core().cluster.as_ref().map(|c| c.outbox.clone()),
    ));
    Jobs {
        awaited: senders,
        aborted,
    }
}

/// Cluster mode: each new dialogue names itself its subscriber's latest on its route in the
/// shared index, and the one named before (any node's) ends as an abort, as on one node. The
/// dialogues started meanwhile go to Redis together, in one round trip.
fn spawn_superseder(
    registry: Registry,
    mut started: tokio::sync::mpsc::Receiver<crate::session::core::Started>,
) -> JoinHandle<()> {
    /// At most this many new dialogues in one round trip.
    const AT_ONCE: usize = 256;
    tokio::spawn(async move {
        let Some(dialogues) = registry
            .core()
            .cluster
            .as_ref()
            .map(|c| c.dialogues.clone())
        else {
            return;
        };
        let mut batch = Vec::with_capacity(AT_ONCE);
        while started.recv_many(&mut batch, AT_ONCE).await > 0 {
            let keys: Vec<(&str, &str, &str)> = batch
                .iter()
                .map(|s| (s.msisdn.as_str(), &*s.service_code, &*s.key))
                .collect();
            match dialogues.supersede(&keys).await {
                Ok(before) => {
                    for older in before.into_iter().flatten() {
                        let registry = registry.clone();
                        tokio::spawn(async move {
                            if registry.abort(older.into()).await {
                                crate::metrics::superseded();
                            }
                        });
                    }
                }
                Err(e) => tracing::debug!(error = %e, "supersede index not updated"),
            }
            batch.clear();
        }
    })
}

/// How often every node looks for end events a node left in the buckets (it died between a
/// dialogue's end and the move it makes at once).
const EVENT_MOVES_EVERY: Duration = Duration::from_secs(5);

/// Cluster mode: moves the end events waiting in every bucket into the cluster's outbox, every
/// [`EVENT_MOVES_EVERY`] (each event once, whichever node moves it).
fn spawn_event_mover(cluster: crate::session::core::Cluster) -> JoinHandle<()> {
    use crate::store::shared_dialogues::BUCKETS;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVENT_MOVES_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut moved = 0;
            for bucket in 0..BUCKETS {
                match cluster
                    .outbox
                    .move_waiting_events(&cluster.dialogues, bucket)
                    .await
                {
                    Ok(n) => moved += n,
                    Err(e) => {
                        tracing::warn!(error = %e, "moving end events into the outbox failed");
                        break;
                    }
                }
            }
            if moved > 0 {
                tracing::info!(
                    moved,
                    "end events left by another node moved into the outbox"
                );
                crate::outbox::notify();
            }
        }
    })
}

/// Purges what is past its retention period, every `policy.every_minutes`: in the node's own
/// store, and the cluster's outbox items (`shared`; each node's purge removes only what is
/// still as it read it, so several at once do no harm).
fn spawn_retention(
    store: Store,
    policy: crate::config::RetentionConfig,
    shared: Option<crate::store::shared_outbox::SharedOutbox>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval(Duration::from_secs(policy.every_minutes.saturating_mul(60)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (store, outbox_days) = (store.clone(), policy.outbox_days);
            let policy = policy.clone();
            let purged = tokio::task::spawn_blocking(move || {
                crate::retention::purge(&store, &policy, crate::clock::now_ms())
            })
            .await;
            match purged {
                Ok(Ok(p)) => tracing::info!(?p, "retention purge"),
                Ok(Err(e)) => tracing::error!(error = %e, "retention purge failed"),
                Err(e) => tracing::error!(error = %e, "retention purge task failed"),
            }
            if let Some(shared) = &shared {
                let before =
                    crate::clock::now_ms().saturating_sub(outbox_days.saturating_mul(86_400_000));
                let outbox = crate::store::OutboxBackend::from(shared.clone());
                match outbox.purge_finished(before).await {
                    Ok(n) => tracing::info!(outbox = n, "retention purge of the cluster's outbox"),
                    Err(e) => {
                        tracing::error!(error = %e, "retention purge of the cluster's outbox failed")
                    }
                }
            }
        }
    })
}

/// Commits the dialogue state written since the last commit and flushes, every `flush_every`,
/// until shutdown (whose own last flush commits what is left). On a thread of its own: sled's
/// allocations for the commits then stay in one malloc arena instead of one per blocking-pool
/// thread (about 500 MiB more with a million live dialogues, docs/benchmarks.md).
fn spawn_committer(
    store: Store,
    flush_every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ussd-commit".into())
        .spawn(move || {
            let mut failing = false;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(flush_every)
            {
                let result = store.flush_blocking();
                // Said once when commits start failing and once when they recover.
                match (result, failing) {
                    (Err(e), false) => {
                        failing = true;
                        tracing::error!(error = %e, waiting = store.uncommitted(), "dialogue state commit failed; retrying");
                    }
                    (Ok(()), true) => {
                        failing = false;
                        tracing::info!("dialogue state commits recovered");
                    }
                    _ => {}
                }
            }
        })
        .expect("the commit thread starts");
    tokio::spawn(async move {
        let _ = shutdown.changed().await;
        drop(stop);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    })
}

/// The outbox's way out: the gateway's one outgoing client (already made for the routes, with
/// the same settings, so it cannot fail here; if it did, the default settings still reach AT).
fn transport(config: &Config) -> crate::outbox::HttpTransport {
    match crate::net::client(&config.http_client) {
        Ok(client) => crate::outbox::HttpTransport::new(client),
        Err(e) => {
            tracing::error!(error = %e, "[http_client]: the outbox uses the default settings");
            crate::outbox::HttpTransport::https()
        }
    }
}
