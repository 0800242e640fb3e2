//! The store's operations on dialogue state: live states, ends, tombstones and end records.
//!
//! Reads look into the write-behind buffer first ([`super::write_behind`]), then into sled;
//! writes wait there for the next commit. End records are kept in chunks and tombstones are
//! found through the index in memory ([`super::tombstone_index`]); both are also read in the
//! formats older gateways wrote ([`super::format`]).

use super::format::RecordAt;
use super::format::end_chunk;
use super::format::tombstone::tombstone_parts;
use super::write_behind::{Seen, WaitingEnd};
use super::{Store, StoreError, check_writable};
use serde::{Serialize, de::DeserializeOwned};
use sled::Tree;

/// Keys of the old session index removed per tombstone purge (see [`Store::purge_tombstones`]).
const OLD_INDEX_SLICE: usize = 10_000;

impl Store {
    /// Reads the live state of a dialogue.
    ///
    /// # Errors
    /// sled errors, or a document that no longer parses.
    pub fn live<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.dialogues.live(key)? {
            Seen::Written(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Seen::Removed => Ok(None),
            Seen::Unknown(generation) => {
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

    /// Whether `key`'s live state is in sled as last written: no write of it waits for a
    /// commit or is being committed. A dialogue whose actor is passivated (`session::passive`)
    /// is read back from here by its next message, as after a restart.
    pub fn live_settled(&self, key: &str) -> bool {
        self.dialogues.live_waits(key).is_none()
    }

    /// Whether `key` has a live state (waiting for a commit, or in sled), without reading it.
    ///
    /// # Errors
    /// sled errors.
    pub fn live_exists(&self, key: &str) -> Result<bool, StoreError> {
        match self.dialogues.live_waits(key) {
            Some(written) => Ok(written),
            None => Ok(self.dialogues.sessions.contains_key(key)?),
        }
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
                WaitingEnd::Changed => return Ok(true),
                // In sled once that commit is over (or waiting again if it failed).
                WaitingEnd::Committing => self.dialogues.wait_for_commit(),
                WaitingEnd::NotWaiting => break,
            }
        }
        let Some((at, _)) = self.dialogues.stored_tombstone(key)? else {
            return Ok(false);
        };
        let at = match at {
            Some(at) => at,
            None => match self.dialogues.index.get(key)? {
                Some(id) => match <[u8; 8]>::try_from(id.as_ref()) {
                    Ok(id) => RecordAt { key: id, id },
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
            let mut records: Vec<([u8; 8], Vec<u8>)> = end_chunk::chunk_records(&at.key, &value)?
                .into_iter()
                .map(|(id, doc)| (id, doc.to_vec()))
                .collect();
            let Some((_, doc)) = records.iter_mut().find(|(id, _)| *id == at.id) else {
                return Ok(false);
            };
            *doc = change_doc(doc)?;
            // A record kept alone, as an older gateway wrote it, becomes a chunk of one.
            let new = end_chunk::chunk_value(records.iter().map(|(id, doc)| (*id, doc.as_slice())));
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
            Seen::Written(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Seen::Removed | Seen::Unknown(_) => match self.dialogues.stored_tombstone(key)? {
                Some((_, doc)) => Ok(Some(serde_json::from_slice(&doc)?)),
                None => Ok(None),
            },
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
            let (id, document) = tombstone_parts(&v);
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
            match end_chunk::chunk_records(k, v) {
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
                Ok(end_chunk::chunk_records(&k, &v)?
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
            let records = match end_chunk::chunk_records(k, v) {
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
                Some(end_chunk::chunk_value(kept.iter().copied()))
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
}

fn get_json<T: DeserializeOwned>(tree: &Tree, key: &str) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}
