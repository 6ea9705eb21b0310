//! Rewriting a state file without a new inode (Linux). A state file is
//! rewritten through a sibling kept for the purpose, `.NAME.swap`: the new
//! content goes into the sibling, then `renameat2(RENAME_EXCHANGE)` swaps
//! the two names in one step. A reader sees the old file or the new one,
//! as with a temporary file and a rename, but no inode is made or freed:
//! on ext4, each inode freed makes the next files created nearby slow (its
//! allocator steps around recently freed inodes), and a sweep of a
//! thousand tasks rewrote a few thousand files.
//!
//! The sibling is written in place, so it is opened with care: never
//! through a symlink, only a regular file with one link (a worker could
//! plant a device, a FIFO, or a hard link to one of the user's files), and
//! never truncated before that is checked. Anything unexpected, or a file
//! system that cannot exchange, falls back to the temporary-file rename.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The sibling `path` is rewritten through.
pub fn sibling(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let mut sibling = std::ffi::OsString::from(".");
    sibling.push(name);
    sibling.push(".swap");
    Some(path.with_file_name(sibling))
}

/// Replace `path`'s content with `bytes` by exchanging it with its sibling.
/// `Ok(false)` when this cannot be done here (a file system without
/// exchange, an odd sibling): the caller then writes a temporary file and
/// renames it.
///
/// `path` itself is not looked at first: whatever is there (a symlink a
/// worker planted, say) is only ever renamed, never written through, and
/// becomes the sibling, which the next rewrite refuses and removes. When
/// nothing is there yet, the sibling is renamed to `path` instead.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let Some(sibling) = sibling(path) else {
        return Ok(false);
    };
    let Some((mut file, old_len)) = open_sibling(&sibling)? else {
        return Ok(false);
    };
    // Written over, then cut to length: truncating to zero first would make
    // ext4 flush the file when it is closed (its guard against empty files
    // after a crash), a disk write per state update. A sibling no longer
    // than the new content needs no cut (and ext4's truncate is not free).
    file.write_all(bytes)?;
    if old_len > bytes.len() as u64 {
        file.set_len(bytes.len() as u64)?;
    }
    drop(file);
    match exchange(&sibling, path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Nothing at `path`: the sibling, whole, becomes the file.
            Ok(std::fs::rename(&sibling, path).is_ok())
        }
        swapped => swapped,
    }
}

/// The sibling, opened for writing, and its length, when it is safe to
/// write in place: a regular file with one link (made now if missing).
/// `None` otherwise, after removing whatever odd thing was there.
fn open_sibling(sibling: &Path) -> io::Result<Option<(File, u64)>> {
    // One open either way: O_NOFOLLOW refuses a symlink, O_NONBLOCK keeps a
    // FIFO from blocking, and what is opened is checked below before a byte
    // is written.
    let opened = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(crate::state::fsutil::NEW_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(sibling);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(_) => {
            // A symlink, a FIFO without a reader, something unwritable.
            let _ = std::fs::remove_file(sibling);
            return Ok(None);
        }
    };
    let meta = file.metadata()?;
    if meta.is_file() && meta.nlink() == 1 {
        Ok(Some((file, meta.len())))
    } else {
        drop(file);
        let _ = std::fs::remove_file(sibling);
        Ok(None)
    }
}

/// Swap the names `a` and `b` atomically; `Ok(false)` where the file
/// system or kernel cannot.
fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(errno) => {
            let error = io::Error::from(errno);
            match error.raw_os_error() {
                Some(libc::EINVAL | libc::ENOSYS | libc::EXDEV | libc::EPERM) => Ok(false),
                _ => Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_rewrite_keeps_the_inodes_and_the_content_is_the_new_one() {
        let temp = tempfile::tempdir().expect("tempdir");
        let path = temp.path().join("task.json");
        std::fs::write(&path, "one").expect("first");
        assert!(replace(&path, b"two").expect("second"), "exchanged");
        assert!(replace(&path, b"three, longer").expect("third"));
        let inode = std::fs::metadata(&path).expect("meta").ino();
        assert!(replace(&path, b"four").expect("fourth"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "four");
        let inodes = [
            std::fs::metadata(&path).expect("meta").ino(),
            std::fs::metadata(sibling(&path).expect("sibling"))
                .expect("meta")
                .ino(),
        ];
        assert!(inodes.contains(&inode), "the two inodes take turns");
        // The sibling now holds "three, longer": a shorter content is cut.
        assert!(replace(&path, b"5").expect("fifth"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "5");
    }

    #[test]
    fn a_first_write_renames_the_sibling_into_place() {
        let temp = tempfile::tempdir().expect("tempdir");
        let path = temp.path().join("task.json");
        assert!(replace(&path, b"first").expect("no error"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "first");
        let names: Vec<_> = std::fs::read_dir(temp.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["task.json"], "no sibling is left behind");
    }

    #[test]
    fn a_planted_symlink_in_the_files_place_is_swapped_out_not_followed() {
        let temp = tempfile::tempdir().expect("tempdir");
        let path = temp.path().join("task.json");
        let precious = temp.path().join("precious.txt");
        std::fs::write(&precious, "the user's work").expect("write");
        std::os::unix::fs::symlink(&precious, &path).expect("symlink");
        assert!(replace(&path, b"state").expect("exchanged"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "state");
        // The link is now the sibling: the next rewrite removes it and
        // leaves the write to the caller's rename.
        assert!(!replace(&path, b"state again").expect("falls back"));
        assert!(std::fs::symlink_metadata(sibling(&path).expect("sibling")).is_err());
        assert_eq!(
            std::fs::read_to_string(&precious).expect("read"),
            "the user's work"
        );
    }

    #[test]
    fn a_planted_symlink_or_hard_link_is_never_written_through() {
        let temp = tempfile::tempdir().expect("tempdir");
        let path = temp.path().join("task.json");
        std::fs::write(&path, "state").expect("write");
        let precious = temp.path().join("precious.txt");
        std::fs::write(&precious, "the user's work").expect("write");
        let sibling = sibling(&path).expect("sibling");

        std::os::unix::fs::symlink(&precious, &sibling).expect("symlink");
        assert!(!replace(&path, b"new").expect("falls back"));
        std::fs::hard_link(&precious, &sibling).expect("hard link");
        assert!(!replace(&path, b"new").expect("falls back"));

        assert_eq!(
            std::fs::read_to_string(&precious).expect("read"),
            "the user's work"
        );
        assert!(
            std::fs::symlink_metadata(&sibling).is_err(),
            "the planted link is gone"
        );
    }
}
