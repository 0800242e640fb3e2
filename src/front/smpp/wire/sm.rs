//! deliver_sm and submit_sm: the usual carriers of a USSD dialogue.
//!
//! Towards the application (the gateway as ESME) the network sends deliver_sm and the
//! application answers with submit_sm; a listener peer (the gateway as SMSC) does the reverse.
//! The text is in short_message; when message_payload is present it wins (some centres send
//! both, short_message empty), and a reply longer than 255 octets goes out in message_payload.
//! esm_class is always written as 0.

use super::message::{Common, TooLong, UssdMessage, read_common, ussd_tlvs, with_common};
use rusmpp::Pdu;
use rusmpp::pdus::{DeliverSm, SubmitSm};
use rusmpp::tlvs::{MessageDeliveryRequestTlvValue, MessageSubmissionRequestTlvValue};
use rusmpp::types::OctetString;

/// Reads a deliver_sm.
pub fn from_deliver_sm(p: &DeliverSm) -> UssdMessage {
    read_common!(p, p.short_message().as_ref().to_vec())
}

/// Reads a submit_sm.
pub fn from_submit_sm(p: &SubmitSm) -> UssdMessage {
    read_common!(p, p.short_message().as_ref().to_vec())
}

/// short_message, or (when the text is longer than `max` octets) empty plus message_payload.
fn short_message(m: &UssdMessage, max: usize) -> (OctetString<0, 255>, bool) {
    match OctetString::<0, 255>::from_slice(&m.body) {
        Ok(sm) if m.body.len() <= max => (sm, false),
        _ => (OctetString::empty(), true),
    }
}

/// Writes a deliver_sm.
///
/// # Errors
/// An address or service_type too long for its field.
pub fn to_deliver_sm(m: &UssdMessage) -> Result<Pdu, TooLong> {
    let (sm, payload) = short_message(m, 255);
    Ok(with_common!(DeliverSm::builder(), Common::of(m)?)
        .short_message(sm)
        .tlvs(ussd_tlvs!(MessageDeliveryRequestTlvValue, m, payload))
        .build()
        .into())
}

/// Writes a submit_sm.
///
/// # Errors
/// An address or service_type too long for its field.
pub fn to_submit_sm(m: &UssdMessage) -> Result<Pdu, TooLong> {
    submit_sm(m, 255)
}

/// Writes a submit_sm for a plain SMS (no USSD TLVs in `m`): a text longer than one SMS (160
/// octets of unpacked GSM 7-bit, 140 of UCS-2) goes in message_payload, for the SMSC to split.
///
/// # Errors
/// An address or service_type too long for its field.
pub fn to_sms_submit_sm(m: &UssdMessage) -> Result<Pdu, TooLong> {
    submit_sm(m, if m.data_coding == 8 { 140 } else { 160 })
}

fn submit_sm(m: &UssdMessage, max_short: usize) -> Result<Pdu, TooLong> {
    let (sm, payload) = short_message(m, max_short);
    Ok(with_common!(SubmitSm::builder(), Common::of(m)?)
        .short_message(sm)
        .tlvs(ussd_tlvs!(MessageSubmissionRequestTlvValue, m, payload))
        .build()
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::smpp::wire::message::Address;

    fn sample() -> UssdMessage {
        UssdMessage {
            service_type: "USSD".into(),
            source: Address::international("254700000001"),
            dest: Address::unknown("384"),
            data_coding: 0,
            body: b"*384*1#".to_vec(),
            op: Some(1),
            its: Some([7, 0]),
            umr: Some(513),
        }
    }

    #[test]
    fn both_carriers_round_trip() {
        let m = sample();
        let Pdu::DeliverSm(d) = to_deliver_sm(&m).unwrap() else {
            panic!()
        };
        assert_eq!(u8::from(d.esm_class), 0);
        assert_eq!(from_deliver_sm(&d), m);
        let Pdu::SubmitSm(s) = to_submit_sm(&m).unwrap() else {
            panic!()
        };
        assert_eq!(from_submit_sm(&s), m);
    }

    #[test]
    fn long_text_moves_to_message_payload() {
        let mut m = sample();
        m.body = vec![b'x'; 300];
        let Pdu::SubmitSm(s) = to_submit_sm(&m).unwrap() else {
            panic!()
        };
        assert_eq!(s.sm_length(), 0);
        assert_eq!(from_submit_sm(&s).body.len(), 300);
        m.dest.addr = "1".repeat(30);
        assert!(to_submit_sm(&m).is_err());
    }

    #[test]
    fn an_sms_longer_than_one_message_goes_in_message_payload() {
        let mut m = sample();
        (m.op, m.its, m.umr) = (None, None, None);
        for (dc, fits, over) in [(0u8, 160, 161), (8, 140, 142)] {
            m.data_coding = dc;
            m.body = vec![b'a'; fits];
            let Pdu::SubmitSm(s) = to_sms_submit_sm(&m).unwrap() else {
                panic!()
            };
            assert_eq!(usize::from(s.sm_length()), fits, "data_coding {dc}");
            assert!(s.tlvs().is_empty(), "no USSD TLVs, no payload");
            m.body = vec![b'a'; over];
            let Pdu::SubmitSm(s) = to_sms_submit_sm(&m).unwrap() else {
                panic!()
            };
            assert_eq!(s.sm_length(), 0, "data_coding {dc}");
            assert_eq!(from_submit_sm(&s).body.len(), over);
        }
    }
}
