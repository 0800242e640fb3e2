//! The flow file as authors write it: serde types for the YAML, `deny_unknown_fields` everywhere.
//!
//! These types are only the parse result. [`super::load`] checks them against each other
//! (targets, reachability, templates, text widths) and compiles them into [`super::screen`]
//! types; nothing at runtime reads these.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A text that is either one string or a map of language code to string, in file order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Text {
    /// The same text in every language.
    One(String),
    /// `{en: ..., sw: ...}`: one text per language, in the order written.
    Langs(Vec<(String, String)>),
}

impl Text {
    fn plain(s: &str) -> Text {
        Text::One(s.to_string())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a map of language code to string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text::plain(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
                let mut langs = Vec::new();
                while let Some((lang, text)) = map.next_entry::<String, String>()? {
                    langs.push((lang, text));
                }
                if langs.is_empty() {
                    return Err(de::Error::custom("empty language map"));
                }
                Ok(Text::Langs(langs))
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

fn default_language() -> String {
    "en".to_string()
}

/// The top of a flow file, everything except `screens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderSpec {
    pub start: String,
    #[serde(default)]
    pub home: Option<String>,
    #[serde(default = "default_language")]
    pub default_language: String,
    #[serde(default)]
    pub language_var: Option<String>,
    #[serde(default)]
    pub vars: Map<String, Value>,
    #[serde(default)]
    pub navigation: NavSpec,
    #[serde(default)]
    pub invalid_choice: Option<Text>,
    #[serde(default)]
    pub apology: Option<Text>,
    /// Environment variables that `http` screens may use as `secrets.NAME`.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Opt-in: continue a dialogue that was cut (`docs/flows.md`, "Resume").
    #[serde(default)]
    pub resume: Option<super::model_http::ResumeSpec>,
}

fn key_next() -> String {
    "98".to_string()
}
fn key_back() -> String {
    "0".to_string()
}
fn key_home() -> Option<String> {
    Some("00".to_string())
}
fn label_more() -> Text {
    Text::plain("More")
}
fn label_back() -> Text {
    Text::plain("Back")
}
fn yes() -> bool {
    true
}

/// `navigation:`: the page and history keys and the labels shown for them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NavSpec {
    #[serde(default = "key_next")]
    pub next: String,
    #[serde(default = "key_back")]
    pub back: String,
    /// `null` switches the home key off.
    #[serde(default = "key_home")]
    pub home: Option<String>,
    #[serde(default = "label_more")]
    pub more_label: Text,
    #[serde(default = "label_back")]
    pub back_label: Text,
    /// Whether `back` on a first page returns to the previous interactive screen.
    #[serde(default = "yes")]
    pub history: bool,
}

impl Default for NavSpec {
    fn default() -> Self {
        NavSpec {
            next: key_next(),
            back: key_back(),
            home: key_home(),
            more_label: label_more(),
            back_label: label_back(),
            history: true,
        }
    }
}

/// One menu (or input) option.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OptionSpec {
    pub label: Text,
    pub next: String,
    #[serde(default)]
    pub set: Map<String, Value>,
}

/// Dynamic menu entries built from a list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemsSpec {
    pub from: String,
    pub label: Text,
    #[serde(default)]
    pub value: Option<String>,
    pub into: String,
    pub next: String,
}

/// `invalid: {end: ...}`: a bad choice ends the dialogue with this text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvalidSpec {
    pub end: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MenuSpec {
    pub text: Text,
    #[serde(default)]
    pub options: Vec<OptionSpec>,
    #[serde(default)]
    pub items: Option<ItemsSpec>,
    #[serde(default)]
    pub invalid: Option<InvalidSpec>,
}

/// Inclusive bounds; either side may be left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bounds<T> {
    #[serde(default)]
    pub min: Option<T>,
    #[serde(default)]
    pub max: Option<T>,
}

/// One validator: exactly one of `regex`, `range`, `length`, `expr`, plus its `error` text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidatorSpec {
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub range: Option<Bounds<f64>>,
    #[serde(default)]
    pub length: Option<Bounds<usize>>,
    #[serde(default)]
    pub expr: Option<String>,
    pub error: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputSpec {
    pub text: Text,
    pub into: String,
    pub next: String,
    #[serde(default)]
    pub validators: Vec<ValidatorSpec>,
    #[serde(default)]
    pub options: Vec<OptionSpec>,
    /// What is typed here is a secret (a PIN): masked in everything kept after the hop.
    #[serde(default)]
    pub sensitive: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSpec {
    pub when: String,
    pub next: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouterSpec {
    pub routes: Vec<RouteSpec>,
    pub default: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetSpec {
    pub values: Map<String, Value>,
    pub next: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndSpec {
    pub text: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoadSpec {
    pub record: String,
    pub into: String,
    pub found: String,
    pub missing: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteSpec {
    pub record: String,
    pub fields: Map<String, Value>,
    #[serde(default = "yes")]
    pub merge: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SaveSpec {
    pub writes: Vec<WriteSpec>,
    pub next: String,
    #[serde(default)]
    pub failed: Option<String>,
}

/// `type: transact`: ledger and record operations applied all together or not at all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransactSpec {
    pub ops: Vec<OpSpec>,
    /// A variable that receives `{txn: "<id>"}` on success.
    #[serde(default)]
    pub into: Option<String>,
    pub next: String,
    /// Where a failing op without its own `else`, or a store failure, goes.
    #[serde(default)]
    pub failed: Option<String>,
}

/// One operation of a transaction, written `- transfer: {...}`, `- add: {...}`, ...: exactly
/// one of the fields is set (checked when compiling). A struct rather than an enum so that the
/// YAML reads as a plain one-key mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpSpec {
    #[serde(default)]
    pub transfer: Option<TransferSpec>,
    #[serde(default)]
    pub add: Option<AddSpec>,
    #[serde(default)]
    pub require: Option<RequireSpec>,
    #[serde(default)]
    pub put: Option<PutSpec>,
    #[serde(default)]
    pub sms: Option<SmsSpec>,
    #[serde(default)]
    pub airtime: Option<AirtimeSpec>,
    #[serde(default)]
    pub call: Option<CallSpec>,
    #[serde(default)]
    pub push: Option<PushSpec>,
    #[serde(default)]
    pub dialogue: Option<DialogueSpec>,
}

/// Moves money between ledger accounts (records with a `balance_cents` field) and journals it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferSpec {
    /// The debited account (`wallets/{{ phone }}`); absent = money from outside.
    #[serde(default)]
    pub from: Option<String>,
    /// The credited account; absent = money leaving the ledger.
    #[serde(default)]
    pub to: Option<String>,
    /// Integer cents (use the `to_cents` filter on typed amounts).
    pub amount: Value,
    /// The journal's transaction type (`deposit`, `withdrawal`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where to go when the debited account has too little.
    #[serde(default, rename = "else")]
    pub otherwise: Option<String>,
}

/// Adds to a numeric field, within bounds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddSpec {
    pub record: String,
    pub field: String,
    pub amount: Value,
    #[serde(default)]
    pub min: Option<Value>,
    #[serde(default)]
    pub max: Option<Value>,
    #[serde(default, rename = "else")]
    pub otherwise: Option<String>,
}

/// A condition on a record at the moment of the transaction.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequireSpec {
    pub record: String,
    #[serde(default)]
    pub exists: Option<bool>,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub equals: Option<Value>,
    #[serde(default, rename = "else")]
    pub otherwise: Option<String>,
}

/// Writes a record (merge by default), like a `save` write.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutSpec {
    pub record: String,
    pub fields: Map<String, Value>,
    #[serde(default = "yes")]
    pub merge: bool,
}

/// An SMS through the outbox.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmsSpec {
    pub to: String,
    pub message: String,
    /// RFC 3339 time before which it is not sent (reminders).
    #[serde(default)]
    pub not_before: Option<String>,
}

/// Airtime through the outbox.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AirtimeSpec {
    pub to: String,
    pub amount: Value,
    pub currency: String,
}

/// A USSD notification (USSN) over an SMPP bind, through the outbox.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushSpec {
    pub to: String,
    pub message: String,
    /// The `[[smpp.binds]]` name; the first bind up when absent.
    #[serde(default)]
    pub bind: Option<String>,
    /// RFC 3339 time before which it is not sent.
    #[serde(default)]
    pub not_before: Option<String>,
}

/// A network-initiated USSD dialogue over an SMPP bind, through the outbox.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DialogueSpec {
    pub to: String,
    /// The service code whose route answers.
    pub service_code: String,
    /// The `[[smpp.binds]]` name; the first bind up when absent.
    #[serde(default)]
    pub bind: Option<String>,
    /// RFC 3339 time before which it is not started.
    #[serde(default)]
    pub not_before: Option<String>,
}

/// An outbound call through the outbox.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallSpec {
    pub to: String,
}

/// `type: list`: every record of a collection, as a list of documents with their `id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListSpec {
    pub collection: String,
    pub into: String,
    pub next: String,
}

/// The screen types, named as in the `type:` field.
pub(crate) const SCREEN_TYPES: [&str; 10] = [
    "menu", "input", "router", "set", "end", "load", "save", "transact", "list", "http",
];
