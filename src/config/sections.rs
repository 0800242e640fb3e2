//! The small sections of `gateway.toml` (`[public]`, `[admin]`, `[store]`, `[sessions]`,
//! `[numbers]`, `[ussd]`, `[limits]`, `[events]`, `[voice]`, `[clock]`, `[retention]`), each with its
//! documented defaults: an empty table parses to them.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[public]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicConfig {
    /// Where the public front listens. Default 127.0.0.1:8080.
    #[serde(default = "default_public_listen")]
    pub listen: SocketAddr,
    /// The base URL at which Africa's Talking reaches this front, used in the URLs placed in
    /// voice XML (GetDigits callbackUrl, Redirect). Default http://127.0.0.1:8080.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Source networks allowed to call (aggregators publish theirs), e.g. `["196.201.214.0/24"]`.
    /// Empty (the default) allows every caller.
    #[serde(default)]
    pub allow_from: Vec<ipnet::IpNet>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A shared secret callers must present, in `secret_header` or as the first path segment
    /// (`/<secret>/ussd`). Falls back to `USSD_GATEWAY_PUBLIC_SECRET`; unset means none.
    #[serde(default)]
    pub shared_secret: Option<String>,
    /// The header carrying the shared secret. Default `X-Ussd-Secret`.
    #[serde(default = "default_secret_header")]
    pub secret_header: String,
    /// Largest accepted request body in bytes. Default 16 KiB.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

/// `[clock]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    /// A fixed time (RFC 3339) that flows and seed files see instead of the real clock: for
    /// demos and golden tests. Unset in production.
    #[serde(default)]
    pub fixed: Option<String>,
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Open connections per HTTP listener; past it, new connections wait. Default 10000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Hops per minute from one MSISDN, so a flood from one number does not starve others
    /// (0 switches the limit off). Default 60.
    #[serde(default = "default_hops_per_minute")]
    pub hops_per_minute_per_msisdn: u32,
    /// Live dialogues at most (with an actor, or passivated on one node); past it, new
    /// dialogues get `busy_text` and live ones keep working. Default 2000000.
    #[serde(default = "default_max_live")]
    pub max_live_dialogues: usize,
    /// What a refused hop is told.
    #[serde(default = "default_busy_text")]
    pub busy_text: String,
    /// Seconds a client has to send one whole request (headers and body), from its first byte
    /// (or from the connection's opening, for its first request). Past it the connection is
    /// closed. Default 10.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Seconds a keep-alive connection may wait, with no request, for its next one before it is
    /// closed. Default 30.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Largest request head (request line and headers) in bytes; past it, 431. Default 16384.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
}

fn default_max_connections() -> usize {
    10_000
}
fn default_hops_per_minute() -> u32 {
    60
}
fn default_passivate_after_ms() -> u64 {
    30_000
}
fn default_max_live() -> usize {
    2_000_000
}
fn default_request_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    30
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_busy_text() -> String {
    "The service is busy. Please try again in a minute.".into()
}

/// `[events]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Every ended dialogue (flows and upstream routes alike) is reported here in Africa's
    /// Talking's end-of-session format, through the outbox, until it answers 200. Off if unset.
    #[serde(default)]
    pub url: Option<String>,
}

/// `[voice]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConfig {
    /// The spelling of Dial's ringback attribute. AT's sample XML and the founding app say
    /// `ringbackTone`, AT's attribute table says `ringBackTone`. Default `ringbackTone`.
    #[serde(default = "default_ringback_attribute")]
    pub ringback_attribute: String,
    /// The currencies call costs are counted under in `ussd_voice_call_cost_cents_total`
    /// (ISO 4217 codes); a cost in any other is counted as `other`, so a caller of the
    /// public front cannot create metric series. Default: the currencies of Africa's Talking's
    /// markets and USD.
    #[serde(default = "default_cost_currencies")]
    pub cost_currencies: Vec<String>,
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the admin listener listens. Default 127.0.0.1:9000.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// Bearer token for `/admin/...`. Falls back to `USSD_GATEWAY_ADMIN_TOKEN`. When neither is
    /// set, every admin endpoint is refused.
    #[serde(default)]
    pub token: Option<String>,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The sled database folder, relative to the working directory. Default `./data`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// sled's page cache in MiB (sled's own default of 1 GiB is far too much here). Default 64.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
    /// Commit and flush interval in milliseconds: dialogue state is written to sled in one
    /// transaction and flushed this often, the window in which a crash can lose it. At most
    /// 1000. Default 500.
    #[serde(default = "default_flush_ms")]
    pub flush_every_ms: u64,
    /// Where the shared state lives: `sled` (this process's embedded database, the default) or
    /// `redis` (cluster mode, docs/cluster.md; being built: `serve` refuses it for now).
    #[serde(default)]
    pub backend: Backend,
    /// `[store.redis]`: the Redis of cluster mode.
    #[serde(default)]
    pub redis: RedisConfig,
}

/// `[store] backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded sled database.
    #[default]
    Sled,
    /// Redis, shared by every node of a cluster.
    Redis,
}

/// `[store.redis]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// One primary's URL (`redis://host:port`, `rediss://` for TLS), or with `cluster = true`
    /// the seed nodes of a Redis Cluster. Default `["redis://127.0.0.1:6379"]`.
    #[serde(default = "default_redis_urls")]
    pub urls: Vec<String>,
    /// Whether `urls` name a Redis Cluster's seed nodes. Default false.
    #[serde(default)]
    pub cluster: bool,
    /// The name of the primary that the Sentinels at `urls` watch (`sentinel monitor <name>
    /// ...`): the node asks them which server is the primary, and again after a failover.
    /// Unset (the default): `urls` names the primary itself.
    #[serde(default)]
    pub sentinel_master: Option<String>,
    /// The user the gateway logs in as on the Redis servers that hold its data (the primary,
    /// the one Sentinel names, or every node of a Cluster): Redis 6 ACLs. Unset: `default`.
    #[serde(default)]
    pub username: Option<String>,
    /// Their password (`requirepass`, or the ACL user's), best from a file
    /// (`password_file`, or `USSD_GATEWAY__STORE__REDIS__PASSWORD_FILE`). A URL's own
    /// password wins for that URL; the Sentinels' own go in their URLs.
    #[serde(default)]
    pub password: Option<String>,
    /// Replicas that must acknowledge a confirmed transaction (`WAIT`) before its reply. With
    /// 0 (the default) every primary must run with `appendonly yes`.
    #[serde(default)]
    pub wait_replicas: u32,
    /// One Redis call at most, in milliseconds. Default 1000.
    #[serde(default = "default_redis_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_redis_urls() -> Vec<String> {
    vec!["redis://127.0.0.1:6379".into()]
}
fn default_redis_timeout_ms() -> u64 {
    1000
}

impl RedisConfig {
    /// Checks what parses but cannot work.
    ///
    /// # Errors
    /// A one-line message naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.urls.is_empty() {
            return Err("store.redis.urls must name at least one Redis".into());
        }
        let unix = |u: &String| u.starts_with("redis+unix://") || u.starts_with("unix://");
        if let Some(bad) = self
            .urls
            .iter()
            .find(|u| !(u.starts_with("redis://") || u.starts_with("rediss://") || unix(u)))
        {
            return Err(format!(
                "store.redis.urls: {bad:?} is not a redis://, rediss:// or redis+unix:// URL"
            ));
        }
        if (self.cluster || self.sentinel_master.is_some()) && self.urls.iter().any(unix) {
            return Err(
                "store.redis.urls: a Unix socket (redis+unix://) reaches one Redis on this \
                 machine: not a Redis Cluster's nodes or Sentinels"
                    .into(),
            );
        }
        if let Some(master) = &self.sentinel_master {
            if self.cluster {
                return Err(
                    "store.redis.sentinel_master names a Sentinel-watched primary: a Redis \
                     Cluster fails over by itself (unset one of cluster and sentinel_master)"
                        .into(),
                );
            }
            if master.is_empty() || master.chars().any(|c| c.is_whitespace()) {
                return Err(
                    "store.redis.sentinel_master must be the name given to `sentinel monitor`"
                        .into(),
                );
            }
        }
        if !self.cluster && self.sentinel_master.is_none() && self.urls.len() > 1 {
            return Err(
                "store.redis.urls names several servers: set store.redis.cluster = true for a \
                 Redis Cluster's seed nodes, or name the one primary (use Sentinel or a \
                 floating address for its replicas)"
                    .into(),
            );
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Err("store.redis.timeout_ms must be between 1 and 60000".into());
        }
        Ok(())
    }
}

/// `[sessions]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// A dialogue with no hop for this long ends as timed out. Default 180 s.
    #[serde(default = "default_idle_secs")]
    pub idle_timeout_secs: u64,
    /// How long an ended dialogue's last reply is kept to answer retries. Default 300 s.
    #[serde(default = "default_tombstone_secs")]
    pub tombstone_secs: u64,
    /// Actor shards (one Arbiter thread each). 0 means one per core.
    #[serde(default)]
    pub shards: usize,
    /// A dialogue waiting this long for its next hop gives up its actor (about 2 KB) once its
    /// state is in the store, keeping only its deadline; its next hop resumes it from the
    /// store as after a restart, and its idle timeout still ends it on time. 0 switches it
    /// off. Default 30000 ms: longer than a subscriber takes to read a screen and answer, so
    /// that mostly dialogues walked away from are passivated (a resumed hop reads and parses
    /// the state, about twice a resident hop's work), well within the idle timeout.
    #[serde(default = "default_passivate_after_ms")]
    pub passivate_after_ms: u64,
    /// On SIGTERM, how long hops in flight may take to finish before the gateway stops
    /// anyway. Default 10 s.
    #[serde(default = "default_grace_secs")]
    pub shutdown_grace_secs: u64,
}

/// `[numbers]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumbersConfig {
    /// Country code put in front of national numbers (a leading `0`). Default "254".
    #[serde(default = "default_country_code")]
    pub default_country_code: String,
}

/// `[ussd]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UssdConfig {
    /// What a dial of an unrouted service code is told.
    #[serde(default = "default_unknown_text")]
    pub unknown_service_text: String,
    /// What a subscriber is told when the gateway fails to answer a hop.
    #[serde(default = "default_apology")]
    pub apology_text: String,
    /// What a late hop of a dialogue that timed out is told.
    #[serde(default = "default_timeout_text")]
    pub timeout_text: String,
    /// Screen limit of the HTTP front in GSM-7 septets. Default 182.
    #[serde(default = "default_septets")]
    pub max_septets: usize,
    /// Screen limit of the HTTP front when UCS-2 is needed, in characters. Default 80.
    #[serde(default = "default_ucs2")]
    pub max_ucs2_chars: usize,
    /// The per-hop deadline in milliseconds, unless a route sets its own. Default 5000.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
}

fn default_secret_header() -> String {
    "X-Ussd-Secret".into()
}

fn default_base_url() -> String {
    "http://127.0.0.1:8080".into()
}

fn default_ringback_attribute() -> String {
    "ringbackTone".into()
}

fn default_cost_currencies() -> Vec<String> {
    [
        "KES", "UGX", "TZS", "RWF", "NGN", "MWK", "ZMW", "ETB", "GHS", "XOF", "ZAR", "USD",
    ]
    .map(String::from)
    .to_vec()
}

fn default_public_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9000))
}

fn default_max_body() -> usize {
    16 * 1024
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

fn default_cache_mb() -> u64 {
    64
}

fn default_flush_ms() -> u64 {
    500
}

fn default_idle_secs() -> u64 {
    180
}

fn default_grace_secs() -> u64 {
    10
}

fn default_tombstone_secs() -> u64 {
    300
}

fn default_country_code() -> String {
    "254".into()
}

fn default_unknown_text() -> String {
    "This service code is not available.".into()
}

fn default_apology() -> String {
    "Sorry, the service is unavailable right now. Please try again later.".into()
}

fn default_timeout_text() -> String {
    "Your session has timed out. Please dial again.".into()
}

fn default_septets() -> usize {
    182
}

fn default_ucs2() -> usize {
    80
}

fn default_deadline_ms() -> u64 {
    5000
}

macro_rules! default_from_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                // unwrap: every field of this section has a serde default, so an empty table parses.
                toml::from_str("").unwrap()
            }
        }
    )*};
}
default_from_serde!(
    LimitsConfig,
    VoiceConfig,
    PublicConfig,
    AdminConfig,
    StoreConfig,
    SessionsConfig,
    NumbersConfig,
    UssdConfig,
    RedisConfig
);

/// `[retention]` in gateway.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// End-of-session records, and the transactions recorded for a dialogue that never got
    /// one (a crash lost it whole). Default 90 days.
    #[serde(default = "days_90")]
    pub end_records_days: u64,
    /// Outbox items that reached a final status (sent, failed, not sent). Default 30 days.
    #[serde(default = "days_30")]
    pub outbox_days: u64,
    /// Voice call records. Default 90 days.
    #[serde(default = "days_90")]
    pub call_records_days: u64,
    /// Transaction idempotency keys (a retried hop is answered from them). Default 7 days.
    #[serde(default = "days_7")]
    pub idempotency_days: u64,
    /// How often the purge runs, in minutes. Default 60.
    #[serde(default = "minutes_60")]
    pub every_minutes: u64,
}

fn days_90() -> u64 {
    90
}
fn days_30() -> u64 {
    30
}
fn days_7() -> u64 {
    7
}
fn minutes_60() -> u64 {
    60
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            end_records_days: days_90(),
            outbox_days: days_30(),
            call_records_days: days_90(),
            idempotency_days: days_7(),
            every_minutes: minutes_60(),
        }
    }
}

/// `[log]`: how the gateway writes its log (to standard error; the level is `RUST_LOG`'s).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default): lines for people; `json`: one JSON object per line, for Loki or ELK.
    /// `serve --log-format` wins over it.
    #[serde(default)]
    pub format: LogFormat,
}

/// The log's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people (coloured on a terminal only).
    #[default]
    Text,
    /// One JSON object per line: the event's fields, and its hop's span.
    Json,
}
