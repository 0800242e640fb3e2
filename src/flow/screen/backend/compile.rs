//! Compiling a backend call (`type: http`), with the checks that matter most for one made at
//! load time: a known method, retries only where repeating a request is harmless (idempotent
//! methods), a cache only for GET and never for a sensitive request, at most one body, literal
//! URLs that are HTTP(S), header names that are valid, every `secrets.NAME` declared in the
//! flow's `secrets:` list, and a screen that sends a sensitive input marked `sensitive`.

use super::secrets::secrets_used;
use super::{BackendCall, BackendSpec, Expect, RequestBody};
use crate::flow::check::Checker;
use crate::flow::screen::Screen;
use crate::flow::template::{Tpl, ValueTpl};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The methods an `http` screen may use.
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
/// Methods whose repetition has the effect of one request: the only ones retried.
const IDEMPOTENT: [&str; 4] = ["GET", "PUT", "DELETE", "HEAD"];
/// Whether repeating a request of this method has the effect of sending it once.
pub fn is_idempotent(method: &http::Method) -> bool {
    IDEMPOTENT.contains(&method.as_str())
}

/// The most retries a screen may ask for (all within the hop's deadline anyway).
const MAX_RETRIES: u32 = 5;

impl Checker<'_> {
    /// Compiles a template of an `http` screen, checking the secrets it names.
    fn backend_tpl(&mut self, screen: &str, field: &str, src: &str) -> Tpl {
        for name in secrets_used(src) {
            if !self.secrets.contains(&name) {
                self.error(
                    Some(screen),
                    Some(field.into()),
                    format!("secret `{name}` is not declared in `secrets`"),
                );
            }
        }
        let t = self.templates.text(src);
        self.compiled(Some(screen), field, t)
    }

    fn backend_fields(
        &mut self,
        screen: &str,
        field: &str,
        map: &serde_json::Map<String, Value>,
    ) -> Vec<(String, ValueTpl)> {
        for (k, v) in map {
            if let Value::String(src) = v {
                for name in secrets_used(src) {
                    if !self.secrets.contains(&name) {
                        self.error(
                            Some(screen),
                            Some(format!("{field}.{k}")),
                            format!("secret `{name}` is not declared in `secrets`"),
                        );
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (k, v) in map {
            let compiled = self.templates.value(v);
            out.push((
                k.clone(),
                self.compiled(Some(screen), &format!("{field}.{k}"), compiled),
            ));
        }
        out
    }

    pub(crate) fn backend(&mut self, screen: &str, spec: BackendSpec) -> Screen {
        let method_name = spec.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        if !METHODS.contains(&method_name.as_str()) {
            self.error(
                Some(screen),
                Some("method".into()),
                format!(
                    "unknown method `{method_name}` (expected GET, POST, PUT, PATCH, DELETE or HEAD)"
                ),
            );
        }
        let method = http::Method::from_bytes(method_name.as_bytes()).unwrap_or(http::Method::GET);
        let url_ok = ["{", "http://", "https://"]
            .iter()
            .any(|p| spec.url.starts_with(p));
        if !url_ok {
            self.error(
                Some(screen),
                Some("url".into()),
                "must be an http:// or https:// URL",
            );
        }
        let url = self.backend_tpl(screen, "url", &spec.url);
        let mut headers = Vec::new();
        for (name, v) in &spec.headers {
            let field = format!("headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.error(
                    Some(screen),
                    Some(field.clone()),
                    format!("invalid header name `{name}`"),
                );
            }
            let src = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => {
                    self.error(Some(screen), Some(field), "must be a string");
                    continue;
                }
            };
            headers.push((name.clone(), self.backend_tpl(screen, &field, &src)));
        }
        let bodies = [
            spec.json.is_some(),
            spec.form.is_some(),
            spec.body.is_some(),
        ];
        let n_bodies = bodies.iter().filter(|b| **b).count();
        if n_bodies > 1 {
            self.error(
                Some(screen),
                None,
                "at most one of `json`, `form` and `body`",
            );
        }
        if n_bodies > 0 && matches!(method_name.as_str(), "GET" | "HEAD") {
            self.error(
                Some(screen),
                None,
                format!("a {method_name} request has no body"),
            );
        }
        let body = if let Some(j) = &spec.json {
            RequestBody::Json(self.backend_fields(screen, "json", j))
        } else if let Some(f) = &spec.form {
            RequestBody::Form(self.backend_fields(screen, "form", f))
        } else if let Some(b) = &spec.body {
            RequestBody::Text(self.backend_tpl(screen, "body", b))
        } else {
            RequestBody::None
        };
        if let Some(r) = spec.retries {
            if !IDEMPOTENT.contains(&method_name.as_str()) {
                self.error(
                    Some(screen),
                    Some("retries".into()),
                    format!(
                        "retries are only for idempotent methods (GET, PUT, DELETE, HEAD), not {method_name}"
                    ),
                );
            } else if r > MAX_RETRIES {
                self.error(
                    Some(screen),
                    Some("retries".into()),
                    format!("at most {MAX_RETRIES} retries"),
                );
            }
        }
        match spec.cache_ttl_secs {
            Some(_) if method_name != "GET" => self.error(
                Some(screen),
                Some("cache_ttl_secs".into()),
                format!("only GET answers are cached, not {method_name}"),
            ),
            Some(0) => self.error(
                Some(screen),
                Some("cache_ttl_secs".into()),
                "must be at least 1",
            ),
            // The cache key is the rendered request, kept past the dialogue and shared.
            Some(_) if spec.sensitive => self.error(
                Some(screen),
                Some("cache_ttl_secs".into()),
                "a sensitive request is never cached",
            ),
            _ => {}
        }
        let failed = self.target(screen, "failed", &spec.failed);
        let timeout = match &spec.timeout {
            Some(t) => self.target(screen, "timeout", t),
            None => failed.clone(),
        };
        Screen::Backend(BackendCall {
            method,
            url,
            headers,
            body,
            expect_json: spec.expect == Expect::Json,
            retries: spec.retries.unwrap_or(0).min(MAX_RETRIES),
            cache_ttl_secs: spec.cache_ttl_secs,
            into: self.variable(screen, "into", &spec.into),
            next: self.target(screen, "next", &spec.next),
            failed,
            timeout,
            sensitive: spec.sensitive,
        })
    }

    /// An `http` screen that sends the variable of a `sensitive` input screen must be marked
    /// `sensitive: true` itself (only direct uses are seen: a copy made by `set` is not).
    pub(crate) fn sensitive_sends(&mut self, screens: &HashMap<Arc<str>, Screen>, vars: &[String]) {
        if vars.is_empty() {
            return;
        }
        let mut names: Vec<&Arc<str>> = screens.keys().collect();
        names.sort();
        for name in names {
            let Some(Screen::Backend(b)) = screens.get(name) else {
                continue;
            };
            if b.sensitive {
                continue;
            }
            let t = &self.templates;
            let mut used = t.variables(&b.url);
            for (_, header) in &b.headers {
                used.extend(t.variables(header));
            }
            match &b.body {
                RequestBody::Json(fields) | RequestBody::Form(fields) => {
                    for (_, v) in fields {
                        used.extend(t.value_variables(v));
                    }
                }
                RequestBody::Text(b) => used.extend(t.variables(b)),
                RequestBody::None => {}
            }
            if let Some(var) = vars.iter().find(|v| used.contains(*v)) {
                self.error(
                    Some(name),
                    Some("sensitive".into()),
                    format!(
                        "sends `{var}`, typed on a sensitive input screen: mark this screen `sensitive: true`"
                    ),
                );
            }
        }
    }
}
