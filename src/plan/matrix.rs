//! Matrix expansion: one manifest task becomes one task per combination of
//! its matrix values (less `exclude`, plus `include`, as in GitHub
//! Actions), each with an id derived from the values.
//!
//! Ids are meant to be read and to stay put: each value adds a slug of
//! itself (`src/Button.test.js` → `button-test-js` below a glob's fixed
//! folders), and a short hash of the value only when the slug alone would
//! be cut to fit the id's length or would be shared by another value. So
//! adding a file to a glob does not rename the tasks of the others.

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::sources::Item;
use crate::manifest::matrix::Matrix;
use crate::manifest::types::MatrixValue;
use crate::manifest::validate::MAX_ID_LEN;

/// How many tasks a sweep may expand to unless its `max_tasks:` says.
pub const DEFAULT_MAX_TASKS: usize = 5_000;

/// Where a listed value comes from, in `dispatch plan`.
pub const LISTED: &str = "the manifest";

/// One key of a matrix with its values, listed or read.
#[derive(Clone, Debug)]
pub struct Key {
    pub name: String,
    pub items: Vec<Item>,
    /// The row field that names a value in ids (a source's `id:`).
    pub id_field: Option<String>,
}

/// One entry of a task's matrix: the id it gets, its values, and where
/// each came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub id: String,
    pub values: IndexMap<String, Json>,
    pub sources: IndexMap<String, String>,
}

/// A matrix that expands to more entries than allowed: at least `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooMany {
    pub count: usize,
}

/// Listed values as items.
pub fn listed(values: &[MatrixValue]) -> Vec<Item> {
    values
        .iter()
        .map(|v| Item {
            label: match &v.0 {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            },
            value: v.0.clone(),
            origin: LISTED.to_owned(),
        })
        .collect()
}

/// How many combinations the keys make, saturating on overflow.
pub fn product(keys: &[Key]) -> usize {
    keys.iter()
        .fold(1usize, |n, key| n.saturating_mul(key.items.len()))
}

/// The entries of task `id` (one entry with the task's own id when the
/// matrix is empty), refusing more than `limit` before making them all.
pub fn entries(
    id: &str,
    keys: &[Key],
    matrix: &Matrix,
    limit: usize,
) -> Result<Vec<Entry>, TooMany> {
    if keys.is_empty() && matrix.include.is_empty() {
        return Ok(vec![Entry {
            id: id.to_owned(),
            values: IndexMap::new(),
            sources: IndexMap::new(),
        }]);
    }
    let total = product(keys);
    // Excluded combinations are not counted, but walking a product far
    // beyond the limit to find that out would be the very cost refused.
    if total > limit && (matrix.exclude.is_empty() || total > limit.saturating_mul(16)) {
        return Err(TooMany { count: total });
    }
    let budget = slug_budget(id, keys.len().max(1));
    let slugs: Vec<Vec<String>> = keys.iter().map(|k| key_slugs(&k.items, budget)).collect();
    let mut out: Vec<Entry> = Vec::with_capacity(total.min(limit));
    if !keys.is_empty() && total > 0 {
        let mut digits = vec![0usize; keys.len()];
        loop {
            let excluded = matrix.exclude.iter().any(|x| {
                x.iter().all(|(k, want)| {
                    keys.iter()
                        .position(|key| key.name == *k)
                        .is_some_and(|i| matches(&keys[i].items[digits[i]].value, want))
                })
            });
            if !excluded {
                if out.len() == limit {
                    return Err(TooMany { count: limit + 1 });
                }
                let mut entry_id = id.to_owned();
                let mut values = IndexMap::with_capacity(keys.len());
                let mut sources = IndexMap::with_capacity(keys.len());
                for (i, key) in keys.iter().enumerate() {
                    let item = &key.items[digits[i]];
                    entry_id.push('-');
                    entry_id.push_str(&slugs[i][digits[i]]);
                    values.insert(key.name.clone(), item.value.clone());
                    sources.insert(key.name.clone(), item.origin.clone());
                }
                out.push(Entry {
                    id: entry_id,
                    values,
                    sources,
                });
            }
            // The last key turns fastest, so entries read in the order of
            // the values, key by key.
            let mut i = keys.len();
            loop {
                if i == 0 {
                    break;
                }
                i -= 1;
                digits[i] += 1;
                if digits[i] < keys[i].items.len() {
                    break;
                }
                digits[i] = 0;
                if i == 0 {
                    i = usize::MAX;
                    break;
                }
            }
            if i == usize::MAX {
                break;
            }
        }
    }
    include(id, keys, matrix, &mut out, limit)?;
    Ok(out)
}

/// GitHub Actions' `include`: an entry extends every original combination
/// whose matrix values it does not contradict (its other keys added, or
/// replacing what an earlier entry added); one that fits none becomes a
/// combination of its own.
fn include(
    id: &str,
    keys: &[Key],
    matrix: &Matrix,
    out: &mut Vec<Entry>,
    limit: usize,
) -> Result<(), TooMany> {
    let originals = out.len();
    let is_key = |k: &str| keys.iter().any(|key| key.name == k);
    for (n, extra) in matrix.include.iter().enumerate() {
        let origin = format!("include entry {}", n + 1);
        let mut fitted = false;
        for entry in out.iter_mut().take(originals) {
            let fits = extra
                .iter()
                .filter(|(k, _)| is_key(k))
                .all(|(k, v)| entry.values.get(k).is_some_and(|have| matches(have, v)));
            if fits && !keys.is_empty() {
                fitted = true;
                for (k, v) in extra.iter().filter(|(k, _)| !is_key(k)) {
                    entry.values.insert(k.clone(), v.clone());
                    entry.sources.insert(k.clone(), origin.clone());
                }
            }
        }
        if !fitted {
            if out.len() >= limit {
                return Err(TooMany {
                    count: out.len() + 1,
                });
            }
            let budget = slug_budget(id, extra.len().max(1));
            let mut entry_id = id.to_owned();
            for (name, value) in extra {
                let id_field = keys
                    .iter()
                    .find(|k| k.name == *name)
                    .and_then(|k| k.id_field.as_deref());
                let label = label_of(value, id_field);
                let item = Item {
                    value: value.clone(),
                    label,
                    origin: String::new(),
                };
                entry_id.push('-');
                entry_id.push_str(&key_slugs(std::slice::from_ref(&item), budget)[0]);
            }
            out.push(Entry {
                id: entry_id,
                values: extra.clone(),
                sources: extra.keys().map(|k| (k.clone(), origin.clone())).collect(),
            });
        }
    }
    Ok(())
}

/// The text a value is named by in ids: a row's `id_field` (or first
/// field), or the value itself.
fn label_of(value: &Json, id_field: Option<&str>) -> String {
    let named = match value {
        Json::Object(fields) => id_field
            .and_then(|f| fields.get(f))
            .or_else(|| fields.values().next())
            .unwrap_or(value),
        _ => value,
    };
    match named {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether a value is what an `include`/`exclude` entry names: equal, or a
/// row whose fields include all of the entry's.
fn matches(have: &Json, want: &Json) -> bool {
    match (have, want) {
        (Json::Object(row), Json::Object(fields)) => fields
            .iter()
            .all(|(k, v)| row.get(k).is_some_and(|h| matches(h, v))),
        // A CSV field is text: `port: 80` names the row whose port is "80".
        (Json::String(h), Json::Number(_) | Json::Bool(_)) => {
            h.as_str() == want.to_string().as_str()
        }
        _ => have == want,
    }
}

/// How long each key's part of an id may be, so that the whole fits.
fn slug_budget(id: &str, keys: usize) -> usize {
    (MAX_ID_LEN.saturating_sub(id.len() + keys) / keys).max(12)
}

/// Each item's part of an id: its slug, with a short hash of its value
/// when the slug is cut to `budget` or shared with another item.
fn key_slugs(items: &[Item], budget: usize) -> Vec<String> {
    let mut cut = Vec::with_capacity(items.len());
    let mut slugs: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(position, item)| {
            let mut s = slug(&item.label);
            if s.is_empty() {
                s = (position + 1).to_string();
            }
            let long = s.len() > budget;
            if long {
                s.truncate(budget - HASH_LEN - 1);
                s.truncate(s.trim_end_matches('-').len());
            }
            cut.push(long);
            s
        })
        .collect();
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for s in &slugs {
        *seen.entry(s.as_str()).or_default() += 1;
    }
    let shared: Vec<bool> = slugs.iter().map(|s| seen[s.as_str()] > 1).collect();
    for (i, s) in slugs.iter_mut().enumerate() {
        if cut[i] || shared[i] {
            s.push('-');
            s.push_str(&short_hash(&items[i].value));
        }
    }
    slugs
}

const HASH_LEN: usize = 7;

/// Seven hex digits of a 64-bit FNV-1a hash of the value's JSON: stable
/// across builds and machines, unlike the standard library's hasher.
fn short_hash(value: &Json) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in value.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:016x}", hash)[..HASH_LEN].to_owned()
}

/// Text as part of an id: lower-case letters and digits joined by `-`.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, values: &[&str]) -> Key {
        Key {
            name: name.into(),
            id_field: None,
            items: listed(
                &values
                    .iter()
                    .map(|v| MatrixValue(Json::String((*v).into())))
                    .collect::<Vec<_>>(),
            ),
        }
    }

    fn ids(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.id.as_str()).collect()
    }

    fn entry(pairs: &[(&str, Json)]) -> IndexMap<String, Json> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn expands_every_combination_with_readable_ids() {
        let keys = [
            key("module", &["auth", "Billing API"]),
            key("model", &["opus", "gpt-5"]),
        ];
        let out = entries("audit", &keys, &Matrix::default(), 100).expect("fits");
        assert_eq!(
            ids(&out),
            [
                "audit-auth-opus",
                "audit-auth-gpt-5",
                "audit-billing-api-opus",
                "audit-billing-api-gpt-5"
            ]
        );
        assert_eq!(out[0].sources["module"], LISTED);
    }

    #[test]
    fn values_without_letters_use_their_position() {
        let keys = [key("x", &["!!!", "a", "1.5"])];
        let out = entries("t", &keys, &Matrix::default(), 10).expect("fits");
        assert_eq!(ids(&out), ["t-1", "t-a", "t-1-5"]);
    }

    #[test]
    fn a_shared_or_cut_slug_gets_a_stable_hash() {
        let long = "a".repeat(80);
        let keys = [key("x", &["a_b", "a-b", "c", &long])];
        let out = entries("t", &keys, &Matrix::default(), 10).expect("fits");
        let got = ids(&out);
        assert!(got[0].starts_with("t-a-b-") && got[1].starts_with("t-a-b-"));
        assert_ne!(got[0], got[1]);
        assert_eq!(got[2], "t-c");
        assert!(got[3].len() <= MAX_ID_LEN, "{}", got[3]);
        assert_eq!(short_hash(&Json::String("a_b".into())), "dc204cb");
        // The same value gets the same id whatever else is listed.
        let alone = entries("t", &[key("x", &[&long])], &Matrix::default(), 10).expect("fits");
        assert_eq!(alone[0].id, got[3]);
    }

    #[test]
    fn exclude_removes_and_include_extends_or_adds() {
        let keys = [key("os", &["linux", "mac"]), key("lang", &["go", "rust"])];
        let matrix = Matrix {
            exclude: vec![entry(&[("os", "mac".into()), ("lang", "go".into())])],
            include: vec![
                entry(&[("os", "linux".into()), ("extra", "big".into())]),
                entry(&[("os", "windows".into()), ("lang", "go".into())]),
            ],
            ..Matrix::default()
        };
        let out = entries("t", &keys, &matrix, 10).expect("fits");
        assert_eq!(
            ids(&out),
            ["t-linux-go", "t-linux-rust", "t-mac-rust", "t-windows-go"]
        );
        assert_eq!(out[0].values["extra"], "big");
        assert_eq!(out[0].sources["extra"], "include entry 1");
        assert!(!out[2].values.contains_key("extra"));
        assert_eq!(out[3].sources["os"], "include entry 2");
    }

    #[test]
    fn only_includes_make_one_entry_each() {
        let matrix = Matrix {
            include: vec![entry(&[("a", "x".into())]), entry(&[("a", "y".into())])],
            ..Matrix::default()
        };
        let out = entries("t", &[], &matrix, 10).expect("fits");
        assert_eq!(ids(&out), ["t-x", "t-y"]);
    }

    #[test]
    fn refuses_more_than_the_limit() {
        let keys = [key("a", &["1", "2", "3"]), key("b", &["1", "2"])];
        assert_eq!(
            entries("t", &keys, &Matrix::default(), 5),
            Err(TooMany { count: 6 })
        );
        let matrix = Matrix {
            exclude: vec![entry(&[("a", "1".into())])],
            ..Matrix::default()
        };
        assert_eq!(entries("t", &keys, &matrix, 4).map(|e| e.len()), Ok(4));
        assert!(entries("t", &keys, &matrix, 3).is_err());
    }

    #[test]
    fn rows_match_entries_by_their_fields() {
        let row: Json = serde_json::json!({"name": "auth", "port": "80"});
        assert!(matches(&row, &serde_json::json!({"name": "auth"})));
        assert!(matches(&row, &serde_json::json!({"port": 80})));
        assert!(!matches(&row, &serde_json::json!({"name": "x"})));
    }
}
