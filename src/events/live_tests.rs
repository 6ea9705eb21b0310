use super::*;
use crate::events::summary::Summary;
use crate::manifest::types::Severity;

/// A terminal in memory of a fixed size.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Write for Screen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Screen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("screen")).into_owned()
    }
}

fn reporter(cols: usize, rows: usize, animate: bool) -> (LiveReporter, Screen) {
    let screen = Screen::default();
    let terminal = Terminal {
        out: Box::new(screen.clone()),
        size: Box::new(move || (cols, rows)),
        palette: Palette::PLAIN,
    };
    (
        LiveReporter::on(Labels::default(), terminal, animate),
        screen,
    )
}

fn emit(reporter: &mut LiveReporter, event: Event) {
    reporter.report(&Stamped {
        ts: "2026-12-03T12:00:00.000Z".to_owned(),
        event: &event,
    });
}

fn started(task: &str) -> Event {
    Event::TaskStarted {
        task: task.to_owned(),
        attempt: 1,
        model: None,
        backend: "command".to_owned(),
        worktree: false,
        pid: 1,
    }
}

fn run_started(tasks: usize) -> Event {
    Event::RunStarted {
        run_id: "r".to_owned(),
        name: "s".to_owned(),
        manifest: "m".to_owned(),
        tasks,
        concurrency: 2,
    }
}

fn finish(reporter: &mut LiveReporter) {
    let summary = Summary {
        name: "s",
        run_id: "r",
        records: &[],
        escalations: &[],
        duration: Duration::from_millis(5),
        exit_code: 0,
        severity: Severity::High,
        verbose: false,
        tails: &[],
    };
    reporter.finish(&RunEnd {
        summary,
        markdown: "",
    });
}

#[test]
fn nothing_is_drawn_after_the_summary_and_it_ends_in_a_newline() {
    let (mut live, screen) = reporter(80, 24, true);
    emit(&mut live, run_started(2));
    emit(&mut live, started("alpha"));
    finish(&mut live);
    let at_end = screen.text();
    assert!(
        at_end.ends_with("Plans, outputs and logs: .dispatch/tasks/<id>/\n"),
        "{at_end:?}"
    );
    // Late events and ticks change nothing.
    emit(&mut live, started("bravo"));
    std::thread::sleep(TICK * 3);
    assert_eq!(screen.text(), at_end);
}

#[test]
fn the_area_never_grows_past_the_terminal_and_each_line_fits() {
    let (mut live, screen) = reporter(40, 8, false);
    emit(&mut live, run_started(30));
    for i in 0..30 {
        emit(
            &mut live,
            started(&format!("task-with-a-rather-long-name-{i}")),
        );
    }
    let text = screen.text();
    let last_frame = text.rsplit("\u{1b}[J").next().unwrap_or_default();
    let lines: Vec<&str> = last_frame.lines().collect();
    assert!(lines.len() <= 7, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("… and ") && l.ends_with("more running")),
        "{lines:#?}"
    );
    for line in &lines {
        assert!(super::super::fit::width(line) < 40, "{line:?}");
    }
}

/// Events that print nothing redraw at most once per SETTLE (the ticker
/// draws the rest): a burst of 500 starts is not 500 frames. The bound is
/// by the time the burst took, so a slow machine cannot fail it.
#[test]
fn a_burst_of_events_is_not_a_burst_of_frames() {
    let (mut live, screen) = reporter(80, 24, true);
    let start = Instant::now();
    emit(&mut live, run_started(500));
    for i in 0..500 {
        emit(&mut live, started(&format!("t{i}")));
    }
    let took = start.elapsed();
    let frames = screen.text().matches("\u{1b}[J").count();
    let bound = 2 + took.as_millis() / SETTLE.as_millis() + took.as_millis() / TICK.as_millis();
    assert!(
        (frames as u128) <= bound,
        "{frames} frames in {took:?} (at most {bound})"
    );
}

/// While a question waits for its answer the area is not drawn (the
/// person types below the question); the answer brings it back.
#[test]
fn a_question_holds_the_area_back_until_it_is_answered() {
    let (mut live, screen) = reporter(80, 24, false);
    emit(&mut live, run_started(1));
    emit(&mut live, started("alpha"));
    live.prompt("? alpha asks: which region?\n  Type the answer and press Enter:");
    let asked = screen.text();
    assert!(
        asked.ends_with("  Type the answer and press Enter:\n"),
        "{asked:?}"
    );
    emit(
        &mut live,
        Event::Item {
            task: "alpha".to_owned(),
            index: 0,
            text: "x".to_owned(),
            state: crate::domain::checklist::ItemState::Done,
            note: None,
            done: 1,
            total: 2,
            current: None,
        },
    );
    assert_eq!(screen.text(), asked, "nothing drawn under the question");
    emit(
        &mut live,
        Event::Answered {
            task: "alpha".to_owned(),
            seq: 1,
            answer: "eu".to_owned(),
            by: "a person".to_owned(),
        },
    );
    let after = screen.text();
    assert!(
        after.contains("alpha: #1 answered by a person: eu\n"),
        "{after:?}"
    );
    assert!(
        after.ends_with("1 task: 1 running, 0 complete, 0 not complete, 0 waiting · 0 findings\n"),
        "{after:?}"
    );
}
