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
        write!(f, "{}: document {} (line {})", self.source, self.document, self.line)?;
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
    #[error("{location}: expected an object with apiVersion and kind, found {found}")]
    NotAnObject { location: Location, found: &'static str },
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
    Duplicate { location: Location, key: ObjectKey, first: Location },
}

impl ManifestError {
    pub fn location(&self) -> &Location {
        match self {
            Self::Syntax { location, .. }
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
            .map(|source| ManifestError::Invalid {
                location: self.location.clone(),
                object: self.object_name(),
                source,
            })
            .collect()
    }
}

/// The objects and the problems found in some input.
#[derive(Debug, Default)]
pub struct Parsed {
    pub documents: Vec<Document>,
    pub errors: Vec<ManifestError>,
}

impl Parsed {
    pub fn extend(&mut self, other: Parsed) {
        self.documents.extend(other.documents);
        self.errors.extend(other.errors);
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
    }

    /// The objects, or every problem when there is at least one.
    pub fn into_result(self) -> Result<Vec<Document>, ManifestErrors> {
        if self.errors.is_empty() { Ok(self.documents) } else { Err(ManifestErrors(self.errors)) }
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
    line.strip_prefix(marker).is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Splits a stream at `---` lines.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut explicit = false;
    let mut offset = 0;
    let mut line_number = 1;
    for line in text.split_inclusive('\n') {
        if is_marker(line, "---") {
            chunks.push(make_chunk(&text[start..offset], first_line, explicit));
            start = offset;
            first_line = line_number;
            explicit = true;
        }
        offset += line.len();
        line_number += 1;
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
        if trimmed.is_empty() || trimmed.starts_with('#') || is_marker(line, "...") || trimmed.starts_with('%') {
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
    Chunk { text, first_line, content_line, has_content, explicit }
}

/// Parses a stream of manifests. Empty documents are skipped; `kind: List` is expanded.
pub fn parse_str(source: Source, text: &str) -> Parsed {
    let source = Arc::new(source);
    let mut parsed = Parsed::default();
    // A byte-order mark is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, chunk) in split_documents(text).into_iter().enumerate() {
        let location = Location { source: source.clone(), document: index + 1, line: chunk.content_line, item: None };
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

fn parse_document(chunk: &Chunk<'_>, location: Location, parsed: &mut Parsed) {
    let value: Value = match serde_yaml::from_str(chunk.text) {
        Ok(value) => value,
        Err(source) => {
            let (message, line) = split_yaml_error(&source, None);
            let location = Location { line: line.map_or(location.line, |l| chunk.first_line + l - 1), ..location };
            parsed.errors.push(ManifestError::Syntax { location, message, source });
            return;
        }
    };
    if value.is_null() {
        return;
    }
    if !value.is_mapping() {
        parsed.errors.push(ManifestError::NotAnObject { location, found: type_name(&value) });
        return;
    }
    if string_field(&value, "kind") == Some("List") && value.get("items").is_some() {
        parse_list(value, location, parsed);
        return;
    }
    let Some(info) = kind_of(&value, &location, parsed) else { return };
    let object_name = object_name_of(&value, info);
    match decode(info, serde_yaml::Deserializer::from_str(chunk.text)) {
        Ok(object) => parsed.documents.push(Document { location, object }),
        Err((field, source)) => {
            let (detail, line) = split_yaml_error(&source, Some(&field));
            let location = Location { line: line.map_or(location.line, |l| chunk.first_line + l - 1), ..location };
            parsed.errors.push(decode_error(location, object_name, field, detail, source));
        }
    }
}

fn parse_list(value: Value, location: Location, parsed: &mut Parsed) {
    let Some(Value::Sequence(items)) = value.get("items").cloned() else {
        parsed.errors.push(ManifestError::NotAnObject { location, found: "a List whose items are not a list" });
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        let location = Location { item: Some(i), ..location.clone() };
        if !item.is_mapping() {
            parsed.errors.push(ManifestError::NotAnObject { location, found: type_name(&item) });
            continue;
        }
        let Some(info) = kind_of(&item, &location, parsed) else { continue };
        let object_name = object_name_of(&item, info);
        match decode(info, item) {
            Ok(object) => parsed.documents.push(Document { location, object }),
            Err((field, source)) => {
                let (detail, _) = split_yaml_error(&source, Some(&field));
                parsed.errors.push(decode_error(location, object_name, field, detail, source));
            }
        }
    }
}

fn kind_of(value: &Value, location: &Location, parsed: &mut Parsed) -> Option<&'static KindInfo> {
    let result = match (string_field(value, "apiVersion"), string_field(value, "kind")) {
        (None, _) => Err(KindError::MissingApiVersion),
        (_, None) => Err(KindError::MissingKind),
        (Some(api_version), Some(kind)) => resolve_kind(api_version, kind),
    };
    result.map_err(|source| parsed.errors.push(ManifestError::Kind { location: location.clone(), source })).ok()
}

fn object_name_of(value: &Value, info: &KindInfo) -> ObjectName {
    let name = value.get("metadata").and_then(|m| string_field(m, "name")).filter(|n| !n.is_empty());
    ObjectName { kind: info.kind.to_owned(), name: name.map(str::to_owned) }
}

struct ObjectSeed(&'static KindInfo);

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Object;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Object, D::Error> {
        Object::deserialize_as(self.0, deserializer)
    }
}

/// Deserializes an object, tracking the path of the first error.
fn decode<'de, D>(info: &'static KindInfo, deserializer: D) -> Result<Object, (String, serde_yaml::Error)>
where
    D: serde::Deserializer<'de, Error = serde_yaml::Error>,
{
    let mut track = serde_path_to_error::Track::new();
    ObjectSeed(info)
        .deserialize(serde_path_to_error::Deserializer::new(deserializer, &mut track))
        .map_err(|err| (track.path().to_string(), err))
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
    if path.is_some() {
        if let Some((prefix, rest)) = message.split_once(": ") {
            if !prefix.is_empty() && !prefix.contains(char::is_whitespace) && !prefix.contains('`') {
                message = rest.to_owned();
            }
        }
    }
    (message, location.map(|l| l.line()).filter(|l| *l > 0))
}

fn decode_error(location: Location, object: ObjectName, field: String, message: String, source: serde_yaml::Error) -> ManifestError {
    let (field, detail) = explain(&field, &message);
    ManifestError::Decode { location, object, field, detail, source }
}

/// Turns serde's messages into Kubernetes-style ones, with "did you mean" for unknown fields
/// and values.
fn explain(path: &str, message: &str) -> (String, String) {
    let path = if path == "." || path.is_empty() { String::new() } else { path.to_owned() };
    for (prefix, what) in [("unknown field `", "field"), ("unknown variant `", "value")] {
        let Some(rest) = message.strip_prefix(prefix) else { continue };
        let Some((unknown, expected)) = rest.split_once('`') else { continue };
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
            let field = if path.is_empty() { unknown.to_owned() } else if path.ends_with(unknown) { path } else { format!("{path}.{unknown}") };
            (field, format!("Unknown field {unknown:?}{suggestion}; {expected}"))
        } else {
            (path, format!("Unsupported value: {unknown:?}{suggestion}; {}", expected.replace("expected one of", "supported values")))
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let path = if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") };
        return (path, "Required value".to_owned());
    }
    let detail = message.strip_prefix("invalid type: ").map_or_else(
        || format!("Invalid value: {message}"),
        |rest| format!("Invalid value: wrong type: {rest}"),
    );
    (if path.is_empty() { "(root)".to_owned() } else { path }, detail)
}

/// The names in serde's "expected one of `a`, `b`" / "expected `a`" / "there are no fields".
fn expected_names(expected: &str) -> Vec<String> {
    expected.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The candidate closest to `unknown`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(unknown: &str, candidates: &'a [String]) -> Option<&'a str> {
    let lower = unknown.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| {
            let candidate = c.to_ascii_lowercase();
            let distance = if candidate == lower { 0 } else { strsim::damerau_levenshtein(&lower, &candidate) + 1 };
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
        let names: Vec<_> = parsed.documents.iter().map(|d| (d.object.name().to_owned(), d.location.document, d.location.line)).collect();
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
        let parsed = parse("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkey: [unclosed\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: c}\n");
        assert_eq!(parsed.documents.len(), 2);
        assert_eq!(parsed.errors.len(), 1);
        let message = parsed.errors[0].to_string();
        assert!(message.starts_with("test.yaml: document 2 (line "), "{message}");
    }

    #[test]
    fn unknown_fields_suggest_the_closest_name() {
        let parsed = parse("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    readinessProb: {}\n");
        let message = parsed.errors[0].to_string();
        assert!(message.contains("spec.containers[0].readinessProb: Unknown field \"readinessProb\" (did you mean `readinessProbe`?)"), "{message}");
        assert!(message.contains("(line 8)"), "{message}");
    }

    #[test]
    fn did_you_mean_is_conservative() {
        let names: Vec<String> = ["replicas", "selector", "template"].map(String::from).into();
        assert_eq!(did_you_mean("replica", &names), Some("replicas"));
        assert_eq!(did_you_mean("Selector", &names), Some("selector"));
        assert_eq!(did_you_mean("volumes", &names), None);
    }
}
