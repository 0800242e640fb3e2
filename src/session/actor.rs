//! The actor that owns one dialogue.
//!
//! It loads the dialogue's state lazily from sled on its first message (so a restart resumes
//! dialogues on their next hop, never all at start), derives the new input from the cumulative
//! text, answers retries from the stored reply, runs the app under the hop's deadline, persists
//! the state after every hop, and ends the dialogue on END, on an error, or after its idle
//! timeout, leaving a tombstone and an end-of-session record ([`end`]).
//!
//! What to do with a hop is decided by [`super::plan`], a pure function of the state loaded;
//! the actor does the rest: the store reads and writes, the app call, the timers.
//!
//! Hops are handled with [`AtomicResponse`]: while one hop is being answered the actor takes no
//! other message, so a retry that arrives meanwhile waits and is then answered from the stored
//! reply. One answer, computed once.

use super::core::{Core, subscriber_key};
use super::counts::{Count, Counts};
use super::mask::{self, HopText, InputsAt};
use super::messages::Abort;
use super::plan::{self, Known, Plan};
use super::state::{Dialogue, EndReason, Tombstone};
use crate::app::{App, AppState, HopEnv, Route, Sensitive};
use crate::clock::now_ms;
use crate::hop::{Hop, Reply, SessionKey};
use crate::metrics;
use crate::msisdn::Msisdn;
use crate::text::Limit;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

mod end;
mod guess;
mod hop;
mod ops;
mod shared;

pub use shared::Answer;

/// One dialogue.
pub struct SessionActor {
    key: SessionKey,
    /// The key as logged ([`super::log_id`]), made once.
    log_id: String,
    core: Arc<Core>,
    /// False until the persisted state (if any) has been looked up.
    loaded: bool,
    /// Shared with the write-behind buffer until the next commit: a hop that changes it while
    /// the buffer still holds it copies it then (`Arc::make_mut`), an idle one never does.
    dialogue: Option<Arc<Dialogue>>,
    /// The route the dialogue runs on, with its app: the version it started with, even across
    /// reloads.
    route: Option<Arc<Route>>,
    idle: Option<SpawnHandle>,
    /// Whether this dialogue is in the subscriber index (`Core::by_subscriber`).
    indexed: bool,
    /// Whether it may have applied transactions (it ran one, or resumed from sled, where an
    /// earlier process may have): its end then looks them up for its end record.
    transacted: bool,
    /// Cluster mode: the shared state's version, the lease, the hop's writes ([`shared`]).
    shared: shared::Shared,
    /// What the hop being answered counts (held in a cluster until its writes are done).
    counts: Counts,
}

impl std::fmt::Debug for SessionActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionActor")
            .field("key", &self.key)
            .field("live", &self.dialogue.is_some())
            .finish()
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Dialogues are short; a small mailbox is plenty, but never refuse a retry.
        ctx.set_mailbox_capacity(64);
        metrics::live(1.0);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        let me = ctx.address().downgrade();
        self.core.live.remove_if(&self.key, |_, a| *a == me);
        metrics::live(-1.0);
    }
}

/// What the actor does with a hop: answer it at once, or run the app. Lives only while a hop
/// is planned, so the size difference between the variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// Answer now; stop the actor once the answer is out if `stop`.
    Answer {
        reply: Reply,
        stop: bool,
        outcome: &'static str,
    },
    /// Run the app.
    Run {
        app: Arc<dyn App>,
        state: Option<AppState>,
        inputs: Vec<String>,
        env: HopEnv,
        /// The hop's cumulative text, kept (masked where the app says) once it is answered.
        text: HopText,
        deadline: Duration,
    },
}

impl SessionActor {
    /// A new actor for `key`; it loads its state on its first message.
    pub fn new(key: SessionKey, core: Arc<Core>) -> Self {
        SessionActor {
            log_id: super::log_id(&key),
            counts: Counts::new(core.cluster.is_some()),
            key,
            core,
            loaded: false,
            dialogue: None,
            route: None,
            idle: None,
            indexed: false,
            transacted: false,
            shared: shared::Shared::default(),
        }
    }

    /// The route's service code, for metric labels (a fixed set from config).
    fn route_label(&self) -> Arc<str> {
        match (&self.route, &self.dialogue) {
            (Some(r), _) => r.service_code.clone(),
            (None, Some(d)) => d.route.clone(),
            _ => Arc::from("unknown"),
        }
    }

    /// Loads the persisted dialogue, once. A dialogue whose route is gone after a restart ends.
    fn load(&mut self) -> Result<(), String> {
        if self.loaded {
            return Ok(());
        }
        self.loaded = true;
        if self.core.cluster.is_some() {
            // In a cluster the state comes with each hop's begin ([`shared`]).
            return Ok(());
        }
        let found: Option<Dialogue> = self
            .core
            .store
            .live(&self.key)
            .map_err(|e| format!("loading dialogue: {e}"))?;
        if let Some(d) = found {
            if super::sweep::drop_leftover(&self.core.store, &self.key, &d) {
                // Its end was written before a crash cut the commit that removed it.
                return Ok(());
            }
            self.transacted = true;
            let routes = self.core.routes.load();
            match routes.get(&d.route) {
                // Passivated before a reload: the route (and flow version) it started on.
                Some(route) => {
                    self.route = Some(self.core.passive.route_for(route, &d.app_version))
                }
                None => tracing::warn!(route = %d.route, "resumed dialogue's route is gone"),
            }
            self.dialogue = Some(Arc::new(d));
        }
        Ok(())
    }

    /// Counts `c` (in a cluster, once the hop's writes are done).
    fn count(&mut self, c: Count) {
        self.counts.add(c, self.core.cluster.as_ref());
    }

    /// Plans `hop` over the loaded state ([`plan::plan`]): `None` if the state cannot be read.
    fn plan(&mut self, hop: Hop) -> Option<Plan> {
        if let Err(e) = self.load() {
            tracing::error!(error = %e, "store read failed");
            return None;
        }
        let now = now_ms();
        let tombstone = if plan::wants_tombstone(&hop, self.dialogue.as_deref()) {
            self.tombstone(now)
        } else {
            None
        };
        let known = Known {
            dialogue: self.dialogue.as_deref(),
            route: self.route.as_ref(),
            tombstone,
            routes: &self.core.routes,
            settings: &self.core.settings,
            now_ms: now,
        };
        Some(plan::plan(hop, known))
    }

    /// Carries `plan` out, up to the app call (`None`: the state could not be read).
    fn carry_out(&mut self, plan: Option<Plan>) -> Step {
        let Some(plan) = plan else {
            return Step::Answer {
                reply: Reply::end(&self.core.settings.apology_text),
                stop: true,
                outcome: "error",
            };
        };
        match plan {
            Plan::Answer {
                reply,
                stop,
                outcome,
            } => Step::Answer {
                reply,
                stop,
                outcome,
            },
            Plan::Expire => Step::Answer {
                reply: self.end_now(EndReason::IdleTimeout, None),
                stop: true,
                outcome: "expired",
            },
            Plan::RouteGone => {
                let route = self.route_label();
                tracing::error!(session = %self.log_id, route = %route, "the dialogue's route is gone; it ends");
                Step::Answer {
                    reply: self.end_now(EndReason::Error, None),
                    stop: true,
                    outcome: "error",
                }
            }
            Plan::Refuse { hop, owner, what } => self.refuse(&hop, &owner, what),
            Plan::UnknownService {
                dialled,
                msisdn,
                abort_live,
            } => {
                if abort_live {
                    self.end_now(EndReason::Abort, None);
                }
                tracing::warn!(
                    dialled = ?crate::logsafe::untrusted(&dialled),
                    msisdn = %msisdn.masked(),
                    "unknown service code"
                );
                Step::Answer {
                    reply: Reply::end(&self.core.settings.unknown_service_text),
                    stop: true,
                    outcome: "unknown_service",
                }
            }
            Plan::New {
                route,
                dialogue,
                inputs,
                text,
                limit,
                abort_live,
            } => {
                if abort_live {
                    self.end_now(EndReason::Abort, None);
                }
                // The same number dialling the same code again while its previous dialogue is
                // live: the network has abandoned that one without telling us. It ends now, as
                // an abort (a flow that opted in may then offer to resume it).
                // In a cluster, the older dialogue may be any node's: the index is shared.
                if self.core.cluster.is_some() {
                    self.count(Count::Started(crate::session::core::Started {
                        msisdn: dialogue.msisdn.clone(),
                        service_code: route.service_code.clone(),
                        key: self.key.clone(),
                    }));
                }
                let subscriber = subscriber_key(&dialogue.msisdn, &route.service_code);
                if self.core.cluster.is_none()
                    && let Some(previous) =
                        self.core.by_subscriber.get(&subscriber).map(|k| k.clone())
                    && previous != self.key
                {
                    match self.core.live.get(&previous).and_then(|a| a.upgrade()) {
                        Some(addr) => {
                            metrics::superseded();
                            addr.do_send(Abort);
                        }
                        // Indexed with no actor: passivated ([`super::passive`]).
                        None => {
                            if self.core.passive.abort_soon(previous) {
                                metrics::superseded();
                            }
                        }
                    }
                }
                let env = self.env(&dialogue, &route, limit);
                self.dialogue = Some(Arc::new(dialogue));
                self.route = Some(route.clone());
                Step::Run {
                    app: route.app.clone(),
                    state: None,
                    inputs,
                    env,
                    text,
                    deadline: route.deadline,
                }
            }
            Plan::Next {
                route,
                input,
                text,
                limit,
            } => {
                let Some(d) = self.dialogue.as_deref() else {
                    // unreachable: plan() runs the app of a live dialogue only.
                    return Step::Answer {
                        reply: Reply::end(&self.core.settings.apology_text),
                        stop: true,
                        outcome: "error",
                    };
                };
                let env = self.env(d, &route, limit);
                // Taken, not cloned: the hop's answer puts the new state back, and a hop that
                // fails ends the dialogue (no other message reaches the actor while the hop
                // runs).
                let state = self
                    .dialogue
                    .as_mut()
                    .map(Arc::make_mut)
                    .and_then(|d| d.app.take());
                Step::Run {
                    app: route.app.clone(),
                    state,
                    inputs: vec![input],
                    env,
                    text,
                    deadline: route.deadline,
                }
            }
        }
    }

    /// What the app knows of the hop it answers for dialogue `d` on `route`, the front's
    /// screen limit being `limit`.
    fn env(&self, d: &Dialogue, route: &Route, limit: Limit) -> HopEnv {
        HopEnv {
            session_id: self.key.clone(),
            msisdn: d.msisdn.clone(),
            service_code: d.route.clone(),
            network: d.network.clone(),
            front: d.front,
            limit: route.limit.min(limit),
            deadline: Instant::now() + route.deadline,
            hop: d.hops + 1,
            started_ms: d.started_ms,
            now: self
                .core
                .settings
                .fixed_now
                .unwrap_or_else(jiff::Timestamp::now),
            tentative: self.shared.tentative,
        }
    }

    /// Refuses a hop that names a dialogue (`what`: live or ended) of another subscriber or
    /// service: a generic END that says nothing of it, counted and logged. The dialogue itself
    /// goes on untouched.
    fn refuse(&self, hop: &Hop, owner: &Msisdn, what: &'static str) -> Step {
        metrics::session_mismatch(hop.front.as_str(), what);
        tracing::warn!(
            session = %self.log_id,
            msisdn = %hop.msisdn.masked(),
            owner = %owner.masked(),
            dialled = ?crate::logsafe::untrusted(&hop.dialled),
            dialogue = what,
            "hop refused: the session belongs to another number or service"
        );
        Step::Answer {
            reply: Reply::end(&self.core.settings.apology_text),
            stop: self.dialogue.is_none(),
            outcome: "refused",
        }
    }

    /// This key's ended dialogue's tombstone, if it is still kept at `now` (ms).
    fn tombstone(&mut self, now: u64) -> Option<Tombstone> {
        if self.core.cluster.is_some() {
            return self.shared_tombstone().filter(|t| t.expires_ms > now);
        }
        match self.core.store.tombstone::<Tombstone>(&self.key) {
            Ok(Some(t)) if t.expires_ms > now => Some(t),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "tombstone read failed");
                None
            }
        }
    }

    /// Keeps the cumulative text of the hop being answered, with the inputs `sensitive` names
    /// masked (and, on a first hop, the inputs typed ahead in the dial).
    fn keep_text(&mut self, text: HopText, sensitive: Sensitive) {
        let Some(d) = self.dialogue.as_mut().map(Arc::make_mut) else {
            return;
        };
        if sensitive.any()
            && matches!(text.inputs, InputsAt::Start { .. })
            && let Some(route) = &self.route
            && let Some(masked) = mask::mask_dial(&d.dialled, &route.service_code, sensitive)
        {
            d.dialled = masked.into();
        }
        let (kept, raw) = mask::keep(&d.seen_text, d.seen_raw.as_deref(), text, sensitive);
        d.seen_text = kept;
        d.seen_raw = match (d.seen_raw.take(), raw) {
            (Some(mut kept), Some(raw)) => {
                *kept = raw;
                Some(kept)
            }
            (_, raw) => raw.map(Box::new),
        };
    }

    /// Which inputs of a hop that failed (no [`Turn`] says) count as sensitive: all of them,
    /// when the app may take any.
    fn failed_hop_sensitive(&self) -> Sensitive {
        match &self.route {
            Some(r) if r.app.may_take_sensitive() => Sensitive::ALL,
            _ => Sensitive::NONE,
        }
    }

    /// Arms the idle timer for the time the live dialogue has left, unless it is armed: the
    /// timer is what keeps a waiting dialogue's actor alive (the registry holds it weakly).
    fn keep_timer(&mut self, ctx: &mut Context<Self>) {
        if self.idle.is_none()
            && let Some(d) = &self.dialogue
        {
            let remaining = d.idle_deadline_ms().saturating_sub(now_ms());
            self.arm_idle(ctx, Duration::from_millis(remaining));
        }
    }

    /// (Re)starts the idle timer: when it fires, the dialogue ends as timed out; or, when
    /// passivation comes first ([`super::passive`]), its actor is passivated then.
    fn arm_idle(&mut self, ctx: &mut Context<Self>, timeout: Duration) {
        if let Some(h) = self.idle.take() {
            ctx.cancel_future(h);
        }
        let passivate = self.core.passive.after().filter(|after| *after < timeout);
        self.idle = Some(
            ctx.run_later(passivate.unwrap_or(timeout), move |act, ctx| {
                act.idle = None;
                if passivate.is_some() {
                    act.passivate(ctx);
                } else {
                    act.timed_out(ctx);
                }
            }),
        );
    }

    /// The idle timeout has passed: the dialogue ends.
    fn timed_out(&mut self, ctx: &mut Context<Self>) {
        if let Some(cluster) = self.core.cluster.clone() {
            // Ended by this node only if no other node answered it since.
            ctx.wait(self.expire_in_cluster(cluster).map(|_, _, _| ()));
            return;
        }
        self.end_now(EndReason::IdleTimeout, None);
        ctx.stop();
    }

    /// The dialogue has waited `passivate_after`: its actor stops, its deadline kept in the
    /// shard's wheel, once its state is in the store as last written (on one node, once the
    /// write-behind buffer has committed it; in a cluster it was written before the answer).
    fn passivate(&mut self, ctx: &mut Context<Self>) {
        let Some(deadline) = self.dialogue.as_ref().map(|d| d.idle_deadline_ms()) else {
            ctx.stop();
            return;
        };
        let remaining = deadline.saturating_sub(now_ms());
        if remaining == 0 {
            self.timed_out(ctx);
            return;
        }
        if self.core.cluster.is_none() && !self.core.store.live_settled(&self.key) {
            // Not committed yet (commits are failing, or one is slow): wait again.
            self.arm_idle(ctx, Duration::from_millis(remaining));
            return;
        }
        // The route first: its next message may come as soon as the deadline is held.
        if let Some(route) = &self.route {
            self.core.passive.keep_route(route, deadline);
        }
        if self.core.passive.hold(deadline, self.key.clone()) {
            ctx.stop();
        } else {
            self.arm_idle(ctx, Duration::from_millis(remaining));
        }
    }
}

/// Stops the actor once the reply being prepared has been sent.
///
/// Replies go out through `AtomicResponse`, a future the context waits on, and actix drops
/// waiting futures of a stopping actor: stopping right away would lose the reply (the END the
/// subscriber must see). A spawned item runs only after the waiting future has completed.
fn stop_after_reply(ctx: &mut Context<SessionActor>) {
    ctx.spawn(fut::ready(()).map(|_, _, ctx: &mut Context<SessionActor>| ctx.stop()));
}

/// The new input carried by a cumulative `text`, given the text already seen.
pub use super::mask::derive_input;
