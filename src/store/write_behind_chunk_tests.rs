//! The chunks the group commit writes: end records in chunks (read, changed, purged and
//! counted one by one), and tombstones in chunks with their index (found after a restart,
//! purged once expired, older formats still read). The helpers are the parent module's.

use super::*;

#[test]
fn the_ends_of_one_commit_go_in_chunks_and_each_record_reads_and_changes_alone() {
    let store = Store::temporary().unwrap();
    let n = 2 * super::super::CHUNK_RECORDS + 3;
    for i in 0..n {
        end(&store, &format!("http:{i}"), "END Bye", json!({"n": i}));
    }
    store.commit().unwrap();
    assert_eq!(store.dialogues.ended.len(), 3, "three chunks");
    assert_eq!(store.ended_count(), n);
    let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
    let want: Vec<Value> = (0..n).map(|i| json!({"n": i})).collect();
    assert_eq!(records, want, "every record, in the order they ended");

    // Two records of the same chunk changed one after the other: both changes stay.
    for i in [1, 2] {
        let key = format!("http:{i}");
        assert!(
            store
                .update_end_record::<Value>(&key, |r| r["aggregator"] = json!(i))
                .unwrap()
        );
    }
    let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
    assert_eq!(records[0], json!({"n": 0}));
    assert_eq!(records[1], json!({"n": 1, "aggregator": 1}));
    assert_eq!(records[2], json!({"n": 2, "aggregator": 2}));
    assert_eq!(records.len(), n);

    // Retention drops records one by one, a chunk when none of it is left.
    let gone = store
        .purge_end_records(|r| r["n"].as_u64().is_some_and(|i| i < 20))
        .unwrap();
    assert_eq!(gone, 20);
    assert_eq!(store.ended_count(), n - 20);
    assert_eq!(store.dialogues.ended.len(), 2, "the first chunk went whole");
    let first: Vec<Value> = store.ended_records().map(Result::unwrap).take(1).collect();
    assert_eq!(first, [json!({"n": 20})]);
    assert!(
        store
            .update_end_record::<Value>("http:21", |r| r["aggregator"] = json!("Success"))
            .unwrap(),
        "a record of a chunk that lost some is still found"
    );
    assert!(
        !store.update_end_record::<Value>("http:3", |_| ()).unwrap(),
        "a purged record is not found, though its tombstone is kept"
    );
}

#[test]
fn a_chunk_cut_short_is_reported_not_misread() {
    let store = Store::temporary().unwrap();
    end(&store, "http:a", "END Bye", json!({"n": 1}));
    store.commit().unwrap();
    let (key, value) = store.dialogues.ended.first().unwrap().unwrap();
    store
        .dialogues
        .ended
        .insert(&key, &value[..value.len() - 3])
        .unwrap();
    let read: Vec<_> = store.ended_records::<Value>().collect();
    assert_eq!(read.len(), 1);
    let err = read.into_iter().next().unwrap().unwrap_err().to_string();
    assert!(err.contains("corrupt end-record chunk"), "{err}");
    assert!(store.update_end_record::<Value>("http:a", |_| ()).is_err());
}

#[test]
fn a_chunk_written_again_after_a_failure_keeps_a_report_made_in_between() {
    let store = Store::temporary().unwrap();
    store.put_live("smpp:later", json!({"hop": 1})).unwrap();
    end(&store, "smpp:k", "END Bye", json!({"n": 1}));
    // The chunk and its tombstones land, the live state after them does not.
    commit_cut_after(&store, 3);
    assert_eq!(store.dialogues.ended.len(), 1, "the first attempt's chunk");
    // The aggregator's report comes while the end waits again.
    assert!(
        store
            .update_end_record::<Value>("smpp:k", |r| r["aggregator"] = json!("Success"))
            .unwrap()
    );
    end(&store, "smpp:j", "END Bye", json!({"n": 2}));
    store.commit().unwrap();
    let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
    assert_eq!(
        records,
        [json!({"n": 1, "aggregator": "Success"}), json!({"n": 2})],
        "the report stays, the newer end joins its chunk"
    );
    assert_eq!(store.dialogues.ended.len(), 1);
}

#[test]
fn an_unreadable_chunk_is_kept_and_the_purge_goes_on_past_it() {
    let store = Store::temporary().unwrap();
    let d = &store.dialogues;
    let old = serde_json::to_vec(&json!({"ended_ms": 1})).unwrap();
    let chunk = |id: u64| {
        super::super::end_chunk::chunk_value([(id.to_be_bytes(), old.as_slice())].into_iter())
    };
    d.ended.insert(5u64.to_be_bytes(), chunk(5)).unwrap();
    let mut cut = chunk(6);
    cut.truncate(cut.len() - 1);
    d.ended.insert(6u64.to_be_bytes(), cut).unwrap();
    d.ended.insert(7u64.to_be_bytes(), chunk(7)).unwrap();
    // An empty chunk (never written by a commit) goes too.
    d.ended
        .insert(
            8u64.to_be_bytes(),
            super::super::end_chunk::chunk_value(std::iter::empty()),
        )
        .unwrap();
    assert_eq!(store.ended_count(), 2, "the unreadable one counts for none");
    let gone = store.purge_end_records(|_| true).unwrap();
    assert_eq!(gone, 2);
    let left: Vec<_> = d.ended.iter().keys().map(Result::unwrap).collect();
    assert_eq!(left, [sled::IVec::from(&6u64.to_be_bytes())]);
}

#[test]
fn end_records_read_in_the_order_the_dialogues_ended() {
    let store = Store::temporary().unwrap();
    let d = &store.dialogues;
    let doc = |n: u64| serde_json::to_vec(&json!({"n": n})).unwrap();
    let (a, b, c) = (doc(10), doc(20), doc(30));
    // Record 30 got its id before record 20's but joined an earlier commit's chunk.
    d.ended
        .insert(
            10u64.to_be_bytes(),
            super::super::end_chunk::chunk_value(
                [
                    (10u64.to_be_bytes(), a.as_slice()),
                    (30u64.to_be_bytes(), c.as_slice()),
                ]
                .into_iter(),
            ),
        )
        .unwrap();
    d.ended
        .insert(
            20u64.to_be_bytes(),
            super::super::end_chunk::chunk_value([(20u64.to_be_bytes(), b.as_slice())].into_iter()),
        )
        .unwrap();
    let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
    assert_eq!(
        records,
        [json!({"n": 10}), json!({"n": 20}), json!({"n": 30})]
    );
}

#[test]
fn a_report_on_an_end_that_waits_changes_it_without_a_commit() {
    let store = Store::temporary().unwrap();
    end(&store, "http:r", "END first", json!({"n": 1}));
    end(&store, "http:r", "END second", json!({"n": 2}));
    let waiting = store.uncommitted();
    assert!(
        store
            .update_end_record::<Value>("http:r", |r| r["aggregator"] = json!("Success"))
            .unwrap()
    );
    assert_eq!(store.uncommitted(), waiting, "nothing was committed");
    assert!(store.dialogues.ended.is_empty());
    assert!(
        !store
            .update_end_record::<Value>("http:none", |_| ())
            .unwrap(),
        "no end, waiting or kept"
    );
    let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
    assert_eq!(
        records,
        [json!({"n": 1}), json!({"n": 2, "aggregator": "Success"})],
        "the latest end of the key has the report"
    );
}

#[test]
fn counts_and_purges_of_end_records_go_over_every_slice() {
    let store = Store::temporary().unwrap();
    let n = 2 * crate::store::gate::SCAN_SLICE + 5;
    for i in 0..n as u64 {
        let doc = serde_json::to_vec(&json!({"ended_ms": i})).unwrap();
        let chunk =
            super::super::end_chunk::chunk_value([(i.to_be_bytes(), doc.as_slice())].into_iter());
        store
            .dialogues
            .ended
            .insert(i.to_be_bytes(), chunk)
            .unwrap();
    }
    assert_eq!(store.ended_count(), n);
    let gone = store
        .purge_end_records(|r| r["ended_ms"].as_u64().is_some_and(|t| t % 2 == 0))
        .unwrap();
    assert_eq!(gone, n.div_ceil(2));
    assert_eq!(store.ended_count(), n / 2);
}

#[test]
fn tombstones_are_found_after_a_restart_and_go_once_expired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let n = super::super::CHUNK_RECORDS + 2;
    {
        let store = Store::open(&path, 8, 500).unwrap();
        for i in 0..n {
            end(
                &store,
                &format!("http:{i}"),
                &format!("END {i}"),
                json!({"n": i}),
            );
        }
        store.flush_blocking().unwrap();
    }
    let store = reopen(&path);
    assert_eq!(store.tombstone_count(), n, "indexed again from sled");
    assert_eq!(
        store.tombstone::<Value>("http:17").unwrap(),
        Some(json!({"reply": "END 17"}))
    );
    assert_eq!(store.tombstone::<Value>("http:other").unwrap(), None);
    assert!(
        store
            .update_end_record::<Value>("http:3", |r| r["aggregator"] = json!("Success"))
            .unwrap()
    );
    // Not yet expired: kept.
    let now = crate::clock::now_ms();
    assert_eq!(store.purge_tombstones::<Value>(now, |_| true).unwrap(), 0);
    assert_eq!(store.tombstone_count(), n);
    // Past their time: every chunk and its index entry go, and the memory with them.
    let later = now + 301_000;
    assert_eq!(store.purge_tombstones::<Value>(later, |_| true).unwrap(), n);
    assert_eq!(store.tombstone_count(), 0, "the memory went with them");
    assert!(store.dialogues.tomb_chunks.is_empty());
    assert!(store.dialogues.tomb_index.is_empty());
    assert_eq!(store.tombstone::<Value>("http:17").unwrap(), None);
    assert_eq!(
        store.ended_count(),
        n,
        "end records have their own retention"
    );
}

#[test]
fn a_tombstone_past_its_time_is_still_found_after_a_restart_until_the_purge() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let past = crate::clock::now_ms() - 1_000;
    {
        let store = Store::open(&path, 8, 500).unwrap();
        let tomb = json!({"reply": "END Bye", "started_ms": 5});
        store
            .end("http:gone", (&tomb, past), &json!({"n": 1}), None)
            .unwrap();
        store.flush_blocking().unwrap();
    }
    // The gateway was down longer than the tombstone's lifetime: the start-up sweep still
    // needs it to recognise a live state a crash left behind.
    let store = reopen(&path);
    assert_eq!(
        store.tombstone::<Value>("http:gone").unwrap(),
        Some(json!({"reply": "END Bye", "started_ms": 5}))
    );
    // New ends after the start do not push it out.
    end(&store, "http:new", "END New", json!({"n": 2}));
    store.commit().unwrap();
    assert!(stored(&store, "http:gone"));
    let now = crate::clock::now_ms();
    assert_eq!(store.purge_tombstones::<Value>(now, |_| true).unwrap(), 1);
    assert_eq!(store.tombstone::<Value>("http:gone").unwrap(), None);
    assert!(stored(&store, "http:new"));
}

#[test]
fn a_crash_between_a_tombstone_index_entry_and_its_chunk_loses_only_those_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open(&path, 8, 500).unwrap();
        end(&store, "http:a", "END a", json!({"n": 1}));
        store.commit().unwrap();
        // As if a crash had cut the commit after the end record and the index entry (sled
        // recovers a prefix of its log).
        let (key, _) = store.dialogues.tomb_chunks.first().unwrap().unwrap();
        store.dialogues.tomb_chunks.remove(key).unwrap();
        // An earlier commit's tombstone, written whole.
        end(&store, "http:b", "END b", json!({"n": 2}));
        store.flush_blocking().unwrap();
    }
    let store = reopen(&path);
    assert_eq!(store.tombstone_count(), 2);
    assert_eq!(store.tombstone::<Value>("http:a").unwrap(), None);
    assert_eq!(
        store.tombstone::<Value>("http:b").unwrap(),
        Some(json!({"reply": "END b"}))
    );
    let later = crate::clock::now_ms() + 301_000;
    store.purge_tombstones::<Value>(later, |_| true).unwrap();
    assert!(store.dialogues.tomb_index.is_empty(), "the purge clears it");
}

#[test]
fn tombstones_kept_one_per_key_in_either_older_format_still_read_and_find_their_record() {
    let store = Store::temporary().unwrap();
    let d = &store.dialogues;
    let doc = br#"{"n":5}"#;
    // Format 1: the record kept alone under its id, which the tombstone names.
    let alone = 1234u64.to_be_bytes();
    d.ended.insert(alone, &doc[..]).unwrap();
    let mut tomb = vec![1u8];
    tomb.extend_from_slice(&alone);
    tomb.extend_from_slice(br#"{"reply":"END One"}"#);
    d.tombstones.insert("http:one", tomb).unwrap();
    // Format 2: the record in a chunk, which the tombstone names with the record's id.
    let at = super::super::RecordAt {
        key: 40u64.to_be_bytes(),
        id: 41u64.to_be_bytes(),
    };
    d.ended
        .insert(
            at.key,
            super::super::end_chunk::chunk_value([(at.id, &doc[..])].into_iter()),
        )
        .unwrap();
    let tomb = crate::store::format::tombstone::tombstone_value(at, br#"{"reply":"END Two"}"#);
    d.tombstones.insert("smpp:two", tomb).unwrap();
    d.check_old_tombstones();
    for (key, reply, n) in [("http:one", "END One", 10), ("smpp:two", "END Two", 20)] {
        assert_eq!(
            store.tombstone::<Value>(key).unwrap(),
            Some(json!({"reply": reply}))
        );
        assert!(
            store
                .update_end_record::<Value>(key, |r| r["n"] = json!(n))
                .unwrap()
        );
    }
    let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
    assert_eq!(records, [json!({"n": 20}), json!({"n": 10})], "in id order");
    // Purged by their documents, as before; the tree is then no longer read.
    assert_eq!(store.purge_tombstones::<Value>(0, |_| true).unwrap(), 2);
    assert!(!d.old_tombstones.load(super::super::Ordering::Acquire));
}
