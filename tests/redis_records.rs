//! Cluster mode's shared flow records and ledger (docs/cluster.md, "Records, the ledger and
//! the outbox"), against real Redis servers the test starts: each property holds on a
//! standalone primary and on a Redis Cluster of three primaries. Several handles play
//! several gateway nodes.

mod common;

use common::redis::Server;
use serde_json::{Value, json};
use std::time::Duration;
use ussd_gateway::effect::{Effect, Item, Status};
use ussd_gateway::store::ledger::TxDialogue;
use ussd_gateway::store::records::RecordWrite;
use ussd_gateway::store::shared_records::{
    OUTBOX_ITEMS, OUTBOX_LATER, OUTBOX_READY, SharedRecords,
};
use ussd_gateway::txn::{Address, FieldAddress, TxOp};

/// A new node's handle: a connection of its own.
async fn node(server: &Server) -> SharedRecords {
    SharedRecords::new(server.client().await, 0, Duration::from_secs(3600))
}

fn account(id: &str) -> Address {
    Address {
        collection: "wallets".into(),
        id: id.into(),
    }
}

fn put(collection: &str, id: &str, value: Value, merge: bool) -> RecordWrite {
    RecordWrite {
        collection: collection.into(),
        id: id.into(),
        value,
        merge,
    }
}

fn transfer(from: Option<&str>, to: Option<&str>, cents: i64) -> TxOp {
    TxOp::Transfer {
        from: from.map(account),
        to: to.map(account),
        amount_cents: cents,
        kind: "transfer".into(),
    }
}

async fn balance(node: &SharedRecords, id: &str) -> i64 {
    node.get("wallets", id).await.unwrap().unwrap()["balance_cents"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_saved_on_one_node_are_read_and_merged_on_another() {
    for server in Server::both() {
        let name = server.name();
        let (a, b) = (node(&server).await, node(&server).await);
        a.apply(&[
            put(
                "students",
                "254700000002",
                json!({"name": "Baraka", "form": 3}),
                false,
            ),
            put("students", "254700000001", json!({"name": "Amani"}), false),
        ])
        .await
        .unwrap();
        b.apply(&[put("students", "254700000002", json!({"form": 4}), true)])
            .await
            .unwrap();
        assert_eq!(
            a.get("students", "254700000002").await.unwrap(),
            Some(json!({"name": "Baraka", "form": 4})),
            "{name}: the merge kept the other fields"
        );
        assert_eq!(
            a.get("students", "254700000009").await.unwrap(),
            None,
            "{name}"
        );
        let listed = b.scan("students").await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["254700000001", "254700000002"], "{name}: in id order");
        assert!(b.scan("nobody").await.unwrap().is_empty(), "{name}");
        let bad = a.apply(&[put("bad name", "1", json!({}), false)]).await;
        assert!(bad.is_err(), "{name}: an invalid collection is refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_applies_once_and_a_retry_gets_the_same_outcome() {
    for server in Server::both() {
        let name = server.name();
        let (a, b) = (node(&server).await, node(&server).await);
        a.apply(&[
            put("wallets", "alice", json!({"balance_cents": 1_000}), false),
            put("wallets", "bob", json!({"balance_cents": 0}), false),
        ])
        .await
        .unwrap();
        let dialogue = TxDialogue {
            session: "http:s1",
            started_ms: 1,
            hop: 2,
        };
        let ops = [transfer(Some("alice"), Some("bob"), 400)];
        let first = a
            .transact("http:s1#2#1", &ops, Some(dialogue))
            .await
            .unwrap();
        assert_eq!(first.failed_op, None, "{name}");
        assert!(!first.replayed);
        // The same hop retried on another node: answered from the stored outcome.
        let again = b
            .transact("http:s1#2#1", &ops, Some(dialogue))
            .await
            .unwrap();
        assert!(again.replayed, "{name}");
        assert_eq!(again.txn, first.txn, "{name}");
        assert_eq!(
            (balance(&a, "alice").await, balance(&a, "bob").await),
            (600, 400)
        );
        // Too much: nothing applied, and the failure is stored for the retry too.
        let big = [transfer(Some("alice"), Some("bob"), 601)];
        let refused = b
            .transact("http:s1#3#1", &big, Some(dialogue))
            .await
            .unwrap();
        assert_eq!(refused.failed_op, Some(0), "{name}");
        a.apply(&[put(
            "wallets",
            "alice",
            json!({"balance_cents": 5_000}),
            true,
        )])
        .await
        .unwrap();
        let retried = a
            .transact("http:s1#3#1", &big, Some(dialogue))
            .await
            .unwrap();
        assert_eq!(
            (retried.failed_op, retried.replayed),
            (Some(0), true),
            "{name}"
        );
        assert_eq!(balance(&a, "bob").await, 400, "{name}");
        let journal = a.journal().await.unwrap();
        assert_eq!(
            journal.len(),
            1,
            "{name}: one entry, the transfer applied once"
        );
        assert_eq!(journal[0].amount_cents, 400);
        assert_eq!(journal[0].key, "http:s1#2#1");
        let unfunded = [transfer(Some("alice"), Some("bob"), 0)];
        assert!(a.transact("k0", &unfunded, None).await.is_err(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_racing_on_one_account_never_overdraw_it() {
    for server in Server::both() {
        let name = server.name();
        let nodes = [
            node(&server).await,
            node(&server).await,
            node(&server).await,
        ];
        nodes[0]
            .apply(&[
                put("wallets", "pool", json!({"balance_cents": 1_000}), false),
                put("wallets", "sink", json!({"balance_cents": 0}), false),
            ])
            .await
            .unwrap();
        // Three nodes each try 20 withdrawals of 30 from a pool of 1,000: 33 can succeed.
        let mut tasks = Vec::new();
        for (n, node) in nodes.iter().enumerate() {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                let mut applied = 0;
                for i in 0..20 {
                    let ops = [transfer(Some("pool"), Some("sink"), 30)];
                    let o = node
                        .transact(&format!("race#{n}#{i}"), &ops, None)
                        .await
                        .unwrap();
                    if o.failed_op.is_none() {
                        applied += 1;
                    }
                }
                applied
            }));
        }
        let mut applied = 0;
        for t in tasks {
            applied += t.await.unwrap();
        }
        assert_eq!(applied, 33, "{name}: exactly what the pool allows");
        assert_eq!(balance(&nodes[1], "pool").await, 1_000 - 33 * 30, "{name}");
        assert_eq!(balance(&nodes[2], "sink").await, 33 * 30, "{name}");
        assert_eq!(nodes[0].journal().await.unwrap().len(), 33, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_items_are_written_with_their_transaction_and_voided_by_a_later_one() {
    for server in Server::both() {
        let name = server.name();
        let node = node(&server).await;
        let redis = server.client().await;
        let booking = Address {
            collection: "bookings".into(),
            id: "b1".into(),
        };
        let sms = |m: &str| Effect::Sms {
            to: "254700000001".into(),
            message: m.into(),
        };
        let later = ussd_gateway::clock::now_ms() + 3_600_000;
        let ops = [
            TxOp::Put {
                record: booking.clone(),
                value: json!({"slot": "Mon 09:00"}),
                merge: false,
            },
            TxOp::Outbox {
                effect: sms("Booked"),
                not_before_ms: None,
                id_into: None,
            },
            TxOp::Outbox {
                effect: sms("Reminder"),
                not_before_ms: Some(later),
                id_into: Some(FieldAddress {
                    record: booking.clone(),
                    field: "reminder".into(),
                }),
            },
        ];
        let o = node.transact("book#1#1", &ops, None).await.unwrap();
        assert_eq!(o.failed_op, None, "{name}");
        let doc = node.get("bookings", "b1").await.unwrap().unwrap();
        let reminder = doc["reminder"].as_u64().expect("the reminder's id is kept");
        let item = |id: u64| {
            let redis = redis.clone();
            async move {
                let raw: Option<String> = redis
                    .query(redis::cmd("HGET").arg(OUTBOX_ITEMS).arg(id))
                    .await
                    .unwrap();
                serde_json::from_str::<Item>(&raw.expect("the item is stored")).unwrap()
            }
        };
        assert_eq!(item(reminder).await.status, Status::Pending, "{name}");
        let ready: usize = redis
            .query(redis::cmd("XLEN").arg(OUTBOX_READY))
            .await
            .unwrap();
        assert_eq!(ready, 1, "{name}: the confirmation is ready to send");
        let score: Option<u64> = redis
            .query(redis::cmd("ZSCORE").arg(OUTBOX_LATER).arg(reminder))
            .await
            .unwrap();
        assert_eq!(
            score,
            Some(later),
            "{name}: the reminder waits for its time"
        );
        // A later transaction cancels the booking and voids the reminder.
        let cancel = [
            TxOp::Put {
                record: booking.clone(),
                value: json!({"cancelled": true}),
                merge: true,
            },
            TxOp::Void {
                item: Some(reminder),
            },
        ];
        node.transact("cancel#1#1", &cancel, None).await.unwrap();
        assert_eq!(item(reminder).await.status, Status::Voided, "{name}");
        let ready: usize = redis
            .query(redis::cmd("XLEN").arg(OUTBOX_READY))
            .await
            .unwrap();
        assert_eq!(ready, 1, "{name}: voiding queues nothing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_records_are_seeded_once_and_never_replace_a_flow_write() {
    for server in Server::both() {
        let name = server.name();
        let (a, b) = (node(&server).await, node(&server).await);
        let seed = [
            put("wallets", "alice", json!({"balance_cents": 100}), false),
            put("wallets", "bob", json!({"balance_cents": 200}), false),
        ];
        // A flow wrote alice before any seeding (or between two nodes' starts).
        a.apply(&[put("wallets", "alice", json!({"balance_cents": 7}), false)])
            .await
            .unwrap();
        assert_eq!(
            a.seed_once(&seed).await.unwrap(),
            Some(1),
            "{name}: bob only"
        );
        assert_eq!(
            b.seed_once(&seed).await.unwrap(),
            None,
            "{name}: seeded already"
        );
        assert_eq!(balance(&b, "alice").await, 7, "{name}");
        assert_eq!(balance(&b, "bob").await, 200, "{name}");
        assert_eq!(b.scan("wallets").await.unwrap().len(), 2, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_records_and_resume_points_are_the_clusters() {
    use ussd_gateway::store::Store;
    for server in Server::both() {
        let name = server.name();
        // Two nodes, each with its own sled store, sharing the cluster's Redis.
        let a = Store::temporary()
            .unwrap()
            .share_records(node(&server).await);
        let b = Store::temporary()
            .unwrap()
            .share_records(node(&server).await);
        // AT posts the final callback of one call twice, to two nodes.
        let call = json!({"session_id": "ATVId_1", "duration_seconds": 42});
        assert!(a.store_call_once("ATVId_1", &call).await.unwrap(), "{name}");
        assert!(
            !b.store_call_once("ATVId_1", &call).await.unwrap(),
            "{name}: once"
        );
        let other = json!({"session_id": "ATVId_2", "duration_seconds": 5});
        assert!(
            b.store_call_once("ATVId_2", &other).await.unwrap(),
            "{name}"
        );
        let listed: Vec<Value> = a.call_records().await.unwrap();
        assert_eq!(
            listed,
            [call.clone(), other],
            "{name}: oldest first, on any node"
        );

        // A resume point saved on one node is found on another until it expires.
        let (pa, pb) = (a.resume_points().unwrap(), b.resume_points().unwrap());
        let until = ussd_gateway::clock::now_ms() + 60_000;
        pa.put("254700000001|*1#", &json!({"screen": "amount"}), until)
            .await
            .unwrap();
        let found: Option<Value> = pb.get("254700000001|*1#").await.unwrap();
        assert_eq!(found, Some(json!({"screen": "amount"})), "{name}");
        pb.remove("254700000001|*1#").await.unwrap();
        let gone: Option<Value> = pa.get("254700000001|*1#").await.unwrap();
        assert_eq!(gone, None, "{name}");
        // One already past its time is not kept at all.
        pa.put(
            "254700000002|*1#",
            &json!({}),
            ussd_gateway::clock::now_ms() - 1,
        )
        .await
        .unwrap();
        let past: Option<Value> = pb.get("254700000002|*1#").await.unwrap();
        assert_eq!(past, None, "{name}");
    }
}
