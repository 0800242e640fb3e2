//! The YAML model of the two features that reach past one dialogue: the `http` screen (a call
//! to the operator's or institution's own backend) and the flow-level `resume` policy.
//!
//! Like [`super::model`], these are parse results only; [`super::compile_http`] checks them.

use super::model::Text;
use serde::Deserialize;
use serde_json::{Map, Value};

/// What the backend's body is expected to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Expect {
    /// A JSON document (the default); anything else takes the `failed` branch.
    #[default]
    Json,
    /// Any text, stored as it came.
    Text,
}

/// `type: http`: one request to a backend, its answer stored in a variable.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpSpec {
    /// GET (default), POST, PUT, PATCH, DELETE or HEAD.
    #[serde(default)]
    pub method: Option<String>,
    /// A template; `secrets.NAME` is available in it.
    pub url: String,
    /// Header templates.
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// A JSON body: values as in `set` (one `{{ expr }}` keeps its type).
    #[serde(default)]
    pub json: Option<Map<String, Value>>,
    /// A form body (`application/x-www-form-urlencoded`).
    #[serde(default)]
    pub form: Option<Map<String, Value>>,
    /// A raw text body (a template).
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub expect: Expect,
    /// Extra attempts after a connection failure or a 502/503/504; idempotent methods only.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Keep successful answers this long, keyed by the rendered request; GET only.
    #[serde(default)]
    pub cache_ttl_secs: Option<u64>,
    /// The variable that receives `{ok, status, headers, json | text, error}`.
    pub into: String,
    /// Where a 2xx answer (with a JSON body when JSON is expected) goes.
    pub next: String,
    /// Where any other answer, or no answer, goes.
    pub failed: String,
    /// Where the hop's deadline being spent goes; default `failed`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// The request carries a secret (a PIN typed on a `sensitive` input screen): it is never
    /// cached, and a failure to render it is logged without its values.
    #[serde(default)]
    pub sensitive: bool,
}

fn default_window() -> u64 {
    120
}

fn yes() -> bool {
    true
}

/// `resume:` at the top of a flow file: offer to continue a dialogue that was cut.
#[derive(Debug, Deserialize)]
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
