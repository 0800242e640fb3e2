//! Ledger ops of a `transact` screen: `transfer` (integer cents between accounts, journalled),
//! `add` (to a bounded integer field), `require` (a condition on a record as it stands inside
//! the transaction) and `put` (a record write, like a `save` write).
//!
//! `transfer`, `add` and `require` may fail as the store applies them; their `else` names the
//! screen that failure goes to.

use crate::flow::check::Checker;
use crate::flow::engine::{Fail, Run};
use crate::flow::screen::save::WriteTpl;
use crate::flow::template::{Tpl, ValueTpl};
use crate::txn::{Address, TxOp};
use serde::Deserialize;
use serde_json::{Map, Value};

fn yes() -> bool {
    true
}

/// Moves money between ledger accounts (records with a `balance_cents` field) and journals it.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferSpec {
    /// The debited account (`wallets/{{ phone }}`); absent = money from outside.
    #[serde(default)]
    pub from: Option<String>,
    /// The credited account; absent = money leaving the ledger.
    #[serde(default)]
    pub to: Option<String>,
    /// Integer cents (use the `to_cents` filter on typed amounts).
    pub amount: Value,
    /// The journal's transaction type (`deposit`, `withdrawal`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where to go when the debited account has too little.
    #[serde(default, rename = "else")]
    pub otherwise: Option<String>,
}

/// Adds to a numeric field, within bounds.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddSpec {
    pub record: String,
    pub field: String,
    pub amount: Value,
    #[serde(default)]
    pub min: Option<Value>,
    #[serde(default)]
    pub max: Option<Value>,
    #[serde(default, rename = "else")]
    pub otherwise: Option<String>,
}

/// A condition on a record at the moment of the transaction.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequireSpec {
    pub record: String,
    #[serde(default)]
    pub exists: Option<bool>,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub equals: Option<Value>,
    #[serde(default, rename = "else")]
    pub otherwise: Option<String>,
}

/// Writes a record (merge by default), like a `save` write.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutSpec {
    pub record: String,
    pub fields: Map<String, Value>,
    #[serde(default = "yes")]
    pub merge: bool,
}

#[derive(Debug)]
pub(crate) struct Transfer {
    pub from: Option<Tpl>,
    pub to: Option<Tpl>,
    pub amount: ValueTpl,
    pub kind: String,
    pub otherwise: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Add {
    pub record: Tpl,
    pub field: String,
    pub amount: ValueTpl,
    pub min: Option<ValueTpl>,
    pub max: Option<ValueTpl>,
    pub otherwise: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Require {
    pub record: Tpl,
    pub exists: Option<bool>,
    pub field: Option<String>,
    pub equals: Option<ValueTpl>,
    pub otherwise: Option<String>,
}

impl Checker<'_> {
    pub(super) fn field_name(&mut self, screen: &str, field: &str, name: &str) -> String {
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

    pub(super) fn transfer_op(&mut self, screen: &str, i: usize, t: &TransferSpec) -> Transfer {
        let at = |f: &str| format!("ops[{i}].{f}");
        if t.from.is_none() && t.to.is_none() {
            self.error(
                Some(screen),
                Some(format!("ops[{i}].transfer")),
                "a transfer needs `from`, `to` or both",
            );
        }
        Transfer {
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

    pub(super) fn add_op(&mut self, screen: &str, i: usize, a: &AddSpec) -> Add {
        let at = |f: &str| format!("ops[{i}].{f}");
        Add {
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
        }
    }

    pub(super) fn require_op(&mut self, screen: &str, i: usize, r: &RequireSpec) -> Require {
        let at = |f: &str| format!("ops[{i}].{f}");
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
        Require {
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

    pub(super) fn put_op(&mut self, screen: &str, i: usize, p: &PutSpec) -> WriteTpl {
        let at = |f: &str| format!("ops[{i}].{f}");
        WriteTpl {
            record: self.record(screen, &at("put.record"), &p.record),
            fields: self.values(screen, &at("put.fields"), &p.fields),
            merge: p.merge,
        }
    }
}

impl Run<'_, '_> {
    pub(super) fn address(&mut self, t: &Tpl) -> Result<Address, Fail> {
        let (collection, id) = self.record(t)?;
        Ok(Address { collection, id })
    }
}

impl Transfer {
    pub(super) fn render(&self, run: &mut Run<'_, '_>) -> Result<TxOp, Fail> {
        let amount_cents = run.integer("transfer.amount", &self.amount)?;
        if amount_cents <= 0 {
            return Err(format!(
                "transfer.amount must be positive, got {amount_cents}"
            ));
        }
        Ok(TxOp::Transfer {
            from: self.from.as_ref().map(|t| run.address(t)).transpose()?,
            to: self.to.as_ref().map(|t| run.address(t)).transpose()?,
            amount_cents,
            kind: self.kind.clone(),
        })
    }
}

impl Add {
    pub(super) fn render(&self, run: &mut Run<'_, '_>) -> Result<TxOp, Fail> {
        Ok(TxOp::Add {
            record: run.address(&self.record)?,
            field: self.field.clone(),
            amount: run.integer("add.amount", &self.amount)?,
            min: self
                .min
                .as_ref()
                .map(|m| run.integer("add.min", m))
                .transpose()?,
            max: self
                .max
                .as_ref()
                .map(|m| run.integer("add.max", m))
                .transpose()?,
        })
    }
}

impl Require {
    pub(super) fn render(&self, run: &mut Run<'_, '_>) -> Result<TxOp, Fail> {
        Ok(TxOp::Require {
            record: run.address(&self.record)?,
            exists: self.exists,
            field: match (&self.field, &self.equals) {
                (Some(f), Some(e)) => Some((f.clone(), run.value_of("require.equals", e)?)),
                _ => None,
            },
        })
    }
}

/// A `put` op: the record write in the store's transaction language.
pub(super) fn put(run: &mut Run<'_, '_>, w: &WriteTpl) -> Result<TxOp, Fail> {
    let (collection, id) = run.record(&w.record)?;
    let fields: Map<String, Value> = run.values(&w.fields)?.into_iter().collect();
    Ok(TxOp::Put {
        record: Address { collection, id },
        value: Value::Object(fields),
        merge: w.merge,
    })
}
