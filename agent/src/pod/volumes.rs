//! A pod's volumes on the host: each volume of the pod becomes a directory (or file) under
//! `<pods dir>/<pod uid>/volumes/<plugin>/<name>`, and each `volumeMount` a bind mount of it
//! (or of its `subPath`) into the container.
//!
//! STUB (interface only): every pod without volumes works; pods with volumes are refused until
//! the implementation lands.

use std::path::{Path, PathBuf};

use berth_api::core_v1::{Container, Pod};

use super::spec::{ConfigSource, SourceError};
use crate::runtime::Mount;

/// Errors preparing or mounting volumes; shown in the pod's events.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume:?}: {message}")]
    Invalid { volume: String, message: String },
    #[error("volume {volume:?}: reading its source")]
    Source {
        volume: String,
        #[source]
        source: SourceError,
    },
    #[error("volume {volume:?}: {operation} {path}")]
    Io {
        volume: String,
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The volumes of every pod on this node, under one directory.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

/// One pod's prepared volumes: volume name → host path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    pub paths: std::collections::BTreeMap<String, PathBuf>,
}

impl Volumes {
    /// Volumes live under `dir` (the daemon passes `<root>/pods`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates (or, for a re-adopted pod, finds) every volume of `pod` on the host.
    pub async fn prepare(
        &self,
        pod: &Pod,
        _source: &dyn ConfigSource,
    ) -> Result<PodVolumes, VolumeError> {
        match pod.spec.volumes.first() {
            None => Ok(PodVolumes::default()),
            Some(volume) => Err(VolumeError::Invalid {
                volume: volume.name.clone(),
                message: "volumes are not supported yet".into(),
            }),
        }
    }

    /// Rewrites the pod's configMap and secret volumes from their current objects (atomically,
    /// as the kubelet does); called when one of them changes.
    pub async fn refresh(&self, _pod: &Pod, _source: &dyn ConfigSource) -> Result<(), VolumeError> {
        Ok(())
    }

    /// Removes every volume of the pod with this uid (emptyDir contents go with it; hostPath
    /// sources are never touched).
    pub async fn remove(&self, _pod_uid: &str) -> Result<(), VolumeError> {
        Ok(())
    }
}

/// The bind mounts of `container`'s `volumeMounts` (readOnly, subPath) over `volumes`.
pub fn mounts(container: &Container, volumes: &PodVolumes) -> Result<Vec<Mount>, VolumeError> {
    container
        .volume_mounts
        .iter()
        .map(|m| {
            let source = volumes
                .paths
                .get(&m.name)
                .ok_or_else(|| VolumeError::Invalid {
                    volume: m.name.clone(),
                    message: "no such volume in the pod".into(),
                })?;
            Ok(Mount {
                source: source.clone(),
                destination: m.mount_path.clone(),
                read_only: m.read_only.unwrap_or(false),
            })
        })
        .collect()
}
