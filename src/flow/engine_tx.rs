//! Rendering a `transact` screen's operations into the store's transaction language.

use super::engine::Run;
use super::screen::Op;
use super::template::{Tpl, ValueTpl};
use crate::outbox;
use crate::txn::{Address, TxOp};
use serde_json::Value;

type Fail = String;

impl Run<'_, '_> {
    fn render_tpl(&mut self, t: &Tpl) -> Result<String, Fail> {
        let scope = self.scope();
        self.flow
            .templates
            .render(t, &scope)
            .map_err(|e| format!("template: {e:#}"))
    }

    fn value_of(&mut self, what: &str, v: &ValueTpl) -> Result<Value, Fail> {
        let scope = self.scope();
        self.flow
            .templates
            .value_of(v, &scope)
            .map_err(|e| format!("{what}: {e:#}"))
    }

    fn integer(&mut self, what: &str, v: &ValueTpl) -> Result<i64, Fail> {
        match self.value_of(what, v)? {
            Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
            Value::String(s) if s.trim().parse::<i64>().is_ok() => {
                Ok(s.trim().parse::<i64>().unwrap_or_default())
            }
            other => Err(format!("{what}: `{other}` is not a whole number of cents")),
        }
    }

    fn address(&mut self, t: &Tpl) -> Result<Address, Fail> {
        let (collection, id) = self.record(t)?;
        Ok(Address { collection, id })
    }

    fn phone(&mut self, what: &str, t: &Tpl) -> Result<String, Fail> {
        let to = self.render_tpl(t)?;
        let to = to.trim();
        if to.len() < 8 || !to.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{what}: `{to}` is not a canonical MSISDN (use the msisdn filter)"
            ));
        }
        Ok(to.to_string())
    }

    /// An RFC 3339 `not_before` as epoch milliseconds.
    fn not_before(&mut self, what: &str, v: &Option<ValueTpl>) -> Result<Option<u64>, Fail> {
        let Some(v) = v else {
            return Ok(None);
        };
        let when = self.value_of(what, v)?;
        let when = when.as_str().unwrap_or_default().to_string();
        let ts: jiff::Timestamp = when.parse().map_err(|e| format!("{what}: `{when}`: {e}"))?;
        Ok(Some(ts.as_millisecond().max(0) as u64))
    }

    /// Renders every op with the dialogue's variables.
    pub(super) fn tx_ops(&mut self, ops: &[Op]) -> Result<Vec<TxOp>, Fail> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(match op {
                Op::Transfer {
                    from,
                    to,
                    amount,
                    kind,
                    ..
                } => {
                    let amount_cents = self.integer("transfer.amount", amount)?;
                    if amount_cents <= 0 {
                        return Err(format!(
                            "transfer.amount must be positive, got {amount_cents}"
                        ));
                    }
                    TxOp::Transfer {
                        from: from.as_ref().map(|t| self.address(t)).transpose()?,
                        to: to.as_ref().map(|t| self.address(t)).transpose()?,
                        amount_cents,
                        kind: kind.clone(),
                    }
                }
                Op::Add {
                    record,
                    field,
                    amount,
                    min,
                    max,
                    ..
                } => TxOp::Add {
                    record: self.address(record)?,
                    field: field.clone(),
                    amount: self.integer("add.amount", amount)?,
                    min: min
                        .as_ref()
                        .map(|m| self.integer("add.min", m))
                        .transpose()?,
                    max: max
                        .as_ref()
                        .map(|m| self.integer("add.max", m))
                        .transpose()?,
                },
                Op::Require {
                    record,
                    exists,
                    field,
                    equals,
                    ..
                } => TxOp::Require {
                    record: self.address(record)?,
                    exists: *exists,
                    field: match (field, equals) {
                        (Some(f), Some(e)) => {
                            Some((f.clone(), self.value_of("require.equals", e)?))
                        }
                        _ => None,
                    },
                },
                Op::Put(w) => {
                    let (collection, id) = self.record(&w.record)?;
                    let fields: serde_json::Map<String, Value> =
                        self.values(&w.fields)?.into_iter().collect();
                    TxOp::Put {
                        record: Address { collection, id },
                        value: Value::Object(fields),
                        merge: w.merge,
                    }
                }
                Op::Sms {
                    to,
                    message,
                    not_before,
                } => {
                    let to = self.phone("sms.to", to)?;
                    let message = self.render_tpl(message)?;
                    TxOp::Outbox {
                        effect: outbox::Effect::Sms { to, message },
                        not_before_ms: self.not_before("sms.not_before", not_before)?,
                    }
                }
                Op::Push {
                    to,
                    message,
                    bind,
                    not_before,
                } => TxOp::Outbox {
                    effect: outbox::Effect::Ussn {
                        to: self.phone("push.to", to)?,
                        message: self.render_tpl(message)?,
                        bind: bind.clone(),
                    },
                    not_before_ms: self.not_before("push.not_before", not_before)?,
                },
                Op::Dialogue {
                    to,
                    service_code,
                    bind,
                    not_before,
                } => TxOp::Outbox {
                    effect: outbox::Effect::Ussr {
                        to: self.phone("dialogue.to", to)?,
                        service_code: service_code.clone(),
                        bind: bind.clone(),
                    },
                    not_before_ms: self.not_before("dialogue.not_before", not_before)?,
                },
                Op::Airtime {
                    to,
                    amount,
                    currency,
                } => TxOp::Outbox {
                    effect: outbox::Effect::Airtime {
                        to: self.phone("airtime.to", to)?,
                        currency: currency.clone(),
                        amount_cents: self.integer("airtime.amount", amount)?,
                    },
                    not_before_ms: None,
                },
                Op::Call { to } => TxOp::Outbox {
                    effect: outbox::Effect::Call {
                        to: self.phone("call.to", to)?,
                    },
                    not_before_ms: None,
                },
            });
        }
        Ok(out)
    }
}
