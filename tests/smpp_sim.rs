//! The SMPP front against the built-in operator simulator: a full dialogue for every shipped
//! profile, aborts, encodings, USSN pushes, transmitter+receiver binds, reconnection after the
//! SMSC goes away, unbind on shutdown, and the student app giving over SMPP exactly the texts
//! it gives over HTTP.

mod common;

use common::{At, Sandbox, eventually};
use std::net::SocketAddr;
use std::time::Duration;
use ussd_gateway::config::smpp::profile::{EndSignal, PRESETS};
use ussd_gateway::front::smpp::Profile;
use ussd_gateway::gateway::Running;
use ussd_gateway::sim::OperatorSim;

const ECHO: &str = include_str!("fixtures/core/flows/echo.yaml");
const MSISDN: &str = "254700000001";

fn bind_toml(sim: SocketAddr, profile: &str, extra: &str) -> String {
    format!(
        "[[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"gw\"\npassword = \"pw\"\nprofile = \"{profile}\"\nsource_addr = \"384\"\nreconnect_cap_ms = 500\n{extra}",
        sim.port()
    )
}

async fn sim(profile: &str) -> OperatorSim {
    let p = Profile::preset(profile).unwrap();
    OperatorSim::start(
        "127.0.0.1:0".parse().unwrap(),
        p,
        Some(("gw".into(), "pw".into())),
    )
    .await
    .unwrap()
}

async fn echo_gateway(sim: &OperatorSim, profile: &str, extra: &str) -> (Sandbox, Running) {
    let sb = Sandbox::new(
        &format!(
            "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n{}",
            bind_toml(sim.addr(), profile, extra)
        ),
        &[("echo", ECHO)],
    );
    let gw = sb.start().await;
    assert!(
        sim.wait_bound(Duration::from_secs(10)).await,
        "gateway bound"
    );
    let smpp = gw.smpp().unwrap();
    assert!(eventually(5, || async { smpp.binds_up() == 1 }).await);
    (sb, gw)
}

/// A whole dialogue in `profile`'s convention: start, continue, end; the session TLV echoed
/// and the end signalled as the profile says.
async fn full_dialogue(profile: &str) {
    let p = Profile::preset(profile).unwrap();
    let sim = sim(profile).await;
    let (_sb, gw) = echo_gateway(&sim, profile, "").await;
    let (mut d, s) = sim.dial(MSISDN, "*384*1#").await.unwrap();
    assert_eq!(s.text, "Say something");
    assert!(!s.end);
    assert_eq!(s.message.op, Some(p.continue_op));
    assert_eq!(s.message.data_coding, 0);
    assert_eq!(s.message.service_type, "USSD");
    assert_eq!(s.message.dest.addr, MSISDN, "reply goes to the subscriber");
    let s = d.reply("hello").await.unwrap();
    assert_eq!(s.text, "#1 254700000001: hello\n1. Again\n2. Stop");
    assert!(!s.end);
    let s = d.reply("2").await.unwrap();
    assert_eq!(s.text, "Bye after 1");
    assert!(s.end, "{profile}: {:?}", s.message);
    match p.end_signal {
        EndSignal::Op => assert_eq!(s.message.op, Some(17)),
        EndSignal::Bit => assert_eq!(s.message.op, Some(2)),
        EndSignal::Both => assert_eq!(s.message.op, Some(17)),
    }
    if let Some(its) = s.message.its {
        let bit = u8::from(p.end_signal != EndSignal::Op);
        assert_eq!(its[1] & 1, bit, "{profile}: end bit");
    }
    let s = gw
        .registry()
        .core()
        .store
        .ended_records::<serde_json::Value>()
        .count();
    assert_eq!(s, 1);
    gw.shutdown().await;
}

macro_rules! every_profile {
    ($($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            full_dialogue(stringify!($name)).await;
        }
    )*};
}
every_profile!(its_session_info, tata, sixdee, mica, data_sm, msisdn);

#[test]
fn every_preset_has_a_test_above() {
    assert_eq!(
        PRESETS,
        &[
            "its_session_info",
            "tata",
            "sixdee",
            "mica",
            "data_sm",
            "msisdn"
        ]
    );
}

/// The session TLVs come back as the profile says: its_session_info echoed (session number
/// kept), user_message_reference echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tlvs_are_echoed() {
    let sim1 = sim("its_session_info").await;
    let (_sb, gw) = echo_gateway(&sim1, "its_session_info", "").await;
    let (_d1, s1) = sim1.dial(MSISDN, "*384*1#").await.unwrap();
    let (_d2, s2) = sim1.dial("254700000002", "*384*1#").await.unwrap();
    assert_eq!(s1.message.its, Some([0, 0]));
    assert_eq!(s2.message.its, Some([1, 0]));
    gw.shutdown().await;
    let sim2 = sim("mica").await;
    let (_sb, gw) = echo_gateway(&sim2, "mica", "").await;
    let (_d, s) = sim2.dial(MSISDN, "*384*1#").await.unwrap();
    assert_eq!((s.message.umr, s.message.its), (Some(0), None));
    gw.shutdown().await;
}

/// An abort from the network ends the dialogue at once; the next dial starts afresh, and other
/// subscribers' dialogues are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_abort_ends_only_that_dialogue() {
    let sim = sim("its_session_info").await;
    let (_sb, gw) = echo_gateway(&sim, "its_session_info", "").await;
    let (mut other, _) = sim.dial("254700000002", "*384*1#").await.unwrap();
    let (d, _) = sim.dial(MSISDN, "*384*1#").await.unwrap();
    assert_eq!(gw.registry().live(), 2);
    d.abort().await.unwrap();
    let registry = gw.registry().clone();
    assert!(eventually(5, || async { registry.live() == 1 }).await);
    let s = other.reply("still here").await.unwrap();
    assert_eq!(s.text, "#1 254700000002: still here\n1. Again\n2. Stop");
    let (_d, s) = sim.dial(MSISDN, "*384*1#").await.unwrap();
    assert_eq!(s.text, "Say something");
    gw.shutdown().await;
}

/// Text that needs UCS-2 goes both ways in UCS-2; GSM extension characters stay GSM-7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encodings_follow_the_text() {
    let sim = sim("its_session_info").await;
    let (_sb, gw) = echo_gateway(&sim, "its_session_info", "").await;
    let (mut d, _) = sim.dial(MSISDN, "*384*1#").await.unwrap();
    let s = d.reply("Habari ✓").await.unwrap();
    assert_eq!(s.text, "#1 254700000001: Habari ✓\n1. Again\n2. Stop");
    assert_eq!(s.message.data_coding, 8);
    d.reply("1").await.unwrap();
    let s = d.reply("{€}").await.unwrap();
    assert_eq!(s.text, "#2 254700000001: {€}\n1. Again\n2. Stop");
    assert_eq!(s.message.data_coding, 0);
    gw.shutdown().await;
}

/// A screen of exactly 182 septets, extension characters (two septets each) included, goes
/// out whole as GSM-7, one octet per septet; a screen with a form feed, which the SMPP encoder
/// cannot put in GSM-7, is measured as UCS-2 from the start, so its pages fit 160 octets
/// (before, it was one 180-septet page sent as 358 octets of UCS-2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_gsm7_screen_with_extension_characters_stays_gsm7() {
    use ussd_gateway::text::{Encoding, screen_units};
    let full = format!("{}{}", "[€] ".repeat(20), "a".repeat(42));
    assert_eq!(screen_units(&full), (Encoding::Gsm7, 182));
    let form_feed = format!("{}\u{0C}{}end", "word ".repeat(18), "more ".repeat(17));
    let flow = format!(
        "start: full\nscreens:\n  full:\n    type: input\n    text: \"{full}\"\n    into: a\n    next: ff\n  ff:\n    type: input\n    text: \"{}\"\n    into: b\n    next: bye\n  bye:\n    type: end\n    text: \"Bye\"\n",
        form_feed.replace('\u{0C}', "\\f")
    );
    let sim = sim("its_session_info").await;
    let sb = Sandbox::new(
        &format!(
            "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"long\"\n{}",
            bind_toml(sim.addr(), "its_session_info", "")
        ),
        &[("long", &flow)],
    );
    let gw = sb.start().await;
    assert!(sim.wait_bound(Duration::from_secs(10)).await);
    let (mut d, s) = sim.dial(MSISDN, "*384*1#").await.unwrap();
    assert_eq!(s.text, full);
    assert_eq!(s.message.data_coding, 0, "GSM-7, not UCS-2");
    assert_eq!(s.message.body.len(), 182, "one octet per septet");
    // Measured as UCS-2, the form feed screen takes pages of at most 80 characters; the page
    // holding the form feed goes out as UCS-2, within 160 octets.
    let s = d.reply("x").await.unwrap();
    assert!(s.text.ends_with("98. More"), "{:?}", s.text);
    assert!(s.text.chars().count() <= 80, "{:?}", s.text);
    let s = d.reply("98").await.unwrap();
    assert!(s.text.contains('\u{0C}'), "{:?}", s.text);
    assert_eq!(s.message.data_coding, 8);
    assert!(
        s.message.body.len() <= 160,
        "{} octets",
        s.message.body.len()
    );
    gw.shutdown().await;
}

/// An unrouted code is told so, and the dialogue ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_code_ends_with_the_configured_text() {
    let sim = sim("its_session_info").await;
    let (_sb, gw) = echo_gateway(&sim, "its_session_info", "").await;
    let (_d, s) = sim.dial(MSISDN, "*999#").await.unwrap();
    assert_eq!(s.text, "This service code is not available.");
    assert!(s.end);
    gw.shutdown().await;
}

/// A USSN push goes out as op 3 to the canonical MSISDN, over the named or the first bind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ussn_push_reaches_the_subscriber() {
    let sim = sim("its_session_info").await;
    let (_sb, gw) = echo_gateway(&sim, "its_session_info", "").await;
    let smpp = gw.smpp().unwrap();
    smpp.push_ussn(None, "0700000001", "Your results are out")
        .await
        .unwrap();
    let s = sim.next_push(Duration::from_secs(5)).await.unwrap();
    assert_eq!(s.text, "Your results are out");
    assert_eq!(s.message.op, Some(3));
    assert_eq!(s.message.dest.addr, MSISDN);
    assert_eq!(s.message.source.addr, "384");
    smpp.push_ussn(Some("op"), MSISDN, "again").await.unwrap();
    assert!(sim.next_push(Duration::from_secs(5)).await.is_some());
    let e = smpp.push_ussn(Some("nope"), MSISDN, "x").await.unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    gw.shutdown().await;
}

/// A transmitter plus a receiver, SMPP 5.0: the dialogue comes in on one connection and the
/// replies leave on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmitter_and_receiver_binds() {
    let sim = sim("its_session_info").await;
    let extra = "mode = \"transmitter_receiver\"\nversion = \"5.0\"\n";
    let (_sb, gw) = echo_gateway(&sim, "its_session_info", extra).await;
    let (mut d, s) = sim.dial(MSISDN, "*384*1#").await.unwrap();
    assert_eq!(s.text, "Say something");
    assert_eq!(
        d.reply("x").await.unwrap().text,
        "#1 254700000001: x\n1. Again\n2. Stop"
    );
    gw.shutdown().await;
}

/// The SMSC goes away without a word: the bind is seen down, and comes back within the
/// back-off cap once the SMSC returns; shutdown then unbinds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_reconnect_and_unbind_on_shutdown() {
    let first = sim("its_session_info").await;
    let addr = first.addr();
    let (_sb, gw) = echo_gateway(&first, "its_session_info", "").await;
    first.kill();
    let smpp = gw.smpp().unwrap();
    assert!(eventually(5, || async { smpp.binds_up() == 0 }).await);
    let p = Profile::preset("its_session_info").unwrap();
    let second = OperatorSim::start(addr, p, None).await.unwrap();
    assert!(second.wait_bound(Duration::from_secs(5)).await, "re-bound");
    assert!(eventually(5, || async { smpp.binds_up() == 1 }).await);
    let (_d, s) = second.dial(MSISDN, "*384*1#").await.unwrap();
    assert_eq!(s.text, "Say something");
    gw.shutdown().await;
    assert!(
        eventually(5, || async { !second.is_bound() }).await,
        "unbound"
    );
}

/// The student app answers over SMPP with exactly the texts it gives over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_student_app_says_the_same_over_smpp_and_http() {
    let sim = sim("its_session_info").await;
    let sb = Sandbox::with_repo_flows(&format!(
        "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n{}",
        bind_toml(sim.addr(), "its_session_info", "")
    ));
    let gw = sb.start().await;
    assert!(sim.wait_bound(Duration::from_secs(10)).await);
    let at = At::new(gw.public_addr);
    let paths: &[&[&str]] = &[
        &["1", "1"],
        &["1", "2"],
        &["2"],
        &["3"],
        &["4"],
        &["6"],
        &["9"],
    ];
    for (i, path) in paths.iter().enumerate() {
        let session = format!("student-{i}");
        let mut http = vec![at.hop(&session, "*123#", "+254700000001", "").await];
        for n in 1..=path.len() {
            let text = path[..n].join("*");
            http.push(at.hop(&session, "*123#", "+254700000001", &text).await);
        }
        let (mut d, s) = sim.dial(MSISDN, "*123#").await.unwrap();
        let mut smpp = vec![s];
        for input in *path {
            smpp.push(d.reply(input).await.unwrap());
        }
        for (h, s) in http.iter().zip(&smpp) {
            let prefix = if s.end { "END " } else { "CON " };
            assert_eq!(h, &format!("{prefix}{}", s.text), "path {path:?}");
        }
    }
    gw.shutdown().await;
}

/// `operator-sim`'s scripted mode: the gateway binds to it, the scripted dialogue reaches END.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sim_command_runs_a_scripted_dialogue() {
    use ussd_gateway::sim::{OperatorSimOptions, run_operator_sim};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let opts = OperatorSimOptions {
        listen: port,
        service_code: Some("*384*1#".into()),
        inputs: vec!["hi".into(), "2".into()],
        bind_wait: Duration::from_secs(10),
        ..OperatorSimOptions::default()
    };
    let run = tokio::spawn(run_operator_sim(opts));
    let sb = Sandbox::new(
        &format!(
            "[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n[[smpp.binds]]\nname = \"sim\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"any\"\n",
            port.port()
        ),
        &[("echo", ECHO)],
    );
    let gw = sb.start().await;
    let ended = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(ended);
    gw.shutdown().await;
}
