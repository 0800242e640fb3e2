//! How the AT clients reach the network: one small trait, so that TLS is a connector choice.
//!
//! AT's real hosts are https: the gateway uses [`HyperTransport::https`] (rustls with the
//! bundled webpki roots, so no system certificate store or OpenSSL is needed). The plain
//! [`HyperTransport::plain`] speaks HTTP only (tests against a fake AT on loopback) and refuses
//! `https://` URLs with [`TransportError::Unsupported`], which the sender records as a permanent
//! failure rather than retrying forever.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
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

/// A hyper-util client over any connector (plain HTTP now, an HTTPS connector later).
#[derive(Debug, Clone)]
pub struct HyperTransport<C> {
    client: Client<C, Full<Bytes>>,
    https: bool,
}

impl HyperTransport<HttpConnector> {
    /// Plain HTTP only: `https://` URLs are refused as unsupported.
    pub fn plain() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        HyperTransport {
            client: Client::builder(TokioExecutor::new()).build(connector),
            https: false,
        }
    }
}

impl HyperTransport<hyper_rustls::HttpsConnector<HttpConnector>> {
    /// HTTPS (and plain HTTP) with rustls and the bundled webpki roots: what reaches AT.
    pub fn https() -> Self {
        HyperTransport::new(crate::net::https_connector(Duration::from_secs(5)))
    }
}

impl<C> HyperTransport<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    /// A transport over `connector`, which must handle `https://` (e.g. hyper-rustls's
    /// `HttpsConnector<HttpConnector>`).
    pub fn new(connector: C) -> Self {
        HyperTransport {
            client: Client::builder(TokioExecutor::new()).build(connector),
            https: true,
        }
    }
}

impl<C> Transport for HyperTransport<C>
where
    C: Connect + Clone + Send + Sync + std::fmt::Debug + 'static,
{
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
                let resp = self
                    .client
                    .request(req)
                    .await
                    .map_err(|e| TransportError::Connection(error_chain(&e)))?;
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|e| TransportError::Connection(format!("reading body: {e}")))?
                    .to_bytes();
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

/// The error and its sources on one line (hyper's top-level message alone says little).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_transport_reaches_https_and_the_test_one_does_not() {
        assert!(HyperTransport::https().supports_https());
        assert!(!HyperTransport::plain().supports_https());
    }
}
