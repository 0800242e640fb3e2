//! The AT voice front's logic: IVR menus from config answered with AT voice XML.
//!
//! Africa's Talking calls the gateway when a call to (or from) one of our voice numbers starts,
//! after digits are pressed, and once more when the call ends. This module turns each callback
//! into an answer without touching HTTP, so all of it is testable as plain functions:
//!
//! - [`xml`]: a typed model of every AT voice action and its renderer (quick-xml, escaped);
//! - [`ivr`]: IVRs (menus and action lists) loaded from `config/ivr/*.yaml`;
//! - [`callback`]: the callback form, the endpoint it reached, and the answer;
//! - [`calls`]: call records from the final `isActive=0` callback, kept in the store.
//!
//! The HTTP front maps `POST /voice/callback`, `POST /voice/dtmf/{ivr}[/{menu}]` and
//! `POST /voice/menu/{ivr}[/{menu}]` on the public listener to [`VoicePath`] and calls
//! [`parse_callback`], [`answer`] and, for [`VoiceAnswer::Recorded`], [`store_call_record`].
//! `docs/voice.md` is the operator's and IVR author's guide.

pub mod callback;
pub mod calls;
pub mod ivr;
mod ivr_actions;
mod ivr_file;
mod ivr_load;
pub mod xml;

pub use callback::{NOT_IN_SERVICE, VoiceAnswer, VoiceCallback, VoicePath, answer, parse_callback};
pub use calls::{CallRecord, call_records, store_call_record};
pub use ivr::{DEFAULT_PUBLIC_BASE_URL, Ivr, IvrSet, Menu, Step};
pub use xml::{
    Action, CONTENT_TYPE, DEFAULT_RINGBACK_ATTRIBUTE, Dequeue, Dial, Enqueue, GetDigits, Play,
    Prompt, Record, RenderOptions, Say, render,
};
