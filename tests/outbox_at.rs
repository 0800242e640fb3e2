//! The AT clients against a fake AT API: exact fields and headers, and what each answer means.

mod outbox_fake;

use outbox_fake::{AIRTIME, CALL, FakeAt, Reply, SMS};
use std::sync::Arc;
use std::time::Duration;
use ussd_gateway::outbox::{AtClient, AtConfig, HyperTransport, Outcome};

fn client(config: &AtConfig) -> AtClient {
    AtClient::new(config, Arc::new(HyperTransport::plain()))
}

fn assert_common_headers(r: &outbox_fake::Recorded) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("apikey"), Some("test-key-123"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
}

fn permanent(o: &Outcome) -> &str {
    match o {
        Outcome::Permanent { reason } => reason,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

fn transient(o: &Outcome) -> &str {
    match o {
        Outcome::Transient { reason, .. } => reason,
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

#[tokio::test]
async fn sms_sends_exactly_the_documented_fields() {
    let fake = FakeAt::start().await;
    let at = client(&fake.config());
    let out = at
        .send_sms("254711000001", "Deposit of KES 50.00 & more")
        .await;
    assert!(
        matches!(&out, Outcome::Sent { detail } if detail.contains("ATXid_1")),
        "{out:?}"
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, SMS);
    assert_common_headers(r);
    assert_eq!(r.field_names(), ["username", "to", "message", "from"]);
    assert_eq!(r.field("username"), Some("sandbox"));
    assert_eq!(r.field("to"), Some("+254711000001"));
    assert_eq!(r.field("message"), Some("Deposit of KES 50.00 & more"));
    assert_eq!(r.field("from"), Some("MYBIZ"));

    // Without a sender id, no `from` at all (AT's default sender).
    let mut config = fake.config();
    config.sender_id = None;
    let out = client(&config).send_sms("254711000002", "hi").await;
    assert!(matches!(out, Outcome::Sent { .. }));
    assert_eq!(
        fake.requests()[1].field_names(),
        ["username", "to", "message"]
    );
}

#[tokio::test]
async fn airtime_sends_one_recipient_as_json_with_an_idempotency_key() {
    let fake = FakeAt::start().await;
    let at = client(&fake.config());
    let out = at
        .send_airtime("254711000001", "KES", 5005, Some("outbox-7"), 1)
        .await;
    assert!(
        matches!(&out, Outcome::Sent { detail } if detail.contains("ATQid_1")),
        "{out:?}"
    );
    let r = &fake.requests()[0];
    assert_eq!(r.path, AIRTIME);
    assert_common_headers(r);
    assert_eq!(r.header("idempotency-key"), Some("outbox-7"));
    assert_eq!(r.field_names(), ["username", "recipients"]);
    assert_eq!(r.field("username"), Some("sandbox"));
    let recipients: serde_json::Value =
        serde_json::from_str(r.field("recipients").unwrap()).unwrap();
    assert_eq!(
        recipients,
        serde_json::json!([{"phoneNumber": "+254711000001", "currencyCode": "KES", "amount": "50.05"}])
    );
    // Nonsense amounts never reach AT.
    let out = at.send_airtime("254711000001", "KES", 0, None, 1).await;
    assert!(permanent(&out).contains("invalid airtime amount"));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_call_goes_from_our_voice_number() {
    let fake = FakeAt::start().await;
    let out = client(&fake.config()).place_call("254711000001").await;
    assert!(
        matches!(&out, Outcome::Sent { detail } if detail.contains("ATVId_1")),
        "{out:?}"
    );
    let r = &fake.requests()[0];
    assert_eq!(r.path, CALL);
    assert_common_headers(r);
    assert_eq!(r.field_names(), ["username", "from", "to"]);
    assert_eq!(r.field("username"), Some("sandbox"));
    assert_eq!(r.field("from"), Some("+254711082000"));
    assert_eq!(r.field("to"), Some("+254711000001"));

    // No voice number: not sent, nothing asked of AT.
    let mut config = fake.config();
    config.voice_number = None;
    let out = client(&config).place_call("254711000001").await;
    assert!(matches!(out, Outcome::NotSent { .. }), "{out:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn answers_are_classified() {
    let fake = FakeAt::start().await;
    let at = client(&fake.config());
    fake.script(
        SMS,
        [
            Reply::Raw(401, "The supplied authentication is invalid"),
            Reply::Raw(500, "oops"),
            Reply::RetryAfter(429, 7),
            Reply::Raw(
                201,
                r#"{"SMSMessageData":{"Message":"Sent to 0/1","Recipients":[{"statusCode":403,"number":"+254711000001","status":"InvalidPhoneNumber","cost":"0","messageId":"None"}]}}"#,
            ),
            Reply::Raw(201, r#"{"SMSMessageData":{"Message":"InvalidSenderId","Recipients":[]}}"#),
            Reply::Raw(201, "not json"),
            Reply::Hang,
        ],
    );
    let to = "254711000001";
    assert!(permanent(&at.send_sms(to, "a").await).contains("401"));
    assert!(transient(&at.send_sms(to, "b").await).contains("500"));
    match at.send_sms(to, "c").await {
        Outcome::Transient { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("429 must be transient, got {other:?}"),
    }
    let rejected = at.send_sms(to, "d").await;
    assert!(permanent(&rejected).contains("InvalidPhoneNumber"));
    assert!(
        !permanent(&rejected).contains("711000001"),
        "numbers are masked"
    );
    assert!(permanent(&at.send_sms(to, "e").await).contains("InvalidSenderId"));
    assert!(permanent(&at.send_sms(to, "f").await).contains("unreadable"));
    assert!(transient(&at.send_sms(to, "g").await).contains("timed out"));

    fake.script(
        CALL,
        [Reply::Raw(
            201,
            r#"{"entries":[{"phoneNumber":"+254711000001","status":"InvalidPhoneNumber"}],"errorMessage":"None"}"#,
        )],
    );
    assert!(permanent(&at.place_call(to).await).contains("InvalidPhoneNumber"));

    fake.script(
        AIRTIME,
        [
            Reply::Raw(
                201,
                r#"{"errorMessage":"None","numSent":0,"responses":[{"phoneNumber":"+254711000001","amount":"KES 50.0000","status":"Failed","requestId":"None","errorMessage":"Invalid phone number","discount":"KES 0.0000"}]}"#,
            ),
            Reply::Raw(503, "maintenance"),
        ],
    );
    assert!(
        permanent(&at.send_airtime(to, "KES", 5000, None, 1).await)
            .contains("Invalid phone number")
    );
    assert!(transient(&at.send_airtime(to, "KES", 5000, None, 1).await).contains("503"));
}

#[tokio::test]
async fn https_without_tls_is_a_permanent_failure_not_a_retry_loop() {
    let mut config = AtConfig {
        username: Some("sandbox".into()),
        api_key: Some(ussd_gateway::outbox::Secret::new("k")),
        ..AtConfig::default()
    };
    config.request_timeout_ms = 1000;
    let at = client(&config);
    assert_eq!(at.unreachable_hosts().len(), 3);
    let out = at.send_sms("254711000001", "hi").await;
    assert!(permanent(&out).contains("TLS"), "{out:?}");
}

#[tokio::test]
async fn no_account_means_not_sent_and_no_request() {
    let fake = FakeAt::start().await;
    let mut config = fake.config();
    config.username = None;
    let at = client(&config);
    assert!(!at.is_configured());
    for out in [
        at.send_sms("254711000001", "x").await,
        at.send_airtime("254711000001", "KES", 100, None, 1).await,
        at.place_call("254711000001").await,
    ] {
        assert_eq!(
            out,
            Outcome::NotSent {
                reason: "not sent: no AT account configured".into()
            }
        );
    }
    assert!(fake.requests().is_empty());
}

#[test]
fn the_config_section_parses_with_defaults_and_hides_the_key() {
    #[derive(serde::Deserialize)]
    struct File {
        africastalking: AtConfig,
    }
    let file: File = toml::from_str(
        r#"
        [africastalking]
        username = "myapp"
        api_key = "secret-value"
        sender_id = "MYBIZ"
        voice_number = "+254711082000"
        messaging_base_url = "https://api.africastalking.com"
        voice_base_url = "https://voice.africastalking.com"
        [africastalking.retry]
        max_attempts = 3
        "#,
    )
    .unwrap();
    let c = file.africastalking;
    assert_eq!(c.airtime_base(), "https://api.africastalking.com");
    assert_eq!(c.retry.max_attempts, 3);
    assert_eq!(c.retry.initial_backoff_ms, 2000);
    assert_eq!(c.request_timeout_ms, 10_000);
    c.validate().unwrap();
    assert!(!format!("{c:?}").contains("secret-value"));
    assert_eq!(c.account_with(|_| None).unwrap().username, "myapp");

    assert!(toml::from_str::<File>("[africastalking]\nusernme = \"x\"").is_err());
    let d = AtConfig::default();
    assert_eq!(
        d.messaging_base_url,
        "https://api.sandbox.africastalking.com"
    );
    assert_eq!(d.voice_base_url, "https://voice.sandbox.africastalking.com");
    assert!(d.account_with(|_| None).is_none());
    // The key may come from the environment; the username must come from somewhere.
    let env = |name: &str| (name == "AT_API_KEY").then(|| "from-env".to_string());
    assert!(d.account_with(env).is_none());
    let named = AtConfig {
        username: Some("sandbox".into()),
        ..AtConfig::default()
    };
    assert_eq!(
        named.account_with(env).unwrap().api_key.expose(),
        "from-env"
    );
}

#[test]
fn backoff_grows_is_capped_and_jittered() {
    let r = ussd_gateway::outbox::RetryConfig {
        initial_backoff_ms: 100,
        max_backoff_ms: 1000,
        max_attempts: 10,
    };
    for _ in 0..50 {
        let b1 = r.backoff(1).as_millis();
        let b3 = r.backoff(3).as_millis();
        let b9 = r.backoff(9).as_millis();
        assert!((50..=100).contains(&b1), "{b1}");
        assert!((200..=400).contains(&b3), "{b3}");
        assert!((500..=1000).contains(&b9), "{b9}");
    }
}
