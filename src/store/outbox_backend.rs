//! The outbox on either backend: this node's own store ([`Outbox`], sled) or the cluster's
//! ([`SharedOutbox`], Redis). The sender, the admin listener and the retention purge work
//! through [`OutboxBackend`] and never learn which one it is.
//!
//! A delivery takes the same three steps on both (the sender's docs): find due items
//! ([`OutboxBackend::due`]), claim one ([`OutboxBackend::claim`]: one more attempt and a lease
//! time, written only over the item as read), and record the result over the claim
//! ([`OutboxBackend::record`]). Finding differs: the node's own store is scanned from a
//! watermark, while the cluster's hands each due item to one node through its stream's
//! consumer group.

use super::shared_outbox::{Entry, Raw, SharedOutbox};
use super::{Outbox, Store, StoreError, Stored};
use crate::clock::now_ms;
use crate::effect::{Effect, Item, Status};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How long an item stays "recent" in the node's own store: the watermark never passes an
/// item younger than this, so an item whose id was taken before a slower transaction
/// committed is still found.
pub(crate) const RECENT_MS: u64 = 60_000;
/// A full rescan of the node's own store (from the first id) happens at least this often.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(300);
/// The most waiting items moved into the cluster's stream per look.
const PROMOTE_AT_ONCE: usize = 256;

/// Where the outbox is. Cheap to clone.
#[derive(Debug, Clone)]
pub enum OutboxBackend {
    /// This node's own store.
    Local(Store),
    /// The cluster's, in Redis.
    Shared(SharedOutbox),
}

impl From<Store> for OutboxBackend {
    fn from(store: Store) -> OutboxBackend {
        OutboxBackend::Local(store)
    }
}

impl From<SharedOutbox> for OutboxBackend {
    fn from(shared: SharedOutbox) -> OutboxBackend {
        OutboxBackend::Shared(shared)
    }
}

/// An item due for delivery, as its backend found it.
#[derive(Debug)]
pub struct Due {
    /// The item as read.
    pub item: Item,
    held: Held,
}

/// An item claimed for a delivery: its result is written over this.
#[derive(Debug)]
pub struct Claimed {
    held: Held,
}

#[derive(Debug)]
enum Held {
    Local(Stored),
    Shared(Entry, Raw),
}

/// What one look for due items found.
#[derive(Debug, Default)]
pub struct Batch {
    /// Due items, not in flight on this node, at most the number asked for.
    pub due: Vec<Due>,
    /// Pending items in all (the depth gauge).
    pub pending: usize,
    /// When the next item not yet due falls due, if known.
    pub next_due_ms: Option<u64>,
}

/// Where the next look for due items starts (the node's own store's watermark).
#[derive(Debug)]
pub struct Cursor {
    watermark: u64,
    last_full: Instant,
}

impl Default for Cursor {
    fn default() -> Cursor {
        Cursor {
            watermark: 0,
            last_full: Instant::now(),
        }
    }
}

impl OutboxBackend {
    /// Writes one effect as a new item (due at `not_before_ms`, or now) and returns its id.
    /// The caller wakes the sender (`outbox::notify`).
    ///
    /// # Errors
    /// Store or Redis errors; nothing is written then.
    pub async fn enqueue(
        &self,
        effect: Effect,
        not_before_ms: Option<u64>,
        session: Option<String>,
    ) -> Result<u64, StoreError> {
        match self {
            OutboxBackend::Local(store) => {
                super::check_writable(&store.faults)?;
                let id = store.generate_id()?;
                let item = Item::new(id, effect, now_ms(), not_before_ms, session);
                store.outbox()?.insert(&item)?;
                Ok(id)
            }
            OutboxBackend::Shared(shared) => {
                Ok(shared.enqueue(effect, not_before_ms, session).await?)
            }
        }
    }

    /// One item by id.
    ///
    /// # Errors
    /// Store or Redis errors, or a document that does not parse.
    pub async fn get(&self, id: u64) -> Result<Option<Item>, StoreError> {
        match self {
            OutboxBackend::Local(store) => store.outbox()?.get(id),
            OutboxBackend::Shared(shared) => Ok(shared.get(id).await?),
        }
    }

    /// Every item, oldest first (documents that do not parse are skipped).
    ///
    /// # Errors
    /// Store or Redis errors.
    pub async fn list(&self) -> Result<Vec<Item>, StoreError> {
        match self {
            OutboxBackend::Local(store) => store.outbox()?.items(),
            OutboxBackend::Shared(shared) => Ok(shared.items().await?),
        }
    }

    /// The items still waiting to be sent, oldest first.
    ///
    /// # Errors
    /// Store or Redis errors.
    pub async fn pending(&self) -> Result<Vec<Item>, StoreError> {
        let mut items = self.list().await?;
        items.retain(|i| i.status == Status::Pending);
        Ok(items)
    }

    /// Puts a failed or not-sent item back in the queue with a fresh attempt count (an
    /// operator's action after fixing the account). Returns whether the item was re-queued.
    /// The caller wakes the sender.
    ///
    /// # Errors
    /// Store, Redis or serialisation errors.
    pub async fn requeue(&self, id: u64) -> Result<bool, StoreError> {
        match self {
            OutboxBackend::Local(store) => store.outbox()?.update(id, |item| {
                if matches!(item.status, Status::Pending | Status::Sent | Status::Voided) {
                    return false;
                }
                item.status = Status::Pending;
                item.attempts = 0;
                item.next_attempt_ms = now_ms().max(item.not_before_ms);
                item.finished_ms = None;
                true
            }),
            OutboxBackend::Shared(shared) => Ok(shared.requeue(id).await?),
        }
    }

    /// Removes finished items (sent, failed, not sent, voided) that finished before
    /// `before_ms`; returns how many went. Pending items are never removed.
    ///
    /// # Errors
    /// Store or Redis errors.
    pub async fn purge_finished(&self, before_ms: u64) -> Result<usize, StoreError> {
        let expired = move |item: &Item| {
            item.status != Status::Pending && item.finished_ms.is_some_and(|f| f < before_ms)
        };
        match self {
            OutboxBackend::Local(store) => {
                let outbox = store.outbox()?;
                tokio::task::spawn_blocking(move || outbox.purge(expired))
                    .await
                    .unwrap_or_else(|e| Err(StoreError::Aborted(format!("outbox purge: {e}"))))
            }
            OutboxBackend::Shared(shared) => Ok(shared.purge(expired).await?),
        }
    }

    /// The due items not in flight on this node (`in_flight`, by id), at most `limit`, with the
    /// outbox's depth.
    ///
    /// # Errors
    /// Store or Redis errors.
    pub async fn due(
        &self,
        cursor: &mut Cursor,
        now: u64,
        in_flight: &HashSet<u64>,
        limit: usize,
    ) -> Result<Batch, StoreError> {
        match self {
            OutboxBackend::Local(store) => {
                if cursor.last_full.elapsed() >= FULL_SCAN_EVERY {
                    cursor.watermark = 0;
                    cursor.last_full = Instant::now();
                }
                // On the blocking pool: it holds the store's scan gate.
                let (outbox, busy, from) = (store.outbox()?, in_flight.clone(), cursor.watermark);
                let scan =
                    tokio::task::spawn_blocking(move || scan(&outbox, from, now, &busy, limit))
                        .await
                        .unwrap_or_else(|e| {
                            Err(StoreError::Aborted(format!("outbox scan task: {e}")))
                        })?;
                cursor.watermark = scan.watermark;
                Ok(scan.batch)
            }
            OutboxBackend::Shared(shared) => shared_due(shared, now, in_flight, limit).await,
        }
    }

    /// Claims `due` for a delivery, writing `claimed` (one more attempt, a lease time) only
    /// over the item as read; `None` when it changed meanwhile (another node took it, or it
    /// was voided), and then it is not sent.
    ///
    /// # Errors
    /// Store, Redis or serialisation errors.
    pub async fn claim(&self, due: &Due, claimed: &Item) -> Result<Option<Claimed>, StoreError> {
        match (self, &due.held) {
            (OutboxBackend::Local(store), Held::Local(raw)) => {
                Ok(store.outbox()?.swap(raw, claimed)?.map(|raw| Claimed {
                    held: Held::Local(raw),
                }))
            }
            (OutboxBackend::Shared(shared), Held::Shared(entry, raw)) => {
                match shared.claim(raw, claimed).await? {
                    Some(raw) => Ok(Some(Claimed {
                        held: Held::Shared(entry.clone(), raw),
                    })),
                    None => {
                        settle(shared, entry).await?;
                        Ok(None)
                    }
                }
            }
            _ => Err(StoreError::Aborted("an item of another outbox".into())),
        }
    }

    /// Records a delivery's result over the claim, durably; returns false when the item
    /// changed while in flight (the result is not recorded then).
    ///
    /// # Errors
    /// Store, Redis or serialisation errors.
    pub async fn record(&self, claimed: &Claimed, done: &Item) -> Result<bool, StoreError> {
        match (self, &claimed.held) {
            (OutboxBackend::Local(store), Held::Local(raw)) => {
                let written = store.outbox()?.swap(raw, done)?.is_some();
                store.flush().await?;
                Ok(written)
            }
            (OutboxBackend::Shared(shared), Held::Shared(entry, raw)) => {
                if shared.finish(entry, raw, done).await? {
                    return Ok(true);
                }
                settle(shared, entry).await?;
                Ok(false)
            }
            _ => Err(StoreError::Aborted("an item of another outbox".into())),
        }
    }
}

/// Done with an entry whose item changed under this node: acknowledged, and the item (if still
/// pending) looked at again when its next attempt falls due.
async fn settle(shared: &SharedOutbox, entry: &Entry) -> Result<(), StoreError> {
    let due = shared
        .get(entry.item)
        .await?
        .filter(|i| i.status == Status::Pending)
        .map(|i| i.next_attempt_ms);
    Ok(shared.settle(entry, due).await?)
}

/// The cluster's due items for this node: moves what fell due into the stream, takes over the
/// entries a dead node left, reads new ones, and settles at once every entry whose item is
/// not due (final, voided, gone, or pending with a later next attempt).
async fn shared_due(
    shared: &SharedOutbox,
    now: u64,
    in_flight: &HashSet<u64>,
    limit: usize,
) -> Result<Batch, StoreError> {
    let depth = shared.promote_due(now, PROMOTE_AT_ONCE).await?;
    let mut batch = Batch {
        due: Vec::new(),
        pending: depth.ready + depth.later,
        next_due_ms: depth.next_due_ms,
    };
    if limit == 0 {
        return Ok(batch);
    }
    // Entries of items this node is sending stay in its list until the delivery records them.
    let mut entries: Vec<Entry> = shared.claim_stale(limit).await?;
    entries.retain(|e| !in_flight.contains(&e.item));
    if entries.len() < limit {
        entries.extend(shared.read(limit - entries.len()).await?);
    }
    let items = shared.fetch(&entries).await?;
    let mut taken = HashSet::new();
    for (entry, found) in entries.into_iter().zip(items) {
        match found {
            Some((item, raw)) if item.status == Status::Pending => {
                let busy = in_flight.contains(&item.id) || taken.contains(&item.id);
                if busy || item.next_attempt_ms > now {
                    shared.settle(&entry, Some(item.next_attempt_ms)).await?;
                } else {
                    taken.insert(item.id);
                    batch.due.push(Due {
                        item,
                        held: Held::Shared(entry, raw),
                    });
                }
            }
            Some(_) | None => {
                if found.is_none() {
                    tracing::warn!(
                        id = entry.item,
                        "outbox entry names no readable item; dropped"
                    );
                }
                shared.settle(&entry, None).await?;
            }
        }
    }
    Ok(batch)
}

/// What one scan of the node's own store found.
#[derive(Debug, Default)]
struct Scan {
    batch: Batch,
    /// Where the next scan may start.
    watermark: u64,
}

/// Scans the node's own store from `watermark` for pending items due at `now` (holding the
/// store's scan gate).
fn scan(
    outbox: &Outbox,
    watermark: u64,
    now: u64,
    in_flight: &HashSet<u64>,
    limit: usize,
) -> Result<Scan, StoreError> {
    let mut scan = Scan::default();
    let batch = &mut scan.batch;
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
            batch.pending += 1;
            keep_from.get_or_insert(id);
            if in_flight.contains(&id) {
                return;
            }
            if item.next_attempt_ms > now {
                let at = item.next_attempt_ms;
                batch.next_due_ms = Some(batch.next_due_ms.map_or(at, |n| n.min(at)));
            } else if batch.due.len() < limit {
                batch.due.push(Due {
                    item,
                    held: Held::Local(v),
                });
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
        let put = |item: &Item| tree.insert(item).unwrap();
        let now = 1_000_000;
        let old = now - RECENT_MS - 1;
        let mut done = sms(1, old, None);
        done.status = Status::Sent;
        put(&done);
        put(&sms(2, old, Some(now + 500)));
        let mut recent_done = sms(3, now - 10, None);
        recent_done.status = Status::Sent;
        put(&recent_done);
        put(&sms(4, now - 10, None));
        put(&sms(5, now - 10, None));

        let s = scan(&tree, 0, now, &HashSet::from([5]), 10).unwrap();
        let due: Vec<u64> = s.batch.due.iter().map(|d| d.item.id).collect();
        assert_eq!(due, [4], "5 is in flight, 2 is not due yet");
        assert_eq!(s.batch.pending, 3);
        assert_eq!(s.batch.next_due_ms, Some(now + 500));
        assert_eq!(s.watermark, 2, "the oldest pending item");

        // Once 2 is sent and everything is old, the watermark moves past the end.
        let mut two = sms(2, old, None);
        two.status = Status::Sent;
        put(&two);
        let later = now + RECENT_MS + 20;
        for id in [4, 5] {
            let mut i = sms(id, now - 10, None);
            i.status = Status::Sent;
            put(&i);
        }
        let s = scan(&tree, 2, later, &HashSet::new(), 10).unwrap();
        assert_eq!((s.batch.pending, s.watermark), (0, 6));
        let s = scan(&tree, 2, now, &HashSet::new(), 10).unwrap();
        assert_eq!(s.watermark, 3, "recent finished items hold the watermark");
    }
}
