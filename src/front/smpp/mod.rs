//! The SMPP front: USSD over a direct bind to an operator's USSD centre, with no aggregator.
//!
//! Like the HTTP front it only translates: a USSD message in a deliver_sm (or submit_sm, or
//! data_sm) becomes one [`crate::session::Hop`] with [`crate::session::HopInput::Single`], and
//! the [`crate::hop::Reply`] goes back as submit_sm (or deliver_sm, or data_sm) with
//! ussd_service_op 2 (continue) or 17 (end) and the session TLVs echoed. Operators differ in
//! how they spell that, so every bind names a [`profile`]: data, not code forks.
//!
//! - [`esme`]: the gateway binds to operators (`[[smpp.binds]]`), keeps the binds up
//!   (enquire_link, reconnect with capped back-off and jitter) and unbinds on shutdown.
//! - [`listener`]: the gateway accepts binds from configured peers (`[smpp.listener]`), with
//!   credentials and the bind state machine checked, and the directions reversed.
//! - [`link`]: one connection (reader, writer task, window matched by sequence number,
//!   response timeouts, throttling back-off, keep-alive); [`codec`]: framing that answers
//!   malformed input instead of dropping the connection.
//! - [`ussd`]: the translation; [`sm`], [`data_sm`], [`bind`], [`generic_nack`]: the PDUs;
//!   [`encoding`]: GSM 03.38 / UCS-2 / Latin-1 text.
//! - [`sim`]: the operator simulator behind `ussd-gateway operator-sim`, also the tests' peer.
//!
//! rusmpp 0.4 provides the PDU types and `CommandCodec`; the connection loop is our own
//! (rusmppc closes the link on any decode error and cannot send data_sm). Protocol notes and
//! the config reference are in docs/smpp.md.

pub mod bind;
pub mod codec;
pub mod config;
pub mod data_sm;
pub mod encoding;
pub mod esme;
pub mod generic_nack;
pub mod link;
pub mod listener;
pub mod message;
pub mod profile;
pub mod sim;
pub mod sim_term;
pub mod sm;
pub mod ussd;

pub use config::{BindConfig, BindMode, ListenerConfig, PeerConfig, SmppConfig, SmppVersion};
pub use profile::{Profile, ProfileConfig};
pub use sim::{OperatorSim, OperatorSimOptions, Screen, SimDialogue, run_operator_sim};

use crate::msisdn::Msisdn;
use crate::session::Registry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use ussd::{Outlet, Role, Ussd};

/// How long [`SmppFront::shutdown`] waits for binds to unbind.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why a network-initiated message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    default_cc: String,
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
            Ok(Arc::new(Ussd {
                bind: bind.into(),
                profile: config.profile(profile).map_err(|e| anyhow::anyhow!(e))?,
                role,
                registry: registry.clone(),
                default_cc: cc.clone(),
                outlet: Outlet::default(),
            }))
        };
        let mut tasks = Vec::new();
        let mut binds = Vec::new();
        crate::metrics::smpp_binds_configured(config.binds.len());
        for name in config.binds.iter().map(|b| &b.name).chain(
            config
                .listener
                .iter()
                .flat_map(|l| l.peers.iter().map(|p| &p.system_id)),
        ) {
            crate::metrics::smpp_bind_registered(name);
        }
        for b in &config.binds {
            let bind = Arc::new(esme::EsmeBind::new(
                b.clone(),
                ussd(&b.name, &b.profile, Role::Esme)?,
            ));
            tasks.extend(esme::spawn(&bind, &stop_rx));
            binds.push(bind);
        }
        let mut listener_addr = None;
        if let Some(l) = &config.listener {
            let mut peers = HashMap::new();
            for p in &l.peers {
                let peer = listener::Peer {
                    password: p.password.clone(),
                    ussd: ussd(&p.system_id, &p.profile, Role::Smsc)?,
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
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                stopped(&mut shutdown).await;
                let _ = stop.send(true);
            });
        }
        Ok(SmppFront {
            binds: binds.into(),
            listener_addr,
            stop,
            tasks,
            default_cc,
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

    /// Network-initiated: a USSN push (ussd_service_op 3, or the profile's `push_op`) to
    /// `msisdn` over the named bind, or the first bind that is up.
    ///
    /// # Errors
    /// Unknown bind, no bind up, an invalid MSISDN, or the SMSC refused or did not answer.
    pub async fn push_ussn(
        &self,
        bind: Option<&str>,
        msisdn: &str,
        text: &str,
    ) -> Result<(), SmppError> {
        let msisdn = Msisdn::parse(msisdn, &self.default_cc)
            .map_err(|e| SmppError::Invalid(e.to_string()))?;
        let b = match bind {
            Some(name) => self
                .binds
                .iter()
                .find(|b| b.cfg.name == name)
                .ok_or_else(|| SmppError::UnknownBind(name.to_string()))?,
            None => self
                .binds
                .iter()
                .find(|b| b.is_up())
                .ok_or(SmppError::NotBound)?,
        };
        let m = b.ussd.push(&msisdn, &b.cfg.source_addr, text);
        b.ussd.send(&m).await
    }
}
