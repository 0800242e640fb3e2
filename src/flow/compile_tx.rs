//! Compiling `transact` screens: ledger transfers, bounded counters, conditions, record writes
//! and outbox effects, applied by the store in one sled transaction.

use super::check::Checker;
use super::model::{ListSpec, OpSpec, TransactSpec};
use super::screen::{List, Op, Screen, Transact, WriteTpl};
use super::template::{Tpl, ValueTpl};
use serde_json::Value;

impl Checker<'_> {
    fn tpl(&mut self, screen: &str, field: &str, src: &str) -> Tpl {
        let t = self.templates.text(src);
        self.compiled(Some(screen), field, t)
    }

    fn value_tpl(&mut self, screen: &str, field: &str, v: &Value) -> ValueTpl {
        let t = self.templates.value(v);
        self.compiled(Some(screen), field, t)
    }

    fn field_name(&mut self, screen: &str, field: &str, name: &str) -> String {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            self.error(
                Some(screen),
                Some(field.into()),
                format!("`{name}` is not a valid field name"),
            );
        }
        name.to_string()
    }

    fn otherwise(&mut self, screen: &str, field: &str, target: &Option<String>) -> Option<String> {
        target.as_ref().map(|t| self.target(screen, field, t))
    }

    pub(crate) fn list(&mut self, screen: &str, spec: ListSpec) -> Screen {
        if !crate::txn::valid_collection(&spec.collection) {
            self.error(
                Some(screen),
                Some("collection".into()),
                "a collection name is letters, digits, `_` and `-`",
            );
        }
        Screen::List(List {
            collection: spec.collection,
            into: self.variable(screen, "into", &spec.into),
            next: self.target(screen, "next", &spec.next),
        })
    }

    pub(crate) fn transact(&mut self, screen: &str, spec: TransactSpec) -> Screen {
        if spec.ops.is_empty() {
            self.error(
                Some(screen),
                Some("ops".into()),
                "a transaction needs at least one op",
            );
        }
        let mut ops = Vec::with_capacity(spec.ops.len());
        for (i, op) in spec.ops.iter().enumerate() {
            let at = |f: &str| format!("ops[{i}].{f}");
            let set = [
                op.transfer.is_some(),
                op.add.is_some(),
                op.require.is_some(),
                op.put.is_some(),
                op.sms.is_some(),
                op.airtime.is_some(),
                op.call.is_some(),
                op.push.is_some(),
                op.dialogue.is_some(),
            ];
            if set.iter().filter(|s| **s).count() != 1 {
                self.error(
                    Some(screen),
                    Some(format!("ops[{i}]")),
                    "an op has exactly one of transfer, add, require, put, sms, airtime, call, push, dialogue",
                );
                continue;
            }
            let compiled = match op {
                OpSpec {
                    transfer: Some(t), ..
                } => {
                    if t.from.is_none() && t.to.is_none() {
                        self.error(
                            Some(screen),
                            Some(format!("ops[{i}].transfer")),
                            "a transfer needs `from`, `to` or both",
                        );
                    }
                    Op::Transfer {
                        from: t
                            .from
                            .as_ref()
                            .map(|f| self.record(screen, &at("transfer.from"), f)),
                        to: t
                            .to
                            .as_ref()
                            .map(|f| self.record(screen, &at("transfer.to"), f)),
                        amount: self.value_tpl(screen, &at("transfer.amount"), &t.amount),
                        kind: self.field_name(screen, &at("transfer.type"), &t.kind),
                        otherwise: self.otherwise(screen, &at("transfer.else"), &t.otherwise),
                    }
                }
                OpSpec { add: Some(a), .. } => Op::Add {
                    record: self.record(screen, &at("add.record"), &a.record),
                    field: self.field_name(screen, &at("add.field"), &a.field),
                    amount: self.value_tpl(screen, &at("add.amount"), &a.amount),
                    min: a
                        .min
                        .as_ref()
                        .map(|v| self.value_tpl(screen, &at("add.min"), v)),
                    max: a
                        .max
                        .as_ref()
                        .map(|v| self.value_tpl(screen, &at("add.max"), v)),
                    otherwise: self.otherwise(screen, &at("add.else"), &a.otherwise),
                },
                OpSpec {
                    require: Some(r), ..
                } => {
                    if r.exists.is_none() && r.field.is_none() {
                        self.error(
                            Some(screen),
                            Some(format!("ops[{i}].require")),
                            "a condition needs `exists` or `field` with `equals`",
                        );
                    }
                    if r.field.is_some() != r.equals.is_some() {
                        self.error(
                            Some(screen),
                            Some(format!("ops[{i}].require")),
                            "`field` and `equals` go together",
                        );
                    }
                    Op::Require {
                        record: self.record(screen, &at("require.record"), &r.record),
                        exists: r.exists,
                        field: r
                            .field
                            .as_ref()
                            .map(|f| self.field_name(screen, &at("require.field"), f)),
                        equals: r
                            .equals
                            .as_ref()
                            .map(|v| self.value_tpl(screen, &at("require.equals"), v)),
                        otherwise: self.otherwise(screen, &at("require.else"), &r.otherwise),
                    }
                }
                OpSpec { put: Some(p), .. } => Op::Put(WriteTpl {
                    record: self.record(screen, &at("put.record"), &p.record),
                    fields: self.values(screen, &at("put.fields"), &p.fields),
                    merge: p.merge,
                }),
                OpSpec { sms: Some(s), .. } => Op::Sms {
                    to: self.tpl(screen, &at("sms.to"), &s.to),
                    message: self.tpl(screen, &at("sms.message"), &s.message),
                    not_before: s.not_before.as_ref().map(|v| {
                        self.value_tpl(screen, &at("sms.not_before"), &Value::from(v.as_str()))
                    }),
                },
                OpSpec {
                    airtime: Some(a), ..
                } => Op::Airtime {
                    to: self.tpl(screen, &at("airtime.to"), &a.to),
                    amount: self.value_tpl(screen, &at("airtime.amount"), &a.amount),
                    currency: a.currency.clone(),
                },
                OpSpec { call: Some(c), .. } => Op::Call {
                    to: self.tpl(screen, &at("call.to"), &c.to),
                },
                OpSpec { push: Some(p), .. } => Op::Push {
                    to: self.tpl(screen, &at("push.to"), &p.to),
                    message: self.tpl(screen, &at("push.message"), &p.message),
                    bind: p.bind.clone(),
                    not_before: p.not_before.as_ref().map(|v| {
                        self.value_tpl(screen, &at("push.not_before"), &Value::from(v.as_str()))
                    }),
                },
                OpSpec {
                    dialogue: Some(d), ..
                } => {
                    let code = d.service_code.trim();
                    if !(code.starts_with('*') && code.ends_with('#') && code.len() > 2) {
                        self.error(
                            Some(screen),
                            Some(at("dialogue.service_code")),
                            "a service code looks like *384*303#",
                        );
                    }
                    Op::Dialogue {
                        to: self.tpl(screen, &at("dialogue.to"), &d.to),
                        service_code: code.to_string(),
                        bind: d.bind.clone(),
                        not_before: d.not_before.as_ref().map(|v| {
                            self.value_tpl(
                                screen,
                                &at("dialogue.not_before"),
                                &Value::from(v.as_str()),
                            )
                        }),
                    }
                }
                // Exactly one field is set (checked above).
                _ => continue,
            };
            ops.push(compiled);
        }
        Screen::Transact(Transact {
            ops,
            into: spec.into.as_ref().map(|v| self.variable(screen, "into", v)),
            next: self.target(screen, "next", &spec.next),
            failed: spec
                .failed
                .as_ref()
                .map(|f| self.target(screen, "failed", f)),
        })
    }
}
