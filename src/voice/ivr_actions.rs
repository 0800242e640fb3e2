//! Turning the actions of an IVR file into checked [`Action`]s (part of the loader).

use super::ivr::normalize_number;
use super::ivr_file::{ActionFile, DialFile, PromptFile, RecordFile, SayFile, expand_env};
use super::ivr_load::{Checker, is_dtmf};
use super::xml::{Action, Dequeue, Dial, Enqueue, Play, Prompt, Record, Say};

impl Checker<'_> {
    pub(super) fn action(&mut self, path: &str, a: &ActionFile) -> Option<Action> {
        Some(match a {
            ActionFile::Say(s) => Action::Say(self.say(&format!("{path}.say"), s)?),
            ActionFile::Play(url) => Action::Play(self.play(&format!("{path}.play"), url)?),
            ActionFile::Dial(d) => Action::Dial(self.dial(&format!("{path}.dial"), d)?),
            ActionFile::Record(r) => Action::Record(self.record(&format!("{path}.record"), r)?),
            ActionFile::Enqueue(q) => Action::Enqueue(Enqueue {
                name: q.name.clone(),
                hold_music: self
                    .opt_expand(&format!("{path}.enqueue.hold_music"), &q.hold_music)?,
            }),
            ActionFile::Dequeue(q) => {
                let p = format!("{path}.dequeue.phone_number");
                let phone_number = self.expand(&p, &q.phone_number)?;
                let phone_number = self.phone(&p, &phone_number)?;
                Action::Dequeue(Dequeue {
                    phone_number,
                    name: q.name.clone(),
                })
            }
            ActionFile::Conference => Action::Conference,
            ActionFile::Redirect(url) => {
                Action::Redirect(self.url(&format!("{path}.redirect"), url)?)
            }
            ActionFile::Reject => Action::Reject,
            // Handled by the caller (needs the menu table).
            ActionFile::Menu(_) => return None,
        })
    }

    fn say(&mut self, path: &str, s: &SayFile) -> Option<Say> {
        let say = match s {
            SayFile::Text(t) => Say::text(t.clone()),
            SayFile::Full(f) => Say {
                text: f.text.clone(),
                voice: f.voice.clone(),
                play_beep: f.play_beep,
            },
        };
        if say.text.trim().is_empty() {
            self.err(path, "the text is empty".into());
            return None;
        }
        Some(say)
    }

    fn play(&mut self, path: &str, url: &str) -> Option<Play> {
        Some(Play {
            url: self.url(path, url)?,
        })
    }

    pub(super) fn prompt(&mut self, path: &str, p: &PromptFile) -> Option<Prompt> {
        match p {
            PromptFile::Say(s) => self.say(&format!("{path}.say"), s).map(Prompt::Say),
            PromptFile::Play(u) => self.play(&format!("{path}.play"), u).map(Prompt::Play),
        }
    }

    fn dial(&mut self, path: &str, d: &DialFile) -> Option<Dial> {
        let mut phone_numbers = Vec::new();
        let before = self.errors.len();
        for (i, raw) in d.numbers.iter().enumerate() {
            let p = format!("{path}.numbers[{i}]");
            let Some(expanded) = self.expand(&p, raw) else {
                continue;
            };
            for n in expanded.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if let Some(n) = self.phone(&p, n) {
                    phone_numbers.push(n);
                }
            }
        }
        if phone_numbers.is_empty() && self.errors.len() == before {
            self.err(&format!("{path}.numbers"), "the phone list is empty".into());
        }
        let caller_id = self.opt_expand(&format!("{path}.caller_id"), &d.caller_id)?;
        let ringback_tone = self.opt_expand(&format!("{path}.ringback"), &d.ringback)?;
        if let Some(url) = &ringback_tone
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            self.err(
                &format!("{path}.ringback"),
                format!("{url:?} is not an http:// or https:// URL"),
            );
        }
        (self.errors.len() == before).then_some(Dial {
            phone_numbers,
            record: d.record,
            sequential: d.sequential,
            caller_id,
            ringback_tone,
            max_duration: d.max_duration,
        })
    }

    fn record(&mut self, path: &str, r: &RecordFile) -> Option<Record> {
        let prompt = match &r.prompt {
            Some(p) => Some(self.prompt(&format!("{path}.prompt"), p)?),
            None => None,
        };
        if let Some(k) = &r.finish_on_key
            && !(k.len() == 1 && is_dtmf(k))
        {
            self.err(
                &format!("{path}.finish_on_key"),
                format!("{k:?} must be one of 0-9 * #"),
            );
            return None;
        }
        Some(Record {
            prompt,
            finish_on_key: r.finish_on_key.clone(),
            max_length: r.max_length,
            timeout: r.timeout,
            trim_silence: r.trim_silence,
            play_beep: r.play_beep,
            callback_url: self.opt_expand(&format!("{path}.callback_url"), &r.callback_url)?,
        })
    }

    /// A `+` international number (normalised to `+digits`) or a SIP address (kept as is).
    fn phone(&mut self, path: &str, n: &str) -> Option<String> {
        if n.contains('@') && !n.contains(',') && !n.chars().any(char::is_whitespace) {
            return Some(n.to_string());
        }
        match n.starts_with('+').then(|| normalize_number(n)).flatten() {
            Some(d) if (8..=15).contains(&d.len()) => Some(format!("+{d}")),
            _ => {
                self.err(
                    path,
                    format!("{n:?} is not a + international number or a SIP address"),
                );
                None
            }
        }
    }

    fn url(&mut self, path: &str, raw: &str) -> Option<String> {
        let url = self.expand(path, raw)?;
        if url.trim().is_empty() {
            self.err(path, "the URL is empty".into());
            return None;
        }
        Some(url)
    }

    /// `Some(None)` for an absent value, or one that expands to nothing (`${VAR:-}` with `VAR`
    /// unset: the attribute is left out), `None` after an error.
    fn opt_expand(&mut self, path: &str, raw: &Option<String>) -> Option<Option<String>> {
        match raw {
            None => Some(None),
            Some(r) => self
                .expand(path, r)
                .map(|v| Some(v).filter(|v| !v.trim().is_empty())),
        }
    }

    pub(super) fn expand(&mut self, path: &str, raw: &str) -> Option<String> {
        match expand_env(raw, self.env) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }
}
