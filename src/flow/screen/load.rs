//! The `load` screen: reads one record (`collection/id`) into a variable, through the caller
//! ([`Effect::Load`]), and branches on whether it was found.

use super::Screen;
use crate::flow::check::Checker;
use crate::flow::engine::{Fail, Next, Run};
use crate::flow::state::{Effect, Step};
use crate::flow::template::Tpl;
use crate::flow::var::Var;
use serde::Deserialize;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoadSpec {
    pub record: String,
    pub into: String,
    pub found: String,
    pub missing: String,
}

#[derive(Debug)]
pub(crate) struct Load {
    pub record: Tpl,
    pub into: String,
    pub found: String,
    pub missing: String,
}

impl Checker<'_> {
    pub(crate) fn load(&mut self, screen: &str, spec: LoadSpec) -> Screen {
        Screen::Load(Load {
            record: self.record(screen, "record", &spec.record),
            into: self.variable(screen, "into", &spec.into),
            found: self.target(screen, "found", &spec.found),
            missing: self.target(screen, "missing", &spec.missing),
        })
    }
}

impl Load {
    pub(crate) fn enter<'f>(&'f self, run: &mut Run<'f, '_>) -> Result<Next<'f>, Fail> {
        let (collection, id) = run.record(&self.record)?;
        Ok(Next::Effect(Effect::Load { collection, id }))
    }

    /// The record read, or `None`: on missing, `into` is removed.
    pub(crate) fn resume(&self, mut run: Run<'_, '_>, record: Option<Var>) -> Step {
        match record {
            Some(record) => {
                run.set_var(&self.into, record);
                run.enter(&self.found)
            }
            None => {
                run.vars_mut().remove(&self.into);
                run.enter(&self.missing)
            }
        }
    }
}
