//! Compiling `http` screens and the `resume:` policy, checking them on the way.
//!
//! The checks that matter most for a backend call are made here, at load time: a known method,
//! retries only where repeating a request is harmless (idempotent methods), a cache only for
//! GET, at most one body, literal URLs that are HTTP(S), header names that are valid, and every
//! `secrets.NAME` used declared in the flow's `secrets:` list.

use super::check::{Checker, entries};
use super::model::Text;
use super::model_http::{Expect, HttpSpec, ResumeSpec};
use super::screen::{Http, HttpBody, Localized, ResumePolicy, Screen};
use super::template::Tpl;
use crate::text::{Limit, fits};
use serde_json::Value;

/// The methods an `http` screen may use.
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
/// Methods whose repetition has the effect of one request: the only ones retried.
pub(crate) const IDEMPOTENT: [&str; 4] = ["GET", "PUT", "DELETE", "HEAD"];
/// Whether repeating a request of this method has the effect of sending it once.
pub fn is_idempotent(method: &http::Method) -> bool {
    IDEMPOTENT.contains(&method.as_str())
}

/// The most retries a screen may ask for (all within the hop's deadline anyway).
const MAX_RETRIES: u32 = 5;

const DEFAULT_PROMPT: &str = "Your last session was interrupted.";
const DEFAULT_CONTINUE: &str = "Continue";
const DEFAULT_RESTART: &str = "Start again";

/// Names used as `secrets.NAME` in a template source.
fn secrets_used(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("secrets.") {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i + "secrets.".len()..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && !name.is_empty()
        {
            out.push(name);
        }
        rest = tail;
    }
    out
}

pub(crate) fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn localized(t: Option<&Text>, default: &str) -> Localized<String> {
    match t {
        None => Localized(vec![(String::new(), default.to_string())]),
        Some(Text::One(s)) => Localized(vec![(String::new(), s.clone())]),
        Some(Text::Langs(l)) => Localized(l.clone()),
    }
}

impl Checker<'_> {
    /// Compiles a template of an `http` screen, checking the secrets it names.
    fn http_tpl(&mut self, screen: &str, field: &str, src: &str) -> Tpl {
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

    fn http_fields(
        &mut self,
        screen: &str,
        field: &str,
        map: &serde_json::Map<String, Value>,
    ) -> Vec<(String, super::template::ValueTpl)> {
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

    pub(crate) fn http(&mut self, screen: &str, spec: HttpSpec) -> Screen {
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
        let url = self.http_tpl(screen, "url", &spec.url);
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
            headers.push((name.clone(), self.http_tpl(screen, &field, &src)));
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
            HttpBody::Json(self.http_fields(screen, "json", j))
        } else if let Some(f) = &spec.form {
            HttpBody::Form(self.http_fields(screen, "form", f))
        } else if let Some(b) = &spec.body {
            HttpBody::Text(self.http_tpl(screen, "body", b))
        } else {
            HttpBody::None
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
        Screen::Http(Http {
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
    pub(crate) fn sensitive_sends(
        &mut self,
        screens: &std::collections::HashMap<std::sync::Arc<str>, Screen>,
        vars: &[String],
    ) {
        if vars.is_empty() {
            return;
        }
        let mut names: Vec<&std::sync::Arc<str>> = screens.keys().collect();
        names.sort();
        for name in names {
            let Some(Screen::Http(h)) = screens.get(name) else {
                continue;
            };
            if h.sensitive {
                continue;
            }
            let t = &self.templates;
            let mut used = t.variables(&h.url);
            for (_, header) in &h.headers {
                used.extend(t.variables(header));
            }
            match &h.body {
                HttpBody::Json(fields) | HttpBody::Form(fields) => {
                    for (_, v) in fields {
                        used.extend(t.value_variables(v));
                    }
                }
                HttpBody::Text(b) => used.extend(t.variables(b)),
                HttpBody::None => {}
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

    /// Checks the names of the `secrets:` list.
    pub(crate) fn secrets_list(&mut self, names: &[String]) {
        for (i, name) in names.iter().enumerate() {
            if !is_env_name(name) {
                self.error(
                    None,
                    Some(format!("secrets[{i}]")),
                    format!("`{name}` is not a valid environment variable name"),
                );
            }
        }
        self.secrets = names.to_vec();
    }

    /// Compiles `resume:`; the question and its two choices must fit one screen.
    pub(crate) fn resume_policy(&mut self, spec: &ResumeSpec, lang: &str) -> ResumePolicy {
        if spec.window_secs == 0 {
            self.error(
                None,
                Some("resume.window_secs".into()),
                "must be at least 1",
            );
        }
        let policy = ResumePolicy {
            window_secs: spec.window_secs,
            ask: spec.ask,
            prompt: localized(spec.prompt.as_ref(), DEFAULT_PROMPT),
            continue_label: localized(spec.continue_label.as_ref(), DEFAULT_CONTINUE),
            restart_label: localized(spec.restart_label.as_ref(), DEFAULT_RESTART),
        };
        for (field, t) in [
            ("resume.prompt", spec.prompt.as_ref()),
            ("resume.continue_label", spec.continue_label.as_ref()),
            ("resume.restart_label", spec.restart_label.as_ref()),
        ] {
            for (l, src) in t.map(entries).unwrap_or_default() {
                let path = if l.is_empty() {
                    field.to_string()
                } else {
                    format!("{field}.{l}")
                };
                self.check_static(None, &path, src);
            }
        }
        let mut langs: Vec<String> = policy.prompt.0.iter().map(|(l, _)| l.clone()).collect();
        langs.extend(policy.continue_label.0.iter().map(|(l, _)| l.clone()));
        langs.extend(policy.restart_label.0.iter().map(|(l, _)| l.clone()));
        langs.dedup();
        for l in langs {
            let screen = offer_text(&policy, &l, lang);
            if !fits(&screen, Limit::default()) {
                self.error(
                    None,
                    Some("resume.prompt".into()),
                    "the question and its two choices do not fit one screen",
                );
                break;
            }
        }
        policy
    }
}

/// The resume question as shown in `lang`.
pub(crate) fn offer_text(p: &ResumePolicy, lang: &str, default: &str) -> String {
    format!(
        "{}\n1. {}\n2. {}",
        p.prompt.pick(lang, default),
        p.continue_label.pick(lang, default),
        p.restart_label.pick(lang, default)
    )
}

#[cfg(test)]
mod tests {
    use super::secrets_used;

    #[test]
    fn secrets_are_found_in_templates() {
        assert_eq!(
            secrets_used("Bearer {{ secrets.TOKEN }} {{secrets.B_2|trim}}"),
            vec!["TOKEN".to_string(), "B_2".to_string()]
        );
        assert!(secrets_used("{{ mysecrets.X }} {{ a.secrets.Y }}").is_empty());
    }
}
