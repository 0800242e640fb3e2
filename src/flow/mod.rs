//! Declarative menu flows: YAML files of screens, checked and compiled at load, run by a pure
//! engine.
//!
//! A flow file (format: `docs/flows.md`) is parsed, validated and compiled once by
//! [`Flow::from_yaml`] / [`Flow::load`], which report every problem found as a [`Diagnostic`]
//! rather than the first one, so `ussd-gateway check` can list them all. A compiled [`Flow`] is
//! immutable and shared behind an `Arc`; a reload builds a new one while live dialogues finish
//! on the one they started with ([`FlowState::version`]).
//!
//! The engine ([`start`], [`input`], [`resume`]) is a pure function of flow, state, input and
//! [`Ctx`]: it does no I/O and reads no clock. Record reads and writes and backend calls come
//! back to the caller as [`Effect`]s, which it runs and answers with [`resume`], so every flow
//! can be tested without sockets or a store.
//!
//! The map: `screen/` holds one module per screen type (its YAML spec, compilation and step);
//! around them, `compile` reads a file with the shared checks of `check`, `engine` runs the
//! screens (with `render` for pages, `navigation` for keys, `scope` and `template` for
//! templates), `state` is what goes back and forth with the caller, and `resume` and
//! `sensitive` are the flow-wide features of continuing cut dialogues and masking PINs.

mod check;
mod compile;
mod engine;
mod graph;
mod interpolate;
mod localized;
mod navigation;
mod render;
mod resume;
mod schema;
mod scope;
mod screen;
mod sensitive;
mod state;
mod template;
mod var;

/// The `add_days` template filter, shared with seed files.
pub(crate) use template::add_days as add_days_filter;
/// The `epoch_ms` template filter, shared with seed files.
pub(crate) use template::epoch_ms as epoch_ms_filter;

pub use engine::{input, resume, start};
pub use graph::{Edge, Graph, Node};
pub use resume::restore;
pub use schema::flow_schema;
pub use screen::{fill_secrets, is_idempotent, secret_placeholder};
pub use sensitive::{resume_point, sensitive_input};
pub use state::{Ctx, Effect, EffectOutcome, FlowState, HttpOutcome, HttpRequest, Step, Write};
pub use var::Var;

use localized::Localized;
use navigation::Navigation;
use resume::ResumePolicy;
use screen::Screen;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use template::Templates;

/// A compiled flow: immutable, cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Flow {
    name: String,
    version: Arc<str>,
    start: Arc<str>,
    home: String,
    default_language: Arc<str>,
    language_var: Option<String>,
    /// The flow's `vars`, as one template map.
    consts: minijinja::Value,
    nav: Navigation,
    invalid_choice: Localized<String>,
    apology: Localized<String>,
    screens: HashMap<Arc<str>, Screen>,
    templates: Templates,
    warnings: Vec<Diagnostic>,
    /// `resume:`: `None` when the flow did not opt in.
    resume: Option<ResumePolicy>,
    /// Screens marked `resumable: false`.
    pinned: HashSet<String>,
    /// The environment variables the flow's `http` screens (backend calls) may read.
    secrets: Vec<String>,
    /// The variables that `sensitive` input screens store into.
    sensitive_vars: Vec<String>,
    /// The screens and transitions, for people (`ussd-gateway graph`, the admin flow view).
    graph: Graph,
}

impl Flow {
    /// Parses, validates and compiles a flow. `file` is the path shown in diagnostics. On
    /// failure, returns every problem found.
    pub fn from_yaml(name: &str, file: &str, src: &str) -> Result<Flow, Vec<Diagnostic>> {
        compile::compile(name, file, src)
    }

    /// Reads and compiles the flow file at `path`; the flow's name is the file stem.
    pub fn load(path: &std::path::Path) -> Result<Flow, Vec<Diagnostic>> {
        let file = path.display().to_string();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match std::fs::read_to_string(path) {
            Ok(src) => Flow::from_yaml(&name, &file, &src),
            Err(e) => Err(vec![Diagnostic::error(
                &file,
                None,
                None,
                format!("cannot read: {e}"),
            )]),
        }
    }

    /// The flow's name (its file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first 16 hex digits of the SHA-256 of the source text: the same file gives the same
    /// version across restarts.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// [`Flow::version`], shared: every dialogue on this flow keeps a reference, not a copy.
    pub fn version_arc(&self) -> Arc<str> {
        self.version.clone()
    }

    /// Whether the flow has a screen of this name.
    pub fn has_screen(&self, screen: &str) -> bool {
        self.screens.contains_key(screen)
    }

    /// The resume window when the flow opted in to resuming cut dialogues, else `None`.
    pub fn resume_window(&self) -> Option<std::time::Duration> {
        self.resume
            .as_ref()
            .map(|r| std::time::Duration::from_secs(r.window_secs))
    }

    /// Whether any input screen of the flow is `sensitive`.
    pub fn has_sensitive_inputs(&self) -> bool {
        !self.sensitive_vars.is_empty()
    }

    /// The environment variables the flow declared in `secrets:`.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// The flow's screens and transitions (`ussd-gateway graph`).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Load warnings: static texts with characters outside GSM-7 (those screens go out as UCS-2
    /// and hold at most 80 characters).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }
}

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Severity {
    /// The flow cannot be loaded.
    Error,
    /// The flow loads, but something deserves a look.
    Warning,
}

/// One problem found in a flow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file as given to the loader.
    pub file: String,
    /// The screen concerned, if any.
    pub screen: Option<String>,
    /// The field path within the screen (or the top level), e.g. `options[2].next`.
    pub field: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn error(
        file: &str,
        screen: Option<&str>,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            screen: screen.map(str::to_string),
            field,
            message: message.into(),
        }
    }

    /// The dotted path of the problem, e.g. `screens.home.options[2].next`.
    pub fn path(&self) -> Option<String> {
        match (&self.screen, &self.field) {
            (Some(s), Some(f)) => Some(format!("screens.{s}.{f}")),
            (Some(s), None) => Some(format!("screens.{s}")),
            (None, Some(f)) => Some(f.clone()),
            (None, None) => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

impl fmt::Display for Diagnostic {
    /// `error: student.yaml: screens.home.options[2].next: unknown target screen `homee``
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            Some(path) => write!(
                f,
                "{}: {}: {}: {}",
                self.severity, self.file, path, self.message
            ),
            None => write!(f, "{}: {}: {}", self.severity, self.file, self.message),
        }
    }
}
