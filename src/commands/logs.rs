//! `berth logs POD|deployment/NAME [-c C] [-f] [--previous] [--tail N] [--timestamps]`: the
//! daemon's log endpoint, copied to stdout as it arrives.

use std::process::ExitCode;

use berth_api::object::find_kind;

use super::{
    objects::{block_on, connect, print_bytes},
    pods::resolve_pod,
    resource::object_path,
};
use crate::{
    cli::{GlobalArgs, LogsArgs},
    client::with_query,
};

/// The log path with its query.
pub fn log_path(namespace: &str, pod: &str, args: &LogsArgs) -> anyhow::Result<String> {
    let kind = find_kind("Pod").ok_or_else(|| anyhow::anyhow!("Pod is a known kind"))?;
    let tail = args.tail.map(|t| t.to_string()).unwrap_or_default();
    let flag = |on: bool| if on { "true" } else { "" };
    Ok(with_query(
        &format!("{}/log", object_path(kind, namespace, pod)),
        &[
            ("container", args.container.as_deref().unwrap_or_default()),
            ("follow", flag(args.follow)),
            ("previous", flag(args.previous)),
            ("tailLines", &tail),
            ("timestamps", flag(args.timestamps)),
        ],
    ))
}

pub fn run(global: &GlobalArgs, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = connect(global)?;
    block_on(async move {
        let namespace = &args.namespace.namespace;
        let pod = resolve_pod(&client, "logs", namespace, &args.pod).await?;
        let mut stream = client.stream(&log_path(namespace, &pod, &args)?).await?;
        while let Some(chunk) = stream.next_chunk().await? {
            print_bytes(&chunk)?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
