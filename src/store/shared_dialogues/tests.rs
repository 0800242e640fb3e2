//! Unit tests of the dialogues' keys.

use super::*;

#[test]
fn buckets_are_stable_and_spread() {
    // Fixed values: a key's bucket must never change between versions.
    assert_eq!(bucket(""), 0x811c_9dc5 % BUCKETS);
    assert_eq!(bucket("at:ATUid_1"), bucket("at:ATUid_1"));
    let used: std::collections::BTreeSet<u32> =
        (0..4096).map(|i| bucket(&format!("at:s{i}"))).collect();
    assert_eq!(used.len(), BUCKETS as usize, "4096 keys use every bucket");
}

#[test]
fn a_dialogues_keys_share_one_hash_tag() {
    let k = Keys::of("at:{odd}key");
    let tag = |s: &str| s[s.find('{').unwrap()..=s.find('}').unwrap()].to_string();
    let t = tag(&k.live);
    for other in [&k.lease, &k.tomb, &k.deadlines, &k.events] {
        assert_eq!(tag(other), t);
    }
    assert_eq!(tag(&k.end_record("at:{odd}key", 5)), t);
}
