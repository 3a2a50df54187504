//! [`LinuxContainerStats`]: the [`ContainerStatsSource`] over the built-in runtime.
//!
//! At each scrape it lists the containers on disk, skips those that are not running, reads the
//! labels the agent put on the others (`berth.dev/pod-namespace`, `berth.dev/pod-name`,
//! `berth.dev/container-name`, see `berth_agent::runtime::labels`) and their cgroup counters
//! through `LinuxRuntime::stats` (v1 or v2). Containers not made by the agent (`berth run`) get
//! an empty pod and namespace and their own name as `container`, as cAdvisor reports containers
//! outside any pod.
//!
//! PSI is read here from the container's cgroup v2 directory (`cpu.pressure`, `memory.pressure`,
//! `io.pressure`), because the runtime's `Stats` only carries `avg10` of two of them and
//! cAdvisor exposes the cumulative totals. On a v1 or hybrid host there is no such directory and
//! nothing is read.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use berth_runtime::cgroup::{self, Layout};
use berth_runtime::container::{ContainerId, LinuxRuntime, RuntimeError, Status};

use crate::container::{ContainerSample, ContainerStatsSource, Pressure, PressureTotals};

/// Label keys the agent sets on the containers it creates (the same strings as
/// `berth_agent::runtime::labels`; this crate does not depend on the agent).
pub mod labels {
    pub const POD_NAMESPACE: &str = "berth.dev/pod-namespace";
    pub const POD_NAME: &str = "berth.dev/pod-name";
    pub const CONTAINER_NAME: &str = "berth.dev/container-name";
}

/// Errors reading one container's pressure files; logged, never fatal to a scrape.
#[derive(Debug, thiserror::Error)]
pub enum PressureError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: expected lines `some|full avg10=.. avg60=.. avg300=.. total=<microseconds>`, found {content:?}"
    )]
    Parse { path: PathBuf, content: String },
}

/// Reads usage of the runtime's running containers at scrape time.
#[derive(Debug)]
pub struct LinuxContainerStats {
    runtime: Arc<LinuxRuntime>,
    /// The cgroup v2 root when the host is v2 (where PSI files live); `None` on v1, hybrid or
    /// when detection failed. Detected at the first scrape.
    unified_root: OnceLock<Option<PathBuf>>,
}

impl LinuxContainerStats {
    pub fn new(runtime: Arc<LinuxRuntime>) -> Self {
        Self {
            runtime,
            unified_root: OnceLock::new(),
        }
    }

    fn unified_root(&self) -> Option<&Path> {
        self.unified_root
            .get_or_init(|| {
                let config = self.runtime.config();
                let mountinfo = match std::fs::read_to_string(&config.mountinfo_path) {
                    Ok(text) => text,
                    Err(err) => {
                        tracing::warn!(path = %config.mountinfo_path.display(), ?err,
                            "metrics: cannot read mountinfo; no pressure metrics");
                        return None;
                    }
                };
                match cgroup::detect_layout(&config.cgroup_root, &mountinfo) {
                    Ok(Layout::V2 { root }) => Some(root),
                    Ok(Layout::V1 { .. }) => None,
                    Err(err) => {
                        tracing::warn!(?err, "metrics: no cgroup layout; no pressure metrics");
                        None
                    }
                }
            })
            .as_deref()
    }

    /// One container's sample, `None` when it is not running (or went away meanwhile).
    fn sample(&self, id: &ContainerId) -> Result<Option<ContainerSample>, RuntimeError> {
        let state = self.runtime.state(id)?;
        if state.status != Status::Running {
            return Ok(None);
        }
        let config = self.runtime.load_config(id)?;
        let stats = match self.runtime.stats(id) {
            Ok(stats) => stats,
            // Stopped between `state` and `stats`.
            Err(RuntimeError::WrongStatus { .. }) => return Ok(None),
            Err(err) => return Err(err),
        };
        let cgroup_path = self.runtime.cgroup_path(id);
        let pressure = match self.unified_root() {
            Some(root) => match cgroup_path.relative() {
                Ok(relative) => read_pressure(&root.join(relative)),
                Err(err) => {
                    tracing::debug!(container = %id, ?err, "metrics: no cgroup directory");
                    Pressure::default()
                }
            },
            None => Pressure::default(),
        };
        let label = |key: &str| config.labels.get(key).cloned();
        let (namespace, pod, container) = match label(labels::POD_NAME) {
            Some(pod) => (
                label(labels::POD_NAMESPACE).unwrap_or_default(),
                pod,
                label(labels::CONTAINER_NAME).unwrap_or_else(|| config.name.clone()),
            ),
            None => (String::new(), String::new(), config.name.clone()),
        };
        Ok(Some(ContainerSample {
            namespace,
            pod,
            container,
            image: config.image.map(|image| image.name).unwrap_or_default(),
            id: cgroup_path.to_string(),
            cpu_usage_seconds: stats.cpu_usage_ns as f64 / 1e9,
            memory_usage_bytes: stats.memory_usage_bytes,
            memory_working_set_bytes: stats.memory_working_set_bytes,
            memory_limit_bytes: stats.memory_limit_bytes,
            oom_events: stats.oom_kill_count,
            pids: stats.pids_current,
            pressure,
        }))
    }
}

impl ContainerStatsSource for LinuxContainerStats {
    fn containers(&self) -> Vec<ContainerSample> {
        let ids = match self.runtime.ids() {
            Ok(ids) => ids,
            Err(err) => {
                tracing::warn!(?err, "metrics: cannot list containers");
                return Vec::new();
            }
        };
        ids.iter()
            .filter_map(|id| match self.sample(id) {
                Ok(sample) => sample,
                Err(RuntimeError::NotFound(_)) => None,
                Err(err) => {
                    tracing::debug!(container = %id, ?err, "metrics: container left out");
                    None
                }
            })
            .collect()
    }
}

/// The PSI totals under a cgroup v2 directory; a resource whose file is missing (no PSI, or the
/// container went away) or unreadable is `None`.
pub fn read_pressure(cgroup_dir: &Path) -> Pressure {
    let read = |file: &str| {
        let path = cgroup_dir.join(file);
        match read_pressure_file(&path) {
            Ok(totals) => totals,
            Err(err) => {
                tracing::debug!(?err, "metrics: pressure left out");
                None
            }
        }
    };
    Pressure {
        cpu: read("cpu.pressure"),
        memory: read("memory.pressure"),
        io: read("io.pressure"),
    }
}

/// One PSI file's totals; `Ok(None)` when the file does not exist.
fn read_pressure_file(path: &Path) -> Result<Option<PressureTotals>, PressureError> {
    let content = match std::fs::read_to_string(path) {
        Ok(content) => content,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PressureError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    parse_pressure(&content)
        .map(Some)
        .ok_or_else(|| PressureError::Parse {
            path: path.to_owned(),
            content,
        })
}

/// Parses the `some` and `full` lines of a PSI file; `total=` is in microseconds. `None` when
/// the `some` line is missing or malformed.
pub fn parse_pressure(content: &str) -> Option<PressureTotals> {
    let mut waiting = None;
    let mut stalled = None;
    for line in content.lines() {
        let mut fields = line.split_whitespace();
        let kind = fields.next()?;
        let total = fields
            .find_map(|field| field.strip_prefix("total="))
            .and_then(|micros| micros.parse::<u64>().ok())
            .map(|micros| micros as f64 / 1e6);
        match kind {
            "some" => waiting = Some(total?),
            "full" => stalled = Some(total?),
            _ => {}
        }
    }
    Some(PressureTotals {
        waiting_seconds: waiting?,
        stalled_seconds: stalled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_totals_are_parsed_in_seconds() {
        let cpu = "some avg10=1.50 avg60=0.20 avg300=0.00 total=2500000\n\
                   full avg10=0.00 avg60=0.00 avg300=0.00 total=1250\n";
        assert_eq!(
            parse_pressure(cpu),
            Some(PressureTotals {
                waiting_seconds: 2.5,
                stalled_seconds: Some(0.00125),
            })
        );
        // cpu.pressure before Linux 5.13 has no `full` line.
        assert_eq!(
            parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n"),
            Some(PressureTotals {
                waiting_seconds: 0.000007,
                stalled_seconds: None,
            })
        );
        assert_eq!(parse_pressure(""), None);
        assert_eq!(parse_pressure("some avg10=0.00 total=many\n"), None);
    }

    #[test]
    fn pressure_files_are_read_from_the_cgroup_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("memory.pressure"),
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=3000000\n\
             full avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("io.pressure"), "garbage\n").unwrap();
        let pressure = read_pressure(dir.path());
        assert_eq!(pressure.cpu, None, "no cpu.pressure file");
        assert_eq!(
            pressure.memory,
            Some(PressureTotals {
                waiting_seconds: 3.0,
                stalled_seconds: Some(1.0),
            })
        );
        assert_eq!(pressure.io, None, "malformed io.pressure is left out");
    }
}
