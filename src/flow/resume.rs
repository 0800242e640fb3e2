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
//!
//! The flow-level `resume:` policy is here too, from its YAML to its load-time checks.

use super::check::Checker;
use super::engine::Run;
use super::localized::{Localized, Text, entries, fixed};
use super::state::{Ctx, FlowState, Resumed, Step, View};
use super::{Flow, engine};
use crate::hop::Reply;
use crate::text::{Limit, fits};
use serde::Deserialize;
use std::sync::Arc;

const DEFAULT_PROMPT: &str = "Your last session was interrupted.";
const DEFAULT_CONTINUE: &str = "Continue";
const DEFAULT_RESTART: &str = "Start again";

fn default_window() -> u64 {
    120
}

fn yes() -> bool {
    true
}

/// `resume:` at the top of a flow file: offer to continue a dialogue that was cut.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResumeSpec {
    /// How long after the last answered hop a redial may continue. Default 120.
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// Offer "1. Continue 2. Start again" (true, the default) or continue silently.
    #[serde(default = "yes")]
    pub ask: bool,
    /// The question above the two choices.
    #[serde(default)]
    pub prompt: Option<Text>,
    #[serde(default)]
    pub continue_label: Option<Text>,
    #[serde(default)]
    pub restart_label: Option<Text>,
}

/// A flow's `resume:` policy, compiled.
#[derive(Debug)]
pub(crate) struct ResumePolicy {
    pub window_secs: u64,
    pub ask: bool,
    pub prompt: Localized<String>,
    pub continue_label: Localized<String>,
    pub restart_label: Localized<String>,
}

impl Checker<'_> {
    /// Compiles `resume:`; the question and its two choices must fit one screen.
    pub(crate) fn resume_policy(&mut self, spec: &ResumeSpec, lang: &str) -> ResumePolicy {
        if spec.window_secs == 0 {
            self.error(
                None,
                Some("resume.window_secs".into()),
                "must be at least 1",
            );
        }
        let policy = ResumePolicy {
            window_secs: spec.window_secs,
            ask: spec.ask,
            prompt: fixed(spec.prompt.as_ref(), DEFAULT_PROMPT),
            continue_label: fixed(spec.continue_label.as_ref(), DEFAULT_CONTINUE),
            restart_label: fixed(spec.restart_label.as_ref(), DEFAULT_RESTART),
        };
        for (field, t) in [
            ("resume.prompt", spec.prompt.as_ref()),
            ("resume.continue_label", spec.continue_label.as_ref()),
            ("resume.restart_label", spec.restart_label.as_ref()),
        ] {
            for (l, src) in t.map(entries).unwrap_or_default() {
                let path = if l.is_empty() {
                    field.to_string()
                } else {
                    format!("{field}.{l}")
                };
                self.check_static(None, &path, src);
            }
        }
        let mut langs: Vec<String> = policy.prompt.0.iter().map(|(l, _)| l.clone()).collect();
        langs.extend(policy.continue_label.0.iter().map(|(l, _)| l.clone()));
        langs.extend(policy.restart_label.0.iter().map(|(l, _)| l.clone()));
        langs.dedup();
        for l in langs {
            let screen = offer_text(&policy, &l, lang);
            if !fits(&screen, Limit::default()) {
                self.error(
                    None,
                    Some("resume.prompt".into()),
                    "the question and its two choices do not fit one screen",
                );
                break;
            }
        }
        policy
    }
}

/// The resume question as shown in `lang`.
fn offer_text(p: &ResumePolicy, lang: &str, default: &str) -> String {
    format!(
        "{}\n1. {}\n2. {}",
        p.prompt.pick(lang, default),
        p.continue_label.pick(lang, default),
        p.restart_label.pick(lang, default)
    )
}

/// The screen to continue on and the back history that goes with it.
fn target(flow: &Flow, saved: &FlowState) -> Option<(Arc<str>, Vec<Arc<str>>)> {
    if saved.offer.is_some() {
        return None;
    }
    let mut history = saved.history.clone();
    let mut screen = saved.screen.clone();
    loop {
        let shown = flow.screens.get(&screen).is_some_and(|s| s.is_shown());
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
    saved.view = Default::default();
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
        view: Arc::new(View {
            pages: vec![text.clone()],
            page: 0,
            choices: Vec::new(),
        }),
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
