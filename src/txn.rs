//! What a flow asks of the record store and the ledger: the operations of a transaction, the
//! addresses of records, and the rule for collection names.
//!
//! The flow engine builds these (a `transact` screen becomes a list of [`TxOp`]s) and the store
//! applies them (`Store::transact`). The vocabulary sits between the two, so that neither
//! imports the other: the flows stay a pure engine over values, and the store knows nothing of
//! screens or templates.

use crate::effect::Effect;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A record address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The collection.
    pub collection: String,
    /// The id inside it.
    pub id: String,
}

impl Address {
    /// The record key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.collection, self.id)
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TxOp {
    /// Moves `amount_cents` from one account to another and journals it; fails when the debited
    /// account has less. `None` is outside the ledger (cash in, cash out, airtime bought).
    Transfer {
        /// Debited account.
        from: Option<Address>,
        /// Credited account.
        to: Option<Address>,
        /// Positive amount in cents.
        amount_cents: i64,
        /// Journal type, e.g. `deposit`.
        kind: String,
    },
    /// Adds `amount` to a numeric field; fails when the result leaves `[min, max]`.
    Add {
        /// The record (created if missing).
        record: Address,
        /// The field (0 if missing).
        field: String,
        /// May be negative.
        amount: i64,
        /// Lower bound of the result.
        min: Option<i64>,
        /// Upper bound of the result.
        max: Option<i64>,
    },
    /// Fails unless the record exists (or not) and/or a field equals a value.
    Require {
        /// The record.
        record: Address,
        /// Required existence.
        exists: Option<bool>,
        /// A field that must equal `equals`.
        field: Option<(String, Value)>,
    },
    /// Writes a record.
    Put {
        /// The record.
        record: Address,
        /// The document or the fields to merge.
        value: Value,
        /// Merge fields into an existing record.
        merge: bool,
    },
    /// Writes an outbox item.
    Outbox {
        /// What to send.
        effect: Effect,
        /// Not before this time (ms since the epoch).
        not_before_ms: Option<u64>,
        /// A record field that receives the item's id (written after the ops before it), so a
        /// later transaction can void the item (a reminder of a booking that is cancelled).
        id_into: Option<FieldAddress>,
    },
    /// Voids an outbox item that is still pending (it is then never sent); an item already
    /// sent, failed or gone, or no item (`None`), is left as it is. Never fails.
    Void {
        /// The item's id.
        item: Option<u64>,
    },
}

/// One field of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldAddress {
    /// The record.
    pub record: Address,
    /// The field.
    pub field: String,
}

/// Whether a collection name is usable (letters, digits, `_`, `-`).
pub fn valid_collection(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
