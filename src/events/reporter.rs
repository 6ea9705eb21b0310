//! Every output of a run is a [`Reporter`] fed the same typed events, as
//! nextest's reporters are fed its `TestEvent`s: the engine says what
//! happened once ([`Reporters::emit`]) and never where or how it is shown.
//! Which reporters run, and which stream each owns, is decided once here
//! from [`Output`], so `--json` owns stdout whatever else is switched on.

use crate::state::writer::Writer;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::colour::Palette;
use super::screen::{Labels, Mode};
use super::summary::Summary;
use super::{github, json, live, log, plain, quiet, Event, Stamped};
use crate::domain::redact::Redactor;
use crate::util::clock;

/// One output of a run.
pub trait Reporter {
    /// Something happened.
    fn report(&mut self, event: &Stamped<'_>);
    /// The run ended (after its last event): the summary, and the Markdown
    /// report for destinations that take one.
    fn finish(&mut self, _end: &RunEnd<'_>) {}
    /// Show a question to the person at this terminal; whether this
    /// reporter did (one is enough).
    fn prompt(&mut self, _text: &str) -> bool {
        false
    }
}

/// What reporters get when the run ends.
pub struct RunEnd<'a> {
    pub summary: Summary<'a>,
    /// The run's Markdown report for the GitHub job summary: at most its
    /// first [`super::job_summary::LIMIT`] + 1 bytes (what is past the
    /// limit is never shown there, and at 50,000 tasks the whole is
    /// 16 MB); the whole is `report.md`.
    pub markdown: &'a str,
}

/// How a run is shown, from the command line and the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub mode: Mode,
    /// `--verbose`: the end summary lists every task.
    pub verbose: bool,
    /// On GitHub Actions: annotations and the job summary.
    pub github: Option<Github>,
}

/// What GitHub Actions gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Github {
    /// Workflow-command annotations for findings (`GITHUB_ACTIONS`).
    pub annotations: bool,
    /// The job summary file (`GITHUB_STEP_SUMMARY`).
    pub step_summary: Option<PathBuf>,
}

impl Output {
    /// `mode` and `verbose`, plus GitHub Actions when its variables say so.
    pub fn from_env(mode: Mode, verbose: bool) -> Output {
        let annotations = std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| !v.is_empty());
        let step_summary = std::env::var_os("GITHUB_STEP_SUMMARY")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        let github = (annotations || step_summary.is_some()).then_some(Github {
            annotations,
            step_summary,
        });
        Output {
            mode,
            verbose,
            github,
        }
    }
}

/// Where a reporter's lines go. A closed pipe is not an error: the run goes
/// on (`dispatch run | head`).
#[derive(Clone, Debug)]
pub enum Sink {
    Stdout,
    Stderr,
    /// Kept in memory, for tests.
    Memory(Arc<Mutex<Vec<u8>>>),
}

impl Sink {
    /// Write `text` and a newline.
    pub fn line(&self, text: &str) {
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
            }
            Sink::Stderr => {
                let mut out = std::io::stderr().lock();
                let _ = writeln!(out, "{text}");
            }
            Sink::Memory(buffer) => {
                if let Ok(mut buffer) = buffer.lock() {
                    buffer.extend_from_slice(text.as_bytes());
                    buffer.push(b'\n');
                }
            }
        }
    }

    /// A sink in memory and a handle to read it.
    pub fn memory() -> (Sink, Arc<Mutex<Vec<u8>>>) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        (Sink::Memory(buffer.clone()), buffer)
    }
}

/// The run's reporters; the engine's one way out.
pub struct Reporters {
    list: Vec<Box<dyn Reporter>>,
    /// Every event is scrubbed of the run's secrets here, once, before any
    /// reporter sees it.
    redactor: Arc<Redactor>,
}

impl Reporters {
    /// The reporters `output` asks for, plus the event log when there is a
    /// file for it. stdout belongs to `--json` alone: GitHub annotations
    /// then go to stderr (the runner reads workflow commands from both).
    pub fn new(
        output: &Output,
        log: Option<(&Writer, File)>,
        labels: Labels,
        redactor: Arc<Redactor>,
    ) -> Reporters {
        let mut list: Vec<Box<dyn Reporter>> = Vec::new();
        if let Some((writer, file)) = log {
            list.push(Box::new(log::LogReporter::new(writer, file)));
        }
        list.push(match output.mode {
            Mode::Live => Box::new(live::LiveReporter::new(labels)),
            Mode::Plain => Box::new(
                plain::PlainReporter::new(labels, Sink::Stderr).with_palette(Palette::for_stderr()),
            ),
            Mode::Quiet => Box::new(
                quiet::QuietReporter::new(labels, Sink::Stderr).with_palette(Palette::for_stderr()),
            ),
            Mode::Json => Box::new(json::JsonReporter::new(Sink::Stdout)),
        });
        if let Some(gh) = &output.github {
            let sink = if output.mode == Mode::Json {
                Sink::Stderr
            } else {
                Sink::Stdout
            };
            list.push(Box::new(github::GithubReporter::new(gh.clone(), sink)));
        }
        Reporters { list, redactor }
    }

    /// Reporters given by the caller (tests, other front ends).
    pub fn from_list(list: Vec<Box<dyn Reporter>>, redactor: Arc<Redactor>) -> Reporters {
        Reporters { list, redactor }
    }

    /// Stamp an event and hand it to every reporter, in order (the event
    /// log first, so what was shown is also on record).
    pub fn emit(&mut self, event: Event) {
        let event = self.redactor.scrub(event);
        let stamped = Stamped {
            ts: clock::now(),
            event: &event,
        };
        for reporter in &mut self.list {
            reporter.report(&stamped);
        }
    }

    /// The run ended.
    pub fn finish(&mut self, end: &RunEnd<'_>) {
        for reporter in &mut self.list {
            reporter.finish(end);
        }
    }

    /// Show a question to the person at this terminal, once.
    pub fn prompt(&mut self, text: &str) {
        for reporter in &mut self.list {
            if reporter.prompt(text) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::types::Severity;

    /// A hostile finding reaches every text reporter redacted and escaped:
    /// no secret, no raw ESC, no line of its own that a CI runner would
    /// read as a command.
    #[test]
    fn worker_text_leaves_escaped_for_each_destination() {
        let (plain_out, plain_buf) = Sink::memory();
        let (quiet_out, quiet_buf) = Sink::memory();
        let (json_out, json_buf) = Sink::memory();
        let mut reporters = Reporters::from_list(
            vec![
                Box::new(plain::PlainReporter::new(Labels::default(), plain_out)),
                Box::new(quiet::QuietReporter::new(Labels::default(), quiet_out)),
                Box::new(json::JsonReporter::new(json_out)),
            ],
            Arc::new(Redactor::new(
                [("MY_API_KEY".to_owned(), "sk-test-123456".to_owned())],
                &[],
            )),
        );
        reporters.emit(Event::Finding {
            task: "t".to_owned(),
            severity: Severity::High,
            title: "x sk-test-123456\n::error::forged\u{1b}[2J".to_owned(),
            location: Some("a.rs:1\r\n::stop-commands::y".to_owned()),
            detail: None,
        });
        for buffer in [plain_buf, quiet_buf, json_buf] {
            let text = String::from_utf8(buffer.lock().expect("buffer").clone()).expect("utf-8");
            assert_eq!(text.lines().count(), 1, "{text:?}");
            assert!(!text.contains('\u{1b}'), "{text:?}");
            assert!(!text.contains("sk-test-123456"), "{text:?}");
            assert!(
                !text.lines().any(|l| l.trim_start().starts_with("::")),
                "{text:?}"
            );
        }
    }
}
