//! The `list` screen: reads every record of a collection into a variable (a list of the
//! documents, each with its `id`), through the caller ([`Effect::List`]), for menus built from
//! live data.

use super::Screen;
use crate::flow::check::Checker;
use crate::flow::engine::{Next, Run};
use crate::flow::state::{Effect, Step};
use serde::Deserialize;

/// `type: list`: every record of a collection, as a list of documents with their `id`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListSpec {
    pub collection: String,
    pub into: String,
    pub next: String,
}

#[derive(Debug)]
pub(crate) struct List {
    pub collection: String,
    pub into: String,
    pub next: String,
}

impl Checker<'_> {
    pub(crate) fn list(&mut self, screen: &str, spec: ListSpec) -> Screen {
        if !crate::txn::valid_collection(&spec.collection) {
            self.error(
                Some(screen),
                Some("collection".into()),
                "a collection name is letters, digits, `_` and `-`",
            );
        }
        Screen::List(List {
            collection: spec.collection,
            into: self.variable(screen, "into", &spec.into),
            next: self.target(screen, "next", &spec.next),
        })
    }
}

impl List {
    pub(crate) fn enter(&self) -> Next<'_> {
        Next::Effect(Effect::List {
            collection: self.collection.clone(),
        })
    }

    pub(crate) fn resume(&self, mut run: Run<'_, '_>, list: Option<serde_json::Value>) -> Step {
        run.set_var(&self.into, list.unwrap_or_else(|| serde_json::json!([])));
        run.enter(&self.next)
    }
}
