//! The gateway's one outgoing HTTP client over real TLS: a bank-style upstream app on
//! 127.0.0.1 behind a private CA that requires a client certificate (mutual TLS). The CA, the
//! server's and the client's certificates are made at test time (rcgen); the server is
//! tokio-rustls under hyper, an implementation independent of the client (reqwest).
//!
//! - With `[http_client] ca_file`, `client_cert_file` and `client_key_file`, the upstream app
//!   answers and the subscriber sees its screen.
//! - Without the client certificate, the call fails: the subscriber gets the apology, the
//!   failure is counted as `connection` and the log says the server wanted a certificate.
//! - `dial` reaches an https front with `--ca-file` and presents the shared secret.

mod common;

use bytes::Bytes;
use common::{At, Sandbox};
use http_body_util::{BodyExt, Full};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A private CA with one server certificate (127.0.0.1) and one client certificate.
struct Pki {
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
    client_pem: String,
    client_key_pem: String,
}

fn pki() -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ussd-gateway test bank CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "bank upstream");
    let server = server.signed_by(&server_key, &ca).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "ussd-gateway");
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_chain: vec![server.der().clone()],
        server_key: server_key.serialize_der(),
        client_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// An HTTPS server on 127.0.0.1:0 with the PKI's server certificate; with
/// `require_client_cert`, it refuses a client without a certificate signed by the PKI's CA. Every request is answered by `answer`
/// from its headers.
async fn tls_server(
    pki: &Pki,
    require_client_cert: bool,
    answer: fn(&http::HeaderMap) -> String,
) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(pki.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone()));
    let config = builder
        .with_single_cert(pki.server_chain.clone(), key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A handshake the server refuses (no client certificate) ends here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        let text = answer(req.headers());
                        let _ = req.into_body().collect().await;
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(text),
                        )))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// A sandbox routing `*123#` to the upstream at `addr` over https, with `http_client` TOML and
/// the PKI's files beside the config.
fn sandbox(pki: &Pki, addr: SocketAddr, http_client: &str) -> Sandbox {
    let sb = Sandbox::new(
        &format!(
            "[[routes]]\nservice_code = \"*123#\"\nupstream = \"https://{addr}/ussd\"\napology = \"The bank is unreachable.\"\n[http_client]\n{http_client}"
        ),
        &[],
    );
    let dir = sb.dir.path();
    std::fs::write(dir.join("bank-ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.join("gateway-client.pem"), &pki.client_pem).unwrap();
    std::fs::write(dir.join("gateway-client.key"), &pki.client_key_pem).unwrap();
    sb
}

const WITH_CERT: &str = "ca_file = \"bank-ca.pem\"\nclient_cert_file = \"gateway-client.pem\"\nclient_key_file = \"gateway-client.key\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_over_mutual_tls_answers_with_the_configured_ca_and_client_certificate() {
    let pki = pki();
    let addr = tls_server(&pki, true, |_| "CON Welcome to the bank\n1. Balance".into()).await;
    let sb = sandbox(&pki, addr, WITH_CERT);
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let screen = at.hop("tls-1", "*123#", "+254700000001", "").await;
    assert_eq!(screen, "CON Welcome to the bank\n1. Balance");
    let ok = common::metric(
        gw.admin_addr,
        "ussd_upstream_requests_total{route=\"*123#\",outcome=\"ok\"}",
    )
    .await;
    assert!(ok >= 1.0, "{ok}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_client_certificate_the_call_fails_and_says_why() {
    let pki = pki();
    let addr = tls_server(&pki, true, |_| "CON never seen".into()).await;
    let sb = sandbox(&pki, addr, "ca_file = \"bank-ca.pem\"\n");
    let (child, log) = sb.spawn_logged("warn");
    let at = At::new(child.public);
    let screen = at.hop("tls-2", "*123#", "+254700000001", "").await;
    assert_eq!(screen, "END The bank is unreachable.");
    let failed = common::metric(
        child.admin,
        "ussd_upstream_requests_total{route=\"*123#\",outcome=\"connection\"}",
    )
    .await;
    assert_eq!(failed, 1.0);
    assert!(
        log.wait_for("upstream app failed", 10).await,
        "{}",
        log.text()
    );
    let text = log.text();
    let line = text
        .lines()
        .find(|l| l.contains("upstream app failed"))
        .unwrap();
    assert!(
        line.contains("received fatal alert: CertificateRequired"),
        "the log says the server wanted a certificate: {line}"
    );
    assert!(
        !line.contains(&addr.to_string()),
        "no URL in the reason: {line}"
    );
}

/// The trusted CA matters too: without `ca_file`, the bank's private certificate is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_the_servers_certificate_is_refused() {
    let pki = pki();
    let addr = tls_server(&pki, false, |_| "CON never seen".into()).await;
    let sb = sandbox(&pki, addr, "");
    let (child, log) = sb.spawn_logged("warn");
    let screen = At::new(child.public)
        .hop("tls-3", "*123#", "+254700000001", "")
        .await;
    assert_eq!(screen, "END The bank is unreachable.");
    assert!(
        log.wait_for("upstream app failed", 10).await,
        "{}",
        log.text()
    );
    assert!(
        log.text().contains("UnknownIssuer"),
        "the log names the refused certificate: {}",
        log.text()
    );
}

/// `dial` reaches an https front (trusting its CA with `--ca-file`) and presents the shared
/// secret in the named header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_reaches_https_and_sends_the_shared_secret() {
    let pki = pki();
    let addr = tls_server(&pki, false, |headers| {
        match headers.get("x-front-secret").map(|v| v.as_bytes()) {
            Some(b"a-long-shared-secret-1234") => "END Secret accepted".into(),
            _ => "END No secret".into(),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let url = format!("https://{addr}/ussd");
    let dial = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"));
        cmd.args(["dial", "*123#", "--url", &url])
            .args(extra)
            .env_remove("USSD_GATEWAY_PUBLIC_SECRET");
        cmd.output().unwrap()
    };
    let ca = ca.to_str().unwrap();
    let out = tokio::task::block_in_place(|| {
        dial(&[
            "--ca-file",
            ca,
            "--secret-header",
            "X-Front-Secret",
            "--secret",
            "a-long-shared-secret-1234",
        ])
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "--- END ---\nSecret accepted\n");
    // The secret can come from the environment, as the gateway reads it.
    let out = tokio::task::block_in_place(|| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"));
        cmd.args(["dial", "*123#", "--url", &url, "--ca-file", ca])
            .args(["--secret-header", "X-Front-Secret"])
            .env("USSD_GATEWAY_PUBLIC_SECRET", "a-long-shared-secret-1234");
        cmd.output().unwrap()
    });
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "--- END ---\nSecret accepted\n"
    );
    // Without the CA, the private certificate is refused, and dial says so.
    let out = tokio::task::block_in_place(|| dial(&[]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
}
