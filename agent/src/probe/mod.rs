//! Container probes: the four handlers (`exec`, `httpGet`, `tcpSocket`, `grpc`) and the workers
//! that run them on a schedule (see [`worker`]).
//!
//! One probe run gives an [`Outcome`] (success or failure, with the output the kubelet would show)
//! or a [`ProbeError`] when the probe could not be run at all (an unknown port name, a runtime
//! error): like the kubelet, workers throw such runs away instead of counting them as failures.
//!
//! **Metrics.** A [`Prober`] given an [`Observer`] ([`Prober::observed_by`]) reports every probe
//! run (handler type, probe, result, duration) and, since the prober is what every pod worker
//! already shares, the pod workers report their containers' start latency through it too. The
//! observer is a trait so that the agent does not depend on a metrics library: the daemon passes
//! berth-metrics' `DaemonMetrics`.

use std::{net::IpAddr, sync::Arc, time::Duration};

use berth_api::{
    IntOrString,
    core_v1::{ContainerPort, Probe},
};

use crate::runtime::{ContainerId, ContainerRuntime, RuntimeError};

pub mod exec;
pub mod grpc;
pub mod http;
pub mod tcp;
pub mod worker;

pub use worker::{ContainerProbes, ContainerProbesSpec, ProbeResult, ProbeTiming};

/// The kubelet reads at most this much of a probe's output or response body (10 KiB).
pub const MAX_OUTPUT: usize = 10 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe of container {container:?} has no handler (exec, httpGet, tcpSocket or grpc)")]
    NoHandler { container: String },
    #[error("container {container:?} has no port named {name:?}")]
    UnknownPortName { container: String, name: String },
    #[error("port {port} of container {container:?} is out of range 1-65535")]
    PortOutOfRange { container: String, port: i64 },
    #[error("probe of container {container:?} has no host and the pod has no IP")]
    NoHost { container: String },
    #[error("invalid httpGet path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("invalid httpGet header {name:?}: {reason}")]
    InvalidHeader { name: String, reason: String },
    #[error("exec probe of container {container:?} has an empty command")]
    EmptyCommand { container: String },
    #[error("exec probe {argv:?} could not run in container {id}")]
    Exec {
        id: ContainerId,
        argv: Vec<String>,
        #[source]
        source: Box<RuntimeError>,
    },
}

pub type Result<T, E = ProbeError> = std::result::Result<T, E>;

/// Which of a container's probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// The result a container has before its probe has decided anything: live, not ready, not
    /// known to have started (the kubelet's worker `initialValue`).
    pub fn initial(self) -> Health {
        match self {
            Self::Liveness => Health::Success,
            Self::Readiness => Health::Failure,
            Self::Startup => Health::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Liveness => "liveness",
            Self::Readiness => "readiness",
            Self::Startup => "startup",
        }
    }
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A probe's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Success,
    Failure,
    /// Not decided yet (the startup probe's initial state).
    Unknown,
}

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub health: Health,
    /// What the kubelet would put in its event: command output, response body, error text.
    pub output: String,
}

impl Outcome {
    pub fn success(output: impl Into<String>) -> Self {
        Self {
            health: Health::Success,
            output: output.into(),
        }
    }

    pub fn failure(output: impl Into<String>) -> Self {
        Self {
            health: Health::Failure,
            output: output.into(),
        }
    }
}

/// Where a probe runs: the container instance, its declared ports (for named ports), its static
/// environment (for `$(VAR)` in exec commands) and the pod's IP (the default host).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeTarget {
    pub container: String,
    pub container_id: ContainerId,
    pub ports: Vec<ContainerPort>,
    pub pod_ip: Option<IpAddr>,
    /// The container's `env` entries with a literal `value`, in order.
    pub env: Vec<(String, String)>,
}

impl ProbeTarget {
    /// A port number, or the name of one of the container's ports (the kubelet's
    /// `extractPort`: a name first, then a number written as a string).
    pub fn resolve_port(&self, port: &IntOrString) -> Result<u16> {
        let number = match port {
            IntOrString::Int(n) => i64::from(*n),
            IntOrString::String(name) => {
                match self
                    .ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                {
                    Some(found) => i64::from(found.container_port),
                    None => name
                        .parse::<i64>()
                        .map_err(|_| ProbeError::UnknownPortName {
                            container: self.container.clone(),
                            name: name.clone(),
                        })?,
                }
            }
        };
        u16::try_from(number)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(ProbeError::PortOutOfRange {
                container: self.container.clone(),
                port: number,
            })
    }

    /// The probe's own host, or the pod's IP.
    pub fn host(&self, host: Option<&str>) -> Result<String> {
        match host.filter(|h| !h.is_empty()) {
            Some(host) => Ok(host.to_owned()),
            None => self
                .pod_ip
                .map(|ip| ip.to_string())
                .ok_or_else(|| ProbeError::NoHost {
                    container: self.container.clone(),
                }),
        }
    }
}

/// What the agent reports, for metrics. Label values are small fixed sets.
pub trait Observer: Send + Sync + 'static {
    /// One probe run: its handler type ([`handler_type`]), which probe, its result, and how long
    /// it took.
    fn probed(&self, handler: &'static str, probe: ProbeKind, result: RunResult, took: Duration);

    /// A container was created and started; `took` runs from the create call to the successful
    /// start.
    fn container_started(&self, took: Duration);
}

/// The result label of one probe run, as the kubelet's `prober_probe_total` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunResult {
    Successful,
    Failed,
    /// Not decided, or the probe could not be run at all (an error thrown away).
    Unknown,
}

impl RunResult {
    /// The result of a run as the worker got it.
    pub fn of(outcome: &Result<Outcome>) -> Self {
        match outcome {
            Ok(Outcome {
                health: Health::Success,
                ..
            }) => Self::Successful,
            Ok(Outcome {
                health: Health::Failure,
                ..
            }) => Self::Failed,
            Ok(Outcome {
                health: Health::Unknown,
                ..
            })
            | Err(_) => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Successful => "successful",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

/// The handler type of `probe`: `exec`, `http`, `tcp`, `grpc`, or `none` if it has none.
pub fn handler_type(probe: &Probe) -> &'static str {
    if probe.exec.is_some() {
        "exec"
    } else if probe.http_get.is_some() {
        "http"
    } else if probe.tcp_socket.is_some() {
        "tcp"
    } else if probe.grpc.is_some() {
        "grpc"
    } else {
        "none"
    }
}

/// Runs probes: dispatches a [`Probe`] to its handler with the probe's timeout.
#[derive(Clone)]
pub struct Prober {
    runtime: Arc<dyn ContainerRuntime>,
    user_agent: String,
    observer: Option<Arc<dyn Observer>>,
}

impl Prober {
    /// A prober whose exec probes go through `runtime` and whose HTTP and gRPC probes say
    /// `User-Agent: berth-probe/<version>` (the kubelet says `kube-probe/<version>`).
    pub fn new(runtime: Arc<dyn ContainerRuntime>) -> Self {
        Self {
            runtime,
            user_agent: format!("berth-probe/{}", env!("CARGO_PKG_VERSION")),
            observer: None,
        }
    }

    /// The same prober, reporting probe runs (and the pod workers' container starts) to
    /// `observer`.
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// What probe runs and container starts are reported to, if anything.
    pub fn observer(&self) -> Option<&dyn Observer> {
        self.observer.as_deref()
    }

    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// Runs `probe` once against `target`.
    pub async fn probe(&self, probe: &Probe, target: &ProbeTarget) -> Result<Outcome> {
        let timeout = ProbeTiming::from_probe(probe).timeout;
        if let Some(action) = &probe.exec {
            return exec::probe(
                self.runtime.as_ref(),
                &target.container_id,
                &action.command,
                timeout,
            )
            .await;
        }
        if let Some(action) = &probe.http_get {
            return http::probe(action, target, timeout, &self.user_agent).await;
        }
        if let Some(action) = &probe.tcp_socket {
            let host = target.host(action.host.as_deref())?;
            let port = target.resolve_port(&action.port)?;
            return Ok(tcp::probe(&host, port, timeout).await);
        }
        if let Some(action) = &probe.grpc {
            let host = target.host(None)?;
            let port = target.resolve_port(&IntOrString::Int(action.port))?;
            let service = action.service.as_deref().unwrap_or("");
            return Ok(grpc::probe(&host, port, service, timeout, &self.user_agent).await);
        }
        Err(ProbeError::NoHandler {
            container: target.container.clone(),
        })
    }
}

/// Joins `host` and `port` as an authority (`[::1]:80` for IPv6).
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Bytes as text for a probe's output, cut to [`MAX_OUTPUT`].
fn output_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT)]).into_owned()
}

/// Formats a duration for probe messages.
fn seconds(d: Duration) -> String {
    crate::restart::GoDuration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ProbeTarget {
        ProbeTarget {
            container: "web".into(),
            container_id: ContainerId("web-1".into()),
            ports: vec![
                ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    ..Default::default()
                },
                ContainerPort {
                    name: None,
                    container_port: 9090,
                    ..Default::default()
                },
            ],
            pod_ip: Some("10.88.0.5".parse().unwrap()),
            env: Vec::new(),
        }
    }

    #[test]
    fn resolves_ports_by_number_and_name() {
        let t = target();
        assert_eq!(t.resolve_port(&IntOrString::Int(80)).unwrap(), 80);
        assert_eq!(t.resolve_port(&"http".into()).unwrap(), 8080);
        assert_eq!(t.resolve_port(&"8081".into()).unwrap(), 8081);
        assert!(matches!(t.resolve_port(&"metrics".into()),
                Err(ProbeError::UnknownPortName { name, .. }) if name == "metrics"));
        assert!(matches!(
            t.resolve_port(&IntOrString::Int(0)),
            Err(ProbeError::PortOutOfRange { port: 0, .. })
        ));
        assert!(matches!(
            t.resolve_port(&IntOrString::Int(70000)),
            Err(ProbeError::PortOutOfRange { port: 70000, .. })
        ));
    }

    #[test]
    fn host_defaults_to_the_pod_ip() {
        let mut t = target();
        assert_eq!(t.host(None).unwrap(), "10.88.0.5");
        assert_eq!(t.host(Some("")).unwrap(), "10.88.0.5");
        assert_eq!(t.host(Some("db.local")).unwrap(), "db.local");
        t.pod_ip = None;
        assert!(matches!(t.host(None), Err(ProbeError::NoHost { .. })));
        assert_eq!(authority("::1", 80), "[::1]:80");
        assert_eq!(authority("10.0.0.1", 80), "10.0.0.1:80");
    }
}
