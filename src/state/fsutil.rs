//! File writes that never leave a half-written file behind.

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` through a temporary file in the same folder and a
/// rename, so a reader sees the old content or the new, never a mix, and a
/// crash of dispatch mid-write loses nothing that was there. There is no
/// fsync: state files are rewritten many times a second in a large sweep,
/// and surviving a power cut is not worth a disk flush each time.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// [`write_atomic`] of what `write` writes, buffered, as it writes it: a
/// report of tens of megabytes is never whole in memory. If `write` fails,
/// `path` is left as it was.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The folder is there almost always: create it only when the temporary
    // file cannot be made for want of it, which saves a stat per write.
    let mut temp = match temp_file_in(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            temp_file_in(dir)?
        }
        made => made?,
    };
    let mut out = std::io::BufWriter::new(temp.as_file_mut());
    write(&mut out)?;
    out.flush()?;
    drop(out);
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A temporary file with the mode any new file gets (0666 less the umask),
/// not tempfile's private 0600: the file it becomes is read by people and
/// tools like every other file in the project, and a state file rewritten
/// in place (see `state::exchange`) must not change mode between writes.
fn temp_file_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let builder = {
        let mut builder = tempfile::Builder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(NEW_FILE_MODE));
        }
        builder
    };
    builder.tempfile_in(dir)
}

/// The mode dispatch creates files with, before the umask.
pub const NEW_FILE_MODE: u32 = 0o666;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_creates_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/file.txt");
        write_atomic(&path, b"one").expect("first write");
        write_atomic(&path, b"two").expect("second write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two");
        let leftovers = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .count();
        assert_eq!(leftovers, 1, "no temporary files are left behind");
    }
}
