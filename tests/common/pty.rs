//! Running a program inside a pseudo-terminal of a given size and reading
//! back the screen a person would see: the bytes go through a VT100 parser
//! (`vt100`), so cursor moves, line clears and wraps count as a terminal
//! counts them, not as the raw stream reads.

use std::fs::File;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcsetwinsize, Winsize};

/// How long a run in the terminal may take at most: generous, as the test
/// machine may be busy compiling.
const DEADLINE: Duration = Duration::from_secs(180);

/// What a run left in the terminal.
pub struct Terminal {
    /// Every byte the program wrote, as the terminal received it (the
    /// line discipline turns `\n` into `\r\n`).
    pub bytes: Vec<u8>,
    pub status: ExitStatus,
    pub cols: u16,
    parser: vt100::Parser,
}

/// A program running in a terminal.
pub struct Session {
    child: Child,
    bytes: Arc<Mutex<Vec<u8>>>,
    /// When the last byte came.
    last: Arc<Mutex<Instant>>,
    done: Receiver<()>,
    cols: u16,
    rows: u16,
}

impl Session {
    /// `command` started with a terminal of `cols` × `rows` as its stdin,
    /// stdout and stderr.
    pub fn start(mut command: Command, cols: u16, rows: u16) -> Session {
        // macOS's posix_openpt takes no O_CLOEXEC; there the flag is set
        // just after, before any child is started.
        #[cfg(target_os = "linux")]
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        #[cfg(not(target_os = "linux"))]
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY;
        let master = openpt(flags).expect("open a pseudo-terminal");
        #[cfg(not(target_os = "linux"))]
        rustix::io::fcntl_setfd(&master, rustix::io::FdFlags::CLOEXEC).expect("close on exec");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let slave = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open the terminal's slave side");
        tcsetwinsize(
            &slave,
            Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .expect("set the terminal's size");
        command
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        let child = command.spawn().expect("start the program");
        // The command holds the slave's descriptors: without closing them,
        // reading the master would never see the end.
        drop(command);

        let bytes = Arc::new(Mutex::new(Vec::new()));
        let last = Arc::new(Mutex::new(Instant::now()));
        let (done_tx, done) = std::sync::mpsc::channel();
        let (sink, stamp) = (bytes.clone(), last.clone());
        std::thread::spawn(move || {
            let mut master = File::from(master);
            let mut buffer = [0u8; 8192];
            // Linux says EIO once every slave descriptor is closed.
            while let Ok(n) = master.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("buffer").extend_from_slice(&buffer[..n]);
                *stamp.lock().expect("time") = Instant::now();
            }
            let _ = done_tx.send(());
        });
        Session {
            child,
            bytes,
            last,
            done,
            cols,
            rows,
        }
    }

    /// The screen as it is now.
    fn parse(&self) -> vt100::Parser {
        let mut parser = vt100::Parser::new(self.rows, self.cols, 0);
        parser.process(&self.bytes.lock().expect("buffer"));
        parser
    }

    /// The screen's text once `ready` holds for it and the program has
    /// written nothing for a moment (a frame is not read half drawn).
    pub fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> Shot {
        let start = Instant::now();
        loop {
            let quiet = self.last.lock().expect("time").elapsed() > Duration::from_millis(120);
            let parser = self.parse();
            let text = parser.screen().contents();
            if quiet && ready(&text) {
                return Shot {
                    lines: lines(parser.screen(), self.cols),
                    wrapped: wrapped(parser.screen(), self.cols),
                };
            }
            if start.elapsed() > DEADLINE {
                panic!("the screen never showed {what}:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the program to exit and its output to be read.
    pub fn finish(mut self) -> Terminal {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!(
                    "the program ran past {DEADLINE:?}; its screen:\n{}",
                    self.parse().screen().contents()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // A process the program left behind could hold the terminal open;
        // what it wrote by now is all that counts.
        let _ = self.done.recv_timeout(Duration::from_secs(10));
        let parser = self.parse();
        let bytes = self.bytes.lock().expect("buffer").clone();
        Terminal {
            bytes,
            status,
            cols: self.cols,
            parser,
        }
    }
}

/// A test that failed half way stops the program as Ctrl-C would, so it
/// stops its workers (a worker waiting for a gate would wait forever),
/// then kills it if it is still there.
impl Drop for Session {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = rustix::process::Pid::from_child(&self.child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Terminal {
    pub fn screen(&self) -> &vt100::Screen {
        self.parser.screen()
    }

    /// The screen's rows, trailing spaces and trailing empty rows removed.
    pub fn lines(&self) -> Vec<String> {
        lines(self.screen(), self.cols)
    }

    /// The screen's lines as written: rows the terminal wrapped joined
    /// again (where a long line wraps depends on the width of a duration
    /// in it; what it says does not).
    pub fn logical_lines(&self) -> Vec<String> {
        let screen = self.screen();
        let mut out: Vec<String> = Vec::new();
        let mut joining = false;
        for (row, text) in screen.rows(0, self.cols).enumerate() {
            let wraps = u16::try_from(row).is_ok_and(|r| screen.row_wrapped(r));
            let text = if wraps {
                text
            } else {
                text.trim_end().to_owned()
            };
            match out.last_mut() {
                Some(last) if joining => last.push_str(&text),
                _ => out.push(text),
            }
            joining = wraps;
        }
        while out.last().is_some_and(String::is_empty) {
            out.pop();
        }
        out
    }
}

/// The screen at one moment of a run.
pub struct Shot {
    pub lines: Vec<String>,
    /// Rows that continue onto the next: lines longer than the width.
    pub wrapped: Vec<String>,
}

fn wrapped(screen: &vt100::Screen, cols: u16) -> Vec<String> {
    let (rows, _) = screen.size();
    (0..rows)
        .filter(|row| screen.row_wrapped(*row))
        .filter_map(|row| screen.rows(0, cols).nth(row.into()))
        .collect()
}

/// A screen's rows, trailing spaces and trailing empty rows removed.
fn lines(screen: &vt100::Screen, cols: u16) -> Vec<String> {
    let mut lines: Vec<String> = screen
        .rows(0, cols)
        .map(|row| row.trim_end().to_owned())
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}
