//! Reading and writing the outbox outside a flow's transaction: enqueue, inspect, re-queue and
//! purge. [`enqueue_on`] and [`requeue_on`] work on either backend ([`OutboxBackend`]: this
//! node's own store, or the cluster's in Redis) and wake the sender; the functions on a
//! [`Store`] are the same operations on the node's own store, kept as the ledger's
//! transactional writes keep items (key = the item id big-endian, value = the serde_json of
//! [`Item`]). Items are never deleted by the sender: sent and failed ones stay with their final
//! status for inspection until [`purge_finished`] (or the backend's) removes them.

use crate::clock::now_ms;
use crate::effect::{Effect, Item, Status};
use crate::store::{OutboxBackend, Store, StoreError};

/// Writes one effect on its own in `backend`'s outbox and wakes the sender; `not_before_ms`
/// delays it (reminders). Returns its id.
///
/// # Errors
/// Store or Redis errors; nothing is written then.
pub async fn enqueue_on(
    backend: &OutboxBackend,
    effect: Effect,
    not_before_ms: Option<u64>,
    session: Option<String>,
) -> Result<u64, StoreError> {
    let id = backend.enqueue(effect, not_before_ms, session).await?;
    super::notify();
    Ok(id)
}

/// Puts a failed or not-sent item of `backend`'s outbox back in the queue with a fresh attempt
/// count, and wakes the sender. Returns whether the item was re-queued.
///
/// # Errors
/// Store or Redis errors.
pub async fn requeue_on(backend: &OutboxBackend, id: u64) -> Result<bool, StoreError> {
    let ok = backend.requeue(id).await?;
    if ok {
        super::notify();
    }
    Ok(ok)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Outbox;

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
