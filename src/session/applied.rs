//! The transactions a dialogue applied, in its end record.
//!
//! A flow's `transact` records the dialogue that applies it (its session key and start) with the
//! transaction id and hop, in the transaction itself ([`crate::store::ledger::APPLIED`]), so it is
//! durable before the reply that confirms it, as the idempotency key is. The dialogue's live
//! state is group-committed: a crash can lose the state of the hop that applied a transaction
//! (and of those after it), and the dialogue then resumes, or is ended by the start-up sweep,
//! from the state before that hop. Its end record (whatever ends it) lists every transaction it
//! applied, and says when one was applied on a hop its state does not include
//! ([`UnpersistedHop`]). The entries are forgotten once the end record is in sled.

use super::state::EndRecord;
use crate::store::Store;
use crate::store::ledger::AppliedTx;
use serde::{Deserialize, Serialize};

/// In an end record: the dialogue applied transactions on a hop after the last one the record
/// counts (`hops`), whose state was never persisted: a crash lost it (the subscriber may have
/// been told the transaction succeeded; the record's `hops`, `input` and `last_reply` are those
/// of the state before), or the hop failed after its transaction was applied (the record ends
/// in error with the apology).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpersistedHop {
    /// The first such hop.
    pub hop: u32,
    /// The transactions applied on it and after it, oldest first.
    pub transactions: Vec<String>,
}

impl EndRecord {
    /// Lists `applied`, the transactions the dialogue applied, and marks those applied on a hop
    /// after the record's last.
    pub fn note_applied(&mut self, applied: &[AppliedTx]) {
        self.transactions = applied.iter().map(|a| a.txn.to_string()).collect();
        let after: Vec<&AppliedTx> = applied.iter().filter(|a| a.hop > self.hops).collect();
        self.unpersisted_hop = after.iter().map(|a| a.hop).min().map(|hop| UnpersistedHop {
            hop,
            transactions: after.iter().map(|a| a.txn.to_string()).collect(),
        });
    }
}

/// The transactions the dialogue `key` that started at `started_ms` applied (none when they
/// cannot be read: logged, the end goes on without them, and their entries stay for the
/// retention purge).
pub(crate) fn look_up(store: &Store, key: &str, started_ms: u64) -> Vec<AppliedTx> {
    store.applied_by(key, started_ms).unwrap_or_else(|e| {
        tracing::error!(session = %super::log_id(key), error = %e, "applied transactions not read");
        Vec::new()
    })
}

/// Forgets them once the dialogue's end is written (see [`Store::forget_applied`]).
pub(crate) fn forget(store: &Store, key: &str, started_ms: u64, applied: &[AppliedTx]) {
    if let Err(e) = store.forget_applied(key, started_ms, applied) {
        tracing::error!(session = %super::log_id(key), error = %e, "applied transactions kept for the retention purge");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hops: u32) -> EndRecord {
        serde_json::from_value(serde_json::json!({
            "session": "http:s", "msisdn": "254700000001", "front": "http",
            "service_code": "*1#", "dialled": "*1#", "started_ms": 1, "ended_ms": 2,
            "duration_ms": 1, "hops": hops, "reason": "idle_timeout", "input": "2*70",
            "last_reply": "Confirm?",
        }))
        .unwrap()
    }

    #[test]
    fn transactions_after_the_last_hop_counted_are_marked() {
        let applied = [AppliedTx { txn: 7, hop: 2 }, AppliedTx { txn: 9, hop: 4 }];
        let mut r = record(3);
        r.note_applied(&applied);
        assert_eq!(r.transactions, ["7", "9"]);
        assert_eq!(
            r.unpersisted_hop,
            Some(UnpersistedHop {
                hop: 4,
                transactions: vec!["9".into()]
            })
        );
        let mut r = record(4);
        r.note_applied(&applied);
        assert_eq!(r.unpersisted_hop, None);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["transactions"], serde_json::json!(["7", "9"]));
        assert!(json.get("unpersisted_hop").is_none());
        // Records written before these fields read as listing none, and write none back.
        let old = record(3);
        assert!(old.transactions.is_empty() && old.unpersisted_hop.is_none());
        let json = serde_json::to_value(&old).unwrap();
        assert!(json.get("transactions").is_none());
    }
}
