//! The tombstones of a chunk of ends, as one value in `tombstone_chunks`, and the chunk's entry
//! in `tombstone_index` (when its last tombstone expires, and each one's session key), both
//! under the key of the chunk of their end records. The index entries are what start-up reads
//! to index the tombstones in memory; a chunk is read only to answer one key.

use crate::store::StoreError;

/// The first byte of a chunk of tombstones.
const TOMB_CHUNK: u8 = 3;

fn push_key(v: &mut Vec<u8>, key: &str) {
    v.extend_from_slice(&(key.len() as u32).to_be_bytes());
    v.extend_from_slice(key.as_bytes());
}

/// A chunk of tombstones: the format byte, their count (u32, big-endian), then for each its
/// end record's id, its session key (u32 length, bytes) and its document (u32 length, bytes).
pub(in crate::store) fn chunk_value<'a>(
    tombs: impl ExactSizeIterator<Item = ([u8; 8], &'a str, &'a [u8])>,
) -> Vec<u8> {
    let mut v = vec![TOMB_CHUNK];
    v.extend_from_slice(&(tombs.len() as u32).to_be_bytes());
    for (id, key, doc) in tombs {
        v.extend_from_slice(&id);
        push_key(&mut v, key);
        v.extend_from_slice(&(doc.len() as u32).to_be_bytes());
        v.extend_from_slice(doc);
    }
    v
}

/// An index entry of a chunk of tombstones: when the last of them expires (ms since the epoch,
/// u64 big-endian), their count (u32), then for each its end record's id and its session key.
pub(in crate::store) fn index_value<'a>(
    expires_ms: u64,
    tombs: impl ExactSizeIterator<Item = ([u8; 8], &'a str)>,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + tombs.len() * 40);
    v.extend_from_slice(&expires_ms.to_be_bytes());
    v.extend_from_slice(&(tombs.len() as u32).to_be_bytes());
    for (id, key) in tombs {
        v.extend_from_slice(&id);
        push_key(&mut v, key);
    }
    v
}

/// A reader of the fixed-width fields of a chunk or an index entry.
struct Fields<'a> {
    rest: &'a [u8],
    what: &'static str,
    key: &'a [u8],
}

impl<'a> Fields<'a> {
    fn corrupt(&self) -> StoreError {
        StoreError::Corrupt(format!("{} {:02x?}", self.what, self.key))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(self.corrupt());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| self.corrupt())
    }
    fn u32(&mut self) -> Result<usize, StoreError> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }
    fn done(&self) -> Result<(), StoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt())
        }
    }
}

/// The document of the tombstone of record `id` in the chunk `key` -> `value`, if it is there
/// and is `session`'s (a hash names the chunk; the session key itself decides).
///
/// # Errors
/// A chunk that is not in this format or whose fields do not add up.
pub(in crate::store) fn find_in_chunk<'a>(
    key: &'a [u8],
    value: &'a [u8],
    id: [u8; 8],
    session: &str,
) -> Result<Option<&'a [u8]>, StoreError> {
    let mut f = Fields {
        rest: value,
        what: "tombstone chunk",
        key,
    };
    if f.array::<1>()? != [TOMB_CHUNK] {
        return Err(f.corrupt());
    }
    let count = f.u32()?;
    for _ in 0..count {
        let this = f.array::<8>()?;
        let len = f.u32()?;
        let k = f.take(len)?;
        let len = f.u32()?;
        let doc = f.take(len)?;
        if this == id && k == session.as_bytes() {
            return Ok(Some(doc));
        }
    }
    f.done()?;
    Ok(None)
}

/// An index entry read back: when its last tombstone expires, each one's id and session key.
pub(in crate::store) type IndexEntry<'a> = (u64, Vec<([u8; 8], &'a [u8])>);

/// An index entry read back: when its last tombstone expires, and each one's id and session key.
///
/// # Errors
/// An entry whose fields do not add up.
pub(in crate::store) fn index_entries<'a>(
    key: &'a [u8],
    value: &'a [u8],
) -> Result<IndexEntry<'a>, StoreError> {
    let mut f = Fields {
        rest: value,
        what: "tombstone index entry",
        key,
    };
    let expires = u64::from_be_bytes(f.array()?);
    let count = f.u32()?;
    let mut out = Vec::with_capacity(count.min(super::end_chunk::CHUNK_RECORDS));
    for _ in 0..count {
        let id = f.array::<8>()?;
        let len = f.u32()?;
        out.push((id, f.take(len)?));
    }
    f.done()?;
    Ok((expires, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_finds_a_tombstone_by_id_and_key_only() {
        let tombs = [
            ([1; 8], "http:a", &b"{\"a\":1}"[..]),
            ([2; 8], "http:b", &b"{\"b\":2}"[..]),
        ];
        let v = chunk_value(tombs.into_iter());
        let k = [1u8; 8];
        assert_eq!(
            find_in_chunk(&k, &v, [2; 8], "http:b").unwrap(),
            Some(&b"{\"b\":2}"[..])
        );
        assert_eq!(find_in_chunk(&k, &v, [2; 8], "http:a").unwrap(), None);
        assert_eq!(find_in_chunk(&k, &v, [3; 8], "http:b").unwrap(), None);
        assert!(find_in_chunk(&k, &v[..v.len() - 1], [9; 8], "x").is_err());
        let i = index_value(77, tombs.iter().map(|(id, key, _)| (*id, *key)));
        let (expires, entries) = index_entries(&k, &i).unwrap();
        assert_eq!(expires, 77);
        assert_eq!(
            entries,
            [([1; 8], &b"http:a"[..]), ([2; 8], &b"http:b"[..])]
        );
        assert!(index_entries(&k, &i[..i.len() - 2]).is_err());
    }

    #[test]
    fn an_index_entry_reads_back_what_was_written() {
        let tombs = [([7; 8], "smpp:k"), ([8; 8], ""), ([9; 8], "http:\u{e9}")];
        let v = index_value(u64::MAX - 1, tombs.iter().copied());
        let (expires, entries) = index_entries(&[7; 8], &v).unwrap();
        assert_eq!(expires, u64::MAX - 1);
        let want: Vec<_> = tombs.iter().map(|(id, k)| (*id, k.as_bytes())).collect();
        assert_eq!(entries, want);
        let none = index_value(5, std::iter::empty());
        assert_eq!(index_entries(&[0; 8], &none).unwrap(), (5, vec![]));
        let mut padded = v.clone();
        padded.push(0);
        let err = index_entries(&[7; 8], &padded).unwrap_err().to_string();
        assert!(err.contains("corrupt tombstone index entry"), "{err}");
    }

    #[test]
    fn every_tombstone_of_a_chunk_is_found_and_a_chunk_of_another_format_is_corrupt() {
        let tombs = [([1; 8], "http:a", &b"{}"[..]), ([2; 8], "http:b", &b""[..])];
        let v = chunk_value(tombs.into_iter());
        for (id, key, doc) in tombs {
            assert_eq!(find_in_chunk(&[1; 8], &v, id, key).unwrap(), Some(doc));
        }
        let mut other = v.clone();
        other[0] = 2;
        let err = find_in_chunk(&[1; 8], &other, [1; 8], "http:a")
            .unwrap_err()
            .to_string();
        assert!(err.contains("corrupt tombstone chunk"), "{err}");
    }
}
