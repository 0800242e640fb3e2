//! `[smpp]` in `gateway.toml`: the binds the gateway makes (ESME role), the listener it offers
//! (SMSC role), and the operator profiles both use.
//!
//! Nothing here is on by default: a fresh machine has no bind reconnecting in a loop and no
//! port open. Every bind and every listener peer names a profile: a shipped preset (see
//! [`profile`]) or a `[smpp.profiles.<name>]` table that starts from a preset and overrides
//! what this operator does differently.
//!
//! The SMPP front reads these; they import nothing from it.

pub mod profile;

pub use profile::{Profile, ProfileConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// `[smpp]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppConfig {
    /// `[[smpp.binds]]`: binds to operators' USSD centres (the gateway is the ESME). None by
    /// default.
    #[serde(default)]
    pub binds: Vec<BindConfig>,
    /// `[smpp.listener]`: accept binds from operators or aggregators (the gateway is the SMSC).
    /// Off by default.
    #[serde(default)]
    pub listener: Option<ListenerConfig>,
    /// `[smpp.profiles.<name>]`: operator profiles of this deployment, each based on a preset.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// `[smpp.sms]`: send the outbox's SMS as plain submit_sm over a bind instead of through
    /// Africa's Talking. Off by default.
    #[serde(default)]
    pub sms: Option<SmsConfig>,
}

/// `[smpp.sms]`: SMS over an SMPP bind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// The `[[smpp.binds]]` name the SMS go out on.
    pub bind: String,
    /// The sender: a short code, a long number or an alphanumeric sender id (at most 11
    /// characters).
    pub source_addr: String,
    /// source_addr_ton; by default 5 (alphanumeric) for a sender id with letters, 1
    /// (international) for a number of 10 digits or more, 3 (network specific) otherwise.
    #[serde(default)]
    pub source_ton: Option<u8>,
    /// source_addr_npi; by default 0 for an alphanumeric sender id, 1 (ISDN) otherwise.
    #[serde(default)]
    pub source_npi: Option<u8>,
    /// service_type of the submit_sm (empty: the SMSC's default).
    #[serde(default)]
    pub service_type: String,
}

/// How a bind's connections are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindMode {
    /// One `bind_transceiver` connection carries both directions (the usual USSD setup).
    #[default]
    Transceiver,
    /// A `bind_transmitter` connection for what the gateway sends and a `bind_receiver`
    /// connection for what it receives.
    TransmitterReceiver,
}

/// The SMPP interface version announced in the bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SmppVersion {
    /// SMPP 3.4 (`interface_version` 0x34): what most USSD centres speak.
    #[default]
    #[serde(rename = "3.4")]
    V34,
    /// SMPP 5.0 (`interface_version` 0x50).
    #[serde(rename = "5.0")]
    V50,
}

impl SmppVersion {
    /// The `interface_version` octet.
    pub fn octet(self) -> u8 {
        match self {
            SmppVersion::V34 => 0x34,
            SmppVersion::V50 => 0x50,
        }
    }
}

/// Timers and limits every SMPP connection has (the same keys in a bind and in the listener).
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Requests in flight without a response at most. Default 10 (the SMPP guideline).
    pub window: usize,
    /// How long a request waits for its response.
    pub response_timeout_ms: u64,
    /// Idle time after which an enquire_link is sent.
    pub enquire_link_secs: u64,
    /// Largest accepted PDU in octets.
    pub max_pdu_bytes: usize,
    /// Requests per second the peer may send on one connection (enquire_link and unbind
    /// aside); past it they are answered ESME_RTHROTTLED. 0: no limit.
    pub max_pdus_per_sec: u32,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            window: default_window(),
            response_timeout_ms: default_response_timeout_ms(),
            enquire_link_secs: default_enquire_link_secs(),
            max_pdu_bytes: default_max_pdu_bytes(),
            max_pdus_per_sec: default_max_pdus_per_sec(),
        }
    }
}

impl LinkConfig {
    /// The response timeout.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms.max(1))
    }

    /// The enquire_link interval.
    pub fn enquire_link(&self) -> Duration {
        Duration::from_secs(self.enquire_link_secs.max(1))
    }
}

/// One `[[smpp.binds]]`: the gateway binds to an operator's SMSC / USSD centre.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindConfig {
    /// The bind's name: in session keys (`smpp:<name>:...`), logs, metrics and pushes.
    pub name: String,
    /// The SMSC's host name or address.
    pub host: String,
    /// The SMSC's port. Default 2775.
    #[serde(default = "default_port")]
    pub port: u16,
    /// `system_id` (at most 15 characters).
    pub system_id: String,
    /// `password` (at most 8 characters).
    #[serde(default)]
    pub password: String,
    /// `system_type` (at most 12 characters). Default empty.
    #[serde(default)]
    pub system_type: String,
    /// Transceiver, or a transmitter plus a receiver.
    #[serde(default)]
    pub mode: BindMode,
    /// "3.4" (default) or "5.0".
    #[serde(default)]
    pub version: SmppVersion,
    /// `address_range` of the bind. Default empty.
    #[serde(default)]
    pub address_range: String,
    /// The profile: a preset name or a `[smpp.profiles]` name. Default `its_session_info`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// The source address of network-initiated messages (USSN pushes): the service's code.
    #[serde(default)]
    pub source_addr: String,
    /// The longest wait between reconnection attempts. Default 3000 ms.
    #[serde(default = "default_reconnect_cap_ms")]
    pub reconnect_cap_ms: u64,
    /// Requests in flight without a response at most. Default 10 (the SMPP guideline).
    #[serde(default = "default_window")]
    pub window: usize,
    /// How long a request waits for its response. Default 5000 ms.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// Idle time after which an enquire_link is sent. Default 30 s.
    #[serde(default = "default_enquire_link_secs")]
    pub enquire_link_secs: u64,
    /// Largest accepted PDU in octets; longer ones are refused. Default 4096.
    #[serde(default = "default_max_pdu_bytes")]
    pub max_pdu_bytes: usize,
    /// Requests per second the peer may send on one connection; past it they are answered
    /// ESME_RTHROTTLED. Default 50,000 (above what the benchmarks drive); 0: no limit.
    #[serde(default = "default_max_pdus_per_sec")]
    pub max_pdus_per_sec: u32,
}

/// `[smpp.listener]`: the gateway accepts binds (SMSC role).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Where to listen, e.g. `127.0.0.1:2776`.
    pub listen: SocketAddr,
    /// The peers allowed to bind.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// How long a new connection may take to bind. Default 10 s.
    #[serde(default = "default_bind_timeout_secs")]
    pub bind_timeout_secs: u64,
    /// Requests in flight without a response at most. Default 10 (the SMPP guideline).
    #[serde(default = "default_window")]
    pub window: usize,
    /// How long a request waits for its response. Default 5000 ms.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// Idle time after which an enquire_link is sent. Default 30 s.
    #[serde(default = "default_enquire_link_secs")]
    pub enquire_link_secs: u64,
    /// Largest accepted PDU in octets; longer ones are refused. Default 4096.
    #[serde(default = "default_max_pdu_bytes")]
    pub max_pdu_bytes: usize,
    /// Requests per second the peer may send on one connection; past it they are answered
    /// ESME_RTHROTTLED. Default 50,000 (above what the benchmarks drive); 0: no limit.
    #[serde(default = "default_max_pdus_per_sec")]
    pub max_pdus_per_sec: u32,
}

/// One `[[smpp.listener.peers]]`: who may bind, and how its traffic is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's `system_id`; also its name in session keys (`smpp:<system_id>:...`).
    pub system_id: String,
    /// The password it must present.
    pub password: String,
    /// The profile (preset or `[smpp.profiles]` name). Default `its_session_info`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Source networks the peer may connect from (`["192.0.2.0/24"]`); empty: any.
    #[serde(default)]
    pub allow_from: Vec<ipnet::IpNet>,
    /// Connections bound at once under this system_id at most; more binds get
    /// ESME_RBINDFAIL. Default 4 (a transmitter and a receiver, twice).
    #[serde(default = "default_max_binds")]
    pub max_binds: usize,
}

fn default_max_binds() -> usize {
    4
}

fn default_window() -> usize {
    10
}
fn default_response_timeout_ms() -> u64 {
    5000
}
fn default_enquire_link_secs() -> u64 {
    30
}
fn default_max_pdus_per_sec() -> u32 {
    50_000
}
fn default_max_pdu_bytes() -> usize {
    4096
}
fn default_port() -> u16 {
    2775
}
fn default_profile() -> String {
    "its_session_info".into()
}
fn default_reconnect_cap_ms() -> u64 {
    3000
}
fn default_bind_timeout_secs() -> u64 {
    10
}

macro_rules! link_of {
    ($($t:ty),*) => {$(
        impl $t {
            /// The connection timers and limits.
            pub fn link(&self) -> LinkConfig {
                LinkConfig {
                    window: self.window,
                    response_timeout_ms: self.response_timeout_ms,
                    enquire_link_secs: self.enquire_link_secs,
                    max_pdu_bytes: self.max_pdu_bytes,
                    max_pdus_per_sec: self.max_pdus_per_sec,
                }
            }
        }
    )*};
}
link_of!(BindConfig, ListenerConfig);

impl SmppConfig {
    /// Resolves a profile name: a `[smpp.profiles]` entry (itself based on a preset) or a preset.
    ///
    /// # Errors
    /// An unknown name, or a profile based on an unknown preset.
    pub fn profile(&self, name: &str) -> Result<Profile, String> {
        match self.profiles.get(name) {
            Some(p) => p.resolve(name),
            None => Profile::preset(name).ok_or_else(|| {
                format!(
                    "unknown SMPP profile {name:?} (presets: {})",
                    profile::PRESETS.join(", ")
                )
            }),
        }
    }

    /// Checks everything that can be checked before anything connects: names, lengths,
    /// profiles, peers.
    ///
    /// # Errors
    /// Every problem, one per line.
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        for (name, p) in &self.profiles {
            if let Err(e) = p.resolve(name) {
                errors.push(e);
            }
        }
        let mut names = std::collections::HashSet::new();
        for b in &self.binds {
            let at = format!("[[smpp.binds]] {:?}", b.name);
            if b.name.is_empty() || b.name.contains(':') {
                errors.push(format!("{at}: name must be non-empty and without ':'"));
            }
            if !names.insert(b.name.clone()) {
                errors.push(format!("{at}: duplicate bind name"));
            }
            check_len(&mut errors, &at, "system_id", &b.system_id, 1, 15);
            check_len(&mut errors, &at, "password", &b.password, 0, 8);
            check_len(&mut errors, &at, "system_type", &b.system_type, 0, 12);
            check_len(&mut errors, &at, "address_range", &b.address_range, 0, 40);
            check_len(&mut errors, &at, "source_addr", &b.source_addr, 0, 20);
            check_link(&mut errors, &at, &b.link());
            if let Err(e) = self.profile(&b.profile) {
                errors.push(format!("{at}: {e}"));
            }
        }
        if let Some(sms) = &self.sms {
            if !names.contains(&sms.bind) {
                errors.push(format!(
                    "[smpp.sms] bind {:?}: no [[smpp.binds]] has that name",
                    sms.bind
                ));
            }
            let alpha = !sms.source_addr.chars().all(|c| c.is_ascii_digit());
            let max = if alpha { 11 } else { 20 };
            check_len(
                &mut errors,
                "[smpp.sms]",
                "source_addr",
                &sms.source_addr,
                1,
                max,
            );
            check_len(
                &mut errors,
                "[smpp.sms]",
                "service_type",
                &sms.service_type,
                0,
                5,
            );
        }
        if let Some(l) = &self.listener {
            let mut ids = std::collections::HashSet::new();
            check_link(&mut errors, "[smpp.listener]", &l.link());
            for p in &l.peers {
                let at = format!("[[smpp.listener.peers]] {:?}", p.system_id);
                check_len(&mut errors, &at, "system_id", &p.system_id, 1, 15);
                check_len(&mut errors, &at, "password", &p.password, 0, 8);
                if p.system_id.contains(':') || names.contains(&p.system_id) {
                    errors.push(format!(
                        "{at}: system_id must not contain ':' or be a bind name"
                    ));
                }
                if !ids.insert(p.system_id.clone()) {
                    errors.push(format!("{at}: duplicate peer"));
                }
                if p.max_binds == 0 {
                    errors.push(format!("{at}: max_binds must be at least 1"));
                }
                if let Err(e) = self.profile(&p.profile) {
                    errors.push(format!("{at}: {e}"));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }
}

fn check_len(errors: &mut Vec<String>, at: &str, field: &str, v: &str, min: usize, max: usize) {
    if !v.is_ascii() || v.len() < min || v.len() > max {
        errors.push(format!(
            "{at}: {field} must be {min} to {max} ASCII characters"
        ));
    }
}

fn check_link(errors: &mut Vec<String>, at: &str, l: &LinkConfig) {
    if l.window == 0 {
        errors.push(format!("{at}: window must be at least 1"));
    }
    if l.max_pdu_bytes < 64 {
        errors.push(format!("{at}: max_pdu_bytes must be at least 64"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_example_section_parses_and_validates() {
        let c: SmppConfig = toml::from_str(
            r#"
            [[binds]]
            name = "op1"
            host = "127.0.0.1"
            system_id = "ussd"
            password = "pw"
            mode = "transmitter_receiver"
            version = "5.0"
            profile = "mine"
            window = 4
            [listener]
            listen = "127.0.0.1:0"
            [[listener.peers]]
            system_id = "agg"
            password = "pw"
            profile = "mica"
            [profiles.mine]
            base = "its_session_info"
            end_signal = "bit"
            abort_ops = [0x81]
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.binds[0].link().window, 4);
        assert_eq!(c.binds[0].version.octet(), 0x50);
        assert_eq!(c.binds[0].mode, BindMode::TransmitterReceiver);
    }

    #[test]
    fn problems_are_all_reported() {
        let c: SmppConfig = toml::from_str(
            r#"
            [[binds]]
            name = "a:b"
            host = "h"
            system_id = "a-system-id-that-is-too-long"
            profile = "nope"
            "#,
        )
        .unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.contains("name must be"), "{e}");
        assert!(e.contains("system_id must be"), "{e}");
        assert!(e.contains("unknown SMPP profile"), "{e}");
    }
}
