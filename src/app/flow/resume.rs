//! Resume points: the state of an opted-in flow's last answered hop, kept per MSISDN and route
//! in the store ([`ResumePoints`]), so that a dialogue cut by the network, by an
//! aggregator's Incomplete report, by the idle timeout, or superseded by a new dialogue from
//! the same number, can be continued when the number dials the same service code again.
//!
//! A point is written after every answered hop that continues (CON) and removed when the flow
//! ends the dialogue itself (END), so only cut dialogues leave one behind. It is valid for the
//! flow's window from that hop (wall clock, not the flows' fixed demo clock) and purged after;
//! expired points are also swept from time to time as points are written.

use crate::clock::now_ms;
use crate::flow::FlowState;
use crate::store::{ResumePoints, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Expired points are swept once every this many writes.
const SWEEP_EVERY: u64 = 256;

/// One resume point.
#[derive(Debug, Serialize, Deserialize)]
struct Point {
    /// When the hop it was taken after was answered.
    saved_ms: u64,
    /// When it stops being valid.
    expires_ms: u64,
    state: FlowState,
}

/// The resume points of one flow app.
#[derive(Debug)]
pub(super) struct Points {
    tree: ResumePoints,
    window: Duration,
    writes: AtomicU64,
}

/// The key of a subscriber's point on a route: `msisdn|service code`.
pub(super) fn key(msisdn: &str, route: &str) -> String {
    format!("{msisdn}|{route}")
}

impl Points {
    pub(super) fn new(tree: ResumePoints, window: Duration) -> Points {
        Points {
            tree,
            window,
            writes: AtomicU64::new(0),
        }
    }

    /// The state saved under `key`, if still within its window.
    pub(super) async fn find(&self, key: &str) -> Option<FlowState> {
        match self.tree.get::<Point>(key).await {
            Ok(Some(p)) if p.expires_ms > now_ms() => Some(p.state),
            Ok(Some(_)) | Err(StoreError::Codec(_)) => {
                self.clear(key).await;
                None
            }
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "resume point read failed");
                None
            }
        }
    }

    /// Saves `state` as the point to come back to.
    pub(super) async fn save(&self, key: &str, state: &FlowState) {
        let saved_ms = now_ms();
        let point = Point {
            saved_ms,
            expires_ms: saved_ms.saturating_add(self.window.as_millis() as u64),
            state: state.clone(),
        };
        if let Err(e) = self.tree.put(key, &point, point.expires_ms).await {
            tracing::error!(error = %e, "resume point write failed");
        }
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let tree = self.tree.clone();
            tokio::task::spawn_blocking(move || sweep(&tree, now_ms()));
        }
    }

    /// Removes the point under `key` (the dialogue ended normally).
    pub(super) async fn clear(&self, key: &str) {
        if let Err(e) = self.tree.remove(key).await {
            tracing::error!(error = %e, "resume point removal failed");
        }
    }
}

/// Removes every point expired at `now`; answers how many.
pub(super) fn sweep(tree: &ResumePoints, now: u64) -> usize {
    tree.remove_expired::<Point>(|p| p.expires_ms <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> FlowState {
        serde_json::from_value(serde_json::json!({
            "version": "v", "screen": "amount", "lang": "en", "history": ["home"]
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn points_expire_and_are_swept() {
        let store = crate::store::Store::temporary().unwrap();
        let tree = store.resume_points().unwrap();
        let points = Points::new(tree.clone(), Duration::from_secs(60));
        points.save(&key("254700000001", "*1#"), &state()).await;
        assert_eq!(
            points
                .find(&key("254700000001", "*1#"))
                .await
                .unwrap()
                .screen(),
            "amount"
        );
        assert!(points.find(&key("254700000001", "*2#")).await.is_none());
        assert!(points.find(&key("254700000002", "*1#")).await.is_none());
        // Nothing is expired now; everything is a minute and a bit from now.
        assert_eq!(sweep(&tree, now_ms()), 0);
        assert_eq!(sweep(&tree, now_ms() + 61_000), 1);
        assert!(points.find(&key("254700000001", "*1#")).await.is_none());
    }
}
