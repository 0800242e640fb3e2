//! The keys of the ledger's trees.
//!
//! - `applied`: the dialogue's start (so that retention purges a range of keys), the length of
//!   its session key and the key, then the transaction id; the value is the hop (u32). A
//!   dialogue's entries share a prefix ([`applied_prefix`]).
//! - `journal`: the transaction id, then the index of the op in it (u32): a transaction's
//!   entries are read in order.

/// The prefix of the `applied` keys of one dialogue: its start (big-endian, so that retention
/// purges a range), the length of its session key, the key.
pub(in crate::store) fn applied_prefix(session: &str, started_ms: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + 4 + session.len() + 8);
    k.extend_from_slice(&started_ms.to_be_bytes());
    k.extend_from_slice(&(session.len() as u32).to_be_bytes());
    k.extend_from_slice(session.as_bytes());
    k
}

/// The `applied` key of transaction `txn` of a dialogue: its prefix, then the id.
pub(in crate::store) fn applied_key(session: &str, started_ms: u64, txn: u64) -> Vec<u8> {
    let mut k = applied_prefix(session, started_ms);
    k.extend_from_slice(&txn.to_be_bytes());
    k
}

/// The `applied` value of a transaction: the hop that applied it.
pub(in crate::store) fn applied_value(hop: u32) -> [u8; 4] {
    hop.to_be_bytes()
}

/// The transaction id and hop of the `applied` entry `key` -> `value` found under `prefix`;
/// `None` for an entry not in this format.
pub(in crate::store) fn applied_entry(
    prefix: &[u8],
    key: &[u8],
    value: &[u8],
) -> Option<(u64, u32)> {
    let txn = key.get(prefix.len()..)?.try_into().map(u64::from_be_bytes);
    let hop = value.try_into().map(u32::from_be_bytes);
    txn.ok().zip(hop.ok())
}

/// The `journal` key of op `seq` of transaction `txn`.
pub(in crate::store) fn journal_key(txn: u64, seq: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    k.extend_from_slice(&txn.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_applied_entry_reads_back_under_its_dialogues_prefix_only() {
        let key = applied_key("smpp:k", 10, 77);
        let prefix = applied_prefix("smpp:k", 10);
        assert!(key.starts_with(&prefix));
        assert_eq!(
            applied_entry(&prefix, &key, &applied_value(3)),
            Some((77, 3))
        );
        assert!(
            !key.starts_with(&applied_prefix("smpp:", 10)),
            "the length tells keys apart"
        );
        assert!(!key.starts_with(&applied_prefix("smpp:k", 11)));
        assert_eq!(
            applied_entry(&prefix, &key[..key.len() - 1], &applied_value(3)),
            None
        );
        assert_eq!(applied_entry(&prefix, &key, &[0, 3]), None);
    }

    #[test]
    fn applied_keys_sort_by_the_dialogues_start_and_journal_keys_by_transaction_and_op() {
        assert!(applied_key("z", 9, u64::MAX) < applied_key("a", 10, 0));
        assert!(applied_key("z", 9, 0) < 10u64.to_be_bytes().to_vec());
        assert_eq!(&journal_key(5, 2)[..8], &5u64.to_be_bytes());
        assert!(journal_key(5, 2) < journal_key(5, 10));
        assert!(journal_key(5, u32::MAX) < journal_key(6, 0));
    }
}
