//! What every tree of JSON documents offers the exports and the retention purge: each of its
//! documents as JSON, and the removal of those past their time.

use super::StoreError;
use super::gate::Gate;
use serde_json::Value;
use sled::Tree;

/// Every document of `tree` as JSON, in key order, holding the scan gate throughout.
///
/// # Errors
/// sled errors, or a document that is not JSON.
pub(super) fn all(gate: &Gate, tree: &Tree) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::new();
    let _gate = gate.shared();
    for item in tree.iter() {
        out.push(serde_json::from_slice(&item?.1)?);
    }
    Ok(out)
}

/// Removes the documents of `tree` that `expired` says so of, unless they changed since they
/// were read, a slice at a time ([`Gate::scan_sliced`]); returns how many went. A document
/// that is not JSON is kept.
///
/// # Errors
/// sled errors.
pub(super) fn purge(
    gate: &Gate,
    tree: &Tree,
    expired: impl Fn(&Value) -> bool,
) -> Result<usize, StoreError> {
    let mut gone = 0;
    gate.scan_sliced(tree, |k, v| {
        let drop = match serde_json::from_slice::<Value>(v) {
            Ok(doc) => expired(&doc),
            Err(_) => false,
        };
        if drop && tree.compare_and_swap(k, Some(v), None::<&[u8]>)?.is_ok() {
            gone += 1;
        }
        Ok(())
    })?;
    Ok(gone)
}
