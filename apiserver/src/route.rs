//! Request paths → what they address. One table of kinds (from [`berth_api::KINDS`]) gives
//! every kind its URL prefix (`/api/v1` for the core group, `/apis/{group}/{version}` else),
//! plural and scope, so adding a kind to `berth_api` adds its paths here.
//!
//! Each resolved path also has a *template* (`/api/v1/namespaces/{namespace}/pods/{name}`), the
//! `route` label of the request metrics: bounded by the table, never the raw path.

use berth_api::KindInfo;

use crate::error::ApiError;

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Healthz,
    Readyz,
    Version,
    Metrics,
    Apply,
    /// A list of a kind: in one namespace, or across all (or cluster-scoped) when `None`.
    Collection {
        kind: &'static KindInfo,
        namespace: Option<String>,
    },
    Item {
        kind: &'static KindInfo,
        namespace: Option<String>,
        name: String,
    },
    Subresource {
        kind: &'static KindInfo,
        namespace: Option<String>,
        name: String,
        sub: Sub,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sub {
    Status,
    Scale,
    Rollback,
    Log,
    Exec,
}

impl Sub {
    fn parse(kind: &KindInfo, segment: &str) -> Option<Self> {
        match (kind.kind, segment) {
            (_, "status") => Some(Self::Status),
            ("Deployment" | "ReplicaSet", "scale") => Some(Self::Scale),
            ("Deployment", "rollback") => Some(Self::Rollback),
            ("Pod", "log") => Some(Self::Log),
            ("Pod", "exec") => Some(Self::Exec),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Scale => "scale",
            Self::Rollback => "rollback",
            Self::Log => "log",
            Self::Exec => "exec",
        }
    }
}

/// The URL prefix of a kind's group/version: `/api/v1` or `/apis/apps/v1`.
pub(crate) fn prefix(kind: &KindInfo) -> String {
    if kind.api_version.contains('/') {
        format!("/apis/{}", kind.api_version)
    } else {
        format!("/api/{}", kind.api_version)
    }
}

/// The list kind (`PodList`).
pub(crate) fn list_kind(kind: &KindInfo) -> String {
    format!("{}List", kind.kind)
}

impl Target {
    /// The path template, the `route` label of the metrics.
    pub(crate) fn template(&self) -> String {
        let scoped = |kind: &KindInfo, namespace: &Option<String>| match namespace {
            Some(_) => format!("{}/namespaces/{{namespace}}/{}", prefix(kind), kind.plural),
            None => format!("{}/{}", prefix(kind), kind.plural),
        };
        match self {
            Self::Healthz => "/healthz".into(),
            Self::Readyz => "/readyz".into(),
            Self::Version => "/version".into(),
            Self::Metrics => "/metrics".into(),
            Self::Apply => "/apis/berth.dev/v1/apply".into(),
            Self::Collection { kind, namespace } => scoped(kind, namespace),
            Self::Item {
                kind, namespace, ..
            } => format!("{}/{{name}}", scoped(kind, namespace)),
            Self::Subresource {
                kind,
                namespace,
                sub,
                ..
            } => format!("{}/{{name}}/{}", scoped(kind, namespace), sub.as_str()),
        }
    }
}

fn kind_in(group_version: &str, plural: &str) -> Option<&'static KindInfo> {
    berth_api::KINDS
        .iter()
        .find(|k| k.api_version == group_version && k.plural == plural)
}

fn not_found(path: &str) -> ApiError {
    ApiError::not_found(format!(
        "the server could not find the requested resource (path {path:?}); resources are under /api/v1 (core kinds), /apis/apps/v1, /apis/autoscaling/v2 and /apis/berth.dev/v1/apply"
    ))
}

/// Resolves a request path; unknown paths are a 404 `Status`.
pub(crate) fn resolve(path: &str) -> Result<Target, ApiError> {
    let trimmed = path.trim_end_matches('/');
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    let (group_version, rest) = match segments.as_slice() {
        ["healthz"] => return Ok(Target::Healthz),
        ["readyz"] => return Ok(Target::Readyz),
        ["version"] => return Ok(Target::Version),
        ["metrics"] => return Ok(Target::Metrics),
        ["apis", "berth.dev", "v1", "apply"] => return Ok(Target::Apply),
        ["api", version, rest @ ..] => ((*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return Err(not_found(path)),
    };
    if rest.iter().any(|s| s.is_empty()) {
        return Err(not_found(path));
    }
    let kind = |plural: &str| kind_in(&group_version, plural).ok_or_else(|| not_found(path));
    let target = match rest {
        // `namespaces/{ns}/{plural}...` for namespaced kinds; `namespaces[/{name}[/status]]` is
        // the cluster-scoped Namespace kind itself.
        ["namespaces", namespace, plural, tail @ ..]
            if kind_in(&group_version, plural).is_some_and(|k| k.namespaced) =>
        {
            let kind = kind(plural)?;
            let namespace = Some((*namespace).to_owned());
            match tail {
                [] => Target::Collection { kind, namespace },
                [name] => Target::Item {
                    kind,
                    namespace,
                    name: (*name).to_owned(),
                },
                [name, sub] => Target::Subresource {
                    kind,
                    namespace,
                    sub: Sub::parse(kind, sub).ok_or_else(|| not_found(path))?,
                    name: (*name).to_owned(),
                },
                _ => return Err(not_found(path)),
            }
        }
        [plural] => Target::Collection {
            kind: kind(plural)?,
            namespace: None,
        },
        [plural, name] => {
            let kind = kind(plural)?;
            if kind.namespaced {
                return Err(not_found(path));
            }
            Target::Item {
                kind,
                namespace: None,
                name: (*name).to_owned(),
            }
        }
        [plural, name, sub] => {
            let kind = kind(plural)?;
            if kind.namespaced {
                return Err(not_found(path));
            }
            Target::Subresource {
                kind,
                namespace: None,
                sub: Sub::parse(kind, sub).ok_or_else(|| not_found(path))?,
                name: (*name).to_owned(),
            }
        }
        _ => return Err(not_found(path)),
    };
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_of_every_shape() {
        let pods = resolve("/api/v1/namespaces/team/pods").unwrap();
        assert_eq!(pods.template(), "/api/v1/namespaces/{namespace}/pods");
        assert!(matches!(
            pods,
            Target::Collection { kind, namespace: Some(ref ns) } if kind.kind == "Pod" && ns == "team"
        ));
        assert_eq!(resolve("/api/v1/pods").unwrap().template(), "/api/v1/pods");
        assert_eq!(
            resolve("/api/v1/namespaces/team").unwrap(),
            Target::Item {
                kind: berth_api::object::find_kind("Namespace").unwrap(),
                namespace: None,
                name: "team".into()
            }
        );
        assert_eq!(
            resolve("/apis/apps/v1/namespaces/default/deployments/web/scale")
                .unwrap()
                .template(),
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"
        );
        assert_eq!(
            resolve("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/h")
                .unwrap()
                .template(),
            "/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/{name}"
        );
        assert_eq!(resolve("/apis/berth.dev/v1/apply").unwrap(), Target::Apply);
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/",
            "/api/v1/widgets",
            "/apis/apps/v1/pods",
            "/api/v1/namespaces/default/pods/p/scale",
            "/api/v1/namespaces/default/services/s/log",
            "/api/v1/pods/p",
            "/api/v2/pods",
        ] {
            let err = resolve(path).unwrap_err();
            assert_eq!(err.code, 404, "{path}");
            assert!(err.message.contains(path), "{}", err.message);
        }
    }
}
