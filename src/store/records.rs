//! The embedded record store: JSON documents addressed `collection/id`, which flows load and save.
//!
//! All records live in one sled tree keyed by their address, so that any set of writes a flow
//! makes is one sled transaction, and callers make it durable with [`crate::store::Store::flush`]
//! before confirming it to the subscriber.

use super::StoreError;
use crate::doc::Doc;
use crate::txn::valid_collection;
use serde_json::{Map, Value};
use sled::Tree;
use sled::transaction::ConflictableTransactionError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

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
    /// Records read lately, parsed: most dialogues begin by loading their subscriber's record,
    /// and parsing its JSON again each time cost a tenth of a first hop.
    parsed: Arc<Mutex<Parsed>>,
}

/// At most this many bytes of records (as stored; each is kept as text and parsed) are kept
/// read; past it, all are dropped.
const PARSED_BYTES: usize = 8 << 20;

/// Records read, each with its stored size.
#[derive(Debug, Default)]
struct Parsed {
    /// Bumped by every write of records: a read that began before a write does not keep what
    /// it read, which may be older than the write.
    generation: u64,
    docs: HashMap<String, (Arc<Doc>, usize)>,
    bytes: usize,
}

impl Parsed {
    /// Drops every copy (a write whose records are not listed).
    fn forget_all(&mut self) {
        self.generation += 1;
        self.docs.clear();
        self.bytes = 0;
    }

    fn forget<'k>(&mut self, keys: impl IntoIterator<Item = &'k str>) {
        self.generation += 1;
        for k in keys {
            if let Some((_, size)) = self.docs.remove(k) {
                self.bytes -= size;
            }
        }
    }
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
            parsed: Arc::default(),
        }
    }

    fn parsed(&self) -> std::sync::MutexGuard<'_, Parsed> {
        self.parsed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads one record.
    ///
    /// # Errors
    /// sled errors or a stored document that is not JSON.
    pub fn get(&self, collection: &str, id: &str) -> Result<Option<Value>, StoreError> {
        Ok(self.get_doc(collection, id)?.map(|doc| doc.value().clone()))
    }

    /// Reads one record, shared with the copy kept read (no copy is made: see [`Doc`]).
    ///
    /// # Errors
    /// sled errors or a stored document that is not JSON.
    pub fn get_doc(&self, collection: &str, id: &str) -> Result<Option<Arc<Doc>>, StoreError> {
        let key = address(collection, id);
        let (kept, generation) = {
            let parsed = self.parsed();
            let kept = parsed.docs.get(&key).map(|(doc, _)| Arc::clone(doc));
            (kept, parsed.generation)
        };
        if kept.is_some() {
            return Ok(kept);
        }
        let Some(bytes) = self.tree.get(&key)? else {
            return Ok(None);
        };
        let doc = Arc::new(Doc::parse(&bytes)?);
        let mut parsed = self.parsed();
        if parsed.generation == generation {
            if parsed.bytes + bytes.len() > PARSED_BYTES {
                parsed.docs.clear();
                parsed.bytes = 0;
            }
            parsed.bytes += bytes.len();
            if let Some((_, size)) = parsed.docs.insert(key, (Arc::clone(&doc), bytes.len())) {
                parsed.bytes -= size;
            }
        }
        Ok(Some(doc))
    }

    /// Drops the parsed copies of the records at `addresses` (`collection/id`): they were
    /// written, or may have been.
    pub(super) fn forget<'k>(&self, addresses: impl IntoIterator<Item = &'k str>) {
        self.parsed().forget(addresses);
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
        let written: Vec<String> = writes
            .iter()
            .map(|w| address(&w.collection, &w.id))
            .collect();
        let result = self.tree.transaction(|tx| {
            for (w, key) in writes.iter().zip(&written) {
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
        });
        self.forget(written.iter().map(String::as_str));
        result?;
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
        let result = self.tree.apply_batch(batch.batch);
        self.parsed().forget_all();
        result?;
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

    /// Reads are answered from parsed copies: every way of writing a record drops its copy,
    /// so the next read sees the write.
    #[test]
    fn a_read_after_any_write_sees_the_write() {
        use crate::txn::{Address, TxOp};
        let store = Store::temporary().unwrap();
        let r = store.records();
        let wallet = || Address {
            collection: "wallets".into(),
            id: "254700000001".into(),
        };
        let mut batch = RecordBatch::default();
        batch
            .insert("wallets", "254700000001", &json!({"balance_cents": 100}))
            .unwrap();
        r.apply_batch(batch).unwrap();
        let read = || r.get("wallets", "254700000001").unwrap().unwrap();
        assert_eq!(read()["balance_cents"], 100);
        assert_eq!(
            read()["balance_cents"],
            100,
            "answered again, from the copy"
        );

        let deposit = [TxOp::Transfer {
            from: None,
            to: Some(wallet()),
            amount_cents: 50,
            kind: "deposit".into(),
        }];
        store.transact("k1", &deposit, None).unwrap();
        assert_eq!(read()["balance_cents"], 150, "after a transaction");

        let put = [TxOp::Put {
            record: wallet(),
            value: json!({"balance_cents": 7}),
            merge: false,
        }];
        store.transact("k2", &put, None).unwrap();
        assert_eq!(read()["balance_cents"], 7, "after a transaction's put");

        r.apply(&[RecordWrite {
            collection: "wallets".into(),
            id: "254700000001".into(),
            value: json!({"owner": "Amina"}),
            merge: true,
        }])
        .unwrap();
        assert_eq!(
            read(),
            json!({"balance_cents": 7, "owner": "Amina"}),
            "after a save"
        );

        let mut batch = RecordBatch::default();
        batch
            .insert("wallets", "254700000001", &json!({"balance_cents": 1}))
            .unwrap();
        r.apply_batch(batch).unwrap();
        assert_eq!(read(), json!({"balance_cents": 1}), "after a bulk load");
    }
}
