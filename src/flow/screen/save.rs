//! The `save` screen: record writes (merged or replacing), handed to the caller as one
//! [`Effect::Save`] that it applies in one transaction, durable before the next screen shows.
//!
//! A write ([`WriteTpl`]) is also what a `transact` screen's `put` op holds.

use super::Screen;
use crate::flow::check::Checker;
use crate::flow::engine::{Fail, Next, Run};
use crate::flow::state::{Effect, EffectOutcome, Step, Write};
use crate::flow::template::{Tpl, ValueTpl};
use serde::Deserialize;
use serde_json::{Map, Value};

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteSpec {
    pub record: String,
    pub fields: Map<String, Value>,
    #[serde(default = "yes")]
    pub merge: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SaveSpec {
    pub writes: Vec<WriteSpec>,
    pub next: String,
    #[serde(default)]
    pub failed: Option<String>,
}

/// One record write: `collection/id`, its fields, merge or replace.
#[derive(Debug)]
pub(crate) struct WriteTpl {
    pub record: Tpl,
    pub fields: Vec<(String, ValueTpl)>,
    pub merge: bool,
}

#[derive(Debug)]
pub(crate) struct Save {
    pub writes: Vec<WriteTpl>,
    pub next: String,
    pub failed: Option<String>,
}

impl Checker<'_> {
    pub(crate) fn save(&mut self, screen: &str, spec: SaveSpec) -> Screen {
        let mut writes = Vec::new();
        for (i, w) in spec.writes.iter().enumerate() {
            writes.push(WriteTpl {
                record: self.record(screen, &format!("writes[{i}].record"), &w.record),
                fields: self.values(screen, &format!("writes[{i}].fields"), &w.fields),
                merge: w.merge,
            });
        }
        Screen::Save(Save {
            writes,
            next: self.target(screen, "next", &spec.next),
            failed: spec
                .failed
                .as_ref()
                .map(|f| self.target(screen, "failed", f)),
        })
    }
}

impl Save {
    pub(crate) fn enter<'f>(&'f self, run: &mut Run<'f, '_>) -> Result<Next<'f>, Fail> {
        let mut writes = Vec::with_capacity(self.writes.len());
        for w in &self.writes {
            let (collection, id) = run.record(&w.record)?;
            let fields: Map<String, Value> = run.values(&w.fields)?.into_iter().collect();
            writes.push(Write {
                collection,
                id,
                value: Value::Object(fields),
                merge: w.merge,
            });
        }
        Ok(Next::Effect(Effect::Save { writes }))
    }

    pub(crate) fn resume(&self, run: Run<'_, '_>, outcome: EffectOutcome) -> Step {
        match (outcome, &self.failed) {
            (EffectOutcome::Saved, _) => run.enter(&self.next),
            (EffectOutcome::Failed(why), Some(failed)) => {
                tracing::warn!(flow = %run.flow.name, screen = %run.state.screen, error = %why, "save failed");
                run.enter(failed)
            }
            (outcome, _) => run.unexpected(outcome),
        }
    }
}
