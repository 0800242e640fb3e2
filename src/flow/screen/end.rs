//! The `end` screen: a text that ends the dialogue. A text longer than one screen goes out as
//! pages that continue the dialogue (the page keys turn them); its last page ends it.
//!
//! A list of records (a timetable, results) is written as `items`: each item's text is rendered
//! with `item` bound, after the screen's `text` (which sees the list as `items`, to say "none"),
//! and when the whole does not fit one screen, pages break between items rather than inside
//! one. `invalid: { end: ... }` ends the dialogue on a wrong key between pages, for flows whose
//! rule is that an unknown choice ends it.

use super::Screen;
use super::menu::InvalidSpec;
use crate::flow::check::Checker;
use crate::flow::engine::{Fail, Run};
use crate::flow::localized::{Localized, Text};
use crate::flow::state::Step;
use crate::flow::template::{Expr, Tpl};
use crate::hop::Reply;
use minijinja::Value;
use minijinja::value::ValueKind;
use serde::Deserialize;

/// `items:` of an end screen: a list, and the text of each entry.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndItemsSpec {
    pub from: String,
    pub text: Text,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndSpec {
    pub text: Text,
    #[serde(default)]
    pub items: Option<EndItemsSpec>,
    #[serde(default)]
    pub invalid: Option<InvalidSpec>,
}

/// The compiled `items:`.
#[derive(Debug)]
pub(crate) struct EndItems {
    pub from: Expr,
    pub text: Localized<Tpl>,
}

#[derive(Debug)]
pub(crate) struct End {
    pub text: Localized<Tpl>,
    pub items: Option<EndItems>,
    /// A wrong key between pages ends the dialogue with this text.
    pub invalid_end: Option<Localized<Tpl>>,
}

impl Checker<'_> {
    pub(crate) fn end(&mut self, screen: &str, spec: EndSpec) -> Screen {
        let invalid_end = spec.invalid.as_ref().and_then(|i| {
            if i.text.is_some() || i.end.is_none() {
                self.error(
                    Some(screen),
                    Some("invalid".into()),
                    "an end screen takes `invalid: { end: ... }` only",
                );
            }
            i.end
                .as_ref()
                .map(|t| self.text(Some(screen), "invalid.end", t))
        });
        Screen::End(End {
            text: self.text(Some(screen), "text", &spec.text),
            items: spec.items.as_ref().map(|i| EndItems {
                from: self.expr(screen, "items.from", &i.from),
                text: self.text(Some(screen), "items.text", &i.text),
            }),
            invalid_end,
        })
    }
}

impl End {
    /// The screen's text and, if it lists items, each item's text (to be kept on one page).
    pub(crate) fn body(&self, run: &mut Run<'_, '_>) -> Result<(String, Vec<String>), Fail> {
        let Some(items) = &self.items else {
            return Ok((run.render(&self.text)?, Vec::new()));
        };
        let list = run.eval(&items.from, None)?;
        let entries: Vec<Value> = match list.kind() {
            ValueKind::Undefined | ValueKind::None => Vec::new(),
            ValueKind::Seq | ValueKind::Iterable => {
                list.try_iter().map_err(|e| e.to_string())?.collect()
            }
            other => return Err(format!("items.from gave a {other}, not a list")),
        };
        let texts = entries
            .iter()
            .map(|item| run.render_with(&items.text, "item", item.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let head = run.render_with(&self.text, "items", Value::from(entries))?;
        Ok((head, texts))
    }

    /// What the subscriber typed on a page of a long text: only the navigation keys mean
    /// something there; anything else follows `invalid`, else the page is shown again under
    /// the flow's invalid-choice text.
    pub(crate) fn answer(&self, mut run: Run<'_, '_>, input: &str) -> Step {
        if let Some(action) = run.nav_action(input, false) {
            return run.navigate(action);
        }
        match &self.invalid_end {
            Some(end) => match run.render(end) {
                Ok(text) => run.reply(Reply::end(text)),
                Err(why) => run.fail(why),
            },
            None => run.invalid(None),
        }
    }
}
