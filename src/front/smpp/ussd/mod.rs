//! The translation itself: a [`UssdMessage`] from the network becomes a [`Hop`] (or an abort),
//! and the [`crate::hop::Reply`] becomes a [`UssdMessage`] back, per the operator's profile.
//!
//! This is the whole of the SMPP front's USSD semantics; the files around it only move PDUs.
//! The checks that can refuse a message (MSISDN, session TLV, op, and as SMSC whether its
//! answer has a connection to go back on) run before the PDU is acknowledged, so a refusal is
//! an error status on the `_resp`; the hop itself runs after the acknowledgement, in a task of
//! its own, so a slow app never holds up the connection or another subscriber's dialogue. An
//! answer that cannot be delivered ends its dialogue.
//!
//! [`profile`]: what the operator's profile means on the wire (end signal, session TLV echo).

pub mod profile;

use crate::config::smpp::profile::{Carrier, DialledFrom, Identity, Profile};
use crate::front::smpp::conn::link::Link;
use crate::front::smpp::wire::data_sm::to_data_sm;
use crate::front::smpp::wire::encoding;
use crate::front::smpp::wire::message::{Address, TooLong, UssdMessage};
use crate::front::smpp::wire::sm::{to_deliver_sm, to_submit_sm};
use crate::hop::{Front, Hop, HopInput, SessionKey};
use crate::msisdn::Msisdn;
use crate::session::{Registry, reply_or_apology};
use rusmpp::{CommandStatus, Pdu};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// USSN confirm: the handset's acknowledgement of a push.
const USSN_CONFIRM: u8 = 19;

/// How long the front remembers that it opened a dialogue (to end it with a USSN rather than a
/// PSSR response); longer than any idle timeout a USSD centre allows.
const INITIATED_MEMORY: Duration = Duration::from_secs(600);

/// Which side of the SMPP conversation the gateway plays on this bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The gateway bound to the operator: MO comes in deliver_sm, replies go in submit_sm.
    Esme,
    /// The peer bound to the gateway: MO comes in submit_sm, replies go in deliver_sm.
    Smsc,
}

/// The connections replies can leave by (a transceiver, or a transmitter for the ESME role;
/// the peer's receivers and transceivers for the SMSC role).
#[derive(Debug, Default)]
pub struct Outlet {
    links: Mutex<Vec<Link>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Outlet {
    /// Adds a connection.
    pub fn add(&self, link: Link) {
        self.lock().push(link);
    }

    /// Forgets closed connections and returns the first open one.
    pub fn pick(&self) -> Option<Link> {
        let mut links = self.lock();
        links.retain(Link::is_open);
        links.first().cloned()
    }

    /// Forgets closed connections and returns the open ones in turn (round robin).
    pub fn pick_next(&self) -> Option<Link> {
        let mut links = self.lock();
        links.retain(Link::is_open);
        if links.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % links.len();
        Some(links[i].clone())
    }

    /// Whether `link` is one of the open connections.
    pub fn contains(&self, link: &Link) -> bool {
        self.lock().iter().any(|l| l.same(link))
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        let mut links = self.lock();
        links.retain(Link::is_open);
        links.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Link>> {
        self.links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One bind's (or one listener peer's) USSD side.
#[derive(Debug)]
pub struct Ussd {
    /// The name in session keys.
    pub bind: Arc<str>,
    /// The operator's convention.
    pub profile: Profile,
    /// Which side the gateway plays.
    pub role: Role,
    /// Where hops go.
    pub registry: Registry,
    /// Country code for national numbers.
    pub default_cc: Arc<str>,
    /// Where replies leave.
    pub outlet: Outlet,
    /// The live dialogues this side opened (network-initiated USSR), with when.
    pub initiated: Mutex<HashMap<SessionKey, Instant>>,
    /// The next session number for a dialogue this side opens.
    pub next_session: AtomicU32,
}

/// What an inbound message asks for.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Run a hop and answer with a reply built on `template`.
    Hop(Box<Hop>, Box<UssdMessage>),
    /// The network ended the dialogue.
    Abort(SessionKey),
    /// Nothing to do (a push's confirmation).
    Ignore,
}

impl Ussd {
    /// One bind's (or listener peer's) USSD side, with no connection yet.
    pub fn new(
        bind: &str,
        profile: Profile,
        role: Role,
        registry: Registry,
        default_cc: Arc<str>,
    ) -> Ussd {
        Ussd {
            bind: bind.into(),
            profile,
            role,
            registry,
            default_cc,
            outlet: Outlet::default(),
            initiated: Mutex::default(),
            next_session: AtomicU32::new(rand::random()),
        }
    }

    /// Reads an inbound message; refusals are the status for its `_resp`.
    pub fn decide(&self, m: &UssdMessage) -> Result<Decision, CommandStatus> {
        let p = &self.profile;
        let msisdn = Msisdn::parse(&m.source.addr, &self.default_cc)
            .map_err(|_| CommandStatus::EsmeRinvsrcadr)?;
        let part = match p.identity {
            Identity::ItsSessionInfo => {
                Some(m.its.ok_or(CommandStatus::EsmeRmissingtlv)?[0].to_string())
            }
            Identity::UserMessageReference => {
                Some(m.umr.ok_or(CommandStatus::EsmeRmissingtlv)?.to_string())
            }
            Identity::Msisdn => None,
        };
        let key = self.key(&msisdn, part.as_deref());
        let end_bit = m.its.is_some_and(|i| i[1] & 1 == 1);
        let text = encoding::decode(m.data_coding, &m.body, p.default_alphabet);
        let has = |ops: &[u8]| m.op.is_some_and(|op| ops.contains(&op));
        let start = if has(&p.abort_ops) || (p.end_bit_aborts && end_bit) {
            return Ok(Decision::Abort(key));
        } else if has(&p.start_ops) {
            true
        } else if has(&p.continue_ops) {
            false
        } else if m.op == Some(USSN_CONFIRM) {
            return Ok(Decision::Ignore);
        } else if m.op.is_none() {
            // No op at all: a dialled code starts, anything else continues.
            let t = text.trim();
            t.starts_with('*') && t.ends_with('#')
        } else {
            return Err(CommandStatus::EsmeRinvtlvval);
        };
        let (dialled, input) = if start {
            let dialled = match p.dialled_from {
                DialledFrom::ShortMessage => text.trim().to_string(),
                DialledFrom::DestinationAddr => service_code(&m.dest.addr),
            };
            (dialled, HopInput::Single(None))
        } else {
            (String::new(), HopInput::Single(Some(text)))
        };
        let hop = Hop {
            key,
            front: Front::Smpp,
            msisdn,
            dialled,
            network: None,
            input,
            limit: p.limit(),
            dialect: "smpp",
            seq: None,
        };
        let template = UssdMessage {
            service_type: p.service_type.clone(),
            source: m.dest.clone(),
            dest: m.source.clone(),
            data_coding: 0,
            body: Vec::new(),
            op: None,
            its: m.its,
            umr: m.umr,
        };
        Ok(Decision::Hop(Box::new(hop), Box::new(template)))
    }

    /// Takes one inbound message: decides, and (after the caller has acknowledged it) runs the
    /// hop or the abort in a task of its own. Returns the status for the `_resp`. `came_on`:
    /// the connection it came on, when the answer may go back on it (a transceiver); else the
    /// answer goes on any of the bind's connections that may send.
    ///
    /// As SMSC, a hop that came on a connection that cannot carry its answer (a transmitter)
    /// while the peer has no receiver or transceiver bound is refused with ESME_RINVBNDSTS,
    /// and the dialogue it belongs to, if live, is ended: its answer could not go anywhere.
    /// (As ESME the hop is taken: the bind's transmitter may be bound and not yet listed. In
    /// a cluster it is taken too: another node may hold a receiver of the peer.)
    pub fn take(self: &Arc<Self>, m: &UssdMessage, came_on: Option<Link>) -> CommandStatus {
        match self.decide(m) {
            Ok(Decision::Hop(hop, _))
                if self.role == Role::Smsc
                    && came_on.is_none()
                    && self.outlet.open() == 0
                    && !self.relays() =>
            {
                tracing::warn!(bind = %self.bind, "USSD on a transmitter, and no receiver or transceiver of the peer bound to answer it; refused");
                let (registry, key) = (self.registry.clone(), hop.key);
                self.forget_initiated(&key);
                tokio::spawn(async move {
                    if registry.abort(key.clone()).await {
                        tracing::info!(session = %crate::session::log_id(&key), "dialogue ended: its answer could not be delivered");
                    }
                });
                CommandStatus::EsmeRinvbndsts
            }
            Ok(Decision::Hop(hop, template)) => {
                let this = self.clone();
                tokio::spawn(async move { this.answer(*hop, *template, came_on).await });
                CommandStatus::EsmeRok
            }
            Ok(Decision::Abort(key)) => {
                let registry = self.registry.clone();
                self.forget_initiated(&key);
                tokio::spawn(async move {
                    let ended = registry.abort(key.clone()).await;
                    tracing::debug!(session = %crate::session::log_id(&key), ended, "SMPP abort");
                });
                CommandStatus::EsmeRok
            }
            Ok(Decision::Ignore) => CommandStatus::EsmeRok,
            Err(status) => {
                tracing::warn!(bind = %self.bind, ?status, op = ?m.op, "USSD message refused");
                status
            }
        }
    }

    async fn answer(&self, hop: Hop, mut reply: UssdMessage, came_on: Option<Link>) {
        let apology = self.registry.core().settings.apology_text.clone();
        let key = hop.key.clone();
        let r = reply_or_apology(self.registry.hop(hop).await, &apology);
        let (dc, body) = encoding::encode(&r.text);
        reply.data_coding = dc;
        reply.body = body;
        // A dialogue the network side opened (USSR) ends with a notification (USSN).
        let initiated = r.end && self.initiated_ended(&key).await;
        reply.op = Some(if initiated {
            self.profile.push_op
        } else {
            self.profile.reply_op(r.end)
        });
        reply.its = reply.its.map(|i| self.profile.reply_its(i, r.end));
        // On the connection the hop came on: a reply must not depend on when the bind's
        // connection loop gets round to listing a new connection (the peer may send its first
        // deliver_sm right behind the bind_resp).
        let sent = match self.pdu(&reply) {
            Ok(pdu) => {
                // Boxed: its future is most of this one's size, and a hop's task is moved whole
                // when it is spawned and again when it completes.
                let sent = Box::pin(self.send_pdu_on(pdu, came_on.filter(Link::is_open))).await;
                self.or_relay(sent, super::relay::Carried::Ussd, &reply)
                    .await
            }
            Err(e) => Err(super::SmppError::Invalid(e.to_string())),
        };
        if let Err(e) = sent {
            tracing::warn!(bind = %self.bind, session = %crate::session::log_id(&key), error = %e, "reply not delivered");
            // The subscriber never sees this screen, so cannot answer it: end the dialogue now
            // rather than leave it live until its idle timeout.
            if !r.end {
                self.forget_initiated(&key);
                self.registry.abort(key).await;
            }
        }
    }

    /// Sends a message towards the network side, in this profile's carrier, and checks the
    /// response status; in a cluster, through another node's connection of the bind when this
    /// node has none.
    ///
    /// # Errors
    /// No connection is up, the message does not fit, or the peer refused or did not answer.
    pub async fn send(&self, m: &UssdMessage) -> Result<(), super::SmppError> {
        let sent = self.send_here(m).await;
        self.or_relay(sent, super::relay::Carried::Ussd, m).await
    }

    /// [`Ussd::send`] on this node's connections only.
    ///
    /// # Errors
    /// As [`Ussd::send`].
    pub async fn send_here(&self, m: &UssdMessage) -> Result<(), super::SmppError> {
        let pdu = self
            .pdu(m)
            .map_err(|e| super::SmppError::Invalid(e.to_string()))?;
        self.send_pdu(pdu).await
    }

    /// Sends a plain SMS (a submit_sm without USSD TLVs; long texts in message_payload), in a
    /// cluster through another node when this one holds no connection of the bind.
    ///
    /// # Errors
    /// As [`Ussd::send`].
    pub async fn send_sms(&self, m: &UssdMessage) -> Result<(), super::SmppError> {
        let sent = self.send_sms_here(m).await;
        self.or_relay(sent, super::relay::Carried::Sms, m).await
    }

    /// [`Ussd::send_sms`] on this node's connections only.
    ///
    /// # Errors
    /// As [`Ussd::send`].
    pub async fn send_sms_here(&self, m: &UssdMessage) -> Result<(), super::SmppError> {
        let pdu = crate::front::smpp::wire::sm::to_sms_submit_sm(m)
            .map_err(|e| super::SmppError::Invalid(e.to_string()))?;
        self.send_pdu(pdu).await
    }

    async fn send_pdu(&self, pdu: Pdu) -> Result<(), super::SmppError> {
        self.send_pdu_on(pdu, None).await
    }

    /// Sends on `link`, or on one the outlet picks.
    async fn send_pdu_on(&self, pdu: Pdu, link: Option<Link>) -> Result<(), super::SmppError> {
        use super::SmppError;
        let link = match link {
            Some(link) => link,
            None => self.outlet.pick().ok_or(SmppError::NotBound)?,
        };
        let resp = link.request_retrying(pdu).await.map_err(|e| match e {
            crate::front::smpp::conn::link::LinkError::Closed => SmppError::Closed,
            e => SmppError::Link(e.to_string()),
        })?;
        match resp.status() {
            CommandStatus::EsmeRok => Ok(()),
            status => Err(SmppError::Refused(u32::from(status))),
        }
    }

    fn pdu(&self, m: &UssdMessage) -> Result<Pdu, TooLong> {
        match (self.profile.carrier, self.role) {
            (Carrier::DataSm, _) => to_data_sm(m),
            (Carrier::Sm, Role::Esme) => to_submit_sm(m),
            (Carrier::Sm, Role::Smsc) => to_deliver_sm(m),
        }
    }

    /// The session key of a message from `msisdn` with the profile's session part.
    fn key(&self, msisdn: &Msisdn, part: Option<&str>) -> SessionKey {
        match part {
            Some(part) => format!("smpp:{}:{msisdn}:{part}", self.bind),
            None => format!("smpp:{}:{msisdn}", self.bind),
        }
        .into()
    }

    pub(super) fn lock_initiated(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Instant>> {
        self.initiated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A network-initiated dialogue: runs the first screen of the route for `code` as if
    /// `msisdn` had dialled it, and sends it as a USSR request (the profile's continue op) from
    /// `source`, with a session of this side's choosing; the subscriber's answers then come back
    /// as ordinary continuing messages (USSR confirm) and the dialogue goes on like any other.
    /// A first screen that already ends goes out as a USSN. Returns whether a dialogue is now
    /// open.
    ///
    /// # Errors
    /// No connection is up, the message does not fit, or the peer refused or did not answer;
    /// the dialogue is then ended at once, so nothing waits for an answer that cannot come.
    pub async fn initiate(
        &self,
        msisdn: &Msisdn,
        source: &str,
        code: &str,
    ) -> Result<bool, super::SmppError> {
        let p = &self.profile;
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (its, umr) = ((n % 256) as u8, (n % 65536) as u16);
        let part = match p.identity {
            Identity::ItsSessionInfo => Some(its.to_string()),
            Identity::UserMessageReference => Some(umr.to_string()),
            Identity::Msisdn => None,
        };
        let key = self.key(msisdn, part.as_deref());
        let hop = Hop {
            key: key.clone(),
            front: Front::Smpp,
            msisdn: msisdn.clone(),
            dialled: service_code(code),
            network: None,
            input: HopInput::Single(None),
            limit: p.limit(),
            dialect: "smpp",
            seq: None,
        };
        let r = self
            .registry
            .hop(hop)
            .await
            .map_err(|e| super::SmppError::Link(format!("dialogue not started: {e}")))?;
        let (data_coding, body) = encoding::encode(&r.text);
        let m = UssdMessage {
            service_type: p.service_type.clone(),
            source: Address::unknown(source),
            dest: Address::international(msisdn.as_str()),
            data_coding,
            body,
            op: Some(if r.end { p.push_op } else { p.continue_op }),
            its: (p.identity == Identity::ItsSessionInfo || p.end_by_bit())
                .then_some([its, u8::from(r.end && p.end_by_bit())]),
            umr: (p.identity == Identity::UserMessageReference).then_some(umr),
        };
        if !r.end {
            {
                let mut initiated = self.lock_initiated();
                initiated.retain(|_, at| at.elapsed() < INITIATED_MEMORY);
                initiated.insert(key.clone(), Instant::now());
            }
            self.note_initiated(&key).await;
        }
        if let Err(e) = self.send(&m).await {
            self.forget_initiated(&key);
            if !r.end {
                self.registry.abort(key).await;
            }
            return Err(e);
        }
        Ok(!r.end)
    }

    /// A network-initiated notification (USSN request) to `msisdn` from `source`.
    pub fn push(&self, msisdn: &Msisdn, source: &str, text: &str) -> UssdMessage {
        let (data_coding, body) = encoding::encode(text);
        UssdMessage {
            service_type: self.profile.service_type.clone(),
            source: Address::unknown(source),
            dest: Address::international(msisdn.as_str()),
            data_coding,
            body,
            op: Some(self.profile.push_op),
            its: None,
            umr: None,
        }
    }
}

/// A service code from destination_addr: `384*1` or `*384*1#` both read `*384*1#`.
pub fn service_code(addr: &str) -> String {
    let a = addr.trim().trim_start_matches('*').trim_end_matches('#');
    format!("*{a}#")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_from_addresses() {
        assert_eq!(service_code("384"), "*384#");
        assert_eq!(service_code("*384*1#"), "*384*1#");
        assert_eq!(service_code("384*1"), "*384*1#");
    }
}
