//! Answering a hop on a guess, in one round trip to Redis (docs/cluster.md, "One round trip
//! for most hops").
//!
//! A node that answered a dialogue's last hop holds its state at that version; a node that
//! gets a dial holds nothing, and most likely nothing is kept for it. So the actor guesses
//! that its copy is the current one (or that nothing is kept), answers the hop on it without
//! taking the lease, and writes the outcome with a check of the guess
//! ([`crate::store::shared_dialogues::Guessed`]): one round trip instead of a begin and a
//! commit.
//!
//! Nothing may happen outside the dialogue before the guess is known to be right: the app
//! answers tentatively ([`crate::app::HopEnv::tentative`]: reads only), and what the hop
//! counts is held until its write ([`crate::session::counts`]). When the app reaches an effect
//! (a transaction, a save, a backend call), or the guess was wrong, the actor drops its copy
//! (what the tentative answer changed with it) and answers the hop again the usual way, on the
//! state the wrong guess's script handed back, or a begin reads (so still two round trips). A
//! node whose guesses are mostly wrong stops guessing for a while
//! ([`crate::session::core::Guesses`]).

use super::ops::{self, Hold, Wrote};
use super::{SessionActor, stop_after_reply};
use crate::hop::{Hop, HopInput, Reply};
use crate::session::core::Cluster;
use crate::session::plan::Plan;
use crate::store::shared_dialogues::Begun;
use actix::prelude::*;
use tokio::time::Instant;

/// What a node guesses.
#[derive(Debug, Clone, Copy)]
pub(super) enum Guess {
    /// That this version is the one kept (0: nothing is kept under the key).
    Version(u64),
    /// Nothing yet: the node holds no copy; it reads the state kept, then guesses its version.
    Read,
}

impl SessionActor {
    /// What to guess for `hop`. `None`: the hop is answered under the lease.
    pub(super) fn guess(&self, hop: &Hop, cluster: &Cluster) -> Option<Guess> {
        // While Redis is down, a begin fails at once: the hop is answered busy.
        if !cluster.dialogues.is_up() {
            return None;
        }
        let guess = match (&self.dialogue, self.shared.version()) {
            (Some(_), Some(v)) => Guess::Version(v),
            (None, None) if is_dial(&hop.input) => Guess::Version(0),
            (None, None) => Guess::Read,
            _ => return None,
        };
        cluster.guesses.worth_trying().then_some(guess)
    }

    /// Answers `hop` on a guess: the version held, or, for a node that holds no copy, the
    /// state kept read first without the lease (`SharedDialogues::peek`: one read instead of
    /// a begin's lease write, and a write on the guess instead of a commit that lets the lease
    /// go). Nothing kept: the hop is answered under the lease.
    pub(super) fn hop_on_guess(
        &mut self,
        hop: Hop,
        guess: Guess,
        cluster: Cluster,
        started: Instant,
        span: tracing::Span,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Reply> {
        if let Guess::Version(version) = guess {
            return self.answer_on_guess(hop, version, cluster, started, span, ctx);
        }
        let (dialogues, key) = (cluster.dialogues.clone(), self.key.clone());
        let read = async move { dialogues.peek(&key).await };
        Box::pin(
            read.into_actor(self)
                .then(move |kept, act, ctx| match kept {
                    Ok(Some((version, state))) if version > 0 => {
                        act.adopt(&state);
                        if act.dialogue.is_none() {
                            return act.hop_leased(hop, cluster, started, span);
                        }
                        act.shared.set_version(Some(version));
                        act.answer_on_guess(hop, version, cluster, started, span, ctx)
                    }
                    // Nothing live (ended, or never), or Redis failed: the usual begin says which.
                    _ => act.hop_leased(hop, cluster, started, span),
                }),
        )
    }

    /// Answers `hop` on the guess that `version` is the one kept, then writes on that guess.
    pub(super) fn answer_on_guess(
        &mut self,
        hop: Hop,
        version: u64,
        cluster: Cluster,
        started: Instant,
        span: tracing::Span,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Reply> {
        let plan = {
            let _entered = span.enter();
            self.plan(hop.clone())
        };
        // Only a hop that runs the app on the dialogue held (or on a new one) is answered on
        // a guess: the others are answered from the state, which the lease's begin reads.
        let guessable = match &plan {
            Some(Plan::Next { route, .. }) => version > 0 && route.app.answers_tentatively(),
            Some(Plan::New {
                route, abort_live, ..
            }) => version == 0 && !abort_live && route.app.answers_tentatively(),
            _ => false,
        };
        if !guessable {
            return self.hop_leased(hop, cluster, started, span);
        }
        self.shared.tentative = true;
        let step = self.carry_out(plan);
        let via = (hop.front.as_str(), hop.dialect);
        let answered = self.run(step, via, started, span.clone(), ctx);
        Box::pin(answered.then(move |reply, act, ctx| {
            act.write_on_guess(reply, hop, version, cluster, (started, span), ctx)
        }))
    }

    /// Stops the actor once the reply is out; for a hop answered on a guess, only once the
    /// guess is written (answered again, the hop may continue the dialogue).
    pub(super) fn stop_after(&mut self, ctx: &mut Context<Self>) {
        if self.shared.tentative {
            self.shared.stop_held = true;
        } else {
            stop_after_reply(ctx);
        }
    }

    /// Writes the hop answered on a guess, or answers it again the usual way.
    fn write_on_guess(
        &mut self,
        reply: Reply,
        hop: Hop,
        version: u64,
        cluster: Cluster,
        (started, span): (Instant, tracing::Span),
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Reply> {
        self.shared.tentative = false;
        let stop = std::mem::take(&mut self.shared.stop_held);
        let effects = std::mem::take(&mut self.shared.effects);
        let mut ops = std::mem::take(&mut self.shared.ops);
        let op = ops.pop().filter(|_| ops.is_empty() && !effects);
        let Some(op) = op else {
            cluster.guesses.settled("effects");
            self.drop_guess(ctx);
            return self.hop_leased(hop, cluster, started, span);
        };
        let hold = Hold::Guess {
            version,
            lease_ms: cluster.lease.as_millis() as u64,
        };
        let (key, store, guesses) = (
            self.key.clone(),
            self.core.store.clone(),
            cluster.guesses.clone(),
        );
        let write = {
            let cluster = cluster.clone();
            async move { ops::write(&cluster, &store, &key, op, hold).await }
        };
        Box::pin(write.into_actor(self).then(move |wrote, act, ctx| {
            match wrote {
                Ok(Wrote::Done(v)) => {
                    guesses.settled("right");
                    act.shared
                        .set_version(Some(v).filter(|v| *v > 0 && act.dialogue.is_some()));
                    act.counts.settle(true, act.core.cluster.as_ref());
                    if stop {
                        stop_after_reply(ctx);
                    }
                    Box::pin(fut::ready(reply)) as ResponseActFuture<Self, Reply>
                }
                Ok(Wrote::Wrong(begun)) => {
                    guesses.settled("wrong");
                    act.drop_guess(ctx);
                    match begun {
                        // Another node is answering a hop of it: wait for its lease to go.
                        Begun::Busy => act.hop_leased(hop, cluster, started, span),
                        begun => act.answer_begun(Ok(begun), hop, started, span, ctx),
                    }
                }
                // Nothing was done but this write, which may or may not have happened: the
                // hop is answered busy, as when a begin fails. (A write on a guess is never
                // `Lost`: a lease found makes it `Wrong`.)
                Ok(Wrote::Lost) | Err(_) => {
                    act.drop_guess(ctx);
                    let why = wrote.err().unwrap_or_else(|| "lost".to_string());
                    act.answer_begun(Err(why), hop, started, span, ctx)
                }
            }
        }))
    }

    /// Drops what a hop answered on a guess left: the node's copy, which the tentative answer
    /// changed (the hop answered again reads the state), what the hop counted, and the idle
    /// timer it armed (the hop answered again arms its own).
    fn drop_guess(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.idle.take() {
            ctx.cancel_future(h);
        }
        self.forget_copy();
        self.transacted = false;
        self.counts.forget();
    }
}

/// Whether `input` is a dial (the first message of a dialogue).
fn is_dial(input: &HopInput) -> bool {
    match input {
        HopInput::Single(None) => true,
        HopInput::Cumulative(text) => text.is_empty(),
        HopInput::Single(Some(_)) => false,
    }
}
