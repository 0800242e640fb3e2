//! The `menu` screen: a text and numbered choices, dynamic ones (`items`, built from a list at
//! runtime) first, then fixed `options`; a shown number selects its choice from any page.
//!
//! Fixed options ([`OptionSpec`], [`Choice`]) are shared with the `input` screen. An option may
//! name its own `key` (`0. Back`); the others are numbered around it. On a wrong choice the
//! menu's `invalid` decides: `end` ends the dialogue, `text` shows that text in place of the
//! menu's own above the choices (a bad choice on a long home menu keeps it on one screen), and
//! without it the flow's `invalid_choice` goes above the page.

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
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OptionSpec {
    /// The key that selects it, instead of the next number (`0` for a `0. Back` line).
    #[serde(default)]
    pub key: Option<String>,
    pub label: Text,
    pub next: String,
    #[serde(default)]
    pub set: Map<String, Value>,
}

/// Dynamic menu entries built from a list.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemsSpec {
    pub from: String,
    pub label: Text,
    #[serde(default)]
    pub value: Option<String>,
    pub into: String,
    pub next: String,
}

/// `invalid:`: what a bad choice does. `end: ...` ends the dialogue with that text; `text: ...`
/// (menus) shows that text instead of the menu's own, above the choices.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvalidSpec {
    #[serde(default)]
    pub end: Option<Text>,
    #[serde(default)]
    pub text: Option<Text>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
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
    /// Its own key, if it has one; else it is numbered.
    pub key: Option<String>,
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
    pub invalid: Option<OnInvalid>,
}

/// What a bad choice on a menu does, when the menu says.
#[derive(Debug)]
pub(crate) enum OnInvalid {
    /// Ends the dialogue with this text.
    End(Localized<Tpl>),
    /// Shows this text in place of the menu's, above the same choices.
    Instead(Localized<Tpl>),
}

impl Checker<'_> {
    /// Compiles fixed options; each label is also checked whole (`N. label`) against the page
    /// size.
    pub(crate) fn options(&mut self, screen: &str, specs: &[OptionSpec]) -> Vec<Choice> {
        let mut out = Vec::new();
        let mut keys = std::collections::HashSet::new();
        for (i, o) in specs.iter().enumerate() {
            let field = format!("options[{i}]");
            if let Some(key) = &o.key {
                self.option_key(screen, &field, key, &mut keys);
            }
            for (lang, label) in entries(&o.label) {
                let number = o.key.clone().unwrap_or_else(|| (i + 1).to_string());
                let line = format!("{number}. {label}");
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
                key: o.key.clone(),
                label: self.text(Some(screen), &format!("{field}.label"), &o.label),
                next: self.target(screen, &format!("{field}.next"), &o.next),
                set: self.values(screen, &format!("{field}.set"), &o.set),
            });
        }
        out
    }

    /// An option's own key: one to three of `0-9 * #`, once per screen, and neither the next-page
    /// nor the home key (the back key is allowed: the option then wins over it).
    fn option_key(
        &mut self,
        screen: &str,
        field: &str,
        key: &str,
        keys: &mut std::collections::HashSet<String>,
    ) {
        let path = Some(format!("{field}.key"));
        let dtmf = |b: u8| b.is_ascii_digit() || b == b'*' || b == b'#';
        if key.is_empty() || key.len() > 3 || !key.bytes().all(dtmf) {
            self.error(Some(screen), path, "a key is 1 to 3 of 0-9 * #");
        } else if *key == self.nav.next_key || self.home_key.as_deref() == Some(key) {
            self.error(
                Some(screen),
                path,
                format!("`{key}` is a navigation key (next page or home)"),
            );
        } else if !keys.insert(key.to_string()) {
            self.error(Some(screen), path, format!("the key `{key}` is used twice"));
        }
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
            invalid: spec.invalid.as_ref().and_then(|i| match (&i.end, &i.text) {
                (Some(end), None) => {
                    Some(OnInvalid::End(self.text(Some(screen), "invalid.end", end)))
                }
                (None, Some(text)) => Some(OnInvalid::Instead(self.text(
                    Some(screen),
                    "invalid.text",
                    text,
                ))),
                _ => {
                    self.error(
                        Some(screen),
                        Some("invalid".into()),
                        "needs exactly one of `end` and `text`",
                    );
                    None
                }
            }),
        })
    }
}

impl Menu {
    /// What the subscriber typed: a shown choice (an option's own key wins over a navigation
    /// key), a navigation key, or an invalid choice.
    pub(crate) fn answer(&self, mut run: Run<'_, '_>, input: &str) -> Step {
        let chosen = run
            .state
            .view
            .choices
            .iter()
            .find(|(k, _)| k == input)
            .map(|(_, p)| p.clone());
        if chosen.is_none()
            && let Some(action) = run.nav_action(input, false)
        {
            return run.navigate(action);
        }
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
            None => match &self.invalid {
                Some(OnInvalid::End(end)) => match run.render(end) {
                    Ok(text) => run.reply(Reply::end(text)),
                    Err(why) => run.fail(why),
                },
                Some(OnInvalid::Instead(text)) => run.invalid_instead(text),
                None => run.invalid(None),
            },
        }
    }
}
