//! The `menu` screen: a text and numbered choices, dynamic ones (`items`, built from a list at
//! runtime) first, then fixed `options`; a shown number selects its choice from any page.
//!
//! Fixed options ([`OptionSpec`], [`Choice`]) are shared with the `input` screen.

use super::Screen;
use crate::flow::check::Checker;
use crate::flow::engine::Run;
use crate::flow::localized::{Localized, Text, entries};
use crate::flow::state::{Pick, Step};
use crate::flow::template::{Expr, Tpl, ValueTpl};
use crate::hop::Reply;
use crate::text::{Limit, line_fits_any_page};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One menu (or input) option.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OptionSpec {
    pub label: Text,
    pub next: String,
    #[serde(default)]
    pub set: Map<String, Value>,
}

/// Dynamic menu entries built from a list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemsSpec {
    pub from: String,
    pub label: Text,
    #[serde(default)]
    pub value: Option<String>,
    pub into: String,
    pub next: String,
}

/// `invalid: {end: ...}`: a bad choice ends the dialogue with this text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvalidSpec {
    pub end: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MenuSpec {
    pub text: Text,
    #[serde(default)]
    pub options: Vec<OptionSpec>,
    #[serde(default)]
    pub items: Option<ItemsSpec>,
    #[serde(default)]
    pub invalid: Option<InvalidSpec>,
}

/// A fixed option of a menu or input screen.
#[derive(Debug)]
pub(crate) struct Choice {
    pub label: Localized<Tpl>,
    pub next: String,
    pub set: Vec<(String, ValueTpl)>,
}

/// Dynamic menu entries.
#[derive(Debug)]
pub(crate) struct Items {
    pub from: Expr,
    pub label: Localized<Tpl>,
    pub value: Option<Expr>,
    pub into: String,
    pub next: String,
}

#[derive(Debug)]
pub(crate) struct Menu {
    pub text: Localized<Tpl>,
    pub items: Option<Items>,
    pub options: Vec<Choice>,
    pub invalid_end: Option<Localized<Tpl>>,
}

impl Checker<'_> {
    /// Compiles fixed options; each label is also checked whole (`N. label`) against the page
    /// size.
    pub(crate) fn options(&mut self, screen: &str, specs: &[OptionSpec]) -> Vec<Choice> {
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
}

impl Menu {
    /// What the subscriber typed: a navigation key, a shown number, or an invalid choice.
    pub(crate) fn answer(&self, mut run: Run<'_, '_>, input: &str) -> Step {
        if let Some(action) = run.nav_action(input, false) {
            return run.navigate(action);
        }
        let chosen = run
            .state
            .view
            .choices
            .iter()
            .find(|(k, _)| k == input)
            .map(|(_, p)| p.clone());
        match chosen {
            Some(Pick::Option(i)) => match self.options.get(i) {
                Some(o) => match run.set_values(&o.set) {
                    Ok(()) => run.go(&o.next),
                    Err(why) => run.fail(why),
                },
                None => run.fail(format!("option {i} is not in the menu")),
            },
            Some(Pick::Item(v)) => match &self.items {
                Some(items) => {
                    run.set_var(&items.into, v);
                    run.go(&items.next)
                }
                None => run.fail("the menu has no items".into()),
            },
            None => match &self.invalid_end {
                Some(end) => match run.render(end) {
                    Ok(text) => run.reply(Reply::end(text)),
                    Err(why) => run.fail(why),
                },
                None => run.invalid(None),
            },
        }
    }
}
