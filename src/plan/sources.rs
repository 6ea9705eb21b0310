//! Matrix values read from data when a sweep is planned: the repository's
//! files by glob, the lines of a text file, the rows of a JSON, JSON Lines
//! or CSV file, and a command's output.
//!
//! Everything is relative to the repository that holds the manifest, so a
//! sweep plans the same from any folder. The data is the manifest author's
//! (checked in beside it, or printed by their command); it becomes task
//! ids, prompts and checks exactly as listed values do. Each value keeps
//! where it came from (`rows.csv, line 7`), which `dispatch plan` shows.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::manifest::matrix::{Source, SourceKind};

/// The most bytes a data file or a command's output may hold: far beyond a
/// list of values a person means, short of what would exhaust memory.
pub const MAX_DATA_BYTES: u64 = 64 * 1024 * 1024;

/// How long a `command:` may run unless its `timeout:` says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One value read from data.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub value: Json,
    /// The text its part of a task id is made from: a path below the
    /// glob's fixed folders, a line, or a row's `id` field.
    pub label: String,
    /// Where it came from, for `dispatch plan`.
    pub origin: String,
}

/// Why a source gave no values: the field of the source to point at, what
/// went wrong, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError {
    pub field: &'static str,
    pub message: String,
    pub help: String,
}

impl SourceError {
    fn new(field: &'static str, message: impl Into<String>, help: impl Into<String>) -> Self {
        SourceError {
            field,
            message: message.into(),
            help: help.into(),
        }
    }
}

/// The repository a manifest in `manifest_dir` belongs to: the nearest
/// folder up that holds `.git`, else the manifest's own folder.
pub fn repository_of(manifest_dir: &Path) -> PathBuf {
    let dir = std::fs::canonicalize(manifest_dir).unwrap_or_else(|_| manifest_dir.to_path_buf());
    crate::state::find_root(&dir)
}

/// The values of `source`, read in `repo`.
pub fn read(repo: &Path, source: &Source) -> Result<Vec<Item>, SourceError> {
    let Some(&(kind, text)) = source.kinds().first() else {
        // The manifest's checks refuse such a source before this runs.
        return Ok(Vec::new());
    };
    match kind {
        SourceKind::Glob => glob(repo, text, &source.exclude),
        SourceKind::Command => command(repo, text, source),
        _ => {
            let path = inside(repo, kind.key(), text)?;
            let data = read_file(&path, kind.key(), text)?;
            match kind {
                SourceKind::Lines => Ok(lines(&data, text)),
                SourceKind::Json => rows(json_array(&data, text)?, text, source),
                SourceKind::Jsonl => rows(json_lines(&data, text)?, text, source),
                _ => rows(csv_rows(&data, text)?, text, source),
            }
        }
    }
}

/// `text` as a path inside `repo`: relative, and never climbing out.
fn inside(repo: &Path, field: &'static str, text: &str) -> Result<PathBuf, SourceError> {
    let path = Path::new(text);
    let escapes = path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err(SourceError::new(
            field,
            format!("`{text}` is not a path inside the repository"),
            "write the path from the repository's root, without `..` or a leading `/`",
        ));
    }
    Ok(repo.join(path))
}

fn read_file(path: &Path, field: &'static str, text: &str) -> Result<String, SourceError> {
    let unreadable = |e: std::io::Error| {
        SourceError::new(
            field,
            format!("cannot read `{text}`: {e}"),
            "paths are relative to the repository's root (the folder with `.git`); check the name and its permissions",
        )
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(unreadable)?
        .take(MAX_DATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_DATA_BYTES {
        return Err(SourceError::new(
            field,
            format!("`{text}` holds more than {} MiB", MAX_DATA_BYTES >> 20),
            "is this the right file? Split the data over several sweeps",
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        SourceError::new(
            field,
            format!(
                "`{text}` is not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to() + 1
            ),
            "save it as UTF-8",
        )
    })
}

/// Each non-blank line that is not a `#` comment, trimmed.
fn lines(data: &str, name: &str) -> Vec<Item> {
    data.lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| Item {
            value: Json::String(line.to_owned()),
            label: line.to_owned(),
            origin: format!("{name}, line {n}"),
        })
        .collect()
}

/// A row and where it is in its file.
type Row = (Json, String);

fn bad_row(field: &'static str, message: String) -> SourceError {
    SourceError::new(
        field,
        message,
        "each row must be an object (its fields become `matrix.KEY.FIELD`) or a string, number or boolean",
    )
}

fn json_array(data: &str, name: &str) -> Result<Vec<Row>, SourceError> {
    let value: Json = serde_json::from_str(data).map_err(|e| {
        bad_row(
            "json",
            format!(
                "`{name}` is not JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let Json::Array(items) = value else {
        return Err(bad_row(
            "json",
            format!("`{name}` holds {}, not an array of rows", kind_of(&value)),
        ));
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(n, v)| (v, format!("{name}, row {}", n + 1)))
        .collect())
}

fn json_lines(data: &str, name: &str) -> Result<Vec<Row>, SourceError> {
    let mut out = Vec::new();
    for (n, line) in data.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Json = serde_json::from_str(line).map_err(|e| {
            bad_row(
                "jsonl",
                format!(
                    "`{name}`, line {}, column {}: not JSON: {}",
                    n + 1,
                    e.column(),
                    without_position(&e)
                ),
            )
        })?;
        out.push((value, format!("{name}, line {}", n + 1)));
    }
    Ok(out)
}

/// serde_json's message without its ` at line L column C`, which within
/// one line of a JSON Lines file would name the wrong line.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((message, _)) => message.to_owned(),
        None => text,
    }
}

fn csv_rows(data: &str, name: &str) -> Result<Vec<Row>, SourceError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(data.as_bytes());
    let fail = |message: String| {
        SourceError::new(
            "csv",
            message,
            "the first line names the fields; every row has one value per field",
        )
    };
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| fail(format!("`{name}`: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    if headers.iter().all(|h| h.trim().is_empty()) {
        return Err(fail(format!(
            "`{name}` has no header line naming its fields"
        )));
    }
    if let Some(twice) = headers
        .iter()
        .enumerate()
        .find(|(i, h)| headers[..*i].contains(h))
    {
        return Err(fail(format!(
            "`{name}` names the field `{}` twice in its header",
            twice.1
        )));
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos,
                expected_len,
                len,
            } => fail(format!(
                "`{name}`, line {}: {len} field{}, but the header names {expected_len}",
                pos.as_ref().map_or(0, csv::Position::line),
                if *len == 1 { "" } else { "s" }
            )),
            _ => fail(format!("`{name}`: {e}")),
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        let row: serde_json::Map<String, Json> = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.clone(), Json::String(v.to_owned())))
            .collect();
        out.push((Json::Object(row), format!("{name}, line {line}")));
    }
    Ok(out)
}

fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Rows become values; the `id` field (or the first) names each in ids.
fn rows(rows: Vec<Row>, name: &str, source: &Source) -> Result<Vec<Item>, SourceError> {
    let field = source.kinds().first().map_or("json", |(k, _)| k.key());
    if rows.is_empty() {
        return Err(SourceError::new(
            field,
            format!("`{name}` holds no rows"),
            "add rows, or remove the matrix key",
        ));
    }
    let mut out = Vec::with_capacity(rows.len());
    for (value, origin) in rows {
        let label = match &value {
            Json::Object(fields) => {
                let named = match &source.id {
                    Some(id) => fields.get(id).ok_or_else(|| {
                        bad_row(
                            field,
                            format!("{origin}: the row has no field `{id}` (named by `id:`)"),
                        )
                    })?,
                    None => fields.values().next().ok_or_else(|| {
                        bad_row(field, format!("{origin}: the row is an empty object"))
                    })?,
                };
                text_of(named)
            }
            Json::String(_) | Json::Number(_) | Json::Bool(_) => text_of(&value),
            other => {
                return Err(bad_row(
                    field,
                    format!("{origin}: the row is {}", kind_of(other)),
                ))
            }
        };
        out.push(Item {
            value,
            label,
            origin,
        });
    }
    Ok(out)
}

fn text_of(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The folders of a glob before its first wildcard: where the walk starts.
fn fixed_prefix(pattern: &str) -> String {
    let mut prefix = String::new();
    let parts: Vec<&str> = pattern.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if part.contains(['*', '?', '[', '{', '\\']) {
            break;
        }
        prefix.push_str(part);
        prefix.push('/');
    }
    prefix
}

fn compile(pattern: &str, field: &'static str) -> Result<globset::GlobMatcher, SourceError> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| {
            SourceError::new(
                field,
                format!("`{pattern}` is not a glob: {}", e.kind()),
                "`*` matches within a folder, `**` across folders, `{a,b}` either",
            )
        })
}

/// The repository's files matching `pattern` and none of `exclude`, as
/// git would list them: what `.gitignore` ignores is left out, and so are
/// `.git/` and `.dispatch/`.
fn glob(repo: &Path, pattern: &str, exclude: &[String]) -> Result<Vec<Item>, SourceError> {
    if pattern.starts_with('/') || pattern.split('/').any(|p| p == "..") {
        return Err(SourceError::new(
            "glob",
            format!("`{pattern}` reaches outside the repository"),
            "write the glob from the repository's root, without `..` or a leading `/`",
        ));
    }
    let pattern = pattern.strip_prefix("./").unwrap_or(pattern);
    let matcher = compile(pattern, "glob")?;
    let excluded: Vec<globset::GlobMatcher> = exclude
        .iter()
        .map(|p| compile(p.strip_prefix("./").unwrap_or(p), "exclude"))
        .collect::<Result<_, _>>()?;
    let prefix = fixed_prefix(pattern);
    let start = repo.join(&prefix);
    let mut found = Vec::new();
    let (mut looked, mut left_out) = (0usize, 0usize);
    if start.is_dir() {
        let walk = ignore::WalkBuilder::new(&start)
            .hidden(false)
            .ignore(false)
            .git_global(false)
            .git_exclude(false)
            .require_git(false)
            .filter_entry(|e| {
                let name = e.file_name();
                !(e.file_type().is_some_and(|t| t.is_dir())
                    && (name == ".git" || name == ".dispatch"))
            })
            .build();
        for entry in walk {
            let entry = entry.map_err(|e| {
                SourceError::new(
                    "glob",
                    format!("cannot list the files for `{pattern}`: {e}"),
                    "check the folders' permissions",
                )
            })?;
            if entry.file_type().is_none_or(|t| t.is_dir()) {
                continue;
            }
            let Ok(relative) = entry.path().strip_prefix(repo) else {
                continue;
            };
            let Some(relative) = relative.to_str() else {
                continue;
            };
            looked += 1;
            if !matcher.is_match(relative) {
                continue;
            }
            if excluded.iter().any(|x| x.is_match(relative)) {
                left_out += 1;
                continue;
            }
            found.push(relative.to_owned());
        }
    }
    if found.is_empty() {
        let mut message = format!("`{pattern}` matches no file in the repository");
        if left_out > 0 {
            message.push_str(&format!(" ({left_out} matched, all excluded)"));
        } else if looked == 0 {
            message.push_str(&format!(
                " (`{}` holds no file that git does not ignore)",
                if prefix.is_empty() {
                    "."
                } else {
                    prefix.trim_end_matches('/')
                }
            ));
        }
        return Err(SourceError::new(
            "glob",
            message,
            "globs are relative to the repository's root; `*` matches within a folder and `**` across folders; files .gitignore ignores are left out",
        ));
    }
    found.sort();
    let origin = format!("glob `{pattern}`");
    Ok(found
        .into_iter()
        .map(|path| Item {
            label: path.strip_prefix(&prefix).unwrap_or(&path).to_owned(),
            value: Json::String(path),
            origin: origin.clone(),
        })
        .collect())
}

/// Each non-blank line of what `text` prints, run with `sh -c` in the
/// repository, in a process group of its own that is stopped when it ends
/// or overruns, so nothing it started outlives the planning.
fn command(repo: &Path, text: &str, source: &Source) -> Result<Vec<Item>, SourceError> {
    use std::os::unix::process::CommandExt;
    let timeout = source
        .timeout
        .as_ref()
        .and_then(|t| crate::manifest::duration::parse(&t.0))
        .unwrap_or(DEFAULT_COMMAND_TIMEOUT);
    let failed = |message: String| {
        SourceError::new(
            "command",
            message,
            "the command runs with `sh -c` in the repository's root and prints one value per line",
        )
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(text)
        .current_dir(repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| failed(format!("cannot start `sh`: {e}")))?;
    let group = rustix::process::Pid::from_raw(child.id() as i32);
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(MAX_DATA_BYTES + 1).read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(failed(format!("cannot wait for the command: {e}"))),
        }
    };
    // Whatever it left running (or all of it, on a timeout) stops here, so
    // the pipes close and the readers end.
    if let Some(group) = group {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.wait();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(SourceError::new(
            "command",
            format!(
                "the command ran longer than {} and was stopped",
                crate::manifest::duration::format(timeout)
            ),
            "make it faster, or give it a longer `timeout:`",
        ));
    };
    if !status.success() {
        let said = String::from_utf8_lossy(&stderr);
        let said = crate::util::escape::one_line(said.trim());
        let said: String = said.chars().take(300).collect();
        return Err(failed(format!(
            "the command failed ({status}){}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        )));
    }
    if stdout.len() as u64 > MAX_DATA_BYTES {
        return Err(failed(format!(
            "the command printed more than {} MiB",
            MAX_DATA_BYTES >> 20
        )));
    }
    let stdout = String::from_utf8(stdout)
        .map_err(|_| failed("the command's output is not UTF-8 text".to_owned()))?;
    let items: Vec<Item> = lines(&stdout, "output")
        .into_iter()
        .map(|mut item| {
            item.origin = format!("command, {}", item.origin.replace("output, ", ""));
            item
        })
        .collect();
    if items.is_empty() {
        return Err(failed("the command printed no values".to_owned()));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(kind: SourceKind, text: &str) -> Source {
        let mut s = Source::default();
        let slot = match kind {
            SourceKind::Glob => &mut s.glob,
            SourceKind::Lines => &mut s.lines,
            SourceKind::Json => &mut s.json,
            SourceKind::Jsonl => &mut s.jsonl,
            SourceKind::Csv => &mut s.csv,
            SourceKind::Command => &mut s.command,
        };
        *slot = Some(text.to_owned());
        s
    }

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    fn values(items: &[Item]) -> Vec<String> {
        items.iter().map(|i| text_of(&i.value)).collect()
    }

    #[test]
    fn a_glob_lists_files_in_order_without_ignored_or_excluded_ones() {
        let dir = repo(&[
            (".gitignore", "build/\n*.snap.js\n"),
            ("src/b.test.js", ""),
            ("src/a/x.test.js", ""),
            ("src/legacy/old.test.js", ""),
            ("src/a/x.snap.js", ""),
            ("src/a/x.js", ""),
            ("build/gen.test.js", ""),
        ]);
        let mut s = source(SourceKind::Glob, "**/*.test.js");
        s.exclude = vec!["src/legacy/**".into()];
        let items = read(dir.path(), &s).expect("files");
        assert_eq!(values(&items), ["src/a/x.test.js", "src/b.test.js"]);
        let s = source(SourceKind::Glob, "src/*.test.js");
        let items = read(dir.path(), &s).expect("files");
        assert_eq!(values(&items), ["src/b.test.js"]);
        assert_eq!(items[0].label, "b.test.js");
        assert_eq!(items[0].origin, "glob `src/*.test.js`");
    }

    #[test]
    fn a_glob_that_matches_nothing_says_why() {
        let dir = repo(&[("src/a.js", "")]);
        let e = read(dir.path(), &source(SourceKind::Glob, "src/**/*.ts")).expect_err("none");
        assert_eq!(e.message, "`src/**/*.ts` matches no file in the repository");
        let mut s = source(SourceKind::Glob, "src/*.js");
        s.exclude = vec!["src/a.js".into()];
        let e = read(dir.path(), &s).expect_err("none");
        assert!(
            e.message.contains("1 matched, all excluded"),
            "{}",
            e.message
        );
        let e = read(dir.path(), &source(SourceKind::Glob, "../*")).expect_err("outside");
        assert!(e.message.contains("outside the repository"));
        let e = read(dir.path(), &source(SourceKind::Glob, "src/[.js")).expect_err("bad");
        assert!(e.message.contains("is not a glob"), "{}", e.message);
    }

    #[test]
    fn lines_skip_blanks_and_comments() {
        let dir = repo(&[("list.txt", "# services\nauth\n\n  billing  \n")]);
        let items = read(dir.path(), &source(SourceKind::Lines, "list.txt")).expect("lines");
        assert_eq!(values(&items), ["auth", "billing"]);
        assert_eq!(items[1].origin, "list.txt, line 4");
        let e = read(dir.path(), &source(SourceKind::Lines, "nope.txt")).expect_err("missing");
        assert!(
            e.message.starts_with("cannot read `nope.txt`"),
            "{}",
            e.message
        );
        let e = read(dir.path(), &source(SourceKind::Lines, "/etc/passwd")).expect_err("abs");
        assert!(e.message.contains("not a path inside"));
    }

    #[test]
    fn rows_from_json_jsonl_and_csv() {
        let dir = repo(&[
            ("a.json", r#"[{"name": "auth", "owner": "ann"}, "plain"]"#),
            (
                "a.jsonl",
                "{\"name\": \"auth\"}\n\n{\"name\": \"billing\"}\n",
            ),
            ("a.csv", "name,owner\nauth,ann\n\"bill, inc\",bob\n"),
        ]);
        let items = read(dir.path(), &source(SourceKind::Json, "a.json")).expect("json");
        assert_eq!(items[0].value["owner"], "ann");
        assert_eq!(items[0].label, "auth");
        assert_eq!(items[1].label, "plain");
        let items = read(dir.path(), &source(SourceKind::Jsonl, "a.jsonl")).expect("jsonl");
        assert_eq!(items[1].origin, "a.jsonl, line 3");
        let mut s = source(SourceKind::Csv, "a.csv");
        s.id = Some("owner".into());
        let items = read(dir.path(), &s).expect("csv");
        assert_eq!(items[1].value["name"], "bill, inc");
        assert_eq!(items[1].label, "bob");
        assert_eq!(items[1].origin, "a.csv, line 3");
    }

    #[test]
    fn a_bad_row_is_named_by_its_line() {
        let dir = repo(&[
            ("bad.jsonl", "{\"a\": 1}\n{oops\n"),
            ("bad.csv", "a,b\n1,2\n3\n"),
            ("nested.json", "[[1, 2]]"),
            ("object.json", "{\"a\": 1}"),
            ("id.json", "[{\"a\": 1}]"),
        ]);
        let message = |s: Source| read(dir.path(), &s).expect_err("bad").message;
        assert!(message(source(SourceKind::Jsonl, "bad.jsonl"))
            .starts_with("`bad.jsonl`, line 2, column 2: not JSON: key must be a string"));
        assert_eq!(
            message(source(SourceKind::Csv, "bad.csv")),
            "`bad.csv`, line 3: 1 field, but the header names 2"
        );
        assert_eq!(
            message(source(SourceKind::Json, "nested.json")),
            "nested.json, row 1: the row is an array"
        );
        assert_eq!(
            message(source(SourceKind::Json, "object.json")),
            "`object.json` holds an object, not an array of rows"
        );
        let mut s = source(SourceKind::Json, "id.json");
        s.id = Some("name".into());
        assert_eq!(
            message(s),
            "id.json, row 1: the row has no field `name` (named by `id:`)"
        );
    }

    #[test]
    fn a_command_prints_values_and_its_failures_are_explained() {
        let dir = repo(&[]);
        let items = read(
            dir.path(),
            &source(SourceKind::Command, "printf 'a\\n\\nb\\n'"),
        )
        .expect("runs");
        assert_eq!(values(&items), ["a", "b"]);
        assert_eq!(items[1].origin, "command, line 3");
        let e = read(
            dir.path(),
            &source(SourceKind::Command, "echo broken >&2; exit 3"),
        )
        .expect_err("fails");
        assert_eq!(e.message, "the command failed (exit status: 3): broken");
        let mut slow = source(SourceKind::Command, "sleep 30");
        slow.timeout = Some(crate::manifest::types::DurationText("200ms".into()));
        let e = read(dir.path(), &slow).expect_err("slow");
        assert!(
            e.message.starts_with("the command ran longer than"),
            "{}",
            e.message
        );
    }
}
