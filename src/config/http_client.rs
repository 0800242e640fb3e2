//! `[http_client]`: the one outgoing HTTP client's settings (upstream apps, flow backend calls,
//! Africa's Talking and the events receiver all go through it, see the `net` module).
//!
//! A bank's upstream may want the gateway to present a client certificate (mutual TLS) and may
//! sign its own certificate with a private CA. The PEM texts are usually given as files,
//! `ca_file`, `client_cert_file` and `client_key_file`, which the configuration's file rule
//! (`config::env`) reads into `ca`, `client_cert` and `client_key`: the key stays out of the
//! file and out of `check`'s listing. They are parsed here, so a bad certificate is an error
//! at `check` and start-up, naming the key, not a failed call at 2 a.m.

use super::outbox::Secret;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::sync::{Arc, OnceLock};

/// `[http_client]`
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpClientConfig {
    /// PEM certificates of CAs trusted besides the bundled public roots (a bank's private CA),
    /// usually from `ca_file`. Default none.
    #[serde(default)]
    pub ca: Option<String>,
    /// The PEM certificate chain presented to servers that ask for one (mutual TLS), usually
    /// from `client_cert_file`. Needs `client_key`. Default none.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// The PEM private key of `client_cert`, usually from `client_key_file`. Default none.
    #[serde(default)]
    pub client_key: Option<Secret>,
    /// How long establishing a connection (TCP and TLS) may take. Default 3000 ms.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// How long an idle pooled connection is kept. Default 30 s.
    #[serde(default = "default_pool_idle_timeout_secs")]
    pub pool_idle_timeout_secs: u64,
    /// Idle pooled connections kept per host at most. Default 1024.
    #[serde(default = "default_pool_max_idle_per_host")]
    pub pool_max_idle_per_host: usize,
    /// The client made from these settings (`net::client`), shared by every clone of
    /// the configuration (not part of the file).
    #[serde(skip)]
    pub shared: SharedClient,
}

/// A client made once and shared by clones; equal and shown alike whatever it holds, so that
/// configurations compare by their settings.
#[derive(Clone, Default)]
pub struct SharedClient(Arc<OnceLock<reqwest::Client>>);

impl std::ops::Deref for SharedClient {
    type Target = OnceLock<reqwest::Client>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::fmt::Debug for SharedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedClient")
    }
}

impl PartialEq for SharedClient {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SharedClient {}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            ca: None,
            client_cert: None,
            client_key: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            pool_idle_timeout_secs: default_pool_idle_timeout_secs(),
            pool_max_idle_per_host: default_pool_max_idle_per_host(),
            shared: SharedClient::default(),
        }
    }
}

fn default_connect_timeout_ms() -> u64 {
    3000
}

fn default_pool_idle_timeout_secs() -> u64 {
    30
}

fn default_pool_max_idle_per_host() -> usize {
    1024
}

/// The client certificate chain and its key.
pub type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

impl HttpClientConfig {
    /// The extra trusted CA certificates (none without `ca`).
    ///
    /// # Errors
    /// `ca` holds no PEM certificate, or a broken one.
    pub fn ca_certificates(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        let Some(pem) = &self.ca else {
            return Ok(Vec::new());
        };
        certificates(pem).map_err(|e| format!("http_client.ca (ca_file): {e}"))
    }

    /// The client certificate and key, when both are set.
    ///
    /// # Errors
    /// Only one of them is set, or either does not parse.
    pub fn identity(&self) -> Result<Option<Identity>, String> {
        match (&self.client_cert, &self.client_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => {
                let chain = certificates(cert)
                    .map_err(|e| format!("http_client.client_cert (client_cert_file): {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes()).map_err(|e| {
                    format!("http_client.client_key (client_key_file): no PEM private key ({e})")
                })?;
                Ok(Some((chain, key)))
            }
            _ => Err(
                "http_client.client_cert and http_client.client_key (client_cert_file, \
                 client_key_file) go together: set both or neither"
                    .into(),
            ),
        }
    }

    /// Checks values that parse but cannot work.
    ///
    /// # Errors
    /// A one-line message naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=60_000).contains(&self.connect_timeout_ms) {
            return Err("http_client.connect_timeout_ms must be between 1 and 60000".into());
        }
        if self.pool_idle_timeout_secs == 0 {
            return Err("http_client.pool_idle_timeout_secs must be at least 1".into());
        }
        self.ca_certificates()?;
        self.identity()?;
        Ok(())
    }
}

/// Every certificate of a PEM text; at least one.
fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates ({e})"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_pairs() {
        let c = HttpClientConfig::default();
        c.validate().unwrap();
        assert!(c.identity().unwrap().is_none());
        let half = HttpClientConfig {
            client_cert: Some("x".into()),
            ..HttpClientConfig::default()
        };
        assert!(half.validate().unwrap_err().contains("set both or neither"));
        let bad_ca = HttpClientConfig {
            ca: Some("not a certificate".into()),
            ..HttpClientConfig::default()
        };
        assert!(bad_ca.validate().unwrap_err().contains("http_client.ca"));
        let zero = HttpClientConfig {
            connect_timeout_ms: 0,
            ..HttpClientConfig::default()
        };
        assert!(zero.validate().unwrap_err().contains("connect_timeout_ms"));
    }

    /// The PEM texts come from files beside the config (the configuration's `_file` rule), and
    /// a file that holds no certificate is refused at load, naming the key.
    #[test]
    fn files_are_read_and_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("gateway.toml");
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        std::fs::write(&config, "[http_client]\nca_file = \"ca.pem\"\n").unwrap();
        let e = crate::config::Config::load_with(&config, &[]).unwrap_err();
        assert!(e.to_string().contains("http_client.ca (ca_file)"), "{e}");
        std::fs::write(&config, "[http_client]\nclient_key_file = \"ca.pem\"\n").unwrap();
        let e = crate::config::Config::load_with(&config, &[]).unwrap_err();
        assert!(e.to_string().contains("set both or neither"), "{e}");
        std::fs::write(&config, "[http_client]\nca_file = \"missing.pem\"\n").unwrap();
        let e = crate::config::Config::load_with(&config, &[]).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
