//! The gate that keeps sled transactions and scans apart.
//!
//! sled 0.34 can deadlock when a transaction and an iterator over the same database interleave
//! under load (its issues #1301 and #1412: every thread ends parked on its global concurrency
//! lock). Every handle on a store (the store itself, its records, its outbox) shares one
//! [`Gate`]: transactions take it exclusively, scans take it shared, so they never overlap.

use super::StoreError;
use sled::{IVec, Tree};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Entries read per hold of the scan gate by [`Gate::scan_sliced`].
pub(super) const SCAN_SLICE: usize = 1_024;

/// The transaction/scan gate of one store, shared by its handles.
#[derive(Clone, Debug, Default)]
pub(super) struct Gate(Arc<RwLock<()>>);

impl Gate {
    /// Held while a sled transaction runs: scans take the gate shared ([`Gate::shared`]), so
    /// the two never overlap. Never held across an await, never taken twice by one thread.
    pub(super) fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Held while a scan (an iterator over a tree) runs; see [`Gate::exclusive`].
    pub(super) fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `f` on every entry of `tree` in key order, holding the scan gate
    /// ([`Gate::shared`]) for a slice of entries at a time, so that a long scan never holds
    /// ledger transactions back for longer than one slice. Entries written meanwhile are seen
    /// if they sort after the slice being read.
    ///
    /// # Errors
    /// sled errors, or the first error of `f`.
    pub(super) fn scan_sliced(
        &self,
        tree: &Tree,
        mut f: impl FnMut(&IVec, &IVec) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut after: Option<IVec> = None;
        loop {
            let _gate = self.shared();
            let slice = match &after {
                None => tree.iter(),
                Some(k) => tree.range::<&[u8], _>((
                    std::ops::Bound::Excluded(k.as_ref()),
                    std::ops::Bound::Unbounded,
                )),
            };
            let mut n = 0;
            for item in slice.take(SCAN_SLICE) {
                let (k, v) = item?;
                f(&k, &v)?;
                after = Some(k);
                n += 1;
            }
            if n < SCAN_SLICE {
                return Ok(());
            }
        }
    }
}
