//! The `http` screen in the pure engine: rendering the request, and turning the answer (or its
//! absence) into a variable and a branch.
//!
//! Secrets never enter the engine: `secrets.NAME` renders as a placeholder
//! ([`secret_placeholder`]) that the caller swaps for the environment's value
//! ([`fill_secrets`]) when it sends the request. So no secret is ever in a [`super::FlowState`],
//! a log line, a cache key or a stored response.

use super::engine::{Fail, Run, bind};
use super::screen::{Http, HttpBody};
use super::state::{HttpOutcome, HttpRequest, Step};
use super::template::{Tpl, ValueTpl};
use serde_json::{Map, Value, json};

/// Bytes of a body that was not the JSON expected, kept in the variable (for `text`).
const KEEP_MALFORMED: usize = 512;
/// The marker around a secret's name in a rendered request.
const MARK: char = '\u{1A}';

/// What `secrets.NAME` renders as in a request: a placeholder the caller fills in.
pub fn secret_placeholder(name: &str) -> String {
    format!("{MARK}secret:{name}{MARK}")
}

/// Replaces every secret placeholder in `s` by `lookup(name)`. Fails with the name of the
/// first secret `lookup` does not know.
pub fn fill_secrets(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let open = format!("{MARK}secret:");
    while let Some(i) = rest.find(&open) {
        out.push_str(&rest[..i]);
        let after = &rest[i + open.len()..];
        let Some(end) = after.find(MARK) else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let name = &after[..end];
        out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
        rest = &after[end + MARK.len_utf8()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Why a part of the request could not be rendered. For a `sensitive` screen only the part
/// and the kind of error: the details may quote the values the request carries.
fn render_error(h: &Http, what: &str, e: &minijinja::Error) -> Fail {
    if h.sensitive {
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

impl Run<'_, '_> {
    /// The scope of an `http` screen's templates: the usual one plus `secrets`.
    fn http_scope(&mut self) -> minijinja::Value {
        let secrets = minijinja::Value::from_iter(
            self.flow
                .secrets
                .iter()
                .map(|n| (n.clone(), secret_placeholder(n))),
        );
        bind(self.scope(), "secrets", secrets)
    }

    fn http_render(
        &self,
        h: &Http,
        scope: &minijinja::Value,
        what: &str,
        t: &Tpl,
    ) -> Result<String, Fail> {
        self.flow
            .templates
            .render(t, scope)
            .map_err(|e| render_error(h, what, &e))
    }

    fn http_values(
        &self,
        h: &Http,
        scope: &minijinja::Value,
        what: &str,
        fields: &[(String, ValueTpl)],
    ) -> Result<Vec<(String, Value)>, Fail> {
        fields
            .iter()
            .map(|(k, v)| {
                let value = self
                    .flow
                    .templates
                    .value_of(v, scope)
                    .map_err(|e| render_error(h, &format!("{what}.{k}"), &e))?;
                Ok((k.clone(), value))
            })
            .collect()
    }

    /// Renders the request of an `http` screen.
    pub(super) fn http_request(&mut self, h: &Http) -> Result<HttpRequest, Fail> {
        let scope = self.http_scope();
        let url = self.http_render(h, &scope, "url", &h.url)?;
        let mut headers = Vec::with_capacity(h.headers.len() + 1);
        for (name, t) in &h.headers {
            headers.push((name.clone(), self.http_render(h, &scope, name, t)?));
        }
        let (body, content_type) = match &h.body {
            HttpBody::None => (None, None),
            HttpBody::Json(fields) => {
                let map: Map<String, Value> = self
                    .http_values(h, &scope, "json", fields)?
                    .into_iter()
                    .collect();
                (
                    Some(Value::Object(map).to_string()),
                    Some("application/json"),
                )
            }
            HttpBody::Form(fields) => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                for (k, v) in self.http_values(h, &scope, "form", fields)? {
                    form.append_pair(&k, &form_value(&v));
                }
                (
                    Some(form.finish()),
                    Some("application/x-www-form-urlencoded"),
                )
            }
            HttpBody::Text(t) => (
                Some(self.http_render(h, &scope, "body", t)?),
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
        if h.expect_json && !has(&headers, "accept") {
            headers.push(("accept".into(), "application/json".into()));
        }
        Ok(HttpRequest {
            method: h.method.clone(),
            url,
            headers,
            body,
            retries: h.retries,
            cache_ttl_secs: h.cache_ttl_secs,
            expect_json: h.expect_json,
        })
    }

    /// Stores what came of the request in the screen's variable and takes its branch.
    pub(super) fn on_http(mut self, h: &Http, outcome: HttpOutcome) -> Step {
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
                if h.expect_json {
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
                    tracing::warn!(flow = %self.flow.name, screen = %self.state.screen, status, error, "backend call failed");
                }
                (var, if ok { &h.next } else { &h.failed })
            }
            HttpOutcome::Timeout => {
                tracing::warn!(flow = %self.flow.name, screen = %self.state.screen, "backend call ran out of time");
                let var = json!({ "ok": false, "status": 0, "error": "timeout" });
                (var, &h.timeout)
            }
            HttpOutcome::Failed(why) => {
                tracing::warn!(flow = %self.flow.name, screen = %self.state.screen, error = %why, "backend call failed");
                let var = json!({ "ok": false, "status": 0, "error": "connection" });
                (var, &h.failed)
            }
        };
        self.set_var(&h.into, var);
        self.enter(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_filled_in_and_only_known_ones() {
        let s = format!("Bearer {} x", secret_placeholder("TOKEN"));
        let lookup = |n: &str| (n == "TOKEN").then(|| "s3cr3t".to_string());
        assert_eq!(fill_secrets(&s, lookup).unwrap(), "Bearer s3cr3t x");
        let s = secret_placeholder("OTHER");
        assert_eq!(fill_secrets(&s, lookup).unwrap_err(), "OTHER");
        assert_eq!(fill_secrets("plain", lookup).unwrap(), "plain");
    }
}
