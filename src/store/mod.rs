//! The embedded sled database and everything kept in it.
//!
//! Trees:
//! - `sessions`: live dialogue state, one JSON document per session key, written by the group
//!   commit ([`behind`]);
//! - `tombstone_chunks`: the last reply of recently ended dialogues, to answer retries, in
//!   chunks under the key of the chunk of their end records, and `tombstone_index`, the
//!   session keys of each chunk; an index in memory finds a key's chunk ([`recent`]);
//! - `tombstones`: tombstones one per key, as written before chunks (read until none is left);
//! - `ended`: end-of-session records in chunks of a few, keyed by the id of each chunk's first
//!   record (ids grow, but an end can join a later commit than one whose id came after it).
//!   Records written before chunks are kept alone under their id until an aggregator report
//!   changes one: it is written back as a chunk of one;
//! - `records`: the documents flows read and write, keyed `collection/id` (see [`records`]);
//! - `meta`: small bookkeeping (whether sample data was loaded).
//!
//! Dialogue state (live states and ends) is written in groups, once per commit ([`behind`]);
//! everything else goes to sled's in-memory log at once. Both reach the disk with the flush
//! that follows (at most one flush interval later); code that must not confirm anything before
//! it is on disk awaits [`Store::flush`].

mod behind;
mod calls;
mod documents;
mod gate;
pub mod ledger;
mod outbox;
mod recent;
pub mod records;
mod resume;

use serde::{Serialize, de::DeserializeOwned};
use sled::Tree;
use sled::transaction::TransactionError;
use std::path::Path;

pub use outbox::{Outbox, Stored};
pub use records::Records;
pub use resume::ResumePoints;

use gate::Gate;

/// Session key -> id of its (last) end-of-session record, as kept before tombstones carried
/// the id (read only for such tombstones).
const ENDED_INDEX: &str = "ended_by_session";

/// Keys of the old session index removed per tombstone purge (see [`Store::purge_tombstones`]).
const OLD_INDEX_SLICE: usize = 10_000;

/// A store failure. The gateway answers the hop with an apology and counts it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an I/O or corruption problem.
    #[error("store: {0}")]
    Sled(#[source] DbError),
    /// A stored document could not be (de)serialised.
    #[error("store: bad document: {0}")]
    Codec(#[from] serde_json::Error),
    /// A stored value is not in any format the gateway writes.
    #[error("store: corrupt {0}")]
    Corrupt(String),
    /// A transaction was aborted by its own logic.
    #[error("store: {0}")]
    Aborted(String),
}

/// An error of the database itself (I/O, corruption), as sled said it. Its type stays inside
/// the store: nothing else names sled.
#[derive(thiserror::Error)]
#[error(transparent)]
pub struct DbError(sled::Error);

impl std::fmt::Debug for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(DbError(e))
    }
}

impl From<TransactionError<String>> for StoreError {
    fn from(e: TransactionError<String>) -> Self {
        match e {
            TransactionError::Abort(m) => StoreError::Aborted(m),
            TransactionError::Storage(e) => e.into(),
        }
    }
}

/// A cheap-to-clone handle on the database.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    /// Live states, tombstones and end records, written in groups ([`behind`]).
    dialogues: std::sync::Arc<behind::Dialogues>,
    meta: Tree,
    records: Records,
    /// Woken whenever a transaction wrote outbox items, so the sender need not poll.
    outbox_written: std::sync::Arc<tokio::sync::Notify>,
    /// Keeps multi-tree transactions and scans apart (see [`gate`]).
    gate: Gate,
    /// Fault injection: while set, every write and flush fails (see [`Store::fail_writes`]).
    faults: Faults,
}

/// The fault-injection switch shared by a store's handles.
pub(crate) type Faults = std::sync::Arc<std::sync::atomic::AtomicBool>;

/// The error of a write refused by fault injection, as a disk that refuses writes gives it.
pub(crate) fn check_writable(faults: &Faults) -> Result<(), StoreError> {
    if faults.load(std::sync::atomic::Ordering::Acquire) {
        return Err(
            sled::Error::Io(std::io::Error::other("write refused (fault injection)")).into(),
        );
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the database at `path`.
    ///
    /// # Errors
    /// The folder cannot be created or the database is locked or corrupt.
    pub fn open(path: &Path, cache_mb: u64, flush_every_ms: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb * 1024 * 1024)
            .flush_every_ms(Some(flush_every_ms))
            .open()?;
        Store::from_db(db)
    }

    /// A throw-away database for tests.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(16 * 1024 * 1024)
            .open()?;
        Store::from_db(db)
    }

    fn from_db(db: sled::Db) -> Result<Store, StoreError> {
        let gate = Gate::default();
        let faults = Faults::default();
        let outbox_written: std::sync::Arc<tokio::sync::Notify> = Default::default();
        Ok(Store {
            dialogues: std::sync::Arc::new(behind::Dialogues::open(
                &db,
                faults.clone(),
                outbox_written.clone(),
            )?),
            meta: db.open_tree("meta")?,
            records: Records::new(
                db.open_tree("records")?,
                db.clone(),
                gate.clone(),
                faults.clone(),
            ),
            outbox_written,
            gate,
            faults,
            db,
        })
    }

    /// A named tree, for a part of the store that keeps its own documents (call records,
    /// outbox, ledger). Names are fixed strings in code, never user input.
    ///
    /// # Errors
    /// sled errors.
    fn tree(&self, name: &str) -> Result<Tree, StoreError> {
        if matches!(
            name,
            "sessions"
                | "tombstones"
                | behind::TOMB_CHUNKS
                | behind::TOMB_INDEX
                | "ended"
                | ENDED_INDEX
        ) {
            // Whoever reads these trees directly sees every dialogue written so far.
            self.commit()?;
        }
        Ok(self.db.open_tree(name)?)
    }

    /// A fresh id, unique and increasing for this database.
    ///
    /// # Errors
    /// sled errors.
    pub fn generate_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Held while a sled transaction runs (see [`gate`]).
    fn exclusive(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.gate.exclusive()
    }

    /// Held while a scan (an iterator over a tree) runs (see [`gate`]).
    fn shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.shared()
    }

    /// [`Gate::scan_sliced`].
    fn scan_sliced(
        &self,
        tree: &Tree,
        f: impl FnMut(&sled::IVec, &sled::IVec) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.gate.scan_sliced(tree, f)
    }

    /// Signalled after a transaction wrote outbox items.
    pub fn outbox_signal(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.outbox_written.clone()
    }

    /// The records flows read and write.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// Fault injection for tests and drills: while `fail` is true every write of a dialogue,
    /// a record or a transaction, and every flush, fails as on a disk that refuses writes,
    /// before anything is changed. Reads go on working.
    #[doc(hidden)]
    pub fn fail_writes(&self, fail: bool) {
        self.faults
            .store(fail, std::sync::atomic::Ordering::Release);
    }

    /// Waits until everything written so far is on disk.
    ///
    /// # Errors
    /// The flush failed (disk full, I/O error).
    pub async fn flush(&self) -> Result<(), StoreError> {
        // A blocking flush on the blocking pool rather than sled's `flush_async`, which can
        // deadlock in sled 0.34 (its issue #1308).
        check_writable(&self.faults)?;
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(result) => {
                result?;
                Ok(())
            }
            Err(e) => Err(StoreError::Aborted(format!("flush task failed: {e}"))),
        }
    }

    /// Writes the dialogue state waiting for a commit, then flushes synchronously: the
    /// gateway's commit every flush interval, and its last act at shutdown.
    ///
    /// # Errors
    /// The commit or the flush failed; what was not committed stays pending.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.commit_timed()?;
        check_writable(&self.faults)?;
        self.db.flush()?;
        Ok(())
    }

    /// [`Store::commit`], its latency and failures counted (`op="commit"`).
    ///
    /// # Errors
    /// As [`Store::commit`].
    pub fn commit_timed(&self) -> Result<usize, StoreError> {
        let t = std::time::Instant::now();
        let committed = self.dialogues.commit();
        if !matches!(committed, Ok(0)) {
            crate::metrics::store_write("commit", t.elapsed(), committed.is_ok());
        }
        committed
    }

    /// Writes the dialogue state waiting for a commit to sled (not yet to disk); returns how
    /// many writes it made.
    ///
    /// # Errors
    /// sled errors; what was not committed stays pending.
    pub fn commit(&self) -> Result<usize, StoreError> {
        self.dialogues.commit()
    }

    /// How many dialogue writes wait for the next commit.
    pub fn uncommitted(&self) -> usize {
        self.dialogues.waiting()
    }

    /// Reads the live state of a dialogue.
    ///
    /// # Errors
    /// sled errors, or a document that no longer parses.
    pub fn live<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.dialogues.live(key)? {
            behind::Seen::Written(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            behind::Seen::Removed => Ok(None),
            behind::Seen::Unknown(generation) => {
                let found = get_json(&self.dialogues.sessions, key)?;
                if found.is_none() {
                    self.dialogues.absent(key, generation);
                }
                Ok(found)
            }
        }
    }

    /// Writes the live state of a dialogue (with the next commit, which serialises it: a
    /// dialogue that ends first never costs its serialisation).
    ///
    /// # Errors
    /// A store that refuses writes.
    pub fn put_live<T>(&self, key: &str, state: T) -> Result<(), StoreError>
    where
        T: Serialize + Send + Sync + std::fmt::Debug + 'static,
    {
        check_writable(&self.faults)?;
        self.dialogues.put_live(key, std::sync::Arc::new(state));
        Ok(())
    }

    /// Removes a live dialogue without an end record if sled's document for it is still one
    /// that `stale` says so of (a compare-and-swap: a newer state written meanwhile stays),
    /// after a commit of what waits.
    ///
    /// # Errors
    /// sled errors.
    pub fn remove_live_if(
        &self,
        key: &str,
        stale: impl Fn(&[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.commit()?;
        if let Some(current) = self.dialogues.sessions.get(key)?
            && stale(&current)
        {
            // Lost to a newer write: that one stays.
            let _ = self
                .dialogues
                .sessions
                .compare_and_swap(key, Some(current), None::<&[u8]>)?;
        }
        Ok(())
    }

    /// Every live dialogue's key and raw document (the start-up sweep reads these), after a
    /// commit of what waits.
    pub fn live_entries(&self) -> std::vec::IntoIter<Result<(String, Vec<u8>), StoreError>> {
        if let Err(e) = self.commit() {
            return vec![Err(e)].into_iter();
        }
        let _gate = self.shared();
        self.dialogues
            .sessions
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// How many dialogues are persisted as live (after a commit of what waits).
    pub fn live_count(&self) -> usize {
        let _ = self.commit();
        self.dialogues.sessions.len()
    }

    /// Ends a dialogue: its live state goes, its tombstone (for retries, kept until
    /// `expires_ms`), its end-of-session record and `notification` (for the outbox) are
    /// written, all with the next commit.
    ///
    /// # Errors
    /// Serialisation errors, or a store that refuses writes; nothing is changed then.
    pub fn end<T: Serialize, E: Serialize>(
        &self,
        key: &str,
        (tombstone, expires_ms): (&T, u64),
        record: &E,
        notification: Option<crate::effect::Effect>,
    ) -> Result<(), StoreError> {
        check_writable(&self.faults)?;
        let id = self.db.generate_id()?.to_be_bytes();
        let tomb = serde_json::to_vec(tombstone)?;
        let rec = serde_json::to_vec(record)?;
        let item = match notification {
            Some(effect) => {
                let item = crate::effect::Item::new(
                    self.db.generate_id()?,
                    effect,
                    crate::clock::now_ms(),
                    None,
                    Some(key.to_string()),
                );
                Some((item.key(), serde_json::to_vec(&item)?))
            }
            None => None,
        };
        self.dialogues.end(key, id, (tomb, expires_ms), rec, item)
    }

    /// Changes the end-of-session record of the dialogue `key` (the last one it left), if it
    /// and the dialogue's tombstone are still kept. Returns whether there was one.
    ///
    /// Called from the key's own actor, as every end of the key is: so no end of the key can
    /// be on its way into sled while this changes sled's copy (a commit written again after a
    /// failure writes its own copy of the records it holds).
    ///
    /// # Errors
    /// sled or serialisation errors.
    pub fn update_end_record<E: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        change: impl Fn(&mut E),
    ) -> Result<bool, StoreError> {
        // Aggregators report within seconds of the END, mostly before its commit: the waiting
        // record is changed in place. (Committing here instead, on an actor's thread, made a
        // commit per report and held that thread for as long as a commit in progress took.)
        let change_doc = |doc: &[u8]| -> Result<Vec<u8>, StoreError> {
            let mut record: E = serde_json::from_slice(doc)?;
            change(&mut record);
            Ok(serde_json::to_vec(&record)?)
        };
        loop {
            match self.dialogues.change_waiting_end(key, change_doc)? {
                behind::WaitingEnd::Changed => return Ok(true),
                // In sled once that commit is over (or waiting again if it failed).
                behind::WaitingEnd::Committing => self.dialogues.wait_for_commit(),
                behind::WaitingEnd::NotWaiting => break,
            }
        }
        let Some((at, _)) = self.dialogues.stored_tombstone(key)? else {
            return Ok(false);
        };
        let at = match at {
            Some(at) => at,
            None => match self.dialogues.index.get(key)? {
                Some(id) => match <[u8; 8]>::try_from(id.as_ref()) {
                    Ok(id) => behind::RecordAt { key: id, id },
                    Err(_) => return Ok(false),
                },
                None => return Ok(false),
            },
        };
        // Compare-and-swap: another record of the same chunk may be changed meanwhile.
        loop {
            let Some(value) = self.dialogues.ended.get(at.key)? else {
                return Ok(false);
            };
            let mut records: Vec<([u8; 8], Vec<u8>)> = behind::chunk_records(&at.key, &value)?
                .into_iter()
                .map(|(id, doc)| (id, doc.to_vec()))
                .collect();
            let Some((_, doc)) = records.iter_mut().find(|(id, _)| *id == at.id) else {
                return Ok(false);
            };
            *doc = change_doc(doc)?;
            // A record kept alone, as an older gateway wrote it, becomes a chunk of one.
            let new = behind::chunk_value(records.iter().map(|(id, doc)| (*id, doc.as_slice())));
            if self
                .dialogues
                .ended
                .compare_and_swap(at.key, Some(value), Some(new))?
                .is_ok()
            {
                return Ok(true);
            }
        }
    }

    /// The tombstone of an ended dialogue, if still kept.
    ///
    /// # Errors
    /// sled or parse errors.
    pub fn tombstone<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.dialogues.tombstone(key) {
            behind::Seen::Written(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            behind::Seen::Removed | behind::Seen::Unknown(_) => {
                match self.dialogues.stored_tombstone(key)? {
                    Some((_, doc)) => Ok(Some(serde_json::from_slice(&doc)?)),
                    None => Ok(None),
                }
            }
        }
    }

    /// Removes the tombstones expired at `now_ms`, and those of the format before chunks for
    /// which `expired` says so; returns how many went.
    ///
    /// # Errors
    /// sled errors.
    pub fn purge_tombstones<T: DeserializeOwned>(
        &self,
        now_ms: u64,
        expired: impl Fn(&T) -> bool,
    ) -> Result<usize, StoreError> {
        // First: memory is trimmed even when the store fails.
        self.dialogues.expire_recent(now_ms);
        self.commit()?;
        let mut gone = self.dialogues.purge_chunks(self, now_ms)?;
        gone += self.purge_old_tombstones(expired)?;
        self.dialogues.check_old_tombstones();
        Ok(gone)
    }

    /// How many tombstones are kept (indexed in memory, after a commit of what waits; any of
    /// the format before chunks are not counted).
    pub fn tombstone_count(&self) -> usize {
        let _ = self.commit();
        self.dialogues.recent_len()
    }

    fn purge_old_tombstones<T: DeserializeOwned>(
        &self,
        expired: impl Fn(&T) -> bool,
    ) -> Result<usize, StoreError> {
        let mut gone = 0;
        let mut old_format_kept = false;
        let _gate = self.shared();
        for item in self.dialogues.tombstones.iter() {
            let (k, v) = item?;
            let (id, document) = behind::tombstone_parts(&v);
            let drop = match serde_json::from_slice::<T>(document) {
                Ok(t) => expired(&t),
                Err(_) => true,
            };
            old_format_kept |= id.is_none() && !drop;
            // Unless a newer end of the same key replaced it meanwhile (commits take no lock).
            if drop
                && self
                    .dialogues
                    .tombstones
                    .compare_and_swap(&k, Some(&v), None::<&[u8]>)?
                    .is_ok()
            {
                gone += 1;
            }
        }
        // The old session index serves only tombstones from before they carried the id: once
        // none is left, it goes (it held every session key ever seen), a slice per purge so
        // that the scan never holds the gate long.
        if !old_format_kept {
            let keys: Vec<sled::IVec> = self
                .dialogues
                .index
                .iter()
                .keys()
                .take(OLD_INDEX_SLICE)
                .collect::<Result<_, _>>()?;
            if !keys.is_empty() {
                tracing::info!(
                    keys = keys.len(),
                    "emptying the old session index (ended_by_session): no tombstone needs it"
                );
            }
            for k in keys {
                self.dialogues.index.remove(k)?;
            }
        }
        Ok(gone)
    }

    /// How many end-of-session records are kept (after a commit of what waits), counted a slice
    /// at a time ([`Store::scan_sliced`]). An unreadable entry counts for none, and is logged.
    pub fn ended_count(&self) -> usize {
        let _ = self.commit();
        let mut n = 0;
        let counted = self.scan_sliced(&self.dialogues.ended, |k, v| {
            match behind::chunk_records(k, v) {
                Ok(records) => n += records.len(),
                Err(e) => tracing::error!(error = %e, "end records not counted"),
            }
            Ok(())
        });
        if let Err(e) = counted {
            tracing::error!(error = %e, "end records not counted");
        }
        n
    }

    /// End-of-session records, oldest first (by id: the order in which the dialogues ended),
    /// after a commit of what waits.
    pub fn ended_records<T: DeserializeOwned>(&self) -> std::vec::IntoIter<Result<T, StoreError>> {
        if let Err(e) = self.commit() {
            return vec![Err(e)].into_iter();
        }
        let _gate = self.shared();
        // Chunks are keyed by their first record's id, and an end can join a later commit
        // than one whose id came after it: ordered by each record's own id.
        let mut out: Vec<([u8; 8], Result<T, StoreError>)> = Vec::new();
        for item in self.dialogues.ended.iter() {
            let decoded = item.map_err(StoreError::from).and_then(|(k, v)| {
                Ok(behind::chunk_records(&k, &v)?
                    .into_iter()
                    .map(|(id, doc)| (id, serde_json::from_slice(doc).map_err(StoreError::from)))
                    .collect::<Vec<_>>())
            });
            match decoded {
                Ok(records) => out.extend(records),
                Err(e) => out.push(([u8::MAX; 8], Err(e))),
            }
        }
        out.sort_by_key(|(id, _)| *id);
        out.into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Removes the end-of-session records for which `expired` says so, a slice at a time
    /// ([`Store::scan_sliced`]); returns how many went. An unreadable chunk is kept, and
    /// logged: it never stops the purge of the others.
    ///
    /// # Errors
    /// sled errors.
    pub fn purge_end_records(
        &self,
        expired: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<usize, StoreError> {
        self.commit()?;
        let mut gone = 0;
        self.scan_sliced(&self.dialogues.ended, |k, v| {
            let records = match behind::chunk_records(k, v) {
                Ok(records) => records,
                Err(e) => {
                    tracing::error!(error = %e, "end records kept: unreadable");
                    return Ok(());
                }
            };
            let kept: Vec<_> = records
                .iter()
                .filter(|(_, doc)| {
                    // An unreadable record is kept, as it would be alone.
                    !serde_json::from_slice(doc).is_ok_and(|d| expired(&d))
                })
                .copied()
                .collect();
            if kept.len() == records.len() && !kept.is_empty() {
                return Ok(());
            }
            let new = if kept.is_empty() {
                None
            } else {
                Some(behind::chunk_value(kept.iter().copied()))
            };
            // Unless a record of the chunk changed meanwhile: the next purge sees it.
            if self
                .dialogues
                .ended
                .compare_and_swap(k, Some(v), new)?
                .is_ok()
            {
                gone += records.len() - kept.len();
            }
            Ok(())
        })?;
        Ok(gone)
    }

    /// A bookkeeping flag.
    ///
    /// # Errors
    /// sled errors.
    pub fn meta_flag(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.meta.get(name)?.is_some())
    }

    /// Sets a bookkeeping flag.
    ///
    /// # Errors
    /// sled errors.
    pub fn set_meta_flag(&self, name: &str) -> Result<(), StoreError> {
        self.meta.insert(name, &[1u8])?;
        Ok(())
    }

    /// This installation's secret: 32 random bytes made on first use and kept (and flushed)
    /// from then on, for keyed hashes that must give the same answer after a restart (the
    /// session ids in log lines) and that no one without the database can compute.
    ///
    /// # Errors
    /// sled errors.
    pub fn installation_secret(&self) -> Result<[u8; 32], StoreError> {
        const NAME: &str = "installation_secret";
        let fresh: [u8; 32] = rand::random();
        let kept = match self
            .meta
            .compare_and_swap(NAME, None::<&[u8]>, Some(&fresh[..]))?
        {
            Ok(()) => {
                self.meta.flush()?;
                return Ok(fresh);
            }
            Err(cas) => cas.current,
        };
        kept.as_deref()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("meta {NAME} is not 32 bytes")))
    }
}

fn get_json<T: DeserializeOwned>(tree: &Tree, key: &str) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}
