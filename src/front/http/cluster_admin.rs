//! What the admin listener reads from the cluster's Redis in cluster mode (docs/cluster.md):
//! the end records, journal, call records and outbox items every node shares, instead of the
//! node's own store. `None` where the node's own store holds the answer.

use super::admin::AdminState;
use crate::retention::Kind;
use crate::session::state::EndRecord;
use serde_json::Value;

/// Every document of `kind` the cluster keeps, or `None` when it is the node's own.
pub async fn documents(state: &AdminState, kind: Kind) -> Option<Result<Vec<Value>, String>> {
    let core = state.registry.core();
    let cluster = core.cluster.as_ref()?;
    let records = core.store.shared_records()?;
    let outbox = core.outbox();
    Some(crate::retention::cluster_documents(&cluster.dialogues, records, &outbox, kind).await)
}

/// The cluster's end records, in the order they ended, or `None` when they are the node's
/// own.
pub async fn end_records(state: &AdminState) -> Option<Result<Vec<EndRecord>, String>> {
    let docs = documents(state, Kind::Ended).await?;
    Some(docs.map(|docs| {
        docs.into_iter()
            .filter_map(|d| serde_json::from_value(d).ok())
            .collect()
    }))
}
