//! The pure engine: one call per hop (or per effect outcome), state in, state and step out.
//!
//! [`start`], [`input`] and [`resume`] build a [`Run`], which walks invisible screens (router,
//! set) until it reaches a screen to show or an effect (load, save, ...) to hand to the caller.
//! What each screen type does is in its module under [`super::screen`]; this is the loop
//! around them and what they share: the dialogue's variables, the template scope, history, the
//! reply. Any runtime failure (a template error, a state that does not match the flow) ends the
//! dialogue with the flow's apology and a `tracing::error!`; nothing here panics on bad input or
//! data.

use super::Flow;
use super::localized::Localized;
use super::screen::Screen;
use super::state::{Ctx, Effect, EffectOutcome, FlowState, Step};
use super::template::{Expr, Tpl, ValueTpl};
use crate::hop::Reply;
use minijinja::Value;

/// Screens entered in one hop before the engine gives up on a loop of invisible screens.
const MAX_CHAIN: u32 = 64;
/// Screens remembered for the back key.
const MAX_HISTORY: usize = 32;

/// A runtime failure, for the log.
pub(crate) type Fail = String;

/// Starts a dialogue: the first hop.
pub fn start(flow: &Flow, ctx: &Ctx) -> Step {
    let state = FlowState {
        version: flow.version.clone(),
        screen: flow.start.clone(),
        vars: Default::default(),
        lang: flow.default_language.clone(),
        history: Vec::new(),
        view: Default::default(),
        from: None,
        chain: 0,
        offer: None,
        resumed: None,
    };
    Run::new(flow, ctx, state).enter(&flow.start)
}

/// Handles what the subscriber typed on the screen `state` shows.
pub fn input(flow: &Flow, mut state: FlowState, input: &str, ctx: &Ctx) -> Step {
    if state.offer.is_some() {
        return super::resume::on_offer(flow, state, input, ctx);
    }
    state.chain = 0;
    state.from = None;
    let mut run = Run::new(flow, ctx, state);
    if let Err(why) = run.adopt_version(true) {
        return run.fail(why);
    }
    match flow.screens.get(&run.state.screen) {
        Some(screen) => screen.answer(run, input),
        None => run.unexpected_input(),
    }
}

/// Continues after the caller ran the [`Effect`] of the previous step.
pub fn resume(flow: &Flow, state: FlowState, outcome: EffectOutcome, ctx: &Ctx) -> Step {
    let mut run = Run::new(flow, ctx, state);
    if let Err(why) = run.adopt_version(false) {
        return run.fail(why);
    }
    match flow.screens.get(&run.state.screen) {
        Some(screen) => screen.resume(run, outcome),
        None => run.unexpected(outcome),
    }
}

/// `scope` with `name` bound to `v` on top.
pub(super) fn bind(scope: Value, name: &str, v: Value) -> Value {
    Value::from_object(super::scope::Bound {
        name: name.into(),
        value: v,
        under: scope,
    })
}

/// What entering a screen gives the engine: the screen to go on to (within the hop), a reply
/// to show, or an effect for the caller to run.
pub(super) enum Next<'f> {
    Go(&'f str),
    Show(Reply),
    Effect(Effect),
}

/// One engine call in progress.
pub(crate) struct Run<'f, 'c> {
    pub flow: &'f Flow,
    pub ctx: &'c Ctx<'c>,
    pub state: FlowState,
    /// The template context, built on first use and dropped when a variable changes.
    scope: Option<Value>,
}

impl<'f, 'c> Run<'f, 'c> {
    pub(super) fn new(flow: &'f Flow, ctx: &'c Ctx<'c>, state: FlowState) -> Self {
        Run {
            flow,
            ctx,
            state,
            scope: None,
        }
    }

    /// Moves a dialogue started on another version of the flow (a restart after the file
    /// changed) onto this one, as long as its current screen still exists. A shown screen is
    /// rendered again so that its choices are this version's; the subscriber's answer then
    /// selects by position.
    pub(super) fn adopt_version(&mut self, rerender: bool) -> Result<(), Fail> {
        if self.state.version == self.flow.version {
            return Ok(());
        }
        let flow = self.flow;
        let Some(screen) = flow.screens.get(&self.state.screen) else {
            return Err(format!(
                "flow version {} has no screen `{}`",
                flow.version, self.state.screen
            ));
        };
        tracing::warn!(flow = %flow.name, from = %self.state.version, to = %flow.version, "dialogue moves to a new flow version");
        self.state.version = flow.version.clone();
        if rerender && !self.state.view.pages.is_empty() {
            let page = self.state.view.page;
            let mut view = self.view_of(screen, super::render::Above::Own)?;
            view.page = page.min(view.pages.len().saturating_sub(1));
            self.state.view = std::sync::Arc::new(view);
        }
        Ok(())
    }

    /// The dialogue's language: the language variable when set, else the flow default.
    pub(crate) fn lang(&self) -> &str {
        let chosen = self
            .flow
            .language_var
            .as_ref()
            .and_then(|v| self.state.vars.get(v))
            .map(|v| &**v);
        chosen
            .and_then(|v| v.as_str())
            .unwrap_or(&self.flow.default_language)
    }

    pub(crate) fn pick<'t, T>(&self, t: &'t Localized<T>) -> &'t T {
        t.pick(self.lang(), &self.flow.default_language)
    }

    pub(crate) fn set_var(&mut self, name: &str, value: impl Into<super::Var>) {
        self.vars_mut().insert(name.to_string(), value.into());
    }

    /// The dialogue's vars, to change. The scope that shares them goes first, so that they
    /// are not copied when nothing else holds them.
    pub(super) fn vars_mut(&mut self) -> &mut std::collections::BTreeMap<String, super::Var> {
        self.scope = None;
        std::sync::Arc::make_mut(&mut self.state.vars)
    }

    /// The template context: the per-hop built-ins, the dialogue's vars, then the flow's vars
    /// (read lazily: see [`super::scope`]).
    pub(crate) fn scope(&mut self) -> Value {
        if let Some(scope) = &self.scope {
            return scope.clone();
        }
        let ctx = self.ctx;
        let scope = Value::from_object(super::scope::Scope {
            builtins: [
                ("phone", Value::from(ctx.phone)),
                ("service_code", Value::from(ctx.service_code)),
                ("network", ctx.network.map_or(Value::from(()), Value::from)),
                ("session_id", Value::from(ctx.session_id)),
                ("language", Value::from(self.lang())),
            ],
            now: ctx.now,
            vars: self.state.vars.clone(),
            consts: self.flow.consts.clone(),
        });
        self.scope = Some(scope.clone());
        scope
    }

    pub(crate) fn render(&mut self, t: &Localized<Tpl>) -> Result<String, Fail> {
        let scope = self.scope();
        let t = self.pick(t);
        self.flow
            .templates
            .render(t, &scope)
            .map_err(|e| format!("template: {e:#}"))
    }

    /// Renders `t` with one extra variable (`item`) bound.
    pub(crate) fn render_with(
        &mut self,
        t: &Localized<Tpl>,
        name: &str,
        v: Value,
    ) -> Result<String, Fail> {
        let scope = bind(self.scope(), name, v);
        let t = self.pick(t);
        self.flow
            .templates
            .render(t, &scope)
            .map_err(|e| format!("template: {e:#}"))
    }

    /// Evaluates `e`, with one extra variable (`item`, `input`) bound if given.
    pub(crate) fn eval(&mut self, e: &Expr, extra: Option<(&str, Value)>) -> Result<Value, Fail> {
        let mut scope = self.scope();
        if let Some((name, v)) = extra {
            scope = bind(scope, name, v);
        }
        self.flow
            .templates
            .eval(e, &scope)
            .map_err(|e| format!("expression: {e:#}"))
    }

    pub(super) fn values(
        &mut self,
        values: &[(String, ValueTpl)],
    ) -> Result<Vec<(String, serde_json::Value)>, Fail> {
        let scope = self.scope();
        let templates = &self.flow.templates;
        values
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    templates
                        .value_of(v, &scope)
                        .map_err(|e| format!("value `{k}`: {e:#}"))?,
                ))
            })
            .collect()
    }

    pub(super) fn set_values(&mut self, values: &[(String, ValueTpl)]) -> Result<(), Fail> {
        for (k, v) in self.values(values)? {
            self.set_var(&k, v);
        }
        Ok(())
    }

    /// Renders `collection/id`.
    pub(super) fn record(&mut self, t: &Tpl) -> Result<(String, String), Fail> {
        let scope = self.scope();
        let path = self
            .flow
            .templates
            .render(t, &scope)
            .map_err(|e| format!("record: {e:#}"))?;
        match path.split_once('/') {
            Some((c, id)) if !c.is_empty() && !id.is_empty() => Ok((c.to_string(), id.to_string())),
            _ => Err(format!("record `{path}` is not `collection/id`")),
        }
    }

    /// Enters `name` and walks on through invisible screens until something is shown or an
    /// effect is needed.
    pub(crate) fn enter(mut self, first: &str) -> Step {
        let flow = self.flow;
        let Some((mut name, mut screen)) = flow.screens.get_key_value(first) else {
            return self.fail(format!("no screen `{first}`"));
        };
        loop {
            self.state.chain += 1;
            if self.state.chain > MAX_CHAIN {
                return self.fail(format!(
                    "more than {MAX_CHAIN} screens in one hop (a loop?)"
                ));
            }
            // The flow's own name of the screen, shared: no copy per dialogue.
            self.state.screen = name.clone();
            let next = screen.enter(name, &mut self);
            match next {
                Ok(Next::Go(n)) => match flow.screens.get_key_value(n) {
                    Some(found) => (name, screen) = found,
                    None => return self.fail(format!("no screen `{n}`")),
                },
                Ok(Next::Show(reply)) => return self.reply(reply),
                Ok(Next::Effect(effect)) => {
                    return Step::Effect {
                        state: self.state,
                        effect,
                    };
                }
                Err(why) => return self.fail(why),
            }
        }
    }

    /// Shows an interactive screen (menu, input, end) from its first page.
    pub(super) fn show(&mut self, name: &str, screen: &Screen) -> Result<Reply, Fail> {
        if let Some(from) = self.state.from.take()
            && &*from != name
        {
            self.state.history.push(from);
            if self.state.history.len() > MAX_HISTORY {
                self.state.history.remove(0);
            }
        }
        self.state.view = std::sync::Arc::new(self.view_of(screen, super::render::Above::Own)?);
        Ok(self.page_reply(0))
    }

    /// Finishes the hop with `reply`.
    pub(super) fn reply(mut self, reply: Reply) -> Step {
        self.state.from = None;
        self.state.chain = 0;
        let lang = self.lang();
        if lang != &*self.state.lang {
            // Shared with the flow when it is the default, as it mostly is.
            let lang = if lang == &*self.flow.default_language {
                self.flow.default_language.clone()
            } else {
                lang.into()
            };
            self.state.lang = lang;
        }
        Step::Reply {
            state: self.state,
            reply,
        }
    }

    /// Ends the dialogue for an effect outcome its screen did not ask for.
    pub(super) fn unexpected(self, outcome: EffectOutcome) -> Step {
        match outcome {
            EffectOutcome::Failed(why) => self.fail(format!("effect failed: {why}")),
            outcome => self.fail(format!("unexpected effect outcome {outcome:?}")),
        }
    }

    /// Ends the dialogue for an input that no shown screen waits for.
    pub(super) fn unexpected_input(self) -> Step {
        self.fail("input arrived while no screen was waiting for it".into())
    }

    /// Ends the dialogue with the apology, logging why.
    pub(crate) fn fail(self, why: Fail) -> Step {
        let why = self.redact(why);
        tracing::error!(flow = %self.flow.name, screen = %self.state.screen, error = %why, "flow failed; ending with the apology");
        let text = self.pick(&self.flow.apology).clone();
        self.reply(Reply::end(text))
    }
}
