//! Sensitive inputs (`sensitive: true` on an input screen: a PIN) in the pure engine.
//!
//! The engine keeps what the flow needs: the value is stored in the screen's variable like any
//! input, for a later screen (an `http` screen, a backend call, that checks the PIN) to use.
//! What it adds:
//!
//! - [`sensitive_input`] tells the caller, before it hands an input in, that the input is
//!   typed on such a screen, so that the caller masks it in everything it keeps of the hop
//!   (the session's cumulative text, tombstones, end records, events);
//! - [`resume_point`] is the state a flow that opted in to resume may keep past the dialogue:
//!   never with those variables;
//! - failures are logged with those values masked (`Run::redact`), since a template error
//!   can quote the values it read.

use super::Flow;
use super::engine::{Fail, Run};
use super::screen::Screen;
use super::state::FlowState;
use crate::hop::MASK;
use std::borrow::Cow;

/// Whether the input the subscriber types next, on the screen `state` shows, is typed on a
/// `sensitive` input screen. Every answer there counts (a PIN, a wrong PIN, an option number):
/// the caller masks all of them.
pub fn sensitive_input(flow: &Flow, state: &FlowState) -> bool {
    !flow.sensitive_vars.is_empty()
        && state.offer.is_none()
        && matches!(flow.screens.get(&state.screen), Some(Screen::Input(i)) if i.sensitive)
}

/// The state to keep as a resume point for `state`, which never holds the variable of a
/// `sensitive` input screen: a state that holds one goes back to the earliest such screen in
/// its back history whose variable it holds, without those variables, so that a resumed
/// dialogue asks for the PIN again. `None` when there is no such screen to go back to: no
/// point is kept.
pub fn resume_point<'s>(flow: &Flow, state: &'s FlowState) -> Option<Cow<'s, FlowState>> {
    let secret = |name: &String| state.vars.contains_key(name);
    if !flow.sensitive_vars.iter().any(secret) {
        return Some(Cow::Borrowed(state));
    }
    let asks = |screen: &str| {
        matches!(flow.screens.get(screen),
            Some(Screen::Input(i)) if i.sensitive && state.vars.contains_key(&i.into))
    };
    let mut point = state.clone();
    match state.history.iter().position(|s| asks(s)) {
        Some(at) => {
            point.screen = point.history[at].clone();
            point.history.truncate(at);
        }
        // Back on the screen that asks for it (after `back`, or a wrong PIN).
        None if asks(&state.screen) => {}
        None => return None,
    }
    point.view = Default::default();
    std::sync::Arc::make_mut(&mut point.vars).retain(|k, _| !flow.sensitive_vars.contains(k));
    Some(Cow::Owned(point))
}

/// `why` with every occurrence of `value` masked.
pub(super) fn mask_in(why: Fail, value: &str) -> Fail {
    if value.is_empty() || !why.contains(value) {
        return why;
    }
    why.replace(value, MASK)
}

impl Run<'_, '_> {
    /// `why` with the values of the flow's sensitive variables masked: a failure message may
    /// quote what a template read (minijinja's debug information lists the variables a failing
    /// template referenced; a filter's error names its input).
    pub(super) fn redact(&self, mut why: Fail) -> Fail {
        for name in &self.flow.sensitive_vars {
            match self.state.vars.get(name).map(|v| &**v) {
                Some(serde_json::Value::String(s)) => why = mask_in(why, s),
                Some(serde_json::Value::Null) | None => {}
                Some(other) => why = mask_in(why, &other.to_string()),
            }
        }
        why
    }
}
