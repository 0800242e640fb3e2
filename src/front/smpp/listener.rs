//! The gateway as SMSC: accepts binds from configured peers (operators or aggregators that
//! connect to the provider) and serves USSD with the directions reversed: the peer submits the
//! subscriber's messages (submit_sm or data_sm) and the gateway answers with deliver_sm (or
//! data_sm) on one of the peer's receiver or transceiver connections.
//!
//! The bind state machine is enforced per connection: before a successful bind only
//! enquire_link and bind_* are accepted (anything else gets ESME_RINVBNDSTS); an unknown
//! system_id gets ESME_RINVSYSID, a wrong password ESME_RINVPASWD, a second bind
//! ESME_RALYBND; a connection that does not bind within `bind_timeout_secs` is closed. On
//! shutdown every bound connection is unbound.

use super::bind::{self, BindKind};
use super::config::ListenerConfig;
use super::generic_nack::error_response;
use super::link::{Handler, Link};
use super::stopped;
use super::ussd::Ussd;
use super::{data_sm, sm};
use rusmpp::pdus::{DataSmResp, SubmitSmResp};
use rusmpp::types::COctetString;
use rusmpp::{Command, CommandStatus, Pdu};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The system_id the gateway answers binds with.
pub const SYSTEM_ID: &str = "ussd-gateway";

/// One allowed peer.
#[derive(Debug)]
pub struct Peer {
    /// Its password.
    pub password: String,
    /// Its USSD side; the outlet holds its receiver-capable connections.
    pub ussd: Arc<Ussd>,
}

#[derive(Debug)]
struct Shared {
    peers: HashMap<String, Peer>,
    links: Mutex<Vec<Link>>,
    message_ids: AtomicU64,
}

/// Binds the listener socket and starts accepting. Returns the bound address and the task.
///
/// # Errors
/// The address cannot be bound.
pub async fn start(
    cfg: &ListenerConfig,
    peers: HashMap<String, Peer>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        peers,
        links: Mutex::new(Vec::new()),
        message_ids: AtomicU64::new(1),
    });
    let task = tokio::spawn(accept_loop(listener, cfg.clone(), shared, stop));
    Ok((addr, task))
}

async fn accept_loop(
    listener: TcpListener,
    cfg: ListenerConfig,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let link_cfg = cfg.link();
    let bind_timeout = Duration::from_secs(cfg.bind_timeout_secs.max(1));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "SMPP listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn = Connection::new(&shared);
        let (link, _task) = Link::spawn(stream, &link_cfg, peer.to_string(), conn.clone());
        admit(&shared, conn, link, bind_timeout);
    }
    // Shutdown: unbind every connection still open, concurrently, bounded by the response
    // timeout of each.
    let links: Vec<Link> = lock(&shared.links)
        .drain(..)
        .filter(Link::is_open)
        .collect();
    futures_util::future::join_all(links.iter().map(Link::unbind)).await;
}

/// Keeps an accepted connection for the unbind at shutdown, and closes it if it has not bound
/// within `bind_timeout`.
fn admit(shared: &Arc<Shared>, conn: Arc<Connection>, link: Link, bind_timeout: Duration) {
    lock(&shared.links).push(link.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(bind_timeout) => {}
            () = link.closed() => return,
        }
        if lock(&conn.state).is_none() && link.is_open() {
            tracing::info!(peer = %link.peer(), "no bind in time; closing");
            link.close();
        }
    });
}

/// The listener without its socket: serves connections handed to it as byte streams. Test
/// plumbing: the fuzz targets and replay tests drive the bind state machine and the peer's
/// USSD through an in-memory pipe with it.
#[doc(hidden)]
#[derive(Debug)]
pub struct Acceptor {
    shared: Arc<Shared>,
    cfg: ListenerConfig,
}

impl Acceptor {
    /// An acceptor for `peers`, with `cfg`'s link settings and bind timeout (`listen` unused).
    pub fn new(cfg: &ListenerConfig, peers: HashMap<String, Peer>) -> Acceptor {
        Acceptor {
            shared: Arc::new(Shared {
                peers,
                links: Mutex::new(Vec::new()),
                message_ids: AtomicU64::new(1),
            }),
            cfg: cfg.clone(),
        }
    }

    /// Serves one connection over `rd` / `wr`, exactly as an accepted socket is served.
    pub fn serve_io<R, W>(&self, rd: R, wr: W, peer: &str) -> (Link, tokio::task::JoinHandle<()>)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Connection::new(&self.shared);
        let (link, task) = Link::spawn_io(rd, wr, &self.cfg.link(), peer.to_string(), conn.clone());
        let bind_timeout = Duration::from_secs(self.cfg.bind_timeout_secs.max(1));
        admit(&self.shared, conn, link.clone(), bind_timeout);
        (link, task)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One accepted connection and its bind state.
#[derive(Debug)]
struct Connection {
    shared: Arc<Shared>,
    /// `None` while open (not bound); the peer's system_id and bind kind once bound.
    state: Mutex<Option<(String, BindKind)>>,
}

impl Connection {
    fn new(shared: &Arc<Shared>) -> Arc<Connection> {
        Arc::new(Connection {
            shared: shared.clone(),
            state: Mutex::new(None),
        })
    }

    fn bind(&self, link: &Link, cmd: &Command, kind: BindKind, c: bind::Credentials) -> Command {
        let seq = cmd.sequence_number();
        let refuse = |status| Command::new(status, seq, bind::response(kind, SYSTEM_ID, c.version));
        let mut state = lock(&self.state);
        if state.is_some() {
            return refuse(CommandStatus::EsmeRalybnd);
        }
        let Some(peer) = self.shared.peers.get(&c.system_id) else {
            tracing::warn!(peer = %link.peer(), system_id = %c.system_id, "bind from an unknown system_id");
            return refuse(CommandStatus::EsmeRinvsysid);
        };
        let ok: bool = subtle_eq(peer.password.as_bytes(), c.password.as_bytes());
        if !ok {
            tracing::warn!(peer = %link.peer(), system_id = %c.system_id, "bind with a wrong password");
            return refuse(CommandStatus::EsmeRinvpaswd);
        }
        if kind.mc_may_send() {
            peer.ussd.outlet.add(link.clone());
        }
        tracing::info!(peer = %link.peer(), system_id = %c.system_id, kind = kind.as_str(), "SMPP peer bound");
        link.count_as(&c.system_id);
        crate::metrics::smpp_peer_connections(&c.system_id, 1.0);
        *state = Some((c.system_id, kind));
        Command::new(
            CommandStatus::EsmeRok,
            seq,
            bind::response(kind, SYSTEM_ID, c.version),
        )
    }

    fn message_id(&self) -> COctetString<1, 65> {
        let n = self.shared.message_ids.fetch_add(1, Ordering::Relaxed);
        COctetString::from_string(format!("{n:x}")).unwrap_or_else(|_| COctetString::empty())
    }
}

/// Equality in time independent of where the inputs differ.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

impl Handler for Connection {
    fn request(&self, link: &Link, cmd: Command) -> Option<Command> {
        let seq = cmd.sequence_number();
        if let Some((kind, creds)) = cmd.pdu().and_then(bind::parse) {
            return Some(self.bind(link, &cmd, kind, creds));
        }
        let bound = lock(&self.state).clone();
        let Some((system_id, kind)) = bound else {
            return error_response(&cmd, CommandStatus::EsmeRinvbndsts);
        };
        let Some(peer) = self.shared.peers.get(&system_id) else {
            return error_response(&cmd, CommandStatus::EsmeRsyserr);
        };
        match cmd.pdu() {
            Some(Pdu::SubmitSm(p)) if kind.esme_may_send() => {
                let status = peer.ussd.take(&sm::from_submit_sm(p));
                let id = if status == CommandStatus::EsmeRok {
                    self.message_id()
                } else {
                    COctetString::empty()
                };
                Some(Command::new(status, seq, SubmitSmResp::new(id, Vec::new())))
            }
            Some(Pdu::DataSm(p)) if kind.esme_may_send() => {
                let status = peer.ussd.take(&data_sm::from_data_sm(p));
                let id = if status == CommandStatus::EsmeRok {
                    self.message_id()
                } else {
                    COctetString::empty()
                };
                Some(Command::new(status, seq, DataSmResp::new(id, Vec::new())))
            }
            _ => error_response(&cmd, CommandStatus::EsmeRinvbndsts),
        }
    }

    fn closed(&self, link: &Link) {
        lock(&self.shared.links).retain(|l| l.is_open());
        if let Some((system_id, _)) = lock(&self.state).as_ref() {
            crate::metrics::smpp_peer_connections(system_id, -1.0);
            tracing::info!(peer = %link.peer(), %system_id, "SMPP peer connection closed");
        }
    }
}
