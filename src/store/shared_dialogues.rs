//! Dialogues shared by the nodes of a cluster, in Redis (docs/cluster.md, "One hop on any
//! node").
//!
//! A node answers a hop between a [`SharedDialogues::begin`], which takes the dialogue's lease
//! and hands back its state when the node's cached copy is not the current one, and a
//! [`SharedDialogues::commit`] (or [`SharedDialogues::end`]), which writes the next version only
//! while the lease is still the node's. So two nodes never both apply a hop: a retry racing the
//! original on another node finds the lease taken ([`Begun::Busy`]), waits for it to go, and
//! then finds the hop answered in the state.
//!
//! Each dialogue's keys live in one of [`BUCKETS`] buckets, each a hash tag of its own
//! (`{d:<bucket>}`), so that every script touches one Cluster slot and the buckets spread over
//! the Cluster's primaries: the live state (a hash: version, state, idle deadline), the lease,
//! the tombstone, the end records, the bucket's deadlines (a sorted set the sweep reads) and the
//! bucket's end events, waiting to move to the outbox (which lives in a slot of its own).

use super::redis::{Redis, RedisError};
use redis::{Script, Value};
use std::sync::LazyLock;

mod guess;
pub use guess::Guessed;

/// How many buckets the dialogues are spread over. Fixed: a key's bucket must be the same on
/// every node and every version.
pub const BUCKETS: u32 = 256;

/// A dialogue's bucket: FNV-1a of its session key.
pub fn bucket(session: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in session.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % BUCKETS
}

/// The version a write after `version` keeps: the next one; for a new dialogue (0), one made
/// from the time, so that a dialogue's versions never repeat those of an earlier dialogue under
/// the same key (SMPP session numbers come round again): a node still holding that one's copy
/// must never take it for the current state.
pub fn next_version(version: u64) -> u64 {
    match version {
        0 => crate::clock::now_ms().saturating_mul(1000),
        v => v + 1,
    }
}

/// The key of `session`'s live state.
pub(super) fn live_key(session: &str) -> String {
    Keys::of(session).live
}

/// The keys of one dialogue.
struct Keys {
    live: String,
    lease: String,
    tomb: String,
    deadlines: String,
    events: String,
    ended: String,
    prefix: String,
}

impl Keys {
    fn of(session: &str) -> Keys {
        let tag = format!("ussd:{{d:{}}}", bucket(session));
        Keys {
            live: format!("{tag}:live:{session}"),
            lease: format!("{tag}:lease:{session}"),
            tomb: format!("{tag}:tomb:{session}"),
            deadlines: format!("{tag}:deadlines"),
            events: format!("{tag}:events"),
            ended: format!("{tag}:ended"),
            prefix: tag,
        }
    }

    /// The key of the dialogue's end record, started at `started_ms`.
    fn end_record(&self, session: &str, started_ms: u64) -> String {
        format!("{}:end:{session}:{started_ms}", self.prefix)
    }
}

/// A node's right to write a dialogue's next version: the random token it holds the lease by
/// and the version it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    token: String,
    /// The version the node read (0: none was kept).
    pub version: u64,
}

/// What [`SharedDialogues::begin`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Begun {
    /// Nothing is kept for the key: a new dialogue, leased to this node.
    Absent(Lease),
    /// The node's cached copy (the version it named) is the current one; leased.
    Current(Lease),
    /// A state newer than the node's copy (or the node had none); leased.
    Live(Lease, Vec<u8>),
    /// The dialogue has ended: its tombstone. Leased too (the node may still refuse the hop
    /// or answer it from the tombstone; it lets the lease go with [`SharedDialogues::release`]).
    Ended(Lease, Vec<u8>),
    /// Another node is answering a hop of this dialogue right now.
    Busy,
}

/// What an end writes: the tombstone (answers retries until it expires), the end record
/// (kept for the retention period) and the end event for the outbox, if any.
#[derive(Debug)]
pub struct Ending<'a> {
    pub tombstone: &'a [u8],
    pub tombstone_ttl_ms: u64,
    pub record: &'a [u8],
    pub record_ttl_ms: u64,
    pub started_ms: u64,
    pub event: Option<&'a [u8]>,
    /// Keep the lease (the same hop goes on to start a new dialogue under the key).
    pub keep_lease: bool,
}

/// What the sweep found when it claimed a dialogue it saw due.
#[derive(Debug, PartialEq, Eq)]
pub enum Claimed {
    /// The dialogue is idle past its deadline and now leased to this node, which ends it.
    Due(Lease, Vec<u8>),
    /// It is not due (a hop moved its deadline), gone, or leased by a node answering it.
    NotDue,
}

/// Takes the lease and says what is kept. `KEYS`: live, lease, tomb. `ARGV`: token, lease ms,
/// the node's version (0: none). Also the fallback of the writes on a guess ([`guess`]),
/// whose first keys and arguments are the same.
const BEGIN_LUA: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return {'busy'} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
local v = redis.call('HGET', KEYS[1], 'v')
if v then
  if v == ARGV[3] then return {'current', v} end
  return {'live', v, redis.call('HGET', KEYS[1], 's')}
end
local t = redis.call('GET', KEYS[3])
if t then return {'ended', '0', t} end
return {'absent', '0'}
";

static BEGIN: LazyLock<Script> = LazyLock::new(|| Script::new(BEGIN_LUA));

/// Keeps a dialogue's next version: `keep(live key, deadlines key, version, state, deadline
/// ms, session)`.
const KEEP_LUA: &str = r"
local function keep(live, deadlines, v, s, d, session)
  redis.call('HSET', live, 'v', v, 's', s, 'd', d)
  redis.call('ZADD', deadlines, d, session)
end
";

/// Ends a dialogue. `KEYS`: live, lease, tomb, deadlines, end record, events, the bucket's end
/// records by time; `finish(session, tombstone, its ms, record, its ms, event ('' for none),
/// now ms)`.
const FINISH_LUA: &str = r"
local function finish(session, tomb, tomb_ms, record, record_ms, event, now)
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[4], session)
  redis.call('SET', KEYS[3], tomb, 'PX', tomb_ms)
  redis.call('SET', KEYS[5], record, 'PX', record_ms)
  if event ~= '' then redis.call('HSET', KEYS[6], KEYS[5], event) end
  redis.call('ZADD', KEYS[7], now, KEYS[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', tonumber(now) - tonumber(record_ms))
end
";

/// `KEYS`: live, lease, deadlines. `ARGV`: token, next version, state, deadline ms, session.
static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{KEEP_LUA}
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
keep(KEYS[1], KEYS[3], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
redis.call('DEL', KEYS[2])
return 1
"
    ))
});

/// `KEYS`, then `ARGV` from the third: [`finishing`]'s. `ARGV`: token, '1' to keep the lease.
static END: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{FINISH_LUA}
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
finish(ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
if ARGV[2] ~= '1' then redis.call('DEL', KEYS[2]) end
return 1
"
    ))
});

/// Adds to `inv` the keys `FINISH_LUA` reads and, after the script's own first arguments,
/// those of its `finish` call: session, tombstone, its ms, record, its ms, event ('' for none),
/// now ms.
fn finishing(inv: &mut redis::ScriptInvocation<'_>, session: &str, ending: &Ending<'_>) {
    let keys = Keys::of(session);
    inv.key(&keys.live)
        .key(&keys.lease)
        .key(&keys.tomb)
        .key(&keys.deadlines)
        .key(keys.end_record(session, ending.started_ms))
        .key(&keys.events)
        .key(&keys.ended)
        .arg(session)
        .arg(ending.tombstone)
        .arg(ending.tombstone_ttl_ms.max(1))
        .arg(ending.record)
        .arg(ending.record_ttl_ms.max(1))
        .arg(ending.event.unwrap_or_default())
        .arg(crate::clock::now_ms());
}

/// `KEYS`: lease. `ARGV`: token.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// `KEYS`: live, lease, deadlines. `ARGV`: token, lease ms, now ms, session.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then return {'notdue'} end
local d = redis.call('HGET', KEYS[1], 'd')
if not d then
  redis.call('ZREM', KEYS[3], ARGV[4])
  return {'notdue'}
end
if tonumber(d) > tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[3], d, ARGV[4])
  return {'notdue'}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {'due', redis.call('HGET', KEYS[1], 'v'), redis.call('HGET', KEYS[1], 's')}
",
    )
});

/// The dialogues of a cluster, over one Redis handle. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedDialogues {
    redis: Redis,
}

impl SharedDialogues {
    /// The dialogues kept in `redis`.
    pub fn new(redis: Redis) -> SharedDialogues {
        SharedDialogues { redis }
    }

    /// The Redis handle.
    pub(super) fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The cluster's installation secret: 32 random bytes the first node to ask makes and
    /// every node then reads (`SET NX`), for keyed hashes every node must compute alike (a
    /// dialogue's log id is then the same on every node that answers it).
    ///
    /// # Errors
    /// Redis failed, or what it keeps is not 32 bytes.
    pub async fn installation_secret(&self) -> Result<[u8; 32], RedisError> {
        const KEY: &str = "ussd:{meta}:installation_secret";
        let fresh: [u8; 32] = rand::random();
        let _: Option<String> = self
            .redis
            .query(redis::cmd("SET").arg(KEY).arg(&fresh[..]).arg("NX"))
            .await?;
        let kept: Vec<u8> = self.redis.query(redis::cmd("GET").arg(KEY)).await?;
        <[u8; 32]>::try_from(kept.as_slice()).map_err(|_| {
            RedisError::Redis(redis::RedisError::from((
                redis::ErrorKind::Client,
                "the installation secret kept in Redis is not 32 bytes",
            )))
        })
    }

    /// Whether Redis answered the last call ([`Redis::is_up`]).
    pub fn is_up(&self) -> bool {
        self.redis.is_up()
    }

    /// Takes the dialogue's lease for `lease_ms` (the hop's deadline and a margin) and says what
    /// is kept for it, given the version of the node's cached copy (`None`: no copy).
    ///
    /// # Errors
    /// Redis failed or did not answer in time; no lease is held then (or one that expires).
    pub async fn begin(
        &self,
        session: &str,
        cached: Option<u64>,
        lease_ms: u64,
    ) -> Result<Begun, RedisError> {
        let keys = Keys::of(session);
        let token = token();
        let answer: Vec<Value> = self
            .redis
            .script(
                "begin",
                BEGIN
                    .key(&keys.live)
                    .key(&keys.lease)
                    .key(&keys.tomb)
                    .arg(&token)
                    .arg(lease_ms.max(1))
                    .arg(cached.unwrap_or(0)),
            )
            .await?;
        Ok(begun(&answer, token))
    }

    /// Writes the dialogue's next version (`state`, idle until `deadline_ms`) and lets the lease
    /// go. Returns the new version, or `None` when the lease was no longer this node's (it
    /// expired and another node took it): nothing is written then.
    ///
    /// # Errors
    /// Redis failed or did not answer in time: the write may or may not have happened.
    pub async fn commit(
        &self,
        session: &str,
        lease: &Lease,
        state: &[u8],
        deadline_ms: u64,
    ) -> Result<Option<u64>, RedisError> {
        let keys = Keys::of(session);
        let next = next_version(lease.version);
        let done: i64 = self
            .redis
            .script(
                "commit",
                COMMIT
                    .key(&keys.live)
                    .key(&keys.lease)
                    .key(&keys.deadlines)
                    .arg(&lease.token)
                    .arg(next)
                    .arg(state)
                    .arg(deadline_ms)
                    .arg(session),
            )
            .await?;
        Ok((done == 1).then_some(next))
    }

    /// Ends the dialogue: its live state goes, its tombstone, end record and end event are
    /// written, and the lease goes. Returns false when the lease was no longer this node's
    /// (nothing is written then).
    ///
    /// # Errors
    /// As [`SharedDialogues::commit`].
    pub async fn end(
        &self,
        session: &str,
        lease: &Lease,
        ending: &Ending<'_>,
    ) -> Result<bool, RedisError> {
        let mut inv = END.prepare_invoke();
        inv.arg(&lease.token)
            .arg(if ending.keep_lease { "1" } else { "0" });
        finishing(&mut inv, session, ending);
        let done: i64 = self.redis.script("end", &inv).await?;
        Ok(done == 1)
    }

    /// Lets the lease go without writing (a hop answered from the state or the tombstone).
    ///
    /// # Errors
    /// Redis failed; the lease then expires by itself.
    pub async fn release(&self, session: &str, lease: &Lease) -> Result<(), RedisError> {
        let keys = Keys::of(session);
        let _: i64 = self
            .redis
            .script("release", RELEASE.key(&keys.lease).arg(&lease.token))
            .await?;
        Ok(())
    }

    /// The dialogues whose idle deadline is at or before `now_ms`, at most `limit` per bucket.
    ///
    /// # Errors
    /// Redis failed for some bucket.
    pub async fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, RedisError> {
        let reads = (0..BUCKETS).map(|b| {
            let key = format!("ussd:{{d:{b}}}:deadlines");
            async move {
                self.redis
                    .query::<Vec<String>>(
                        redis::cmd("ZRANGEBYSCORE")
                            .arg(key)
                            .arg("-inf")
                            .arg(now_ms)
                            .arg("LIMIT")
                            .arg(0)
                            .arg(limit),
                    )
                    .await
            }
        });
        let mut due = Vec::new();
        for found in futures_util::future::join_all(reads).await {
            due.extend(found?);
        }
        Ok(due)
    }

    /// Takes the lease of a dialogue [`SharedDialogues::due`] listed, if it is still due at
    /// `now_ms` and no node is answering it: then this node ends it (once, across the cluster).
    ///
    /// # Errors
    /// As [`SharedDialogues::begin`].
    pub async fn claim_due(
        &self,
        session: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<Claimed, RedisError> {
        let keys = Keys::of(session);
        let token = token();
        let answer: Vec<Value> = self
            .redis
            .script(
                "claim",
                CLAIM
                    .key(&keys.live)
                    .key(&keys.lease)
                    .key(&keys.deadlines)
                    .arg(&token)
                    .arg(lease_ms.max(1))
                    .arg(now_ms)
                    .arg(session),
            )
            .await?;
        if text(answer.first()) != "due" {
            return Ok(Claimed::NotDue);
        }
        let version = text(answer.get(1)).parse::<u64>().unwrap_or(0);
        Ok(Claimed::Due(Lease { token, version }, bytes(answer.get(2))))
    }

    /// Every live dialogue kept (its session key and state), read bucket by bucket from the
    /// sweep's sets: for the admin listener's list, not for the hop path.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn live_states(&self) -> Result<Vec<(String, Vec<u8>)>, RedisError> {
        let mut out = Vec::new();
        for b in 0..BUCKETS {
            let keys: Vec<String> = self
                .redis
                .query(
                    redis::cmd("ZRANGE")
                        .arg(format!("ussd:{{d:{b}}}:deadlines"))
                        .arg(0)
                        .arg(-1),
                )
                .await?;
            let states = keys.iter().map(|k| {
                let live = Keys::of(k).live;
                async move {
                    self.redis
                        .query::<Option<Vec<u8>>>(redis::cmd("HGET").arg(live).arg("s"))
                        .await
                }
            });
            for (key, state) in keys
                .iter()
                .zip(futures_util::future::join_all(states).await)
            {
                if let Some(state) = state? {
                    out.push((key.clone(), state));
                }
            }
        }
        Ok(out)
    }

    /// The key of the end record of `session` started at `started_ms` (also its end event's
    /// name in its bucket's `events`).
    pub fn end_record_key(session: &str, started_ms: u64) -> String {
        Keys::of(session).end_record(session, started_ms)
    }

    /// The end record kept for `session` started at `started_ms`, if any.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn end_record(
        &self,
        session: &str,
        started_ms: u64,
    ) -> Result<Option<Vec<u8>>, RedisError> {
        let key = Keys::of(session).end_record(session, started_ms);
        self.redis.query(redis::cmd("GET").arg(key)).await
    }

    /// Replaces the end record kept for `session` started at `started_ms`, keeping its expiry;
    /// returns whether there was one. Called while holding the dialogue's lease.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn replace_end_record(
        &self,
        session: &str,
        started_ms: u64,
        record: &[u8],
    ) -> Result<bool, RedisError> {
        let key = Keys::of(session).end_record(session, started_ms);
        let done: Option<String> = self
            .redis
            .query(
                redis::cmd("SET")
                    .arg(key)
                    .arg(record)
                    .arg("XX")
                    .arg("KEEPTTL"),
            )
            .await?;
        Ok(done.is_some())
    }

    /// The end events of bucket `bucket` still waiting to move to the outbox: (their id, the
    /// event).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn waiting_events(&self, bucket: u32) -> Result<Vec<(String, Vec<u8>)>, RedisError> {
        let key = format!("ussd:{{d:{bucket}}}:events");
        self.redis.query(redis::cmd("HGETALL").arg(key)).await
    }

    /// Forgets an end event once it is in the outbox.
    ///
    /// # Errors
    /// Redis failed; the event is then moved again (the outbox drops the repeat).
    pub async fn forget_event(&self, bucket: u32, id: &str) -> Result<(), RedisError> {
        let key = format!("ussd:{{d:{bucket}}}:events");
        let _: i64 = self
            .redis
            .query(redis::cmd("HDEL").arg(key).arg(id))
            .await?;
        Ok(())
    }
}

/// What `BEGIN_LUA` answered, the lease taken by `token`.
fn begun(answer: &[Value], token: String) -> Begun {
    let version = text(answer.get(1)).parse::<u64>().unwrap_or(0);
    let lease = Lease { token, version };
    match text(answer.first()).as_str() {
        "busy" => Begun::Busy,
        "current" => Begun::Current(lease),
        "live" => Begun::Live(lease, bytes(answer.get(2))),
        "ended" => Begun::Ended(lease, bytes(answer.get(2))),
        _ => Begun::Absent(lease),
    }
}

/// A fresh lease token.
fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A script's answer word (or number) as text.
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        Some(Value::Int(i)) => i.to_string(),
        _ => String::new(),
    }
}

/// A script's answer value as bytes.
fn bytes(v: Option<&Value>) -> Vec<u8> {
    match v {
        Some(Value::BulkString(b)) => b.clone(),
        Some(Value::SimpleString(s)) => s.clone().into_bytes(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
