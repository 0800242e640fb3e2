//! The write-behind buffer and the group commit, through the store's operations on dialogues:
//! what readers see before and after a commit, a commit cut by a failure or a crash, and
//! restarts. The chunks of end records and of tombstones are in [`chunks`].

use crate::store::Store;
use serde_json::{Value, json};

/// Ends `key`'s dialogue with `reply` as its tombstone (kept five minutes) and `record`
/// as its end record.
fn end(store: &Store, key: &str, reply: &str, record: Value) {
    let expires = crate::clock::now_ms() + 300_000;
    store
        .end(key, (&json!({"reply": reply}), expires), &record, None)
        .unwrap();
}

/// Whether sled has a tombstone for `key` (not counting what waits for a commit).
fn stored(store: &Store, key: &str) -> bool {
    store.dialogues.stored_tombstone(key).unwrap().is_some()
}

/// A commit that fails after `writes` writes, as a disk (or a crash) would cut it.
fn commit_cut_after(store: &Store, writes: usize) {
    use std::sync::atomic::Ordering;
    store.dialogues.fail_after.store(writes, Ordering::Release);
    assert!(store.commit().is_err());
    let fail_after = &store.dialogues.fail_after;
    fail_after.store(usize::MAX, Ordering::Release);
}

/// Opens the store at `path` again once the handle before has let go of it. sled's
/// background threads release its file lock a moment after the last handle is dropped,
/// and there is nothing to join: this waits for the lock (at most 5 s), as a restarted
/// process would find it free once the old one has exited.
fn reopen(path: &std::path::Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(path, 8, 500) {
            Ok(store) => return store,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("reopening the store: {e}"),
        }
    }
}

fn in_sled(store: &Store, key: &str) -> Option<Value> {
    let bytes = store.dialogues.sessions.get(key).unwrap()?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[test]
fn live_state_reads_back_before_its_commit_and_two_hops_make_one_write() {
    let store = Store::temporary().unwrap();
    store.put_live("http:a", json!({"hop": 1})).unwrap();
    assert_eq!(
        store.live::<Value>("http:a").unwrap(),
        Some(json!({"hop": 1}))
    );
    assert_eq!(
        in_sled(&store, "http:a"),
        None,
        "not written before the commit"
    );
    store.put_live("http:a", json!({"hop": 2})).unwrap();
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
    store.put_live("http:b", json!({"hop": 1})).unwrap();
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
    store.put_live("http:c", json!({"hop": 1})).unwrap();
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
    store.put_live("http:c", json!({"hop": 2})).unwrap();
    assert_eq!(store.commit().unwrap(), 3);
    assert_eq!(in_sled(&store, "http:c"), Some(json!({"hop": 2})));
    assert!(stored(&store, "http:d"));
    assert_eq!(store.ended_count(), 1);
}

#[test]
fn a_dialogue_that_transacts_has_its_state_and_end_written_at_once_and_in_order() {
    let store = Store::temporary().unwrap();
    // An earlier dialogue under the same key (a reused SMPP session) ended, not committed.
    end(&store, "smpp:k", "END first", json!({"n": 1}));
    store.put_live("smpp:k", json!({"hop": 3})).unwrap();
    store.dialogues.write_now("smpp:k").unwrap();
    assert_eq!(
        in_sled(&store, "smpp:k"),
        Some(json!({"hop": 3})),
        "before the transaction"
    );
    end(&store, "smpp:k", "END second", json!({"n": 2}));
    assert_eq!(store.uncommitted(), 0, "the end went to sled at once");
    assert_eq!(in_sled(&store, "smpp:k"), None);
    let (_, tomb) = store.dialogues.stored_tombstone("smpp:k").unwrap().unwrap();
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
    store.put_live("smpp:n", json!({"hop": 1})).unwrap();
    store.put_live("smpp:n", json!({"hop": 2})).unwrap();
    end(&store, "smpp:n", "END Bye", json!({"reason": "end"}));
    assert_eq!(store.uncommitted(), 1, "the end alone waits");
    assert_eq!(store.live::<Value>("smpp:n").unwrap(), None);
    store.commit().unwrap();
    assert_eq!(in_sled(&store, "smpp:n"), None);
    assert!(stored(&store, "smpp:n"));

    // One whose state was committed before its end is removed from sled as before.
    assert_eq!(store.live::<Value>("smpp:m").unwrap(), None);
    store.put_live("smpp:m", json!({"hop": 1})).unwrap();
    store.commit().unwrap();
    assert_eq!(
        store.live::<Value>("smpp:m").unwrap(),
        Some(json!({"hop": 1}))
    );
    store.put_live("smpp:m", json!({"hop": 2})).unwrap();
    end(&store, "smpp:m", "END Bye", json!({"reason": "end"}));
    assert_eq!(store.uncommitted(), 2, "the end and the removal");
    store.commit().unwrap();
    assert_eq!(in_sled(&store, "smpp:m"), None);
}

#[test]
fn an_absence_seen_across_a_commit_is_not_trusted() {
    let store = Store::temporary().unwrap();
    let super::Seen::Unknown(generation) = store.dialogues.live("smpp:r").unwrap() else {
        panic!("nothing waits for smpp:r");
    };
    // A commit begins between the look at what waits and the look in sled.
    store.put_live("smpp:other", json!({})).unwrap();
    store.commit().unwrap();
    store.dialogues.absent("smpp:r", generation);
    store.put_live("smpp:r", json!({"hop": 1})).unwrap();
    end(&store, "smpp:r", "END Bye", json!({"reason": "end"}));
    assert_eq!(store.uncommitted(), 2, "the removal is still written");
}

#[test]
fn a_commit_that_fails_midway_is_written_whole_by_the_next() {
    let store = Store::temporary().unwrap();
    // smpp:c was committed before, smpp:a is new (sled has no state for it).
    store.put_live("smpp:c", json!({"hop": 1})).unwrap();
    store.commit().unwrap();
    assert_eq!(store.live::<Value>("smpp:a").unwrap(), None);
    store.put_live("smpp:a", json!({"hop": 1})).unwrap();
    store.put_live("smpp:c", json!({"hop": 2})).unwrap();
    end(&store, "smpp:b", "END Bye", json!({"n": 1}));
    // The end's three writes and smpp:a's state land (live states go in key order);
    // smpp:b's removal and smpp:c's state do not.
    commit_cut_after(&store, 4);
    assert_eq!(in_sled(&store, "smpp:a"), Some(json!({"hop": 1})));
    assert_eq!(in_sled(&store, "smpp:c"), Some(json!({"hop": 1})));
    assert_eq!(
        store.live::<Value>("smpp:c").unwrap(),
        Some(json!({"hop": 2})),
        "readers see what waits"
    );
    // smpp:a ends before the next commit: its state reached sled, so the end must remove
    // it there even though sled had nothing when its dialogue began.
    end(&store, "smpp:a", "END Bye", json!({"n": 2}));
    assert_eq!(store.commit().unwrap(), 5, "three live keys, two ends");
    assert_eq!(in_sled(&store, "smpp:a"), None);
    assert_eq!(in_sled(&store, "smpp:c"), Some(json!({"hop": 2})));
    assert_eq!(store.ended_count(), 2, "written again under the same id");
    assert!(stored(&store, "smpp:b"));
}

#[test]
fn ends_are_written_before_live_states_so_a_cut_commit_keeps_every_end() {
    let store = Store::temporary().unwrap();
    store.put_live("http:x", json!({"hop": 1})).unwrap();
    store.commit().unwrap();
    end(&store, "http:x", "END Bye", json!({"n": 1}));
    store.put_live("http:y", json!({"hop": 1})).unwrap();
    // Cut right after the end's writes, as a crash would: the end is there, the live state
    // it replaces too (the start-up sweep recognises it by its tombstone).
    commit_cut_after(&store, 3);
    assert_eq!(store.dialogues.ended.len(), 1);
    assert!(stored(&store, "http:x"));
    assert_eq!(in_sled(&store, "http:x"), Some(json!({"hop": 1})));
    assert_eq!(in_sled(&store, "http:y"), None);
}

#[test]
fn an_end_record_is_found_from_its_tombstone_and_old_tombstones_still_read() {
    let store = Store::temporary().unwrap();
    end(&store, "http:t", "END Bye", json!({"n": 1}));
    store.commit().unwrap();
    assert!(store.dialogues.index.is_empty(), "the index is not written");
    let changed = store
        .update_end_record::<Value>("http:t", |r| r["aggregator"] = json!("Success"))
        .unwrap();
    assert!(changed);
    let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
    assert_eq!(records, [json!({"n": 1, "aggregator": "Success"})]);

    // A tombstone and index entry as an older gateway wrote them.
    let id = 77u64.to_be_bytes();
    let d = &store.dialogues;
    d.ended.insert(id, &br#"{"n":0}"#[..]).unwrap();
    d.index.insert("http:old", &id).unwrap();
    d.tombstones
        .insert("http:old", &br#"{"reply":"END Old"}"#[..])
        .unwrap();
    d.check_old_tombstones();
    assert_eq!(
        store.tombstone::<Value>("http:old").unwrap(),
        Some(json!({"reply": "END Old"}))
    );
    assert!(
        store
            .update_end_record::<Value>("http:old", |r| r["n"] = json!(2))
            .unwrap()
    );
    let records: Vec<Value> = store.ended_records().map(Result::unwrap).collect();
    assert!(records.contains(&json!({"n": 2})), "{records:?}");
    // The old index stays while an old tombstone needs it, and goes with the last one.
    let later = u64::MAX;
    let none = |_: &Value| false;
    assert_eq!(store.purge_tombstones::<Value>(later, none).unwrap(), 1);
    assert_eq!(d.index.len(), 1);
    assert_eq!(store.purge_tombstones::<Value>(later, |_| true).unwrap(), 1);
    assert!(d.index.is_empty());
    assert!(
        !store.update_end_record::<Value>("http:t", |_| ()).unwrap(),
        "found while its tombstone is kept"
    );
}

#[test]
fn what_waits_is_written_when_the_last_handle_goes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open(&path, 8, 500).unwrap();
        store.put_live("smpp:x", json!({"hop": 3})).unwrap();
        let other = store.clone();
        drop(store);
        assert_eq!(
            other.uncommitted(),
            1,
            "another handle still holds the store"
        );
    }
    let store = reopen(&path);
    assert_eq!(in_sled(&store, "smpp:x"), Some(json!({"hop": 3})));
}

#[path = "write_behind_chunk_tests.rs"]
mod chunks;
