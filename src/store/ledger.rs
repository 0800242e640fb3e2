//! Transactions of records, the money ledger and the outbox, applied all together or not at all.
//!
//! A flow's `transact` screen becomes a list of [`TxOp`]s. [`crate::store::Store::transact`]
//! applies them in ONE sled transaction over the `records`, `journal`, `outbox` and
//! `idempotency` trees:
//!
//! - conditions are checked against the state inside the transaction (two subscribers
//!   confirming the same slot at once: exactly one gets it), and the first failing op is
//!   reported instead of applying anything;
//! - a `transfer` debits and credits `balance_cents` of ledger accounts and appends a journal
//!   entry in the same transaction, so balances always reconcile with the journal and never go
//!   below zero;
//! - outbox effects (SMS, airtime, calls) are written with the change they belong to (an item's
//!   id can be kept in a record field), and a later change can void one still pending;
//! - the outcome is stored under the caller's idempotency key (dialogue and hop) in the same
//!   transaction, so a retried hop, even after a crash, gets the same outcome and never applies
//!   anything twice;
//! - the dialogue that applied it (its session key and start) is recorded with its id and hop in
//!   the same transaction too (the `applied` tree), so that the dialogue's end record lists it
//!   even when a crash lost the dialogue's state after that hop (see [`Store::applied_by`]).
//!
//! Amounts are integer cents. Durability is the caller's: flush before confirming.

use super::format::ledger_keys;
use super::tx_ops::{TxRun, TxView, apply_all};
use super::{Store, StoreError};
use crate::effect;
use crate::txn::TxOp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

/// The journal tree: one entry per transfer, keyed by transaction id and op index.
pub const JOURNAL: &str = "journal";
/// The idempotency tree: outcome of each transaction by its key.
pub const IDEMPOTENCY: &str = "idempotency";
/// The balance field of a ledger account record.
pub const BALANCE: &str = "balance_cents";
/// The transactions applied by dialogues whose end record is not written yet: the dialogue's
/// start and session key and the transaction id (see [`ledger_keys::applied_key`]) -> the hop that applied
/// it. Written in the transaction's own sled transaction, removed once the dialogue's end
/// record is in sled, and purged with the end records' retention (entries of dialogues that
/// never got one).
pub const APPLIED: &str = "applied";

/// The dialogue a transaction is applied for, and its hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxDialogue<'a> {
    /// The session key (the dialogue's live state is kept under it).
    pub session: &'a str,
    /// When the dialogue started: a later dialogue under the same key is another one.
    pub started_ms: u64,
    /// The hop that applies the transaction (the one its idempotency key names).
    pub hop: u32,
}

/// A transaction a dialogue applied, as its end record lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedTx {
    /// The transaction id (journal entries carry it).
    pub txn: u64,
    /// The hop of the dialogue that applied it.
    pub hop: u32,
}

/// What came of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxOutcome {
    /// The index of the first op whose condition failed (nothing was applied), or `None`.
    pub failed_op: Option<usize>,
    /// The transaction id (journal entries carry it).
    pub txn: u64,
    /// True when this outcome was stored by an earlier attempt of the same hop.
    #[serde(skip)]
    pub replayed: bool,
    /// When it was stored (retention purges old idempotency keys).
    #[serde(default)]
    pub at_ms: u64,
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The transaction id.
    pub txn: u64,
    /// The op's index in the transaction.
    pub seq: u32,
    /// `deposit`, `withdrawal`, `transfer`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Debited account key, if any.
    pub from: Option<String>,
    /// Credited account key, if any.
    pub to: Option<String>,
    /// Cents.
    pub amount_cents: i64,
    /// When.
    pub at_ms: u64,
    /// The idempotency key (dialogue and hop) that applied it.
    pub key: String,
}

type TxResult<T> = Result<T, ConflictableTransactionError<String>>;

fn abort(msg: impl Into<String>) -> ConflictableTransactionError<String> {
    ConflictableTransactionError::Abort(msg.into())
}

/// The trees of one sled transaction, as [`TxView`] sees them.
struct SledView<'t> {
    records: &'t TransactionalTree,
    journal: &'t TransactionalTree,
    outbox: &'t TransactionalTree,
}

impl TxView for SledView<'_> {
    type Error = ConflictableTransactionError<String>;

    fn abort(message: String) -> Self::Error {
        abort(message)
    }

    fn read(&mut self, key: &str) -> TxResult<Option<Value>> {
        match self.records.get(key.as_bytes())? {
            Some(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).map_err(|e| abort(format!("{key}: {e}")))?,
            )),
            None => Ok(None),
        }
    }

    fn write(&mut self, key: &str, value: &Value) -> TxResult<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| abort(e.to_string()))?;
        self.records.insert(key.as_bytes(), bytes)?;
        Ok(())
    }

    fn journal(&mut self, entry: &JournalEntry) -> TxResult<()> {
        self.journal.insert(
            ledger_keys::journal_key(entry.txn, entry.seq),
            serde_json::to_vec(entry).map_err(|e| abort(e.to_string()))?,
        )?;
        Ok(())
    }

    fn item(&mut self, id: u64) -> TxResult<Option<effect::Item>> {
        // An item that does not parse is left alone, as one that is gone.
        Ok(self
            .outbox
            .get(id.to_be_bytes())?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    fn put_item(&mut self, item: &effect::Item) -> TxResult<()> {
        self.outbox.insert(
            &item.key(),
            serde_json::to_vec(item).map_err(|e| abort(e.to_string()))?,
        )?;
        Ok(())
    }
}

impl Store {
    /// Applies `ops` atomically under the idempotency `key` (see the module docs), for
    /// `dialogue` if a dialogue applies them (it is then recorded as having applied it).
    ///
    /// # Errors
    /// Store failures, a malformed record (a balance that is not an integer), or a
    /// non-positive transfer amount; nothing is applied then.
    pub fn transact(
        &self,
        key: &str,
        ops: &[TxOp],
        dialogue: Option<TxDialogue<'_>>,
    ) -> Result<TxOutcome, StoreError> {
        let session = dialogue.map(|d| d.session);
        super::check_writable(&self.faults)?;
        for op in ops {
            if let TxOp::Transfer { amount_cents, .. } = op
                && *amount_cents <= 0
            {
                return Err(StoreError::Aborted(format!(
                    "transfer amount must be positive, got {amount_cents}"
                )));
            }
        }
        // The idempotency key counts the dialogue's hops: the state that counted them goes to
        // sled now, so the flush that makes this transaction durable makes it durable too, and a
        // retry after a crash resumes at the same hop (instead of replaying the dialogue from
        // its cumulative text under new hop numbers).
        if let Some(session) = session {
            self.dialogues.write_now(session)?;
        }
        let records = self.tree("records")?;
        let journal = self.tree(JOURNAL)?;
        let outbox_tree = self.tree(super::outbox::TREE)?;
        let idem = self.tree(IDEMPOTENCY)?;
        let applied = self.tree(APPLIED)?;
        let txn = self.generate_id()?;
        let outbox_ids: Vec<u64> = ops
            .iter()
            .filter(|op| matches!(op, TxOp::Outbox { .. }))
            .map(|_| self.generate_id())
            .collect::<Result<_, _>>()?;
        let now = crate::clock::now_ms();
        let gate = self.exclusive();
        let outcome = (&records, &journal, &outbox_tree, &idem, &applied).transaction(
            |(records, journal, outbox_tree, idem, applied)| {
                if let Some(done) = idem.get(key.as_bytes())? {
                    let mut o: TxOutcome =
                        serde_json::from_slice(&done).map_err(|e| abort(e.to_string()))?;
                    o.replayed = true;
                    return Ok(o);
                }
                // Every condition, against the state inside this transaction. Effects of
                // earlier ops are taken into account by applying as we go, and a failure
                // aborts with the op's index (nothing is kept).
                let mut view = SledView {
                    records,
                    journal,
                    outbox: outbox_tree,
                };
                let run = TxRun {
                    txn,
                    now,
                    key,
                    session,
                    outbox_ids: &outbox_ids,
                };
                if let Some(i) = apply_all(&mut view, ops, &run)? {
                    return Err(ConflictableTransactionError::Abort(format!("#failed:{i}")));
                }
                let o = TxOutcome {
                    failed_op: None,
                    txn,
                    replayed: false,
                    at_ms: now,
                };
                idem.insert(
                    key.as_bytes(),
                    serde_json::to_vec(&o).map_err(|e| abort(e.to_string()))?,
                )?;
                // With the change itself: the dialogue's end record lists it even if a crash
                // loses the dialogue's state after this hop.
                if let Some(d) = dialogue {
                    applied.insert(
                        ledger_keys::applied_key(d.session, d.started_ms, txn),
                        &ledger_keys::applied_value(d.hop),
                    )?;
                }
                Ok(o)
            },
        );
        drop(gate);
        self.records
            .forget(super::tx_ops::writes(ops).iter().map(String::as_str));
        match outcome {
            Ok(o) => {
                if !o.replayed && ops.iter().any(|op| matches!(op, TxOp::Outbox { .. })) {
                    self.outbox_written.notify_one();
                }
                Ok(o)
            }
            Err(sled::transaction::TransactionError::Abort(msg)) => {
                match msg
                    .strip_prefix("#failed:")
                    .and_then(|i| i.parse::<usize>().ok())
                {
                    // A failed condition is an answer too: store it so a retry gets the same.
                    Some(i) => {
                        let o = TxOutcome {
                            failed_op: Some(i),
                            txn,
                            replayed: false,
                            at_ms: now,
                        };
                        let stored = idem.compare_and_swap(
                            key.as_bytes(),
                            None as Option<&[u8]>,
                            Some(serde_json::to_vec(&o)?),
                        )?;
                        match stored {
                            Ok(()) => Ok(o),
                            // Another attempt of the same hop stored its outcome first.
                            Err(current) => {
                                let mut o: TxOutcome =
                                    serde_json::from_slice(&current.current.unwrap_or_default())?;
                                o.replayed = true;
                                Ok(o)
                            }
                        }
                    }
                    None => Err(StoreError::Aborted(msg)),
                }
            }
            Err(sled::transaction::TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Removes the idempotency keys `expired` says so of (retention); returns how many went.
    ///
    /// # Errors
    /// sled errors.
    pub fn purge_idempotency(&self, expired: impl Fn(&Value) -> bool) -> Result<usize, StoreError> {
        super::documents::purge(&self.gate, &self.tree(IDEMPOTENCY)?, expired)
    }

    /// Every journal entry as JSON, in transaction order (exports).
    ///
    /// # Errors
    /// sled errors, or an entry that is not JSON.
    pub fn journal_documents(&self) -> Result<Vec<Value>, StoreError> {
        super::documents::all(&self.gate, &self.tree(JOURNAL)?)
    }

    /// Every journal entry, in transaction order.
    ///
    /// # Errors
    /// Store or parse errors.
    pub fn journal(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let mut out = Vec::new();
        let tree = self.tree(JOURNAL)?;
        let _gate = self.shared();
        for item in tree.iter() {
            out.push(serde_json::from_slice(&item?.1)?);
        }
        Ok(out)
    }
}
