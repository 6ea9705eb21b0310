//! File-system events for the folders workers write into (their task folder
//! and `ipc/`), so a question is seen within milliseconds of its rename, not
//! at the next poll. Where the system cannot watch (no inotify, a limit
//! reached), the runner's regular poll still finds everything, only later.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

pub use imp::FolderWatch;

/// Linux: inotify itself. Adding a watch is one system call on the caller's
/// thread (a watcher with its own thread would make every launch wait for
/// that thread to be scheduled, which a busy machine delays by
/// milliseconds); events are read on the runtime's reactor.
#[cfg(target_os = "linux")]
mod imp {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, PoisonError};

    use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;
    use tokio::sync::oneshot;

    use super::*;

    /// What makes a question, an answer or a cancel appear (`.done` is
    /// left out below, see `is_done_marker`): a
    /// file finished, moved in or out, made or removed. Reads and opens are
    /// left out, so the runner's own looks never wake it.
    const CHANGES: WatchMask = WatchMask::CREATE
        .union(WatchMask::CLOSE_WRITE)
        .union(WatchMask::MOVED_TO)
        .union(WatchMask::MOVED_FROM)
        .union(WatchMask::DELETE)
        // A worker may plant a symlink where a folder was: never watch
        // through it.
        .union(WatchMask::DONT_FOLLOW)
        .union(WatchMask::ONLYDIR);

    type Folders = Arc<Mutex<HashMap<WatchDescriptor, PathBuf>>>;

    /// How many watches stay in place before finished folders are
    /// unwatched.
    pub(super) const KEEP_WATCHES: usize = 2048;

    /// Watches folders; the receiver that comes with it yields the folder
    /// in which something happened.
    pub struct FolderWatch {
        watches: Option<Watches>,
        /// Shared with the reader, which turns descriptors into folders.
        folders: Folders,
        /// The other way round, for `unwatch`; only the owner uses it.
        descriptors: HashMap<PathBuf, WatchDescriptor>,
        /// Tells the reader to stop and hand the instance over for closing.
        stop: Option<oneshot::Sender<()>>,
        reader: Option<tokio::task::JoinHandle<()>>,
    }

    impl FolderWatch {
        /// The watch, and the stream of folders where something happened
        /// (kept apart, so a select loop can wait on the stream while it
        /// changes what is watched). Must be called inside a tokio runtime.
        pub fn new() -> (Self, mpsc::UnboundedReceiver<PathBuf>) {
            let (tx, events) = mpsc::unbounded_channel();
            let folders = Folders::default();
            let (stop, stopped) = oneshot::channel();
            let started = Inotify::init().ok().and_then(|inotify| {
                let watches = inotify.watches();
                let interest = Interest::READABLE;
                // SAFETY: an `Inotify` owns its descriptor and closes it
                // only when the last handle to it (this one or `watches`)
                // is dropped; `as_raw_fd` always gives that descriptor.
                let registered = unsafe { AsyncFd::register_with_interest(inotify, interest) };
                let readable = registered.ok()?;
                let reader = tokio::spawn(forward(readable, folders.clone(), tx, stopped));
                Some((watches, reader))
            });
            let (watches, reader) = started.unzip();
            (
                Self {
                    watches,
                    folders,
                    descriptors: HashMap::new(),
                    stop: Some(stop),
                    reader,
                },
                events,
            )
        }

        /// Stop watching; the stream of changes ends. The inotify instance
        /// is closed on a thread of its own: closing one that held many
        /// watches waits for the kernel to retire them (18 ms after a
        /// 1000-task sweep here), which the run's reports need not wait for.
        pub async fn close(mut self) {
            // The reader's handle must be the last one, or this one would
            // close the instance here.
            self.watches = None;
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(reader) = self.reader.take() {
                let _ = reader.await;
            }
        }

        /// Start watching `folder` (not recursively). Failing is not an
        /// error: polling covers it.
        pub fn watch(&mut self, folder: &Path) -> bool {
            let Some(watches) = self.watches.as_mut() else {
                return false;
            };
            match watches.add(folder, CHANGES) {
                Ok(wd) => {
                    lock(&self.folders).insert(wd.clone(), folder.to_path_buf());
                    self.descriptors.insert(folder.to_path_buf(), wd);
                    true
                }
                Err(_) => false,
            }
        }

        /// A folder no longer needs watching: stop watching it once many
        /// are watched, so a long sweep stays far from the system's limit
        /// (often 8,192 watches). Below that, the watch stays: removing
        /// one is a costly system call (4% of the runner's time in a
        /// 1000-task sweep), and a stale watch only wakes the runner for a
        /// look that finds nothing.
        pub fn unwatch(&mut self, folder: &Path) {
            let Some(watches) = self.watches.as_mut() else {
                return;
            };
            if self.descriptors.len() < KEEP_WATCHES {
                return;
            }
            if let Some(wd) = self.descriptors.remove(folder) {
                lock(&self.folders).remove(&wd);
                let _ = watches.remove(wd);
            }
        }
    }

    fn lock(folders: &Folders) -> std::sync::MutexGuard<'_, HashMap<WatchDescriptor, PathBuf>> {
        folders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Read events as they come and send the folder each happened in, until
    /// told to stop or the receiver is dropped; then close the instance
    /// apart.
    async fn forward(
        mut readable: AsyncFd<Inotify>,
        folders: Folders,
        tx: mpsc::UnboundedSender<PathBuf>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let ready = tokio::select! {
                biased;
                _ = &mut stop => break,
                ready = readable.readable_mut() => ready,
            };
            let Ok(mut guard) = ready else {
                break;
            };
            let read = guard.try_io(|inotify| {
                let events = inotify.get_mut().read_events(&mut buffer)?;
                Ok(events
                    .filter(|e| {
                        !e.mask
                            .intersects(EventMask::IGNORED | EventMask::Q_OVERFLOW)
                            && !is_done_marker(e.name)
                    })
                    .map(|e| e.wd)
                    .collect::<Vec<_>>())
            });
            let wds = match read {
                Ok(Ok(wds)) => wds,
                Ok(Err(_)) => break,
                Err(_would_block) => continue,
            };
            let changed: Vec<PathBuf> = {
                let folders = lock(&folders);
                wds.iter()
                    .filter_map(|wd| folders.get(wd).cloned())
                    .collect()
            };
            if changed.into_iter().any(|folder| tx.send(folder).is_err()) {
                break;
            }
        }
        close_apart(readable.into_inner());
    }

    /// Whether an event is about `ipc/.done` itself. Nobody waits on it: it
    /// is read once, at the worker's end (its closing look). Reported, it
    /// made nearly every task's end ask for an urgent read of its `ipc/`
    /// on the reading thread, a wake and a folder listing that found
    /// nothing new. Questions (`NNN.question`), their `NNN.done` and
    /// `.cancel` still report.
    fn is_done_marker(name: Option<&std::ffi::OsStr>) -> bool {
        name.is_some_and(|name| name == crate::state::layout::DONE_MARKER)
    }

    /// Drop the last handle to an inotify instance on a short-lived thread.
    /// When no thread can be started, `spawn` drops the closure, and the
    /// instance with it, here: correct, only not apart.
    fn close_apart(inotify: Inotify) {
        let builder = std::thread::Builder::new().name("dispatch-inotify-close".to_owned());
        let _ = crate::util::thread::spawn(builder, move || drop(inotify));
    }
}

/// Elsewhere: notify's portable watcher (FSEvents on macOS).
#[cfg(not(target_os = "linux"))]
mod imp {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

    use super::*;

    /// Watches folders; the receiver that comes with it yields the folder
    /// in which something happened.
    pub struct FolderWatch {
        watcher: Option<RecommendedWatcher>,
        /// Set by `close`: a watcher may stop its thread only after it was
        /// dropped, and must not report anything once closed.
        closed: Arc<AtomicBool>,
    }

    impl FolderWatch {
        /// The watch, and the stream of folders where something happened.
        pub fn new() -> (Self, mpsc::UnboundedReceiver<PathBuf>) {
            let (tx, events) = mpsc::unbounded_channel();
            let closed = Arc::new(AtomicBool::new(false));
            let stopped = closed.clone();
            let watcher =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    if stopped.load(Ordering::Acquire) {
                        return;
                    }
                    if let Ok(event) = event {
                        // Reading a folder is an event too; reacting to our
                        // own reads would loop forever.
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
            (Self { watcher, closed }, events)
        }

        /// Start watching `folder` (not recursively). Failing is not an
        /// error: polling covers it.
        pub fn watch(&mut self, folder: &Path) -> bool {
            self.watcher
                .as_mut()
                .is_some_and(|w| w.watch(folder, RecursiveMode::NonRecursive).is_ok())
        }

        /// Stop watching `folder`.
        pub fn unwatch(&mut self, folder: &Path) {
            if let Some(w) = self.watcher.as_mut() {
                let _ = w.unwatch(folder);
            }
        }

        /// Stop watching; the stream of changes ends (when the watcher's
        /// thread lets go of the sender), with nothing reported after this.
        pub async fn close(self) {
            self.closed.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_rename_into_a_watched_folder_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Canonical, as the runner's paths are: FSEvents (macOS) reports
        // /private/var/... for a temporary folder under /var/....
        let temp = std::fs::canonicalize(dir.path()).expect("canonical");
        let ipc = temp.join("ipc");
        std::fs::create_dir(&ipc).expect("mkdir");
        let (mut watch, mut changed) = FolderWatch::new();
        assert!(watch.watch(&ipc), "watching works here");
        std::fs::write(temp.join("q.tmp"), "Proceed?").expect("write");
        std::fs::rename(temp.join("q.tmp"), ipc.join("001.question")).expect("rename");
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

    /// `ipc/.done` is read at the worker's end, never on its own event, so
    /// making it reports nothing; a question made after it still does.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_done_marker_alone_reports_no_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ipc = dir.path().join("ipc");
        std::fs::create_dir(&ipc).expect("mkdir");
        let (mut watch, mut changed) = FolderWatch::new();
        assert!(watch.watch(&ipc), "watching works here");
        std::fs::write(ipc.join(".done"), "").expect("write");
        let quiet = tokio::time::timeout(Duration::from_millis(300), changed.recv()).await;
        assert!(quiet.is_err(), ".done caused an event: {quiet:?}");
        std::fs::write(ipc.join("001.done"), "").expect("write");
        let folder = tokio::time::timeout(Duration::from_secs(5), changed.recv())
            .await
            .expect("an event in time")
            .expect("a folder");
        assert_eq!(folder, ipc);
    }

    /// Closing ends the stream of changes, even with changes still coming.
    #[tokio::test]
    async fn closing_ends_the_stream_of_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Canonical, as the runner's paths are: FSEvents (macOS) reports
        // /private/var/... for a temporary folder under /var/....
        let temp = std::fs::canonicalize(dir.path()).expect("canonical");
        let ipc = temp.join("ipc");
        std::fs::create_dir(&ipc).expect("mkdir");
        let (mut watch, mut changed) = FolderWatch::new();
        assert!(watch.watch(&ipc), "watching works here");
        std::fs::write(ipc.join(".done"), "").expect("write");
        watch.close().await;
        std::fs::write(ipc.join("later"), "").expect("write");
        let mut seen = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), changed.recv()).await {
                Ok(Some(folder)) => {
                    assert_eq!(folder, ipc);
                    seen += 1;
                }
                Ok(None) => break,
                Err(_) => panic!("the stream did not end after close"),
            }
        }
        assert!(
            seen <= 1,
            "nothing is reported after close ({seen} changes)"
        );
    }

    /// Shows the Linux-only test below as ignored on other platforms rather
    /// than leave it out silently: it needs inotify's watch budget.
    #[cfg(not(target_os = "linux"))]
    #[test]
    #[ignore = "Linux only: the inotify watch budget"]
    fn finished_folders_are_unwatched_once_many_are_watched() {}

    /// Below the threshold a finished folder stays watched; past it, it is
    /// unwatched and quiet while the others still report.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn finished_folders_are_unwatched_once_many_are_watched() {
        let temp = tempfile::tempdir().expect("tempdir");
        let folders: Vec<_> = (0..=imp::KEEP_WATCHES)
            .map(|i| temp.path().join(format!("f{i}")))
            .collect();
        let (mut watch, mut changed) = FolderWatch::new();
        let (first, last) = (&folders[0], &folders[imp::KEEP_WATCHES]);
        std::fs::create_dir(first).expect("mkdir");
        assert!(watch.watch(first));
        watch.unwatch(first);
        std::fs::write(first.join("001.question"), "").expect("write");
        let folder = tokio::time::timeout(Duration::from_secs(5), changed.recv())
            .await
            .expect("an event in time")
            .expect("a folder");
        assert_eq!(&folder, first, "still watched: few are");
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(300), changed.recv()).await
        {}

        for folder in &folders[1..] {
            std::fs::create_dir(folder).expect("mkdir");
            assert!(watch.watch(folder));
        }
        watch.unwatch(first);
        std::fs::write(first.join("again"), "").expect("write");
        std::fs::write(last.join("001.question"), "").expect("write");
        let mut seen_last = false;
        while let Ok(Some(folder)) =
            tokio::time::timeout(Duration::from_millis(300), changed.recv()).await
        {
            assert_ne!(&folder, first, "unwatched: many are");
            seen_last |= &folder == last;
        }
        assert!(seen_last, "the others still report");
    }
}
