//! The screen types, one module each, as mini-redis keeps one file per command: a module holds
//! its type's YAML spec, its compilation (with the checks made at load) and its step in the
//! engine. This module is the registry around them: the [`Screen`] enum, the `type:` names, and
//! the dispatch from the loader and from the engine to each type.
//!
//! Screens are either shown (`menu`, `input`, `end`: they render pages and, except for a
//! one-page `end`, wait for the subscriber) or invisible (`router`, `set`: they move on within
//! the hop; `load`, `list`, `save`, `transact` and `http`, a backend call: they hand an
//! [`Effect`](super::Effect) to the caller and go on with its outcome).

mod backend;
mod end;
mod input;
mod list;
mod load;
mod menu;
mod router;
mod save;
mod set;
mod transact;

pub use backend::{fill_secrets, is_idempotent, secret_placeholder};
pub(crate) use end::End;
pub(crate) use input::Input;
pub(crate) use menu::{Choice, Items, Menu};

use super::check::Checker;
use super::compile::typed;
use super::engine::{Fail, Next, Run};
use super::state::{EffectOutcome, Step};
use super::var::Var;
use backend::BackendCall;
use list::List;
use load::Load;
use router::Router;
use save::Save;
use serde_yaml_ng::Value as Yaml;
use set::SetVars;
use transact::Transact;

/// The screen types, named as in the `type:` field.
pub(crate) const SCREEN_TYPES: [&str; 10] = [
    "menu", "input", "router", "set", "end", "load", "save", "transact", "list", "http",
];

/// A screen as the JSON Schema of flow files describes it (`ussd-gateway schema`): the
/// `type:` names each type's own spec, the very types the loader reads.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)] // Only its schema is used.
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum ScreenSchema {
    Menu(menu::MenuSpec),
    Input(input::InputSpec),
    Router(router::RouterSpec),
    Set(set::SetSpec),
    End(end::EndSpec),
    Load(load::LoadSpec),
    Save(save::SaveSpec),
    Transact(transact::TransactSpec),
    List(list::ListSpec),
    Http(backend::BackendSpec),
}

/// One compiled screen: what the engine walks at runtime.
///
/// Built by the loader once all checks passed, so every target named in a screen exists and
/// every template in it compiled.
#[derive(Debug)]
pub(crate) enum Screen {
    Menu(Menu),
    Input(Input),
    Router(Router),
    Set(SetVars),
    End(End),
    Load(Load),
    Save(Save),
    Transact(Transact),
    List(List),
    /// `type: http`: a call to a backend.
    Backend(BackendCall),
}

impl Screen {
    /// Reads `type`, deserialises the rest as that type's spec and compiles it.
    pub(crate) fn parse(checker: &mut Checker, screen: &str, value: &Yaml) -> Option<Screen> {
        let Yaml::Mapping(map) = value else {
            checker.error(
                Some(screen),
                None,
                "a screen must be a mapping with a `type`",
            );
            return None;
        };
        let mut map = map.clone();
        let kind = match map.remove("type") {
            Some(Yaml::String(t)) if SCREEN_TYPES.contains(&t.as_str()) => t,
            Some(Yaml::String(t)) => {
                let known = SCREEN_TYPES.join(", ");
                checker.error(
                    Some(screen),
                    Some("type".into()),
                    format!("unknown screen type `{t}` (expected one of {known})"),
                );
                return None;
            }
            Some(_) => {
                checker.error(Some(screen), Some("type".into()), "must be a string");
                return None;
            }
            None => {
                checker.error(Some(screen), Some("type".into()), "missing required field");
                return None;
            }
        };
        let map = Yaml::Mapping(map);
        macro_rules! spec {
            ($t:ty, $compile:ident) => {{
                let (spec, problems) = typed::<$t>(&map);
                let clean = problems.is_empty();
                for (field, msg) in problems {
                    checker.error(Some(screen), field, msg);
                }
                // Compile even after unknown fields were dropped, to report the rest; a screen with
                // problems still counts as unparsed for the reachability check.
                spec.map(|spec| checker.$compile(screen, spec))
                    .filter(|_| clean)
            }};
        }
        match kind.as_str() {
            "menu" => spec!(menu::MenuSpec, menu),
            "input" => spec!(input::InputSpec, input),
            "router" => spec!(router::RouterSpec, router),
            "set" => spec!(set::SetSpec, set),
            "end" => spec!(end::EndSpec, end),
            "load" => spec!(load::LoadSpec, load),
            "transact" => spec!(transact::TransactSpec, transact),
            "list" => spec!(list::ListSpec, list),
            "http" => spec!(backend::BackendSpec, backend),
            _ => spec!(save::SaveSpec, save),
        }
    }

    /// Whether the screen is shown to the subscriber (menu, input, end).
    pub(crate) fn is_shown(&self) -> bool {
        matches!(self, Screen::Menu(_) | Screen::Input(_) | Screen::End(_))
    }

    /// Enters the screen, named `name`, within a hop: an invisible screen acts (names the
    /// screen to go on to, or the effect to run first); a shown screen renders its first page.
    pub(crate) fn enter<'f>(&'f self, name: &str, run: &mut Run<'f, '_>) -> Result<Next<'f>, Fail> {
        match self {
            Screen::Router(r) => r.enter(run),
            Screen::Set(s) => s.enter(run),
            Screen::Load(l) => l.enter(run),
            Screen::Save(s) => s.enter(run),
            Screen::List(l) => Ok(l.enter()),
            Screen::Transact(t) => t.enter(run),
            Screen::Backend(b) => b.enter(run),
            Screen::Menu(_) | Screen::Input(_) | Screen::End(_) => {
                run.show(name, self).map(Next::Show)
            }
        }
    }

    /// Answers what the subscriber typed while this screen is on display.
    pub(crate) fn answer(&self, run: Run<'_, '_>, input: &str) -> Step {
        match self {
            Screen::Menu(m) => m.answer(run, input),
            Screen::Input(i) => i.answer(run, input),
            Screen::End(e) if !run.state.view.pages.is_empty() => e.answer(run, input),
            _ => run.unexpected_input(),
        }
    }

    /// Goes on with the outcome of the effect this screen asked for.
    pub(crate) fn resume(&self, run: Run<'_, '_>, outcome: EffectOutcome) -> Step {
        match (self, outcome) {
            (Screen::Backend(b), EffectOutcome::Http(o)) => b.resume(run, o),
            (Screen::List(l), EffectOutcome::Loaded(list)) => l.resume(run, list),
            (Screen::Load(l), EffectOutcome::Loaded(record)) => {
                l.resume(run, record.map(Var::Json))
            }
            (Screen::Load(l), EffectOutcome::Record(record)) => {
                l.resume(run, record.map(Var::Record))
            }
            (Screen::Save(s), outcome) => s.resume(run, outcome),
            (Screen::Transact(t), outcome) => t.resume(run, outcome),
            (_, outcome) => run.unexpected(outcome),
        }
    }
}
