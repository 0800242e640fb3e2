//! Attacks on the public HTTP front, each as an attacker would try it (issue 19): what must not
//! work does not, and the subscriber it was aimed at is not disturbed.

mod common;

use common::{At, Sandbox};

const APOLOGY: &str = "END Sorry, the service is unavailable right now. Please try again later.";
const RESULTS: &str = "END Current Term Results:\nData Structures (CS201)";

fn student() -> Sandbox {
    Sandbox::with_repo_flows(
        "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n[[routes]]\nservice_code = \"*675#\"\nflow = \"dental\"\n",
    )
}

async fn metric(admin: std::net::SocketAddr, line_start: &str) -> f64 {
    let m = At::new(admin)
        .request("GET", "/metrics", &[], "")
        .await
        .body;
    m.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in the metrics"))
}

/// Another number (or the same number on another code) sending a live dialogue's `sessionId`
/// is refused with a generic END: it never sees the dialogue's screens, and the dialogue goes
/// on for its own subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_dialogue_answers_only_its_own_number_and_code() {
    let sb = student();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let amina = "+254700000001";
    let s = "ATUid_owned_live";
    assert!(
        at.hop(s, "*123#", amina, "")
            .await
            .starts_with("CON Welcome to UniConnect, Amina")
    );
    assert!(
        at.hop(s, "*123#", amina, "1")
            .await
            .starts_with("CON View Results")
    );

    let live = "ussd_session_mismatch_total{front=\"http\",dialogue=\"live\"}";
    let before = metric(gw.admin_addr, live).await;
    // An unregistered number, the same session id: the student's results are not for it.
    assert_eq!(at.hop(s, "*123#", "0700000099", "1*1").await, APOLOGY);
    // The same number written another way is the same subscriber: not refused (a retry of
    // the last hop, answered from the stored reply).
    assert!(
        at.hop(s, "*123#", "0700000001", "1")
            .await
            .starts_with("CON View Results")
    );
    // Amina's number on another service code.
    assert_eq!(at.hop(s, "*675#", amina, "1*1").await, APOLOGY);
    assert_eq!(metric(gw.admin_addr, live).await - before, 2.0);

    // The dialogue is where Amina left it.
    assert!(at.hop(s, "*123#", amina, "1*1").await.starts_with(RESULTS));
    gw.shutdown().await;
}

/// After END the tombstone answers retries of the last hop, but only from the dialogue's own
/// number and service code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_dialogue_answers_retries_only_to_its_own_number_and_code() {
    let sb = student();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let amina = "+254700000001";
    let s = "ATUid_owned_ended";
    let answers = at.walk(s, "*123#", amina, &["1", "1"]).await;
    assert!(answers[2].starts_with(RESULTS), "{answers:?}");

    let ended = "ussd_session_mismatch_total{front=\"http\",dialogue=\"ended\"}";
    let before = metric(gw.admin_addr, ended).await;
    assert_eq!(at.hop(s, "*123#", "+254700000099", "1*1").await, APOLOGY);
    assert_eq!(at.hop(s, "*675#", amina, "1*1").await, APOLOGY);
    // A first hop under the ended session id from another number starts nothing either.
    assert_eq!(at.hop(s, "*123#", "+254700000099", "").await, APOLOGY);
    assert_eq!(metric(gw.admin_addr, ended).await - before, 3.0);
    // Amina's own retry still gets her last screen.
    assert!(at.hop(s, "*123#", amina, "1*1").await.starts_with(RESULTS));
    gw.shutdown().await;
}
