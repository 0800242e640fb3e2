//! Turning an interactive screen into pages: numbered choices, pagination through
//! [`crate::text::paginate_blocks`] (an `end` screen's items are kept whole on a page), and what
//! a wrong answer shows: the invalid-choice or validator-error text above the page, or a text in
//! place of the screen's own.
//!
//! Choice numbers run on across pages and skip the navigation keys and the options' own keys,
//! so a shown number selects its option from any page and `98`/`0`/`00` never select a numbered
//! one. The last page of an `end` or `input` screen drops the back line: an `end` page ends the
//! dialogue, and on an input screen's last page everything typed goes to the validators.

use super::engine::{Fail, Run};
use super::localized::Localized;
use super::navigation::Navigation;
use super::screen::{Choice, Items, Screen};
use super::state::{Pick, Step, View};
use super::template::{Tpl, to_json};
use crate::hop::Reply;
use crate::text::{Nav, fits, paginate_blocks};
use minijinja::value::ValueKind;

/// The next choice number after `n`, skipping the navigation keys and the options' own keys.
fn next_key(n: &mut usize, nav: &Navigation, taken: &[&str]) -> String {
    loop {
        *n += 1;
        let key = n.to_string();
        if key != nav.next
            && key != nav.back
            && nav.home.as_deref() != Some(key.as_str())
            && !taken.contains(&key.as_str())
        {
            return key;
        }
    }
}

/// What goes above a screen's choices.
#[derive(Clone, Copy)]
pub(crate) enum Above<'a> {
    /// The screen's own text.
    Own,
    /// The screen's own text under this line (an invalid choice, a validator's error).
    Prefix(&'a str),
    /// This text in place of the screen's own.
    Instead(&'a str),
}

/// Numbered lines and choices.
type Numbered = (Vec<String>, Vec<(String, Pick)>);

impl Run<'_, '_> {
    /// The navigation lines in the dialogue's language.
    fn text_nav(&self) -> Nav {
        let nav = &self.flow.nav;
        Nav {
            next_key: nav.next.clone(),
            next_label: self.pick(&nav.more_label).clone(),
            back_key: nav.back.clone(),
            back_label: self.pick(&nav.back_label).clone(),
        }
    }

    fn numbered(&mut self, items: Option<&Items>, options: &[Choice]) -> Result<Numbered, Fail> {
        let (mut lines, mut choices, mut n) = (Vec::new(), Vec::new(), 0);
        let nav = &self.flow.nav;
        let taken: Vec<&str> = options.iter().filter_map(|o| o.key.as_deref()).collect();
        if let Some(items) = items {
            let list = self.eval(&items.from, None)?;
            let entries: Vec<minijinja::Value> = match list.kind() {
                ValueKind::Undefined | ValueKind::None => Vec::new(),
                ValueKind::Seq | ValueKind::Iterable => {
                    list.try_iter().map_err(|e| e.to_string())?.collect()
                }
                other => return Err(format!("items.from gave a {other}, not a list")),
            };
            for item in entries {
                let label = self.render_with(&items.label, "item", item.clone())?;
                let value = match &items.value {
                    Some(e) => self.eval(e, Some(("item", item)))?,
                    None => item,
                };
                let key = next_key(&mut n, nav, &taken);
                lines.push(format!("{key}. {label}"));
                choices.push((key, Pick::Item(to_json(&value).map_err(|e| e.to_string())?)));
            }
        }
        for (i, o) in options.iter().enumerate() {
            let label = self.render(&o.label)?;
            let key = match &o.key {
                Some(k) => k.clone(),
                None => next_key(&mut n, nav, &taken),
            };
            lines.push(format!("{key}. {label}"));
            choices.push((key, Pick::Option(i)));
        }
        Ok((lines, choices))
    }

    /// The text above a screen's choices: its own (`text`), under a prefix, or another.
    fn text_above(&mut self, text: &Localized<Tpl>, above: Above<'_>) -> Result<String, Fail> {
        Ok(match above {
            Above::Own => self.render(text)?,
            Above::Prefix(p) => format!("{p}\n{}", self.render(text)?),
            Above::Instead(t) => t.to_string(),
        })
    }

    /// Renders an interactive screen into its pages, with `above` over its choices.
    pub(crate) fn view_of(&mut self, screen: &Screen, above: Above<'_>) -> Result<View, Fail> {
        let (head, items, (lines, choices)) = match screen {
            Screen::Menu(m) => (
                self.text_above(&m.text, above)?,
                Vec::new(),
                self.numbered(m.items.as_ref(), &m.options)?,
            ),
            Screen::Input(i) => (
                self.text_above(&i.text, above)?,
                Vec::new(),
                self.numbered(None, &i.options)?,
            ),
            Screen::End(e) => {
                let (text, items) = e.body(self)?;
                let head = match above {
                    Above::Own => text,
                    Above::Prefix(p) => format!("{p}\n{text}"),
                    Above::Instead(t) => t.to_string(),
                };
                (head, items, Default::default())
            }
            _ => return Err("not an interactive screen".into()),
        };
        let mut blocks: Vec<&str> = head.split_inclusive('\n').collect();
        blocks.extend(items.iter().map(String::as_str));
        let nav = self.text_nav();
        let mut pages = paginate_blocks(&blocks, &lines, self.ctx.limit, &nav);
        if pages.len() > 1 && !matches!(screen, Screen::Menu(_)) {
            let back = nav.back_line();
            if let Some(last) = pages.last_mut() {
                *last = without_line(last, &back);
            }
        }
        Ok(View {
            pages,
            page: 0,
            choices,
        })
    }

    /// The reply showing page `page` of the current view: an `end` screen's last page ends
    /// the dialogue.
    pub(crate) fn page_reply(&self, page: usize) -> Reply {
        let pages = &self.state.view.pages;
        let text = pages.get(page).cloned().unwrap_or_default();
        let is_end = matches!(
            self.flow.screens.get(&self.state.screen),
            Some(Screen::End(_))
        );
        if is_end && page + 1 >= pages.len() {
            Reply::end(text)
        } else {
            Reply::con(text)
        }
    }

    /// Re-shows the current page with `error` (or the flow's invalid-choice text) above it.
    pub(crate) fn invalid(mut self, error: Option<&Localized<Tpl>>) -> Step {
        let prefix = match error {
            Some(t) => match self.render(t) {
                Ok(p) => p,
                Err(why) => return self.fail(why),
            },
            None => self.pick(&self.flow.invalid_choice).clone(),
        };
        match self.with_prefix(&prefix) {
            Ok(reply) => self.reply(reply),
            Err(why) => self.fail(why),
        }
    }

    /// The screen again with `text` in place of its own (a menu's `invalid: { text }`, a
    /// validator's error that `replace`s the prompt), from the page on display.
    pub(crate) fn invalid_instead(mut self, text: &Localized<Tpl>) -> Step {
        let text = match self.render(text) {
            Ok(t) => t,
            Err(why) => return self.fail(why),
        };
        match self.redraw(Above::Instead(&text)) {
            Ok(reply) => self.reply(reply),
            Err(why) => self.fail(why),
        }
    }

    /// The current screen paginated again with `above`, on the page on display (or the last).
    fn redraw(&mut self, above: Above<'_>) -> Result<Reply, Fail> {
        let page = self.state.view.page;
        let flow = self.flow;
        let screen = flow
            .screens
            .get(&self.state.screen)
            .ok_or("the current screen is gone")?;
        let mut view = self.view_of(screen, above)?;
        view.page = page.min(view.pages.len().saturating_sub(1));
        self.state.view = std::sync::Arc::new(view);
        Ok(Reply::con(
            self.state
                .view
                .pages
                .get(self.state.view.page)
                .cloned()
                .unwrap_or_default(),
        ))
    }

    /// The current page again with `prefix` above it. On a first page, and when that no longer
    /// fits, the screen is paginated again with the prefix in its text and the view replaced (so
    /// the prefix goes above the screen's own text even after a text shown in its place).
    pub(crate) fn with_prefix(&mut self, prefix: &str) -> Result<Reply, Fail> {
        let page = self.state.view.page;
        if page == 0 {
            return self.redraw(Above::Prefix(prefix));
        }
        let current = self.state.view.pages.get(page).cloned().unwrap_or_default();
        let candidate = format!("{prefix}\n{current}");
        if fits(&candidate, self.ctx.limit) {
            return Ok(Reply::con(candidate));
        }
        self.redraw(Above::Prefix(prefix))
    }
}

/// `page` without its last line equal to `line`.
fn without_line(page: &str, line: &str) -> String {
    let mut lines: Vec<&str> = page.split('\n').collect();
    if let Some(i) = lines.iter().rposition(|l| *l == line) {
        lines.remove(i);
    }
    lines.join("\n")
}
