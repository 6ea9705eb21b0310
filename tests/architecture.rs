//! The layering of `src/`, checked: a module imports only from the layers
//! below it, and nothing imports `cli`. The order is the one
//! `docs/architecture.md` explains; a new top-level module must be placed in
//! it here. And output has one way out: below `cli`, only the reporters
//! (`events`) write to the terminal, so whatever reaches it is redacted and
//! escaped in one place.

use std::path::Path;

/// From the bottom up.
const LAYERS: &[&str] = &[
    "util",
    "domain",
    "state",
    "manifest",
    "agents",
    "supervise",
    "isolation",
    "ipc",
    "escalation",
    "plan",
    "record",
    "events",
    "report",
    "sweep",
    "cli",
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| *layer == module)
}

/// Every `crate::NAME` a source file names outside comments.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((number + 1, name));
            }
        }
    }
    found
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each source file under `src/`, in order: its path there, its top
/// module (`sweep`, `lib`, `main`) and its text.
fn each_source(mut visit: impl FnMut(&Path, &str, &str)) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_owned())
            .expect("a module name");
        let text = std::fs::read_to_string(file).expect("a readable source file");
        visit(relative, &module, &text);
    }
}

#[test]
fn imports_point_only_down_the_layers() {
    let mut wrong = Vec::new();
    each_source(|relative, module, text| {
        if module == "lib" || module == "main" {
            return;
        }
        let own =
            rank(module).unwrap_or_else(|| panic!("src/{module} is in no layer: add it to LAYERS"));
        for (line, name) in imports(text) {
            match rank(&name) {
                Some(theirs) if theirs > own => wrong.push(format!(
                    "src/{}:{line}: {module} imports {name}, a layer above it",
                    relative.display()
                )),
                _ => {}
            }
        }
    });
    assert!(
        wrong.is_empty(),
        "imports that point up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import() {
    // The check itself must be able to fail.
    let found = imports("use crate::cli::exit; // crate::sweep in a comment\n");
    assert_eq!(found, vec![(1, "cli".to_owned())]);
}

/// Where a source file writes to the terminal around the reporters: a
/// print macro anywhere, or a handle on stdout or stderr outside `events`.
fn prints(text: &str, reporters: bool) -> Vec<usize> {
    const MACROS: &[&str] = &["println!", "print!", "eprintln!", "eprint!", "dbg!"];
    const HANDLES: &[&str] = &["io::stdout()", "io::stderr()"];
    let named = |code: &str, name: &str| {
        code.match_indices(name).any(|(at, _)| {
            !code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            MACROS.iter().any(|m| named(code, m))
                || (!reporters && HANDLES.iter().any(|h| code.contains(h)))
        })
        .map(|(number, _)| number + 1)
        .collect()
}

#[test]
fn below_cli_only_the_reporters_write_to_the_terminal() {
    let mut wrong = Vec::new();
    each_source(|relative, module, text| {
        if module == "cli" || module == "main" {
            return;
        }
        for line in prints(text, module == "events") {
            wrong.push(format!("src/{}:{line}", relative.display()));
        }
    });
    assert!(
        wrong.is_empty(),
        "output around the reporters (emit an event instead):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_a_print() {
    let text = "eprintln!(\"x\");\n// println!(\"in a comment\")\nwriteln!(out)?;\nlet o = std::io::stdout();\n";
    assert_eq!(prints(text, false), vec![1, 4]);
    assert_eq!(prints(text, true), vec![1]);
}
