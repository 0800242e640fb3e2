//! The gateway as ESME: binds to an operator's SMSC / USSD centre and keeps them up.
//!
//! A transceiver bind is one connection; a transmitter+receiver bind is two, each kept up on
//! its own. Each connection loops: connect, bind, serve until the connection ends, then wait
//! with exponential back-off and full jitter (100 ms doubling, capped by `reconnect_cap_ms`,
//! 3 s by default, so a bind is back within seconds of the peer's return) and start over. On
//! shutdown each bound connection unbinds (unbind, wait for unbind_resp, close).
//!
//! Inbound deliver_sm / data_sm are acknowledged at once (the status says whether the message
//! was taken) and handed to [`Ussd::take`]; delivery receipts (esm_class 0x04) are acknowledged
//! and dropped. Anything an MC should not send to an ESME gets ESME_RINVBNDSTS.

use super::link::{Handler, Link};
use crate::config::smpp::{BindConfig, BindMode};
use crate::front::smpp::stopped;
use crate::front::smpp::ussd::Ussd;
use crate::front::smpp::wire::bind::{self, BindKind, Credentials};
use crate::front::smpp::wire::generic_nack::error_response;
use crate::front::smpp::wire::{data_sm, sm};
use rand::Rng;
use rusmpp::pdus::{DataSmResp, DeliverSmResp};
use rusmpp::{Command, CommandStatus, Pdu};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The first reconnection pause.
const BACKOFF_BASE: Duration = Duration::from_millis(100);

/// One configured bind.
#[derive(Debug)]
pub struct EsmeBind {
    /// Its configuration.
    pub cfg: BindConfig,
    /// Its USSD side (profile, outlet for replies).
    pub ussd: Arc<Ussd>,
    /// Whether the sending connection (transceiver or transmitter) is bound.
    tx_up: AtomicBool,
    /// Whether the receiver is bound (transmitter+receiver mode only).
    rx_up: AtomicBool,
    /// What the metrics last showed for [`EsmeBind::is_up`].
    shown_up: Mutex<bool>,
}

impl EsmeBind {
    /// A bind, not yet started.
    pub fn new(cfg: BindConfig, ussd: Arc<Ussd>) -> EsmeBind {
        EsmeBind {
            cfg,
            ussd,
            tx_up: AtomicBool::new(false),
            rx_up: AtomicBool::new(false),
            shown_up: Mutex::new(false),
        }
    }

    /// Whether every connection of this bind is bound.
    pub fn is_up(&self) -> bool {
        match self.cfg.mode {
            BindMode::Transceiver => self.tx_up.load(Ordering::Acquire),
            BindMode::TransmitterReceiver => {
                self.tx_up.load(Ordering::Acquire) && self.rx_up.load(Ordering::Acquire)
            }
        }
    }

    /// Sets one connection's state and shows the bind's in the metrics when it changed.
    fn set_up(&self, kind: BindKind, up: bool) {
        let mut shown = self
            .shown_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.flag(kind).store(up, Ordering::Release);
        let now = self.is_up();
        if *shown != now {
            *shown = now;
            crate::metrics::smpp_bind_state(&self.cfg.name, now);
        }
    }

    fn flag(&self, kind: BindKind) -> &AtomicBool {
        if kind == BindKind::Receiver {
            &self.rx_up
        } else {
            &self.tx_up
        }
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            system_id: self.cfg.system_id.clone(),
            password: self.cfg.password.clone(),
            system_type: self.cfg.system_type.clone(),
            version: self.cfg.version.octet(),
            address_range: self.cfg.address_range.clone(),
        }
    }
}

/// Starts the connection loops of `bind`.
pub fn spawn(
    bind: &Arc<EsmeBind>,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let kinds: &[BindKind] = match bind.cfg.mode {
        BindMode::Transceiver => &[BindKind::Transceiver],
        BindMode::TransmitterReceiver => &[BindKind::Transmitter, BindKind::Receiver],
    };
    kinds
        .iter()
        .map(|&kind| tokio::spawn(connection_loop(bind.clone(), kind, stop.clone())))
        .collect()
}

async fn connection_loop(bind: Arc<EsmeBind>, kind: BindKind, mut stop: watch::Receiver<bool>) {
    let name = bind.cfg.name.clone();
    let cap = Duration::from_millis(bind.cfg.reconnect_cap_ms.max(1));
    let mut failures: u32 = 0;
    let mut first = true;
    loop {
        let stopping = *stop.borrow();
        if stopping {
            return;
        }
        if !std::mem::take(&mut first) {
            crate::metrics::smpp_reconnect(&name);
        }
        match connect(&bind, kind).await {
            Ok((link, task)) => {
                failures = 0;
                tracing::info!(bind = %name, kind = kind.as_str(), peer = %link.peer(), "SMPP bound");
                bind.set_up(kind, true);
                if kind.esme_may_send() {
                    bind.ussd.outlet.add(link.clone());
                }
                tokio::select! {
                    () = stopped(&mut stop) => {
                        bind.set_up(kind, false);
                        link.unbind().await;
                        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
                        tracing::info!(bind = %name, kind = kind.as_str(), "SMPP unbound");
                        return;
                    }
                    () = link.closed() => {}
                }
                bind.set_up(kind, false);
                tracing::warn!(bind = %name, kind = kind.as_str(), "SMPP connection lost; reconnecting");
                // The USSD centre's side of this bind's dialogues is gone (or unreachable):
                // end them now, as aborted, instead of leaving them to their idle timeout.
                // Not in a cluster: the same account's binds on other nodes carry them on.
                let (registry, name) = (bind.ussd.registry.clone(), name.clone());
                let clustered = registry.core().cluster.is_some();
                tokio::spawn(async move {
                    if clustered {
                        return;
                    }
                    let ended = registry.abort_prefix(&format!("smpp:{name}:")).await;
                    if ended > 0 {
                        tracing::warn!(bind = %name, ended, "dialogues of the lost bind ended as aborted");
                    }
                });
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(bind = %name, kind = kind.as_str(), error = %e, failures, "SMPP bind failed");
            }
        }
        let pause = backoff(failures, cap);
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Exponential back-off with full jitter: a random pause up to `min(cap, 100 ms * 2^n)`, and at
/// least a tenth of it.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << failures.min(16))
        .min(cap);
    let ms = u64::try_from(ceiling.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::rng().random_range(ms / 10..=ms))
}

async fn connect(
    bind: &Arc<EsmeBind>,
    kind: BindKind,
) -> anyhow::Result<(Link, tokio::task::JoinHandle<()>)> {
    let cfg = &bind.cfg;
    let link_cfg = cfg.link();
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let stream = tokio::time::timeout(link_cfg.response_timeout(), TcpStream::connect(&addr))
        .await
        .map_err(|_| anyhow::anyhow!("connect to {addr} timed out"))??;
    let (link, task) = Link::spawn(stream, &link_cfg, addr, handler(bind, kind));
    handshake(bind, kind, link, task).await
}

/// A connection to the MC over an already open byte stream instead of a TCP connection: the
/// bind exchange, then the connection serves the MC's requests as a socket's would. Test plumbing: the fuzz targets and replay
/// tests drive the ESME side through an in-memory pipe with it.
///
/// # Errors
/// The MC refused the bind or did not answer it.
#[doc(hidden)]
pub async fn connect_io<R, W>(
    bind: &Arc<EsmeBind>,
    kind: BindKind,
    rd: R,
    wr: W,
    peer: &str,
) -> anyhow::Result<(Link, tokio::task::JoinHandle<()>)>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (link, task) = Link::spawn_io(
        rd,
        wr,
        &bind.cfg.link(),
        peer.to_string(),
        handler(bind, kind),
    );
    handshake(bind, kind, link, task).await
}

fn handler(bind: &Arc<EsmeBind>, kind: BindKind) -> Arc<EsmeHandler> {
    Arc::new(EsmeHandler {
        ussd: bind.ussd.clone(),
        kind,
    })
}

/// Sends the bind on a fresh connection and checks its response.
async fn handshake(
    bind: &Arc<EsmeBind>,
    kind: BindKind,
    link: Link,
    task: tokio::task::JoinHandle<()>,
) -> anyhow::Result<(Link, tokio::task::JoinHandle<()>)> {
    let addr = link.peer().to_string();
    link.count_as(&bind.cfg.name);
    let resp = match link.request(bind::request(kind, &bind.credentials())).await {
        Ok(resp) => resp,
        Err(e) => {
            link.close();
            anyhow::bail!("bind to {addr}: {e}");
        }
    };
    if resp.id() != kind.response_id() || resp.status() != CommandStatus::EsmeRok {
        link.close();
        anyhow::bail!(
            "bind to {addr} refused: {:?} {:?}",
            resp.id(),
            resp.status()
        );
    }
    Ok((link, task))
}

/// Requests from the MC on one of the gateway's connections.
#[derive(Debug)]
struct EsmeHandler {
    ussd: Arc<Ussd>,
    kind: BindKind,
}

impl Handler for EsmeHandler {
    fn request(&self, link: &Link, cmd: Command) -> Option<Command> {
        let seq = cmd.sequence_number();
        let mc_may_send = self.kind.mc_may_send();
        // Answers go back on this connection when it may carry them (a transceiver).
        let came_on = || self.kind.esme_may_send().then(|| link.clone());
        match cmd.pdu() {
            Some(Pdu::DeliverSm(p)) if mc_may_send => {
                let status = if u8::from(p.esm_class) & 0x3C != 0 {
                    // A delivery receipt or other non-USSD report: acknowledged, not a hop.
                    CommandStatus::EsmeRok
                } else {
                    self.ussd.take(&sm::from_deliver_sm(p), came_on())
                };
                Some(Command::new(status, seq, DeliverSmResp::default()))
            }
            Some(Pdu::DataSm(p)) if mc_may_send => {
                let status = self.ussd.take(&data_sm::from_data_sm(p), came_on());
                Some(Command::new(status, seq, DataSmResp::default()))
            }
            // alert_notification has no response; an outbind on a bound link means nothing.
            _ => error_response(&cmd, CommandStatus::EsmeRinvbndsts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(3);
        for _ in 0..100 {
            assert!(backoff(0, cap) <= Duration::from_millis(100));
            assert!(backoff(3, cap) <= Duration::from_millis(800));
            let b = backoff(30, cap);
            assert!(b <= cap && b >= Duration::from_millis(300), "{b:?}");
        }
    }
}
