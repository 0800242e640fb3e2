//! The JSON Schema of flow files (`ussd-gateway schema`), so that editors complete and check
//! flows as they are written (docs/flows.md, "Editor support").
//!
//! It is derived (schemars) from the types the loader itself deserialises, so it cannot drift
//! from what `check` accepts; what the schema cannot say (targets that exist, templates that
//! compile, texts that fit a screen) stays with `check`.

use super::compile::HeaderSpec;
use super::screen::ScreenSchema;
use std::collections::BTreeMap;

/// A whole flow file: the header's fields and `screens`.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)] // Only its schema is used.
struct FlowFile {
    #[serde(flatten)]
    header: HeaderSpec,
    /// The screens, by name.
    screens: BTreeMap<String, ScreenSchema>,
}

/// The screen types a subscriber sees, which may carry `resumable` (docs/flows.md, "Resume").
const SHOWN: [&str; 3] = ["menu", "input", "end"];

/// The JSON Schema (draft 2020-12) of a flow file, pretty-printed.
pub fn flow_schema() -> String {
    let mut schema = schemars::schema_for!(FlowFile);
    schema.insert(
        "title".into(),
        serde_json::Value::String("ussd-gateway flow file".into()),
    );
    let mut value = schema.to_value();
    // The header's own `deny_unknown_fields` is lost in the flattening: the file's fields are
    // the header's and `screens`, nothing else.
    value["additionalProperties"] = serde_json::Value::Bool(false);
    allow_resumable(&mut value);
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// `resumable` is read off shown screens before their spec is (it applies to all three), so
/// the derived schema lacks it: add it to those screens' variants.
fn allow_resumable(schema: &mut serde_json::Value) {
    let Some(variants) = schema
        .pointer_mut("/$defs/ScreenSchema/oneOf")
        .and_then(|v| v.as_array_mut())
    else {
        return;
    };
    for v in variants {
        let shown = v
            .pointer("/properties/type/const")
            .and_then(|t| t.as_str())
            .is_some_and(|t| SHOWN.contains(&t));
        if let (true, Some(props)) = (
            shown,
            v.get_mut("properties").and_then(|p| p.as_object_mut()),
        ) {
            props.insert(
                "resumable".into(),
                serde_json::json!({
                    "type": "boolean",
                    "description": "false: a resumed dialogue never comes back to this screen (docs/flows.md, \"Resume\")."
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_describes_the_header_and_every_screen_type() {
        let schema: serde_json::Value = serde_json::from_str(&flow_schema()).unwrap();
        let props = &schema["properties"];
        for field in [
            "start",
            "home",
            "navigation",
            "screens",
            "timezone",
            "resume",
        ] {
            assert!(props.get(field).is_some(), "no `{field}` in {props}");
        }
        let kinds: Vec<&str> = schema
            .pointer("/$defs/ScreenSchema/oneOf")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.pointer("/properties/type/const").and_then(|t| t.as_str()))
            .collect();
        assert_eq!(
            kinds.len(),
            crate::flow::screen::SCREEN_TYPES.len(),
            "{kinds:?}"
        );
        for k in crate::flow::screen::SCREEN_TYPES {
            assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
        }
    }
}
