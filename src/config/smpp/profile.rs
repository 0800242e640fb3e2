//! Operator profiles: how one USSD centre spells a dialogue over SMPP.
//!
//! USSD centres agree on the TLVs (ussd_service_op 0x0501, its_session_info 0x1383,
//! user_message_reference 0x0204) but not on how they use them. A profile captures one
//! operator's convention as data, so a new operator is a config table and not a code fork:
//! which TLV identifies the dialogue, how it is echoed, how the end is signalled, which
//! ussd_service_op values mean start, continue and abort, where the dialled code is, what
//! `data_coding` 0 means, and which PDU carries the text.
//!
//! Presets ([`PRESETS`]), from the conventions in the reference notes:
//!
//! | preset | identity | in: start / continue / abort | out: continue / end | end signal | carrier |
//! |---|---|---|---|---|---|
//! | `its_session_info` (default) | its_session_info octet 1 | 1 / 18 / 0x81, end bit | 2 / 17 | op 17 and bit 0 | deliver_sm / submit_sm |
//! | `tata` (Vumi default) | its_session_info octet 1 | 1 / 18 (2) / end bit | 2 / 2 | bit 0 only | deliver_sm / submit_sm |
//! | `sixdee` | its_session_info octet 1 | 1 / 18 / 0x81 | 2 / 2 | bit 0 only | deliver_sm / submit_sm |
//! | `mica` | user_message_reference | 1 / 18 / 0x81 | 2 / 17 | op 17 | deliver_sm / submit_sm |
//! | `data_sm` | its_session_info octet 1 | 1 / 18 / 0x81, 65, 66, 67 | 2 / 17 | op 17 and bit 0 | data_sm + message_payload |
//! | `msisdn` | the MSISDN alone | 1 / 18 / 0x81 | 2 / 17 | op 17 | deliver_sm / submit_sm |
//!
//! A profile is configuration: the presets and the `[smpp.profiles]` overrides resolve here,
//! where the config is validated. What it means on the wire (the reply's op and session TLV)
//! is the SMPP front's (its `ussd::profile`).

use serde::Deserialize;

/// The shipped preset names.
pub const PRESETS: &[&str] = &[
    "its_session_info",
    "tata",
    "sixdee",
    "mica",
    "data_sm",
    "msisdn",
];

/// What identifies a dialogue besides the bind and the MSISDN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// The first octet (session number) of its_session_info.
    ItsSessionInfo,
    /// user_message_reference.
    UserMessageReference,
    /// Nothing: one dialogue per subscriber per bind.
    Msisdn,
}

/// How the session TLV goes back in a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Echo {
    /// Both octets as received (bit 0 set when the reply ends the dialogue and the end signal
    /// includes the bit).
    AsReceived,
    /// Octet 2's sequence (bits 7..1) advanced by one step: `(received & 0xFE) + 2`, plus the
    /// end bit. The spec's reading, for centres that check it.
    Advance,
}

/// How a reply says "this is the last screen".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndSignal {
    /// ussd_service_op = `end_op` (17, PSSR response).
    Op,
    /// its_session_info bit 0 set, ussd_service_op stays `continue_op`.
    Bit,
    /// Both.
    Both,
}

/// Where the dialled service code is in the first PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialledFrom {
    /// The text (short_message or message_payload): `*123#`.
    ShortMessage,
    /// destination_addr; `123` is read as `*123#`.
    DestinationAddr,
}

/// What `data_coding` 0 (SMSC default alphabet) means for this operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAlphabet {
    /// GSM 03.38, one septet per octet (unpacked).
    Gsm7,
    /// ISO-8859-1.
    Latin1,
}

/// Which PDUs carry the dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Carrier {
    /// deliver_sm towards the application, submit_sm towards the network, text in short_message
    /// (message_payload when it does not fit).
    Sm,
    /// data_sm both ways, text in message_payload.
    DataSm,
}

/// A resolved profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name (preset or `[smpp.profiles]` key).
    pub name: String,
    /// Session identity.
    pub identity: Identity,
    /// Session TLV echo.
    pub echo: Echo,
    /// End signal of replies.
    pub end_signal: EndSignal,
    /// Inbound ops that start a dialogue.
    pub start_ops: Vec<u8>,
    /// Inbound ops that carry the subscriber's next input.
    pub continue_ops: Vec<u8>,
    /// Inbound ops that mean the network or the subscriber abandoned the dialogue.
    pub abort_ops: Vec<u8>,
    /// Whether an inbound its_session_info with bit 0 set ends the dialogue (abort).
    pub end_bit_aborts: bool,
    /// Outbound op of a reply that waits for input.
    pub continue_op: u8,
    /// Outbound op of a reply that ends the dialogue (when the end signal includes the op).
    pub end_op: u8,
    /// Outbound op of a network-initiated notification (USSN request).
    pub push_op: u8,
    /// Where the dialled code is.
    pub dialled_from: DialledFrom,
    /// What data_coding 0 means inbound.
    pub default_alphabet: DefaultAlphabet,
    /// Which PDUs carry the dialogue.
    pub carrier: Carrier,
    /// service_type of outbound PDUs.
    pub service_type: String,
    /// Screen limit in GSM-7 septets.
    pub max_septets: usize,
    /// Screen limit in UCS-2 characters.
    pub max_ucs2_chars: usize,
}

/// `[smpp.profiles.<name>]`: a preset with overrides. Every key but `base` is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// The preset this profile starts from. Default `its_session_info`.
    #[serde(default)]
    pub base: Option<String>,
    /// Overrides [`Profile::identity`].
    pub identity: Option<Identity>,
    /// Overrides [`Profile::echo`].
    pub echo: Option<Echo>,
    /// Overrides [`Profile::end_signal`].
    pub end_signal: Option<EndSignal>,
    /// Overrides [`Profile::start_ops`].
    pub start_ops: Option<Vec<u8>>,
    /// Overrides [`Profile::continue_ops`].
    pub continue_ops: Option<Vec<u8>>,
    /// Overrides [`Profile::abort_ops`].
    pub abort_ops: Option<Vec<u8>>,
    /// Overrides [`Profile::end_bit_aborts`].
    pub end_bit_aborts: Option<bool>,
    /// Overrides [`Profile::continue_op`].
    pub continue_op: Option<u8>,
    /// Overrides [`Profile::end_op`].
    pub end_op: Option<u8>,
    /// Overrides [`Profile::push_op`].
    pub push_op: Option<u8>,
    /// Overrides [`Profile::dialled_from`].
    pub dialled_from: Option<DialledFrom>,
    /// Overrides [`Profile::default_alphabet`].
    pub default_alphabet: Option<DefaultAlphabet>,
    /// Overrides [`Profile::carrier`].
    pub carrier: Option<Carrier>,
    /// Overrides [`Profile::service_type`] (at most 5 characters).
    pub service_type: Option<String>,
    /// Overrides [`Profile::max_septets`].
    pub max_septets: Option<usize>,
    /// Overrides [`Profile::max_ucs2_chars`].
    pub max_ucs2_chars: Option<usize>,
}

impl ProfileConfig {
    /// The preset named by `base` with this table's overrides.
    ///
    /// # Errors
    /// An unknown base or an impossible value.
    pub fn resolve(&self, name: &str) -> Result<Profile, String> {
        let base = self.base.as_deref().unwrap_or("its_session_info");
        let mut p = Profile::preset(base).ok_or_else(|| {
            format!(
                "[smpp.profiles.{name}]: unknown base {base:?} (presets: {})",
                PRESETS.join(", ")
            )
        })?;
        p.name = name.to_string();
        macro_rules! set {
            ($($f:ident),*) => {$( if let Some(v) = &self.$f { p.$f = v.clone(); } )*};
        }
        set!(
            identity,
            echo,
            end_signal,
            start_ops,
            continue_ops,
            abort_ops,
            end_bit_aborts,
            continue_op,
            end_op,
            push_op,
            dialled_from,
            default_alphabet,
            carrier,
            service_type,
            max_septets,
            max_ucs2_chars
        );
        if p.service_type.len() > 5 || !p.service_type.is_ascii() {
            return Err(format!(
                "[smpp.profiles.{name}]: service_type must be at most 5 ASCII characters"
            ));
        }
        if p.max_septets == 0 || p.max_ucs2_chars == 0 {
            return Err(format!(
                "[smpp.profiles.{name}]: screen limits must be positive"
            ));
        }
        Ok(p)
    }
}

impl Profile {
    /// A shipped preset by name.
    pub fn preset(name: &str) -> Option<Profile> {
        let mut p = Profile {
            name: name.to_string(),
            identity: Identity::ItsSessionInfo,
            echo: Echo::AsReceived,
            end_signal: EndSignal::Both,
            start_ops: vec![1],
            continue_ops: vec![18],
            abort_ops: vec![0x81],
            end_bit_aborts: true,
            continue_op: 2,
            end_op: 17,
            push_op: 3,
            dialled_from: DialledFrom::ShortMessage,
            default_alphabet: DefaultAlphabet::Gsm7,
            carrier: Carrier::Sm,
            service_type: "USSD".into(),
            max_septets: 182,
            max_ucs2_chars: 80,
        };
        match name {
            "its_session_info" => {}
            "tata" => {
                p.end_signal = EndSignal::Bit;
                p.continue_ops = vec![18, 2];
                p.abort_ops = vec![];
                p.end_op = 2;
            }
            "sixdee" => {
                p.end_signal = EndSignal::Bit;
                p.end_bit_aborts = false;
                p.end_op = 2;
            }
            "mica" => {
                p.identity = Identity::UserMessageReference;
                p.end_signal = EndSignal::Op;
                p.end_bit_aborts = false;
            }
            "data_sm" => {
                p.carrier = Carrier::DataSm;
                p.abort_ops = vec![0x81, 65, 66, 67];
            }
            "msisdn" => {
                p.identity = Identity::Msisdn;
                p.end_signal = EndSignal::Op;
                p.end_bit_aborts = false;
            }
            _ => return None,
        }
        Some(p)
    }

    /// The screen limit hops from this operator carry.
    pub fn limit(&self) -> crate::text::Limit {
        crate::text::Limit {
            septets: self.max_septets,
            ucs2: self.max_ucs2_chars,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_resolves() {
        for name in PRESETS {
            let p = Profile::preset(name).unwrap();
            assert_eq!(p.name, *name);
            assert_eq!(p.limit(), crate::text::Limit::default());
        }
        assert!(Profile::preset("nope").is_none());
    }

    #[test]
    fn overrides_apply_and_bad_values_are_refused() {
        let p = ProfileConfig {
            base: Some("mica".into()),
            abort_ops: Some(vec![0x81, 0x82]),
            ..Default::default()
        }
        .resolve("op")
        .unwrap();
        assert_eq!(p.identity, Identity::UserMessageReference);
        assert_eq!(p.abort_ops, vec![0x81, 0x82]);
        let e = ProfileConfig {
            base: Some("x".into()),
            ..Default::default()
        }
        .resolve("op")
        .unwrap_err();
        assert!(e.contains("unknown base"));
        let e = ProfileConfig {
            service_type: Some("TOOLONG".into()),
            ..Default::default()
        }
        .resolve("op")
        .unwrap_err();
        assert!(e.contains("service_type"));
    }
}
