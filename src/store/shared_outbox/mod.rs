//! The outbox shared by the nodes of a cluster, on Redis Streams (docs/cluster.md, "The
//! outbox").
//!
//! Everything lives under one hash tag, `{tx}`, the ledger's and the flow records', so that one
//! script can write a transaction and its outbox items together:
//! - [`IDS`]: the counter every item id comes from (`INCR`);
//! - [`ITEMS`]: a hash, item id (decimal) -> the JSON of [`Item`], the item's whole state;
//! - [`READY`]: a stream of due items (one field, `id`), read by the consumer group [`GROUP`]:
//!   each entry is delivered to one node (`XREADGROUP`), which acknowledges and deletes it once
//!   the item is done with (`XACK`, `XDEL`); the entries a node read and never acknowledged (it
//!   died) go to another after the claim timeout (`XAUTOCLAIM`);
//! - [`LATER`]: a sorted set, item id by the time it falls due (reminders, back-offs), which
//!   every node moves into the stream when due, in one script ([`SharedOutbox::promote_due`]),
//!   so that no two nodes both move one.
//!
//! The stream only says which node looks at an item when; the item's JSON is the truth, and
//! every change to it is a compare-and-set against the JSON read (as in the node's own store):
//! a sender claims an item by writing it with one more attempt and a lease time past the
//! request timeout, sends it, and writes the result only over its own claim. So an item marked
//! sent is never sent again, and an item a dead node had claimed is sent again only once its
//! lease is over (at least once, as on one node).
//!
//! One rule keeps every pending item findable: it has an entry in the stream not yet
//! acknowledged, or a place in [`LATER`], or both; an entry is acknowledged only in the script
//! that writes the item's final state, moves it to [`LATER`], or finds it final already.

mod events;
mod scripts;

pub use events::EndEvent;
pub use scripts::ENQUEUE_LUA;

use super::redis::{Redis, RedisError};
use crate::effect::{Effect, Item, Status};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamInfoConsumersReply, StreamReadReply};
use scripts::{ENQUEUE, FINISH, PROMOTE, REMOVE, SETTLE, SWAP};
use std::time::Duration;

/// The counter of item (and transaction) ids.
pub const IDS: &str = "ussd:{tx}:ids";
/// The items: id -> JSON of [`Item`].
pub const ITEMS: &str = "ussd:{tx}:outbox:items";
/// The stream of due items.
pub const READY: &str = "ussd:{tx}:outbox:ready";
/// The items not due yet, by the time they fall due.
pub const LATER: &str = "ussd:{tx}:outbox:later";
/// The consumer group of the senders.
pub const GROUP: &str = "senders";
/// A consumer with nothing unacknowledged and idle this long is a node gone for good.
const GONE_AFTER: Duration = Duration::from_secs(86_400);

/// An item's JSON as read, kept to change the item only if no one else did meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw(String);

/// One entry of the stream delivered to this node: which item to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stream entry's id.
    pub entry: String,
    /// The item's id (0 when the entry names none: it is then only acknowledged).
    pub item: u64,
}

/// What [`SharedOutbox::promote_due`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Depth {
    /// Moved into the stream now.
    pub moved: usize,
    /// Entries in the stream (due, or being sent).
    pub ready: usize,
    /// Items waiting in `later`.
    pub later: usize,
    /// When the next waiting item falls due.
    pub next_due_ms: Option<u64>,
}

/// The cluster's outbox over one Redis handle, as one node (one consumer of the group) sees
/// it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedOutbox {
    redis: Redis,
    consumer: String,
    claim_timeout: Duration,
}

impl SharedOutbox {
    /// The outbox kept in `redis`, read as a consumer of its own (a random name, one per
    /// process); the entries another consumer read and did not acknowledge within
    /// `claim_timeout` are taken over. Creates the stream and its group if they are missing.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn open(redis: Redis, claim_timeout: Duration) -> Result<SharedOutbox, RedisError> {
        let created: Result<String, RedisError> = redis
            .query(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(READY)
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
        match created {
            Err(RedisError::Redis(e)) if e.code() == Some("BUSYGROUP") => {}
            other => {
                other?;
            }
        }
        let outbox = SharedOutbox {
            redis,
            consumer: format!("node-{:016x}", rand::random::<u64>()),
            claim_timeout,
        };
        if let Err(e) = outbox.forget_gone_consumers(GONE_AFTER).await {
            tracing::warn!(error = %e, "outbox: the consumers of gone nodes stay in the group");
        }
        Ok(outbox)
    }

    /// Removes from the group the consumers of nodes gone for good (each process is a consumer
    /// of its own, so the group would grow with every restart): those with no entry left
    /// unacknowledged and idle for `idle_at_least` (a live node's sender reads at every poll).
    /// Returns how many went.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn forget_gone_consumers(
        &self,
        idle_at_least: Duration,
    ) -> Result<usize, RedisError> {
        let info: StreamInfoConsumersReply = self
            .redis
            .query(redis::cmd("XINFO").arg("CONSUMERS").arg(READY).arg(GROUP))
            .await?;
        let mut gone = 0;
        for c in info.consumers {
            let idle = Duration::from_millis(u64::try_from(c.idle).unwrap_or(u64::MAX));
            if c.pending > 0 || idle < idle_at_least || c.name == self.consumer {
                continue;
            }
            let _: i64 = self
                .redis
                .query(
                    redis::cmd("XGROUP")
                        .arg("DELCONSUMER")
                        .arg(READY)
                        .arg(GROUP)
                        .arg(&c.name),
                )
                .await?;
            gone += 1;
        }
        Ok(gone)
    }

    /// This node's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Whether Redis answered the last call.
    pub fn is_up(&self) -> bool {
        self.redis.is_up()
    }

    /// A fresh id from the cluster's counter (> 0).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn next_id(&self) -> Result<u64, RedisError> {
        self.redis.query(redis::cmd("INCR").arg(IDS)).await
    }

    /// Writes one effect as a new item (due at `not_before_ms`, or now) and returns its id.
    ///
    /// # Errors
    /// Redis or serialisation failed; nothing is written then (or the whole item is).
    pub async fn enqueue(
        &self,
        effect: Effect,
        not_before_ms: Option<u64>,
        session: Option<String>,
    ) -> Result<u64, RedisError> {
        let id = self.next_id().await?;
        let item = Item::new(id, effect, crate::clock::now_ms(), not_before_ms, session);
        self.insert(&item).await?;
        Ok(id)
    }

    /// Writes `item` under its own id, unless an item has that id already (returns false and
    /// writes nothing then).
    ///
    /// # Errors
    /// Redis or serialisation failed.
    pub async fn insert(&self, item: &Item) -> Result<bool, RedisError> {
        let json = to_json(item)?;
        let written: i64 = self
            .redis
            .script(
                "outbox_enqueue",
                ENQUEUE
                    .key(ITEMS)
                    .key(READY)
                    .key(LATER)
                    .arg(item.id)
                    .arg(json)
                    .arg(item.next_attempt_ms)
                    .arg(crate::clock::now_ms()),
            )
            .await?;
        Ok(written == 1)
    }

    /// One item by id, with its JSON as read.
    ///
    /// # Errors
    /// Redis failed, or the JSON does not parse.
    pub async fn get_raw(&self, id: u64) -> Result<Option<(Item, Raw)>, RedisError> {
        let json: Option<String> = self
            .redis
            .query(redis::cmd("HGET").arg(ITEMS).arg(id))
            .await?;
        json.map(|j| Ok((from_json(&j)?, Raw(j)))).transpose()
    }

    /// One item by id.
    ///
    /// # Errors
    /// As [`SharedOutbox::get_raw`].
    pub async fn get(&self, id: u64) -> Result<Option<Item>, RedisError> {
        Ok(self.get_raw(id).await?.map(|(item, _)| item))
    }

    /// Every item with its JSON, read a slice at a time (`HSCAN`), in no order; documents that
    /// do not parse are skipped.
    async fn scan(&self) -> Result<Vec<(Item, Raw)>, RedisError> {
        let mut out = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, slice): (u64, Vec<(String, String)>) = self
                .redis
                .query(
                    redis::cmd("HSCAN")
                        .arg(ITEMS)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(500),
                )
                .await?;
            for (id, json) in slice {
                match serde_json::from_str::<Item>(&json) {
                    Ok(item) => out.push((item, Raw(json))),
                    Err(e) => {
                        tracing::warn!(%id, error = %e, "outbox item does not parse; skipped")
                    }
                }
            }
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// Every item, oldest first (by creation time, then id).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn items(&self) -> Result<Vec<Item>, RedisError> {
        let mut items: Vec<Item> = self.scan().await?.into_iter().map(|(i, _)| i).collect();
        items.sort_by_key(|i| (i.created_ms, i.id));
        Ok(items)
    }

    /// Changes item `id` with `change` if it says so (returns true), only if the item did not
    /// change meanwhile; with `ready`, the item is then made due (or waiting) at its
    /// `next_attempt_ms`. Returns whether it was written.
    ///
    /// # Errors
    /// Redis or serialisation failed.
    pub async fn update(
        &self,
        id: u64,
        ready: bool,
        change: impl FnOnce(&mut Item) -> bool,
    ) -> Result<bool, RedisError> {
        let Some((mut item, raw)) = self.get_raw(id).await? else {
            return Ok(false);
        };
        if !change(&mut item) {
            return Ok(false);
        }
        let due = if ready {
            item.next_attempt_ms.to_string()
        } else {
            String::new()
        };
        self.swap(&raw, &item, &due).await.map(|r| r.is_some())
    }

    /// Replaces the item read as `old` with `new` (the same id) unless it changed since;
    /// returns what is kept now, or `None` when it had changed. `due` ('' for none) makes the
    /// item due or waiting at that time as well.
    async fn swap(&self, old: &Raw, new: &Item, due: &str) -> Result<Option<Raw>, RedisError> {
        let json = to_json(new)?;
        let done: i64 = self
            .redis
            .script(
                "outbox_swap",
                SWAP.key(ITEMS)
                    .key(READY)
                    .key(LATER)
                    .arg(new.id)
                    .arg(&old.0)
                    .arg(&json)
                    .arg(due)
                    .arg(crate::clock::now_ms()),
            )
            .await?;
        Ok((done == 1).then_some(Raw(json)))
    }

    /// Puts a failed or not-sent item back in the queue with a fresh attempt count, due now
    /// (or at its not-before time). Returns whether the item was re-queued.
    ///
    /// # Errors
    /// Redis or serialisation failed.
    pub async fn requeue(&self, id: u64) -> Result<bool, RedisError> {
        self.update(id, true, |item| {
            if matches!(item.status, Status::Pending | Status::Sent | Status::Voided) {
                return false;
            }
            item.status = Status::Pending;
            item.attempts = 0;
            item.next_attempt_ms = crate::clock::now_ms().max(item.not_before_ms);
            item.finished_ms = None;
            true
        })
        .await
    }

    /// Removes the finished items (sent, failed, not sent, voided) that `expired` says so of,
    /// unless they changed since they were read; returns how many went. Pending items stay.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn purge(&self, expired: impl Fn(&Item) -> bool) -> Result<usize, RedisError> {
        let mut gone = 0;
        for (item, raw) in self.scan().await? {
            if item.status == Status::Pending || !expired(&item) {
                continue;
            }
            let removed: i64 = self
                .redis
                .script("outbox_remove", REMOVE.key(ITEMS).arg(item.id).arg(&raw.0))
                .await?;
            gone += usize::try_from(removed).unwrap_or(0);
        }
        Ok(gone)
    }

    /// Moves at most `limit` items of `later` that are due at `now_ms` into the stream, and
    /// says how deep the outbox is.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn promote_due(&self, now_ms: u64, limit: usize) -> Result<Depth, RedisError> {
        let (moved, ready, later, next): (usize, usize, usize, String) = self
            .redis
            .script(
                "outbox_promote",
                PROMOTE.key(LATER).key(READY).arg(now_ms).arg(limit.max(1)),
            )
            .await?;
        let next = next.parse::<f64>().unwrap_or(0.0);
        Ok(Depth {
            moved,
            ready,
            later,
            next_due_ms: (next > 0.0).then_some(next as u64),
        })
    }

    /// At most `count` new entries of the stream for this node (`XREADGROUP`, not blocking:
    /// the connection is shared with the hops).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn read(&self, count: usize) -> Result<Vec<Entry>, RedisError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let reply: Option<StreamReadReply> = self
            .redis
            .query(
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(&self.consumer)
                    .arg("COUNT")
                    .arg(count)
                    .arg("STREAMS")
                    .arg(READY)
                    .arg(">"),
            )
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|id| entry(&id))
            .collect())
    }

    /// At most `count` entries that a node read and has not acknowledged for the claim
    /// timeout (it died, or lost Redis), now this node's (`XAUTOCLAIM`).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn claim_stale(&self, count: usize) -> Result<Vec<Entry>, RedisError> {
        let mut out = Vec::new();
        let mut start = "0-0".to_string();
        while out.len() < count {
            let reply: StreamAutoClaimReply = self
                .redis
                .query(
                    redis::cmd("XAUTOCLAIM")
                        .arg(READY)
                        .arg(GROUP)
                        .arg(&self.consumer)
                        .arg(u64::try_from(self.claim_timeout.as_millis()).unwrap_or(u64::MAX))
                        .arg(&start)
                        .arg("COUNT")
                        .arg(count - out.len()),
                )
                .await?;
            out.extend(reply.claimed.iter().map(entry));
            if reply.next_stream_id == "0-0" || reply.next_stream_id.is_empty() {
                break;
            }
            start = reply.next_stream_id;
        }
        Ok(out)
    }

    /// The items the entries name, with their JSON (`None`: no such item).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn fetch(&self, entries: &[Entry]) -> Result<Vec<Option<(Item, Raw)>>, RedisError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(ITEMS);
        for e in entries {
            cmd.arg(e.item);
        }
        let found: Vec<Option<String>> = self.redis.query(&cmd).await?;
        Ok(found
            .into_iter()
            .map(|j| j.and_then(|j| from_json(&j).ok().map(|item| (item, Raw(j)))))
            .collect())
    }

    /// Claims the item read as `old` for a delivery (`claimed`: one more attempt, a lease time),
    /// unless it changed since; returns the claim, or `None` when another node changed it.
    ///
    /// # Errors
    /// Redis or serialisation failed.
    pub async fn claim(&self, old: &Raw, claimed: &Item) -> Result<Option<Raw>, RedisError> {
        self.swap(old, claimed, "").await
    }

    /// Writes a delivery's result over the sender's claim and acknowledges the entry, in one
    /// script; a result still pending (a back-off) waits in `later` until its next attempt.
    /// Returns false when the item changed under the claim (nothing is written then).
    ///
    /// # Errors
    /// Redis or serialisation failed.
    pub async fn finish(
        &self,
        entry: &Entry,
        claimed: &Raw,
        done: &Item,
    ) -> Result<bool, RedisError> {
        let json = to_json(done)?;
        let due = if done.status == Status::Pending {
            done.next_attempt_ms.to_string()
        } else {
            String::new()
        };
        let written: i64 = self
            .redis
            .script(
                "outbox_finish",
                FINISH
                    .key(ITEMS)
                    .key(READY)
                    .key(LATER)
                    .arg(done.id)
                    .arg(&claimed.0)
                    .arg(json)
                    .arg(&entry.entry)
                    .arg(GROUP)
                    .arg(due),
            )
            .await?;
        Ok(written == 1)
    }

    /// Done with an entry whose item is not due: acknowledged, the item waiting in `later`
    /// until `due_ms` when given (a pending item not due yet), or not at all (final, gone).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn settle(&self, entry: &Entry, due_ms: Option<u64>) -> Result<(), RedisError> {
        let _: i64 = self
            .redis
            .script(
                "outbox_settle",
                SETTLE
                    .key(READY)
                    .key(LATER)
                    .arg(&entry.entry)
                    .arg(GROUP)
                    .arg(entry.item)
                    .arg(due_ms.map(|d| d.to_string()).unwrap_or_default()),
            )
            .await?;
        Ok(())
    }

    /// The entries read by a consumer and not yet acknowledged (for tests and `/admin`).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn unacknowledged(&self) -> Result<usize, RedisError> {
        let summary: (usize, redis::Value, redis::Value, redis::Value) = self
            .redis
            .query(redis::cmd("XPENDING").arg(READY).arg(GROUP))
            .await?;
        Ok(summary.0)
    }
}

/// A stream entry as this module reads it.
fn entry(id: &StreamId) -> Entry {
    Entry {
        entry: id.id.clone(),
        item: id
            .get::<String>("id")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    }
}

fn to_json(item: &Item) -> Result<String, RedisError> {
    serde_json::to_string(item).map_err(codec)
}

fn from_json(json: &str) -> Result<Item, RedisError> {
    serde_json::from_str(json).map_err(codec)
}

fn codec(e: serde_json::Error) -> RedisError {
    RedisError::Redis(redis::RedisError::from((
        redis::ErrorKind::Client,
        "outbox item JSON",
        e.to_string(),
    )))
}
