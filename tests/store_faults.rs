//! A store that refuses writes (fault injection, since filling a real disk is not possible
//! here): every hop that needs a write ends with an apology, the failures are counted, nothing
//! half-written is confirmed, and the gateway serves normally once writes work again.

mod common;

use common::{At, Sandbox};

const CODE: &str = "*384*303#";
const AMINA: &str = "+254700000001";

fn balance(store: &ussd_gateway::store::Store) -> i64 {
    store
        .records()
        .get("wallets", "254700000001")
        .unwrap()
        .unwrap()["balance_cents"]
        .as_i64()
        .unwrap()
}

/// The value of a counter line of `/metrics`, 0 when absent.
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_refuses_writes_apologises_counts_and_confirms_nothing() {
    let sb = Sandbox::with_repo_flows(
        "[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n",
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let store = gw.registry().core().store.clone();
    let apology = format!("END {}", gw.registry().core().settings.apology_text);
    let scrape = || async {
        At::new(gw.admin_addr)
            .request("GET", "/metrics", &[], String::new())
            .await
            .body
    };
    let before = balance(&store);
    let journal = store.journal().unwrap().len();

    // Up to the confirmation while the disk works.
    let answers = at.walk("dep", CODE, AMINA, &["2", "100"]).await;
    assert_eq!(
        answers[2],
        "CON Deposit KES 100.00 to your Wallet\n1. Confirm\n2. Cancel"
    );
    let errors = scrape().await;

    store.fail_writes(true);
    // The confirmation: the transaction cannot be written, the flow's own apology.
    assert_eq!(
        at.hop("dep", CODE, AMINA, "2*100*1").await,
        "END Sorry, something went wrong. Please try again later."
    );
    // A new dialogue: its state cannot be written, the gateway's apology.
    assert_eq!(at.hop("new", CODE, "+254700000003", "").await, apology);
    let after = scrape().await;
    for op in ["transact", "session"] {
        let series = format!("ussd_store_errors_total{{op=\"{op}\"}}");
        assert!(
            counter(&after, &series) > counter(&errors, &series),
            "{series} counted"
        );
    }

    // Nothing of the refused deposit is anywhere.
    store.fail_writes(false);
    assert_eq!(balance(&store), before);
    assert_eq!(store.journal().unwrap().len(), journal);

    // Writes work again: the subscriber dials again and the deposit goes through, once.
    let again = at.walk("dep-2", CODE, AMINA, &["2", "100", "1"]).await;
    assert!(
        again[3].starts_with("END Simulated deposit: KES 100.00"),
        "{}",
        again[3]
    );
    assert_eq!(balance(&store), before + 10_000);
    assert_eq!(store.journal().unwrap().len(), journal + 1);
    gw.shutdown().await;
}
