//! HTTP dialects: how one aggregator spells a USSD hop over HTTP, as data.
//!
//! Aggregators agree on what a hop is (a session, a subscriber, a code, an input) but not on
//! how they write it: Africa's Talking posts a form with the cumulative text and reads `CON `
//! or `END `; Hubtel, Nalo, Arkesel, Beem and Infobip post JSON with the latest input alone
//! and read JSON back. A dialect captures one aggregator's spelling, so a new aggregator is a config
//! table and not a code fork, as the SMPP operator profiles are for operators.
//!
//! The built-in dialects are written in the same vocabulary (`dialects.toml`, beside this
//! file); `[[http.dialects]]` tables change them (a path) or describe new ones, starting from a
//! built-in (`base`) or from nothing. What a dialect means on the wire is the HTTP front's
//! (`front::http::dialect`); here it is resolved and validated.

use serde::Deserialize;
use serde_json::{Map, Value};

/// The built-in dialects' description.
const BUILTIN: &str = include_str!("dialects.toml");

/// The built-in dialects' names, in the order they are described.
pub const BUILTINS: &[&str] = &[
    "africastalking",
    "hubtel",
    "nalo",
    "arkesel",
    "beem",
    "infobip",
];

/// Names a dialect may not take: other fronts' session key prefixes.
const RESERVED: &[&str] = &["http", "smpp", "events"];

/// How a request carries its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// A POST with an `application/x-www-form-urlencoded` body.
    Form,
    /// A POST with an `application/json` object; field names may be dotted paths.
    Json,
    /// A GET with the fields in the query string.
    Query,
}

/// How a request carries the subscriber's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    /// Every input so far joined by `*`, empty on the dial (Africa's Talking).
    Cumulative,
    /// The latest input alone; a `kind` field says which hop starts the dialogue.
    PerHop,
}

/// How a reply is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyFormat {
    /// `text/plain`, from a string template.
    Text,
    /// `application/json`, from a table template.
    Json,
}

/// `[[http.dialects]]`: one dialect, or changes to a built-in one. Every key but `name` is
/// optional when a base supplies it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialectConfig {
    /// The dialect's name: the `dialect` label of metrics and logs, `/ussd/<name>` by default.
    pub name: String,
    /// The dialect this one starts from. Default: the built-in of the same name, if any.
    pub base: Option<String>,
    /// The path it is served at. Default `/ussd/<name>`. A segment `{x}` matches any one
    /// segment, read as the field `path.x` (Infobip's `/session/{session}/{kind}`).
    pub path: Option<String>,
    /// How requests carry their fields.
    pub body: Option<BodyFormat>,
    /// The field of the aggregator's session id.
    pub session: Option<String>,
    /// The field of the subscriber's number.
    pub subscriber: Option<String>,
    /// The field of the service code, if the aggregator sends one.
    pub service_code: Option<String>,
    /// The service code of every dialogue, for aggregators that send none.
    pub service_code_value: Option<String>,
    /// The field of the network, if any.
    pub network: Option<String>,
    /// The field of the subscriber's input (absent means empty).
    pub input: Option<String>,
    /// Whether the input is cumulative or per hop.
    pub input_mode: Option<InputMode>,
    /// The field that says whether a request starts, continues or ends a dialogue.
    pub kind: Option<String>,
    /// Values of `kind` that start a dialogue (compared ignoring case).
    pub kind_start: Option<Vec<String>>,
    /// Values of `kind` that carry the next input.
    pub kind_continue: Option<Vec<String>>,
    /// Values of `kind` that tell that the network ended the dialogue.
    pub kind_end: Option<Vec<String>>,
    /// On a start, a non-empty input is the dial string (with any pre-filled inputs).
    pub dial_in_input: Option<bool>,
    /// The field of the aggregator's hop number (1 on the dial), which tells retries apart.
    pub sequence: Option<String>,
    /// How replies are written.
    pub reply: Option<ReplyFormat>,
    /// The reply that waits for input: a string (text) or a table (JSON) template.
    pub reply_continue: Option<Value>,
    /// The reply that ends the dialogue.
    pub reply_end: Option<Value>,
    /// The reply field that takes the casing of the request's `kind` (Hubtel's `Type`).
    pub reply_kind: Option<String>,
    /// Screen limit in GSM-7 characters. Default `[ussd] max_septets`.
    pub max_septets: Option<usize>,
    /// Screen limit in UCS-2 characters. Default `[ussd] max_ucs2_chars`.
    pub max_ucs2_chars: Option<usize>,
}

/// A resolved dialect: every choice made.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialect {
    /// The name.
    pub name: String,
    /// The path served.
    pub path: String,
    /// Request encoding.
    pub body: BodyFormat,
    /// Session id field.
    pub session: String,
    /// Subscriber field.
    pub subscriber: String,
    /// Service code field.
    pub service_code: Option<String>,
    /// Fixed service code.
    pub service_code_value: Option<String>,
    /// Network field.
    pub network: Option<String>,
    /// Input field.
    pub input: String,
    /// Input mode.
    pub input_mode: InputMode,
    /// Kind field.
    pub kind: Option<String>,
    /// Start values (compared ignoring case).
    pub kind_start: Vec<String>,
    /// Continue values.
    pub kind_continue: Vec<String>,
    /// End values.
    pub kind_end: Vec<String>,
    /// Whether a start's input is the dial string.
    pub dial_in_input: bool,
    /// Hop number field.
    pub sequence: Option<String>,
    /// Reply encoding.
    pub reply: ReplyFormat,
    /// Continue template.
    pub reply_continue: Value,
    /// End template.
    pub reply_end: Value,
    /// The reply field that follows the request's casing.
    pub reply_kind: Option<String>,
    /// Screen limit override (septets).
    pub max_septets: Option<usize>,
    /// Screen limit override (UCS-2).
    pub max_ucs2_chars: Option<usize>,
}

#[derive(Deserialize)]
struct Builtins {
    dialects: Vec<DialectConfig>,
}

/// The built-in descriptions.
fn builtins() -> Vec<DialectConfig> {
    toml::from_str::<Builtins>(BUILTIN)
        .expect("the built-in dialects parse")
        .dialects
}

impl DialectConfig {
    /// This table over its base.
    fn over(&self, base: &DialectConfig) -> DialectConfig {
        macro_rules! or {
            ($($f:ident),*) => { DialectConfig {
                name: self.name.clone(),
                base: self.base.clone(),
                $( $f: self.$f.clone().or_else(|| base.$f.clone()), )*
            }};
        }
        let mut merged = or!(
            path,
            body,
            session,
            subscriber,
            service_code,
            service_code_value,
            network,
            input,
            input_mode,
            kind,
            kind_start,
            kind_continue,
            kind_end,
            dial_in_input,
            sequence,
            reply,
            reply_continue,
            reply_end,
            reply_kind,
            max_septets,
            max_ucs2_chars
        );
        // A built-in's path belongs to its name: a dialect based on it gets its own.
        if self.name != base.name && self.path.is_none() {
            merged.path = None;
        }
        merged
    }

    /// The dialect this table describes.
    ///
    /// # Errors
    /// A one-line message naming the key.
    pub fn resolve(&self) -> Result<Dialect, String> {
        let name = &self.name;
        let at = format!("http.dialects[{name}]");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "{at}.name must be lowercase letters, digits, '_' or '-'"
            ));
        }
        if RESERVED.contains(&name.as_str()) {
            return Err(format!("{at}.name {name:?} is reserved"));
        }
        let base_name = self
            .base
            .clone()
            .or_else(|| BUILTINS.contains(&name.as_str()).then(|| name.clone()));
        let c = match base_name {
            Some(b) => {
                let base = builtins()
                    .into_iter()
                    .find(|d| d.name == b)
                    .ok_or_else(|| {
                        format!(
                            "{at}.base: unknown dialect {b:?} (built in: {})",
                            BUILTINS.join(", ")
                        )
                    })?;
                self.over(&base)
            }
            None => self.clone(),
        };
        let need = |v: Option<String>, key: &str| {
            v.filter(|s| !s.trim().is_empty())
                .ok_or_else(|| format!("{at}.{key} is required (no base supplies it)"))
        };
        let path = c.path.clone().unwrap_or_else(|| format!("/ussd/{name}"));
        if !path.starts_with('/')
            || path.contains(['?', '#', ' '])
            || matches!(path.as_str(), "/ussd/events" | "/health" | "/ready")
            || path.starts_with("/voice/")
        {
            return Err(format!(
                "{at}.path {path:?} must start with '/' and not be /ussd/events, /health, /ready or under /voice/"
            ));
        }
        let placeholders_ok = path.split('/').all(|seg| {
            !seg.contains(['{', '}'])
                || (seg.starts_with('{')
                    && seg.ends_with('}')
                    && seg.len() > 2
                    && seg[1..seg.len() - 1]
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_'))
        });
        if !placeholders_ok {
            return Err(format!(
                "{at}.path {path:?}: a placeholder must be a whole segment, like /session/{{session}}/"
            ));
        }
        let input_mode = c
            .input_mode
            .ok_or_else(|| format!("{at}.input_mode is required (no base supplies it)"))?;
        let lower = |v: Option<Vec<String>>| -> Vec<String> { v.unwrap_or_default() };
        let d = Dialect {
            name: name.clone(),
            path,
            body: c
                .body
                .ok_or_else(|| format!("{at}.body is required (no base supplies it)"))?,
            session: need(c.session, "session")?,
            subscriber: need(c.subscriber, "subscriber")?,
            service_code: unset_if_empty(c.service_code),
            service_code_value: unset_if_empty(c.service_code_value),
            network: unset_if_empty(c.network),
            input: need(c.input, "input")?,
            input_mode,
            kind: unset_if_empty(c.kind),
            kind_start: lower(c.kind_start),
            kind_continue: lower(c.kind_continue),
            kind_end: lower(c.kind_end),
            dial_in_input: c.dial_in_input.unwrap_or(false),
            sequence: unset_if_empty(c.sequence),
            reply: c
                .reply
                .ok_or_else(|| format!("{at}.reply is required (no base supplies it)"))?,
            reply_continue: c
                .reply_continue
                .ok_or_else(|| format!("{at}.reply_continue is required (no base supplies it)"))?,
            reply_end: c
                .reply_end
                .ok_or_else(|| format!("{at}.reply_end is required (no base supplies it)"))?,
            reply_kind: unset_if_empty(c.reply_kind),
            max_septets: c.max_septets,
            max_ucs2_chars: c.max_ucs2_chars,
        };
        d.check(&at)?;
        Ok(d)
    }
}

impl Dialect {
    /// The combinations that cannot work.
    fn check(&self, at: &str) -> Result<(), String> {
        if self.input_mode == InputMode::PerHop {
            if self.kind.is_none() || self.kind_start.is_empty() || self.kind_continue.is_empty() {
                return Err(format!(
                    "{at}: input_mode = \"per_hop\" needs kind, kind_start and kind_continue"
                ));
            }
        } else if self.service_code.is_none() && self.service_code_value.is_none() {
            return Err(format!(
                "{at}: input_mode = \"cumulative\" needs service_code or service_code_value"
            ));
        }
        if self.kind.is_some() && self.kind_start.is_empty() && self.kind_continue.is_empty() {
            return Err(format!("{at}.kind needs kind_start or kind_continue"));
        }
        for (key, template) in [
            ("reply_continue", &self.reply_continue),
            ("reply_end", &self.reply_end),
        ] {
            match (self.reply, template) {
                (ReplyFormat::Text, Value::String(s)) if s.contains("{text}") => {}
                (ReplyFormat::Json, Value::Object(m)) if holds_text(m) => {}
                (ReplyFormat::Text, _) => {
                    return Err(format!(
                        "{at}.{key} must be a string holding {{text}} (reply = \"text\")"
                    ));
                }
                (ReplyFormat::Json, _) => {
                    return Err(format!(
                        "{at}.{key} must be a table with a value \"{{text}}\" (reply = \"json\")"
                    ));
                }
            }
        }
        if self.max_septets.is_some_and(|n| !(20..=182).contains(&n))
            || self.max_ucs2_chars.is_some_and(|n| !(10..=80).contains(&n))
        {
            return Err(format!(
                "{at}: max_septets must be 20 to 182 and max_ucs2_chars 10 to 80"
            ));
        }
        Ok(())
    }

    /// The screen limit of this dialect's hops, over the USSD-wide one.
    pub fn limit(&self, ussd: crate::text::Limit) -> crate::text::Limit {
        crate::text::Limit {
            septets: self.max_septets.unwrap_or(ussd.septets),
            ucs2: self.max_ucs2_chars.unwrap_or(ussd.ucs2),
        }
    }
}

/// An optional field set to `""`: turned off (a table over a base that names it).
fn unset_if_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Whether a JSON template places the screen text somewhere.
fn holds_text(m: &Map<String, Value>) -> bool {
    m.values().any(|v| match v {
        Value::String(s) => s == "{text}",
        Value::Object(inner) => holds_text(inner),
        _ => false,
    })
}

/// `[http]`: the HTTP dialects.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Changes to built-in dialects and new ones.
    #[serde(default)]
    pub dialects: Vec<DialectConfig>,
}

impl HttpConfig {
    /// Every dialect served: the built-ins (as changed here) and the ones described here.
    ///
    /// # Errors
    /// A dialect that does not resolve, or two dialects with one name or one path.
    pub fn resolve(&self) -> Result<Vec<Dialect>, String> {
        let mut out: Vec<Dialect> = Vec::new();
        for name in BUILTINS {
            if !self.dialects.iter().any(|d| d.name == *name) {
                out.push(
                    DialectConfig {
                        name: (*name).to_string(),
                        ..Default::default()
                    }
                    .resolve()?,
                );
            }
        }
        for (i, c) in self.dialects.iter().enumerate() {
            if self.dialects[..i].iter().any(|d| d.name == c.name) {
                return Err(format!(
                    "http.dialects: the name {:?} is described twice",
                    c.name
                ));
            }
            out.push(c.resolve()?);
        }
        for (i, d) in out.iter().enumerate() {
            if let Some(other) = out[..i].iter().find(|o| o.path == d.path) {
                return Err(format!(
                    "http.dialects[{}].path {:?} is already the path of {}",
                    d.name, d.path, other.name
                ));
            }
        }
        Ok(out)
    }

    /// Checks that every dialect resolves.
    ///
    /// # Errors
    /// As [`HttpConfig::resolve`].
    pub fn validate(&self) -> Result<(), String> {
        self.resolve().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_resolves_at_its_path() {
        let all = HttpConfig::default().resolve().unwrap();
        let paths: Vec<(&str, &str)> = all
            .iter()
            .map(|d| (d.name.as_str(), d.path.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("africastalking", "/ussd"),
                ("hubtel", "/ussd/hubtel"),
                ("nalo", "/ussd/nalo"),
                ("arkesel", "/ussd/arkesel"),
                ("beem", "/ussd/beem"),
                ("infobip", "/ussd/infobip/session/{session}/{kind}")
            ]
        );
    }

    #[test]
    fn a_builtin_can_move_and_a_new_one_can_start_from_it() {
        let c: HttpConfig = toml::from_str(
            r#"
            [[dialects]]
            name = "hubtel"
            path = "/gh/hubtel"
            [[dialects]]
            name = "hubtel-test"
            base = "hubtel"
            "#,
        )
        .unwrap();
        let all = c.resolve().unwrap();
        let hubtel = all.iter().find(|d| d.name == "hubtel").unwrap();
        assert_eq!(hubtel.path, "/gh/hubtel");
        let copy = all.iter().find(|d| d.name == "hubtel-test").unwrap();
        assert_eq!(copy.path, "/ussd/hubtel-test");
        assert_eq!(copy.session, "SessionId");
    }

    #[test]
    fn bad_descriptions_name_the_key() {
        let bad = |text: &str| {
            toml::from_str::<HttpConfig>(text)
                .unwrap()
                .resolve()
                .unwrap_err()
        };
        let e = bad("[[dialects]]\nname = \"acme\"\nbody = \"json\"\n");
        assert!(
            e.contains("http.dialects[acme].input_mode is required"),
            "{e}"
        );
        let e = bad("[[dialects]]\nname = \"Acme\"\nbase = \"nalo\"\n");
        assert!(e.contains("http.dialects[Acme].name"), "{e}");
        let e = bad("[[dialects]]\nname = \"x\"\nbase = \"nope\"\n");
        assert!(e.contains("http.dialects[x].base: unknown dialect"), "{e}");
        let e = bad("[[dialects]]\nname = \"x\"\nbase = \"nalo\"\npath = \"/ussd\"\n");
        assert!(e.contains("already the path of africastalking"), "{e}");
        let e = bad("[[dialects]]\nname = \"x\"\nbase = \"nalo\"\nreply_end = { MSG = \"bye\" }\n");
        assert!(
            e.contains("http.dialects[x].reply_end must be a table"),
            "{e}"
        );
        let e = bad(
            "[[dialects]]\nname = \"x\"\nbase = \"nalo\"\nkind = \"\"\nkind_start = []\nkind_continue = []\n",
        );
        assert!(e.contains("per_hop"), "{e}");
    }
}
