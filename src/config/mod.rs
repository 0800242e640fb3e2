//! The gateway's configuration (`config/gateway.toml`), validated before anything binds.
//!
//! Relative paths inside the file (the flows folder, the sample data folder) are relative to the
//! file's own folder, so `ussd-gateway serve --config /etc/ussd/gateway.toml` works from any
//! working directory. The one exception is the data folder (the sled database), which defaults
//! to `./data` in the working directory: state belongs to the deployment, not to the config.
//!
//! - [`sections`]: the small sections (`[public]`, `[admin]`, `[store]`, `[ussd]`, ...);
//! - [`routes`]: `[[routes]]`, and what a service code looks like;
//! - [`smpp`]: `[smpp]`, the binds, the listener and the operator profiles;
//! - [`dialect`]: `[http]`, the HTTP dialects of aggregators (built in and described);
//! - [`outbox`]: `[africastalking]`, the account the outbox sends through;
//! - [`http_client`]: `[http_client]`, the outgoing HTTP client (CA bundle, client certificate);
//! - [`env`]: the layers over the file: `USSD_GATEWAY__<SECTION>__<KEY>` variables and
//!   `*_file` keys (secrets mounted as files).
//!
//! The configuration owns its types: the fronts, the outbox and the apps import them, never
//! the reverse. The checks that need the apps (loading the flows the routes name) are the
//! gateway's.

pub mod dialect;
pub mod env;
pub mod http_client;
pub mod outbox;
pub mod routes;
pub mod sections;
pub mod smpp;

pub use routes::{LongScreens, RouteConfig, UpstreamStyle};
pub use sections::{
    AdminConfig, Backend, ClockConfig, EventsConfig, LimitsConfig, LogConfig, LogFormat,
    NumbersConfig, PublicConfig, RedisConfig, RetentionConfig, SessionsConfig, StoreConfig,
    UssdConfig, VoiceConfig,
};

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable that supplies the admin token when the file does not.
pub const ADMIN_TOKEN_ENV: &str = "USSD_GATEWAY_ADMIN_TOKEN";
/// The environment variable that supplies the public front's secret when the file does not.
pub const PUBLIC_SECRET_ENV: &str = "USSD_GATEWAY_PUBLIC_SECRET";

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
    pub retention: RetentionConfig,
    /// Limits that protect the gateway (defaults sit above what the benchmarks drive).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// End-of-session notifications sent to the operator's own receiver.
    #[serde(default)]
    pub events: EventsConfig,
    /// The log's format.
    #[serde(default)]
    pub log: LogConfig,
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
    pub africastalking: outbox::AtConfig,
    /// The outbox shared by the nodes of a cluster: when a dead node's items are taken over.
    #[serde(default)]
    pub outbox: outbox::OutboxConfig,
    /// The outgoing HTTP client: trusted CAs, a client certificate, timeouts, the pool.
    #[serde(default)]
    pub http_client: http_client::HttpClientConfig,
    /// The SMPP front: binds to operators, a listener, operator profiles. Off by default.
    #[serde(default)]
    pub smpp: smpp::SmppConfig,
    /// The HTTP dialects of aggregators.
    #[serde(default)]
    pub http: dialect::HttpConfig,
    /// Service code routes, matched by longest prefix.
    #[serde(default, rename = "routes")]
    pub routes: Vec<RouteConfig>,
    /// The folder the file was read from (not part of the file).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file itself, re-read on reload (not part of the file).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The values that are not the file's own, and where they came from (`check` lists them).
    #[serde(skip)]
    pub overrides: Vec<env::Override>,
}

fn default_flows_dir() -> PathBuf {
    PathBuf::from("flows")
}

fn default_seed_timezone() -> String {
    "UTC".into()
}

fn default_ivr_dir() -> PathBuf {
    PathBuf::from("ivr")
}

fn default_seed_dir() -> PathBuf {
    PathBuf::from("data")
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
    /// Reads `path`, applies the environment's `USSD_GATEWAY__...` variables and the secret
    /// files over it ([`env`]), and validates the result.
    ///
    /// # Errors
    /// Unreadable file, TOML errors (with line and column), or invalid values (naming the
    /// variable that set them, if one did).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Config::load_with(path, &env)
    }

    /// As [`Config::load`], with `env` for the process's environment.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.clone(),
            source,
        })?;
        let parse_error = |message: String| ConfigError::Parse {
            path: display.clone(),
            message,
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: display.clone(),
            message,
        };
        let mut base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        if base_dir.as_os_str().is_empty() {
            base_dir = PathBuf::from(".");
        }
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e: toml::de::Error| parse_error(e.to_string().trim_end().to_string()))?;
        let layered = env::layer(table, env, &base_dir).map_err(invalid)?;
        let overrides = layered.overrides.clone();
        let mut config = if overrides.is_empty() {
            // The file alone: its errors keep their line and column.
            Config::parse(&text).map_err(parse_error)?
        } else {
            env::deserialize::<Config>(layered).map_err(parse_error)?
        };
        config.base_dir = base_dir;
        config.source = Some(path.to_path_buf());
        config.overrides = overrides;
        config.overrides.extend(config.fallbacks(env));
        config
            .validate()
            .map_err(|message| invalid(env::annotate_invalid(&message, &config.overrides)))?;
        Ok(config)
    }

    /// The older variables that supply a value the file (and the `USSD_GATEWAY__` variables)
    /// leave unset: the admin token, the public secret, the AT account.
    fn fallbacks(&self, env: &[(String, String)]) -> Vec<env::Override> {
        let var = |name: &str| {
            env.iter()
                .find(|(k, v)| k == name && !v.trim().is_empty())
                .map(|(_, v)| v.clone())
        };
        let unset = |v: Option<&str>| v.is_none_or(|v| v.trim().is_empty());
        let mut out = Vec::new();
        let mut fallback = |key: &str, name: &str, file: Option<&str>, secret: bool| {
            if unset(file)
                && let Some(value) = var(name)
            {
                out.push(env::Override {
                    key: key.into(),
                    origin: name.into(),
                    shown: if secret { "***".into() } else { value },
                });
            }
        };
        fallback(
            "admin.token",
            ADMIN_TOKEN_ENV,
            self.admin.token.as_deref(),
            true,
        );
        fallback(
            "public.shared_secret",
            PUBLIC_SECRET_ENV,
            self.public.shared_secret.as_deref(),
            true,
        );
        fallback(
            "africastalking.username",
            outbox::USERNAME_ENV,
            self.africastalking.username.as_deref(),
            false,
        );
        fallback(
            "africastalking.api_key",
            outbox::API_KEY_ENV,
            self.africastalking.api_key.as_ref().map(|k| k.expose()),
            true,
        );
        out
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
        if self.store.backend == Backend::Redis {
            self.store.redis.validate()?;
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
        self.http.validate()?;
        self.africastalking.validate()?;
        self.outbox
            .validate(&self.africastalking, self.store.backend == Backend::Redis)?;
        self.http_client.validate()?;
        routes::validate(&self.routes)?;
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
                std::env::var(PUBLIC_SECRET_ENV)
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
