//! The IVR loader: parses each file and checks it once, so a callback never meets a broken IVR.
//!
//! Checks: names usable in URLs, every route target known, digit keys made of `0-9*#` (not
//! containing the finishOnKey, not longer than numDigits), Reject alone in its list, non-empty
//! phone lists of `+` international numbers or SIP addresses, no step after one that never
//! returns, no number answered by two IVRs. Every error names its file and the path inside it,
//! and all of them are reported at once.

use super::ivr::{Ivr, Menu, Step, normalize_number};
use super::ivr_file::{ActionFile, Env, IvrFile, MenuFile};
use std::collections::BTreeMap;
use std::path::Path;

/// Loads every `*.yaml`/`*.yml` of `dir`, sorted by name.
pub(super) fn load_dir(dir: &Path, env: Env<'_>) -> Result<Vec<Ivr>, Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")))
        .collect();
    paths.sort();
    let (mut ivrs, mut errors) = (Vec::new(), Vec::new());
    for path in paths {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse_file(&file, &text, env) {
                Ok(ivr) => ivrs.push(ivr),
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(format!("{file}: {e}")),
        }
    }
    errors.extend(check_unique(&ivrs));
    if errors.is_empty() {
        Ok(ivrs)
    } else {
        Err(errors)
    }
}

/// Two IVRs must not share a name or a number.
pub(super) fn check_unique(ivrs: &[Ivr]) -> Vec<String> {
    let mut errors = Vec::new();
    let (mut names, mut numbers) = (BTreeMap::new(), BTreeMap::new());
    for ivr in ivrs {
        if let Some(other) = names.insert(ivr.name(), ivr.file()) {
            errors.push(format!(
                "{}: IVR {} is already defined by {other}",
                ivr.file(),
                ivr.name()
            ));
        }
        if let Some(other) = numbers.insert(ivr.number(), ivr.file()) {
            errors.push(format!(
                "{}: number: +{} is already answered by {other}",
                ivr.file(),
                ivr.number()
            ));
        }
    }
    errors
}

/// Parses and checks one file; `file` prefixes errors and its stem names the IVR.
pub(super) fn parse_file(file: &str, yaml: &str, env: Env<'_>) -> Result<Ivr, Vec<String>> {
    let name = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    // Enums are written as one-key maps (`say: ...`) or plain names (`reject`), not YAML tags.
    let de = serde_yaml_ng::Deserializer::from_str(yaml);
    let parsed: IvrFile = serde_yaml_ng::with::singleton_map_recursive::deserialize(de)
        .map_err(|e| vec![format!("{file}: {e}")])?;
    let mut c = Checker {
        file,
        env,
        errors: Vec::new(),
    };
    if !is_name(name) {
        c.err(
            "",
            format!("IVR name {name:?} must be letters, digits, _ or -"),
        );
    }
    let number = c.expand("number", &parsed.number).and_then(|n| {
        let digits = n.starts_with('+').then(|| normalize_number(&n)).flatten();
        let digits = digits.filter(|d| (8..=15).contains(&d.len()));
        if digits.is_none() {
            c.err(
                "number",
                format!("{n:?} is not a + international phone number"),
            );
        }
        digits
    });
    let targets: Vec<&str> = parsed
        .menus
        .keys()
        .chain(parsed.actions.keys())
        .map(String::as_str)
        .collect();
    if parsed.menus.is_empty() {
        c.err("menus", "at least one menu is needed".into());
    }
    if !parsed.menus.contains_key(&parsed.start) {
        c.err("start", format!("{:?} is not a menu", parsed.start));
    }
    let mut menus = BTreeMap::new();
    for (mname, m) in &parsed.menus {
        if parsed.actions.contains_key(mname) {
            c.err(
                &format!("menus.{mname}"),
                "is also the name of an action list".into(),
            );
        }
        if let Some(menu) = c.menu(mname, m, &targets) {
            menus.insert(mname.clone(), menu);
        }
    }
    let mut actions = BTreeMap::new();
    for (aname, list) in &parsed.actions {
        actions.insert(aname.clone(), c.action_list(aname, list, &parsed.menus));
    }
    match number {
        Some(number) if c.errors.is_empty() => Ok(Ivr {
            name: name.to_string(),
            file: file.to_string(),
            number,
            start: parsed.start,
            menus,
            actions,
        }),
        _ => Err(c.errors),
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(super) fn is_dtmf(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

pub(super) struct Checker<'a> {
    pub(super) file: &'a str,
    pub(super) env: Env<'a>,
    pub(super) errors: Vec<String>,
}

impl Checker<'_> {
    pub(super) fn err(&mut self, path: &str, msg: String) {
        if path.is_empty() {
            self.errors.push(format!("{}: {msg}", self.file));
        } else {
            self.errors.push(format!("{}: {path}: {msg}", self.file));
        }
    }

    fn menu(&mut self, name: &str, m: &MenuFile, targets: &[&str]) -> Option<Menu> {
        let at = format!("menus.{name}");
        let before = self.errors.len();
        if !is_name(name) {
            self.err(&at, "menu names must be letters, digits, _ or -".into());
        }
        if let Some(k) = &m.finish_on_key
            && !(k.len() == 1 && is_dtmf(k))
        {
            self.err(
                &format!("{at}.finish_on_key"),
                format!("{k:?} must be one of 0-9 * #"),
            );
        }
        for (digits, target) in &m.routes {
            let path = format!("{at}.routes.{digits:?}");
            if !is_dtmf(digits) {
                self.err(&path, "digits key must be 1 or more of 0-9 * #".into());
            } else if m
                .finish_on_key
                .as_deref()
                .is_some_and(|k| digits.contains(k))
            {
                self.err(
                    &path,
                    "contains the finish_on_key and can never be matched".into(),
                );
            } else if m.num_digits.is_some_and(|n| digits.len() > n as usize) {
                self.err(&path, "is longer than num_digits".into());
            }
            self.target(&path, target, targets);
        }
        for (key, target) in [("default", &m.default), ("no_input", &m.no_input)] {
            if let Some(t) = target {
                self.target(&format!("{at}.{key}"), t, targets);
            }
        }
        let prompt = m
            .prompt
            .as_ref()
            .and_then(|p| self.prompt(&format!("{at}.prompt"), p));
        (self.errors.len() == before).then(|| Menu {
            prompt,
            finish_on_key: m.finish_on_key.clone(),
            timeout: m.timeout,
            num_digits: m.num_digits,
            routes: m.routes.clone(),
            default: m.default.clone(),
            no_input: m.no_input.clone(),
        })
    }

    fn target(&mut self, path: &str, target: &str, targets: &[&str]) {
        if !targets.contains(&target) {
            self.err(
                path,
                format!("unknown target {target:?} (not a menu or an action list)"),
            );
        }
    }

    fn action_list(
        &mut self,
        name: &str,
        list: &[ActionFile],
        menus: &BTreeMap<String, MenuFile>,
    ) -> Vec<Step> {
        let at = format!("actions.{name}");
        if !is_name(name) {
            self.err(
                &at,
                "action list names must be letters, digits, _ or -".into(),
            );
        }
        if list.is_empty() {
            self.err(&at, "an action list needs at least one action".into());
        }
        if list.len() > 1 && list.iter().any(|a| matches!(a, ActionFile::Reject)) {
            self.err(&at, "reject must be the only action of its list".into());
        }
        let mut steps = Vec::new();
        for (i, a) in list.iter().enumerate() {
            let path = format!("{at}[{i}]");
            let ends = matches!(a, ActionFile::Redirect(_) | ActionFile::Menu(_))
                || matches!(a, ActionFile::Record(r) if r.prompt.is_none() && r.callback_url.is_none()
                    && r.finish_on_key.is_none() && r.max_length.is_none() && r.timeout.is_none()
                    && r.trim_silence.is_none() && r.play_beep.is_none());
            if ends && i + 1 < list.len() {
                self.err(
                    &path,
                    "nothing after a redirect, menu or terminal record ever runs".into(),
                );
            }
            if let ActionFile::Menu(m) = a {
                if !menus.contains_key(m) {
                    self.err(&path, format!("unknown menu {m:?}"));
                }
                steps.push(Step::Menu(m.clone()));
            } else if let Some(action) = self.action(&path, a) {
                steps.push(Step::Action(action));
            }
        }
        steps
    }
}
