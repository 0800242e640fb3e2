//! The connection to Redis, for cluster mode (docs/cluster.md): one primary, or a Redis
//! Cluster from its seed nodes, behind one handle.
//!
//! redis-rs keeps the connection itself: a single primary through a connection manager that
//! reconnects by itself, a Cluster through a connection that routes each command to the node
//! owning its slot and follows the topology. Every call here is bounded by the configured
//! timeout (a hop never waits on Redis past its deadline), timed into
//! `ussd_redis_duration_seconds` and counted in `ussd_redis_errors_total` when it fails.

use super::redis_sentinel::Sentinels;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{Cmd, FromRedisValue, ScriptInvocation, Value};
use std::time::{Duration, Instant};

/// Where Redis is and how long a call may take (from `[store.redis]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// One primary's URL, or a Cluster's seed nodes, or the Sentinels that watch the primary.
    pub urls: Vec<String>,
    /// Whether `urls` seed a Redis Cluster.
    pub cluster: bool,
    /// One call at most.
    pub timeout: Duration,
    /// The name of the primary the Sentinels at `urls` watch (`None`: `urls` names the
    /// primary itself).
    pub sentinel_master: Option<String>,
    /// The user and password to log in with on the servers that hold the data, where their
    /// URL carries none.
    pub credentials: Credentials,
}

/// A user and password for Redis (`AUTH`); empty: none.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The ACL user (`None`: `default`).
    pub username: Option<String>,
    /// The password.
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Credentials {
    /// `info` with these credentials, where it has none of its own.
    pub(super) fn apply(&self, info: redis::ConnectionInfo) -> redis::ConnectionInfo {
        let mut settings = info.redis_settings().clone();
        if settings.password().is_some() {
            return info;
        }
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        info.set_redis_settings(settings)
    }
}

/// Why Redis did not answer as it should.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The command failed or the connection is down.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within the configured timeout.
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
    /// Redis is set up so that it would lose what the gateway confirms.
    #[error("redis is not durable enough: {0}")]
    NotDurable(String),
}

/// A handle on Redis: cheap to clone, shared by every task.
#[derive(Clone)]
pub struct Redis {
    /// Replaced when Sentinel names another primary.
    conn: std::sync::Arc<std::sync::RwLock<Conn>>,
    /// A single primary's client, for the connections of the shard threads ([`Redis::here`]).
    local: Option<std::sync::Arc<Local>>,
    timeout: Duration,
    /// Whether the last call succeeded (`/ready` reads it).
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// With Sentinel: the Sentinels, asked again after a failed call.
    sentinels: Option<std::sync::Arc<Sentinels>>,
}

/// What a shard thread opens its own connection to a single primary with.
struct Local {
    /// Tells this handle's connections from another's on the same thread (a process may run
    /// several gateways: tests).
    id: u64,
    client: redis::Client,
    config: ConnectionManagerConfig,
}

thread_local! {
    /// Whether calls made on this thread use connections of its own ([`own_connections_here`]).
    static OWN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// This thread's own connections, by [`Local::id`] (`None`: it could not be made, and
    /// the thread uses the shared one).
    static HERE: std::cell::RefCell<Vec<(u64, Option<ConnectionManager>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Calls made on this thread from now on use connections of its own to a single primary,
/// opened on its first call and driven on this thread (a shard's, which answers hops: see
/// [`Redis::here`]). Sentinel and Cluster connections stay shared.
pub fn own_connections_here() {
    OWN.set(true);
}

#[derive(Clone)]
enum Conn {
    Primary(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match (&self.conn(), &self.sentinels) {
            (Conn::Primary(_), None) => "primary",
            (Conn::Primary(_), Some(_)) => "primary (Sentinel)",
            (Conn::Cluster(_), _) => "cluster",
        };
        f.debug_struct("Redis")
            .field("kind", &kind)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Redis {
    /// Connects as `config` says: to its one primary, or to the Cluster its URLs seed.
    ///
    /// # Errors
    /// Bad URLs, or no node answering within the timeout.
    pub async fn connect(config: &RedisSettings) -> Result<Redis, RedisError> {
        let timeout = config.timeout;
        let sentinels = config.sentinel_master.as_ref().map(|m| {
            std::sync::Arc::new(Sentinels::new(
                config.urls.clone(),
                m.clone(),
                config.credentials.clone(),
            ))
        });
        let connecting = async {
            if let Some(sentinels) = &sentinels {
                let (_, manager) = sentinels.connect(timeout).await?;
                return Ok((Conn::Primary(manager), None));
            }
            let direct = async {
                if config.cluster {
                    let mut builder =
                        redis::cluster::ClusterClientBuilder::new(config.urls.clone())
                            .connection_timeout(timeout)
                            .response_timeout(timeout);
                    if let Some(user) = &config.credentials.username {
                        builder = builder.username(user.clone());
                    }
                    if let Some(password) = &config.credentials.password {
                        builder = builder.password(password.clone());
                    }
                    let client = builder.build()?;
                    Ok::<_, redis::RedisError>((
                        Conn::Cluster(client.get_async_connection().await?),
                        None,
                    ))
                } else {
                    let url = config.urls.first().map(String::as_str).unwrap_or_default();
                    use redis::IntoConnectionInfo;
                    let client =
                        redis::Client::open(config.credentials.apply(url.into_connection_info()?))?;
                    // One plain connection first: the connection manager retries a refused
                    // login until the timeout, and its error would not say why.
                    drop(client.get_multiplexed_async_connection().await?);
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout));
                    let manager = client
                        .get_connection_manager_with_config(config.clone())
                        .await?;
                    let local = Local {
                        id: rand::random(),
                        client,
                        config,
                    };
                    Ok((Conn::Primary(manager), Some(std::sync::Arc::new(local))))
                }
            };
            Ok::<_, RedisError>(direct.await?)
        };
        let (conn, local) = tokio::time::timeout(timeout.saturating_mul(3), connecting)
            .await
            .map_err(|_| RedisError::Timeout(timeout.saturating_mul(3)))??;
        crate::metrics::redis_up(true, false);
        Ok(Redis {
            conn: std::sync::Arc::new(std::sync::RwLock::new(conn)),
            local,
            timeout,
            up: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
            sentinels,
        })
    }

    /// The connection in use.
    fn conn(&self) -> Conn {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The connection for a call made here: on a shard thread ([`own_connections_here`]),
    /// with a single primary, the thread's own, whose I/O runs on the thread that answers the
    /// hops: a call wakes no other thread, and the calls of the hops a thread answers together
    /// go out in one write. Elsewhere, the shared one.
    ///
    /// The thread's own is made once (it connects on its first call and reconnects by itself),
    /// so every call of a thread uses the same connection: a ledger write and the `WAIT` that
    /// follows it are on one connection.
    fn here(&self) -> Conn {
        let Some(local) = self.local.as_ref().filter(|_| OWN.get()) else {
            return self.conn();
        };
        HERE.with(|h| {
            let mut h = h.borrow_mut();
            if let Some((_, mine)) = h.iter().find(|(id, _)| *id == local.id) {
                return mine.clone().map_or_else(|| self.conn(), Conn::Primary);
            }
            let mine = local
                .client
                .get_connection_manager_lazy(local.config.clone())
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "a shard's own Redis connection cannot be made; it uses the shared one");
                })
                .ok();
            h.push((local.id, mine.clone()));
            mine.map_or_else(|| self.conn(), Conn::Primary)
        })
    }

    /// After a failed call, with Sentinel: asks the Sentinels (in the background) whether
    /// another server is the primary now, and switches to it if so.
    fn follow_primary(&self) {
        let Some(sentinels) = self.sentinels.clone() else {
            return;
        };
        if !sentinels.should_ask() {
            return;
        }
        let (conn, timeout) = (self.conn.clone(), self.timeout);
        tokio::spawn(async move {
            if let Some(manager) = sentinels.ask(timeout).await {
                *conn.write().unwrap_or_else(|e| e.into_inner()) = Conn::Primary(manager);
            }
        });
    }

    /// Whether Redis answered the last call made to it (a node whose Redis does not answer
    /// is not ready; the sweep calls Redis every second, so this is at most a second old).
    pub fn is_up(&self) -> bool {
        self.up.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Notes how a call went, for [`Redis::is_up`] and the metrics.
    fn note(&self, ok: bool) {
        let was = self.up.swap(ok, std::sync::atomic::Ordering::AcqRel);
        if was != ok {
            crate::metrics::redis_up(ok, ok);
            if ok {
                tracing::info!("redis answers again");
            } else {
                tracing::error!("redis does not answer: hops are answered busy until it does");
            }
        }
    }

    /// Runs one command (on the node its key belongs to, in a Cluster).
    ///
    /// # Errors
    /// The command failed, or no answer within the timeout.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        self.timed(op_name(cmd), async {
            match self.here() {
                Conn::Primary(mut c) => cmd.query_async::<T>(&mut c).await,
                Conn::Cluster(mut c) => cmd.query_async::<T>(&mut c).await,
            }
        })
        .await
    }

    /// Runs the commands of `pipe` in one round trip per server (on the nodes their keys
    /// belong to, in a Cluster), answering each command's reply in order. `op` names it in the
    /// metrics.
    ///
    /// # Errors
    /// As [`Redis::query`].
    pub async fn pipeline<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisError> {
        self.timed(op, async {
            match self.here() {
                Conn::Primary(mut c) => pipe.query_async::<T>(&mut c).await,
                Conn::Cluster(mut c) => pipe.query_async::<T>(&mut c).await,
            }
        })
        .await
    }

    /// Runs a Lua script (by its SHA, loading it on the node first if it does not know it):
    /// on the node of its keys' slot, in a Cluster, so the keys must share a hash tag. `op`
    /// names it in the metrics (a fixed set, never a key).
    ///
    /// # Errors
    /// As [`Redis::query`].
    pub async fn script<T: FromRedisValue>(
        &self,
        op: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        self.timed(op, async {
            match self.here() {
                Conn::Primary(mut c) => invocation.invoke_async::<T>(&mut c).await,
                Conn::Cluster(mut c) => invocation.invoke_async::<T>(&mut c).await,
            }
        })
        .await
    }

    /// One call bounded by the timeout, timed and counted under `op`, its outcome noted for
    /// [`Redis::is_up`].
    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(RedisError::Redis(e)),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        };
        crate::metrics::redis_call(op, started.elapsed(), result.is_ok());
        self.note(result.is_ok());
        if result.is_err() {
            self.follow_primary();
        }
        result
    }

    /// Runs `cmd` on every primary (the single one, or each of a Cluster's), returning each
    /// answer: for settings that every primary must have.
    ///
    /// # Errors
    /// As [`Redis::query`].
    pub async fn on_every_primary(&self, cmd: &Cmd) -> Result<Vec<Value>, RedisError> {
        match self.conn() {
            Conn::Primary(_) => Ok(vec![self.query::<Value>(cmd).await?]),
            Conn::Cluster(mut c) => {
                let routed = c.route_command(
                    cmd.clone(),
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                );
                let value = tokio::time::timeout(self.timeout, routed)
                    .await
                    .map_err(|_| RedisError::Timeout(self.timeout))??;
                // One answer per node, keyed by the node's address.
                Ok(match value {
                    Value::Map(pairs) => pairs.into_iter().map(|(_, v)| v).collect(),
                    other => vec![other],
                })
            }
        }
    }

    /// Waits until `replicas` replicas acknowledge every write made so far on the primary
    /// that owns `key` (Redis's `WAIT`), within most of the timeout; returns how many did.
    ///
    /// # Errors
    /// As [`Redis::query`].
    pub async fn wait_replicas(&self, key: &str, replicas: u32) -> Result<u32, RedisError> {
        let wait_ms = (self.timeout.as_millis() as u64 * 3 / 4).max(1);
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(wait_ms);
        match self.conn() {
            Conn::Primary(_) => self.query::<u32>(&cmd).await,
            Conn::Cluster(mut c) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                self.timed("wait", async move {
                    let value = c
                        .route_command(
                            cmd,
                            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                        )
                        .await?;
                    Ok(u32::from_redis_value(value)?)
                })
                .await
            }
        }
    }

    /// Checks that Redis keeps what the gateway confirms: with no replica to wait for, every
    /// primary must write each change to its append-only file (`appendonly yes`).
    ///
    /// # Errors
    /// [`RedisError::NotDurable`] saying what to set, or the calls failing.
    pub async fn check_durability(&self, wait_replicas: u32) -> Result<(), RedisError> {
        if wait_replicas > 0 {
            return Ok(());
        }
        let answers = self
            .on_every_primary(redis::cmd("CONFIG").arg("GET").arg("appendonly"))
            .await?;
        for answer in answers {
            let pairs: Vec<String> = FromRedisValue::from_redis_value(answer).unwrap_or_default();
            if pairs.get(1).map(String::as_str) != Some("yes") {
                return Err(RedisError::NotDurable(
                    "appendonly is off on a primary, so a Redis restart loses confirmed \
                     transactions: set `appendonly yes` (and `appendfsync everysec` or \
                     `always`) in redis.conf, or have replicas acknowledge each write with \
                     [store.redis] wait_replicas"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// The command's name, for the metric's `op` label: a fixed set (the commands the gateway
/// sends), never a key.
fn op_name(cmd: &Cmd) -> &'static str {
    let name = cmd
        .args_iter()
        .next()
        .and_then(|a| match a {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .map(|b| b.to_ascii_uppercase());
    match name.as_deref() {
        Some(b"GET") => "get",
        Some(b"SET") => "set",
        Some(b"DEL") => "del",
        Some(b"PING") => "ping",
        Some(b"CONFIG") => "config",
        Some(b"WAIT") => "wait",
        Some(b"HMGET") => "hmget",
        Some(b"EVALSHA") | Some(b"EVAL") => "script",
        Some(b"XADD") | Some(b"XREADGROUP") | Some(b"XACK") | Some(b"XAUTOCLAIM") => "stream",
        Some(b"LPUSH") | Some(b"RPOP") | Some(b"GETDEL") => "relay",
        _ => "other",
    }
}
