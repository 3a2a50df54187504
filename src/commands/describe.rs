//! `berth describe KIND NAME [-n NS]` (or `KIND/NAME`): kubectl's describe text for pods,
//! deployments, replica sets and services; other kinds get their metadata and their YAML. The
//! object's events come last (`fieldSelector=involvedObject.uid=...`).

use std::{collections::BTreeMap, process::ExitCode};

use berth_api::{
    Object,
    apps_v1::{Deployment, DeploymentStrategyType, ReplicaSet},
    core_v1::{
        Container, ContainerState, Event, EventType, Pod, PodConditionType, PodTemplateSpec, Probe,
        Service, Volume,
    },
    meta::{ConditionStatus, ObjectMeta},
    object::find_kind,
    time::Time,
};

use super::{
    objects::{Selectors, block_on, connect, get_raw, list_typed, now, object_from_value, print},
    resource::{ResourceError, parse_targets},
    table::{
        Table, endpoints_string, event_last_seen, human_duration, map_string, pod_status,
        protocol_name, selector_string, service_type_name,
    },
};
use crate::{
    cli::{DescribeArgs, GlobalArgs},
    client::Client,
};

/// Lines of `Label:  value`, values aligned at one column per indentation level.
#[derive(Debug, Default)]
struct Text(String);

impl Text {
    /// Values start at column 18 at the top level and 20 below, or after a longer label.
    fn width(indent: usize, label: &str) -> usize {
        let column: usize = if indent == 0 { 18 } else { 20 };
        column.saturating_sub(indent).max(label.len() + 3)
    }

    fn field(&mut self, indent: usize, label: &str, value: impl std::fmt::Display) {
        let width = Self::width(indent, label);
        let label = format!("{label}:");
        self.0
            .push_str(&format!("{:indent$}{label:<width$}{value}\n", ""));
    }

    fn line(&mut self, indent: usize, text: &str) {
        self.0.push_str(&format!("{:indent$}{text}\n", ""));
    }

    /// `Labels:  a=b` then one `c=d` per following line, kubectl style.
    fn map(&mut self, indent: usize, label: &str, map: &BTreeMap<String, String>) {
        let mut entries = map.iter().map(|(k, v)| format!("{k}={v}"));
        match entries.next() {
            None => self.field(indent, label, "<none>"),
            Some(first) => {
                self.field(indent, label, first);
                let width = Self::width(indent, label);
                for entry in entries {
                    self.line(indent + width, &entry);
                }
            }
        }
    }
}

fn time_string(time: Option<Time>) -> String {
    time.map(|t| t.0.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string())
        .unwrap_or_else(|| "<unknown>".to_owned())
}

fn metadata(text: &mut Text, meta: &ObjectMeta, namespaced: bool) {
    text.field(0, "Name", meta.name());
    if namespaced {
        text.field(
            0,
            "Namespace",
            meta.namespace.as_deref().unwrap_or("default"),
        );
    }
    text.field(0, "CreationTimestamp", time_string(meta.creation_timestamp));
    text.map(0, "Labels", &meta.labels);
    text.map(0, "Annotations", &meta.annotations);
}

fn probe_string(probe: &Probe) -> String {
    let action = if let Some(http) = &probe.http_get {
        format!(
            "http-get http://{}:{}{}",
            http.host.as_deref().unwrap_or_default(),
            http.port,
            http.path.as_deref().unwrap_or("/")
        )
    } else if let Some(tcp) = &probe.tcp_socket {
        format!("tcp-socket :{}", tcp.port)
    } else if let Some(exec) = &probe.exec {
        format!("exec [{}]", exec.command.join(" "))
    } else if let Some(grpc) = &probe.grpc {
        format!(
            "grpc <pod>:{} {}",
            grpc.port,
            grpc.service.as_deref().unwrap_or_default()
        )
    } else {
        "unknown".to_owned()
    };
    format!(
        "{action} delay={}s timeout={}s period={}s #success={} #failure={}",
        probe.initial_delay_seconds.unwrap_or(0),
        probe.timeout_seconds.unwrap_or(1),
        probe.period_seconds.unwrap_or(10),
        probe.success_threshold.unwrap_or(1),
        probe.failure_threshold.unwrap_or(3)
    )
}

fn state(text: &mut Text, indent: usize, label: &str, state: Option<&ContainerState>) {
    let state = state.cloned().unwrap_or_default();
    if let Some(running) = &state.running {
        text.field(indent, label, "Running");
        text.field(indent + 2, "Started", time_string(running.started_at));
    } else if let Some(waiting) = &state.waiting {
        text.field(indent, label, "Waiting");
        text.field(
            indent + 2,
            "Reason",
            waiting.reason.as_deref().unwrap_or_default(),
        );
        if let Some(message) = &waiting.message {
            text.field(indent + 2, "Message", message);
        }
    } else if let Some(terminated) = &state.terminated {
        text.field(indent, label, "Terminated");
        text.field(
            indent + 2,
            "Reason",
            terminated.reason.as_deref().unwrap_or_default(),
        );
        if let Some(message) = &terminated.message {
            text.field(indent + 2, "Message", message);
        }
        text.field(indent + 2, "Exit Code", terminated.exit_code);
        if let Some(signal) = terminated.signal {
            text.field(indent + 2, "Signal", signal);
        }
        text.field(indent + 2, "Started", time_string(terminated.started_at));
        text.field(indent + 2, "Finished", time_string(terminated.finished_at));
    } else {
        text.field(indent, label, "Waiting");
    }
}

fn container(text: &mut Text, indent: usize, c: &Container, pod: Option<&Pod>) {
    text.line(indent, &format!("{}:", c.name));
    let status = pod.and_then(|p| p.status.as_ref()).and_then(|s| {
        s.container_statuses
            .iter()
            .chain(&s.init_container_statuses)
            .find(|cs| cs.name == c.name)
    });
    let i = indent + 2;
    if let Some(id) = status.and_then(|s| s.container_id.as_ref()) {
        text.field(i, "Container ID", id);
    }
    text.field(i, "Image", c.image.as_deref().unwrap_or_default());
    let ports: Vec<String> = c
        .ports
        .iter()
        .map(|p| format!("{}/{}", p.container_port, protocol_name(p.protocol)))
        .collect();
    text.field(
        i,
        if ports.len() > 1 { "Ports" } else { "Port" },
        if ports.is_empty() {
            "<none>".to_owned()
        } else {
            ports.join(", ")
        },
    );
    if !c.command.is_empty() {
        text.line(i, "Command:");
        for part in &c.command {
            text.line(i + 2, part);
        }
    }
    if !c.args.is_empty() {
        text.line(i, "Args:");
        for part in &c.args {
            text.line(i + 2, part);
        }
    }
    if let Some(status) = status {
        state(text, i, "State", status.state.as_ref());
        if status
            .last_state
            .as_ref()
            .is_some_and(|s| *s != ContainerState::default())
        {
            state(text, i, "Last State", status.last_state.as_ref());
        }
        text.field(i, "Ready", if status.ready { "True" } else { "False" });
        text.field(i, "Restart Count", status.restart_count);
    }
    if let Some(resources) = &c.resources {
        for (label, map) in [
            ("Limits", &resources.limits),
            ("Requests", &resources.requests),
        ] {
            if !map.is_empty() {
                text.line(i, &format!("{label}:"));
                for (k, v) in map {
                    text.field(i + 2, k, v);
                }
            }
        }
    }
    for (label, probe) in [
        ("Liveness", &c.liveness_probe),
        ("Readiness", &c.readiness_probe),
        ("Startup", &c.startup_probe),
    ] {
        if let Some(probe) = probe {
            text.field(i, label, probe_string(probe));
        }
    }
    if c.env.is_empty() {
        text.field(i, "Environment", "<none>");
    } else {
        text.line(i, "Environment:");
        for env in &c.env {
            let value = match (&env.value, &env.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(_)) => "<set from a reference>".to_owned(),
                (None, None) => String::new(),
            };
            text.field(i + 2, &env.name, value);
        }
    }
    if c.volume_mounts.is_empty() {
        text.field(i, "Mounts", "<none>");
    } else {
        text.line(i, "Mounts:");
        for mount in &c.volume_mounts {
            let mode = if mount.read_only == Some(true) {
                "ro"
            } else {
                "rw"
            };
            text.line(
                i + 2,
                &format!("{} from {} ({mode})", mount.mount_path, mount.name),
            );
        }
    }
}

fn volumes(text: &mut Text, volumes: &[Volume]) {
    if volumes.is_empty() {
        text.field(0, "Volumes", "<none>");
        return;
    }
    text.line(0, "Volumes:");
    for volume in volumes {
        text.line(2, &format!("{}:", volume.name));
        if let Some(empty) = &volume.empty_dir {
            text.field(
                4,
                "Type",
                "EmptyDir (a temporary directory that shares a pod's lifetime)",
            );
            text.field(
                4,
                "SizeLimit",
                empty
                    .size_limit
                    .as_ref()
                    .map_or_else(|| "<unset>".to_owned(), ToString::to_string),
            );
        } else if let Some(host) = &volume.host_path {
            text.field(4, "Type", "HostPath (bare host directory volume)");
            text.field(4, "Path", &host.path);
        } else if let Some(config) = &volume.config_map {
            text.field(4, "Type", "ConfigMap (a volume populated by a ConfigMap)");
            text.field(4, "Name", &config.name);
        } else if let Some(secret) = &volume.secret {
            text.field(4, "Type", "Secret (a volume populated by a Secret)");
            text.field(
                4,
                "SecretName",
                secret.secret_name.as_deref().unwrap_or_default(),
            );
        }
    }
}

/// The pod template part of deployments, replica sets and `rollout history --revision`.
pub fn template_lines(template: &PodTemplateSpec) -> Vec<String> {
    let mut text = Text::default();
    text.map(0, "Labels", &template.metadata.labels);
    text.map(0, "Annotations", &template.metadata.annotations);
    if !template.spec.init_containers.is_empty() {
        text.line(0, "Init Containers:");
        for c in &template.spec.init_containers {
            container(&mut text, 2, c, None);
        }
    }
    text.line(0, "Containers:");
    for c in &template.spec.containers {
        container(&mut text, 2, c, None);
    }
    volumes(&mut text, &template.spec.volumes);
    text.0.lines().map(str::to_owned).collect()
}

fn describe_pod(text: &mut Text, pod: &Pod) {
    let status = pod.status.clone().unwrap_or_default();
    text.field(0, "Name", pod.metadata.name());
    text.field(
        0,
        "Namespace",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    text.field(0, "Node", pod.spec.node_name.as_deref().unwrap_or("<none>"));
    text.field(0, "Start Time", time_string(status.start_time));
    text.map(0, "Labels", &pod.metadata.labels);
    text.map(0, "Annotations", &pod.metadata.annotations);
    text.field(0, "Status", pod_status(pod));
    text.field(0, "IP", status.pod_ip.as_deref().unwrap_or_default());
    if let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
    {
        text.field(0, "Controlled By", format!("{}/{}", owner.kind, owner.name));
    }
    if !pod.spec.init_containers.is_empty() {
        text.line(0, "Init Containers:");
        for c in &pod.spec.init_containers {
            container(text, 2, c, Some(pod));
        }
    }
    text.line(0, "Containers:");
    for c in &pod.spec.containers {
        container(text, 2, c, Some(pod));
    }
    if !status.conditions.is_empty() {
        text.line(0, "Conditions:");
        let mut table = Table::new(&["Type", "Status"]);
        for condition in &status.conditions {
            let type_ = match condition.type_ {
                PodConditionType::PodScheduled => "PodScheduled",
                PodConditionType::Initialized => "Initialized",
                PodConditionType::ContainersReady => "ContainersReady",
                PodConditionType::Ready => "Ready",
            };
            table.rows.push(vec![
                type_.to_owned(),
                condition_status(condition.status).to_owned(),
            ]);
        }
        for line in table.render(true).lines() {
            text.line(2, line);
        }
    }
    volumes(text, &pod.spec.volumes);
}

fn condition_status(status: ConditionStatus) -> &'static str {
    match status {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    }
}

fn describe_deployment(text: &mut Text, d: &Deployment, replica_sets: &[ReplicaSet]) {
    metadata(text, &d.metadata, true);
    text.field(0, "Selector", selector_string(d.spec.selector.as_ref()));
    let status = d.status.clone().unwrap_or_default();
    text.field(
        0,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            d.spec.replicas.unwrap_or(1),
            status.updated_replicas,
            status.replicas,
            status.available_replicas,
            status.unavailable_replicas
        ),
    );
    let strategy = d.spec.strategy.clone().unwrap_or_default();
    let recreate = strategy.type_ == Some(DeploymentStrategyType::Recreate);
    text.field(
        0,
        "StrategyType",
        if recreate {
            "Recreate"
        } else {
            "RollingUpdate"
        },
    );
    text.field(0, "MinReadySeconds", d.spec.min_ready_seconds.unwrap_or(0));
    if !recreate {
        let rolling = strategy.rolling_update.unwrap_or_default();
        text.field(
            0,
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                rolling
                    .max_unavailable
                    .map_or_else(|| "25%".to_owned(), |v| v.to_string()),
                rolling
                    .max_surge
                    .map_or_else(|| "25%".to_owned(), |v| v.to_string())
            ),
        );
    }
    text.line(0, "Pod Template:");
    for line in template_lines(&d.spec.template) {
        text.line(2, &line);
    }
    if !status.conditions.is_empty() {
        text.line(0, "Conditions:");
        let mut table = Table::new(&["Type", "Status", "Reason"]);
        for c in &status.conditions {
            table.rows.push(vec![
                format!("{:?}", c.type_),
                condition_status(c.status).to_owned(),
                c.reason.clone().unwrap_or_default(),
            ]);
        }
        for line in table.render(true).lines() {
            text.line(2, line);
        }
    }
    let summary = |rs: &ReplicaSet| {
        let status = rs.status.clone().unwrap_or_default();
        format!(
            "{} ({}/{} replicas created)",
            rs.metadata.name(),
            status.replicas,
            rs.spec.replicas.unwrap_or(1)
        )
    };
    let (new, old): (Vec<&ReplicaSet>, Vec<&ReplicaSet>) = replica_sets
        .iter()
        .partition(|rs| rs.spec.template.as_ref() == Some(&d.spec.template));
    let old: Vec<String> = old
        .iter()
        .filter(|rs| {
            rs.spec.replicas.unwrap_or(1) > 0 || rs.status.as_ref().is_some_and(|s| s.replicas > 0)
        })
        .map(|rs| summary(rs))
        .collect();
    text.field(
        0,
        "OldReplicaSets",
        if old.is_empty() {
            "<none>".to_owned()
        } else {
            old.join(", ")
        },
    );
    text.field(
        0,
        "NewReplicaSet",
        new.first()
            .map_or_else(|| "<none>".to_owned(), |rs| summary(rs)),
    );
}

fn describe_replica_set(text: &mut Text, rs: &ReplicaSet) {
    metadata(text, &rs.metadata, true);
    text.field(0, "Selector", selector_string(rs.spec.selector.as_ref()));
    if let Some(owner) = rs
        .metadata
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
    {
        text.field(0, "Controlled By", format!("{}/{}", owner.kind, owner.name));
    }
    let status = rs.status.clone().unwrap_or_default();
    text.field(
        0,
        "Replicas",
        format!(
            "{} current / {} desired",
            status.replicas,
            rs.spec.replicas.unwrap_or(1)
        ),
    );
    text.field(
        0,
        "Pods Status",
        format!(
            "{} Running / {} Ready / {} Available",
            status.replicas, status.ready_replicas, status.available_replicas
        ),
    );
    if let Some(template) = &rs.spec.template {
        text.line(0, "Pod Template:");
        for line in template_lines(template) {
            text.line(2, &line);
        }
    }
}

fn describe_service(text: &mut Text, s: &Service, endpoints: Option<String>) {
    metadata(text, &s.metadata, true);
    text.field(0, "Selector", map_string(&s.spec.selector));
    text.field(0, "Type", service_type_name(s.spec.type_));
    text.field(0, "IP", s.spec.cluster_ip.as_deref().unwrap_or("<none>"));
    for port in &s.spec.ports {
        text.field(
            0,
            "Port",
            format!(
                "{}  {}/{}",
                port.name.as_deref().unwrap_or("<unset>"),
                port.port,
                protocol_name(port.protocol)
            ),
        );
        text.field(
            0,
            "TargetPort",
            port.target_port
                .as_ref()
                .map_or_else(|| port.port.to_string(), ToString::to_string),
        );
        if let Some(node_port) = port.node_port {
            text.field(
                0,
                "NodePort",
                format!(
                    "{}  {node_port}/{}",
                    port.name.as_deref().unwrap_or("<unset>"),
                    protocol_name(port.protocol)
                ),
            );
        }
    }
    text.field(
        0,
        "Endpoints",
        endpoints.unwrap_or_else(|| "<none>".to_owned()),
    );
}

/// The events section: `Type Reason Age From Message`, oldest first.
fn events_section(text: &mut Text, mut events: Vec<Event>, now: Time) {
    if events.is_empty() {
        text.field(0, "Events", "<none>");
        return;
    }
    events.sort_by_key(event_last_seen);
    text.line(0, "Events:");
    let mut table = Table::new(&["Type", "Reason", "Age", "From", "Message"]);
    table.rows.push(
        ["----", "------", "----", "----", "-------"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    );
    for event in &events {
        let age = event_last_seen(event)
            .map(|t| human_duration(now.0.duration_since(t.0).as_secs()))
            .unwrap_or_else(|| "<unknown>".to_owned());
        let age = match event.count {
            Some(count) if count > 1 => format!("{age} (x{count})"),
            _ => age,
        };
        table.rows.push(vec![
            match event.type_ {
                Some(EventType::Warning) => "Warning",
                _ => "Normal",
            }
            .to_owned(),
            event.reason.clone().unwrap_or_default(),
            age,
            event
                .source
                .as_ref()
                .and_then(|s| s.component.clone())
                .or_else(|| event.reporting_component.clone())
                .unwrap_or_default(),
            event.message.clone().unwrap_or_default().trim().to_owned(),
        ]);
    }
    for line in table.render(true).lines() {
        text.line(2, line);
    }
}

pub fn run(global: &GlobalArgs, args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let targets = parse_targets("describe", &args.args)?;
    let client = connect(global)?;
    block_on(async move {
        let mut out = String::new();
        let namespace = args.namespace.namespace.as_str();
        for (i, target) in targets.iter().enumerate() {
            if i > 0 {
                out.push_str("\n\n");
            }
            let value = get_raw(&client, target.kind, namespace, &target.name).await?;
            let object = object_from_value(target.kind, value)?;
            out.push_str(&describe(&client, &object, namespace).await?);
        }
        print(&out)?;
        Ok(ExitCode::SUCCESS)
    })
}

fn known(kind: &str) -> anyhow::Result<&'static berth_api::object::KindInfo> {
    find_kind(kind).ok_or_else(|| {
        anyhow::Error::from(ResourceError::UnknownKind {
            word: kind.to_owned(),
        })
    })
}

async fn describe(client: &Client, object: &Object, namespace: &str) -> anyhow::Result<String> {
    let mut text = Text::default();
    match object {
        Object::Pod(pod) => describe_pod(&mut text, pod),
        Object::Deployment(d) => {
            let uid = d.metadata.uid.clone().unwrap_or_default();
            let replica_sets: Vec<ReplicaSet> = list_typed(
                client,
                known("ReplicaSet")?,
                Some(namespace),
                &Selectors::default(),
            )
            .await?
            .into_iter()
            .filter(|rs: &ReplicaSet| {
                rs.metadata
                    .owner_references
                    .iter()
                    .any(|o| o.controller == Some(true) && o.uid == uid)
            })
            .collect();
            describe_deployment(&mut text, d, &replica_sets);
        }
        Object::ReplicaSet(rs) => describe_replica_set(&mut text, rs),
        Object::Service(s) => {
            let endpoints = get_raw(client, known("Endpoints")?, namespace, s.metadata.name())
                .await
                .ok()
                .and_then(|v| object_from_value(known("Endpoints").ok()?, v).ok())
                .and_then(|o| match o {
                    Object::Endpoints(e) => Some(endpoints_string(&e)),
                    _ => None,
                });
            describe_service(&mut text, s, endpoints);
        }
        other => {
            metadata(&mut text, other.metadata(), other.info().namespaced);
            let mut value = serde_json::to_value(other)?;
            if let Some(map) = value.as_object_mut() {
                for key in ["apiVersion", "kind", "metadata"] {
                    map.remove(key);
                }
            }
            let yaml = serde_yaml::to_string(&value)?;
            for line in yaml.lines().filter(|l| *l != "{}") {
                text.line(0, line);
            }
        }
    }
    if let Some(uid) = object.metadata().uid.as_deref() {
        let events: Vec<Event> = list_typed(
            client,
            known("Event")?,
            Some(object.metadata().namespace.as_deref().unwrap_or(namespace)),
            &Selectors {
                labels: "",
                fields: &format!("involvedObject.uid={uid}"),
            },
        )
        .await?;
        events_section(&mut text, events, now());
    }
    Ok(text.0)
}

#[cfg(test)]
mod tests {
    use berth_api::{
        core_v1::{ContainerStateRunning, ContainerStatus, ObjectReference, PodPhase, PodStatus},
        testing,
    };

    use super::*;

    #[test]
    fn pod_description_has_containers_state_and_events() {
        let mut pod = testing::pod("web-1")
            .with_containers(vec![
                testing::container("web", "busybox:1.36")
                    .with_port("http", 8080)
                    .with_http_probes("http")
                    .build(),
            ])
            .build();
        pod.metadata.namespace = Some("default".into());
        pod.status = Some(PodStatus {
            phase: Some(PodPhase::Running),
            pod_ip: Some("10.88.0.5".into()),
            container_statuses: vec![ContainerStatus {
                name: "web".into(),
                ready: true,
                restart_count: 2,
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some("2024-05-01T12:00:00Z".parse().unwrap()),
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }],
            ..PodStatus::default()
        });
        let mut text = Text::default();
        describe_pod(&mut text, &pod);
        let event = Event {
            involved_object: ObjectReference::default(),
            reason: Some("Started".into()),
            message: Some("Started container web".into()),
            type_: Some(EventType::Normal),
            count: Some(3),
            last_timestamp: Some("2024-05-01T12:00:00Z".parse().unwrap()),
            ..Event::default()
        };
        events_section(
            &mut text,
            vec![event],
            "2024-05-01T12:01:00Z".parse().unwrap(),
        );
        let out = text.0;
        for expected in [
            "Name:             web-1\n",
            "Status:           Running\n",
            "IP:               10.88.0.5\n",
            "Containers:\n  web:\n",
            "    Image:          busybox:1.36\n",
            "    Port:           8080/TCP\n",
            "    State:          Running\n",
            "      Started:      Wed, 01 May 2024 12:00:00 +0000\n",
            "    Ready:          True\n",
            "    Restart Count:  2\n",
            "    Liveness:       http-get http://:http/",
            "Volumes:          <none>\n",
            "Events:\n  Type     Reason    Age        From   Message\n",
            "  Normal   Started   60s (x3)          Started container web\n",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in\n{out}");
        }
    }

    #[test]
    fn deployment_description_has_replicas_strategy_and_replica_sets() {
        let d = testing::deployment("web").with_replicas(3).build();
        let mut current = testing::replica_set("web-new", 3);
        current.spec.template = Some(d.spec.template.clone());
        let mut old = testing::replica_set("web-old", 1);
        if let Some(t) = old.spec.template.as_mut() {
            t.spec.containers[0].image = Some("busybox:1.35".into());
        }
        let mut text = Text::default();
        describe_deployment(&mut text, &d, &[current, old]);
        let out = text.0;
        for expected in [
            "Replicas:         3 desired | 0 updated | 0 total | 0 available | 0 unavailable\n",
            "StrategyType:     RollingUpdate\n",
            "RollingUpdateStrategy:  25% max unavailable, 25% max surge\n",
            "Pod Template:\n  Labels:           app=web\n",
            "OldReplicaSets:   web-old (0/1 replicas created)\n",
            "NewReplicaSet:    web-new (0/3 replicas created)\n",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in\n{out}");
        }
    }
}
