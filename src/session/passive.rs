//! Passivation: a dialogue idle for `[sessions] passivate_after_ms` gives up its actor.
//!
//! A live dialogue's actor costs about 2 KB of memory while it waits (its task, its idle
//! timer, its mailbox, its entry in the registry, its state; docs/benchmarks.md), and most of
//! the time a dialogue waits: for the subscriber to read and type, or for its idle timeout
//! after the subscriber walked away. Once its state is in the store as last written (on one
//! node: committed to sled, nothing waiting in the write-behind buffer; in a cluster: in
//! Redis, written before each answer), its actor stops and only its deadline is kept here, in
//! the wheel of the shard it ran on: a binary heap of (deadline, session key), 24 bytes a
//! dialogue, the key's allocation shared with the subscriber index.
//!
//! - Its next message (a hop, an abort, an aggregator's report) finds no actor, and the
//!   registry starts one that loads the state from the store, exactly as after a restart
//!   (`SessionActor::load`; in a cluster the hop's begin hands the state back).
//! - At its deadline the wheel sends it [`super::messages::Expire`] through the registry, as
//!   the start-up sweep does for the dialogues a restart left (`sweep::expire_pending`): an
//!   actor loads it and ends it as timed out, with its end record, tombstone, journey, metrics
//!   and end-of-session event, as its own idle timer would have; in a cluster under the
//!   dialogue's lease ([`super::actor`]'s `expire_in_cluster`), so one node ends it.
//! - A dialogue resumed since has a later deadline: the actor the wheel's message starts finds
//!   it not yet due and stops again (its own, later entry is in a wheel); an actor resident
//!   with its idle timer armed ignores the message (its timer ends it).
//! - A newer dialogue of the same number on the same code supersedes a passivated one through
//!   the wheel too: it is aborted as a resident one is.
//! - A resident dialogue keeps the route (and the flow version) it started on across reloads;
//!   a passivated one finds it again here ([`Passive::route_for`]): each route version that
//!   dialogues were passivated on is kept until the last of their deadlines has passed.

use super::registry::Registry;
use crate::app::Route;
use crate::clock::now_ms;
use crate::hop::SessionKey;
use futures_util::StreamExt;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Expiries (or aborts) a wheel has in flight at most.
const AT_ONCE: usize = 64;

/// Entries a wheel takes out at a time (then it lets its shard run other work).
const BATCH: usize = 4_096;

/// How often shard 0's wheel looks whether the registry's map of actors can shrink.
const TIDY_EVERY: Duration = Duration::from_secs(10);

/// A route's service code and its app's version.
type RouteVersion = (Arc<str>, Arc<str>);

/// The passivated dialogues' deadlines, one wheel per shard.
#[derive(Debug)]
pub(crate) struct Passive {
    /// How long a dialogue waits with its actor before it is passivated; `None`: never.
    after: Option<Duration>,
    /// One per shard, made when the registry starts the shards' loops ([`Passive::start`]).
    wheels: OnceLock<Box<[Wheel]>>,
    /// Deadlines kept in all wheels (read on every hop, for `max_live_dialogues`).
    held: AtomicUsize,
    /// The routes dialogues were passivated on, by service code and app version, each with
    /// the latest deadline of those dialogues: a reload may have replaced them since.
    routes: Mutex<HashMap<RouteVersion, (Arc<Route>, u64)>>,
}

#[derive(Debug, Default)]
struct Wheel {
    inner: Mutex<Inner>,
    /// Woken when an entry comes that is due before the earliest it had, or an abort.
    wake: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// (deadline in ms since the epoch, session key), soonest first.
    due: BinaryHeap<Reverse<(u64, SessionKey)>>,
    /// Passivated dialogues to abort now (superseded by a newer dialogue).
    aborts: Vec<SessionKey>,
}

impl Passive {
    /// Passivation after `after` (zero: never).
    pub(crate) fn new(after: Duration) -> Passive {
        Passive {
            after: (!after.is_zero()).then_some(after),
            wheels: OnceLock::new(),
            held: AtomicUsize::new(0),
            routes: Mutex::default(),
        }
    }

    /// How long a dialogue keeps its actor while it waits, when passivation is on (and the
    /// wheels run).
    pub(crate) fn after(&self) -> Option<Duration> {
        self.after.filter(|_| self.wheels.get().is_some())
    }

    /// Makes `shards` wheels; answers whether they were made now (their loops are to be
    /// started), false when passivation is off or they already run.
    pub(super) fn start(&self, shards: usize) -> bool {
        self.after.is_some()
            && self
                .wheels
                .set((0..shards.max(1)).map(|_| Wheel::default()).collect())
                .is_ok()
    }

    fn wheel(&self) -> Option<&Wheel> {
        let wheels = self.wheels.get()?;
        let i = super::registry::current_shard().unwrap_or(0);
        wheels.get(i % wheels.len())
    }

    fn lock(wheel: &Wheel) -> std::sync::MutexGuard<'_, Inner> {
        wheel.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `key`'s deadline (ms since the epoch), its actor being about to stop. Answers
    /// false (and keeps nothing) when passivation is off.
    pub(crate) fn hold(&self, deadline_ms: u64, key: SessionKey) -> bool {
        let Some(wheel) = self.wheel() else {
            return false;
        };
        let earlier = {
            let mut inner = Self::lock(wheel);
            let earlier = inner
                .due
                .peek()
                .is_none_or(|Reverse((first, _))| deadline_ms < *first);
            inner.due.push(Reverse((deadline_ms, key)));
            earlier
        };
        self.held.fetch_add(1, Ordering::Relaxed);
        if earlier {
            wheel.wake.notify_one();
        }
        true
    }

    /// Keeps `route` (the one a dialogue being passivated runs on, with its app's version)
    /// until `deadline_ms` at least, and lets go of those no passivated dialogue needs.
    pub(crate) fn keep_route(&self, route: &Arc<Route>, deadline_ms: u64) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let key = (route.service_code.clone(), route.app.version());
        match routes.get_mut(&key) {
            Some((_, until)) => *until = (*until).max(deadline_ms),
            None => {
                let now = now_ms();
                routes.retain(|_, (_, until)| *until >= now);
                routes.insert(key, (route.clone(), deadline_ms));
            }
        }
    }

    /// The route a resumed dialogue runs on: the one of `current`'s service code that it was
    /// passivated on if `app_version` is not `current`'s (a reload came since), else `current`.
    pub(crate) fn route_for(&self, current: &Arc<Route>, app_version: &str) -> Arc<Route> {
        if *current.app.version() == *app_version {
            return current.clone();
        }
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let key = (current.service_code.clone(), Arc::from(app_version));
        routes
            .get(&key)
            .map_or_else(|| current.clone(), |(route, _)| route.clone())
    }

    /// Aborts the passivated dialogue `key` soon (a newer dialogue supersedes it). Answers
    /// false when passivation is off.
    pub(crate) fn abort_soon(&self, key: SessionKey) -> bool {
        let Some(wheel) = self.wheel() else {
            return false;
        };
        Self::lock(wheel).aborts.push(key);
        wheel.wake.notify_one();
        true
    }

    /// How many deadlines are kept (a dialogue resumed and passivated again has one per
    /// passivation until the older ones come due).
    pub(crate) fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The keys kept that start with `prefix` (each once).
    pub(crate) fn keys_with_prefix(&self, prefix: &str) -> Vec<SessionKey> {
        let mut keys: Vec<SessionKey> = self
            .wheels
            .get()
            .into_iter()
            .flat_map(|w| w.iter())
            .flat_map(|w| {
                Self::lock(w)
                    .due
                    .iter()
                    .filter(|Reverse((_, k))| k.starts_with(prefix))
                    .map(|Reverse((_, k))| k.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Takes what is to be done now: the aborts, and the entries due at `now_ms` (at most
    /// [`BATCH`]); and when the next entry is due.
    fn take(&self, wheel: &Wheel, now_ms: u64) -> (Vec<SessionKey>, Vec<SessionKey>, Option<u64>) {
        let mut inner = Self::lock(wheel);
        let aborts = std::mem::take(&mut inner.aborts);
        let mut due = Vec::new();
        while due.len() < BATCH
            && let Some(Reverse((at, _))) = inner.due.peek()
            && *at <= now_ms
        {
            if let Some(Reverse((_, key))) = inner.due.pop() {
                due.push(key);
            }
        }
        self.held.fetch_sub(due.len(), Ordering::Relaxed);
        let next = inner.due.peek().map(|Reverse((at, _))| *at);
        // A wave of expiries leaves room for a million: it goes when it is mostly empty.
        if inner.due.capacity() > 4 * BATCH && inner.due.len() < inner.due.capacity() / 4 {
            inner.due.shrink_to_fit();
        }
        (aborts, due, next)
    }
}

/// Runs shard `shard`'s wheel, forever (it stops with the shard): aborts at once, expiries at
/// their deadlines, through `registry` (an actor started on this shard for each).
pub(super) async fn run(registry: Registry, shard: usize) {
    let passive = &registry.core().passive;
    let Some(wheel) = passive.wheels.get().and_then(|w| w.get(shard)) else {
        return;
    };
    let mut tidied = tokio::time::Instant::now();
    loop {
        let (aborts, due, next) = passive.take(wheel, now_ms());
        if !aborts.is_empty() || !due.is_empty() {
            let r = &registry;
            futures_util::stream::iter(aborts)
                .for_each_concurrent(AT_ONCE, |key| async move {
                    r.abort(key).await;
                })
                .await;
            futures_util::stream::iter(due)
                .for_each_concurrent(AT_ONCE, |key| async move {
                    r.expire_if_idle(key).await;
                })
                .await;
            continue;
        }
        let wait = next.map_or(TIDY_EVERY, |at| {
            Duration::from_millis(at.saturating_sub(now_ms())).min(TIDY_EVERY)
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wheel.wake.notified() => {}
        }
        if shard == 0 && tidied.elapsed() >= TIDY_EVERY {
            tidied = tokio::time::Instant::now();
            tidy(&registry.core().live);
        }
    }
}

/// Gives back the room of the registry's map of actors when a wave of passivations has left
/// it mostly empty (a hash table keeps its largest size: about 50 bytes a slot).
fn tidy<K, V>(live: &dashmap::DashMap<K, V>)
where
    K: Eq + std::hash::Hash,
{
    let (len, capacity) = (live.len(), live.capacity());
    if capacity > 4 * len + 4 * BATCH {
        live.shrink_to_fit();
    }
}
