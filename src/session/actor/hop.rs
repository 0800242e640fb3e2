//! Handling a hop message: the span every line of the hop carries, then, on one node, the plan
//! and the answer ([`SessionActor::answer`]), or, in a cluster, the same between the shared
//! store's begin and write ([`super::shared`]).

use super::{SessionActor, Step, stop_after_reply};
use crate::app::{AppError, AppState, Turn};
use crate::clock::now_ms;
use crate::hop::{Hop, Reply};
use crate::session::counts::Count;
use crate::session::journey;
use crate::session::mask::HopText;
use crate::session::messages::HopMsg;
use crate::session::state::EndReason;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

impl Handler<HopMsg> for SessionActor {
    type Result = AtomicResponse<Self, Reply>;

    fn handle(&mut self, msg: HopMsg, ctx: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let (front, dialect) = (msg.0.front, msg.0.dialect);
        // One span per hop: every line logged while it is answered (here, in the app's call,
        // in its end) carries the front, the route and the dialogue's log id, so that one
        // dialogue's lines can be grouped (`--log-format json` puts them under `span`).
        let span = tracing::info_span!(
            "hop",
            front = front.as_str(),
            dialect,
            route = tracing::field::Empty,
            session = %self.log_id,
        );
        if let Some(cluster) = self.core.cluster.clone() {
            return AtomicResponse::new(self.hop_in_cluster(msg.0, cluster, started, span, ctx));
        }
        AtomicResponse::new(self.answer(msg.0, started, span, ctx))
    }
}

impl SessionActor {
    /// Plans `hop` and answers it (at once, or once the app has), counting it.
    pub(super) fn answer(
        &mut self,
        hop: Hop,
        started: Instant,
        span: tracing::Span,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Reply> {
        let (front, dialect) = (hop.front, hop.dialect);
        let step = {
            let _entered = span.enter();
            if self.route.is_some() {
                span.record("route", &*self.route_label());
            }
            let plan = self.plan(hop);
            self.carry_out(plan)
        };
        self.run(step, (front.as_str(), dialect), started, span, ctx)
    }

    /// Carries out `step` for a hop that came through `via` (its front and dialect): answers
    /// at once, or once the app has, counting the hop.
    pub(super) fn run(
        &mut self,
        step: Step,
        via: (&'static str, &'static str),
        started: Instant,
        span: tracing::Span,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Reply> {
        if self.route.is_some() {
            span.record("route", &*self.route_label());
        }
        let hop = move |outcome, route, took| Count::Hop {
            front: via.0,
            dialect: via.1,
            route,
            outcome,
            took,
        };
        match step {
            Step::Answer {
                reply,
                stop,
                outcome,
            } => {
                self.count(hop(outcome, self.route_label(), started.elapsed()));
                if stop {
                    stop_after_reply(ctx);
                } else {
                    // A retry answered by an actor that has just loaded its dialogue (after a
                    // restart).
                    self.keep_timer(ctx);
                }
                Box::pin(fut::ready(reply))
            }
            Step::Run {
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
                let call = tokio::time::timeout(deadline, app.hop(state, inputs, env))
                    .instrument(span.clone());
                Box::pin(call.into_actor(self).map(move |outcome, act, ctx| {
                    let _entered = span.enter();
                    let route = act.route_label();
                    let (reply, label) = act.finish(outcome, text, ctx);
                    act.count(hop(label, route, started.elapsed()));
                    reply
                }))
            }
        }
    }

    /// Records the outcome of the app call and answers.
    pub(super) fn finish(
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
            // A hop answered on a guess reached an effect: it is answered again under the
            // dialogue's lease ([`super::guess`]); nothing of it is kept.
            Ok(Err(AppError::Tentative)) => {
                self.shared.met_effects();
                return (Reply::end(&self.core.settings.apology_text), "tentative");
            }
            Ok(Err(e)) => {
                tracing::error!(session = %self.log_id, error = %e, "app failed; dialogue ends");
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
                self.stop_after(ctx);
                return (reply, "error");
            }
            Err(_) => {
                tracing::error!(session = %self.log_id, "hop deadline passed; dialogue ends");
                let reply = Reply::end(&self.core.settings.apology_text);
                let reply = self.end_with(
                    EndReason::Error,
                    Some(text),
                    reply,
                    Some("hop deadline passed".into()),
                    None,
                );
                self.stop_after(ctx);
                return (reply, "error");
            }
        };
        let Some(d) = self.dialogue.as_mut().map(Arc::make_mut) else {
            // unreachable in practice: plan() only runs the app with a dialogue in place.
            self.stop_after(ctx);
            return (Reply::end(&self.core.settings.apology_text), "error");
        };
        let moved = match &turn.state {
            AppState::Flow(f) => journey::arrive(d, f.screen_arc(), now_ms()),
            AppState::Upstream(_) => [None, None],
        };
        d.app = Some(turn.state);
        d.last_reply = turn.reply.clone();
        d.hops += 1;
        d.last_hop_ms = now_ms();
        moved.into_iter().flatten().for_each(|c| self.count(c));
        self.keep_text(text, turn.sensitive);
        if turn.reply.end {
            let reply = turn.reply;
            if let Err(e) = self.persist_end(EndReason::End, reply.clone(), None, None) {
                tracing::error!(session = %self.log_id, error = %e, "store write failed at END");
            }
            self.stop_after(ctx);
            return (reply, "end");
        }
        let Some(d) = self.dialogue.clone() else {
            self.stop_after(ctx);
            return (Reply::end(&self.core.settings.apology_text), "error");
        };
        let t = Instant::now();
        let written = self.write_live(Arc::clone(&d));
        if self.core.cluster.is_none() {
            crate::metrics::store_write("session", t.elapsed(), written.is_ok());
        }
        if let Err(e) = written {
            tracing::error!(session = %self.log_id, error = %e, "store write failed; dialogue ends");
            let reply = self.end_now(EndReason::Error, None);
            self.stop_after(ctx);
            return (reply, "error");
        }
        let timeout = Duration::from_millis(d.idle_timeout_ms);
        // Indexed once per actor (after a restart, or a passivation, the first hop this actor
        // answers does it, unless a newer dialogue of the number has taken its place since).
        if !self.indexed {
            self.indexed = true;
            let subscriber = crate::session::core::subscriber_key(&d.msisdn, &d.route);
            if d.hops <= 1 {
                self.core.by_subscriber.insert(subscriber, self.key.clone());
            } else {
                self.core
                    .by_subscriber
                    .entry(subscriber)
                    .or_insert_with(|| self.key.clone());
            }
        }
        self.arm_idle(ctx, timeout);
        (turn.reply, "con")
    }
}
