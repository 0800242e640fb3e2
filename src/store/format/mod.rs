//! How the store lays its values out in bytes: one file per format (as Rusmpp keeps one file
//! per PDU), each with its round-trip tests. Nothing here reads or writes sled; the write-behind
//! buffer, the tombstone index and the ledger build and read their values with these.
//!
//! - [`end_chunk`]: the `ended` tree: end-of-session records in chunks, or alone as kept
//!   before chunks;
//! - [`tombstone_chunk`]: the `tombstone_chunks` and `tombstone_index` trees: the tombstones
//!   of a chunk of ends, and the index entry listing their session keys;
//! - [`tombstone`]: the `tombstones` tree: tombstones one per key, as kept before chunks
//!   (read, never written);
//! - [`ledger_keys`]: the keys of the `applied` and `journal` trees.
//!
//! Ids are 8 bytes big-endian (so keys sort in the order the ids were drawn); counts and
//! lengths are 4 bytes big-endian. Documents (states, tombstones, records) are JSON.

pub(super) mod end_chunk;
pub(super) mod ledger_keys;
pub(super) mod tombstone;
pub(super) mod tombstone_chunk;

/// Where an end-of-session record is kept in `ended`: the key of its chunk (or of the record
/// alone, as kept before chunks) and its own id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) struct RecordAt {
    /// The key of its chunk.
    pub(in crate::store) key: [u8; 8],
    /// Its own id.
    pub(in crate::store) id: [u8; 8],
}
