//! What waits for the next commit: the live states and ends written since the last one (see
//! [`super::write_behind`]), held as the newest batch and, while a commit runs, the batch
//! being committed. Every read of dialogue state looks here before sled.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A live state waiting for its commit, serialised only when it is written (most dialogues
/// end before their state ever is) or read back.
pub(super) trait Snapshot: Send + Sync + std::fmt::Debug {
    fn to_json(&self) -> serde_json::Result<Vec<u8>>;
}

impl<T: serde::Serialize + Send + Sync + std::fmt::Debug> Snapshot for T {
    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

pub(super) type State = Arc<dyn Snapshot>;

/// Writes of dialogue state that wait for the next commit.
#[derive(Debug, Default, Clone)]
pub(super) struct Pending {
    /// Session key -> its live state, or `None` when it was removed.
    pub(super) live: HashMap<String, Option<State>>,
    /// Dialogues ended, in order.
    pub(super) ends: Vec<End>,
    /// Session key -> index in `ends` of its latest end (for the tombstone).
    pub(super) latest_end: HashMap<String, usize>,
    /// Keys that sled had no live state for while this batch was the newest, and that
    /// nothing has written to sled since: an end of such a key drops its live entry instead
    /// of turning it into a removal. Most dialogues begin and end within one commit interval,
    /// so their live state never costs a write to sled.
    pub(super) absent: HashSet<String>,
}

/// One dialogue's end, as it waits for its commit.
#[derive(Debug, Clone)]
pub(super) struct End {
    pub(super) key: String,
    pub(super) id: [u8; 8],
    /// The tombstone's document, and when it may be purged (ms since the epoch).
    pub(super) tombstone: Vec<u8>,
    pub(super) expires_ms: u64,
    pub(super) record: Vec<u8>,
    /// The end-of-session notification for the outbox: its key and document.
    pub(super) outbox: Option<([u8; 8], Vec<u8>)>,
}

impl Pending {
    pub(super) fn is_empty(&self) -> bool {
        self.live.is_empty() && self.ends.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.live.len() + self.ends.len()
    }

    /// Empties it, keeping its tables' room for the next batch (up to a bound: a burst does
    /// not keep its memory for good).
    pub(super) fn clear(&mut self) {
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

    pub(super) fn end(&mut self, end: End) {
        if self.absent.contains(&end.key) {
            self.live.remove(&end.key);
        } else {
            self.live.insert(end.key.clone(), None);
        }
        self.latest_end.insert(end.key.clone(), self.ends.len());
        self.ends.push(end);
    }

    /// `newer`'s writes on top of these.
    pub(super) fn merge(&mut self, newer: Pending) {
        self.live.extend(newer.live);
        self.absent.extend(newer.absent);
        for end in newer.ends {
            self.latest_end.insert(end.key.clone(), self.ends.len());
            self.ends.push(end);
        }
    }

    pub(super) fn tombstone(&self, key: &str) -> Option<&[u8]> {
        self.latest_end
            .get(key)
            .map(|&i| self.ends[i].tombstone.as_slice())
    }
}

/// The batches of writes: the newest, and the one being committed.
#[derive(Debug, Default)]
pub(super) struct Slots {
    /// Written since the last commit began.
    pub(super) pending: Pending,
    /// Being committed right now (still read from here until it is in sled).
    pub(super) committing: Option<Arc<Pending>>,
    /// Commits begun: a key found absent from sled is marked so only if no commit began
    /// between the look in `pending` and the look in sled.
    pub(super) generation: u64,
    /// Dialogues that ran a transaction: their end goes to sled at once, not with the next
    /// commit, so the flush after the next transaction (anyone's) carries their tombstone, and
    /// a retried confirmation after a crash gets the reply it got, as before group commit.
    pub(super) write_through: HashSet<String>,
    /// The last committed batch, emptied: the next one fills its tables instead of growing
    /// new ones (under load, growing them from nothing every interval was a few percent of
    /// the CPU, most of it the kernel handing out fresh pages).
    pub(super) spare: Option<Pending>,
}

impl Slots {
    /// What `f` finds among the newest writes, else among those being committed.
    pub(super) fn find<'a, T>(&'a self, f: impl Fn(&'a Pending) -> Option<T>) -> Option<T> {
        f(&self.pending).or_else(|| self.committing.as_deref().and_then(f))
    }
}
