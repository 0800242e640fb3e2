//! Turning an interactive screen into pages: numbered choices, pagination through
//! [`crate::text::paginate`], and the invalid-choice / validator-error prefix.
//!
//! Choice numbers run on across pages and skip the navigation keys, so a shown number selects
//! its option from any page and `98`/`0`/`00` never select one. The last page of an `end` or
//! `input` screen drops the back line: an `end` page ends the dialogue, and on an input screen's
//! last page everything typed goes to the validators.

use super::engine::{Fail, Run};
use super::localized::Localized;
use super::navigation::Navigation;
use super::screen::{Choice, Items, Screen};
use super::state::{Pick, Step, View};
use super::template::{Tpl, to_json};
use crate::hop::Reply;
use crate::text::{Nav, fits, paginate};
use minijinja::value::ValueKind;

/// The next choice number after `n`, skipping the navigation keys.
fn next_key(n: &mut usize, nav: &Navigation) -> String {
    loop {
        *n += 1;
        let key = n.to_string();
        if key != nav.next && key != nav.back && nav.home.as_deref() != Some(key.as_str()) {
            return key;
        }
    }
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
                let key = next_key(&mut n, nav);
                lines.push(format!("{key}. {label}"));
                choices.push((key, Pick::Item(to_json(&value).map_err(|e| e.to_string())?)));
            }
        }
        for (i, o) in options.iter().enumerate() {
            let label = self.render(&o.label)?;
            let key = next_key(&mut n, nav);
            lines.push(format!("{key}. {label}"));
            choices.push((key, Pick::Option(i)));
        }
        Ok((lines, choices))
    }

    /// Renders an interactive screen into its pages, with `prefix` above the text if given.
    pub(crate) fn view_of(&mut self, screen: &Screen, prefix: Option<&str>) -> Result<View, Fail> {
        let (body, (lines, choices)) = match screen {
            Screen::Menu(m) => (
                self.render(&m.text)?,
                self.numbered(m.items.as_ref(), &m.options)?,
            ),
            Screen::Input(i) => (self.render(&i.text)?, self.numbered(None, &i.options)?),
            Screen::End(t) => (self.render(t)?, Default::default()),
            _ => return Err("not an interactive screen".into()),
        };
        let body = match prefix {
            Some(p) => format!("{p}\n{body}"),
            None => body,
        };
        let nav = self.text_nav();
        let mut pages = paginate(&body, &lines, self.ctx.limit, &nav);
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

    /// The current page again with `prefix` above it. When that no longer fits, the screen is
    /// paginated again with the prefix in its text and the view replaced.
    pub(crate) fn with_prefix(&mut self, prefix: &str) -> Result<Reply, Fail> {
        let page = self.state.view.page;
        let current = self.state.view.pages.get(page).cloned().unwrap_or_default();
        let candidate = format!("{prefix}\n{current}");
        if fits(&candidate, self.ctx.limit) {
            return Ok(Reply::con(candidate));
        }
        let flow = self.flow;
        let screen = flow
            .screens
            .get(&self.state.screen)
            .ok_or("the current screen is gone")?;
        let mut view = self.view_of(screen, Some(prefix))?;
        view.page = page.min(view.pages.len().saturating_sub(1));
        self.state.view = view;
        Ok(Reply::con(
            self.state
                .view
                .pages
                .get(self.state.view.page)
                .cloned()
                .unwrap_or_default(),
        ))
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
