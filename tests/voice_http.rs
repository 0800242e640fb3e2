//! Voice callbacks through the public front, as Africa's Talking posts them.

mod common;
mod outbox_fake;

use common::{At, Sandbox};
use outbox_fake::{CALL, FakeAt, wait_for};

const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

async fn post(at: &At, path: &str, body: &str) -> common::Answer {
    at.request(
        "POST",
        path,
        &[("content-type", "application/x-www-form-urlencoded")],
        body.to_string(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_microfinance_ivr_over_http() {
    let sb = Sandbox::with_repo_flows("[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);

    // An inbound call to our number hears the menu inside GetDigits.
    let a = post(
        &at,
        "/voice/callback",
        "isActive=1&sessionId=ATVId_1&direction=Inbound&callerNumber=%2B254700000001&destinationNumber=%2B254711000000",
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type, "application/xml");
    assert_eq!(
        a.body,
        format!(
            "{DECL}<Response><GetDigits timeout=\"30\" finishOnKey=\"#\" callbackUrl=\"http://127.0.0.1:8080/voice/dtmf/microfinance\"><Say>Thank you for calling. Press 0 to talk to sales, 1 to talk to support or 2 to hear this message again.</Say></GetDigits><Say>Thank you for calling. Good bye!</Say></Response>"
        )
    );

    // 0 goes to sales. No ringback URL is configured, so the Dial has none (AT's own tone):
    // nothing on this gateway serves audio.
    let a = post(
        &at,
        "/voice/dtmf/microfinance",
        "isActive=1&sessionId=ATVId_1&dtmfDigits=0",
    )
    .await;
    assert_eq!(
        a.body,
        format!(
            "{DECL}<Response><Say>Please hold while we connect you to Sales.</Say><Dial phoneNumbers=\"+254711000001\"/></Response>"
        )
    );
    // Anything else goes to support.
    let a = post(
        &at,
        "/voice/dtmf/microfinance",
        "isActive=1&sessionId=ATVId_1&dtmfDigits=7%23",
    )
    .await;
    assert!(a.body.contains("connect you to Support."), "{}", a.body);

    // The final callback stores the call record and gets an empty 200.
    let a = post(
        &at,
        "/voice/callback",
        "isActive=0&sessionId=ATVId_1&direction=Inbound&callerNumber=%2B254700000001&destinationNumber=%2B254711000000&durationInSeconds=42&currencyCode=KES&amount=1.50&hangupCause=NORMAL_CLEARING",
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let records = ussd_gateway::voice::call_records(&gw.registry().core().store)
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].duration_seconds, Some(42));

    // Bad callbacks.
    let a = post(&at, "/voice/callback", "sessionId=ATVId_2").await;
    assert_eq!(a.status, 400);
    let a = post(&at, "/voice/nowhere/x/y/z", "isActive=1&sessionId=s").await;
    assert_eq!(a.status, 404);
    let a = at.request("GET", "/voice/callback", &[], "").await;
    assert_eq!(a.status, 405);
    gw.shutdown().await;
}

/// The AT account's TOML for a gateway whose outbox talks to `fake`, with `extra` keys.
fn account(fake: &FakeAt, extra: &str) -> String {
    format!(
        "[africastalking]\nusername = \"sandbox\"\napi_key = \"test-key\"\nmessaging_base_url = \"{url}\"\nvoice_base_url = \"{url}\"\npoll_interval_ms = 50\n{extra}\n",
        url = fake.url()
    )
}

/// "Please call me" rings from the number the IVR answers: AT then reports that number as the
/// caller and the IVR's menu answers, not "this number is not in service".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn please_call_me_rings_from_the_number_the_ivr_answers() {
    let fake = FakeAt::start().await;
    let sb = Sandbox::with_repo_flows(&format!(
        "{}[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n",
        account(&fake, "")
    ));
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let answers = at.walk("call", "*384*303#", "+254700000001", &["1"]).await;
    assert_eq!(answers[1], "END Please wait while we place your call.");
    wait_for("the call", || !fake.requests_to(CALL).is_empty()).await;
    let call = &fake.requests_to(CALL)[0];
    assert_eq!(call.field("from"), Some("+254711000000"));
    assert_eq!(call.field("to"), Some("+254700000001"));

    let a = post(
        &at,
        "/voice/callback",
        "isActive=1&sessionId=ATVId_9&direction=Outbound&callerNumber=%2B254711000000&destinationNumber=%2B254700000001",
    )
    .await;
    assert!(a.body.contains("<GetDigits"), "{}", a.body);
    assert!(!a.body.contains("not in service"), "{}", a.body);
    gw.shutdown().await;
}

/// A configured calling number that no IVR answers is refused by `check` and by `serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calling_number_no_ivr_answers_is_refused() {
    let fake = FakeAt::start().await;
    let sb = Sandbox::with_repo_flows(&format!(
        "{}[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n",
        account(&fake, "voice_number = \"+254799999999\"")
    ));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(["check", "--config"])
        .arg(sb.config_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("africastalking.voice_number") && stderr.contains("+254799999999"),
        "{stderr}"
    );
    let refused = ussd_gateway::gateway::start(sb.config())
        .await
        .err()
        .unwrap();
    assert!(
        format!("{refused:#}").contains("africastalking.voice_number"),
        "{refused:#}"
    );

    // The number the IVR answers, written another way, is accepted.
    let sb = Sandbox::with_repo_flows(&account(&fake, "voice_number = \"254 711 000000\""));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(["check", "--config"])
        .arg(sb.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
