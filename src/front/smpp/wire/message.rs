//! One USSD message, whichever PDU carries it.
//!
//! deliver_sm, submit_sm and data_sm carry the same things for USSD (addresses, a data
//! coding, the text, and the ussd_service_op / its_session_info / user_message_reference
//! TLVs), in different places. [`UssdMessage`] is that common shape: [`super::sm`] and
//! [`super::data_sm`] read it from and write it to their PDUs, and the rest of the front only
//! deals with it.

use rusmpp::tlvs::{Tlv, TlvValue};
use rusmpp::types::COctetString;
use rusmpp::values::{DataCoding, EsmClass, Npi, ServiceType, Ton};

/// An SMPP address with its type of number and numbering plan.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Address {
    /// type_of_number.
    pub ton: u8,
    /// numbering_plan_indicator.
    pub npi: u8,
    /// The digits (or short code).
    pub addr: String,
}

impl Address {
    /// An international ISDN number (ton 1, npi 1).
    pub fn international(addr: &str) -> Address {
        Address {
            ton: 1,
            npi: 1,
            addr: addr.to_string(),
        }
    }

    /// A short code / unknown number (ton 0, npi 0... as USSD centres send service codes).
    pub fn unknown(addr: &str) -> Address {
        Address {
            ton: 0,
            npi: 0,
            addr: addr.to_string(),
        }
    }
}

/// A USSD message in any carrier PDU.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct UssdMessage {
    /// service_type.
    pub service_type: String,
    /// source_addr.
    pub source: Address,
    /// destination_addr.
    pub dest: Address,
    /// data_coding.
    pub data_coding: u8,
    /// The text octets (short_message, or message_payload when present).
    pub body: Vec<u8>,
    /// ussd_service_op.
    pub op: Option<u8>,
    /// its_session_info, both octets.
    pub its: Option<[u8; 2]>,
    /// user_message_reference.
    pub umr: Option<u16>,
}

/// Why a message could not be put into a PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} does not fit its PDU field")]
pub struct TooLong {
    /// Which field.
    pub field: &'static str,
}

impl UssdMessage {
    /// Reads the USSD TLVs (and message_payload) of a PDU's TLV list.
    pub(crate) fn read_tlvs(&mut self, tlvs: &[Tlv]) -> Option<Vec<u8>> {
        let mut payload = None;
        for tlv in tlvs {
            match tlv.value() {
                Some(TlvValue::UssdServiceOp(op)) => self.op = Some(u8::from(*op)),
                Some(TlvValue::ItsSessionInfo(i)) => {
                    self.its = Some([i.session_number, i.sequence_number]);
                }
                Some(TlvValue::UserMessageReference(u)) => self.umr = Some(u.value),
                Some(TlvValue::MessagePayload(p)) => payload = Some(p.value.to_vec()),
                _ => {}
            }
        }
        payload
    }
}

/// The USSD TLVs of `m` as one TLV family of rusmpp (they share variant names).
macro_rules! ussd_tlvs {
    ($family:ty, $m:expr, $with_payload:expr) => {{
        type F = $family;
        let m: &$crate::front::smpp::wire::message::UssdMessage = $m;
        let mut v: Vec<F> = Vec::new();
        if let Some(op) = m.op {
            v.push(F::UssdServiceOp(rusmpp::values::UssdServiceOp::from(op)));
        }
        if let Some([a, b]) = m.its {
            v.push(F::ItsSessionInfo(rusmpp::values::ItsSessionInfo::new(a, b)));
        }
        if let Some(u) = m.umr {
            v.push(F::UserMessageReference(
                rusmpp::values::UserMessageReference::new(u),
            ));
        }
        if $with_payload {
            v.push(F::MessagePayload(rusmpp::values::MessagePayload::new(
                rusmpp::types::AnyOctetString::from_vec(m.body.clone()),
            )));
        }
        v
    }};
}
pub(crate) use ussd_tlvs;

/// The fields every carrier shares, converted for rusmpp.
pub(crate) struct Common {
    pub service_type: ServiceType,
    pub source_ton: Ton,
    pub source_npi: Npi,
    pub source: COctetString<1, 21>,
    pub dest_ton: Ton,
    pub dest_npi: Npi,
    pub dest: COctetString<1, 21>,
    /// Always 0 (default mode, normal message): rusmpp's `EsmClass::default()` encodes 0x08.
    pub esm_class: EsmClass,
    pub data_coding: DataCoding,
}

impl Common {
    pub fn of(m: &UssdMessage) -> Result<Common, TooLong> {
        let addr = |s: &str, field| {
            s.parse::<COctetString<1, 21>>()
                .map_err(|_| TooLong { field })
        };
        Ok(Common {
            service_type: ServiceType::new(m.service_type.parse::<COctetString<1, 6>>().map_err(
                |_| TooLong {
                    field: "service_type",
                },
            )?),
            source_ton: Ton::from(m.source.ton),
            source_npi: Npi::from(m.source.npi),
            source: addr(&m.source.addr, "source_addr")?,
            dest_ton: Ton::from(m.dest.ton),
            dest_npi: Npi::from(m.dest.npi),
            dest: addr(&m.dest.addr, "destination_addr")?,
            esm_class: EsmClass::from(0u8),
            data_coding: DataCoding::from(m.data_coding),
        })
    }
}

/// A PDU builder (deliver_sm, submit_sm, data_sm: rusmpp gives each its own type, with the same
/// setter names) with the fields every carrier shares set from a [`Common`].
macro_rules! with_common {
    ($builder:expr, $c:expr) => {{
        let c: $crate::front::smpp::wire::message::Common = $c;
        $builder
            .service_type(c.service_type)
            .source_addr_ton(c.source_ton)
            .source_addr_npi(c.source_npi)
            .source_addr(c.source)
            .dest_addr_ton(c.dest_ton)
            .dest_addr_npi(c.dest_npi)
            .destination_addr(c.dest)
            .esm_class(c.esm_class)
            .data_coding(c.data_coding)
    }};
}
pub(crate) use with_common;

/// The [`UssdMessage`] of a deliver_sm, submit_sm or data_sm (same field names): the shared
/// fields, the USSD TLVs, and the text from `$body` unless message_payload is present.
macro_rules! read_common {
    ($p:expr, $body:expr) => {{
        let p = $p;
        let mut m = $crate::front::smpp::wire::message::UssdMessage {
            service_type: p.service_type.value().to_string(),
            source: $crate::front::smpp::wire::message::address(
                p.source_addr_ton,
                p.source_addr_npi,
                &p.source_addr,
            ),
            dest: $crate::front::smpp::wire::message::address(
                p.dest_addr_ton,
                p.dest_addr_npi,
                &p.destination_addr,
            ),
            data_coding: u8::from(p.data_coding),
            body: $body,
            ..Default::default()
        };
        if let Some(payload) = m.read_tlvs(p.tlvs()) {
            m.body = payload;
        }
        m
    }};
}
pub(crate) use read_common;

/// Reads the shared fields back.
pub(crate) fn address(ton: Ton, npi: Npi, addr: &COctetString<1, 21>) -> Address {
    Address {
        ton: u8::from(ton),
        npi: u8::from(npi),
        addr: addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esm_class_zero_really_encodes_zero() {
        assert_eq!(u8::from(EsmClass::from(0u8)), 0);
        assert_ne!(
            u8::from(EsmClass::default()),
            0,
            "rusmpp 0.4 pitfall still present"
        );
    }
}
