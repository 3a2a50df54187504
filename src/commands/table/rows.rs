//! The columns of `get` for each kind, as kubectl prints them.

use std::collections::BTreeMap;

use berth_api::{
    Object,
    apps_v1::{Deployment, ReplicaSet},
    autoscaling_v2::HorizontalPodAutoscaler,
    core_v1::{
        ConfigMap, Endpoints, Event, EventType, Namespace, NamespacePhase, Pod, PodSpec, Protocol,
        Secret, Service, ServiceType,
    },
    meta::{LabelSelector, LabelSelectorOperator},
    object::KindInfo,
    time::Time,
};

use super::{Table, human_duration, pod_ready, pod_restarts, pod_status};

/// How to print rows.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// `-o wide`: the extra columns.
    pub wide: bool,
    /// `-A`: a NAMESPACE column first.
    pub namespace_column: bool,
    /// `get all`: names as `kind/name`.
    pub kind_prefix: bool,
    /// What AGE is measured from.
    pub now: Time,
}

fn headers(kind: &KindInfo, wide: bool) -> Vec<&'static str> {
    let (mut base, extra): (Vec<&str>, &[&str]) = match kind.kind {
        "Pod" => (
            vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE"],
        ),
        "Deployment" => (
            vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        "ReplicaSet" => (
            vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        "Service" => (
            vec![
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
            &["SELECTOR"],
        ),
        "Endpoints" => (vec!["NAME", "ENDPOINTS", "AGE"], &[]),
        "ConfigMap" => (vec!["NAME", "DATA", "AGE"], &[]),
        "Secret" => (vec!["NAME", "TYPE", "DATA", "AGE"], &[]),
        "Namespace" => (vec!["NAME", "STATUS", "AGE"], &[]),
        "Event" => (
            vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            &[],
        ),
        "HorizontalPodAutoscaler" => (
            vec![
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE",
            ],
            &[],
        ),
        _ => (vec!["NAME", "AGE"], &[]),
    };
    if wide {
        base.extend_from_slice(extra);
    }
    base
}

impl Printer {
    /// The table of objects of one kind (header included; print it or not).
    pub fn table(&self, kind: &KindInfo, objects: &[Object]) -> Table {
        let mut headers = headers(kind, self.wide);
        if self.namespace_column && kind.namespaced {
            headers.insert(0, "NAMESPACE");
        }
        let mut table = Table::new(&headers);
        table.rows = objects.iter().map(|o| self.row(o)).collect();
        table
    }

    /// One object's row.
    pub fn row(&self, object: &Object) -> Vec<String> {
        let mut row = kind_rows(object, self.wide, self.now);
        if self.kind_prefix && !matches!(object, Object::Event(_)) {
            row[0] = format!("{}/{}", object.info().resource_name(), row[0]);
        }
        if self.namespace_column && object.info().namespaced {
            let namespace = object.metadata().namespace.clone().unwrap_or_default();
            row.insert(0, namespace);
        }
        row
    }
}

fn age(created: Option<Time>, now: Time) -> String {
    match created {
        Some(at) => human_duration(now.0.duration_since(at.0).as_secs()),
        None => "<unknown>".to_owned(),
    }
}

/// `app=web,tier in (a,b)` as kubectl prints selectors; `<none>` when empty.
pub fn selector_string(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return "<none>".to_owned();
    };
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for requirement in &selector.match_expressions {
        let values = requirement.values.join(",");
        parts.push(match requirement.operator {
            LabelSelectorOperator::In => format!("{} in ({values})", requirement.key),
            LabelSelectorOperator::NotIn => format!("{} notin ({values})", requirement.key),
            LabelSelectorOperator::Exists => requirement.key.clone(),
            LabelSelectorOperator::DoesNotExist => format!("!{}", requirement.key),
        });
    }
    parts.join(",")
}

/// `k=v,k2=v2`, or `<none>`.
pub fn map_string(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "<none>".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn containers_and_images(spec: Option<&PodSpec>) -> [String; 2] {
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    [
        containers
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .join(","),
        containers
            .iter()
            .map(|c| c.image.clone().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
    ]
}

pub fn protocol_name(protocol: Option<Protocol>) -> &'static str {
    match protocol {
        Some(Protocol::Udp) => "UDP",
        Some(Protocol::Sctp) => "SCTP",
        _ => "TCP",
    }
}

pub fn service_type_name(type_: Option<ServiceType>) -> &'static str {
    match type_ {
        Some(ServiceType::NodePort) => "NodePort",
        Some(ServiceType::ClusterIp) | None => "ClusterIP",
    }
}

/// `80/TCP,443:30443/TCP`.
pub fn service_ports(service: &Service) -> String {
    if service.spec.ports.is_empty() {
        return "<none>".to_owned();
    }
    service
        .spec
        .ports
        .iter()
        .map(|p| match p.node_port {
            Some(node_port) => format!("{}:{node_port}/{}", p.port, protocol_name(p.protocol)),
            None => format!("{}/{}", p.port, protocol_name(p.protocol)),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// berth has no load balancers: services have no external IP.
fn external_ip(_service: &Service) -> String {
    "<none>".to_owned()
}

/// `10.0.0.1:8080,10.0.0.2:8080 + 1 more...`, kubectl's ENDPOINTS column.
pub fn endpoints_string(endpoints: &Endpoints) -> String {
    let mut all = Vec::new();
    for subset in &endpoints.subsets {
        for address in &subset.addresses {
            if subset.ports.is_empty() {
                all.push(address.ip.clone());
            }
            for port in &subset.ports {
                all.push(format!("{}:{}", address.ip, port.port));
            }
        }
    }
    if all.is_empty() {
        return "<none>".to_owned();
    }
    let more = all.len().saturating_sub(3);
    let shown = all[..all.len().min(3)].join(",");
    if more > 0 {
        format!("{shown} + {more} more...")
    } else {
        shown
    }
}

fn pod_row(pod: &Pod, wide: bool, now: Time) -> Vec<String> {
    let mut row = vec![
        pod.metadata.name().to_owned(),
        pod_ready(pod),
        pod_status(pod),
        pod_restarts(pod, now),
        age(pod.metadata.creation_timestamp, now),
    ];
    if wide {
        let status = pod.status.clone().unwrap_or_default();
        row.push(status.pod_ip.unwrap_or_else(|| "<none>".to_owned()));
        row.push(
            pod.spec
                .node_name
                .clone()
                .unwrap_or_else(|| "<none>".to_owned()),
        );
    }
    row
}

fn deployment_row(d: &Deployment, wide: bool, now: Time) -> Vec<String> {
    let status = d.status.clone().unwrap_or_default();
    let mut row = vec![
        d.metadata.name().to_owned(),
        format!("{}/{}", status.ready_replicas, d.spec.replicas.unwrap_or(1)),
        status.updated_replicas.to_string(),
        status.available_replicas.to_string(),
        age(d.metadata.creation_timestamp, now),
    ];
    if wide {
        row.extend(containers_and_images(Some(&d.spec.template.spec)));
        row.push(selector_string(d.spec.selector.as_ref()));
    }
    row
}

fn replica_set_row(rs: &ReplicaSet, wide: bool, now: Time) -> Vec<String> {
    let status = rs.status.clone().unwrap_or_default();
    let mut row = vec![
        rs.metadata.name().to_owned(),
        rs.spec.replicas.unwrap_or(1).to_string(),
        status.replicas.to_string(),
        status.ready_replicas.to_string(),
        age(rs.metadata.creation_timestamp, now),
    ];
    if wide {
        row.extend(containers_and_images(
            rs.spec.template.as_ref().map(|t| &t.spec),
        ));
        row.push(selector_string(rs.spec.selector.as_ref()));
    }
    row
}

fn service_row(s: &Service, wide: bool, now: Time) -> Vec<String> {
    let mut row = vec![
        s.metadata.name().to_owned(),
        service_type_name(s.spec.type_).to_owned(),
        s.spec
            .cluster_ip
            .clone()
            .unwrap_or_else(|| "<none>".to_owned()),
        external_ip(s),
        service_ports(s),
        age(s.metadata.creation_timestamp, now),
    ];
    if wide {
        row.push(map_string(&s.spec.selector));
    }
    row
}

fn event_type_name(type_: Option<EventType>) -> &'static str {
    match type_ {
        Some(EventType::Warning) => "Warning",
        _ => "Normal",
    }
}

/// When an event was last seen: its last timestamp, else its creation.
pub fn event_last_seen(event: &Event) -> Option<Time> {
    event
        .last_timestamp
        .or(event.first_timestamp)
        .or(event.metadata.creation_timestamp)
}

fn event_row(e: &Event, now: Time) -> Vec<String> {
    let object = &e.involved_object;
    vec![
        age(event_last_seen(e), now),
        event_type_name(e.type_).to_owned(),
        e.reason.clone().unwrap_or_default(),
        format!(
            "{}/{}",
            object
                .kind
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            object.name.as_deref().unwrap_or_default()
        ),
        e.message.clone().unwrap_or_default().trim().to_owned(),
    ]
}

fn hpa_row(h: &HorizontalPodAutoscaler, now: Time) -> Vec<String> {
    let status = h.status.clone().unwrap_or_default();
    let targets: Vec<String> = h
        .spec
        .metrics
        .iter()
        .filter_map(|m| m.resource.as_ref())
        .map(|resource| {
            let current = status
                .current_metrics
                .iter()
                .filter_map(|m| m.resource.as_ref())
                .find(|c| c.name == resource.name)
                .and_then(|c| c.current.average_utilization)
                .map_or_else(|| "<unknown>".to_owned(), |u| format!("{u}%"));
            let target = resource
                .target
                .average_utilization
                .map(|u| format!("{u}%"))
                .or_else(|| {
                    resource
                        .target
                        .average_value
                        .as_ref()
                        .map(|q| q.to_string())
                })
                .or_else(|| resource.target.value.as_ref().map(|q| q.to_string()))
                .unwrap_or_else(|| "<none>".to_owned());
            format!("{}: {current}/{target}", resource.name)
        })
        .collect();
    vec![
        h.metadata.name().to_owned(),
        format!(
            "{}/{}",
            h.spec.scale_target_ref.kind, h.spec.scale_target_ref.name
        ),
        if targets.is_empty() {
            "<none>".to_owned()
        } else {
            targets.join(", ")
        },
        h.spec.min_replicas.unwrap_or(1).to_string(),
        h.spec.max_replicas.to_string(),
        status.current_replicas.to_string(),
        age(h.metadata.creation_timestamp, now),
    ]
}

/// The cells of one object's row (without NAMESPACE).
pub fn kind_rows(object: &Object, wide: bool, now: Time) -> Vec<String> {
    match object {
        Object::Pod(pod) => pod_row(pod, wide, now),
        Object::Deployment(d) => deployment_row(d, wide, now),
        Object::ReplicaSet(rs) => replica_set_row(rs, wide, now),
        Object::Service(s) => service_row(s, wide, now),
        Object::Endpoints(e) => vec![
            e.metadata.name().to_owned(),
            endpoints_string(e),
            age(e.metadata.creation_timestamp, now),
        ],
        Object::ConfigMap(ConfigMap {
            metadata,
            data,
            binary_data,
            ..
        }) => vec![
            metadata.name().to_owned(),
            (data.len() + binary_data.len()).to_string(),
            age(metadata.creation_timestamp, now),
        ],
        Object::Secret(Secret {
            metadata,
            data,
            string_data,
            type_,
            ..
        }) => vec![
            metadata.name().to_owned(),
            type_.clone().unwrap_or_else(|| "Opaque".to_owned()),
            (data.len()
                + string_data
                    .keys()
                    .filter(|k| !data.contains_key(*k))
                    .count())
            .to_string(),
            age(metadata.creation_timestamp, now),
        ],
        Object::Namespace(Namespace {
            metadata, status, ..
        }) => vec![
            metadata.name().to_owned(),
            match status.as_ref().and_then(|s| s.phase) {
                Some(NamespacePhase::Terminating) => "Terminating",
                _ => "Active",
            }
            .to_owned(),
            age(metadata.creation_timestamp, now),
        ],
        Object::Event(e) => event_row(e, now),
        Object::HorizontalPodAutoscaler(h) => hpa_row(h, now),
    }
}

#[cfg(test)]
mod tests {
    use berth_api::{
        apps_v1::{DeploymentStatus, ReplicaSetStatus},
        core_v1::{
            ContainerState, ContainerStateRunning, ContainerStatus, EndpointAddress, EndpointPort,
            EndpointSubset, ObjectReference, PodPhase, PodStatus,
        },
        object::find_kind,
        testing,
    };

    use super::*;

    fn at(s: &str) -> Time {
        s.parse().unwrap()
    }

    const NOW: &str = "2024-05-01T12:00:00Z";

    fn printer() -> Printer {
        Printer {
            wide: false,
            namespace_column: false,
            kind_prefix: false,
            now: at(NOW),
        }
    }

    fn kind(name: &str) -> &'static KindInfo {
        find_kind(name).unwrap()
    }

    fn running_pod(name: &str) -> Pod {
        let mut pod = testing::pod(name).build();
        pod.metadata.namespace = Some("default".into());
        pod.metadata.creation_timestamp = Some(at("2024-05-01T11:56:48Z"));
        pod.spec.node_name = Some("node-1".into());
        pod.status = Some(PodStatus {
            phase: Some(PodPhase::Running),
            pod_ip: Some("10.88.0.5".into()),
            container_statuses: vec![ContainerStatus {
                name: "main".into(),
                ready: true,
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }],
            ..PodStatus::default()
        });
        pod
    }

    #[test]
    fn pods_table_plain_wide_and_all_namespaces() {
        let pods = vec![Object::Pod(running_pod("web-1"))];
        assert_eq!(
            printer().table(kind("Pod"), &pods).render(true),
            "NAME    READY   STATUS    RESTARTS   AGE\n\
             web-1   1/1     Running   0          3m12s\n"
        );
        let wide = Printer {
            wide: true,
            namespace_column: true,
            ..printer()
        };
        assert_eq!(
            wide.table(kind("Pod"), &pods).render(true),
            "NAMESPACE   NAME    READY   STATUS    RESTARTS   AGE     IP          NODE\n\
             default     web-1   1/1     Running   0          3m12s   10.88.0.5   node-1\n"
        );
    }

    #[test]
    fn deployments_and_replica_sets_tables() {
        let mut d = testing::deployment("web").with_replicas(3).build();
        d.metadata.creation_timestamp = Some(at("2024-04-29T12:00:00Z"));
        d.status = Some(DeploymentStatus {
            ready_replicas: 2,
            updated_replicas: 3,
            available_replicas: 2,
            ..DeploymentStatus::default()
        });
        let wide = Printer {
            wide: true,
            ..printer()
        };
        assert_eq!(
            wide.table(kind("Deployment"), &[Object::Deployment(d)])
                .render(true),
            "NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES         SELECTOR\n\
             web    2/3     3            2           2d    web          busybox:1.36   app=web\n"
        );
        let mut rs = testing::replica_set("web-6d4cf56db6", 3);
        rs.metadata.creation_timestamp = Some(at("2024-05-01T07:00:00Z"));
        rs.status = Some(ReplicaSetStatus {
            replicas: 3,
            ready_replicas: 1,
            ..ReplicaSetStatus::default()
        });
        assert_eq!(
            printer()
                .table(kind("ReplicaSet"), &[Object::ReplicaSet(rs)])
                .render(true),
            "NAME             DESIRED   CURRENT   READY   AGE\n\
             web-6d4cf56db6   3         3         1       5h\n"
        );
    }

    #[test]
    fn services_show_node_ports_and_external_ip() {
        let mut plain = testing::service("web", 80).build();
        plain.spec.cluster_ip = Some("10.96.0.10".into());
        plain.metadata.creation_timestamp = Some(at("2024-05-01T11:59:15Z"));
        let mut node_port = testing::service("api", 80).with_node_port(30080).build();
        node_port.spec.cluster_ip = Some("10.96.0.11".into());
        let table = printer().table(
            kind("Service"),
            &[Object::Service(plain), Object::Service(node_port)],
        );
        assert_eq!(
            table.render(true),
            "NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)        AGE\n\
             web    ClusterIP   10.96.0.10   <none>        80/TCP         45s\n\
             api    NodePort    10.96.0.11   <none>        80:30080/TCP   <unknown>\n"
        );
    }

    #[test]
    fn endpoints_config_and_events_rows() {
        let endpoints = Endpoints {
            metadata: berth_api::ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            subsets: vec![EndpointSubset {
                addresses: (1..=5)
                    .map(|i| EndpointAddress {
                        ip: format!("10.0.0.{i}"),
                        ..EndpointAddress::default()
                    })
                    .collect(),
                ports: vec![EndpointPort {
                    port: 8080,
                    ..EndpointPort::default()
                }],
                ..EndpointSubset::default()
            }],
            ..Endpoints::default()
        };
        assert_eq!(
            endpoints_string(&endpoints),
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more..."
        );
        assert_eq!(endpoints_string(&Endpoints::default()), "<none>");

        let config = ConfigMap {
            metadata: berth_api::ObjectMeta {
                name: Some("settings".into()),
                ..Default::default()
            },
            data: BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]),
            ..ConfigMap::default()
        };
        assert_eq!(
            kind_rows(&Object::ConfigMap(config), false, at(NOW)),
            ["settings", "2", "<unknown>"]
        );

        let event = Event {
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web-1".into()),
                ..ObjectReference::default()
            },
            reason: Some("BackOff".into()),
            message: Some("Back-off restarting failed container".into()),
            type_: Some(EventType::Warning),
            last_timestamp: Some(at("2024-05-01T11:59:00Z")),
            ..Event::default()
        };
        assert_eq!(
            printer()
                .table(kind("Event"), &[Object::Event(event)])
                .render(true),
            "LAST SEEN   TYPE      REASON    OBJECT      MESSAGE\n\
             60s         Warning   BackOff   pod/web-1   Back-off restarting failed container\n"
        );
    }

    #[test]
    fn get_all_prefixes_names_with_the_kind() {
        let all = Printer {
            kind_prefix: true,
            ..printer()
        };
        let row = all.row(&Object::Deployment(testing::deployment("web").build()));
        assert_eq!(row[0], "deployment.apps/web");
        let selector = LabelSelector {
            match_labels: BTreeMap::from([("app".into(), "web".into())]),
            match_expressions: vec![berth_api::meta::LabelSelectorRequirement {
                key: "tier".into(),
                operator: LabelSelectorOperator::In,
                values: vec!["a".into(), "b".into()],
            }],
        };
        assert_eq!(selector_string(Some(&selector)), "app=web,tier in (a,b)");
    }
}
