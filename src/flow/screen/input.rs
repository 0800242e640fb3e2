//! The `input` screen: a prompt whose answer, once every validator passes, is stored in a
//! variable. Optional fixed options are checked first; navigation keys turn the pages of a long
//! prompt only, so that an amount of `0` reaches the validators, unless the screen says
//! `navigation: true` (where `0` and `00` cannot be valid answers): then back and home work as
//! on menus. A validator's error goes above the prompt, or with `replace: true` in its place; a
//! validator that cannot be evaluated on the input (a filter refuses it) counts as failed.
//!
//! A `sensitive` input (a PIN) is masked in everything kept after the hop (see
//! [`crate::flow::sensitive_input`]); here, a failure that quotes it is logged masked.

use super::Screen;
use super::menu::{Choice, OptionSpec};
use crate::flow::check::Checker;
use crate::flow::engine::{Fail, Run};
use crate::flow::localized::{Localized, Text};
use crate::flow::sensitive::mask_in;
use crate::flow::state::{Pick, Step};
use crate::flow::template::{Expr, Tpl};
use minijinja::Value;
use regex::Regex;
use serde::Deserialize;

/// Inclusive bounds; either side may be left out.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Bounds<T> {
    #[serde(default)]
    pub min: Option<T>,
    #[serde(default)]
    pub max: Option<T>,
}

/// One validator: exactly one of `regex`, `range`, `length`, `expr`, plus its `error` text.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidatorSpec {
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub range: Option<Bounds<f64>>,
    #[serde(default)]
    pub length: Option<Bounds<usize>>,
    #[serde(default)]
    pub expr: Option<String>,
    pub error: Text,
    /// The error is shown in place of the prompt, not above it.
    #[serde(default)]
    pub replace: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputSpec {
    pub text: Text,
    pub into: String,
    pub next: String,
    #[serde(default)]
    pub validators: Vec<ValidatorSpec>,
    #[serde(default)]
    pub options: Vec<OptionSpec>,
    /// What is typed here is a secret (a PIN): masked in everything kept after the hop.
    #[serde(default)]
    pub sensitive: bool,
    /// The back and home keys work here as on menus.
    #[serde(default)]
    pub navigation: bool,
}

/// What a validator checks.
#[derive(Debug)]
pub(crate) enum Check {
    /// Anchored to match the whole input.
    Regex(Regex),
    Range(Option<f64>, Option<f64>),
    Length(Option<usize>, Option<usize>),
    Expr(Expr),
}

#[derive(Debug)]
pub(crate) struct Validator {
    pub check: Check,
    pub error: Localized<Tpl>,
    /// The error replaces the prompt.
    pub replace: bool,
}

#[derive(Debug)]
pub(crate) struct Input {
    pub text: Localized<Tpl>,
    pub into: String,
    pub next: String,
    pub validators: Vec<Validator>,
    pub options: Vec<Choice>,
    /// What is typed here is masked in everything kept after the hop.
    pub sensitive: bool,
    /// The back and home keys work here.
    pub navigation: bool,
}

impl Checker<'_> {
    fn validator(&mut self, screen: &str, field: &str, v: &ValidatorSpec) -> Validator {
        let kinds = [
            v.regex.is_some(),
            v.range.is_some(),
            v.length.is_some(),
            v.expr.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            let msg = "needs exactly one of `regex`, `range`, `length`, `expr`";
            self.error(Some(screen), Some(field.into()), msg);
        }
        let check = if let Some(re) = &v.regex {
            match Regex::new(&format!("^(?:{re})$")) {
                Ok(r) => Check::Regex(r),
                Err(e) => {
                    let why = e.to_string();
                    let why = why
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                        .to_string();
                    self.error(
                        Some(screen),
                        Some(format!("{field}.regex")),
                        format!("invalid regex: {why}"),
                    );
                    Check::Length(None, None)
                }
            }
        } else if let Some(r) = &v.range {
            if let (Some(lo), Some(hi)) = (r.min, r.max)
                && lo > hi
            {
                self.error(
                    Some(screen),
                    Some(format!("{field}.range")),
                    "`min` is greater than `max`",
                );
            }
            Check::Range(r.min, r.max)
        } else if let Some(l) = &v.length {
            if let (Some(lo), Some(hi)) = (l.min, l.max)
                && lo > hi
            {
                self.error(
                    Some(screen),
                    Some(format!("{field}.length")),
                    "`min` is greater than `max`",
                );
            }
            Check::Length(l.min, l.max)
        } else if let Some(e) = &v.expr {
            Check::Expr(self.expr(screen, &format!("{field}.expr"), e))
        } else {
            Check::Length(None, None)
        };
        Validator {
            check,
            error: self.text(Some(screen), &format!("{field}.error"), &v.error),
            replace: v.replace,
        }
    }

    pub(crate) fn input(&mut self, screen: &str, spec: InputSpec) -> Screen {
        let text = self.text(Some(screen), "text", &spec.text);
        let into = self.variable(screen, "into", &spec.into);
        let next = self.target(screen, "next", &spec.next);
        let validators = spec
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| self.validator(screen, &format!("validators[{i}]"), v))
            .collect();
        Screen::Input(Input {
            text,
            into,
            next,
            validators,
            options: self.options(screen, &spec.options),
            sensitive: spec.sensitive,
            navigation: spec.navigation,
        })
    }
}

impl Input {
    /// What the subscriber typed: an option, a page key of a long prompt (or, with
    /// `navigation`, the back and home keys), or the answer, which goes through the validators
    /// in order.
    pub(crate) fn answer(&self, mut run: Run<'_, '_>, input: &str) -> Step {
        if let Some((_, Pick::Option(n))) = run.state.view.choices.iter().find(|(k, _)| k == input)
            && let Some(o) = self.options.get(*n)
        {
            return match run.set_values(&o.set) {
                Ok(()) => run.go(&o.next),
                Err(why) => run.fail(why),
            };
        }
        if let Some(action) = run.nav_action(input, !self.navigation) {
            return run.navigate(action);
        }
        for v in &self.validators {
            let passed = match v.passes(&mut run, input) {
                Ok(passed) => passed,
                Err(why) => {
                    // An `expr` validator's failure may quote `input`.
                    let why = run.redact(if self.sensitive {
                        mask_in(why, input)
                    } else {
                        why
                    });
                    tracing::warn!(flow = %run.flow.name, screen = %run.state.screen, error = %why, "a validator could not be evaluated on the input; counted as failed");
                    false
                }
            };
            if !passed {
                return if v.replace {
                    run.invalid_instead(&v.error)
                } else {
                    run.invalid(Some(&v.error))
                };
            }
        }
        run.set_var(&self.into, serde_json::Value::String(input.to_string()));
        run.go(&self.next)
    }
}

impl Validator {
    fn passes(&self, run: &mut Run<'_, '_>, input: &str) -> Result<bool, Fail> {
        let within = |n: f64, lo: Option<f64>, hi: Option<f64>| {
            lo.is_none_or(|lo| n >= lo) && hi.is_none_or(|hi| n <= hi)
        };
        Ok(match &self.check {
            Check::Regex(re) => re.is_match(input),
            Check::Range(lo, hi) => input
                .trim()
                .parse::<f64>()
                .is_ok_and(|n| n.is_finite() && within(n, *lo, *hi)),
            Check::Length(lo, hi) => {
                let n = input.chars().count();
                lo.is_none_or(|lo| n >= lo) && hi.is_none_or(|hi| n <= hi)
            }
            Check::Expr(e) => run.eval(e, Some(("input", Value::from(input))))?.is_true(),
        })
    }
}
