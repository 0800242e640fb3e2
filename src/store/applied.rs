//! The transactions each dialogue applied, kept from the transaction itself until the
//! dialogue's end record is written (the `applied` tree, see [`APPLIED`]): so the end record
//! lists them even when a crash lost the dialogue's state after the hop that applied one.

use super::format::ledger_keys;
use super::ledger::{APPLIED, AppliedTx};
use super::{Store, StoreError};

impl Store {
    /// The transactions the dialogue `session` that started at `started_ms` applied and has not
    /// been [forgotten](Store::forget_applied) for, oldest first.
    ///
    /// # Errors
    /// sled errors, or an entry that is not in the format written.
    pub fn applied_by(&self, session: &str, started_ms: u64) -> Result<Vec<AppliedTx>, StoreError> {
        let tree = self.tree(APPLIED)?;
        let prefix = ledger_keys::applied_prefix(session, started_ms);
        let _gate = self.shared();
        let mut out = Vec::new();
        for item in tree.scan_prefix(&prefix) {
            let (k, v) = item?;
            match ledger_keys::applied_entry(&prefix, &k, &v) {
                Some((txn, hop)) => out.push(AppliedTx { txn, hop }),
                None => return Err(StoreError::Corrupt(format!("applied entry {k:02x?}"))),
            }
        }
        Ok(out)
    }

    /// Forgets `applied`, what [`Store::applied_by`] gave for that dialogue, once its end is
    /// written: if the end still waits for a commit (a dialogue that ran no transaction in this
    /// process: one resumed after a restart), commits it first, so that the end record is in
    /// sled before these entries go (sled recovers a prefix of its log: a crash never keeps the
    /// removal without the record). The end of one that did was committed at once.
    ///
    /// # Errors
    /// sled errors; the entries are then left for the retention purge.
    pub fn forget_applied(
        &self,
        session: &str,
        started_ms: u64,
        applied: &[AppliedTx],
    ) -> Result<(), StoreError> {
        if applied.is_empty() {
            return Ok(());
        }
        if self.dialogues.end_waits(session) {
            self.commit()?;
        }
        let tree = self.tree(APPLIED)?;
        for a in applied {
            tree.remove(ledger_keys::applied_key(session, started_ms, a.txn))?;
        }
        Ok(())
    }

    /// Removes the `applied` entries of dialogues that started before `cutoff_ms` (whose end
    /// record was never written: a dialogue a crash lost whole), a slice at a time; returns how
    /// many went.
    ///
    /// # Errors
    /// sled errors.
    pub fn purge_applied(&self, cutoff_ms: u64) -> Result<usize, StoreError> {
        let tree = self.tree(APPLIED)?;
        // Keys begin with the dialogue's start.
        let end = cutoff_ms.to_be_bytes();
        let mut gone = 0;
        loop {
            let keys: Vec<sled::IVec> = {
                let _gate = self.shared();
                tree.range(..&end[..])
                    .keys()
                    .take(super::gate::SCAN_SLICE)
                    .collect::<Result<_, _>>()?
            };
            if keys.is_empty() {
                return Ok(gone);
            }
            for k in keys {
                tree.remove(k)?;
                gone += 1;
            }
        }
    }

    /// How many transactions wait for their dialogue's end record (see [`APPLIED`]).
    ///
    /// # Errors
    /// sled errors.
    pub fn applied_count(&self) -> Result<usize, StoreError> {
        let tree = self.tree(APPLIED)?;
        let _gate = self.shared();
        Ok(tree.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ledger::TxDialogue;
    use crate::txn::{Address, TxOp};
    use serde_json::json;

    fn deposit(to: &str) -> Vec<TxOp> {
        vec![TxOp::Transfer {
            from: None,
            to: Some(Address {
                collection: "wallets".into(),
                id: to.into(),
            }),
            amount_cents: 100,
            kind: "deposit".into(),
        }]
    }

    fn dialogue(started_ms: u64, hop: u32) -> Option<TxDialogue<'static>> {
        Some(TxDialogue {
            session: "smpp:k",
            started_ms,
            hop,
        })
    }

    #[test]
    fn the_transactions_a_dialogue_applied_are_kept_until_its_end_then_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8, 500).unwrap();
        store
            .records()
            .apply(&[crate::store::records::RecordWrite {
                collection: "wallets".into(),
                id: "a".into(),
                value: json!({"balance_cents": 0}),
                merge: false,
            }])
            .unwrap();
        let first = store
            .transact("k#3#1", &deposit("a"), dialogue(10, 3))
            .unwrap();
        // The same hop retried: answered from its key, recorded once.
        let again = store
            .transact("k#3#1", &deposit("a"), dialogue(10, 3))
            .unwrap();
        assert!(again.replayed);
        // A condition that fails applies nothing, and is not recorded.
        let failed = store
            .transact("k#4#1", &deposit("nobody"), dialogue(10, 4))
            .unwrap();
        assert_eq!(failed.failed_op, Some(0));
        // Another dialogue under the same key (a reused SMPP session), and one with no dialogue.
        let later = store
            .transact("k#1#1", &deposit("a"), dialogue(20, 1))
            .unwrap();
        store.transact("x#1#1", &deposit("a"), None).unwrap();
        let mine = [AppliedTx {
            txn: first.txn,
            hop: 3,
        }];
        assert_eq!(store.applied_by("smpp:k", 10).unwrap(), mine);
        assert_eq!(
            store.applied_by("smpp:k", 20).unwrap(),
            [AppliedTx {
                txn: later.txn,
                hop: 1
            }]
        );
        assert!(store.applied_by("smpp:", 10).unwrap().is_empty());
        assert!(store.applied_by("smpp:kk", 10).unwrap().is_empty());

        // After a restart (the dialogue resumes from sled, its end waits for a commit), they
        // are forgotten once the end is written: it is committed first.
        drop(store);
        let store = Store::open(dir.path(), 8, 500).unwrap();
        assert_eq!(store.applied_by("smpp:k", 10).unwrap(), mine);
        store
            .end("smpp:k", (&json!({}), u64::MAX), &json!({"n": 1}), None)
            .unwrap();
        assert!(store.dialogues.end_waits("smpp:k"));
        store.forget_applied("smpp:k", 10, &mine).unwrap();
        assert!(!store.dialogues.end_waits("smpp:k"));
        assert_eq!(store.uncommitted(), 0, "the end went to sled first");
        assert!(store.applied_by("smpp:k", 10).unwrap().is_empty());
        assert_eq!(store.applied_by("smpp:k", 20).unwrap().len(), 1);

        // The retention purge takes the entries of dialogues started before its cutoff.
        store
            .transact("k#2#1", &deposit("a"), dialogue(30, 2))
            .unwrap();
        assert_eq!(store.purge_applied(30).unwrap(), 1);
        assert!(store.applied_by("smpp:k", 20).unwrap().is_empty());
        assert_eq!(store.applied_by("smpp:k", 30).unwrap().len(), 1);
    }
}
