//! Texts that only put variables into words (`Welcome, {{ student.full_name }}`, a list row
//! such as `{{ item.course_name }}: {{ item.grade }}\n`, a record's key `students/{{ phone }}`)
//! are most of a flow's templates. Such a text is rendered here, by looking its paths up in the
//! scope, without minijinja's machine (a state, a stack and an output for every render).
//!
//! Only what is sure to come out as minijinja writes it takes this way: literal text and
//! `{{ name }}` or `{{ name.attr.attr }}` tags, no filter, test, whitespace control, block or
//! comment, and at render time only strings, numbers and booleans, written with minijinja's own
//! `Display`. Anything else (an undefined or `none` value, a list, a map, a name minijinja reads
//! as a literal such as `true`) answers `None`, and the text's compiled template renders it.

use minijinja::Value;

/// A text made of literal parts and variable paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interpolation(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Path(Path),
}

/// A variable's path: a top-level name, then attributes (`slot.id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path(Vec<String>);

/// Names minijinja reads as literals, not as variables.
const LITERALS: [&str; 6] = ["true", "false", "none", "True", "False", "None"];

impl Interpolation {
    /// `src` as literal text and paths, if that is all it is.
    pub(crate) fn parse(src: &str) -> Option<Interpolation> {
        if src.contains("{%") || src.contains("{#") {
            return None;
        }
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find("{{") {
            let close = open + rest[open..].find("}}")?;
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            parts.push(Part::Path(Path::parse(&rest[open + 2..close])?));
            rest = &rest[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Some(Interpolation(parts))
    }

    /// The text with `ctx`'s values put in, or `None` where minijinja must render it.
    pub(crate) fn render(&self, ctx: &Value) -> Option<String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Path(path) => write(&mut out, &path.lookup(ctx)?)?,
            }
        }
        Some(out)
    }
}

impl Path {
    /// The path a tag's or an expression's text is, if it is only that (`student.full_name`).
    pub(crate) fn parse(src: &str) -> Option<Path> {
        // `{{-` and `-}}` trim whitespace around the tag: minijinja's business.
        if src.starts_with('-') || src.ends_with('-') {
            return None;
        }
        let names: Vec<String> = src.trim().split('.').map(str::to_string).collect();
        let identifier = |n: &String| {
            n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        (names.iter().all(identifier) && !LITERALS.contains(&names[0].as_str()))
            .then_some(Path(names))
    }

    /// The value at the path in `ctx`, as minijinja reads it; `None` where minijinja must:
    /// a top-level name `ctx` lacks (it may be one of minijinja's globals), or an attribute
    /// of an undefined value (an error there).
    pub(crate) fn lookup(&self, ctx: &Value) -> Option<Value> {
        let mut value = ctx.get_attr(&self.0[0]).ok()?;
        if value.is_undefined() {
            return None;
        }
        for name in &self.0[1..] {
            value = value.get_attr(name).ok()?;
        }
        Some(value)
    }
}

/// Writes a string, a number or a boolean as minijinja would; `None` for anything else.
fn write(out: &mut String, value: &Value) -> Option<()> {
    use minijinja::value::ValueKind;
    use std::fmt::Write;
    match value.kind() {
        ValueKind::String => out.push_str(value.as_str()?),
        ValueKind::Number | ValueKind::Bool => write!(out, "{value}").ok()?,
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::Environment;

    #[test]
    fn only_words_and_paths_are_interpolations() {
        for src in [
            "Welcome, {{ student.full_name }}",
            "students/{{ phone }}",
            "{{ item.a }} ({{ item.b }}): {{item.c}}\n",
            "no tags at all",
            "a stray }} and { are words",
        ] {
            assert!(Interpolation::parse(src).is_some(), "{src}");
        }
        for src in [
            "{{ name | upper }}",
            "{{- name }}",
            "{{ name -}}",
            "{% if a %}x{% endif %}",
            "{# note #}{{ a }}",
            "{{ true }}",
            "{{ None }}",
            "{{ a[0] }}",
            "{{ a + 1 }}",
            "{{ 1a }}",
            "{{ a.}}",
            "{{ }}",
            "unclosed {{ a",
        ] {
            assert!(Interpolation::parse(src).is_none(), "{src}");
        }
    }

    /// Whatever an interpolation renders, minijinja renders the same; what it declines
    /// (undefined, none, lists, maps) minijinja renders instead.
    #[test]
    fn renders_as_minijinja_does_or_declines() {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        let ctx = Value::from_serialize(serde_json::json!({
            "phone": "254700000001",
            "student": {"full_name": "Amani Wanjiru", "fees": {"balance": 15000, "rate": 1.5,
                "whole": 2.0, "due": -3, "paid": true}, "results": [1, 2], "none": null},
            "item": {"name": "Résumé & <b>", "code": "CS201"},
            "empty": "",
        }));
        let texts = [
            "Welcome, {{ student.full_name }}",
            "students/{{ phone }}\n",
            "{{ student.fees.balance }} {{ student.fees.rate }} {{ student.fees.whole }}",
            "{{ student.fees.due }}/{{ student.fees.paid }}",
            "{{ item.name }} ({{ item.code }}){{ empty }}\n\n",
            "{{ student.results }}",
            "{{ student.fees }}",
            "{{ student.none }}",
            "{{ missing }}",
            "{{ missing.attr }}",
            "{{ student.missing }}",
            "{{ phone.length }}",
        ];
        let mut taken = 0;
        for src in texts {
            let ours = Interpolation::parse(src).expect(src);
            let theirs = env.render_str(src, &ctx);
            if let Some(text) = ours.render(&ctx) {
                taken += 1;
                assert_eq!(Ok(text), theirs.map_err(|e| e.to_string()), "{src}");
            }
        }
        // The first five are strings, numbers and booleans; the rest are declined.
        assert_eq!(taken, 5);
    }

    /// A path's value is what minijinja's expression gives, of any kind; where minijinja
    /// would look further (a global) or fail (an attribute of undefined), it declines.
    #[test]
    fn a_path_reads_what_minijinja_reads_or_declines() {
        let env = Environment::new();
        let ctx = Value::from_serialize(serde_json::json!({
            "phone": "254700000001", "n": 3, "slot": {"id": "s-1", "free": [1, 2], "by": null},
        }));
        let mut taken = 0;
        for src in [
            "phone",
            "n",
            "slot",
            "slot.id",
            "slot.free",
            "slot.by",
            "slot.missing",
            "slot.id.x",
            "missing",
            "missing.x",
            "range",
        ] {
            let theirs = env.compile_expression(src).unwrap().eval(&ctx);
            if let Some(ours) = Path::parse(src).expect(src).lookup(&ctx) {
                taken += 1;
                let theirs = theirs.expect(src);
                assert_eq!(
                    (ours.kind(), ours.to_string()),
                    (theirs.kind(), theirs.to_string()),
                    "{src}"
                );
            }
        }
        assert_eq!(taken, 8);
        assert!(Path::parse("phone | trim").is_none());
        assert!(Path::parse("n > 2").is_none());
    }
}
