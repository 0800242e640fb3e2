//! Group commit of dialogue state.
//!
//! A hop's live state, and a dialogue's end (its tombstone, end-of-session record, index entry
//! and end-of-session notification), are kept here in memory and written to sled together with
//! every other dialogue's, once per commit (the gateway commits every flush interval, then
//! flushes). sled itself only reaches the disk once per flush interval, so what a crash can lose
//! is unchanged: a hop answered at least one flush interval before it is on disk. What changes
//! is the cost: a few transactions per interval instead of one write per hop, and the state of
//! a dialogue that ends within the interval is never written at all.
//!
//! A commit is cut into transactions of at most [`PART_KEYS`] dialogues, each dialogue's
//! writes in one of them: every sled read (a new dialogue's look for a tombstone) waits on
//! sled's global lock while a transaction holds it, so one transaction for the whole interval
//! made reads wait tens of milliseconds behind it.
//!
//! Records that flows change (balances, registrations, appointments) never wait here: they are
//! written in their own transaction and flushed before the reply that confirms them.
//!
//! Every read of dialogue state looks here first, so a commit is never visible as a gap.

use super::{ENDED_INDEX, StoreError, check_writable};
use sled::transaction::ConflictableTransactionError;
use sled::{Transactional, Tree};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Session keys written per transaction of a commit.
const PART_KEYS: usize = 1024;

/// Writes of dialogue state that wait for the next commit.
#[derive(Debug, Default, Clone)]
struct Pending {
    /// Session key -> its live state, or `None` when it was removed.
    live: HashMap<String, Option<Vec<u8>>>,
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

/// One transaction's share of a commit (see [`Pending::parts`]).
#[derive(Debug, Default)]
struct Part<'a> {
    live: Vec<(&'a str, Option<&'a [u8]>)>,
    ends: Vec<&'a End>,
}

impl Part<'_> {
    fn keys(&self) -> impl Iterator<Item = &str> {
        self.live
            .iter()
            .map(|(k, _)| *k)
            .chain(self.ends.iter().map(|e| e.key.as_str()))
    }

    /// Back into waiting writes, after a failed commit.
    fn restore(&self, into: &mut Pending) {
        for (key, state) in &self.live {
            into.live.insert(key.to_string(), state.map(<[u8]>::to_vec));
        }
        for end in &self.ends {
            into.latest_end.insert(end.key.clone(), into.ends.len());
            into.ends.push((*end).clone());
        }
    }
}

#[derive(Debug, Clone)]
struct End {
    key: String,
    id: [u8; 8],
    tombstone: Vec<u8>,
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
        // Nothing of the older batch reached sled: its absences still hold.
        self.absent.extend(newer.absent);
        for end in newer.ends {
            self.latest_end.insert(end.key.clone(), self.ends.len());
            self.ends.push(end);
        }
    }

    /// The batch cut into parts of at most `keys` session keys each, every key's writes (its
    /// live state and its ends, in order) in one part: each part is one transaction, so a
    /// dialogue's end stays atomic and in order while sled's global lock, which every read
    /// waits for, is held for one part at a time instead of the whole interval's.
    fn parts(&self, keys: usize) -> Vec<Part<'_>> {
        let keys = keys.max(1);
        let mut part_of: HashMap<&str, usize> = HashMap::new();
        let all = self.ends.iter().map(|e| e.key.as_str());
        for key in all.chain(self.live.keys().map(String::as_str)) {
            let next = part_of.len() / keys;
            part_of.entry(key).or_insert(next);
        }
        let mut parts: Vec<Part<'_>> = (0..part_of.len().div_ceil(keys))
            .map(|_| Part::default())
            .collect();
        for end in &self.ends {
            parts[part_of[end.key.as_str()]].ends.push(end);
        }
        for (key, state) in &self.live {
            parts[part_of[key.as_str()]]
                .live
                .push((key.as_str(), state.as_deref()));
        }
        parts
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
    pub(crate) tombstones: Tree,
    pub(crate) ended: Tree,
    pub(crate) index: Tree,
    outbox: Tree,
    slots: Mutex<Slots>,
    /// One commit at a time.
    committer: Mutex<()>,
    gate: Arc<std::sync::RwLock<()>>,
    faults: super::Faults,
    outbox_written: Arc<tokio::sync::Notify>,
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
        gate: Arc<std::sync::RwLock<()>>,
        faults: super::Faults,
        outbox_written: Arc<tokio::sync::Notify>,
    ) -> Result<Dialogues, StoreError> {
        Ok(Dialogues {
            sessions: db.open_tree("sessions")?,
            tombstones: db.open_tree("tombstones")?,
            ended: db.open_tree("ended")?,
            index: db.open_tree(ENDED_INDEX)?,
            outbox: db.open_tree(crate::outbox::TREE)?,
            slots: Mutex::default(),
            committer: Mutex::default(),
            gate,
            faults,
            outbox_written,
        })
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a dialogue's live state for the next commit.
    pub(crate) fn put_live(&self, key: &str, state: Vec<u8>) {
        self.slots()
            .pending
            .live
            .insert(key.to_string(), Some(state));
    }

    /// Keeps a dialogue's end for the next commit, which writes it in one transaction.
    pub(crate) fn end(
        &self,
        key: &str,
        id: [u8; 8],
        tombstone: Vec<u8>,
        record: Vec<u8>,
        outbox: Option<([u8; 8], Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let end = End {
            key: key.to_string(),
            id,
            tombstone,
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

    /// What waits for `key`'s live state (a copy: sled is read, if need be, with no lock held).
    pub(crate) fn live(&self, key: &str) -> Seen {
        let slots = self.slots();
        match slots.find(|p| p.live.get(key)) {
            Some(Some(bytes)) => Seen::Written(bytes.clone()),
            Some(None) => Seen::Removed,
            None => Seen::Unknown(slots.generation),
        }
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

    /// What waits for `key`'s tombstone (a copy, as for [`Dialogues::live`]).
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
            Some(Some(bytes)) => {
                self.sessions.insert(key, bytes)?;
            }
            Some(None) => {
                self.sessions.remove(key)?;
            }
            None => {}
        }
        Ok(())
    }

    /// How many writes wait for the next commit.
    pub(crate) fn waiting(&self) -> usize {
        let slots = self.slots();
        slots.pending.len() + slots.committing.as_ref().map_or(0, |c| c.len())
    }

    /// Writes everything pending to sled in one transaction. On failure nothing is written and
    /// everything stays pending for the next commit.
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
            let batch = Arc::new(std::mem::take(&mut slots.pending));
            slots.committing = Some(batch.clone());
            slots.generation += 1;
            batch
        };
        let parts = batch.parts(PART_KEYS);
        let mut done = 0;
        let mut failed = check_writable(&self.faults).err();
        if failed.is_none() {
            for part in &parts {
                if let Err(e) = self.write(part) {
                    failed = Some(e);
                    break;
                }
                done += 1;
            }
        }
        if parts[..done]
            .iter()
            .any(|p| p.ends.iter().any(|e| e.outbox.is_some()))
        {
            self.outbox_written.notify_one();
        }
        let mut slots = self.slots();
        slots.committing = None;
        let Some(e) = failed else {
            return Ok(batch.len());
        };
        // What was written stays written; the rest waits for the next commit, with what came
        // meanwhile on top. An absence still holds for every key not written.
        let mut back = Pending::default();
        let written: std::collections::HashSet<&str> =
            parts[..done].iter().flat_map(Part::keys).collect();
        back.absent = batch
            .absent
            .iter()
            .filter(|k| !written.contains(k.as_str()))
            .cloned()
            .collect();
        for part in &parts[done..] {
            part.restore(&mut back);
        }
        let newer = std::mem::take(&mut slots.pending);
        back.merge(newer);
        slots.pending = back;
        Err(e)
    }

    fn write(&self, part: &Part<'_>) -> Result<(), StoreError> {
        let mut live = sled::Batch::default();
        for (key, state) in &part.live {
            match state {
                Some(bytes) => live.insert(key.as_bytes(), *bytes),
                None => live.remove(key.as_bytes()),
            }
        }
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        (
            &self.sessions,
            &self.tombstones,
            &self.ended,
            &self.index,
            &self.outbox,
        )
            .transaction(|(sessions, tombstones, ended, index, outbox)| {
                sessions.apply_batch(&live)?;
                for end in &part.ends {
                    tombstones.insert(end.key.as_bytes(), end.tombstone.as_slice())?;
                    ended.insert(&end.id, end.record.as_slice())?;
                    index.insert(end.key.as_bytes(), &end.id)?;
                    if let Some((k, v)) = &end.outbox {
                        outbox.insert(k, v.as_slice())?;
                    }
                }
                Ok::<_, ConflictableTransactionError<String>>(())
            })?;
        Ok(())
    }
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

    /// Ends `key`'s dialogue with `reply` as its tombstone and `record` as its end record.
    fn end(store: &Store, key: &str, reply: &str, record: Value) {
        store
            .end(key, &json!({"reply": reply}), &record, None)
            .unwrap();
    }

    fn in_sled(store: &Store, key: &str) -> Option<Value> {
        let bytes = store.dialogues.sessions.get(key).unwrap()?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn live_state_reads_back_before_its_commit_and_two_hops_make_one_write() {
        let store = Store::temporary().unwrap();
        store.put_live("http:a", &json!({"hop": 1})).unwrap();
        assert_eq!(
            store.live::<Value>("http:a").unwrap(),
            Some(json!({"hop": 1}))
        );
        assert_eq!(
            in_sled(&store, "http:a"),
            None,
            "not written before the commit"
        );
        store.put_live("http:a", &json!({"hop": 2})).unwrap();
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
        store.put_live("http:b", &json!({"hop": 1})).unwrap();
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
        store.put_live("http:c", &json!({"hop": 1})).unwrap();
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
        store.put_live("http:c", &json!({"hop": 2})).unwrap();
        assert_eq!(store.commit().unwrap(), 3);
        assert_eq!(in_sled(&store, "http:c"), Some(json!({"hop": 2})));
        assert!(store.dialogues.tombstones.get("http:d").unwrap().is_some());
        assert_eq!(store.ended_count(), 1);
    }

    #[test]
    fn a_dialogue_that_transacts_has_its_state_and_end_written_at_once_and_in_order() {
        let store = Store::temporary().unwrap();
        // An earlier dialogue under the same key (a reused SMPP session) ended, not committed.
        end(&store, "smpp:k", "END first", json!({"n": 1}));
        store.put_live("smpp:k", &json!({"hop": 3})).unwrap();
        store.dialogues.write_now("smpp:k").unwrap();
        assert_eq!(
            in_sled(&store, "smpp:k"),
            Some(json!({"hop": 3})),
            "before the transaction"
        );
        end(&store, "smpp:k", "END second", json!({"n": 2}));
        assert_eq!(store.uncommitted(), 0, "the end went to sled at once");
        assert_eq!(in_sled(&store, "smpp:k"), None);
        let tomb = store.dialogues.tombstones.get("smpp:k").unwrap().unwrap();
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
        store.put_live("smpp:n", &json!({"hop": 1})).unwrap();
        store.put_live("smpp:n", &json!({"hop": 2})).unwrap();
        end(&store, "smpp:n", "END Bye", json!({"reason": "end"}));
        assert_eq!(store.uncommitted(), 1, "the end alone waits");
        assert_eq!(store.live::<Value>("smpp:n").unwrap(), None);
        store.commit().unwrap();
        assert_eq!(in_sled(&store, "smpp:n"), None);
        assert!(store.dialogues.tombstones.get("smpp:n").unwrap().is_some());

        // One whose state was committed before its end is removed from sled as before.
        assert_eq!(store.live::<Value>("smpp:m").unwrap(), None);
        store.put_live("smpp:m", &json!({"hop": 1})).unwrap();
        store.commit().unwrap();
        assert_eq!(
            store.live::<Value>("smpp:m").unwrap(),
            Some(json!({"hop": 1}))
        );
        store.put_live("smpp:m", &json!({"hop": 2})).unwrap();
        end(&store, "smpp:m", "END Bye", json!({"reason": "end"}));
        assert_eq!(store.uncommitted(), 2, "the end and the removal");
        store.commit().unwrap();
        assert_eq!(in_sled(&store, "smpp:m"), None);
    }

    #[test]
    fn an_absence_seen_across_a_commit_is_not_trusted() {
        let store = Store::temporary().unwrap();
        let super::Seen::Unknown(generation) = store.dialogues.live("smpp:r") else {
            panic!("nothing waits for smpp:r");
        };
        // A commit begins between the look at what waits and the look in sled.
        store.put_live("smpp:other", &json!({})).unwrap();
        store.commit().unwrap();
        store.dialogues.absent("smpp:r", generation);
        store.put_live("smpp:r", &json!({"hop": 1})).unwrap();
        end(&store, "smpp:r", "END Bye", json!({"reason": "end"}));
        assert_eq!(store.uncommitted(), 2, "the removal is still written");
    }

    #[test]
    fn a_commit_larger_than_one_part_writes_every_dialogue() {
        let store = Store::temporary().unwrap();
        let n = super::PART_KEYS * 2 + 17;
        for i in 0..n {
            let key = format!("http:{i}");
            store.put_live(&key, &json!({"hop": 1})).unwrap();
            if i % 2 == 0 {
                end(&store, &key, "END Bye", json!({"i": i}));
            }
        }
        store.commit().unwrap();
        assert_eq!(store.uncommitted(), 0);
        assert_eq!(store.ended_count(), n.div_ceil(2));
        for i in 0..n {
            let key = format!("http:{i}");
            assert_eq!(in_sled(&store, &key).is_some(), i % 2 == 1, "{key}");
            assert_eq!(
                store.dialogues.tombstones.get(&key).unwrap().is_some(),
                i % 2 == 0,
                "{key}"
            );
        }
    }

    #[test]
    fn parts_keep_each_keys_writes_together_and_in_order() {
        let mut pending = super::Pending::default();
        let end = |key: &str, n: u8| super::End {
            key: key.into(),
            id: [n; 8],
            tombstone: vec![n],
            record: vec![n],
            outbox: None,
        };
        pending.live.insert("a".into(), Some(vec![1]));
        pending.end(end("b", 1));
        pending.live.insert("c".into(), Some(vec![2]));
        pending.end(end("a", 2));
        pending.end(end("b", 3));
        pending.live.insert("b".into(), Some(vec![4]));
        let parts = pending.parts(1);
        assert_eq!(parts.len(), 3, "one key per part");
        let b: Vec<_> = parts
            .iter()
            .find(|p| p.ends.iter().any(|e| e.key == "b"))
            .unwrap()
            .ends
            .iter()
            .map(|e| e.id[0])
            .collect();
        assert_eq!(b, [1, 3], "b's ends in one part, in order");
        for p in &parts {
            let keys: std::collections::HashSet<&str> = p.keys().collect();
            assert_eq!(keys.len(), 1);
        }
        let mut back = super::Pending::default();
        for p in &parts {
            p.restore(&mut back);
        }
        assert_eq!(back.live, pending.live);
        assert_eq!(back.ends.len(), pending.ends.len());
        assert_eq!(back.tombstone("b"), Some(&[3u8][..]));
    }

    #[test]
    fn what_waits_is_written_when_the_last_handle_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path, 8, 500).unwrap();
            store.put_live("smpp:x", &json!({"hop": 3})).unwrap();
            let other = store.clone();
            drop(store);
            assert_eq!(
                other.uncommitted(),
                1,
                "another handle still holds the store"
            );
        }
        let store = Store::open(&path, 8, 500).unwrap();
        assert_eq!(in_sled(&store, "smpp:x"), Some(json!({"hop": 3})));
    }
}
