//! The malformed-manifest corpus: every file under `tests/corpus/invalid/`
//! must be refused with its expected first error, at its expected place,
//! with exit code 2 and never a panic.
//!
//! A case is `NN-name.yaml` whose first line is `# expect: LINE:COL TEXT`
//! (or `# expect: - TEXT` for errors about the whole file), or a sidecar
//! `NN-name.expect` holding the same for files that cannot carry a comment.
//! `NN-name.generate` (`size=BYTES`, or `anchor=BYTES uses=N`) describes a
//! file too large to check in; the test writes it to a temporary folder.
//! Lines `# also: LINE:COL TEXT` after the first name further problems that
//! must be reported too (after the first): one problem must not hide
//! another.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

const CORPUS: &str = "tests/corpus/invalid";

struct Case {
    name: String,
    /// The manifest to check (generated ones live in a temp folder).
    path: PathBuf,
    /// `Some((line, column))`, or `None` for whole-file errors.
    location: Option<(usize, usize)>,
    text: String,
    /// Further problems that must be reported, after the first.
    also: Vec<(Option<(usize, usize)>, String)>,
    _temp: Option<tempfile::TempDir>,
}

fn parse_expectation(spec: &str, origin: &Path) -> (Option<(usize, usize)>, String) {
    let spec = spec.trim();
    let (place, text) = spec
        .split_once(' ')
        .unwrap_or_else(|| panic!("{}: expectation needs `PLACE TEXT`", origin.display()));
    let location = if place == "-" {
        None
    } else {
        let (line, column) = place
            .split_once(':')
            .unwrap_or_else(|| panic!("{}: place must be LINE:COL or -", origin.display()));
        Some((
            line.parse().expect("line number"),
            column.parse().expect("column number"),
        ))
    };
    (location, text.trim().to_owned())
}

fn cases() -> Vec<Case> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .expect("corpus folder exists")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    let mut cases = Vec::new();
    for path in entries {
        let name = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let sidecar = path.with_extension("expect");
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml") => {
                let spec = if sidecar.exists() {
                    std::fs::read_to_string(&sidecar).expect("read sidecar")
                } else {
                    let bytes = std::fs::read(&path).expect("read case");
                    let text = String::from_utf8_lossy(&bytes);
                    let first = text.lines().next().unwrap_or_default();
                    first
                        .strip_prefix("# expect:")
                        .unwrap_or_else(|| {
                            panic!("{}: first line must be `# expect: ...`", path.display())
                        })
                        .to_owned()
                };
                let (location, text) = parse_expectation(&spec, &path);
                let bytes = std::fs::read(&path).expect("read case");
                let also = String::from_utf8_lossy(&bytes)
                    .lines()
                    .skip(1)
                    .map_while(|l| l.strip_prefix("# also:"))
                    .map(|spec| parse_expectation(spec, &path))
                    .collect();
                cases.push(Case {
                    name,
                    path,
                    location,
                    text,
                    also,
                    _temp: None,
                });
            }
            Some("generate") => {
                let spec = std::fs::read_to_string(&path).expect("read generate spec");
                let temp = tempfile::tempdir().expect("tempdir");
                let file = temp.path().join(format!("{name}.yaml"));
                std::fs::write(&file, generate(spec.trim())).expect("write generated case");
                let (location, expected) =
                    parse_expectation(&std::fs::read_to_string(&sidecar).expect("sidecar"), &path);
                cases.push(Case {
                    name,
                    path: file,
                    location,
                    text: expected,
                    also: Vec::new(),
                    _temp: Some(temp),
                });
            }
            _ => {}
        }
    }
    cases
}

/// The text a `.generate` spec describes: `size=BYTES` (a manifest that
/// long), or `anchor=BYTES uses=N` (one anchored scalar that long, used by
/// N aliases: small as a file, huge once expanded).
fn generate(spec: &str) -> String {
    let field = |key: &str| -> Option<usize> {
        spec.split_whitespace()
            .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    };
    if let Some(size) = field("size") {
        let mut text = String::from("version: 1\ntasks:\n  a:\n    prompt: |\n");
        while text.len() < size {
            text.push_str("      filler line to make the manifest far too large\n");
        }
        return text;
    }
    let (Some(anchor), Some(uses)) = (field("anchor"), field("uses")) else {
        panic!("generate spec is `size=BYTES` or `anchor=BYTES uses=N`, not {spec:?}");
    };
    let mut text = format!(
        "version: 1\nvars:\n  big: &big {}\n  copies:\n",
        "x".repeat(anchor)
    );
    for _ in 0..uses {
        text.push_str("    - *big\n");
    }
    text.push_str("tasks:\n  a:\n    model: sonnet\n    prompt: hello\n");
    text
}

/// What `dispatch validate` reports for a file, through the library.
fn diagnostics(path: &Path) -> Vec<dispatch::manifest::diagnostic::Diagnostic> {
    let loaded = match dispatch::manifest::load(path) {
        Ok(loaded) => loaded,
        Err(invalid) => return invalid.0,
    };
    let options = dispatch::plan::PlanOptions {
        run_id: "dry-run".into(),
        ..Default::default()
    };
    match dispatch::plan::build(&loaded, &options) {
        Ok(_) => Vec::new(),
        Err(invalid) => invalid.0,
    }
}

#[test]
fn corpus_is_large_enough() {
    assert!(
        cases().len() >= 40,
        "the corpus has only {} cases",
        cases().len()
    );
}

#[test]
fn every_case_fails_with_its_expected_first_error() {
    let mut failures = Vec::new();
    for case in cases() {
        let found = diagnostics(&case.path);
        let Some(first) = found.first() else {
            failures.push(format!("{}: was accepted", case.name));
            continue;
        };
        let location = first.location.map(|l| (l.line, l.column));
        if location != case.location || !first.message.contains(&case.text) {
            failures.push(format!(
                "{}: expected {:?} containing {:?}, got {:?}: {}",
                case.name, case.location, case.text, location, first.message
            ));
        }
        for (place, text) in &case.also {
            let reported = found.iter().skip(1).any(|d| {
                d.location.map(|l| (l.line, l.column)) == *place && d.message.contains(text)
            });
            if !reported {
                failures.push(format!(
                    "{}: {place:?} {text:?} is not reported after the first problem; got {:?}",
                    case.name,
                    found.iter().map(|d| &d.message).collect::<Vec<_>>()
                ));
            }
        }
        if first.help.is_none() {
            failures.push(format!(
                "{}: the error says what, but not what to do: {}",
                case.name, first.message
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_case_exits_2_from_the_command_line() {
    for case in cases() {
        let output = Command::cargo_bin("dispatch")
            .expect("binary")
            .arg("validate")
            .arg(&case.path)
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}: {stderr}", case.name);
        assert!(stderr.starts_with("error: "), "{}: {stderr}", case.name);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", case.name);
    }
}

#[test]
fn rendered_errors_match_snapshots() {
    for case in cases() {
        if case._temp.is_some() {
            continue; // its path is a temporary folder
        }
        let rendered = dispatch::manifest::diagnostic::render_all(&diagnostics(&case.path));
        insta::with_settings!({ snapshot_path => "snapshots/corpus", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(case.name.clone(), rendered);
        });
    }
}
