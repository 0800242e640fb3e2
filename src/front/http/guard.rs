//! Who may call the public front: source networks and a shared secret.
//!
//! Aggregators publish the networks their callbacks come from; `[public] allow_from` restricts
//! callers to them (an empty list allows everyone). Behind a reverse proxy or TLS terminator,
//! `trusted_proxies` names the proxies whose `X-Forwarded-For` is believed: the caller is then
//! the right-most address in that header that is not a trusted proxy. Independently, a shared
//! secret can be required, in a header (`X-Ussd-Secret` by default) or as the first path
//! segment (`/<secret>/ussd`, for aggregators that only let you set a URL); it is compared in
//! constant time and never logged. `/health` and `/ready` are exempt: they reveal nothing and
//! are probed by the machine's own orchestration.

use super::{Body, text};
use http::{Response, StatusCode};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The peer address of a connection, put in each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The public front's caller checks.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Allowed source networks; empty allows every caller.
    pub allow_from: Vec<IpNet>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The shared secret, if one is required.
    pub secret: Option<Arc<str>>,
    /// The header that carries it.
    pub secret_header: String,
}

impl Guard {
    /// The caller's address: the peer, or for a trusted proxy the right-most untrusted address
    /// of `X-Forwarded-For`.
    pub fn caller<B>(&self, req: &http::Request<B>) -> Option<IpAddr> {
        let peer = req.extensions().get::<Peer>()?.0.ip();
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return Some(peer);
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !trusted(ip))
                .unwrap_or(peer),
        )
    }

    /// Checks `req`; strips a secret path segment. `Err` is the refusal to send.
    pub fn check<B>(&self, req: &mut http::Request<B>) -> Result<(), Box<Response<Body>>> {
        if !self.allow_from.is_empty() {
            let allowed = self
                .caller(req)
                .is_some_and(|ip| self.allow_from.iter().any(|n| n.contains(&ip)));
            if !allowed {
                crate::metrics::http_rejected("source");
                return Err(Box::new(text(
                    StatusCode::FORBIDDEN,
                    "callers from this network are not allowed\n",
                )));
            }
        }
        let Some(secret) = &self.secret else {
            return Ok(());
        };
        let equal = |given: &str| bool::from(given.as_bytes().ct_eq(secret.as_bytes()));
        let in_header = req
            .headers()
            .get(self.secret_header.as_str())
            .and_then(|v| v.to_str().ok())
            .is_some_and(equal);
        if in_header {
            return Ok(());
        }
        // `/<secret>/ussd`: strip the segment and serve the rest.
        let path = req.uri().path();
        if let Some((first, rest)) = path.trim_start_matches('/').split_once('/')
            && equal(first)
        {
            let rest = format!("/{rest}");
            let pq = match req.uri().query() {
                Some(q) => format!("{rest}?{q}"),
                None => rest,
            };
            if let Ok(uri) = pq.parse() {
                *req.uri_mut() = uri;
                return Ok(());
            }
        }
        crate::metrics::http_rejected("secret");
        Err(Box::new(text(
            StatusCode::UNAUTHORIZED,
            "missing or wrong shared secret\n",
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(peer: &str, xff: Option<&str>, path: &str, secret: Option<&str>) -> http::Request<()> {
        let mut b = http::Request::post(path);
        if let Some(x) = xff {
            b = b.header("x-forwarded-for", x);
        }
        if let Some(s) = secret {
            b = b.header("x-ussd-secret", s);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut().insert(Peer(peer.parse().unwrap()));
        r
    }

    fn guard() -> Guard {
        Guard {
            allow_from: vec!["196.201.214.0/24".parse().unwrap()],
            trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
            secret: None,
            secret_header: "x-ussd-secret".into(),
        }
    }

    #[test]
    fn callers_outside_the_allowed_networks_are_refused() {
        let g = guard();
        assert!(
            g.check(&mut req("196.201.214.7:4000", None, "/ussd", None))
                .is_ok()
        );
        assert!(
            g.check(&mut req("10.0.0.1:4000", None, "/ussd", None))
                .is_err()
        );
        // Behind the trusted proxy, the forwarded address counts; a client cannot smuggle an
        // allowed address in front of its own.
        assert!(
            g.check(&mut req(
                "127.0.0.1:4000",
                Some("196.201.214.9"),
                "/ussd",
                None
            ))
            .is_ok()
        );
        assert!(
            g.check(&mut req(
                "127.0.0.1:4000",
                Some("196.201.214.9, 10.9.9.9"),
                "/ussd",
                None
            ))
            .is_err()
        );
        // An untrusted peer's header is ignored.
        assert!(
            g.check(&mut req(
                "10.0.0.1:4000",
                Some("196.201.214.9"),
                "/ussd",
                None
            ))
            .is_err()
        );
    }

    #[test]
    fn the_secret_goes_in_a_header_or_the_path() {
        let g = Guard {
            allow_from: vec![],
            secret: Some("s3cret".into()),
            ..guard()
        };
        assert!(
            g.check(&mut req("10.0.0.1:1", None, "/ussd", Some("s3cret")))
                .is_ok()
        );
        assert!(
            g.check(&mut req("10.0.0.1:1", None, "/ussd", Some("nope")))
                .is_err()
        );
        assert!(
            g.check(&mut req("10.0.0.1:1", None, "/ussd", None))
                .is_err()
        );
        let mut r = req("10.0.0.1:1", None, "/s3cret/ussd", None);
        assert!(g.check(&mut r).is_ok());
        assert_eq!(r.uri().path(), "/ussd");
        assert!(
            g.check(&mut req("10.0.0.1:1", None, "/wrong/ussd", None))
                .is_err()
        );
    }
}
