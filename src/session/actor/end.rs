//! How a dialogue ends: on END, on an error, after its idle timeout, on the network's abort or
//! the aggregator's report. The end leaves a tombstone (to answer retries of the last hop), an
//! end-of-session record and, when a receiver is configured, a notification in the outbox,
//! all written in one commit with the removal of the live state.

use super::SessionActor;
use super::shared::Answer;
use crate::clock::now_ms;
use crate::hop::Reply;
use crate::metrics;
use crate::session::core::subscriber_key;
use crate::session::mask::HopText;
use crate::session::messages::{Abort, AggregatorEnd, Expire};
use crate::session::state::{AggregatorReport, EndReason, EndRecord, Tombstone};
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl SessionActor {
    /// Ends the dialogue now with an apology (or the timeout text) and returns what to answer.
    pub(super) fn end_now(&mut self, reason: EndReason, text: Option<HopText>) -> Reply {
        let reply = match reason {
            EndReason::IdleTimeout => Reply::end(&self.core.settings.timeout_text),
            _ => Reply::end(&self.core.settings.apology_text),
        };
        self.end_with(reason, text, reply, None, None)
    }

    /// Ends the dialogue now, answering `reply` (the hop with cumulative `text`, if any: a hop
    /// the app failed to answer, so every input of it counts as sensitive if any may be).
    pub(super) fn end_with(
        &mut self,
        reason: EndReason,
        text: Option<HopText>,
        reply: Reply,
        error: Option<String>,
        aggregator: Option<AggregatorReport>,
    ) -> Reply {
        if let Some(text) = text {
            let sensitive = self.failed_hop_sensitive();
            self.keep_text(text, sensitive);
            if let Some(d) = self.dialogue.as_mut().map(Arc::make_mut) {
                d.last_reply = reply.clone();
            }
        }
        if let Err(e) = self.persist_end(reason, reply.clone(), error, aggregator) {
            tracing::error!(session = %self.log_id, error = %e, "store write failed while ending");
        }
        reply
    }

    pub(super) fn persist_end(
        &mut self,
        reason: EndReason,
        reply: Reply,
        error: Option<String>,
        aggregator: Option<AggregatorReport>,
    ) -> Result<(), crate::store::StoreError> {
        let Some(d) = self.dialogue.take() else {
            return Ok(());
        };
        self.core
            .by_subscriber
            .remove_if(&subscriber_key(&d.msisdn, &d.route), |_, k| *k == self.key);
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
        let may_have_applied = std::mem::take(&mut self.transacted) || reason == EndReason::Error;
        // In a cluster sharing its ledger, the end's write reads them from there.
        let in_cluster_ledger = self.core.store.shared_records().is_some();
        let applied = if may_have_applied && !in_cluster_ledger {
            crate::session::applied::look_up(&self.core.store, &self.key, d.started_ms)
        } else {
            Vec::new()
        };
        if !applied.is_empty() {
            record.note_applied(&applied);
        }
        // Reported to the operator's events receiver through the outbox, written with the end
        // itself.
        let notification = self
            .core
            .settings
            .events
            .as_ref()
            .map(|events| events.event(&record, d.last_reply.end));
        if let Some(exit) = crate::session::journey::last_exit(&d, reason) {
            self.count(exit);
        }
        self.count(crate::session::counts::Count::Ended {
            reason: reason.as_str(),
            duration: Duration::from_millis(record.duration_ms),
        });
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
        let result = self.write_end(
            &tomb,
            &record,
            notification,
            may_have_applied && in_cluster_ledger,
        );
        if self.core.cluster.is_none() {
            metrics::store_write("end", t.elapsed(), result.is_ok());
        }
        if result.is_ok() && !applied.is_empty() {
            crate::session::applied::forget(&self.core.store, &self.key, d.started_ms, &applied);
        }
        result
    }
}

impl Handler<AggregatorEnd> for SessionActor {
    type Result = Answer<bool>;

    fn handle(&mut self, msg: AggregatorEnd, ctx: &mut Self::Context) -> Self::Result {
        if let Some(cluster) = self.core.cluster.clone() {
            return Answer::Later(self.report_in_cluster(cluster, msg));
        }
        Answer::Now(self.report_here(msg, ctx))
    }
}

impl SessionActor {
    /// [`AggregatorEnd`] on one node.
    fn report_here(&mut self, msg: AggregatorEnd, ctx: &mut Context<Self>) -> bool {
        ctx.stop();
        if let Err(e) = self.load() {
            tracing::error!(error = %e, "store read failed during an aggregator report");
            return false;
        }
        let AggregatorEnd {
            report,
            reason,
            msisdn,
        } = msg;
        if let Some(d) = &self.dialogue {
            if self.report_refused(msisdn.as_ref(), Some(&d.msisdn), "live") {
                return false;
            }
            let last = d.last_reply.clone();
            let reply = Reply::end(last.text);
            self.end_with(reason, None, reply, None, Some(report));
            return true;
        }
        if let Some(claimed) = &msisdn {
            let owner = match self.core.store.tombstone::<Tombstone>(&self.key) {
                Ok(t) => t.and_then(|t| t.msisdn),
                Err(e) => {
                    tracing::error!(error = %e, "tombstone read failed during an aggregator report");
                    return false;
                }
            };
            if self.report_refused(Some(claimed), owner.as_ref(), "ended") {
                return false;
            }
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

impl SessionActor {
    /// Whether an aggregator's report that names `claimed` must be refused for a dialogue
    /// (`what`: live or ended) of `owner`: counted and logged as a hop naming another
    /// number's dialogue is. A report that names no number is taken.
    pub(super) fn report_refused(
        &self,
        claimed: Option<&crate::msisdn::Msisdn>,
        owner: Option<&crate::msisdn::Msisdn>,
        what: &'static str,
    ) -> bool {
        let (Some(claimed), Some(owner)) = (claimed, owner) else {
            return false;
        };
        if claimed == owner {
            return false;
        }
        metrics::session_mismatch("http", what);
        tracing::warn!(
            session = %self.log_id,
            msisdn = %claimed.masked(),
            owner = %owner.masked(),
            dialogue = what,
            "end-of-session report refused: the session belongs to another number"
        );
        true
    }
}

impl Handler<Abort> for SessionActor {
    type Result = Answer<bool>;

    fn handle(&mut self, _: Abort, ctx: &mut Self::Context) -> Self::Result {
        if let Some(cluster) = self.core.cluster.clone() {
            return Answer::Later(self.abort_in_cluster(cluster));
        }
        Answer::Now(self.abort_here(ctx))
    }
}

impl SessionActor {
    /// [`Abort`] on one node.
    fn abort_here(&mut self, ctx: &mut Context<Self>) -> bool {
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
    type Result = Answer<bool>;

    fn handle(&mut self, _: Expire, ctx: &mut Self::Context) -> Self::Result {
        if self.idle.is_some() {
            // Its own timer ends it (a sweep's or a passivation wheel's deadline that a hop
            // has moved since).
            return Answer::Now(false);
        }
        if let Some(cluster) = self.core.cluster.clone() {
            return Answer::Later(self.expire_in_cluster(cluster));
        }
        Answer::Now(self.expire_here(ctx))
    }
}

impl SessionActor {
    /// [`Expire`] on one node.
    fn expire_here(&mut self, ctx: &mut Context<Self>) -> bool {
        if let Err(e) = self.load() {
            tracing::error!(error = %e, "store read failed during sweep");
            return false;
        }
        let Some(d) = &self.dialogue else {
            ctx.stop();
            return false;
        };
        if d.idle_deadline_ms() > now_ms() {
            if self.core.passive.after().is_some() {
                // Not due: a hop moved its deadline since, and its actor, passivated again,
                // left its new deadline in a wheel ([`crate::session::passive`]).
                ctx.stop();
            } else {
                // A dialogue resumed into memory by this check keeps its own timer from here on.
                self.keep_timer(ctx);
            }
            return false;
        }
        self.end_now(EndReason::IdleTimeout, None);
        ctx.stop();
        true
    }
}
