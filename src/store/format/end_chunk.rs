//! End-of-session records in the `ended` tree, in chunks of the ends of one commit, keyed by
//! the id of each chunk's first record. A record kept alone under its own id, as before
//! 2026-12-06, is a bare JSON document.

use crate::store::StoreError;

/// The first byte of a chunk of end-of-session records in `ended` (a record kept alone, as
/// before 2026-12-06, is a bare JSON document, whose first byte is `{`).
const CHUNK: u8 = 2;

/// The most end records a commit puts in one chunk. sled splits a leaf every few inserts, and
/// each split rewrites pages: one insert per chunk instead of one per dialogue took a tenth of
/// the CPU of a hop under load. A chunk is rewritten whole when one of its records changes
/// (an aggregator's end report), so it stays small.
pub(in crate::store) const CHUNK_RECORDS: usize = 16;

/// A chunk: the format byte, the number of records (u32, big-endian), then for each record
/// its id, its length (u32, big-endian) and its document.
pub(in crate::store) fn chunk_value<'a>(
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
pub(in crate::store) type EndRecordRef<'a> = ([u8; 8], &'a [u8]);

/// The records (id, document) of the `ended` entry `key` -> `value`: a chunk, or one record
/// kept alone under its id.
///
/// # Errors
/// A chunk whose records do not add up to its count and length, or a key that is not an id.
pub(in crate::store) fn chunk_records<'a>(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_reads_back_its_records_in_order() {
        let records = [
            (1u64.to_be_bytes(), &br#"{"n":1}"#[..]),
            (5u64.to_be_bytes(), &b""[..]),
            (3u64.to_be_bytes(), &br#"{"n":3}"#[..]),
        ];
        let v = chunk_value(records.into_iter());
        assert_eq!(v[0], CHUNK);
        assert_eq!(chunk_records(&1u64.to_be_bytes(), &v).unwrap(), records);
        let empty = chunk_value(std::iter::empty());
        assert!(chunk_records(&[0; 8], &empty).unwrap().is_empty());
    }

    #[test]
    fn a_record_kept_alone_reads_as_a_chunk_of_one_under_its_key() {
        let doc = br#"{"n":7}"#;
        let id = 7u64.to_be_bytes();
        assert_eq!(chunk_records(&id, doc).unwrap(), [(id, &doc[..])]);
        assert!(
            chunk_records(b"short", doc).is_err(),
            "a key that is not an id"
        );
    }

    #[test]
    fn a_chunk_cut_or_padded_is_corrupt() {
        let records = [(1u64.to_be_bytes(), &br#"{"n":1}"#[..])];
        let v = chunk_value(records.into_iter());
        for cut in 1..v.len() {
            assert!(chunk_records(&[0; 8], &v[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = v.clone();
        padded.push(0);
        let err = chunk_records(&[0; 8], &padded).unwrap_err().to_string();
        assert!(err.contains("corrupt end-record chunk"), "{err}");
    }
}
