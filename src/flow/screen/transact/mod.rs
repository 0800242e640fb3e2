//! The `transact` screen: operations the store applies in ONE sled transaction, all or nothing,
//! keyed by the dialogue and the hop so that a retried hop never applies them twice.
//!
//! An op is written `- transfer: {...}`, `- sms: {...}`, ...; the ops come in two families,
//! each in its own module with its YAML, checks and rendering: `ledger` ops change records
//! (transfer, add, require, put) and `outbox` ops send something with the change (sms, airtime,
//! call, push, dialogue) or take back one still waiting (void). Entering the screen renders
//! every op into the store's transaction language ([`TxOp`]) and hands them to the caller as
//! one [`Effect::Transact`]; the first op whose condition fails decides the branch. Once a
//! transaction is applied, the back history is cleared: the back key on the screens after it
//! leads to the home screen.

mod ledger;
mod outbox;

use super::Screen;
use super::save::WriteTpl;
use crate::flow::check::Checker;
use crate::flow::engine::{Fail, Next, Run};
use crate::flow::state::{Effect, EffectOutcome, Step};
use crate::flow::template::ValueTpl;
use crate::txn::TxOp;
use serde::Deserialize;
use serde_json::Value;

/// `type: transact`: ledger and record operations applied all together or not at all.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransactSpec {
    pub ops: Vec<OpSpec>,
    /// A variable that receives `{txn: "<id>"}` on success.
    #[serde(default)]
    pub into: Option<String>,
    pub next: String,
    /// Where a failing op without its own `else`, or a store failure, goes.
    #[serde(default)]
    pub failed: Option<String>,
}

/// One operation of a transaction, written `- transfer: {...}`, `- add: {...}`, ...: exactly
/// one of the fields is set (checked when compiling). A struct rather than an enum so that the
/// YAML reads as a plain one-key mapping.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpSpec {
    #[serde(default)]
    pub transfer: Option<ledger::TransferSpec>,
    #[serde(default)]
    pub add: Option<ledger::AddSpec>,
    #[serde(default)]
    pub require: Option<ledger::RequireSpec>,
    #[serde(default)]
    pub put: Option<ledger::PutSpec>,
    #[serde(default)]
    pub sms: Option<outbox::SmsSpec>,
    #[serde(default)]
    pub airtime: Option<outbox::AirtimeSpec>,
    #[serde(default)]
    pub call: Option<outbox::CallSpec>,
    #[serde(default)]
    pub push: Option<outbox::PushSpec>,
    #[serde(default)]
    pub dialogue: Option<outbox::DialogueSpec>,
    #[serde(default)]
    pub void: Option<outbox::VoidSpec>,
}

/// One compiled transaction operation.
#[derive(Debug)]
pub(crate) enum Op {
    Transfer(ledger::Transfer),
    Add(ledger::Add),
    Require(ledger::Require),
    Put(WriteTpl),
    Sms(outbox::Sms),
    Airtime(outbox::Airtime),
    Call(outbox::Call),
    Push(outbox::Push),
    Dialogue(outbox::Dialogue),
    Void(outbox::Void),
}

impl Op {
    /// Where a failure of this op goes, if it names a screen.
    fn otherwise(&self) -> Option<&String> {
        match self {
            Op::Transfer(ledger::Transfer { otherwise, .. })
            | Op::Add(ledger::Add { otherwise, .. })
            | Op::Require(ledger::Require { otherwise, .. }) => otherwise.as_ref(),
            _ => None,
        }
    }

    /// The op in the store's transaction language, rendered with the dialogue's variables.
    fn render(&self, run: &mut Run<'_, '_>) -> Result<TxOp, Fail> {
        match self {
            Op::Transfer(t) => t.render(run),
            Op::Add(a) => a.render(run),
            Op::Require(r) => r.render(run),
            Op::Put(w) => ledger::put(run, w),
            Op::Sms(s) => s.render(run),
            Op::Push(p) => p.render(run),
            Op::Dialogue(d) => d.render(run),
            Op::Airtime(a) => a.render(run),
            Op::Call(c) => c.render(run),
            Op::Void(v) => v.render(run),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Transact {
    pub ops: Vec<Op>,
    pub into: Option<String>,
    pub next: String,
    pub failed: Option<String>,
}

impl Checker<'_> {
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
                op.void.is_some(),
            ];
            if set.iter().filter(|s| **s).count() != 1 {
                self.error(
                    Some(screen),
                    Some(format!("ops[{i}]")),
                    "an op has exactly one of transfer, add, require, put, sms, airtime, call, push, dialogue, void",
                );
                continue;
            }
            let compiled = match op {
                OpSpec {
                    transfer: Some(t), ..
                } => Op::Transfer(self.transfer_op(screen, i, t)),
                OpSpec { add: Some(a), .. } => Op::Add(self.add_op(screen, i, a)),
                OpSpec {
                    require: Some(r), ..
                } => Op::Require(self.require_op(screen, i, r)),
                OpSpec { put: Some(p), .. } => Op::Put(self.put_op(screen, i, p)),
                OpSpec { sms: Some(s), .. } => Op::Sms(self.sms_op(screen, i, s)),
                OpSpec {
                    airtime: Some(a), ..
                } => Op::Airtime(self.airtime_op(screen, i, a)),
                OpSpec { call: Some(c), .. } => Op::Call(self.call_op(screen, i, c)),
                OpSpec { push: Some(p), .. } => Op::Push(self.push_op(screen, i, p)),
                OpSpec {
                    dialogue: Some(d), ..
                } => Op::Dialogue(self.dialogue_op(screen, i, d)),
                OpSpec { void: Some(v), .. } => Op::Void(self.void_op(screen, i, v)),
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

impl Transact {
    /// Renders every op with the dialogue's variables, for the caller to apply.
    pub(crate) fn enter<'f>(&'f self, run: &mut Run<'f, '_>) -> Result<Next<'f>, Fail> {
        let mut ops = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            ops.push(op.render(run)?);
        }
        Ok(Next::Effect(Effect::Transact { ops }))
    }

    pub(crate) fn resume(&self, mut run: Run<'_, '_>, outcome: EffectOutcome) -> Step {
        match outcome {
            EffectOutcome::Transacted {
                failed_op: None,
                txn,
            } => {
                if let Some(into) = &self.into {
                    run.set_var(into, serde_json::json!({ "txn": txn.to_string() }));
                }
                // A committed change is not gone back over: the back key on the screens after
                // it leads home, never to the confirmation that would apply it again.
                run.state.history.clear();
                run.state.from = Some(run.flow.home.as_str().into());
                run.enter(&self.next)
            }
            EffectOutcome::Transacted {
                failed_op: Some(i), ..
            } => {
                match self
                    .ops
                    .get(i)
                    .and_then(|op| op.otherwise())
                    .or(self.failed.as_ref())
                {
                    Some(next) => run.enter(next),
                    None => run.fail(format!("transaction op {i} failed and names no `else`")),
                }
            }
            EffectOutcome::Failed(why) if self.failed.is_some() => {
                tracing::error!(flow = %run.flow.name, screen = %run.state.screen, error = %why, "transaction failed");
                run.enter(self.failed.as_deref().unwrap_or_default())
            }
            outcome => run.unexpected(outcome),
        }
    }
}

impl Run<'_, '_> {
    fn value_of(&mut self, what: &str, v: &ValueTpl) -> Result<Value, Fail> {
        let scope = self.scope();
        self.flow
            .templates
            .value_of(v, &scope)
            .map_err(|e| format!("{what}: {e:#}"))
    }

    /// A whole number of cents.
    fn integer(&mut self, what: &str, v: &ValueTpl) -> Result<i64, Fail> {
        match self.value_of(what, v)? {
            Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
            Value::String(s) if s.trim().parse::<i64>().is_ok() => {
                Ok(s.trim().parse::<i64>().unwrap_or_default())
            }
            other => Err(format!("{what}: `{other}` is not a whole number of cents")),
        }
    }
}
