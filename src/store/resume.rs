//! Resume points as the store keeps them: the tree `flow_resume`, one JSON document per
//! subscriber and route (what a point holds, and when it expires, is the flow app's).

use super::{Store, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Tree;

/// The tree of resume points.
const TREE: &str = "flow_resume";

/// A handle on the resume points (cheap to clone).
#[derive(Clone, Debug)]
pub struct ResumePoints {
    tree: Tree,
}

impl Store {
    /// The resume points of the flows that opted in.
    ///
    /// # Errors
    /// sled errors.
    pub fn resume_points(&self) -> Result<ResumePoints, StoreError> {
        Ok(ResumePoints {
            tree: self.tree(TREE)?,
        })
    }
}

impl ResumePoints {
    /// The point under `key`.
    ///
    /// # Errors
    /// sled errors, or [`StoreError::Codec`] for a document that does not parse.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.tree.get(key)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Writes `point` under `key`, replacing any.
    ///
    /// # Errors
    /// sled or serialisation errors.
    pub fn put<T: Serialize>(&self, key: &str, point: &T) -> Result<(), StoreError> {
        self.tree.insert(key, serde_json::to_vec(point)?)?;
        Ok(())
    }

    /// Removes the point under `key`, if any.
    ///
    /// # Errors
    /// sled errors.
    pub fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.tree.remove(key)?;
        Ok(())
    }

    /// Removes every point `expired` says so of, and every one that does not parse; answers
    /// how many went. Entries that cannot be read are skipped.
    pub fn remove_expired<T: DeserializeOwned>(&self, expired: impl Fn(&T) -> bool) -> usize {
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
