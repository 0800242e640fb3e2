//! bind_transceiver / bind_transmitter / bind_receiver and their responses, in both roles.

use rusmpp::pdus::{
    BindReceiver, BindReceiverResp, BindTransceiver, BindTransceiverResp, BindTransmitter,
    BindTransmitterResp,
};
use rusmpp::types::COctetString;
use rusmpp::values::{InterfaceVersion, Npi, Ton};
use rusmpp::{CommandId, Pdu};

/// Which kind of bind a connection makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindKind {
    /// Both directions.
    Transceiver,
    /// The ESME sends.
    Transmitter,
    /// The ESME receives.
    Receiver,
}

impl BindKind {
    /// Whether the MC may send deliver_sm / data_sm to the ESME on this bind.
    pub fn mc_may_send(self) -> bool {
        self != BindKind::Transmitter
    }

    /// Whether the ESME may send submit_sm / data_sm on this bind.
    pub fn esme_may_send(self) -> bool {
        self != BindKind::Receiver
    }

    /// The command id of the response to this bind.
    pub fn response_id(self) -> CommandId {
        match self {
            BindKind::Transceiver => CommandId::BindTransceiverResp,
            BindKind::Transmitter => CommandId::BindTransmitterResp,
            BindKind::Receiver => CommandId::BindReceiverResp,
        }
    }

    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BindKind::Transceiver => "transceiver",
            BindKind::Transmitter => "transmitter",
            BindKind::Receiver => "receiver",
        }
    }
}

/// What a bind presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// system_id.
    pub system_id: String,
    /// password.
    pub password: String,
    /// system_type.
    pub system_type: String,
    /// interface_version octet.
    pub version: u8,
    /// address_range.
    pub address_range: String,
}

fn cstr<const MIN: usize, const MAX: usize>(s: &str) -> COctetString<MIN, MAX> {
    // Lengths were validated with the config; anything else degrades to empty.
    s.parse().unwrap_or_else(|_| COctetString::empty())
}

macro_rules! build_bind {
    ($t:ty, $c:expr) => {
        <$t>::builder()
            .system_id(cstr($c.system_id.as_str()))
            .password(cstr($c.password.as_str()))
            .system_type(cstr($c.system_type.as_str()))
            .interface_version(InterfaceVersion::from($c.version))
            .addr_ton(Ton::from(0u8))
            .addr_npi(Npi::from(0u8))
            .address_range(cstr($c.address_range.as_str()))
            .build()
            .into()
    };
}

/// The bind request of `kind`.
pub fn request(kind: BindKind, c: &Credentials) -> Pdu {
    match kind {
        BindKind::Transceiver => build_bind!(BindTransceiver, c),
        BindKind::Transmitter => build_bind!(BindTransmitter, c),
        BindKind::Receiver => build_bind!(BindReceiver, c),
    }
}

/// Reads a bind request.
pub fn parse(pdu: &Pdu) -> Option<(BindKind, Credentials)> {
    macro_rules! creds {
        ($b:expr) => {
            Credentials {
                system_id: $b.system_id.to_string(),
                password: $b.password.to_string(),
                system_type: $b.system_type.to_string(),
                version: u8::from($b.interface_version),
                address_range: $b.address_range.to_string(),
            }
        };
    }
    Some(match pdu {
        Pdu::BindTransceiver(b) => (BindKind::Transceiver, creds!(b)),
        Pdu::BindTransmitter(b) => (BindKind::Transmitter, creds!(b)),
        Pdu::BindReceiver(b) => (BindKind::Receiver, creds!(b)),
        _ => return None,
    })
}

/// The bind response of `kind`: our system_id, and sc_interface_version when the peer speaks
/// 3.4 or later (SMPP 3.4 §4.1.2: not sent to older ESMEs).
pub fn response(kind: BindKind, system_id: &str, peer_version: u8) -> Pdu {
    let id = cstr(system_id);
    let v = (peer_version >= 0x34).then_some(InterfaceVersion::Smpp3_4);
    match kind {
        BindKind::Transceiver => BindTransceiverResp::new(id, v).into(),
        BindKind::Transmitter => BindTransmitterResp::new(id, v).into(),
        BindKind::Receiver => BindReceiverResp::new(id, v).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_back() {
        let c = Credentials {
            system_id: "gw".into(),
            password: "pw".into(),
            system_type: "USSD".into(),
            version: 0x34,
            address_range: String::new(),
        };
        for kind in [
            BindKind::Transceiver,
            BindKind::Transmitter,
            BindKind::Receiver,
        ] {
            assert_eq!(parse(&request(kind, &c)), Some((kind, c.clone())));
        }
        assert!(parse(&Pdu::EnquireLink).is_none());
    }
}
