//! Navigation keys: the page keys (`next`, `back`), the back key's history and the home key,
//! from the flow file's `navigation:` to what a key does when the subscriber types it.
//!
//! Keys count only when the input equals them exactly. On menus and paginated `end` screens,
//! `next`/`back` turn pages, `back` on a first page returns to the previous shown screen
//! (unless `navigation.history` is off) and `home` restarts at the home screen. Input screens
//! honour only the page keys, and only while a later page exists, so that an amount of `0`
//! reaches the validators.

use super::engine::Run;
use super::localized::{Localized, Text, fixed};
use super::state::Step;
use serde::Deserialize;

fn key_next() -> String {
    "98".to_string()
}
fn key_back() -> String {
    "0".to_string()
}
fn key_home() -> Option<String> {
    Some("00".to_string())
}
fn label_more() -> Text {
    Text::plain("More")
}
fn label_back() -> Text {
    Text::plain("Back")
}
fn yes() -> bool {
    true
}

/// `navigation:`: the page and history keys and the labels shown for them.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NavSpec {
    #[serde(default = "key_next")]
    pub next: String,
    #[serde(default = "key_back")]
    pub back: String,
    /// `null` switches the home key off.
    #[serde(default = "key_home")]
    pub home: Option<String>,
    #[serde(default = "label_more")]
    pub more_label: Text,
    #[serde(default = "label_back")]
    pub back_label: Text,
    /// Whether `back` on a first page returns to the previous interactive screen.
    #[serde(default = "yes")]
    pub history: bool,
}

impl Default for NavSpec {
    fn default() -> Self {
        NavSpec {
            next: key_next(),
            back: key_back(),
            home: key_home(),
            more_label: label_more(),
            back_label: label_back(),
            history: true,
        }
    }
}

/// Navigation keys and labels, labels per language.
#[derive(Debug)]
pub(crate) struct Navigation {
    pub next: String,
    pub back: String,
    pub home: Option<String>,
    pub more_label: Localized<String>,
    pub back_label: Localized<String>,
    pub history: bool,
}

/// The header's navigation as compiled.
pub(crate) fn navigation(n: &NavSpec) -> Navigation {
    Navigation {
        next: n.next.clone(),
        back: n.back.clone(),
        home: n.home.clone(),
        more_label: fixed(Some(&n.more_label), "More"),
        back_label: fixed(Some(&n.back_label), "Back"),
        history: n.history,
    }
}

/// What a navigation key asks for.
pub(crate) enum NavAction {
    Page(usize),
    Back,
    Home,
}

impl Run<'_, '_> {
    /// Leaves the current screen for `next`, remembering it for the back key.
    pub(crate) fn go(mut self, next: &str) -> Step {
        self.state.from = Some(self.state.screen.clone());
        self.state.view = Default::default();
        self.enter(next)
    }

    /// The navigation keys. Input screens (`paging_only`) honour only the page keys, and only
    /// while a later page exists, so that a typed `0` reaches the validators.
    pub(crate) fn nav_action(&self, input: &str, paging_only: bool) -> Option<NavAction> {
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

    pub(crate) fn navigate(mut self, action: NavAction) -> Step {
        match action {
            NavAction::Page(page) => {
                std::sync::Arc::make_mut(&mut self.state.view).page = page;
                let reply = self.page_reply(page);
                self.reply(reply)
            }
            NavAction::Back => {
                let previous = self.state.history.pop().unwrap_or_default();
                self.state.view = Default::default();
                self.enter(&previous)
            }
            NavAction::Home => {
                self.state.history.clear();
                self.state.view = Default::default();
                let flow = self.flow;
                self.enter(&flow.home)
            }
        }
    }
}
