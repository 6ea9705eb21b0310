//! A YAML loader that keeps where every value came from.
//!
//! serde YAML crates give no positions for values that deserialize fine but
//! are wrong in meaning (an unknown model, a cycle), so the manifest is first
//! loaded into a [`Node`] tree from saphyr's event stream. Every later check
//! reports against that tree's locations. The loader also refuses what a
//! hostile or broken file could do to us: alias bombs, absurd nesting,
//! duplicate keys and several documents in one file.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use crate::manifest::diagnostic::Location;

/// How many nodes a document may expand to once aliases are resolved. A
/// hand-written manifest has a few thousand at most; a billion-laughs file
/// has billions.
pub const MAX_NODES: usize = 200_000;
/// How deeply collections may nest.
pub const MAX_DEPTH: usize = 64;
/// How many bytes of scalar text a document may expand to once aliases are
/// resolved. Counting values alone misses a 1 MB anchored scalar used a
/// few hundred times: few values, gigabytes of text. A manifest file is at
/// most 1 MiB, so this leaves room for generous reuse of anchored prompts.
pub const MAX_EXPANDED_BYTES: usize = 16 * 1024 * 1024;

/// A YAML value and the place it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub location: Location,
}

/// A YAML value, resolved with the YAML 1.2 core schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    /// Entries in the order written; keys are scalars turned into strings.
    Map(Vec<(Key, Node)>),
}

/// A mapping key and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub location: Location,
}

/// Why a YAML text could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub message: String,
    pub location: Option<Location>,
    pub help: Option<String>,
}

impl YamlError {
    fn at(location: Location, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            location: Some(location),
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Load one YAML document. An empty document loads as `None`.
pub fn load(text: &str) -> Result<Option<Node>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| syntax_error(text, &e))?;
        if builder.accept(event, span)? {
            break;
        }
    }
    Ok(builder.root)
}

/// The parser's error in words a user can act on.
fn syntax_error(text: &str, error: &saphyr_parser::ScanError) -> YamlError {
    let m = error.marker();
    let line_text = text.lines().nth(m.line().saturating_sub(1)).unwrap_or("");
    let indent: String = line_text
        .chars()
        .take_while(|c| c.is_whitespace())
        .collect();
    if indent.contains('\t') {
        let column = indent.chars().position(|c| c == '\t').unwrap_or(0) + 1;
        return YamlError::at(
            Location::new(m.line(), column, 1),
            "a tab character indents this line",
        )
        .help("YAML indents with spaces only; replace the tab with spaces");
    }
    let at = Location::new(m.line(), m.col() + 1, 1);
    if error.info().contains("unknown anchor") {
        return YamlError::at(
            at,
            "this alias (`*name`) names an anchor that is not defined",
        )
        .help("define the anchor with `&name` on a value above, or write the value out");
    }
    YamlError::at(at, format!("YAML syntax error: {}", error.info()))
        .help("check the indentation, and that every `[`, `{` and quote is closed")
}

fn location_of(span: Span) -> Location {
    let len = if span.end.line() == span.start.line() {
        span.end.col().saturating_sub(span.start.col())
    } else {
        1
    };
    Location::new(span.start.line(), span.start.col() + 1, len.max(1))
}

/// A collection being built, with what it holds so far.
enum Open {
    Seq {
        location: Location,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        location: Location,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
        /// Keys that came from a `<<` merge, which an explicit key overrides.
        merged: Vec<String>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, (Node, Size)>,
    nodes: usize,
    bytes: usize,
    documents: usize,
    root: Option<Node>,
}

impl Builder {
    /// Take one event; `Ok(true)` when the stream is over.
    fn accept(&mut self, event: Event<'_>, span: Span) -> Result<bool, YamlError> {
        let location = location_of(span);
        match event {
            Event::StreamEnd => return Ok(true),
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(YamlError::at(
                        location,
                        "the file holds more than one YAML document",
                    )
                    .help("a manifest is one document: remove the `---` separator and what follows, or split it into files"));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let size = Size {
                    nodes: 1,
                    bytes: text.len(),
                };
                // A key is a name as written: `00:` is the key "00", not 0.
                let value = if self.expects_key() && tag.is_none() {
                    Value::String(text.into_owned())
                } else {
                    resolve_scalar(&text, style, tag.as_deref(), location)?
                };
                self.push(Node { value, location }, anchor, size)?;
            }
            Event::SequenceStart(anchor, tag) => {
                refuse_tag(tag.as_deref(), location)?;
                self.open(
                    Open::Seq {
                        location,
                        anchor,
                        items: Vec::new(),
                    },
                    location,
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                refuse_tag(tag.as_deref(), location)?;
                self.open(
                    Open::Map {
                        location,
                        anchor,
                        entries: Vec::new(),
                        pending_key: None,
                        merged: Vec::new(),
                    },
                    location,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.close()?,
            Event::Alias(id) => {
                let undefined =
                    || YamlError::at(location, "this alias names an anchor that is not defined");
                // Counted before it is copied, so a bomb stops before the
                // copy that would exhaust memory.
                let size = self
                    .anchors
                    .get(&id)
                    .map(|(_, s)| *s)
                    .ok_or_else(undefined)?;
                self.count(size, location)?;
                let (node, _) = self.anchors.get(&id).ok_or_else(undefined)?;
                let node = Node {
                    location,
                    ..node.clone()
                };
                self.place(node, 0, size)?;
            }
            Event::Nothing | Event::DocumentEnd | Event::StreamStart => {}
        }
        Ok(false)
    }

    /// Whether the next value is a mapping key.
    fn expects_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Open::Map {
                pending_key: None,
                ..
            })
        )
    }

    fn open(&mut self, open: Open, location: Location) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError::at(
                location,
                format!("values nest more than {MAX_DEPTH} levels deep"),
            )
            .help("a manifest never needs this much nesting; flatten the structure"));
        }
        self.count(Size { nodes: 1, bytes: 0 }, location)?;
        self.stack.push(open);
        Ok(())
    }

    fn close(&mut self) -> Result<(), YamlError> {
        let Some(open) = self.stack.pop() else {
            return Ok(());
        };
        let (node, anchor) = match open {
            Open::Seq {
                location,
                anchor,
                items,
            } => (
                Node {
                    value: Value::Seq(items),
                    location,
                },
                anchor,
            ),
            Open::Map {
                location,
                anchor,
                entries,
                ..
            } => (
                Node {
                    value: Value::Map(entries),
                    location,
                },
                anchor,
            ),
        };
        // Already counted as its children arrived; an alias to it counts
        // it again.
        let size = Size {
            nodes: node_count(&node),
            bytes: node_bytes(&node),
        };
        self.place(node, anchor, size)
    }

    fn count(&mut self, size: Size, location: Location) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(size.nodes);
        self.bytes = self.bytes.saturating_add(size.bytes);
        if self.bytes > MAX_EXPANDED_BYTES {
            return Err(YamlError::at(
                location,
                format!(
                    "the document expands to more than {} MiB of text",
                    MAX_EXPANDED_BYTES / (1024 * 1024)
                ),
            )
            .help("aliases (`*name`) copy their anchor's text each time; write large texts once, or put them in a template file"));
        }
        if self.nodes > MAX_NODES {
            return Err(YamlError::at(
                location,
                format!("the document expands to more than {MAX_NODES} values"),
            )
            .help("this is what a YAML alias bomb looks like; write the values out or use fewer aliases"));
        }
        Ok(())
    }

    fn push(&mut self, node: Node, anchor: usize, size: Size) -> Result<(), YamlError> {
        self.count(size, node.location)?;
        self.place(node, anchor, size)
    }

    /// Put a finished node into its parent (or make it the root).
    fn place(&mut self, node: Node, anchor: usize, size: Size) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map {
                entries,
                pending_key,
                merged,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(key_of(node)?),
                Some(key) => insert_entry(entries, merged, key, node)?,
            },
        }
        Ok(())
    }
}

/// What a value costs once expanded: values, and bytes of scalar text.
#[derive(Clone, Copy, Debug)]
struct Size {
    nodes: usize,
    bytes: usize,
}

/// The scalar text under a node, keys included, as [`Builder::count`]
/// counted it.
fn node_bytes(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => items.iter().map(node_bytes).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| k.name.len() + node_bytes(v))
            .sum(),
        Value::String(s) => s.len(),
        // The text as written is gone; its value's width is close enough.
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => 8,
    }
}

fn node_count(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(_, v)| 1 + node_count(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn key_of(node: Node) -> Result<Key, YamlError> {
    let name = match node.value {
        Value::String(s) => s,
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Seq(_) | Value::Map(_) => {
            return Err(YamlError::at(
                node.location,
                "a mapping key must be a plain name, not a list or a mapping",
            )
            .help("write the key as a name, e.g. `my-task:`; quote it if it contains `[` or `{`"))
        }
    };
    Ok(Key {
        name,
        location: node.location,
    })
}

/// Add an entry, refusing duplicates and applying `<<` merge keys.
fn insert_entry(
    entries: &mut Vec<(Key, Node)>,
    merged: &mut Vec<String>,
    key: Key,
    value: Node,
) -> Result<(), YamlError> {
    if key.name == "<<" {
        return merge_into(entries, merged, value);
    }
    if let Some(i) = merged.iter().position(|name| *name == key.name) {
        merged.swap_remove(i);
        entries.retain(|(k, _)| k.name != key.name);
    }
    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == key.name) {
        return Err(YamlError::at(
            key.location,
            format!(
                "duplicate key `{}` (first written on line {})",
                key.name, first.location.line
            ),
        )
        .help("a key may appear once per mapping; remove or rename one of them"));
    }
    entries.push((key, value));
    Ok(())
}

fn merge_error(location: Location) -> YamlError {
    YamlError::at(location, "`<<` merges mappings only")
        .help("write `<<: *anchor` where `&anchor` marks a mapping, or a list of such aliases")
}

/// `<<: *base` (or a list of them) copies the keys that are not set here.
fn merge_into(
    entries: &mut Vec<(Key, Node)>,
    merged: &mut Vec<String>,
    value: Node,
) -> Result<(), YamlError> {
    let sources = match value.value {
        Value::Map(map) => vec![map],
        Value::Seq(items) => items
            .into_iter()
            .map(|item| match item.value {
                Value::Map(map) => Ok(map),
                _ => Err(merge_error(item.location)),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(merge_error(value.location)),
    };
    for map in sources {
        for (key, node) in map {
            if !entries.iter().any(|(k, _)| k.name == key.name) {
                merged.push(key.name.clone());
                entries.push((key, node));
            }
        }
    }
    Ok(())
}

/// Turn a scalar into a value: quoted scalars are strings; plain ones follow
/// the YAML 1.2 core schema (so `no` stays a string, unlike YAML 1.1).
fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    location: Location,
) -> Result<Value, YamlError> {
    if let Some(tag) = tag {
        match (tag.is_yaml_core_schema(), tag.suffix.as_str()) {
            (true, "str") => return Ok(Value::String(text.to_owned())),
            (true, "null" | "bool" | "int" | "float") => return Ok(resolve_plain(text)),
            _ => return Err(unsupported_tag(tag, location)),
        }
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    Ok(resolve_plain(text))
}

/// Collections take no tags: `!!map` and `!!seq` say nothing new, and any
/// other tag asks for a type a manifest does not have.
fn refuse_tag(tag: Option<&Tag>, location: Location) -> Result<(), YamlError> {
    match tag {
        Some(tag)
            if !(tag.is_yaml_core_schema() && matches!(tag.suffix.as_str(), "map" | "seq")) =>
        {
            Err(unsupported_tag(tag, location))
        }
        _ => Ok(()),
    }
}

fn unsupported_tag(tag: &Tag, location: Location) -> YamlError {
    let written = if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    };
    YamlError::at(
        location,
        format!("the YAML tag `{written}` is not supported here"),
    )
    .help("remove the tag; manifests use plain strings, numbers, lists and mappings")
}

fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(int) = parse_int(text) {
        return Value::Int(int);
    }
    if looks_like_float(text) {
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::String(text.to_owned())
}

fn parse_int(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    !body.is_empty()
        && body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
}

impl Node {
    /// The value as JSON, for schema validation and deserialization.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The entry under `key`, when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<(&Key, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// Follow path segments (mapping keys and list indexes) as far as they
    /// go. Returns the deepest node reached, the key that led to it, and
    /// whether the whole path was found.
    pub fn locate<'a, S: AsRef<str>>(&'a self, segments: &[S]) -> Located<'a> {
        let mut here = Located {
            node: self,
            key: None,
            complete: true,
        };
        for segment in segments {
            let segment = segment.as_ref();
            let next = match &here.node.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.name == segment)
                    .map(|(k, v)| (Some(k), v)),
                Value::Seq(items) => segment
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .map(|v| (None, v)),
                _ => None,
            };
            match next {
                Some((key, node)) => {
                    here = Located {
                        node,
                        key,
                        complete: true,
                    }
                }
                None => {
                    here.complete = false;
                    return here;
                }
            }
        }
        here
    }
}

/// Where a path led in a [`Node`] tree.
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    pub node: &'a Node,
    pub key: Option<&'a Key>,
    /// False when the path went further than the tree: the node is the
    /// deepest ancestor that exists.
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_ok(text: &str) -> Node {
        load(text).expect("loads").expect("not empty")
    }

    #[test]
    fn keeps_locations_of_keys_and_values() {
        let root = load_ok("a:\n  b: [1, two]\n");
        let found = root.locate(&["a", "b", "1"]);
        assert!(found.complete);
        assert_eq!(found.node.value, Value::String("two".into()));
        assert_eq!(found.node.location, Location::new(2, 10, 3));
        let key = root.locate(&["a", "b"]).key.expect("key");
        assert_eq!(key.location, Location::new(2, 3, 1));
    }

    #[test]
    fn core_schema_scalars() {
        let root = load_ok("a: no\nb: 12\nc: 1.5\nd: ~\ne: '12'\nf: true\n");
        let json = root.to_json();
        assert_eq!(
            json,
            serde_json::json!({"a": "no", "b": 12, "c": 1.5, "d": null, "e": "12", "f": true})
        );
    }

    #[test]
    fn refuses_duplicate_keys() {
        let err = load("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.location, Some(Location::new(3, 1, 1)));
        assert!(err.message.contains("duplicate key `a`"));
    }

    #[test]
    fn refuses_alias_bombs() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = load(&text).unwrap_err();
        assert!(err.message.contains("expands to more than"), "{err:?}");
    }

    #[test]
    fn merges_merge_keys() {
        let root = load_ok("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n");
        assert_eq!(
            root.locate(&["c"]).node.to_json(),
            serde_json::json!({"y": 3, "x": 1})
        );
    }

    #[test]
    fn refuses_second_document_and_deep_nesting() {
        assert!(load("a: 1\n---\nb: 2\n")
            .unwrap_err()
            .message
            .contains("more than one"));
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(load(&deep).unwrap_err().message.contains("nest"));
    }

    #[test]
    fn empty_document_is_none() {
        assert_eq!(load("").unwrap(), None);
        assert_eq!(load("# only a comment\n").unwrap(), None);
    }
}
