//! Compiling a flow file: YAML parse, the top level (everything but `screens`), each screen
//! through its type's module ([`super::screen`]), the checks that span screens (targets,
//! start/home, reachability, sensitive sends), and assembly of the compiled [`Flow`].
//!
//! Every stage keeps going after a problem so one run reports all of them: each screen is
//! deserialised on its own (a broken screen does not hide the others), and the graph checks run
//! over whatever screens parsed. The YAML types are parse results only: nothing at runtime
//! reads them.

use super::check::Checker;
use super::localized::{Text, fixed};
use super::navigation::{NavSpec, navigation};
use super::resume::ResumeSpec;
use super::screen::Screen;
use super::{Diagnostic, Flow};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_yaml_ng::{Mapping, Value as Yaml};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};

const DEFAULT_INVALID: &str = "Invalid choice. Please try again:";
const DEFAULT_APOLOGY: &str = "Sorry, something went wrong. Please try again later.";

fn default_language() -> String {
    "en".to_string()
}

/// The top of a flow file, everything except `screens`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
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
    /// Environment variables that `http` screens (backend calls) may use as `secrets.NAME`.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Opt-in: continue a dialogue that was cut (`docs/flows.md`, "Resume").
    #[serde(default)]
    pub resume: Option<ResumeSpec>,
    /// The time zone texts show times in (an IANA name such as `Africa/Nairobi`); UTC when
    /// unset.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Deserialises `v` as `T`, collecting problems as `(field path, message)`.
///
/// Goes through text so serde_yaml_ng reports the path inside `v` (`options[1]`), which it does
/// not do from a `Value`; the line numbers of that text mean nothing and are dropped. serde stops
/// at the first error, so an unknown field is reported, removed and the rest tried again: one
/// typo does not hide the other problems of the same screen.
pub(crate) fn typed<T: DeserializeOwned>(v: &Yaml) -> (Option<T>, Vec<(Option<String>, String)>) {
    let mut v = v.clone();
    let mut problems = Vec::new();
    for _ in 0..32 {
        let text = match serde_yaml_ng::to_string(&v) {
            Ok(t) => t,
            Err(e) => {
                problems.push((None, e.to_string()));
                break;
            }
        };
        match serde_yaml_ng::from_str(&text) {
            Ok(t) => return (Some(t), problems),
            Err(e) => {
                let (field, msg) = split_serde_error(&e.to_string());
                let removed = msg.starts_with("unknown field")
                    && field.as_deref().is_some_and(|f| remove_at(&mut v, f));
                problems.push((field, msg));
                if !removed {
                    break;
                }
            }
        }
    }
    (None, problems)
}

/// Removes the entry at a serde path such as `options[2].nxt`; false if there is none.
fn remove_at(v: &mut Yaml, path: &str) -> bool {
    let mut node = v;
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    for part in parts {
        let (key, index) = match part.split_once('[') {
            Some((k, i)) => (k, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some(next) = node.get_mut(key) else {
            return false;
        };
        node = match index {
            Some(i) => match next.get_mut(i) {
                Some(n) => n,
                None => return false,
            },
            None => next,
        };
    }
    node.as_mapping_mut()
        .is_some_and(|m| m.remove(last).is_some())
}

fn split_serde_error(msg: &str) -> (Option<String>, String) {
    let msg = match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => &msg[..i],
        _ => msg,
    };
    let (path, msg) = match msg.split_once(": ") {
        Some((p, m)) if !p.is_empty() && !p.contains(' ') => (Some(p.to_string()), m),
        _ => (None, msg),
    };
    let join = |f: &str| Some(path.as_ref().map_or(f.to_string(), |p| format!("{p}.{f}")));
    for (prefix, what) in [
        ("missing field `", "missing required field"),
        ("unknown field `", "unknown field"),
    ] {
        if let Some(rest) = msg.strip_prefix(prefix)
            && let Some((field, tail)) = rest.split_once('`')
        {
            let tail = tail.trim_start_matches(',').trim();
            let message = if tail.is_empty() {
                what.to_string()
            } else {
                format!("{what} ({tail})")
            };
            return (join(field), message);
        }
    }
    (path, msg.to_string())
}

fn version_of(src: &str) -> String {
    let digest = Sha256::digest(src.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Parses, checks and compiles one flow file.
pub(crate) fn compile(name: &str, file: &str, src: &str) -> Result<Flow, Vec<Diagnostic>> {
    let err = |field: Option<&str>, msg: String| {
        Diagnostic::error(file, None, field.map(str::to_string), msg)
    };
    let mut root: Mapping = match serde_yaml_ng::from_str::<Yaml>(src) {
        Ok(Yaml::Mapping(m)) => m,
        Ok(_) => return Err(vec![err(None, "a flow file must be a YAML mapping".into())]),
        Err(e) => return Err(vec![err(None, format!("invalid YAML: {e}"))]),
    };
    let mut diags = Vec::new();
    let screens_yaml = root.remove("screens");
    let (header, problems) = typed::<HeaderSpec>(&Yaml::Mapping(root));
    diags.extend(
        problems
            .into_iter()
            .map(|(field, msg)| err(field.as_deref(), msg)),
    );
    let nav_spec = header
        .as_ref()
        .map_or_else(NavSpec::default, |h| h.navigation.clone());
    let default_language = header
        .as_ref()
        .map_or("en", |h| h.default_language.as_str())
        .to_string();
    let mut checker = Checker::new(file, &nav_spec, &default_language);
    if let Some(h) = &header {
        checker.secrets_list(&h.secrets);
        if let Some(name) = &h.timezone {
            match jiff::tz::TimeZone::get(name) {
                Ok(tz) => checker.templates.set_timezone(tz),
                Err(_) => checker.error(
                    None,
                    Some("timezone".into()),
                    format!(
                        "`{name}` is not a known time zone (an IANA name such as Africa/Nairobi)"
                    ),
                ),
            }
        }
    }

    let screens_map = match screens_yaml {
        Some(Yaml::Mapping(m)) => m,
        Some(_) => {
            diags.push(err(
                Some("screens"),
                "must be a mapping of screen name to screen".into(),
            ));
            Mapping::new()
        }
        None => {
            diags.push(err(Some("screens"), "missing required field".into()));
            Mapping::new()
        }
    };
    let mut names = Vec::new();
    for key in screens_map.keys() {
        match key.as_str() {
            Some(n) => names.push(n.to_string()),
            None => diags.push(err(
                Some("screens"),
                format!("screen names must be strings, found {key:?}"),
            )),
        }
    }
    checker.set_names(&names);
    let mut screens = HashMap::new();
    let mut pinned = HashSet::new();
    let mut all_parsed = true;
    for (key, value) in &screens_map {
        let Some(screen) = key.as_str() else { continue };
        let value = take_resumable(&mut checker, screen, value, &mut pinned);
        match Screen::parse(&mut checker, screen, &value) {
            Some(compiled) => drop(screens.insert(std::sync::Arc::from(screen), compiled)),
            None => all_parsed = false,
        }
    }

    let mut consts = minijinja::Value::from(());
    let mut resume = None;
    if let Some(h) = &header {
        checker.header(h);
        resume = h
            .resume
            .as_ref()
            .map(|r| checker.resume_policy(r, &default_language));
        // A screen that did not parse has unknown edges: reachability would only guess.
        let roots: Vec<String> = [Some(h.start.clone()), h.home.clone()]
            .into_iter()
            .flatten()
            .collect();
        for unreachable in checker
            .unreachable(&names, &roots)
            .iter()
            .filter(|_| all_parsed)
        {
            checker.error(
                Some(unreachable),
                None,
                "unreachable from `start` or `home`",
            );
        }
        consts = minijinja::Value::from_serialize(&h.vars);
    }
    let sensitive_vars = sensitive_vars(&screens);
    checker.sensitive_sends(&screens, &sensitive_vars);
    let edges = checker.take_edges();
    let (errors, warnings, templates) = checker.finish();
    diags.extend(errors);
    let Some(h) = header.filter(|_| diags.is_empty()) else {
        return Err(diags);
    };
    let home = h.home.clone().unwrap_or_else(|| h.start.clone());
    let graph = super::graph::build(&h.start, &home, &screens_map, edges);
    Ok(Flow {
        name: name.to_string(),
        version: version_of(src).into(),
        home: h.home.unwrap_or_else(|| h.start.clone()),
        start: h.start.into(),
        default_language: default_language.into(),
        language_var: h.language_var,
        consts,
        nav: navigation(&h.navigation),
        invalid_choice: fixed(h.invalid_choice.as_ref(), DEFAULT_INVALID),
        apology: fixed(h.apology.as_ref(), DEFAULT_APOLOGY),
        screens,
        templates,
        warnings,
        resume,
        pinned,
        secrets: h.secrets,
        sensitive_vars,
        graph,
    })
}

/// The variables that `sensitive` input screens store into, each once, sorted.
fn sensitive_vars(screens: &HashMap<std::sync::Arc<str>, Screen>) -> Vec<String> {
    let mut vars: Vec<String> = screens
        .values()
        .filter_map(|s| match s {
            Screen::Input(i) if i.sensitive => Some(i.into.clone()),
            _ => None,
        })
        .collect();
    vars.sort();
    vars.dedup();
    vars
}

/// Takes the `resumable` flag off a screen (it applies to every shown screen type, so it is
/// not part of the per-type specs); `resumable: false` puts the screen in `pinned`.
fn take_resumable(
    checker: &mut Checker,
    screen: &str,
    value: &Yaml,
    pinned: &mut HashSet<String>,
) -> Yaml {
    let Yaml::Mapping(map) = value else {
        return value.clone();
    };
    let mut map = map.clone();
    match map.remove("resumable") {
        None => {}
        Some(Yaml::Bool(flag)) => {
            let shown = matches!(
                map.get("type").and_then(Yaml::as_str),
                Some("menu" | "input" | "end")
            );
            if !shown {
                checker.error(
                    Some(screen),
                    Some("resumable".into()),
                    "only screens that are shown (menu, input, end) can be resumed",
                );
            } else if !flag {
                pinned.insert(screen.to_string());
            }
        }
        Some(_) => checker.error(
            Some(screen),
            Some("resumable".into()),
            "must be true or false",
        ),
    }
    Yaml::Mapping(map)
}

/// Breadth-first walk of the screen graph from `roots`; returns the screens not reached, in
/// the order given.
pub(crate) fn unreachable_from<'a>(
    names: &[String],
    edges: &HashMap<String, Vec<String>>,
    roots: impl Iterator<Item = &'a String>,
) -> Vec<String> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut queue: VecDeque<&str> = roots.map(String::as_str).collect();
    while let Some(s) = queue.pop_front() {
        if seen.insert(s) {
            queue.extend(edges.get(s).into_iter().flatten().map(String::as_str));
        }
    }
    names
        .iter()
        .filter(|n| !seen.contains(n.as_str()))
        .cloned()
        .collect()
}
