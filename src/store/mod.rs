//! The embedded sled database and everything kept in it. Nothing outside this module names
//! sled: each part of the gateway that keeps documents gets typed operations here.
//!
//! Trees:
//! - `sessions`: live dialogue state, one JSON document per session key, written by the group
//!   commit ([`write_behind`], over the buffer of [`pending`]);
//! - `tombstone_chunks`: the last reply of recently ended dialogues, to answer retries, in
//!   chunks under the key of the chunk of their end records, and `tombstone_index`, the
//!   session keys of each chunk; an index in memory finds a key's chunk ([`tombstone_index`]);
//! - `tombstones`: tombstones one per key, as written before chunks (read until none is left);
//! - `ended`: end-of-session records in chunks of a few, keyed by the id of each chunk's first
//!   record (ids grow, but an end can join a later commit than one whose id came after it).
//!   Records written before chunks are kept alone under their id until an aggregator report
//!   changes one: it is written back as a chunk of one;
//! - `records`: the documents flows read and write, keyed `collection/id` (see [`records`]);
//! - `journal`, `idempotency`, `applied`: the ledger's ([`ledger`], [`applied`]);
//! - `outbox`: the outbox's items ([`outbox`]); in cluster mode the cluster's outbox is in Redis
//!   ([`shared_outbox`]), and [`OutboxBackend`] is either one to its users;
//! - `calls`, `call_sessions`: voice call records ([`calls`]);
//! - `flow_resume`: the flows' resume points ([`resume`]);
//! - in cluster mode, messages for another node's SMPP connection ([`shared_relay`]);
//! - `meta`: small bookkeeping (whether sample data was loaded, the installation secret).
//!
//! The store's operations on dialogues are in [`dialogues`]; how every value is laid out in
//! bytes is in [`format`]; [`gate`] keeps sled transactions and scans apart.
//!
//! Dialogue state (live states and ends) is written in groups, once per commit
//! ([`write_behind`]); everything else goes to sled's in-memory log at once. Both reach the
//! disk with the flush that follows (at most one flush interval later); code that must not
//! confirm anything before it is on disk awaits [`Store::flush`].

mod applied;
mod calls;
mod data;
mod dialogues;
mod documents;
mod format;
mod gate;
pub mod ledger;
mod outbox;
mod outbox_backend;
mod pending;
pub mod records;
pub mod redis;
mod redis_sentinel;
mod resume;
mod shared_calls;
pub mod shared_dialogues;
mod shared_ends;
pub mod shared_outbox;
pub mod shared_records;
pub mod shared_relay;
mod shared_subscribers;
mod tombstone_index;
mod tx_ops;
mod write_behind;

use sled::Tree;
use sled::transaction::TransactionError;
use std::path::Path;

pub use outbox::{Outbox, Stored};
pub use outbox_backend::{Batch, Claimed, Cursor, Due, OutboxBackend};
pub use records::Records;
pub use resume::ResumePoints;

use gate::Gate;

/// Session key -> id of its (last) end-of-session record, as kept before tombstones carried
/// the id (read only for such tombstones).
const ENDED_INDEX: &str = "ended_by_session";

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
    /// Redis failed or did not answer in time (cluster mode).
    #[error("store: {0}")]
    Redis(#[from] self::redis::RedisError),
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
    /// Live states, tombstones and end records, written in groups ([`write_behind`]).
    dialogues: std::sync::Arc<write_behind::Dialogues>,
    meta: Tree,
    records: Records,
    /// Woken whenever a transaction wrote outbox items, so the sender need not poll.
    outbox_written: std::sync::Arc<tokio::sync::Notify>,
    /// Keeps multi-tree transactions and scans apart (see [`gate`]).
    gate: Gate,
    /// Fault injection: while set, every write and flush fails (see [`Store::fail_writes`]).
    faults: Faults,
    /// In cluster mode: the records, the ledger and the outbox are the cluster's, in Redis
    /// ([`shared_records`]); flows reach them through [`Store::load_record`] and its kin.
    shared: Option<shared_records::SharedRecords>,
}

/// The fault-injection switch shared by a store's handles.
pub(super) type Faults = std::sync::Arc<std::sync::atomic::AtomicBool>;

/// The error of a write refused by fault injection, as a disk that refuses writes gives it.
pub(super) fn check_writable(faults: &Faults) -> Result<(), StoreError> {
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
            dialogues: std::sync::Arc::new(write_behind::Dialogues::open(
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
            shared: None,
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
                | write_behind::TOMB_CHUNKS
                | write_behind::TOMB_INDEX
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
