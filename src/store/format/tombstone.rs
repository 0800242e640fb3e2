//! Tombstones one per key in the `tombstones` tree, as written before chunks of tombstones
//! (see [`super::tombstone_chunk`]): read while any is left, never written any more. Three
//! generations of them:
//!
//! - a bare JSON document (the first byte is `{`);
//! - `TOMBSTONE_WITH_ID`, the id of its end record (also that record's key in `ended`), the
//!   document;
//! - `TOMBSTONE_IN_CHUNK`, the key of its end record's chunk, the record's id, the document.

use super::RecordAt;

/// The first byte of a tombstone that names its end record's id, the record's key in
/// `ended` too (tombstones before these were bare JSON documents, whose first byte is `{`).
const TOMBSTONE_WITH_ID: u8 = 1;
/// The first byte of a tombstone whose end record is kept in a chunk (since 2026-12-06): the
/// chunk's key in `ended`, then the record's id.
const TOMBSTONE_IN_CHUNK: u8 = 2;

/// A tombstone as sled kept it one per key, before chunks of tombstones: a format byte, where
/// its end-of-session record is (so the record can be found from the session key while the
/// tombstone is kept), then its document.
#[cfg(test)]
pub(in crate::store) fn tombstone_value(at: RecordAt, document: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(17 + document.len());
    v.push(TOMBSTONE_IN_CHUNK);
    v.extend_from_slice(&at.key);
    v.extend_from_slice(&at.id);
    v.extend_from_slice(document);
    v
}

/// Where a stored tombstone's end record is (`None` for a tombstone from before ids were kept
/// in them), and its document.
pub(in crate::store) fn tombstone_parts(value: &[u8]) -> (Option<RecordAt>, &[u8]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tombstone_naming_its_chunk_reads_back() {
        let at = RecordAt {
            key: 40u64.to_be_bytes(),
            id: 41u64.to_be_bytes(),
        };
        let doc = br#"{"reply":"END Two"}"#;
        let v = tombstone_value(at, doc);
        assert_eq!(tombstone_parts(&v), (Some(at), &doc[..]));
    }

    #[test]
    fn older_tombstones_read_back_as_they_were_written() {
        let doc = br#"{"reply":"END One"}"#;
        let mut with_id = vec![TOMBSTONE_WITH_ID];
        with_id.extend_from_slice(&1234u64.to_be_bytes());
        with_id.extend_from_slice(doc);
        let id = 1234u64.to_be_bytes();
        assert_eq!(
            tombstone_parts(&with_id),
            (Some(RecordAt { key: id, id }), &doc[..])
        );
        assert_eq!(tombstone_parts(doc), (None, &doc[..]), "a bare document");
        // Too short to hold what its first byte says: read as a bare document.
        assert_eq!(
            tombstone_parts(&[TOMBSTONE_IN_CHUNK, 1]),
            (None, &[2u8, 1][..])
        );
        assert_eq!(tombstone_parts(&[]), (None, &[][..]));
    }
}
