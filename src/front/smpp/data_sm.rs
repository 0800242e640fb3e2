//! data_sm: the carrier of USSD centres that use it both ways (text in message_payload only;
//! data_sm has no short_message). esm_class is always written as 0.

use super::message::{Common, TooLong, UssdMessage, address, ussd_tlvs};
use rusmpp::Pdu;
use rusmpp::pdus::DataSm;
use rusmpp::tlvs::MessageSubmissionRequestTlvValue;

/// Reads a data_sm.
pub fn from_data_sm(p: &DataSm) -> UssdMessage {
    let mut m = UssdMessage {
        service_type: p.service_type.value().to_string(),
        source: address(p.source_addr_ton, p.source_addr_npi, &p.source_addr),
        dest: address(p.dest_addr_ton, p.dest_addr_npi, &p.destination_addr),
        data_coding: u8::from(p.data_coding),
        ..UssdMessage::default()
    };
    if let Some(payload) = m.read_tlvs(p.tlvs()) {
        m.body = payload;
    }
    m
}

/// Writes a data_sm.
///
/// # Errors
/// An address or service_type too long for its field.
pub fn to_data_sm(m: &UssdMessage) -> Result<Pdu, TooLong> {
    let c = Common::of(m)?;
    Ok(DataSm::builder()
        .service_type(c.service_type)
        .source_addr_ton(c.source_ton)
        .source_addr_npi(c.source_npi)
        .source_addr(c.source)
        .dest_addr_ton(c.dest_ton)
        .dest_addr_npi(c.dest_npi)
        .destination_addr(c.dest)
        .esm_class(c.esm_class)
        .data_coding(c.data_coding)
        .tlvs(ussd_tlvs!(MessageSubmissionRequestTlvValue, m, true))
        .build()
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::smpp::message::Address;

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
