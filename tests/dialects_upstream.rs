//! Adapter mode across dialects (issue 22): a Hubtel-style upstream app (`upstream_style =
//! "hubtel"`) is reachable through Africa's Talking, Hubtel, Nalo and over SMPP, and an
//! AT-style one through Hubtel. The fake apps speak as the aggregators' apps do.

mod common;

use common::{At, FakeHttp, Sandbox, Seen};
use serde_json::{Value, json};
use std::time::Duration;

/// A Hubtel-style app: a menu on Initiation, then "You chose <n>" and the end. It keeps its
/// step in ClientState, as Hubtel apps do.
async fn hubtel_app() -> FakeHttp {
    FakeHttp::start(|seen: Seen| async move {
        let req: Value = serde_json::from_str(&seen.body).unwrap_or(Value::Null);
        let answer = match req["Type"].as_str() {
            Some("Initiation") => json!({"Type": "Response",
                "Message": format!("Hubtel app for {}\n1. Yes\n2. No", req["Mobile"].as_str().unwrap_or("?")),
                "ClientState": "menu"}),
            Some("Response") if req["ClientState"] == "menu" => json!({"Type": "Release",
                "Message": format!("You chose {} (hop {})", req["Message"].as_str().unwrap_or("?"), req["Sequence"])}),
            _ => json!({"Type": "Release", "Message": format!("unexpected {}", seen.body)}),
        };
        (200, answer.to_string())
    })
    .await
}

fn sandbox(url: &str, style: &str, extra: &str) -> Sandbox {
    Sandbox::new(
        &format!(
            "[[routes]]\nservice_code = \"*500#\"\nupstream = \"{url}\"\nupstream_style = \"{style}\"\n{extra}"
        ),
        &[],
    )
}

async fn post(at: &At, path: &str, body: Value) -> Value {
    let a = at
        .request(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    serde_json::from_str(&a.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubtel_style_app_answers_through_at_hubtel_and_nalo() {
    let app = hubtel_app().await;
    let sb = sandbox(&format!("http://{}/hubtel-app", app.addr), "hubtel", "");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    // Through Africa's Talking.
    let screens = at.walk("at1", "*500#", "+254700000001", &["1"]).await;
    assert_eq!(
        screens,
        [
            "CON Hubtel app for 254700000001\n1. Yes\n2. No",
            "END You chose 1 (hop 2)"
        ]
    );
    // What the app was sent: Hubtel's fields, the dial string on the Initiation, its
    // ClientState back on the next call.
    let sent: Vec<Value> = app
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_str(&s.body).unwrap())
        .collect();
    assert_eq!(sent[0]["Type"], "Initiation");
    assert_eq!(sent[0]["Message"], "*500#");
    assert_eq!(sent[0]["SessionId"], "at1");
    assert_eq!(sent[0]["Sequence"], 1);
    assert_eq!(
        (
            sent[1]["Type"].as_str(),
            sent[1]["Message"].as_str(),
            sent[1]["ClientState"].as_str()
        ),
        (Some("Response"), Some("1"), Some("menu"))
    );
    // Through Hubtel itself, and through Nalo.
    let hub = |kind: &str, msg: &str, seq: u32| {
        json!({"Mobile": "254700000002", "SessionId": "h1", "ServiceCode": "500", "Type": kind,
               "Message": msg, "Sequence": seq})
    };
    let a = post(&at, "/ussd/hubtel", hub("Initiation", "*500#", 1)).await;
    assert_eq!(a["Message"], "Hubtel app for 254700000002\n1. Yes\n2. No");
    let a = post(&at, "/ussd/hubtel", hub("Response", "2", 2)).await;
    assert_eq!(
        (a["Type"].as_str(), a["Message"].as_str()),
        (Some("Release"), Some("You chose 2 (hop 2)"))
    );
    let nalo = |data: &str, start: bool| json!({"USERID": "u", "MSISDN": "254700000003", "USERDATA": data, "MSGTYPE": start, "SESSIONID": "n1"});
    let a = post(&at, "/ussd/nalo", nalo("*500*1#", true)).await;
    assert_eq!(
        (a["MSG"].as_str(), a["MSGTYPE"].as_bool()),
        (
            Some("Hubtel app for 254700000003\n1. Yes\n2. No"),
            Some(true)
        )
    );
    // A pre-filled dial reaches the app as Hubtel's dial string.
    let last: Value = serde_json::from_str(&app.seen.lock().unwrap().last().unwrap().body).unwrap();
    assert_eq!(
        (last["Type"].as_str(), last["Message"].as_str()),
        (Some("Initiation"), Some("*500*1#"))
    );
    let a = post(&at, "/ussd/nalo", nalo("2", false)).await;
    assert_eq!(
        (a["MSG"].as_str(), a["MSGTYPE"].as_bool()),
        (Some("You chose 2 (hop 2)"), Some(false))
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubtel_style_app_answers_over_smpp() {
    let app = hubtel_app().await;
    let sim = common::operator_sim().await;
    let sb = sandbox(
        &format!("http://{}/hubtel-app", app.addr),
        "hubtel",
        &format!(
            "[[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"gw\"\npassword = \"pw\"\nreconnect_cap_ms = 500\n",
            sim.addr().port()
        ),
    );
    let gw = sb.start().await;
    assert!(sim.wait_bound(Duration::from_secs(10)).await);
    let (mut d, first) = sim.dial("254700000001", "*500#").await.unwrap();
    assert_eq!(first.text, "Hubtel app for 254700000001\n1. Yes\n2. No");
    assert!(!first.end);
    let last = d.reply("1").await.unwrap();
    assert_eq!(
        (last.text.as_str(), last.end),
        ("You chose 1 (hop 2)", true)
    );
    gw.shutdown().await;
}

/// An AT-style app (today's adapter mode) is reachable through Hubtel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_at_style_app_answers_through_hubtel() {
    let app = FakeHttp::start(|seen: Seen| async move {
        let text = seen
            .form
            .iter()
            .find(|(k, _)| k == "text")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if text.is_empty() {
            (200, "CON AT app\n1. Go".to_string())
        } else {
            (200, format!("END text was {text}"))
        }
    })
    .await;
    let sb = sandbox(&format!("http://{}/at-app", app.addr), "africastalking", "");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let hub = |kind: &str, msg: &str, seq: u32| {
        json!({"Mobile": "254700000002", "SessionId": "h9", "ServiceCode": "500", "Type": kind,
               "Message": msg, "Sequence": seq})
    };
    let a = post(&at, "/ussd/hubtel", hub("initiation", "", 1)).await;
    assert_eq!(
        (a["Type"].as_str(), a["Message"].as_str()),
        (Some("response"), Some("AT app\n1. Go"))
    );
    let a = post(&at, "/ussd/hubtel", hub("response", "1", 2)).await;
    assert_eq!(
        (a["Type"].as_str(), a["Message"].as_str()),
        (Some("release"), Some("text was 1"))
    );
    // The app saw the Hubtel dialogue's session id under the dialect's prefix.
    let seen = app.seen.lock().unwrap()[0].form.clone();
    assert!(
        seen.contains(&("sessionId".into(), "hubtel:h9".into())),
        "{seen:?}"
    );
    gw.shutdown().await;
}
