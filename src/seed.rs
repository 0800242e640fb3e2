//! Sample data: the records of `config/data/*.yaml` (and synthetic subscribers for load
//! tests), loaded into the record store.
//!
//! Seed files are minijinja templates rendered with the flows' own date filters, and the seed
//! time zone comes from the configuration: so seeding sits outside the store, as a start-up
//! job ([`at_start`], which the gateway runs) and the `seed` command's work.

use crate::config::Config;
use crate::store::records::{RecordBatch, RecordWrite};
use crate::store::shared_records::SharedRecords;
use crate::store::{Records, Store, StoreError};
use crate::txn::valid_collection;
use serde_json::Value;
use std::path::Path;

/// The start-up job: loads the seed folder's records into a store that has none.
///
/// # Errors
/// Unreadable or invalid files, or store errors.
pub fn at_start(store: &Store, config: &Config) -> Result<(), SeedError> {
    let seed_dir = config.seed_path();
    // The cluster's records are seeded once for every node ([`into_cluster`]).
    if store.shared_records().is_none() && store.records().is_empty() && seed_dir.is_dir() {
        let n = load_dir(store.records(), &seed_dir, &SeedContext::of(config))?;
        tracing::info!(records = n, dir = %seed_dir.display(), "sample records loaded into an empty store");
    }
    Ok(())
}

/// The start-up job in cluster mode: the first node to start loads the seed folder's records
/// into the cluster's store, never replacing a record that is there already.
///
/// # Errors
/// Unreadable or invalid files, or store errors.
pub async fn into_cluster(store: &Store, config: &Config) -> Result<(), SeedError> {
    let seed_dir = config.seed_path();
    let Some(shared) = store.shared_records() else {
        return Ok(());
    };
    if !seed_dir.is_dir() {
        return Ok(());
    }
    let writes = read_dir(&seed_dir, &SeedContext::of(config))?;
    match shared.seed_once(&writes).await {
        Ok(Some(n)) => {
            tracing::info!(records = n, dir = %seed_dir.display(), "sample records loaded into the cluster's store");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(SeedError(e.to_string())),
    }
}

/// Loads every `<collection>.yaml` of `dir` (a mapping of id to document) into `records`,
/// replacing records with the same address, and flushes. Returns how many records were written.
///
/// # Errors
/// Unreadable or invalid files (named in the message), or store errors.
pub fn load_dir(records: &Records, dir: &Path, ctx: &SeedContext) -> Result<usize, SeedError> {
    let writes = read_dir(dir, ctx)?;
    records
        .apply(&writes)
        .map_err(|e| SeedError(e.to_string()))?;
    records.flush().map_err(|e| SeedError(e.to_string()))?;
    Ok(writes.len())
}

/// The records of every `<collection>.yaml` of `dir`, rendered.
///
/// # Errors
/// Unreadable or invalid files (named in the message).
pub fn read_dir(dir: &Path, ctx: &SeedContext) -> Result<Vec<RecordWrite>, SeedError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| SeedError(format!("{}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut writes = Vec::new();
    for path in files {
        let collection = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !valid_collection(&collection) {
            return Err(SeedError(format!(
                "{}: the file name must be a collection name (letters, digits, _ and -)",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| SeedError(format!("{}: {e}", path.display())))?;
        let text = ctx
            .render(&text)
            .map_err(|e| SeedError(format!("{}: {e}", path.display())))?;
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| SeedError(format!("{}: {e}", path.display())))?;
        let serde_yaml_ng::Value::Mapping(map) = yaml else {
            return Err(SeedError(format!(
                "{}: expected a mapping of id to document",
                path.display()
            )));
        };
        for (id, doc) in map {
            let id = yaml_key(&id).ok_or_else(|| {
                SeedError(format!(
                    "{}: ids must be strings or numbers",
                    path.display()
                ))
            })?;
            writes.push(RecordWrite {
                collection: collection.clone(),
                id,
                value: yaml_to_json(doc),
                merge: false,
            });
        }
    }
    Ok(writes)
}

/// Creates `n` synthetic subscribers for load tests: each number `254710000000 + i` is a
/// student (results, fees, timetable) and a registered microfinance customer with a wallet
/// and no loan. Names are made up. Replaces records with the same address; flushes.
/// Returns how many records were written.
///
/// # Errors
/// Store errors.
pub fn synthetic(records: &Records, n: u64) -> Result<u64, StoreError> {
    let mut written = 0;
    let mut batch = RecordBatch::default();
    for i in 0..n {
        for w in synthetic_subscriber(i) {
            batch.insert(&w.collection, &w.id, &w.value)?;
            written += 1;
        }
        if batch.len() >= 20_000 {
            records.apply_batch(std::mem::take(&mut batch))?;
        }
    }
    records.apply_batch(batch)?;
    records.flush()?;
    Ok(written)
}

/// The `seed` command in cluster mode: loads the seed folder's records into the cluster's
/// store, replacing records with the same address, and `synthetic` subscribers if asked.
/// Answers how many records came from the folder and how many synthetic ones were written.
///
/// # Errors
/// Unreadable or invalid files, or store errors.
pub async fn cluster_replacing(
    shared: &SharedRecords,
    config: &Config,
    synthetic: Option<u64>,
) -> Result<(usize, usize), SeedError> {
    let writes = read_dir(&config.seed_path(), &SeedContext::of(config))?;
    let err = |e: StoreError| SeedError(e.to_string());
    let loaded = shared.put_all(&writes, true).await.map_err(err)?;
    let mut made = 0;
    let n = synthetic.unwrap_or(0);
    let mut i = 0;
    while i < n {
        let chunk: Vec<RecordWrite> = (i..n.min(i + 5_000))
            .flat_map(synthetic_subscriber)
            .collect();
        made += shared.put_all(&chunk, true).await.map_err(err)?;
        i += 5_000;
    }
    Ok((loaded, made))
}

/// The records of synthetic subscriber `i` (see [`synthetic`]).
fn synthetic_subscriber(i: u64) -> [RecordWrite; 4] {
    const FIRST: [&str; 8] = [
        "Amani", "Baraka", "Chege", "Dalia", "Eshe", "Faraji", "Gathoni", "Hamisi",
    ];
    const LAST: [&str; 6] = ["Kamau", "Otieno", "Wanjiku", "Mutua", "Achieng", "Njoroge"];
    let msisdn = format!("2547{:08}", 10_000_000 + i);
    let name = format!(
        "{} {}",
        FIRST[(i % 8) as usize],
        LAST[((i / 8) % 6) as usize]
    );
    let docs = [
        (
            "students",
            serde_json::json!({
                "full_name": name,
                "student_id": format!("SYN{i:07}"),
                "phone": msisdn,
                "results": [
                    { "course_name": "Data Structures", "course_code": "CS201", "grade": "A", "term": "2024 Term 1" },
                    { "course_name": "Discrete Mathematics", "course_code": "MA202", "grade": "B+", "term": "2024 Term 1" },
                    { "course_name": "Calculus I", "course_code": "MA101", "grade": "B", "term": "2023 Term 1" }
                ],
                "fees": { "term": "2024 Term 1", "amount_due": "45000.00", "amount_paid": "30000.00", "balance": "15000.00" },
                "timetable": [
                    { "day_of_week": "Monday", "course_name": "Data Structures", "start_time": "8:00:00", "end_time": "10:00:00", "venue": "LH 1" }
                ],
                "missed_exams": []
            }),
        ),
        (
            "customers",
            serde_json::json!({ "name": name, "phone": msisdn, "city": "Nairobi", "registered": "2024-01-01T00:00:00Z" }),
        ),
        (
            "wallets",
            serde_json::json!({ "balance_cents": 100_000_000 }),
        ),
        ("loans", serde_json::json!({ "outstanding_cents": 0 })),
    ];
    docs.map(|(collection, value)| RecordWrite {
        collection: collection.to_string(),
        id: msisdn.clone(),
        value,
        merge: false,
    })
}

/// What seed files may use: they are minijinja templates, so sample dates can be relative to
/// today (`{{ today | add_days(3) }}T09:00:00{{ offset }}`) and never fall into the past.
#[derive(Debug, Clone)]
pub struct SeedContext {
    /// Today in the seed time zone, `YYYY-MM-DD`.
    pub today: String,
    /// That zone's UTC offset today, `+10:00`.
    pub offset: String,
}

impl SeedContext {
    /// The context of `config` (its seed time zone and clock).
    pub fn of(config: &Config) -> SeedContext {
        SeedContext {
            today: config.seed_today().to_string(),
            offset: config.seed_offset(),
        }
    }

    /// Renders one seed file's text.
    ///
    /// # Errors
    /// Template syntax or evaluation errors, with their location.
    pub fn render(&self, text: &str) -> Result<String, String> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        let mut env = minijinja::Environment::new();
        env.set_keep_trailing_newline(true);
        env.add_filter("add_days", crate::flow::add_days_filter);
        env.add_filter("epoch_ms", crate::flow::epoch_ms_filter);
        env.render_str(
            text,
            minijinja::context! { today => self.today, offset => self.offset },
        )
        .map_err(|e| format!("{e:#}"))
    }
}

/// A sample data file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("seed: {0}")]
pub struct SeedError(pub String);

fn yaml_key(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Converts YAML to JSON; mapping keys that are numbers or booleans become strings.
pub fn yaml_to_json(v: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map(Value::from).unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .filter_map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Number(n) => n.to_string(),
                        Y::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((key, yaml_to_json(v)))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_files_become_records_with_string_ids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("students.yaml"),
            "254700000001:\n  full_name: Test Student\n  results: [{grade: A}]\n",
        )
        .unwrap();
        let store = Store::temporary().unwrap();
        let ctx = SeedContext {
            today: "2026-01-05".into(),
            offset: "+10:00".into(),
        };
        assert_eq!(load_dir(store.records(), dir.path(), &ctx).unwrap(), 1);
        assert_eq!(
            store.records().get("students", "254700000001").unwrap(),
            Some(json!({"full_name": "Test Student", "results": [{"grade": "A"}]}))
        );
    }
}
