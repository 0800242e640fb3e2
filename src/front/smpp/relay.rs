//! Cluster mode: a message for a bind this node holds no live connection of goes out on
//! another node's connection of the same bind (docs/cluster.md, "SMPP in a cluster").
//!
//! A node whose connection dropped between a subscriber's message and the reply, or that has
//! none (a push or an outbox item sent from it), queues the message in the cluster
//! ([`crate::store::shared_relay`]) and waits up to [`RELAY_WAIT`] for a node that holds a
//! connection of the bind to send it and say how it went. Every node with a connection of a
//! bind takes that bind's queue every [`TAKE_EVERY`]. The SMSC ties a reply to its dialogue by
//! the session TLVs and addresses the message carries, not by the connection, so any
//! connection of the bind account may carry it.

use super::SmppError;
use super::ussd::Ussd;
use super::wire::message::UssdMessage;
use crate::store::shared_relay::SharedRelay;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long a node waits for another to send its message: longer than a send on a healthy
/// connection takes, shorter than a subscriber waits for a screen.
pub const RELAY_WAIT: Duration = Duration::from_secs(5);

/// How often a node holding connections looks for messages other nodes left for them.
pub const TAKE_EVERY: Duration = Duration::from_millis(20);

/// At most this many messages taken at once per bind.
const TAKE_AT_ONCE: usize = 64;

/// How a relayed message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Carried {
    /// In the profile's USSD carrier (a reply, a push, a network-initiated dialogue).
    Ussd,
    /// As a plain SMS submit_sm.
    Sms,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    carried: Carried,
    message: UssdMessage,
}

impl SmppError {
    /// Whether another node's connection might carry the message: this node has none, or its
    /// connection closed before the peer answered.
    fn relayable(&self) -> bool {
        matches!(self, SmppError::NotBound | SmppError::Closed)
    }
}

impl Ussd {
    /// The cluster's relay, in cluster mode.
    fn shared_relay(&self) -> Option<&SharedRelay> {
        self.registry.core().cluster.as_ref().map(|c| &c.relay)
    }

    /// Notes, for every node of a cluster, that the network side opened the dialogue `key`
    /// (so that it ends with a notification whichever node answers its last hop).
    pub(super) async fn note_initiated(&self, key: &str) {
        if let Some(relay) = self.shared_relay()
            && let Err(e) = relay.mark_initiated(key).await
        {
            tracing::warn!(bind = %self.bind, error = %e, "network-initiated dialogue not noted in the cluster");
        }
    }

    /// Whether the network side opened the dialogue `key`, which is ending: this node's note,
    /// or in a cluster the one the node that opened it left.
    pub(super) async fn initiated_ended(&self, key: &crate::hop::SessionKey) -> bool {
        if self.forget_initiated(key) {
            return true;
        }
        match self.shared_relay() {
            Some(relay) => relay.take_initiated(key).await.unwrap_or_else(|e| {
                tracing::warn!(bind = %self.bind, error = %e, "network-initiated note unreadable: ending as a reply");
                false
            }),
            None => false,
        }
    }

    /// Forgets that the network side opened the dialogue `key` (it ended), here and in the
    /// cluster; answers whether this node had noted it.
    pub(super) fn forget_initiated(&self, key: &crate::hop::SessionKey) -> bool {
        let noted = self.lock_initiated().remove(key).is_some();
        if noted && let Some(relay) = self.shared_relay().cloned() {
            let key = key.to_string();
            tokio::spawn(async move {
                let _ = relay.take_initiated(&key).await;
            });
        }
        noted
    }

    /// Whether a message this node cannot send may go through another node (cluster mode).
    pub(super) fn relays(&self) -> bool {
        self.shared_relay().is_some()
    }

    /// `sent`, the outcome of sending `m` here; or, when this node had no connection for it
    /// (or lost it before the answer), the outcome of sending it through another node.
    pub(super) async fn or_relay(
        &self,
        sent: Result<(), SmppError>,
        carried: Carried,
        m: &UssdMessage,
    ) -> Result<(), SmppError> {
        match sent {
            Err(e) if e.relayable() => self.relay(carried, m).await,
            sent => sent,
        }
    }

    /// Sends `m` through another node's connection of this bind (cluster mode), and waits for
    /// how it went. On one node: [`SmppError::NotBound`].
    ///
    /// # Errors
    /// No node holding the bind sent it within [`RELAY_WAIT`], Redis failed, or the sending
    /// node's peer refused it.
    async fn relay(&self, carried: Carried, m: &UssdMessage) -> Result<(), SmppError> {
        let Some(relay) = self.shared_relay() else {
            return Err(SmppError::NotBound);
        };
        let body = serde_json::to_string(&Envelope {
            carried,
            message: m.clone(),
        })
        .map_err(|e| SmppError::Invalid(e.to_string()))?;
        let answer = match relay.request(&self.bind, body, RELAY_WAIT).await {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                crate::metrics::smpp_relayed(&self.bind, "out", "unanswered");
                tracing::warn!(bind = %self.bind, "no node of the cluster holding the bind sent the message in time");
                return Err(SmppError::NotBound);
            }
            Err(e) => {
                crate::metrics::smpp_relayed(&self.bind, "out", "unanswered");
                tracing::warn!(bind = %self.bind, error = %e, "message not relayed");
                return Err(SmppError::NotBound);
            }
        };
        let sent = serde_json::from_str::<Result<(), SmppError>>(&answer)
            .unwrap_or_else(|e| Err(SmppError::Link(format!("unreadable relay answer: {e}"))));
        let outcome = if sent.is_ok() { "sent" } else { "failed" };
        crate::metrics::smpp_relayed(&self.bind, "out", outcome);
        tracing::info!(bind = %self.bind, outcome, "message sent through another node");
        sent
    }

    /// Sends one message another node left for this bind, on this node's connections only,
    /// within its deadline, and answers.
    async fn send_relayed(&self, relay: &SharedRelay, r: crate::store::shared_relay::Relayed) {
        let left = Duration::from_millis(r.until.saturating_sub(crate::clock::now_ms()));
        let sent = match serde_json::from_str::<Envelope>(&r.body) {
            Ok(e) => {
                let send = async {
                    match e.carried {
                        Carried::Ussd => self.send_here(&e.message).await,
                        Carried::Sms => self.send_sms_here(&e.message).await,
                    }
                };
                tokio::time::timeout(left, send)
                    .await
                    .unwrap_or(Err(SmppError::Link("deadline passed".into())))
            }
            Err(e) => Err(SmppError::Invalid(format!(
                "unreadable relayed message: {e}"
            ))),
        };
        let outcome = if sent.is_ok() { "sent" } else { "failed" };
        crate::metrics::smpp_relayed(&self.bind, "in", outcome);
        let answer = serde_json::to_string(&sent).unwrap_or_default();
        if let Err(e) = relay.answer(&r.id, &answer).await {
            tracing::warn!(bind = %self.bind, error = %e, "relayed message's outcome not answered");
        }
    }
}

/// In cluster mode, the task that sends what other nodes leave for the binds (and listener
/// peers) this node holds connections of, until `stop`.
pub(super) fn spawn_taker(
    sides: Vec<Arc<Ussd>>,
    mut stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let relay = sides.first()?.shared_relay()?.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(TAKE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = super::stopped(&mut stop) => return,
            }
            for side in sides.iter().filter(|s| s.outlet.open() > 0) {
                let taken = match relay.take(&side.bind, TAKE_AT_ONCE).await {
                    Ok(taken) => taken,
                    Err(e) => {
                        tracing::debug!(bind = %side.bind, error = %e, "relay queue not read");
                        continue;
                    }
                };
                for r in taken {
                    let (side, relay) = (side.clone(), relay.clone());
                    tokio::spawn(async move { side.send_relayed(&relay, r).await });
                }
            }
        }
    }))
}
