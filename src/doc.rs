//! A record as the store read it: its JSON value, and the text it was read from.
//!
//! A flow's `load` puts a record into a variable, and the variable is written with every state
//! of the dialogue. Cloned into the variable, dropped with each state and walked again by each
//! write, a student's record (1.2 KB of JSON) cost about a sixth of a first hop. A `Doc` is
//! read once and shared instead: the store's parsed copy, the variable and every state that
//! holds it are one allocation, never changed, and writing it copies its text.

use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON document and its text (see the module's documentation).
#[derive(Debug)]
pub struct Doc {
    value: Value,
    text: Box<RawValue>,
}

impl Doc {
    /// Reads a stored document.
    ///
    /// # Errors
    /// The bytes are not one JSON value.
    pub fn parse(bytes: &[u8]) -> Result<Doc, serde_json::Error> {
        let text: Box<RawValue> = serde_json::from_slice(bytes)?;
        let value = serde_json::from_str(text.get())?;
        Ok(Doc { value, text })
    }

    /// A document made from a value (its text written once, here).
    #[cfg(test)]
    pub(crate) fn from_value(value: Value) -> Doc {
        let text = serde_json::value::to_raw_value(&value)
            .unwrap_or_else(|_| unreachable!("a JSON value always writes as JSON"));
        Doc { value, text }
    }

    /// Its value.
    pub fn value(&self) -> &Value {
        &self.value
    }
}

/// Reads as its value.
impl std::ops::Deref for Doc {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.value
    }
}

impl PartialEq for Doc {
    fn eq(&self, other: &Doc) -> bool {
        self.value == other.value
    }
}

/// Written as the text it was read from: a copy, not a walk of the value.
impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.text.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_doc_writes_back_the_json_it_was_read_from() {
        #[derive(Serialize)]
        struct State<'a> {
            screen: &'a str,
            student: &'a Doc,
        }
        let doc =
            Doc::parse(br#" {"name":"Amina","fees":{"balance":1500},"tags":["a","b"]} "#).unwrap();
        assert_eq!(doc.value()["fees"]["balance"], json!(1500));
        let state = State {
            screen: "home",
            student: &doc,
        };
        assert_eq!(
            serde_json::to_string(&state).unwrap(),
            r#"{"screen":"home","student":{"name":"Amina","fees":{"balance":1500},"tags":["a","b"]}}"#
        );
        assert_eq!(serde_json::to_value(&doc).unwrap(), *doc.value());
    }

    #[test]
    fn a_doc_made_from_a_value_writes_that_value() {
        let doc = Doc::from_value(json!({ "a": [1, 2, { "b": null }] }));
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"a":[1,2,{"b":null}]}"#
        );
        assert!(Doc::parse(b"{\"a\": 1").is_err());
        assert!(Doc::parse(b"1 2").is_err());
    }
}
