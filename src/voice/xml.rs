//! Africa's Talking voice XML: a typed model of every action and its renderer.
//!
//! AT answers a voice callback by reading `<?xml version="1.0" encoding="UTF-8"?><Response>...`
//! with one element per action (reference §2.2). Everything here is written through quick-xml's
//! writer, so every text and attribute value is escaped (`<>&"'` become entities) and characters
//! that XML 1.0 cannot carry at all (most C0 controls, U+FFFE, U+FFFF) are dropped: whatever a
//! flow author or a caller puts in a text, the response stays well-formed.
//!
//! Attribute names, order and spelling follow AT's documentation and the founding app. Optional
//! attributes are omitted when `None`; booleans are written `true`/`false`. The one spelling AT's
//! own documents disagree on, the Dial ringback attribute (`ringbackTone` in the sample XML,
//! `ringBackTone` in the attribute table), is chosen by [`RenderOptions::ringback_attribute`].
//!
//! `<Reject/>` must be the only element of a response. The IVR loader refuses files that mix it
//! with anything; [`render`] itself, given such a list, drops every other action with a warning
//! and renders `<Response><Reject/></Response>` (rejecting is what the author asked for, and a
//! rejected call is never charged).

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use std::borrow::Cow;

/// The Dial ringback attribute the founding app writes (and the default).
pub const DEFAULT_RINGBACK_ATTRIBUTE: &str = "ringbackTone";

/// The Content-Type to answer voice callbacks with.
pub const CONTENT_TYPE: &str = "application/xml";

/// One action of a voice response, run by AT in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `<Say>`: speak a text.
    Say(Say),
    /// `<Play url=".."/>`: play an audio file.
    Play(Play),
    /// `<GetDigits>`: collect DTMF digits (AT posts them to `callbackUrl`).
    GetDigits(GetDigits),
    /// `<Dial>`: connect the call to other numbers or SIP addresses.
    Dial(Dial),
    /// `<Record>`: a partial recording with attributes, or the terminal `<Record/>`.
    Record(Record),
    /// `<Enqueue>`: put the caller in a named queue.
    Enqueue(Enqueue),
    /// `<Dequeue>`: take the next caller out of a queue.
    Dequeue(Dequeue),
    /// `<Conference/>`: everyone who dials the number joins one conference.
    Conference,
    /// `<Redirect>url</Redirect>`: hand call control to the script at `url`.
    Redirect(String),
    /// `<Reject/>`: refuse the call without charge; must be the only element.
    Reject,
}

/// `<Say voice=".." playBeep="..">text</Say>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Say {
    /// What is spoken.
    pub text: String,
    /// `voice`: the voice name (`man`/`woman` in the old docs, Google-style names on newer stacks).
    pub voice: Option<String>,
    /// `playBeep`: beep after the text (AT default false).
    pub play_beep: Option<bool>,
}

impl Say {
    /// A plain `<Say>` with no attributes.
    pub fn text(text: impl Into<String>) -> Say {
        Say {
            text: text.into(),
            ..Say::default()
        }
    }
}

/// `<Play url=".."/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Play {
    /// `url` (required): the audio file, https in production.
    pub url: String,
}

/// What GetDigits or Record say or play before listening: one or the other, never both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// A nested `<Say>`.
    Say(Say),
    /// A nested `<Play>`.
    Play(Play),
}

/// `<GetDigits timeout=".." finishOnKey=".." numDigits=".." callbackUrl="..">prompt</GetDigits>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetDigits {
    /// The nested prompt, if any.
    pub prompt: Option<Prompt>,
    /// `numDigits`: how many digits to collect.
    pub num_digits: Option<u32>,
    /// `timeout`: seconds to wait (AT default 30); then the next action runs.
    pub timeout: Option<u32>,
    /// `finishOnKey`: the key that ends input (one character).
    pub finish_on_key: Option<String>,
    /// `callbackUrl`: where AT posts the digits.
    pub callback_url: Option<String>,
}

/// `<Dial phoneNumbers=".." record=".." sequential=".." callerId=".." ringbackTone=".." maxDuration=".."/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dial {
    /// `phoneNumbers` (required): numbers or SIP addresses, joined with commas.
    pub phone_numbers: Vec<String>,
    /// `record`: record the call (the URL arrives in `recordingUrl`).
    pub record: Option<bool>,
    /// `sequential`: ring one after another instead of all at once.
    pub sequential: Option<bool>,
    /// `callerId`: our AT number to present.
    pub caller_id: Option<String>,
    /// The ringback tone URL (attribute name from [`RenderOptions::ringback_attribute`]).
    pub ringback_tone: Option<String>,
    /// `maxDuration`: seconds.
    pub max_duration: Option<u32>,
}

/// `<Record ...>prompt</Record>`; with no prompt and no attributes it is the terminal
/// `<Record/>`, which records until hangup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The nested prompt, if any.
    pub prompt: Option<Prompt>,
    /// `finishOnKey`: the key that stops recording.
    pub finish_on_key: Option<String>,
    /// `maxLength`: seconds.
    pub max_length: Option<u32>,
    /// `timeout`: seconds (AT default 3600).
    pub timeout: Option<u32>,
    /// `trimSilence`: cut leading and trailing silence.
    pub trim_silence: Option<bool>,
    /// `playBeep`: beep before recording.
    pub play_beep: Option<bool>,
    /// `callbackUrl`: where AT posts `recordingUrl`.
    pub callback_url: Option<String>,
}

impl Record {
    /// Whether this is the terminal `<Record/>` (no prompt, no attributes).
    pub fn is_terminal(&self) -> bool {
        *self == Record::default()
    }
}

/// `<Enqueue holdMusic=".." name=".."/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enqueue {
    /// `holdMusic`: audio URL played while waiting.
    pub hold_music: Option<String>,
    /// `name`: the queue.
    pub name: Option<String>,
}

/// `<Dequeue phoneNumber=".." name=".."/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dequeue {
    /// `phoneNumber` (required): the number callers dialled to join the queue.
    pub phone_number: String,
    /// `name`: the queue.
    pub name: Option<String>,
}

/// How to render what AT's documents leave open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// The Dial ringback attribute name: `ringbackTone` (default, as the founding app and AT's
    /// sample XML) or `ringBackTone` (AT's attribute table and Node SDK).
    pub ringback_attribute: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            ringback_attribute: DEFAULT_RINGBACK_ATTRIBUTE.to_string(),
        }
    }
}

/// Renders a complete response document. A list holding [`Action::Reject`] renders as
/// `<Response><Reject/></Response>` alone (the other actions are dropped with a warning).
pub fn render(actions: &[Action], opts: &RenderOptions) -> String {
    let rejected = actions.iter().any(|a| matches!(a, Action::Reject));
    let actions: &[Action] = if rejected && actions.len() > 1 {
        tracing::warn!(
            dropped = actions.len() - 1,
            "voice: Reject must be the only action; dropping the others"
        );
        &[Action::Reject]
    } else {
        actions
    };
    let mut w = Writer::new(Vec::with_capacity(256));
    // unwrap: writing into a Vec<u8> cannot fail.
    write_document(&mut w, actions, opts).expect("writing to a Vec cannot fail");
    // Every piece written came from a &str, so the bytes are UTF-8.
    String::from_utf8(w.into_inner())
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

type W = Writer<Vec<u8>>;

fn write_document(w: &mut W, actions: &[Action], opts: &RenderOptions) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    if actions.is_empty() {
        return w.write_event(Event::Empty(BytesStart::new("Response")));
    }
    w.write_event(Event::Start(BytesStart::new("Response")))?;
    for action in actions {
        write_action(w, action, opts)?;
    }
    w.write_event(Event::End(BytesEnd::new("Response")))
}

fn write_action(w: &mut W, action: &Action, opts: &RenderOptions) -> std::io::Result<()> {
    match action {
        Action::Say(say) => write_say(w, say),
        Action::Play(play) => write_play(w, play),
        Action::GetDigits(g) => {
            let mut el = BytesStart::new("GetDigits");
            num(&mut el, "timeout", g.timeout);
            text_attr(&mut el, "finishOnKey", g.finish_on_key.as_deref());
            num(&mut el, "numDigits", g.num_digits);
            text_attr(&mut el, "callbackUrl", g.callback_url.as_deref());
            write_with_prompt(w, el, g.prompt.as_ref())
        }
        Action::Dial(d) => {
            let mut el = BytesStart::new("Dial");
            let numbers = d.phone_numbers.join(",");
            text_attr(&mut el, "phoneNumbers", Some(&numbers));
            flag(&mut el, "record", d.record);
            flag(&mut el, "sequential", d.sequential);
            text_attr(&mut el, "callerId", d.caller_id.as_deref());
            text_attr(
                &mut el,
                &opts.ringback_attribute,
                d.ringback_tone.as_deref(),
            );
            num(&mut el, "maxDuration", d.max_duration);
            w.write_event(Event::Empty(el))
        }
        Action::Record(r) => {
            let mut el = BytesStart::new("Record");
            text_attr(&mut el, "finishOnKey", r.finish_on_key.as_deref());
            num(&mut el, "maxLength", r.max_length);
            num(&mut el, "timeout", r.timeout);
            flag(&mut el, "trimSilence", r.trim_silence);
            flag(&mut el, "playBeep", r.play_beep);
            text_attr(&mut el, "callbackUrl", r.callback_url.as_deref());
            write_with_prompt(w, el, r.prompt.as_ref())
        }
        Action::Enqueue(q) => {
            let mut el = BytesStart::new("Enqueue");
            text_attr(&mut el, "holdMusic", q.hold_music.as_deref());
            text_attr(&mut el, "name", q.name.as_deref());
            w.write_event(Event::Empty(el))
        }
        Action::Dequeue(q) => {
            let mut el = BytesStart::new("Dequeue");
            text_attr(&mut el, "phoneNumber", Some(&q.phone_number));
            text_attr(&mut el, "name", q.name.as_deref());
            w.write_event(Event::Empty(el))
        }
        Action::Conference => w.write_event(Event::Empty(BytesStart::new("Conference"))),
        Action::Redirect(url) => write_text_element(w, BytesStart::new("Redirect"), url),
        Action::Reject => w.write_event(Event::Empty(BytesStart::new("Reject"))),
    }
}

fn write_say(w: &mut W, say: &Say) -> std::io::Result<()> {
    let mut el = BytesStart::new("Say");
    text_attr(&mut el, "voice", say.voice.as_deref());
    flag(&mut el, "playBeep", say.play_beep);
    write_text_element(w, el, &say.text)
}

fn write_play(w: &mut W, play: &Play) -> std::io::Result<()> {
    let mut el = BytesStart::new("Play");
    text_attr(&mut el, "url", Some(&play.url));
    w.write_event(Event::Empty(el))
}

fn write_with_prompt(
    w: &mut W,
    el: BytesStart<'_>,
    prompt: Option<&Prompt>,
) -> std::io::Result<()> {
    let Some(prompt) = prompt else {
        return w.write_event(Event::Empty(el));
    };
    let end = el.to_end().into_owned();
    w.write_event(Event::Start(el))?;
    match prompt {
        Prompt::Say(say) => write_say(w, say)?,
        Prompt::Play(play) => write_play(w, play)?,
    }
    w.write_event(Event::End(end))
}

fn write_text_element(w: &mut W, el: BytesStart<'_>, text: &str) -> std::io::Result<()> {
    let end = el.to_end().into_owned();
    w.write_event(Event::Start(el))?;
    let text = xml_chars(text);
    if !text.is_empty() {
        w.write_event(Event::Text(BytesText::new(&text)))?;
    }
    w.write_event(Event::End(end))
}

/// Adds an attribute; quick-xml escapes the value.
fn text_attr(el: &mut BytesStart<'_>, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        let value = xml_chars(value);
        el.push_attribute((name, value.as_ref()));
    }
}

fn flag(el: &mut BytesStart<'_>, name: &str, value: Option<bool>) {
    text_attr(el, name, value.map(|b| if b { "true" } else { "false" }));
}

fn num(el: &mut BytesStart<'_>, name: &str, value: Option<u32>) {
    if let Some(n) = value {
        el.push_attribute((name, n.to_string().as_str()));
    }
}

/// Whether XML 1.0 allows `c` in a document at all (its `Char` production).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `s` without the characters XML 1.0 cannot carry (escaping cannot help those).
fn xml_chars(s: &str) -> Cow<'_, str> {
    if s.chars().all(is_xml_char) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|&c| is_xml_char(c)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

    #[test]
    fn empty_list_is_an_empty_response() {
        assert_eq!(
            render(&[], &RenderOptions::default()),
            format!("{DECL}<Response/>")
        );
    }

    #[test]
    fn reject_stands_alone() {
        let xml = render(
            &[Action::Say(Say::text("hi")), Action::Reject],
            &RenderOptions::default(),
        );
        assert_eq!(xml, format!("{DECL}<Response><Reject/></Response>"));
    }

    #[test]
    fn control_characters_are_dropped_and_markup_escaped() {
        let xml = render(
            &[Action::Say(Say::text("a\u{1}<b>&\u{FFFF}"))],
            &RenderOptions::default(),
        );
        assert_eq!(
            xml,
            format!("{DECL}<Response><Say>a&lt;b&gt;&amp;</Say></Response>")
        );
    }

    #[test]
    fn terminal_record() {
        assert!(Record::default().is_terminal());
        let xml = render(
            &[Action::Record(Record::default())],
            &RenderOptions::default(),
        );
        assert_eq!(xml, format!("{DECL}<Response><Record/></Response>"));
    }
}
