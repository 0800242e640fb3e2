//! Tests of the lazy template context: templates read it as they read converted JSON.

use super::*;
use serde_json::json;

/// A context over `vars` with the built-ins of a hop and one flow var (`term`). Objects are
/// held as a `load` holds a record (shared, as read), everything else as the dialogue's own.
fn lazy(vars: serde_json::Value) -> Value {
    let serde_json::Value::Object(vars) = vars else {
        unreachable!()
    };
    let vars = vars
        .into_iter()
        .map(|(k, v)| match v {
            v @ serde_json::Value::Object(_) => {
                (k, Var::Record(Arc::new(crate::doc::Doc::from_value(v))))
            }
            v => (k, Var::Json(v)),
        })
        .collect();
    Value::from_object(Scope {
        builtins: [
            ("phone", Value::from("254700000001")),
            ("service_code", Value::from("*123#")),
            ("network", Value::from(())),
            ("session_id", Value::from("ATUid_1")),
            ("language", Value::from("en")),
        ],
        now: "2026-12-06T00:00:00Z".parse().unwrap(),
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

#[test]
fn a_bound_name_hides_the_same_name_under_it_and_everything_else_shows_through() {
    let ctx = lazy(json!({ "item": "the dialogue's own", "student": { "full_name": "Amina" } }));
    let row = Value::from_object(Bound {
        name: "item".into(),
        value: Value::from_serialize(json!({ "course": "MAT101", "grade": "A" })),
        under: ctx.clone(),
    });
    let env = minijinja::Environment::new();
    assert_eq!(
        env.render_str(
            "{{ item.course }} {{ item.grade }} for {{ student.full_name }} ({{ phone }}, {{ term }})",
            row.clone()
        )
        .unwrap(),
        "MAT101 A for Amina (254700000001, 2024 Term 1)"
    );
    // An undefined value binds nothing: the name under it shows, as with merged maps.
    let unbound = Value::from_object(Bound {
        name: "item".into(),
        value: Value::UNDEFINED,
        under: ctx,
    });
    assert_eq!(
        env.render_str("{{ item }}", unbound).unwrap(),
        "the dialogue's own"
    );
    let names: Vec<String> = row.try_iter().unwrap().map(|k| k.to_string()).collect();
    assert_eq!(names.iter().filter(|n| *n == "item").count(), 1);
    assert!(names.contains(&"student".to_string()) && names.contains(&"phone".to_string()));
}
