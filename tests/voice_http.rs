//! Voice callbacks through the public front, as Africa's Talking posts them.

mod common;

use common::{At, Sandbox};

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

    // 0 goes to sales.
    let a = post(
        &at,
        "/voice/dtmf/microfinance",
        "isActive=1&sessionId=ATVId_1&dtmfDigits=0",
    )
    .await;
    assert_eq!(
        a.body,
        format!(
            "{DECL}<Response><Say>Please hold while we connect you to Sales.</Say><Dial phoneNumbers=\"+254711000001\" ringbackTone=\"http://127.0.0.1:8080/media/ringback.mp3\"/></Response>"
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
    let records = ussd_gateway::voice::call_records(&gw.registry().core().store).unwrap();
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
