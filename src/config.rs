//! The gateway's configuration (`config/gateway.toml`), validated before anything binds.
//!
//! Relative paths inside the file (the flows folder, the sample data folder) are relative to the
//! file's own folder, so `ussd-gateway serve --config /etc/ussd/gateway.toml` works from any
//! working directory. The one exception is the data folder (the sled database), which defaults
//! to `./data` in the working directory: state belongs to the deployment, not to the config.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable that supplies the admin token when the file does not.
pub const ADMIN_TOKEN_ENV: &str = "USSD_GATEWAY_ADMIN_TOKEN";

/// The whole `gateway.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The public front: AT callbacks, voice callbacks, health.
    #[serde(default)]
    pub public: PublicConfig,
    /// The admin listener: metrics and `/admin/...`.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The embedded sled store.
    #[serde(default)]
    pub store: StoreConfig,
    /// Dialogue lifetimes and actor shards.
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// How phone numbers are made canonical.
    #[serde(default)]
    pub numbers: NumbersConfig,
    /// USSD-wide behaviour.
    #[serde(default)]
    pub ussd: UssdConfig,
    /// Folder of flow files, relative to this file. Default `flows`.
    #[serde(default = "default_flows_dir")]
    pub flows_dir: PathBuf,
    /// Folder of IVR files (`<name>.yaml`), relative to this file. Default `ivr`.
    #[serde(default = "default_ivr_dir")]
    pub ivr_dir: PathBuf,
    /// Voice callbacks.
    #[serde(default)]
    pub voice: VoiceConfig,
    /// How long records with personal data are kept.
    #[serde(default)]
    pub retention: crate::retention::RetentionConfig,
    /// Limits that protect the gateway (defaults sit above what the benchmarks drive).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// End-of-session notifications sent to the operator's own receiver.
    #[serde(default)]
    pub events: EventsConfig,
    /// The time zone of the sample records' dates (seed files may use `today`). Default UTC.
    #[serde(default = "default_seed_timezone")]
    pub seed_timezone: String,
    /// The clock flows see.
    #[serde(default)]
    pub clock: ClockConfig,
    /// Folder of sample records loaded into an empty store, relative to this file. Default `data`.
    #[serde(default = "default_seed_dir")]
    pub seed_dir: PathBuf,
    /// The Africa's Talking account that SMS, airtime and calls go out through. Without one
    /// (the embedded default), effects are recorded in the outbox and logged as not sent.
    #[serde(default)]
    pub africastalking: crate::outbox::AtConfig,
    /// The SMPP front: binds to operators, a listener, operator profiles. Off by default.
    #[serde(default)]
    pub smpp: crate::front::smpp::SmppConfig,
    /// Service code routes, matched by longest prefix.
    #[serde(default, rename = "routes")]
    pub routes: Vec<RouteConfig>,
    /// The folder the file was read from (not part of the file).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file itself, re-read on reload (not part of the file).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

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

/// Secrets shorter than this are weak.
const MIN_SECRET_LEN: usize = 16;
/// Secrets copied from examples (compared lower-case, without `-` and `_`).
const PLACEHOLDER_SECRETS: [&str; 8] = [
    "changeme",
    "secret",
    "password",
    "token",
    "admin",
    "test",
    "testtoken",
    "example",
];

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
    /// Live dialogues in memory at most; past it, new dialogues get `busy_text` and live ones
    /// keep working. Default 2000000.
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

/// One `[[routes]]` entry: a service code and the app that answers it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The service code, e.g. `*384*303#`. Dials that extend it (`*384*303*1#`) reach it too.
    pub service_code: String,
    /// The flow that answers, by name: `flows_dir/<flow>.yaml`. Exactly one of `flow` and
    /// `upstream`.
    #[serde(default)]
    pub flow: Option<String>,
    /// An existing Africa's Talking-style app that answers instead (adapter mode): its
    /// callback URL.
    #[serde(default)]
    pub upstream: Option<String>,
    /// `networkCode` sent upstream when the front does not know it.
    #[serde(default)]
    pub network_code: Option<String>,
    /// What the subscriber is told when the upstream app fails (default `[ussd] apology_text`).
    #[serde(default)]
    pub apology: Option<String>,
    /// Upstream answers longer than a screen: `paginate` (default) or `cut`.
    #[serde(default)]
    pub long_screens: crate::app::upstream::LongScreens,
    /// Upstream requests in flight at most (default 64); past it, hops fail fast.
    #[serde(default)]
    pub upstream_concurrency: Option<usize>,
    /// Consecutive upstream failures that open the circuit (default 5).
    #[serde(default)]
    pub breaker_failures: Option<u32>,
    /// How long an open circuit refuses calls before one probe (default 10000 ms).
    #[serde(default)]
    pub breaker_cooldown_ms: Option<u64>,
    /// Idle timeout for this route's dialogues; default `[sessions] idle_timeout_secs`.
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// Per-hop deadline for this route; default `[ussd] deadline_ms`.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// A smaller screen limit for this route, in GSM-7 septets.
    #[serde(default)]
    pub max_septets: Option<usize>,
    /// A smaller screen limit for this route when UCS-2 is needed.
    #[serde(default)]
    pub max_ucs2_chars: Option<usize>,
}

fn default_flows_dir() -> PathBuf {
    PathBuf::from("flows")
}
fn default_seed_timezone() -> String {
    "UTC".into()
}
fn default_secret_header() -> String {
    "X-Ussd-Secret".into()
}
fn default_ivr_dir() -> PathBuf {
    PathBuf::from("ivr")
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
fn default_seed_dir() -> PathBuf {
    PathBuf::from("data")
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
    UssdConfig
);

/// A configuration problem, reported before anything binds.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this model.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parsed but a value is unusable.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the field.
        message: String,
    },
}

impl Config {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// Unreadable file, TOML errors (with line and column), or invalid values.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.clone(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: display.clone(),
            message,
        })?;
        config.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        if config.base_dir.as_os_str().is_empty() {
            config.base_dir = PathBuf::from(".");
        }
        config.source = Some(path.to_path_buf());
        config.validate().map_err(|message| ConfigError::Invalid {
            path: display,
            message,
        })?;
        Ok(config)
    }

    /// Parses TOML text without touching the file system (base_dir stays empty).
    ///
    /// # Errors
    /// The TOML parser's message.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Settings that work but leave the gateway open: weak secrets, an admin listener other
    /// machines can reach. `check` prints them and `serve` logs them at start.
    pub fn security_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let weak = |secret: &str| {
            let lower = secret.to_ascii_lowercase();
            secret.len() < MIN_SECRET_LEN
                || PLACEHOLDER_SECRETS
                    .iter()
                    .any(|p| lower.replace(['-', '_'], "") == *p)
        };
        if let Some(token) = self.admin_token()
            && weak(&token)
        {
            out.push(format!(
                "admin.token is weak (a placeholder or shorter than {MIN_SECRET_LEN} characters): \
                 set a long random one (e.g. `openssl rand -hex 32`)"
            ));
        }
        if let Some(secret) = self.public_secret()
            && weak(&secret)
        {
            out.push(format!(
                "public.shared_secret is weak (a placeholder or shorter than {MIN_SECRET_LEN} \
                 characters): set a long random one"
            ));
        }
        if !self.admin.listen.ip().is_loopback() {
            out.push(format!(
                "admin.listen {} is reachable from other machines: /metrics needs no token there; \
                 keep the admin listener on loopback or behind a firewall",
                self.admin.listen
            ));
        }
        out
    }

    /// Checks values that parse but cannot work.
    ///
    /// # Errors
    /// A one-line message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if !self.admin.listen.ip().is_loopback() && self.admin_token().is_none() {
            return Err(format!(
                "admin.listen {} is reachable from other machines but no admin token is set: \
                 set admin.token or {ADMIN_TOKEN_ENV}, or listen on loopback",
                self.admin.listen
            ));
        }
        if self.store.flush_every_ms == 0 || self.store.flush_every_ms > 1000 {
            return Err("store.flush_every_ms must be between 1 and 1000".into());
        }
        if self.store.cache_mb == 0 {
            return Err("store.cache_mb must be at least 1".into());
        }
        if self.sessions.idle_timeout_secs == 0 {
            return Err("sessions.idle_timeout_secs must be at least 1".into());
        }
        let cc = &self.numbers.default_country_code;
        if cc.is_empty() || cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()) {
            return Err("numbers.default_country_code must be 1 to 3 digits".into());
        }
        if self.retention.every_minutes == 0 {
            return Err("retention.every_minutes must be at least 1".into());
        }
        if self.limits.max_connections == 0 || self.limits.max_live_dialogues == 0 {
            return Err(
                "limits.max_connections and limits.max_live_dialogues must be at least 1".into(),
            );
        }
        if self.limits.request_timeout_secs == 0 || self.limits.idle_timeout_secs == 0 {
            return Err(
                "limits.request_timeout_secs and limits.idle_timeout_secs must be at least 1"
                    .into(),
            );
        }
        if self.limits.max_header_bytes < 1024 {
            return Err("limits.max_header_bytes must be at least 1024".into());
        }
        if let Some(url) = &self.events.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err("events.url must be an http:// or https:// URL".into());
        }
        if let Some(fixed) = &self.clock.fixed
            && fixed.parse::<jiff::Timestamp>().is_err()
        {
            return Err(
                "clock.fixed must be an RFC 3339 time, e.g. 2026-01-05T08:00:00+10:00".into(),
            );
        }
        if jiff::tz::TimeZone::get(&self.seed_timezone).is_err() {
            return Err(format!(
                "seed_timezone `{}` is not a known time zone",
                self.seed_timezone
            ));
        }
        if !(self.public.base_url.starts_with("http://")
            || self.public.base_url.starts_with("https://"))
        {
            return Err("public.base_url must start with http:// or https://".into());
        }
        if !matches!(
            self.voice.ringback_attribute.as_str(),
            "ringbackTone" | "ringBackTone"
        ) {
            return Err("voice.ringback_attribute must be ringbackTone or ringBackTone".into());
        }
        if let Some(bad) = self
            .voice
            .cost_currencies
            .iter()
            .find(|c| c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(format!(
                "voice.cost_currencies: {bad:?} is not an ISO 4217 code (three capital letters)"
            ));
        }
        if self.ussd.max_septets < 40 || self.ussd.max_septets > 182 {
            return Err("ussd.max_septets must be between 40 and 182".into());
        }
        if self.ussd.max_ucs2_chars < 20 || self.ussd.max_ucs2_chars > 80 {
            return Err("ussd.max_ucs2_chars must be between 20 and 80".into());
        }
        self.smpp.validate()?;
        self.africastalking.validate()?;
        let mut seen = std::collections::HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = format!("routes[{i}] ({})", route.service_code);
            if crate::app::routes::code_segments(&route.service_code).is_none() {
                return Err(format!(
                    "{at}: service_code must look like *123# or *384*303#"
                ));
            }
            if !seen.insert(crate::app::routes::code_segments(&route.service_code)) {
                return Err(format!("{at}: service_code is routed twice"));
            }
            match (&route.flow, &route.upstream) {
                (Some(flow), None) => {
                    if flow.is_empty()
                        || !flow
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    {
                        return Err(format!(
                            "{at}: flow must be a flow file name (letters, digits, _ and -)"
                        ));
                    }
                }
                (None, Some(url)) => {
                    let ok = url.parse::<http::Uri>().ok().is_some_and(|u| {
                        matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
                    });
                    if !ok {
                        return Err(format!("{at}: upstream must be an http:// or https:// URL"));
                    }
                }
                _ => return Err(format!("{at}: give exactly one of flow and upstream")),
            }
            if route.upstream_concurrency == Some(0) || route.breaker_failures == Some(0) {
                return Err(format!(
                    "{at}: upstream_concurrency and breaker_failures must be at least 1"
                ));
            }
            if let Some(s) = route.max_septets
                && !(40..=182).contains(&s)
            {
                return Err(format!("{at}: max_septets must be between 40 and 182"));
            }
            if let Some(s) = route.max_ucs2_chars
                && !(20..=80).contains(&s)
            {
                return Err(format!("{at}: max_ucs2_chars must be between 20 and 80"));
            }
            if route.idle_timeout_secs == Some(0) || route.deadline_ms == Some(0) {
                return Err(format!(
                    "{at}: idle_timeout_secs and deadline_ms must be at least 1"
                ));
            }
        }
        Ok(())
    }

    /// The admin token: the file's, else the environment's; `None` refuses all admin calls.
    pub fn admin_token(&self) -> Option<String> {
        self.admin
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| {
                std::env::var(ADMIN_TOKEN_ENV)
                    .ok()
                    .filter(|t| !t.is_empty())
            })
    }

    /// The public front's shared secret: the file's, else `USSD_GATEWAY_PUBLIC_SECRET`.
    pub fn public_secret(&self) -> Option<String> {
        self.public
            .shared_secret
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| {
                std::env::var("USSD_GATEWAY_PUBLIC_SECRET")
                    .ok()
                    .filter(|t| !t.is_empty())
            })
    }

    /// The flows folder, resolved against the config file's folder.
    pub fn flows_path(&self) -> PathBuf {
        self.base_dir.join(&self.flows_dir)
    }

    /// The IVR folder, resolved against the config file's folder.
    pub fn ivr_path(&self) -> PathBuf {
        self.base_dir.join(&self.ivr_dir)
    }

    /// The sample records folder, resolved against the config file's folder.
    pub fn seed_path(&self) -> PathBuf {
        self.base_dir.join(&self.seed_dir)
    }

    /// The time flows see now: the fixed clock if one is set, else the real one.
    pub fn now(&self) -> jiff::Timestamp {
        self.clock
            .fixed
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(jiff::Timestamp::now)
    }

    /// Today's date in the seed time zone (by [`Config::now`]).
    pub fn seed_today(&self) -> jiff::civil::Date {
        let tz = jiff::tz::TimeZone::get(&self.seed_timezone).unwrap_or(jiff::tz::TimeZone::UTC);
        self.now().to_zoned(tz).date()
    }

    /// The UTC offset of the seed time zone today, as `+10:00`.
    pub fn seed_offset(&self) -> String {
        let tz = jiff::tz::TimeZone::get(&self.seed_timezone).unwrap_or(jiff::tz::TimeZone::UTC);
        let offset = tz.to_offset(self.now());
        let secs = offset.seconds();
        let sign = if secs < 0 { '-' } else { '+' };
        let secs = secs.abs();
        format!("{sign}{:02}:{:02}", secs / 3600, secs % 3600 / 60)
    }

    /// The default idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.sessions.idle_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.public.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.store.data_dir, PathBuf::from("data"));
        assert_eq!(c.sessions.idle_timeout_secs, 180);
        assert_eq!(c.public.max_body_bytes, 16 * 1024);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(Config::parse("[public]\nlisten_on = \"x\"").is_err());
        let c = Config::parse("[store]\nflush_every_ms = 5000").unwrap();
        assert!(c.validate().unwrap_err().contains("flush_every_ms"));
        let c = Config::parse("[[routes]]\nservice_code = \"123\"\nflow = \"a\"").unwrap();
        assert!(c.validate().unwrap_err().contains("service_code"));
        let c = Config::parse(
            "[[routes]]\nservice_code = \"*1#\"\nflow = \"a\"\n[[routes]]\nservice_code = \"*1#\"\nflow = \"b\"",
        )
        .unwrap();
        assert!(c.validate().unwrap_err().contains("twice"));
    }
}
