//! `dispatch worker sandboxed [--forward ADDR=SOCKET]... -- COMMAND...`:
//! the first process inside a task's bubblewrap sandbox (hidden; see
//! `isolation/sandbox.rs`). It
//! - listens on each forwarded loopback address inside the sandbox's own
//!   network and carries each connection to the Unix socket dispatch
//!   listens on outside, which is the only way out of that network;
//! - starts the worker in a session of its own, so the worker has no
//!   controlling terminal to push keystrokes into (TIOCSTI), with the
//!   stop signals back at their defaults (bwrap was started with SIGTERM
//!   ignored, so that a stop reaches the worker rather than killing bwrap);
//! - passes SIGTERM, SIGINT and SIGHUP on to the worker's group, and exits
//!   as the worker did.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use super::exit;

/// The worker's process group, for the signal handler.
static WORKER: AtomicI32 = AtomicI32::new(0);

const PASSED_ON: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

pub fn run(forwards: &[String], argv: &[String]) -> u8 {
    match start(forwards, argv) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("dispatch: sandbox: {message}");
            exit::USAGE
        }
    }
}

fn start(forwards: &[String], argv: &[String]) -> Result<u8, String> {
    for forward in forwards {
        let (address, socket) = forward
            .split_once('=')
            .ok_or_else(|| format!("--forward {forward}: expected ADDRESS=SOCKET"))?;
        let address: SocketAddr = address
            .parse()
            .map_err(|e| format!("--forward {forward}: {e}"))?;
        let listener =
            TcpListener::bind(address).map_err(|e| format!("cannot listen on {address}: {e}"))?;
        let socket = PathBuf::from(socket);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let socket = socket.clone();
                std::thread::spawn(move || {
                    if let Ok(out) = UnixStream::connect(&socket) {
                        carry(stream, out);
                    }
                });
            }
        });
    }
    let (program, args) = argv.split_first().ok_or("no command to run")?;
    let mut command = std::process::Command::new(program);
    command.args(args);
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (setsid, signal), touching no memory of the parent's.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            for signal in PASSED_ON {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    WORKER.store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
    for signal in PASSED_ON {
        // SAFETY: the handler only reads an atomic and calls kill, both
        // async-signal-safe.
        unsafe {
            libc::signal(signal, pass_on as *const () as libc::sighandler_t);
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for `{program}`: {e}"))?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    })
}

extern "C" fn pass_on(signal: libc::c_int) {
    let group = WORKER.load(Ordering::SeqCst);
    if group > 0 {
        // SAFETY: kill only sends a signal.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// Copy both ways until either side closes.
fn carry(tcp: TcpStream, unix: UnixStream) {
    let (Ok(tcp_back), Ok(unix_back)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || pump(tcp, unix));
    pump(unix_back, tcp_back);
    let _ = up.join();
}

fn pump(mut from: impl Read + AsRawShutdown, mut to: impl Write + AsRawShutdown) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    to.shutdown_write();
    from.shutdown_read();
}

/// Half-closing either kind of stream.
trait AsRawShutdown {
    fn shutdown_write(&self);
    fn shutdown_read(&self);
}

impl AsRawShutdown for TcpStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
    fn shutdown_read(&self) {
        let _ = self.shutdown(std::net::Shutdown::Read);
    }
}

impl AsRawShutdown for UnixStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
    fn shutdown_read(&self) {
        let _ = self.shutdown(std::net::Shutdown::Read);
    }
}
