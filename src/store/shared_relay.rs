//! Messages a node hands to another node's connection (cluster mode): a node that has to send
//! on a bind it holds no live connection of (its connection dropped between a message and the
//! reply, or it never got one) queues the message for the nodes that do.
//!
//! Keys, all under the hash tag `{relay}` (one slot in a Cluster):
//! - `ussd:{relay}:q:<bind>`: a list of requests for the bind, each JSON
//!   `{"id", "until", "body"}`; a node with a live connection of the bind pops them (`RPOP`,
//!   so each goes to one node), drops those past `until` (ms since the epoch: a reply nobody
//!   took in time must never reach a subscriber late), sends the others and answers;
//! - `ussd:{relay}:r:<id>`: the answer to one request, kept a minute; the requester polls it;
//! - `ussd:init:{<session key>}`: a dialogue the network side opened (a network-initiated
//!   USSR), which ends with a notification rather than a reply, whichever node answers its
//!   last hop; kept at most [`INITIATED_TTL_MS`].
//!
//! The body is opaque here (the SMPP front puts its message in it). A node that pops a request
//! and dies before sending it loses that message: the requester then sees no answer in time
//! and treats the message as not sent, as it does when no node holds the bind.

use super::StoreError;
use super::redis::Redis;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const QUEUE: &str = "ussd:{relay}:q:";
const INITIATED: &str = "ussd:init:";
/// Longer than any idle timeout a USSD centre allows.
pub const INITIATED_TTL_MS: u64 = 600_000;
const ANSWER: &str = "ussd:{relay}:r:";
/// How long an answer is kept for its requester.
const ANSWER_TTL_MS: u64 = 60_000;
/// The requester's first and longest pause between two looks for the answer.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const LONGEST_PAUSE: Duration = Duration::from_millis(25);

/// The relay between the cluster's nodes, in Redis. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedRelay {
    redis: Redis,
}

/// One request a node took for a bind it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relayed {
    /// Names the answer.
    pub id: String,
    /// After this (ms since the epoch) the message must not be sent.
    pub until: u64,
    /// What to send, as the requester wrote it.
    pub body: String,
}

impl SharedRelay {
    /// The relay on this Redis.
    pub fn new(redis: Redis) -> SharedRelay {
        SharedRelay { redis }
    }

    /// Queues `body` for a node holding `bind` and waits up to `wait` for its answer. `None`:
    /// no node answered in time (the message is then never sent: its deadline has passed).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn request(
        &self,
        bind: &str,
        body: String,
        wait: Duration,
    ) -> Result<Option<String>, StoreError> {
        let id = format!("{:032x}", rand::random::<u128>());
        let started = tokio::time::Instant::now();
        let until = crate::clock::now_ms() + wait.as_millis() as u64;
        let entry = serde_json::to_string(&Relayed {
            id: id.clone(),
            until,
            body,
        })?;
        let mut push = redis::cmd("LPUSH");
        push.arg(format!("{QUEUE}{bind}")).arg(entry);
        self.redis.query::<u64>(&push).await?;
        let mut get = redis::cmd("GETDEL");
        get.arg(format!("{ANSWER}{id}"));
        let mut pause = FIRST_PAUSE;
        loop {
            tokio::time::sleep(pause).await;
            if let Some(answer) = self.redis.query::<Option<String>>(&get).await? {
                return Ok(Some(answer));
            }
            // A little past the deadline: a taker that popped the request just before it may
            // still be answering.
            if started.elapsed() > wait + LONGEST_PAUSE * 2 {
                return Ok(None);
            }
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    /// At most `max` requests waiting for `bind`, each now this node's to send and answer;
    /// requests past their deadline are dropped.
    ///
    /// # Errors
    /// Redis failed (the requests popped are then lost, and their requesters see no answer).
    pub async fn take(&self, bind: &str, max: usize) -> Result<Vec<Relayed>, StoreError> {
        let mut pop = redis::cmd("RPOP");
        pop.arg(format!("{QUEUE}{bind}")).arg(max.max(1));
        let entries: Option<Vec<String>> = self.redis.query(&pop).await?;
        let now = crate::clock::now_ms();
        let mut out = Vec::new();
        for entry in entries.unwrap_or_default() {
            match serde_json::from_str::<Relayed>(&entry) {
                Ok(r) if r.until >= now => out.push(r),
                Ok(r) => tracing::warn!(
                    bind,
                    late_ms = now - r.until,
                    "relayed message past its deadline; dropped"
                ),
                Err(e) => tracing::warn!(bind, error = %e, "relayed message unreadable; dropped"),
            }
        }
        Ok(out)
    }

    /// Answers the request `id`.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn answer(&self, id: &str, answer: &str) -> Result<(), StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(format!("{ANSWER}{id}"))
            .arg(answer)
            .arg("PX")
            .arg(ANSWER_TTL_MS);
        self.redis.query::<()>(&set).await?;
        Ok(())
    }

    /// Notes that the network side opened the dialogue `key`.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn mark_initiated(&self, key: &str) -> Result<(), StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(format!("{INITIATED}{{{key}}}"))
            .arg(1)
            .arg("PX")
            .arg(INITIATED_TTL_MS);
        self.redis.query::<()>(&set).await?;
        Ok(())
    }

    /// Whether the network side opened the dialogue `key`, forgetting it.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn take_initiated(&self, key: &str) -> Result<bool, StoreError> {
        let mut get = redis::cmd("GETDEL");
        get.arg(format!("{INITIATED}{{{key}}}"));
        Ok(self.redis.query::<Option<String>>(&get).await?.is_some())
    }
}
