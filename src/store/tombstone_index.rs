//! Where the tombstones of recently ended dialogues are.
//!
//! A commit writes the tombstones of a chunk of ends as one sled value (`tombstone_chunks`,
//! under the same key as the chunk of their end records), and a small entry listing their
//! session keys (`tombstone_index`). In memory, [`Recent`] maps a hash of each session key to
//! its chunk for as long as its tombstone is kept, so that looking for a tombstone (every new
//! dialogue does, to tell a retry from a start) is a hash lookup, and a hit costs one sled
//! read. At start-up the map is rebuilt from `tombstone_index` ([`restore`]), before the
//! start-up sweep. How chunks and index entries are laid out is in
//! [`super::format::tombstone_chunk`].
//!
//! One sled write per dialogue for its tombstone was the largest cost of a hop that the gateway
//! controls (sled 0.34 copies a leaf on every insert and splits it every few): two writes per
//! chunk of ends take its place, and purges drop whole chunks.

use super::StoreError;
use super::format::RecordAt;
use super::format::tombstone_chunk;
use sled::Tree;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// A hash of a session key is already a hash: the map uses it as it is.
#[derive(Default)]
pub(super) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; any other input is folded in, never dropped.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map = HashMap<u64, RecordAt, BuildHasherDefault<PassThrough>>;

/// The tombstones indexed during one span of time.
#[derive(Debug, Default)]
struct Generation {
    /// When the first of them was indexed (ms since the epoch).
    opened_ms: u64,
    /// How long it takes new entries.
    span_ms: u64,
    /// When the last of them expires.
    expires_ms: u64,
    /// Restored at start-up and kept, expired or not, until the first purge (see
    /// [`Recent::release`]).
    held: bool,
    map: Map,
}

/// Session key hash -> where its latest tombstone is, for the tombstones still kept.
///
/// Entries are kept in generations of about a quarter of the tombstones' lifetime each, newest
/// last; a generation goes whole once every tombstone in it has expired, oldest first. The
/// generation restored at start-up is kept until the first purge, expired or not (the purge
/// never runs before the start-up sweep: a tombstone past its time still tells the sweep that
/// a live state a crash left behind had ended). No entry is ever removed one by one, and no
/// map grows past a generation's worth (growing one rehashes it under the lock). Each entry
/// takes 29 to 44 bytes (hashbrown's tables grow by doubling) and is held for up to the
/// lifetime and a quarter, plus the purge's minute: at 12,000 dialogues a second with the 300 s
/// default, some 4.5 million entries and 150 to 200 MB.
#[derive(Debug, Default)]
pub(super) struct Recent {
    /// Seeded at random per process: the hashes are never written anywhere.
    hasher: foldhash::fast::RandomState,
    generations: VecDeque<Generation>,
}

impl Recent {
    pub(super) fn hash(&self, session: &[u8]) -> u64 {
        self.hasher.hash_one(session)
    }

    /// Indexes `session`'s tombstone, at `at`, expiring at `expires_ms`, as of `now_ms`.
    pub(super) fn insert(&mut self, session: &[u8], at: RecordAt, expires_ms: u64, now_ms: u64) {
        let hash = self.hash(session);
        let open = self
            .generations
            .back()
            .is_none_or(|g| now_ms >= g.opened_ms.saturating_add(g.span_ms));
        if open {
            self.expire(now_ms);
            // Sized as the one before (one restored at start-up spans more): growing a map
            // rehashes it, under the lock every new dialogue's look takes.
            let room = match self.generations.back() {
                Some(g) if g.span_ms > 0 => g.map.len(),
                _ => 0,
            };
            self.generations.push_back(Generation {
                opened_ms: now_ms,
                span_ms: (expires_ms.saturating_sub(now_ms) / 4).max(1_000),
                expires_ms,
                held: false,
                map: Map::with_capacity_and_hasher(room, Default::default()),
            });
        }
        if let Some(g) = self.generations.back_mut() {
            g.expires_ms = g.expires_ms.max(expires_ms);
            g.map.insert(hash, at);
        }
    }

    /// Where `session`'s latest tombstone is, if it is still kept (and, rarely, where another
    /// key with the same hash has its: the caller compares the key stored with it).
    pub(super) fn get(&self, session: &[u8]) -> Option<RecordAt> {
        let hash = self.hash(session);
        self.generations
            .iter()
            .rev()
            .find_map(|g| g.map.get(&hash).copied())
    }

    /// Indexes the tombstones found at start-up (hash of the session key, where it is) in a
    /// generation of their own, which takes no new entries and goes once the last of them, at
    /// `expires_ms`, has expired. Of two ends of one key (a reused SMPP session), the one with
    /// the larger id is the later: an actor ends its dialogues one after the other, and each
    /// end's id is drawn after the one before was handed over, while chunks are keyed by their
    /// first end's id and can come in another order. The map is sized once: growing it entry by
    /// entry rehashed it a score of times and was a third of a restart's wait.
    pub(super) fn restore(&mut self, found: Vec<(u64, RecordAt)>, expires_ms: u64) {
        if found.is_empty() {
            return;
        }
        let mut map = Map::with_capacity_and_hasher(found.len(), Default::default());
        for (hash, at) in found {
            map.entry(hash)
                .and_modify(|kept| {
                    if at.id > kept.id {
                        *kept = at;
                    }
                })
                .or_insert(at);
        }
        self.generations.push_front(Generation {
            opened_ms: 0,
            span_ms: 0,
            expires_ms,
            held: true,
            map,
        });
    }

    /// Drops the generations whose tombstones have all expired at `now_ms`, oldest first and
    /// none before an older one (after a lowered lifetime a newer generation can expire first:
    /// dropping it would let a key's older end show through), except the one restored at
    /// start-up while it is held.
    pub(super) fn expire(&mut self, now_ms: u64) {
        let skip = usize::from(self.generations.front().is_some_and(|g| g.held));
        while self
            .generations
            .get(skip)
            .is_some_and(|g| g.expires_ms <= now_ms)
        {
            self.generations.remove(skip);
        }
    }

    /// The start-up sweep is over: the restored generation goes once expired, as any other.
    pub(super) fn release(&mut self) {
        if let Some(g) = self.generations.front_mut() {
            g.held = false;
        }
    }

    /// How many tombstones are indexed (until the purge, those past their time too).
    pub(super) fn len(&self) -> usize {
        self.generations.iter().map(|g| g.map.len()).sum()
    }
}

/// The in-memory index of the tombstones kept, read back from `tombstone_index` (at start-up,
/// before the sweep that needs it). An unreadable entry is logged and skipped.
///
/// # Errors
/// sled errors.
pub(super) fn restore(index: &Tree) -> Result<Recent, StoreError> {
    let t = std::time::Instant::now();
    let mut recent = Recent::default();
    let mut found = Vec::new();
    let mut last_expiry = 0;
    for item in index.iter() {
        let (k, v) = item?;
        let (expires, entries) = match tombstone_chunk::index_entries(&k, &v) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(n: u8) -> RecordAt {
        RecordAt {
            key: [n; 8],
            id: [n; 8],
        }
    }

    #[test]
    fn the_latest_tombstone_of_a_key_wins_and_expired_generations_go() {
        let mut r = Recent::default();
        r.insert(b"smpp:k", at(1), 100_000, 0);
        // Past the first generation's span (100 s / 4): a second one opens.
        r.insert(b"smpp:k", at(2), 130_000, 30_000);
        r.insert(b"smpp:j", at(3), 130_000, 30_000);
        assert_eq!(r.generations.len(), 2);
        assert_eq!(r.get(b"smpp:k"), Some(at(2)));
        assert_eq!(r.get(b"smpp:x"), None);
        assert_eq!(r.len(), 3);
        r.expire(100_000);
        assert_eq!(r.len(), 2, "the first generation went whole");
        assert_eq!(r.get(b"smpp:k"), Some(at(2)));
        r.expire(130_000);
        assert_eq!(r.get(b"smpp:j"), None);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn at_start_up_the_later_end_of_a_key_wins_whatever_order_its_chunks_come_in() {
        let mut r = Recent::default();
        let later = RecordAt {
            key: [0, 0, 0, 0, 0, 0, 0, 10],
            id: [0, 0, 0, 0, 0, 0, 0, 40],
        };
        let earlier = RecordAt {
            key: [0, 0, 0, 0, 0, 0, 0, 20],
            id: [0, 0, 0, 0, 0, 0, 0, 20],
        };
        let h = r.hash(b"smpp:k");
        r.restore(vec![(h, later), (h, earlier)], 1_000);
        assert_eq!(r.get(b"smpp:k"), Some(later));
        // A new end of the key after the start wins over what was restored, whatever its id;
        // new entries never join the restored generation.
        r.insert(b"smpp:k", at(0), 2_000, 500);
        assert_eq!(r.get(b"smpp:k"), Some(at(0)));
        assert_eq!(r.generations.len(), 2);
        // The restored generation is held past its time until released (after the start-up
        // sweep); runtime generations behind it still go when theirs is over.
        r.insert(b"smpp:x", at(8), 3_000, 1_500);
        assert_eq!(r.len(), 3);
        r.expire(2_000);
        assert_eq!(r.len(), 2, "the first runtime generation went");
        assert_eq!(r.get(b"smpp:k"), Some(later), "the restored one is held");
        r.release();
        r.expire(2_000);
        assert_eq!(r.len(), 1);
        assert_eq!(r.get(b"smpp:k"), None);
    }

    #[test]
    fn a_newer_generation_does_not_go_before_an_older_one() {
        let mut r = Recent::default();
        // A lifetime lowered: the newer generation expires first, but waits for the older.
        r.insert(b"smpp:k", at(1), 100_000, 0);
        r.insert(b"smpp:k", at(2), 40_000, 30_000);
        r.expire(50_000);
        assert_eq!(r.get(b"smpp:k"), Some(at(2)));
        r.expire(100_000);
        assert_eq!(r.len(), 0);
    }
}
