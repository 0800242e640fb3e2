//! End records of dialogues that applied transactions (issue 19): every end record lists the
//! transactions its dialogue applied, also when a crash lost the dialogue's state after the hop
//! that applied one and the start-up sweep ends it later from the state before that hop.

mod common;

use common::{At, Sandbox, eventually};
use serde_json::{Value, json};
use std::net::SocketAddr;
use ussd_gateway::store::Store;

const CODE: &str = "*384*303#";
const AMINA: &str = "+254700000001";
const CONFIRM: &str = "CON Deposit KES 70.00 to your Wallet\n1. Confirm\n2. Cancel";

/// The repository's microfinance flow, its dialogues timing out after 2 s of silence.
fn sandbox() -> Sandbox {
    Sandbox::with_repo_flows(
        "[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\nidle_timeout_secs = 2\n",
    )
}

/// `GET /admin/export/<what>[?format=csv]`'s body.
async fn export(admin: SocketAddr, what: &str) -> String {
    let a = At::new(admin)
        .request(
            "GET",
            &format!("/admin/export/{what}"),
            &[("authorization", "Bearer test-token")],
            "",
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body
}

fn json_lines(body: &str) -> Vec<Value> {
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The end records of `session` in `/admin/export/ended`.
async fn ended(admin: SocketAddr, session: &str) -> Vec<Value> {
    json_lines(&export(admin, "ended").await)
        .into_iter()
        .filter(|r| r["session"] == session)
        .collect()
}

/// The ids of the journal's transactions, as `/admin/export/journal` shows them.
async fn journal_txns(admin: SocketAddr) -> Vec<String> {
    json_lines(&export(admin, "journal").await)
        .iter()
        .map(|e| e["txn"].as_u64().expect("a transaction id").to_string())
        .collect()
}

/// The sled tree of the transactions applied by dialogues still waiting for their end record.
fn applied_left(store: &Store) -> usize {
    store.applied_count().unwrap()
}

/// A deposit confirmed, its success END received, then kill -9 before the write-behind commit
/// reaches the disk: the state on disk is the one before the confirmation. Nobody retries; after
/// the restart the sweep ends the dialogue as timed out, and its end record lists the deposit,
/// marked as applied on a hop whose state was not persisted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_deposit_cut_by_a_crash_is_in_the_end_record_the_sweep_writes() {
    // `flush_every_ms` is capped at 1000 (the window a crash may lose), so a commit can still
    // flush the END between the reply and the kill (about one chance in a few hundred): the
    // crash case is checked on disk before the restart, and the deposit is made again on a
    // fresh store when a flush came first. Never asserted on a state that is not the crash's.
    let mut crashed = None;
    for attempt in 1..=5 {
        let sb = sandbox();
        let toml = std::fs::read_to_string(sb.config_path()).unwrap();
        let toml = toml.replace("flush_every_ms = 50", "flush_every_ms = 1000");
        std::fs::write(sb.config_path(), toml).unwrap();
        let gw = sb.spawn();
        let at = At::new(gw.public);
        let answers = at.walk("crash", CODE, AMINA, &["2", "70", "1"]).await;
        assert_eq!(answers[2], CONFIRM);
        assert!(
            answers[3].starts_with("END Simulated deposit: KES 70.00"),
            "{answers:?}"
        );
        gw.kill9();
        let data_dir = sb.config().store.data_dir;
        let store = Store::open(&data_dir, 8, 1000).unwrap();
        let journal = store.journal().unwrap();
        assert_eq!(journal.len(), 1, "the deposit is durable: {journal:?}");
        let live: Option<Value> = store.live("http:crash").unwrap();
        let cut = store.ended_count() == 0;
        drop(store);
        if cut {
            let live = live.expect("the state before the confirmation is on disk");
            assert_eq!(live["hops"], 3, "{live}");
            assert_eq!(live["seen_text"], "2*70", "{live}");
            crashed = Some(sb);
            break;
        }
        eprintln!("attempt {attempt}: a flush reached the disk before the kill; again");
    }
    let sb = crashed.expect("a kill -9 before the flush of the END in five attempts");

    // No retry comes: the sweep ends the dialogue once its 2 s have passed.
    let gw = sb.spawn();
    let admin = gw.admin;
    assert!(
        eventually(20, || async move {
            !ended(admin, "http:crash").await.is_empty()
        })
        .await,
        "the sweep wrote the end record"
    );
    let txns = journal_txns(admin).await;
    assert_eq!(txns.len(), 1, "{txns:?}");
    let records = ended(admin, "http:crash").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    // What the persisted state says: the confirmation screen, three hops...
    assert_eq!(r["reason"], "idle_timeout", "{r}");
    assert_eq!(r["hops"], 3, "{r}");
    assert_eq!(r["input"], "2*70", "{r}");
    assert_eq!(r["last_reply"], &CONFIRM[4..], "{r}");
    // ...and what was applied after it, honestly marked.
    assert_eq!(r["transactions"], json!(txns), "{r}");
    assert_eq!(
        r["unpersisted_hop"],
        json!({"hop": 4, "transactions": txns}),
        "{r}"
    );

    let csv = export(admin, "ended?format=csv").await;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert!(header.contains(&"transactions"), "{csv}");
    assert!(header.contains(&"unpersisted_hop"), "{csv}");
    assert!(csv.contains(&txns[0]), "{csv}");

    assert!(gw.signal("TERM").success());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(["export", "ended", "--config"])
        .arg(sb.config_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let exported = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(exported, records, "the CLI exports the same record");

    let store = Store::open(&sb.config().store.data_dir, 8, 1000).unwrap();
    assert_eq!(
        applied_left(&store),
        0,
        "forgotten once the end record was written"
    );
}

/// A deposit with no crash: its end record lists the transaction and marks nothing; a dialogue
/// that applied none lists none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_s_end_record_lists_its_transaction() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let answers = at.walk("dep", CODE, AMINA, &["2", "70", "1"]).await;
    assert!(
        answers[3].starts_with("END Simulated deposit"),
        "{answers:?}"
    );
    let cancel = at.walk("cancel", CODE, AMINA, &["2", "5", "2"]).await;
    assert!(cancel[3].starts_with("END "), "{cancel:?}");

    let txns = journal_txns(gw.admin_addr).await;
    assert_eq!(txns.len(), 1, "{txns:?}");
    let r = &ended(gw.admin_addr, "http:dep").await[0];
    assert_eq!(r["reason"], "end", "{r}");
    assert_eq!(r["hops"], 4, "{r}");
    assert_eq!(r["transactions"], json!(txns), "{r}");
    assert!(r.get("unpersisted_hop").is_none(), "{r}");
    let r = &ended(gw.admin_addr, "http:cancel").await[0];
    assert!(r.get("transactions").is_none(), "{r}");
    assert_eq!(applied_left(&gw.registry().core().store), 0);
    gw.shutdown().await;
}

/// kill -9 right after the confirmation, then the aggregator retries it: whether the retry is
/// answered from the END's tombstone (a flush came before the kill) or by the dialogue resumed
/// from the state before the confirmation (the transaction is not applied again), the end record
/// lists the deposit, with nothing marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_confirmation_after_a_crash_lists_the_transaction_once() {
    let sb = sandbox();
    let gw = sb.spawn();
    let at = At::new(gw.public);
    let answers = at.walk("retry", CODE, AMINA, &["2", "70", "1"]).await;
    gw.kill9();
    let gw = sb.spawn();
    let at = At::new(gw.public);
    assert_eq!(at.hop("retry", CODE, AMINA, "2*70*1").await, answers[3]);
    let admin = gw.admin;
    let txns = journal_txns(admin).await;
    assert_eq!(txns.len(), 1, "{txns:?}");
    let records = ended(admin, "http:retry").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["reason"], "end", "{r}");
    assert_eq!(r["hops"], 4, "{r}");
    assert_eq!(r["transactions"], json!(txns), "{r}");
    assert!(r.get("unpersisted_hop").is_none(), "{r}");
    assert!(gw.signal("TERM").success());
}
