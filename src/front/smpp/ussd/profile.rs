//! What a profile means on the wire: how a reply says "last screen" (ussd_service_op,
//! its_session_info bit 0) and how the session TLV goes back. The profile itself, presets and
//! overrides, is configuration ([`crate::config::smpp::profile`]).

use crate::config::smpp::profile::{Echo, EndSignal, Profile};

impl Profile {
    /// Whether replies set its_session_info bit 0 on the last screen.
    pub fn end_by_bit(&self) -> bool {
        matches!(self.end_signal, EndSignal::Bit | EndSignal::Both)
    }

    /// The ussd_service_op of a reply.
    pub fn reply_op(&self, end: bool) -> u8 {
        if end && matches!(self.end_signal, EndSignal::Op | EndSignal::Both) {
            self.end_op
        } else {
            self.continue_op
        }
    }

    /// The its_session_info of a reply to one that carried `received`.
    pub fn reply_its(&self, received: [u8; 2], end: bool) -> [u8; 2] {
        let bit = u8::from(end && self.end_by_bit());
        let second = match self.echo {
            Echo::AsReceived => (received[1] & 0xFE) | bit,
            Echo::Advance => (received[1] & 0xFE).wrapping_add(2) | bit,
        };
        [received[0], second]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::smpp::profile::ProfileConfig;

    #[test]
    fn end_signals_and_echo() {
        let p = Profile::preset("its_session_info").unwrap();
        assert_eq!((p.reply_op(false), p.reply_op(true)), (2, 17));
        assert_eq!(p.reply_its([7, 4], false), [7, 4]);
        assert_eq!(p.reply_its([7, 4], true), [7, 5]);
        let tata = Profile::preset("tata").unwrap();
        assert_eq!(tata.reply_op(true), 2);
        assert_eq!(tata.reply_its([7, 4], true), [7, 5]);
        let mica = Profile::preset("mica").unwrap();
        assert_eq!(mica.reply_op(true), 17);
        assert_eq!(mica.reply_its([7, 4], true), [7, 4]);
        let adv = ProfileConfig {
            echo: Some(Echo::Advance),
            ..Default::default()
        }
        .resolve("adv")
        .unwrap();
        assert_eq!(adv.reply_its([7, 4], false), [7, 6]);
        assert_eq!(adv.reply_its([7, 4], true), [7, 7]);
    }
}
