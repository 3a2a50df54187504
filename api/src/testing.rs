//! Fixture builders for tests, here and in other crates (feature `testing`):
//! `testing::deployment("web").with_replicas(3).build()`.

use std::collections::BTreeMap;

use crate::{
    apps_v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec},
    core_v1::{
        Container, ContainerPort, HttpGetAction, Pod, PodSpec, PodTemplateSpec, Probe, Service,
        ServicePort, ServiceSpec,
    },
    intstr::IntOrString,
    meta::{LabelSelector, ObjectMeta},
};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn app_labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_owned(), app.to_owned())])
}

/// A container named `name` running `image`.
pub fn container(name: &str, image: &str) -> ContainerBuilder {
    ContainerBuilder(Container {
        name: name.to_owned(),
        image: Some(image.to_owned()),
        ..Container::default()
    })
}

pub struct ContainerBuilder(Container);

impl ContainerBuilder {
    pub fn with_port(mut self, name: &str, port: i32) -> Self {
        self.0.ports.push(ContainerPort {
            name: Some(name.to_owned()),
            container_port: port,
            ..ContainerPort::default()
        });
        self
    }

    pub fn with_command(mut self, command: &[&str]) -> Self {
        self.0.command = command.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Readiness and liveness `httpGet /` probes on `port` (a number or a port name).
    pub fn with_http_probes(mut self, port: impl Into<IntOrString>) -> Self {
        let probe = Probe {
            http_get: Some(HttpGetAction {
                path: Some("/".to_owned()),
                port: port.into(),
                ..HttpGetAction::default()
            }),
            ..Probe::default()
        };
        self.0.readiness_probe = Some(probe.clone());
        self.0.liveness_probe = Some(probe);
        self
    }

    pub fn build(self) -> Container {
        self.0
    }
}

/// A pod running one `busybox` container.
pub fn pod(name: &str) -> PodBuilder {
    PodBuilder(Pod {
        metadata: meta(name),
        spec: PodSpec {
            containers: vec![container("main", "busybox:1.36").build()],
            ..PodSpec::default()
        },
        ..Pod::default()
    })
}

pub struct PodBuilder(Pod);

impl PodBuilder {
    pub fn with_containers(mut self, containers: Vec<Container>) -> Self {
        self.0.spec.containers = containers;
        self
    }

    pub fn build(self) -> Pod {
        self.0
    }
}

/// A valid Deployment: one replica, selector and template labels `app: NAME`, one container.
pub fn deployment(name: &str) -> DeploymentBuilder {
    DeploymentBuilder(Deployment {
        metadata: meta(name),
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: Some(LabelSelector {
                match_labels: app_labels(name),
                ..LabelSelector::default()
            }),
            template: PodTemplateSpec {
                metadata: ObjectMeta {
                    labels: app_labels(name),
                    ..ObjectMeta::default()
                },
                spec: PodSpec {
                    containers: vec![
                        container(name, "busybox:1.36")
                            .with_port("http", 8080)
                            .build(),
                    ],
                    ..PodSpec::default()
                },
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    })
}

pub struct DeploymentBuilder(Deployment);

impl DeploymentBuilder {
    pub fn with_replicas(mut self, replicas: i32) -> Self {
        self.0.spec.replicas = Some(replicas);
        self
    }

    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.0.metadata.namespace = Some(namespace.to_owned());
        self
    }

    pub fn with_containers(mut self, containers: Vec<Container>) -> Self {
        self.0.spec.template.spec.containers = containers;
        self
    }

    pub fn build(self) -> Deployment {
        self.0
    }
}

/// A ReplicaSet with the same shape as [`deployment`].
pub fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    let deployment = deployment(name).build();
    ReplicaSet {
        metadata: deployment.metadata,
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: None,
            selector: deployment.spec.selector,
            template: Some(deployment.spec.template),
        },
        ..ReplicaSet::default()
    }
}

/// A ClusterIP service selecting `app: NAME`, port `port` to target port `http`.
pub fn service(name: &str, port: i32) -> ServiceBuilder {
    ServiceBuilder(Service {
        metadata: meta(name),
        spec: ServiceSpec {
            selector: app_labels(name),
            ports: vec![ServicePort {
                name: Some("http".to_owned()),
                port,
                target_port: Some(IntOrString::from("http")),
                ..ServicePort::default()
            }],
            ..ServiceSpec::default()
        },
        ..Service::default()
    })
}

pub struct ServiceBuilder(Service);

impl ServiceBuilder {
    pub fn with_node_port(mut self, node_port: i32) -> Self {
        self.0.spec.type_ = Some(crate::core_v1::ServiceType::NodePort);
        self.0.spec.ports[0].node_port = Some(node_port);
        self
    }

    pub fn build(self) -> Service {
        self.0
    }
}
