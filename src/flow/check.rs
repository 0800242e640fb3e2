//! The [`Checker`]: collects every load problem as a [`Diagnostic`] while screens compile.
//!
//! It holds what the checks share: the screen names (for targets), the graph edges (for
//! reachability), the flow's template environment, and the navigation lines (for text
//! widths). Each check records its problem and hands back a placeholder, so later checks keep
//! running; the flow is only built when no error was collected. Each screen type compiles its
//! own spec (in its module under [`super::screen`]) with the shared checks here.

use super::compile::HeaderSpec;
use super::localized::{Localized, Text, entries, label_in};
use super::navigation::NavSpec;
use super::template::{Expr, Templates, Tpl, ValueTpl, static_parts};
use super::{Diagnostic, Severity};
use crate::text::{Limit, Nav, is_gsm7, line_fits_any_page};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Collects diagnostics while compiling the screens of one file.
pub(crate) struct Checker<'a> {
    file: &'a str,
    names: HashSet<String>,
    edges: HashMap<String, Vec<String>>,
    /// Every edge with the field that names it, in the order recorded: the flow's graph.
    fields: Vec<(String, String, String)>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    pub(super) templates: Templates,
    /// The navigation lines as the default language shows them, for width checks.
    pub(super) nav: Nav,
    /// The flow's declared `secrets:` (environment variable names).
    pub(super) secrets: Vec<String>,
    /// The home key, if the flow has one (an option may not take it as its own key).
    pub(super) home_key: Option<String>,
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl<'a> Checker<'a> {
    pub(crate) fn new(file: &'a str, nav: &NavSpec, default_language: &str) -> Self {
        Checker {
            file,
            names: HashSet::new(),
            edges: HashMap::new(),
            fields: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            templates: Templates::new(),
            nav: Nav {
                next_key: nav.next.clone(),
                next_label: label_in(&nav.more_label, default_language),
                back_key: nav.back.clone(),
                back_label: label_in(&nav.back_label, default_language),
            },
            secrets: Vec::new(),
            home_key: nav.home.clone(),
        }
    }

    pub(crate) fn set_names(&mut self, names: &[String]) {
        self.names = names.iter().cloned().collect();
    }

    fn push(
        &mut self,
        severity: Severity,
        screen: Option<&str>,
        field: Option<String>,
        msg: String,
    ) {
        let mut d = Diagnostic::error(self.file, screen, field, msg);
        d.severity = severity;
        match d.severity {
            Severity::Error => self.errors.push(d),
            Severity::Warning => self.warnings.push(d),
        }
    }

    pub(crate) fn error(
        &mut self,
        screen: Option<&str>,
        field: Option<String>,
        msg: impl Into<String>,
    ) {
        self.push(Severity::Error, screen, field, msg.into());
    }

    /// Records the edge `screen -> target` and checks that the target exists.
    pub(super) fn target(&mut self, screen: &str, field: &str, target: &str) -> String {
        if !self.names.contains(target) {
            self.error(
                Some(screen),
                Some(field.into()),
                format!("unknown target screen `{target}`"),
            );
        }
        self.edges
            .entry(screen.to_string())
            .or_default()
            .push(target.to_string());
        self.fields
            .push((screen.to_string(), field.to_string(), target.to_string()));
        target.to_string()
    }

    pub(super) fn variable(&mut self, screen: &str, field: &str, name: &str) -> String {
        if !is_identifier(name) {
            self.error(
                Some(screen),
                Some(field.into()),
                format!("`{name}` is not a valid variable name"),
            );
        }
        name.to_string()
    }

    /// Width and alphabet checks of the static parts of one text.
    pub(super) fn check_static(&mut self, screen: Option<&str>, field: &str, src: &str) {
        let fixed = static_parts(src);
        for word in fixed.split_whitespace() {
            if !line_fits_any_page(word, Limit::default(), &self.nav) {
                self.error(
                    screen,
                    Some(field.into()),
                    format!("the word `{word}` cannot fit on any page"),
                );
            }
        }
        let mut odd: Vec<char> = fixed.chars().filter(|c| !is_gsm7(*c)).collect();
        odd.dedup();
        if !odd.is_empty() {
            let list: Vec<String> = odd.iter().map(|c| format!("`{c}`")).collect();
            let msg = format!(
                "characters outside GSM-7 ({}): screens showing this text go out as UCS-2, at most 80 characters",
                list.join(", ")
            );
            self.push(Severity::Warning, screen, Some(field.into()), msg);
        }
    }

    pub(super) fn compiled<T: Default>(
        &mut self,
        screen: Option<&str>,
        field: &str,
        r: Result<T, String>,
    ) -> T {
        r.unwrap_or_else(|msg| {
            self.error(screen, Some(field.into()), msg);
            T::default()
        })
    }

    /// Compiles a (possibly per-language) text template.
    pub(super) fn text(&mut self, screen: Option<&str>, field: &str, t: &Text) -> Localized<Tpl> {
        let mut out = Vec::new();
        for (lang, src) in entries(t) {
            let path = if lang.is_empty() {
                field.to_string()
            } else {
                format!("{field}.{lang}")
            };
            self.check_static(screen, &path, src);
            let tpl = self.templates.text(src);
            out.push((lang, self.compiled(screen, &path, tpl)));
        }
        Localized(out)
    }

    pub(super) fn expr(&mut self, screen: &str, field: &str, src: &str) -> Expr {
        let e = self.templates.expr(src);
        self.compiled(Some(screen), field, e)
    }

    pub(super) fn values(
        &mut self,
        screen: &str,
        field: &str,
        map: &Map<String, Value>,
    ) -> Vec<(String, ValueTpl)> {
        let mut out = Vec::new();
        for (k, v) in map {
            let path = format!("{field}.{k}");
            let name = self.variable(screen, &path, k);
            let compiled = self.templates.value(v);
            out.push((name, self.compiled(Some(screen), &path, compiled)));
        }
        out
    }

    /// Compiles a record name, which must read `collection/id`.
    pub(super) fn record(&mut self, screen: &str, field: &str, src: &str) -> Tpl {
        if !static_parts(src).contains('/') && !src.contains("{{") {
            self.error(
                Some(screen),
                Some(field.into()),
                "must name a record as `collection/id`",
            );
        }
        let t = self.templates.text(src);
        self.compiled(Some(screen), field, t)
    }

    /// Compiles a text template.
    pub(super) fn tpl(&mut self, screen: &str, field: &str, src: &str) -> Tpl {
        let t = self.templates.text(src);
        self.compiled(Some(screen), field, t)
    }

    /// Compiles a value template (one `{{ expr }}` keeps its type).
    pub(super) fn value_tpl(&mut self, screen: &str, field: &str, v: &Value) -> ValueTpl {
        let t = self.templates.value(v);
        self.compiled(Some(screen), field, t)
    }

    /// Checks of the top level: `start`/`home` name screens, the fixed texts fit.
    pub(crate) fn header(&mut self, h: &HeaderSpec) {
        for (field, target) in [("start", Some(&h.start)), ("home", h.home.as_ref())] {
            if let Some(t) = target
                && !self.names.contains(t)
            {
                self.error(None, Some(field.into()), format!("`{t}` is not a screen"));
            }
        }
        if let Some(lv) = &h.language_var
            && !is_identifier(lv)
        {
            self.error(
                None,
                Some("language_var".into()),
                format!("`{lv}` is not a valid variable name"),
            );
        }
        let texts = [
            ("invalid_choice", h.invalid_choice.as_ref()),
            ("apology", h.apology.as_ref()),
            ("navigation.more_label", Some(&h.navigation.more_label)),
            ("navigation.back_label", Some(&h.navigation.back_label)),
        ];
        for (field, text) in texts {
            for (lang, src) in text.map(entries).unwrap_or_default() {
                let path = if lang.is_empty() {
                    field.to_string()
                } else {
                    format!("{field}.{lang}")
                };
                self.check_static(None, &path, src);
            }
        }
    }

    /// Screens not reachable from `roots` over the edges recorded so far.
    pub(crate) fn unreachable(&self, names: &[String], roots: &[String]) -> Vec<String> {
        super::compile::unreachable_from(names, &self.edges, roots.iter())
    }

    /// Every edge recorded, as `(screen, field, target)`, in the order the screens compiled.
    pub(crate) fn take_edges(&mut self) -> Vec<(String, String, String)> {
        std::mem::take(&mut self.fields)
    }

    /// Errors, warnings and the compiled templates.
    pub(crate) fn finish(self) -> (Vec<Diagnostic>, Vec<Diagnostic>, Templates) {
        (self.errors, self.warnings, self.templates)
    }
}
