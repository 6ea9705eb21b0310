//! The state folder, `.dispatch/`, laid out as the dispatch skill lays it out
//! so a person (or the skill itself) can read a task's progress with `cat`:
//!
//! ```text
//! .dispatch/
//!   tasks/<id>/plan.md output.md context.md ipc/ prompt.md worker.log task.json
//!   runs/<run-id>/run.json manifest.yaml events.jsonl tasks/<id>/ (archived)
//!   lock
//! ```
//!
//! Everything here treats the folder as shared with untrusted workers: state
//! files are replaced atomically, never written through a symlink, and an
//! earlier run's files are archived, never overwritten.

pub mod beneath;
#[cfg(target_os = "linux")]
pub mod exchange;
pub mod fsutil;
pub mod layout;
pub mod lock;
pub mod plan_watch;
pub mod watch;
pub mod writer;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::state::fsutil::write_atomic;

pub use layout::DIR_NAME;

/// Errors of the state folder: which file, and what the system said.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: refusing to write through a symbolic link")]
    Symlink { path: PathBuf },
    #[error("{0}")]
    Locked(String),
}

impl StateError {
    pub fn io(path: &Path, source: io::Error) -> Self {
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The project's `.dispatch/` folder.
#[derive(Clone, Debug)]
pub struct StateDir {
    /// The project root (the folder that holds `.dispatch/`).
    pub root: PathBuf,
    pub dir: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            dir: root.join(DIR_NAME),
        }
    }

    pub fn tasks_dir(&self) -> PathBuf {
        self.dir.join(layout::TASKS)
    }

    pub fn task_dir(&self, id: &str) -> PathBuf {
        self.tasks_dir().join(id)
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join(layout::RUNS)
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.runs_dir().join(run_id)
    }

    /// Create the folder and keep it out of `git status`.
    pub fn prepare(&self) -> Result<(), StateError> {
        ensure_dir(&self.dir)?;
        ensure_dir(&self.tasks_dir())?;
        ensure_dir(&self.runs_dir())?;
        exclude_from_git(&self.root);
        Ok(())
    }

    /// Move an earlier run's files of task `id` into that run's folder, so a
    /// new run starts clean without destroying anything.
    pub fn archive_task(&self, id: &str) -> Result<Option<PathBuf>, StateError> {
        let current = self.task_dir(id);
        match std::fs::symlink_metadata(&current) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StateError::io(&current, e)),
            Ok(_) => {}
        }
        let owner = read_run_id(&current.join("task.json")).unwrap_or_else(|| "unknown".to_owned());
        let archive = self.run_dir(&owner).join("tasks");
        ensure_dir(&archive)?;
        let mut target = archive.join(id);
        let mut n = 1;
        while target.exists() {
            n += 1;
            target = archive.join(format!("{id}.{n}"));
        }
        std::fs::rename(&current, &target).map_err(|e| StateError::io(&current, e))?;
        Ok(Some(target))
    }

    /// The most recent run's id. Run ids sort by the second they started
    /// in; two runs in the same second are told apart by the start time
    /// in their `run.json`, to the millisecond.
    pub fn latest_run(&self) -> Option<String> {
        let mut runs: Vec<String> = std::fs::read_dir(self.runs_dir())
            .ok()?
            .flatten()
            .filter(|e| e.path().join("run.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        runs.sort();
        let last = runs.pop()?;
        let second = last.get(..15).unwrap_or(&last).to_owned();
        let started = |run: &str| {
            read_bounded(&self.run_dir(run).join("run.json"), 16 * 1024 * 1024)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|v| v["started_at"].as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        runs.into_iter()
            .filter(|r| r.starts_with(&second))
            .chain([last])
            .max_by_key(|r| (started(r), r.clone()))
    }
}

fn read_run_id(task_json: &Path) -> Option<String> {
    let text = read_bounded(task_json, 1 << 20).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let id = value.get("run_id")?.as_str()?;
    let safe = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    safe.then(|| id.to_owned())
}

/// Create a folder (and its parents); a symlink where the folder should be
/// is refused, since a worker could have planted it.
pub fn ensure_dir(path: &Path) -> Result<(), StateError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(StateError::Symlink {
            path: path.to_path_buf(),
        }),
        Ok(meta) if meta.is_dir() => Ok(()),
        _ => std::fs::create_dir_all(path).map_err(|e| StateError::io(path, e)),
    }
}

/// Replace a state file atomically; a symlink in the file's place is
/// replaced, never followed. On Linux a file written before is rewritten
/// through its `.NAME.swap` sibling and an exchange (see [`exchange`]), so
/// no inode is made or freed.
///
/// The folder is opened as [`beneath::Dir::open`] does and the file written
/// relative to it: a symlink a worker planted anywhere from `.dispatch`
/// down (its task folder, `ipc/`, `cli/`) is refused, never written
/// through.
pub fn write_state(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    write_state_in(&mut beneath::Folders::default(), path, bytes)
}

/// [`write_state`] with the folder opened through `folders`, which a
/// thread writing batches of state files keeps (`writer.rs`). A folder
/// that is not there yet is made (a symlink in its place is refused).
pub fn write_state_in(
    folders: &mut beneath::Folders,
    path: &Path,
    bytes: &[u8],
) -> Result<(), StateError> {
    let (parent, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => (parent, name),
        _ => return write_atomic(path, bytes).map_err(|e| StateError::io(path, e)),
    };
    let refused = |e: io::Error| {
        if beneath::is_planted(&e) {
            StateError::Symlink {
                path: parent.to_path_buf(),
            }
        } else {
            StateError::io(parent, e)
        }
    };
    // Opened first and made only when missing: a look before each write
    // cost a `stat` per state file, and the open refuses a link by itself.
    if let Err(e) = folders.open(parent) {
        if e.kind() != io::ErrorKind::NotFound {
            return Err(refused(e));
        }
        ensure_dir(parent)?;
    }
    let dir = folders.open(parent).map_err(refused)?;
    #[cfg(target_os = "linux")]
    if exchange::replace_in(dir, name, bytes).map_err(|e| StateError::io(path, e))? {
        return Ok(());
    }
    dir.write_atomic(name, bytes)
        .map_err(|e| StateError::io(path, e))
}

/// Write a value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    write_state(path, &pretty_json(value))
}

/// A state file's bytes as dispatch writes them: pretty JSON and a line
/// break.
pub fn pretty_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(value).unwrap_or_default();
    text.push(b'\n');
    text
}

/// A folder dispatch makes afresh, and the first state files in it. The
/// check [`write_state`] makes before every write (that the folder is not
/// a symlink) is made once here, when the folder is made, and its files
/// are written once (a temporary file, renamed), with no sibling to
/// exchange with: a large sweep makes a thousand such folders before its
/// first worker starts.
pub struct NewFolder {
    path: PathBuf,
    /// The folder, opened without following links (its files are written
    /// relative to it, so a link planted in its place later is not
    /// followed either).
    dir: beneath::Dir,
}

impl NewFolder {
    /// Make `path`, which must not exist yet (a folder that does is taken
    /// as it is, unless it is a symlink).
    pub fn make(path: &Path) -> Result<Self, StateError> {
        match std::fs::create_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => ensure_dir(path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => ensure_dir(path)?,
            Err(e) => return Err(StateError::io(path, e)),
        }
        Self::opened(path)
    }

    fn opened(path: &Path) -> Result<Self, StateError> {
        let dir = beneath::Dir::open(path).map_err(|e| refused(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make `path`; when something is already there (an earlier run's
    /// folder), `archive` moves it away first. Trying the folder first saves
    /// a look per task in a fresh project.
    pub fn make_archiving<F>(path: &Path, archive: F) -> Result<Self, StateError>
    where
        F: FnOnce() -> Result<Option<PathBuf>, StateError>,
    {
        match std::fs::create_dir(path) {
            Ok(()) => Self::opened(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                archive()?;
                Self::make(path)
            }
            Err(_) => Self::make(path),
        }
    }

    /// Make a folder inside this one (a task's `ipc/`): made relative to
    /// this folder's descriptor, so a link planted in this folder's place
    /// since leads nowhere, and no path is walked from the root again. One
    /// found already there is taken if it is a folder, and refused if it is
    /// a link or anything else. It is not opened: nothing is written into
    /// it now.
    pub fn make_folder(&self, name: &str) -> Result<(), StateError> {
        let path = || self.path.join(name);
        match self.dir.make_folder(name) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match self.dir.kind(name) {
                Ok(Some(libc::S_IFDIR)) => Ok(()),
                Ok(_) => Err(StateError::Symlink { path: path() }),
                Err(e) => Err(StateError::io(&path(), e)),
            },
            Err(e) => Err(StateError::io(&path(), e)),
        }
    }

    /// Write a file that is not there yet: a temporary file, renamed.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        self.dir
            .write_atomic(name, bytes)
            .map_err(|e| StateError::io(&self.path.join(name), e))
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        self.write(name, &pretty_json(value))
    }

    /// Make the file `name` if it is not there (empty), never through a
    /// link; one that is there keeps what it holds.
    pub fn create(&self, name: &str) -> Result<(), StateError> {
        self.dir
            .open_file(std::ffi::OsStr::new(name), libc::O_CREAT | libc::O_APPEND)
            .map(drop)
            .map_err(|e| StateError::io(&self.path.join(name), e))
    }
}

/// A link (or a file) found where a folder of the state folder should be is
/// refused as a planted link; any other error is the file system's.
fn refused(path: &Path, e: io::Error) -> StateError {
    if beneath::is_planted(&e) {
        StateError::Symlink {
            path: path.to_path_buf(),
        }
    } else {
        StateError::io(path, e)
    }
}

/// `.dispatch/tasks/`, held open while a run makes its task folders in it.
/// Each new folder is made and opened relative to it: two calls, each one
/// name long, where making it by path and opening it from the project
/// root took four, each walking the whole path. A link planted in its
/// place since it was opened leads nowhere: the folders are made in the
/// real one.
pub struct TaskFolders {
    path: PathBuf,
    dir: beneath::Dir,
}

impl TaskFolders {
    /// Open (making it if missing) the tasks folder of `state`.
    pub fn open(state: &StateDir) -> Result<Self, StateError> {
        let path = state.tasks_dir();
        ensure_dir(&path)?;
        let dir = beneath::Dir::open(&path).map_err(|e| refused(&path, e))?;
        Ok(Self { path, dir })
    }

    /// Task `id`'s folder, made as [`NewFolder::make_archiving`] makes it.
    pub fn make_archiving<F>(&self, id: &str, archive: F) -> Result<NewFolder, StateError>
    where
        F: FnOnce() -> Result<Option<PathBuf>, StateError>,
    {
        let path = self.path.join(id);
        match self.dir.make_folder(id) {
            Ok(()) => {
                let dir = self
                    .dir
                    .folder(std::ffi::OsStr::new(id))
                    .map_err(|e| refused(&path, e))?;
                Ok(NewFolder { path, dir })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                archive()?;
                NewFolder::make(&path)
            }
            Err(_) => NewFolder::make(&path),
        }
    }
}

/// Open a file for appending without following a symlink.
pub fn open_append(path: &Path) -> Result<File, StateError> {
    open_append_sized(path).map(|(file, _)| file)
}

/// [`open_append`], with the file's length: the look that makes sure it
/// is a regular file has it, so a log needs no second look.
pub fn open_append_sized(path: &Path) -> Result<(File, u64), StateError> {
    if let Some(parent) = path.parent() {
        ensure_dir(parent)?;
    }
    open_append_new(path)
        .and_then(regular_with_len)
        .map_err(|e| StateError::io(path, e))
}

/// Open (creating) a file for appending: never through a symlink, never
/// blocking on a FIFO planted in its place, and only a regular file.
pub fn open_append_regular(path: &Path) -> io::Result<File> {
    require_regular(open_append_new(path)?)
}

fn open_append_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Open a file for reading: never through a symlink, never blocking on a
/// FIFO, and only a regular file, so a worker cannot point dispatch at a
/// device, a pipe or a file elsewhere.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    require_regular(file)
}

fn require_regular(file: File) -> io::Result<File> {
    regular_with_len(file).map(|(file, _)| file)
}

fn regular_with_len(file: File) -> io::Result<(File, u64)> {
    let meta = file.metadata()?;
    if meta.is_file() {
        Ok((file, meta.len()))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

/// Append one JSON line (one `write` call, so concurrent appenders do not
/// interleave within a line).
pub fn append_json_line<T: Serialize>(file: &mut File, value: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    file.write_all(&line)
}

/// Read at most `limit` bytes of a file as text (lossily), without
/// following a symlink: what a worker writes is untrusted.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_regular(path)?.take(limit).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The project root for a run started in `start`: the nearest folder up
/// that holds `.git` (file or folder), else `start` itself.
pub fn find_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .unwrap_or(start)
        .to_path_buf()
}

/// Add `.dispatch/` to the repository's `.git/info/exclude`, so it never
/// shows as untracked. Best effort: a project that is not a git repository,
/// or a read-only one, just does not get the line.
pub fn exclude_from_git(root: &Path) {
    let Some(git_dir) = git_dir(root) else {
        return;
    };
    let exclude = git_dir.join("info").join("exclude");
    let existing = std::fs::read_to_string(&exclude).unwrap_or_default();
    let line = format!("/{DIR_NAME}/");
    if existing
        .lines()
        .any(|l| l.trim() == line || l.trim() == DIR_NAME || l.trim() == format!("{DIR_NAME}/"))
    {
        return;
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&line);
    text.push('\n');
    let _ = std::fs::create_dir_all(git_dir.join("info"));
    let _ = write_atomic(&exclude, text.as_bytes());
}

/// The git folder of a work tree: `.git` itself, or for a linked worktree
/// the common folder its `.git` file points into.
fn git_dir(root: &Path) -> Option<PathBuf> {
    let dot_git = root.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    let pointed = PathBuf::from(text.trim().strip_prefix("gitdir:")?.trim());
    let pointed = if pointed.is_absolute() {
        pointed
    } else {
        root.join(pointed)
    };
    // A linked worktree's gitdir is `<common>/worktrees/<name>`; the exclude
    // file that git reads lives in the common folder.
    let common = std::fs::read_to_string(pointed.join("commondir"))
        .ok()
        .map(|c| pointed.join(c.trim()))
        .unwrap_or(pointed);
    Some(common)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_folder_is_made_and_written_without_leftovers() {
        let temp = tempfile::tempdir().expect("tempdir");
        let folder = NewFolder::make(&temp.path().join("t1")).expect("made");
        folder.make_folder("ipc").expect("ipc");
        folder.write("plan.md", b"- [ ] one\n").expect("plan");
        folder
            .write_json("task.json", &serde_json::json!({"id": "t1"}))
            .expect("json");
        let mut names: Vec<_> = std::fs::read_dir(folder.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["ipc", "plan.md", "task.json"]);
        assert!(std::fs::read_to_string(folder.path().join("task.json"))
            .expect("read")
            .ends_with("}\n"));
    }

    /// A state file has the mode any new file gets here, on its first write
    /// (a temporary file renamed) and on every rewrite (the exchange), so
    /// `ls -l` does not show it flip between writes.
    #[cfg(unix)]
    #[test]
    fn a_state_file_keeps_the_usual_mode_across_rewrites() {
        use std::os::unix::fs::PermissionsExt;
        let temp = tempfile::tempdir().expect("tempdir");
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        let plain = temp.path().join("plain");
        std::fs::File::create(&plain).expect("create");
        let usual = mode(&plain);
        let folder = NewFolder::make(&temp.path().join("t1")).expect("made");
        folder.write("plan.md", b"- [ ] one\n").expect("plan");
        let task_json = folder.path().join("task.json");
        for round in 0..3 {
            write_json(&task_json, &serde_json::json!({ "round": round })).expect("write");
            assert_eq!(mode(&task_json), usual, "after write {round}");
        }
        assert_eq!(mode(&folder.path().join("plan.md")), usual);
    }

    #[test]
    fn a_folder_in_the_way_is_archived_first_and_only_then() {
        let temp = tempfile::tempdir().expect("tempdir");
        let path = temp.path().join("t1");
        let archived = temp.path().join("archived");
        let archive = || {
            std::fs::rename(&path, &archived).map_err(|e| StateError::io(&path, e))?;
            Ok(Some(archived.clone()))
        };
        NewFolder::make_archiving(&path, || panic!("nothing to archive")).expect("fresh");
        std::fs::write(path.join("plan.md"), "earlier run").expect("write");
        let folder = NewFolder::make_archiving(&path, archive).expect("again");
        assert_eq!(std::fs::read_dir(folder.path()).expect("list").count(), 0);
        assert_eq!(
            std::fs::read_to_string(archived.join("plan.md")).expect("kept"),
            "earlier run"
        );
    }

    /// A new folder `t1` in `temp`, opened, then moved to `t1.moved` with a
    /// link to an empty `elsewhere` planted at its old path. Returns the
    /// opened folder, where it went, and where the link leads.
    fn opened_then_moved(temp: &Path) -> (NewFolder, PathBuf, PathBuf) {
        let elsewhere = temp.join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("dir");
        let path = temp.join("t1");
        let folder = NewFolder::make(&path).expect("made");
        let moved = temp.join("t1.moved");
        std::fs::rename(&path, &moved).expect("move away");
        std::os::unix::fs::symlink(&elsewhere, &path).expect("plant");
        (folder, moved, elsewhere)
    }

    /// A folder made inside a new one is made where that one was opened,
    /// even once a link was planted at its path; an existing folder is
    /// taken, and a link or a file in its place refused.
    #[test]
    fn a_folder_made_unopened_is_made_beneath_and_never_through_a_link() {
        let temp = tempfile::tempdir().expect("tempdir");
        let (folder, moved, elsewhere) = opened_then_moved(temp.path());
        folder.make_folder("ipc").expect("ipc");
        assert!(moved.join("ipc").is_dir());
        folder
            .make_folder("ipc")
            .expect("an existing folder is taken");
        std::os::unix::fs::symlink(&elsewhere, moved.join("cli")).expect("plant");
        std::fs::write(moved.join("file"), b"").expect("file");
        for name in ["cli", "file"] {
            assert!(
                matches!(folder.make_folder(name), Err(StateError::Symlink { .. })),
                "{name} was taken"
            );
        }
        assert_eq!(std::fs::read_dir(&elsewhere).expect("list").count(), 0);
    }

    /// A task folder is made in the tasks folder that was opened, even
    /// once a link was planted in that folder's place; one already there is
    /// archived first, and a link planted as a task's folder is refused.
    #[test]
    fn task_folders_are_made_in_the_tasks_folder_opened_never_through_a_link() {
        let temp = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(temp.path());
        let folders = TaskFolders::open(&state).expect("open");
        let elsewhere = temp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("dir");
        let tasks = state.tasks_dir();

        std::fs::create_dir(tasks.join("old")).expect("an earlier folder");
        let mut archived = false;
        folders
            .make_archiving("old", || {
                archived = true;
                Ok(None)
            })
            .expect("an earlier folder is taken once archived");
        assert!(archived, "an earlier folder was not archived");
        std::os::unix::fs::symlink(&elsewhere, tasks.join("planted")).expect("plant");
        assert!(matches!(
            folders.make_archiving("planted", || Ok(None)),
            Err(StateError::Symlink { .. })
        ));

        let moved = temp.path().join("tasks.moved");
        std::fs::rename(&tasks, &moved).expect("move away");
        std::os::unix::fs::symlink(&elsewhere, &tasks).expect("plant");
        let made = folders
            .make_archiving("t1", || panic!("nothing to archive"))
            .expect("made");
        made.write("plan.md", b"- [ ] One\n").expect("write");
        assert!(moved.join("t1/plan.md").is_file());
        assert_eq!(std::fs::read_dir(&elsewhere).expect("list").count(), 0);
    }

    #[test]
    fn a_new_folder_is_never_made_through_a_symlink() {
        let temp = tempfile::tempdir().expect("tempdir");
        let elsewhere = temp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("dir");
        let planted = temp.path().join("t1");
        std::os::unix::fs::symlink(&elsewhere, &planted).expect("symlink");
        assert!(matches!(
            NewFolder::make(&planted),
            Err(StateError::Symlink { .. })
        ));
    }

    #[test]
    fn the_latest_of_two_runs_in_one_second_is_the_one_that_started_last() {
        let temp = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(temp.path());
        for (id, started) in [
            ("20261125-184736-ffff", "2026-11-25T18:47:36.100Z"),
            ("20261125-184736-0001", "2026-11-25T18:47:36.900Z"),
            ("20261125-184735-ffff", "2026-11-25T18:47:35.999Z"),
        ] {
            let dir = state.run_dir(id);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(
                dir.join("run.json"),
                format!("{{\"started_at\":\"{started}\"}}"),
            )
            .expect("write");
        }
        assert_eq!(state.latest_run().as_deref(), Some("20261125-184736-0001"));
    }

    #[test]
    fn archives_an_earlier_runs_task_folder_into_that_run() {
        let temp = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(temp.path());
        state.prepare().expect("prepare");
        let task = state.task_dir("audit");
        std::fs::create_dir_all(&task).expect("mkdir");
        std::fs::write(
            task.join("task.json"),
            r#"{"run_id": "20260101-000000-aaaa"}"#,
        )
        .expect("write");
        std::fs::write(task.join("plan.md"), "- [x] kept\n").expect("write");
        let archived = state
            .archive_task("audit")
            .expect("archive")
            .expect("moved");
        assert_eq!(
            archived,
            state.run_dir("20260101-000000-aaaa").join("tasks/audit")
        );
        assert_eq!(
            std::fs::read_to_string(archived.join("plan.md")).expect("read"),
            "- [x] kept\n"
        );
        assert!(!task.exists());
        assert_eq!(state.archive_task("audit").expect("nothing to do"), None);
    }

    #[test]
    fn refuses_symlinked_folders_and_does_not_follow_symlinked_files() {
        let temp = tempfile::tempdir().expect("tempdir");
        let outside = temp.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        let link = temp.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        assert!(matches!(ensure_dir(&link), Err(StateError::Symlink { .. })));
        let secret = outside.join("secret");
        std::fs::write(&secret, "keep").expect("write");
        let planted = temp.path().join("task.json");
        std::os::unix::fs::symlink(&secret, &planted).expect("symlink");
        write_state(&planted, b"new").expect("replaces the link");
        assert_eq!(std::fs::read_to_string(&secret).expect("read"), "keep");
        assert!(
            read_bounded(&link.join("secret"), 10).is_ok(),
            "a real file reads"
        );
        let planted_read = temp.path().join("plan.md");
        std::os::unix::fs::symlink(&secret, &planted_read).expect("symlink");
        assert!(
            read_bounded(&planted_read, 10).is_err(),
            "a symlink is not followed"
        );
        assert!(open_append(&planted_read).is_err());
    }

    #[test]
    fn excludes_the_state_folder_from_git_once() {
        let temp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(temp.path().join(".git/info")).expect("mkdir");
        std::fs::write(temp.path().join(".git/info/exclude"), "# comment").expect("write");
        exclude_from_git(temp.path());
        exclude_from_git(temp.path());
        let text = std::fs::read_to_string(temp.path().join(".git/info/exclude")).expect("read");
        assert_eq!(text, "# comment\n/.dispatch/\n");
        assert_eq!(find_root(&temp.path().join("a/b")), temp.path());
    }

    #[test]
    fn reads_are_bounded() {
        let temp = tempfile::tempdir().expect("tempdir");
        let big = temp.path().join("plan.md");
        std::fs::write(&big, vec![b'x'; 10_000]).expect("write");
        assert_eq!(read_bounded(&big, 100).expect("read").len(), 100);
    }
}
