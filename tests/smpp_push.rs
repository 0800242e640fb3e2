//! What the gateway sends over SMPP on its own initiative, against the built-in operator
//! simulator: a network-initiated USSR dialogue (from `POST /admin/push` and from a flow),
//! USSN pushes and SMS as plain submit_sm as flow effects through the outbox.

mod common;

use common::{At, Sandbox, eventually};
use std::time::Duration;
use ussd_gateway::config::smpp::profile::EndSignal;
use ussd_gateway::front::smpp::Profile;
use ussd_gateway::gateway::Running;
use ussd_gateway::sim::OperatorSim;

const ECHO: &str = include_str!("fixtures/core/flows/echo.yaml");
const MSISDN: &str = "254700000001";
const OTHER: &str = "254700000002";

/// A flow that, once the subscriber confirms, notifies them, sends them an SMS and opens a
/// dialogue with someone else, all through the outbox.
const NOTIFY: &str = r#"
start: menu
screens:
  menu:
    type: menu
    text: "Card ready"
    options:
      - label: "Notify"
        next: send
  send:
    type: transact
    ops:
      - push: { to: "{{ phone }}", message: "Your card is ready" }
      - sms: { to: "{{ phone }}", message: "Collect your card at branch {{ 2 + 2 }}" }
      - dialogue: { to: "254700000002", service_code: "*384*1#", bind: "op" }
    next: done
    failed: done
  done:
    type: end
    text: "Sent"
"#;

async fn sim(profile: &str) -> OperatorSim {
    OperatorSim::start(
        "127.0.0.1:0".parse().unwrap(),
        Profile::preset(profile).unwrap(),
        Some(("gw".into(), "pw".into())),
    )
    .await
    .unwrap()
}

async fn gateway(sim: &OperatorSim, profile: &str, extra: &str) -> (Sandbox, Running) {
    let sb = Sandbox::new(
        &format!(
            "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n\
             [[routes]]\nservice_code = \"*384*9#\"\nflow = \"notify\"\n\
             [[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"gw\"\n\
             password = \"pw\"\nprofile = \"{profile}\"\nsource_addr = \"384\"\nreconnect_cap_ms = 500\n{extra}",
            sim.addr().port()
        ),
        &[("echo", ECHO), ("notify", NOTIFY)],
    );
    let gw = sb.start().await;
    assert!(sim.wait_bound(Duration::from_secs(10)).await, "bound");
    // The simulator counts the bind when it answers it; the gateway, once it has the answer.
    let smpp = gw.smpp().unwrap();
    assert!(eventually(5, || async { smpp.binds_up() == 1 }).await, "up");
    (sb, gw)
}

async fn admin(gw: &Running, body: &str) -> common::Answer {
    At::new(gw.admin_addr)
        .request(
            "POST",
            "/admin/push",
            &[
                ("authorization", "Bearer test-token"),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
        .await
}

/// The operator asks for a dialogue with a subscriber: the phone shows the flow's first screen
/// as a USSR request, the subscriber's answers come back as USSR confirms and the flow goes on
/// as if they had dialled; the last screen is a USSN, in the session the gateway chose.
async fn initiated_dialogue(profile: &str) {
    let p = Profile::preset(profile).unwrap();
    let sim = sim(profile).await;
    let (_sb, gw) = gateway(&sim, profile, "").await;
    let a = admin(&gw, r#"{"msisdn":"0700000001","service_code":"*384*1#"}"#).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body.contains(r#""dialogue":true"#), "{}", a.body);
    let (mut d, s) = sim.next_dialogue(Duration::from_secs(5)).await.unwrap();
    assert_eq!(s.text, "Say something");
    assert!(!s.end);
    assert_eq!(s.message.op, Some(p.continue_op), "a USSR request");
    assert_eq!(s.message.dest.addr, MSISDN);
    assert_eq!(s.message.source.addr, "384");
    let s = d.reply("hello").await.unwrap();
    assert_eq!(s.text, "#1 254700000001: hello\n1. Again\n2. Stop");
    assert!(!s.end);
    let s = d.reply("2").await.unwrap();
    assert_eq!(s.text, "Bye after 1");
    assert!(s.end, "{profile}: {:?}", s.message);
    assert_eq!(s.message.op, Some(p.push_op), "{profile}: ends with a USSN");
    if p.end_signal != EndSignal::Op {
        assert_eq!(s.message.its.unwrap()[1] & 1, 1, "{profile}: end bit");
    }
    let registry = gw.registry().clone();
    assert!(eventually(5, || async { registry.live() == 0 }).await);
    assert_eq!(
        gw.registry()
            .core()
            .store
            .ended_records::<serde_json::Value>()
            .count(),
        1
    );
    gw.shutdown().await;
}

macro_rules! every_identity {
    ($($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            initiated_dialogue(stringify!($name)).await;
        }
    )*};
}
// One preset per session identity and end signal: its_session_info (op and bit), tata (bit
// only), mica (user_message_reference), msisdn (the MSISDN alone), data_sm (another carrier).
every_identity!(its_session_info, tata, mica, msisdn, data_sm);

/// A route whose first screen already ends: the subscriber gets it as a USSN, no dialogue is
/// left open; bad requests are refused with a clear status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiating_a_dialogue_that_ends_at_once_or_cannot_start() {
    let sim = sim("its_session_info").await;
    let (_sb, gw) = gateway(&sim, "its_session_info", "").await;
    // No route: the unknown-code END goes out as a notification.
    let a = admin(&gw, r#"{"msisdn":"254700000001","service_code":"*999#"}"#).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body.contains(r#""dialogue":false"#), "{}", a.body);
    let s = sim.next_push(Duration::from_secs(5)).await.unwrap();
    assert_eq!(s.message.op, Some(3));
    // The actor stops once its answer is out, a moment after it (it leaves the registry then).
    let registry = gw.registry();
    assert!(
        eventually(5, || async { registry.live() == 0 }).await,
        "no dialogue left open"
    );
    let a = admin(&gw, r#"{"msisdn":"254700000001"}"#).await;
    assert_eq!(a.status, 400);
    let a = admin(
        &gw,
        r#"{"msisdn":"254700000001","text":"x","service_code":"*384*1#"}"#,
    )
    .await;
    assert_eq!(a.status, 400, "one of text or service_code");
    let a = admin(
        &gw,
        r#"{"msisdn":"254700000001","service_code":"*384*1#","bind":"nope"}"#,
    )
    .await;
    assert_eq!(a.status, 404);
    gw.shutdown().await;
}

/// A flow's effects over SMPP: the USSN push and the SMS (plain submit_sm from the configured
/// sender id, no USSD TLVs) reach the subscriber, the dialogue opens with the other person, and
/// the outbox records all three as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_pushes_texts_and_opens_a_dialogue_over_smpp() {
    let sim = sim("its_session_info").await;
    let (_sb, gw) = gateway(
        &sim,
        "its_session_info",
        "[smpp.sms]\nbind = \"op\"\nsource_addr = \"ACME\"\n",
    )
    .await;
    let at = At::new(gw.public_addr);
    assert_eq!(
        at.hop("s1", "*384*9#", MSISDN, "").await,
        "CON Card ready\n1. Notify"
    );
    assert_eq!(at.hop("s1", "*384*9#", MSISDN, "1").await, "END Sent");

    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            sim.next_push(Duration::from_secs(10))
                .await
                .expect("a push"),
        );
    }
    got.sort_by_key(|s| s.message.op);
    let (sms, ussn) = (&got[0], &got[1]);
    assert_eq!(ussn.text, "Your card is ready");
    assert_eq!(ussn.message.op, Some(3));
    assert_eq!(ussn.message.dest.addr, MSISDN);
    assert_eq!(sms.text, "Collect your card at branch 4");
    assert_eq!(sms.message.op, None, "an SMS carries no ussd_service_op");
    assert_eq!(sms.message.its, None);
    assert_eq!(sms.message.source.addr, "ACME");
    assert_eq!(
        (sms.message.source.ton, sms.message.source.npi),
        (5, 0),
        "alphanumeric sender"
    );
    assert_eq!(sms.message.service_type, "");
    assert_eq!(sms.message.dest.addr, MSISDN);

    let (mut d, s) = sim.next_dialogue(Duration::from_secs(10)).await.unwrap();
    assert_eq!(s.text, "Say something");
    assert_eq!(s.message.dest.addr, OTHER);
    let s = d.reply("hi").await.unwrap();
    assert_eq!(s.text, "#1 254700000002: hi\n1. Again\n2. Stop");

    let outbox = || async {
        let a = At::new(gw.admin_addr)
            .request(
                "GET",
                "/admin/outbox",
                &[("authorization", "Bearer test-token")],
                String::new(),
            )
            .await;
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["kind"].as_str().unwrap().to_string(),
                    i["status"]["state"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(5, || async {
            let mut items = outbox().await;
            items.sort();
            items
                == [("sms", "sent"), ("ussn", "sent"), ("ussr", "sent")]
                    .map(|(k, s)| (k.to_string(), s.to_string()))
        })
        .await,
        "{:?}",
        outbox().await
    );
    gw.shutdown().await;
}

/// Without `[smpp.sms]` the SMS is Africa's Talking's to send (here: no account, so recorded as
/// not sent), while the push still goes over the bind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smpp_sms_the_sms_stays_with_africas_talking() {
    let sim = sim("its_session_info").await;
    let (_sb, gw) = gateway(&sim, "its_session_info", "").await;
    let at = At::new(gw.public_addr);
    at.hop("s1", "*384*9#", MSISDN, "").await;
    assert_eq!(at.hop("s1", "*384*9#", MSISDN, "1").await, "END Sent");
    let s = sim.next_push(Duration::from_secs(10)).await.unwrap();
    assert_eq!(s.text, "Your card is ready");
    let (_d, _s) = sim.next_dialogue(Duration::from_secs(10)).await.unwrap();
    // Recorded as not sent by AT, so it did not go over the bind either.
    let store = gw.registry().core().store.clone();
    assert!(
        eventually(5, || async {
            ussd_gateway::outbox::list(&store).unwrap().iter().any(|i| {
                i.effect.kind() == "sms" && i.status == ussd_gateway::outbox::Status::NotSent
            })
        })
        .await
    );
    gw.shutdown().await;
}

/// `ussd-gateway operator-sim` at a terminal (stdin and stdout piped): waiting at its prompt,
/// it prints a push and lets the person answer a dialogue the gateway opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sim_terminal_shows_pushes_and_answers_initiated_dialogues() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sim = tokio::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(["operator-sim", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = sim.stdin.take().unwrap();
    let mut lines = BufReader::new(sim.stdout.take().unwrap()).lines();
    let mut until = async |want: &str| -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no `{want}` in {seen:?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("operator-sim ended before `{want}`: {seen:?}"));
            let done = line.contains(want);
            seen.push(line);
            if done {
                return seen;
            }
        }
    };
    let sb = Sandbox::new(
        &format!(
            "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n\
             [[smpp.binds]]\nname = \"sim\"\nhost = \"127.0.0.1\"\nport = {port}\nsystem_id = \"any\"\n\
             source_addr = \"384\"\nreconnect_cap_ms = 200\n"
        ),
        &[("echo", ECHO)],
    );
    let gw = sb.start().await;
    until("gateway bound").await;
    // The simulator sees the bind before the gateway has read its bind_resp.
    let smpp = gw.smpp().unwrap();
    assert!(eventually(5, || async { smpp.binds_up() == 1 }).await);
    let a = admin(&gw, r#"{"msisdn":"254700000001","text":"Results are out"}"#).await;
    assert_eq!(a.status, 200, "{a:?}");
    let seen = until("Results are out").await;
    assert!(
        seen.iter()
            .any(|l| l.contains("--- USSN to 254700000001 ---")),
        "{seen:?}"
    );
    let a = admin(&gw, r#"{"msisdn":"254700000001","service_code":"*384*1#"}"#).await;
    assert_eq!(a.status, 200, "{a:?}");
    let seen = until("Say something").await;
    assert!(
        seen.iter().any(|l| l.contains("opened a dialogue")),
        "{seen:?}"
    );
    stdin.write_all(b"hello\n").await.unwrap();
    until("#1 254700000001: hello").await;
    stdin.write_all(b"2\n").await.unwrap();
    let seen = until("Bye after 1").await;
    assert!(seen.iter().any(|l| l.ends_with("--- END ---")), "{seen:?}");
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), sim.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "end of input ends it: {status:?}");
    gw.shutdown().await;
}
