//! Running pods: the pod worker ([`worker`]) and how a pod's containers become runtime specs
//! ([`spec`]).

pub mod spec;
pub mod volumes;
pub mod worker;

pub use spec::{ConfigSource, ImageConfig};
pub use volumes::{PodVolumes, VolumeError, Volumes};
pub use worker::{Clock, EventType, PodEvent, PodStage, PodWorker, PodWorkerError, WorkerContext};
