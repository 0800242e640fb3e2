//! `serve --watch`: reloads the flows when their files change, for flow authors at work.
//!
//! The flows folder and the configuration file's folder are watched (folders, not files: an
//! editor that saves by renaming replaces the file a watch would hold). A change to a `.yaml`,
//! `.yml` or `.toml` file there, once the changes have been quiet for a moment, runs the same
//! reload as SIGHUP ([`super::Running::reload`]): the same checks, a refused flow keeps the old
//! one serving, and live dialogues finish on the version they started with.

use notify::{EventKind, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long changes must be quiet before a reload: an editor's save is several events.
const QUIET: Duration = Duration::from_millis(200);

/// A watch on the flows; dropped, it stops.
#[derive(Debug)]
pub struct FlowWatch {
    _watcher: notify::RecommendedWatcher,
    changes: mpsc::UnboundedReceiver<PathBuf>,
}

fn relevant(path: &Path) -> bool {
    path.extension()
        .is_some_and(|x| x == "yaml" || x == "yml" || x == "toml")
}

impl FlowWatch {
    /// Watches `flows_dir` and the folder of `config_file` (when given).
    ///
    /// # Errors
    /// The platform's watch could not be set up on a folder.
    pub fn start(flows_dir: &Path, config_file: Option<&Path>) -> notify::Result<FlowWatch> {
        let (tx, changes) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
                for path in event.paths.into_iter().filter(|p| relevant(p)) {
                    let _ = tx.send(path);
                }
            })?;
        watcher.watch(flows_dir, RecursiveMode::NonRecursive)?;
        if let Some(dir) = config_file.and_then(Path::parent) {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if dir.canonicalize().ok() != flows_dir.canonicalize().ok() {
                watcher.watch(dir, RecursiveMode::NonRecursive)?;
            }
        }
        tracing::info!(dir = %flows_dir.display(), "watching the flows for changes");
        Ok(FlowWatch {
            _watcher: watcher,
            changes,
        })
    }

    /// Waits for a change, then for the changes to be quiet; returns the files changed.
    pub async fn changed(&mut self) -> Vec<PathBuf> {
        let Some(first) = self.changes.recv().await else {
            return std::future::pending().await;
        };
        let mut files = vec![first];
        while let Ok(Some(p)) = tokio::time::timeout(QUIET, self.changes.recv()).await {
            if !files.contains(&p) {
                files.push(p);
            }
        }
        files
    }
}
