//! The masking of sensitive inputs, case by case.

use super::*;

fn marked(bits: &[usize]) -> Sensitive {
    let mut s = Sensitive::NONE;
    for b in bits {
        s.mark(*b);
    }
    s
}

fn next(text: &str, at: usize) -> HopText {
    HopText {
        text: text.into(),
        inputs: InputsAt::Next(at),
        cumulative: true,
    }
}

#[test]
fn inputs_are_derived_from_what_was_seen() {
    assert_eq!(derive_input("", ""), "");
    assert_eq!(derive_input("", "1"), "1");
    assert_eq!(derive_input("1", "1*2"), "2");
    // A subscriber may type `*` inside an input.
    assert_eq!(derive_input("1*2", "1*2*3*4"), "3*4");
    assert_eq!(derive_input("", "*"), "*");
    assert_eq!(derive_input("1", "1**"), "*");
    // Something the aggregator rewrote: fall back to the last segment.
    assert_eq!(derive_input("1*2", "5*6"), "6");
}

#[test]
fn without_a_sensitive_input_the_text_is_kept_as_it_is() {
    assert_eq!(relate("1*2", None, "1*2"), Relation::Retry);
    assert_eq!(relate("1*2", None, "1*2*3*4"), Relation::Next(4));
    assert_eq!(relate("", None, "7"), Relation::Next(0));
    assert_eq!(relate("1*2", None, "5*6"), Relation::Other(2));
    let (kept, raw) = keep("1", None, next("1*2", 2), Sensitive::NONE);
    assert_eq!((kept.as_str(), raw), ("1*2", None));
}

#[test]
fn a_sensitive_input_is_masked_and_the_raw_text_only_digested() {
    // The PIN hop: "1*4862" was kept, "1*4862*739146" arrives.
    let (kept, raw) = keep("1*4862", None, next("1*4862*739146", 7), marked(&[0]));
    assert_eq!(kept, "1*4862*xxxx");
    let raw = raw.unwrap();
    assert_eq!(raw.len, "1*4862*739146".len());
    let stored = serde_json::to_string(&(&kept, raw)).unwrap();
    assert!(!stored.contains("739146"), "{stored}");
    // Every sensitive input looks the same, whatever its length.
    let (short, _) = keep("1*4862", None, next("1*4862*12", 7), marked(&[0]));
    assert_eq!(short, kept);

    // A retry of the PIN hop is recognised; so is the hop after it, and its input.
    assert_eq!(relate(&kept, Some(&raw), "1*4862*739146"), Relation::Retry);
    assert_eq!(
        relate(&kept, Some(&raw), "1*4862*739146*1"),
        Relation::Next(14)
    );
    // Another PIN of the same length is not the hop seen, nor its prefix.
    assert_eq!(
        relate(&kept, Some(&raw), "1*4862*739147"),
        Relation::Other(7)
    );
    assert_eq!(
        relate(&kept, Some(&raw), "1*4862*739147*1"),
        Relation::Other(14)
    );
    assert_eq!(relate(&kept, Some(&raw), "1*4862"), Relation::Other(2));

    // The hop after: its input is kept as typed, the mask stays, the digest follows.
    let (after, raw2) = keep(
        &kept,
        Some(&raw),
        next("1*4862*739146*1", 14),
        Sensitive::NONE,
    );
    assert_eq!(after, "1*4862*xxxx*1");
    let raw2 = raw2.unwrap();
    assert_eq!(
        relate(&after, Some(&raw2), "1*4862*739146*1"),
        Relation::Retry
    );
    assert_eq!(
        relate(&after, Some(&raw2), "1*4862*739146*1*2*2"),
        Relation::Next(16)
    );
}

#[test]
fn after_a_restart_only_the_length_is_checked() {
    let mut raw = RawText::of("1*739146");
    raw.key = raw.key.wrapping_add(1);
    raw.digest = 0;
    assert_eq!(relate("1*xxxx", Some(&raw), "1*739146"), Relation::Retry);
    assert_eq!(
        relate("1*xxxx", Some(&raw), "1*739146*2"),
        Relation::Next(9)
    );
    assert_eq!(
        relate("1*xxxx", Some(&raw), "1*73914*2"),
        Relation::Other(8)
    );
    // A text cut inside a character is no prefix (and no panic).
    let raw = RawText::of("1*é");
    assert_eq!(relate("1*xxxx", Some(&raw), "1*é*2"), Relation::Next(5));
    assert_eq!(relate("1*xxxx", Some(&raw), "1é*2"), Relation::Other(4));
}

#[test]
fn inputs_typed_ahead_are_masked_where_sensitive() {
    // The first hop: one input in the dial, two in the text; the second of the text is a PIN.
    let hop = HopText {
        text: "1*739146".into(),
        inputs: InputsAt::Start { dialled: 1 },
        cumulative: true,
    };
    let (kept, raw) = keep("", None, hop, marked(&[2]));
    assert_eq!(kept, "1*xxxx");
    assert_eq!(relate(&kept, raw.as_ref(), "1*739146"), Relation::Retry);
    let empty = HopText {
        text: String::new(),
        inputs: InputsAt::Start { dialled: 1 },
        cumulative: true,
    };
    assert_eq!(keep("", None, empty, marked(&[0])).0, "");
    assert_eq!(
        mask_dial("*384*303*2*739146#", "*384*303#", marked(&[1])).as_deref(),
        Some("*384*303*2*xxxx#")
    );
    assert_eq!(mask_dial("*384*303*2#", "*384*303#", marked(&[1])), None);
    assert_eq!(mask_dial("*384*303#", "*384*303#", Sensitive::ALL), None);
}

#[test]
fn over_smpp_the_built_text_is_masked_the_same_way() {
    // The actor builds `kept*input`; no digest, since nothing is compared.
    let hop = HopText {
        text: "1*4862*739146".into(),
        inputs: InputsAt::Next(7),
        cumulative: false,
    };
    assert_eq!(
        keep("1*4862", None, hop, marked(&[0])),
        ("1*4862*xxxx".into(), None)
    );
    let hop = HopText {
        text: "1*4862*xxxx*1".into(),
        inputs: InputsAt::Next(12),
        cumulative: false,
    };
    assert_eq!(
        keep("1*4862*xxxx", None, hop, Sensitive::NONE),
        ("1*4862*xxxx*1".into(), None)
    );
}
