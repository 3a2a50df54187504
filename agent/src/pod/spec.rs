//! A pod's container, as Kubernetes declares it, turned into the runtime's [`ContainerSpec`]:
//! argv from the image's entrypoint/cmd and the container's command/args, environment (literal
//! values, `fieldRef`, ConfigMap and Secret keys through a [`ConfigSource`]), cgroup limits,
//! identity and privileges, and the labels the agent re-adopts containers by.
//!
//! The argv follows Kubernetes' rules: `command` replaces the image's entrypoint (and drops its
//! cmd), `args` replace the image's cmd; `$(VAR)` in both expands from the container's env.
//!
//! Like the kubelet (pods have `enableServiceLinks: true` by default, and berth's types have no
//! way to turn it off), every container also gets the environment of the Services with a cluster
//! IP in its namespace as they are when it is created: `{NAME}_SERVICE_HOST`,
//! `{NAME}_SERVICE_PORT[_{PORTNAME}]` and the Docker-link style `{NAME}_PORT`,
//! `{NAME}_PORT_{PORT}_{PROTO}[_PROTO|_PORT|_ADDR]` ([`service_env`]). They come right after the
//! image's env, so `envFrom` and `env` override them and `$(VAR)` can refer to them.

use std::{collections::BTreeMap, net::IpAddr};

use async_trait::async_trait;
use berth_api::core_v1::{Container, KeySelector, Pod, Protocol, Service};

use crate::{
    probe::exec::expand_command,
    runtime::{ContainerSpec, Resources, SandboxId, Security, Signal, User, labels},
};

/// Errors of turning a container into a [`ContainerSpec`] (the kubelet's
/// `CreateContainerConfigError`).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("container {container:?}: {kind} {namespace}/{name} not found")]
    MissingObject {
        container: String,
        kind: ObjectKind,
        namespace: String,
        name: String,
    },
    #[error("container {container:?}: key {key:?} not found in {kind} {namespace}/{name}")]
    MissingKey {
        container: String,
        kind: ObjectKind,
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "container {container:?}: env {var:?}: unsupported fieldRef.fieldPath {path:?} (expected metadata.name, metadata.namespace, metadata.uid, status.podIP, spec.nodeName or metadata.labels['k'] / metadata.annotations['k'])"
    )]
    UnsupportedFieldPath {
        container: String,
        var: String,
        path: String,
    },
    #[error("container {container:?} has no image")]
    NoImage { container: String },
    #[error(
        "container {container:?}: image {image:?} has no entrypoint or cmd and no command is given"
    )]
    NoCommand { container: String, image: String },
    #[error("container {container:?}: reading {kind} {namespace}/{name} failed")]
    Source {
        container: String,
        kind: ObjectKind,
        namespace: String,
        name: String,
        #[source]
        source: SourceError,
    },
    #[error("container {container:?}: volume mounts")]
    Volume {
        container: String,
        #[source]
        source: super::volumes::VolumeError,
    },
    #[error("container {container:?}: listing the services of namespace {namespace:?} failed")]
    Services {
        container: String,
        namespace: String,
        #[source]
        source: SourceError,
    },
    #[error("container {container:?}: resolving image {image:?} failed")]
    Image {
        container: String,
        image: String,
        #[source]
        source: SourceError,
    },
}

pub type Result<T, E = SpecError> = std::result::Result<T, E>;

/// An error of a [`ConfigSource`] implementation (the daemon's store).
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed")]
pub struct SourceError {
    pub operation: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
        })
    }
}

/// What an image says about running it (its OCI config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// The resolved image (digest), Kubernetes' `imageID`.
    pub image_id: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub stop_signal: Option<Signal>,
}

/// ConfigMaps, Secrets and images as the daemon's store and image cache hold them; the agent reads
/// them only through this trait.
#[async_trait]
pub trait ConfigSource: Send + Sync + 'static {
    /// The data of a ConfigMap, `None` when it does not exist.
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SourceError>;
    /// The (decoded) data of a Secret, `None` when it does not exist.
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SourceError>;
    /// The configuration of a locally available image.
    async fn image(&self, image: &str) -> Result<ImageConfig, SourceError>;
    /// The Services of `namespace`, whose cluster IPs and ports become the environment of the
    /// pod's containers. The default has none (a source without Services).
    async fn services(&self, namespace: &str) -> Result<Vec<Service>, SourceError> {
        let _ = namespace;
        Ok(Vec::new())
    }
}

/// A [`ConfigSource`] over fixed maps, for tests; unknown images have an empty config.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone, Default)]
pub struct FakeConfigSource {
    pub config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
    pub secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
    pub images: BTreeMap<String, ImageConfig>,
    /// Services by namespace.
    pub services: BTreeMap<String, Vec<Service>>,
}

#[cfg(any(test, feature = "testing"))]
impl FakeConfigSource {
    pub fn with_config_map(mut self, namespace: &str, name: &str, data: &[(&str, &str)]) -> Self {
        self.config_maps
            .insert((namespace.into(), name.into()), to_map(data));
        self
    }

    pub fn with_secret(mut self, namespace: &str, name: &str, data: &[(&str, &str)]) -> Self {
        self.secrets
            .insert((namespace.into(), name.into()), to_map(data));
        self
    }

    pub fn with_image(mut self, image: &str, config: ImageConfig) -> Self {
        self.images.insert(image.into(), config);
        self
    }

    /// Adds `service` to its namespace (`default` when it has none).
    pub fn with_service(mut self, service: Service) -> Self {
        let namespace = service
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        self.services.entry(namespace).or_default().push(service);
        self
    }
}

#[cfg(any(test, feature = "testing"))]
fn to_map(data: &[(&str, &str)]) -> BTreeMap<String, String> {
    data.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(any(test, feature = "testing"))]
#[async_trait]
impl ConfigSource for FakeConfigSource {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SourceError> {
        Ok(self
            .config_maps
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SourceError> {
        Ok(self
            .secrets
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }

    async fn image(&self, image: &str) -> Result<ImageConfig, SourceError> {
        Ok(self
            .images
            .get(image)
            .cloned()
            .unwrap_or_else(|| ImageConfig {
                image_id: format!("sha256:{image}"),
                entrypoint: vec!["/bin/sh".into()],
                ..ImageConfig::default()
            }))
    }

    async fn services(&self, namespace: &str) -> Result<Vec<Service>, SourceError> {
        Ok(self.services.get(namespace).cloned().unwrap_or_default())
    }
}

/// Where a container goes and what the pod knows when it is created.
pub struct SpecContext<'a> {
    pub pod: &'a Pod,
    pub sandbox: &'a SandboxId,
    pub pod_ip: Option<IpAddr>,
    pub restart_count: u32,
    /// The node's default pids limit per container.
    pub pids_limit: Option<u64>,
    /// The pod's volumes, prepared on the host ([`super::volumes`]).
    pub volumes: &'a super::volumes::PodVolumes,
}

/// Builds the runtime's spec for `container` of the pod (see the module doc).
pub async fn container_spec(
    container: &Container,
    ctx: &SpecContext<'_>,
    source: &dyn ConfigSource,
) -> Result<(ContainerSpec, ImageConfig)> {
    let name = &container.name;
    let image = container
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| SpecError::NoImage {
            container: name.clone(),
        })?;
    let config = source
        .image(&image)
        .await
        .map_err(|source| SpecError::Image {
            container: name.clone(),
            image: image.clone(),
            source,
        })?;
    let env = resolve_env(container, ctx, &config, source).await?;
    let (entrypoint, cmd) = if container.command.is_empty() {
        let cmd = if container.args.is_empty() {
            config.cmd.clone()
        } else {
            expand_command(&container.args, &env)
        };
        (config.entrypoint.clone(), cmd)
    } else {
        (
            expand_command(&container.command, &env),
            expand_command(&container.args, &env),
        )
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(SpecError::NoCommand {
            container: name.clone(),
            image,
        });
    }
    let meta = &ctx.pod.metadata;
    let labels = [
        (labels::POD_UID, meta.uid.clone().unwrap_or_default()),
        (labels::POD_NAME, meta.name().to_owned()),
        (
            labels::POD_NAMESPACE,
            meta.namespace.clone().unwrap_or_else(|| "default".into()),
        ),
        (labels::CONTAINER_NAME, name.clone()),
        (labels::RESTART_COUNT, ctx.restart_count.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let spec = ContainerSpec {
        name: name.clone(),
        image,
        argv,
        env,
        working_dir: container
            .working_dir
            .clone()
            .filter(|d| !d.is_empty())
            .or_else(|| config.working_dir.clone()),
        user: user(ctx.pod, container),
        mounts: super::volumes::mounts(container, ctx.volumes).map_err(|source| {
            SpecError::Volume {
                container: name.clone(),
                source,
            }
        })?,
        resources: resources(container, ctx.pids_limit),
        labels,
        sandbox: Some(ctx.sandbox.clone()),
        stop_signal: config.stop_signal,
        tty: container.tty.unwrap_or(false),
        security: security(container),
    };
    Ok((spec, config))
}

fn positive(q: i64) -> Option<u64> {
    u64::try_from(q).ok().filter(|v| *v > 0)
}

/// `limits.cpu` → quota (millicores), `requests.cpu` → shares, `limits.memory` → bytes; a CPU
/// request defaults to the limit, as Kubernetes defaults it.
pub fn resources(container: &Container, pids_limit: Option<u64>) -> Resources {
    let Some(req) = &container.resources else {
        return Resources {
            pids_limit,
            ..Resources::default()
        };
    };
    let cpu_limit_millis = req.cpu_limit().and_then(|q| positive(q.to_milli()));
    Resources {
        cpu_limit_millis,
        cpu_request_millis: req
            .cpu_request()
            .and_then(|q| positive(q.to_milli()))
            .or(cpu_limit_millis),
        memory_limit_bytes: req.memory_limit().and_then(|q| positive(q.to_bytes())),
        pids_limit,
    }
}

/// The container's `runAsUser`/`runAsGroup`, else the pod's; `None` keeps the image's user.
fn user(pod: &Pod, container: &Container) -> Option<User> {
    let pod_ctx = pod.spec.security_context.as_ref();
    let ctx = container.security_context.as_ref();
    let uid = ctx
        .and_then(|c| c.run_as_user)
        .or_else(|| pod_ctx.and_then(|p| p.run_as_user));
    let gid = ctx
        .and_then(|c| c.run_as_group)
        .or_else(|| pod_ctx.and_then(|p| p.run_as_group));
    let groups: Vec<u32> = pod_ctx
        .map(|p| {
            p.supplemental_groups
                .iter()
                .chain(p.fs_group.iter())
                .filter_map(|g| u32::try_from(*g).ok())
                .collect()
        })
        .unwrap_or_default();
    if uid.is_none() && gid.is_none() && groups.is_empty() {
        return None;
    }
    let id = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    Some(User {
        uid: id(uid),
        gid: id(gid.or(uid)),
        supplemental_groups: groups,
    })
}

fn security(container: &Container) -> Security {
    let Some(ctx) = &container.security_context else {
        return Security::default();
    };
    let caps = ctx.capabilities.clone().unwrap_or_default();
    Security {
        privileged: ctx.privileged.unwrap_or(false),
        read_only_root_filesystem: ctx.read_only_root_filesystem.unwrap_or(false),
        capabilities_add: caps.add,
        capabilities_drop: caps.drop,
        no_new_privileges: ctx.allow_privilege_escalation == Some(false),
    }
}

/// The image's env, then the Services' ([`service_env`]), then `envFrom` in order, then `env` in
/// order; later names win.
async fn resolve_env(
    container: &Container,
    ctx: &SpecContext<'_>,
    image: &ImageConfig,
    source: &dyn ConfigSource,
) -> Result<Vec<(String, String)>> {
    let namespace = ctx
        .pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    };
    for (name, value) in &image.env {
        set(&mut env, name.clone(), value.clone());
    }
    let services = source
        .services(&namespace)
        .await
        .map_err(|source| SpecError::Services {
            container: container.name.clone(),
            namespace: namespace.clone(),
            source,
        })?;
    for (name, value) in service_env(&services) {
        set(&mut env, name, value);
    }
    for from in &container.env_from {
        let prefix = from.prefix.clone().unwrap_or_default();
        let refs = [
            (ObjectKind::ConfigMap, &from.config_map_ref),
            (ObjectKind::Secret, &from.secret_ref),
        ];
        for (kind, named) in refs {
            let Some(named) = named else { continue };
            match fetch(source, kind, &namespace, &named.name, &container.name).await? {
                Some(data) => {
                    for (key, value) in data {
                        set(&mut env, format!("{prefix}{key}"), value);
                    }
                }
                None if named.optional == Some(true) => {}
                None => {
                    return Err(SpecError::MissingObject {
                        container: container.name.clone(),
                        kind,
                        namespace,
                        name: named.name.clone(),
                    });
                }
            }
        }
    }
    for var in &container.env {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    Some(field_value(ctx, &field.field_path).ok_or_else(|| {
                        SpecError::UnsupportedFieldPath {
                            container: container.name.clone(),
                            var: var.name.clone(),
                            path: field.field_path.clone(),
                        }
                    })?)
                } else if let Some(key) = &from.config_map_key_ref {
                    key_value(source, ObjectKind::ConfigMap, &namespace, key, container).await?
                } else if let Some(key) = &from.secret_key_ref {
                    key_value(source, ObjectKind::Secret, &namespace, key, container).await?
                } else {
                    None
                }
            }
            (Some(value), None) => {
                Some(expand_command(std::slice::from_ref(value), &env).remove(0))
            }
            (None, None) => Some(String::new()),
        };
        if let Some(value) = value {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

async fn fetch(
    source: &dyn ConfigSource,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
    container: &str,
) -> Result<Option<BTreeMap<String, String>>> {
    let found = match kind {
        ObjectKind::ConfigMap => source.config_map(namespace, name).await,
        ObjectKind::Secret => source.secret(namespace, name).await,
    };
    found.map_err(|source| SpecError::Source {
        container: container.to_owned(),
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    })
}

/// A key of a ConfigMap or Secret; `None` when it (or the object) is missing and optional.
async fn key_value(
    source: &dyn ConfigSource,
    kind: ObjectKind,
    namespace: &str,
    key: &KeySelector,
    container: &Container,
) -> Result<Option<String>> {
    let optional = key.optional == Some(true);
    let Some(data) = fetch(source, kind, namespace, &key.name, &container.name).await? else {
        return if optional {
            Ok(None)
        } else {
            Err(SpecError::MissingObject {
                container: container.name.clone(),
                kind,
                namespace: namespace.to_owned(),
                name: key.name.clone(),
            })
        };
    };
    match data.get(&key.key) {
        Some(value) => Ok(Some(value.clone())),
        None if optional => Ok(None),
        None => Err(SpecError::MissingKey {
            container: container.name.clone(),
            kind,
            namespace: namespace.to_owned(),
            name: key.name.clone(),
            key: key.key.clone(),
        }),
    }
}

/// The downward API's `fieldRef` paths.
fn field_value(ctx: &SpecContext<'_>, path: &str) -> Option<String> {
    let meta = &ctx.pod.metadata;
    let bracketed = |prefix: &str| {
        path.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_owned)
    };
    Some(match path {
        "metadata.name" => meta.name().to_owned(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "status.podIP" => ctx.pod_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "spec.nodeName" => ctx.pod.spec.node_name.clone().unwrap_or_default(),
        _ => {
            if let Some(key) = bracketed("metadata.labels") {
                meta.labels.get(&key).cloned().unwrap_or_default()
            } else if let Some(key) = bracketed("metadata.annotations") {
                meta.annotations.get(&key).cloned().unwrap_or_default()
            } else {
                return None;
            }
        }
    })
}

/// The kubelet's service environment (`pkg/kubelet/envvars`) for `services`, sorted by name so
/// that the result does not depend on the order a source lists them in. Services without a
/// cluster IP (headless `None`, `ExternalName`, not yet allocated) or without ports are skipped.
pub fn service_env(services: &[Service]) -> Vec<(String, String)> {
    let mut services: Vec<&Service> = services.iter().collect();
    services.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut env = Vec::new();
    for service in services {
        let Some(name) = service.metadata.name.as_deref() else {
            continue;
        };
        let Some(ip) = service
            .spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
        else {
            continue;
        };
        let Some(first) = service.spec.ports.first() else {
            continue;
        };
        let prefix = env_name(name);
        env.push((format!("{prefix}_SERVICE_HOST"), ip.to_owned()));
        env.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for port in &service.spec.ports {
            if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                env.push((
                    format!("{prefix}_SERVICE_PORT_{}", env_name(port_name)),
                    port.port.to_string(),
                ));
            }
        }
        // An IPv6 cluster IP is bracketed in URLs, as Go's net.JoinHostPort does.
        let host_port = match ip.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{ip}]:"),
            _ => format!("{ip}:"),
        };
        for (index, port) in service.spec.ports.iter().enumerate() {
            let proto = match port.protocol.unwrap_or(Protocol::Tcp) {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Sctp => "sctp",
            };
            let url = format!("{proto}://{host_port}{}", port.port);
            if index == 0 {
                env.push((format!("{prefix}_PORT"), url.clone()));
            }
            let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, proto.to_uppercase());
            env.push((port_prefix.clone(), url));
            env.push((format!("{port_prefix}_PROTO"), proto.to_owned()));
            env.push((format!("{port_prefix}_PORT"), port.port.to_string()));
            env.push((format!("{port_prefix}_ADDR"), ip.to_owned()));
        }
    }
    env
}

/// `my-svc` → `MY_SVC`.
fn env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

#[cfg(test)]
mod tests {
    use berth_api::{
        core_v1::{
            Capabilities, EnvFromSource, EnvVar, EnvVarSource, NamedRef, ObjectFieldSelector,
            PodSecurityContext, ResourceRequirements, SecurityContext,
        },
        quantity::Quantity,
    };

    use super::*;

    fn pod() -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("shop".into());
        pod.metadata.uid = Some("uid-1".into());
        pod
    }

    fn image() -> ImageConfig {
        ImageConfig {
            image_id: "sha256:abc".into(),
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into(), "--port=80".into()],
            env: vec![("PATH".into(), "/bin".into())],
            working_dir: Some("/srv".into()),
            stop_signal: Some(Signal::QUIT),
        }
    }

    async fn build(
        pod: &Pod,
        container: Container,
        source: &FakeConfigSource,
    ) -> Result<ContainerSpec> {
        let sandbox = SandboxId("sb".into());
        let ctx = SpecContext {
            pod,
            sandbox: &sandbox,
            pod_ip: Some("10.88.0.7".parse().unwrap()),
            restart_count: 2,
            pids_limit: Some(1024),
            volumes: &Default::default(),
        };
        container_spec(&container, &ctx, source)
            .await
            .map(|(spec, _)| spec)
    }

    fn container(command: &[&str], args: &[&str]) -> Container {
        Container {
            name: "app".into(),
            image: Some("shop/web:1".into()),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn command_replaces_entrypoint_and_args_replace_cmd() {
        let source = FakeConfigSource::default().with_image("shop/web:1", image());
        let pod = pod();
        let argv = |c| async { build(&pod, c, &source).await.unwrap().argv };
        assert_eq!(
            argv(container(&[], &[])).await,
            ["/entry", "serve", "--port=80"]
        );
        assert_eq!(argv(container(&[], &["debug"])).await, ["/entry", "debug"]);
        assert_eq!(argv(container(&["/bin/app"], &[])).await, ["/bin/app"]);
        assert_eq!(
            argv(container(&["/bin/app"], &["-v"])).await,
            ["/bin/app", "-v"]
        );
        let spec = build(&pod, container(&[], &[]), &source).await.unwrap();
        assert_eq!(spec.working_dir.as_deref(), Some("/srv"));
        assert_eq!(spec.stop_signal, Some(Signal::QUIT));
        assert_eq!(spec.sandbox, Some(SandboxId("sb".into())));
        assert_eq!(spec.labels[labels::POD_UID], "uid-1");
        assert_eq!(spec.labels[labels::POD_NAMESPACE], "shop");
        assert_eq!(spec.labels[labels::CONTAINER_NAME], "app");
        assert_eq!(spec.labels[labels::RESTART_COUNT], "2");
        let empty = FakeConfigSource::default().with_image("shop/web:1", ImageConfig::default());
        assert!(matches!(
            build(&pod, container(&[], &[]), &empty).await,
            Err(SpecError::NoCommand { .. })
        ));
    }

    #[tokio::test]
    async fn env_from_values_fields_and_objects() {
        let source = FakeConfigSource::default()
            .with_image("shop/web:1", image())
            .with_config_map("shop", "cfg", &[("MODE", "fast"), ("LEVEL", "3")])
            .with_secret("shop", "creds", &[("password", "hunter2")]);
        let var = |name: &str, from: EnvVarSource| EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(from),
        };
        let mut c = container(&["/bin/app", "--mode=$(MODE)", "$(POD)"], &[]);
        c.env_from = vec![EnvFromSource {
            prefix: Some("CFG_".into()),
            config_map_ref: Some(NamedRef {
                name: "cfg".into(),
                optional: None,
            }),
            secret_ref: None,
        }];
        c.env = vec![
            EnvVar {
                name: "MODE".into(),
                value: Some("slow-$(CFG_LEVEL)".into()),
                value_from: None,
            },
            var(
                "POD",
                EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: "metadata.name".into(),
                    }),
                    ..Default::default()
                },
            ),
            var(
                "IP",
                EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: "status.podIP".into(),
                    }),
                    ..Default::default()
                },
            ),
            var(
                "PASSWORD",
                EnvVarSource {
                    secret_key_ref: Some(KeySelector {
                        name: "creds".into(),
                        key: "password".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ),
            var(
                "MAYBE",
                EnvVarSource {
                    config_map_key_ref: Some(KeySelector {
                        name: "nope".into(),
                        key: "x".into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                },
            ),
        ];
        let spec = build(&pod(), c.clone(), &source).await.unwrap();
        let get = |name: &str| {
            spec.env
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("PATH"), Some("/bin"));
        assert_eq!(get("CFG_MODE"), Some("fast"));
        assert_eq!(get("MODE"), Some("slow-3"));
        assert_eq!(get("POD"), Some("web"));
        assert_eq!(get("IP"), Some("10.88.0.7"));
        assert_eq!(get("PASSWORD"), Some("hunter2"));
        assert_eq!(get("MAYBE"), None);
        assert_eq!(spec.argv, ["/bin/app", "--mode=slow-3", "web"]);

        c.env[3]
            .value_from
            .as_mut()
            .unwrap()
            .secret_key_ref
            .as_mut()
            .unwrap()
            .key = "user".into();
        let err = build(&pod(), c.clone(), &source).await.unwrap_err();
        assert!(
            matches!(&err, SpecError::MissingKey { key, kind: ObjectKind::Secret, .. } if key == "user"),
            "{err}"
        );
        c.env[1]
            .value_from
            .as_mut()
            .unwrap()
            .field_ref
            .as_mut()
            .unwrap()
            .field_path = "status.hostIP".into();
        assert!(matches!(
            build(&pod(), c, &source).await,
            Err(SpecError::UnsupportedFieldPath { .. })
        ));
    }

    #[tokio::test]
    async fn volume_mounts_become_bind_mounts() {
        use berth_api::core_v1::VolumeMount;

        use crate::{pod::volumes::PodVolumes, runtime::Mount};

        let source = FakeConfigSource::default();
        let pod = pod();
        let sandbox = SandboxId("sb".into());
        let mut volumes = PodVolumes::default();
        volumes
            .paths
            .insert("data".into(), "/pods/uid-1/data".into());
        volumes
            .paths
            .insert("config".into(), "/pods/uid-1/config".into());
        volumes.read_only.insert("config".into());
        let ctx = SpecContext {
            pod: &pod,
            sandbox: &sandbox,
            pod_ip: None,
            restart_count: 0,
            pids_limit: None,
            volumes: &volumes,
        };
        let mut c = container(&["/bin/app"], &[]);
        let mount = |name: &str, path: &str, read_only| VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            read_only,
            sub_path: None,
        };
        c.volume_mounts = vec![
            mount("data", "/data", Some(true)),
            mount("config", "/etc/app", None),
        ];
        let (spec, _) = container_spec(&c, &ctx, &source).await.unwrap();
        assert_eq!(
            spec.mounts,
            [
                Mount {
                    source: "/pods/uid-1/data".into(),
                    destination: "/data".into(),
                    read_only: true,
                },
                Mount {
                    source: "/pods/uid-1/config".into(),
                    destination: "/etc/app".into(),
                    read_only: true,
                },
            ]
        );
        c.volume_mounts = vec![mount("missing", "/x", None)];
        let err = container_spec(&c, &ctx, &source).await.unwrap_err();
        assert!(
            matches!(&err, SpecError::Volume { container, .. } if container == "app"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn resources_identity_and_privileges() {
        let source = FakeConfigSource::default();
        let mut pod = pod();
        pod.spec.security_context = Some(PodSecurityContext {
            run_as_user: Some(1000),
            supplemental_groups: vec![5],
            ..Default::default()
        });
        let mut c = container(&["/bin/app"], &[]);
        c.resources = Some(ResourceRequirements {
            limits: [
                ("cpu".to_owned(), Quantity::parse("500m").unwrap()),
                ("memory".to_owned(), Quantity::parse("64Mi").unwrap()),
            ]
            .into(),
            requests: [("cpu".to_owned(), Quantity::parse("0.25").unwrap())].into(),
        });
        c.security_context = Some(SecurityContext {
            run_as_group: Some(2000),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                add: vec!["NET_ADMIN".into()],
                drop: vec!["ALL".into()],
            }),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        });
        let spec = build(&pod, c, &source).await.unwrap();
        assert_eq!(
            spec.resources,
            Resources {
                cpu_limit_millis: Some(500),
                cpu_request_millis: Some(250),
                memory_limit_bytes: Some(64 << 20),
                pids_limit: Some(1024),
            }
        );
        assert_eq!(
            spec.user,
            Some(User {
                uid: 1000,
                gid: 2000,
                supplemental_groups: vec![5],
            })
        );
        assert!(spec.security.read_only_root_filesystem);
        assert!(spec.security.no_new_privileges);
        assert!(!spec.security.privileged);
        assert_eq!(spec.security.capabilities_add, ["NET_ADMIN"]);
        assert_eq!(spec.security.capabilities_drop, ["ALL"]);
    }

    fn service(
        namespace: &str,
        name: &str,
        cluster_ip: Option<&str>,
        ports: &[(Option<&str>, i32, Option<Protocol>)],
    ) -> Service {
        let mut service = Service::default();
        service.metadata.name = Some(name.into());
        service.metadata.namespace = Some(namespace.into());
        service.spec.cluster_ip = cluster_ip.map(str::to_owned);
        service.spec.ports = ports
            .iter()
            .map(|(name, port, protocol)| berth_api::core_v1::ServicePort {
                name: name.map(str::to_owned),
                port: *port,
                protocol: *protocol,
                ..Default::default()
            })
            .collect();
        service
    }

    #[tokio::test]
    async fn services_of_the_namespace_become_env_that_the_container_overrides() {
        let source = FakeConfigSource::default()
            .with_image("shop/web:1", image())
            .with_service(service(
                "shop",
                "redis-primary",
                Some("10.74.0.11"),
                &[(None, 6379, None)],
            ))
            .with_service(service(
                "shop",
                "api",
                Some("10.74.0.12"),
                &[
                    (Some("http"), 80, None),
                    (Some("dns-udp"), 53, Some(Protocol::Udp)),
                ],
            ))
            .with_service(service(
                "shop",
                "headless",
                Some("None"),
                &[(None, 80, None)],
            ))
            .with_service(service("shop", "external", None, &[]))
            .with_service(service(
                "other",
                "elsewhere",
                Some("10.74.0.13"),
                &[(None, 80, None)],
            ));
        let mut c = container(&[], &["$(API_SERVICE_HOST)"]);
        c.env = vec![EnvVar {
            name: "API_SERVICE_PORT".into(),
            value: Some("8080".into()),
            ..Default::default()
        }];
        let spec = build(&pod(), c, &source).await.unwrap();
        let expected: Vec<(String, String)> = [
            ("PATH", "/bin"),
            ("API_SERVICE_HOST", "10.74.0.12"),
            ("API_SERVICE_PORT_HTTP", "80"),
            ("API_SERVICE_PORT_DNS_UDP", "53"),
            ("API_PORT", "tcp://10.74.0.12:80"),
            ("API_PORT_80_TCP", "tcp://10.74.0.12:80"),
            ("API_PORT_80_TCP_PROTO", "tcp"),
            ("API_PORT_80_TCP_PORT", "80"),
            ("API_PORT_80_TCP_ADDR", "10.74.0.12"),
            ("API_PORT_53_UDP", "udp://10.74.0.12:53"),
            ("API_PORT_53_UDP_PROTO", "udp"),
            ("API_PORT_53_UDP_PORT", "53"),
            ("API_PORT_53_UDP_ADDR", "10.74.0.12"),
            ("REDIS_PRIMARY_SERVICE_HOST", "10.74.0.11"),
            ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
            ("REDIS_PRIMARY_PORT", "tcp://10.74.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.74.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.74.0.11"),
            // The container's own env wins and comes last.
            ("API_SERVICE_PORT", "8080"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(spec.env, expected);
        assert_eq!(spec.argv, ["/entry", "10.74.0.12"]);
    }

    #[test]
    fn service_env_brackets_ipv6_cluster_ips() {
        let env = service_env(&[service("shop", "v6", Some("fd00::1"), &[(None, 80, None)])]);
        assert!(env.contains(&("V6_PORT".into(), "tcp://[fd00::1]:80".into())));
        assert!(env.contains(&("V6_PORT_80_TCP_ADDR".into(), "fd00::1".into())));
    }
}
