//! Texts per language: as authors write them ([`Text`]: one string, or a map of language code
//! to string) and as compiled ([`Localized`]: one value per language, picked at runtime by the
//! dialogue's language).
//!
//! Every text a flow shows (screen texts, option labels, validator errors, the apology, the
//! navigation labels, the resume question) may be written either way, so the header, every
//! screen type and the engine share these.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::fmt;

/// A text that is either one string or a map of language code to string, in file order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Text {
    /// The same text in every language.
    One(String),
    /// `{en: ..., sw: ...}`: one text per language, in the order written.
    Langs(Vec<(String, String)>),
}

impl Text {
    pub(crate) fn plain(s: &str) -> Text {
        Text::One(s.to_string())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a map of language code to string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text::plain(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
                let mut langs = Vec::new();
                while let Some((lang, text)) = map.next_entry::<String, String>()? {
                    langs.push((lang, text));
                }
                if langs.is_empty() {
                    return Err(de::Error::custom("empty language map"));
                }
                Ok(Text::Langs(langs))
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

impl schemars::JsonSchema for Text {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Text".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A text: one string, or a map of language code to string ({en: ..., sw: ...}).",
            "anyOf": [
                { "type": "string" },
                { "type": "object", "additionalProperties": { "type": "string" }, "minProperties": 1 }
            ]
        })
    }
}

/// A value per language; a plain text is stored under the key `""`.
#[derive(Debug, Clone)]
pub(crate) struct Localized<T>(pub Vec<(String, T)>);

impl<T> Localized<T> {
    /// The entry for `lang`, else for `default`, else the first one.
    pub(crate) fn pick(&self, lang: &str, default: &str) -> &T {
        let find = |l: &str| self.0.iter().find(|(k, _)| k == l).map(|(_, v)| v);
        // index: a Localized is never empty (the loader builds at least one entry).
        match find(lang).or_else(|| find(default)) {
            Some(v) => v,
            None => &self.0[0].1,
        }
    }
}

/// A text with no template in it (the apology, the navigation labels, the resume question),
/// or `default` when the flow does not set it.
pub(crate) fn fixed(t: Option<&Text>, default: &str) -> Localized<String> {
    match t {
        None => Localized(vec![(String::new(), default.to_string())]),
        Some(Text::One(s)) => Localized(vec![(String::new(), s.clone())]),
        Some(Text::Langs(l)) => Localized(l.clone()),
    }
}

/// The text in `lang`, else in the first language written.
pub(crate) fn label_in(t: &Text, lang: &str) -> String {
    match t {
        Text::One(s) => s.clone(),
        // index: a language map is never empty (the `Text` deserialiser rejects `{}`).
        Text::Langs(l) => l.iter().find(|(k, _)| k == lang).unwrap_or(&l[0]).1.clone(),
    }
}

/// Every (language, text) pair; a plain text under `""`.
pub(crate) fn entries(t: &Text) -> Vec<(String, &str)> {
    match t {
        Text::One(s) => vec![(String::new(), s.as_str())],
        Text::Langs(l) => l.iter().map(|(k, v)| (k.clone(), v.as_str())).collect(),
    }
}
