//! The embedded record store: JSON documents addressed `collection/id`, which flows load and save.
//!
//! All records live in one sled tree keyed by their address, so that any set of writes a flow
//! makes is one sled transaction, and callers make it durable with [`crate::store::Store::flush`]
//! before confirming it to the subscriber.

use super::StoreError;
use crate::txn::valid_collection;
use serde_json::{Map, Value};
use sled::Tree;
use sled::transaction::ConflictableTransactionError;

/// One write of a save: the whole document, or fields merged into it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    /// The collection, e.g. `customers`.
    pub collection: String,
    /// The id inside it, e.g. `254700000001`.
    pub id: String,
    /// The document, or the fields to merge.
    pub value: Value,
    /// Merge object fields into an existing document instead of replacing it.
    pub merge: bool,
}

/// A handle on the records tree.
#[derive(Clone, Debug)]
pub struct Records {
    tree: Tree,
    db: sled::Db,
    /// The store's transaction/scan gate.
    gate: super::Gate,
    /// The store's fault-injection switch.
    faults: super::Faults,
}

/// Builds the key of a record; collections and ids are checked where they are made.
fn address(collection: &str, id: &str) -> String {
    format!("{collection}/{id}")
}

impl Records {
    pub(super) fn new(tree: Tree, db: sled::Db, gate: super::Gate, faults: super::Faults) -> Self {
        Records {
            tree,
            db,
            gate,
            faults,
        }
    }

    /// Reads one record.
    ///
    /// # Errors
    /// sled errors or a stored document that is not JSON.
    pub fn get(&self, collection: &str, id: &str) -> Result<Option<Value>, StoreError> {
        match self.tree.get(address(collection, id))? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Applies all `writes` in one transaction: either every one is applied or none.
    ///
    /// # Errors
    /// An invalid collection name, sled errors, or a stored document that is not JSON.
    pub fn apply(&self, writes: &[RecordWrite]) -> Result<(), StoreError> {
        super::check_writable(&self.faults)?;
        for w in writes {
            if !valid_collection(&w.collection) || w.id.is_empty() {
                return Err(StoreError::Aborted(format!(
                    "invalid record address `{}/{}`",
                    w.collection, w.id
                )));
            }
        }
        let _gate = self.gate.exclusive();
        self.tree.transaction(|tx| {
            for w in writes {
                let key = address(&w.collection, &w.id);
                let value = if w.merge {
                    let mut current = match tx.get(key.as_bytes())? {
                        Some(bytes) => serde_json::from_slice::<Value>(&bytes).map_err(|e| {
                            ConflictableTransactionError::Abort(format!("{key}: {e}"))
                        })?,
                        None => Value::Object(Map::new()),
                    };
                    merge(&mut current, &w.value);
                    current
                } else {
                    w.value.clone()
                };
                let bytes = serde_json::to_vec(&value)
                    .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                tx.insert(key.as_bytes(), bytes)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Every record of a collection, by id.
    ///
    /// # Errors
    /// sled or parse errors.
    pub fn scan(&self, collection: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let prefix = format!("{collection}/");
        let mut out = Vec::new();
        let _gate = self.gate.shared();
        for item in self.tree.scan_prefix(prefix.as_bytes()) {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.push((id, serde_json::from_slice(&v)?));
        }
        Ok(out)
    }

    /// True when no record exists at all.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Applies `batch` (a bulk load): each of its writes replaces the record at its address;
    /// no transaction, no merge.
    ///
    /// # Errors
    /// sled errors.
    pub fn apply_batch(&self, batch: RecordBatch) -> Result<(), StoreError> {
        self.tree.apply_batch(batch.batch)?;
        Ok(())
    }

    /// Waits until every write so far is on disk, on this thread (bulk loads).
    ///
    /// # Errors
    /// The flush failed (disk full, I/O error).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// Whole documents to write at once ([`Records::apply_batch`]), for bulk loads such as sample
/// data.
#[derive(Debug, Default)]
pub struct RecordBatch {
    batch: sled::Batch,
    len: usize,
}

impl RecordBatch {
    /// Adds `doc` as the record `collection/id`, replacing any.
    ///
    /// # Errors
    /// A document that does not serialise.
    pub fn insert(&mut self, collection: &str, id: &str, doc: &Value) -> Result<(), StoreError> {
        self.batch
            .insert(address(collection, id).as_bytes(), serde_json::to_vec(doc)?);
        self.len += 1;
        Ok(())
    }

    /// How many writes it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                a.insert(k.clone(), v.clone());
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use serde_json::json;

    #[test]
    fn writes_are_all_or_nothing_and_merge_fields() {
        let store = Store::temporary().unwrap();
        let r = store.records();
        r.apply(&[RecordWrite {
            collection: "customers".into(),
            id: "254700000001".into(),
            value: json!({"name": "Amina", "city": "Nakuru"}),
            merge: false,
        }])
        .unwrap();
        r.apply(&[RecordWrite {
            collection: "customers".into(),
            id: "254700000001".into(),
            value: json!({"city": "Kisumu"}),
            merge: true,
        }])
        .unwrap();
        assert_eq!(
            r.get("customers", "254700000001").unwrap(),
            Some(json!({"name": "Amina", "city": "Kisumu"}))
        );
        let bad = r.apply(&[
            RecordWrite {
                collection: "customers".into(),
                id: "254700000002".into(),
                value: json!({}),
                merge: false,
            },
            RecordWrite {
                collection: "no/slash".into(),
                id: "1".into(),
                value: json!({}),
                merge: false,
            },
        ]);
        assert!(bad.is_err());
        assert_eq!(r.get("customers", "254700000002").unwrap(), None);
    }
}
