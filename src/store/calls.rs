//! Voice call records as the store keeps them.
//!
//! Records live in the tree `calls`, keyed by the big-endian bytes of a fresh id (so iteration
//! is oldest first), as JSON. A second tree, `call_sessions` (call session id -> record key),
//! is written in the same transaction so that a final callback the aggregator posts twice is
//! stored once. What a record holds is the voice module's (its `CallRecord`).

use super::{Store, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

/// The tree holding call records.
const CALLS_TREE: &str = "calls";
/// The tree mapping a call's session id to its record key (retries are stored once).
const CALL_SESSIONS_TREE: &str = "call_sessions";

impl Store {
    /// Stores `record`, the record of the call `session_id`, unless one for the same call is
    /// already stored; returns whether it was stored, once it is durable (flushed, or in the
    /// cluster's Redis).
    ///
    /// # Errors
    /// Store or serialisation errors.
    pub async fn store_call_once<T: Serialize>(
        &self,
        session_id: &str,
        record: &T,
    ) -> Result<bool, StoreError> {
        let doc = serde_json::to_vec(record)?;
        if let Some(shared) = &self.shared {
            return shared.store_call_once(session_id, &doc).await;
        }
        let stored = self.store_call_here(session_id, doc)?;
        self.flush().await?;
        Ok(stored)
    }

    /// [`Store::store_call_once`] on sled, before the flush.
    fn store_call_here(&self, session_id: &str, doc: Vec<u8>) -> Result<bool, StoreError> {
        let key = self.generate_id()?.to_be_bytes();
        let calls = self.tree(CALLS_TREE)?;
        let sessions = self.tree(CALL_SESSIONS_TREE)?;
        let session = session_id.as_bytes();
        let gate = self.exclusive();
        let stored = (&calls, &sessions).transaction(|(calls, sessions)| {
            if sessions.get(session)?.is_some() {
                return Ok(false);
            }
            sessions.insert(session, &key[..])?;
            calls.insert(&key[..], doc.as_slice())?;
            Ok::<_, ConflictableTransactionError<String>>(true)
        })?;
        drop(gate);
        Ok(stored)
    }

    /// Every stored call record, oldest first (the cluster's, in cluster mode).
    ///
    /// # Errors
    /// Store errors, or a record that no longer parses.
    pub async fn call_records<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        if let Some(shared) = &self.shared {
            return shared
                .call_documents()
                .await?
                .into_iter()
                .map(|d| Ok(serde_json::from_value(d)?))
                .collect();
        }
        let tree = self.tree(CALLS_TREE)?;
        let _gate = self.shared();
        tree.iter()
            .map(|item| Ok(serde_json::from_slice(&item?.1)?))
            .collect()
    }

    /// Every call record as JSON, oldest first (exports).
    ///
    /// # Errors
    /// sled errors, or a record that is not JSON.
    pub fn call_documents(&self) -> Result<Vec<Value>, StoreError> {
        super::documents::all(&self.gate, &self.tree(CALLS_TREE)?)
    }

    /// Removes the call records `expired` says so of (retention); returns how many went. The
    /// session index keeps their ids: a callback retried after its record went is not stored
    /// again.
    ///
    /// # Errors
    /// sled errors.
    pub fn purge_call_records(
        &self,
        expired: impl Fn(&Value) -> bool,
    ) -> Result<usize, StoreError> {
        super::documents::purge(&self.gate, &self.tree(CALLS_TREE)?, expired)
    }
}
