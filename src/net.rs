//! The one way this gateway makes outgoing HTTP(S) requests (upstream apps, flow backend calls,
//! Africa's Talking and the events receiver, and `dial`): a pooled reqwest client over rustls.
//!
//! - TLS is rustls with the `ring` provider named explicitly (so another provider elsewhere in
//!   a build never makes the choice ambiguous) and the bundled webpki roots (no system
//!   certificate store, no OpenSSL), plus the CAs of `[http_client] ca_file`; the client
//!   certificate of `client_cert_file` and `client_key_file` is presented to servers that ask
//!   for one (mutual TLS, as bank upstreams do).
//! - Proxies come from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`),
//!   as reqwest reads them by default.
//! - HTTP/1.1 only, no redirects followed, no body decompression: the callers see the answer
//!   the server gave. Every caller bounds its own calls in time (the hop's deadline, the outbox's
//!   request timeout); the client bounds only connecting (`connect_timeout_ms`).
//!
//! One client is made per configuration and shared by all its users and clones
//! ([`client`]), so every route, backend call and outbox delivery draws on one pool.

use crate::config::http_client::HttpClientConfig;
use std::sync::Arc;
use std::time::Duration;

/// The shared client of `config`: made on first use, then the same for every clone of the
/// configuration (a reloaded configuration file makes a new one).
///
/// # Errors
/// A CA certificate or client certificate and key that rustls refuses (the configuration's
/// checks parse them first, so this is rare: a key that does not match its certificate's kind).
pub fn client(config: &HttpClientConfig) -> Result<reqwest::Client, String> {
    if let Some(c) = config.shared.get() {
        return Ok(c.clone());
    }
    let made = build(config)?;
    Ok(config.shared.get_or_init(|| made).clone())
}

/// A new client for `config` (not shared: `dial` makes its own).
///
/// # Errors
/// As [`client`].
pub fn build(config: &HttpClientConfig) -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in config.ca_certificates()? {
        roots
            .add(cert)
            .map_err(|e| format!("http_client.ca (ca_file): {e}"))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    let tls = match config.identity()? {
        Some((chain, key)) => tls.with_client_auth_cert(chain, key).map_err(|e| {
            format!(
                "http_client.client_cert and client_key (client_cert_file, client_key_file): {e}"
            )
        })?,
        None => tls.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .pool_idle_timeout(Duration::from_secs(config.pool_idle_timeout_secs))
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .build()
        .map_err(|e| format!("the HTTP client: {}", error_chain(&e)))
}

/// The body of `resp`, at most `max` bytes: a longer one is an error, as a reply cut short
/// would be.
///
/// # Errors
/// Reading failed, or the body is longer than `max`.
pub async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<bytes::Bytes, String> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > max {
            return Err(format!("longer than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The error and its sources on one line, without the URL (it may hold a secret or subscriber
/// data): reqwest's top-level message alone says little ("error sending request"), the causes
/// say why (refused, reset, a certificate the server refused).
pub fn error_chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    if let Some(url) = e.url() {
        out = out.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_says_why_without_the_url() {
        let c = build(&HttpClientConfig::default()).unwrap();
        let e = c
            .get("http://127.0.0.1:9/secret-path?key=s3cret")
            .send()
            .await
            .unwrap_err();
        let why = error_chain(&e);
        assert!(!why.contains("s3cret"), "{why}");
        assert!(why.to_lowercase().contains("connect"), "{why}");
    }

    #[test]
    fn one_client_per_configuration_and_its_clones() {
        let config = HttpClientConfig::default();
        let clone = config.clone();
        client(&config).unwrap();
        assert!(clone.shared.get().is_some(), "a clone shares the client");
        assert!(HttpClientConfig::default().shared.get().is_none());
    }
}
