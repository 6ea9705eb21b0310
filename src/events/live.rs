//! The live view on a terminal: a line per running task with its progress
//! and a last line counting where the tasks stand (the live area, redrawn
//! in place); above it, lines that stay: each task's end, findings,
//! warnings. At the end the area is cleared and the summary printed.
//!
//! The view draws itself rather than through a progress-bar crate: it
//! must know exactly which rows it owns. It redraws by moving the cursor up
//! as many rows as it drew, so every redrawn line is cut to the terminal's
//! width (a wrapped line would leave a row behind), the area never grows
//! past the terminal's height, and once the summary is printed nothing is
//! drawn again: the ticker that animates the area is stopped first.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::colour::{status_tone, Palette, Tone};
use super::fit::Styled;
use super::reporter::{Reporter, RunEnd};
use super::sanitize::{sanitize_for, Destination};
use super::screen::{status_symbol, Labels};
use super::{Event, Stamped};
use crate::domain::status::TaskStatus;
use crate::util::clock;
use crate::util::units::count;

/// How often the area is redrawn while nothing happens (elapsed times and
/// the spinner move).
const TICK: Duration = Duration::from_millis(250);

/// An event with nothing to print redraws the area at most this often: a
/// sweep of thousands of instant tasks would otherwise redraw it thousands
/// of times a second. The ticker draws what was held back.
const SETTLE: Duration = Duration::from_millis(50);

const SPINNER: [&str; 8] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧"];

/// Where the view draws, and how big that is.
pub struct Terminal {
    pub out: Box<dyn Write + Send>,
    /// Columns and rows now (asked at each redraw: the window may change).
    pub size: Box<dyn Fn() -> (usize, usize) + Send>,
    pub palette: Palette,
}

impl Terminal {
    /// stderr, its size from the terminal (80 × 24 when it has none).
    pub fn stderr() -> Terminal {
        Terminal {
            out: Box::new(std::io::stderr()),
            size: Box::new(|| {
                rustix::termios::tcgetwinsize(std::io::stderr())
                    .ok()
                    .filter(|w| w.ws_col > 0 && w.ws_row > 0)
                    .map_or((80, 24), |w| (usize::from(w.ws_col), usize::from(w.ws_row)))
            }),
            palette: Palette::for_stderr(),
        }
    }
}

pub struct LiveReporter {
    view: Arc<Mutex<View>>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl LiveReporter {
    pub fn new(labels: Labels) -> Self {
        Self::on(labels, Terminal::stderr(), true)
    }

    /// A view on `terminal`; `animate` starts the ticker (tests drive the
    /// view by events alone).
    pub fn on(labels: Labels, terminal: Terminal, animate: bool) -> Self {
        let view = Arc::new(Mutex::new(View {
            labels,
            terminal,
            tasks: IndexMap::new(),
            tally: Tally::default(),
            drawn: 0,
            last_draw: None,
            throttle: animate,
            frame: 0,
            started: false,
            prompting: false,
            finished: false,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = animate
            .then(|| {
                let (view, stop) = (view.clone(), stop.clone());
                let builder = std::thread::Builder::new().name("dispatch-ticker".to_owned());
                crate::util::thread::spawn(builder, move || {
                    while !stop.load(Ordering::Acquire) {
                        std::thread::park_timeout(TICK);
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        if let Ok(mut view) = view.lock() {
                            view.frame = view.frame.wrapping_add(1);
                            view.redraw(&[]);
                        }
                    }
                })
                // No thread: the view is drawn at each event, without a spinner.
                .ok()
            })
            .flatten();
        Self { view, stop, ticker }
    }

    fn view(&self) -> Option<MutexGuard<'_, View>> {
        self.view.lock().ok()
    }

    /// Stop the ticker and wait for it, so nothing draws after this.
    fn stop_ticker(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(ticker) = self.ticker.take() {
            ticker.thread().unpark();
            let _ = ticker.join();
        }
    }
}

impl Drop for LiveReporter {
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

impl Reporter for LiveReporter {
    fn report(&mut self, stamped: &Stamped<'_>) {
        if let Some(mut view) = self.view() {
            view.show(stamped.event);
        }
    }

    fn finish(&mut self, end: &RunEnd<'_>) {
        self.stop_ticker();
        if let Some(mut view) = self.view() {
            view.finish(end);
        }
    }

    /// The question is printed where the area was, and the area stays
    /// away until an answer comes: the person types below the question,
    /// and a redraw would move the cursor over their line.
    fn prompt(&mut self, text: &str) -> bool {
        if let Some(mut view) = self.view() {
            let lines: Vec<Styled> = text
                .lines()
                .map(|l| plain(&sanitize_for(Destination::Line, l), Some(Tone::Warn)))
                .collect();
            view.prompting = true;
            view.redraw(&lines);
        }
        true
    }
}

/// A running task's line.
struct Row {
    label: String,
    /// `2/5 · the item it is on`, escaped.
    progress: String,
    since: Instant,
}

struct View {
    labels: Labels,
    terminal: Terminal,
    /// Running tasks, in the order they started.
    tasks: IndexMap<String, Row>,
    tally: Tally,
    /// Rows of the area on screen now; the cursor is at the start of the
    /// row below them.
    drawn: usize,
    /// When the area was last drawn.
    last_draw: Option<Instant>,
    /// Hold back redraws that print nothing (only with a ticker to draw
    /// them later).
    throttle: bool,
    frame: usize,
    /// The run started: there is a tally to show.
    started: bool,
    /// A question waits for the person to type its answer: no area.
    prompting: bool,
    /// The summary is out: nothing is drawn any more.
    finished: bool,
}

impl View {
    fn show(&mut self, event: &Event) {
        self.tally.count(event);
        let escape = |text: &str| sanitize_for(Destination::Line, text).into_owned();
        let mut notes = Vec::new();
        match event {
            Event::RunStarted { .. } => self.started = true,
            Event::Answered { .. } => {
                self.prompting = false;
                if let Some(text) = self.labels.line(event) {
                    notes.push(plain(&escape(&text), None));
                }
            }
            Event::TaskStarted { task, .. } => {
                self.tasks.insert(
                    task.clone(),
                    Row {
                        label: escape(self.labels.name(task)),
                        progress: "starting".to_owned(),
                        since: Instant::now(),
                    },
                );
            }
            Event::Item {
                task,
                done,
                total,
                current,
                ..
            } => {
                if let Some(row) = self.tasks.get_mut(task) {
                    let now = current
                        .as_deref()
                        .map(|c| format!(" · {c}"))
                        .unwrap_or_default();
                    row.progress = escape(&format!("{done}/{total}{now}"));
                }
            }
            // On the task's own line, until its next item: one line per
            // retry would scroll a long retry storm past everything else.
            Event::ApiRetry { task, summary, .. } => {
                if let Some(row) = self.tasks.get_mut(task) {
                    row.progress = escape(summary);
                }
            }
            Event::TaskEnded {
                task,
                status,
                reason,
                duration_ms,
                retrying,
                ..
            } => {
                self.tasks.shift_remove(task);
                notes.push(ended(
                    &escape(self.labels.name(task)),
                    *status,
                    &escape(reason),
                    Duration::from_millis(*duration_ms),
                    *retrying,
                ));
            }
            other => {
                if let Some(text) = self.labels.line(other) {
                    notes.push(plain(&escape(&text), event_tone(other)));
                }
            }
        }
        let recent = self.last_draw.is_some_and(|t| t.elapsed() < SETTLE);
        if notes.is_empty() && self.throttle && recent {
            return;
        }
        self.redraw(&notes);
    }

    /// Clear the area, print `notes` where it was (they stay), draw the
    /// area again below them: one write, so a frame is never half drawn.
    fn redraw(&mut self, notes: &[Styled]) {
        if self.finished {
            return;
        }
        let (cols, rows) = (self.terminal.size)();
        let palette = self.terminal.palette;
        let mut out = self.clear_area();
        for note in notes {
            out.push_str(&note.render(palette));
            out.push('\n');
        }
        let area = self.area(cols, rows);
        for line in &area {
            out.push_str(&line.render(palette));
            out.push('\n');
        }
        self.drawn = area.len();
        self.last_draw = Some(Instant::now());
        let _ = self.terminal.out.write_all(out.as_bytes());
        let _ = self.terminal.out.flush();
    }

    /// The codes that move to the area's first row and clear from there
    /// down; nothing when no area is drawn.
    fn clear_area(&mut self) -> String {
        let up = std::mem::take(&mut self.drawn);
        if up == 0 {
            String::new()
        } else {
            format!("\u{1b}[{up}A\r\u{1b}[J")
        }
    }

    /// The area's lines for a `cols` × `rows` terminal: each cut to one
    /// column less than the width (some terminals wrap on the last one),
    /// and at most `rows - 1` of them, so moving up reaches the first.
    fn area(&self, cols: usize, rows: usize) -> Vec<Styled> {
        if !self.started || self.prompting {
            return Vec::new();
        }
        let cols = cols.saturating_sub(1).max(1);
        let room = rows.saturating_sub(1).max(1);
        let spinner = SPINNER[self.frame % SPINNER.len()];
        let mut lines: Vec<Styled> = Vec::new();
        let shown = if self.tasks.len() + 1 > room {
            room.saturating_sub(2)
        } else {
            self.tasks.len()
        };
        for row in self.tasks.values().take(shown) {
            let mut line = Styled::new();
            line.push(Some(Tone::Busy), spinner)
                .push(None, format!(" {} ", row.label))
                .push(Some(Tone::Quiet), elapsed(row.since.elapsed()))
                .push(None, format!(" {}", row.progress));
            lines.push(line);
        }
        if shown < self.tasks.len() && room >= 2 {
            lines.push(plain(
                &format!("… and {} more running", self.tasks.len() - shown),
                Some(Tone::Busy),
            ));
        }
        lines.push(self.tally.line(cols));
        lines.into_iter().map(|l| l.fit(cols)).collect()
    }

    fn finish(&mut self, end: &RunEnd<'_>) {
        let mut out = self.clear_area();
        out.push('\n');
        for line in super::plain::summary_text(end, self.terminal.palette) {
            out.push_str(&line);
            out.push('\n');
        }
        self.finished = true;
        let _ = self.terminal.out.write_all(out.as_bytes());
        let _ = self.terminal.out.flush();
    }
}

/// `7s`, `2m05s`, `1h02m`: whole seconds, so the line does not jitter.
fn elapsed(took: Duration) -> String {
    let secs = took.as_secs();
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// A line of one colour.
fn plain(text: &str, tone: Option<Tone>) -> Styled {
    let mut line = Styled::new();
    line.push(tone, text);
    line
}

/// `✗ bravo failed — an item failed in 1.2s`: a task's end, as a line that
/// stays above the area.
fn ended(name: &str, status: TaskStatus, reason: &str, took: Duration, retrying: bool) -> Styled {
    let (symbol, tone) = if retrying {
        ("↻", Tone::Warn)
    } else {
        (status_symbol(status), status_tone(status))
    };
    let mut line = Styled::new();
    line.push(Some(tone), symbol)
        .push(None, format!(" {name} "))
        .push(Some(tone), status.label())
        .push(None, format!(" — {reason} in {}", clock::human(took)));
    if retrying {
        line.push(Some(Tone::Warn), "; retrying");
    }
    line
}

/// The colour of a line that stays: warnings and findings stand out.
pub fn event_tone(event: &Event) -> Option<Tone> {
    match event {
        Event::TaskEnded { retrying: true, .. } => Some(Tone::Warn),
        Event::TaskEnded { status, .. } | Event::TaskCarried { status, .. } => {
            Some(status_tone(*status))
        }
        Event::TaskSkipped { .. } => Some(status_tone(TaskStatus::Skipped)),
        Event::Warning { .. } | Event::Finding { .. } | Event::Interrupted { .. } => {
            Some(Tone::Warn)
        }
        Event::Escalation { .. } => Some(Tone::Bad),
        Event::CheckEnded { passed: true, .. } => Some(Tone::Good),
        Event::CheckEnded { passed: false, .. } => Some(Tone::Bad),
        _ => None,
    }
}

/// How many tasks stand where, for the live view's last line.
#[derive(Debug, Default)]
struct Tally {
    total: usize,
    running: usize,
    complete: usize,
    not_complete: usize,
    findings: usize,
}

impl Tally {
    fn count(&mut self, event: &Event) {
        match event {
            Event::RunStarted { tasks, .. } => self.total = *tasks,
            Event::TaskStarted { .. } => self.running += 1,
            Event::TaskEnded {
                status, retrying, ..
            } => {
                self.running = self.running.saturating_sub(1);
                if !retrying {
                    if *status == TaskStatus::Complete {
                        self.complete += 1;
                    } else {
                        self.not_complete += 1;
                    }
                }
            }
            Event::TaskSkipped { .. } => self.not_complete += 1,
            Event::Finding { .. } => self.findings += 1,
            _ => {}
        }
    }

    /// The counts in as many words as `cols` columns hold: the whole
    /// sentence, else a short form, else the short form cut.
    fn line(&self, cols: usize) -> Styled {
        let waiting = self
            .total
            .saturating_sub(self.running + self.complete + self.not_complete);
        let findings = count(self.findings as u64, "finding");
        let bad = (self.not_complete > 0).then_some(Tone::Bad);
        let warn = (self.findings > 0).then_some(Tone::Warn);
        let mut long = Styled::new();
        long.push(None, format!("{}: ", count(self.total as u64, "task")))
            .push(Some(Tone::Busy), format!("{} running", self.running))
            .push(None, ", ")
            .push(Some(Tone::Good), format!("{} complete", self.complete))
            .push(None, ", ")
            .push(bad, format!("{} not complete", self.not_complete))
            .push(None, format!(", {waiting} waiting · "))
            .push(warn, findings.clone());
        if long.width() <= cols {
            return long;
        }
        let mut short = Styled::new();
        short
            .push(
                Some(Tone::Good),
                format!("{}/{} done", self.complete, self.total),
            )
            .push(None, " · ")
            .push(bad, format!("{} ✗", self.not_complete))
            .push(None, " · ")
            .push(Some(Tone::Busy), format!("{} running", self.running))
            .push(None, format!(" · {waiting} waiting · "))
            .push(warn, findings);
        short
    }
}

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
