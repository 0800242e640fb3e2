//! data_sm: the carrier of USSD centres that use it both ways (text in message_payload only;
//! data_sm has no short_message). esm_class is always written as 0.

use super::message::{Common, TooLong, UssdMessage, read_common, ussd_tlvs, with_common};
use rusmpp::Pdu;
use rusmpp::pdus::DataSm;
use rusmpp::tlvs::MessageSubmissionRequestTlvValue;

/// Reads a data_sm.
pub fn from_data_sm(p: &DataSm) -> UssdMessage {
    read_common!(p, Vec::new())
}

/// Writes a data_sm.
///
/// # Errors
/// An address or service_type too long for its field.
pub fn to_data_sm(m: &UssdMessage) -> Result<Pdu, TooLong> {
    Ok(with_common!(DataSm::builder(), Common::of(m)?)
        .tlvs(ussd_tlvs!(MessageSubmissionRequestTlvValue, m, true))
        .build()
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::smpp::wire::message::Address;

    #[test]
    fn round_trip_with_payload() {
        let m = UssdMessage {
            service_type: "USSD".into(),
            source: Address::international("254700000001"),
            dest: Address::unknown("*384#"),
            data_coding: 8,
            body: vec![0, b'A'],
            op: Some(18),
            its: Some([1, 2]),
            umr: None,
        };
        let Pdu::DataSm(d) = to_data_sm(&m).unwrap() else {
            panic!()
        };
        assert_eq!(u8::from(d.esm_class), 0);
        assert_eq!(from_data_sm(&d), m);
    }
}
