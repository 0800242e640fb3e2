//! Retention and export: records with personal data expire after their periods (the journal
//! never does), and can be exported first as JSON lines or CSV, over the admin listener while
//! the gateway runs and with `ussd-gateway export` when it is stopped.

mod common;

use common::{At, Sandbox};
use ussd_gateway::retention::{self, RetentionConfig};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

fn sandbox() -> Sandbox {
    Sandbox::with_repo_flows("[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_records_expire_and_the_journal_stays() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    // A deposit (journal + idempotency key), a balance SMS (outbox, not sent: no AT account).
    for (s, inputs) in [("r1", vec!["2", "10", "1"]), ("r2", vec!["7"])] {
        at.hop(s, "*384*303#", "+254700000001", "").await;
        let mut text = String::new();
        for i in inputs {
            if !text.is_empty() {
                text.push('*');
            }
            text.push_str(i);
            at.hop(s, "*384*303#", "+254700000001", &text).await;
        }
    }
    let store = gw.registry().core().store.clone();
    assert!(
        common::eventually(10, || {
            let store = store.clone();
            async move {
                ussd_gateway::outbox::list(&store)
                    .unwrap()
                    .iter()
                    .all(|i| i.finished_ms.is_some())
            }
        })
        .await
    );
    let now = ussd_gateway::clock::now_ms();
    let policy = RetentionConfig::default();
    // Nothing is old yet.
    assert_eq!(
        retention::purge(&store, &policy, now).unwrap(),
        Default::default()
    );
    // Eight days on: idempotency keys go, the rest stays.
    let p = retention::purge(&store, &policy, now + 8 * DAY_MS).unwrap();
    assert_eq!((p.idempotency, p.end_records, p.outbox), (2, 0, 0));
    // Ninety-one days on: end records and finished outbox items go; the journal stays.
    let p = retention::purge(&store, &policy, now + 91 * DAY_MS).unwrap();
    assert_eq!((p.end_records, p.outbox), (2, 1));
    assert_eq!(store.ended_count(), 0);
    assert_eq!(store.journal().unwrap().len(), 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_over_admin_and_from_the_command_line() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    at.hop("e1", "*384*303#", "+254700000001", "").await;
    at.hop("e1", "*384*303#", "+254700000001", "2").await;
    at.hop("e1", "*384*303#", "+254700000001", "2*25").await;
    at.hop("e1", "*384*303#", "+254700000001", "2*25*1").await;
    let admin = At::new(gw.admin_addr);
    let auth = [("authorization", "Bearer test-token")];
    let a = admin
        .request("GET", "/admin/export/ended?format=csv", &auth, "")
        .await;
    assert_eq!(a.status, 200);
    assert!(a.content_type.starts_with("text/csv"));
    let mut reader = csv::Reader::from_reader(a.body.as_bytes());
    let header = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let field = |name: &str| row[header.iter().position(|h| h == name).unwrap()].to_string();
    assert_eq!(field("session"), "http:e1");
    assert_eq!(field("msisdn"), "254700000001");
    assert_eq!(field("service_code"), "*384*303#");
    assert_eq!(field("reason"), "end");
    let a = admin
        .request("GET", "/admin/export/journal", &auth, "")
        .await;
    let entry: serde_json::Value = serde_json::from_str(a.body.lines().next().unwrap()).unwrap();
    assert_eq!(entry["type"], "deposit");
    assert_eq!(entry["amount_cents"], 2500);
    assert_eq!(
        admin
            .request("GET", "/admin/export/secrets", &auth, "")
            .await
            .status,
        404
    );
    assert_eq!(
        admin
            .request("GET", "/admin/export/ended", &[], "")
            .await
            .status,
        401
    );
    gw.shutdown().await;

    // With the gateway stopped, the command line reads the same store.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(["export", "journal", "--format", "csv", "--config"])
        .arg(sb.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.lines().nth(1).unwrap().ends_with(",deposit"), "{csv}");
}
