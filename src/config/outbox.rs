//! `[africastalking]`: the AT account the outbox sends through, and how it retries.
//!
//! The embedded default has no username and no API key: the account is then "not configured",
//! effects are still written to the outbox, and the sender marks them not sent. The API key is
//! a secret: it may come from the file but is better given as `AT_API_KEY` in the environment;
//! it is never logged (its `Debug` is redacted). The base URLs default to AT's sandbox hosts;
//! tests point them at a fake server on 127.0.0.1.

use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// The environment variable that supplies the API key when the file does not.
pub const API_KEY_ENV: &str = "AT_API_KEY";
/// The environment variable that supplies the username when the file does not.
pub const USERNAME_ENV: &str = "AT_USERNAME";

/// `[africastalking]` in `gateway.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtConfig {
    /// The AT application username (`sandbox` in the sandbox). Falls back to `AT_USERNAME`.
    #[serde(default)]
    pub username: Option<String>,
    /// The AT API key. Falls back to `AT_API_KEY`. Never logged.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// The SMS sender id or short code (`from`); AT's default sender when absent.
    #[serde(default)]
    pub sender_id: Option<String>,
    /// Our AT voice number, the `from` of outbound calls (e.g. `+254711082000`). Default: the
    /// number of the gateway's only IVR; when IVRs are loaded, one must answer it.
    #[serde(default)]
    pub voice_number: Option<String>,
    /// Messaging (SMS) host. Default `https://api.sandbox.africastalking.com`; live
    /// `https://api.africastalking.com`.
    #[serde(default = "default_messaging")]
    pub messaging_base_url: String,
    /// Voice host. Default `https://voice.sandbox.africastalking.com`; live
    /// `https://voice.africastalking.com`.
    #[serde(default = "default_voice")]
    pub voice_base_url: String,
    /// Airtime host; default: the messaging host.
    #[serde(default)]
    pub airtime_base_url: Option<String>,
    /// Bound on one API request, connect to last body byte, in milliseconds. Default 10000.
    #[serde(default = "default_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How transient failures are retried.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Fallback scan interval when nothing wakes the sender, in milliseconds. Default 1000.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Requests in flight at once. Default 4.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

/// `[outbox]`: the outbox shared by the nodes of a cluster (docs/cluster.md); a node alone
/// needs none of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Cluster mode: how long an item a node took for sending may stay unacknowledged before
    /// another node takes it over (the node died), in seconds. Longer than one request
    /// (`[africastalking] request_timeout_ms`), so that a live node is never overtaken. Default
    /// 30.
    #[serde(default = "default_claim_timeout_secs")]
    pub claim_timeout_secs: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            claim_timeout_secs: default_claim_timeout_secs(),
        }
    }
}

fn default_claim_timeout_secs() -> u64 {
    30
}

impl OutboxConfig {
    /// The claim timeout.
    pub fn claim_timeout(&self) -> Duration {
        Duration::from_secs(self.claim_timeout_secs)
    }

    /// Checks values that parse but cannot work, given the AT account's request timeout (which
    /// the claim timeout must exceed in cluster mode, `shared`).
    ///
    /// # Errors
    /// A one-line message naming the field.
    pub fn validate(&self, at: &AtConfig, shared: bool) -> Result<(), String> {
        if self.claim_timeout_secs == 0 || self.claim_timeout_secs > 3600 {
            return Err("outbox.claim_timeout_secs must be between 1 and 3600".into());
        }
        if shared && self.claim_timeout_secs.saturating_mul(1000) <= at.request_timeout_ms {
            return Err(format!(
                "outbox.claim_timeout_secs ({} s) must be longer than \
                 africastalking.request_timeout_ms ({} ms): a node still sending an item would \
                 have it taken over",
                self.claim_timeout_secs, at.request_timeout_ms
            ));
        }
        Ok(())
    }
}

/// `[africastalking.retry]`: exponential back-off with jitter, capped, bounded in attempts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay after the first transient failure, in milliseconds. Default 2000.
    #[serde(default = "default_initial_ms")]
    pub initial_backoff_ms: u64,
    /// Largest delay between attempts, in milliseconds. Default 300000 (5 minutes).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Attempts before an item is given up as failed. Default 8.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

/// A secret string: deserialised like a string, shown as `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that needs it (the `apiKey` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The account the sender uses, resolved from the file and the environment.
#[derive(Debug, Clone)]
pub struct Account {
    /// The AT username.
    pub username: String,
    /// The AT API key.
    pub api_key: Secret,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl AtConfig {
    /// The account, from the file first and then `AT_USERNAME` / `AT_API_KEY`; `None` when
    /// either is missing ("not configured").
    pub fn account(&self) -> Option<Account> {
        self.account_with(|name| std::env::var(name).ok())
    }

    /// As [`AtConfig::account`], reading the environment through `env` (for tests).
    pub fn account_with(&self, env: impl Fn(&str) -> Option<String>) -> Option<Account> {
        let username = non_empty(self.username.clone()).or_else(|| non_empty(env(USERNAME_ENV)))?;
        let key = non_empty(self.api_key.as_ref().map(|k| k.expose().to_string()))
            .or_else(|| non_empty(env(API_KEY_ENV)))?;
        Some(Account {
            username,
            api_key: Secret(key),
        })
    }

    /// The airtime host (the messaging host unless set).
    pub fn airtime_base(&self) -> &str {
        self.airtime_base_url
            .as_deref()
            .unwrap_or(&self.messaging_base_url)
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// The fallback poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }

    /// Checks values that parse but cannot work (for the integrator's `Config::validate`).
    ///
    /// # Errors
    /// A one-line message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, url) in [
            ("messaging_base_url", self.messaging_base_url.as_str()),
            ("voice_base_url", self.voice_base_url.as_str()),
            ("airtime_base_url", self.airtime_base()),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.parse::<http::Uri>().is_err()
            {
                return Err(format!(
                    "africastalking.{name} must be an http:// or https:// URL"
                ));
            }
        }
        if self.request_timeout_ms == 0 {
            return Err("africastalking.request_timeout_ms must be at least 1".into());
        }
        if self.concurrency == 0 || self.concurrency > 64 {
            return Err("africastalking.concurrency must be between 1 and 64".into());
        }
        let r = &self.retry;
        if r.max_attempts == 0 {
            return Err("africastalking.retry.max_attempts must be at least 1".into());
        }
        if r.initial_backoff_ms == 0 || r.initial_backoff_ms > r.max_backoff_ms {
            return Err(
                "africastalking.retry.initial_backoff_ms must be between 1 and max_backoff_ms"
                    .into(),
            );
        }
        Ok(())
    }
}

impl RetryConfig {
    /// The delay after the `attempt`-th transient failure (1-based): `initial * 2^(attempt-1)`,
    /// capped, then scaled by a random factor in [0.5, 1.0] so that items failing together do
    /// not retry together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let base = self
            .initial_backoff_ms
            .saturating_mul(1u64 << exp)
            .min(self.max_backoff_ms);
        let factor: f64 = rand::random_range(0.5..=1.0);
        Duration::from_millis(((base as f64) * factor).round().max(1.0) as u64)
    }
}

fn default_messaging() -> String {
    "https://api.sandbox.africastalking.com".into()
}
fn default_voice() -> String {
    "https://voice.sandbox.africastalking.com".into()
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_concurrency() -> usize {
    4
}
fn default_initial_ms() -> u64 {
    2000
}
fn default_max_backoff_ms() -> u64 {
    300_000
}
fn default_max_attempts() -> u32 {
    8
}

impl Default for AtConfig {
    fn default() -> Self {
        AtConfig {
            username: None,
            api_key: None,
            sender_id: None,
            voice_number: None,
            messaging_base_url: default_messaging(),
            voice_base_url: default_voice(),
            airtime_base_url: None,
            request_timeout_ms: default_timeout_ms(),
            retry: RetryConfig::default(),
            poll_interval_ms: default_poll_ms(),
            concurrency: default_concurrency(),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff_ms: default_initial_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            max_attempts: default_max_attempts(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_timeout_is_checked_against_the_request_timeout_in_cluster_mode() {
        let at = AtConfig::default();
        let default = OutboxConfig::default();
        assert_eq!(default.claim_timeout(), Duration::from_secs(30));
        assert_eq!(default.validate(&at, true), Ok(()));
        let short = OutboxConfig {
            claim_timeout_secs: 10,
        };
        let err = short.validate(&at, true).unwrap_err();
        assert!(err.contains("outbox.claim_timeout_secs"), "{err}");
        assert!(err.contains("request_timeout_ms"), "{err}");
        assert_eq!(
            short.validate(&at, false),
            Ok(()),
            "a node alone ignores it"
        );
        for bad in [0, 3601] {
            let c = OutboxConfig {
                claim_timeout_secs: bad,
            };
            assert!(c.validate(&at, false).is_err(), "{bad}");
        }
        let parsed: OutboxConfig = toml::from_str("claim_timeout_secs = 45").unwrap();
        assert_eq!(parsed.claim_timeout_secs, 45);
        assert!(toml::from_str::<OutboxConfig>("claim_timeout = 45").is_err());
    }
}
