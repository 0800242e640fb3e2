//! The admin listener's inspection and operations endpoints: live dialogues (MSISDNs masked),
//! ending one, the outbox and re-queueing, and USSN pushes over SMPP.

mod common;

use common::{At, Sandbox, eventually};
use std::time::Duration;

async fn admin(
    gw: &ussd_gateway::gateway::Running,
    method: &str,
    path: &str,
    body: &str,
) -> common::Answer {
    At::new(gw.admin_addr)
        .request(
            method,
            path,
            &[
                ("authorization", "Bearer test-token"),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_and_end_dialogues_and_requeue_the_outbox() {
    let sb = Sandbox::with_repo_flows(
        "[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n",
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("live", "*384*303#", "+254700000001", "").await;

    let a = admin(&gw, "GET", "/admin/dialogues", "").await;
    assert_eq!(a.status, 200);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let d = &v["dialogues"][0];
    assert_eq!(d["session"], "http:live");
    assert_eq!(d["msisdn"], "254******001");
    assert_eq!(d["service_code"], "*384*303#");
    assert!(
        !a.body.contains("254700000001"),
        "no MSISDN in clear: {}",
        a.body
    );

    let a = admin(
        &gw,
        "POST",
        "/admin/dialogues/end",
        r#"{"session":"http:live"}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(gw.registry().core().store.live_count(), 0, "ended");
    let a = admin(
        &gw,
        "POST",
        "/admin/dialogues/end",
        r#"{"session":"http:live"}"#,
    )
    .await;
    assert_eq!(a.status, 404);

    // A balance SMS with no AT account configured: recorded, not sent; an operator re-queues it.
    at.hop("bal", "*384*303#", "+254700000001", "").await;
    at.hop("bal", "*384*303#", "+254700000001", "7").await;
    let mut item = serde_json::Value::Null;
    for _ in 0..500 {
        let a = admin(&gw, "GET", "/admin/outbox", "").await;
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        item = v["items"][0].clone();
        if item["status"]["state"] == "not_sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(item["status"]["state"], "not_sent", "{item}");
    assert_eq!(item["kind"], "sms");
    assert_eq!(item["to"], "254******001");
    let id = item["id"].as_u64().unwrap();
    let a = admin(
        &gw,
        "POST",
        "/admin/outbox/requeue",
        &format!("{{\"id\":{id}}}"),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let a = admin(&gw, "POST", "/admin/outbox/requeue", r#"{"id":999999}"#).await;
    assert_eq!(a.status, 404);
    let a = admin(&gw, "POST", "/admin/outbox/requeue", "not json").await;
    assert_eq!(a.status, 400);

    // No SMPP front here: pushes are refused clearly.
    let a = admin(
        &gw,
        "POST",
        "/admin/push",
        r#"{"msisdn":"0700000001","text":"hi"}"#,
    )
    .await;
    assert_eq!(a.status, 503);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_a_notification_over_smpp() {
    let sim = common::operator_sim().await;
    let sb = Sandbox::new(
        &format!(
            "[[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"gw\"\npassword = \"pw\"\nsource_addr = \"384\"\nreconnect_cap_ms = 500\n",
            sim.addr().port()
        ),
        &[],
    );
    let gw = sb.start().await;
    assert!(sim.wait_bound(Duration::from_secs(10)).await);
    // The simulator counts the bind when it answers it; the gateway, once it has the answer.
    let smpp = gw.smpp().unwrap();
    assert!(eventually(5, || async { smpp.binds_up() == 1 }).await);
    let a = admin(
        &gw,
        "POST",
        "/admin/push",
        r#"{"msisdn":"0700000001","text":"Your results are out"}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let pushed = sim.next_push(Duration::from_secs(5)).await.unwrap();
    assert_eq!(pushed.text, "Your results are out");
    let a = admin(
        &gw,
        "POST",
        "/admin/push",
        r#"{"msisdn":"0700000001","text":"x","bind":"nope"}"#,
    )
    .await;
    assert_eq!(a.status, 404);
    let a = admin(
        &gw,
        "POST",
        "/admin/push",
        r#"{"msisdn":"call me","text":"x"}"#,
    )
    .await;
    assert_eq!(a.status, 400);
    // The push endpoint is admin-only.
    let a = At::new(gw.admin_addr)
        .request(
            "POST",
            "/admin/push",
            &[],
            r#"{"msisdn":"0700000001","text":"x"}"#.to_string(),
        )
        .await;
    assert_eq!(a.status, 401);
    gw.shutdown().await;
}
