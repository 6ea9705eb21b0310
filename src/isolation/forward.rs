//! The outside end of a forwarded endpoint (`network: { allow: [...] }`):
//! a Unix socket in the task folder, visible inside the sandbox, whose
//! every connection dispatch carries on to the allowed loopback address.
//! The sandbox has no other way out of its network namespace, so the
//! allow list is enforced here and by the namespace, not by the worker.

use std::path::Path;

use tokio::net::{TcpStream, UnixListener};
use tokio::task::JoinHandle;

use super::sandbox::Forward;

/// Listen on the forward's socket (replacing what is in its place) and
/// carry each connection; the task runs until it is aborted, when the
/// worker ends. Must be called inside a tokio runtime.
pub fn start(forward: &Forward) -> std::io::Result<JoinHandle<()>> {
    if let Some(folder) = forward.socket.parent() {
        std::fs::create_dir_all(folder)?;
    }
    remove_stale(&forward.socket);
    let listener = UnixListener::bind(&forward.socket)?;
    let address = forward.address;
    Ok(tokio::spawn(async move {
        while let Ok((mut inside, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outside) = TcpStream::connect(address).await {
                    let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                }
            });
        }
    }))
}

/// A socket left by an earlier attempt, or whatever the worker put there
/// (it can write its task folder): removed, never followed.
fn remove_stale(path: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.is_dir() {
            let _ = std::fs::remove_dir_all(path);
        } else {
            let _ = std::fs::remove_file(path);
        }
    }
}
