//! The SMPP wire: framing and the PDUs the front reads and writes, with no connection and no
//! dialogue in them.
//!
//! - [`codec`]: framing that answers malformed input instead of dropping the connection;
//! - [`message`]: [`message::UssdMessage`], the common shape of a USSD message whatever PDU
//!   carries it; [`sm`], [`data_sm`]: that shape read from and written to deliver_sm /
//!   submit_sm and data_sm;
//! - [`bind`], [`generic_nack`]: the bind PDUs and the answers to what cannot be served;
//! - [`encoding`]: GSM 03.38 / UCS-2 / Latin-1 text.

pub mod bind;
pub mod codec;
pub mod data_sm;
pub mod encoding;
pub mod generic_nack;
pub mod message;
pub mod sm;
