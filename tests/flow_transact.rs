//! The `transact` screen in the pure engine: how its ops are rendered from the dialogue's
//! variables, and where each outcome leads. No store, no sockets.

use serde_json::json;
use ussd_gateway::flow::{Ctx, Effect, EffectOutcome, Flow, Step, input, resume, start};
use ussd_gateway::outbox;
use ussd_gateway::text::Limit;
use ussd_gateway::txn::{Address, FieldAddress, TxOp};

const FLOW: &str = r#"
start: amount
vars: { country_code: "254" }
screens:
  amount:
    type: input
    text: "Amount?"
    into: amount
    next: cents
    validators:
      - { expr: "(input | to_cents) > 0", error: "More than zero." }
  cents:
    type: set
    values: { amount_cents: "{{ amount | to_cents }}" }
    next: pay
  pay:
    type: transact
    ops:
      - transfer: { from: "wallets/{{ phone }}", to: "wallets/{{ '0700000002' | msisdn(country_code) }}", amount: "{{ amount_cents }}", type: transfer, else: poor }
      - add: { record: "loans/{{ phone }}", field: outstanding_cents, amount: "{{ -amount_cents }}", min: 0, else: too_much }
      - require: { record: "slots/s1", field: status, equals: free }
      - put: { record: "slots/s1", fields: { status: booked, by: "{{ phone }}" } }
      - sms: { to: "{{ phone }}", message: "Paid {{ amount_cents | cents('KES') }}", not_before: "2030-01-01T08:00:00Z", id_into: { record: "slots/s1", field: reminder } }
      - airtime: { to: "{{ phone }}", amount: "{{ amount_cents }}", currency: KES }
      - call: { to: "{{ phone }}" }
      - void: { item: "{{ 40 + 2 }}" }
      - void: { item: "{{ no_such_variable }}" }
    into: receipt
    next: done
    failed: sorry
  done: { type: end, text: "Done, receipt {{ receipt.txn }}" }
  poor: { type: end, text: "Too poor" }
  too_much: { type: end, text: "Too much" }
  sorry: { type: end, text: "Sorry" }
"#;

fn ctx() -> Ctx<'static> {
    Ctx {
        phone: "254700000001",
        service_code: "*1#",
        network: None,
        session_id: "s",
        limit: Limit::default(),
        now: "2026-01-01T00:00:00Z".parse().unwrap(),
    }
}

fn to_transaction(flow: &Flow) -> (ussd_gateway::flow::FlowState, Vec<TxOp>) {
    let ctx = ctx();
    let Step::Reply { state, .. } = start(flow, &ctx) else {
        panic!("first screen is an input")
    };
    match input(flow, state, "12.5", &ctx) {
        Step::Effect {
            state,
            effect: Effect::Transact { ops },
        } => (state, ops),
        other => panic!("expected a transaction, got {other:?}"),
    }
}

fn addr(c: &str, id: &str) -> Address {
    Address {
        collection: c.into(),
        id: id.into(),
    }
}

#[test]
fn ops_are_rendered_from_the_dialogue() {
    let flow = Flow::from_yaml("tx", "tx.yaml", FLOW).unwrap();
    let (_, ops) = to_transaction(&flow);
    assert_eq!(
        ops,
        vec![
            TxOp::Transfer {
                from: Some(addr("wallets", "254700000001")),
                to: Some(addr("wallets", "254700000002")),
                amount_cents: 1250,
                kind: "transfer".into(),
            },
            TxOp::Add {
                record: addr("loans", "254700000001"),
                field: "outstanding_cents".into(),
                amount: -1250,
                min: Some(0),
                max: None,
            },
            TxOp::Require {
                record: addr("slots", "s1"),
                exists: None,
                field: Some(("status".into(), json!("free"))),
            },
            TxOp::Put {
                record: addr("slots", "s1"),
                value: json!({"status": "booked", "by": "254700000001"}),
                merge: true,
            },
            TxOp::Outbox {
                effect: outbox::Effect::Sms {
                    to: "254700000001".into(),
                    message: "Paid KES 12.50".into(),
                },
                not_before_ms: Some(1_893_484_800_000),
                id_into: Some(FieldAddress {
                    record: addr("slots", "s1"),
                    field: "reminder".into(),
                }),
            },
            TxOp::Outbox {
                effect: outbox::Effect::Airtime {
                    to: "254700000001".into(),
                    currency: "KES".into(),
                    amount_cents: 1250,
                },
                not_before_ms: None,
                id_into: None,
            },
            TxOp::Outbox {
                effect: outbox::Effect::Call {
                    to: "254700000001".into(),
                },
                not_before_ms: None,
                id_into: None,
            },
            TxOp::Void { item: Some(42) },
            TxOp::Void { item: None },
        ]
    );
}

#[test]
fn each_outcome_has_its_branch() {
    let flow = Flow::from_yaml("tx", "tx.yaml", FLOW).unwrap();
    let ctx = ctx();
    let end_text = |outcome| {
        let (state, _) = to_transaction(&flow);
        match resume(&flow, state, outcome, &ctx) {
            Step::Reply { reply, .. } => {
                assert!(reply.end);
                reply.text
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        end_text(EffectOutcome::Transacted {
            failed_op: None,
            txn: 42
        }),
        "Done, receipt 42"
    );
    assert_eq!(
        end_text(EffectOutcome::Transacted {
            failed_op: Some(0),
            txn: 42
        }),
        "Too poor"
    );
    assert_eq!(
        end_text(EffectOutcome::Transacted {
            failed_op: Some(1),
            txn: 42
        }),
        "Too much"
    );
    // An op without its own `else` goes to `failed`, as does a store failure.
    assert_eq!(
        end_text(EffectOutcome::Transacted {
            failed_op: Some(2),
            txn: 42
        }),
        "Sorry"
    );
    assert_eq!(end_text(EffectOutcome::Failed("disk".into())), "Sorry");
}

#[test]
fn bad_transactions_are_refused_at_load() {
    let bad = r#"
start: pay
screens:
  pay:
    type: transact
    ops:
      - { transfer: { amount: 1, type: deposit } }
      - { put: { record: "a/b", fields: {} }, call: { to: "1" } }
      - { require: { record: "a/b", field: status } }
      - { transfer: { to: "wallets/x", amount: 1, type: deposit, else: nowhere } }
      - { dialogue: { to: "{{ phone }}", service_code: "384" } }
      - { sms: { to: "{{ phone }}", message: hi, id_into: { record: "bookings/b1", field: "a b" } } }
    next: done
  done: { type: end, text: ok }
"#;
    let errors: Vec<String> = Flow::from_yaml("bad", "bad.yaml", bad)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "error: bad.yaml: screens.pay.ops[0].transfer: a transfer needs `from`, `to` or both",
            "error: bad.yaml: screens.pay.ops[1]: an op has exactly one of transfer, add, require, put, sms, airtime, call, push, dialogue, void",
            "error: bad.yaml: screens.pay.ops[2].require: `field` and `equals` go together",
            "error: bad.yaml: screens.pay.ops[3].transfer.else: unknown target screen `nowhere`",
            "error: bad.yaml: screens.pay.ops[4].dialogue.service_code: a service code looks like *384*303#",
            "error: bad.yaml: screens.pay.ops[5].sms.id_into.field: `a b` is not a valid field name",
        ]
    );
}
