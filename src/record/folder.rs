//! A task's folder opened once, its files opened relative to it.
//!
//! Why: a 50,000-task report reads four or five files per task. Opened by
//! their absolute paths, each open walks the whole path again (the project,
//! `.dispatch`, `tasks`, the task), and reading with a growing buffer costs
//! a dozen `read` calls for a 1 KB file: most of `dispatch report`'s time
//! was the kernel walking paths. Here the folder is walked once and each
//! file is read in one or two calls, into a buffer of its size.
//!
//! The rules of `state::open_regular` hold: never through a symlink, never
//! blocking on a FIFO, only a regular file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{openat, Mode, OFlags};

/// An open task folder.
#[derive(Debug)]
pub struct Folder {
    path: PathBuf,
    fd: OwnedFd,
}

impl Folder {
    /// Open the folder `path` (following a symlink to it, as reading its
    /// files by path did).
    pub fn open(path: PathBuf) -> io::Result<Folder> {
        let fd = rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Folder { path, fd })
    }

    /// The folder's path (for messages, and files read by path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The regular file `name` in the folder, opened for reading.
    pub fn open_file(&self, name: &str) -> io::Result<File> {
        self.open_sized(name).map(|(file, _)| file)
    }

    /// [`Folder::open_file`] and the file's size, from one `fstat`.
    fn open_sized(&self, name: &str) -> io::Result<(File, u64)> {
        let fd = openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let file = File::from(fd);
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

    /// Whether the folder holds an entry `name` (not following a link).
    pub fn has(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// At most `limit` bytes from the start of file `name`, as text
    /// (invalid UTF-8 replaced), like `state::read_bounded`.
    pub fn read(&self, name: &str, limit: u64) -> io::Result<String> {
        let (file, len) = self.open_sized(name)?;
        let mut bytes = Vec::with_capacity(usize::try_from(len.min(limit)).unwrap_or(0) + 1);
        // An empty file (a worker's log, often) costs no read: what is
        // written after the `fstat` is seen at the next look, as if the
        // file had been read a moment earlier.
        if len > 0 {
            file.take(limit).read_to_end(&mut bytes)?;
        }
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// At most the last `limit` bytes of file `name`, as bytes.
    pub fn read_end(&self, name: &str, limit: u64) -> io::Result<Vec<u8>> {
        let (mut file, len) = self.open_sized(name)?;
        let from = len.saturating_sub(limit);
        if from > 0 {
            file.seek(SeekFrom::Start(from))?;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len - from).unwrap_or(0) + 1);
        if len > 0 {
            file.take(limit).read_to_end(&mut bytes)?;
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_inside_and_refuses_links_and_folders() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("task");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("a.txt"), "héllo world").expect("write");
        std::fs::write(temp.path().join("secret"), "no").expect("write");
        std::os::unix::fs::symlink(temp.path().join("secret"), dir.join("link")).expect("link");
        std::fs::create_dir(dir.join("sub")).expect("mkdir");
        let folder = Folder::open(dir.clone()).expect("open");
        assert_eq!(folder.read("a.txt", 1024).expect("read"), "héllo world");
        assert_eq!(folder.read("a.txt", 5).expect("read"), "héll");
        assert_eq!(folder.read_end("a.txt", 5).expect("end"), b"world");
        assert_eq!(folder.read_end("a.txt", 100).expect("end").len(), 12);
        assert!(
            folder.read("link", 1024).is_err(),
            "a symlink is not followed"
        );
        assert!(folder.read("sub", 1024).is_err(), "a folder is not a file");
        assert!(folder.read("missing", 1024).is_err());
        assert!(folder.has("a.txt") && folder.has("link") && !folder.has("missing"));
        assert_eq!(folder.path(), dir);
    }
}
