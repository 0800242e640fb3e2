//! Configuration from the environment and from secret files, in layers over `gateway.toml`.
//!
//! Containers and service managers configure a program through its environment and hand it
//! secrets as mounted files. Here the file is read first (as TOML, not yet as the model), then:
//!
//! 1. in the file, a key `<name>_file` is replaced by `<name>` holding that file's contents
//!    (one trailing newline dropped): `token_file = "/run/secrets/admin_token"`;
//! 2. every variable `USSD_GATEWAY__<SECTION>__<KEY>` sets one key, winning over the file. The
//!    path's parts are separated by `__` and lower-cased; a part of digits is an index, from 0,
//!    into an array of tables (`USSD_GATEWAY__SMPP__BINDS__0__PASSWORD`); an index one past the
//!    last table adds one. A variable whose last part ends in `_FILE` sets the key without it
//!    from that file.
//!
//! Values are TOML when they read as a number, a boolean, an array or an inline table
//! (`["10.0.0.0/8"]`), else text; a key that wants text gets the text even when it looks like a
//! number (a password of digits). Relative file paths are relative to the config file's folder.
//! Every value that is not the file's own is listed ([`Override`]): `check` prints them, and an
//! error about one names its variable.

use std::cmp::Ordering;
use std::path::Path;
use toml::{Table, Value};

/// The prefix of the variables that override keys.
pub const PREFIX: &str = "USSD_GATEWAY__";
/// The suffix of a key whose value is read from a file.
const FILE_SUFFIX: &str = "_file";

/// A value that is not the file's own, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The key, as `smpp.binds[0].password`.
    pub key: String,
    /// Where its value came from: a variable, or a file and what named it.
    pub origin: String,
    /// The value as `check` shows it: `***` for secrets and for anything read from a file.
    pub shown: String,
}

impl std::fmt::Display for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {} ({})", self.key, self.shown, self.origin)
    }
}

/// One step of a key's path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl PartialOrd for Step {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Step {
    /// Indices in numeric order (so that table 2 is added before table 10), before keys.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Step::Index(a), Step::Index(b)) => a.cmp(b),
            (Step::Key(a), Step::Key(b)) => a.cmp(b),
            (Step::Index(_), Step::Key(_)) => Ordering::Less,
            (Step::Key(_), Step::Index(_)) => Ordering::Greater,
        }
    }
}

/// `smpp.binds[0].password`.
fn display(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// `smpp.binds.password`: the path as the TOML deserialiser names it in its errors.
fn without_indices(path: &[Step]) -> String {
    path.iter()
        .filter_map(|s| match s {
            Step::Key(k) => Some(k.as_str()),
            Step::Index(_) => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether a key holds a secret (shown as `***`).
fn secret(key: &str) -> bool {
    ["token", "secret", "password", "api_key"]
        .iter()
        .any(|w| key.contains(w))
}

/// One value set over the file, kept to retype it and to name it in errors.
#[derive(Debug)]
struct Set {
    path: Vec<Step>,
    /// The variable that set it, if one did.
    var: Option<String>,
    /// The text given, and whether it was read as something else than text.
    raw: String,
    typed: bool,
    /// Whether setting it made a table or an array entry the file did not have.
    created: bool,
}

/// The file's table with every layer applied, and what each layer set.
#[derive(Debug)]
pub(super) struct Layered {
    pub table: Table,
    pub overrides: Vec<Override>,
    sets: Vec<Set>,
}

/// Applies the `_file` keys of `table` (the file) and then the variables of `env` that start
/// with [`PREFIX`]. `base` resolves relative file paths.
///
/// # Errors
/// A message naming the variable or key: a path through a value that is not a table, an index
/// past the end, a key given both directly and from a file, an unreadable file.
pub(super) fn layer(
    table: Table,
    env: &[(String, String)],
    base: &Path,
) -> Result<Layered, String> {
    let mut layered = Layered {
        table,
        overrides: Vec::new(),
        sets: Vec::new(),
    };
    let mut root = Value::Table(std::mem::take(&mut layered.table));
    let mut files = Vec::new();
    file_keys(&root, &mut Vec::new(), &mut files);
    for (path, file) in files {
        let (name, base_key) = split_file_key(&path);
        let mut target = path[..path.len() - 1].to_vec();
        target.push(Step::Key(base_key.clone()));
        if get(&root, &target).is_some() {
            return Err(format!(
                "{} and {} are both set: keep one",
                display(&target),
                display(&path)
            ));
        }
        let value = read_secret(base, &file).map_err(|e| format!("{}: {e}", display(&path)))?;
        remove(&mut root, &path);
        set(
            &mut root,
            &target,
            Value::String(value.clone()),
            &display(&path),
        )?;
        layered.overrides.push(Override {
            key: display(&target),
            origin: format!("file {file}, named by {name} in the file"),
            shown: "***".into(),
        });
        layered.sets.push(Set {
            path: target,
            var: None,
            raw: value,
            typed: false,
            created: false,
        });
    }
    let mut vars: Vec<(Vec<Step>, &str, &str)> = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        vars.push((parse_path(name, rest)?, name, value));
    }
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, name, value) in &vars {
        let from_file = matches!(path.last(), Some(Step::Key(k)) if k.ends_with(FILE_SUFFIX));
        if from_file {
            let (_, base_key) = split_file_key(path);
            let mut target = path[..path.len() - 1].to_vec();
            target.push(Step::Key(base_key));
            if vars.iter().any(|(p, _, _)| *p == target) {
                return Err(format!(
                    "{name} and {}{} are both set: keep one",
                    PREFIX,
                    env_name(&target)
                ));
            }
            let text = read_secret(base, value).map_err(|e| format!("{name}: {e}"))?;
            let created = set(&mut root, &target, Value::String(text.clone()), name)?;
            layered.overrides.push(Override {
                key: display(&target),
                origin: format!("file {value}, named by {name}"),
                shown: "***".into(),
            });
            layered.sets.push(Set {
                path: target,
                var: Some(name.to_string()),
                raw: text,
                typed: false,
                created,
            });
        } else {
            let parsed = typed(value);
            let is_typed = !parsed.is_str();
            let created = set(&mut root, path, parsed, name)?;
            let key = display(path);
            let shown = if secret(&key) {
                "***".to_string()
            } else {
                crate::logsafe::redacted_url(value)
            };
            layered.overrides.push(Override {
                key,
                origin: name.to_string(),
                shown,
            });
            layered.sets.push(Set {
                path: path.clone(),
                var: Some(name.to_string()),
                raw: value.to_string(),
                typed: is_typed,
                created,
            });
        }
    }
    if let Value::Table(t) = root {
        layered.table = t;
    }
    Ok(layered)
}

/// Deserialises the layered table. A value a variable gave that was read as a number (or
/// another TOML type) where the key wants text is retried as the text given.
///
/// # Errors
/// The deserialiser's message, with the variable that set the key it names, if one did.
pub(super) fn deserialize<T: serde::de::DeserializeOwned>(
    mut layered: Layered,
) -> Result<T, String> {
    loop {
        let error = match Value::Table(layered.table.clone()).try_into::<T>() {
            Ok(v) => return Ok(v),
            Err(e) => e.to_string().trim_end().replace('\n', " "),
        };
        let named = error_path(&error);
        let retry = error.starts_with("invalid type")
            && named.as_ref().is_some_and(|named| {
                let mut retyped = false;
                for s in layered.sets.iter_mut().filter(|s| s.typed) {
                    if without_indices(&s.path) == *named {
                        s.typed = false;
                        let mut root = Value::Table(std::mem::take(&mut layered.table));
                        let _ = set(&mut root, &s.path, Value::String(s.raw.clone()), "");
                        if let Value::Table(t) = root {
                            layered.table = t;
                        }
                        retyped = true;
                    }
                }
                retyped
            });
        if !retry {
            return Err(annotate(&error, named.as_deref(), &layered.sets));
        }
    }
}

/// The key a deserialiser error names: "... in `smpp.binds.password`".
fn error_path(error: &str) -> Option<String> {
    let start = error.rfind("in `")? + 4;
    let end = error[start..].find('`')?;
    Some(error[start..start + end].to_string())
}

/// Adds to `error` the variables behind the key it names: the one that set that key, one that
/// set an unknown key of the table it names ("unknown field `lisen` ... in `public`"), or one
/// that made a table the file did not have beneath it ("missing field `name` in
/// `smpp.binds`").
fn annotate(error: &str, named: Option<&str>, sets: &[Set]) -> String {
    let mut vars: Vec<&str> = sets
        .iter()
        .filter(|s| {
            let path = without_indices(&s.path);
            let Some(named) = named else {
                return false;
            };
            if path == named {
                return true;
            }
            let Some(below) = path.strip_prefix(named).and_then(|p| p.strip_prefix('.')) else {
                return false;
            };
            let next = below.split('.').next().unwrap_or_default();
            s.created || error.starts_with(&format!("unknown field `{next}`"))
        })
        .filter_map(|s| s.var.as_deref())
        .collect();
    vars.dedup();
    if vars.is_empty() {
        error.to_string()
    } else {
        format!("{error} (set by {})", vars.join(", "))
    }
}

/// Names where the keys a validation message names came from, if not from the file.
pub(super) fn annotate_invalid(message: &str, overrides: &[Override]) -> String {
    let origins: Vec<&str> = overrides
        .iter()
        .filter(|o| message.contains(&o.key) || message.contains(&plain_key(&o.key)))
        .map(|o| o.origin.as_str())
        .collect();
    if origins.is_empty() {
        message.to_string()
    } else {
        format!("{message} (set by {})", origins.join(", "))
    }
}

/// `smpp.binds.password` for `smpp.binds[0].password`.
fn plain_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut in_index = false;
    for c in key.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// `SMPP__BINDS__0__PASSWORD` of `name` as a path.
fn parse_path(name: &str, rest: &str) -> Result<Vec<Step>, String> {
    let mut path = Vec::new();
    for part in rest.split("__") {
        if part.is_empty() {
            return Err(format!(
                "{name}: an empty part in the name (parts are separated by `__`)"
            ));
        }
        if part.bytes().all(|b| b.is_ascii_digit()) {
            let i = part
                .parse()
                .map_err(|_| format!("{name}: index {part} is too large"))?;
            path.push(Step::Index(i));
        } else {
            path.push(Step::Key(part.to_ascii_lowercase()));
        }
    }
    if !matches!(path.last(), Some(Step::Key(_))) {
        return Err(format!("{name}: the name must end with a key"));
    }
    Ok(path)
}

/// The variable name (after the prefix) of a path.
fn env_name(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Key(k) => k.to_ascii_uppercase(),
            Step::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join("__")
}

/// `(the key as written, the key it sets)` for a path ending in `<name>_file`.
fn split_file_key(path: &[Step]) -> (String, String) {
    match path.last() {
        Some(Step::Key(k)) => (
            k.clone(),
            k.strip_suffix(FILE_SUFFIX).unwrap_or(k).to_string(),
        ),
        _ => (String::new(), String::new()),
    }
}

/// A variable's value: TOML when it reads as a non-text TOML value, else the text itself.
fn typed(raw: &str) -> Value {
    match toml::from_str::<Table>(&format!("v = {raw}")) {
        Ok(t) if t.len() == 1 => match t.get("v") {
            Some(v) if !v.is_str() => v.clone(),
            _ => Value::String(raw.to_string()),
        },
        _ => Value::String(raw.to_string()),
    }
}

/// A secret file's contents, one trailing newline dropped (as `echo` writes it).
fn read_secret(base: &Path, file: &str) -> Result<String, String> {
    let path = base.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(text.to_string())
}

/// Every `<name>_file` key holding text in the file, with its path and value.
fn file_keys(value: &Value, at: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, String)>) {
    match value {
        Value::Table(t) => {
            for (k, v) in t {
                at.push(Step::Key(k.clone()));
                match v {
                    Value::String(s) if k.ends_with(FILE_SUFFIX) => {
                        out.push((at.clone(), s.clone()))
                    }
                    _ => file_keys(v, at, out),
                }
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                at.push(Step::Index(i));
                file_keys(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn get<'a>(mut value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    for step in path {
        value = match (step, value) {
            (Step::Key(k), Value::Table(t)) => t.get(k)?,
            (Step::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

fn remove(root: &mut Value, path: &[Step]) {
    let Some((Step::Key(last), parent)) = path.split_last() else {
        return;
    };
    let mut value = root;
    for step in parent {
        value = match (step, value) {
            (Step::Key(k), Value::Table(t)) => match t.get_mut(k) {
                Some(v) => v,
                None => return,
            },
            (Step::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
    }
    if let Value::Table(t) = value {
        t.remove(last);
    }
}

/// Sets `path` to `new`, making the tables on the way; `who` names the setter in errors.
/// Answers whether it made any.
fn set(root: &mut Value, path: &[Step], new: Value, who: &str) -> Result<bool, String> {
    let mut created = false;
    let mut value = root;
    for (n, step) in path.iter().enumerate() {
        let last = n + 1 == path.len();
        let here = display(&path[..n]);
        value = match step {
            Step::Key(k) => {
                let Value::Table(t) = value else {
                    return Err(format!("{who}: `{here}` is not a table"));
                };
                if last {
                    t.insert(k.clone(), new);
                    return Ok(created);
                }
                let next_is_index = matches!(path.get(n + 1), Some(Step::Index(_)));
                t.entry(k.clone()).or_insert_with(|| {
                    created = true;
                    if next_is_index {
                        Value::Array(Vec::new())
                    } else {
                        Value::Table(Table::new())
                    }
                })
            }
            Step::Index(i) => {
                let Value::Array(a) = value else {
                    return Err(format!("{who}: `{here}` is not an array of tables"));
                };
                if *i > a.len() {
                    return Err(format!(
                        "{who}: `{here}` has {} entries: index {i} would leave a gap (the next \
                         one is {})",
                        a.len(),
                        a.len()
                    ));
                }
                if *i == a.len() {
                    created = true;
                    a.push(Value::Table(Table::new()));
                }
                &mut a[*i]
            }
        };
    }
    Ok(created)
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
