//! The one way this gateway makes outgoing HTTP(S) connections (upstream apps, flow backends,
//! Africa's Talking): hyper-util's pooled client over rustls with the `ring` provider named
//! explicitly (so another provider elsewhere in a build never makes the choice ambiguous) and
//! the bundled webpki roots (no system certificate store or OpenSSL needed).

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use std::time::Duration;

/// A connector for `http://` and `https://` URLs, `connect_timeout` to establish a connection.
pub fn https_connector(connect_timeout: Duration) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
    {
        Ok(b) => b,
        // Only when the provider lacks the default protocol versions, which ring does not:
        // fall back to the process default rather than fail.
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
    };
    builder.https_or_http().enable_http1().wrap_connector(http)
}
