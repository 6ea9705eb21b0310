//! The checked-in JSON Schema stays what the Rust types generate, and is
//! documented well enough for editors to help people write manifests.

use assert_cmd::Command;
use serde_json::Value;

const SCHEMA_PATH: &str = "schemas/manifest.schema.json";

#[test]
fn checked_in_schema_matches_the_types() {
    let generated = dispatch::manifest::schema::manifest_schema_text();
    let on_disk = std::fs::read_to_string(SCHEMA_PATH).expect("schema file exists");
    assert!(
        generated == on_disk,
        "{SCHEMA_PATH} is out of date: run `cargo run -- schema > {SCHEMA_PATH}` and commit it"
    );
}

#[test]
fn schema_command_prints_the_checked_in_schema() {
    let output = Command::cargo_bin("dispatch")
        .expect("binary")
        .arg("schema")
        .output()
        .expect("runs");
    assert!(output.status.success());
    let on_disk = std::fs::read_to_string(SCHEMA_PATH).expect("schema file exists");
    assert_eq!(String::from_utf8_lossy(&output.stdout), on_disk);
}

/// Every property of every object in the schema, with its path.
fn properties<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "properties" || key == "$defs" {
                    if let Value::Object(children) = child {
                        for (name, schema) in children {
                            let here = format!("{path}/{key}/{name}");
                            if key == "properties" {
                                out.push((here.clone(), schema));
                            }
                            properties(schema, here, out);
                        }
                    }
                } else {
                    properties(child, format!("{path}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                properties(item, format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_property_has_a_description() {
    let schema = dispatch::manifest::schema::manifest_schema();
    let mut found = Vec::new();
    properties(&schema, String::new(), &mut found);
    assert!(found.len() > 50, "found only {} properties", found.len());
    let missing: Vec<&str> = found
        .iter()
        .filter(|(_, s)| {
            s.get("description")
                .and_then(Value::as_str)
                .is_none_or(|d| d.trim().is_empty())
        })
        .map(|(p, _)| p.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "properties without a description: {missing:?}"
    );
}

#[test]
fn schema_is_draft_2020_12_and_closed() {
    let schema = dispatch::manifest::schema::manifest_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], serde_json::json!(["version", "tasks"]));
}
