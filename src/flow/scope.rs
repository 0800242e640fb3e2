//! The template context of one hop, read lazily.
//!
//! A dialogue's variables are JSON (they are persisted as such) and can be large: a loaded
//! student record carries every result, fee and timetable row. Converting them all into
//! template values for every render cost more than the rest of a hop's flow work, while a
//! screen reads a handful of fields. So the context is an object that looks names up when a
//! template asks for them, and a JSON object or array becomes a template value that does the
//! same for its own fields and items: nothing is converted that no template reads.

use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectExt, ObjectRepr};
use serde_json::Map;
use std::sync::Arc;

/// A dialogue's variables, shared between its state and the hop's template context.
pub(crate) type Vars = Arc<Map<String, serde_json::Value>>;

/// The context: the per-hop built-ins, then the dialogue's variables, then the flow's `vars`
/// (a name found earlier hides the same name later).
#[derive(Debug)]
pub(crate) struct Scope {
    pub builtins: [(&'static str, Value); 6],
    pub vars: Vars,
    /// The flow's `vars`: a map value built when the flow was loaded.
    pub consts: Value,
}

impl Scope {
    /// Every name the context answers, each once.
    fn keys(&self) -> Vec<Value> {
        let builtin = |k: &str| self.builtins.iter().any(|(b, _)| *b == k);
        let mut keys: Vec<Value> = self.builtins.iter().map(|(k, _)| Value::from(*k)).collect();
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
        if let Some(v) = self.vars.get(key) {
            return Some(Json::wrap(&self.vars, Path::var(key), v));
        }
        self.consts.get_attr(key).ok().filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.keys())
    }
}

/// Where a JSON container sits among the variables: the variable, then keys and indices.
#[derive(Debug, Clone)]
struct Path(Vec<Step>);

#[derive(Debug, Clone)]
enum Step {
    Key(Box<str>),
    Index(usize),
}

impl Path {
    fn var(name: &str) -> Path {
        Path(vec![Step::Key(name.into())])
    }

    fn then(&self, step: Step) -> Path {
        let mut steps = Vec::with_capacity(self.0.len() + 1);
        steps.extend_from_slice(&self.0);
        steps.push(step);
        Path(steps)
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
    /// wrapped.
    fn wrap(vars: &Vars, path: Path, v: &serde_json::Value) -> Value {
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
                path,
            }),
        }
    }

    /// The JSON this value stands for. The variables it points into never change under it
    /// (a write to them copies them while a template value still holds them), so the path
    /// always leads somewhere; `Null` is a defensive answer that cannot be reached.
    fn node(&self) -> &serde_json::Value {
        static NULL: serde_json::Value = serde_json::Value::Null;
        let mut steps = self.path.0.iter();
        let Some(Step::Key(var)) = steps.next() else {
            return &NULL;
        };
        let mut node = match self.vars.get(&**var) {
            Some(v) => v,
            None => return &NULL,
        };
        for step in steps {
            let next = match step {
                Step::Key(k) => node.get(&**k),
                Step::Index(i) => node.get(*i),
            };
            match next {
                Some(n) => node = n,
                None => return &NULL,
            }
        }
        node
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
                Some(Json::wrap(&self.vars, self.path.then(Step::Index(i)), v))
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
            self.path.then(Step::Key(key.into())),
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
mod tests {
    use super::*;
    use serde_json::json;

    /// A context over `vars` with the built-ins of a hop and one flow var (`term`).
    fn lazy(vars: serde_json::Value) -> Value {
        let serde_json::Value::Object(vars) = vars else {
            unreachable!()
        };
        Value::from_object(Scope {
            builtins: [
                ("phone", Value::from("254700000001")),
                ("service_code", Value::from("*123#")),
                ("network", Value::from(())),
                ("session_id", Value::from("ATUid_1")),
                ("language", Value::from("en")),
                ("now", Value::from("2026-12-06T00:00:00Z")),
            ],
            vars: Arc::new(vars),
            consts: Value::from_serialize(json!({"term": "2024 Term 1", "phone": "hidden"})),
        })
    }

    /// The same context converted eagerly, as the engine did before.
    fn eager(vars: serde_json::Value) -> Value {
        let mut all = json!({"term": "2024 Term 1", "phone": "hidden"});
        all.as_object_mut()
            .unwrap()
            .extend(vars.as_object().unwrap().clone());
        all.as_object_mut().unwrap().extend(
            json!({
                "phone": "254700000001", "service_code": "*123#", "network": null,
                "session_id": "ATUid_1", "language": "en", "now": "2026-12-06T00:00:00Z",
            })
            .as_object()
            .unwrap()
            .clone(),
        );
        Value::from_serialize(all)
    }

    #[test]
    fn templates_read_lazy_json_as_they_read_converted_json() {
        let vars = json!({
            "student": {
                "full_name": "Amina \"Ami\" Wanjiru",
                "fees": {"balance": 12500, "paid": 7500.5, "due": -3},
                "results": [
                    {"term": "2024 Term 1", "course": "MAT101", "grade": "A"},
                    {"term": "2023 Term 3", "course": "PHY110", "grade": "B+"},
                    {"term": "2024 Term 1", "course": "CHE120", "grade": null},
                ],
                "tags": [],
                "active": true,
            },
            "amount": "1500",
        });
        let env = minijinja::Environment::new();
        let templates = [
            "Welcome, {{ student.full_name }} ({{ phone }}, {{ term }})",
            "{% for r in student.results | selectattr('term', 'eq', term) %}{{ r.course }}: {{ r.grade }}\n{% endfor %}",
            "{% for r in student.results | rejectattr('term', 'eq', term) | list %}{{ loop.index }}. {{ r.course }}{% endfor %}",
            "{{ student.results | length }} {{ student.tags | length }} {{ student.fees | length }}",
            "{% if student.tags %}tags{% else %}no tags{% endif %} {% if student.fees %}fees{% endif %}",
            "{{ student.fees.balance + 1 }} {{ student.fees.paid * 2 }} {{ student.fees.due }}",
            "{% for k, v in student.fees | items %}{{ k }}={{ v }};{% endfor %}",
            "{{ student.results | map(attribute='course') | join(',') }}",
            "{{ student.results | sort(attribute='course') | map(attribute='grade') | list }}",
            "{{ student.results[1].course }} {{ student.results[-1].course }} {{ student.missing is undefined }}",
            "{{ student.fees | tojson }}",
            "{{ student.results[0] == {'term': '2024 Term 1', 'course': 'MAT101', 'grade': 'A'} }}",
            "{{ student.active }} {{ network is none }} {{ amount | int + 1 }} {{ service_code }}",
            "{{ student.results[2].grade is none }} {{ student.tags }}",
        ];
        for t in templates {
            let render = |ctx: Value| env.render_str(t, ctx).unwrap();
            assert_eq!(
                render(lazy(vars.clone())),
                render(eager(vars.clone())),
                "{t}"
            );
        }
    }

    #[test]
    fn built_ins_hide_variables_which_hide_the_flow_vars() {
        let env = minijinja::Environment::new();
        let ctx = lazy(json!({"term": "mine", "phone": "spoofed"}));
        assert_eq!(
            env.render_str("{{ phone }} {{ term }}", ctx.clone())
                .unwrap(),
            "254700000001 mine"
        );
        let mut names: Vec<String> = ctx.try_iter().unwrap().map(|k| k.to_string()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "language",
                "network",
                "now",
                "phone",
                "service_code",
                "session_id",
                "term"
            ]
        );
    }
}
