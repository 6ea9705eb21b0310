//! `--var NAME=VALUE` that nothing reads: a misspelt name, or a variable
//! the manifest no longer has, would otherwise render every task without
//! it and say nothing.

use std::path::Path;

use super::templates::BUILTIN;
use crate::manifest::diagnostic::{did_you_mean, list_names, Diagnostic};
use crate::manifest::LoadedManifest;

/// A problem for each `--var` whose name no `vars:` defines and no
/// template can read. A name counts as read when it appears as a word
/// anywhere in the manifest, its templates folder or the built-in
/// templates: generous, so a var that is used is never refused.
pub fn unused(loaded: &LoadedManifest, vars: &[(String, String)]) -> Vec<Diagnostic> {
    let manifest = &loaded.manifest;
    let defined: Vec<&str> = manifest
        .vars
        .keys()
        .chain(manifest.tasks.values().flat_map(|t| t.vars.keys()))
        .map(String::as_str)
        .collect();
    let mut texts: Vec<String> = vec![loaded.source.text.clone()];
    texts.extend(BUILTIN.iter().map(|(_, text)| (*text).to_owned()));
    let templates_dir = match &manifest.templates {
        Some(dir) => loaded.dir.join(dir),
        None => loaded.dir.join("templates"),
    };
    texts.extend(template_files(&templates_dir));
    // What a did-you-mean may offer: defined vars, and those templates read.
    let mut known: Vec<&str> = defined.clone();
    for text in &texts {
        for (at, _) in text.match_indices("vars.") {
            let rest = &text[at + "vars.".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end > 0 && !known.contains(&&rest[..end]) {
                known.push(&rest[..end]);
            }
        }
    }
    let mut problems = Vec::new();
    for (name, _) in vars {
        if defined.contains(&name.as_str()) || texts.iter().any(|t| has_word(t, name)) {
            continue;
        }
        let help = match did_you_mean(name, known.iter().copied()) {
            Some(close) => format!("did you mean `--var {close}=...`?"),
            None if defined.is_empty() => {
                "templates read a var as `{{ vars.NAME }}`; this manifest uses none, so leave the --var out".to_owned()
            }
            None => format!(
                "the manifest's vars are {}; templates read them as `{{{{ vars.NAME }}}}`",
                list_names(defined.iter().copied(), 10)
            ),
        };
        problems.push(
            Diagnostic::new(
                &loaded.source.name,
                format!("--var {name}: no `vars:` defines `{name}` and no template reads it"),
            )
            .with_help(help),
        );
    }
    problems
}

/// The text of the files directly in a project's templates folder (a
/// missing folder has none). Bounded: a template is small, and this only
/// looks for names.
fn template_files(dir: &Path) -> Vec<String> {
    const MAX_FILES: usize = 200;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .take(MAX_FILES)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

/// Whether `word` occurs in `text` with no identifier character on
/// either side.
fn has_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

#[cfg(test)]
mod tests {
    use super::has_word;

    #[test]
    fn a_word_is_found_only_whole() {
        assert!(has_word("{{ vars.service }}", "service"));
        assert!(has_word("service", "service"));
        assert!(!has_word("{{ vars.services }}", "service"));
        assert!(!has_word("my_service", "service"));
        assert!(has_word("a my_service b service", "service"));
    }
}
