//! How the AT clients reach the network: one small trait, so that tests can choose.
//!
//! AT's real hosts are https: the gateway uses [`HttpTransport::new`] over its one outgoing
//! client (`crate::net`: rustls with the bundled webpki roots and `[http_client]`'s CAs, so no
//! system certificate store or OpenSSL is needed). The plain [`HttpTransport::plain`] refuses
//! `https://` URLs with [`TransportError::Unsupported`] (tests against a fake AT on loopback),
//! which the sender records as a permanent failure rather than retrying forever.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use std::time::Duration;

/// The largest response body read from AT; AT's answers are a few hundred bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A response as the classifiers see it.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The HTTP status.
    pub status: http::StatusCode,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<Duration>,
    /// The body (at most [`MAX_RESPONSE_BYTES`]).
    pub body: Bytes,
}

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No answer within the request timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Connecting, writing or reading failed.
    #[error("connection: {0}")]
    Connection(String),
    /// This transport cannot reach the URL at all (an https URL without TLS): not retried.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Sends one request and returns the whole (bounded) response.
pub trait Transport: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `req`, bounded by `timeout` from connect to the last body byte.
    fn send(
        &self,
        req: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<RawResponse, TransportError>>;

    /// Whether `https://` URLs can be reached.
    fn supports_https(&self) -> bool;
}

/// The gateway's outgoing client as a [`Transport`].
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    https: bool,
}

/// The former name of [`HttpTransport`].
pub type HyperTransport = HttpTransport;

impl HttpTransport {
    /// Plain HTTP only: `https://` URLs are refused as unsupported.
    pub fn plain() -> Self {
        HttpTransport {
            client: default_client(),
            https: false,
        }
    }

    /// HTTPS (and plain HTTP) with the default `[http_client]` settings: the bundled roots, no
    /// client certificate.
    pub fn https() -> Self {
        HttpTransport::new(default_client())
    }

    /// A transport over `client` (the gateway's shared one, `crate::net::client`).
    pub fn new(client: reqwest::Client) -> Self {
        HttpTransport {
            client,
            https: true,
        }
    }
}

/// A client with the default settings, which rustls always accepts.
fn default_client() -> reqwest::Client {
    crate::net::build(&crate::config::http_client::HttpClientConfig::default())
        .unwrap_or_else(|e| unreachable!("the default HTTP client settings are refused: {e}"))
}

impl Transport for HttpTransport {
    fn send(
        &self,
        req: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        Box::pin(async move {
            if !self.https && req.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
                return Err(TransportError::Unsupported(
                    "https URL but this build has no TLS connector".into(),
                ));
            }
            let exchange = async {
                let (parts, body) = req.into_parts();
                // A `Full` body is in memory already: collecting it cannot fail or wait.
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let req = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                    .map_err(|e| TransportError::Connection(crate::net::error_chain(&e)))?;
                let resp = self
                    .client
                    .execute(req)
                    .await
                    .map_err(|e| TransportError::Connection(crate::net::error_chain(&e)))?;
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let body = crate::net::read_limited(resp, MAX_RESPONSE_BYTES)
                    .await
                    .map_err(|e| TransportError::Connection(format!("reading body: {e}")))?;
                Ok(RawResponse {
                    status,
                    retry_after,
                    body,
                })
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(result) => result,
                Err(_) => Err(TransportError::Timeout(timeout)),
            }
        })
    }

    fn supports_https(&self) -> bool {
        self.https
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_transport_reaches_https_and_the_test_one_does_not() {
        assert!(HttpTransport::https().supports_https());
        assert!(!HttpTransport::plain().supports_https());
    }
}
