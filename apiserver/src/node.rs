//! What the API needs of the node (the agent and runtime), behind a trait so that the API is
//! tested without containers.

use async_trait::async_trait;
use berth_api::core_v1::Pod;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// `GET .../pods/{name}/log` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogOptions {
    pub container: Option<String>,
    #[serde(default)]
    pub follow: bool,
    #[serde(default)]
    pub previous: bool,
    pub tail_lines: Option<u64>,
    #[serde(default)]
    pub timestamps: bool,
}

/// The result of a command run with `exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// 404: no such container (or no previous instance).
    #[error("{0}")]
    NotFound(String),
    /// 400: e.g. the pod has several containers and none was named.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Internal(String),
}

/// Logs and exec of a pod's containers.
#[async_trait]
pub trait Node: Send + Sync + 'static {
    /// The log of `container` (already chosen: the only one or the named one) as CRI log
    /// lines turned into plain text (with RFC 3339 timestamps when asked).
    async fn logs(
        &self,
        pod: &Pod,
        container: &str,
        options: &LogOptions,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, NodeError>;

    async fn exec(
        &self,
        pod: &Pod,
        container: &str,
        command: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<ExecOutput, NodeError>;
}
