//! Limits that protect the gateway: a flood from one number does not starve others, the live
//! dialogue cap refuses new dialogues while live ones keep working, and the connection cap
//! stops accepting instead of exhausting the process.

mod common;

use common::{At, Sandbox};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_the_listener_waits() {
    let sb = sandbox("max_connections = 1");
    let gw = sb.start().await;
    // One idle client holds the only connection slot.
    let idle = tokio::net::TcpStream::connect(gw.public_addr)
        .await
        .unwrap();
    let at = At::new(gw.public_addr);
    let waiting = tokio::spawn(async move { at.hop("w", "*384*1#", "+254700000001", "").await });
    // Not served while the slot is taken (bounded check of a negative)...
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    // ...and served as soon as it is free.
    drop(idle);
    let answer = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served once the slot is free")
        .unwrap();
    assert_eq!(answer, "CON Say something");
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
