//! Group commit of dialogue state.
//!
//! A hop's live state, and a dialogue's end (its tombstone, end-of-session record and
//! end-of-session notification), are kept here in memory and written to sled together with
//! every other dialogue's, once per commit (the gateway commits every flush interval, then
//! flushes). sled itself only reaches the disk once per flush interval, so what a crash can lose
//! is unchanged: a hop answered at least one flush interval before it is on disk. What changes
//! is the cost: one pass of writes per interval instead of writes at every hop, and the state
//! of a dialogue that ends within the interval is never written at all.
//!
//! A commit uses no sled transaction, only single-key writes in an order that a crash may cut
//! anywhere (see [`Dialogues::write`]): a transaction holds sled's global lock, which every
//! sled read waits for, and the reads of every hop (a new dialogue's look for its state, a
//! flow's records) queued behind it for tens of milliseconds.
//!
//! Records that flows change (balances, registrations, appointments) never wait here: they are
//! written in their own transaction and flushed before the reply that confirms them.
//!
//! Every read of dialogue state looks here first, so a commit is never visible as a gap.

use super::recent::{self, Recent};
use super::{ENDED_INDEX, StoreError, check_writable};
use sled::Tree;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The first byte of a tombstone that names its end record's id, the record's key in
/// `ended` too (tombstones before these were bare JSON documents, whose first byte is `{`).
const TOMBSTONE_WITH_ID: u8 = 1;
/// The first byte of a tombstone whose end record is kept in a chunk (since 2026-12-06): the
/// chunk's key in `ended`, then the record's id.
const TOMBSTONE_IN_CHUNK: u8 = 2;

/// Where an end-of-session record is kept in `ended`: the key of its chunk (or of the record
/// alone, as kept before chunks) and its own id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordAt {
    pub(crate) key: [u8; 8],
    pub(crate) id: [u8; 8],
}

/// A tombstone as sled kept it one per key, before chunks of tombstones: a format byte, where
/// its end-of-session record is (so the record can be found from the session key while the
/// tombstone is kept), then its document.
#[cfg(test)]
pub(crate) fn tombstone_value(at: RecordAt, document: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(17 + document.len());
    v.push(TOMBSTONE_IN_CHUNK);
    v.extend_from_slice(&at.key);
    v.extend_from_slice(&at.id);
    v.extend_from_slice(document);
    v
}

/// Where a stored tombstone's end record is (`None` for a tombstone from before ids were kept
/// in them), and its document.
pub(crate) fn tombstone_parts(value: &[u8]) -> (Option<RecordAt>, &[u8]) {
    match value.split_first() {
        Some((&TOMBSTONE_IN_CHUNK, rest)) if rest.len() >= 16 => {
            let (key, rest) = rest.split_at(8);
            let (id, document) = rest.split_at(8);
            let at = key.try_into().ok().zip(id.try_into().ok());
            (at.map(|(key, id)| RecordAt { key, id }), document)
        }
        Some((&TOMBSTONE_WITH_ID, rest)) if rest.len() >= 8 => {
            let (id, document) = rest.split_at(8);
            let id: Option<[u8; 8]> = id.try_into().ok();
            (id.map(|id| RecordAt { key: id, id }), document)
        }
        _ => (None, value),
    }
}

/// A tombstone read from sled: where its end record is (if it says), and its document.
pub(crate) type StoredTombstone = (Option<RecordAt>, Vec<u8>);

/// The first byte of a chunk of end-of-session records in `ended` (a record kept alone, as
/// before 2026-12-06, is a bare JSON document, whose first byte is `{`).
const CHUNK: u8 = 2;

/// The most end records a commit puts in one chunk. sled splits a leaf every few inserts, and
/// each split rewrites pages: one insert per chunk instead of one per dialogue took a tenth of
/// the CPU of a hop under load. A chunk is rewritten whole when one of its records changes
/// (an aggregator's end report), so it stays small.
pub(crate) const CHUNK_RECORDS: usize = 16;

/// A chunk: the format byte, the number of records (u32, big-endian), then for each record
/// its id, its length (u32, big-endian) and its document.
pub(crate) fn chunk_value<'a>(
    records: impl ExactSizeIterator<Item = ([u8; 8], &'a [u8])>,
) -> Vec<u8> {
    let mut v = vec![CHUNK];
    v.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for (id, doc) in records {
        v.extend_from_slice(&id);
        v.extend_from_slice(&(doc.len() as u32).to_be_bytes());
        v.extend_from_slice(doc);
    }
    v
}

/// One end record of a chunk: its id and its document.
pub(crate) type EndRecordRef<'a> = ([u8; 8], &'a [u8]);

/// The records (id, document) of the `ended` entry `key` -> `value`: a chunk, or one record
/// kept alone under its id.
///
/// # Errors
/// A chunk whose records do not add up to its count and length, or a key that is not an id.
pub(crate) fn chunk_records<'a>(
    key: &[u8],
    value: &'a [u8],
) -> Result<Vec<EndRecordRef<'a>>, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("end-record chunk {key:02x?}"));
    let Some((&CHUNK, rest)) = value.split_first() else {
        let id = key.try_into().map_err(|_| corrupt())?;
        return Ok(vec![(id, value)]);
    };
    let (count, mut rest) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let count = u32::from_be_bytes(*count) as usize;
    let mut out = Vec::with_capacity(count.min(CHUNK_RECORDS));
    for _ in 0..count {
        let (id, tail) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (len, tail) = tail.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(corrupt());
        }
        let (doc, after) = tail.split_at(len);
        out.push((*id, doc));
        rest = after;
    }
    if !rest.is_empty() {
        return Err(corrupt());
    }
    Ok(out)
}

/// A live state waiting for its commit, serialised only when it is written (most dialogues
/// end before their state ever is) or read back.
pub(crate) trait Snapshot: Send + Sync + std::fmt::Debug {
    fn to_json(&self) -> serde_json::Result<Vec<u8>>;
}

impl<T: serde::Serialize + Send + Sync + std::fmt::Debug> Snapshot for T {
    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

pub(crate) type State = Arc<dyn Snapshot>;

/// Writes of dialogue state that wait for the next commit.
#[derive(Debug, Default, Clone)]
struct Pending {
    /// Session key -> its live state, or `None` when it was removed.
    live: HashMap<String, Option<State>>,
    /// Dialogues ended, in order.
    ends: Vec<End>,
    /// Session key -> index in `ends` of its latest end (for the tombstone).
    latest_end: HashMap<String, usize>,
    /// Keys that sled had no live state for while this batch was the newest, and that
    /// nothing has written to sled since: an end of such a key drops its live entry instead
    /// of turning it into a removal. Most dialogues begin and end within one commit interval,
    /// so their live state never costs a write to sled.
    absent: HashSet<String>,
}

#[derive(Debug, Clone)]
struct End {
    key: String,
    id: [u8; 8],
    /// The tombstone's document, and when it may be purged (ms since the epoch).
    tombstone: Vec<u8>,
    expires_ms: u64,
    record: Vec<u8>,
    /// The end-of-session notification for the outbox: its key and document.
    outbox: Option<([u8; 8], Vec<u8>)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.live.is_empty() && self.ends.is_empty()
    }

    fn len(&self) -> usize {
        self.live.len() + self.ends.len()
    }

    /// Empties it, keeping its tables' room for the next batch (up to a bound: a burst does
    /// not keep its memory for good).
    fn clear(&mut self) {
        const KEEP: usize = 1 << 16;
        self.live.clear();
        self.live.shrink_to(KEEP);
        self.ends.clear();
        self.ends.shrink_to(KEEP);
        self.latest_end.clear();
        self.latest_end.shrink_to(KEEP);
        self.absent.clear();
        self.absent.shrink_to(KEEP);
    }

    fn end(&mut self, end: End) {
        if self.absent.contains(&end.key) {
            self.live.remove(&end.key);
        } else {
            self.live.insert(end.key.clone(), None);
        }
        self.latest_end.insert(end.key.clone(), self.ends.len());
        self.ends.push(end);
    }

    /// `newer`'s writes on top of these.
    fn merge(&mut self, newer: Pending) {
        self.live.extend(newer.live);
        self.absent.extend(newer.absent);
        for end in newer.ends {
            self.latest_end.insert(end.key.clone(), self.ends.len());
            self.ends.push(end);
        }
    }

    fn tombstone(&self, key: &str) -> Option<&[u8]> {
        self.latest_end
            .get(key)
            .map(|&i| self.ends[i].tombstone.as_slice())
    }
}

#[derive(Debug, Default)]
struct Slots {
    /// Written since the last commit began.
    pending: Pending,
    /// Being committed right now (still read from here until it is in sled).
    committing: Option<Arc<Pending>>,
    /// Commits begun: a key found absent from sled is marked so only if no commit began
    /// between the look in `pending` and the look in sled.
    generation: u64,
    /// Dialogues that ran a transaction: their end goes to sled at once, not with the next
    /// commit, so the flush after the next transaction (anyone's) carries their tombstone, and
    /// a retried confirmation after a crash gets the reply it got, as before group commit.
    write_through: std::collections::HashSet<String>,
    /// The last committed batch, emptied: the next one fills its tables instead of growing
    /// new ones (under load, growing them from nothing every interval was a few percent of
    /// the CPU, most of it the kernel handing out fresh pages).
    spare: Option<Pending>,
}

impl Slots {
    /// What `f` finds among the newest writes, else among those being committed.
    fn find<'a, T>(&'a self, f: impl Fn(&'a Pending) -> Option<T>) -> Option<T> {
        f(&self.pending).or_else(|| self.committing.as_deref().and_then(f))
    }
}

/// The dialogue trees and what waits to be written to them.
#[derive(Debug)]
pub(crate) struct Dialogues {
    pub(crate) sessions: Tree,
    /// Tombstones one per key, as written before they were kept in chunks: read while any is
    /// left ([`Dialogues::old_tombstones`]), never written.
    pub(crate) tombstones: Tree,
    /// Whether `tombstones` may still hold any (checked at start-up and by each purge).
    old_tombstones: AtomicBool,
    /// Chunks of tombstones, under the key of the chunk of their end records ([`recent`]).
    pub(crate) tomb_chunks: Tree,
    /// For each chunk of tombstones: when its last expires, its ids and session keys.
    pub(crate) tomb_index: Tree,
    /// Session key hash -> where its tombstone is, for the tombstones still kept.
    recent: Mutex<Recent>,
    pub(crate) ended: Tree,
    /// Session key -> end record id, as written before tombstones carried the id: read for
    /// those tombstones only, never written, emptied once none of them is left.
    pub(crate) index: Tree,
    outbox: Tree,
    slots: Mutex<Slots>,
    /// One commit at a time.
    committer: Mutex<()>,
    faults: super::Faults,
    outbox_written: Arc<tokio::sync::Notify>,
    /// Writes a commit may still make before it fails (tests only; `usize::MAX`: never fails).
    #[cfg(test)]
    fail_after: std::sync::atomic::AtomicUsize,
}

/// Where a dialogue's latest end is, for a change of its record.
pub(crate) enum WaitingEnd {
    /// It waited for the next commit, and its record is changed.
    Changed,
    /// It is being committed right now.
    Committing,
    /// It is not waiting: sled has it, if anyone does.
    NotWaiting,
}

/// What the write-behind buffer says about a key.
pub(crate) enum Seen {
    /// Written and not yet committed.
    Written(Vec<u8>),
    /// Removed and not yet committed.
    Removed,
    /// Nothing pending: sled has the answer (as of this commit generation).
    Unknown(u64),
}

impl Dialogues {
    pub(crate) fn open(
        db: &sled::Db,
        faults: super::Faults,
        outbox_written: Arc<tokio::sync::Notify>,
    ) -> Result<Dialogues, StoreError> {
        let tombstones = db.open_tree("tombstones")?;
        let tomb_index = db.open_tree(TOMB_INDEX)?;
        let recent = restore(&tomb_index)?;
        Ok(Dialogues {
            sessions: db.open_tree("sessions")?,
            old_tombstones: AtomicBool::new(!tombstones.is_empty()),
            tombstones,
            tomb_chunks: db.open_tree(TOMB_CHUNKS)?,
            tomb_index,
            recent: Mutex::new(recent),
            ended: db.open_tree("ended")?,
            index: db.open_tree(ENDED_INDEX)?,
            outbox: db.open_tree(super::outbox::TREE)?,
            slots: Mutex::default(),
            committer: Mutex::default(),
            faults,
            outbox_written,
            #[cfg(test)]
            fail_after: usize::MAX.into(),
        })
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `key`'s tombstone as sled keeps it (see [`Dialogues::tombstone`] for what waits): where
    /// its end record is (`None` for a tombstone from before ids were kept in them) and its
    /// document.
    ///
    /// # Errors
    /// sled errors, or a chunk of tombstones that does not read.
    pub(crate) fn stored_tombstone(
        &self,
        key: &str,
    ) -> Result<Option<StoredTombstone>, StoreError> {
        let at = self.recent().get(key.as_bytes());
        if let Some(at) = at
            && let Some(chunk) = self.tomb_chunks.get(at.key)?
            && let Some(doc) = recent::find_in_chunk(&at.key, &chunk, at.id, key)?
        {
            return Ok(Some((Some(at), doc.to_vec())));
        }
        if self.old_tombstones.load(Ordering::Acquire)
            && let Some(v) = self.tombstones.get(key)?
        {
            let (at, doc) = tombstone_parts(&v);
            return Ok(Some((at, doc.to_vec())));
        }
        Ok(None)
    }

    /// Drops the in-memory entries of tombstones expired at `now_ms`, and lets the generation
    /// restored at start-up go too once expired (the start-up sweep is over).
    pub(crate) fn expire_recent(&self, now_ms: u64) {
        let mut recent = self.recent();
        recent.release();
        recent.expire(now_ms);
    }

    /// Drops the chunks of tombstones all expired at `now_ms`; returns how many tombstones
    /// went. Each chunk goes before its index entry: a crash in between leaves an entry with
    /// no chunk, which reads as no tombstone and goes with the next purge (the other way round
    /// would leave a chunk no purge ever finds).
    ///
    /// # Errors
    /// sled errors.
    pub(crate) fn purge_chunks(
        &self,
        store: &super::Store,
        now_ms: u64,
    ) -> Result<usize, StoreError> {
        let mut expired = Vec::new();
        store.scan_sliced(&self.tomb_index, |k, v| {
            if !recent::index_entries(k, v).is_ok_and(|(expires, _)| expires > now_ms) {
                expired.push(k.clone());
            }
            Ok(())
        })?;
        let mut gone = 0;
        for k in expired {
            // No commit meanwhile (taken with the scan gate released: a ledger transaction
            // waiting for the gate must not wait for a commit too): one written again after a
            // failure may be rewriting this chunk with more ends, and one with a lifetime of 0
            // writes entries already expired between its index entry and its chunk. Read
            // again under the lock.
            let _one = self.committer.lock().unwrap_or_else(|e| e.into_inner());
            let Some(current) = self.tomb_index.get(&k)? else {
                continue;
            };
            let count = match recent::index_entries(&k, &current) {
                Ok((expires, _)) if expires > now_ms => continue,
                Ok((_, entries)) => entries.len(),
                Err(e) => {
                    tracing::error!(error = %e, "tombstone index entry dropped: unreadable");
                    0
                }
            };
            self.tomb_chunks.remove(&k)?;
            self.tomb_index.remove(&k)?;
            gone += count;
        }
        Ok(gone)
    }

    /// Notes whether any tombstone is left in the tree of the format before chunks.
    pub(crate) fn check_old_tombstones(&self) {
        self.old_tombstones
            .store(!self.tombstones.is_empty(), Ordering::Release);
    }

    /// How many tombstones are indexed in memory.
    pub(crate) fn recent_len(&self) -> usize {
        self.recent().len()
    }

    /// Keeps a dialogue's live state for the next commit.
    pub(crate) fn put_live(&self, key: &str, state: State) {
        self.slots()
            .pending
            .live
            .insert(key.to_string(), Some(state));
    }

    /// Keeps a dialogue's end for the next commit.
    pub(crate) fn end(
        &self,
        key: &str,
        id: [u8; 8],
        (tombstone, expires_ms): (Vec<u8>, u64),
        record: Vec<u8>,
        outbox: Option<([u8; 8], Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let end = End {
            key: key.to_string(),
            id,
            tombstone,
            expires_ms,
            record,
            outbox,
        };
        let now = {
            let mut slots = self.slots();
            let now = slots.write_through.remove(key);
            slots.pending.end(end);
            now
        };
        if now {
            // Committed now, with everything that waits and in order (an older end of the same
            // key, a reused SMPP session, must not land after this one).
            self.commit()?;
        }
        Ok(())
    }

    /// What waits for `key`'s live state (serialised with no lock held; sled is read, if need
    /// be, with none held either).
    ///
    /// # Errors
    /// The waiting state does not serialise.
    pub(crate) fn live(&self, key: &str) -> Result<Seen, StoreError> {
        let state = {
            let slots = self.slots();
            match slots.find(|p| p.live.get(key)) {
                Some(Some(state)) => state.clone(),
                Some(None) => return Ok(Seen::Removed),
                None => return Ok(Seen::Unknown(slots.generation)),
            }
        };
        Ok(Seen::Written(state.to_json()?))
    }

    /// sled has no live state for `key`, read after [`Dialogues::live`] answered
    /// `Unknown(generation)`. Remembered while that still holds: no commit has begun since,
    /// so nothing for `key` can have reached sled in between.
    pub(crate) fn absent(&self, key: &str, generation: u64) {
        let mut slots = self.slots();
        if slots.generation == generation {
            slots.pending.absent.insert(key.to_string());
        }
    }

    /// What waits for `key`'s tombstone document (a copy, as for [`Dialogues::live`]).
    pub(crate) fn tombstone(&self, key: &str) -> Seen {
        let slots = self.slots();
        slots
            .find(|p| p.tombstone(key))
            .map_or(Seen::Unknown(slots.generation), |t| {
                Seen::Written(t.to_vec())
            })
    }

    /// Writes `key`'s waiting live state to sled now, ahead of the next commit, and its end
    /// when it comes (a transaction is about to run in this dialogue).
    ///
    /// # Errors
    /// sled errors; the state then stays pending.
    pub(crate) fn write_now(&self, key: &str) -> Result<(), StoreError> {
        // No commit runs meanwhile, so nothing older for `key` can land after this. The state
        // also stays pending (the next commit writes the same bytes again): readers never see
        // a gap.
        let _one = self.committer.lock().unwrap_or_else(|e| e.into_inner());
        let state = {
            let mut slots = self.slots();
            slots.write_through.insert(key.to_string());
            slots.pending.absent.remove(key);
            slots.pending.live.get(key).cloned()
        };
        match state {
            Some(Some(state)) => {
                self.sessions.insert(key, state.to_json()?)?;
            }
            Some(None) => {
                self.sessions.remove(key)?;
            }
            None => {}
        }
        Ok(())
    }

    /// Changes the end record of `key`'s latest end with `change` if that end still waits for
    /// a commit, under the lock: no commit is needed to reach it.
    ///
    /// # Errors
    /// What `change` returns.
    pub(crate) fn change_waiting_end(
        &self,
        key: &str,
        change: impl FnOnce(&[u8]) -> Result<Vec<u8>, StoreError>,
    ) -> Result<WaitingEnd, StoreError> {
        let mut slots = self.slots();
        if let Some(&i) = slots.pending.latest_end.get(key) {
            let end = &mut slots.pending.ends[i];
            end.record = change(&end.record)?;
            return Ok(WaitingEnd::Changed);
        }
        if slots
            .committing
            .as_ref()
            .is_some_and(|c| c.latest_end.contains_key(key))
        {
            return Ok(WaitingEnd::Committing);
        }
        Ok(WaitingEnd::NotWaiting)
    }

    /// Whether an end of `key` waits for a commit, or is being committed.
    pub(crate) fn end_waits(&self, key: &str) -> bool {
        self.slots().find(|p| p.latest_end.get(key)).is_some()
    }

    /// Returns once the commit in progress, if any, is over.
    pub(crate) fn wait_for_commit(&self) {
        drop(self.committer.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// How many writes wait for the next commit.
    pub(crate) fn waiting(&self) -> usize {
        let slots = self.slots();
        slots.pending.len() + slots.committing.as_ref().map_or(0, |c| c.len())
    }

    /// Writes everything pending to sled. On failure everything stays pending for the next
    /// commit, which writes it again (the same keys with the same values).
    ///
    /// # Errors
    /// sled errors, or fault injection.
    pub(crate) fn commit(&self) -> Result<usize, StoreError> {
        let _one = self.committer.lock().unwrap_or_else(|e| e.into_inner());
        let batch = {
            let mut slots = self.slots();
            if slots.pending.is_empty() {
                return Ok(0);
            }
            let fresh = slots.spare.take().unwrap_or_default();
            let batch = Arc::new(std::mem::replace(&mut slots.pending, fresh));
            slots.committing = Some(batch.clone());
            slots.generation += 1;
            batch
        };
        let written = check_writable(&self.faults).and_then(|()| self.write(&batch));
        if batch.ends.iter().any(|e| e.outbox.is_some()) {
            // Even after a failure: what was written before it may include notifications.
            self.outbox_written.notify_one();
        }
        let mut slots = self.slots();
        slots.committing = None;
        let Err(e) = written else {
            drop(slots);
            let len = batch.len();
            // Readers only look into the batch under the lock: this is the last handle. Emptied
            // with no lock held; no other commit can begin meanwhile (`committer`).
            if let Ok(mut done) = Arc::try_unwrap(batch) {
                done.clear();
                self.slots().spare = Some(done);
            }
            return Ok(len);
        };
        // Everything waits for the next commit, with what came meanwhile on top: writing the
        // same keys again is harmless. What was written before the failure is unknown, so no
        // absence is trusted any more (an end then removes the live state, as for any key).
        let mut back = Pending::clone(&batch);
        back.absent.clear();
        let newer = std::mem::take(&mut slots.pending);
        back.merge(newer);
        slots.pending = back;
        Err(e)
    }

    /// Writes a batch with sled's single-key writes, in an order a crash can cut anywhere
    /// (sled recovers a prefix of its log): the ends in the order the dialogues ended, a chunk
    /// of them at a time (their notifications, the chunk of their records, the index entry of
    /// their tombstones, the chunk of their tombstones), then the live states and removals. A
    /// crash mid-commit can leave a dialogue's end written with its live state still there;
    /// the start-up sweep, or the first hop that finds it, recognises that by the tombstone,
    /// which names the dialogue's start, and drops the live state (see `session::sweep`). No
    /// sled transaction: one holds sled's global lock, and every read of every hop (a new
    /// dialogue's look for its state, a flow's record) waits on it.
    fn write(&self, batch: &Pending) -> Result<(), StoreError> {
        // A commit written again after a failure has the same ends first, so its chunks begin
        // where they did: each is written again whole, under the same key, or with more.
        for chunk in batch.ends.chunks(CHUNK_RECORDS) {
            for (k, v) in chunk.iter().filter_map(|e| e.outbox.as_ref()) {
                self.step()?;
                // Only if absent: a commit written again after a failure must not turn an item
                // the sender has meanwhile marked sent back into a pending one.
                let _ = self
                    .outbox
                    .compare_and_swap(k, None::<&[u8]>, Some(v.as_slice()))?;
            }
            let key = chunk[0].id;
            self.step()?;
            // Written again after a failure, the chunk replaces the first attempt's with the
            // same ends or more, and the batch's copy of each record is the newer: a report on
            // an end that waits again changes the waiting record (`change_waiting_end`), and
            // one that came during the failed attempt waited for it to end.
            self.ended.insert(
                key,
                chunk_value(chunk.iter().map(|e| (e.id, e.record.as_slice()))),
            )?;
            // The index entry before its chunk: a chunk is never left without one (the purge
            // goes by the index).
            let expires_ms = chunk.iter().map(|e| e.expires_ms).max().unwrap_or(0);
            self.step()?;
            self.tomb_index.insert(
                key,
                recent::index_value(expires_ms, chunk.iter().map(|e| (e.id, e.key.as_str()))),
            )?;
            self.step()?;
            self.tomb_chunks.insert(
                key,
                recent::chunk_value(
                    chunk
                        .iter()
                        .map(|e| (e.id, e.key.as_str(), e.tombstone.as_slice())),
                ),
            )?;
            // Before the batch stops being read from (`Slots::committing`): a tombstone is
            // found in one or the other at every moment.
            let now = crate::clock::now_ms();
            let mut recent = self.recent();
            for end in chunk {
                let at = RecordAt { key, id: end.id };
                recent.insert(end.key.as_bytes(), at, end.expires_ms, now);
            }
        }
        // In key order: neighbouring keys share sled's pages.
        let mut live: Vec<_> = batch.live.iter().collect();
        live.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (key, state) in live {
            self.step()?;
            match state {
                Some(state) => match state.to_json() {
                    Ok(bytes) => self.sessions.insert(key.as_bytes(), bytes)?,
                    // Not written, so it cannot resume after a restart; it goes on meanwhile.
                    Err(e) => {
                        tracing::error!(error = %e, "dialogue state does not serialise");
                        continue;
                    }
                },
                None => self.sessions.remove(key.as_bytes())?,
            };
        }
        Ok(())
    }

    /// Before each write of a commit: tests make the n-th one fail, as a disk would midway.
    #[cfg(test)]
    fn step(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let left = self.fail_after.load(Ordering::Acquire);
        if left == 0 {
            return check_writable(&Arc::new(true.into()));
        }
        self.fail_after.store(left - 1, Ordering::Release);
        Ok(())
    }

    #[cfg(not(test))]
    #[inline(always)]
    fn step(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The tree of the index entries of chunks of tombstones, and that of the chunks.
pub(super) const TOMB_INDEX: &str = "tombstone_index";
pub(super) const TOMB_CHUNKS: &str = "tombstone_chunks";

/// The in-memory index of the tombstones kept, read back from `tombstone_index` (at start-up,
/// before the sweep that needs it). An unreadable entry is logged and skipped.
///
/// # Errors
/// sled errors.
fn restore(index: &Tree) -> Result<Recent, StoreError> {
    let t = std::time::Instant::now();
    let mut recent = Recent::default();
    let mut found = Vec::new();
    let mut last_expiry = 0;
    for item in index.iter() {
        let (k, v) = item?;
        let (expires, entries) = match recent::index_entries(&k, &v) {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(error = %e, "tombstone index entry skipped: unreadable");
                continue;
            }
        };
        let Ok(key) = <[u8; 8]>::try_from(k.as_ref()) else {
            continue;
        };
        // Those past their time too: until the purge (after the start-up sweep) one may be
        // what tells the sweep that a live state a crash left behind had ended.
        last_expiry = last_expiry.max(expires);
        for (id, session) in entries {
            found.push((recent.hash(session), RecordAt { key, id }));
        }
    }
    let n = found.len();
    recent.restore(found, last_expiry);
    if n > 0 {
        tracing::info!(
            tombstones = n,
            ms = t.elapsed().as_millis() as u64,
            "tombstones of recently ended dialogues indexed"
        );
    }
    Ok(recent)
}

impl Drop for Dialogues {
    /// The last handle on the store is going: what is pending is written, and sled flushes it
    /// as it closes.
    fn drop(&mut self) {
        if let Err(e) = self.commit() {
            tracing::error!(error = %e, "dialogue state not written at close");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;
    use serde_json::{Value, json};

    /// Ends `key`'s dialogue with `reply` as its tombstone (kept five minutes) and `record`
    /// as its end record.
    fn end(store: &Store, key: &str, reply: &str, record: Value) {
        let expires = crate::clock::now_ms() + 300_000;
        store
            .end(key, (&json!({"reply": reply}), expires), &record, None)
            .unwrap();
    }

    /// Whether sled has a tombstone for `key` (not counting what waits for a commit).
    fn stored(store: &Store, key: &str) -> bool {
        store.dialogues.stored_tombstone(key).unwrap().is_some()
    }

    /// A commit that fails after `writes` writes, as a disk (or a crash) would cut it.
    fn commit_cut_after(store: &Store, writes: usize) {
        use std::sync::atomic::Ordering;
        store.dialogues.fail_after.store(writes, Ordering::Release);
        assert!(store.commit().is_err());
        let fail_after = &store.dialogues.fail_after;
        fail_after.store(usize::MAX, Ordering::Release);
    }

    /// Opens the store at `path` again once the handle before has let go of it. sled's
    /// background threads release its file lock a moment after the last handle is dropped,
    /// and there is nothing to join: this waits for the lock (at most 5 s), as a restarted
    /// process would find it free once the old one has exited.
    fn reopen(path: &std::path::Path) -> Store {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Store::open(path, 8, 500) {
                Ok(store) => return store,
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("reopening the store: {e}"),
            }
        }
    }

    fn in_sled(store: &Store, key: &str) -> Option<Value> {
        let bytes = store.dialogues.sessions.get(key).unwrap()?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn live_state_reads_back_before_its_commit_and_two_hops_make_one_write() {
        let store = Store::temporary().unwrap();
        store.put_live("http:a", json!({"hop": 1})).unwrap();
        assert_eq!(
            store.live::<Value>("http:a").unwrap(),
            Some(json!({"hop": 1}))
        );
        assert_eq!(
            in_sled(&store, "http:a"),
            None,
            "not written before the commit"
        );
        store.put_live("http:a", json!({"hop": 2})).unwrap();
        assert_eq!(store.uncommitted(), 1);
        assert_eq!(store.commit().unwrap(), 1);
        assert_eq!(store.uncommitted(), 0);
        assert_eq!(in_sled(&store, "http:a"), Some(json!({"hop": 2})));
        assert_eq!(
            store.live::<Value>("http:a").unwrap(),
            Some(json!({"hop": 2}))
        );
    }

    #[test]
    fn an_end_hides_the_live_state_and_shows_its_tombstone_at_once() {
        let store = Store::temporary().unwrap();
        store.put_live("http:b", json!({"hop": 1})).unwrap();
        store.commit().unwrap();
        end(&store, "http:b", "END Bye", json!({"reason": "end"}));
        assert_eq!(store.live::<Value>("http:b").unwrap(), None);
        assert_eq!(
            store.tombstone::<Value>("http:b").unwrap(),
            Some(json!({"reply": "END Bye"}))
        );
        assert_eq!(
            in_sled(&store, "http:b"),
            Some(json!({"hop": 1})),
            "until the commit"
        );
        // Readers of the end records see it: they commit first.
        assert_eq!(store.ended_count(), 1);
        assert_eq!(in_sled(&store, "http:b"), None);
        assert_eq!(
            store.tombstone::<Value>("http:b").unwrap(),
            Some(json!({"reply": "END Bye"}))
        );
    }

    #[test]
    fn a_failed_commit_writes_nothing_and_keeps_everything_for_the_next() {
        let store = Store::temporary().unwrap();
        store.put_live("http:c", json!({"hop": 1})).unwrap();
        end(&store, "http:d", "END Bye", json!({"reason": "end"}));
        store.fail_writes(true);
        assert!(store.commit().is_err());
        assert!(store.flush_blocking().is_err());
        store.fail_writes(false);
        assert_eq!(
            store.live::<Value>("http:c").unwrap(),
            Some(json!({"hop": 1}))
        );
        assert_eq!(in_sled(&store, "http:c"), None);
        // A later hop of the same dialogue wins over the one that waited.
        store.put_live("http:c", json!({"hop": 2})).unwrap();
        assert_eq!(store.commit().unwrap(), 3);
        assert_eq!(in_sled(&store, "http:c"), Some(json!({"hop": 2})));
        assert!(stored(&store, "http:d"));
        assert_eq!(store.ended_count(), 1);
    }

    #[test]
    fn a_dialogue_that_transacts_has_its_state_and_end_written_at_once_and_in_order() {
        let store = Store::temporary().unwrap();
        // An earlier dialogue under the same key (a reused SMPP session) ended, not committed.
        end(&store, "smpp:k", "END first", json!({"n": 1}));
        store.put_live("smpp:k", json!({"hop": 3})).unwrap();
        store.dialogues.write_now("smpp:k").unwrap();
        assert_eq!(
            in_sled(&store, "smpp:k"),
            Some(json!({"hop": 3})),
            "before the transaction"
        );
        end(&store, "smpp:k", "END second", json!({"n": 2}));
        assert_eq!(store.uncommitted(), 0, "the end went to sled at once");
        assert_eq!(in_sled(&store, "smpp:k"), None);
        let (_, tomb) = store.dialogues.stored_tombstone("smpp:k").unwrap().unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&tomb).unwrap(),
            json!({"reply": "END second"})
        );
        store.commit().unwrap();
        assert_eq!(
            store.tombstone::<Value>("smpp:k").unwrap(),
            Some(json!({"reply": "END second"}))
        );
        assert_eq!(store.ended_count(), 2);
        // The next dialogue under that key is group-committed again.
        end(&store, "smpp:k", "END third", json!({"n": 3}));
        assert_eq!(store.uncommitted(), 2);
    }

    #[test]
    fn a_dialogue_that_begins_and_ends_between_two_commits_writes_no_live_state() {
        let store = Store::temporary().unwrap();
        // Its actor looks first: sled has nothing for it.
        assert_eq!(store.live::<Value>("smpp:n").unwrap(), None);
        store.put_live("smpp:n", json!({"hop": 1})).unwrap();
        store.put_live("smpp:n", json!({"hop": 2})).unwrap();
        end(&store, "smpp:n", "END Bye", json!({"reason": "end"}));
        assert_eq!(store.uncommitted(), 1, "the end alone waits");
        assert_eq!(store.live::<Value>("smpp:n").unwrap(), None);
        store.commit().unwrap();
        assert_eq!(in_sled(&store, "smpp:n"), None);
        assert!(stored(&store, "smpp:n"));

        // One whose state was committed before its end is removed from sled as before.
        assert_eq!(store.live::<Value>("smpp:m").unwrap(), None);
        store.put_live("smpp:m", json!({"hop": 1})).unwrap();
        store.commit().unwrap();
        assert_eq!(
            store.live::<Value>("smpp:m").unwrap(),
            Some(json!({"hop": 1}))
        );
        store.put_live("smpp:m", json!({"hop": 2})).unwrap();
        end(&store, "smpp:m", "END Bye", json!({"reason": "end"}));
        assert_eq!(store.uncommitted(), 2, "the end and the removal");
        store.commit().unwrap();
        assert_eq!(in_sled(&store, "smpp:m"), None);
    }

    #[test]
    fn an_absence_seen_across_a_commit_is_not_trusted() {
        let store = Store::temporary().unwrap();
        let super::Seen::Unknown(generation) = store.dialogues.live("smpp:r").unwrap() else {
            panic!("nothing waits for smpp:r");
        };
        // A commit begins between the look at what waits and the look in sled.
        store.put_live("smpp:other", json!({})).unwrap();
        store.commit().unwrap();
        store.dialogues.absent("smpp:r", generation);
        store.put_live("smpp:r", json!({"hop": 1})).unwrap();
        end(&store, "smpp:r", "END Bye", json!({"reason": "end"}));
        assert_eq!(store.uncommitted(), 2, "the removal is still written");
    }

    #[test]
    fn a_commit_that_fails_midway_is_written_whole_by_the_next() {
        let store = Store::temporary().unwrap();
        // smpp:c was committed before, smpp:a is new (sled has no state for it).
        store.put_live("smpp:c", json!({"hop": 1})).unwrap();
        store.commit().unwrap();
        assert_eq!(store.live::<Value>("smpp:a").unwrap(), None);
        store.put_live("smpp:a", json!({"hop": 1})).unwrap();
        store.put_live("smpp:c", json!({"hop": 2})).unwrap();
        end(&store, "smpp:b", "END Bye", json!({"n": 1}));
        // The end's three writes and smpp:a's state land (live states go in key order);
        // smpp:b's removal and smpp:c's state do not.
        commit_cut_after(&store, 4);
        assert_eq!(in_sled(&store, "smpp:a"), Some(json!({"hop": 1})));
        assert_eq!(in_sled(&store, "smpp:c"), Some(json!({"hop": 1})));
        assert_eq!(
            store.live::<Value>("smpp:c").unwrap(),
            Some(json!({"hop": 2})),
            "readers see what waits"
        );
        // smpp:a ends before the next commit: its state reached sled, so the end must remove
        // it there even though sled had nothing when its dialogue began.
        end(&store, "smpp:a", "END Bye", json!({"n": 2}));
        assert_eq!(store.commit().unwrap(), 5, "three live keys, two ends");
        assert_eq!(in_sled(&store, "smpp:a"), None);
        assert_eq!(in_sled(&store, "smpp:c"), Some(json!({"hop": 2})));
        assert_eq!(store.ended_count(), 2, "written again under the same id");
        assert!(stored(&store, "smpp:b"));
    }

    #[test]
    fn ends_are_written_before_live_states_so_a_cut_commit_keeps_every_end() {
        let store = Store::temporary().unwrap();
        store.put_live("http:x", json!({"hop": 1})).unwrap();
        store.commit().unwrap();
        end(&store, "http:x", "END Bye", json!({"n": 1}));
        store.put_live("http:y", json!({"hop": 1})).unwrap();
        // Cut right after the end's writes, as a crash would: the end is there, the live state
        // it replaces too (the start-up sweep recognises it by its tombstone).
        commit_cut_after(&store, 3);
        assert_eq!(store.dialogues.ended.len(), 1);
        assert!(stored(&store, "http:x"));
        assert_eq!(in_sled(&store, "http:x"), Some(json!({"hop": 1})));
        assert_eq!(in_sled(&store, "http:y"), None);
    }

    #[test]
    fn an_end_record_is_found_from_its_tombstone_and_old_tombstones_still_read() {
        let store = Store::temporary().unwrap();
        end(&store, "http:t", "END Bye", json!({"n": 1}));
        store.commit().unwrap();
        assert!(store.dialogues.index.is_empty(), "the index is not written");
        let changed = store
            .update_end_record::<Value>("http:t", |r| r["aggregator"] = json!("Success"))
            .unwrap();
        assert!(changed);
        let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
        assert_eq!(records, [json!({"n": 1, "aggregator": "Success"})]);

        // A tombstone and index entry as an older gateway wrote them.
        let id = 77u64.to_be_bytes();
        let d = &store.dialogues;
        d.ended.insert(id, &br#"{"n":0}"#[..]).unwrap();
        d.index.insert("http:old", &id).unwrap();
        d.tombstones
            .insert("http:old", &br#"{"reply":"END Old"}"#[..])
            .unwrap();
        d.check_old_tombstones();
        assert_eq!(
            store.tombstone::<Value>("http:old").unwrap(),
            Some(json!({"reply": "END Old"}))
        );
        assert!(
            store
                .update_end_record::<Value>("http:old", |r| r["n"] = json!(2))
                .unwrap()
        );
        let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
        assert!(records.contains(&json!({"n": 2})), "{records:?}");
        // The old index stays while an old tombstone needs it, and goes with the last one.
        let later = u64::MAX;
        let none = |_: &Value| false;
        assert_eq!(store.purge_tombstones::<Value>(later, none).unwrap(), 1);
        assert_eq!(d.index.len(), 1);
        assert_eq!(store.purge_tombstones::<Value>(later, |_| true).unwrap(), 1);
        assert!(d.index.is_empty());
        assert!(
            !store.update_end_record::<Value>("http:t", |_| ()).unwrap(),
            "found while its tombstone is kept"
        );
    }

    #[test]
    fn what_waits_is_written_when_the_last_handle_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path, 8, 500).unwrap();
            store.put_live("smpp:x", json!({"hop": 3})).unwrap();
            let other = store.clone();
            drop(store);
            assert_eq!(
                other.uncommitted(),
                1,
                "another handle still holds the store"
            );
        }
        let store = reopen(&path);
        assert_eq!(in_sled(&store, "smpp:x"), Some(json!({"hop": 3})));
    }

    #[test]
    fn the_ends_of_one_commit_go_in_chunks_and_each_record_reads_and_changes_alone() {
        let store = Store::temporary().unwrap();
        let n = 2 * super::CHUNK_RECORDS + 3;
        for i in 0..n {
            end(&store, &format!("http:{i}"), "END Bye", json!({"n": i}));
        }
        store.commit().unwrap();
        assert_eq!(store.dialogues.ended.len(), 3, "three chunks");
        assert_eq!(store.ended_count(), n);
        let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
        let want: Vec<Value> = (0..n).map(|i| json!({"n": i})).collect();
        assert_eq!(records, want, "every record, in the order they ended");

        // Two records of the same chunk changed one after the other: both changes stay.
        for i in [1, 2] {
            let key = format!("http:{i}");
            assert!(
                store
                    .update_end_record::<Value>(&key, |r| r["aggregator"] = json!(i))
                    .unwrap()
            );
        }
        let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
        assert_eq!(records[0], json!({"n": 0}));
        assert_eq!(records[1], json!({"n": 1, "aggregator": 1}));
        assert_eq!(records[2], json!({"n": 2, "aggregator": 2}));
        assert_eq!(records.len(), n);

        // Retention drops records one by one, a chunk when none of it is left.
        let gone = store
            .purge_end_records(|r| r["n"].as_u64().is_some_and(|i| i < 20))
            .unwrap();
        assert_eq!(gone, 20);
        assert_eq!(store.ended_count(), n - 20);
        assert_eq!(store.dialogues.ended.len(), 2, "the first chunk went whole");
        let first: Vec<Value> = store.ended_records().map(Result::unwrap).take(1).collect();
        assert_eq!(first, [json!({"n": 20})]);
        assert!(
            store
                .update_end_record::<Value>("http:21", |r| r["aggregator"] = json!("Success"))
                .unwrap(),
            "a record of a chunk that lost some is still found"
        );
        assert!(
            !store.update_end_record::<Value>("http:3", |_| ()).unwrap(),
            "a purged record is not found, though its tombstone is kept"
        );
    }

    #[test]
    fn a_chunk_cut_short_is_reported_not_misread() {
        let store = Store::temporary().unwrap();
        end(&store, "http:a", "END Bye", json!({"n": 1}));
        store.commit().unwrap();
        let (key, value) = store.dialogues.ended.first().unwrap().unwrap();
        store
            .dialogues
            .ended
            .insert(&key, &value[..value.len() - 3])
            .unwrap();
        let read: Vec<_> = store.ended_records::<Value>().collect();
        assert_eq!(read.len(), 1);
        let err = read.into_iter().next().unwrap().unwrap_err().to_string();
        assert!(err.contains("corrupt end-record chunk"), "{err}");
        assert!(store.update_end_record::<Value>("http:a", |_| ()).is_err());
    }

    #[test]
    fn a_chunk_written_again_after_a_failure_keeps_a_report_made_in_between() {
        let store = Store::temporary().unwrap();
        store.put_live("smpp:later", json!({"hop": 1})).unwrap();
        end(&store, "smpp:k", "END Bye", json!({"n": 1}));
        // The chunk and its tombstones land, the live state after them does not.
        commit_cut_after(&store, 3);
        assert_eq!(store.dialogues.ended.len(), 1, "the first attempt's chunk");
        // The aggregator's report comes while the end waits again.
        assert!(
            store
                .update_end_record::<Value>("smpp:k", |r| r["aggregator"] = json!("Success"))
                .unwrap()
        );
        end(&store, "smpp:j", "END Bye", json!({"n": 2}));
        store.commit().unwrap();
        let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
        assert_eq!(
            records,
            [json!({"n": 1, "aggregator": "Success"}), json!({"n": 2})],
            "the report stays, the newer end joins its chunk"
        );
        assert_eq!(store.dialogues.ended.len(), 1);
    }

    #[test]
    fn an_unreadable_chunk_is_kept_and_the_purge_goes_on_past_it() {
        let store = Store::temporary().unwrap();
        let d = &store.dialogues;
        let old = serde_json::to_vec(&json!({"ended_ms": 1})).unwrap();
        let chunk = |id: u64| super::chunk_value([(id.to_be_bytes(), old.as_slice())].into_iter());
        d.ended.insert(5u64.to_be_bytes(), chunk(5)).unwrap();
        let mut cut = chunk(6);
        cut.truncate(cut.len() - 1);
        d.ended.insert(6u64.to_be_bytes(), cut).unwrap();
        d.ended.insert(7u64.to_be_bytes(), chunk(7)).unwrap();
        // An empty chunk (never written by a commit) goes too.
        d.ended
            .insert(8u64.to_be_bytes(), super::chunk_value(std::iter::empty()))
            .unwrap();
        assert_eq!(store.ended_count(), 2, "the unreadable one counts for none");
        let gone = store.purge_end_records(|_| true).unwrap();
        assert_eq!(gone, 2);
        let left: Vec<_> = d.ended.iter().keys().map(Result::unwrap).collect();
        assert_eq!(left, [sled::IVec::from(&6u64.to_be_bytes())]);
    }

    #[test]
    fn end_records_read_in_the_order_the_dialogues_ended() {
        let store = Store::temporary().unwrap();
        let d = &store.dialogues;
        let doc = |n: u64| serde_json::to_vec(&json!({"n": n})).unwrap();
        let (a, b, c) = (doc(10), doc(20), doc(30));
        // Record 30 got its id before record 20's but joined an earlier commit's chunk.
        d.ended
            .insert(
                10u64.to_be_bytes(),
                super::chunk_value(
                    [
                        (10u64.to_be_bytes(), a.as_slice()),
                        (30u64.to_be_bytes(), c.as_slice()),
                    ]
                    .into_iter(),
                ),
            )
            .unwrap();
        d.ended
            .insert(
                20u64.to_be_bytes(),
                super::chunk_value([(20u64.to_be_bytes(), b.as_slice())].into_iter()),
            )
            .unwrap();
        let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
        assert_eq!(
            records,
            [json!({"n": 10}), json!({"n": 20}), json!({"n": 30})]
        );
    }

    #[test]
    fn a_report_on_an_end_that_waits_changes_it_without_a_commit() {
        let store = Store::temporary().unwrap();
        end(&store, "http:r", "END first", json!({"n": 1}));
        end(&store, "http:r", "END second", json!({"n": 2}));
        let waiting = store.uncommitted();
        assert!(
            store
                .update_end_record::<Value>("http:r", |r| r["aggregator"] = json!("Success"))
                .unwrap()
        );
        assert_eq!(store.uncommitted(), waiting, "nothing was committed");
        assert!(store.dialogues.ended.is_empty());
        assert!(
            !store
                .update_end_record::<Value>("http:none", |_| ())
                .unwrap(),
            "no end, waiting or kept"
        );
        let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
        assert_eq!(
            records,
            [json!({"n": 1}), json!({"n": 2, "aggregator": "Success"})],
            "the latest end of the key has the report"
        );
    }

    #[test]
    fn counts_and_purges_of_end_records_go_over_every_slice() {
        let store = Store::temporary().unwrap();
        let n = 2 * crate::store::gate::SCAN_SLICE + 5;
        for i in 0..n as u64 {
            let doc = serde_json::to_vec(&json!({"ended_ms": i})).unwrap();
            let chunk = super::chunk_value([(i.to_be_bytes(), doc.as_slice())].into_iter());
            store
                .dialogues
                .ended
                .insert(i.to_be_bytes(), chunk)
                .unwrap();
        }
        assert_eq!(store.ended_count(), n);
        let gone = store
            .purge_end_records(|r| r["ended_ms"].as_u64().is_some_and(|t| t % 2 == 0))
            .unwrap();
        assert_eq!(gone, n.div_ceil(2));
        assert_eq!(store.ended_count(), n / 2);
    }

    #[test]
    fn tombstones_are_found_after_a_restart_and_go_once_expired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let n = super::CHUNK_RECORDS + 2;
        {
            let store = Store::open(&path, 8, 500).unwrap();
            for i in 0..n {
                end(
                    &store,
                    &format!("http:{i}"),
                    &format!("END {i}"),
                    json!({"n": i}),
                );
            }
            store.flush_blocking().unwrap();
        }
        let store = reopen(&path);
        assert_eq!(store.tombstone_count(), n, "indexed again from sled");
        assert_eq!(
            store.tombstone::<Value>("http:17").unwrap(),
            Some(json!({"reply": "END 17"}))
        );
        assert_eq!(store.tombstone::<Value>("http:other").unwrap(), None);
        assert!(
            store
                .update_end_record::<Value>("http:3", |r| r["aggregator"] = json!("Success"))
                .unwrap()
        );
        // Not yet expired: kept.
        let now = crate::clock::now_ms();
        assert_eq!(store.purge_tombstones::<Value>(now, |_| true).unwrap(), 0);
        assert_eq!(store.tombstone_count(), n);
        // Past their time: every chunk and its index entry go, and the memory with them.
        let later = now + 301_000;
        assert_eq!(store.purge_tombstones::<Value>(later, |_| true).unwrap(), n);
        assert_eq!(store.tombstone_count(), 0, "the memory went with them");
        assert!(store.dialogues.tomb_chunks.is_empty());
        assert!(store.dialogues.tomb_index.is_empty());
        assert_eq!(store.tombstone::<Value>("http:17").unwrap(), None);
        assert_eq!(
            store.ended_count(),
            n,
            "end records have their own retention"
        );
    }

    #[test]
    fn a_tombstone_past_its_time_is_still_found_after_a_restart_until_the_purge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let past = crate::clock::now_ms() - 1_000;
        {
            let store = Store::open(&path, 8, 500).unwrap();
            let tomb = json!({"reply": "END Bye", "started_ms": 5});
            store
                .end("http:gone", (&tomb, past), &json!({"n": 1}), None)
                .unwrap();
            store.flush_blocking().unwrap();
        }
        // The gateway was down longer than the tombstone's lifetime: the start-up sweep still
        // needs it to recognise a live state a crash left behind.
        let store = reopen(&path);
        assert_eq!(
            store.tombstone::<Value>("http:gone").unwrap(),
            Some(json!({"reply": "END Bye", "started_ms": 5}))
        );
        // New ends after the start do not push it out.
        end(&store, "http:new", "END New", json!({"n": 2}));
        store.commit().unwrap();
        assert!(stored(&store, "http:gone"));
        let now = crate::clock::now_ms();
        assert_eq!(store.purge_tombstones::<Value>(now, |_| true).unwrap(), 1);
        assert_eq!(store.tombstone::<Value>("http:gone").unwrap(), None);
        assert!(stored(&store, "http:new"));
    }

    #[test]
    fn a_crash_between_a_tombstone_index_entry_and_its_chunk_loses_only_those_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path, 8, 500).unwrap();
            end(&store, "http:a", "END a", json!({"n": 1}));
            store.commit().unwrap();
            // As if a crash had cut the commit after the end record and the index entry (sled
            // recovers a prefix of its log).
            let (key, _) = store.dialogues.tomb_chunks.first().unwrap().unwrap();
            store.dialogues.tomb_chunks.remove(key).unwrap();
            // An earlier commit's tombstone, written whole.
            end(&store, "http:b", "END b", json!({"n": 2}));
            store.flush_blocking().unwrap();
        }
        let store = reopen(&path);
        assert_eq!(store.tombstone_count(), 2);
        assert_eq!(store.tombstone::<Value>("http:a").unwrap(), None);
        assert_eq!(
            store.tombstone::<Value>("http:b").unwrap(),
            Some(json!({"reply": "END b"}))
        );
        let later = crate::clock::now_ms() + 301_000;
        store.purge_tombstones::<Value>(later, |_| true).unwrap();
        assert!(store.dialogues.tomb_index.is_empty(), "the purge clears it");
    }

    #[test]
    fn tombstones_kept_one_per_key_in_either_older_format_still_read_and_find_their_record() {
        let store = Store::temporary().unwrap();
        let d = &store.dialogues;
        let doc = br#"{"n":5}"#;
        // Format 1: the record kept alone under its id, which the tombstone names.
        let alone = 1234u64.to_be_bytes();
        d.ended.insert(alone, &doc[..]).unwrap();
        let mut tomb = vec![1u8];
        tomb.extend_from_slice(&alone);
        tomb.extend_from_slice(br#"{"reply":"END One"}"#);
        d.tombstones.insert("http:one", tomb).unwrap();
        // Format 2: the record in a chunk, which the tombstone names with the record's id.
        let at = super::RecordAt {
            key: 40u64.to_be_bytes(),
            id: 41u64.to_be_bytes(),
        };
        d.ended
            .insert(at.key, super::chunk_value([(at.id, &doc[..])].into_iter()))
            .unwrap();
        let tomb = super::tombstone_value(at, br#"{"reply":"END Two"}"#);
        d.tombstones.insert("smpp:two", tomb).unwrap();
        d.check_old_tombstones();
        for (key, reply, n) in [("http:one", "END One", 10), ("smpp:two", "END Two", 20)] {
            assert_eq!(
                store.tombstone::<Value>(key).unwrap(),
                Some(json!({"reply": reply}))
            );
            assert!(
                store
                    .update_end_record::<Value>(key, |r| r["n"] = json!(n))
                    .unwrap()
            );
        }
        let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
        assert_eq!(records, [json!({"n": 20}), json!({"n": 10})], "in id order");
        // Purged by their documents, as before; the tree is then no longer read.
        assert_eq!(store.purge_tombstones::<Value>(0, |_| true).unwrap(), 2);
        assert!(!d.old_tombstones.load(super::Ordering::Acquire));
    }
}
