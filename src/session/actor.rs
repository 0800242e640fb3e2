//! The actor that owns one dialogue.
//!
//! It loads the dialogue's state lazily from sled on its first message (so a restart resumes
//! dialogues on their next hop, never all at start), derives the new input from the cumulative
//! text, answers retries from the stored reply, runs the app under the hop's deadline, persists
//! the state after every hop, and ends the dialogue on END, on an error, or after its idle
//! timeout, leaving a tombstone and an end-of-session record.
//!
//! Hops are handled with [`AtomicResponse`]: while one hop is being answered the actor takes no
//! other message, so a retry that arrives meanwhile waits and is then answered from the stored
//! reply. One answer, computed once.

use super::mask::{self, HopText, InputsAt, Relation};
use super::registry::Core;
use super::state::{Dialogue, EndReason, EndRecord, Tombstone};
use super::{Hop, HopInput, SessionKey};
use crate::app::{App, AppError, AppState, HopEnv, Route, Sensitive, Turn};
use crate::clock::now_ms;
use crate::hop::Reply;
use crate::metrics;
use crate::msisdn::Msisdn;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Answer this hop.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Reply")]
pub struct HopMsg(pub Hop);

/// End the dialogue if it is idle past its timeout; answers whether it ended.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct Expire;

/// End the dialogue now: the network or the aggregator says it is over. Answers whether a live
/// dialogue ended.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct Abort;

/// One dialogue.
pub struct SessionActor {
    key: SessionKey,
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

/// What to do with a hop once the state is known. Lives only while a hop is planned, so the
/// size difference between the variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
enum Plan {
    /// Answer at once (retry, tombstone, unknown code); stop the actor if `stop`.
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
            key,
            core,
            loaded: false,
            dialogue: None,
            route: None,
            idle: None,
            indexed: false,
            transacted: false,
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
                Some(route) => self.route = Some(route.clone()),
                None => tracing::warn!(route = %d.route, "resumed dialogue's route is gone"),
            }
            self.dialogue = Some(Arc::new(d));
        }
        Ok(())
    }

    fn plan(&mut self, hop: Hop) -> Plan {
        if let Err(e) = self.load() {
            tracing::error!(error = %e, "store read failed");
            return Plan::Answer {
                reply: Reply::end(&self.core.settings.apology_text),
                stop: true,
                outcome: "error",
            };
        }
        // A dialogue that idled out while no actor held it (a restart) ends now, not later.
        if self
            .dialogue
            .as_ref()
            .is_some_and(|d| d.idle_deadline_ms() <= now_ms())
        {
            return Plan::Answer {
                reply: self.end_now(EndReason::IdleTimeout, None),
                stop: true,
                outcome: "expired",
            };
        }
        let start = matches!(hop.input, HopInput::Single(None));
        // A hop of another number, or for another service, never sees this dialogue: with
        // AT the session key is the aggregator's `sessionId` alone, which anyone who learns it
        // can send. (An SMPP start is the network's own new dialogue for the same number.)
        if !start
            && let Some(d) = &self.dialogue
            && !self.owned_by(&hop, &d.msisdn, Some(&d.dialled), &d.route)
        {
            let owner = d.msisdn.clone();
            return self.refuse(&hop, &owner, "live");
        }
        if start && self.dialogue.is_some() {
            // The network started a new dialogue under a key that is still live: the old one
            // was abandoned without an abort reaching us.
            self.end_now(EndReason::Abort, None);
        }
        let Some(d) = &self.dialogue else {
            // What the key's ended dialogue left, if anything: only its own subscriber may be
            // answered from it.
            let tombstone = if start {
                None
            } else {
                match self.tombstone() {
                    Some(t) => match &t.msisdn {
                        Some(owner)
                            if !self.owned_by(
                                &hop,
                                owner,
                                None,
                                t.route.as_deref().unwrap_or(""),
                            ) =>
                        {
                            let owner = owner.clone();
                            return self.refuse(&hop, &owner, "ended");
                        }
                        _ => Some(t.reply),
                    },
                    None => None,
                }
            };
            let (text, retry_possible) = match hop.input {
                HopInput::Cumulative(text) => (text, true),
                // A start is always a new dialogue, never a retry of an ended one.
                HopInput::Single(None) => (String::new(), false),
                HopInput::Single(Some(_)) => {
                    // An input for a dialogue we do not know (ended, or lost): answer from the
                    // tombstone if there is one, else say it timed out.
                    let reply =
                        tombstone.unwrap_or_else(|| Reply::end(&self.core.settings.timeout_text));
                    return Plan::Answer {
                        reply,
                        stop: true,
                        outcome: "expired",
                    };
                }
            };
            if retry_possible && let Some(reply) = tombstone {
                return Plan::Answer {
                    reply,
                    stop: true,
                    outcome: "retry",
                };
            }
            return self.plan_new(
                hop.msisdn,
                hop.dialled,
                hop.network.map(Arc::from),
                hop.front,
                hop.limit,
                (text, retry_possible),
            );
        };
        let (text, input) = match hop.input {
            HopInput::Cumulative(text) => {
                let at = match mask::relate(&d.seen_text, d.seen_raw.as_deref(), &text) {
                    Relation::Retry => {
                        return Plan::Answer {
                            reply: d.last_reply.clone(),
                            stop: false,
                            outcome: "retry",
                        };
                    }
                    Relation::Next(at) => at,
                    Relation::Other(at) => {
                        tracing::warn!(
                            "cumulative text does not extend the dialogue's; using its last segment"
                        );
                        at
                    }
                };
                let input = text[at..].to_string();
                let text = HopText {
                    text,
                    inputs: InputsAt::Next(at),
                    cumulative: true,
                };
                (text, input)
            }
            HopInput::Single(input) => {
                let input = input.unwrap_or_default();
                // Built from the text kept, in which sensitive inputs are already masked.
                let text = if d.seen_text.is_empty() {
                    input.clone()
                } else {
                    format!("{}*{input}", d.seen_text)
                };
                let text = HopText {
                    inputs: InputsAt::Next(text.len() - input.len()),
                    text,
                    cumulative: false,
                };
                (text, input)
            }
        };
        let Some(route) = self.route.clone() else {
            tracing::error!(session = %super::log_id(&self.key), route = %d.route, "the dialogue's route is gone; it ends");
            return Plan::Answer {
                reply: self.end_now(EndReason::Error, None),
                stop: true,
                outcome: "error",
            };
        };
        let env = HopEnv {
            session_id: self.key.clone(),
            msisdn: d.msisdn.clone(),
            service_code: d.route.clone(),
            network: d.network.clone(),
            front: d.front,
            limit: route.limit.min(hop.limit),
            deadline: Instant::now() + route.deadline,
            hop: d.hops + 1,
            started_ms: d.started_ms,
            now: self
                .core
                .settings
                .fixed_now
                .unwrap_or_else(jiff::Timestamp::now),
        };
        // Taken, not cloned: the hop's answer puts the new state back, and a hop that fails
        // ends the dialogue (no other message reaches the actor while the hop runs).
        let state = self
            .dialogue
            .as_mut()
            .map(Arc::make_mut)
            .and_then(|d| d.app.take());
        Plan::Run {
            app: route.app.clone(),
            state,
            inputs: vec![input],
            env,
            text,
            deadline: route.deadline,
        }
    }

    fn plan_new(
        &mut self,
        msisdn: crate::msisdn::Msisdn,
        dialled: String,
        network: Option<Arc<str>>,
        front: crate::hop::Front,
        front_limit: crate::text::Limit,
        (text, cumulative): (String, bool),
    ) -> Plan {
        let routes = self.core.routes.load();
        let Some((route, mut inputs)) = routes.resolve(&dialled) else {
            tracing::warn!(
                dialled = ?crate::logsafe::untrusted(&dialled),
                msisdn = %msisdn.masked(),
                "unknown service code"
            );
            return Plan::Answer {
                reply: Reply::end(&self.core.settings.unknown_service_text),
                stop: true,
                outcome: "unknown_service",
            };
        };
        let text = HopText {
            inputs: InputsAt::Start {
                dialled: inputs.len(),
            },
            text,
            cumulative,
        };
        // AT sends an empty text on the first hop; anything else is taken as inputs typed ahead.
        if !text.text.is_empty() {
            inputs.extend(text.text.split('*').map(str::to_string));
        }
        // The same number dialling the same code again while its previous dialogue is live:
        // the network has abandoned that one without telling us. It ends now, as an abort
        // (a flow that opted in may then offer to resume it).
        let subscriber = super::registry::subscriber_key(&msisdn, &route.service_code);
        if let Some(previous) = self.core.by_subscriber.get(&subscriber).map(|k| k.clone())
            && previous != self.key
            && let Some(addr) = self.core.live.get(&previous).and_then(|a| a.upgrade())
        {
            metrics::superseded();
            addr.do_send(Abort);
        }
        let now = now_ms();
        let app = route.app.clone();
        self.dialogue = Some(Arc::new(Dialogue {
            msisdn: msisdn.clone(),
            front,
            // Shared with the route when dialled as configured, as it mostly is.
            dialled: if dialled == *route.service_code {
                route.service_code.clone()
            } else {
                dialled.into()
            },
            route: route.service_code.clone(),
            network: network.clone(),
            started_ms: now,
            last_hop_ms: now,
            idle_timeout_ms: route.idle_timeout.as_millis() as u64,
            hops: 0,
            seen_text: String::new(),
            seen_raw: None,
            last_reply: Reply::con(""),
            app_version: app.version(),
            app: None,
        }));
        self.route = Some(route.clone());
        let env = HopEnv {
            session_id: self.key.clone(),
            msisdn,
            service_code: route.service_code.clone(),
            network,
            front,
            limit: route.limit.min(front_limit),
            deadline: Instant::now() + route.deadline,
            hop: 1,
            started_ms: now,
            now: self
                .core
                .settings
                .fixed_now
                .unwrap_or_else(jiff::Timestamp::now),
        };
        Plan::Run {
            app,
            state: None,
            inputs,
            env,
            text,
            deadline: route.deadline,
        }
    }

    /// Whether `hop` comes from the dialogue's subscriber (`msisdn`) for its service: the code
    /// it dialled (`dialled`, when known) or any code that reaches its route. A hop that names
    /// no code (an SMPP continuation) is checked on its number alone.
    fn owned_by(&self, hop: &Hop, msisdn: &Msisdn, dialled: Option<&str>, route: &str) -> bool {
        if hop.msisdn != *msisdn {
            return false;
        }
        if hop.dialled.is_empty() || dialled.is_some_and(|d| d == hop.dialled) {
            return true;
        }
        self.core
            .routes
            .load()
            .resolve(&hop.dialled)
            .is_some_and(|(r, _)| *r.service_code == *route)
    }

    /// Refuses a hop that names a dialogue (`what`: live or ended) of another subscriber or
    /// service: a generic END that says nothing of it, counted and logged. The dialogue itself
    /// goes on untouched.
    fn refuse(&self, hop: &Hop, owner: &Msisdn, what: &'static str) -> Plan {
        metrics::session_mismatch(hop.front.as_str(), what);
        tracing::warn!(
            session = %super::log_id(&self.key),
            msisdn = %hop.msisdn.masked(),
            owner = %owner.masked(),
            dialled = ?crate::logsafe::untrusted(&hop.dialled),
            dialogue = what,
            "hop refused: the session belongs to another number or service"
        );
        Plan::Answer {
            reply: Reply::end(&self.core.settings.apology_text),
            stop: self.dialogue.is_none(),
            outcome: "refused",
        }
    }

    /// This key's ended dialogue's tombstone, if it is still kept.
    fn tombstone(&self) -> Option<Tombstone> {
        match self.core.store.tombstone::<Tombstone>(&self.key) {
            Ok(Some(t)) if t.expires_ms > now_ms() => Some(t),
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

    /// Records the outcome of the app call and answers.
    fn finish(
        &mut self,
        outcome: Result<Result<Turn, AppError>, tokio::time::error::Elapsed>,
        text: HopText,
        ctx: &mut Context<Self>,
    ) -> (Reply, &'static str) {
        let turn = match outcome {
            Ok(Ok(turn)) => {
                self.transacted |= turn.transacted;
                turn
            }
            Ok(Err(e)) => {
                tracing::error!(session = %super::log_id(&self.key), error = %e, "app failed; dialogue ends");
                let reply = e
                    .apology()
                    .map(Reply::end)
                    .unwrap_or_else(|| Reply::end(&self.core.settings.apology_text));
                let reply = self.end_with(
                    EndReason::Error,
                    Some(text),
                    reply,
                    Some(e.to_string()),
                    None,
                );
                stop_after_reply(ctx);
                return (reply, "error");
            }
            Err(_) => {
                tracing::error!(session = %super::log_id(&self.key), "hop deadline passed; dialogue ends");
                let reply = Reply::end(&self.core.settings.apology_text);
                let reply = self.end_with(
                    EndReason::Error,
                    Some(text),
                    reply,
                    Some("hop deadline passed".into()),
                    None,
                );
                stop_after_reply(ctx);
                return (reply, "error");
            }
        };
        let Some(d) = self.dialogue.as_mut().map(Arc::make_mut) else {
            // unreachable in practice: plan() only runs the app with a dialogue in place.
            stop_after_reply(ctx);
            return (Reply::end(&self.core.settings.apology_text), "error");
        };
        d.app = Some(turn.state);
        d.last_reply = turn.reply.clone();
        d.hops += 1;
        d.last_hop_ms = now_ms();
        self.keep_text(text, turn.sensitive);
        if turn.reply.end {
            let reply = turn.reply;
            if let Err(e) = self.persist_end(EndReason::End, reply.clone(), None, None) {
                tracing::error!(session = %super::log_id(&self.key), error = %e, "store write failed at END");
            }
            stop_after_reply(ctx);
            return (reply, "end");
        }
        let Some(d) = self.dialogue.as_ref() else {
            stop_after_reply(ctx);
            return (Reply::end(&self.core.settings.apology_text), "error");
        };
        let t = Instant::now();
        let written = self.core.store.put_live(&self.key, Arc::clone(d));
        metrics::store_write("session", t.elapsed(), written.is_ok());
        if let Err(e) = written {
            tracing::error!(session = %super::log_id(&self.key), error = %e, "store write failed; dialogue ends");
            let reply = self.end_now(EndReason::Error, None);
            stop_after_reply(ctx);
            return (reply, "error");
        }
        let timeout = Duration::from_millis(d.idle_timeout_ms);
        // Indexed once per actor (after a restart the first hop this actor answers does it).
        if !self.indexed {
            self.indexed = true;
            self.core.by_subscriber.insert(
                super::registry::subscriber_key(&d.msisdn, &d.route),
                self.key.clone(),
            );
        }
        self.arm_idle(ctx, timeout);
        (turn.reply, "con")
    }

    /// Ends the dialogue now with an apology (or the timeout text) and returns what to answer.
    fn end_now(&mut self, reason: EndReason, text: Option<HopText>) -> Reply {
        let reply = match reason {
            EndReason::IdleTimeout => Reply::end(&self.core.settings.timeout_text),
            _ => Reply::end(&self.core.settings.apology_text),
        };
        self.end_with(reason, text, reply, None, None)
    }

    /// Ends the dialogue now, answering `reply` (the hop with cumulative `text`, if any: a hop
    /// the app failed to answer, so every input of it counts as sensitive if any may be).
    fn end_with(
        &mut self,
        reason: EndReason,
        text: Option<HopText>,
        reply: Reply,
        error: Option<String>,
        aggregator: Option<crate::session::state::AggregatorReport>,
    ) -> Reply {
        if let Some(text) = text {
            let sensitive = self.failed_hop_sensitive();
            self.keep_text(text, sensitive);
            if let Some(d) = self.dialogue.as_mut().map(Arc::make_mut) {
                d.last_reply = reply.clone();
            }
        }
        if let Err(e) = self.persist_end(reason, reply.clone(), error, aggregator) {
            tracing::error!(session = %super::log_id(&self.key), error = %e, "store write failed while ending");
        }
        reply
    }

    fn persist_end(
        &mut self,
        reason: EndReason,
        reply: Reply,
        error: Option<String>,
        aggregator: Option<crate::session::state::AggregatorReport>,
    ) -> Result<(), crate::store::StoreError> {
        let Some(d) = self.dialogue.take() else {
            return Ok(());
        };
        self.core.by_subscriber.remove_if(
            &super::registry::subscriber_key(&d.msisdn, &d.route),
            |_, k| *k == self.key,
        );
        let now = now_ms();
        let tomb = Tombstone {
            seen_text: d.seen_text.clone(),
            reply,
            expires_ms: now + self.core.settings.tombstone_ttl.as_millis() as u64,
            started_ms: d.started_ms,
            msisdn: Some(d.msisdn.clone()),
            route: Some(d.route.clone()),
        };
        let mut record = EndRecord::of(&self.key, &d, reason);
        record.error = error;
        record.aggregator = aggregator;
        // A hop that failed may have applied one before failing. (Taken: a new dialogue under
        // the same key, a reused SMPP session, starts with none.)
        let applied = if std::mem::take(&mut self.transacted) || reason == EndReason::Error {
            super::applied::look_up(&self.core.store, &self.key, d.started_ms)
        } else {
            Vec::new()
        };
        if !applied.is_empty() {
            record.note_applied(&applied);
        }
        // Reported to the operator's events receiver through the outbox, written with the end
        // itself.
        let notification =
            self.core
                .settings
                .events_url
                .as_ref()
                .map(|url| crate::outbox::Effect::Event {
                    url: url.clone(),
                    fields: record.at_event_fields(d.last_reply.end),
                });
        metrics::dialogue_ended(reason.as_str(), Duration::from_millis(record.duration_ms));
        // DEBUG, not INFO: at national traffic one line per dialogue is most of the log and a
        // few percent of the CPU; the end records (`/admin/export/ended`) and the metrics hold it.
        tracing::debug!(
            msisdn = %d.msisdn.masked(),
            service_code = %d.route,
            hops = d.hops,
            reason = reason.as_str(),
            "dialogue ended"
        );
        let t = Instant::now();
        let result =
            self.core
                .store
                .end(&self.key, (&tomb, tomb.expires_ms), &record, notification);
        metrics::store_write("end", t.elapsed(), result.is_ok());
        if result.is_ok() && !applied.is_empty() {
            super::applied::forget(&self.core.store, &self.key, d.started_ms, &applied);
        }
        result
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

    /// (Re)starts the idle timer: when it fires, the dialogue ends as timed out.
    fn arm_idle(&mut self, ctx: &mut Context<Self>, timeout: Duration) {
        if let Some(h) = self.idle.take() {
            ctx.cancel_future(h);
        }
        self.idle = Some(ctx.run_later(timeout, |act, ctx| {
            act.idle = None;
            act.end_now(EndReason::IdleTimeout, None);
            ctx.stop();
        }));
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

impl Handler<HopMsg> for SessionActor {
    type Result = AtomicResponse<Self, Reply>;

    fn handle(&mut self, msg: HopMsg, ctx: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let front = msg.0.front;
        match self.plan(msg.0) {
            Plan::Answer {
                reply,
                stop,
                outcome,
            } => {
                metrics::hop(
                    front.as_str(),
                    self.route_label(),
                    outcome,
                    started.elapsed(),
                );
                if stop {
                    stop_after_reply(ctx);
                } else {
                    // A retry answered by an actor that has just loaded its dialogue (after a
                    // restart).
                    self.keep_timer(ctx);
                }
                AtomicResponse::new(Box::pin(fut::ready(reply)))
            }
            Plan::Run {
                app,
                state,
                inputs,
                env,
                text,
                deadline,
            } => {
                // The idle timer must not fire while a hop is being answered.
                if let Some(h) = self.idle.take() {
                    ctx.cancel_future(h);
                }
                let call = tokio::time::timeout(deadline, app.hop(state, inputs, env));
                AtomicResponse::new(Box::pin(call.into_actor(self).map(
                    move |outcome, act, ctx| {
                        let route = act.route_label();
                        let (reply, label) = act.finish(outcome, text, ctx);
                        metrics::hop(front.as_str(), route, label, started.elapsed());
                        reply
                    },
                )))
            }
        }
    }
}

/// The aggregator reports that the dialogue ended (AT's end-of-session notification): end it
/// now if it is still live, and keep the report with its end-of-session record either way.
/// Answers whether a dialogue (live or ended) was found.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct AggregatorEnd(pub crate::session::state::AggregatorReport);

impl Handler<AggregatorEnd> for SessionActor {
    type Result = bool;

    fn handle(&mut self, msg: AggregatorEnd, ctx: &mut Self::Context) -> bool {
        ctx.stop();
        if let Err(e) = self.load() {
            tracing::error!(error = %e, "store read failed during an aggregator report");
            return false;
        }
        let report = msg.0;
        if let Some(d) = &self.dialogue {
            let reason = if report.status == "Success" {
                EndReason::End
            } else {
                EndReason::Abort
            };
            let last = d.last_reply.clone();
            let reply = Reply::end(last.text);
            self.end_with(reason, None, reply, None, Some(report));
            return true;
        }
        match self
            .core
            .store
            .update_end_record::<EndRecord>(&self.key, |r| {
                r.aggregator = Some(report.clone());
            }) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "end record update failed");
                false
            }
        }
    }
}

impl Handler<Abort> for SessionActor {
    type Result = bool;

    fn handle(&mut self, _: Abort, ctx: &mut Self::Context) -> bool {
        if let Err(e) = self.load() {
            tracing::error!(error = %e, "store read failed during abort");
            return false;
        }
        let live = self.dialogue.is_some();
        if live {
            self.end_now(EndReason::Abort, None);
        }
        ctx.stop();
        live
    }
}

impl Handler<Expire> for SessionActor {
    type Result = bool;

    fn handle(&mut self, _: Expire, ctx: &mut Self::Context) -> bool {
        if let Err(e) = self.load() {
            tracing::error!(error = %e, "store read failed during sweep");
            return false;
        }
        let Some(d) = &self.dialogue else {
            ctx.stop();
            return false;
        };
        if d.idle_deadline_ms() > now_ms() {
            // A dialogue resumed into memory by this check keeps its own timer from here on.
            self.keep_timer(ctx);
            return false;
        }
        self.end_now(EndReason::IdleTimeout, None);
        ctx.stop();
        true
    }
}
