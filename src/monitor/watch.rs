//! File-system events for the folders workers write into (their task folder
//! and `ipc/`), so a question is seen within milliseconds of its rename, not
//! at the next poll. Where the system cannot watch (no inotify, a limit
//! reached), the runner's regular poll still finds everything, only later.

use std::path::{Path, PathBuf};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Watches folders; the receiver that comes with it yields the folder in
/// which something happened.
pub struct FolderWatch {
    watcher: Option<RecommendedWatcher>,
}

impl FolderWatch {
    /// The watch, and the stream of folders where something happened (kept
    /// apart, so a select loop can wait on the stream while it changes what
    /// is watched).
    pub fn new() -> (Self, mpsc::UnboundedReceiver<PathBuf>) {
        let (tx, events) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                // Reading a folder is an event too; reacting to our own
                // reads would loop forever.
                if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
                    return;
                }
                for path in event.paths {
                    if let Some(folder) = path.parent() {
                        let _ = tx.send(folder.to_path_buf());
                    }
                }
            }
        })
        .ok();
        (Self { watcher }, events)
    }

    /// Start watching `folder` (not recursively). Failing is not an error:
    /// polling covers it.
    pub fn watch(&mut self, folder: &Path) -> bool {
        self.watcher
            .as_mut()
            .is_some_and(|w| w.watch(folder, RecursiveMode::NonRecursive).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_rename_into_a_watched_folder_is_reported() {
        let temp = tempfile::tempdir().expect("tempdir");
        let ipc = temp.path().join("ipc");
        std::fs::create_dir(&ipc).expect("mkdir");
        let (mut watch, mut changed) = FolderWatch::new();
        assert!(watch.watch(&ipc), "inotify is available here");
        std::fs::write(temp.path().join("q.tmp"), "Proceed?").expect("write");
        std::fs::rename(temp.path().join("q.tmp"), ipc.join("001.question")).expect("rename");
        let folder = tokio::time::timeout(Duration::from_secs(5), changed.recv())
            .await
            .expect("an event in time")
            .expect("a folder");
        assert_eq!(folder, ipc);
        // Reading the folder (as the runner does on every event) must not
        // cause events of its own.
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(200), changed.recv()).await
        {}
        let _ = std::fs::read_dir(&ipc).expect("list").count();
        let _ = std::fs::read_to_string(ipc.join("001.question")).expect("read");
        let quiet = tokio::time::timeout(Duration::from_millis(300), changed.recv()).await;
        assert!(quiet.is_err(), "reads caused an event: {quiet:?}");
    }
}
