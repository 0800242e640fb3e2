//! The `set` screen: sets variables (a typed value from one `{{ expr }}`, a rendered string, or
//! a YAML literal as it is) and moves on within the hop.

use super::Screen;
use crate::flow::check::Checker;
use crate::flow::engine::{Fail, Next, Run};
use crate::flow::template::ValueTpl;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetSpec {
    pub values: Map<String, Value>,
    pub next: String,
}

#[derive(Debug)]
pub(crate) struct SetVars {
    pub values: Vec<(String, ValueTpl)>,
    pub next: String,
}

impl Checker<'_> {
    pub(crate) fn set(&mut self, screen: &str, spec: SetSpec) -> Screen {
        Screen::Set(SetVars {
            values: self.values(screen, "values", &spec.values),
            next: self.target(screen, "next", &spec.next),
        })
    }
}

impl SetVars {
    pub(crate) fn enter<'f>(&'f self, run: &mut Run<'f, '_>) -> Result<Next<'f>, Fail> {
        run.set_values(&self.values)?;
        Ok(Next::Go(&self.next))
    }
}
