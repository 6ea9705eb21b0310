//! A headless Chromium driven over the DevTools protocol, for the browser
//! tier (`tests/browser.rs`) and the report benchmark. The protocol runs
//! over a pipe (`--remote-debugging-pipe`: the browser reads commands on
//! its fd 3 and writes replies on fd 4, each message ending in a NUL), so
//! there is no port, no websocket and no network at all.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long any one reply may take: generous, the machine is shared.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// The browser to drive: `DISPATCH_BROWSER`, else the first of
/// `chromium`, `chromium-browser`, `google-chrome` on `PATH`.
pub fn find() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("DISPATCH_BROWSER") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err("no chromium on PATH (Debian: apt-get install chromium; or set DISPATCH_BROWSER)".into())
}

/// A running headless browser.
pub struct Browser {
    child: Child,
    to_browser: std::fs::File,
    from_browser: Receiver<Value>,
    next_id: u64,
    /// Events not yet looked at, in arrival order.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

/// One tab, attached with its own DevTools session.
pub struct Page<'a> {
    browser: &'a mut Browser,
    session: String,
}

/// dispatch's own close-on-exec pipe, which macOS (no `pipe2`) makes too.
fn pipe() -> (OwnedFd, OwnedFd) {
    dispatch::supervise::process::pipe().expect("pipe")
}

impl Browser {
    pub fn launch() -> Browser {
        let program = find().expect("a browser");
        let profile = tempfile::tempdir().expect("profile dir");
        let (command_read, command_write) = pipe();
        let (reply_read, reply_write) = pipe();
        let (child_in, child_out) = (command_read.as_raw_fd(), reply_write.as_raw_fd());
        let mut command = Command::new(program);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only dup2 runs, which is
        // async-signal-safe; it gives the browser the pipe ends as fds 3
        // and 4 (without close-on-exec: dup2 clears it on the new fd).
        unsafe {
            command.pre_exec(move || {
                let (a, b) = (child_in, child_out);
                // Copy both ends above fd 9 first, so one of them being
                // fd 3 or 4 cannot be clobbered by the other's dup2.
                let a2 = libc::fcntl(a, libc::F_DUPFD, 10);
                let b2 = libc::fcntl(b, libc::F_DUPFD, 10);
                if a2 < 0 || b2 < 0 || libc::dup2(a2, 3) < 0 || libc::dup2(b2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start the browser");
        drop(command_read);
        drop(reply_write);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(std::fs::File::from(reply_read));
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                    if tx.send(value).is_err() {
                        return;
                    }
                }
                message.clear();
            }
        });
        Browser {
            child,
            to_browser: std::fs::File::from(command_write),
            from_browser: rx,
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        }
    }

    /// Send a command and wait for its reply; `Err` carries the
    /// browser's error message.
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("json");
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .map_err(|e| format!("{method}: cannot write to the browser: {e}"))?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let value = self
                .from_browser
                .recv_timeout(left)
                .map_err(|e| format!("{method}: no reply from the browser: {e}"))?;
            if value["id"] == json!(id) {
                if let Some(error) = value.get("error") {
                    return Err(format!("{method}: {error}"));
                }
                return Ok(value["result"].clone());
            }
            if value.get("method").is_some() {
                self.events.push(value);
            }
        }
    }

    /// Wait for an event of `session` named `method`.
    fn wait_event(&mut self, session: &str, method: &str) -> Result<Value, String> {
        let matches = |v: &Value| v["method"] == method && v["sessionId"] == session;
        if let Some(i) = self.events.iter().position(matches) {
            return Ok(self.events.remove(i));
        }
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let value = self
                .from_browser
                .recv_timeout(left)
                .map_err(|e| format!("waiting for {method}: {e}"))?;
            if matches(&value) {
                return Ok(value);
            }
            if value.get("method").is_some() {
                self.events.push(value);
            }
        }
    }

    /// Open `path` in a new tab and wait until it has loaded. Returns the
    /// page and how long from navigation to the load event.
    pub fn open(&mut self, path: &Path) -> (Page<'_>, Duration) {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .expect("new tab");
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .expect("attach");
        let session = attached["sessionId"].as_str().expect("session").to_owned();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            self.call(Some(&session), domain, json!({})).expect(domain);
        }
        let url = format!("file://{}", path.display());
        let started = Instant::now();
        self.call(Some(&session), "Page.navigate", json!({ "url": url }))
            .expect("navigate");
        self.wait_event(&session, "Page.loadEventFired")
            .expect("the page loads");
        let took = started.elapsed();
        (
            Page {
                browser: self,
                session,
            },
            took,
        )
    }

    /// Save a PNG of `path` at `width`×`height` CSS pixels.
    pub fn screenshot(&mut self, path: &Path, width: u32, height: u32, png: &Path) {
        let (mut page, _) = self.open(path);
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .expect("viewport");
        let shot = page
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .expect("screenshot");
        let data = shot["data"].as_str().expect("png data");
        std::fs::write(png, base64_decode(data)).expect("write png");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call(None, "Browser.close", json!({}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Page<'_> {
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let session = self.session.clone();
        self.browser.call(Some(&session), method, params)
    }

    /// The value of a JavaScript expression (awaited if a promise);
    /// `Err` with the exception's text if it threw.
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(details) = result.get("exceptionDetails") {
            return Err(format!("{expression}: {details}"));
        }
        Ok(result["result"]["value"].clone())
    }

    /// `eval`, which must succeed.
    pub fn value(&mut self, expression: &str) -> Value {
        self.eval(expression).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Errors the page raised or logged so far: uncaught exceptions,
    /// `console.error` and `console.assert`, and error log entries (a
    /// blocked request, a refused script).
    pub fn errors(&mut self) -> Vec<String> {
        // A round trip first, so every event sent before now has arrived.
        let _ = self.eval("0");
        let session = self.session.clone();
        self.browser
            .events
            .iter()
            .filter(|e| e["sessionId"] == session.as_str())
            .filter_map(|e| match e["method"].as_str()? {
                "Runtime.exceptionThrown" => Some(e["params"]["exceptionDetails"].to_string()),
                "Runtime.consoleAPICalled"
                    if matches!(e["params"]["type"].as_str(), Some("error" | "assert")) =>
                {
                    Some(e["params"]["args"].to_string())
                }
                "Log.entryAdded" if e["params"]["entry"]["level"] == "error" => {
                    Some(e["params"]["entry"]["text"].to_string())
                }
                _ => None,
            })
            .collect()
    }
}

/// Standard base64 (the screenshot's encoding), without a crate for it.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= d << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}
