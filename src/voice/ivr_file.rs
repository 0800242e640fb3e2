//! The IVR file format: what `config/ivr/<name>.yaml` may contain (serde, unknown keys
//! refused), and the `${VAR}` / `${VAR:-default}` expansion of numbers and URLs.
//!
//! Actions are written as one-key maps (`say: ...`, `dial: {...}`) or bare names (`reject`,
//! `conference`). Values that name numbers or URLs may use `${VAR}` or `${VAR:-default}` (read
//! when the file is loaded); a Dial number that expands to a comma-separated list adds each
//! number. Spoken texts are taken literally. The checks are in `ivr_load`.

use serde::Deserialize;
use std::collections::BTreeMap;

pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IvrFile {
    pub(super) number: String,
    pub(super) start: String,
    pub(super) menus: BTreeMap<String, MenuFile>,
    #[serde(default)]
    pub(super) actions: BTreeMap<String, Vec<ActionFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MenuFile {
    pub(super) prompt: Option<PromptFile>,
    pub(super) finish_on_key: Option<String>,
    pub(super) timeout: Option<u32>,
    pub(super) num_digits: Option<u32>,
    #[serde(default)]
    pub(super) routes: BTreeMap<String, String>,
    pub(super) default: Option<String>,
    pub(super) no_input: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum PromptFile {
    Say(SayFile),
    Play(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum SayFile {
    Text(String),
    Full(SayFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SayFull {
    pub(super) text: String,
    pub(super) voice: Option<String>,
    pub(super) play_beep: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum ActionFile {
    Say(SayFile),
    Play(String),
    Dial(DialFile),
    Record(RecordFile),
    Enqueue(EnqueueFile),
    Dequeue(DequeueFile),
    Conference,
    Redirect(String),
    Menu(String),
    Reject,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DialFile {
    pub(super) numbers: Vec<String>,
    pub(super) record: Option<bool>,
    pub(super) sequential: Option<bool>,
    pub(super) caller_id: Option<String>,
    pub(super) ringback: Option<String>,
    pub(super) max_duration: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordFile {
    pub(super) prompt: Option<PromptFile>,
    pub(super) finish_on_key: Option<String>,
    pub(super) max_length: Option<u32>,
    pub(super) timeout: Option<u32>,
    pub(super) trim_silence: Option<bool>,
    pub(super) play_beep: Option<bool>,
    pub(super) callback_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EnqueueFile {
    pub(super) name: Option<String>,
    pub(super) hold_music: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DequeueFile {
    pub(super) phone_number: String,
    pub(super) name: Option<String>,
}

/// Replaces `${VAR}` (must be set) and `${VAR:-default}` (default when unset or empty).
pub(super) fn expand_env(raw: &str, env: Env<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated ${{ in {raw:?}"))?;
        let inner = &after[..end];
        let (var, default) = match inner.split_once(":-") {
            Some((v, d)) => (v, Some(d)),
            None => (inner, None),
        };
        if !is_env_name(var) {
            return Err(format!("bad variable name {var:?} in {raw:?}"));
        }
        match (env(var).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {var} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion() {
        let env = |n: &str| (n == "A").then(|| "x,y".to_string());
        assert_eq!(expand_env("${A}", &env).unwrap(), "x,y");
        assert_eq!(expand_env("p${B:-d}s", &env).unwrap(), "pds");
        assert_eq!(expand_env("${A:-d}", &env).unwrap(), "x,y");
        assert_eq!(expand_env("plain", &env).unwrap(), "plain");
        assert_eq!(
            expand_env("${B}", &env).unwrap_err(),
            "environment variable B is not set"
        );
        assert!(expand_env("${A", &env).is_err());
        assert!(expand_env("${1A}", &env).is_err());
    }
}
