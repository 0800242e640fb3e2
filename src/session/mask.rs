//! Sensitive inputs (a PIN typed on a flow's `sensitive` input screen) in what a dialogue keeps.
//!
//! A dialogue keeps the cumulative text of its last answered hop (`Dialogue::seen_text`): it
//! names a retry (the same text), gives the next hop's input (the text followed by `*input`),
//! and becomes the tombstone's text and the end record's `input` (exports, end-of-session
//! events). Once an input of the dialogue was sensitive, the text kept has every sensitive
//! input replaced by [`MASK`], and the raw text AT sends is known only by its length and a
//! keyed digest ([`RawText`]): enough to recognise a retry and the next hop, not to recover a
//! PIN. A dialogue without a sensitive input keeps the raw text as before (and no digest), so
//! the common path costs nothing more and a live state written by an older gateway reads as
//! one of those.
//!
//! Over SMPP each hop carries one input and the dialogue builds the same cumulative text from
//! the kept one: it is masked the same way, and needs no digest (nothing is compared).

use crate::app::Sensitive;
use crate::hop::MASK;
use serde::{Deserialize, Serialize};
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

/// The raw cumulative text of a dialogue's last answered hop, kept instead of the text itself
/// once the text kept is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawText {
    /// Its length in bytes.
    pub len: usize,
    /// Its SipHash under this process's key.
    pub digest: u64,
    /// Which key: the key is random per process and never leaves its memory (a digest of a
    /// four-digit PIN under a key stored next to it would give the PIN away), so a gateway
    /// started again cannot check a digest made before, and checks only the length.
    pub key: u32,
}

/// This process's digest key and its name.
struct Key {
    hasher: RandomState,
    id: u32,
}

fn key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| Key {
        hasher: RandomState::new(),
        id: rand::random(),
    })
}

impl RawText {
    /// `text`'s length and digest.
    pub fn of(text: &str) -> RawText {
        let key = key();
        RawText {
            len: text.len(),
            digest: key.hasher.hash_one(text),
            key: key.id,
        }
    }

    /// Whether `text` is the raw text: the same length, and the same digest when this process
    /// made it.
    fn matches(&self, text: &str) -> bool {
        let key = key();
        text.len() == self.len && (self.key != key.id || key.hasher.hash_one(text) == self.digest)
    }
}

/// How a hop's cumulative text relates to the last answered one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The same text: a retry.
    Retry,
    /// The text goes on with a new input, from this byte on.
    Next(usize),
    /// Something else (an aggregator that rewrote the text): the last `*` segment, from this
    /// byte on, is the best guess left.
    Other(usize),
}

impl Relation {
    /// Where the new input starts in the text (`None` for a retry).
    pub fn input_at(self) -> Option<usize> {
        match self {
            Relation::Retry => None,
            Relation::Next(at) | Relation::Other(at) => Some(at),
        }
    }
}

/// Where the input `text` carries after the text `seen` starts, when it extends `seen` as it
/// should: `seen`, `*`, the input (or just the input when nothing was seen yet).
fn extends(seen: &str, text: &str) -> Option<usize> {
    if seen.is_empty() {
        return Some(0);
    }
    text.strip_prefix(seen)?.strip_prefix('*')?;
    Some(seen.len() + 1)
}

/// Where the last `*` segment of `text` starts.
fn last_segment(text: &str) -> usize {
    text.rfind('*').map_or(0, |i| i + 1)
}

/// How `text` relates to the last answered hop's: `seen` is the text kept, `raw` the raw
/// text's digest when the text kept is masked.
pub fn relate(seen: &str, raw: Option<&RawText>, text: &str) -> Relation {
    let Some(raw) = raw else {
        if text == seen {
            return Relation::Retry;
        }
        return match extends(seen, text) {
            Some(at) => Relation::Next(at),
            None => Relation::Other(last_segment(text)),
        };
    };
    if raw.matches(text) {
        return Relation::Retry;
    }
    if raw.len == 0 {
        return Relation::Next(0);
    }
    match text.get(..raw.len) {
        Some(prefix) if text.as_bytes().get(raw.len) == Some(&b'*') && raw.matches(prefix) => {
            Relation::Next(raw.len + 1)
        }
        _ => Relation::Other(last_segment(text)),
    }
}

/// The new input carried by a cumulative `text`, given the (raw) text already seen.
///
/// Normally `text` is `seen + "*" + input` (or just the input when nothing was seen yet), and the
/// input may itself contain `*`. If the aggregator sends something else, the last `*` segment is
/// the best guess left.
pub fn derive_input(seen: &str, text: &str) -> String {
    let at = extends(seen, text).unwrap_or_else(|| {
        tracing::warn!("cumulative text does not extend the dialogue's; using its last segment");
        last_segment(text)
    });
    text[at..].to_string()
}

/// Where a hop's inputs are in its cumulative text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputsAt {
    /// A dialogue's first hop: the inputs typed ahead in the dial (this many) come first, then
    /// those of the text, `*`-separated (none when the text is empty).
    Start {
        /// Inputs typed ahead in the dial.
        dialled: usize,
    },
    /// A later hop: its one input, from this byte on.
    Next(usize),
}

/// A hop's cumulative text, as the actor handed it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopText {
    /// The text: AT's own (`cumulative`), or built over SMPP from the text kept and the input.
    pub text: String,
    /// Where the hop's inputs are in it.
    pub inputs: InputsAt,
    /// Whether the text is the aggregator's, to be recognised on the next hop (not over SMPP).
    pub cumulative: bool,
}

/// `kept`, `*`, `piece`; just `piece` when nothing was kept (as AT joins inputs).
fn join(kept: &str, piece: &str) -> String {
    if kept.is_empty() {
        return piece.to_string();
    }
    let mut out = String::with_capacity(kept.len() + 1 + piece.len());
    out.push_str(kept);
    out.push('*');
    out.push_str(piece);
    out
}

/// What a dialogue keeps of a hop: the text to keep, and the raw text's digest when the text
/// kept is masked and the raw one is the aggregator's. `kept` and `raw` are what it kept of
/// the hop before; `sensitive` says which of this hop's inputs were sensitive.
///
/// A dialogue that never had a sensitive input keeps the hop's text as it is (no copy, no
/// digest).
pub fn keep(
    kept: &str,
    raw: Option<&RawText>,
    hop: HopText,
    sensitive: Sensitive,
) -> (String, Option<RawText>) {
    if !sensitive.any() && raw.is_none() {
        return (hop.text, None);
    }
    let masked = match hop.inputs {
        InputsAt::Start { dialled } => {
            let mut out = String::with_capacity(hop.text.len());
            if !hop.text.is_empty() {
                for (i, piece) in hop.text.split('*').enumerate() {
                    if i > 0 {
                        out.push('*');
                    }
                    out.push_str(if sensitive.is(dialled + i) {
                        MASK
                    } else {
                        piece
                    });
                }
            }
            out
        }
        InputsAt::Next(at) => {
            let input = if sensitive.is(0) {
                MASK
            } else {
                hop.text.get(at..).unwrap_or_default()
            };
            join(kept, input)
        }
    };
    let raw = hop.cumulative.then(|| RawText::of(&hop.text));
    (masked, raw)
}

/// The dial `dialled` (which reached the route `route`) with the inputs typed ahead in it
/// masked where `sensitive` says so (they are the hop's first inputs): `*384*303*7391#`
/// becomes `*384*303*xxxx#`. `None` when none of them is sensitive.
pub fn mask_dial(dialled: &str, route: &str, sensitive: Sensitive) -> Option<String> {
    let segments = |code: &str| -> Vec<String> {
        let inner = code.trim().trim_start_matches('*');
        let inner = inner.strip_suffix('#').unwrap_or(inner);
        inner.split('*').map(str::to_string).collect()
    };
    let codes = segments(route).len();
    let all = segments(dialled);
    let typed = all.get(codes..).unwrap_or_default();
    if !(0..typed.len()).any(|i| sensitive.is(i)) {
        return None;
    }
    let mut out = String::with_capacity(dialled.len());
    for (i, s) in all.iter().enumerate() {
        out.push('*');
        out.push_str(match i.checked_sub(codes) {
            Some(n) if sensitive.is(n) => MASK,
            _ => s,
        });
    }
    out.push('#');
    Some(out)
}

#[cfg(test)]
#[path = "mask_tests.rs"]
mod tests;
