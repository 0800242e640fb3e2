//! The ledger under random sequences of deposits, withdrawals, transfers, airtime purchases and
//! loan repayments: balances always equal the journal, transfers conserve money, nothing goes
//! negative, and a retried transaction (same idempotency key) is never applied twice.

use proptest::prelude::*;
use std::collections::HashMap;
use ussd_gateway::outbox;
use ussd_gateway::store::Store;
use ussd_gateway::store::records::RecordWrite;
use ussd_gateway::txn::{Address, FieldAddress, TxOp};

const PEOPLE: [&str; 3] = ["254700000001", "254700000002", "254700000003"];

fn wallet(i: usize) -> Address {
    Address {
        collection: "wallets".into(),
        id: PEOPLE[i].into(),
    }
}

#[derive(Debug, Clone)]
enum Step {
    Deposit(usize, i64),
    Withdraw(usize, i64),
    Send(usize, usize, i64),
    Airtime(usize, i64),
    Repay(usize, i64),
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0..PEOPLE.len();
    let amount = 1i64..50_000;
    prop_oneof![
        (who.clone(), amount.clone()).prop_map(|(w, a)| Step::Deposit(w, a)),
        (who.clone(), amount.clone()).prop_map(|(w, a)| Step::Withdraw(w, a)),
        (who.clone(), who.clone(), amount.clone()).prop_map(|(a, b, x)| Step::Send(a, b, x)),
        (who.clone(), amount.clone()).prop_map(|(w, a)| Step::Airtime(w, a)),
        (who, amount).prop_map(|(w, a)| Step::Repay(w, a)),
    ]
}

fn ops(step: &Step) -> Vec<TxOp> {
    let transfer =
        |from: Option<Address>, to: Option<Address>, amount_cents, kind: &str| TxOp::Transfer {
            from,
            to,
            amount_cents,
            kind: kind.into(),
        };
    match *step {
        Step::Deposit(w, a) => vec![transfer(None, Some(wallet(w)), a, "deposit")],
        Step::Withdraw(w, a) => vec![transfer(Some(wallet(w)), None, a, "withdrawal")],
        Step::Send(x, y, a) => vec![transfer(Some(wallet(x)), Some(wallet(y)), a, "transfer")],
        Step::Airtime(w, a) => vec![
            transfer(Some(wallet(w)), None, a, "airtime"),
            TxOp::Outbox {
                effect: outbox::Effect::Airtime {
                    to: PEOPLE[w].into(),
                    currency: "KES".into(),
                    amount_cents: a,
                },
                not_before_ms: None,
                id_into: None,
            },
        ],
        Step::Repay(w, a) => vec![
            transfer(Some(wallet(w)), None, a, "loan_repayment"),
            TxOp::Add {
                record: Address {
                    collection: "loans".into(),
                    id: PEOPLE[w].into(),
                },
                field: "outstanding_cents".into(),
                amount: -a,
                min: Some(0),
                max: None,
            },
        ],
    }
}

fn fresh_store() -> Store {
    let store = Store::temporary().unwrap();
    let mut writes = Vec::new();
    for p in PEOPLE {
        writes.push(RecordWrite {
            collection: "wallets".into(),
            id: p.into(),
            value: serde_json::json!({ "balance_cents": 20_000 }),
            merge: false,
        });
        writes.push(RecordWrite {
            collection: "loans".into(),
            id: p.into(),
            value: serde_json::json!({ "outstanding_cents": 30_000 }),
            merge: false,
        });
    }
    store.records().apply(&writes).unwrap();
    store
}

fn field(store: &Store, collection: &str, id: &str, f: &str) -> i64 {
    store.records().get(collection, id).unwrap().unwrap()[f]
        .as_i64()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn balances_reconcile_with_the_journal(steps in prop::collection::vec(step(), 1..40), retry_every in 1usize..5) {
        let store = fresh_store();
        let mut applied = 0usize;
        let mut outcomes = HashMap::new();
        for (n, s) in steps.iter().enumerate() {
            let key = format!("test#{n}#1");
            let o = store.transact(&key, &ops(s), None).unwrap();
            prop_assert!(!o.replayed);
            if o.failed_op.is_none() {
                applied += 1;
            }
            outcomes.insert(key.clone(), o);
            // Retried hops get the stored outcome and change nothing.
            if n % retry_every == 0 {
                let again = store.transact(&key, &ops(s), None).unwrap();
                prop_assert!(again.replayed);
                prop_assert_eq!(again.failed_op, o.failed_op);
                prop_assert_eq!(again.txn, o.txn);
            }
        }
        let journal = store.journal().unwrap();
        // Every applied transaction left exactly one transfer entry, and failed ones none.
        let txns: std::collections::HashSet<u64> = journal.iter().map(|e| e.txn).collect();
        prop_assert_eq!(txns.len(), applied);
        prop_assert_eq!(journal.len(), applied);
        let mut total = 0i64;
        let mut external = 0i64;
        for (i, p) in PEOPLE.iter().enumerate() {
            let key = wallet(i).key();
            let credits: i64 = journal.iter().filter(|e| e.to.as_deref() == Some(&key)).map(|e| e.amount_cents).sum();
            let debits: i64 = journal.iter().filter(|e| e.from.as_deref() == Some(&key)).map(|e| e.amount_cents).sum();
            let balance = field(&store, "wallets", p, "balance_cents");
            prop_assert!(balance >= 0, "negative balance {balance}");
            prop_assert_eq!(balance, 20_000 + credits - debits, "wallet {} does not reconcile", p);
            total += balance;
            prop_assert!(field(&store, "loans", p, "outstanding_cents") >= 0);
        }
        for e in &journal {
            match (&e.from, &e.to) {
                (None, Some(_)) => external += e.amount_cents,
                (Some(_), None) => external -= e.amount_cents,
                _ => {}
            }
        }
        // Money only enters or leaves through external legs: transfers conserve it.
        prop_assert_eq!(total, 3 * 20_000 + external);
        // One airtime outbox item per applied airtime purchase.
        let airtime_applied = steps.iter().enumerate().filter(|(n, s)| matches!(s, Step::Airtime(..)) && outcomes[&format!("test#{n}#1")].failed_op.is_none()).count();
        let items = store.outbox().unwrap().documents().unwrap().len();
        prop_assert_eq!(items, airtime_applied);
    }
}

/// A repayment larger than the loan fails as a whole: the wallet is not debited either.
#[test]
fn a_failing_op_applies_nothing() {
    let store = fresh_store();
    let o = store
        .transact("k#1#1", &ops(&Step::Repay(0, 40_000)), None)
        .unwrap();
    // The wallet has 200.00: the transfer fails first (op 0).
    assert_eq!(o.failed_op, Some(0));
    let o = store
        .transact("k#2#1", &ops(&Step::Repay(0, 15_000)), None)
        .unwrap();
    assert_eq!(o.failed_op, None);
    let o = store
        .transact("k#3#1", &ops(&Step::Repay(0, 16_000)), None)
        .unwrap();
    // 50.00 left in the wallet: the transfer fails.
    assert_eq!(o.failed_op, Some(0));
    store
        .transact("k#4#1", &ops(&Step::Deposit(0, 100_000)), None)
        .unwrap();
    let o = store
        .transact("k#5#1", &ops(&Step::Repay(0, 16_000)), None)
        .unwrap();
    // The loan has 150.00 left: the bounded add fails (op 1) and the transfer is rolled back.
    assert_eq!(o.failed_op, Some(1));
    assert_eq!(
        field(&store, "wallets", PEOPLE[0], "balance_cents"),
        105_000
    );
    assert_eq!(
        field(&store, "loans", PEOPLE[0], "outstanding_cents"),
        15_000
    );
}

/// A reminder written with a booking keeps its id in the booking; cancelling voids it in the
/// cancellation's own transaction while it is still pending, and leaves an item already sent.
#[test]
fn a_pending_item_is_voided_by_a_later_transaction() {
    let store = fresh_store();
    let booking = Address {
        collection: "bookings".into(),
        id: "b1".into(),
    };
    let reminder = |when| TxOp::Outbox {
        effect: outbox::Effect::Sms {
            to: PEOPLE[0].into(),
            message: "Reminder".into(),
        },
        not_before_ms: Some(when),
        id_into: Some(FieldAddress {
            record: booking.clone(),
            field: "reminder".into(),
        }),
    };
    let put = TxOp::Put {
        record: booking.clone(),
        value: serde_json::json!({ "status": "booked" }),
        merge: false,
    };
    let later = ussd_gateway::clock::now_ms() + 86_400_000;
    store
        .transact("book#1#1", &[put, reminder(later)], None)
        .unwrap();
    let doc = store.records().get("bookings", "b1").unwrap().unwrap();
    assert_eq!(doc["status"], "booked", "{doc}");
    let id = doc["reminder"].as_u64().unwrap();
    assert_eq!(
        outbox::get(&store, id).unwrap().unwrap().status,
        outbox::Status::Pending
    );

    let o = store
        .transact("cancel#1#1", &[TxOp::Void { item: Some(id) }], None)
        .unwrap();
    assert_eq!(o.failed_op, None);
    let item = outbox::get(&store, id).unwrap().unwrap();
    assert_eq!(item.status, outbox::Status::Voided);
    assert!(item.finished_ms.is_some());
    // Nothing to requeue: a voided item is never sent.
    assert!(!outbox::requeue(&store, id).unwrap());

    // An item already sent stays sent; no item, or an unknown one, is not a failure.
    store
        .transact("book#2#1", &[reminder(later)], None)
        .unwrap();
    let sent = store.records().get("bookings", "b1").unwrap().unwrap()["reminder"]
        .as_u64()
        .unwrap();
    store
        .outbox()
        .unwrap()
        .update(sent, |i| {
            i.status = outbox::Status::Sent;
            true
        })
        .unwrap();
    let ops = [
        TxOp::Void { item: Some(sent) },
        TxOp::Void { item: None },
        TxOp::Void {
            item: Some(u64::MAX),
        },
    ];
    assert_eq!(
        store.transact("cancel#2#1", &ops, None).unwrap().failed_op,
        None
    );
    assert_eq!(
        outbox::get(&store, sent).unwrap().unwrap().status,
        outbox::Status::Sent
    );
}
