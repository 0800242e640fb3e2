//! IVRs described in config (`config/ivr/<name>.yaml`), checked once at load, then turned into
//! voice actions per callback.
//!
//! An IVR answers one of our AT voice numbers. It has menus (each one `<GetDigits>` with a prompt
//! and a table of digits -> target) and named action lists (Say, Dial, ...). A target is either
//! an action list, rendered in place, or a menu, reached with `<Redirect>` to that menu's URL.
//! URLs are built from the public base URL the gateway is reached at:
//!
//! - GetDigits `callbackUrl`: `{base}/voice/dtmf/{ivr}` (start menu) or `{base}/voice/dtmf/{ivr}/{menu}`;
//! - Redirect to a menu: `{base}/voice/menu/{ivr}` (start menu) or `{base}/voice/menu/{ivr}/{menu}`.
//!
//! The file format and the loader's checks are in `ivr_file` and `ivr_load`; `docs/voice.md` is the
//! author's guide.

use super::ivr_load;
use super::xml::{Action, GetDigits, Prompt};
use std::collections::BTreeMap;
use std::path::Path;

/// The base URL used when none is configured (the public front's default listen address).
pub const DEFAULT_PUBLIC_BASE_URL: &str = "http://127.0.0.1:8080";

/// One step of an action list: a ready action, or a jump to a menu (rendered as `<Redirect>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An action rendered as it is.
    Action(Action),
    /// `<Redirect>` to the named menu of the same IVR.
    Menu(String),
}

/// One menu: a `<GetDigits>` and what each answer leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// The nested Say or Play.
    pub prompt: Option<Prompt>,
    /// `finishOnKey` (also stripped from the end of the digits AT posts back).
    pub finish_on_key: Option<String>,
    /// `timeout` in seconds.
    pub timeout: Option<u32>,
    /// `numDigits`.
    pub num_digits: Option<u32>,
    /// Digits -> target (menu or action list name).
    pub routes: BTreeMap<String, String>,
    /// Target for digits not in `routes`; without it the menu is heard again.
    pub default: Option<String>,
    /// Target rendered after the GetDigits, which AT runs when nothing is pressed; without it
    /// AT hangs up.
    pub no_input: Option<String>,
}

/// One loaded, checked IVR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ivr {
    pub(super) name: String,
    pub(super) file: String,
    pub(super) number: String,
    pub(super) start: String,
    pub(super) menus: BTreeMap<String, Menu>,
    pub(super) actions: BTreeMap<String, Vec<Step>>,
}

impl Ivr {
    /// The IVR's name (its file name without `.yaml`), used in its URLs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it was loaded from (for messages).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The number it answers, canonical (digits with country code, no `+`).
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The start menu's name.
    pub fn start(&self) -> &str {
        &self.start
    }

    /// A menu by name.
    pub fn menu(&self, name: &str) -> Option<&Menu> {
        self.menus.get(name)
    }

    /// A named action list.
    pub fn action_list(&self, name: &str) -> Option<&[Step]> {
        self.actions.get(name).map(Vec::as_slice)
    }

    /// Where AT is sent to hear `menu` (`None` or the start menu: the short form).
    pub fn menu_url(&self, base_url: &str, menu: Option<&str>) -> String {
        self.url(base_url, "menu", menu)
    }

    /// Where AT posts the digits pressed in `menu`.
    pub fn dtmf_url(&self, base_url: &str, menu: Option<&str>) -> String {
        self.url(base_url, "dtmf", menu)
    }

    fn url(&self, base_url: &str, kind: &str, menu: Option<&str>) -> String {
        let base = base_url.trim_end_matches('/');
        match menu.filter(|m| *m != self.start) {
            None => format!("{base}/voice/{kind}/{}", self.name),
            Some(m) => format!("{base}/voice/{kind}/{}/{m}", self.name),
        }
    }

    /// The actions that present `menu` (`None`: the start menu): its GetDigits, then its
    /// no-input target. `None` if there is no such menu.
    pub fn menu_actions(&self, menu: Option<&str>, base_url: &str) -> Option<Vec<Action>> {
        let name = menu.unwrap_or(&self.start);
        let m = self.menus.get(name)?;
        let mut out = vec![Action::GetDigits(GetDigits {
            prompt: m.prompt.clone(),
            num_digits: m.num_digits,
            timeout: m.timeout,
            finish_on_key: m.finish_on_key.clone(),
            callback_url: Some(self.dtmf_url(base_url, Some(name))),
        })];
        if let Some(target) = &m.no_input {
            self.push_target(&mut out, target, base_url);
        }
        Some(out)
    }

    /// The actions answering `digits` pressed in `menu` (`None`: the start menu). A trailing
    /// finishOnKey and surrounding spaces are removed first; nothing pressed leads to the
    /// menu's no-input target (or an empty response, on which AT hangs up). `None` if there is
    /// no such menu.
    pub fn dtmf_actions(
        &self,
        menu: Option<&str>,
        digits: Option<&str>,
        base_url: &str,
    ) -> Option<Vec<Action>> {
        let name = menu.unwrap_or(&self.start);
        let m = self.menus.get(name)?;
        let mut pressed = digits.unwrap_or("").trim();
        if let Some(key) = m.finish_on_key.as_deref().filter(|k| !k.is_empty()) {
            pressed = pressed.strip_suffix(key).unwrap_or(pressed).trim_end();
        }
        let mut out = Vec::new();
        let target = if pressed.is_empty() {
            m.no_input.as_deref()
        } else {
            m.routes
                .get(pressed)
                .or(m.default.as_ref())
                .map(String::as_str)
                .or(Some(name))
        };
        if let Some(target) = target {
            self.push_target(&mut out, target, base_url);
        }
        Some(out)
    }

    /// Appends what `target` stands for: an action list in place, a menu as a Redirect.
    fn push_target(&self, out: &mut Vec<Action>, target: &str, base_url: &str) {
        match self.actions.get(target) {
            Some(steps) => {
                for step in steps {
                    out.push(match step {
                        Step::Action(a) => a.clone(),
                        Step::Menu(m) => Action::Redirect(self.menu_url(base_url, Some(m))),
                    });
                }
            }
            // The loader guarantees every target is an action list or a menu.
            None => out.push(Action::Redirect(self.menu_url(base_url, Some(target)))),
        }
    }
}

/// Every IVR of the gateway, by name and by number.
#[derive(Debug, Clone, Default)]
pub struct IvrSet {
    by_name: BTreeMap<String, Ivr>,
}

impl IvrSet {
    /// Loads every `*.yaml` / `*.yml` file of `dir` (one IVR per file, named after the file),
    /// reading `${VAR}` / `${VAR:-default}` values from the process environment.
    ///
    /// # Errors
    /// Every problem found, each prefixed with its file and the path inside it.
    pub fn load_dir(dir: &Path) -> Result<IvrSet, Vec<String>> {
        IvrSet::load_dir_with_env(dir, &|name| std::env::var(name).ok())
    }

    /// [`IvrSet::load_dir`] with the environment given as a lookup function (for tests).
    ///
    /// # Errors
    /// As [`IvrSet::load_dir`].
    pub fn load_dir_with_env(
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<IvrSet, Vec<String>> {
        let ivrs = ivr_load::load_dir(dir, env)?;
        Ok(IvrSet {
            by_name: ivrs.into_iter().map(|i| (i.name.clone(), i)).collect(),
        })
    }

    /// Parses one IVR from YAML text (`file` names it in errors; its stem is the IVR's name).
    ///
    /// # Errors
    /// As [`IvrSet::load_dir`].
    pub fn parse_one(
        file: &str,
        yaml: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Ivr, Vec<String>> {
        ivr_load::parse_file(file, yaml, env)
    }

    /// Builds a set from IVRs already loaded.
    ///
    /// # Errors
    /// Two IVRs share a name or a number.
    pub fn from_ivrs(ivrs: Vec<Ivr>) -> Result<IvrSet, Vec<String>> {
        let errors = ivr_load::check_unique(&ivrs);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(IvrSet {
            by_name: ivrs.into_iter().map(|i| (i.name.clone(), i)).collect(),
        })
    }

    /// The IVR answering `number` (`+254 711 000000`, `254711000000` and `00254711000000` match
    /// the same IVR).
    pub fn by_number(&self, number: &str) -> Option<&Ivr> {
        let wanted = normalize_number(number)?;
        self.by_name.values().find(|i| i.number == wanted)
    }

    /// The IVR called `name`.
    pub fn get(&self, name: &str) -> Option<&Ivr> {
        self.by_name.get(name)
    }

    /// How many IVRs are loaded.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no IVR is loaded.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Every IVR, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Ivr> {
        self.by_name.values()
    }

    /// The number outbound calls ("please call me") are placed from, as `+` and digits: the
    /// one `configured` (`[africastalking] voice_number`), else the number of the only IVR.
    /// One number is both what an IVR answers and what calls come from: when AT calls back for
    /// a call placed from a number no IVR answers, the subscriber hears "this number is not in
    /// service". `None` when nothing decides it (no IVR, or several and none configured).
    ///
    /// # Errors
    /// `configured` is set, IVRs are loaded, and none of them answers it.
    pub fn calling_number(&self, configured: Option<&str>) -> Result<Option<String>, String> {
        let configured = configured.map(str::trim).filter(|n| !n.is_empty());
        let Some(number) = configured else {
            let mut all = self.by_name.values();
            return Ok(match (all.next(), all.next()) {
                (Some(only), None) => Some(format!("+{}", only.number)),
                _ => None,
            });
        };
        if self.is_empty() {
            return Ok(Some(number.to_string()));
        }
        match self.by_number(number) {
            Some(ivr) => Ok(Some(format!("+{}", ivr.number))),
            None => {
                let answered: Vec<String> = self
                    .by_name
                    .values()
                    .map(|i| format!("+{} ({})", i.number, i.file))
                    .collect();
                Err(format!(
                    "africastalking.voice_number {number}: no IVR answers it (they answer {}), so \
                     a call placed from it would hear \"this number is not in service\": set it to \
                     a number an IVR answers, or leave it unset to call from the IVR's own number",
                    answered.join(", ")
                ))
            }
        }
    }
}

/// Digits of a phone number once `+`, a leading `00`, spaces, dashes, dots and parentheses
/// are removed; `None` if anything else remains or nothing does.
pub fn normalize_number(raw: &str) -> Option<String> {
    let kept: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = kept
        .strip_prefix('+')
        .or_else(|| kept.strip_prefix("00"))
        .unwrap_or(&kept);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_normalize() {
        for raw in [
            "+254711000000",
            "254711000000",
            " +254 711 000000",
            "00254711000000",
        ] {
            assert_eq!(
                normalize_number(raw).as_deref(),
                Some("254711000000"),
                "{raw}"
            );
        }
        assert_eq!(normalize_number("sip@x"), None);
        assert_eq!(normalize_number("+"), None);
    }
}
