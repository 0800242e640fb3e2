//! kill -9 of one node of three in the middle of a mixed microfinance load (docs/cluster.md,
//! "What each failure loses"): every dialogue answered before the kill goes on on the other
//! nodes, every confirmed transaction exists exactly once, retried confirmations apply nothing
//! again, and every SMS the transactions wrote reaches the (fake) AT API exactly once.
//!
//! The load runs in rounds: every dialogue sends its next hop at once, each to the next node
//! in turn. Node 0 is killed after the deposits were confirmed (some by it) and before the
//! transfers are, so no SMS is in flight on it when it dies: which SMS a node killed in the
//! middle of a request had sent is not knowable, and `tests/cluster_outbox.rs` shows the
//! items such a node claimed sent by the others.

mod common;
mod outbox_fake;

use common::redis::Redis;
use common::{At, ChildGateway, Sandbox};
use outbox_fake::{FakeAt, SMS, wait_for};
use std::time::Duration;
use ussd_gateway::store::redis::{Redis as Client, RedisSettings};
use ussd_gateway::store::shared_records::SharedRecords;

const CODE: &str = "*384*303#";
/// Dialogues of each kind; each its own synthetic subscriber.
const EACH: usize = 6;

fn node(redis: &Redis, at: &FakeAt, seed: bool) -> (Sandbox, ChildGateway) {
    let sb = Sandbox::cluster_node(
        &[redis.url()],
        false,
        &format!(
            "[africastalking]\nusername = \"sandbox\"\napi_key = \"test-key\"\nmessaging_base_url = \"{}\"\npoll_interval_ms = 50\n[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n",
            at.url()
        ),
    );
    let path = sb.config_path();
    if seed {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
            .args(["seed", "--config"])
            .arg(&path)
            .args(["--synthetic", &(2 * EACH).to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let gw = sb.spawn();
    (sb, gw)
}

/// Synthetic subscriber `i` (`seed --synthetic`), as dialled and as stored.
fn subscriber(i: usize) -> (String, String) {
    let stored = format!("2547{:08}", 10_000_000 + i);
    (format!("+{stored}"), stored)
}

struct Walk {
    session: String,
    phone: String,
    inputs: Vec<String>,
    answers: Vec<String>,
}

impl Walk {
    fn text(&self, hop: usize) -> String {
        self.inputs[..hop].join("*")
    }
}

/// Sends hop `hop` of every walk that has one, at once, walk `w` to node `(w + hop) % 3`, or
/// the next live one; a hop whose node does not answer goes to the next node, as an
/// aggregator's retry would.
async fn round(walks: &mut [Walk], hop: usize, ats: &[At], alive: &[bool]) {
    let sends = walks
        .iter()
        .enumerate()
        .filter(|(_, w)| hop <= w.inputs.len())
        .map(|(i, w)| {
            let text = w.text(hop);
            async move {
                for k in 0..ats.len() {
                    let n = (i + hop + k) % ats.len();
                    if !alive[n] {
                        continue;
                    }
                    let body = form_urlencoded::Serializer::new(String::new())
                        .append_pair("sessionId", &w.session)
                        .append_pair("serviceCode", CODE)
                        .append_pair("phoneNumber", &w.phone)
                        .append_pair("text", &text)
                        .finish();
                    let headers = [("content-type", "application/x-www-form-urlencoded")];
                    if let Some(a) = ats[n].try_request("POST", "/ussd", &headers, body).await {
                        assert_eq!(a.status, 200, "{a:?}");
                        return (i, a.body);
                    }
                }
                panic!("no node answered {} hop {hop}", w.session);
            }
        });
    for (i, answer) in futures_util::future::join_all(sends).await {
        walks[i].answers.push(answer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_no_dialogue_no_transaction_and_no_sms() {
    let redis = Redis::standalone();
    let at = FakeAt::start().await;
    let mut nodes = vec![
        node(&redis, &at, true),
        node(&redis, &at, false),
        node(&redis, &at, false),
    ];
    let ats: Vec<At> = nodes.iter().map(|(_, gw)| At::new(gw.public)).collect();
    let mut walks: Vec<Walk> = (0..2 * EACH)
        .map(|i| {
            let (phone, _) = subscriber(i);
            let inputs: Vec<String> = if i < EACH {
                vec!["2".into(), format!("10.0{}", i + 1), "1".into()]
            } else {
                let cents = i - EACH + 1;
                vec![
                    "4".into(),
                    "0700000002".into(),
                    format!("1.0{cents}"),
                    "1".into(),
                ]
            };
            Walk {
                session: format!("load-{i}"),
                phone,
                inputs,
                answers: Vec::new(),
            }
        })
        .collect();
    let mut alive = vec![true; 3];
    // Rounds 0..=3: the deposits are confirmed (round 3), the transfers wait on "Confirm".
    for hop in 0..=3 {
        round(&mut walks, hop, &ats, &alive).await;
    }
    for w in &walks[..EACH] {
        assert!(
            w.answers[3].starts_with("END Simulated deposit: KES 10.0"),
            "{:?}",
            w.answers
        );
    }
    for w in &walks[EACH..] {
        assert!(w.answers[3].contains("1. Confirm"), "{:?}", w.answers);
    }
    let (_, killed) = nodes.remove(0);
    killed.kill9();
    alive[0] = false;
    // The transfers are confirmed on the other two nodes.
    round(&mut walks, 4, &ats, &alive).await;
    for (i, w) in walks[EACH..].iter().enumerate() {
        assert_eq!(
            w.answers[4],
            format!(
                "END We are sending KES 1.0{} to Brian Otieno shortly.",
                i + 1
            ),
            "{:?}",
            w.answers
        );
    }
    // The aggregator retries every confirmation on a surviving node: the same answers.
    for (i, w) in walks.iter().enumerate() {
        let last = w.inputs.len();
        let again = ats[1 + i % 2]
            .hop(&w.session, CODE, &w.phone, &w.text(last))
            .await;
        assert_eq!(again, w.answers[last], "{}", w.session);
    }

    // Every confirmed transaction exactly once, and the balances they make.
    let client = Client::connect(&RedisSettings {
        urls: vec![redis.url()],
        cluster: false,
        timeout: Duration::from_secs(2),
        sentinel_master: None,
        credentials: Default::default(),
    })
    .await
    .unwrap();
    let store = SharedRecords::new(client, 0, Duration::from_secs(3600));
    let mut amounts: Vec<i64> = store
        .journal()
        .await
        .unwrap()
        .iter()
        .map(|e| e.amount_cents)
        .collect();
    amounts.sort();
    let mut expected: Vec<i64> = (1..=EACH as i64)
        .flat_map(|k| [100 + k, 1_000 + k])
        .collect();
    expected.sort();
    assert_eq!(amounts, expected, "each confirmed transaction once");
    for i in 0..2 * EACH {
        let (_, id) = subscriber(i);
        let wallet = store.get("wallets", &id).await.unwrap().unwrap();
        let k = (i % EACH) as i64 + 1;
        let want = if i < EACH {
            100_000_000 + 1_000 + k
        } else {
            100_000_000 - 100 - k
        };
        assert_eq!(wallet["balance_cents"], want, "{id}");
    }
    let brian = store.get("wallets", "254700000002").await.unwrap().unwrap();
    assert_eq!(
        brian["balance_cents"],
        5_000 + (1..=EACH as i64).map(|k| 100 + k).sum::<i64>()
    );

    // Every transfer's SMS to the payee reached AT exactly once.
    let texts = || -> Vec<String> {
        at.requests_to(SMS)
            .iter()
            .filter_map(|r| r.field("message").map(str::to_string))
            .collect()
    };
    wait_for("every transfer's SMS", || texts().len() >= EACH).await;
    let mut got = texts();
    got.sort();
    let mut want: Vec<String> = (EACH..2 * EACH)
        .map(|i| {
            let (_, id) = subscriber(i);
            let k = i - EACH + 1;
            format!("You have received KES 1.0{k} from ") + &format!("{} (+{id}).", name_of(i))
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// The name `seed --synthetic` gives subscriber `i`.
fn name_of(i: usize) -> String {
    const FIRST: [&str; 8] = [
        "Amani", "Baraka", "Chege", "Dalia", "Eshe", "Faraji", "Gathoni", "Hamisi",
    ];
    const LAST: [&str; 6] = ["Kamau", "Otieno", "Wanjiku", "Mutua", "Achieng", "Njoroge"];
    format!("{} {}", FIRST[i % 8], LAST[(i / 8) % 6])
}
