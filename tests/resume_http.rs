//! Resuming cut dialogues, end to end over the AT HTTP front: a dialogue cut by AT's
//! end-of-session event (Incomplete) or superseded by a new dialogue from the same number is
//! offered back when the number dials the same service code within the flow's window; never
//! across numbers or service codes, never for flows that did not opt in, never at a screen
//! marked `resumable: false`, and not after a normal END.

mod common;

use common::{At, Sandbox};
use std::time::Duration;

const PAY: &str = include_str!("fixtures/resume/pay.yaml");

const HOME: &str = "CON Pay\n1. Send money\n2. Exit";
const OFFER: &str = "CON Your last session was interrupted.\n1. Continue\n2. Start again";
const A: &str = "+254700000001";
const B: &str = "+254700000002";

struct Gw {
    at: At,
    admin: std::net::SocketAddr,
    _gw: ussd_gateway::gateway::Running,
    _sb: Sandbox,
}

/// `*500#` and `*501#` run the opted-in flow, `*600#` the same flow without `resume`, `*700#`
/// with a one-second window, `*800#` resuming silently.
async fn gateway() -> Gw {
    let plain = PAY.replace("resume: { window_secs: 120 }\n", "");
    let short = PAY.replace("window_secs: 120", "window_secs: 1");
    let quiet = PAY.replace("window_secs: 120", "window_secs: 120, ask: false");
    let mut toml = String::new();
    for (code, flow) in [
        ("*500#", "pay"),
        ("*501#", "pay"),
        ("*600#", "plain"),
        ("*700#", "short"),
        ("*800#", "quiet"),
    ] {
        toml.push_str(&format!(
            "[[routes]]\nservice_code = \"{code}\"\nflow = \"{flow}\"\n"
        ));
    }
    let sb = Sandbox::new(
        &toml,
        &[
            ("pay", PAY),
            ("plain", &plain),
            ("short", &short),
            ("quiet", &quiet),
        ],
    );
    let gw = sb.start().await;
    Gw {
        at: At::new(gw.public_addr),
        admin: gw.admin_addr,
        _gw: gw,
        _sb: sb,
    }
}

/// Starts a dialogue and walks to the amount prompt; it is then left hanging (cut).
async fn to_amount(at: &At, session: &str, code: &str, phone: &str) {
    assert_eq!(at.hop(session, code, phone, "").await, HOME);
    assert_eq!(at.hop(session, code, phone, "1").await, "CON Enter amount:");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialogue_cut_by_an_incomplete_event_continues_on_redial() {
    let g = gateway().await;
    to_amount(&g.at, "s1", "*500#", A).await;
    let event =
        g.at.request(
            "POST",
            "/ussd/events",
            &[("content-type", "application/x-www-form-urlencoded")],
            "sessionId=s1&status=Incomplete",
        )
        .await;
    assert_eq!(event.status, 200, "{event:?}");
    assert_eq!(g.at.hop("s2", "*500#", A, "").await, OFFER);
    assert_eq!(
        g.at.hop("s2", "*500#", A, "7").await,
        format!("CON Invalid choice. Please try again:\n{}", &OFFER[4..])
    );
    assert_eq!(g.at.hop("s2", "*500#", A, "7*1").await, "CON Enter amount:");
    assert_eq!(
        g.at.hop("s2", "*500#", A, "7*1*50").await,
        "CON Send 50?\n1. Yes\n2. No"
    );
    assert_eq!(g.at.hop("s2", "*500#", A, "7*1*50*1").await, "END Sent 50.");
    // Ended normally: nothing to resume any more.
    assert_eq!(g.at.hop("s3", "*500#", A, "").await, HOME);
    let metrics = At::new(g.admin)
        .request("GET", "/metrics", &[], "")
        .await
        .body;
    let continued = metrics
        .lines()
        .any(|l| l.starts_with("ussd_flow_resumes_total") && l.contains("outcome=\"continued\""));
    assert!(continued, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_again_and_a_superseded_dialogue() {
    let g = gateway().await;
    to_amount(&g.at, "s1", "*500#", A).await;
    // No event at all: the network simply starts a new dialogue for the same number.
    assert_eq!(g.at.hop("s2", "*500#", A, "").await, OFFER);
    assert_eq!(g.at.hop("s2", "*500#", A, "2").await, HOME);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_across_numbers_service_codes_or_flows_that_did_not_opt_in() {
    let g = gateway().await;
    to_amount(&g.at, "s1", "*500#", A).await;
    to_amount(&g.at, "p1", "*600#", A).await;
    // Another number on the same code, the same number on another code of the same flow, and
    // the flow without `resume`: each starts afresh.
    assert_eq!(g.at.hop("s2", "*500#", B, "").await, HOME);
    assert_eq!(g.at.hop("s3", "*501#", A, "").await, HOME);
    assert_eq!(g.at.hop("p2", "*600#", A, "").await, HOME);
    // The number's own point on its own code is still there.
    assert_eq!(g.at.hop("s4", "*500#", A, "").await, OFFER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_that_must_not_be_resumed_goes_back_to_the_one_before() {
    let g = gateway().await;
    to_amount(&g.at, "s1", "*500#", A).await;
    assert_eq!(
        g.at.hop("s1", "*500#", A, "1*70").await,
        "CON Send 70?\n1. Yes\n2. No"
    );
    assert_eq!(g.at.hop("s2", "*500#", A, "").await, OFFER);
    // Not the stale confirmation: the amount is asked again.
    assert_eq!(g.at.hop("s2", "*500#", A, "1").await, "CON Enter amount:");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_resume_and_the_window() {
    let g = gateway().await;
    to_amount(&g.at, "q1", "*800#", A).await;
    assert_eq!(g.at.hop("q2", "*800#", A, "").await, "CON Enter amount:");
    to_amount(&g.at, "w1", "*700#", A).await;
    // The window (1 s from the last answered hop) passes: the redial starts afresh. Waiting is
    // the behaviour under test here, not a guess about timing.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(g.at.hop("w2", "*700#", A, "").await, HOME);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_with_inputs_typed_ahead_is_not_resumed() {
    let g = gateway().await;
    to_amount(&g.at, "s1", "*500#", A).await;
    assert_eq!(g.at.hop("s2", "*500*1#", A, "").await, "CON Enter amount:");
    // That dialogue is now the point: cut it at its amount prompt, then finish with Exit.
    assert_eq!(g.at.hop("s3", "*500#", A, "").await, OFFER);
    assert_eq!(g.at.hop("s3", "*500#", A, "2").await, HOME);
    assert_eq!(g.at.hop("s3", "*500#", A, "2*2").await, "END Bye.");
    assert_eq!(g.at.hop("s4", "*500#", A, "").await, HOME);
}
