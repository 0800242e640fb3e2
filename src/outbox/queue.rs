//! Reading and writing the outbox outside a flow's transaction: enqueue, inspect, scan, through
//! the store's operations on it ([`Outbox`]), which keep items as the ledger's transactional
//! writes do (key = the item id big-endian, value = the serde_json of [`Item`]). Items are
//! never deleted by the sender: sent and failed ones stay with their final status for
//! inspection until [`purge_finished`] removes them.

use crate::clock::now_ms;
use crate::effect::{Effect, Item, Status};
use crate::store::{Outbox, Store, StoreError, Stored};
use std::collections::HashSet;

/// Writes one effect on its own (effects that belong to a change are written by the ledger in
/// the change's transaction instead) and wakes the sender. `not_before_ms` delays it (reminders).
///
/// # Errors
/// Store or serialisation errors; nothing is written then.
pub fn enqueue(
    store: &Store,
    effect: Effect,
    not_before_ms: Option<u64>,
    session: Option<String>,
) -> Result<u64, StoreError> {
    let outbox = store.outbox()?;
    let id = store.generate_id()?;
    let item = Item::new(id, effect, now_ms(), not_before_ms, session);
    outbox.insert(&item)?;
    super::notify();
    Ok(id)
}

/// One item by id.
///
/// # Errors
/// Store errors, or a document that does not parse.
pub fn get(store: &Store, id: u64) -> Result<Option<Item>, StoreError> {
    store.outbox()?.get(id)
}

/// Every item, oldest first (documents that do not parse are skipped).
///
/// # Errors
/// Store errors.
pub fn list(store: &Store) -> Result<Vec<Item>, StoreError> {
    store.outbox()?.items()
}

/// The items still waiting to be sent, oldest first.
///
/// # Errors
/// Store errors.
pub fn pending(store: &Store) -> Result<Vec<Item>, StoreError> {
    let mut items = list(store)?;
    items.retain(|i| i.status == Status::Pending);
    Ok(items)
}

/// Puts a failed or not-sent item back in the queue with a fresh attempt count (an operator's
/// action after fixing the account). Returns whether the item was re-queued.
///
/// # Errors
/// Store or serialisation errors.
pub fn requeue(store: &Store, id: u64) -> Result<bool, StoreError> {
    let ok = store.outbox()?.update(id, |item| {
        if matches!(item.status, Status::Pending | Status::Sent | Status::Voided) {
            return false;
        }
        let now = now_ms();
        item.status = Status::Pending;
        item.attempts = 0;
        item.next_attempt_ms = now.max(item.not_before_ms);
        item.finished_ms = None;
        true
    })?;
    if ok {
        super::notify();
    }
    Ok(ok)
}

/// Removes finished items (sent, failed, not sent) that finished before `before_ms`; returns
/// how many went. Pending items are never removed.
///
/// # Errors
/// Store errors.
pub fn purge_finished(store: &Store, before_ms: u64) -> Result<usize, StoreError> {
    // Only if unchanged since read.
    store.outbox()?.purge(|item| {
        item.status != Status::Pending && item.finished_ms.is_some_and(|f| f < before_ms)
    })
}

/// How long an item stays "recent": the watermark never passes an item younger than this, so
/// an item whose id was taken before a slower transaction committed is still found.
pub(crate) const RECENT_MS: u64 = 60_000;

/// What one scan of the tree found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Due items not in flight, oldest first, at most the requested number, with their raw bytes.
    pub due: Vec<(Item, Stored)>,
    /// Pending items in total (the depth gauge).
    pub pending: usize,
    /// The earliest time a pending item that is not yet due becomes due.
    pub next_due_ms: Option<u64>,
    /// Where the next scan may start.
    pub watermark: u64,
}

/// Scans from `watermark` for pending items due at `now` (holding the store's scan gate).
pub(crate) fn scan(
    outbox: &Outbox,
    watermark: u64,
    now: u64,
    in_flight: &HashSet<u64>,
    limit: usize,
) -> Result<Scan, StoreError> {
    let mut scan = Scan::default();
    let mut keep_from: Option<u64> = None;
    let mut last_id = None;
    outbox.scan_from(watermark, |id, v| {
        last_id = Some(id);
        let item: Item = match serde_json::from_slice(&v) {
            Ok(item) => item,
            Err(e) => {
                // Said once per full scan, not on every poll.
                if watermark == 0 {
                    tracing::warn!(id, error = %e, "outbox item does not parse; skipped");
                }
                return;
            }
        };
        let recent = item.created_ms.saturating_add(RECENT_MS) > now;
        if item.status == Status::Pending {
            scan.pending += 1;
            keep_from.get_or_insert(id);
            if in_flight.contains(&id) {
                return;
            }
            if item.next_attempt_ms > now {
                let at = item.next_attempt_ms;
                scan.next_due_ms = Some(scan.next_due_ms.map_or(at, |n| n.min(at)));
            } else if scan.due.len() < limit {
                scan.due.push((item, v));
            }
            // Due items past `limit` wait for a slot: a finished delivery triggers a new scan.
        } else if recent {
            keep_from.get_or_insert(id);
        }
    })?;
    scan.watermark = match (keep_from, last_id) {
        (Some(id), _) => id,
        (None, Some(last)) => last.saturating_add(1),
        (None, None) => watermark,
    };
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(outbox: &Outbox, item: &Item) {
        outbox.insert(item).unwrap();
    }

    fn sms(id: u64, created: u64, not_before: Option<u64>) -> Item {
        let effect = Effect::Sms {
            to: "254700000001".into(),
            message: "m".into(),
        };
        Item::new(id, effect, created, not_before, None)
    }

    #[test]
    fn the_watermark_skips_old_finished_items_but_not_recent_or_pending_ones() {
        let store = Store::temporary().unwrap();
        let tree = store.outbox().unwrap();
        let now = 1_000_000;
        let old = now - RECENT_MS - 1;
        let mut done = sms(1, old, None);
        done.status = Status::Sent;
        put(&tree, &done);
        put(&tree, &sms(2, old, Some(now + 500)));
        let mut recent_done = sms(3, now - 10, None);
        recent_done.status = Status::Sent;
        put(&tree, &recent_done);
        put(&tree, &sms(4, now - 10, None));
        put(&tree, &sms(5, now - 10, None));

        let s = scan(&tree, 0, now, &HashSet::from([5]), 10).unwrap();
        let due: Vec<u64> = s.due.iter().map(|(i, _)| i.id).collect();
        assert_eq!(due, [4], "5 is in flight, 2 is not due yet");
        assert_eq!(s.pending, 3);
        assert_eq!(s.next_due_ms, Some(now + 500));
        assert_eq!(s.watermark, 2, "the oldest pending item");

        // Once 2 is sent and everything is old, the watermark moves past the end.
        let mut two = sms(2, old, None);
        two.status = Status::Sent;
        put(&tree, &two);
        let later = now + RECENT_MS + 20;
        for id in [4, 5] {
            let mut i = sms(id, now - 10, None);
            i.status = Status::Sent;
            put(&tree, &i);
        }
        let s = scan(&tree, 2, later, &HashSet::new(), 10).unwrap();
        assert_eq!((s.pending, s.watermark), (0, 6));
        let s = scan(&tree, 2, now, &HashSet::new(), 10).unwrap();
        assert_eq!(s.watermark, 3, "recent finished items hold the watermark");
    }

    #[test]
    fn requeue_and_purge_touch_only_finished_items() {
        let store = Store::temporary().unwrap();
        let tree = store.outbox().unwrap();
        let mut failed = sms(1, 10, None);
        failed.status = Status::Failed { reason: "x".into() };
        failed.attempts = 3;
        failed.finished_ms = Some(20);
        put(&tree, &failed);
        put(&tree, &sms(2, 10, None));
        assert!(requeue(&store, 1).unwrap());
        assert!(!requeue(&store, 2).unwrap());
        let back = get(&store, 1).unwrap().unwrap();
        assert_eq!((back.status, back.attempts), (Status::Pending, 0));
        let mut sent = sms(3, 10, None);
        sent.status = Status::Sent;
        sent.finished_ms = Some(20);
        put(&tree, &sent);
        assert_eq!(purge_finished(&store, 21).unwrap(), 1);
        assert_eq!(list(&store).unwrap().len(), 2);
        assert_eq!(pending(&store).unwrap().len(), 2);
    }
}
