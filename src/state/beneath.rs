//! Folders inside the state folder, opened without following links.
//!
//! A worker can replace its task folder, its `ipc/`, or any folder under
//! `.dispatch/` with a symbolic link to somewhere else; a write by path
//! would then land there (answers once did). So dispatch opens such a
//! folder from the project root without following a link in any component
//! (in one `openat2` call on Linux, else one component at a time, each with
//! `O_NOFOLLOW | O_DIRECTORY`; see [`resolve`]), and writes relative to the folder's
//! descriptor: a link anywhere from `.dispatch` down is refused (`ELOOP` or
//! `ENOTDIR`), and a link planted after the folder was opened changes
//! nothing, since the descriptor keeps naming the real folder.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::DIR_NAME;

/// An open folder; every name given to its methods is one path component.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

/// Whether an error means a link (or something else that is not a folder)
/// was found where a folder of the state folder should be.
pub fn is_planted(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'/') || bytes == b"." || bytes == b".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single file name",
        ));
    }
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

impl Dir {
    /// Open the folder at `path`. The part of the path above its last
    /// `.dispatch` component is the user's (a link there, such as a home
    /// folder on another disk, is followed); from `.dispatch` down, no link
    /// is. A path without `.dispatch` has only its last component opened
    /// without following a link.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let (base, names) = split(path)?;
        Dir::open_followed(&base)?.below(&names, resolve::Way::current())
    }

    /// The folder `names` leads to from this one, which stays open, no
    /// component through a link (see [`Dir::below`]).
    fn beneath(&self, names: &[&OsStr]) -> io::Result<Dir> {
        let Some((first, rest)) = names.split_first() else {
            return Ok(Dir {
                fd: self.fd.try_clone()?,
            });
        };
        if resolve::Way::current() == resolve::Way::Openat2 {
            if let Some(opened) = resolve::openat2(self, names) {
                return opened;
            }
        }
        self.folder(first)?.below(rest, resolve::Way::PerComponent)
    }

    /// The folder `names` leads to from this one, no component through a
    /// link: in one `openat2` call where the kernel has it, otherwise one
    /// `openat` per component.
    fn below(self, names: &[&OsStr], way: resolve::Way) -> io::Result<Dir> {
        if names.is_empty() {
            return Ok(self);
        }
        if way == resolve::Way::Openat2 {
            if let Some(opened) = resolve::openat2(&self, names) {
                return opened;
            }
        }
        let mut dir = self;
        for name in names {
            dir = dir.folder(name)?;
        }
        Ok(dir)
    }

    fn open_followed(path: &Path) -> io::Result<Dir> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
        // SAFETY: `c_path` is a valid NUL-terminated string for the call.
        let fd = check(unsafe {
            libc::open(
                c_path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsRawFd for Dir {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// `path` as the user's part, above its last `.dispatch` component (a link
/// there is followed), and the names from `.dispatch` down (none is). A
/// path without `.dispatch` has only its last component in the second part.
fn split(path: &Path) -> io::Result<(PathBuf, Vec<&OsStr>)> {
    let components: Vec<Component<'_>> = path.components().collect();
    let from = components
        .iter()
        .rposition(|c| c.as_os_str() == OsStr::new(DIR_NAME))
        .unwrap_or(components.len().saturating_sub(1));
    let base: PathBuf = components[..from].iter().collect();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let mut names = Vec::new();
    for component in &components[from..] {
        match component {
            Component::Normal(name) => names.push(*name),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "`..` or a root inside the state folder",
                ))
            }
        }
    }
    Ok((base, names))
}

/// Folders opened as [`Dir::open`] opens them, for a thread that writes
/// state files one batch after another (`writer.rs`). The user's part of
/// the paths (the project root) is opened once and kept for as long as
/// this lives; each folder below it is opened once per batch, however many
/// of its files the batch writes, and let go by [`Folders::end_batch`], so
/// a folder moved or replaced between batches is looked up afresh. Opening
/// each from the root, reopened every time, cost a sweep about seven more
/// `open` and `close` calls per task.
#[derive(Debug, Default)]
pub struct Folders {
    bases: HashMap<PathBuf, Dir>,
    batch: HashMap<PathBuf, Dir>,
}

impl Folders {
    /// The folder at `path`, opened as [`Dir::open`] does.
    pub fn open(&mut self, path: &Path) -> io::Result<&Dir> {
        if !self.batch.contains_key(path) {
            let (base, names) = split(path)?;
            let base = match self.bases.entry(base) {
                Entry::Occupied(base) => base.into_mut(),
                Entry::Vacant(base) => {
                    let opened = Dir::open_followed(base.key())?;
                    base.insert(opened)
                }
            };
            let dir = base.beneath(&names)?;
            self.batch.insert(path.to_path_buf(), dir);
        }
        self.batch
            .get(path)
            .ok_or_else(|| io::Error::other("a folder opened was not kept"))
    }

    /// Let go of the folders below the roots: the next batch opens them
    /// again.
    pub fn end_batch(&mut self) {
        self.batch.clear();
    }
}

impl Dir {
    /// The folder `name` inside this one, never through a link.
    pub fn folder(&self, name: &OsStr) -> io::Result<Dir> {
        let name = c_name(name)?;
        // SAFETY: `self.fd` is an open folder and `name` a valid C string.
        let fd = check(unsafe {
            libc::openat(
                self.raw(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Make the folder `name` inside this one (as `mkdir` would, with the
    /// usual mode less the umask).
    pub fn make_folder(&self, name: &str) -> io::Result<()> {
        let name = c_name(OsStr::new(name))?;
        rustix::fs::mkdirat(&self.fd, name.as_c_str(), rustix::fs::Mode::from(0o777))?;
        Ok(())
    }

    /// The type of `name` (not following a link), `None` when nothing is
    /// there.
    pub fn kind(&self, name: &str) -> io::Result<Option<libc::mode_t>> {
        let c = c_name(OsStr::new(name))?;
        // SAFETY: an all-zero `stat` is a valid value to be overwritten.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid folder descriptor, C string and out-pointer.
        let result =
            unsafe { libc::fstatat(self.raw(), c.as_ptr(), &mut stat, libc::AT_SYMLINK_NOFOLLOW) };
        match check(result) {
            Ok(_) => Ok(Some(stat.st_mode & libc::S_IFMT)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `name` is a regular file (a link to one is not).
    pub fn is_file(&self, name: &str) -> io::Result<bool> {
        Ok(self.kind(name)? == Some(libc::S_IFREG))
    }

    /// Open `name` for writing with `flags` added, never through a link.
    pub(super) fn open_file(&self, name: &OsStr, flags: libc::c_int) -> io::Result<File> {
        let c = c_name(name)?;
        // SAFETY: valid folder descriptor and C string; the mode is an
        // integer argument of the variadic call.
        let fd = check(unsafe {
            libc::openat(
                self.raw(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | flags,
                crate::state::fsutil::NEW_FILE_MODE as libc::c_uint,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// A new file in this folder holding `bytes`, under a name no reader
    /// takes for anything (a dot, the final name, a number, `.tmp`).
    fn temp_with(&self, name: &str, bytes: &[u8]) -> io::Result<String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut last = io::Error::other("no temporary name was free");
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = format!(".{name}.{}-{n}.tmp", crate::util::own_pid());
            match self.open_file(OsStr::new(&temp), libc::O_CREAT | libc::O_EXCL) {
                Ok(mut file) => {
                    if let Err(e) = file.write_all(bytes) {
                        let _ = self.remove(&temp);
                        return Err(e);
                    }
                    return Ok(temp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Remove the file `name` (not a folder).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        let c = c_name(OsStr::new(name))?;
        // SAFETY: valid folder descriptor and C string.
        check(unsafe { libc::unlinkat(self.raw(), c.as_ptr(), 0) }).map(drop)
    }

    /// Rename `from` to `to`, both in this folder, replacing `to` (a link
    /// there is replaced, not followed).
    pub(super) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (c_name(OsStr::new(from))?, c_name(OsStr::new(to))?);
        // SAFETY: valid folder descriptor and C strings.
        check(unsafe { libc::renameat(self.raw(), from.as_ptr(), self.raw(), to.as_ptr()) })
            .map(drop)
    }

    /// Replace `name` with `bytes` whole: a temporary file, renamed.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temp = self.temp_with(name, bytes)?;
        self.rename(&temp, name).inspect_err(|_| {
            let _ = self.remove(&temp);
        })
    }

    /// Create `name` holding `bytes`, whole, only if nothing has that name:
    /// a temporary file, then a hard link, which fails with `AlreadyExists`
    /// rather than replace what is there (of two racing writers, one wins).
    pub fn write_new(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temp = self.temp_with(name, bytes)?;
        let (from, to) = (c_name(OsStr::new(&temp))?, c_name(OsStr::new(name))?);
        let dir = self.raw();
        // SAFETY: valid folder descriptor and C strings; no flags, so a
        // link at `from` would be linked itself, not followed (and `from`
        // is the file just made).
        let result = unsafe { libc::linkat(dir, from.as_ptr(), dir, to.as_ptr(), 0) };
        let linked = check(result);
        let removed = self.remove(&temp);
        linked?;
        removed
    }
}

/// Opening a path of several folders in one call.
///
/// Opening `.dispatch/tasks/ID/ipc` one component at a time costs four
/// `openat` and four `close` calls per state write, and a sweep makes
/// several writes per task. Linux's `openat2` (5.6 and later) resolves the
/// whole relative path in one call with the same guarantee:
/// `RESOLVE_NO_SYMLINKS` refuses a link in any component (`ELOOP`, as
/// `O_NOFOLLOW` did), `RESOLVE_BENEATH` any way out of the starting folder.
/// A kernel without it, or a seccomp filter that refuses it (`ENOSYS`,
/// `EPERM`), is remembered, and from then on every open takes the
/// one-component-at-a-time way.
mod resolve {
    use super::Dir;
    use std::ffi::OsStr;
    use std::io;
    use std::sync::atomic::{AtomicU8, Ordering};

    /// How [`Dir::open`] walks the folders below the user's part.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Way {
        Openat2,
        PerComponent,
    }

    const UNKNOWN: u8 = 0;
    // Set only where `openat2` exists (Linux); read by tests everywhere.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    const AVAILABLE: u8 = 1;
    const UNAVAILABLE: u8 = 2;

    /// Whether `openat2` has worked here: tried until it once answers.
    static OPENAT2: AtomicU8 = AtomicU8::new(UNKNOWN);

    impl Way {
        pub(super) fn current() -> Way {
            if cfg!(target_os = "linux") && OPENAT2.load(Ordering::Relaxed) != UNAVAILABLE {
                Way::Openat2
            } else {
                Way::PerComponent
            }
        }
    }

    /// Whether this process has found `openat2` usable (`None` before the
    /// first try).
    #[cfg(test)]
    pub(super) fn available() -> Option<bool> {
        match OPENAT2.load(Ordering::Relaxed) {
            AVAILABLE => Some(true),
            UNAVAILABLE => Some(false),
            _ => None,
        }
    }

    /// The folder `names` leads to from `dir`, or `None` when the kernel
    /// refuses the call itself (the caller then walks the components).
    #[cfg(target_os = "linux")]
    pub(super) fn openat2(dir: &Dir, names: &[&OsStr]) -> Option<io::Result<Dir>> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        use std::os::unix::ffi::OsStrExt;
        let mut path = Vec::new();
        for name in names {
            if let Err(e) = super::c_name(name) {
                return Some(Err(e));
            }
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
        }
        let path = std::ffi::OsStr::from_bytes(&path);
        let opened = rustix::fs::openat2(
            &dir.fd,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        );
        match opened {
            Ok(fd) => {
                OPENAT2.store(AVAILABLE, Ordering::Relaxed);
                Some(Ok(Dir { fd }))
            }
            Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::PERM => {
                OPENAT2.store(UNAVAILABLE, Ordering::Relaxed);
                None
            }
            Err(e) => Some(Err(e.into())),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn openat2(_dir: &Dir, _names: &[&OsStr]) -> Option<io::Result<Dir>> {
        OPENAT2.store(UNAVAILABLE, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_anywhere_below_the_state_folder_is_refused() {
        let temp = tempfile::tempdir().expect("tempdir");
        let elsewhere = temp.path().join("elsewhere");
        std::fs::create_dir_all(elsewhere.join("ipc")).expect("mkdir");
        let tasks = temp.path().join(".dispatch/tasks");
        std::fs::create_dir_all(tasks.join("real/ipc")).expect("mkdir");
        std::os::unix::fs::symlink(&elsewhere, tasks.join("linked")).expect("symlink");
        std::os::unix::fs::symlink(elsewhere.join("ipc"), tasks.join("real/ipc2"))
            .expect("symlink");

        let ok = Dir::open(&tasks.join("real/ipc")).expect("a real folder");
        ok.write_new("001.answer", b"yes\n").expect("write");
        assert!(ok.is_file("001.answer").expect("stat"));
        assert_eq!(
            ok.write_new("001.answer", b"again").map_err(|e| e.kind()),
            Err(io::ErrorKind::AlreadyExists)
        );
        ok.write_atomic("task.json", b"{}").expect("write");
        ok.write_atomic("task.json", b"{1}").expect("rewrite");
        assert_eq!(
            std::fs::read_to_string(tasks.join("real/ipc/task.json")).expect("read"),
            "{1}"
        );
        for planted in [tasks.join("linked/ipc"), tasks.join("real/ipc2")] {
            let error = Dir::open(&planted).expect_err("a link is not followed");
            assert!(is_planted(&error), "{error}");
        }
        assert_eq!(
            std::fs::read_dir(elsewhere.join("ipc"))
                .expect("list")
                .count(),
            0
        );
        let names: Vec<_> = std::fs::read_dir(tasks.join("real/ipc"))
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
    }

    /// A relative link from one task's folder to another's stays beneath
    /// the project, so refusing only ways out of it would follow the link:
    /// each way of walking the components must refuse links as such.
    #[test]
    fn both_ways_refuse_a_link_that_stays_inside_the_state_folder() {
        let temp = tempfile::tempdir().expect("tempdir");
        let tasks = temp.path().join(".dispatch/tasks");
        for folder in ["real/ipc", "other/ipc"] {
            std::fs::create_dir_all(tasks.join(folder)).expect("mkdir");
        }
        std::os::unix::fs::symlink("other", tasks.join("linked")).expect("symlink");
        std::os::unix::fs::symlink("../other/ipc", tasks.join("real/ipc2")).expect("symlink");
        let names = |path: &'static str| -> Vec<&'static OsStr> {
            path.split('/').map(OsStr::new).collect()
        };
        for way in [resolve::Way::Openat2, resolve::Way::PerComponent] {
            for planted in [".dispatch/tasks/linked/ipc", ".dispatch/tasks/real/ipc2"] {
                let base = Dir::open_followed(temp.path()).expect("open the project");
                let error = base
                    .below(&names(planted), way)
                    .expect_err("a link is not followed");
                assert!(is_planted(&error), "{way:?}, {planted}: {error}");
            }
            let base = Dir::open_followed(temp.path()).expect("open the project");
            let real = base
                .below(&names(".dispatch/tasks/real/ipc"), way)
                .expect("a real folder");
            real.write_atomic(&format!("{way:?}.json"), b"{}")
                .expect("write");
        }
        assert_eq!(
            std::fs::read_dir(tasks.join("real/ipc"))
                .expect("list")
                .count(),
            2
        );
        assert_eq!(
            std::fs::read_dir(tasks.join("other/ipc"))
                .expect("list")
                .count(),
            0
        );
        if cfg!(target_os = "linux") {
            assert!(resolve::available().is_some(), "openat2 was tried on Linux");
        }
    }

    #[test]
    fn a_folder_swapped_for_a_link_after_it_was_opened_is_still_the_real_one() {
        let temp = tempfile::tempdir().expect("tempdir");
        let ipc = temp.path().join(".dispatch/tasks/t/ipc");
        std::fs::create_dir_all(&ipc).expect("mkdir");
        let elsewhere = temp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("mkdir");
        let dir = Dir::open(&ipc).expect("open");
        let moved = temp.path().join(".dispatch/tasks/t/ipc.moved");
        std::fs::rename(&ipc, &moved).expect("move away");
        std::os::unix::fs::symlink(&elsewhere, &ipc).expect("plant");
        dir.write_new("001.answer", b"yes\n").expect("write");
        assert!(moved.join("001.answer").is_file());
        assert_eq!(std::fs::read_dir(&elsewhere).expect("list").count(), 0);
    }

    /// Within a batch a folder is opened once (a link planted in its place
    /// meanwhile changes nothing, as for any open folder); the next batch
    /// opens it afresh and refuses the link.
    #[test]
    fn a_folder_is_opened_once_per_batch_and_looked_up_again_after() {
        let temp = tempfile::tempdir().expect("tempdir");
        let task = temp.path().join(".dispatch/tasks/t");
        std::fs::create_dir_all(&task).expect("mkdir");
        let elsewhere = temp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("mkdir");
        let mut folders = Folders::default();
        let write = |folders: &mut Folders, name: &str| {
            folders
                .open(&task)
                .and_then(|dir| dir.write_atomic(name, b"{}"))
        };
        write(&mut folders, "a.json").expect("first write");
        let moved = temp.path().join(".dispatch/tasks/t.moved");
        std::fs::rename(&task, &moved).expect("move away");
        std::os::unix::fs::symlink(&elsewhere, &task).expect("plant");
        write(&mut folders, "b.json").expect("the folder opened in this batch");
        assert!(moved.join("b.json").is_file());
        folders.end_batch();
        let error = write(&mut folders, "c.json").expect_err("a link is not followed");
        assert!(is_planted(&error), "{error}");
        assert_eq!(std::fs::read_dir(&elsewhere).expect("list").count(), 0);
    }

    /// The project root is opened once for as long as the folders live,
    /// not once per write: batches after the first start from it.
    #[test]
    fn the_root_is_opened_once() {
        let temp = tempfile::tempdir().expect("tempdir");
        let root = temp.path().join("project");
        let task = root.join(".dispatch/tasks/t");
        std::fs::create_dir_all(&task).expect("mkdir");
        let mut folders = Folders::default();
        folders
            .open(&task)
            .and_then(|dir| dir.write_atomic("a.json", b"{}"))
            .expect("first write");
        folders.end_batch();
        let moved = temp.path().join("moved");
        std::fs::rename(&root, &moved).expect("move the project");
        folders
            .open(&task)
            .and_then(|dir| dir.write_atomic("b.json", b"{}"))
            .expect("from the root opened before");
        assert!(moved.join(".dispatch/tasks/t/b.json").is_file());
    }
}
