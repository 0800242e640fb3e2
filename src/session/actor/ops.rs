//! The writes of a hop in cluster mode, and how one is carried out in Redis: under the
//! dialogue's lease ([`super::shared`]), or on a guess of its version ([`super::guess`]).

use crate::effect::Effect;
use crate::session::core::Cluster;
use crate::session::state::{Dialogue, EndRecord};
use crate::store::Store;
use crate::store::shared_dialogues::{Begun, Ending, Guessed, Lease, SharedDialogues};
use crate::store::shared_outbox::EndEvent;
use std::sync::Arc;
use tokio::time::Instant;

/// One write of a hop.
#[derive(Debug)]
pub(super) enum Op {
    /// The dialogue's new state.
    Live(Arc<Dialogue>),
    /// Its end.
    End {
        tombstone: Vec<u8>,
        tombstone_ttl_ms: u64,
        record: Vec<u8>,
        started_ms: u64,
        event: Option<Effect>,
        /// The dialogue may have applied transactions in the cluster's ledger: its end
        /// record lists them, read before the end is written.
        applied: bool,
    },
}

/// What allows a write.
#[derive(Debug, Clone, Copy)]
pub(super) enum Hold<'a> {
    /// The dialogue's lease, held by this node; kept after the write if `keep` (more writes
    /// of the same hop follow).
    Lease { lease: &'a Lease, keep: bool },
    /// A guess that the kept version is this one (0: nothing is kept under the key), with
    /// the lease to take if it is wrong.
    Guess { version: u64, lease_ms: u64 },
}

/// What a write did.
#[derive(Debug)]
pub(super) enum Wrote {
    /// Written: the version now kept (0: the dialogue ended).
    Done(u64),
    /// Not written: the lease was no longer this node's.
    Lost,
    /// Not written: the guess was wrong; what a begin found.
    Wrong(Begun),
}

/// Carries out `op` of the dialogue `key` as `hold` allows.
///
/// # Errors
/// Redis failed or did not answer in time (the write may or may not have happened), or the
/// state could not be encoded.
pub(super) async fn write(
    cluster: &Cluster,
    store: &Store,
    key: &str,
    op: Op,
    hold: Hold<'_>,
) -> Result<Wrote, String> {
    let dialogues = &cluster.dialogues;
    match op {
        Op::Live(d) => {
            let state = serde_json::to_vec(&*d).map_err(|e| e.to_string())?;
            let deadline = d.idle_deadline_ms();
            let t = Instant::now();
            let wrote = match hold {
                Hold::Lease { lease, .. } => dialogues
                    .commit(key, lease, &state, deadline)
                    .await
                    .map(|v| v.map_or(Wrote::Lost, Wrote::Done)),
                Hold::Guess { version, lease_ms } => dialogues
                    .keep_if(key, version, &state, deadline, lease_ms)
                    .await
                    .map(guessed),
            };
            // A wrong guess is no failure: the call answered as it should.
            let ok = matches!(wrote, Ok(Wrote::Done(_) | Wrote::Wrong(_)));
            crate::metrics::store_write("session", t.elapsed(), ok);
            wrote.map_err(|e| e.to_string())
        }
        Op::End {
            tombstone,
            tombstone_ttl_ms,
            record,
            started_ms,
            event,
            applied,
        } => {
            let ledger = store.shared_records().filter(|_| applied);
            let record = match ledger {
                Some(ledger) => with_applied(ledger, key, started_ms, record).await,
                None => record,
            };
            // The event waits in the bucket, written with the end itself.
            let event = event
                .map(|effect| {
                    serde_json::to_vec(&EndEvent {
                        session: key.to_string(),
                        effect,
                    })
                })
                .transpose()
                .map_err(|e| e.to_string())?;
            let ending = Ending {
                tombstone: &tombstone,
                tombstone_ttl_ms,
                record: &record,
                record_ttl_ms: cluster.end_record_ttl.as_millis() as u64,
                started_ms,
                event: event.as_deref(),
                keep_lease: matches!(hold, Hold::Lease { keep: true, .. }),
            };
            let t = Instant::now();
            let wrote = match hold {
                Hold::Lease { lease, .. } => dialogues
                    .end(key, lease, &ending)
                    .await
                    .map(|ended| if ended { Wrote::Done(0) } else { Wrote::Lost }),
                Hold::Guess { version, lease_ms } => dialogues
                    .end_if(key, version, &ending, lease_ms)
                    .await
                    .map(guessed),
            };
            let ok = matches!(wrote, Ok(Wrote::Done(_) | Wrote::Wrong(_)));
            crate::metrics::store_write("end", t.elapsed(), ok);
            let wrote = wrote.map_err(|e| e.to_string())?;
            if matches!(wrote, Wrote::Done(_)) {
                if let Some(ledger) = ledger
                    && let Err(e) = ledger.forget_applied(key, started_ms).await
                {
                    tracing::warn!(error = %e, "applied transactions kept until they expire");
                }
                // The end happened once (under the lease, or on a right guess), here: this node
                // moves its event into the cluster's outbox now, off the hop's path (every node
                // moves what a node that died first left).
                if let Some(event) = event {
                    tokio::spawn(move_end_event(
                        cluster.clone(),
                        key.to_string(),
                        started_ms,
                        event,
                    ));
                }
            }
            Ok(wrote)
        }
    }
}

/// A write on a guess as [`Wrote`].
fn guessed(g: Guessed) -> Wrote {
    match g {
        Guessed::Done(version) => Wrote::Done(version),
        Guessed::Wrong(begun) => Wrote::Wrong(begun),
    }
}

/// Moves the end event of `key` (started at `started_ms`) from its bucket into the cluster's
/// outbox and wakes the sender; on failure the event waits for the next node's move.
async fn move_end_event(cluster: Cluster, key: String, started_ms: u64, event: Vec<u8>) {
    let record = SharedDialogues::end_record_key(&key, started_ms);
    let bucket = crate::store::shared_dialogues::bucket(&key);
    match cluster
        .outbox
        .move_end_event(&cluster.dialogues, bucket, &record, &event)
        .await
    {
        Ok(_) => crate::outbox::notify(),
        Err(e) => tracing::warn!(error = %e, "end event left in its bucket for the next move"),
    }
}

/// The end record `record` listing the transactions the dialogue applied in the cluster's
/// ledger (as it is when they cannot be read: logged, and the end goes on).
async fn with_applied(
    ledger: &crate::store::shared_records::SharedRecords,
    key: &str,
    started_ms: u64,
    record: Vec<u8>,
) -> Vec<u8> {
    let applied = match ledger.applied_by(key, started_ms).await {
        Ok(applied) if !applied.is_empty() => applied,
        Ok(_) => return record,
        Err(e) => {
            tracing::error!(error = %e, "applied transactions not read");
            return record;
        }
    };
    let Ok(mut parsed) = serde_json::from_slice::<EndRecord>(&record) else {
        return record;
    };
    parsed.note_applied(&applied);
    serde_json::to_vec(&parsed).unwrap_or(record)
}
