//! Handling a hop message: the span every line of the hop carries, then, on one node, the plan
//! and the answer ([`SessionActor::answer`]), or, in a cluster, the same between the shared
//! store's begin and write ([`super::shared`]).

use super::{SessionActor, Step, stop_after_reply};
use crate::hop::{Hop, Reply};
use crate::metrics;
use crate::session::messages::HopMsg;
use actix::prelude::*;
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
            return AtomicResponse::new(self.hop_in_cluster(msg.0, cluster, started, span));
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
        let entered = span.enter();
        if self.route.is_some() {
            span.record("route", &*self.route_label());
        }
        let step = self.decide(hop);
        if self.route.is_some() {
            span.record("route", &*self.route_label());
        }
        drop(entered);
        match step {
            Step::Answer {
                reply,
                stop,
                outcome,
            } => {
                metrics::hop(
                    front.as_str(),
                    dialect,
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
                    metrics::hop(front.as_str(), dialect, route, label, started.elapsed());
                    reply
                }))
            }
        }
    }
}
