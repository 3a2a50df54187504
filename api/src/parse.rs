//! Parsing manifest text: YAML (or JSON) streams of documents separated by `---`, `kind: List`,
//! into [`Object`]s, with errors that name the source, the document, the line, the field path,
//! the offending value and what was expected.
//!
//! Documents are split at `---` lines (a document marker at the start of a line always starts a
//! document, even inside a block scalar), so a syntax error in one document does not hide the
//! others.

use std::{collections::BTreeMap, fmt, path::PathBuf, sync::Arc};

use serde::de::DeserializeSeed;
use serde_yaml::Value;

use crate::{
    defaults::ApplyDefaults,
    object::{KindError, KindInfo, Object, ObjectKey, resolve_kind},
    validation::{self, FieldError},
};

/// Where manifest text came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    File(PathBuf),
    Stdin,
    /// Text given inline (tests, the API), named for messages.
    Named(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Stdin => f.write_str("<stdin>"),
            Self::Named(name) => f.write_str(name),
        }
    }
}

/// A position in the input: source, 1-based document number, 1-based line, and the item index
/// within a `kind: List`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub source: Arc<Source>,
    pub document: usize,
    pub line: usize,
    pub item: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: document {} (line {})",
            self.source, self.document, self.line
        )?;
        if let Some(item) = self.item {
            write!(f, ", items[{item}]")?;
        }
        Ok(())
    }
}

/// `Deployment "web"`, or just the kind when the object has no name yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    pub kind: String,
    pub name: Option<String>,
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{} {name:?}", self.kind),
            None => f.write_str(&self.kind),
        }
    }
}

/// A problem with a manifest. Its text names the source, document, line and field.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{location}: invalid YAML: {message}")]
    Syntax {
        location: Location,
        message: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{location}: invalid YAML: nested more than {limit} levels deep")]
    TooDeep { location: Location, limit: usize },
    #[error("{location}: expected an object with apiVersion and kind, found {found}")]
    NotAnObject {
        location: Location,
        found: &'static str,
    },
    #[error("{location}: {source}")]
    Kind {
        location: Location,
        #[source]
        source: KindError,
    },
    /// The document does not fit the kind's schema (unknown field, wrong type, bad value).
    #[error("{location}: {object}: {field}: {detail}")]
    Decode {
        location: Location,
        object: ObjectName,
        /// Field path, e.g. `spec.template.spec.containers[0].readinessProbe`.
        field: String,
        /// What is wrong and what was expected.
        detail: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{location}: {object}: {source}")]
    Invalid {
        location: Location,
        object: ObjectName,
        #[source]
        source: FieldError,
    },
    #[error("{location}: {key} is defined more than once (first at {first})")]
    Duplicate {
        location: Location,
        key: ObjectKey,
        first: Location,
    },
}

impl ManifestError {
    pub fn location(&self) -> &Location {
        match self {
            Self::Syntax { location, .. }
            | Self::TooDeep { location, .. }
            | Self::NotAnObject { location, .. }
            | Self::Kind { location, .. }
            | Self::Decode { location, .. }
            | Self::Invalid { location, .. }
            | Self::Duplicate { location, .. } => location,
        }
    }
}

/// All the problems found in some input, rendered one per line.
#[derive(Debug, thiserror::Error)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// One object read from the input, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub location: Location,
    pub object: Object,
    /// The document's text, to point validation errors at the line of their field.
    origin: Option<Origin>,
}

#[derive(Debug, Clone, PartialEq)]
struct Origin {
    text: Arc<str>,
    first_line: usize,
}

impl Origin {
    fn line_of(&self, field: &str) -> Option<usize> {
        crate::locate::locate(&self.text, field).map(|line| self.first_line + line - 1)
    }
}

impl Document {
    fn object_name(&self) -> ObjectName {
        ObjectName {
            kind: self.object.kind().to_owned(),
            name: Some(self.object.name().to_owned()).filter(|n| !n.is_empty()),
        }
    }

    /// Applies Kubernetes' defaults, then validates; returns every problem.
    pub fn default_and_validate(&mut self) -> Vec<ManifestError> {
        self.object.apply_defaults();
        validation::validate(&self.object)
            .into_iter()
            .map(|source| {
                let line = self.origin.as_ref().and_then(|o| o.line_of(&source.field));
                ManifestError::Invalid {
                    location: Location {
                        line: line.unwrap_or(self.location.line),
                        ..self.location.clone()
                    },
                    object: self.object_name(),
                    source,
                }
            })
            .collect()
    }
}

/// The objects and the problems found in some input.
#[derive(Debug, Default)]
pub struct Parsed {
    pub documents: Vec<Document>,
    pub errors: Vec<ManifestError>,
    /// The inputs, in the order they were read.
    pub sources: Vec<Arc<Source>>,
}

impl Parsed {
    pub fn extend(&mut self, other: Parsed) {
        self.documents.extend(other.documents);
        self.errors.extend(other.errors);
        self.sources.extend(other.sources);
    }

    /// Orders the problems as the input: by source, document, list item and line.
    pub fn sort_errors(&mut self) {
        let rank = |source: &Arc<Source>| {
            self.sources
                .iter()
                .position(|s| s == source)
                .unwrap_or(usize::MAX)
        };
        let mut keyed: Vec<_> = std::mem::take(&mut self.errors)
            .into_iter()
            .map(|e| {
                let l = e.location();
                ((rank(&l.source), l.document, l.item, l.line), e)
            })
            .collect();
        keyed.sort_by_key(|(key, _)| *key);
        self.errors = keyed.into_iter().map(|(_, e)| e).collect();
    }

    /// Defaults and validates every document, and checks that no object is defined twice.
    pub fn default_and_validate(&mut self) {
        for document in &mut self.documents {
            let errors = document.default_and_validate();
            self.errors.extend(errors);
        }
        let mut first: BTreeMap<ObjectKey, &Location> = BTreeMap::new();
        for document in &self.documents {
            if let Some(previous) = first.insert(document.object.key(), &document.location) {
                self.errors.push(ManifestError::Duplicate {
                    location: document.location.clone(),
                    key: document.object.key(),
                    first: previous.clone(),
                });
                first.insert(document.object.key(), previous);
            }
        }
        self.sort_errors();
    }

    /// The objects, or every problem when there is at least one.
    pub fn into_result(self) -> Result<Vec<Document>, ManifestErrors> {
        if self.errors.is_empty() {
            Ok(self.documents)
        } else {
            Err(ManifestErrors(self.errors))
        }
    }
}

/// Parses, defaults and validates text: the whole pipeline without I/O.
pub fn parse_and_validate(source: Source, text: &str) -> Result<Vec<Document>, ManifestErrors> {
    let mut parsed = parse_str(source, text);
    parsed.default_and_validate();
    parsed.into_result()
}

/// A document's text and the line it starts on.
struct Chunk<'a> {
    text: &'a str,
    first_line: usize,
    /// Line of the document's first content (for messages).
    content_line: usize,
    has_content: bool,
    explicit: bool,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Splits a stream at `---` lines.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut explicit = false;
    let mut offset = 0;
    for (line_number, line) in (1..).zip(text.split_inclusive('\n')) {
        if is_marker(line, "---") {
            chunks.push(make_chunk(&text[start..offset], first_line, explicit));
            start = offset;
            first_line = line_number;
            explicit = true;
        }
        offset += line.len();
    }
    chunks.push(make_chunk(&text[start..], first_line, explicit));
    // Text before the first `---` is a document only when it has content.
    chunks.retain(|c| c.explicit || c.has_content);
    chunks
}

fn make_chunk(text: &str, first_line: usize, explicit: bool) -> Chunk<'_> {
    let mut content_line = first_line;
    let mut has_content = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty()
            || trimmed.starts_with('#')
            || is_marker(line, "...")
            || trimmed.starts_with('%')
        {
            continue;
        }
        if is_marker(line, "---") {
            let rest = line[3..].trim();
            if rest.is_empty() || rest.starts_with('#') {
                continue;
            }
        }
        content_line = first_line + i;
        has_content = true;
        break;
    }
    Chunk {
        text,
        first_line,
        content_line,
        has_content,
        explicit,
    }
}

/// Parses a stream of manifests. Empty documents are skipped; `kind: List` is expanded.
pub fn parse_str(source: Source, text: &str) -> Parsed {
    let source = Arc::new(source);
    let mut parsed = Parsed {
        sources: vec![source.clone()],
        ..Parsed::default()
    };
    // A byte-order mark is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, chunk) in split_documents(text).into_iter().enumerate() {
        let location = Location {
            source: source.clone(),
            document: index + 1,
            line: chunk.content_line,
            item: None,
        };
        parse_document(&chunk, location, &mut parsed);
    }
    parsed
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn string_field<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

/// Deepest nesting accepted; the YAML deserializer stops at 128 levels anyway, but only after
/// parsing the whole document, which is slow for pathologically deep flow collections.
pub const MAX_DEPTH: usize = 128;

/// The line at which flow collections (`[`, `{`) nest deeper than `limit`, if they do. Quoted
/// strings and comments are skipped; this is a cheap guard, not a parser.
fn flow_too_deep(text: &str, limit: usize) -> Option<usize> {
    let (mut depth, mut line) = (0usize, 1usize);
    let (mut single, mut double, mut comment, mut escaped) = (false, false, false, false);
    let mut previous = '\n';
    for c in text.chars() {
        match c {
            '\n' => {
                line += 1;
                comment = false;
            }
            _ if comment => {}
            '\\' if double => escaped = !escaped,
            '"' if !single && !escaped => double = !double,
            '\'' if !double => single = !single,
            '#' if !single && !double && previous.is_whitespace() => comment = true,
            '[' | '{' if !single && !double => {
                depth += 1;
                if depth > limit {
                    return Some(line);
                }
            }
            ']' | '}' if !single && !double => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c != '\\' {
            escaped = false;
        }
        previous = c;
    }
    None
}

fn parse_document(chunk: &Chunk<'_>, location: Location, parsed: &mut Parsed) {
    if let Some(line) = flow_too_deep(chunk.text, MAX_DEPTH) {
        let location = Location {
            line: chunk.first_line + line - 1,
            ..location
        };
        parsed.errors.push(ManifestError::TooDeep {
            location,
            limit: MAX_DEPTH,
        });
        return;
    }
    let value: Value = match serde_yaml::from_str(chunk.text) {
        Ok(value) => value,
        Err(source) => {
            let (message, line) = split_yaml_error(&source, None);
            let location = Location {
                line: line.map_or(location.line, |l| chunk.first_line + l - 1),
                ..location
            };
            let message = shift_lines(&message, chunk.first_line - 1);
            parsed.errors.push(ManifestError::Syntax {
                location,
                message,
                source,
            });
            return;
        }
    };
    if value.is_null() {
        return;
    }
    if !value.is_mapping() {
        parsed.errors.push(ManifestError::NotAnObject {
            location,
            found: type_name(&value),
        });
        return;
    }
    // Merge keys (`<<: *defaults`), as Kubernetes' YAML 1.1 reader applies them.
    let mut value = value;
    let merged = chunk.text.contains("<<");
    if merged && let Err(source) = value.apply_merge() {
        let message = source.to_string();
        parsed.errors.push(ManifestError::Syntax {
            location,
            message,
            source,
        });
        return;
    }
    if string_field(&value, "kind") == Some("List") && value.get("items").is_some() {
        parse_list(value, location, parsed);
        return;
    }
    let Some(info) = kind_of(&value, &location, Some(chunk), parsed) else {
        return;
    };
    let object_name = object_name_of(&value, info);
    let origin = Origin {
        text: Arc::from(chunk.text),
        first_line: chunk.first_line,
    };
    // Decoding the text gives exact lines; merged documents are decoded from their value.
    let decoded = if merged {
        decode(info, value.clone())
    } else {
        decode(info, serde_yaml::Deserializer::from_str(chunk.text))
    };
    match decoded {
        Ok(object) => parsed.documents.push(Document {
            location,
            object,
            origin: Some(origin),
        }),
        Err((path, source)) => {
            let more = more_decode_errors(info, value, &path, &source);
            let field = path.to_string();
            let (detail, line) = split_yaml_error(&source, Some(&field));
            let line = line
                .map(|l| chunk.first_line + l - 1)
                .or_else(|| origin.line_of(&field))
                .unwrap_or(location.line);
            let first_location = Location {
                line,
                ..location.clone()
            };
            parsed.errors.push(decode_error(
                first_location,
                object_name.clone(),
                field,
                detail,
                source,
            ));
            for (path, source) in more {
                let field = path.to_string();
                let (detail, _) = split_yaml_error(&source, Some(&field));
                let line = origin.line_of(&field).unwrap_or(location.line);
                let location = Location {
                    line,
                    ..location.clone()
                };
                let error = decode_error(location, object_name.clone(), field, detail, source);
                parsed.errors.push(error);
            }
        }
    }
}

fn parse_list(value: Value, location: Location, parsed: &mut Parsed) {
    let Some(Value::Sequence(items)) = value.get("items").cloned() else {
        parsed.errors.push(ManifestError::NotAnObject {
            location,
            found: "a List whose items are not a list",
        });
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        let location = Location {
            item: Some(i),
            ..location.clone()
        };
        if !item.is_mapping() {
            parsed.errors.push(ManifestError::NotAnObject {
                location,
                found: type_name(&item),
            });
            continue;
        }
        let Some(info) = kind_of(&item, &location, None, parsed) else {
            continue;
        };
        let object_name = object_name_of(&item, info);
        match decode(info, item.clone()) {
            Ok(object) => parsed.documents.push(Document {
                location,
                object,
                origin: None,
            }),
            Err((path, source)) => {
                let more = more_decode_errors(info, item, &path, &source);
                for (path, source) in std::iter::once((path, source)).chain(more) {
                    let field = path.to_string();
                    let (detail, _) = split_yaml_error(&source, Some(&field));
                    let error =
                        decode_error(location.clone(), object_name.clone(), field, detail, source);
                    parsed.errors.push(error);
                }
            }
        }
    }
}

fn kind_of(
    value: &Value,
    location: &Location,
    chunk: Option<&Chunk<'_>>,
    parsed: &mut Parsed,
) -> Option<&'static KindInfo> {
    let result = match (
        string_field(value, "apiVersion"),
        string_field(value, "kind"),
    ) {
        (None, _) => Err(KindError::MissingApiVersion),
        (_, None) => Err(KindError::MissingKind),
        (Some(api_version), Some(kind)) => resolve_kind(api_version, kind),
    };
    result
        .map_err(|source| {
            // Point at the field that is wrong.
            let field = match source {
                KindError::WrongApiVersion { .. } => Some("apiVersion"),
                KindError::Unsupported { .. } => Some("kind"),
                KindError::MissingApiVersion | KindError::MissingKind => None,
            };
            let line = chunk
                .zip(field)
                .and_then(|(chunk, field)| {
                    Some(chunk.first_line + crate::locate::locate(chunk.text, field)? - 1)
                })
                .unwrap_or(location.line);
            parsed.errors.push(ManifestError::Kind {
                location: Location {
                    line,
                    ..location.clone()
                },
                source,
            })
        })
        .ok()
}

fn object_name_of(value: &Value, info: &KindInfo) -> ObjectName {
    let name = value
        .get("metadata")
        .and_then(|m| string_field(m, "name"))
        .filter(|n| !n.is_empty());
    ObjectName {
        kind: info.kind.to_owned(),
        name: name.map(str::to_owned),
    }
}

struct ObjectSeed(&'static KindInfo);

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Object;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Object, D::Error> {
        Object::deserialize_as(self.0, deserializer)
    }
}

/// Deserializes an object, tracking the path of the first error.
fn decode<'de, D>(
    info: &'static KindInfo,
    deserializer: D,
) -> Result<Object, (serde_path_to_error::Path, serde_yaml::Error)>
where
    D: serde::Deserializer<'de, Error = serde_yaml::Error>,
{
    let mut track = serde_path_to_error::Track::new();
    ObjectSeed(info)
        .deserialize(serde_path_to_error::Deserializer::new(
            deserializer,
            &mut track,
        ))
        .map_err(|err| (track.path(), err))
}

/// Most decode problems reported for one document.
pub const MAX_DECODE_ERRORS: usize = 20;

/// After the first decode error, finds more: removes the offending field from the document and
/// decodes again, until the rest decodes or a problem cannot be removed.
fn more_decode_errors(
    info: &'static KindInfo,
    mut value: Value,
    first: &serde_path_to_error::Path,
    first_error: &serde_yaml::Error,
) -> Vec<(serde_path_to_error::Path, serde_yaml::Error)> {
    let mut found = Vec::new();
    let mut current = (first.clone(), first_error.to_string());
    while found.len() + 1 < MAX_DECODE_ERRORS
        && remove_offending(&mut value, &current.0, &current.1)
    {
        match decode(info, value.clone()) {
            Ok(_) => break,
            Err((path, error)) => {
                let next = (path.clone(), error.to_string());
                if next.0.to_string() == current.0.to_string() && next.1 == current.1 {
                    break;
                }
                current = next;
                found.push((path, error));
            }
        }
    }
    found
}

/// Removes the field an error is about; false when it cannot tell which one.
fn remove_offending(value: &mut Value, path: &serde_path_to_error::Path, message: &str) -> bool {
    use serde_path_to_error::Segment;
    let unknown = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.split_once(prefix).map(|(_, rest)| (*prefix, rest)))
        .and_then(|(prefix, rest)| rest.split_once('`').map(|(name, _)| (prefix, name)));
    if let Some(("missing field `", _)) = unknown {
        return false;
    }
    let segments: Vec<&Segment> = path.iter().collect();
    let mut node = &mut *value;
    let mut parent_path = segments.as_slice();
    // An unknown field is reported at the object holding it or at the field itself.
    if let Some((_, name)) = unknown {
        if let Some((Segment::Map { key }, rest)) = segments.split_last()
            && key == name
        {
            parent_path = rest;
        }
        for segment in parent_path {
            let next = match segment {
                Segment::Map { key } => node.get_mut(key.as_str()),
                Segment::Seq { index } => node.get_mut(*index),
                _ => None,
            };
            let Some(next) = next else { return false };
            node = next;
        }
        return node.as_mapping_mut().and_then(|m| m.remove(name)).is_some();
    }
    // Any other problem: drop the field holding the bad value.
    let Some((Segment::Map { key }, parents)) = segments.split_last() else {
        return false;
    };
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => node.get_mut(key.as_str()),
            Segment::Seq { index } => node.get_mut(*index),
            _ => None,
        };
        let Some(next) = next else { return false };
        node = next;
    }
    node.as_mapping_mut()
        .and_then(|m| m.remove(key.as_str()))
        .is_some()
}

/// The message of a YAML error without the location and path yaml_serde adds, and its line.
fn split_yaml_error(error: &serde_yaml::Error, path: Option<&str>) -> (String, Option<usize>) {
    let mut message = error.to_string();
    let location = error.location();
    if let Some(location) = &location {
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    // yaml_serde prefixes messages with its own path of the node (`spec.containers[0]: `).
    if path.is_some()
        && let Some((prefix, rest)) = message.split_once(": ")
        && !prefix.is_empty()
        && !prefix.contains(char::is_whitespace)
        && !prefix.contains('`')
    {
        message = rest.to_owned();
    }
    (message, location.map(|l| l.line()).filter(|l| *l > 0))
}

fn decode_error(
    location: Location,
    object: ObjectName,
    field: String,
    message: String,
    source: serde_yaml::Error,
) -> ManifestError {
    let (field, detail) = explain(&field, &message);
    ManifestError::Decode {
        location,
        object,
        field,
        detail,
        source,
    }
}

/// Turns serde's messages into Kubernetes-style ones, with "did you mean" for unknown fields
/// and values.
fn explain(path: &str, message: &str) -> (String, String) {
    let path = if path == "." || path.is_empty() {
        String::new()
    } else {
        path.to_owned()
    };
    for (prefix, what) in [("unknown field `", "field"), ("unknown variant `", "value")] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some((unknown, expected)) = rest.split_once('`') else {
            continue;
        };
        let candidates = expected_names(expected);
        let suggestion = did_you_mean(unknown, &candidates)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let expected = match candidates.as_slice() {
            [] => "no fields are allowed here".to_owned(),
            names => format!("expected one of: {}", names.join(", ")),
        };
        return if what == "field" {
            // serde reports the path of the object holding the unknown field.
            let field = if path.is_empty() {
                unknown.to_owned()
            } else if path.ends_with(unknown) {
                path
            } else {
                format!("{path}.{unknown}")
            };
            (
                field,
                format!("Unknown field {unknown:?}{suggestion}; {expected}"),
            )
        } else {
            (
                path,
                format!(
                    "Unsupported value: {unknown:?}{suggestion}; {}",
                    expected.replace("expected one of", "supported values")
                ),
            )
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let path = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return (path, "Required value".to_owned());
    }
    let detail = message.strip_prefix("invalid type: ").map_or_else(
        || format!("Invalid value: {message}"),
        |rest| format!("Invalid value: wrong type: {}", plain_type_names(rest)),
    );
    (
        if path.is_empty() {
            "(root)".to_owned()
        } else {
            path
        },
        detail,
    )
}

/// serde's Rust type names in words a manifest author knows.
fn plain_type_names(message: &str) -> String {
    let mut message = message.to_owned();
    for (rust, plain) in [
        ("expected i32", "expected an integer"),
        ("expected i64", "expected an integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping"),
        ("sequence", "list"),
        ("expected struct ", "expected a mapping: "),
        ("expected unit", "expected nothing"),
    ] {
        message = message.replace(rust, plain);
    }
    message
}

/// Adds `offset` to every "line N" in a message (messages of a document count from its start).
fn shift_lines(message: &str, offset: usize) -> String {
    if offset == 0 {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(line) => out.push_str(&(line + offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// The names in serde's "expected one of `a`, `b`" / "expected `a`" / "there are no fields".
fn expected_names(expected: &str) -> Vec<String> {
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The candidate closest to `unknown`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(unknown: &str, candidates: &'a [String]) -> Option<&'a str> {
    let lower = unknown.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| {
            let candidate = c.to_ascii_lowercase();
            let distance = if candidate == lower {
                0
            } else {
                strsim::damerau_levenshtein(&lower, &candidate) + 1
            };
            (distance, c)
        })
        .filter(|(distance, c)| *distance <= 1 + (c.len().max(unknown.len()) / 4).clamp(1, 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Parsed {
        parse_str(Source::Named("test.yaml".into()), text)
    }

    #[test]
    fn splits_streams_and_skips_empty_documents() {
        let parsed = parse(
            "# leading comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n...\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let names: Vec<_> = parsed
            .documents
            .iter()
            .map(|d| {
                (
                    d.object.name().to_owned(),
                    d.location.document,
                    d.location.line,
                )
            })
            .collect();
        assert_eq!(names, [("a".to_owned(), 1, 3), ("b".to_owned(), 4, 10)]);
    }

    #[test]
    fn expands_lists() {
        let parsed = parse(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.documents.len(), 2);
        assert_eq!(parsed.documents[1].location.item, Some(1));
    }

    #[test]
    fn syntax_errors_do_not_hide_other_documents() {
        let parsed = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkey: [unclosed\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: c}\n",
        );
        assert_eq!(parsed.documents.len(), 2);
        assert_eq!(parsed.errors.len(), 1);
        let message = parsed.errors[0].to_string();
        assert!(
            message.starts_with("test.yaml: document 2 (line "),
            "{message}"
        );
    }

    #[test]
    fn unknown_fields_suggest_the_closest_name() {
        let parsed = parse(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    readinessProb: {}\n",
        );
        let message = parsed.errors[0].to_string();
        assert!(message.contains("spec.containers[0].readinessProb: Unknown field \"readinessProb\" (did you mean `readinessProbe`?)"), "{message}");
        assert!(message.contains("(line 8)"), "{message}");
    }

    #[test]
    fn depth_guard_skips_quotes_and_comments() {
        assert_eq!(flow_too_deep("a: [[[", 2), Some(1));
        assert_eq!(flow_too_deep("a: [[]]\nb: [[]]", 2), None);
        assert_eq!(flow_too_deep("a: \"[[[\"\nb: '{{{'\n# [[[\n", 2), None);
        assert_eq!(flow_too_deep("a: \"\\\"[[[\"", 2), None);
        assert_eq!(flow_too_deep("a: x\nb: [\n [\n  [", 2), Some(4));
    }

    #[test]
    fn line_numbers_in_messages_count_from_the_file_start() {
        assert_eq!(
            shift_lines("at line 2 column 3, while parsing at line 1", 10),
            "at line 12 column 3, while parsing at line 11"
        );
        assert_eq!(
            shift_lines("no numbers in this line x", 5),
            "no numbers in this line x"
        );
        let parsed =
            parse("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkey: [unclosed\n");
        let message = parsed.errors[0].to_string();
        assert!(
            message.contains("document 2 (line 6)") && message.contains("at line 6"),
            "{message}"
        );
    }

    #[test]
    fn reports_every_unknown_field_and_bad_value_of_a_document() {
        let parsed = parse(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replica: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n        image: busybox\n        imagePullPolicy: Sometimes\n        port: 80\n  minReadySeconds: soon\n",
        );
        let messages: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert!(
            messages[0].contains("(line 5)")
                && messages[0]
                    .contains("spec.replica: Unknown field \"replica\" (did you mean `replicas`?)"),
            "{messages:#?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("imagePullPolicy: Unsupported value: \"Sometimes\"")),
            "{messages:#?}"
        );
        assert!(
            messages.iter().any(|m| m
                .contains("containers[0].port: Unknown field \"port\" (did you mean `ports`?)")),
            "{messages:#?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("spec.minReadySeconds: Invalid value: wrong type")),
            "{messages:#?}"
        );
        assert!(parsed.documents.is_empty());
    }

    #[test]
    fn applies_merge_keys_like_kubernetes() {
        let parsed = parse(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\n  labels: &common {app: web}\ndata:\n  <<: *common\n  b: \"2\"\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let Object::ConfigMap(config) = &parsed.documents[0].object else {
            panic!()
        };
        assert_eq!(config.data.get("app").map(String::as_str), Some("web"));
        let bad = parse("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\n  <<: {nme: x}\n");
        let message = bad.errors[0].to_string();
        assert!(
            message.contains("(line 3)") && message.contains("metadata.nme: Unknown field"),
            "{message}"
        );
    }

    #[test]
    fn did_you_mean_is_conservative() {
        let names: Vec<String> = ["replicas", "selector", "template"]
            .map(String::from)
            .into();
        assert_eq!(did_you_mean("replica", &names), Some("replicas"));
        assert_eq!(did_you_mean("Selector", &names), Some("selector"));
        assert_eq!(did_you_mean("volumes", &names), None);
    }
}
