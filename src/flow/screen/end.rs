//! The `end` screen: a text that ends the dialogue. A text longer than one screen goes out as
//! pages that continue the dialogue (the page keys turn them); its last page ends it.

use super::Screen;
use crate::flow::check::Checker;
use crate::flow::engine::Run;
use crate::flow::localized::Text;
use crate::flow::state::Step;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndSpec {
    pub text: Text,
}

impl Checker<'_> {
    pub(crate) fn end(&mut self, screen: &str, spec: EndSpec) -> Screen {
        Screen::End(self.text(Some(screen), "text", &spec.text))
    }
}

/// What the subscriber typed on a page of a long `end` text: only the navigation keys mean
/// something there.
pub(crate) fn answer(run: Run<'_, '_>, input: &str) -> Step {
    match run.nav_action(input, false) {
        Some(action) => run.navigate(action),
        None => run.invalid(None),
    }
}
