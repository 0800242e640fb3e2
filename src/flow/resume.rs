//! Resuming a dialogue that was cut, in the pure engine.
//!
//! The caller keeps the state of a flow's last answered hop as a resume point (per MSISDN and
//! route) and, when the same number starts a new dialogue on the same route within the flow's
//! window, hands it to [`restore`]. Depending on the flow's `resume.ask`, the subscriber is
//! asked "1. Continue 2. Start again" or taken straight back.
//!
//! Where a dialogue continues: the screen it was on, unless that screen is marked
//! `resumable: false` (a confirmation whose data may be stale); then the most recent screen in
//! its back history that may be resumed; with none, nothing is offered and the dialogue starts
//! afresh. The screen is shown again from its first page, rendered from the saved variables.

use super::compile_http::offer_text;
use super::engine::Run;
use super::screen::Screen;
use super::state::{Ctx, FlowState, Resumed, Step, View};
use super::{Flow, engine};
use crate::hop::Reply;
use std::sync::Arc;

/// The screen to continue on and the back history that goes with it.
fn target(flow: &Flow, saved: &FlowState) -> Option<(Arc<str>, Vec<Arc<str>>)> {
    if saved.offer.is_some() {
        return None;
    }
    let mut history = saved.history.clone();
    let mut screen = saved.screen.clone();
    loop {
        let shown = matches!(
            flow.screens.get(&screen),
            Some(Screen::Menu(_) | Screen::Input(_) | Screen::End(_))
        );
        if shown && !flow.pinned.contains(&*screen) {
            return Some((screen, history));
        }
        screen = history.pop()?;
    }
}

fn mark(mut step: Step, event: Resumed) -> Step {
    match &mut step {
        Step::Reply { state, .. } | Step::Effect { state, .. } => state.resumed = Some(event),
    }
    step
}

/// Shows `screen` again with the saved variables.
fn continue_at(
    flow: &Flow,
    mut saved: FlowState,
    (screen, history): (Arc<str>, Vec<Arc<str>>),
    ctx: &Ctx,
) -> Step {
    saved.history = history;
    saved.view = View::default();
    saved.from = None;
    saved.chain = 0;
    saved.offer = None;
    saved.screen = screen.clone();
    let mut run = Run::new(flow, ctx, saved);
    if let Err(why) = run.adopt_version(false) {
        return run.fail(why);
    }
    run.enter(&screen)
}

/// The first hop of a new dialogue for which a resume point was found. `None` when the flow
/// does not resume or nothing in `saved` may be resumed: start the dialogue as usual.
pub fn restore(flow: &Flow, saved: FlowState, ctx: &Ctx) -> Option<Step> {
    let policy = flow.resume.as_ref()?;
    let target = target(flow, &saved)?;
    if !policy.ask {
        return Some(mark(continue_at(flow, saved, target, ctx), Resumed::Silent));
    }
    let text = offer_text(policy, &saved.lang, &flow.default_language);
    let state = FlowState {
        version: flow.version.clone(),
        screen: saved.screen.clone(),
        vars: Default::default(),
        lang: saved.lang.clone(),
        history: Vec::new(),
        view: View {
            pages: vec![text.clone()],
            page: 0,
            choices: Vec::new(),
        },
        from: None,
        chain: 0,
        offer: Some(Box::new(saved)),
        resumed: Some(Resumed::Offered),
    };
    Some(Step::Reply {
        state,
        reply: Reply::con(text),
    })
}

/// The subscriber's answer to the resume question.
pub(super) fn on_offer(flow: &Flow, mut state: FlowState, input: &str, ctx: &Ctx) -> Step {
    match input.trim() {
        "1" => {
            let Some(saved) = state.offer.take() else {
                return engine::start(flow, ctx);
            };
            match target(flow, &saved) {
                Some(t) => mark(continue_at(flow, *saved, t, ctx), Resumed::Continued),
                None => mark(engine::start(flow, ctx), Resumed::Restarted),
            }
        }
        "2" => mark(engine::start(flow, ctx), Resumed::Restarted),
        _ => {
            let current = state.view.pages.first().cloned().unwrap_or_default();
            let prefix = flow
                .invalid_choice
                .pick(&state.lang, &flow.default_language);
            let reply = Reply::con(format!("{prefix}\n{current}"));
            Step::Reply { state, reply }
        }
    }
}
