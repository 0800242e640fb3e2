//! The gateway as SMSC: accepts binds from configured peers (operators or aggregators that
//! connect to the provider) and serves USSD with the directions reversed: the peer submits the
//! subscriber's messages (submit_sm or data_sm) and the gateway answers with deliver_sm (or
//! data_sm) on the transceiver the message came on, or, for a message from a transmitter, on
//! one of the peer's receiver or transceiver connections.
//!
//! The bind state machine is enforced per connection: before a successful bind only
//! enquire_link and bind_* are accepted (anything else gets ESME_RINVBNDSTS); an unknown
//! system_id gets ESME_RINVSYSID, a wrong password ESME_RINVPASWD, a second bind
//! ESME_RALYBND; a connection that does not bind within `bind_timeout_secs` is closed. On
//! shutdown every bound connection is unbound.
//!
//! The perimeter: a peer may be limited to source networks (`allow_from`; a connection that no
//! peer may come from is closed at once) and to a number of bound connections (`max_binds`,
//! ESME_RBINDFAIL past it). Every refused bind is counted by reason and answered late, later
//! for each recent failure from the same address (0.5 s, doubling, at most 16 s), and its
//! connection is then closed, so guessing passwords is slow.

use super::link::{Handler, Link};
use crate::config::smpp::ListenerConfig;
use crate::front::smpp::stopped;
use crate::front::smpp::ussd::Ussd;
use crate::front::smpp::wire::bind::{self, BindKind};
use crate::front::smpp::wire::generic_nack::error_response;
use crate::front::smpp::wire::{data_sm, sm};
use crate::logsafe::untrusted;
use ipnet::IpNet;
use rusmpp::pdus::{DataSmResp, SubmitSmResp};
use rusmpp::types::COctetString;
use rusmpp::{Command, CommandStatus, Pdu};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The system_id the gateway answers binds with.
pub const SYSTEM_ID: &str = "ussd-gateway";

/// The first refused bind from an address is answered after this long; each further one
/// within [`FAILURE_MEMORY`] waits twice as long, up to [`MAX_FAILURE_DELAY`].
const FIRST_FAILURE_DELAY: Duration = Duration::from_millis(500);
const MAX_FAILURE_DELAY: Duration = Duration::from_secs(16);
/// How long a refused bind counts against its address.
const FAILURE_MEMORY: Duration = Duration::from_secs(600);
/// Addresses remembered at most (a scan from many addresses cannot grow the map without
/// bound; past it the oldest are forgotten).
const FAILURE_ADDRESSES: usize = 10_000;

/// One allowed peer.
#[derive(Debug)]
pub struct Peer {
    /// Its password.
    pub password: String,
    /// Its USSD side; the outlet holds its receiver-capable connections.
    pub ussd: Arc<Ussd>,
    /// Where it may connect from; empty: anywhere.
    pub allow_from: Vec<IpNet>,
    /// Connections bound at once at most.
    pub max_binds: usize,
}

impl Peer {
    fn allows(&self, ip: Option<IpAddr>) -> bool {
        self.allow_from.is_empty()
            || ip.is_some_and(|ip| self.allow_from.iter().any(|n| n.contains(&ip)))
    }
}

#[derive(Debug)]
struct Shared {
    peers: HashMap<String, Peer>,
    links: Mutex<Vec<Link>>,
    message_ids: AtomicU64,
    /// Bound connections per system_id.
    bound: Mutex<HashMap<String, usize>>,
    /// Recent refused binds per source address: how many, and the last one.
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Shared {
    fn new(peers: HashMap<String, Peer>) -> Shared {
        Shared {
            peers,
            links: Mutex::new(Vec::new()),
            message_ids: AtomicU64::new(1),
            bound: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any peer may connect from `ip`.
    fn may_connect(&self, ip: Option<IpAddr>) -> bool {
        self.peers.values().any(|p| p.allows(ip))
    }

    /// Records a refused bind from `ip`; returns how long to wait before answering it.
    fn failed(&self, ip: Option<IpAddr>) -> Duration {
        let Some(ip) = ip else {
            return FIRST_FAILURE_DELAY;
        };
        let mut failures = lock(&self.failures);
        if failures.len() >= FAILURE_ADDRESSES {
            failures.retain(|_, (_, at)| at.elapsed() < FAILURE_MEMORY);
            if failures.len() >= FAILURE_ADDRESSES {
                failures.clear();
            }
        }
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_MEMORY {
            entry.0 = 0;
        }
        *entry = (entry.0.saturating_add(1), Instant::now());
        let doublings = entry.0.saturating_sub(1).min(16);
        FIRST_FAILURE_DELAY
            .saturating_mul(1 << doublings)
            .min(MAX_FAILURE_DELAY)
    }
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
    let shared = Arc::new(Shared::new(peers));
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
        if !shared.may_connect(Some(peer.ip())) {
            crate::metrics::smpp_bind_failure("not_allowed");
            tracing::warn!(%peer, "SMPP connection from an address no peer may use; closed");
            continue;
        }
        let conn = Connection::new(&shared, Some(peer.ip()));
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
            shared: Arc::new(Shared::new(peers)),
            cfg: cfg.clone(),
        }
    }

    /// Serves one connection over `rd` / `wr`, exactly as an accepted socket is served.
    pub fn serve_io<R, W>(&self, rd: R, wr: W, peer: &str) -> (Link, tokio::task::JoinHandle<()>)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Connection::new(
            &self.shared,
            peer.parse::<SocketAddr>().ok().map(|a| a.ip()),
        );
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
    /// Where it comes from (`None` for an in-memory pipe).
    ip: Option<IpAddr>,
    /// A bind was refused: the connection closes once the late answer is out, and nothing
    /// more it sends is answered.
    refused: AtomicBool,
}

impl Connection {
    fn new(shared: &Arc<Shared>, ip: Option<IpAddr>) -> Arc<Connection> {
        Arc::new(Connection {
            shared: shared.clone(),
            state: Mutex::new(None),
            ip,
            refused: AtomicBool::new(false),
        })
    }

    /// Refuses a bind: counted, answered late (see [`Shared::failed`]), then closed.
    fn refuse_late(&self, link: &Link, reason: &'static str, resp: Command) -> Option<Command> {
        crate::metrics::smpp_bind_failure(reason);
        self.refused.store(true, Ordering::Release);
        let delay = self.shared.failed(self.ip);
        let link = link.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {
                    let _ = link.send(resp).await;
                }
                () = link.closed() => {}
            }
            link.close();
        });
        None
    }

    fn bind(
        &self,
        link: &Link,
        cmd: &Command,
        kind: BindKind,
        c: bind::Credentials,
    ) -> Option<Command> {
        let seq = cmd.sequence_number();
        let refuse = |status| Command::new(status, seq, bind::response(kind, SYSTEM_ID, c.version));
        let mut state = lock(&self.state);
        if state.is_some() {
            return Some(refuse(CommandStatus::EsmeRalybnd));
        }
        let Some(peer) = self.shared.peers.get(&c.system_id) else {
            tracing::warn!(peer = %link.peer(), system_id = ?untrusted(&c.system_id), "bind from an unknown system_id");
            return self.refuse_late(
                link,
                "unknown_system_id",
                refuse(CommandStatus::EsmeRinvsysid),
            );
        };
        let ok: bool = subtle_eq(peer.password.as_bytes(), c.password.as_bytes());
        if !ok {
            tracing::warn!(peer = %link.peer(), system_id = ?untrusted(&c.system_id), "bind with a wrong password");
            return self.refuse_late(link, "wrong_password", refuse(CommandStatus::EsmeRinvpaswd));
        }
        if !peer.allows(self.ip) {
            tracing::warn!(peer = %link.peer(), system_id = ?untrusted(&c.system_id), "bind from outside the peer's allow_from");
            return self.refuse_late(link, "not_allowed", refuse(CommandStatus::EsmeRbindfail));
        }
        {
            let mut bound = lock(&self.shared.bound);
            let n = bound.entry(c.system_id.clone()).or_default();
            if *n >= peer.max_binds {
                drop(bound);
                tracing::warn!(peer = %link.peer(), system_id = ?untrusted(&c.system_id), max_binds = peer.max_binds, "bind over the peer's max_binds");
                return self.refuse_late(
                    link,
                    "too_many_binds",
                    refuse(CommandStatus::EsmeRbindfail),
                );
            }
            *n += 1;
        }
        if kind.mc_may_send() {
            peer.ussd.outlet.add(link.clone());
        }
        tracing::info!(peer = %link.peer(), system_id = %c.system_id, kind = kind.as_str(), "SMPP peer bound");
        link.count_as(&c.system_id);
        crate::metrics::smpp_peer_connections(&c.system_id, 1.0);
        *state = Some((c.system_id, kind));
        Some(Command::new(
            CommandStatus::EsmeRok,
            seq,
            bind::response(kind, SYSTEM_ID, c.version),
        ))
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
        if self.refused.load(Ordering::Acquire) {
            return None;
        }
        if let Some((kind, creds)) = cmd.pdu().and_then(bind::parse) {
            return self.bind(link, &cmd, kind, creds);
        }
        let bound = lock(&self.state).clone();
        let Some((system_id, kind)) = bound else {
            return error_response(&cmd, CommandStatus::EsmeRinvbndsts);
        };
        let Some(peer) = self.shared.peers.get(&system_id) else {
            return error_response(&cmd, CommandStatus::EsmeRsyserr);
        };
        // The answer goes back on this connection when it may carry it (a transceiver; a
        // receiver sends no USSD), else on one of the peer's connections that may; with none
        // bound, a hop is refused (see `Ussd::take`).
        let came_on = || kind.mc_may_send().then(|| link.clone());
        match cmd.pdu() {
            Some(Pdu::SubmitSm(p)) if kind.esme_may_send() => {
                let status = peer.ussd.take(&sm::from_submit_sm(p), came_on());
                let id = if status == CommandStatus::EsmeRok {
                    self.message_id()
                } else {
                    COctetString::empty()
                };
                Some(Command::new(status, seq, SubmitSmResp::new(id, Vec::new())))
            }
            Some(Pdu::DataSm(p)) if kind.esme_may_send() => {
                let status = peer.ussd.take(&data_sm::from_data_sm(p), came_on());
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
            if let Some(n) = lock(&self.shared.bound).get_mut(system_id) {
                *n = n.saturating_sub(1);
            }
            crate::metrics::smpp_peer_connections(system_id, -1.0);
            tracing::info!(peer = %link.peer(), %system_id, "SMPP peer connection closed");
        }
    }
}
