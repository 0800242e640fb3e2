//! The operator simulator: an SMSC / USSD centre in the box.
//!
//! It listens (127.0.0.1:2775 by default), accepts the gateway's bind (any credentials, or the
//! configured ones), and plays the network side of a profile: a dial goes out as deliver_sm
//! (or data_sm) with the profile's start op and session TLV, the gateway's submit_sm (or
//! data_sm) comes back as a [`Screen`], and each answer goes out with the continue op and the
//! same session. `ussd-gateway operator-sim` drives it from the terminal ([`run_operator_sim`]);
//! the integration tests drive it through [`OperatorSim`] for every shipped profile.

use crate::config::smpp::LinkConfig;
use crate::config::smpp::profile::{Carrier, DefaultAlphabet, DialledFrom, Identity, Profile};
use crate::front::smpp::conn::link::{Handler, Link};
use crate::front::smpp::ussd::Outlet;
use crate::front::smpp::wire::bind::{self, BindKind};
use crate::front::smpp::wire::generic_nack::error_response;
use crate::front::smpp::wire::message::{Address, UssdMessage};
use crate::front::smpp::wire::{data_sm, encoding, sm};
use rusmpp::pdus::{DataSmResp, SubmitSmResp};
use rusmpp::types::COctetString;
use rusmpp::{Command, CommandStatus, Pdu};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

/// How long the simulator waits for the gateway's answer to one hop.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a simulated dialogue could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The gateway has no bind up with the simulator.
    #[error("the gateway is not bound")]
    NotBound,
    /// The gateway did not answer in time.
    #[error("no answer from the gateway within {0:?}")]
    Timeout(Duration),
    /// The connection failed.
    #[error("link: {0}")]
    Link(String),
    /// The gateway answered the PDU with an error status.
    #[error("the gateway refused the message: command_status {0:#010x}")]
    Refused(u32),
}

/// One screen the gateway sent, as a handset would show it, with the wire details tests check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    /// The text, decoded.
    pub text: String,
    /// Whether this screen ends the dialogue (per the profile's end signal).
    pub end: bool,
    /// The message as received.
    pub message: UssdMessage,
}

/// Each subscriber's dialogue in progress: where its messages go, and whether the gateway
/// opened it (then a USSN ends it rather than being a notification of its own).
type Waiters = Mutex<HashMap<String, (mpsc::UnboundedSender<UssdMessage>, bool)>>;

#[derive(Debug)]
struct Shared {
    profile: Profile,
    credentials: Option<(String, String)>,
    receivers: Outlet,
    transmitters: AtomicUsize,
    bound: Notify,
    waiters: Waiters,
    pushes: Mutex<mpsc::UnboundedReceiver<UssdMessage>>,
    push_tx: mpsc::UnboundedSender<UssdMessage>,
    initiated: tokio::sync::Mutex<mpsc::UnboundedReceiver<(UssdMessage, Link)>>,
    initiated_tx: mpsc::UnboundedSender<(UssdMessage, Link)>,
    sessions: AtomicU32,
    links: Mutex<Vec<Link>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running simulator.
#[derive(Debug)]
pub struct OperatorSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl OperatorSim {
    /// Listens on `listen` and plays `profile`. With `credentials`, only that system_id and
    /// password may bind.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn start(
        listen: SocketAddr,
        profile: Profile,
        credentials: Option<(String, String)>,
    ) -> std::io::Result<OperatorSim> {
        OperatorSim::start_with(listen, profile, credentials, LinkConfig::default()).await
    }

    /// [`OperatorSim::start`] with the simulator's own connection settings (a load driver
    /// sets a wider window than the default 10 requests in flight).
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn start_with(
        listen: SocketAddr,
        profile: Profile,
        credentials: Option<(String, String)>,
        link: LinkConfig,
    ) -> std::io::Result<OperatorSim> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let (initiated_tx, initiated_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            profile,
            credentials,
            receivers: Outlet::default(),
            transmitters: AtomicUsize::new(0),
            bound: Notify::new(),
            waiters: Mutex::new(HashMap::new()),
            pushes: Mutex::new(push_rx),
            push_tx,
            initiated: tokio::sync::Mutex::new(initiated_rx),
            initiated_tx,
            sessions: AtomicU32::new(0),
            links: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept(listener, shared.clone(), link));
        Ok(OperatorSim { addr, shared, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the gateway can both receive and send on its binds here.
    pub fn is_bound(&self) -> bool {
        self.shared.receivers.open() > 0 && self.shared.transmitters.load(Ordering::Acquire) > 0
    }

    /// Waits until [`OperatorSim::is_bound`], at most `timeout`.
    pub async fn wait_bound(&self, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        while !self.is_bound() {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(
                left.min(Duration::from_millis(50)),
                self.shared.bound.notified(),
            )
            .await;
        }
        true
    }

    /// Dials `code` as subscriber `msisdn`; returns the dialogue and its first screen.
    ///
    /// # Errors
    /// Not bound, refused, or no answer in time.
    pub async fn dial(&self, msisdn: &str, code: &str) -> Result<(SimDialogue, Screen), SimError> {
        let p = &self.shared.profile;
        let session = self.shared.sessions.fetch_add(1, Ordering::Relaxed);
        let dest = match p.dialled_from {
            DialledFrom::ShortMessage => code
                .trim_start_matches('*')
                .split(['*', '#'])
                .next()
                .unwrap_or_default()
                .to_string(),
            DialledFrom::DestinationAddr => code.trim_matches(['*', '#']).to_string(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // Each dialogue keeps to one of the gateway's connections (one of its binds), taken in
        // turn, so that load spreads over every bind.
        let link = self
            .shared
            .receivers
            .pick_next()
            .ok_or(SimError::NotBound)?;
        lock(&self.shared.waiters).insert(msisdn.to_string(), (tx, false));
        let mut d = SimDialogue {
            link,
            shared: self.shared.clone(),
            msisdn: msisdn.to_string(),
            dest,
            session: (session % 256) as u8,
            umr: (session % 65536) as u16,
            hops: 0,
            rx,
        };
        let first = d
            .hop(code, p.start_ops.first().copied().unwrap_or(1), false)
            .await?;
        Ok((d, first))
    }

    /// The next dialogue the gateway opened (a USSR request to a subscriber who is in no
    /// dialogue), within `timeout`: the dialogue, to answer as the subscriber, and its first
    /// screen.
    pub async fn next_dialogue(&self, timeout: Duration) -> Option<(SimDialogue, Screen)> {
        let (m, came_on) = {
            let mut rx = self.shared.initiated.lock().await;
            tokio::time::timeout(timeout, rx.recv()).await.ok()??
        };
        // Answers go back on the connection the request came on when it can carry them (a
        // transceiver), else on one of the gateway's receivers.
        let link = if self.shared.receivers.contains(&came_on) {
            came_on
        } else {
            self.shared.receivers.pick()?
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let msisdn = m.dest.addr.clone();
        lock(&self.shared.waiters).insert(msisdn.clone(), (tx, true));
        let d = SimDialogue {
            link,
            shared: self.shared.clone(),
            msisdn,
            dest: m.source.addr.clone(),
            session: m.its.map_or(0, |i| i[0]),
            umr: m.umr.unwrap_or_default(),
            hops: 1,
            rx,
        };
        Some((d, screen(&self.shared.profile, m)))
    }

    /// The next message the gateway sent outside any dialogue (a USSN push), within `timeout`.
    pub async fn next_push(&self, timeout: Duration) -> Option<Screen> {
        let m = {
            let mut rx = lock(&self.shared.pushes);
            rx.try_recv().ok()
        };
        let m = match m {
            Some(m) => m,
            None => {
                let until = tokio::time::Instant::now() + timeout;
                loop {
                    if let Ok(m) = lock(&self.shared.pushes).try_recv() {
                        break m;
                    }
                    if tokio::time::Instant::now() >= until {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        Some(screen(&self.shared.profile, m))
    }

    /// Stops at once: stops listening and drops every connection without unbinding, as a
    /// crashed or unplugged SMSC would.
    pub fn kill(self) {
        self.task.abort();
        for l in lock(&self.shared.links).drain(..) {
            l.close();
        }
    }
}

/// One simulated subscriber's dialogue.
#[derive(Debug)]
pub struct SimDialogue {
    /// The gateway connection this dialogue keeps to.
    link: Link,
    shared: Arc<Shared>,
    msisdn: String,
    dest: String,
    session: u8,
    umr: u16,
    hops: u8,
    rx: mpsc::UnboundedReceiver<UssdMessage>,
}

impl SimDialogue {
    /// Sends the subscriber's answer; returns the next screen.
    ///
    /// # Errors
    /// Not bound, refused, or no answer in time.
    pub async fn reply(&mut self, text: &str) -> Result<Screen, SimError> {
        let op = self
            .shared
            .profile
            .continue_ops
            .first()
            .copied()
            .unwrap_or(18);
        self.hop(text, op, false).await
    }

    /// The subscriber (or the network) abandons the dialogue: the profile's abort op, or
    /// its_session_info bit 0 where the profile reads that as an abort.
    ///
    /// # Errors
    /// Not bound or refused.
    pub async fn abort(mut self) -> Result<(), SimError> {
        let p = &self.shared.profile;
        let (op, bit) = match p.abort_ops.first() {
            Some(&op) => (op, false),
            None => (p.continue_ops.first().copied().unwrap_or(18), true),
        };
        let m = self.message("", op, bit);
        self.send(&m).await
    }

    fn message(&mut self, text: &str, op: u8, end_bit: bool) -> UssdMessage {
        let p = &self.shared.profile;
        let (data_coding, body) = encoding::encode(text);
        let its_profile = p.identity == Identity::ItsSessionInfo || p.end_bit_aborts;
        let m = UssdMessage {
            service_type: p.service_type.clone(),
            source: Address::international(&self.msisdn),
            dest: Address::unknown(&self.dest),
            data_coding,
            body,
            op: Some(op),
            its: its_profile
                .then_some([self.session, self.hops.wrapping_mul(2) | u8::from(end_bit)]),
            umr: (p.identity == Identity::UserMessageReference).then_some(self.umr),
        };
        self.hops = self.hops.wrapping_add(1);
        m
    }

    async fn send(&self, m: &UssdMessage) -> Result<(), SimError> {
        let pdu = match self.shared.profile.carrier {
            Carrier::Sm => sm::to_deliver_sm(m),
            Carrier::DataSm => data_sm::to_data_sm(m),
        }
        .map_err(|e| SimError::Link(e.to_string()))?;
        if !self.link.is_open() {
            return Err(SimError::NotBound);
        }
        let resp = self
            .link
            .request(pdu)
            .await
            .map_err(|e| SimError::Link(e.to_string()))?;
        match resp.status() {
            CommandStatus::EsmeRok => Ok(()),
            s => Err(SimError::Refused(u32::from(s))),
        }
    }

    async fn hop(&mut self, text: &str, op: u8, end_bit: bool) -> Result<Screen, SimError> {
        let m = self.message(text, op, end_bit);
        self.send(&m).await?;
        let m = tokio::time::timeout(ANSWER_TIMEOUT, self.rx.recv())
            .await
            .map_err(|_| SimError::Timeout(ANSWER_TIMEOUT))?
            .ok_or(SimError::NotBound)?;
        Ok(screen(&self.shared.profile, m))
    }
}

impl Drop for SimDialogue {
    fn drop(&mut self) {
        lock(&self.shared.waiters).remove(&self.msisdn);
    }
}

fn screen(p: &Profile, m: UssdMessage) -> Screen {
    let by_op =
        (p.reply_op(true) != p.continue_op && m.op == Some(p.end_op)) || m.op == Some(p.push_op);
    let by_bit = p.end_by_bit() && m.its.is_some_and(|i| i[1] & 1 == 1);
    Screen {
        text: encoding::decode(m.data_coding, &m.body, DefaultAlphabet::Gsm7),
        end: by_op || by_bit,
        message: m,
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, cfg: LinkConfig) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let conn = Arc::new(SimConn {
            shared: shared.clone(),
            kind: Mutex::new(None),
        });
        let (link, _task) = Link::spawn(stream, &cfg, peer.to_string(), conn);
        let mut links = lock(&shared.links);
        links.retain(Link::is_open);
        links.push(link);
    }
}

#[derive(Debug)]
struct SimConn {
    shared: Arc<Shared>,
    kind: Mutex<Option<BindKind>>,
}

impl Handler for SimConn {
    fn request(&self, link: &Link, cmd: Command) -> Option<Command> {
        let seq = cmd.sequence_number();
        if let Some((kind, c)) = cmd.pdu().and_then(bind::parse) {
            let allowed = self
                .shared
                .credentials
                .as_ref()
                .is_none_or(|(id, pw)| *id == c.system_id && *pw == c.password);
            if !allowed {
                let pdu = bind::response(kind, "operator-sim", c.version);
                return Some(Command::new(CommandStatus::EsmeRinvpaswd, seq, pdu));
            }
            *lock(&self.kind) = Some(kind);
            if kind.mc_may_send() {
                self.shared.receivers.add(link.clone());
            }
            if kind.esme_may_send() {
                self.shared.transmitters.fetch_add(1, Ordering::AcqRel);
            }
            self.shared.bound.notify_waiters();
            let pdu = bind::response(kind, "operator-sim", c.version);
            return Some(Command::new(CommandStatus::EsmeRok, seq, pdu));
        }
        if lock(&self.kind).is_none() {
            return error_response(&cmd, CommandStatus::EsmeRinvbndsts);
        }
        let (m, resp): (UssdMessage, Pdu) = match cmd.pdu() {
            Some(Pdu::SubmitSm(p)) => (
                sm::from_submit_sm(p),
                SubmitSmResp::new(id(seq), Vec::new()).into(),
            ),
            Some(Pdu::DataSm(p)) => (
                data_sm::from_data_sm(p),
                DataSmResp::new(id(seq), Vec::new()).into(),
            ),
            _ => return error_response(&cmd, CommandStatus::EsmeRinvcmdid),
        };
        let p = &self.shared.profile;
        let waiter = lock(&self.shared.waiters).get(&m.dest.addr).cloned();
        match waiter {
            Some((tx, initiated)) if initiated || m.op != Some(p.push_op) => {
                let _ = tx.send(m);
            }
            // A USSR request to a subscriber in no dialogue: the gateway opens one.
            None if m.op == Some(p.continue_op) => {
                let _ = self.shared.initiated_tx.send((m, link.clone()));
            }
            _ => {
                let _ = self.shared.push_tx.send(m);
            }
        }
        Some(Command::new(CommandStatus::EsmeRok, seq, resp))
    }

    fn closed(&self, _link: &Link) {
        if lock(&self.kind).is_some_and(BindKind::esme_may_send) {
            self.shared.transmitters.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn id(seq: u32) -> COctetString<1, 65> {
    COctetString::from_string(format!("sim{seq}")).unwrap_or_else(|_| COctetString::empty())
}
