//! Resume points as the store keeps them: the tree `flow_resume`, one JSON document per
//! subscriber and route (what a point holds, and when it expires, is the flow app's); in
//! cluster mode, the key `ussd:resume:<key>` in the cluster's Redis, expiring with the point.

use super::redis::Redis;
use super::{Store, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Tree;

/// The tree of resume points.
const TREE: &str = "flow_resume";

fn shared_key(key: &str) -> String {
    format!("ussd:resume:{key}")
}

/// A handle on the resume points (cheap to clone).
#[derive(Clone, Debug)]
pub struct ResumePoints {
    tree: Tree,
    /// The cluster's Redis, which then keeps them instead.
    shared: Option<Redis>,
}

impl Store {
    /// The resume points of the flows that opted in.
    ///
    /// # Errors
    /// sled errors.
    pub fn resume_points(&self) -> Result<ResumePoints, StoreError> {
        Ok(ResumePoints {
            tree: self.tree(TREE)?,
            shared: self.shared.as_ref().map(|s| s.redis().clone()),
        })
    }
}

impl ResumePoints {
    /// The point under `key`.
    ///
    /// # Errors
    /// Store errors, or [`StoreError::Codec`] for a document that does not parse.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let bytes: Option<Vec<u8>> = match &self.shared {
            Some(redis) => redis.query(redis::cmd("GET").arg(shared_key(key))).await?,
            None => self.tree.get(key)?.map(|v| v.to_vec()),
        };
        Ok(bytes.map(|b| serde_json::from_slice(&b)).transpose()?)
    }

    /// Writes `point` under `key`, replacing any; it is valid until `expires_ms` (Redis then
    /// forgets it by itself; on sled, [`ResumePoints::remove_expired`] sweeps it).
    ///
    /// # Errors
    /// Store or serialisation errors.
    pub async fn put<T: Serialize>(
        &self,
        key: &str,
        point: &T,
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        let doc = serde_json::to_vec(point)?;
        match &self.shared {
            Some(redis) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(shared_key(key))
                    .arg(doc)
                    .arg("PXAT")
                    .arg(expires_ms);
                redis.query::<()>(&cmd).await?;
            }
            None => {
                self.tree.insert(key, doc)?;
            }
        }
        Ok(())
    }

    /// Removes the point under `key`, if any.
    ///
    /// # Errors
    /// Store errors.
    pub async fn remove(&self, key: &str) -> Result<(), StoreError> {
        match &self.shared {
            Some(redis) => {
                redis
                    .query::<()>(redis::cmd("DEL").arg(shared_key(key)))
                    .await?
            }
            None => {
                self.tree.remove(key)?;
            }
        }
        Ok(())
    }

    /// Removes every point `expired` says so of, and every one that does not parse; answers
    /// how many went. Entries that cannot be read are skipped. (Redis expires its own.)
    pub fn remove_expired<T: DeserializeOwned>(&self, expired: impl Fn(&T) -> bool) -> usize {
        if self.shared.is_some() {
            return 0;
        }
        let mut removed = 0;
        for (k, v) in self.tree.iter().flatten() {
            let gone = serde_json::from_slice::<T>(&v).map_or(true, |p| expired(&p));
            if gone && self.tree.remove(k).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}
