//! Label and field selectors in their query-string form (`labelSelector=app=web,tier in (a,b)`,
//! `fieldSelector=status.phase=Running`), as kubectl sends them, and the reverse (a
//! [`LabelSelector`] as a string, for `Scale.status.selector`).

use std::collections::BTreeMap;

use berth_api::{
    KindInfo, LabelSelector,
    meta::{LabelSelectorOperator, LabelSelectorRequirement},
};
use serde_json::Value;

use crate::error::ApiError;

/// Parses `app=web,env!=prod,tier in (a,b),tier notin (c),canary,!legacy`.
pub(crate) fn parse_label_selector(text: &str) -> Result<LabelSelector, ApiError> {
    let mut selector = LabelSelector::default();
    for term in split_terms(text) {
        let term = term.trim();
        if term.is_empty() {
            continue;
        }
        let bad = |expected: &str| {
            ApiError::bad_request(format!(
                "labelSelector: invalid requirement {term:?}: {expected}"
            ))
        };
        let requirement = if let Some(key) = term.strip_prefix('!') {
            requirement(key.trim(), LabelSelectorOperator::DoesNotExist, vec![])
        } else if let Some((key, value)) = term.split_once("!=") {
            requirement(
                key.trim(),
                LabelSelectorOperator::NotIn,
                vec![value.trim().to_owned()],
            )
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            requirement(
                key.trim(),
                LabelSelectorOperator::In,
                vec![value.trim().to_owned()],
            )
        } else if let Some(open) = term.find('(') {
            let Some(values) = term[open + 1..].strip_suffix(')') else {
                return Err(bad("a set ends with `)`"));
            };
            let head: Vec<&str> = term[..open].split_whitespace().collect();
            let operator = match head.as_slice() {
                [_, "in"] => LabelSelectorOperator::In,
                [_, "notin"] => LabelSelectorOperator::NotIn,
                _ => return Err(bad("`key in (v1,v2)` or `key notin (v1,v2)`")),
            };
            let values = values
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            requirement(head[0], operator, values)
        } else {
            requirement(term, LabelSelectorOperator::Exists, vec![])
        };
        if requirement.key.is_empty() || requirement.key.contains(char::is_whitespace) {
            return Err(bad(
                "`key=value`, `key!=value`, `key in (..)`, `key notin (..)`, `key` or `!key`",
            ));
        }
        selector.match_expressions.push(requirement);
    }
    Ok(selector)
}

fn requirement(
    key: &str,
    operator: LabelSelectorOperator,
    values: Vec<String>,
) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_owned(),
        operator,
        values,
    }
}

/// Splits at commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

/// `app=web,tier in (a,b)`: the selector as `Scale.status.selector` and kubectl write it.
pub(crate) fn label_selector_string(selector: &LabelSelector) -> String {
    let mut terms: Vec<String> = selector
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for r in &selector.match_expressions {
        terms.push(match r.operator {
            LabelSelectorOperator::In if r.values.len() == 1 => {
                format!("{}={}", r.key, r.values[0])
            }
            LabelSelectorOperator::NotIn if r.values.len() == 1 => {
                format!("{}!={}", r.key, r.values[0])
            }
            LabelSelectorOperator::In => format!("{} in ({})", r.key, r.values.join(",")),
            LabelSelectorOperator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
            LabelSelectorOperator::Exists => r.key.clone(),
            LabelSelectorOperator::DoesNotExist => format!("!{}", r.key),
        });
    }
    terms.join(",")
}

/// A field selector: every `(field, value, equal)` requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    requirements: Vec<(String, String, bool)>,
}

/// The fields a kind can be selected by, besides `metadata.name` and `metadata.namespace`.
fn selectable_fields(kind: &KindInfo) -> &'static [&'static str] {
    match kind.kind {
        "Pod" => &[
            "status.phase",
            "spec.nodeName",
            "spec.restartPolicy",
            "status.podIP",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.fieldPath",
            "reason",
            "type",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "ReplicaSet" | "Deployment" => &["status.replicas"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses `a=b,c==d,e!=f` for `kind`; a field the kind cannot be selected by is a 400.
    pub(crate) fn parse(kind: &KindInfo, text: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "fieldSelector: invalid requirement {term:?}: expected `field=value`, `field==value` or `field!=value`"
                )));
            };
            let field = field.trim();
            let allowed = selectable_fields(kind);
            if !matches!(field, "metadata.name" | "metadata.namespace") && !allowed.contains(&field)
            {
                let mut supported = vec!["metadata.name", "metadata.namespace"];
                supported.extend_from_slice(allowed);
                return Err(ApiError::bad_request(format!(
                    "fieldSelector: field label {field:?} is not supported for {}; supported: {}",
                    kind.kind,
                    supported.join(", ")
                )));
            }
            requirements.push((field.to_owned(), value.trim().to_owned(), equal));
        }
        Ok(Self { requirements })
    }

    /// The value a `metadata.name=` requirement asks for: a watch of one object.
    pub(crate) fn name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|(field, _, equal)| field == "metadata.name" && *equal)
            .map(|(_, value, _)| value.as_str())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether the object (its JSON form) satisfies every requirement; an absent field is `""`.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(field, value, equal)| {
            let mut current = Some(object);
            for part in field.split('.') {
                current = current.and_then(|v| v.get(part));
            }
            let actual = match current {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

/// Label and field selectors of a list or watch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selectors {
    pub(crate) labels: Option<LabelSelector>,
    pub(crate) fields: FieldSelector,
}

impl Selectors {
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>, object: &Value) -> bool {
        self.labels.as_ref().is_none_or(|s| s.matches(labels)) && self.fields.matches(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_selectors_parse_every_operator() {
        let s =
            parse_label_selector("app=web, env!=prod,tier in (a, b),zone notin (x),canary,!legacy")
                .unwrap();
        assert_eq!(s.match_expressions.len(), 6);
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "a"), ("canary", "")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "c"), ("canary", "")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("tier", "a"),
            ("canary", ""),
            ("legacy", "1")
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("tier", "a"),
            ("canary", "")
        ])));
        let err = parse_label_selector("tier in (a").unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.contains("tier in (a"), "{}", err.message);
    }

    #[test]
    fn selector_strings_round_trip() {
        let s = parse_label_selector("app=web,tier in (a,b),!legacy").unwrap();
        assert_eq!(label_selector_string(&s), "app=web,tier in (a,b),!legacy");
        let mut m = LabelSelector::default();
        m.match_labels.insert("app".into(), "web".into());
        assert_eq!(label_selector_string(&m), "app=web");
    }

    #[test]
    fn field_selectors_check_the_field_and_match_json() {
        let pod = berth_api::object::find_kind("Pod").unwrap();
        let s = FieldSelector::parse(pod, "status.phase=Running,metadata.name!=b").unwrap();
        let object = serde_json::json!({"metadata": {"name": "a"}, "status": {"phase": "Running"}});
        assert!(s.matches(&object));
        let object = serde_json::json!({"metadata": {"name": "b"}, "status": {"phase": "Running"}});
        assert!(!s.matches(&object));
        let err = FieldSelector::parse(pod, "spec.containers=x").unwrap_err();
        assert!(err.message.contains("status.phase"), "{}", err.message);
    }
}
