//! What each op of a transaction does, over any store that can hold one: the sled
//! transaction ([`super::ledger`]) and the snapshot a Redis transaction commits with one
//! compare-and-set script ([`super::shared_records`]). The rules live here once.

use super::ledger::{BALANCE, JournalEntry};
use crate::effect;
use crate::txn::{Address, TxOp};
use serde_json::{Map, Value};

/// The records, journal and outbox items a transaction reads and writes, as one store holds
/// them inside its transaction.
pub(super) trait TxView {
    /// The store's error inside a transaction.
    type Error;
    /// An error that aborts the transaction with `message` (nothing is applied).
    fn abort(message: String) -> Self::Error;
    /// The record at `key` (`collection/id`), as the transaction sees it.
    fn read(&mut self, key: &str) -> Result<Option<Value>, Self::Error>;
    /// Writes the record at `key`.
    fn write(&mut self, key: &str, value: &Value) -> Result<(), Self::Error>;
    /// Appends a journal entry.
    fn journal(&mut self, entry: &JournalEntry) -> Result<(), Self::Error>;
    /// The outbox item `id`, if there is one.
    fn item(&mut self, id: u64) -> Result<Option<effect::Item>, Self::Error>;
    /// Writes an outbox item (a new one, or one voided).
    fn put_item(&mut self, item: &effect::Item) -> Result<(), Self::Error>;
}

/// What a transaction applies with, besides its ops.
pub(super) struct TxRun<'a> {
    /// The transaction id (journal entries carry it).
    pub txn: u64,
    /// When (ms).
    pub now: u64,
    /// The idempotency key (journal entries carry it).
    pub key: &'a str,
    /// The dialogue's session key, if a dialogue applies it (outbox items carry it).
    pub session: Option<&'a str>,
    /// The ids of the outbox items it writes, one per `outbox` op, in order.
    pub outbox_ids: &'a [u64],
}

/// The record keys and outbox item ids `ops` may read: a Redis transaction reads them all
/// before it applies anything.
pub(super) fn reads(ops: &[TxOp]) -> (Vec<String>, Vec<u64>) {
    let mut keys: Vec<String> = Vec::new();
    let mut items = Vec::new();
    let mut add = |a: &Address| {
        let k = a.key();
        if !keys.contains(&k) {
            keys.push(k);
        }
    };
    for op in ops {
        match op {
            TxOp::Transfer { from, to, .. } => {
                from.iter().chain(to.iter()).for_each(&mut add);
            }
            TxOp::Add { record, .. } | TxOp::Require { record, .. } => add(record),
            TxOp::Put { record, merge, .. } => {
                if *merge {
                    add(record);
                }
            }
            TxOp::Outbox { id_into, .. } => {
                if let Some(target) = id_into {
                    add(&target.record);
                }
            }
            TxOp::Void { item } => items.extend(item.iter().copied()),
        }
    }
    (keys, items)
}

/// The record keys `ops` may write.
pub(super) fn writes(ops: &[TxOp]) -> Vec<String> {
    let (mut keys, _) = reads(ops);
    for op in ops {
        if let TxOp::Put { record, .. } = op {
            let k = record.key();
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    keys
}

/// Applies every op in order; `Ok(Some(i))` when op `i`'s condition failed (the caller then
/// applies nothing).
pub(super) fn apply_all<V: TxView>(
    view: &mut V,
    ops: &[TxOp],
    run: &TxRun<'_>,
) -> Result<Option<usize>, V::Error> {
    let mut outbox_ids = run.outbox_ids.iter();
    for (i, op) in ops.iter().enumerate() {
        if apply(view, op, i, run, &mut outbox_ids)? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn number<V: TxView>(doc: &Option<Value>, field: &str) -> Result<i64, V::Error> {
    match doc.as_ref().and_then(|d| d.get(field)) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| V::abort(format!("field `{field}` is not an integer"))),
    }
}

fn with_field(doc: Option<Value>, field: &str, v: Value) -> Value {
    let mut obj = match doc {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    };
    obj.insert(field.to_string(), v);
    Value::Object(obj)
}

/// Applies one op; `Ok(true)` when its condition failed.
fn apply<'a, V: TxView>(
    view: &mut V,
    op: &TxOp,
    i: usize,
    run: &TxRun<'_>,
    outbox_ids: &mut impl Iterator<Item = &'a u64>,
) -> Result<bool, V::Error> {
    match op {
        TxOp::Transfer {
            from,
            to,
            amount_cents,
            kind,
        } => {
            if let Some(from) = from {
                let k = from.key();
                let doc = view.read(&k)?;
                let balance = number::<V>(&doc, BALANCE)?;
                if doc.is_none() || balance < *amount_cents {
                    return Ok(true);
                }
                let debited = with_field(doc, BALANCE, Value::from(balance - amount_cents));
                view.write(&k, &debited)?;
            }
            if let Some(to) = to {
                let k = to.key();
                let doc = view.read(&k)?;
                if doc.is_none() {
                    return Ok(true);
                }
                let balance = number::<V>(&doc, BALANCE)?;
                let credited = balance
                    .checked_add(*amount_cents)
                    .ok_or_else(|| V::abort("balance overflow".into()))?;
                view.write(&k, &with_field(doc, BALANCE, Value::from(credited)))?;
            }
            view.journal(&JournalEntry {
                txn: run.txn,
                seq: i as u32,
                kind: kind.clone(),
                from: from.as_ref().map(Address::key),
                to: to.as_ref().map(Address::key),
                amount_cents: *amount_cents,
                at_ms: run.now,
                key: run.key.to_string(),
            })?;
            Ok(false)
        }
        TxOp::Add {
            record,
            field,
            amount,
            min,
            max,
        } => {
            let k = record.key();
            let doc = view.read(&k)?;
            let result = number::<V>(&doc, field)?
                .checked_add(*amount)
                .ok_or_else(|| V::abort("overflow".into()))?;
            if min.is_some_and(|m| result < m) || max.is_some_and(|m| result > m) {
                return Ok(true);
            }
            view.write(&k, &with_field(doc, field, Value::from(result)))?;
            Ok(false)
        }
        TxOp::Require {
            record,
            exists,
            field,
        } => {
            let doc = view.read(&record.key())?;
            if exists.is_some_and(|e| e != doc.is_some()) {
                return Ok(true);
            }
            if let Some((f, want)) = field {
                let got = doc.as_ref().and_then(|d| d.get(f)).unwrap_or(&Value::Null);
                if got != want {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        TxOp::Put {
            record,
            value,
            merge,
        } => {
            let k = record.key();
            let value = if *merge {
                let mut current = view.read(&k)?.unwrap_or_else(|| Value::Object(Map::new()));
                match (&mut current, value) {
                    (Value::Object(a), Value::Object(b)) => {
                        for (f, v) in b {
                            a.insert(f.clone(), v.clone());
                        }
                        current
                    }
                    (_, v) => v.clone(),
                }
            } else {
                value.clone()
            };
            view.write(&k, &value)?;
            Ok(false)
        }
        TxOp::Outbox {
            effect,
            not_before_ms,
            id_into,
        } => {
            let id = *outbox_ids
                .next()
                .ok_or_else(|| V::abort("outbox id missing".into()))?;
            let item = effect::Item::new(
                id,
                effect.clone(),
                run.now,
                *not_before_ms,
                run.session.map(str::to_string),
            );
            view.put_item(&item)?;
            if let Some(target) = id_into {
                let k = target.record.key();
                let doc = view.read(&k)?;
                view.write(&k, &with_field(doc, &target.field, Value::from(id)))?;
            }
            Ok(false)
        }
        TxOp::Void { item } => {
            let Some(id) = item else {
                return Ok(false);
            };
            let Some(mut voided) = view.item(*id)? else {
                return Ok(false);
            };
            if voided.status == effect::Status::Pending {
                voided.status = effect::Status::Voided;
                voided.finished_ms = Some(run.now);
                voided.last_error = Some(format!("voided by transaction {}", run.txn));
                view.put_item(&voided)?;
            }
            Ok(false)
        }
    }
}
