//! Compiling each screen type from its YAML spec, checking it on the way.
//!
//! Fields are compiled in the order they are written, so diagnostics come out in file order.
//! Option labels are also checked whole (`N. label`) against the page size.

use super::check::{Checker, entries};
use super::model::{
    EndSpec, InputSpec, ItemsSpec, LoadSpec, MenuSpec, OptionSpec, RouterSpec, SaveSpec, SetSpec,
    ValidatorSpec,
};
use super::screen::{
    Check, Choice, Input, Items, Load, Menu, Router, Save, Screen, SetVars, Validator, WriteTpl,
};
use super::template::{Tpl, static_parts};
use crate::text::{Limit, line_fits_any_page};

impl Checker<'_> {
    fn options(&mut self, screen: &str, specs: &[OptionSpec]) -> Vec<Choice> {
        let mut out = Vec::new();
        for (i, o) in specs.iter().enumerate() {
            let field = format!("options[{i}]");
            for (lang, label) in entries(&o.label) {
                let line = format!("{}. {label}", i + 1);
                if !label.contains('{') && !line_fits_any_page(&line, Limit::default(), &self.nav) {
                    let path = if lang.is_empty() {
                        format!("{field}.label")
                    } else {
                        format!("{field}.label.{lang}")
                    };
                    self.error(
                        Some(screen),
                        Some(path),
                        format!("the option line `{line}` cannot fit on any page"),
                    );
                }
            }
            out.push(Choice {
                label: self.text(Some(screen), &format!("{field}.label"), &o.label),
                next: self.target(screen, &format!("{field}.next"), &o.next),
                set: self.values(screen, &format!("{field}.set"), &o.set),
            });
        }
        out
    }

    fn items(&mut self, screen: &str, spec: &ItemsSpec) -> Items {
        Items {
            from: self.expr(screen, "items.from", &spec.from),
            label: self.text(Some(screen), "items.label", &spec.label),
            value: spec
                .value
                .as_ref()
                .map(|v| self.expr(screen, "items.value", v)),
            into: self.variable(screen, "items.into", &spec.into),
            next: self.target(screen, "items.next", &spec.next),
        }
    }

    pub(crate) fn menu(&mut self, screen: &str, spec: MenuSpec) -> Screen {
        if spec.options.is_empty() && spec.items.is_none() {
            self.error(
                Some(screen),
                None,
                "a menu needs `options`, `items` or both",
            );
        }
        Screen::Menu(Menu {
            text: self.text(Some(screen), "text", &spec.text),
            items: spec.items.as_ref().map(|i| self.items(screen, i)),
            options: self.options(screen, &spec.options),
            invalid_end: spec
                .invalid
                .as_ref()
                .map(|i| self.text(Some(screen), "invalid.end", &i.end)),
        })
    }

    fn validator(&mut self, screen: &str, field: &str, v: &ValidatorSpec) -> Validator {
        let kinds = [
            v.regex.is_some(),
            v.range.is_some(),
            v.length.is_some(),
            v.expr.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            let msg = "needs exactly one of `regex`, `range`, `length`, `expr`";
            self.error(Some(screen), Some(field.into()), msg);
        }
        let check = if let Some(re) = &v.regex {
            match regex::Regex::new(&format!("^(?:{re})$")) {
                Ok(r) => Check::Regex(r),
                Err(e) => {
                    let why = e.to_string();
                    let why = why
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                        .to_string();
                    self.error(
                        Some(screen),
                        Some(format!("{field}.regex")),
                        format!("invalid regex: {why}"),
                    );
                    Check::Length(None, None)
                }
            }
        } else if let Some(r) = &v.range {
            if let (Some(lo), Some(hi)) = (r.min, r.max)
                && lo > hi
            {
                self.error(
                    Some(screen),
                    Some(format!("{field}.range")),
                    "`min` is greater than `max`",
                );
            }
            Check::Range(r.min, r.max)
        } else if let Some(l) = &v.length {
            if let (Some(lo), Some(hi)) = (l.min, l.max)
                && lo > hi
            {
                self.error(
                    Some(screen),
                    Some(format!("{field}.length")),
                    "`min` is greater than `max`",
                );
            }
            Check::Length(l.min, l.max)
        } else if let Some(e) = &v.expr {
            Check::Expr(self.expr(screen, &format!("{field}.expr"), e))
        } else {
            Check::Length(None, None)
        };
        Validator {
            check,
            error: self.text(Some(screen), &format!("{field}.error"), &v.error),
        }
    }

    pub(crate) fn input(&mut self, screen: &str, spec: InputSpec) -> Screen {
        let text = self.text(Some(screen), "text", &spec.text);
        let into = self.variable(screen, "into", &spec.into);
        let next = self.target(screen, "next", &spec.next);
        let validators = spec
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| self.validator(screen, &format!("validators[{i}]"), v))
            .collect();
        Screen::Input(Input {
            text,
            into,
            next,
            validators,
            options: self.options(screen, &spec.options),
            sensitive: spec.sensitive,
        })
    }

    pub(crate) fn router(&mut self, screen: &str, spec: RouterSpec) -> Screen {
        let mut routes = Vec::new();
        for (i, r) in spec.routes.iter().enumerate() {
            let when = self.expr(screen, &format!("routes[{i}].when"), &r.when);
            routes.push((
                when,
                self.target(screen, &format!("routes[{i}].next"), &r.next),
            ));
        }
        Screen::Router(Router {
            routes,
            default: self.target(screen, "default", &spec.default),
        })
    }

    pub(crate) fn set(&mut self, screen: &str, spec: SetSpec) -> Screen {
        Screen::Set(SetVars {
            values: self.values(screen, "values", &spec.values),
            next: self.target(screen, "next", &spec.next),
        })
    }

    pub(crate) fn end(&mut self, screen: &str, spec: EndSpec) -> Screen {
        Screen::End(self.text(Some(screen), "text", &spec.text))
    }

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

    pub(crate) fn load(&mut self, screen: &str, spec: LoadSpec) -> Screen {
        Screen::Load(Load {
            record: self.record(screen, "record", &spec.record),
            into: self.variable(screen, "into", &spec.into),
            found: self.target(screen, "found", &spec.found),
            missing: self.target(screen, "missing", &spec.missing),
        })
    }

    pub(crate) fn save(&mut self, screen: &str, spec: SaveSpec) -> Screen {
        let mut writes = Vec::new();
        for (i, w) in spec.writes.iter().enumerate() {
            writes.push(WriteTpl {
                record: self.record(screen, &format!("writes[{i}].record"), &w.record),
                fields: self.values(screen, &format!("writes[{i}].fields"), &w.fields),
                merge: w.merge,
            });
        }
        Screen::Save(Save {
            writes,
            next: self.target(screen, "next", &spec.next),
            failed: spec
                .failed
                .as_ref()
                .map(|f| self.target(screen, "failed", f)),
        })
    }
}
