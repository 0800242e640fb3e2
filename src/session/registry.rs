//! The registry: which actor owns which dialogue, and the shards they run on.
//!
//! Actors run on an actix `System` of their own thread, spread over one Arbiter per shard. The
//! HTTP front serves each connection on a shard (in turn), and a dialogue first seen there gets
//! its actor on the same shard, so its hops cross no thread; a dialogue first seen elsewhere
//! (the SMPP front, on tokio) is placed by the hash of its key. Fronts reach actors only
//! through `Addr::send`. The key-to-actor map is a sharded concurrent map, so there
//! is no lock shared by all dialogues on the hot path.

use super::HopError;
use super::actor::SessionActor;
use super::core::Core;
use super::messages::{Abort, AggregatorEnd, Expire, HopMsg};
use crate::hop::{Hop, Reply, SessionKey};
use actix::{Actor, Addr, Arbiter, ArbiterHandle, MailboxError};
use std::cell::Cell;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sends to a dialogue's actor tried at most this often when the actor closes under them.
const ATTEMPTS: usize = 16;

/// Tells shard sets apart (a process can run several gateways: tests, in-process restarts).
static SHARD_SETS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// On a shard's thread: its set and its index in that set.
    static CURRENT_SHARD: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// The index of the shard whose thread this is, if it is one.
pub(super) fn current_shard() -> Option<usize> {
    CURRENT_SHARD.get().map(|(_, i)| i)
}

/// The actix side: a System on its own thread with one Arbiter per shard.
#[derive(Debug)]
pub struct Shards {
    handles: Vec<ArbiterHandle>,
    /// This set's number (see [`SHARD_SETS`]).
    set: usize,
    system: actix::System,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shards {
    /// Starts `n` shards (at least one).
    ///
    /// # Errors
    /// The system thread could not be started.
    pub fn start(n: usize) -> std::io::Result<Shards> {
        let n = n.max(1);
        let set = SHARD_SETS.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("actix-system".into())
            .spawn(move || {
                let runner = actix::System::new();
                let arbiters = runner.block_on(async move {
                    let arbiters: Vec<Arbiter> = (0..n).map(|_| Arbiter::new()).collect();
                    for (i, arbiter) in arbiters.iter().enumerate() {
                        // Runs before anything else sent to the arbiter: its queue is in order.
                        arbiter.spawn_fn(move || {
                            CURRENT_SHARD.set(Some((set, i)));
                            crate::store::redis::own_connections_here();
                        });
                    }
                    let handles = arbiters.iter().map(Arbiter::handle).collect::<Vec<_>>();
                    let _ = tx.send((handles, actix::System::current()));
                    arbiters
                });
                if let Err(e) = runner.run() {
                    tracing::error!(error = %e, "actor system stopped with an error");
                }
                // Every actor (and the store handles they hold) is gone once the shard threads
                // have ended: wait for them, so that stopping is complete when `stop` returns.
                for arbiter in arbiters {
                    arbiter.stop();
                    let _ = arbiter.join();
                }
            })?;
        let (handles, system) = rx
            .recv()
            .map_err(|_| std::io::Error::other("actor system failed to start"))?;
        Ok(Shards {
            handles,
            set,
            system,
            thread: Some(thread),
        })
    }

    /// How many shards run.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Never true: there is always at least one shard.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Stops every actor (without ending their dialogues: their state stays persisted) and
    /// waits for the system thread.
    pub fn stop(mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The handle fronts use to hand in hops. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    core: Arc<Core>,
    shards: Arc<Vec<ArbiterHandle>>,
    /// The shards' set number (see [`SHARD_SETS`]).
    set: usize,
    /// The shard the next [`Registry::spawn_on_shard`] uses.
    next: Arc<AtomicUsize>,
}

impl Registry {
    /// A registry over `core`, running actors on `shards`.
    pub fn new(core: Arc<Core>, shards: &Shards) -> Registry {
        let registry = Registry {
            core,
            shards: Arc::new(shards.handles.clone()),
            set: shards.set,
            next: Arc::new(AtomicUsize::new(0)),
        };
        // Each shard runs the wheel of the dialogues passivated on it.
        if registry.core.passive.start(shards.handles.len()) {
            for (i, shard) in shards.handles.iter().enumerate() {
                shard.spawn(super::passive::run(registry.clone(), i));
            }
        }
        registry
    }

    /// Runs `task` on a shard's thread, the shards taken in turn: the HTTP front serves each
    /// connection there, so that a dialogue started on it gets its actor on the same thread
    /// and its hops go from connection to actor and back without a hand-off between threads.
    /// Returns false (and drops `task`) if the actor system is stopping.
    pub fn spawn_on_shard<F>(&self, task: F) -> bool
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        self.shards[i].spawn(task)
    }

    /// The shared core.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// How many dialogues have an actor in memory.
    pub fn live(&self) -> usize {
        self.core.live.len()
    }

    /// How many deadlines of passivated dialogues are kept ([`super::passive`]): the live
    /// dialogues without an actor (a dialogue resumed and passivated again counts once per
    /// passivation until its older deadlines come due).
    pub fn passivated(&self) -> usize {
        self.core.passive.len()
    }

    /// Ends, as aborted, every live dialogue whose key starts with `prefix` (all dialogues of
    /// an SMPP bind whose connection was lost: the network side has dropped them). Returns how
    /// many ended.
    pub async fn abort_prefix(&self, prefix: &str) -> usize {
        let mut keys: Vec<SessionKey> = self
            .core
            .live
            .iter()
            .filter(|e| e.key().starts_with(prefix))
            .map(|e| e.key().clone())
            .collect();
        // And those passivated (each once: one may be resident again too).
        keys.extend(self.core.passive.keys_with_prefix(prefix));
        keys.sort_unstable();
        keys.dedup();
        let mut ended = 0;
        for key in keys {
            if self.abort(key).await {
                ended += 1;
            }
        }
        ended
    }

    /// Answers one hop through the dialogue's actor, spawning it if needed.
    ///
    /// # Errors
    /// The actor system is stopping.
    pub async fn hop(&self, hop: Hop) -> Result<Reply, HopError> {
        let limits = &self.core.limits;
        if let Some(limiter) = &limits.per_msisdn
            && limiter.check_key(&hop.msisdn.as_str().to_string()).is_err()
        {
            crate::metrics::limited("msisdn_rate");
            tracing::warn!(msisdn = %hop.msisdn.masked(), "hop refused: too many hops from one number");
            return Ok(Reply::end(&limits.busy_text));
        }
        // On one node passivated dialogues count too; in a cluster they are not told from new
        // ones without a round trip, and a live one must never be refused: only actors count.
        let passivated = match self.core.cluster {
            None => self.core.passive.len(),
            Some(_) => 0,
        };
        if self.core.live.len() + passivated >= limits.max_live
            && !self.core.live.contains_key(&hop.key)
            && !self.passivated_here(&hop.key)
        {
            crate::metrics::limited("live_dialogues");
            tracing::warn!("new dialogue refused: live dialogue limit reached");
            return Ok(Reply::end(&limits.busy_text));
        }
        // An actor that stops between lookup and send (its dialogue just ended) answers
        // `Closed`; a fresh actor then answers from the tombstone, and stops again. Concurrent
        // hops of one dialogue (an aggregator's retries racing the original) can each meet that
        // once: a few attempts per hop cover them; only a stopping system closes every one.
        let key = hop.key.clone();
        match self.send(&key, HopMsg(hop)).await {
            Ok(reply) => Ok(reply),
            Err(MailboxError::Timeout) => {
                Err(HopError::Unavailable("actor mailbox timed out".into()))
            }
            Err(MailboxError::Closed) => {
                Err(HopError::Unavailable("actor system is stopping".into()))
            }
        }
    }

    /// Whether `key` is a live dialogue of this node (one node) whose actor is passivated:
    /// read only at the live dialogue limit (a look into sled).
    fn passivated_here(&self, key: &str) -> bool {
        self.core.passive.len() > 0
            && self.core.cluster.is_none()
            && self.core.store.live_exists(key).unwrap_or(false)
    }

    /// Sends `msg` to the actor of `key` (spawning it if needed), again to a fresh actor when
    /// the one found closes under it.
    async fn send<M>(&self, key: &SessionKey, msg: M) -> Result<M::Result, MailboxError>
    where
        M: actix::Message + Clone + Send + 'static,
        M::Result: Send,
        SessionActor: actix::Handler<M>,
    {
        for _ in 0..ATTEMPTS {
            let addr = self.addr_for(key);
            match addr.send(msg.clone()).await {
                Err(MailboxError::Closed) => {
                    let gone = addr.downgrade();
                    self.core.live.remove_if(key, |_, a| *a == gone);
                }
                other => return other,
            }
        }
        Err(MailboxError::Closed)
    }

    /// Ends the dialogue `key` at once because the network (or the aggregator) says it is over
    /// (SMPP abort, AT end-of-session notification). Returns whether a live dialogue ended.
    pub async fn abort(&self, key: SessionKey) -> bool {
        self.send(&key, Abort).await.unwrap_or(false)
    }

    /// Records the aggregator's end-of-session report for `key`, ending the dialogue for
    /// `reason` if it is still live. Returns whether the dialogue (live or recently ended) was
    /// known.
    pub async fn report_end(
        &self,
        key: SessionKey,
        report: super::state::AggregatorReport,
        reason: super::state::EndReason,
        msisdn: Option<crate::msisdn::Msisdn>,
    ) -> bool {
        self.send(
            &key,
            AggregatorEnd {
                report,
                reason,
                msisdn,
            },
        )
        .await
        .unwrap_or(false)
    }

    /// Ends the dialogue `key` if it has been idle past its timeout (used for dialogues that a
    /// restart left without an actor). Returns whether it ended.
    pub async fn expire_if_idle(&self, key: SessionKey) -> bool {
        self.send(&key, Expire).await.unwrap_or(false)
    }

    fn addr_for(&self, key: &SessionKey) -> Addr<SessionActor> {
        if let Some(addr) = self.core.live.get(key).and_then(|a| a.upgrade())
            && addr.connected()
        {
            return addr;
        }
        let entry = self.core.live.entry(key.clone());
        match entry {
            dashmap::Entry::Occupied(mut e) => match e.get().upgrade() {
                Some(addr) if addr.connected() => addr,
                _ => {
                    let addr = self.spawn(key);
                    e.insert(addr.downgrade());
                    addr
                }
            },
            dashmap::Entry::Vacant(v) => {
                let addr = self.spawn(key);
                v.insert(addr.downgrade());
                addr
            }
        }
    }

    fn spawn(&self, key: &SessionKey) -> Addr<SessionActor> {
        // A hop handed in on one of these shards' threads (an HTTP connection served there)
        // gets its actor on that shard: no hand-off between threads for its hops. Others (the
        // SMPP front, on tokio) are spread by the key's hash.
        let shard = match CURRENT_SHARD.get() {
            Some((set, i)) if set == self.set && i < self.shards.len() => &self.shards[i],
            _ => {
                let mut h = DefaultHasher::new();
                key.hash(&mut h);
                &self.shards[(h.finish() as usize) % self.shards.len()]
            }
        };
        let actor = SessionActor::new(key.clone(), self.core.clone());
        SessionActor::start_in_arbiter(shard, move |_| actor)
    }
}

/// A registry over `store` with no routes, default texts and no limits, for unit tests.
#[cfg(test)]
pub(crate) fn test_registry(store: crate::store::Store, shards: &Shards) -> Registry {
    use super::core::{Limits, Settings};
    use crate::app::RouteTable;
    use std::time::Duration;
    let settings = Settings {
        unknown_service_text: String::new(),
        apology_text: String::new(),
        timeout_text: String::new(),
        tombstone_ttl: Duration::from_secs(60),
        events: None,
        fixed_now: None,
        passivate_after: Duration::ZERO,
    };
    Registry::new(
        Core::new(store, RouteTable::new(Vec::new()), settings, Limits::none()),
        shards,
    )
}

/// Compile-time check that the registry can be shared with tokio tasks.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Registry>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use actix::Message;
    use std::collections::HashSet;
    use std::thread::ThreadId;
    use std::time::Duration;

    /// Which thread an actor runs on.
    #[derive(Message)]
    #[rtype(result = "ThreadId")]
    struct ThreadOf;

    impl actix::Handler<ThreadOf> for SessionActor {
        type Result = actix::MessageResult<ThreadOf>;
        fn handle(&mut self, _: ThreadOf, _: &mut Self::Context) -> Self::Result {
            actix::MessageResult(std::thread::current().id())
        }
    }

    /// The HTTP front serves its connections on the shards in turn, and a dialogue first seen
    /// on a shard's thread gets its actor on that thread: its hops never change threads.
    #[test]
    fn a_dialogue_started_on_a_shard_gets_its_actor_there() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16, 500).unwrap();
        let shards = Shards::start(3).unwrap();
        let registry = test_registry(store, &shards);
        let (tx, rx) = std::sync::mpsc::channel();
        for n in 0..9 {
            let r = registry.clone();
            let tx = tx.clone();
            assert!(registry.spawn_on_shard(async move {
                let key: SessionKey = format!("connection-{n}").into();
                let actor = r.addr_for(&key).send(ThreadOf).await.unwrap();
                tx.send((std::thread::current().id(), actor)).unwrap();
            }));
        }
        let seen: Vec<(ThreadId, ThreadId)> = (0..9)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        for (connection, actor) in &seen {
            assert_eq!(connection, actor);
        }
        let threads: HashSet<ThreadId> = seen.iter().map(|(t, _)| *t).collect();
        assert_eq!(threads.len(), 3, "connections are spread over every shard");

        // Off the shards (the SMPP front, on tokio), actors are spread by their key.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let off: HashSet<ThreadId> = (0..64)
            .map(|n| {
                let key: SessionKey = format!("bind-{n}").into();
                let actor = registry.addr_for(&key);
                rt.block_on(actor.send(ThreadOf)).unwrap()
            })
            .collect();
        assert!(!off.contains(&std::thread::current().id()));
        assert_eq!(off.len(), 3, "keys are spread over every shard");
        drop(registry);
        shards.stop();
    }
}
