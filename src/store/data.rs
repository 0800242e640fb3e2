//! What flows do with records and the ledger, on whichever store holds them: the node's own
//! sled, or the cluster's Redis when the store shares them ([`Store::share_records`]).
//! Every write here is confirmed when it returns (flushed to disk, or committed in Redis and
//! acknowledged by the replicas asked for), so a flow's reply that confirms it comes after.

use super::ledger::{TxDialogue, TxOutcome};
use super::records::RecordWrite;
use super::shared_records::SharedRecords;
use super::{Store, StoreError};
use crate::doc::Doc;
use crate::txn::TxOp;
use serde_json::Value;
use std::sync::Arc;

impl Store {
    /// This store with its records, ledger and outbox in `shared` (cluster mode).
    pub fn share_records(mut self, shared: SharedRecords) -> Store {
        self.shared = Some(shared);
        self
    }

    /// The cluster's records, ledger and outbox, in cluster mode.
    pub fn shared_records(&self) -> Option<&SharedRecords> {
        self.shared.as_ref()
    }

    /// Reads one record, shared with the store's own copy where it keeps one (see [`Doc`]).
    ///
    /// # Errors
    /// Store failures, or a stored document that is not JSON.
    pub async fn load_record(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<Arc<Doc>>, StoreError> {
        match &self.shared {
            Some(shared) => Ok(shared.get_doc(collection, id).await?.map(Arc::new)),
            None => self.records.get_doc(collection, id),
        }
    }

    /// Every record of a collection, by id.
    ///
    /// # Errors
    /// Store failures, or a stored document that is not JSON.
    pub async fn list_records(&self, collection: &str) -> Result<Vec<(String, Value)>, StoreError> {
        match &self.shared {
            Some(shared) => shared.scan(collection).await,
            None => self.records.scan(collection),
        }
    }

    /// Applies all `writes` at once and returns once they are durable.
    ///
    /// # Errors
    /// An invalid address or a store failure: nothing is confirmed then.
    pub async fn save_records(&self, writes: &[RecordWrite]) -> Result<(), StoreError> {
        match &self.shared {
            Some(shared) => shared.apply(writes).await,
            None => {
                self.records.apply(writes)?;
                self.flush().await
            }
        }
    }

    /// [`Store::transact`] (or its Redis twin), returning once the outcome is durable.
    ///
    /// # Errors
    /// As [`Store::transact`]; nothing is confirmed then.
    pub async fn transact_confirmed(
        &self,
        key: &str,
        ops: &[TxOp],
        dialogue: Option<TxDialogue<'_>>,
    ) -> Result<TxOutcome, StoreError> {
        let outcome = match &self.shared {
            Some(shared) => {
                let o = shared.transact(key, ops, dialogue).await?;
                if !o.replayed && ops.iter().any(|op| matches!(op, TxOp::Outbox { .. })) {
                    self.outbox_written.notify_one();
                }
                return Ok(o);
            }
            None => self.transact(key, ops, dialogue)?,
        };
        self.flush().await?;
        Ok(outcome)
    }

    /// Every journal entry, in transaction order (the cluster's, in cluster mode).
    ///
    /// # Errors
    /// Store or parse errors.
    pub async fn journal_entries(&self) -> Result<Vec<super::ledger::JournalEntry>, StoreError> {
        match &self.shared {
            Some(shared) => shared.journal().await,
            None => self.journal(),
        }
    }
}
