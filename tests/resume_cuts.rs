//! Resuming dialogues cut in the two ways the HTTP tests (resume_http.rs) do not cover: a
//! network abort over SMPP (against the operator simulator) and an idle timeout. In both the
//! same number dialling the same code within the window is offered to continue.

mod common;

use common::{At, Sandbox, eventually};
use std::time::Duration;
use ussd_gateway::front::smpp::Profile;
use ussd_gateway::sim::OperatorSim;

const PAY: &str = include_str!("fixtures/resume/pay.yaml");

const OFFER: &str = "Your last session was interrupted.\n1. Continue\n2. Start again";
const MSISDN: &str = "254700000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialogue_aborted_by_the_network_continues_on_redial() {
    let sim = OperatorSim::start(
        "127.0.0.1:0".parse().unwrap(),
        Profile::preset("its_session_info").unwrap(),
        None,
    )
    .await
    .unwrap();
    let sb = Sandbox::new(
        &format!(
            "[[routes]]\nservice_code = \"*500#\"\nflow = \"pay\"\n\
             [[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"gw\"\n\
             password = \"pw\"\nreconnect_cap_ms = 500\n",
            sim.addr().port()
        ),
        &[("pay", PAY)],
    );
    let gw = sb.start().await;
    assert!(sim.wait_bound(Duration::from_secs(10)).await);
    let (mut d, s) = sim.dial(MSISDN, "*500#").await.unwrap();
    assert_eq!(s.text, "Pay\n1. Send money\n2. Exit");
    assert_eq!(d.reply("1").await.unwrap().text, "Enter amount:");
    d.abort().await.unwrap();
    let registry = gw.registry().clone();
    assert!(
        eventually(5, || async { registry.live() == 0 }).await,
        "aborted"
    );

    let (mut d, s) = sim.dial(MSISDN, "*500#").await.unwrap();
    assert_eq!(s.text, OFFER);
    assert_eq!(d.reply("1").await.unwrap().text, "Enter amount:");
    assert_eq!(d.reply("40").await.unwrap().text, "Send 40?\n1. Yes\n2. No");
    let s = d.reply("1").await.unwrap();
    assert_eq!(s.text, "Sent 40.");
    assert!(s.end);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialogue_that_timed_out_continues_on_redial() {
    let sb = Sandbox::new(
        "[[routes]]\nservice_code = \"*500#\"\nflow = \"pay\"\n[sessions]\nidle_timeout_secs = 1\n",
        &[("pay", PAY)],
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("s1", "*500#", MSISDN, "").await;
    assert_eq!(
        at.hop("s1", "*500#", MSISDN, "1").await,
        "CON Enter amount:"
    );
    // The subscriber goes quiet: the dialogue ends as timed out.
    let registry = gw.registry().clone();
    assert!(
        eventually(10, || async { registry.live() == 0 }).await,
        "timed out"
    );
    let ended = common::end_records(&gw).await;
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["reason"], "idle_timeout", "{:?}", ended[0]);

    assert_eq!(
        at.hop("s2", "*500#", MSISDN, "").await,
        format!("CON {OFFER}")
    );
    assert_eq!(
        at.hop("s2", "*500#", MSISDN, "1").await,
        "CON Enter amount:"
    );
    gw.shutdown().await;
}
