//! Limits that protect the gateway: a flood from one number does not starve others, the live
//! dialogue cap refuses new dialogues while live ones keep working, the connection cap refuses
//! past it instead of exhausting the process, and slow, stalled or idle clients cannot hold
//! connections.

mod common;

use common::{At, Sandbox, metric};
use std::time::Duration;

const ECHO: &str = include_str!("fixtures/core/flows/echo.yaml");

fn sandbox(limits: &str) -> Sandbox {
    Sandbox::new(
        &format!("[limits]\n{limits}\n[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n"),
        &[("echo", ECHO)],
    )
}

const BUSY: &str = "END The service is busy. Please try again in a minute.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_number_does_not_starve_others() {
    let sb = sandbox("hops_per_minute_per_msisdn = 5");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    for i in 0..5 {
        assert_eq!(
            at.hop(&format!("f{i}"), "*384*1#", "+254700000001", "")
                .await,
            "CON Say something"
        );
    }
    assert_eq!(at.hop("f5", "*384*1#", "+254700000001", "").await, BUSY);
    assert_eq!(
        at.hop("other", "*384*1#", "+254700000002", "").await,
        "CON Say something"
    );
    let metrics = At::new(gw.admin_addr)
        .request("GET", "/metrics", &[], "")
        .await
        .body;
    assert!(
        metrics.contains("ussd_limited_total{limit=\"msisdn_rate\"} 1"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_live_dialogue_cap_new_dialogues_are_refused_and_live_ones_go_on() {
    let sb = sandbox("max_live_dialogues = 2");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("a", "*384*1#", "+254700000001", "").await;
    at.hop("b", "*384*1#", "+254700000002", "").await;
    assert_eq!(at.hop("c", "*384*1#", "+254700000003", "").await, BUSY);
    assert_eq!(
        at.hop("a", "*384*1#", "+254700000001", "x").await,
        "CON #1 254700000001: x\n1. Again\n2. Stop"
    );
    // When one ends (and its actor is gone), there is room again.
    at.hop("a", "*384*1#", "+254700000001", "x*2").await;
    let registry = gw.registry().clone();
    assert!(
        common::eventually(10, || {
            let r = registry.clone();
            async move { r.live() == 1 }
        })
        .await
    );
    assert_eq!(
        at.hop("d", "*384*1#", "+254700000004", "").await,
        "CON Say something"
    );
    gw.shutdown().await;
}

/// Reads what the gateway sends on `stream` until it closes the connection (at most 10 s).
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("the gateway closed the connection within 10 s")
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

/// A connection that asked for `/health`, got its 200, and is kept alive.
async fn kept_alive(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s
}

const STALLED: &[u8] = b"POST /ussd HTTP/1.1\r\nhost: gw\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\nse";

/// Clients that send complete headers and then only part of the body cannot hold the front:
/// each is closed once its request deadline passes, a connection past the cap is told 503 at
/// once (counted), and other clients are answered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_cannot_lock_the_front() {
    use tokio::io::AsyncWriteExt;
    let sb = sandbox("max_connections = 3\nrequest_timeout_secs = 1\nidle_timeout_secs = 60");
    let gw = sb.start().await;
    let timeouts = "ussd_http_rejected_total{reason=\"request_timeout\"}";
    let refusals = "ussd_http_rejected_total{reason=\"connections\"}";
    let (timeouts_before, refusals_before) = (
        metric(gw.admin_addr, timeouts).await,
        metric(gw.admin_addr, refusals).await,
    );
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(gw.public_addr)
            .await
            .unwrap();
        s.write_all(STALLED).await.unwrap();
        stalled.push(s);
    }
    // Each stalled client is cut at its deadline, without an answer to its request.
    for s in &mut stalled {
        assert_eq!(read_until_closed(s).await, "");
    }
    assert_eq!(metric(gw.admin_addr, timeouts).await - timeouts_before, 3.0);
    // The front answers again (on connections that close after the answer: a pooled
    // keep-alive connection would hold a slot).
    for (method, path, body, want) in [
        (
            "POST",
            "/ussd",
            "sessionId=after&serviceCode=*384*1%23&phoneNumber=%2B254700000001&text=",
            "CON Say something",
        ),
        ("GET", "/health", "", "ok"),
    ] {
        let mut s = tokio::net::TcpStream::connect(gw.public_addr)
            .await
            .unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(want), "{answer}");
    }

    // With every slot held by an idle keep-alive client (each answered, so each accepted), a
    // newcomer is refused at once, not left waiting in the backlog.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(kept_alive(gw.public_addr).await);
    }
    let mut s = tokio::net::TcpStream::connect(gw.public_addr)
        .await
        .unwrap();
    let _ = s
        .write_all(b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(metric(gw.admin_addr, refusals).await - refusals_before >= 1.0);
    gw.shutdown().await;
}

/// A keep-alive connection with no request is closed after the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let sb = sandbox("idle_timeout_secs = 1");
    let gw = sb.start().await;
    let mut s = kept_alive(gw.public_addr).await;
    // Kept alive after the answer, then closed by the gateway.
    assert_eq!(read_until_closed(&mut s).await, "");
    gw.shutdown().await;
}

/// A request head larger than `max_header_bytes` is refused with 431 (hyper's own buffer
/// would take about 400 KB per connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_head_gets_431() {
    use tokio::io::AsyncWriteExt;
    let sb = sandbox("max_header_bytes = 16384");
    let gw = sb.start().await;
    let mut s = tokio::net::TcpStream::connect(gw.public_addr)
        .await
        .unwrap();
    let head = format!(
        "GET /health HTTP/1.1\r\nhost: gw\r\nx-padding: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    gw.shutdown().await;
}

/// A client that half-closes its side after a complete request still gets the answer, even
/// when the answer comes after the half-close (here: an upstream app that answers only then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_client_gets_its_answer() {
    use tokio::io::AsyncWriteExt;
    let (closed_tx, closed_rx) = tokio::sync::watch::channel(false);
    let app = common::FakeHttp::start(move |_| {
        let mut closed = closed_rx.clone();
        async move {
            let _ = closed.wait_for(|c| *c).await;
            (200, "CON Answered after the half-close".to_string())
        }
    })
    .await;
    let sb = Sandbox::new(
        &format!(
            "[[routes]]\nservice_code = \"*9#\"\nupstream = \"http://{}/ussd\"\n",
            app.addr
        ),
        &[],
    );
    let gw = sb.start().await;
    let mut s = tokio::net::TcpStream::connect(gw.public_addr)
        .await
        .unwrap();
    let body = "sessionId=hc&serviceCode=*9%23&phoneNumber=%2B254700000001&text=";
    let req = format!(
        "POST /ussd HTTP/1.1\r\nhost: gw\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // The upstream has the hop: the request is in, the answer not yet made.
    assert!(common::eventually(10, || async { app.count() == 1 }).await);
    s.shutdown().await.unwrap();
    // The FIN reaches the gateway on loopback while the hop is still with the upstream (a
    // gateway without half-close support then drops the connection: the answer is lost);
    // only then does the upstream answer.
    tokio::task::yield_now().await;
    closed_tx.send(true).unwrap();
    let answer = read_until_closed(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("CON Answered after the half-close"),
        "{answer}"
    );
    gw.shutdown().await;
}

/// The public front can be restricted to an aggregator's networks and a shared secret, in a
/// header or the path; health probes stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_networks_and_the_shared_secret() {
    let routes = "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n";
    // Loopback is not among the allowed networks: refused.
    let sb = Sandbox::new(routes, &[("echo", ECHO)]);
    let toml = std::fs::read_to_string(sb.config_path()).unwrap().replace(
        "[public]\nlisten = \"127.0.0.1:0\"\n",
        "[public]\nlisten = \"127.0.0.1:0\"\nallow_from = [\"196.201.214.0/24\"]\n",
    );
    std::fs::write(sb.config_path(), toml).unwrap();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let a = at
        .form(&[
            ("sessionId", "x"),
            ("serviceCode", "*384*1#"),
            ("phoneNumber", "254700000001"),
        ])
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(at.request("GET", "/health", &[], "").await.status, 200);
    gw.shutdown().await;

    // Loopback allowed, a secret required.
    let sb = Sandbox::new(routes, &[("echo", ECHO)]);
    let toml = std::fs::read_to_string(sb.config_path()).unwrap().replace(
        "[public]\nlisten = \"127.0.0.1:0\"\n",
        "[public]\nlisten = \"127.0.0.1:0\"\nallow_from = [\"127.0.0.0/8\"]\nshared_secret = \"s3cret\"\n",
    );
    std::fs::write(sb.config_path(), toml).unwrap();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let form = "sessionId=s1&serviceCode=*384*1%23&phoneNumber=254700000001&text=";
    let ct = ("content-type", "application/x-www-form-urlencoded");
    let a = at.request("POST", "/ussd", &[ct], form).await;
    assert_eq!(a.status, 401);
    let a = at
        .request("POST", "/ussd", &[ct, ("x-ussd-secret", "wrong")], form)
        .await;
    assert_eq!(a.status, 401);
    let a = at
        .request("POST", "/ussd", &[ct, ("x-ussd-secret", "s3cret")], form)
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, "CON Say something"));
    let a = at.request("POST", "/s3cret/ussd", &[ct], form).await;
    assert_eq!((a.status, a.body.as_str()), (200, "CON Say something"));
    assert_eq!(at.request("GET", "/ready", &[], "").await.status, 200);
    gw.shutdown().await;
}
