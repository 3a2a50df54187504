//! What users type to name objects, as kubectl reads it: kinds with their plurals and short
//! names (`po`, `deploy`, `svc`), `KIND NAME...` or `KIND/NAME...`, and the API paths of kinds
//! and objects.

use berth_api::object::{KINDS, KindInfo, find_kind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error(
        "the server doesn't have a resource type {word:?}; berth knows: pods (po), deployments \
         (deploy), replicasets (rs), services (svc), configmaps (cm), secrets, namespaces (ns), \
         endpoints (ep), events (ev), horizontalpodautoscalers (hpa)"
    )]
    UnknownKind { word: String },
    #[error("you must specify the type of resource to {verb}, e.g. `berth {verb} deployment/web`")]
    Missing { verb: &'static str },
    #[error("{verb}: expected a name after {kind:?}, e.g. `berth {verb} {kind} NAME`")]
    MissingName { verb: &'static str, kind: String },
    #[error(
        "{arg:?}: there is no need to specify a resource type as a separate argument when \
         passing arguments in resource/name form"
    )]
    MixedForms { arg: String },
    #[error("{verb} works on {expected}, not on {kind}")]
    WrongKind {
        verb: &'static str,
        expected: &'static str,
        kind: &'static str,
    },
    #[error("{verb}: expected one object, got {count}")]
    NotOne { verb: &'static str, count: usize },
}

/// Short names kubectl knows, besides the kind, its plural and `kind.group`.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("po", "Pod"),
    ("deploy", "Deployment"),
    ("rs", "ReplicaSet"),
    ("svc", "Service"),
    ("cm", "ConfigMap"),
    ("ns", "Namespace"),
    ("ep", "Endpoints"),
    ("ev", "Event"),
    ("hpa", "HorizontalPodAutoscaler"),
];

/// A kind as users type it: `pod`, `Pods`, `po`, `deployment.apps`, `deploy`.
pub fn parse_kind(word: &str) -> Result<&'static KindInfo, ResourceError> {
    let lower = word.to_ascii_lowercase();
    let base = lower.split('.').next().unwrap_or_default();
    let by_short = SHORT_NAMES
        .iter()
        .find(|(short, _)| *short == lower)
        .and_then(|(_, kind)| find_kind(kind));
    by_short
        .or_else(|| {
            KINDS.iter().find(|k| {
                k.kind.eq_ignore_ascii_case(&lower)
                    || k.plural == lower
                    || k.resource_name() == lower
                    || (lower.contains('.')
                        && (k.kind.eq_ignore_ascii_case(base) || k.plural == base)
                        && k.resource_name().contains('.'))
            })
        })
        .ok_or_else(|| ResourceError::UnknownKind {
            word: word.to_owned(),
        })
}

/// What `get all` lists, in kubectl's order.
pub fn all_kinds() -> Vec<&'static KindInfo> {
    ["Pod", "Service", "Deployment", "ReplicaSet"]
        .into_iter()
        .filter_map(find_kind)
        .collect()
}

/// One object named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: &'static KindInfo,
    pub name: String,
}

/// `KIND NAME...` or `KIND/NAME...` → the objects, at least one.
pub fn parse_targets(verb: &'static str, args: &[String]) -> Result<Vec<Target>, ResourceError> {
    let Some(first) = args.first() else {
        return Err(ResourceError::Missing { verb });
    };
    if first.contains('/') {
        return args
            .iter()
            .map(|arg| {
                let (kind, name) = arg
                    .split_once('/')
                    .filter(|(_, name)| !name.is_empty())
                    .ok_or_else(|| ResourceError::MixedForms { arg: arg.clone() })?;
                Ok(Target {
                    kind: parse_kind(kind)?,
                    name: name.to_owned(),
                })
            })
            .collect();
    }
    let kind = parse_kind(first)?;
    if args.len() == 1 {
        return Err(ResourceError::MissingName {
            verb,
            kind: first.clone(),
        });
    }
    args[1..]
        .iter()
        .map(|name| {
            if name.contains('/') {
                return Err(ResourceError::MixedForms { arg: name.clone() });
            }
            Ok(Target {
                kind,
                name: name.clone(),
            })
        })
        .collect()
}

/// Exactly one object of one of `kinds` (`deployment/web` or `deployment web`).
pub fn parse_one(
    verb: &'static str,
    args: &[String],
    kinds: &[&str],
    expected: &'static str,
) -> Result<Target, ResourceError> {
    let mut targets = parse_targets(verb, args)?;
    if targets.len() != 1 {
        return Err(ResourceError::NotOne {
            verb,
            count: targets.len(),
        });
    }
    let target = targets.remove(0);
    if !kinds.contains(&target.kind.kind) {
        return Err(ResourceError::WrongKind {
            verb,
            expected,
            kind: target.kind.kind,
        });
    }
    Ok(target)
}

fn group_prefix(kind: &KindInfo) -> String {
    if kind.api_version.contains('/') {
        format!("/apis/{}", kind.api_version)
    } else {
        format!("/api/{}", kind.api_version)
    }
}

/// The list path of a kind: in one namespace, or across all of them with `None`.
pub fn collection_path(kind: &KindInfo, namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) if kind.namespaced => format!(
            "{}/namespaces/{namespace}/{}",
            group_prefix(kind),
            kind.plural
        ),
        _ => format!("{}/{}", group_prefix(kind), kind.plural),
    }
}

/// The path of one object.
pub fn object_path(kind: &KindInfo, namespace: &str, name: &str) -> String {
    format!("{}/{name}", collection_path(kind, Some(namespace)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn kinds_have_kubectl_aliases() {
        for (word, kind) in [
            ("po", "Pod"),
            ("pods", "Pod"),
            ("Pod", "Pod"),
            ("deploy", "Deployment"),
            ("deployments", "Deployment"),
            ("deployment.apps", "Deployment"),
            ("deployments.apps", "Deployment"),
            ("rs", "ReplicaSet"),
            ("svc", "Service"),
            ("service", "Service"),
            ("cm", "ConfigMap"),
            ("secret", "Secret"),
            ("ns", "Namespace"),
            ("ep", "Endpoints"),
            ("endpoints", "Endpoints"),
            ("ev", "Event"),
            ("events", "Event"),
            ("hpa", "HorizontalPodAutoscaler"),
        ] {
            assert_eq!(parse_kind(word).unwrap().kind, kind, "{word}");
        }
        let err = parse_kind("jobs").unwrap_err();
        assert!(err.to_string().contains("\"jobs\""), "{err}");
        assert!(err.to_string().contains("deployments (deploy)"), "{err}");
    }

    #[test]
    fn targets_are_kind_then_names_or_kind_slash_name() {
        let targets = parse_targets("delete", &strings(&["po", "a", "b"])).unwrap();
        assert_eq!(
            targets
                .iter()
                .map(|t| (t.kind.kind, t.name.as_str()))
                .collect::<Vec<_>>(),
            [("Pod", "a"), ("Pod", "b")]
        );
        let targets = parse_targets("delete", &strings(&["deployment/web", "svc/web"])).unwrap();
        assert_eq!(targets[0].kind.kind, "Deployment");
        assert_eq!(targets[1].kind.kind, "Service");
        assert_eq!(targets[1].name, "web");
        assert!(matches!(
            parse_targets("delete", &strings(&["deploy/web", "web2"])),
            Err(ResourceError::MixedForms { .. })
        ));
        assert!(matches!(
            parse_targets("delete", &strings(&["pod"])),
            Err(ResourceError::MissingName { .. })
        ));
        assert!(matches!(
            parse_targets("delete", &[]),
            Err(ResourceError::Missing { .. })
        ));
    }

    #[test]
    fn one_target_of_the_expected_kinds() {
        let target = parse_one(
            "scale",
            &strings(&["deploy", "web"]),
            &["Deployment", "ReplicaSet"],
            "deployments and replicasets",
        )
        .unwrap();
        assert_eq!(target.name, "web");
        let err = parse_one(
            "scale",
            &strings(&["svc/web"]),
            &["Deployment", "ReplicaSet"],
            "deployments and replicasets",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "scale works on deployments and replicasets, not on Service"
        );
    }

    #[test]
    fn paths_follow_the_api_groups() {
        let pod = parse_kind("pod").unwrap();
        let deploy = parse_kind("deploy").unwrap();
        let ns = parse_kind("ns").unwrap();
        let hpa = parse_kind("hpa").unwrap();
        assert_eq!(
            object_path(pod, "default", "web"),
            "/api/v1/namespaces/default/pods/web"
        );
        assert_eq!(
            collection_path(deploy, Some("prod")),
            "/apis/apps/v1/namespaces/prod/deployments"
        );
        assert_eq!(collection_path(deploy, None), "/apis/apps/v1/deployments");
        assert_eq!(
            object_path(ns, "default", "prod"),
            "/api/v1/namespaces/prod"
        );
        assert_eq!(
            collection_path(hpa, Some("a")),
            "/apis/autoscaling/v2/namespaces/a/horizontalpodautoscalers"
        );
    }
}
