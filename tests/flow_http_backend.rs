//! Flows that call a backend, end to end: a real gateway on 127.0.0.1:0, a real HTTP backend
//! started inside each test (a small hyper server that records method, path, Authorization
//! header and body), and Africa's Talking played by the harness. The flow is the worked
//! data-bundle example of docs/flows.md (tests/fixtures/backend/bundles.yaml).

mod common;

use bytes::Bytes;
use common::{At, Sandbox, eventually};
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const BUNDLES: &str = include_str!("fixtures/backend/bundles.yaml");
const CATALOG: &str = r#"{"bundles":[{"code":"D1","name":"Daily 100MB","price_cents":100},{"code":"W1","name":"Weekly 1GB","price_cents":500},{"code":"M1","name":"Monthly 5GB","price_cents":2000}]}"#;
const A: &str = "+675700000001";
const B: &str = "+675700000002";

/// One request as the backend saw it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    auth: Option<String>,
    body: String,
}

/// A backend on 127.0.0.1:0: `answer` decides each response; every request is recorded.
struct Backend {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    async fn start<F, Fut>(answer: F) -> Backend
    where
        F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = (u16, String)> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (answer, log) = (answer.clone(), log.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (answer, log) = (answer.clone(), log.clone());
                            async move {
                                let method = req.method().to_string();
                                let path = req.uri().path().to_string();
                                let auth = req
                                    .headers()
                                    .get("authorization")
                                    .map(|v| v.to_str().unwrap().to_string());
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let body = String::from_utf8(body.to_vec()).unwrap();
                                let r = Req {
                                    method,
                                    path,
                                    auth,
                                    body,
                                };
                                log.lock().unwrap().push(r.clone());
                                let (status, text) = answer(r).await;
                                let mut resp = hyper::Response::new(Full::new(Bytes::from(text)));
                                *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend { addr, seen, task }
    }

    /// Requests whose path ends with `suffix`.
    fn count(&self, suffix: &str) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|r| r.path.ends_with(suffix)).count()
    }

    fn requests(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The usual answers: balance by subscriber (K 6.00 for A, K 25.00 for B), the catalog, and a
/// purchase reference.
async fn usual(r: Req) -> (u16, String) {
    if r.path.ends_with("675700000001/balance") {
        (200, r#"{"balance_cents":600}"#.into())
    } else if r.path.ends_with("/balance") {
        (200, r#"{"balance_cents":2500}"#.into())
    } else if r.path == "/bundles" {
        (200, CATALOG.into())
    } else {
        (201, r#"{"reference":"R-1"}"#.into())
    }
}

/// A gateway routing `*675#` to the bundles flow at `backend`, with a hop deadline in ms.
async fn gateway(
    backend: SocketAddr,
    deadline_ms: u64,
    flow: &str,
) -> (Sandbox, At, ussd_gateway::gateway::Running) {
    let flow = flow.replace("http://backend.invalid", &format!("http://{backend}"));
    let toml = format!(
        "[sessions]\nshards = 1\n[[routes]]\nservice_code = \"*675#\"\nflow = \"bundles\"\ndeadline_ms = {deadline_ms}\n"
    );
    let sb = Sandbox::new(&toml, &[("bundles", &flow)]);
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    (sb, at, gw)
}

/// The bundles flow with its secret read from a variable cargo sets for every test run.
fn flow_with_secret() -> String {
    BUNDLES.replace("BUNDLES_TOKEN", "CARGO_PKG_NAME")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_menu_built_from_the_backend_and_a_purchase() {
    let backend = Backend::start(usual).await;
    let (_sb, at, _gw) = gateway(backend.addr, 5000, &flow_with_secret()).await;
    let menu = at.hop("s1", "*675#", A, "").await;
    assert_eq!(
        menu,
        "CON Balance K 6.00. Choose a bundle:\n1. Daily 100MB K 1.00\n2. Weekly 1GB K 5.00\n3. Exit"
    );
    let richer = at.hop("s2", "*675#", B, "").await;
    assert!(
        richer.contains("3. Monthly 5GB K 20.00\n4. Exit"),
        "{richer}"
    );
    assert_eq!(
        at.hop("s1", "*675#", A, "2").await,
        "CON Buy Weekly 1GB for K 5.00?\n1. Confirm\n2. Cancel"
    );
    assert_eq!(
        at.hop("s1", "*675#", A, "2*1").await,
        "END You bought Weekly 1GB. Ref R-1."
    );
    let reqs = backend.requests();
    let token = format!("Bearer {}", std::env::var("CARGO_PKG_NAME").unwrap());
    let purchase = reqs.iter().find(|r| r.path == "/purchases").unwrap();
    assert_eq!(purchase.method, "POST");
    assert_eq!(purchase.auth.as_deref(), Some(token.as_str()));
    let body: serde_json::Value = serde_json::from_str(&purchase.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"msisdn": "675700000001", "bundle": "W1", "price_cents": 500})
    );
    // The catalog is shared data cached for 300 s: the second dialogue did not fetch it.
    assert_eq!(backend.count("/bundles"), 1);
    assert_eq!(backend.count("/balance"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_takes_the_failed_branch() {
    let backend = Backend::start(usual).await;
    let flow = BUNDLES.replace("BUNDLES_TOKEN", "USSD_GATEWAY_TEST_SECRET_NEVER_SET");
    let (_sb, at, _gw) = gateway(backend.addr, 5000, &flow).await;
    assert_eq!(
        at.hop("s1", "*675#", A, "").await,
        "END Bundles are unavailable right now. Please try again later."
    );
    assert_eq!(backend.count(""), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_server_errors_and_malformed_json_take_the_failed_branch() {
    for (status, body, calls) in [
        (404, r#"{"error":"unknown subscriber"}"#, 1),
        (500, "Internal Server Error", 1),
        (200, "<html>maintenance</html>", 1),
        // 503 is retried (GET, `retries: 2`): three calls in all.
        (503, "busy", 3),
    ] {
        let backend = Backend::start(move |_| async move { (status, body.to_string()) }).await;
        let (_sb, at, _gw) = gateway(backend.addr, 5000, &flow_with_secret()).await;
        assert_eq!(
            at.hop("s1", "*675#", A, "").await,
            "END Bundles are unavailable right now. Please try again later.",
            "{status} {body}"
        );
        assert_eq!(backend.count("/balance"), calls, "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_is_retried_after_a_503_but_post_never_is() {
    let balance_calls = Arc::new(AtomicUsize::new(0));
    let calls = balance_calls.clone();
    let backend = Backend::start(move |r: Req| {
        let calls = calls.clone();
        async move {
            if r.path.ends_with("/balance") && calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return (503, "try again".into());
            }
            if r.path == "/purchases" {
                return (503, "try again".into());
            }
            usual(r).await
        }
    })
    .await;
    let (_sb, at, _gw) = gateway(backend.addr, 5000, &flow_with_secret()).await;
    let menu = at.hop("s1", "*675#", A, "").await;
    assert!(menu.starts_with("CON Balance K 6.00."), "{menu}");
    assert_eq!(backend.count("/balance"), 2);
    at.hop("s1", "*675#", A, "1").await;
    assert_eq!(
        at.hop("s1", "*675#", A, "1*1").await,
        "END The purchase failed. You were not charged."
    );
    assert_eq!(backend.count("/purchases"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_hangs_gets_the_flows_fallback_before_the_deadline() {
    let backend = Backend::start(|_| async {
        std::future::pending::<()>().await;
        (200, String::new())
    })
    .await;
    let (_sb, at, _gw) = gateway(backend.addr, 800, &flow_with_secret()).await;
    // The flow's own timeout screen, not silence and not the gateway's generic apology.
    assert_eq!(
        at.hop("s1", "*675#", A, "").await,
        "END The service is busy. Please try again in a minute."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_closes_the_connection_is_a_failure_retried_for_get() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            // Read the start of the request, then hang up without answering.
            let mut buf = [0u8; 512];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            drop(stream);
        }
    });
    let (_sb, at, _gw) = gateway(addr, 5000, &flow_with_secret()).await;
    assert_eq!(
        at.hop("s1", "*675#", A, "").await,
        "END Bundles are unavailable right now. Please try again later."
    );
    // One call and its two retries.
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_does_not_slow_other_dialogues() {
    // A's balance is held until the test lets it go; everything else answers at once.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let backend = Backend::start(move |r: Req| {
        let held = held.clone();
        async move {
            if r.path.ends_with("675700000001/balance") {
                let _permit = held.acquire().await.unwrap();
            }
            usual(r).await
        }
    })
    .await;
    // One actor shard and a long deadline: both dialogues on the same shard, A waits.
    let (_sb, at, _gw) = gateway(backend.addr, 20_000, &flow_with_secret()).await;
    let slow_at = at.clone();
    let slow = tokio::spawn(async move { slow_at.hop("sa", "*675#", A, "").await });
    let reached = eventually(10, || async { backend.count("675700000001/balance") == 1 }).await;
    assert!(reached, "A's request reached the backend");
    // While A's hop waits on the backend, B's dialogue runs from start to end.
    assert!(
        at.hop("sb", "*675#", B, "")
            .await
            .starts_with("CON Balance K 25.00.")
    );
    assert_eq!(
        at.hop("sb", "*675#", B, "1").await,
        "CON Buy Daily 100MB for K 1.00?\n1. Confirm\n2. Cancel"
    );
    assert_eq!(
        at.hop("sb", "*675#", B, "1*1").await,
        "END You bought Daily 100MB. Ref R-1."
    );
    assert!(!slow.is_finished(), "A is still waiting for its backend");
    // A retry of A's waiting hop is answered once, with the same answer, when it comes.
    let retry_at = at.clone();
    let retry = tokio::spawn(async move { retry_at.hop("sa", "*675#", A, "").await });
    gate.add_permits(1);
    let first = slow.await.unwrap();
    assert!(first.starts_with("CON Balance K 6.00."), "{first}");
    assert_eq!(retry.await.unwrap(), first);
    assert_eq!(backend.count("675700000001/balance"), 1);
}
