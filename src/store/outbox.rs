//! The outbox's items as the store keeps them: the `outbox` tree, key = the item id big-endian,
//! value = the JSON of [`Item`].
//!
//! Items are written with the change they belong to (a flow's transaction, [`super::ledger`];
//! a dialogue's end, [`super::behind`]) or alone ([`Outbox::insert`]), and the outbox's sender
//! reads and updates them through an [`Outbox`] handle. Every update is a compare-and-swap
//! against the bytes read ([`Stored`]): an item changed meanwhile is never overwritten.

use super::gate::Gate;
use super::{Store, StoreError};
use crate::effect::Item;
use serde_json::Value;
use sled::{IVec, Tree};

/// The tree of pending and finished items, keyed by the big-endian id.
pub(super) const TREE: &str = "outbox";

/// An item's document as the store read it, kept to change the item only if no one else did
/// meanwhile. Cheap to clone; reads as bytes.
#[derive(Clone, Debug)]
pub struct Stored(IVec);

impl std::ops::Deref for Stored {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A handle on the outbox's items (cheap to clone).
#[derive(Clone, Debug)]
pub struct Outbox {
    tree: Tree,
    gate: Gate,
}

impl Store {
    /// The outbox's items.
    ///
    /// # Errors
    /// sled errors.
    pub fn outbox(&self) -> Result<Outbox, StoreError> {
        Ok(Outbox {
            tree: self.tree(TREE)?,
            gate: self.gate.clone(),
        })
    }
}

impl Outbox {
    /// Writes `item` under its key, outside any transaction.
    ///
    /// # Errors
    /// sled or serialisation errors; nothing is written then.
    pub fn insert(&self, item: &Item) -> Result<(), StoreError> {
        self.tree.insert(item.key(), serde_json::to_vec(item)?)?;
        Ok(())
    }

    /// One item by id.
    ///
    /// # Errors
    /// sled errors, or a document that does not parse.
    pub fn get(&self, id: u64) -> Result<Option<Item>, StoreError> {
        match self.tree.get(id.to_be_bytes())? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// Every item, oldest first (documents that do not parse are skipped).
    ///
    /// # Errors
    /// sled errors.
    pub fn items(&self) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let _gate = self.gate.shared();
        for entry in self.tree.iter() {
            let (_, v) = entry?;
            if let Ok(item) = serde_json::from_slice::<Item>(&v) {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// Every item's document as JSON, oldest first (exports).
    ///
    /// # Errors
    /// sled errors, or a document that is not JSON.
    pub fn documents(&self) -> Result<Vec<Value>, StoreError> {
        super::documents::all(&self.gate, &self.tree)
    }

    /// Changes item `id` with `change` if it says so (returns true); the change is written
    /// only if the item did not change meanwhile. Returns whether it was written.
    ///
    /// # Errors
    /// sled or serialisation errors, or a document that does not parse.
    pub fn update(
        &self,
        id: u64,
        change: impl FnOnce(&mut Item) -> bool,
    ) -> Result<bool, StoreError> {
        let key = id.to_be_bytes();
        let Some(old) = self.tree.get(key)? else {
            return Ok(false);
        };
        let mut item: Item = serde_json::from_slice(&old)?;
        if !change(&mut item) {
            return Ok(false);
        }
        Ok(self
            .tree
            .compare_and_swap(key, Some(old), Some(serde_json::to_vec(&item)?))?
            .is_ok())
    }

    /// Replaces the item read as `old` with `new` (the same id), unless it changed since it was
    /// read; returns what is stored now, or `None` when it had changed (nothing is written).
    ///
    /// # Errors
    /// sled or serialisation errors.
    pub fn swap(&self, old: &Stored, new: &Item) -> Result<Option<Stored>, StoreError> {
        let new_raw = IVec::from(serde_json::to_vec(new)?);
        let swapped = self
            .tree
            .compare_and_swap(new.key(), Some(&old.0), Some(new_raw.clone()))?;
        Ok(swapped.is_ok().then_some(Stored(new_raw)))
    }

    /// Calls `f` with the id and document of every item from id `first` on, in id order,
    /// holding the scan gate throughout.
    ///
    /// # Errors
    /// sled errors.
    pub fn scan_from(&self, first: u64, mut f: impl FnMut(u64, Stored)) -> Result<(), StoreError> {
        let _gate = self.gate.shared();
        for entry in self.tree.range(first.to_be_bytes()..) {
            let (k, v) = entry?;
            let Ok(key) = <[u8; 8]>::try_from(k.as_ref()) else {
                continue;
            };
            f(u64::from_be_bytes(key), Stored(v));
        }
        Ok(())
    }

    /// Removes the items `expired` says so of, unless they changed since they were read, a
    /// slice at a time (the outbox keeps every item for its retention period, and a scan
    /// holding the gate throughout would hold ledger transactions back as long); returns how
    /// many went. A document that does not parse is kept.
    ///
    /// # Errors
    /// sled errors.
    pub fn purge(&self, expired: impl Fn(&Item) -> bool) -> Result<usize, StoreError> {
        let mut gone = 0;
        self.gate.scan_sliced(&self.tree, |k, v| {
            let Ok(item) = serde_json::from_slice::<Item>(v) else {
                return Ok(());
            };
            if expired(&item)
                && self
                    .tree
                    .compare_and_swap(k, Some(v), None::<&[u8]>)?
                    .is_ok()
            {
                gone += 1;
            }
            Ok(())
        })?;
        Ok(gone)
    }
}
