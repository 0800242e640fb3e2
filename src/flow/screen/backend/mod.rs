//! The `http` screen (a backend call): an invisible screen that calls the operator's or
//! institution's own backend and stores the answer in a variable; the flow then decides what
//! the subscriber sees. YAML `type: http`; "http" in the code names the HTTP front.
//!
//! This is the pure half: the YAML, the load-time checks (`compile`), the request rendered
//! from the dialogue's variables and the answer turned into a variable and a branch. The
//! request goes to the caller as an [`Effect::Http`]; the I/O half (pool, deadline, retries,
//! cache) is the flow app's `backend` module. Secrets never enter the engine (`secrets`).

mod compile;
mod secrets;

pub use compile::is_idempotent;
pub use secrets::{fill_secrets, secret_placeholder};

use crate::flow::engine::{Fail, Next, Run};
use crate::flow::state::{Effect, HttpOutcome, HttpRequest, Step};
use crate::flow::template::{Tpl, ValueTpl};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Bytes of a body that was not the JSON expected, kept in the variable (for `text`).
const KEEP_MALFORMED: usize = 512;

/// What the backend's body is expected to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Expect {
    /// A JSON document (the default); anything else takes the `failed` branch.
    #[default]
    Json,
    /// Any text, stored as it came.
    Text,
}

/// `type: http`: one request to a backend, its answer stored in a variable.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackendSpec {
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

/// The body of a backend call's request.
#[derive(Debug)]
pub(crate) enum RequestBody {
    None,
    /// A JSON object of these fields.
    Json(Vec<(String, ValueTpl)>),
    /// `application/x-www-form-urlencoded` fields.
    Form(Vec<(String, ValueTpl)>),
    /// A raw text body.
    Text(Tpl),
}

/// A compiled `http` screen (a backend call).
#[derive(Debug)]
pub(crate) struct BackendCall {
    pub method: http::Method,
    pub url: Tpl,
    pub headers: Vec<(String, Tpl)>,
    pub body: RequestBody,
    pub expect_json: bool,
    pub retries: u32,
    pub cache_ttl_secs: Option<u64>,
    pub into: String,
    pub next: String,
    pub failed: String,
    pub timeout: String,
    /// The request carries a secret: never cached, never in a log line.
    pub sensitive: bool,
}

/// Why a part of the request could not be rendered. For a `sensitive` screen only the part
/// and the kind of error: the details may quote the values the request carries.
fn render_error(b: &BackendCall, what: &str, e: &minijinja::Error) -> Fail {
    if b.sensitive {
        format!(
            "{what}: {} (details withheld: the request is sensitive)",
            e.kind()
        )
    } else {
        format!("{what}: {e:#}")
    }
}

fn form_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl BackendCall {
    /// Renders the request, for the caller to send.
    pub(crate) fn enter<'f>(&'f self, run: &mut Run<'f, '_>) -> Result<Next<'f>, Fail> {
        self.request(run).map(|r| Next::Effect(Effect::Http(r)))
    }

    fn render(
        &self,
        run: &Run<'_, '_>,
        scope: &minijinja::Value,
        what: &str,
        t: &Tpl,
    ) -> Result<String, Fail> {
        run.flow
            .templates
            .render(t, scope)
            .map_err(|e| render_error(self, what, &e))
    }

    fn values(
        &self,
        run: &Run<'_, '_>,
        scope: &minijinja::Value,
        what: &str,
        fields: &[(String, ValueTpl)],
    ) -> Result<Vec<(String, Value)>, Fail> {
        fields
            .iter()
            .map(|(k, v)| {
                let value = run
                    .flow
                    .templates
                    .value_of(v, scope)
                    .map_err(|e| render_error(self, &format!("{what}.{k}"), &e))?;
                Ok((k.clone(), value))
            })
            .collect()
    }

    fn request(&self, run: &mut Run<'_, '_>) -> Result<HttpRequest, Fail> {
        let scope = run.secrets_scope();
        let run = &*run;
        let url = self.render(run, &scope, "url", &self.url)?;
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        for (name, t) in &self.headers {
            headers.push((name.clone(), self.render(run, &scope, name, t)?));
        }
        let (body, content_type) = match &self.body {
            RequestBody::None => (None, None),
            RequestBody::Json(fields) => {
                let map: Map<String, Value> = self
                    .values(run, &scope, "json", fields)?
                    .into_iter()
                    .collect();
                (
                    Some(Value::Object(map).to_string()),
                    Some("application/json"),
                )
            }
            RequestBody::Form(fields) => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                for (k, v) in self.values(run, &scope, "form", fields)? {
                    form.append_pair(&k, &form_value(&v));
                }
                (
                    Some(form.finish()),
                    Some("application/x-www-form-urlencoded"),
                )
            }
            RequestBody::Text(t) => (
                Some(self.render(run, &scope, "body", t)?),
                Some("text/plain; charset=utf-8"),
            ),
        };
        let has = |headers: &[(String, String)], name: &str| {
            headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        if let Some(ct) = content_type
            && !has(&headers, "content-type")
        {
            headers.push(("content-type".into(), ct.into()));
        }
        if self.expect_json && !has(&headers, "accept") {
            headers.push(("accept".into(), "application/json".into()));
        }
        Ok(HttpRequest {
            method: self.method.clone(),
            url,
            headers,
            body,
            retries: self.retries,
            cache_ttl_secs: self.cache_ttl_secs,
            expect_json: self.expect_json,
        })
    }

    /// Stores what came of the request in the screen's variable and takes its branch.
    pub(crate) fn resume(&self, mut run: Run<'_, '_>, outcome: HttpOutcome) -> Step {
        let (var, next) = match outcome {
            HttpOutcome::Response {
                status,
                headers,
                body,
                cached,
            } => {
                let success = (200..300).contains(&status);
                let headers: Map<String, Value> = headers
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                let mut var = json!({ "status": status, "headers": headers, "cached": cached });
                let mut malformed = false;
                if self.expect_json {
                    match serde_json::from_str::<Value>(&body) {
                        Ok(doc) => var["json"] = doc,
                        Err(_) if success && body.trim().is_empty() => var["json"] = Value::Null,
                        Err(_) => {
                            malformed = true;
                            let head: String = body.chars().take(KEEP_MALFORMED).collect();
                            var["text"] = Value::String(head);
                        }
                    }
                } else {
                    var["text"] = Value::String(body);
                }
                let ok = success && !malformed;
                var["ok"] = Value::Bool(ok);
                if !ok {
                    let error = if success { "malformed" } else { "status" };
                    var["error"] = Value::String(error.into());
                    tracing::warn!(flow = %run.flow.name, screen = %run.state.screen, status, error, "backend call failed");
                }
                (var, if ok { &self.next } else { &self.failed })
            }
            HttpOutcome::Timeout => {
                tracing::warn!(flow = %run.flow.name, screen = %run.state.screen, "backend call ran out of time");
                let var = json!({ "ok": false, "status": 0, "error": "timeout" });
                (var, &self.timeout)
            }
            HttpOutcome::Failed(why) => {
                tracing::warn!(flow = %run.flow.name, screen = %run.state.screen, error = %why, "backend call failed");
                let var = json!({ "ok": false, "status": 0, "error": "connection" });
                (var, &self.failed)
            }
        };
        run.set_var(&self.into, var);
        run.enter(next)
    }
}
