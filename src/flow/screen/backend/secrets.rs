//! Secrets of backend calls: environment variables a flow lists in `secrets:` and writes as
//! `{{ secrets.NAME }}` in an `http` screen's URL, headers or body.
//!
//! Secrets never enter the engine: `secrets.NAME` renders as a placeholder
//! ([`secret_placeholder`]) that the caller swaps for the environment's value
//! ([`fill_secrets`]) when it sends the request. So no secret is ever in a
//! [`FlowState`](crate::flow::FlowState), a log line, a cache key or a stored response.

use crate::flow::check::Checker;
use crate::flow::engine::{Run, bind};

/// The marker around a secret's name in a rendered request.
const MARK: char = '\u{1A}';

/// What `secrets.NAME` renders as in a request: a placeholder the caller fills in.
pub fn secret_placeholder(name: &str) -> String {
    format!("{MARK}secret:{name}{MARK}")
}

/// Replaces every secret placeholder in `s` by `lookup(name)`. Fails with the name of the
/// first secret `lookup` does not know.
pub fn fill_secrets(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let open = format!("{MARK}secret:");
    while let Some(i) = rest.find(&open) {
        out.push_str(&rest[..i]);
        let after = &rest[i + open.len()..];
        let Some(end) = after.find(MARK) else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let name = &after[..end];
        out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
        rest = &after[end + MARK.len_utf8()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Names used as `secrets.NAME` in a template source.
pub(super) fn secrets_used(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("secrets.") {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i + "secrets.".len()..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && !name.is_empty()
        {
            out.push(name);
        }
        rest = tail;
    }
    out
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Checker<'_> {
    /// Checks the names of the `secrets:` list.
    pub(crate) fn secrets_list(&mut self, names: &[String]) {
        for (i, name) in names.iter().enumerate() {
            if !is_env_name(name) {
                self.error(
                    None,
                    Some(format!("secrets[{i}]")),
                    format!("`{name}` is not a valid environment variable name"),
                );
            }
        }
        self.secrets = names.to_vec();
    }
}

impl Run<'_, '_> {
    /// The scope of an `http` screen's templates: the usual one plus `secrets`, as
    /// placeholders.
    pub(super) fn secrets_scope(&mut self) -> minijinja::Value {
        let secrets = minijinja::Value::from_iter(
            self.flow
                .secrets
                .iter()
                .map(|n| (n.clone(), secret_placeholder(n))),
        );
        bind(self.scope(), "secrets", secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_in_templates() {
        assert_eq!(
            secrets_used("Bearer {{ secrets.TOKEN }} {{secrets.B_2|trim}}"),
            vec!["TOKEN".to_string(), "B_2".to_string()]
        );
        assert!(secrets_used("{{ mysecrets.X }} {{ a.secrets.Y }}").is_empty());
    }

    #[test]
    fn secrets_are_filled_in_and_only_known_ones() {
        let s = format!("Bearer {} x", secret_placeholder("TOKEN"));
        let lookup = |n: &str| (n == "TOKEN").then(|| "s3cr3t".to_string());
        assert_eq!(fill_secrets(&s, lookup).unwrap(), "Bearer s3cr3t x");
        let s = secret_placeholder("OTHER");
        assert_eq!(fill_secrets(&s, lookup).unwrap_err(), "OTHER");
        assert_eq!(fill_secrets("plain", lookup).unwrap(), "plain");
    }
}
