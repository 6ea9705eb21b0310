//! How large report.html is and how fast a browser shows it, for a sweep of
//! `TASKS` (default 5,000) workers that exit at once: `cargo bench --bench
//! html_report`. Runs the sweep once, then opens its report `RUNS` times
//! (default 5) in a fresh headless Chromium each time (`DISPATCH_BROWSER`
//! or `chromium` on PATH) and prints a Markdown table of medians. A
//! benchmark, not a test: it fails only when a step fails.

#[path = "../tests/common/browser.rs"]
mod browser;

use std::process::Command;
use std::time::Duration;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let tasks = env_number("TASKS", 5000);
    let runs = env_number("RUNS", 5).max(1);
    if let Err(why) = browser::find() {
        eprintln!("html_report: skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut manifest = String::from("version: 1\nconcurrency: 8\ntasks:\n");
    for i in 0..tasks {
        manifest.push_str(&format!(
            "  t{i:05}: {{ plan: [Nothing], command: [sh, -c, ': > \"$DISPATCH_IPC_DIR/.done\"'] }}\n"
        ));
    }
    std::fs::write(dir.path().join("sweep.yaml"), manifest).expect("manifest");
    eprintln!("html_report: running a sweep of {tasks} instant tasks…");
    let status = Command::new(env!("CARGO_BIN_EXE_dispatch"))
        .args(["run", "sweep.yaml", "--quiet", "--root", "."])
        .current_dir(dir.path())
        .status()
        .expect("dispatch runs");
    assert!(status.success(), "the sweep failed: {status}");
    let run = std::fs::read_dir(dir.path().join(".dispatch/runs"))
        .expect("runs")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .max()
        .expect("a run");
    let html = run.join("report.html");
    let size = std::fs::metadata(&html).expect("report.html").len();
    let (mut loads, mut renders) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let mut chromium = browser::Browser::launch();
        let (mut page, load): (browser::Page<'_>, Duration) = chromium.open(&html);
        let render = page
            .value("+document.body.dataset.renderMs")
            .as_f64()
            .expect("the page rendered");
        let errors = page.errors();
        assert!(errors.is_empty(), "console errors: {errors:?}");
        eprintln!(
            "html_report: run {}: load {} ms, render {render} ms",
            i + 1,
            load.as_millis()
        );
        loads.push(load.as_secs_f64() * 1000.0);
        renders.push(render);
    }
    println!("| {tasks} instant tasks | value |");
    println!("|---|---|");
    println!(
        "| report.html size | {:.2} MB ({size} bytes) |",
        size as f64 / 1e6
    );
    println!(
        "| navigation to load event (median of {runs}) | {:.0} ms |",
        median(loads)
    );
    println!("| script render: data parsed, header, timeline, table, findings (median of {runs}) | {:.0} ms |", median(renders));
}
