//! Validation in the style of Kubernetes' `field.ErrorList`: every problem of an object is
//! reported at once, each with its field path, the offending value and what was expected.
//!
//! Call it after [`crate::ApplyDefaults::apply_defaults`], as the API server does.

mod names;
mod rules;

use std::fmt;

pub use names::*;

use crate::object::Object;

/// What is wrong with a field, as Kubernetes' `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Required,
    Invalid,
    Duplicate,
    NotFound,
    NotSupported,
    Forbidden,
    TooLong,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::Duplicate => "Duplicate value",
            Self::NotFound => "Not found",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
        }
    }
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub type_: ErrorType,
    /// Path of the field, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// The offending value, rendered (strings quoted), when there is one.
    pub value: Option<String>,
    /// What was expected.
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.type_.as_str())?;
        if let Some(value) = &self.value {
            write!(f, ": {value}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldError {}

/// Validates an object (after defaulting) and returns every problem found, in field order.
pub fn validate(object: &Object) -> Vec<FieldError> {
    let mut errors = rules::Errors::default();
    rules::validate_object(object, &mut errors);
    errors.into_vec()
}

/// A field path under construction: `Path::root("spec").child("replicas")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    pub fn root(name: &str) -> Self {
        Self(name.to_owned())
    }

    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ApplyDefaults,
        core_v1::{EmptyDirVolumeSource, HostPathVolumeSource, Probe, Volume},
        testing,
    };

    fn problems(object: impl Into<Object>) -> Vec<String> {
        let mut object = object.into();
        object.apply_defaults();
        validate(&object).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn builders_are_valid() {
        assert_eq!(
            problems(testing::deployment("web").with_replicas(3).build()),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(testing::replica_set("web", 2)),
            Vec::<String>::new()
        );
        assert_eq!(problems(testing::pod("p").build()), Vec::<String>::new());
        assert_eq!(
            problems(testing::service("web", 80).with_node_port(30080).build()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn node_port_needs_type_node_port() {
        let mut service = testing::service("web", 80).build();
        service.spec.ports[0].node_port = Some(30080);
        assert_eq!(
            problems(service),
            ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
        );
    }

    #[test]
    fn host_network_ports_must_match() {
        let mut pod = testing::pod("p").build();
        pod.spec.host_network = Some(true);
        pod.spec.containers[0] = testing::container("c", "busybox:1")
            .with_port("http", 80)
            .build();
        pod.spec.containers[0].ports[0].host_port = Some(8080);
        assert_eq!(
            problems(pod),
            [
                "spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"
            ]
        );
    }

    #[test]
    fn init_containers_have_no_probes_and_share_the_name_space() {
        let mut pod = testing::pod("p").build();
        let mut init = testing::container("main", "busybox:1").build();
        init.readiness_probe = Some(Probe::default());
        pod.spec.init_containers.push(init);
        assert_eq!(
            problems(pod),
            [
                "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers",
                "spec.containers[0].name: Duplicate value: \"main\"",
            ]
        );
    }

    #[test]
    fn volumes_have_exactly_one_source_and_unique_names() {
        let mut pod = testing::pod("p").build();
        pod.spec.volumes = vec![
            Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                host_path: Some(HostPathVolumeSource {
                    path: "/srv".into(),
                    type_: None,
                }),
                ..Volume::default()
            },
            Volume {
                name: "data".into(),
                ..Volume::default()
            },
        ];
        let found = problems(pod);
        assert_eq!(
            found,
            [
                "spec.volumes[0]: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[1].name: Duplicate value: \"data\"",
                "spec.volumes[1]: Required value: must specify a volume type (emptyDir, hostPath, configMap or secret)",
            ]
        );
    }

    #[test]
    fn annotations_are_limited_in_total_size() {
        let mut deployment = testing::deployment("web").build();
        deployment
            .metadata
            .annotations
            .insert("big".into(), "x".repeat(300 * 1024));
        let found = problems(deployment);
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .starts_with("metadata.annotations: Too long: may not be more than 262144 bytes"),
            "{found:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let mut deployment = testing::deployment("Web").with_replicas(-1).build();
        deployment.spec.template.spec.containers[0].image = None;
        deployment.spec.template.spec.containers[0].name = "Web_1".into();
        assert_eq!(problems(deployment).len(), 4);
    }
}
