//! Retention: personal data is not kept forever.
//!
//! End-of-session records, delivered outbox items, call records and transaction idempotency keys
//! expire after configured periods (tombstones have their own short TTL). A background task
//! purges them periodically; [`export`] writes them out first (JSON lines or CSV) for billing
//! reconciliation. The ledger journal is financial history and is never purged here.
//!
//! Retention spans the dialogues, the outbox and the voice calls, so it sits above the store
//! and the outbox and uses their operations; the store knows nothing of these policies.

pub use crate::config::RetentionConfig;
use crate::store::{Store, StoreError};
use serde_json::Value;
use std::io::Write;

/// What one purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// End-of-session records.
    pub end_records: usize,
    /// Finished outbox items.
    pub outbox: usize,
    /// Call records.
    pub calls: usize,
    /// Idempotency keys.
    pub idempotency: usize,
    /// Transactions recorded for dialogues that never got an end record (see
    /// [`crate::store::ledger::APPLIED`]).
    pub applied: usize,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// What can be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// End-of-session records.
    Ended,
    /// Voice call records.
    Calls,
    /// Outbox items.
    Outbox,
    /// The ledger journal.
    Journal,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        match s {
            "ended" => Ok(Kind::Ended),
            "calls" => Ok(Kind::Calls),
            "outbox" => Ok(Kind::Outbox),
            "journal" => Ok(Kind::Journal),
            other => Err(format!(
                "unknown kind {other:?} (ended, calls, outbox, journal)"
            )),
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON document per line.
    JsonLines,
    /// CSV with a header; nested values as JSON text.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "jsonl" | "json" => Ok(Format::JsonLines),
            "csv" => Ok(Format::Csv),
            other => Err(format!("unknown format {other:?} (jsonl, csv)")),
        }
    }
}

/// Every document of `kind`, oldest first.
///
/// # Errors
/// Store or parse errors.
pub fn documents(store: &Store, kind: Kind) -> Result<Vec<Value>, StoreError> {
    match kind {
        Kind::Ended => store.ended_records().collect(),
        Kind::Calls => store.call_documents(),
        Kind::Outbox => store.outbox()?.documents(),
        Kind::Journal => store.journal_documents(),
    }
}

/// Writes every document of `kind` to `out` in `format`.
///
/// # Errors
/// Store errors, or the writer failing.
pub fn export(
    store: &Store,
    kind: Kind,
    format: Format,
    out: &mut dyn Write,
) -> Result<usize, String> {
    let docs = documents(store, kind).map_err(|e| e.to_string())?;
    write_documents(&docs, format, out)
}

/// Writes `docs` to `out` in `format`; answers how many.
///
/// # Errors
/// The writer failing.
pub fn write_documents(
    docs: &[Value],
    format: Format,
    out: &mut dyn Write,
) -> Result<usize, String> {
    match format {
        Format::JsonLines => {
            for d in docs {
                writeln!(out, "{d}").map_err(|e| e.to_string())?;
            }
        }
        Format::Csv => {
            let mut columns: Vec<String> = Vec::new();
            for d in docs {
                if let Value::Object(o) = d {
                    for k in o.keys() {
                        if !columns.contains(k) {
                            columns.push(k.clone());
                        }
                    }
                }
            }
            let mut w = csv::Writer::from_writer(out);
            w.write_record(&columns).map_err(|e| e.to_string())?;
            for d in docs {
                let row = columns.iter().map(|c| match d.get(c) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => csv_text(s),
                    // Numbers, booleans, and objects as JSON (`{...}`): written by the gateway.
                    Some(other) => other.to_string(),
                });
                w.write_record(row).map_err(|e| e.to_string())?;
            }
            w.flush().map_err(|e| e.to_string())?;
        }
    }
    Ok(docs.len())
}

/// A text cell of a CSV export. Text comes from subscribers and peers (inputs, AT's error
/// messages): one that starts like a formula (`=`, `+`, `-`, `@`, tab or CR) would run as one
/// when the export is opened in a spreadsheet (`=HYPERLINK(...)`), so it gets a leading `'`,
/// as OWASP's advice on CSV injection says. Numbers the gateway writes are left as they are.
fn csv_text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// Removes what is past its retention period at `now_ms`.
///
/// # Errors
/// Store errors.
pub fn purge(store: &Store, config: &RetentionConfig, now_ms: u64) -> Result<Purged, StoreError> {
    let cutoff = |days: u64| now_ms.saturating_sub(days.saturating_mul(DAY_MS));
    let end_records = store.purge_end_records(|v| {
        v.get("ended_ms").and_then(Value::as_u64).unwrap_or(0) < cutoff(config.end_records_days)
    })?;
    // Normally forgotten when the dialogue's end record is written; these are of dialogues a
    // crash lost whole, kept as long as their end record would have been.
    let applied = store.purge_applied(cutoff(config.end_records_days))?;
    let outbox = crate::outbox::purge_finished(store, cutoff(config.outbox_days))?;
    let calls_cutoff = cutoff(config.call_records_days);
    let calls = store.purge_call_records(|v| {
        v.get("recorded_at")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| (t.as_millisecond().max(0) as u64) < calls_cutoff)
    })?;
    let idem_cutoff = cutoff(config.idempotency_days);
    let idempotency = store.purge_idempotency(|v| {
        // Keys written before they carried a time are kept (they are few and small).
        v.get("at_ms")
            .and_then(Value::as_u64)
            .is_some_and(|t| t < idem_cutoff)
    })?;
    let purged = Purged {
        end_records,
        outbox,
        calls,
        idempotency,
        applied,
    };
    Ok(purged)
}

/// Every document of `kind` a cluster keeps in Redis. End records come bucket by bucket and
/// are put in the order they ended.
pub async fn cluster_documents(
    dialogues: &crate::store::shared_dialogues::SharedDialogues,
    records: &crate::store::shared_records::SharedRecords,
    outbox: &crate::store::OutboxBackend,
    kind: Kind,
) -> Result<Vec<Value>, String> {
    fn values<T: serde::Serialize>(r: Result<Vec<T>, StoreError>) -> Result<Vec<Value>, String> {
        r.map_err(|e| e.to_string())?
            .iter()
            .map(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
            .collect()
    }
    match kind {
        Kind::Ended => dialogues
            .end_records()
            .await
            .map_err(|e| e.to_string())
            .map(|raw| {
                let mut docs: Vec<Value> = raw
                    .iter()
                    .filter_map(|r| serde_json::from_slice(r).ok())
                    .collect();
                docs.sort_by_key(|d| d.get("ended_ms").and_then(Value::as_u64));
                docs
            }),
        Kind::Journal => values(records.journal().await),
        Kind::Calls => records.call_documents().await.map_err(|e| e.to_string()),
        Kind::Outbox => values(outbox.list().await),
    }
}
