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
//! Every read of dialogue state looks here first, so a commit is never visible as a gap. What
//! waits is held in [`super::pending`]; the values a commit writes are laid out as
//! [`super::format`] says.

use super::format::end_chunk::{self, CHUNK_RECORDS};
use super::format::tombstone::tombstone_parts;
use super::format::{RecordAt, tombstone_chunk};
use super::pending::{End, Pending, Slots, State};
use super::tombstone_index::{self, Recent};
use super::{ENDED_INDEX, StoreError, check_writable};
use sled::Tree;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A tombstone read from sled: where its end record is (if it says), and its document.
pub(super) type StoredTombstone = (Option<RecordAt>, Vec<u8>);

/// The dialogue trees and what waits to be written to them.
#[derive(Debug)]
pub(super) struct Dialogues {
    pub(super) sessions: Tree,
    /// Tombstones one per key, as written before they were kept in chunks: read while any is
    /// left ([`Dialogues::old_tombstones`]), never written.
    pub(super) tombstones: Tree,
    /// Whether `tombstones` may still hold any (checked at start-up and by each purge).
    old_tombstones: AtomicBool,
    /// Chunks of tombstones, under the key of the chunk of their end records ([`tombstone_index`]).
    pub(super) tomb_chunks: Tree,
    /// For each chunk of tombstones: when its last expires, its ids and session keys.
    pub(super) tomb_index: Tree,
    /// Session key hash -> where its tombstone is, for the tombstones still kept.
    recent: Mutex<Recent>,
    pub(super) ended: Tree,
    /// Session key -> end record id, as written before tombstones carried the id: read for
    /// those tombstones only, never written, emptied once none of them is left.
    pub(super) index: Tree,
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
pub(super) enum WaitingEnd {
    /// It waited for the next commit, and its record is changed.
    Changed,
    /// It is being committed right now.
    Committing,
    /// It is not waiting: sled has it, if anyone does.
    NotWaiting,
}

/// What the write-behind buffer says about a key.
pub(super) enum Seen {
    /// Written and not yet committed.
    Written(Vec<u8>),
    /// Removed and not yet committed.
    Removed,
    /// Nothing pending: sled has the answer (as of this commit generation).
    Unknown(u64),
}

impl Dialogues {
    pub(super) fn open(
        db: &sled::Db,
        faults: super::Faults,
        outbox_written: Arc<tokio::sync::Notify>,
    ) -> Result<Dialogues, StoreError> {
        let tombstones = db.open_tree("tombstones")?;
        let tomb_index = db.open_tree(TOMB_INDEX)?;
        let recent = tombstone_index::restore(&tomb_index)?;
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
    pub(super) fn stored_tombstone(
        &self,
        key: &str,
    ) -> Result<Option<StoredTombstone>, StoreError> {
        let at = self.recent().get(key.as_bytes());
        if let Some(at) = at
            && let Some(chunk) = self.tomb_chunks.get(at.key)?
            && let Some(doc) = tombstone_chunk::find_in_chunk(&at.key, &chunk, at.id, key)?
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
    pub(super) fn expire_recent(&self, now_ms: u64) {
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
    pub(super) fn purge_chunks(
        &self,
        store: &super::Store,
        now_ms: u64,
    ) -> Result<usize, StoreError> {
        let mut expired = Vec::new();
        store.scan_sliced(&self.tomb_index, |k, v| {
            if !tombstone_chunk::index_entries(k, v).is_ok_and(|(expires, _)| expires > now_ms) {
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
            let count = match tombstone_chunk::index_entries(&k, &current) {
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
    pub(super) fn check_old_tombstones(&self) {
        self.old_tombstones
            .store(!self.tombstones.is_empty(), Ordering::Release);
    }

    /// How many tombstones are indexed in memory.
    pub(super) fn recent_len(&self) -> usize {
        self.recent().len()
    }

    /// Keeps a dialogue's live state for the next commit.
    pub(super) fn put_live(&self, key: &str, state: State) {
        self.slots()
            .pending
            .live
            .insert(key.to_string(), Some(state));
    }

    /// Keeps a dialogue's end for the next commit.
    pub(super) fn end(
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
    pub(super) fn live(&self, key: &str) -> Result<Seen, StoreError> {
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
    pub(super) fn absent(&self, key: &str, generation: u64) {
        let mut slots = self.slots();
        if slots.generation == generation {
            slots.pending.absent.insert(key.to_string());
        }
    }

    /// What waits for `key`'s tombstone document (a copy, as for [`Dialogues::live`]).
    pub(super) fn tombstone(&self, key: &str) -> Seen {
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
    pub(super) fn write_now(&self, key: &str) -> Result<(), StoreError> {
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
    pub(super) fn change_waiting_end(
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

    /// What waits for `key`'s live state, if anything does (waiting for a commit, or being
    /// committed): `Some(true)` a state, `Some(false)` its removal.
    pub(super) fn live_waits(&self, key: &str) -> Option<bool> {
        self.slots()
            .find(|p| p.live.get(key))
            .map(|state| state.is_some())
    }

    /// Whether an end of `key` waits for a commit, or is being committed.
    pub(super) fn end_waits(&self, key: &str) -> bool {
        self.slots().find(|p| p.latest_end.get(key)).is_some()
    }

    /// Returns once the commit in progress, if any, is over.
    pub(super) fn wait_for_commit(&self) {
        drop(self.committer.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// How many writes wait for the next commit.
    pub(super) fn waiting(&self) -> usize {
        let slots = self.slots();
        slots.pending.len() + slots.committing.as_ref().map_or(0, |c| c.len())
    }

    /// Writes everything pending to sled. On failure everything stays pending for the next
    /// commit, which writes it again (the same keys with the same values).
    ///
    /// # Errors
    /// sled errors, or fault injection.
    pub(super) fn commit(&self) -> Result<usize, StoreError> {
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
                end_chunk::chunk_value(chunk.iter().map(|e| (e.id, e.record.as_slice()))),
            )?;
            // The index entry before its chunk: a chunk is never left without one (the purge
            // goes by the index).
            let expires_ms = chunk.iter().map(|e| e.expires_ms).max().unwrap_or(0);
            self.step()?;
            self.tomb_index.insert(
                key,
                tombstone_chunk::index_value(
                    expires_ms,
                    chunk.iter().map(|e| (e.id, e.key.as_str())),
                ),
            )?;
            self.step()?;
            self.tomb_chunks.insert(
                key,
                tombstone_chunk::chunk_value(
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
#[path = "write_behind_tests.rs"]
mod tests;
