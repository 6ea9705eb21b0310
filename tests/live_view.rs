//! The live view as a person sees it: `dispatch run` inside a
//! pseudo-terminal of 60, 80, 100 and 130 columns, its bytes read back
//! through a VT100 parser, the screens snapshotted (insta) and each defect
//! the view once had asserted away: rows redrawn after the summary, no
//! final newline, a tally line that ignored the width, no colour, nothing
//! shown on a dumb terminal, `(4/4)` beside the third item, and worker
//! escape sequences reaching the terminal.
//!
//! The pace is the test's, not the clock's: the first two workers wait for
//! a gate file, so the running screen is read while nothing can change,
//! and final screens are read after the program exited.

mod common;
#[path = "common/pty.rs"]
mod pty;

use std::process::Command;

use common::Project;
use pty::{Session, Shot, Terminal};

const WIDTHS: [u16; 4] = [60, 80, 100, 130];
const ROWS: u16 = 40;

/// Four tasks, two at a time: two that wait for their gate (one fails
/// with a hostile note, then the other completes), one with a finding whose title carries
/// escape sequences, one that ticks its last two items in one write.
const SWEEP: &str = r#"version: 1
name: live
concurrency: 2
tasks:
  alpha:
    command: [AGENT, check, "wait-file:GATE-alpha", check-all, done]
    plan: [Read the code, Write the fix for the parser's handling of very long lines in its input]
  bravo:
    command: [AGENT, check, "wait-file:GATE-bravo", "fail-item:database \e[2J\e]0;pwned\a unreachable"]
    plan: [Connect, Migrate]
  charlie:
    needs: [alpha]
    command: [AGENT, check, "finding:high:token \e[31mleak\e[0m in logs", check, done]
    plan: [Scan, Report]
  delta:
    needs: [charlie]
    command: [AGENT, check, check, check:2, done]
    plan: [One, Two, Three, Four]
"#;

/// `dispatch run` in a terminal of `cols` columns, with `env` on top of a
/// colour terminal's environment.
fn start(project: &Project, cols: u16, env: &[(&str, &str)]) -> Session {
    let gate = project.path().join("gate");
    project.manifest(&SWEEP.replace("GATE", &gate.display().to_string()));
    let mut command: Command = project.command(&["run", "sweep.yaml", "--grace", "300ms"]);
    for var in [
        "NO_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "GITHUB_ACTIONS",
        "GITHUB_STEP_SUMMARY",
    ] {
        command.env_remove(var);
    }
    command.env("TERM", "xterm-256color");
    for (k, v) in env {
        command.env(k, v);
    }
    Session::start(command, cols, ROWS)
}

/// Let bravo fail, then alpha complete: one order, whatever the timing.
fn open_gates(project: &Project, session: &Session) {
    std::fs::write(project.path().join("gate-bravo"), "").expect("open bravo's gate");
    session.wait_for("bravo's end", |text| {
        text.contains("✗ bravo failed") || text.contains("bravo: failed")
    });
    std::fs::write(project.path().join("gate-alpha"), "").expect("open alpha's gate");
}

/// How many colour codes (`ESC [ … m`) the stream holds.
fn colour_codes(bytes: &[u8]) -> usize {
    let text = String::from_utf8_lossy(bytes);
    text.split('\u{1b}')
        .skip(1)
        .filter(|rest| {
            rest.strip_prefix('[').is_some_and(|codes| {
                codes
                    .trim_start_matches(|c: char| c.is_ascii_digit() || c == ';')
                    .starts_with('m')
            })
        })
        .count()
}

/// The screen while alpha and bravo wait at the gate.
fn running(session: &Session) -> Shot {
    session.wait_for("alpha and bravo at the gate", |text| {
        let at_gate = |task: &str| {
            text.lines()
                .any(|l| l.contains(&format!(" {task} ")) && l.contains("1/2"))
        };
        at_gate("alpha") && at_gate("bravo")
    })
}

/// Names for what changes from run to run: run ids, durations, the
/// spinner's frame.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\d{8}-\d{6}-[0-9a-f]{4}", "[run-id]"),
        (r"\b\d+(\.\d+)?(ms|s)\b", "[time]"),
        (r"\b\d+m\d{2}s\b", "[time]"),
        (r"[⠋⠙⠹⠸⠼⠴⠦⠧]", "[spin]"),
    ]
}

fn snapshot(name: &str, lines: &[String]) {
    insta::with_settings!({ filters => filters() }, {
        insta::assert_snapshot!(name, lines.join("\n"));
    });
}

/// Every escape sequence in the stream is one the view writes itself: a
/// colour (`ESC [ … m`), a cursor move up (`ESC [ n A`) or a clear to the
/// end of the screen (`ESC [ J`). A worker's `ESC ] 0;` (window title) or
/// `ESC [ 2 J` (clear screen) never arrives raw.
fn only_our_escapes(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for (at, _) in text.match_indices('\u{1b}') {
        let rest = &text[at + 1..];
        let shown: String = text[at..].chars().take(12).collect();
        let codes = rest
            .strip_prefix('[')
            .unwrap_or_else(|| panic!("a foreign escape sequence: {shown:?}"));
        let end = codes
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or_else(|| panic!("an unended escape sequence: {shown:?}"));
        let (params, command) = (&codes[..end], &codes[end..end + 1]);
        let ours = match command {
            "m" => true,
            "A" => !params.contains(';'),
            "J" => params.is_empty(),
            _ => false,
        };
        assert!(ours, "a foreign escape sequence: {shown:?}");
    }
}

/// The checks every final screen passes, whatever the width.
fn final_screen_is_clean(term: &Terminal, cols: u16) {
    assert_eq!(term.status.code(), Some(1), "bravo fails the sweep");
    let lines = term.logical_lines();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("Plans, outputs and logs: .dispatch/tasks/<id>/"),
        "nothing is drawn after the summary at {cols} columns:\n{}",
        lines.join("\n")
    );
    assert!(
        term.bytes.ends_with(b"\n"),
        "the last byte is a newline at {cols} columns: {:?}",
        String::from_utf8_lossy(&term.bytes[term.bytes.len().saturating_sub(80)..])
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(" tasks: ") || l.contains(" running")),
        "the live area is gone:\n{}",
        lines.join("\n")
    );
    let (row, col) = term.screen().cursor_position();
    assert_eq!(col, 0, "the cursor waits at the start of a line");
    assert!(
        usize::from(row) >= term.lines().len(),
        "below the last line"
    );
    // Worker text shows as text, escaped.
    let all = lines.join("\n");
    assert!(
        all.contains(r"database \x1b[2J\x1b]0;pwned\x07 unreachable"),
        "{all}"
    );
    assert!(all.contains(r"token \x1b[31mleak\x1b[0m in logs"), "{all}");
    only_our_escapes(&term.bytes);
}

#[test]
fn the_live_view_fits_each_width_and_leaves_a_clean_summary() {
    for cols in WIDTHS {
        let project = Project::new();
        let session = start(&project, cols, &[]);
        let shot = running(&session);
        assert!(
            shot.wrapped.is_empty(),
            "no line of the live area wraps at {cols} columns: {:?}",
            shot.wrapped
        );
        for line in &shot.lines {
            assert!(
                line.chars().count() < usize::from(cols),
                "{line:?} is cut to {cols} columns"
            );
        }
        let tally = shot.lines.last().expect("a tally line");
        assert!(
            tally.contains("2 running") && tally.contains("2 waiting"),
            "the tally is the last line, at {cols} columns: {tally:?}"
        );
        snapshot(&format!("running_{cols}"), &shot.lines);
        open_gates(&project, &session);
        let term = session.finish();
        final_screen_is_clean(&term, cols);
        snapshot(&format!("final_{cols}"), &term.logical_lines());
    }
}

/// Colour by status on a terminal: the symbols of a complete and a failed
/// task in green and red, the tally's counts coloured.
#[test]
fn a_terminal_gets_colour_by_status() {
    let project = Project::new();
    let session = start(&project, 100, &[]);
    running(&session);
    open_gates(&project, &session);
    let term = session.finish();
    let screen = term.screen();
    let colour_of = |needle: &str| -> vt100::Color {
        let rows: Vec<String> = screen.rows(0, term.cols).collect();
        let row = rows
            .iter()
            .position(|r| r.starts_with(needle))
            .unwrap_or_else(|| panic!("no line starts with {needle:?}:\n{}", rows.join("\n")));
        screen
            .cell(row as u16, 0)
            .map(|c| c.fgcolor())
            .expect("a cell")
    };
    assert_eq!(
        colour_of("✓ alpha"),
        vt100::Color::Idx(2),
        "complete is green"
    );
    assert_eq!(colour_of("✗ bravo"), vt100::Color::Idx(1), "failed is red");
    assert_eq!(
        colour_of("Sweep live"),
        vt100::Color::Idx(1),
        "a failed sweep's headline"
    );
}

#[test]
fn no_color_shows_the_same_screens_without_colour() {
    let project = Project::new();
    let session = start(&project, 80, &[("NO_COLOR", "1")]);
    let shot = running(&session);
    snapshot("running_80", &shot.lines);
    open_gates(&project, &session);
    let term = session.finish();
    final_screen_is_clean(&term, 80);
    snapshot("final_80", &term.logical_lines());
    assert_eq!(
        colour_codes(&term.bytes),
        0,
        "no colour codes: {:?}",
        String::from_utf8_lossy(&term.bytes)
    );
}

/// A dumb terminal cannot move its cursor: it gets the CI lines as they
/// happen (not only at the end), no cursor codes, and the counter beside
/// each item says how many were done once it was.
#[test]
fn term_dumb_gets_the_ci_lines_as_they_happen() {
    let project = Project::new();
    let session = start(&project, 100, &[("TERM", "dumb")]);
    let shot = session.wait_for("the start lines", |text| {
        text.contains("alpha: started") && text.contains("bravo: started")
    });
    assert!(
        shot.lines
            .iter()
            .any(|l| l.contains("run ") && l.contains("sweep live, 4 tasks")),
        "{}",
        shot.lines.join("\n")
    );
    open_gates(&project, &session);
    let term = session.finish();
    let text = String::from_utf8_lossy(&term.bytes);
    assert!(!text.contains('\u{1b}'), "no escape codes at all: {text:?}");
    let lines = term.logical_lines();
    let item = |name: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!("delta: ✓ {name} ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{}", lines.join("\n")))
            .clone()
    };
    assert!(item("Three").ends_with("(3/4)"), "{}", item("Three"));
    assert!(item("Four").ends_with("(4/4)"), "{}", item("Four"));
    assert!(item("One").ends_with("(1/4)"), "{}", item("One"));
}

/// Not a terminal: no colour unless forced with `CLICOLOR_FORCE` (a CI log
/// viewer that renders it), and never with `NO_COLOR`.
#[test]
fn a_pipe_gets_colour_only_when_forced() {
    let project = Project::new();
    let gate = project.path().join("gate");
    for task in ["alpha", "bravo"] {
        std::fs::write(project.path().join(format!("gate-{task}")), "").expect("gate");
    }
    project.manifest(&SWEEP.replace("GATE", &gate.display().to_string()));
    let stderr = |env: &[(&str, &str)]| {
        let mut command = project.command(&["run", "sweep.yaml", "--grace", "300ms"]);
        for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE"] {
            command.env_remove(var);
        }
        command
            .env("TERM", "xterm-256color")
            .envs(env.iter().copied());
        let output = command.output().expect("dispatch runs");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let piped = stderr(&[]);
    assert!(!piped.contains('\u{1b}'), "{piped}");
    let forced = stderr(&[("CLICOLOR_FORCE", "1")]);
    assert!(forced.contains("\u{1b}[31m"), "red: {forced}");
    assert!(forced.contains("\u{1b}[32m"), "green: {forced}");
    only_our_escapes(forced.as_bytes());
    let both = stderr(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!both.contains('\u{1b}'), "{both}");
}
