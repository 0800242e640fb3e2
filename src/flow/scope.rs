//! The template context of one hop, read lazily.
//!
//! A dialogue's variables are JSON (they are persisted as such) and can be large: a loaded
//! student record carries every result, fee and timetable row. Converting them all into
//! template values for every render cost more than the rest of a hop's flow work, while a
//! screen reads a handful of fields. So the context is an object that looks names up when a
//! template asks for them, and a JSON object or array becomes a template value that does the
//! same for its own fields and items: nothing is converted that no template reads.

use super::var::Var;
use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectExt, ObjectRepr};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A dialogue's variables, shared between its state and the hop's template context.
pub(crate) type Vars = Arc<BTreeMap<String, Var>>;

/// The context: the per-hop built-ins, then the dialogue's variables, then the flow's `vars`
/// (a name found earlier hides the same name later).
#[derive(Debug)]
pub(crate) struct Scope {
    pub builtins: [(&'static str, Value); 5],
    /// The built-in `now`, written out only when a template reads it (few do, and writing a
    /// time out cost more than the other built-ins together).
    pub now: jiff::Timestamp,
    pub vars: Vars,
    /// The flow's `vars`: a map value built when the flow was loaded.
    pub consts: Value,
}

impl Scope {
    /// Every name the context answers, each once.
    fn keys(&self) -> Vec<Value> {
        let builtin = |k: &str| k == "now" || self.builtins.iter().any(|(b, _)| *b == k);
        let mut keys: Vec<Value> = self.builtins.iter().map(|(k, _)| Value::from(*k)).collect();
        keys.push(Value::from("now"));
        keys.extend(
            self.vars
                .keys()
                .filter(|k| !builtin(k))
                .map(|k| Value::from(k.as_str())),
        );
        if let Ok(consts) = self.consts.try_iter() {
            keys.extend(consts.filter(|k| {
                let name = k.as_str().unwrap_or_default();
                !builtin(name) && !self.vars.contains_key(name)
            }));
        }
        keys
    }
}

impl Object for Scope {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        if let Some((_, v)) = self.builtins.iter().find(|(k, _)| *k == key) {
            return Some(v.clone());
        }
        if key == "now" {
            return Some(Value::from(self.now.to_string()));
        }
        if let Some(v) = self.vars.get(key).map(|v| &**v) {
            return Some(Json::wrap(&self.vars, || Path::var(key), v));
        }
        self.consts.get_attr(key).ok().filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.keys())
    }
}

/// A context with one more name on top (`item` for a list's row, `input`, `secrets`): a
/// name looked up here, then in the context under it. Binding a row's `item` this way makes
/// no map and no merged copy of the context, once per row.
#[derive(Debug)]
pub(crate) struct Bound {
    pub name: Box<str>,
    pub value: Value,
    pub under: Value,
}

impl Object for Bound {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        if key == &*self.name && !self.value.is_undefined() {
            return Some(self.value.clone());
        }
        self.under.get_attr(key).ok().filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys = vec![Value::from(&*self.name)];
        if let Ok(under) = self.under.try_iter() {
            keys.extend(under.filter(|k| k.as_str() != Some(&*self.name)));
        }
        Enumerator::Values(keys)
    }
}

/// Where a JSON container sits among the variables: the variable, then keys and indices,
/// each step holding the path above it (a step deeper shares it, no copy).
#[derive(Debug, Clone)]
struct Path(Arc<(Option<Path>, Step)>);

#[derive(Debug)]
enum Step {
    Key(Box<str>),
    Index(usize),
}

impl Path {
    fn var(name: &str) -> Path {
        Path(Arc::new((None, Step::Key(name.into()))))
    }

    fn then(&self, step: Step) -> Path {
        Path(Arc::new((Some(self.clone()), step)))
    }
}

/// A JSON object or array among a dialogue's variables, as a template value.
#[derive(Debug)]
struct Json {
    vars: Vars,
    path: Path,
}

impl Json {
    /// `v`, found at `path` in `vars`, as a template value: scalars converted, containers
    /// wrapped (the path is made for those only).
    fn wrap(vars: &Vars, path: impl FnOnce() -> Path, v: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match v {
            J::Null => Value::from(()),
            J::Bool(b) => Value::from(*b),
            J::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Value::from(u)
                } else if let Some(i) = n.as_i64() {
                    Value::from(i)
                } else {
                    Value::from(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            J::String(s) => Value::from(s.as_str()),
            J::Array(_) | J::Object(_) => Value::from_object(Json {
                vars: vars.clone(),
                path: path(),
            }),
        }
    }

    /// The JSON this value stands for. The variables it points into never change under it
    /// (a write to them copies them while a template value still holds them), so the path
    /// always leads somewhere; `Null` is a defensive answer that cannot be reached.
    fn node(&self) -> &serde_json::Value {
        static NULL: serde_json::Value = serde_json::Value::Null;
        self.find(&self.path).unwrap_or(&NULL)
    }

    /// The JSON at `path`, if it leads somewhere.
    fn find<'v>(&'v self, path: &Path) -> Option<&'v serde_json::Value> {
        match &*path.0 {
            (None, Step::Key(var)) => self.vars.get(&**var).map(|v| &**v),
            (None, Step::Index(_)) => None,
            (Some(up), Step::Key(k)) => self.find(up)?.get(&**k),
            (Some(up), Step::Index(i)) => self.find(up)?.get(*i),
        }
    }
}

impl Object for Json {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.node() {
            serde_json::Value::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match self.node() {
            serde_json::Value::Array(items) => {
                let i = key.as_usize()?;
                let v = items.get(i)?;
                Some(Json::wrap(&self.vars, || self.path.then(Step::Index(i)), v))
            }
            serde_json::Value::Object(_) => self.get_value_by_str(key.as_str()?),
            _ => None,
        }
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        let serde_json::Value::Object(fields) = self.node() else {
            return None;
        };
        let v = fields.get(key)?;
        Some(Json::wrap(
            &self.vars,
            || self.path.then(Step::Key(key.into())),
            v,
        ))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.node() {
            serde_json::Value::Array(items) => Enumerator::Seq(items.len()),
            serde_json::Value::Object(_) => self.mapped_enumerator(|this| {
                let serde_json::Value::Object(fields) = this.node() else {
                    return Box::new(std::iter::empty());
                };
                Box::new(fields.keys().map(|k| Value::from(k.as_str())))
            }),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.node() {
            serde_json::Value::Array(items) => Some(items.len()),
            serde_json::Value::Object(fields) => Some(fields.len()),
            _ => Some(0),
        }
    }
}

#[cfg(test)]
#[path = "scope_tests.rs"]
mod tests;
