//! Cluster mode with records and the ledger shared in Redis (docs/cluster.md): the
//! microfinance and dental apps on three gateway processes, each hop sent to the next node in
//! turn, as an aggregator with no stickiness does; a confirmation sent to two nodes at once is
//! applied once; two subscribers confirming one slot on two nodes: one gets it.

mod common;

use common::redis::{Redis, RedisCluster};
use common::{At, ChildGateway, Sandbox};
use std::time::Duration;
use ussd_gateway::store::redis::{Redis as Client, RedisSettings};
use ussd_gateway::store::shared_records::SharedRecords;

const ROUTES: &str = "[clock]\nfixed = \"2026-01-05T08:00:00+10:00\"\n[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n[[routes]]\nservice_code = \"*675#\"\nflow = \"dental\"\n";
const MICRO: &str = "*384*303#";
const DENTAL: &str = "*675#";
const AMINA: &str = "+254700000001";
const APOLOGY: &str = "END Sorry, the service is unavailable right now. Please try again later.";

/// `n` nodes on the Redis at `urls`.
fn nodes(n: usize, urls: &[String], cluster: bool) -> Vec<(Sandbox, ChildGateway)> {
    (0..n).map(|_| node(urls, cluster, |_| ())).collect()
}

/// One node on the Redis at `urls`; `prepare` may change its sandbox first.
fn node(urls: &[String], cluster: bool, prepare: impl Fn(&Sandbox)) -> (Sandbox, ChildGateway) {
    let sb = Sandbox::cluster_node(urls, cluster, ROUTES);
    prepare(&sb);
    let gw = sb.spawn();
    (sb, gw)
}

async fn records(urls: Vec<String>, cluster: bool) -> SharedRecords {
    let redis = Client::connect(&RedisSettings {
        urls,
        cluster,
        timeout: Duration::from_secs(2),
        sentinel_master: None,
        credentials: Default::default(),
    })
    .await
    .unwrap();
    SharedRecords::new(redis, 0, Duration::from_secs(3600))
}

/// Sends each hop of a walk to the next node in turn, from `turn`; returns the answers.
async fn spread(
    ats: &[At],
    turn: usize,
    session: &str,
    code: &str,
    phone: &str,
    inputs: &[&str],
) -> Vec<String> {
    let mut answers = Vec::new();
    for hop in 0..=inputs.len() {
        let text = inputs[..hop].join("*");
        let at = &ats[(turn + hop) % ats.len()];
        answers.push(at.hop(session, code, phone, &text).await);
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_spread_over_three_nodes_are_applied_once_each() {
    let primary = Redis::standalone();
    let cluster = RedisCluster::start();
    for (urls, is_cluster) in [(vec![primary.url()], false), (cluster.urls(), true)] {
        let nodes = nodes(3, &urls, is_cluster);
        let ats: Vec<At> = nodes.iter().map(|(_, gw)| At::new(gw.public)).collect();
        let answers = spread(&ats, 0, "dep", MICRO, AMINA, &["2", "100.50", "1"]).await;
        assert_eq!(
            answers[3],
            "END Simulated deposit: KES 100.50 added to your Wallet (no M-Pesa checkout is sent in this sample). Balance: KES 2,600.50",
            "cluster={is_cluster}: {answers:?}"
        );
        // The confirmation of another deposit reaches two nodes at once (the aggregator
        // retried on another): one answer, one deposit.
        spread(&ats, 1, "twice", MICRO, AMINA, &["2", "50"]).await;
        let (a, b) = tokio::join!(
            ats[0].hop("twice", MICRO, AMINA, "2*50*1"),
            ats[2].hop("twice", MICRO, AMINA, "2*50*1"),
        );
        assert_eq!(a, b, "cluster={is_cluster}: both nodes give the one answer");
        assert!(
            a.ends_with("Balance: KES 2,650.50"),
            "cluster={is_cluster}: {a}"
        );
        // Every node reads the one balance: a withdrawal on the third.
        let out = spread(&ats, 2, "out", MICRO, AMINA, &["3", "650.50", "1"]).await;
        assert!(
            out[3].ends_with("Balance: KES 2,000.00"),
            "cluster={is_cluster}: {out:?}"
        );
        let store = records(urls.clone(), is_cluster).await;
        let journal = store.journal().await.unwrap();
        let amounts: Vec<i64> = journal.iter().map(|e| e.amount_cents).collect();
        assert_eq!(
            amounts,
            [10_050, 5_000, 65_050],
            "cluster={is_cluster}: each once, in order"
        );
        let wallet = store.get("wallets", "254700000001").await.unwrap().unwrap();
        assert_eq!(wallet["balance_cents"], 200_000, "cluster={is_cluster}");
    }
    // Each dialogue's end record lists the transaction it applied, whichever node ended it.
    let store = records(vec![primary.url()], false).await;
    let journal = store.journal().await.unwrap();
    for (session, entry) in [("dep", 0), ("twice", 1), ("out", 2)] {
        let pattern = format!("ussd:*:end:*{session}:*");
        let keys: Vec<String> = store
            .redis()
            .query(redis::cmd("KEYS").arg(&pattern))
            .await
            .unwrap();
        assert_eq!(keys.len(), 1, "{session}: one end record");
        let raw: String = store
            .redis()
            .query(redis::cmd("GET").arg(&keys[0]))
            .await
            .unwrap();
        let record: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let txn = journal[entry].txn.to_string();
        assert_eq!(
            record["transactions"],
            serde_json::json!([txn]),
            "{session}: {record}"
        );
    }
    // Any node's admin listener reads the cluster's: the journal, end records, journeys; here
    // a fresh node's, which answered none of these dialogues.
    let (fresh_sb, fresh) = node(&[primary.url()], false, |_| ());
    let admin = At::new(fresh.admin);
    let get = |path: &'static str| {
        let admin = admin.clone();
        async move {
            let a = admin
                .request("GET", path, &[("authorization", "Bearer test-token")], "")
                .await;
            assert_eq!(a.status, 200, "{path}: {a:?}");
            a.body
        }
    };
    let journal = get("/admin/export/journal").await;
    assert_eq!(journal.lines().count(), 3, "{journal}");
    let ended = get("/admin/export/ended").await;
    let sessions: Vec<String> = ended
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["session"].to_string())
        .collect();
    for session in ["dep", "twice", "out"] {
        assert!(
            sessions.iter().any(|s| s.contains(session)),
            "{session}: {ended}"
        );
    }
    let status = common::status(fresh.admin).await;
    assert_eq!(status["dialogues_ended"], sessions.len(), "{status}");
    assert_eq!(
        status["dialogues_persisted"], 0,
        "every dialogue ended: {status}"
    );
    // A dialogue left waiting is counted from the cluster's Redis (no node keeps one in sled).
    let home = At::new(fresh.public).hop("left", MICRO, AMINA, "").await;
    assert!(
        home.starts_with("CON Welcome to Nerd Microfinance"),
        "{home}"
    );
    let status = common::status(fresh.admin).await;
    assert_eq!(status["dialogues_persisted"], 1, "{status}");
    let journeys: serde_json::Value =
        serde_json::from_str(&get("/admin/journeys?route=*384*303%23").await).unwrap();
    assert_eq!(journeys["dialogues"], 3, "{journeys}");
    // So does the `export` command, beside a running node (whose own store it never opens).
    for (what, lines) in [("journal", 3), ("ended", sessions.len())] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
            .args(["export", what, "--config"])
            .arg(fresh_sb.config_path())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {said}");
        assert!(said.contains("the cluster's, from Redis"), "{what}: {said}");
        let exported = String::from_utf8_lossy(&out.stdout);
        assert_eq!(exported.lines().count(), lines, "{what}: {exported}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slot_confirmed_on_two_nodes_at_once_is_booked_once() {
    let primary = Redis::standalone();
    let nodes = nodes(3, &[primary.url()], false);
    let ats: Vec<At> = nodes.iter().map(|(_, gw)| At::new(gw.public)).collect();
    let (john, mary) = ("+254700000001", "+254700000002");
    for (turn, (session, phone)) in [("j", john), ("m", mary)].into_iter().enumerate() {
        let screens = spread(&ats, turn, session, DENTAL, phone, &["2", "3", "1"]).await;
        assert_eq!(
            screens[3],
            "CON Book Filling at Gerehu Dental Clinic, 06/01/2026, 2 PM?\n1. Confirm\n2. Cancel"
        );
    }
    let (a, b) = tokio::join!(
        ats[0].hop("j", DENTAL, john, "2*3*1*1"),
        ats[1].hop("m", DENTAL, mary, "2*3*1*1")
    );
    let confirmed = "CON Appointment confirmed! You'll get an SMS reminder.\n1. Back to Main Menu";
    let gone = "CON Sorry, that slot was just taken.\nAvailable Filling Slots:\n1. Gerehu Dental Clinic (07/01/2026, 2 PM)\n2. Gerehu Dental Clinic (08/01/2026, 2 PM)\n98. More";
    let mut answers = [a, b];
    answers.sort();
    assert_eq!(answers, [confirmed.to_string(), gone.to_string()]);
    // John's appointments, asked on the third node, list the booking if he got it.
    let store = records(vec![primary.url()], false).await;
    let slot = store
        .get("slots", "gerehu-2026-01-06-14")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slot["status"], "booked");
}

/// A rolling upgrade: a dialogue that started on one version of a flow is never run on
/// another. Its hop on a node of the other version ends it with the apology, counted there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialogue_is_never_run_on_another_version_of_its_flow() {
    let primary = Redis::standalone();
    let urls = [primary.url()];
    let old = node(&urls, false, |_| ());
    let new = node(&urls, false, |sb| {
        let path = sb
            .config_path()
            .with_file_name("flows")
            .join("microfinance.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}\n# the next release\n")).unwrap();
    });
    let (a, b) = (At::new(old.1.public), At::new(new.1.public));
    let home = a.hop("roll", MICRO, AMINA, "").await;
    assert!(
        home.starts_with("CON Welcome to Nerd Microfinance"),
        "{home}"
    );
    let cut = b.hop("roll", MICRO, AMINA, "2").await;
    assert_eq!(cut, APOLOGY, "ended on the other version");
    assert_eq!(
        common::metric(
            new.1.admin,
            "ussd_flow_version_mismatch_total{route=\"*384*303#\"}"
        )
        .await,
        1.0
    );
    // A dialogue started on the new version runs there from its first hop to its last.
    let walk = spread(&[b.clone(), b], 0, "new", MICRO, AMINA, &["7"]).await;
    assert!(
        walk[0].starts_with("CON Welcome to Nerd Microfinance"),
        "{walk:?}"
    );
    assert_ne!(walk[1], APOLOGY, "{walk:?}");
}

/// `seed` in cluster mode writes the sample data and synthetic subscribers into the cluster's
/// Redis, where every node reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_command_fills_the_clusters_store() {
    let primary = Redis::standalone();
    let sb = Sandbox::cluster_node(&[primary.url()], false, ROUTES);
    let path = sb.config_path();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(["seed", "--config"])
        .arg(&path)
        .args(["--synthetic", "3"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("into the cluster's Redis"), "{said}");
    assert!(
        said.contains("3 synthetic subscribers created (12 records)"),
        "{said}"
    );
    let store = records(vec![primary.url()], false).await;
    let amina = store
        .get("customers", "254700000001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(amina["name"], "Amina Wanjiru");
    let third = store.get("wallets", "254710000002").await.unwrap().unwrap();
    assert_eq!(third["balance_cents"], 100_000_000);
    assert!(store.scan("loans").await.unwrap().len() >= 3);
}
