//! Outbox ops of a `transact` screen: `sms`, `airtime` and `call`, and `push` (a USSD
//! notification) and `dialogue` (a network-initiated dialogue) over an SMPP bind. Each becomes
//! an outbox item written in the same transaction as the ledger ops, sent in the background.
//! `void` takes back an item still waiting (a cancelled appointment's reminder).
//!
//! Their `to` must render to a canonical MSISDN; `not_before` (RFC 3339) delays an item, and
//! `id_into` keeps the item's id in a record field, for a later transaction's `void`.

use crate::effect::Effect;
use crate::flow::check::Checker;
use crate::flow::engine::{Fail, Run};
use crate::flow::template::{Tpl, ValueTpl};
use crate::txn::{FieldAddress, TxOp};
use serde::Deserialize;
use serde_json::Value;

/// `id_into: { record, field }`: the record field that receives the item's id.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdIntoSpec {
    pub record: String,
    pub field: String,
}

/// An SMS through the outbox.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmsSpec {
    pub to: String,
    pub message: String,
    /// RFC 3339 time before which it is not sent (reminders).
    #[serde(default)]
    pub not_before: Option<String>,
    #[serde(default)]
    pub id_into: Option<IdIntoSpec>,
}

/// `void: { item }`: voids the outbox item with this id if it is still pending.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VoidSpec {
    pub item: String,
}

/// Airtime through the outbox.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AirtimeSpec {
    pub to: String,
    pub amount: Value,
    pub currency: String,
}

/// A USSD notification (USSN) over an SMPP bind, through the outbox.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushSpec {
    pub to: String,
    pub message: String,
    /// The `[[smpp.binds]]` name; the first bind up when absent.
    #[serde(default)]
    pub bind: Option<String>,
    /// RFC 3339 time before which it is not sent.
    #[serde(default)]
    pub not_before: Option<String>,
    #[serde(default)]
    pub id_into: Option<IdIntoSpec>,
}

/// A network-initiated USSD dialogue over an SMPP bind, through the outbox.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DialogueSpec {
    pub to: String,
    /// The service code whose route answers.
    pub service_code: String,
    /// The `[[smpp.binds]]` name; the first bind up when absent.
    #[serde(default)]
    pub bind: Option<String>,
    /// RFC 3339 time before which it is not started.
    #[serde(default)]
    pub not_before: Option<String>,
    #[serde(default)]
    pub id_into: Option<IdIntoSpec>,
}

/// An outbound call through the outbox.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallSpec {
    pub to: String,
}

/// The compiled `id_into`: a record template and a field.
#[derive(Debug)]
pub(crate) struct IdInto {
    pub record: Tpl,
    pub field: String,
}

#[derive(Debug)]
pub(crate) struct Sms {
    pub to: Tpl,
    pub message: Tpl,
    pub not_before: Option<ValueTpl>,
    pub id_into: Option<IdInto>,
}

#[derive(Debug)]
pub(crate) struct Void {
    pub item: Tpl,
}

#[derive(Debug)]
pub(crate) struct Airtime {
    pub to: Tpl,
    pub amount: ValueTpl,
    pub currency: String,
}

#[derive(Debug)]
pub(crate) struct Call {
    pub to: Tpl,
}

#[derive(Debug)]
pub(crate) struct Push {
    pub to: Tpl,
    pub message: Tpl,
    pub bind: Option<String>,
    pub not_before: Option<ValueTpl>,
    pub id_into: Option<IdInto>,
}

#[derive(Debug)]
pub(crate) struct Dialogue {
    pub to: Tpl,
    pub service_code: String,
    pub bind: Option<String>,
    pub not_before: Option<ValueTpl>,
    pub id_into: Option<IdInto>,
}

impl Checker<'_> {
    /// An RFC 3339 `not_before`, compiled as a value template.
    fn not_before(&mut self, screen: &str, field: &str, v: &Option<String>) -> Option<ValueTpl> {
        v.as_ref()
            .map(|v| self.value_tpl(screen, field, &Value::from(v.as_str())))
    }

    fn id_into(&mut self, screen: &str, field: &str, v: &Option<IdIntoSpec>) -> Option<IdInto> {
        v.as_ref().map(|v| IdInto {
            record: self.record(screen, &format!("{field}.record"), &v.record),
            field: self.field_name(screen, &format!("{field}.field"), &v.field),
        })
    }

    pub(super) fn sms_op(&mut self, screen: &str, i: usize, s: &SmsSpec) -> Sms {
        let at = |f: &str| format!("ops[{i}].{f}");
        Sms {
            to: self.tpl(screen, &at("sms.to"), &s.to),
            message: self.tpl(screen, &at("sms.message"), &s.message),
            not_before: self.not_before(screen, &at("sms.not_before"), &s.not_before),
            id_into: self.id_into(screen, &at("sms.id_into"), &s.id_into),
        }
    }

    pub(super) fn void_op(&mut self, screen: &str, i: usize, v: &VoidSpec) -> Void {
        Void {
            item: self.tpl(screen, &format!("ops[{i}].void.item"), &v.item),
        }
    }

    pub(super) fn airtime_op(&mut self, screen: &str, i: usize, a: &AirtimeSpec) -> Airtime {
        let at = |f: &str| format!("ops[{i}].{f}");
        Airtime {
            to: self.tpl(screen, &at("airtime.to"), &a.to),
            amount: self.value_tpl(screen, &at("airtime.amount"), &a.amount),
            currency: a.currency.clone(),
        }
    }

    pub(super) fn call_op(&mut self, screen: &str, i: usize, c: &CallSpec) -> Call {
        Call {
            to: self.tpl(screen, &format!("ops[{i}].call.to"), &c.to),
        }
    }

    pub(super) fn push_op(&mut self, screen: &str, i: usize, p: &PushSpec) -> Push {
        let at = |f: &str| format!("ops[{i}].{f}");
        Push {
            to: self.tpl(screen, &at("push.to"), &p.to),
            message: self.tpl(screen, &at("push.message"), &p.message),
            bind: p.bind.clone(),
            not_before: self.not_before(screen, &at("push.not_before"), &p.not_before),
            id_into: self.id_into(screen, &at("push.id_into"), &p.id_into),
        }
    }

    pub(super) fn dialogue_op(&mut self, screen: &str, i: usize, d: &DialogueSpec) -> Dialogue {
        let at = |f: &str| format!("ops[{i}].{f}");
        let code = d.service_code.trim();
        if !(code.starts_with('*') && code.ends_with('#') && code.len() > 2) {
            self.error(
                Some(screen),
                Some(at("dialogue.service_code")),
                "a service code looks like *384*303#",
            );
        }
        Dialogue {
            to: self.tpl(screen, &at("dialogue.to"), &d.to),
            service_code: code.to_string(),
            bind: d.bind.clone(),
            not_before: self.not_before(screen, &at("dialogue.not_before"), &d.not_before),
            id_into: self.id_into(screen, &at("dialogue.id_into"), &d.id_into),
        }
    }
}

impl Run<'_, '_> {
    fn render_tpl(&mut self, t: &Tpl) -> Result<String, Fail> {
        let scope = self.scope();
        self.flow
            .templates
            .render(t, &scope)
            .map_err(|e| format!("template: {e:#}"))
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

    /// Where an item's id goes, rendered.
    fn id_into(&mut self, v: &Option<IdInto>) -> Result<Option<FieldAddress>, Fail> {
        let Some(v) = v else {
            return Ok(None);
        };
        Ok(Some(FieldAddress {
            record: self.address(&v.record)?,
            field: v.field.clone(),
        }))
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
}

impl Sms {
    pub(super) fn render(&self, run: &mut Run<'_, '_>) -> Result<TxOp, Fail> {
        let to = run.phone("sms.to", &self.to)?;
        let message = run.render_tpl(&self.message)?;
        Ok(TxOp::Outbox {
            effect: Effect::Sms { to, message },
            not_before_ms: run.not_before("sms.not_before", &self.not_before)?,
            id_into: run.id_into(&self.id_into)?,
        })
    }
}

impl Void {
    /// An empty id (the record has none: it was written before reminders kept theirs) voids
    /// nothing; anything else must be an item id.
    pub(super) fn render(&self, run: &mut Run<'_, '_>) -> Result<TxOp, Fail> {
        let id = run.render_tpl(&self.item)?;
        let id = id.trim();
        if id.is_empty() || id == "none" {
            return Ok(TxOp::Void { item: None });
        }
        match id.parse::<u64>() {
            Ok(item) => Ok(TxOp::Void { item: Some(item) }),
            Err(_) => Err(format!("void.item: `{id}` is not an outbox item id")),
        }
    }
}

impl Push {
    pub(super) fn render(&self, run: &mut Run<'_, '_>) -> Result<TxOp, Fail> {
        Ok(TxOp::Outbox {
            effect: Effect::Ussn {
                to: run.phone("push.to", &self.to)?,
                message: run.render_tpl(&self.message)?,
                bind: self.bind.clone(),
            },
            not_before_ms: run.not_before("push.not_before", &self.not_before)?,
            id_into: run.id_into(&self.id_into)?,
        })
    }
}

impl Dialogue {
    pub(super) fn render(&self, run: &mut Run<'_, '_>) -> Result<TxOp, Fail> {
        Ok(TxOp::Outbox {
            effect: Effect::Ussr {
                to: run.phone("dialogue.to", &self.to)?,
                service_code: self.service_code.clone(),
                bind: self.bind.clone(),
            },
            not_before_ms: run.not_before("dialogue.not_before", &self.not_before)?,
            id_into: run.id_into(&self.id_into)?,
        })
    }
}

impl Airtime {
    pub(super) fn render(&self, run: &mut Run<'_, '_>) -> Result<TxOp, Fail> {
        Ok(TxOp::Outbox {
            effect: Effect::Airtime {
                to: run.phone("airtime.to", &self.to)?,
                currency: self.currency.clone(),
                amount_cents: run.integer("airtime.amount", &self.amount)?,
            },
            not_before_ms: None,
            id_into: None,
        })
    }
}

impl Call {
    pub(super) fn render(&self, run: &mut Run<'_, '_>) -> Result<TxOp, Fail> {
        Ok(TxOp::Outbox {
            effect: Effect::Call {
                to: run.phone("call.to", &self.to)?,
            },
            not_before_ms: None,
            id_into: None,
        })
    }
}
