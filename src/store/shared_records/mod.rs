//! Flow records and the ledger shared by the nodes of a cluster, in Redis (docs/cluster.md,
//! "Records, the ledger and the outbox").
//!
//! Every key lives under the hash tag `{tx}`, so that one Lua script sees a transaction's
//! records, journal entries, idempotency key and outbox items together, on one Cluster node:
//! - `ussd:{tx}:rec:<collection>/<id>`: a record (JSON), and `ussd:{tx}:coll:<collection>`
//!   the set of its collection's ids (lists);
//! - `ussd:{tx}:idem:<key>`: a transaction's outcome under its idempotency key, expiring
//!   after `[retention] idempotency_days`;
//! - `ussd:{tx}:journal`: a hash of journal entries by `<txn>:<seq>` (zero-padded);
//! - `ussd:{tx}:ids`: the counter transaction and outbox item ids are taken from;
//! - `ussd:{tx}:outbox:items`, `:outbox:ready` (a stream) and `:outbox:later` (a sorted set):
//!   the shared outbox's items, as its sender reads them.
//!
//! A transaction runs in two round trips: the read script takes its ids and the values of every
//! record and outbox item its ops may read (or finds its outcome under its idempotency key);
//! the ops run here, in Rust, over that snapshot ([`super::tx_ops`], the same rules as on
//! sled); the commit script writes the result only if nothing it read has changed since, and
//! otherwise the transaction runs again from a new snapshot. Saves (a flow's `save`) are the
//! same with no idempotency key. With `wait_replicas`, the primary's replicas acknowledge a
//! commit (`WAIT`) before it is confirmed.

use super::StoreError;
use super::ledger::{AppliedTx, JournalEntry, TxDialogue, TxOutcome};
use super::records::RecordWrite;
use super::redis::Redis;
use super::tx_ops::{TxRun, TxView, apply_all, reads};
use crate::doc::Doc;
use crate::effect;
use crate::txn::{Address, TxOp, valid_collection};
use redis::Value as RValue;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

mod scripts;

use scripts::{LIST, PUT_ALL, READ, SETTLE, commit_invocation};

const TAG: &str = "ussd:{tx}";
/// How often a transaction runs again after another node changed what it read.
const ATTEMPTS: usize = 16;

/// How long to wait before the attempt after `conflicts` lost races in a row: a random time
/// below 1 ms doubled per conflict, at most 32 ms ("full jitter"). Nodes racing on one record
/// would otherwise retry in step, and a node that is a little slower each time could lose
/// every race.
fn backoff(conflicts: u32) -> Duration {
    let cap_us = 1_000u64 << conflicts.clamp(1, 6).saturating_sub(1);
    Duration::from_micros(rand::random_range(0..cap_us))
}

/// The key of the record `collection/id` (the address [`Address::key`] gives).
pub(super) fn record_key(address: &str) -> String {
    format!("{TAG}:rec:{address}")
}

pub(super) fn collection_key(collection: &str) -> String {
    format!("{TAG}:coll:{collection}")
}

/// The transactions the dialogue `session` that started at `started_ms` applied: a hash of
/// transaction id -> hop, read when its end record is written.
fn applied_key(session: &str, started_ms: u64) -> String {
    format!("{TAG}:applied:{session}:{started_ms}")
}

fn idem_key(key: &str) -> String {
    format!("{TAG}:idem:{key}")
}

/// The shared outbox's keys, which a transaction writes its items into.
pub use super::shared_outbox::{
    IDS, ITEMS as OUTBOX_ITEMS, LATER as OUTBOX_LATER, READY as OUTBOX_READY,
};
pub(super) const JOURNAL: &str = "ussd:{tx}:journal";
/// Set by the first node that seeds the sample records.
const SEEDED: &str = "ussd:{tx}:seeded";

/// Flow records, the ledger and its outbox items, kept in Redis for every node. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct SharedRecords {
    redis: Redis,
    /// Replicas that must acknowledge a commit before it is confirmed.
    wait_replicas: u32,
    /// How long idempotency keys are kept.
    idempotency_ttl: Duration,
    /// How long call records are kept.
    call_records_ttl: Duration,
}

/// A snapshot read by [`READ`], and what the ops wrote over it.
#[derive(Default)]
pub(super) struct Snapshot {
    /// Record key -> its raw value as read (`None`: absent).
    read: HashMap<String, Option<String>>,
    /// Item id -> its raw value as read.
    items_read: HashMap<u64, Option<String>>,
    /// Records written, in order (a key once, its last value).
    written: Vec<(String, Value)>,
    /// Outbox items written: the item, and whether it is new (queued) or changed.
    items: Vec<(effect::Item, bool)>,
    journal: Vec<JournalEntry>,
}

impl TxView for Snapshot {
    type Error = StoreError;

    fn abort(message: String) -> StoreError {
        StoreError::Aborted(message)
    }

    fn read(&mut self, key: &str) -> Result<Option<Value>, StoreError> {
        if let Some((_, v)) = self.written.iter().find(|(k, _)| k == key) {
            return Ok(Some(v.clone()));
        }
        match self.read.get(key) {
            Some(Some(raw)) => Ok(Some(
                serde_json::from_str(raw)
                    .map_err(|e| StoreError::Aborted(format!("{key}: {e}")))?,
            )),
            Some(None) => Ok(None),
            None => Err(StoreError::Aborted(format!(
                "{key}: not read before the transaction"
            ))),
        }
    }

    fn write(&mut self, key: &str, value: &Value) -> Result<(), StoreError> {
        match self.written.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => self.written.push((key.to_string(), value.clone())),
        }
        Ok(())
    }

    fn journal(&mut self, entry: &JournalEntry) -> Result<(), StoreError> {
        self.journal.push(entry.clone());
        Ok(())
    }

    fn item(&mut self, id: u64) -> Result<Option<effect::Item>, StoreError> {
        if let Some((item, _)) = self.items.iter().find(|(i, _)| i.id == id) {
            return Ok(Some(item.clone()));
        }
        // An item that does not parse is left alone, as one that is gone.
        Ok(self
            .items_read
            .get(&id)
            .and_then(Option::as_ref)
            .and_then(|raw| serde_json::from_str(raw).ok()))
    }

    fn put_item(&mut self, item: &effect::Item) -> Result<(), StoreError> {
        match self.items.iter_mut().find(|(i, _)| i.id == item.id) {
            Some(slot) => slot.0 = item.clone(),
            None => {
                let new = !self.items_read.contains_key(&item.id);
                self.items.push((item.clone(), new));
            }
        }
        Ok(())
    }
}

/// A Redis bulk string as text (`None`: nil).
fn text(v: &RValue) -> Option<String> {
    match v {
        RValue::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        RValue::SimpleString(s) => Some(s.clone()),
        RValue::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("redis answered {what} unexpectedly"))
}

/// A stored outcome, as a retried hop gets it.
fn replayed(raw: Option<String>) -> Result<TxOutcome, StoreError> {
    let raw = raw.ok_or_else(|| corrupt("an empty outcome"))?;
    let mut o: TxOutcome = serde_json::from_str(&raw)?;
    o.replayed = true;
    Ok(o)
}

impl SharedRecords {
    /// The records kept in `redis`; commits wait for `wait_replicas` replicas; idempotency
    /// keys are kept `idempotency_ttl`.
    pub fn new(redis: Redis, wait_replicas: u32, idempotency_ttl: Duration) -> SharedRecords {
        SharedRecords {
            redis,
            wait_replicas,
            idempotency_ttl,
            call_records_ttl: Duration::from_secs(90 * 86_400),
        }
    }

    /// Keeps call records for `ttl` (`[retention] call_records_days`; 90 days unless told).
    pub fn with_call_records_ttl(mut self, ttl: Duration) -> SharedRecords {
        self.call_records_ttl = ttl;
        self
    }

    /// How long call records are kept.
    pub(super) fn call_records_ttl(&self) -> Duration {
        self.call_records_ttl
    }

    /// The Redis handle (the outbox shares it).
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Reads one record.
    ///
    /// # Errors
    /// Redis failed, or the stored document is not JSON.
    pub async fn get(&self, collection: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let doc = self.get_doc(collection, id).await?;
        Ok(doc.map(|d| d.value().clone()))
    }

    /// Reads one record as a [`Doc`] (its value and its text).
    ///
    /// # Errors
    /// Redis failed, or the stored document is not JSON.
    pub async fn get_doc(&self, collection: &str, id: &str) -> Result<Option<Doc>, StoreError> {
        let key = record_key(&Address::key(&Address {
            collection: collection.into(),
            id: id.into(),
        }));
        let raw: Option<Vec<u8>> = self.redis.query(redis::cmd("GET").arg(&key)).await?;
        Ok(raw.map(|r| Doc::parse(&r)).transpose()?)
    }

    /// Every record of a collection, by id (in id order, as on sled).
    ///
    /// # Errors
    /// Redis failed, or a stored document is not JSON.
    pub async fn scan(&self, collection: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let prefix = record_key(&format!("{collection}/"));
        let mut inv = LIST.prepare_invoke();
        inv.key(collection_key(collection)).arg(&prefix);
        let flat: Vec<String> = self.redis.script("records_list", &inv).await?;
        let mut out = flat
            .chunks_exact(2)
            .map(|p| Ok((p[0].clone(), serde_json::from_str(&p[1])?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Applies all `writes` at once (a flow's `save`), confirmed as a transaction is.
    ///
    /// # Errors
    /// An invalid address, Redis failing, or too much contention on the same records.
    pub async fn apply(&self, writes: &[RecordWrite]) -> Result<(), StoreError> {
        let mut ops = Vec::with_capacity(writes.len());
        for w in writes {
            if !valid_collection(&w.collection) || w.id.is_empty() {
                return Err(StoreError::Aborted(format!(
                    "invalid record address `{}/{}`",
                    w.collection, w.id
                )));
            }
            ops.push(TxOp::Put {
                record: Address {
                    collection: w.collection.clone(),
                    id: w.id.clone(),
                },
                value: w.value.clone(),
                merge: w.merge,
            });
        }
        self.run(None, &ops, None).await.map(|_| ())
    }

    /// Applies `ops` atomically under the idempotency `key`, as
    /// [`crate::store::Store::transact`] does on sled, and waits for the replicas: when it
    /// returns, the outcome is confirmed.
    ///
    /// # Errors
    /// Redis failing (the transaction may then have been applied or not: a retry of the hop
    /// finds out under the same key), a malformed record, a non-positive transfer amount.
    pub async fn transact(
        &self,
        key: &str,
        ops: &[TxOp],
        dialogue: Option<TxDialogue<'_>>,
    ) -> Result<TxOutcome, StoreError> {
        for op in ops {
            if let TxOp::Transfer { amount_cents, .. } = op
                && *amount_cents <= 0
            {
                return Err(StoreError::Aborted(format!(
                    "transfer amount must be positive, got {amount_cents}"
                )));
            }
        }
        self.run(Some(key), ops, dialogue).await
    }

    /// The transactions the dialogue `session` that started at `started_ms` applied, in
    /// the order they were.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn applied_by(
        &self,
        session: &str,
        started_ms: u64,
    ) -> Result<Vec<AppliedTx>, StoreError> {
        let all: Vec<(u64, u32)> = self
            .redis
            .query(redis::cmd("HGETALL").arg(applied_key(session, started_ms)))
            .await?;
        let mut all: Vec<AppliedTx> = all
            .into_iter()
            .map(|(txn, hop)| AppliedTx { txn, hop })
            .collect();
        all.sort_by_key(|a| a.txn);
        Ok(all)
    }

    /// Forgets them, once the dialogue's end record lists them.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn forget_applied(&self, session: &str, started_ms: u64) -> Result<(), StoreError> {
        self.redis
            .query::<()>(redis::cmd("DEL").arg(applied_key(session, started_ms)))
            .await?;
        Ok(())
    }

    /// A transaction (`key`) or a save (no key): snapshot, apply, compare-and-set, again
    /// while another node changed what it read.
    async fn run(
        &self,
        key: Option<&str>,
        ops: &[TxOp],
        dialogue: Option<TxDialogue<'_>>,
    ) -> Result<TxOutcome, StoreError> {
        let session = dialogue.map(|d| d.session);
        let (record_keys, item_ids) = reads(ops);
        let outbox_ops = ops
            .iter()
            .filter(|op| matches!(op, TxOp::Outbox { .. }))
            .count();
        // A save has no key: one no transaction ever stores under.
        let idem = idem_key(key.unwrap_or("-"));
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt as u32)).await;
            }
            let now = crate::clock::now_ms();
            let ids = if key.is_some() {
                1 + outbox_ops
            } else {
                outbox_ops
            };
            let mut inv = READ.prepare_invoke();
            inv.key(&idem).key(IDS).key(OUTBOX_ITEMS);
            for k in &record_keys {
                inv.key(record_key(k));
            }
            inv.arg(ids);
            for id in &item_ids {
                inv.arg(id);
            }
            let answer: Vec<RValue> = self.redis.script("tx_read", &inv).await?;
            let tag = answer.first().and_then(text);
            if tag.as_deref() == Some("done") {
                return replayed(answer.get(1).and_then(text));
            }
            let last: u64 = answer
                .get(1)
                .and_then(text)
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| corrupt("no ids"))?;
            if tag.as_deref() != Some("read")
                || answer.len() != 2 + record_keys.len() + item_ids.len()
            {
                return Err(corrupt("a snapshot of the wrong size"));
            }
            let first = last + 1 - ids as u64;
            let (txn, outbox_ids): (u64, Vec<u64>) = if key.is_some() {
                (first, (first + 1..=last).collect())
            } else {
                (0, (first..=last).collect())
            };
            let mut snap = Snapshot::default();
            for (k, v) in record_keys.iter().zip(&answer[2..]) {
                snap.read.insert(k.clone(), text(v));
            }
            for (id, v) in item_ids.iter().zip(&answer[2 + record_keys.len()..]) {
                snap.items_read.insert(*id, text(v));
            }
            let run = TxRun {
                txn,
                now,
                key: key.unwrap_or(""),
                session,
                outbox_ids: &outbox_ids,
            };
            let failed_op = apply_all(&mut snap, ops, &run)?;
            let outcome = TxOutcome {
                failed_op,
                txn,
                replayed: false,
                at_ms: now,
            };
            let ttl = self.idempotency_ttl.as_millis().max(1).to_string();
            let answer: Vec<RValue> = match (failed_op, key) {
                // A failed condition is an answer too: stored so a retry gets the same.
                (Some(_), Some(_)) => {
                    let mut inv = SETTLE.prepare_invoke();
                    inv.key(&idem)
                        .arg(serde_json::to_string(&outcome)?)
                        .arg(&ttl);
                    self.redis.script("tx_settle", &inv).await?
                }
                (Some(i), None) => {
                    return Err(StoreError::Aborted(format!("save: op {i} failed")));
                }
                (None, _) => {
                    let stored = match key {
                        Some(_) => serde_json::to_string(&outcome)?,
                        None => String::new(),
                    };
                    let applied = dialogue
                        .map(|d| (applied_key(d.session, d.started_ms), txn, d.hop))
                        .filter(|_| key.is_some());
                    let applied = applied.as_ref().map(|(k, t, h)| (k.as_str(), *t, *h));
                    let inv = commit_invocation(&idem, applied, &snap, &stored, &ttl, now)?;
                    self.redis.script("tx_commit", &inv).await?
                }
            };
            match answer.first().and_then(text).as_deref() {
                Some("ok") => {
                    self.confirm().await?;
                    return Ok(outcome);
                }
                Some("done") => return replayed(answer.get(1).and_then(text)),
                Some("conflict") => continue,
                _ => return Err(corrupt("a commit")),
            }
        }
        Err(StoreError::Aborted(format!(
            "the records changed under {ATTEMPTS} attempts in a row"
        )))
    }

    /// Waits for `wait_replicas` replicas to have the commit.
    async fn confirm(&self) -> Result<(), StoreError> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let acked = self.redis.wait_replicas(IDS, self.wait_replicas).await?;
        if acked < self.wait_replicas {
            return Err(StoreError::Aborted(format!(
                "only {acked} of {} replicas acknowledged the write in time",
                self.wait_replicas
            )));
        }
        Ok(())
    }

    /// Loads sample records once for the whole cluster: a node that starts before any node
    /// finished seeding seeds them (never replacing a record that exists, so nodes starting
    /// together, or a flow writing meanwhile, lose nothing) and only then marks the cluster
    /// seeded, so no node serves before the sample data is there. Returns how many it wrote,
    /// or `None` when the cluster was seeded already.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn seed_once(&self, writes: &[RecordWrite]) -> Result<Option<usize>, StoreError> {
        let seeded: bool = self.redis.query(redis::cmd("EXISTS").arg(SEEDED)).await?;
        if seeded {
            return Ok(None);
        }
        let written = self.put_all(writes, false).await?;
        self.redis
            .query::<()>(redis::cmd("SET").arg(SEEDED).arg(crate::clock::now_ms()))
            .await?;
        Ok(Some(written))
    }

    /// Writes whole records in bulk (sample data, synthetic subscribers), in chunks and outside
    /// any transaction: replacing what is there (`replace`), or only where nothing is. Answers
    /// how many were written.
    ///
    /// # Errors
    /// An invalid address, or Redis failed (the chunks before stay written).
    pub async fn put_all(
        &self,
        writes: &[RecordWrite],
        replace: bool,
    ) -> Result<usize, StoreError> {
        if let Some(w) = writes
            .iter()
            .find(|w| !valid_collection(&w.collection) || w.id.is_empty())
        {
            return Err(StoreError::Aborted(format!(
                "invalid record address `{}/{}`",
                w.collection, w.id
            )));
        }
        let mut written = 0;
        for chunk in writes.chunks(256) {
            let mut inv = PUT_ALL.prepare_invoke();
            for w in chunk {
                inv.key(record_key(&format!("{}/{}", w.collection, w.id)));
            }
            for w in chunk {
                inv.key(collection_key(&w.collection));
            }
            inv.arg(if replace { "set" } else { "nx" });
            for w in chunk {
                inv.arg(serde_json::to_string(&w.value)?);
            }
            for w in chunk {
                inv.arg(&w.id);
            }
            let n: usize = self.redis.script("records_put_all", &inv).await?;
            written += n;
        }
        Ok(written)
    }

    /// Every journal entry, in transaction order (exports).
    ///
    /// # Errors
    /// Redis failed, or an entry is not JSON.
    pub async fn journal(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let all: Vec<(String, String)> =
            self.redis.query(redis::cmd("HGETALL").arg(JOURNAL)).await?;
        let mut all: Vec<(String, String)> = all;
        all.sort();
        all.iter()
            .map(|(_, v)| Ok(serde_json::from_str(v)?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_its_bound_per_conflict_up_to_32_ms() {
        for (conflicts, bound_ms) in [(1, 1), (2, 2), (3, 4), (5, 16), (6, 32), (15, 32)] {
            let waits: Vec<Duration> = (0..200).map(|_| backoff(conflicts)).collect();
            assert!(
                waits.iter().all(|w| *w < Duration::from_millis(bound_ms)),
                "conflict {conflicts}: under {bound_ms} ms"
            );
            // Random, not a fixed step: nodes racing in step would race again.
            assert!(waits.iter().any(|w| *w != waits[0]), "conflict {conflicts}");
        }
    }
}
