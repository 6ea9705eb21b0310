//! Matrix expansion: one manifest task becomes one task per combination of
//! its matrix values, each with an id derived from the values.

use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::manifest::types::Task;

/// Most entries one task's matrix may expand to.
pub const MAX_ENTRIES_PER_TASK: usize = 256;
/// Most tasks a whole sweep may expand to.
pub const MAX_TASKS: usize = 5_000;

/// One entry of a task's matrix: the id it gets and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub id: String,
    pub values: IndexMap<String, Json>,
}

/// How many entries the matrix expands to, saturating on overflow.
pub fn entry_count(task: &Task) -> usize {
    task.matrix
        .values()
        .fold(1usize, |n, values| n.saturating_mul(values.len()))
}

/// The entries of `task` (one entry with the task's own id when it has no
/// matrix). Call [`entry_count`] first: this allocates every entry.
pub fn entries(id: &str, task: &Task) -> Vec<Entry> {
    let mut out = vec![Entry {
        id: id.to_owned(),
        values: IndexMap::new(),
    }];
    for (key, values) in &task.matrix {
        let mut next = Vec::with_capacity(out.len() * values.len());
        for entry in &out {
            for (position, value) in values.iter().enumerate() {
                let mut values = entry.values.clone();
                values.insert(key.clone(), value.0.clone());
                next.push(Entry {
                    id: format!("{}-{}", entry.id, slug(&value.0, position)),
                    values,
                });
            }
        }
        out = next;
    }
    out
}

/// A value as part of an id: lower-case letters and digits joined by `-`;
/// the value's position when nothing of it is usable.
fn slug(value: &Json, position: usize) -> String {
    let text = match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() {
        (position + 1).to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::types::MatrixValue;

    #[test]
    fn expands_every_combination_with_readable_ids() {
        let mut task = Task::default();
        task.matrix.insert(
            "module".into(),
            vec![
                MatrixValue("auth".into()),
                MatrixValue("Billing API".into()),
            ],
        );
        task.matrix.insert(
            "model".into(),
            vec![MatrixValue("opus".into()), MatrixValue("gpt-5".into())],
        );
        assert_eq!(entry_count(&task), 4);
        let ids: Vec<String> = entries("audit", &task).into_iter().map(|e| e.id).collect();
        assert_eq!(
            ids,
            [
                "audit-auth-opus",
                "audit-auth-gpt-5",
                "audit-billing-api-opus",
                "audit-billing-api-gpt-5"
            ]
        );
    }

    #[test]
    fn values_without_letters_use_their_position() {
        assert_eq!(slug(&Json::String("!!!".into()), 2), "3");
        assert_eq!(slug(&Json::from(1.5), 0), "1-5");
    }
}
