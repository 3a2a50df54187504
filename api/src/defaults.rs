//! Defaulting, a step apart from parsing and validation, mirroring Kubernetes' `SetDefaults_*`
//! functions (pkg/apis/core/v1/defaults.go, pkg/apis/apps/v1/defaults.go).
//!
//! Defaulting is idempotent: applying it twice gives the same object.

use crate::{
    DEFAULT_NAMESPACE,
    apps_v1::{
        DEFAULT_ROLLING_UPDATE_PERCENT, Deployment, DeploymentStrategy, DeploymentStrategyType,
        ReplicaSet, RollingUpdateDeployment,
    },
    autoscaling_v2::{
        DEFAULT_CPU_UTILIZATION, HorizontalPodAutoscaler, MetricSourceType, MetricSpec,
        MetricTarget, MetricTargetType, ResourceMetricSource,
    },
    core_v1::{
        ByteString, ConfigMap, Container, Endpoints, Event, HttpGetAction, Lifecycle,
        LifecycleHandler, Namespace, Pod, PodSpec, Probe, Protocol, PullPolicy, RestartPolicy,
        Secret, Service, ServiceType, SessionAffinity, TerminationMessagePolicy, Volume,
    },
    intstr::IntOrString,
    meta::{ObjectMeta, Resource},
    object::{Object, with_inner},
};

/// Default `terminationGracePeriodSeconds` of a pod.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Default file mode of ConfigMap and Secret volumes (0644).
pub const DEFAULT_VOLUME_MODE: i32 = 0o644;
pub const DEFAULT_PROBE_TIMEOUT_SECONDS: i32 = 1;
pub const DEFAULT_PROBE_PERIOD_SECONDS: i32 = 10;
pub const DEFAULT_PROBE_SUCCESS_THRESHOLD: i32 = 1;
pub const DEFAULT_PROBE_FAILURE_THRESHOLD: i32 = 3;
pub const DEFAULT_SECRET_TYPE: &str = "Opaque";

/// Fills in the fields Kubernetes defaults when they are unset.
pub trait ApplyDefaults {
    fn apply_defaults(&mut self);
}

impl ApplyDefaults for Object {
    fn apply_defaults(&mut self) {
        with_inner!(self, o => o.apply_defaults())
    }
}

fn default_metadata<R: Resource>(metadata: &mut ObjectMeta) {
    if R::NAMESPACED && metadata.namespace.as_deref().is_none_or(str::is_empty) {
        metadata.namespace = Some(DEFAULT_NAMESPACE.to_owned());
    }
}

impl ApplyDefaults for Namespace {
    fn apply_defaults(&mut self) {
        default_metadata::<Self>(&mut self.metadata);
    }
}

impl ApplyDefaults for ConfigMap {
    fn apply_defaults(&mut self) {
        default_metadata::<Self>(&mut self.metadata);
    }
}

impl ApplyDefaults for Secret {
    fn apply_defaults(&mut self) {
        default_metadata::<Self>(&mut self.metadata);
        self.type_
            .get_or_insert_with(|| DEFAULT_SECRET_TYPE.to_owned());
        // As the API server does on write: stringData is merged into data, and wins.
        for (key, value) in std::mem::take(&mut self.string_data) {
            self.data.insert(key, ByteString(value.into_bytes()));
        }
    }
}

impl ApplyDefaults for Event {
    fn apply_defaults(&mut self) {
        default_metadata::<Self>(&mut self.metadata);
    }
}

impl ApplyDefaults for Endpoints {
    fn apply_defaults(&mut self) {
        default_metadata::<Self>(&mut self.metadata);
        for port in self.subsets.iter_mut().flat_map(|s| s.ports.iter_mut()) {
            port.protocol.get_or_insert(Protocol::Tcp);
        }
    }
}

impl ApplyDefaults for Service {
    fn apply_defaults(&mut self) {
        default_metadata::<Self>(&mut self.metadata);
        let spec = &mut self.spec;
        spec.type_.get_or_insert(ServiceType::ClusterIp);
        spec.session_affinity.get_or_insert(SessionAffinity::None);
        for port in &mut spec.ports {
            port.protocol.get_or_insert(Protocol::Tcp);
            port.target_port.get_or_insert(IntOrString::Int(port.port));
        }
    }
}

impl ApplyDefaults for Pod {
    fn apply_defaults(&mut self) {
        default_metadata::<Self>(&mut self.metadata);
        self.spec.apply_defaults();
    }
}

impl ApplyDefaults for PodSpec {
    fn apply_defaults(&mut self) {
        self.restart_policy.get_or_insert(RestartPolicy::Always);
        self.termination_grace_period_seconds
            .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
        let host_network = self.host_network.unwrap_or(false);
        for container in self
            .init_containers
            .iter_mut()
            .chain(self.containers.iter_mut())
        {
            container.apply_defaults();
            if host_network {
                // With the host's network, a container port is a host port.
                for port in &mut container.ports {
                    port.host_port.get_or_insert(port.container_port);
                }
            }
        }
        for volume in &mut self.volumes {
            volume.apply_defaults();
        }
    }
}

impl ApplyDefaults for Volume {
    fn apply_defaults(&mut self) {
        if let Some(config_map) = &mut self.config_map {
            config_map.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        }
        if let Some(secret) = &mut self.secret {
            secret.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        }
        if let Some(host_path) = &mut self.host_path {
            host_path
                .type_
                .get_or_insert(crate::core_v1::HostPathType::Unset);
        }
    }
}

/// Kubernetes' rule: `Always` for `:latest` or untagged images, `IfNotPresent` otherwise.
pub fn default_pull_policy(image: &str) -> PullPolicy {
    if image.contains('@') {
        return PullPolicy::IfNotPresent;
    }
    // The tag follows the last ':' after the last '/' (a registry port is not a tag).
    let last_component = image.rsplit('/').next().unwrap_or(image);
    match last_component.rsplit_once(':') {
        Some((_, "latest")) | None => PullPolicy::Always,
        Some(_) => PullPolicy::IfNotPresent,
    }
}

impl ApplyDefaults for Container {
    fn apply_defaults(&mut self) {
        if self.image_pull_policy.is_none()
            && let Some(image) = &self.image
        {
            self.image_pull_policy = Some(default_pull_policy(image));
        }
        self.termination_message_path
            .get_or_insert_with(|| DEFAULT_TERMINATION_MESSAGE_PATH.to_owned());
        self.termination_message_policy
            .get_or_insert(TerminationMessagePolicy::File);
        for port in &mut self.ports {
            port.protocol.get_or_insert(Protocol::Tcp);
        }
        for env in &mut self.env {
            if let Some(field_ref) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
                field_ref.api_version.get_or_insert_with(|| "v1".to_owned());
            }
        }
        // Requests default to limits for each resource with a limit and no request.
        if let Some(resources) = &mut self.resources {
            for (name, limit) in &resources.limits {
                resources
                    .requests
                    .entry(name.clone())
                    .or_insert_with(|| limit.clone());
            }
        }
        for probe in [
            &mut self.liveness_probe,
            &mut self.readiness_probe,
            &mut self.startup_probe,
        ]
        .into_iter()
        .flatten()
        {
            probe.apply_defaults();
        }
        if let Some(lifecycle) = &mut self.lifecycle {
            lifecycle.apply_defaults();
        }
    }
}

impl ApplyDefaults for Probe {
    fn apply_defaults(&mut self) {
        self.timeout_seconds
            .get_or_insert(DEFAULT_PROBE_TIMEOUT_SECONDS);
        self.period_seconds
            .get_or_insert(DEFAULT_PROBE_PERIOD_SECONDS);
        self.success_threshold
            .get_or_insert(DEFAULT_PROBE_SUCCESS_THRESHOLD);
        self.failure_threshold
            .get_or_insert(DEFAULT_PROBE_FAILURE_THRESHOLD);
        if let Some(http_get) = &mut self.http_get {
            http_get.apply_defaults();
        }
    }
}

impl ApplyDefaults for HttpGetAction {
    fn apply_defaults(&mut self) {
        if self.path.as_deref().is_none_or(str::is_empty) {
            self.path = Some("/".to_owned());
        }
        self.scheme.get_or_insert(crate::core_v1::UriScheme::Http);
    }
}

impl ApplyDefaults for Lifecycle {
    fn apply_defaults(&mut self) {
        for handler in [&mut self.post_start, &mut self.pre_stop]
            .into_iter()
            .flatten()
        {
            handler.apply_defaults();
        }
    }
}

impl ApplyDefaults for LifecycleHandler {
    fn apply_defaults(&mut self) {
        if let Some(http_get) = &mut self.http_get {
            http_get.apply_defaults();
        }
    }
}

impl ApplyDefaults for Deployment {
    fn apply_defaults(&mut self) {
        default_metadata::<Self>(&mut self.metadata);
        let spec = &mut self.spec;
        spec.replicas.get_or_insert(1);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        let strategy_type = *strategy
            .type_
            .get_or_insert(DeploymentStrategyType::RollingUpdate);
        if strategy_type == DeploymentStrategyType::RollingUpdate {
            let rolling = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            rolling
                .max_unavailable
                .get_or_insert_with(|| DEFAULT_ROLLING_UPDATE_PERCENT.into());
            rolling
                .max_surge
                .get_or_insert_with(|| DEFAULT_ROLLING_UPDATE_PERCENT.into());
        }
        spec.revision_history_limit
            .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
        spec.progress_deadline_seconds
            .get_or_insert(DEFAULT_PROGRESS_DEADLINE_SECONDS);
        spec.template.spec.apply_defaults();
    }
}

impl ApplyDefaults for ReplicaSet {
    fn apply_defaults(&mut self) {
        default_metadata::<Self>(&mut self.metadata);
        self.spec.replicas.get_or_insert(1);
        if let Some(template) = &mut self.spec.template {
            template.spec.apply_defaults();
        }
    }
}

impl ApplyDefaults for HorizontalPodAutoscaler {
    fn apply_defaults(&mut self) {
        default_metadata::<Self>(&mut self.metadata);
        self.spec.min_replicas.get_or_insert(1);
        if self.spec.metrics.is_empty() {
            self.spec.metrics.push(MetricSpec {
                type_: MetricSourceType::Resource,
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: MetricTargetType::Utilization,
                        average_utilization: Some(DEFAULT_CPU_UTILIZATION),
                        average_value: None,
                        value: None,
                    },
                }),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("busybox"), PullPolicy::Always);
        assert_eq!(default_pull_policy("busybox:latest"), PullPolicy::Always);
        assert_eq!(
            default_pull_policy("busybox:1.36"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            default_pull_policy("registry:5000/busybox"),
            PullPolicy::Always
        );
        assert_eq!(
            default_pull_policy("registry:5000/busybox:1"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            default_pull_policy("busybox@sha256:abc"),
            PullPolicy::IfNotPresent
        );
    }

    #[test]
    fn deployment_defaults_match_kubernetes() {
        let mut deployment = testing::deployment("web").build();
        deployment.spec.replicas = None;
        deployment.apply_defaults();
        let spec = &deployment.spec;
        assert_eq!(deployment.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(spec.replicas, Some(1));
        let strategy = spec.strategy.as_ref().unwrap();
        assert_eq!(strategy.type_, Some(DeploymentStrategyType::RollingUpdate));
        let rolling = strategy.rolling_update.as_ref().unwrap();
        assert_eq!(rolling.max_surge, Some("25%".into()));
        assert_eq!(rolling.max_unavailable, Some("25%".into()));
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
        let pod = &spec.template.spec;
        assert_eq!(pod.restart_policy, Some(RestartPolicy::Always));
        assert_eq!(pod.termination_grace_period_seconds, Some(30));
        assert!(
            spec.selector.is_some(),
            "the builder sets a selector; defaulting never invents one"
        );
    }

    #[test]
    fn selector_is_not_defaulted() {
        let mut deployment = testing::deployment("web").build();
        deployment.spec.selector = None;
        deployment.apply_defaults();
        assert_eq!(deployment.spec.selector, None);
    }

    #[test]
    fn recreate_gets_no_rolling_update() {
        let mut deployment = testing::deployment("web").build();
        deployment.spec.strategy = Some(DeploymentStrategy {
            type_: Some(DeploymentStrategyType::Recreate),
            rolling_update: None,
        });
        deployment.apply_defaults();
        assert_eq!(deployment.spec.strategy.unwrap().rolling_update, None);
    }

    #[test]
    fn container_probe_and_port_defaults() {
        let mut container = testing::container("web", "busybox:1.36")
            .with_port("http", 8080)
            .with_http_probes("http")
            .build();
        container.resources = Some(crate::core_v1::ResourceRequirements {
            limits: [("memory".to_owned(), "64Mi".parse().unwrap())].into(),
            requests: Default::default(),
        });
        container.apply_defaults();
        assert_eq!(container.image_pull_policy, Some(PullPolicy::IfNotPresent));
        assert_eq!(container.ports[0].protocol, Some(Protocol::Tcp));
        assert_eq!(
            container.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        let probe = container.readiness_probe.as_ref().unwrap();
        assert_eq!(
            (
                probe.timeout_seconds,
                probe.period_seconds,
                probe.success_threshold,
                probe.failure_threshold
            ),
            (Some(1), Some(10), Some(1), Some(3))
        );
        assert_eq!(
            probe.initial_delay_seconds, None,
            "Kubernetes leaves 0 unset"
        );
        let http = probe.http_get.as_ref().unwrap();
        assert_eq!(http.scheme, Some(crate::core_v1::UriScheme::Http));
        assert_eq!(
            container.resources.unwrap().requests["memory"],
            "64Mi".parse().unwrap()
        );
    }

    #[test]
    fn service_defaults_target_port_to_port() {
        let mut service = testing::service("web", 80).build();
        service.spec.ports[0].target_port = None;
        service.apply_defaults();
        assert_eq!(service.spec.type_, Some(ServiceType::ClusterIp));
        assert_eq!(service.spec.session_affinity, Some(SessionAffinity::None));
        assert_eq!(
            service.spec.ports[0].target_port,
            Some(IntOrString::Int(80))
        );
        assert_eq!(service.spec.ports[0].protocol, Some(Protocol::Tcp));
    }

    #[test]
    fn secret_string_data_is_merged_and_type_defaulted() {
        let mut secret = Secret::default();
        secret.metadata.name = Some("s".into());
        secret
            .string_data
            .insert("password".into(), "hunter2".into());
        secret.apply_defaults();
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(secret.data["password"].0, b"hunter2");
        assert!(secret.string_data.is_empty());
    }

    #[test]
    fn defaulting_is_idempotent() {
        let mut once: Object = testing::deployment("web").build().into();
        once.apply_defaults();
        let mut twice = once.clone();
        twice.apply_defaults();
        assert_eq!(once, twice);
    }

    #[test]
    fn hpa_defaults_to_cpu_80_percent() {
        let mut hpa = HorizontalPodAutoscaler::default();
        hpa.apply_defaults();
        assert_eq!(hpa.spec.min_replicas, Some(1));
        let target = &hpa.spec.metrics[0].resource.as_ref().unwrap().target;
        assert_eq!(target.average_utilization, Some(80));
    }
}
