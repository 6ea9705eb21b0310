//! `worker.log`, written on a thread of its own.
//!
//! A worker's output is read on the runner's one thread, which also serves
//! every other worker's timeout and Ctrl-C. Writing each line to disk there
//! would hold all of that up for as long as the disk takes (seconds, on a
//! stalled network disk), so the reader only hands the redacted bytes over
//! and a thread per log writes them, in order. The log is complete once
//! [`WorkerLog::close`] has returned, before anything reads its tail.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};

use crate::state::{open_append, StateError};

/// `worker.log` is rotated to `worker.log.1` past this size.
pub const LOG_ROTATE_BYTES: u64 = 16 * 1024 * 1024;

/// The sending side of one worker's log.
pub struct WorkerLog {
    bytes: Option<Sender<Vec<u8>>>,
    written: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Without a thread (none could be started) the log is written here.
    inline: Option<LogFile>,
}

impl WorkerLog {
    /// Open (or continue) the log at `path`. The open itself happens here,
    /// so a log that cannot be made fails the launch with its reason.
    pub fn open(path: PathBuf) -> Result<Self, StateError> {
        let file = LogFile::open(path.clone())?;
        let (bytes, queue) = mpsc::channel();
        let (done, written) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("dispatch-worker-log".to_owned())
            .stack_size(64 * 1024)
            .spawn(move || {
                write_loop(file, queue);
                let _ = done.send(());
            });
        match spawned {
            Ok(_) => Ok(Self {
                bytes: Some(bytes),
                written: Some(written),
                inline: None,
            }),
            // No thread to be had: write on this thread, slower but whole.
            Err(_) => Ok(Self {
                bytes: None,
                written: None,
                inline: Some(LogFile::open(path)?),
            }),
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        match (&self.bytes, &mut self.inline) {
            (Some(sender), _) => {
                let _ = sender.send(bytes.to_vec());
            }
            (None, Some(file)) => file.write(bytes),
            (None, None) => {}
        }
    }

    /// Stop taking bytes, and a receiver that answers once the thread has
    /// written everything it was given (await it without holding a lock).
    pub fn close(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.bytes = None;
        self.written.take()
    }
}

fn write_loop(mut file: LogFile, queue: Receiver<Vec<u8>>) {
    while let Ok(first) = queue.recv() {
        // What queued up while the disk was slow goes out in one write.
        let mut bytes = first;
        for more in queue.try_iter() {
            bytes.extend_from_slice(&more);
        }
        file.write(&bytes);
    }
}

/// The open file and how much it holds, for rotation.
struct LogFile {
    path: PathBuf,
    file: Option<File>,
    written: u64,
}

impl LogFile {
    fn open(path: PathBuf) -> Result<Self, StateError> {
        let file = open_append(&path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path,
            file: Some(file),
            written,
        })
    }

    fn write(&mut self, bytes: &[u8]) {
        // Tests stall the disk here (debug builds only).
        if let Some(delay) = crate::state::writer::test_delay() {
            std::thread::sleep(delay);
        }
        if self.written + bytes.len() as u64 > LOG_ROTATE_BYTES {
            self.rotate();
        }
        if let Some(file) = &mut self.file {
            if file.write_all(bytes).is_ok() {
                self.written += bytes.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        let _ = std::fs::rename(&self.path, &old);
        self.file = open_append(&self.path).ok();
        self.written = 0;
    }
}
