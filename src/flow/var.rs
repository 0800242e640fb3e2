//! A dialogue variable's value: JSON the flow made (an input, a `set`, a backend's answer), or
//! a record a `load` read, shared with the store (a [`Doc`]: no copy is made, dropped or walked
//! again at each hop). Either reads as a [`Value`]; both are written as the same JSON, and read
//! back as JSON, so the persisted state does not tell them apart.

use crate::doc::Doc;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::ops::Deref;
use std::sync::Arc;

/// One variable's value (see the module's documentation).
#[derive(Debug, Clone)]
pub enum Var {
    /// A value of the dialogue's own.
    Json(Value),
    /// A record as read, shared.
    Record(Arc<Doc>),
}

impl Deref for Var {
    type Target = Value;

    fn deref(&self) -> &Value {
        match self {
            Var::Json(v) => v,
            Var::Record(doc) => doc.value(),
        }
    }
}

/// Shown as its JSON.
impl std::fmt::Display for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl From<Value> for Var {
    fn from(v: Value) -> Var {
        Var::Json(v)
    }
}

impl<T> PartialEq<T> for Var
where
    Value: PartialEq<T>,
{
    fn eq(&self, other: &T) -> bool {
        **self == *other
    }
}

impl PartialEq for Var {
    fn eq(&self, other: &Var) -> bool {
        **self == **other
    }
}

impl Serialize for Var {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Var::Json(v) => v.serialize(s),
            Var::Record(doc) => doc.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Var {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Var, D::Error> {
        Value::deserialize(d).map(Var::Json)
    }
}
