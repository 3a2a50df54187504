//! The rules, per kind, after Kubernetes' pkg/apis/{core,apps,autoscaling}/validation.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Debug,
    net::IpAddr,
};

use super::{ErrorType, FieldError, Path, names};
use crate::{
    apps_v1::{Deployment, DeploymentStrategyType, ReplicaSet},
    autoscaling_v2::{HorizontalPodAutoscaler, MetricTargetType},
    core_v1::{
        ConfigMap, Container, ContainerPort, Endpoints, Event, HttpGetAction, KeySelector,
        KeyToPath, Lifecycle, LifecycleHandler, Namespace, Pod, PodSpec, PodTemplateSpec, Probe,
        RestartPolicy, Secret, Service, ServiceType, Volume,
    },
    intstr::IntOrString,
    meta::{LabelSelector, LabelSelectorOperator, ObjectMeta, Resource},
    object::Object,
};

/// The resources berth can limit.
const SUPPORTED_RESOURCES: &[&str] = &["cpu", "memory"];
/// Largest ConfigMap or Secret, as Kubernetes.
const MAX_DATA_SIZE: usize = 1024 * 1024;
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;

#[derive(Default)]
pub(super) struct Errors(Vec<FieldError>);

impl Errors {
    pub(super) fn into_vec(self) -> Vec<FieldError> {
        self.0
    }

    fn push(
        &mut self,
        type_: ErrorType,
        path: &Path,
        value: Option<String>,
        detail: impl Into<String>,
    ) {
        self.0.push(FieldError {
            type_,
            field: path.to_string(),
            value,
            detail: detail.into(),
        });
    }

    fn required(&mut self, path: &Path, detail: impl Into<String>) {
        self.push(ErrorType::Required, path, None, detail);
    }

    fn invalid(&mut self, path: &Path, value: impl Debug, detail: impl Into<String>) {
        self.push(ErrorType::Invalid, path, Some(format!("{value:?}")), detail);
    }

    fn forbidden(&mut self, path: &Path, detail: impl Into<String>) {
        self.push(ErrorType::Forbidden, path, None, detail);
    }

    fn duplicate(&mut self, path: &Path, value: impl Debug) {
        self.push(ErrorType::Duplicate, path, Some(format!("{value:?}")), "");
    }

    fn not_found(&mut self, path: &Path, value: impl Debug, detail: impl Into<String>) {
        self.push(
            ErrorType::NotFound,
            path,
            Some(format!("{value:?}")),
            detail,
        );
    }

    fn not_supported(&mut self, path: &Path, value: impl Debug, supported: &[&str]) {
        let supported = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.push(
            ErrorType::NotSupported,
            path,
            Some(format!("{value:?}")),
            format!("supported values: {supported}"),
        );
    }

    /// Reports every message of a syntax check as an invalid value.
    fn check(&mut self, path: &Path, value: &str, messages: Vec<String>) {
        for message in messages {
            self.invalid(path, value, message);
        }
    }

    fn non_negative<T: Into<i64> + Copy + Debug>(&mut self, path: &Path, value: Option<T>) {
        if let Some(v) = value
            && v.into() < 0
        {
            self.invalid(path, v, "must be greater than or equal to 0");
        }
    }

    fn at_least_one<T: Into<i64> + Copy + Debug>(&mut self, path: &Path, value: Option<T>) {
        if let Some(v) = value
            && v.into() < 1
        {
            self.invalid(path, v, "must be greater than or equal to 1");
        }
    }

    fn port_number(&mut self, path: &Path, port: i32) {
        if !(1..=65535).contains(&port) {
            self.invalid(path, port, "must be between 1 and 65535, inclusive");
        }
    }
}

pub(super) fn validate_object(object: &Object, errors: &mut Errors) {
    match object {
        Object::Namespace(o) => namespace(o, errors),
        Object::ConfigMap(o) => config_map(o, errors),
        Object::Secret(o) => secret(o, errors),
        Object::Service(o) => service(o, errors),
        Object::Pod(o) => pod(o, errors),
        Object::ReplicaSet(o) => replica_set(o, errors),
        Object::Deployment(o) => deployment(o, errors),
        Object::HorizontalPodAutoscaler(o) => hpa(o, errors),
        Object::Endpoints(o) => endpoints(o, errors),
        Object::Event(o) => event(o, errors),
    }
}

type NameCheck = fn(&str) -> Vec<String>;

fn object_meta<R: Resource>(meta: &ObjectMeta, name_check: NameCheck, errors: &mut Errors) {
    let path = Path::root("metadata");
    match (meta.name.as_deref(), meta.generate_name.as_deref()) {
        (Some(name), _) if !name.is_empty() => {
            errors.check(&path.child("name"), name, name_check(name))
        }
        (_, Some(prefix)) if !prefix.is_empty() => {
            // The generated suffix is appended, so only the prefix without a trailing '-' is checked.
            let trimmed = prefix.strip_suffix('-').unwrap_or(prefix);
            errors.check(&path.child("generateName"), prefix, name_check(trimmed));
        }
        _ => errors.required(&path.child("name"), "name or generateName is required"),
    }
    match (R::NAMESPACED, meta.namespace.as_deref()) {
        (true, Some(namespace)) => errors.check(
            &path.child("namespace"),
            namespace,
            names::dns1123_label(namespace),
        ),
        (false, Some(namespace)) if !namespace.is_empty() => {
            errors.forbidden(
                &path.child("namespace"),
                format!("not allowed on {}, which is not namespaced", R::KIND),
            );
        }
        _ => {}
    }
    labels(&meta.labels, &path.child("labels"), errors);
    let annotations = path.child("annotations");
    let mut total = 0;
    for (key, value) in &meta.annotations {
        errors.check(
            &annotations,
            key,
            names::qualified_name(&key.to_ascii_lowercase()),
        );
        total += key.len() + value.len();
    }
    if total > names::TOTAL_ANNOTATION_SIZE_LIMIT {
        errors.push(
            ErrorType::TooLong,
            &annotations,
            None,
            format!(
                "may not be more than {} bytes (these are {total})",
                names::TOTAL_ANNOTATION_SIZE_LIMIT
            ),
        );
    }
    for (i, owner) in meta.owner_references.iter().enumerate() {
        let path = path.child("ownerReferences").index(i);
        for (field, value) in [
            ("apiVersion", &owner.api_version),
            ("kind", &owner.kind),
            ("name", &owner.name),
            ("uid", &owner.uid),
        ] {
            if value.is_empty() {
                errors.required(&path.child(field), "");
            }
        }
    }
    errors.non_negative(&path.child("generation"), meta.generation);
}

fn labels(labels: &BTreeMap<String, String>, path: &Path, errors: &mut Errors) {
    for (key, value) in labels {
        errors.check(path, key, names::qualified_name(key));
        errors.check(&path.key(key), value, names::label_value(value));
    }
}

fn label_selector(selector: &LabelSelector, path: &Path, errors: &mut Errors) {
    labels(&selector.match_labels, &path.child("matchLabels"), errors);
    for (i, requirement) in selector.match_expressions.iter().enumerate() {
        let path = path.child("matchExpressions").index(i);
        errors.check(
            &path.child("key"),
            &requirement.key,
            names::qualified_name(&requirement.key),
        );
        let values = path.child("values");
        match requirement.operator {
            LabelSelectorOperator::In | LabelSelectorOperator::NotIn
                if requirement.values.is_empty() =>
            {
                errors.required(
                    &values,
                    "must be specified when `operator` is 'In' or 'NotIn'",
                );
            }
            LabelSelectorOperator::Exists | LabelSelectorOperator::DoesNotExist
                if !requirement.values.is_empty() =>
            {
                errors.forbidden(
                    &values,
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                );
            }
            _ => {}
        }
        for (j, value) in requirement.values.iter().enumerate() {
            errors.check(&values.index(j), value, names::label_value(value));
        }
    }
}

fn namespace(o: &Namespace, errors: &mut Errors) {
    object_meta::<Namespace>(&o.metadata, names::dns1123_label, errors);
}

fn data_keys<'a>(keys: impl Iterator<Item = &'a String>, path: &Path, errors: &mut Errors) {
    for key in keys {
        errors.check(path, key, names::config_map_key(key));
    }
}

fn config_map(o: &ConfigMap, errors: &mut Errors) {
    object_meta::<ConfigMap>(&o.metadata, names::dns1123_subdomain, errors);
    data_keys(o.data.keys(), &Path::root("data"), errors);
    data_keys(o.binary_data.keys(), &Path::root("binaryData"), errors);
    for key in o.data.keys().filter(|k| o.binary_data.contains_key(*k)) {
        errors.invalid(
            &Path::root("data"),
            key,
            "duplicate of key present in binaryData",
        );
    }
    let size: usize = o.data.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        + o.binary_data
            .iter()
            .map(|(k, v)| k.len() + v.0.len())
            .sum::<usize>();
    if size > MAX_DATA_SIZE {
        errors.push(
            ErrorType::TooLong,
            &Path::root("data"),
            None,
            format!("may not be more than {MAX_DATA_SIZE} bytes"),
        );
    }
}

fn secret(o: &Secret, errors: &mut Errors) {
    object_meta::<Secret>(&o.metadata, names::dns1123_subdomain, errors);
    data_keys(o.data.keys(), &Path::root("data"), errors);
    data_keys(o.string_data.keys(), &Path::root("stringData"), errors);
    let size: usize = o
        .data
        .iter()
        .map(|(k, v)| k.len() + v.0.len())
        .sum::<usize>()
        + o.string_data
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    if size > MAX_DATA_SIZE {
        errors.push(
            ErrorType::TooLong,
            &Path::root("data"),
            None,
            format!("may not be more than {MAX_DATA_SIZE} bytes"),
        );
    }
    if o.type_.as_deref() == Some("") {
        errors.required(&Path::root("type"), "a secret type such as Opaque");
    }
}

fn service(o: &Service, errors: &mut Errors) {
    object_meta::<Service>(&o.metadata, names::dns1035_label, errors);
    let spec = &o.spec;
    let path = Path::root("spec");
    labels(&spec.selector, &path.child("selector"), errors);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        && ip.parse::<IpAddr>().is_err()
    {
        errors.invalid(
            &path.child("clusterIP"),
            ip,
            "must be empty, 'None' or a valid IP address",
        );
    }
    let node_port_type = spec.type_ == Some(ServiceType::NodePort);
    if headless && node_port_type {
        errors.invalid(
            &path.child("clusterIP"),
            "None",
            "may not be 'None' when `type` is 'NodePort'",
        );
    }
    if spec.ports.is_empty() && !headless {
        errors.required(&path.child("ports"), "a service needs at least one port");
    }
    let mut names_seen = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let path = path.child("ports").index(i);
        match port.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => {
                errors.check(&path.child("name"), name, names::dns1123_label(name));
                if !names_seen.insert(name) {
                    errors.duplicate(&path.child("name"), name);
                }
            }
            None if spec.ports.len() > 1 => errors.required(
                &path.child("name"),
                "every port must be named when a service has more than one",
            ),
            None => {}
        }
        errors.port_number(&path.child("port"), port.port);
        if let Some(target) = &port.target_port {
            int_or_port_name(target, &path.child("targetPort"), errors);
        }
        if let Some(node_port) = port.node_port {
            let node_path = path.child("nodePort");
            if !node_port_type {
                errors.forbidden(&node_path, "may not be used when `type` is 'ClusterIP'");
            } else if !NODE_PORT_RANGE.contains(&node_port) {
                errors.invalid(&node_path, node_port, "provided port is not in the valid range. The range of valid ports is 30000-32767");
            } else if !node_ports.insert(node_port) {
                errors.duplicate(&node_path, node_port);
            }
        }
    }
}

/// A port given as a number (1-65535) or as an IANA service name.
fn int_or_port_name(value: &IntOrString, path: &Path, errors: &mut Errors) {
    match value {
        IntOrString::Int(port) => errors.port_number(path, *port),
        IntOrString::String(name) => errors.check(path, name, names::iana_svc_name(name)),
    }
}

fn endpoints(o: &Endpoints, errors: &mut Errors) {
    object_meta::<Endpoints>(&o.metadata, names::dns1123_subdomain, errors);
    for (i, subset) in o.subsets.iter().enumerate() {
        let path = Path::root("subsets").index(i);
        for (j, address) in subset
            .addresses
            .iter()
            .chain(&subset.not_ready_addresses)
            .enumerate()
        {
            if address.ip.parse::<IpAddr>().is_err() {
                errors.invalid(
                    &path.child("addresses").index(j).child("ip"),
                    &address.ip,
                    "must be a valid IP address",
                );
            }
        }
        for (j, port) in subset.ports.iter().enumerate() {
            errors.port_number(&path.child("ports").index(j).child("port"), port.port);
        }
    }
}

fn event(o: &Event, errors: &mut Errors) {
    object_meta::<Event>(&o.metadata, names::dns1123_subdomain, errors);
    if o.involved_object.name.as_deref().is_none_or(str::is_empty) {
        errors.required(&Path::root("involvedObject").child("name"), "");
    }
    errors.non_negative(&Path::root("count"), o.count);
}

fn pod(o: &Pod, errors: &mut Errors) {
    object_meta::<Pod>(&o.metadata, names::dns1123_subdomain, errors);
    pod_spec(&o.spec, &Path::root("spec"), errors);
}

/// Rules for the pod template of a Deployment or ReplicaSet.
fn pod_template(
    template: &PodTemplateSpec,
    selector: Option<&LabelSelector>,
    path: &Path,
    errors: &mut Errors,
) {
    let meta_path = path.child("metadata");
    labels(
        &template.metadata.labels,
        &meta_path.child("labels"),
        errors,
    );
    if let Some(selector) = selector.filter(|s| !s.is_empty())
        && !selector.matches(&template.metadata.labels)
    {
        errors.invalid(
            &meta_path.child("labels"),
            &template.metadata.labels,
            "`selector` does not match template `labels`",
        );
    }
    let spec_path = path.child("spec");
    pod_spec(&template.spec, &spec_path, errors);
    if let Some(policy) = template
        .spec
        .restart_policy
        .filter(|p| *p != RestartPolicy::Always)
    {
        let policy = serde_json::to_value(policy)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        errors.not_supported(&spec_path.child("restartPolicy"), policy, &["Always"]);
    }
    if template.spec.active_deadline_seconds.is_some() {
        errors.forbidden(
            &spec_path.child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        );
    }
}

fn workload_selector(selector: Option<&LabelSelector>, path: &Path, errors: &mut Errors) {
    match selector {
        None => errors.required(
            path,
            "a label selector matching the pod template's labels, e.g. matchLabels: {app: web}",
        ),
        Some(selector) if selector.is_empty() => {
            errors.invalid(path, "{}", "empty selector is invalid for deployment");
        }
        Some(selector) => label_selector(selector, path, errors),
    }
}

fn deployment(o: &Deployment, errors: &mut Errors) {
    object_meta::<Deployment>(&o.metadata, names::dns1123_subdomain, errors);
    let spec = &o.spec;
    let path = Path::root("spec");
    errors.non_negative(&path.child("replicas"), spec.replicas);
    workload_selector(spec.selector.as_ref(), &path.child("selector"), errors);
    pod_template(
        &spec.template,
        spec.selector.as_ref(),
        &path.child("template"),
        errors,
    );
    if let Some(strategy) = &spec.strategy {
        let path = path.child("strategy");
        let rolling_path = path.child("rollingUpdate");
        match (strategy.type_, &strategy.rolling_update) {
            (Some(DeploymentStrategyType::Recreate), Some(_)) => {
                errors.forbidden(
                    &rolling_path,
                    "may not be specified when strategy `type` is 'Recreate'",
                );
            }
            (_, Some(rolling)) => {
                let surge_path = rolling_path.child("maxSurge");
                let unavailable_path = rolling_path.child("maxUnavailable");
                let surge = rolling
                    .max_surge
                    .as_ref()
                    .map(|v| int_or_percent(v, &surge_path, errors));
                let unavailable = rolling
                    .max_unavailable
                    .as_ref()
                    .map(|v| int_or_percent(v, &unavailable_path, errors));
                if let Some(Some(Percent(p))) = unavailable
                    && p > 100
                {
                    errors.invalid(
                        &unavailable_path,
                        format!("{p}%"),
                        "must not be greater than 100%",
                    );
                }
                let is_zero =
                    |v: Option<Option<IntOrPercent>>| matches!(v, Some(Some(Int(0) | Percent(0))));
                if is_zero(surge) && is_zero(unavailable) {
                    errors.invalid(
                        &unavailable_path,
                        rolling
                            .max_unavailable
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        "may not be 0 when `maxSurge` is 0",
                    );
                }
            }
            _ => {}
        }
    }
    errors.non_negative(&path.child("minReadySeconds"), spec.min_ready_seconds);
    errors.non_negative(
        &path.child("revisionHistoryLimit"),
        spec.revision_history_limit,
    );
    if let Some(deadline) = spec.progress_deadline_seconds {
        errors.non_negative(&path.child("progressDeadlineSeconds"), Some(deadline));
        if deadline <= spec.min_ready_seconds.unwrap_or(0) {
            errors.invalid(
                &path.child("progressDeadlineSeconds"),
                deadline,
                "must be greater than minReadySeconds",
            );
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum IntOrPercent {
    Int(i32),
    Percent(i32),
}
use IntOrPercent::{Int, Percent};

/// Kubernetes' `ValidatePositiveIntOrPercent`: a non-negative integer or `N%`.
fn int_or_percent(value: &IntOrString, path: &Path, errors: &mut Errors) -> Option<IntOrPercent> {
    match value {
        IntOrString::Int(v) if *v < 0 => {
            errors.invalid(path, v, "must be greater than or equal to 0");
            None
        }
        IntOrString::Int(v) => Some(Int(*v)),
        IntOrString::String(s) => match s.strip_suffix('%').and_then(|d| {
            (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .then(|| d.parse().ok())
                .flatten()
        }) {
            Some(p) => Some(Percent(p)),
            None => {
                errors.invalid(path, s, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%', or '93%', regex used for validation is '[0-9]+%')");
                None
            }
        },
    }
}

fn replica_set(o: &ReplicaSet, errors: &mut Errors) {
    object_meta::<ReplicaSet>(&o.metadata, names::dns1123_subdomain, errors);
    let spec = &o.spec;
    let path = Path::root("spec");
    errors.non_negative(&path.child("replicas"), spec.replicas);
    errors.non_negative(&path.child("minReadySeconds"), spec.min_ready_seconds);
    workload_selector(spec.selector.as_ref(), &path.child("selector"), errors);
    match &spec.template {
        Some(template) => pod_template(
            template,
            spec.selector.as_ref(),
            &path.child("template"),
            errors,
        ),
        None => errors.required(&path.child("template"), ""),
    }
}

fn hpa(o: &HorizontalPodAutoscaler, errors: &mut Errors) {
    object_meta::<HorizontalPodAutoscaler>(&o.metadata, names::dns1123_subdomain, errors);
    let spec = &o.spec;
    let path = Path::root("spec");
    let target = path.child("scaleTargetRef");
    if spec.scale_target_ref.name.is_empty() {
        errors.required(&target.child("name"), "");
    }
    let kind = spec.scale_target_ref.kind.as_str();
    if !matches!(kind, "Deployment" | "ReplicaSet") {
        errors.not_supported(&target.child("kind"), kind, &["Deployment", "ReplicaSet"]);
    }
    let min = spec.min_replicas.unwrap_or(1);
    errors.at_least_one(&path.child("minReplicas"), spec.min_replicas);
    if spec.max_replicas < min.max(1) {
        errors.invalid(
            &path.child("maxReplicas"),
            spec.max_replicas,
            "must be greater than or equal to `minReplicas` and to 1",
        );
    }
    for (i, metric) in spec.metrics.iter().enumerate() {
        let path = path.child("metrics").index(i);
        let Some(resource) = &metric.resource else {
            errors.required(
                &path.child("resource"),
                "must populate information for the given metric source",
            );
            continue;
        };
        let path = path.child("resource");
        if !SUPPORTED_RESOURCES.contains(&resource.name.as_str()) {
            errors.not_supported(&path.child("name"), &resource.name, SUPPORTED_RESOURCES);
        }
        let target = &resource.target;
        let target_path = path.child("target");
        match target.type_ {
            MetricTargetType::Utilization => match target.average_utilization {
                None => errors.required(
                    &target_path.child("averageUtilization"),
                    "must be set when `type` is 'Utilization'",
                ),
                Some(v) if v < 1 => errors.invalid(
                    &target_path.child("averageUtilization"),
                    v,
                    "must be greater than 0",
                ),
                Some(_) => {}
            },
            MetricTargetType::AverageValue => match &target.average_value {
                None => errors.required(
                    &target_path.child("averageValue"),
                    "must be set when `type` is 'AverageValue'",
                ),
                Some(q) if q.as_nanos() <= 0 => errors.invalid(
                    &target_path.child("averageValue"),
                    q.as_str(),
                    "must be positive",
                ),
                Some(_) => {}
            },
            MetricTargetType::Value => match &target.value {
                None => errors.required(
                    &target_path.child("value"),
                    "must be set when `type` is 'Value'",
                ),
                Some(q) if q.as_nanos() <= 0 => {
                    errors.invalid(&target_path.child("value"), q.as_str(), "must be positive")
                }
                Some(_) => {}
            },
        }
    }
}

fn pod_spec(spec: &PodSpec, path: &Path, errors: &mut Errors) {
    let volume_names = volumes(&spec.volumes, &path.child("volumes"), errors);
    if spec.containers.is_empty() {
        errors.required(
            &path.child("containers"),
            "a pod needs at least one container",
        );
    }
    let mut container_names = BTreeSet::new();
    let host_network = spec.host_network.unwrap_or(false);
    let grace = spec.termination_grace_period_seconds;
    for (field, list, init) in [
        ("initContainers", &spec.init_containers, true),
        ("containers", &spec.containers, false),
    ] {
        for (i, c) in list.iter().enumerate() {
            let path = path.child(field).index(i);
            if !c.name.is_empty() && !container_names.insert(c.name.as_str()) {
                errors.duplicate(&path.child("name"), &c.name);
            }
            container(c, init, &volume_names, host_network, grace, &path, errors);
        }
    }
    errors.non_negative(
        &path.child("terminationGracePeriodSeconds"),
        spec.termination_grace_period_seconds,
    );
    errors.at_least_one(
        &path.child("activeDeadlineSeconds"),
        spec.active_deadline_seconds,
    );
    if let Some(hostname) = &spec.hostname {
        errors.check(
            &path.child("hostname"),
            hostname,
            names::dns1123_label(hostname),
        );
    }
    if let Some(subdomain) = &spec.subdomain {
        errors.check(
            &path.child("subdomain"),
            subdomain,
            names::dns1123_label(subdomain),
        );
    }
    if let Some(node_name) = &spec.node_name {
        errors.check(
            &path.child("nodeName"),
            node_name,
            names::dns1123_subdomain(node_name),
        );
    }
    if let Some(security) = &spec.security_context {
        let path = path.child("securityContext");
        id_range(&path.child("runAsUser"), security.run_as_user, errors);
        id_range(&path.child("runAsGroup"), security.run_as_group, errors);
        id_range(&path.child("fsGroup"), security.fs_group, errors);
        for (i, group) in security.supplemental_groups.iter().enumerate() {
            id_range(
                &path.child("supplementalGroups").index(i),
                Some(*group),
                errors,
            );
        }
        if security.run_as_non_root == Some(true) && security.run_as_user == Some(0) {
            errors.invalid(
                &path.child("runAsUser"),
                0,
                "must not be 0 when `runAsNonRoot` is true",
            );
        }
    }
}

fn id_range(path: &Path, id: Option<i64>, errors: &mut Errors) {
    if let Some(id) = id
        && !(0..=i64::from(i32::MAX)).contains(&id)
    {
        errors.invalid(path, id, "must be between 0 and 2147483647, inclusive");
    }
}

/// Validates the volumes and returns their names.
fn volumes<'a>(volumes: &'a [Volume], path: &Path, errors: &mut Errors) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let path = path.index(i);
        if volume.name.is_empty() {
            errors.required(&path.child("name"), "");
        } else {
            errors.check(
                &path.child("name"),
                &volume.name,
                names::dns1123_label(&volume.name),
            );
            if !seen.insert(volume.name.as_str()) {
                errors.duplicate(&path.child("name"), &volume.name);
            }
        }
        match volume.sources().len() {
            0 => errors.required(
                &path,
                "must specify a volume type (emptyDir, hostPath, configMap or secret)",
            ),
            1 => {}
            _ => errors.forbidden(&path, "may not specify more than 1 volume type"),
        }
        if let Some(empty_dir) = &volume.empty_dir
            && let Some(limit) = empty_dir.size_limit.as_ref().filter(|q| q.is_negative())
        {
            errors.invalid(
                &path.child("emptyDir").child("sizeLimit"),
                limit.as_str(),
                "must be greater than or equal to 0",
            );
        }
        if let Some(host_path) = &volume.host_path {
            let path = path.child("hostPath").child("path");
            if host_path.path.is_empty() {
                errors.required(&path, "");
            } else if !host_path.path.starts_with('/') {
                errors.invalid(&path, &host_path.path, "must be an absolute path");
            } else if host_path.path.split('/').any(|c| c == "..") {
                errors.invalid(&path, &host_path.path, "must not contain '..'");
            }
        }
        if let Some(config_map) = &volume.config_map {
            let path = path.child("configMap");
            if config_map.name.is_empty() {
                errors.required(&path.child("name"), "");
            } else {
                errors.check(
                    &path.child("name"),
                    &config_map.name,
                    names::dns1123_subdomain(&config_map.name),
                );
            }
            file_mode(&path.child("defaultMode"), config_map.default_mode, errors);
            key_to_paths(&config_map.items, &path.child("items"), errors);
        }
        if let Some(secret) = &volume.secret {
            let path = path.child("secret");
            match secret.secret_name.as_deref().filter(|n| !n.is_empty()) {
                None => errors.required(&path.child("secretName"), ""),
                Some(name) => errors.check(
                    &path.child("secretName"),
                    name,
                    names::dns1123_subdomain(name),
                ),
            }
            file_mode(&path.child("defaultMode"), secret.default_mode, errors);
            key_to_paths(&secret.items, &path.child("items"), errors);
        }
    }
    seen
}

fn file_mode(path: &Path, mode: Option<i32>, errors: &mut Errors) {
    if let Some(mode) = mode.filter(|m| !(0..=0o777).contains(m)) {
        errors.invalid(
            path,
            mode,
            "must be a number between 0 and 0777 (octal), both inclusive",
        );
    }
}

fn key_to_paths(items: &[KeyToPath], path: &Path, errors: &mut Errors) {
    for (i, item) in items.iter().enumerate() {
        let path = path.index(i);
        errors.check(
            &path.child("key"),
            &item.key,
            names::config_map_key(&item.key),
        );
        relative_path(&path.child("path"), &item.path, errors);
        file_mode(&path.child("mode"), item.mode, errors);
    }
}

fn relative_path(path: &Path, value: &str, errors: &mut Errors) {
    if value.is_empty() {
        errors.required(path, "");
    } else if value.starts_with('/') {
        errors.invalid(path, value, "must be a relative path");
    } else if value.split('/').any(|c| c == "..") {
        errors.invalid(path, value, "must not contain '..'");
    }
}

fn container(
    c: &Container,
    init: bool,
    volume_names: &BTreeSet<&str>,
    host_network: bool,
    grace_period: Option<i64>,
    path: &Path,
    errors: &mut Errors,
) {
    if c.name.is_empty() {
        errors.required(&path.child("name"), "");
    } else {
        errors.check(&path.child("name"), &c.name, names::dns1123_label(&c.name));
    }
    match c.image.as_deref() {
        None | Some("") => errors.required(
            &path.child("image"),
            "the image to run, e.g. berth.local/busybox:latest",
        ),
        Some(image) if image.trim() != image => {
            errors.invalid(
                &path.child("image"),
                image,
                "must not have leading or trailing whitespace",
            );
        }
        Some(_) => {}
    }
    let port_names = container_ports(&c.ports, host_network, &path.child("ports"), errors);
    env(c, &path.child("env"), errors);
    for (i, from) in c.env_from.iter().enumerate() {
        let path = path.child("envFrom").index(i);
        if let Some(prefix) = &from.prefix
            && !prefix.is_empty()
        {
            errors.check(&path.child("prefix"), prefix, names::env_var_name(prefix));
        }
        match (&from.config_map_ref, &from.secret_ref) {
            (None, None) => {
                errors.required(&path, "must specify one of: `configMapRef` or `secretRef`")
            }
            (Some(_), Some(_)) => errors.forbidden(
                &path,
                "may not have more than one field specified at a time",
            ),
            (Some(r), None) | (None, Some(r)) => {
                let field = if from.config_map_ref.is_some() {
                    "configMapRef"
                } else {
                    "secretRef"
                };
                errors.check(
                    &path.child(field).child("name"),
                    &r.name,
                    names::dns1123_subdomain(&r.name),
                );
            }
        }
    }
    resources(c, &path.child("resources"), errors);
    let mut mount_paths = BTreeSet::new();
    for (i, mount) in c.volume_mounts.iter().enumerate() {
        let path = path.child("volumeMounts").index(i);
        if mount.name.is_empty() {
            errors.required(&path.child("name"), "");
        } else if !volume_names.contains(mount.name.as_str()) {
            let known = volume_names.iter().copied().collect::<Vec<_>>().join(", ");
            errors.not_found(
                &path.child("name"),
                &mount.name,
                format!(
                    "no volume of this name in the pod (volumes: {})",
                    if known.is_empty() { "none" } else { &known }
                ),
            );
        }
        let mount_path = path.child("mountPath");
        if mount.mount_path.is_empty() {
            errors.required(&mount_path, "");
        } else if !mount.mount_path.starts_with('/') {
            errors.invalid(&mount_path, &mount.mount_path, "must be an absolute path");
        } else if !mount_paths.insert(mount.mount_path.as_str()) {
            errors.invalid(&mount_path, &mount.mount_path, "must be unique");
        }
        if let Some(sub_path) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            relative_path(&path.child("subPath"), sub_path, errors);
        }
    }
    if init {
        for (field, probe) in [
            ("livenessProbe", &c.liveness_probe),
            ("readinessProbe", &c.readiness_probe),
            ("startupProbe", &c.startup_probe),
        ] {
            if probe.is_some() {
                errors.forbidden(&path.child(field), "may not be set for init containers");
            }
        }
        if c.lifecycle.is_some() {
            errors.forbidden(
                &path.child("lifecycle"),
                "may not be set for init containers",
            );
        }
    } else {
        for (field, probe, single_success) in [
            ("livenessProbe", &c.liveness_probe, true),
            ("readinessProbe", &c.readiness_probe, false),
            ("startupProbe", &c.startup_probe, true),
        ] {
            if let Some(probe) = probe {
                self::probe(
                    probe,
                    single_success,
                    &port_names,
                    &path.child(field),
                    errors,
                );
            }
        }
        if let Some(lifecycle) = &c.lifecycle {
            self::lifecycle(
                lifecycle,
                &port_names,
                grace_period,
                &path.child("lifecycle"),
                errors,
            );
        }
    }
    if let Some(security) = &c.security_context {
        let path = path.child("securityContext");
        id_range(&path.child("runAsUser"), security.run_as_user, errors);
        id_range(&path.child("runAsGroup"), security.run_as_group, errors);
        if security.privileged == Some(true) && security.allow_privilege_escalation == Some(false) {
            errors.invalid(
                &path,
                "privileged: true",
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
        if security.run_as_non_root == Some(true) && security.run_as_user == Some(0) {
            errors.invalid(
                &path.child("runAsUser"),
                0,
                "must not be 0 when `runAsNonRoot` is true",
            );
        }
        if let Some(caps) = &security.capabilities {
            for (field, list) in [("add", &caps.add), ("drop", &caps.drop)] {
                for (i, cap) in list.iter().enumerate() {
                    if cap.is_empty()
                        || !cap
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    {
                        errors.invalid(
                            &path.child("capabilities").child(field).index(i),
                            cap,
                            "must be a capability name such as NET_ADMIN or ALL",
                        );
                    }
                }
            }
        }
    }
}

/// Validates a container's ports and returns their names.
fn container_ports<'a>(
    ports: &'a [ContainerPort],
    host_network: bool,
    path: &Path,
    errors: &mut Errors,
) -> BTreeSet<&'a str> {
    let mut port_names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = path.index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            errors.check(&path.child("name"), name, names::iana_svc_name(name));
            if !port_names.insert(name) {
                errors.duplicate(&path.child("name"), name);
            }
        }
        errors.port_number(&path.child("containerPort"), port.container_port);
        if let Some(host_port) = port.host_port.filter(|p| *p != 0) {
            errors.port_number(&path.child("hostPort"), host_port);
            if host_network && host_port != port.container_port {
                errors.invalid(
                    &path.child("hostPort"),
                    host_port,
                    "must match `containerPort` when `hostNetwork` is true",
                );
            }
        }
        if let Some(ip) = port.host_ip.as_deref().filter(|ip| !ip.is_empty())
            && ip.parse::<IpAddr>().is_err()
        {
            errors.invalid(&path.child("hostIP"), ip, "must be a valid IP address");
        }
    }
    port_names
}

fn env(c: &Container, path: &Path, errors: &mut Errors) {
    for (i, var) in c.env.iter().enumerate() {
        let path = path.index(i);
        if var.name.is_empty() {
            errors.required(&path.child("name"), "");
        } else {
            errors.check(
                &path.child("name"),
                &var.name,
                names::env_var_name(&var.name),
            );
        }
        let Some(from) = &var.value_from else {
            continue;
        };
        let from_path = path.child("valueFrom");
        if var.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errors.invalid(
                &from_path,
                "",
                "may not be specified when `value` is not empty",
            );
        }
        let count = [
            from.field_ref.is_some(),
            from.resource_field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        match count {
            0 => errors.invalid(&from_path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"),
            1 => {}
            _ => errors.invalid(&from_path, "", "may not have more than one field specified at a time"),
        }
        if let Some(field_ref) = &from.field_ref {
            const SUPPORTED: &[&str] = &[
                "metadata.name",
                "metadata.namespace",
                "metadata.uid",
                "spec.nodeName",
                "spec.serviceAccountName",
                "status.hostIP",
                "status.hostIPs",
                "status.podIP",
                "status.podIPs",
            ];
            let field = field_ref.field_path.as_str();
            let annotation_or_label = field.starts_with("metadata.annotations['")
                || field.starts_with("metadata.labels['")
                || field == "metadata.labels"
                || field == "metadata.annotations";
            if !SUPPORTED.contains(&field) && !annotation_or_label {
                errors.not_supported(
                    &from_path.child("fieldRef").child("fieldPath"),
                    field,
                    SUPPORTED,
                );
            }
        }
        if let Some(resource_ref) = &from.resource_field_ref {
            const SUPPORTED: &[&str] = &[
                "limits.cpu",
                "limits.memory",
                "requests.cpu",
                "requests.memory",
            ];
            if !SUPPORTED.contains(&resource_ref.resource.as_str()) {
                errors.not_supported(
                    &from_path.child("resourceFieldRef").child("resource"),
                    &resource_ref.resource,
                    SUPPORTED,
                );
            }
        }
        for (field, selector) in [
            ("configMapKeyRef", &from.config_map_key_ref),
            ("secretKeyRef", &from.secret_key_ref),
        ] {
            if let Some(selector) = selector {
                key_selector(selector, &from_path.child(field), errors);
            }
        }
    }
}

fn key_selector(selector: &KeySelector, path: &Path, errors: &mut Errors) {
    if selector.name.is_empty() {
        errors.required(&path.child("name"), "");
    } else {
        errors.check(
            &path.child("name"),
            &selector.name,
            names::dns1123_subdomain(&selector.name),
        );
    }
    if selector.key.is_empty() {
        errors.required(&path.child("key"), "");
    } else {
        errors.check(
            &path.child("key"),
            &selector.key,
            names::config_map_key(&selector.key),
        );
    }
}

fn resources(c: &Container, path: &Path, errors: &mut Errors) {
    let Some(resources) = &c.resources else {
        return;
    };
    for (field, list) in [
        ("limits", &resources.limits),
        ("requests", &resources.requests),
    ] {
        for (name, quantity) in list {
            let path = path.child(field).key(name);
            if !SUPPORTED_RESOURCES.contains(&name.as_str()) {
                errors.not_supported(&path, name, SUPPORTED_RESOURCES);
            } else if quantity.is_negative() {
                errors.invalid(
                    &path,
                    quantity.as_str(),
                    "must be greater than or equal to 0",
                );
            } else if field == "limits" && quantity.is_zero() {
                errors.invalid(
                    &path,
                    quantity.as_str(),
                    "must be greater than 0: a zero limit would keep the container from running",
                );
            }
        }
    }
    for (name, request) in &resources.requests {
        if let Some(limit) = resources.limits.get(name)
            && request > limit
        {
            errors.invalid(
                &path.child("requests").key(name),
                request.as_str(),
                format!(
                    "must be less than or equal to {name} limit of {}",
                    limit.as_str()
                ),
            );
        }
    }
}

fn probe(
    probe: &Probe,
    single_success: bool,
    port_names: &BTreeSet<&str>,
    path: &Path,
    errors: &mut Errors,
) {
    match probe.handlers().len() {
        0 => errors.required(
            path,
            "must specify a handler type (exec, httpGet, tcpSocket or grpc)",
        ),
        1 => {}
        _ => errors.forbidden(path, "may not specify more than 1 handler type"),
    }
    if let Some(exec) = &probe.exec
        && exec.command.is_empty()
    {
        errors.required(&path.child("exec").child("command"), "");
    }
    if let Some(http_get) = &probe.http_get {
        self::http_get(http_get, port_names, &path.child("httpGet"), errors);
    }
    if let Some(tcp) = &probe.tcp_socket {
        named_port(
            &tcp.port,
            port_names,
            &path.child("tcpSocket").child("port"),
            errors,
        );
    }
    if let Some(grpc) = &probe.grpc {
        errors.port_number(&path.child("grpc").child("port"), grpc.port);
    }
    errors.non_negative(
        &path.child("initialDelaySeconds"),
        probe.initial_delay_seconds,
    );
    errors.at_least_one(&path.child("timeoutSeconds"), probe.timeout_seconds);
    errors.at_least_one(&path.child("periodSeconds"), probe.period_seconds);
    errors.at_least_one(&path.child("successThreshold"), probe.success_threshold);
    errors.at_least_one(&path.child("failureThreshold"), probe.failure_threshold);
    errors.at_least_one(
        &path.child("terminationGracePeriodSeconds"),
        probe.termination_grace_period_seconds,
    );
    if single_success && let Some(threshold) = probe.success_threshold.filter(|t| *t != 1) {
        errors.invalid(&path.child("successThreshold"), threshold, "must be 1");
    }
}

fn named_port(port: &IntOrString, port_names: &BTreeSet<&str>, path: &Path, errors: &mut Errors) {
    int_or_port_name(port, path, errors);
    if let IntOrString::String(name) = port
        && names::iana_svc_name(name).is_empty()
        && !port_names.contains(name.as_str())
    {
        let known = port_names.iter().copied().collect::<Vec<_>>().join(", ");
        errors.not_found(
            path,
            name,
            format!(
                "must be a port number or the name of one of the container's ports ({})",
                if known.is_empty() {
                    "it has none"
                } else {
                    &known
                }
            ),
        );
    }
}

fn http_get(action: &HttpGetAction, port_names: &BTreeSet<&str>, path: &Path, errors: &mut Errors) {
    named_port(&action.port, port_names, &path.child("port"), errors);
    if let Some(p) = action
        .path
        .as_deref()
        .filter(|p| !p.is_empty() && !p.starts_with('/'))
    {
        errors.invalid(&path.child("path"), p, "must start with '/'");
    }
    for (i, header) in action.http_headers.iter().enumerate() {
        let path = path.child("httpHeaders").index(i).child("name");
        errors.check(&path, &header.name, names::http_header_name(&header.name));
    }
}

fn lifecycle(
    lifecycle: &Lifecycle,
    port_names: &BTreeSet<&str>,
    grace_period: Option<i64>,
    path: &Path,
    errors: &mut Errors,
) {
    for (field, handler) in [
        ("postStart", &lifecycle.post_start),
        ("preStop", &lifecycle.pre_stop),
    ] {
        if let Some(handler) = handler {
            lifecycle_handler(
                handler,
                port_names,
                grace_period,
                &path.child(field),
                errors,
            );
        }
    }
}

fn lifecycle_handler(
    handler: &LifecycleHandler,
    port_names: &BTreeSet<&str>,
    grace_period: Option<i64>,
    path: &Path,
    errors: &mut Errors,
) {
    match handler.handlers().len() {
        0 => errors.required(path, "must specify a handler type (exec, httpGet or sleep)"),
        1 => {}
        _ => errors.forbidden(path, "may not specify more than 1 handler type"),
    }
    if let Some(exec) = &handler.exec
        && exec.command.is_empty()
    {
        errors.required(&path.child("exec").child("command"), "");
    }
    if let Some(http_get) = &handler.http_get {
        self::http_get(http_get, port_names, &path.child("httpGet"), errors);
    }
    if let Some(sleep) = &handler.sleep {
        let grace =
            grace_period.unwrap_or(crate::defaults::DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
        if sleep.seconds <= 0 || sleep.seconds > grace {
            errors.invalid(
                &path.child("sleep").child("seconds"),
                sleep.seconds,
                format!(
                    "must be greater than 0 and less than terminationGracePeriodSeconds ({grace})"
                ),
            );
        }
    }
}
