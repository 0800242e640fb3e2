//! Answering what the subscriber typed: navigation keys, menu choices, input validation.
//!
//! Keys count only when the input equals them exactly. On menus and paginated `end` screens,
//! `next`/`back` turn pages, `back` on a first page returns to the previous interactive screen
//! (unless `navigation.history` is off) and `home` restarts at the home screen. Input screens
//! honour only the page keys, and only while a later page exists, so that an amount of `0`
//! reaches the validators.

use super::engine::Run;
use super::screen::{Check, Input, Localized, Menu, Validator};
use super::state::{Pick, Step, View};
use super::template::Tpl;
use crate::hop::Reply;
use minijinja::Value;

/// What a navigation key asks for.
enum NavAction {
    Page(usize),
    Back,
    Home,
}

impl Run<'_, '_> {
    /// Leaves the current screen for `next`, remembering it for the back key.
    fn go(mut self, next: &str) -> Step {
        self.state.from = Some(self.state.screen.clone());
        self.state.view = View::default();
        self.enter(next)
    }

    pub(super) fn on_menu(mut self, m: &Menu, input: &str) -> Step {
        if let Some(action) = self.nav_action(input, false) {
            return self.navigate(action);
        }
        let chosen = self
            .state
            .view
            .choices
            .iter()
            .find(|(k, _)| k == input)
            .map(|(_, p)| p.clone());
        match chosen {
            Some(Pick::Option(i)) => match m.options.get(i) {
                Some(o) => match self.set_values(&o.set) {
                    Ok(()) => self.go(&o.next),
                    Err(why) => self.fail(why),
                },
                None => self.fail(format!("option {i} is not in the menu")),
            },
            Some(Pick::Item(v)) => match &m.items {
                Some(items) => {
                    self.set_var(&items.into, v);
                    self.go(&items.next)
                }
                None => self.fail("the menu has no items".into()),
            },
            None => match &m.invalid_end {
                Some(end) => match self.render(end) {
                    Ok(text) => self.reply(Reply::end(text)),
                    Err(why) => self.fail(why),
                },
                None => self.invalid(None),
            },
        }
    }

    pub(super) fn on_input(mut self, i: &Input, input: &str) -> Step {
        if let Some(action) = self.nav_action(input, true) {
            return self.navigate(action);
        }
        if let Some((_, Pick::Option(n))) = self.state.view.choices.iter().find(|(k, _)| k == input)
            && let Some(o) = i.options.get(*n)
        {
            return match self.set_values(&o.set) {
                Ok(()) => self.go(&o.next),
                Err(why) => self.fail(why),
            };
        }
        for v in &i.validators {
            match self.passes(v, input) {
                Ok(true) => {}
                Ok(false) => return self.invalid(Some(&v.error)),
                // An `expr` validator's failure may quote `input`.
                Err(why) if i.sensitive => {
                    return self.fail(super::sensitive::mask_in(why, input));
                }
                Err(why) => return self.fail(why),
            }
        }
        self.set_var(&i.into, serde_json::Value::String(input.to_string()));
        self.go(&i.next)
    }

    fn passes(&mut self, v: &Validator, input: &str) -> Result<bool, super::engine::Fail> {
        let within = |n: f64, lo: Option<f64>, hi: Option<f64>| {
            lo.is_none_or(|lo| n >= lo) && hi.is_none_or(|hi| n <= hi)
        };
        Ok(match &v.check {
            Check::Regex(re) => re.is_match(input),
            Check::Range(lo, hi) => input
                .trim()
                .parse::<f64>()
                .is_ok_and(|n| n.is_finite() && within(n, *lo, *hi)),
            Check::Length(lo, hi) => {
                let n = input.chars().count();
                lo.is_none_or(|lo| n >= lo) && hi.is_none_or(|hi| n <= hi)
            }
            Check::Expr(e) => self.eval(e, Some(("input", Value::from(input))))?.is_true(),
        })
    }

    pub(super) fn on_pages(self, input: &str) -> Step {
        match self.nav_action(input, false) {
            Some(action) => self.navigate(action),
            None => self.invalid(None),
        }
    }

    /// The navigation keys. Input screens (`paging_only`) honour only the page keys, and only
    /// while a later page exists, so that a typed `0` reaches the validators.
    fn nav_action(&self, input: &str, paging_only: bool) -> Option<NavAction> {
        let nav = &self.flow.nav;
        let (page, pages) = (self.state.view.page, self.state.view.pages.len());
        if paging_only && page + 1 >= pages {
            return None;
        }
        if input == nav.next && page + 1 < pages {
            return Some(NavAction::Page(page + 1));
        }
        if input == nav.back && page > 0 {
            return Some(NavAction::Page(page - 1));
        }
        if paging_only {
            return None;
        }
        if input == nav.back && nav.history && !self.state.history.is_empty() {
            return Some(NavAction::Back);
        }
        (nav.home.as_deref() == Some(input)).then_some(NavAction::Home)
    }

    fn navigate(mut self, action: NavAction) -> Step {
        match action {
            NavAction::Page(page) => {
                self.state.view.page = page;
                let reply = self.page_reply(page);
                self.reply(reply)
            }
            NavAction::Back => {
                let previous = self.state.history.pop().unwrap_or_default();
                self.state.view = View::default();
                self.enter(&previous)
            }
            NavAction::Home => {
                self.state.history.clear();
                self.state.view = View::default();
                let flow = self.flow;
                self.enter(&flow.home)
            }
        }
    }

    /// Re-shows the current page with `error` (or the flow's invalid-choice text) above it.
    fn invalid(mut self, error: Option<&Localized<Tpl>>) -> Step {
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
}
