//! What every dialogue's actor shares: the store, the routes in force, the fixed settings, the
//! limits, and the two maps of live dialogues (by key, and by subscriber on a route).
//!
//! It sits apart from the [`super::registry`] (the handle fronts use) and the
//! [`super::actor`] (one dialogue), which both read it, so that neither has to import the
//! other for it.

use super::actor::SessionActor;
use super::state::EndRecord;
use crate::app::RouteTable;
use crate::effect::Effect;
use crate::hop::SessionKey;
use crate::store::Store;
use actix::WeakAddr;
use arc_swap::ArcSwap;
use dashmap::DashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

/// A subscriber on a route, as the supersede index keys it: the canonical MSISDN as a number
/// (8 to 15 digits: exact) and a hash of the route's service code (the routes are the
/// configuration's few codes). Sixteen bytes and no allocation per live dialogue.
pub(crate) type SubscriberKey = (u64, u64);

/// The [`SubscriberKey`] of `msisdn` on the route of `service_code`.
pub(crate) fn subscriber_key(msisdn: &crate::msisdn::Msisdn, service_code: &str) -> SubscriberKey {
    let number = msisdn.as_str().parse::<u64>().unwrap_or_else(|_| {
        // Unreachable for a parsed MSISDN; hashed rather than panicking if that ever changes.
        let mut h = DefaultHasher::new();
        msisdn.as_str().hash(&mut h);
        h.finish()
    });
    let mut h = DefaultHasher::new();
    service_code.hash(&mut h);
    (number, h.finish())
}

/// Texts and limits every dialogue needs, fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What an unrouted service code is told.
    pub unknown_service_text: String,
    /// What a subscriber is told when the gateway cannot answer.
    pub apology_text: String,
    /// What a late hop of a timed-out dialogue is told.
    pub timeout_text: String,
    /// How long tombstones answer retries.
    pub tombstone_ttl: Duration,
    /// How ended dialogues are reported to the operator's receiver, if they are.
    pub events: Option<Arc<dyn EndEvents>>,
    /// A fixed time for flows (demos and golden tests); `None` is the real clock.
    pub fixed_now: Option<jiff::Timestamp>,
    /// How long a waiting dialogue keeps its actor before it is passivated
    /// ([`super::passive`]); zero: never.
    pub passivate_after: Duration,
}

/// Reports ended dialogues to the operator's receiver, in the receiver's format: the session
/// knows when a dialogue ends and what its end record says; the format is a front's
/// (Africa's Talking's end-of-session notification, `front::http::events`).
pub trait EndEvents: std::fmt::Debug + Send + Sync {
    /// The outbox effect that reports `record`, written with the end itself;
    /// `last_reply_end` says whether the last reply ended the dialogue.
    fn event(&self, record: &EndRecord, last_reply_end: bool) -> Effect;
}

/// Limits applied before a hop reaches a dialogue.
pub struct Limits {
    /// Hops per minute per MSISDN; `None` switches it off.
    pub per_msisdn: Option<governor::DefaultKeyedRateLimiter<String>>,
    /// Live dialogues in memory at most.
    pub max_live: usize,
    /// What a refused hop is told.
    pub busy_text: String,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("per_msisdn", &self.per_msisdn.is_some())
            .field("max_live", &self.max_live)
            .finish()
    }
}

impl Limits {
    /// From `[limits]`.
    pub fn from_config(c: &crate::config::LimitsConfig) -> Limits {
        Limits {
            per_msisdn: std::num::NonZeroU32::new(c.hops_per_minute_per_msisdn)
                .map(|n| governor::RateLimiter::keyed(governor::Quota::per_minute(n))),
            max_live: c.max_live_dialogues,
            busy_text: c.busy_text.clone(),
        }
    }

    /// No limits (tests and embedders that want none).
    pub fn none() -> Limits {
        Limits {
            per_msisdn: None,
            max_live: usize::MAX,
            busy_text: String::new(),
        }
    }
}

/// Cluster mode: the dialogues this node shares with the others (docs/cluster.md).
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The shared dialogues, in Redis.
    pub dialogues: crate::store::shared_dialogues::SharedDialogues,
    /// How long a node holds a dialogue's lease while it answers a hop: the longest route
    /// deadline and a margin. A node that dies holding one holds it this long at most.
    pub lease: Duration,
    /// How long end records are kept (`[retention] end_records_days`): Redis expires them.
    pub end_record_ttl: Duration,
    /// The shared outbox, in Redis.
    pub outbox: crate::store::shared_outbox::SharedOutbox,
    /// Messages for another node's SMPP connection, in Redis.
    pub relay: crate::store::shared_relay::SharedRelay,
    /// New dialogues, for the supersede index the whole cluster shares (a job of the node
    /// reads them: [`Started`]).
    pub new_dialogues: tokio::sync::mpsc::Sender<Started>,
    /// How this node's hops answered on a guess fared.
    pub guesses: Arc<Guesses>,
}

/// How this node's hops answered on a guess fared (`actor::guess`). A wrong guess answers
/// its hop twice, so guessing pauses for [`Guesses::PAUSE`] hops when half or more of the last
/// [`Guesses::WINDOW`] were not answered in one round trip: hops spread over the nodes with
/// no stickiness, or routes whose hops mostly have effects.
#[derive(Debug, Default)]
pub struct Guesses {
    tried: AtomicU32,
    missed: AtomicU32,
    pause: AtomicI64,
}

impl Guesses {
    /// The hops whose outcomes are weighed together.
    pub const WINDOW: u32 = 256;
    /// The hops answered without a guess after a bad window.
    pub const PAUSE: i64 = 4096;

    /// Whether to answer the next hop on a guess.
    pub fn worth_trying(&self) -> bool {
        self.pause.load(Ordering::Relaxed) <= 0 || self.pause.fetch_sub(1, Ordering::Relaxed) <= 0
    }

    /// A hop answered on a guess was kept in one round trip (`right`), answered again on the
    /// state the cluster handed back (`wrong`), or answered again under the lease since it
    /// had effects (`effects`).
    pub fn settled(&self, outcome: &'static str) {
        crate::metrics::cluster_guess(outcome);
        let tried = self.tried.fetch_add(1, Ordering::Relaxed) + 1;
        if outcome != "right" {
            self.missed.fetch_add(1, Ordering::Relaxed);
        }
        if tried >= Self::WINDOW
            && self
                .tried
                .compare_exchange(tried, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let missed = self.missed.swap(0, Ordering::Relaxed);
            if missed * 2 >= tried {
                self.pause.store(Self::PAUSE, Ordering::Relaxed);
            }
        }
    }
}

/// A dialogue a subscriber started on a route (cluster mode): it supersedes the same
/// subscriber's dialogue on that route, whichever node holds that one.
#[derive(Debug)]
pub struct Started {
    /// The subscriber.
    pub msisdn: crate::msisdn::Msisdn,
    /// The route.
    pub service_code: Arc<str>,
    /// The new dialogue.
    pub key: crate::hop::SessionKey,
}

impl Cluster {
    /// Hands a new dialogue to the supersede job; with the job's queue full (Redis slow), the
    /// older dialogue is left to its idle timeout.
    pub fn started(&self, started: Started) {
        if self.new_dialogues.try_send(started).is_err() {
            tracing::debug!("supersede queue full: an older dialogue is left to its idle timeout");
        }
    }
}

/// What every actor shares: the store, the routes in force, the settings and the registry map.
#[derive(Debug)]
pub struct Core {
    /// The database.
    pub store: Store,
    /// The routes in force; swapped whole on reload. Live dialogues keep the app they started on.
    pub routes: ArcSwap<RouteTable>,
    /// Fixed settings.
    pub settings: Settings,
    /// Flood and capacity limits.
    pub limits: Limits,
    /// Each dialogue's actor, by a weak address: 8 bytes, where a strong one takes 24 and two
    /// allocations of its own (a million idle dialogues hold a million of these). An actor lives
    /// on while it has something to do: a hop being answered, or its idle timer, which every
    /// live dialogue has; it stops on its own when its dialogue ends.
    pub(crate) live: DashMap<SessionKey, WeakAddr<SessionActor>>,
    /// The live dialogue of each subscriber on each route (MSISDN, route service code): a new
    /// dialogue from the same number on the same code supersedes it.
    pub(crate) by_subscriber: DashMap<SubscriberKey, SessionKey>,
    /// Cluster mode: the shared dialogues; `None` on one node (sled only).
    pub cluster: Option<Cluster>,
    /// The deadlines of the dialogues whose actors are passivated.
    pub(crate) passive: super::passive::Passive,
}

impl Core {
    /// Creates the core.
    pub fn new(store: Store, routes: RouteTable, settings: Settings, limits: Limits) -> Arc<Core> {
        Core::in_cluster(store, routes, settings, limits, None)
    }

    /// Creates the core of a node of a cluster (`cluster`), or of a node alone (`None`).
    pub fn in_cluster(
        store: Store,
        routes: RouteTable,
        settings: Settings,
        limits: Limits,
        cluster: Option<Cluster>,
    ) -> Arc<Core> {
        Arc::new(Core {
            cluster,
            passive: super::passive::Passive::new(settings.passivate_after),
            store,
            routes: ArcSwap::from_pointee(routes),
            settings,
            limits,
            live: DashMap::new(),
            by_subscriber: DashMap::new(),
        })
    }

    /// The outbox effects decided outside a flow's transaction go to: the cluster's in cluster
    /// mode, else the node's own store's.
    pub fn outbox(&self) -> crate::store::OutboxBackend {
        match &self.cluster {
            Some(cluster) => cluster.outbox.clone().into(),
            None => self.store.clone().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Guesses;

    #[test]
    fn guessing_pauses_after_a_window_of_mostly_misses_and_resumes() {
        let g = Guesses::default();
        // Right more than half the time: never paused.
        for i in 0..Guesses::WINDOW * 4 {
            assert!(g.worth_trying());
            g.settled(if i % 3 == 0 { "wrong" } else { "right" });
        }
        assert!(g.worth_trying());
        // A window mostly wrong or with effects: the next PAUSE hops are not guessed.
        for i in 0..Guesses::WINDOW {
            g.settled(if i % 3 == 0 { "effects" } else { "wrong" });
        }
        let skipped = (0..Guesses::PAUSE * 2)
            .take_while(|_| !g.worth_trying())
            .count() as i64;
        assert_eq!(skipped, Guesses::PAUSE);
        assert!(g.worth_trying());
    }
}
