//! The SMPP front: USSD over a direct bind to an operator's USSD centre, with no aggregator.
//!
//! Like the HTTP front it only translates: a USSD message in a deliver_sm (or submit_sm, or
//! data_sm) becomes one [`crate::hop::Hop`] with [`crate::hop::HopInput::Single`], and
//! the [`crate::hop::Reply`] goes back as submit_sm (or deliver_sm, or data_sm) with
//! ussd_service_op 2 (continue) or 17 (end) and the session TLVs echoed. Operators differ in
//! how they spell that, so every bind names a [`Profile`]: data, not code forks.
//!
//! - [`wire`]: framing, the PDUs and text encodings (no connection, no dialogue);
//! - [`conn`]: one connection ([`conn::link`]), the binds the gateway makes ([`conn::esme`])
//!   and the binds it accepts ([`conn::listener`]);
//! - [`ussd`]: the translation between USSD messages and hops, per the operator's profile;
//!
//! rusmpp 0.4 provides the PDU types and `CommandCodec`; the connection loop is our own
//! (rusmppc closes the link on any decode error and cannot send data_sm). Protocol notes and
//! the config reference are in docs/smpp.md.

pub mod conn;
mod relay;
pub mod ussd;
pub mod wire;

/// `[smpp]`, configured in [`crate::config::smpp`].
pub use crate::config::smpp::{
    BindConfig, BindMode, ListenerConfig, PeerConfig, Profile, ProfileConfig, SmppConfig,
    SmppVersion, SmsConfig,
};

use crate::msisdn::Msisdn;
use crate::session::Registry;
use conn::{esme, listener};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use ussd::{Role, Ussd};
use wire::{encoding, message};

/// How long [`SmppFront::shutdown`] waits for binds to unbind.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why a network-initiated message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum SmppError {
    /// No bind by that name.
    #[error("no SMPP bind named {0:?}")]
    UnknownBind(String),
    /// The bind (or every bind) is down.
    #[error("SMPP bind not up")]
    NotBound,
    /// The MSISDN or the text cannot be sent.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The connection closed before the peer answered.
    #[error("SMPP link closed before the answer")]
    Closed,
    /// The connection failed or the peer did not answer.
    #[error("SMPP link: {0}")]
    Link(String),
    /// The peer answered with this command_status.
    #[error("refused by the SMSC: command_status {0:#010x}")]
    Refused(u32),
}

/// Resolves when `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The running SMPP front.
#[derive(Debug)]
pub struct SmppFront {
    binds: Arc<[Arc<esme::EsmeBind>]>,
    listener_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pusher: Pusher,
}

/// What the gateway sends over its binds on its own initiative: USSN pushes, network-initiated
/// dialogues and (with `[smpp.sms]`) SMS. Cheap to clone: the admin listener and the outbox
/// each hold one.
#[derive(Debug, Clone)]
pub struct Pusher {
    binds: Arc<[Arc<esme::EsmeBind>]>,
    default_cc: Arc<str>,
    sms: Option<SmsConfig>,
}

/// The binds' state, shareable with the HTTP front's `/ready`.
#[derive(Debug, Clone)]
pub struct SmppHealth {
    binds: Arc<[Arc<esme::EsmeBind>]>,
}

impl SmppHealth {
    /// How many binds are up.
    pub fn binds_up(&self) -> usize {
        self.binds.iter().filter(|b| b.is_up()).count()
    }

    /// Ready: no bind is configured, or at least one is up.
    pub fn ready(&self) -> bool {
        self.binds.is_empty() || self.binds_up() > 0
    }
}

impl SmppFront {
    /// Starts every configured bind and the listener (if any). `default_cc` normalises MSISDNs
    /// as the HTTP front does. Binds connect in the background; the listener is bound before
    /// this returns. `shutdown` turning true stops reconnecting and unbinds, as
    /// [`SmppFront::shutdown`] does.
    ///
    /// # Errors
    /// An invalid `[smpp]` section, or a listener address that cannot be bound.
    pub async fn start(
        config: &SmppConfig,
        registry: Registry,
        default_cc: String,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<SmppFront> {
        config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let (stop, stop_rx) = watch::channel(false);
        let cc: Arc<str> = default_cc.clone().into();
        let ussd = |bind: &str, profile: &str, role| -> anyhow::Result<Arc<Ussd>> {
            Ok(Arc::new(Ussd::new(
                bind,
                config.profile(profile).map_err(|e| anyhow::anyhow!(e))?,
                role,
                registry.clone(),
                cc.clone(),
            )))
        };
        let mut tasks = Vec::new();
        let mut binds = Vec::new();
        // Every bind's and listener peer's USSD side, for the cluster's relay.
        let mut sides = Vec::new();
        crate::metrics::smpp_binds_configured(config.binds.len());
        for b in &config.binds {
            crate::metrics::smpp_bind_registered(&b.name);
        }
        for p in config.listener.iter().flat_map(|l| &l.peers) {
            crate::metrics::smpp_peer_registered(&p.system_id);
        }
        for b in &config.binds {
            let bind = Arc::new(esme::EsmeBind::new(
                b.clone(),
                ussd(&b.name, &b.profile, Role::Esme)?,
            ));
            tasks.extend(esme::spawn(&bind, &stop_rx));
            sides.push(bind.ussd.clone());
            binds.push(bind);
        }
        let mut listener_addr = None;
        if let Some(l) = &config.listener {
            let mut peers = HashMap::new();
            for p in &l.peers {
                let side = ussd(&p.system_id, &p.profile, Role::Smsc)?;
                sides.push(side.clone());
                let peer = listener::Peer {
                    password: p.password.clone(),
                    ussd: side,
                    allow_from: p.allow_from.clone(),
                    max_binds: p.max_binds,
                };
                peers.insert(p.system_id.clone(), peer);
            }
            let (addr, task) = listener::start(l, peers, stop_rx.clone())
                .await
                .map_err(|e| anyhow::anyhow!("SMPP listener {}: {e}", l.listen))?;
            tracing::info!(%addr, "SMPP listener listening");
            listener_addr = Some(addr);
            tasks.push(task);
        }
        tasks.extend(relay::spawn_taker(sides, stop_rx.clone()));
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                stopped(&mut shutdown).await;
                let _ = stop.send(true);
            });
        }
        let binds: Arc<[Arc<esme::EsmeBind>]> = binds.into();
        Ok(SmppFront {
            pusher: Pusher {
                binds: binds.clone(),
                default_cc: cc,
                sms: config.sms.clone(),
            },
            binds,
            listener_addr,
            stop,
            tasks,
        })
    }

    /// Where the listener actually listens (tests configure port 0).
    pub fn listener_addr(&self) -> Option<SocketAddr> {
        self.listener_addr
    }

    /// How many binds are up (every connection of the bind bound), for `/ready`.
    pub fn binds_up(&self) -> usize {
        self.health().binds_up()
    }

    /// A cheap handle on the binds' state, for a `/ready` handler to own.
    pub fn health(&self) -> SmppHealth {
        SmppHealth {
            binds: self.binds.clone(),
        }
    }

    /// How many binds are configured.
    pub fn binds_configured(&self) -> usize {
        self.binds.len()
    }

    /// Unbinds every bind and listener connection cleanly (unbind / unbind_resp) and waits,
    /// bounded.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!("SMPP front did not stop within {SHUTDOWN_GRACE:?}");
        }
    }

    /// The handle for network-initiated messages.
    pub fn pusher(&self) -> Pusher {
        self.pusher.clone()
    }

    /// Network-initiated: a USSN push; see [`Pusher::push_ussn`].
    ///
    /// # Errors
    /// As [`Pusher::push_ussn`].
    pub async fn push_ussn(
        &self,
        bind: Option<&str>,
        msisdn: &str,
        text: &str,
    ) -> Result<(), SmppError> {
        self.pusher.push_ussn(bind, msisdn, text).await
    }
}

impl Pusher {
    fn bind(&self, name: Option<&str>) -> Result<&Arc<esme::EsmeBind>, SmppError> {
        match name {
            Some(name) => self
                .binds
                .iter()
                .find(|b| b.cfg.name == name)
                .ok_or_else(|| SmppError::UnknownBind(name.to_string())),
            // None up here: the first one, which another node of a cluster may hold.
            None => self
                .binds
                .iter()
                .find(|b| b.is_up())
                .or_else(|| self.binds.first())
                .ok_or(SmppError::NotBound),
        }
    }

    fn msisdn(&self, msisdn: &str) -> Result<Msisdn, SmppError> {
        Msisdn::parse(msisdn, &self.default_cc).map_err(|e| SmppError::Invalid(e.to_string()))
    }

    /// A USSN push (ussd_service_op 3, or the profile's `push_op`) to `msisdn` over the named
    /// bind, or the first bind that is up.
    ///
    /// # Errors
    /// Unknown bind, no bind up, an invalid MSISDN, or the SMSC refused or did not answer.
    pub async fn push_ussn(
        &self,
        bind: Option<&str>,
        msisdn: &str,
        text: &str,
    ) -> Result<(), SmppError> {
        let msisdn = self.msisdn(msisdn)?;
        let b = self.bind(bind)?;
        let m = b.ussd.push(&msisdn, &b.cfg.source_addr, text);
        b.ussd.send(&m).await
    }

    /// A network-initiated USSR dialogue: the first screen of the route for `service_code`,
    /// sent to `msisdn` over the named bind (or the first one up) from the bind's
    /// `source_addr`. Returns whether a dialogue is open (false when the first screen already
    /// ended it and went out as a USSN).
    ///
    /// # Errors
    /// As [`Pusher::push_ussn`]; the dialogue is then ended.
    pub async fn initiate(
        &self,
        bind: Option<&str>,
        msisdn: &str,
        service_code: &str,
    ) -> Result<bool, SmppError> {
        let msisdn = self.msisdn(msisdn)?;
        let b = self.bind(bind)?;
        b.ussd
            .initiate(&msisdn, &b.cfg.source_addr, service_code)
            .await
    }

    /// Whether `[smpp.sms]` sends SMS over a bind.
    pub fn sends_sms(&self) -> bool {
        self.sms.is_some()
    }

    /// An SMS as a plain submit_sm (no USSD TLVs) over the `[smpp.sms]` bind.
    ///
    /// # Errors
    /// No `[smpp.sms]`, the bind is down, an invalid MSISDN, or the SMSC refused or did not
    /// answer.
    pub async fn send_sms(&self, msisdn: &str, text: &str) -> Result<(), SmppError> {
        let Some(sms) = &self.sms else {
            return Err(SmppError::Invalid("no [smpp.sms] configured".into()));
        };
        let msisdn = self.msisdn(msisdn)?;
        let b = self.bind(Some(&sms.bind))?;
        let (data_coding, body) = encoding::encode(text);
        let m = message::UssdMessage {
            service_type: sms.service_type.clone(),
            source: sms.source(),
            dest: message::Address::international(msisdn.as_str()),
            data_coding,
            body,
            op: None,
            its: None,
            umr: None,
        };
        b.ussd.send_sms(&m).await
    }
}

impl SmsConfig {
    /// The sender of `[smpp.sms]` as an SMPP address.
    pub fn source(&self) -> message::Address {
        let a = &self.source_addr;
        let alpha = !a.chars().all(|c| c.is_ascii_digit());
        let (ton, npi) = if alpha {
            (5, 0)
        } else if a.len() >= 10 {
            (1, 1)
        } else {
            (3, 1)
        };
        message::Address {
            ton: self.source_ton.unwrap_or(ton),
            npi: self.source_npi.unwrap_or(npi),
            addr: a.clone(),
        }
    }
}

impl crate::outbox::Network for Pusher {
    fn deliver<'a>(
        &'a self,
        item: &'a crate::outbox::Item,
    ) -> Option<futures_util::future::BoxFuture<'a, crate::outbox::Outcome>> {
        use crate::outbox::Effect;
        use futures_util::FutureExt;
        match &item.effect {
            Effect::Ussn { to, message, bind } => Some(
                async move { outcome(self.push_ussn(bind.as_deref(), to, message).await, "pushed") }
                    .boxed(),
            ),
            Effect::Ussr {
                to,
                service_code,
                bind,
            } => Some(
                async move {
                    let r = self.initiate(bind.as_deref(), to, service_code).await;
                    let detail = match r {
                        Ok(true) => "dialogue opened",
                        _ => "first screen ended the dialogue; sent as USSN",
                    };
                    outcome(r.map(|_| ()), detail)
                }
                .boxed(),
            ),
            Effect::Sms { to, message } if self.sends_sms() => {
                Some(async move { outcome(self.send_sms(to, message).await, "submit_sm accepted") }.boxed())
            }
            _ => None,
        }
    }
}

/// What a send over a bind means for the outbox: a bind that is down, a broken link or a
/// throttling SMSC are retried; a refusal or an invalid message is final.
fn outcome(r: Result<(), SmppError>, detail: &str) -> crate::outbox::Outcome {
    use crate::outbox::Outcome;
    use rusmpp::CommandStatus;
    match r {
        Ok(()) => Outcome::Sent {
            detail: detail.to_string(),
        },
        Err(e @ (SmppError::NotBound | SmppError::Closed | SmppError::Link(_))) => {
            Outcome::Transient {
                reason: e.to_string(),
                retry_after: None,
            }
        }
        Err(SmppError::Refused(status))
            if [
                CommandStatus::EsmeRthrottled,
                CommandStatus::EsmeRmsgqful,
                CommandStatus::EsmeRsyserr,
                CommandStatus::EsmeRxTAppn,
            ]
            .iter()
            .any(|s| u32::from(*s) == status) =>
        {
            Outcome::Transient {
                reason: SmppError::Refused(status).to_string(),
                retry_after: None,
            }
        }
        Err(e @ (SmppError::Refused(_) | SmppError::UnknownBind(_) | SmppError::Invalid(_))) => {
            Outcome::Permanent {
                reason: e.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Outcome;
    use rusmpp::CommandStatus;

    #[test]
    fn a_bind_down_or_a_busy_smsc_is_retried_a_refusal_is_not() {
        let transient = |e| matches!(outcome(Err(e), ""), Outcome::Transient { .. });
        assert!(transient(SmppError::NotBound));
        assert!(transient(SmppError::Link("timeout".into())));
        assert!(transient(SmppError::Closed));
        assert!(transient(SmppError::Refused(u32::from(
            CommandStatus::EsmeRthrottled
        ))));
        assert!(transient(SmppError::Refused(u32::from(
            CommandStatus::EsmeRmsgqful
        ))));
        let permanent = |e| matches!(outcome(Err(e), ""), Outcome::Permanent { .. });
        assert!(permanent(SmppError::Refused(u32::from(
            CommandStatus::EsmeRinvdstadr
        ))));
        assert!(permanent(SmppError::UnknownBind("x".into())));
        assert!(permanent(SmppError::Invalid("x".into())));
        assert!(matches!(outcome(Ok(()), "ok"), Outcome::Sent { .. }));
    }

    #[test]
    fn sms_over_smpp_names_a_bind_and_a_sender() {
        let parse = |sms: &str| -> SmppConfig {
            toml::from_str(&format!(
                "[[binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nsystem_id = \"u\"\n[sms]\n{sms}"
            ))
            .unwrap()
        };
        let c = parse("bind = \"op\"\nsource_addr = \"ACME\"");
        c.validate().unwrap();
        let src = c.sms.as_ref().unwrap().source();
        assert_eq!((src.ton, src.npi), (5, 0));
        let c = parse("bind = \"op\"\nsource_addr = \"254700000009\"");
        assert_eq!(c.sms.as_ref().unwrap().source().ton, 1);
        let c = parse("bind = \"op\"\nsource_addr = \"22384\"\nsource_ton = 0");
        assert_eq!(c.sms.as_ref().unwrap().source().ton, 0);
        let e = parse("bind = \"other\"\nsource_addr = \"ACME\"")
            .validate()
            .unwrap_err();
        assert!(e.contains("[smpp.sms] bind \"other\""), "{e}");
        let e = parse("bind = \"op\"\nsource_addr = \"TOOLONGSENDER\"")
            .validate()
            .unwrap_err();
        assert!(e.contains("source_addr"), "{e}");
    }
}
