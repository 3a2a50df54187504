//! The API's view of the node ([`berth_apiserver::Node`]): pod logs and exec, found through the
//! labels the agent puts on every container (pod uid and container name).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use berth_agent::{
    linux::LinuxContainerRuntime,
    runtime::{ContainerId, ContainerInfo, ContainerRuntime, ContainerState, LabelFilter, labels},
};
use berth_api::core_v1::Pod;
use berth_apiserver::{ExecOutput, LogOptions, Node, NodeError};
use berth_runtime::{
    container::{ContainerId as RuntimeId, Status},
    logs::{ReadOptions, read_logs},
};
use bytes::Bytes;
use futures_util::stream::BoxStream;

/// Logs and exec over the Linux runtime.
pub struct LinuxNode {
    runtime: LinuxContainerRuntime,
}

impl LinuxNode {
    pub fn new(runtime: LinuxContainerRuntime) -> Self {
        Self { runtime }
    }

    /// The pod's instances of `container`, newest first.
    async fn instances(&self, pod: &Pod, container: &str) -> Result<Vec<ContainerInfo>, NodeError> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let filter =
            LabelFilter::new([(labels::POD_UID, uid), (labels::CONTAINER_NAME, container)]);
        let mut found = self
            .runtime
            .list(&filter)
            .await
            .map_err(|err| NodeError::Internal(err.to_string()))?;
        found.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        Ok(found)
    }
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name()
    )
}

#[async_trait]
impl Node for LinuxNode {
    async fn logs(
        &self,
        pod: &Pod,
        container: &str,
        options: &LogOptions,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, NodeError> {
        let instances = self.instances(pod, container).await?;
        let chosen = if options.previous {
            instances.get(1).ok_or_else(|| {
                NodeError::BadRequest(format!(
                    "previous terminated container {container:?} in pod {} not found",
                    pod_name(pod)
                ))
            })?
        } else {
            instances.first().ok_or_else(|| {
                NodeError::BadRequest(format!(
                    "container {container:?} in pod {} is waiting to start",
                    pod_name(pod)
                ))
            })?
        };
        let id: RuntimeId = chosen
            .id
            .0
            .parse()
            .map_err(|_| NodeError::Internal(format!("bad container id {}", chosen.id)))?;
        let inner = berth_runtime::container::LinuxRuntime::new(
            self.runtime.runtime().config().clone(),
            Arc::new(berth_runtime::syscall::LinuxSyscall),
        );
        let path = inner.container_dir(&id).join("container.log");
        let follow = options.follow && matches!(chosen.state, ContainerState::Running);
        let read = ReadOptions {
            tail: options
                .tail_lines
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            timestamps: options.timestamps,
            follow,
            include_rotated: true,
        };
        let timestamps = options.timestamps;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(64);
        let mut reader = match read_logs(&path, read) {
            Ok(reader) => reader,
            Err(err) => return Err(NodeError::Internal(format!("logs of {}: {err}", chosen.id))),
        };
        if follow {
            let closed = tx.clone();
            reader = reader.stop_when(move || {
                closed.is_closed()
                    || inner
                        .state(&id)
                        .map(|s| s.status == Status::Stopped)
                        .unwrap_or(true)
            });
        }
        tokio::task::spawn_blocking(move || {
            for record in reader {
                let mut line = Vec::new();
                let sent = match record {
                    Ok(record) => match record.write_display(&mut line, timestamps) {
                        Ok(()) => tx.blocking_send(Ok(Bytes::from(line))),
                        Err(err) => tx.blocking_send(Err(err)),
                    },
                    Err(err) => tx.blocking_send(Err(std::io::Error::other(err.to_string()))),
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn exec(
        &self,
        pod: &Pod,
        container: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, NodeError> {
        let running = self
            .instances(pod, container)
            .await?
            .into_iter()
            .find(|c| matches!(c.state, ContainerState::Running))
            .ok_or_else(|| {
                NodeError::BadRequest(format!(
                    "container {container:?} in pod {} is not running",
                    pod_name(pod)
                ))
            })?;
        let id: ContainerId = running.id;
        let result = self
            .runtime
            .exec(&id, &command, timeout)
            .await
            .map_err(|err| NodeError::Internal(format!("exec in {id}: {err}")))?;
        Ok(ExecOutput {
            exit_code: result.exit_code,
            stdout: String::from_utf8_lossy(&result.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
        })
    }
}

/// Keeps the trait object type in one place.
pub fn node(runtime: LinuxContainerRuntime) -> Arc<dyn Node> {
    Arc::new(LinuxNode::new(runtime))
}
