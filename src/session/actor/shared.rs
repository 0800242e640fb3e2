//! Cluster mode's side of a dialogue's actor (docs/cluster.md, "One hop on any node").
//!
//! On one node the actor's state is the dialogue's, and its writes go to sled's write-behind
//! buffer. In a cluster the actor is a cache: before each hop it begins the hop in the shared
//! store, which leases the dialogue to this node and hands back the state when another node
//! answered since; the hop is planned and answered as on one node, its writes (the new state,
//! or the end) are collected, and carried out while the lease still holds, before the answer
//! goes. The idle timer, the sweep, aborts and aggregator reports take the lease the same way,
//! so each dialogue is ended once across the cluster.

use super::ops::{self, Hold, Op, Wrote};
use super::{SessionActor, stop_after_reply};
use crate::clock::now_ms;
use crate::effect::Effect;
use crate::hop::{Hop, Reply};
use crate::metrics;
use crate::session::core::Cluster;
use crate::session::messages::AggregatorEnd;
use crate::session::state::{AggregatorReport, Dialogue, EndReason, EndRecord, Tombstone};
use crate::store::StoreError;
use crate::store::shared_dialogues::{Begun, Claimed, Lease, SharedDialogues};
use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A handler's answer: at once (on one node, whose store answers synchronously), or once the
/// shared store has answered (cluster mode), the actor taking no other message meanwhile.
pub enum Answer<T: 'static> {
    /// The answer.
    Now(T),
    /// The answer, once this future has it.
    Later(ResponseActFuture<SessionActor, T>),
}

impl<T: std::fmt::Debug> std::fmt::Debug for Answer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Now(v) => f.debug_tuple("Now").field(v).finish(),
            Answer::Later(_) => f.write_str("Later(..)"),
        }
    }
}

impl<M> MessageResponse<SessionActor, M> for Answer<bool>
where
    M: Message<Result = bool>,
{
    fn handle(self, ctx: &mut Context<SessionActor>, tx: Option<OneshotSender<bool>>) {
        match self {
            Answer::Now(v) => {
                if let Some(tx) = tx {
                    let _ = tx.send(v);
                }
            }
            Answer::Later(fut) => {
                MessageResponse::<SessionActor, M>::handle(AtomicResponse::new(fut), ctx, tx)
            }
        }
    }
}

/// What an actor keeps for cluster mode. The lease and the tombstone are boxed: every live
/// dialogue's actor carries this (on one node too), and a smaller actor is a smaller task for
/// each of a million idle dialogues (docs/benchmarks.md).
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// The version of the shared state this node's copy is (`None`: no copy).
    version: Option<u64>,
    /// The lease held while a hop (or an end) is being answered.
    lease: Option<Box<Lease>>,
    /// The tombstone the hop's begin found.
    tombstone: Option<Box<Tombstone>>,
    /// The writes the hop made, carried out before its answer goes.
    pub(super) ops: Vec<Op>,
    /// The hop is being answered on a guess ([`super::guess`]): the app must not reach an
    /// effect, and the actor stops (if the hop ends it) only once the guess is written.
    pub(super) tentative: bool,
    /// The app reached an effect while answering on a guess.
    pub(super) effects: bool,
    /// The hop answered on a guess ends the dialogue: the actor stops once it is written.
    pub(super) stop_held: bool,
}

impl Shared {
    /// The version of the shared state this node's copy is.
    pub(super) fn version(&self) -> Option<u64> {
        self.version
    }

    /// Notes the version this node's copy now is.
    pub(super) fn set_version(&mut self, version: Option<u64>) {
        self.version = version;
    }

    /// Notes that the app reached an effect while answering on a guess.
    pub(super) fn met_effects(&mut self) {
        self.effects = true;
    }
}

/// Begins a hop, waiting (with a short backoff, up to the lease's time) while another node
/// holds the dialogue's lease: it answers a hop of the same dialogue, so its lease goes when
/// that hop is answered, or expires if that node died.
async fn begin_waiting(
    dialogues: &SharedDialogues,
    key: &str,
    cached: Option<u64>,
    lease: Duration,
) -> Result<Begun, String> {
    let lease_ms = lease.as_millis() as u64;
    let until = Instant::now() + lease;
    let mut pause = Duration::from_millis(2);
    loop {
        match dialogues.begin(key, cached, lease_ms).await {
            Ok(Begun::Busy) if Instant::now() < until => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Ok(Begun::Busy) => return Err("the dialogue stayed leased by another node".into()),
            Ok(begun) => return Ok(begun),
            Err(e) => return Err(e.to_string()),
        }
    }
}

impl SessionActor {
    /// Writes the dialogue's live state: into sled's write-behind buffer, or, in a cluster,
    /// with the commit that follows the hop.
    pub(super) fn write_live(&mut self, d: Arc<Dialogue>) -> Result<(), StoreError> {
        if self.core.cluster.is_some() {
            self.shared.ops.push(Op::Live(d));
            return Ok(());
        }
        self.core.store.put_live(&self.key, d)
    }

    /// Writes the dialogue's end: into sled's write-behind buffer, or, in a cluster, with the
    /// end that follows the hop.
    /// `applied`: the dialogue may have applied transactions in the cluster's ledger.
    pub(super) fn write_end(
        &mut self,
        tomb: &Tombstone,
        record: &EndRecord,
        event: Option<Effect>,
        applied: bool,
    ) -> Result<(), StoreError> {
        if self.core.cluster.is_some() {
            self.shared.ops.push(Op::End {
                tombstone: serde_json::to_vec(tomb)?,
                tombstone_ttl_ms: tomb.expires_ms.saturating_sub(now_ms()),
                record: serde_json::to_vec(record)?,
                started_ms: tomb.started_ms,
                event,
                applied,
            });
            return Ok(());
        }
        self.core
            .store
            .end(&self.key, (tomb, tomb.expires_ms), record, event)
    }

    /// The tombstone the hop's begin found (cluster mode).
    pub(super) fn shared_tombstone(&mut self) -> Option<Tombstone> {
        self.shared.tombstone.take().map(|t| *t)
    }

    /// Takes what the begin found as the actor's state, and holds its lease.
    /// Takes `bytes`, a state another node kept, as this node's copy of the dialogue (`None`
    /// if it cannot be read).
    pub(super) fn adopt(&mut self, bytes: &[u8]) {
        match serde_json::from_slice::<Dialogue>(bytes) {
            Ok(d) => {
                if self.route.as_ref().map(|r| &*r.service_code) != Some(&*d.route) {
                    self.route = self.core.routes.load().get(&d.route).map(|r| {
                        // Passivated here before a reload: the version it started on.
                        self.core.passive.route_for(r, &d.app_version)
                    });
                    if self.route.is_none() {
                        tracing::warn!(route = %d.route, "shared dialogue's route is not on this node");
                    }
                }
                // Another node may have run transactions for it.
                self.transacted = true;
                self.dialogue = Some(Arc::new(d));
            }
            Err(e) => {
                tracing::error!(session = %self.log_id, error = %e, "unreadable shared dialogue state");
                self.dialogue = None;
            }
        }
    }

    pub(super) fn apply(&mut self, begun: Begun) {
        self.loaded = true;
        self.shared.tombstone = None;
        let lease = match begun {
            Begun::Current(lease) => lease,
            Begun::Live(lease, bytes) => {
                self.adopt(&bytes);
                lease
            }
            Begun::Ended(lease, bytes) => {
                self.dialogue = None;
                self.shared.tombstone = serde_json::from_slice(&bytes).ok().map(Box::new);
                lease
            }
            Begun::Absent(lease) => {
                self.dialogue = None;
                lease
            }
            Begun::Busy => unreachable!("begin_waiting never returns Busy"),
        };
        self.shared.version =
            (lease.version > 0 && self.dialogue.is_some()).then_some(lease.version);
        self.shared.lease = Some(Box::new(lease));
    }

    /// Drops this node's copy (after a failure it cannot tell the shared state by).
    pub(super) fn forget_copy(&mut self) {
        self.dialogue = None;
        self.shared = Shared::default();
        self.loaded = false;
    }

    /// Answers a hop in cluster mode: on a guess when it can ([`super::guess`]), else begin,
    /// plan and answer as on one node, then write.
    pub(super) fn hop_in_cluster(
        &mut self,
        hop: Hop,
        cluster: Cluster,
        started: Instant,
        span: tracing::Span,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Reply> {
        match self.guess(&hop, &cluster) {
            Some(guess) => self.hop_on_guess(hop, guess, cluster, started, span, ctx),
            None => self.hop_leased(hop, cluster, started, span),
        }
    }

    /// Begins `hop` (taking the dialogue's lease), plans and answers it, then writes.
    pub(super) fn hop_leased(
        &mut self,
        hop: Hop,
        cluster: Cluster,
        started: Instant,
        span: tracing::Span,
    ) -> ResponseActFuture<Self, Reply> {
        let key = self.key.clone();
        let cached = self.shared.version;
        let begin =
            async move { begin_waiting(&cluster.dialogues, &key, cached, cluster.lease).await };
        Box::pin(
            begin
                .into_actor(self)
                .then(move |begun, act, ctx| act.answer_begun(begun, hop, started, span, ctx)),
        )
    }

    /// Answers `hop` on what its begin found, then writes.
    pub(super) fn answer_begun(
        &mut self,
        begun: Result<Begun, String>,
        hop: Hop,
        started: Instant,
        span: tracing::Span,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Reply> {
        let (front, dialect) = (hop.front, hop.dialect);
        match begun {
            Ok(begun) => self.apply(begun),
            Err(e) => {
                // While Redis is down every hop comes here: it is logged once, by the
                // connection ([`crate::store::redis`]), and counted in the metrics.
                if self
                    .core
                    .cluster
                    .as_ref()
                    .is_some_and(|c| c.dialogues.is_up())
                {
                    tracing::error!(session = %self.log_id, error = %e, "shared store: hop answered busy");
                } else {
                    tracing::debug!(session = %self.log_id, error = %e, "shared store: hop answered busy");
                }
                metrics::hop(
                    front.as_str(),
                    dialect,
                    self.route_label(),
                    "busy",
                    started.elapsed(),
                );
                self.forget_copy();
                stop_after_reply(ctx);
                return Box::pin(fut::ready(Reply::end(&self.core.limits.busy_text)));
            }
        }
        let answered = self.answer(hop, started, span, ctx);
        Box::pin(answered.then(|reply, act, _| act.write_shared(reply)))
    }

    /// Answers `reply` once the hop's writes are done ([`SessionActor::flush_ops`]); if they
    /// fail, the answer is the apology, and the actor stops.
    pub(super) fn write_shared(&mut self, reply: Reply) -> ResponseActFuture<Self, Reply> {
        Box::pin(self.flush_ops().map(move |written, act, ctx| {
            if written {
                reply
            } else {
                stop_after_reply(ctx);
                Reply::end(&act.core.settings.apology_text)
            }
        }))
    }

    /// Carries out the hop's writes while the lease holds (or lets the lease go when there are
    /// none). Answers whether they were done; if not, this node's copy goes. What the hop
    /// counts is counted then, or, if they failed, only the hop, as an error.
    pub(super) fn flush_ops(&mut self) -> ResponseActFuture<Self, bool> {
        let ops = std::mem::take(&mut self.shared.ops);
        let lease = self.shared.lease.take();
        let Some(cluster) = self.core.cluster.clone() else {
            return Box::pin(fut::ready(true));
        };
        let (key, store) = (self.key.clone(), self.core.store.clone());
        let writes = async move {
            let Some(lease) = lease else {
                return Ok(None);
            };
            if ops.is_empty() {
                // Nothing changed (a retry, a refusal): the lease goes, or expires by itself.
                if let Err(e) = cluster.dialogues.release(&key, &lease).await {
                    tracing::warn!(error = %e, "shared store: lease release failed");
                }
                return Ok(Some(lease.version).filter(|v| *v > 0));
            }
            let (n, mut version) = (ops.len(), lease.version);
            for (i, op) in ops.into_iter().enumerate() {
                let hold = Hold::Lease {
                    lease: &lease,
                    keep: i + 1 < n,
                };
                match ops::write(&cluster, &store, &key, op, hold).await? {
                    Wrote::Done(v) => version = v,
                    Wrote::Lost | Wrote::Wrong(_) => {
                        return Err("the lease was lost before the write".to_string());
                    }
                }
            }
            Ok(Some(version).filter(|v| *v > 0))
        };
        Box::pin(writes.into_actor(self).map(|written, act, _| {
            let kept = written.is_ok();
            match written {
                Ok(version) => act.shared.version = version.filter(|_| act.dialogue.is_some()),
                Err(e) => {
                    tracing::error!(session = %act.log_id, error = %e, "shared store write failed");
                    act.forget_copy();
                }
            }
            act.counts.settle(kept, act.core.cluster.as_ref());
            kept
        }))
    }

    /// Ends the dialogue if it is idle past its deadline across the cluster (the idle timer
    /// and the sweep): claims it (so one node ends it), ends it, writes. Answers whether it
    /// ended here.
    pub(super) fn expire_in_cluster(&mut self, cluster: Cluster) -> ResponseActFuture<Self, bool> {
        let key = self.key.clone();
        let claim = async move {
            cluster
                .dialogues
                .claim_due(&key, now_ms(), cluster.lease.as_millis() as u64)
                .await
        };
        Box::pin(claim.into_actor(self).then(|claimed, act, ctx| {
            stop_after_reply(ctx);
            match claimed {
                Ok(Claimed::Due(lease, state)) => {
                    act.apply(Begun::Live(lease, state));
                    act.end_now(EndReason::IdleTimeout, None);
                    act.flush_ops()
                }
                Ok(Claimed::NotDue) => {
                    // Another node answered it since (it keeps the timer), or ended it.
                    act.forget_copy();
                    Box::pin(fut::ready(false))
                }
                Err(e) => {
                    tracing::warn!(session = %act.log_id, error = %e, "shared store: idle claim failed; the sweep tries again");
                    act.forget_copy();
                    Box::pin(fut::ready(false))
                }
            }
        }))
    }

    /// Ends the dialogue now (the network's abort, or a newer dialogue of the same number),
    /// under its lease. Answers whether a live dialogue ended.
    pub(super) fn abort_in_cluster(&mut self, cluster: Cluster) -> ResponseActFuture<Self, bool> {
        let key = self.key.clone();
        let cached = self.shared.version;
        let begin =
            async move { begin_waiting(&cluster.dialogues, &key, cached, cluster.lease).await };
        Box::pin(begin.into_actor(self).then(|begun, act, ctx| {
            stop_after_reply(ctx);
            let Ok(begun) = begun else {
                act.forget_copy();
                return Box::pin(fut::ready(false)) as ResponseActFuture<Self, bool>;
            };
            act.apply(begun);
            let live = act.dialogue.is_some();
            if live {
                act.end_now(EndReason::Abort, None);
            }
            Box::pin(act.flush_ops().map(move |written, _, _| live && written))
        }))
    }

    /// The aggregator's end-of-session report, under the dialogue's lease: ends it if it is
    /// live, and keeps the report with its end record either way. Answers whether a dialogue
    /// (live or ended) was found.
    pub(super) fn report_in_cluster(
        &mut self,
        cluster: Cluster,
        msg: AggregatorEnd,
    ) -> ResponseActFuture<Self, bool> {
        let AggregatorEnd {
            report,
            reason,
            msisdn,
        } = msg;
        let key = self.key.clone();
        let cached = self.shared.version;
        let dialogues = cluster.dialogues.clone();
        let begin = async move { begin_waiting(&dialogues, &key, cached, cluster.lease).await };
        Box::pin(begin.into_actor(self).then(move |begun, act, ctx| {
            stop_after_reply(ctx);
            let Ok(begun) = begun else {
                act.forget_copy();
                return Box::pin(fut::ready(false)) as ResponseActFuture<Self, bool>;
            };
            act.apply(begun);
            let owner = match (&act.dialogue, &act.shared.tombstone) {
                (Some(d), _) => Some((d.msisdn.clone(), "live")),
                (None, Some(t)) => t.msisdn.clone().map(|m| (m, "ended")),
                (None, None) => None,
            };
            if let Some((owner, what)) = owner
                && act.report_refused(msisdn.as_ref(), Some(&owner), what)
            {
                let lease = act.shared.lease.take();
                let (key, dialogues) = (act.key.clone(), cluster.dialogues.clone());
                let release = async move {
                    if let Some(lease) = lease {
                        let _ = dialogues.release(&key, &lease).await;
                    }
                    false
                };
                return Box::pin(release.into_actor(act));
            }
            if let Some(d) = &act.dialogue {
                let reply = Reply::end(d.last_reply.text.clone());
                act.end_with(reason, None, reply, None, Some(report));
                return act.flush_ops();
            }
            let tombstone = act.shared.tombstone.take();
            let lease = act.shared.lease.take();
            let key = act.key.clone();
            let update = async move {
                let found = match &tombstone {
                    Some(t) => update_record(&cluster.dialogues, &key, t.started_ms, report).await,
                    None => false,
                };
                if let Some(lease) = lease {
                    let _ = cluster.dialogues.release(&key, &lease).await;
                }
                found
            };
            Box::pin(update.into_actor(act))
        }))
    }
}

/// Keeps the aggregator's `report` with the end record of `key` started at `started_ms`.
async fn update_record(
    dialogues: &SharedDialogues,
    key: &str,
    started_ms: u64,
    report: AggregatorReport,
) -> bool {
    let bytes = match dialogues.end_record(key, started_ms).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return false,
        Err(e) => {
            tracing::error!(error = %e, "shared store: end record read failed");
            return false;
        }
    };
    let Ok(mut record) = serde_json::from_slice::<EndRecord>(&bytes) else {
        return false;
    };
    record.aggregator = Some(report);
    let Ok(bytes) = serde_json::to_vec(&record) else {
        return false;
    };
    dialogues
        .replace_end_record(key, started_ms, &bytes)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "shared store: end record update failed");
            false
        })
}
