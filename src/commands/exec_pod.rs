//! `berth exec POD|deployment/NAME [-c C] [--timeout S] -- CMD...`: runs a command in a pod's
//! container through the daemon, writes its output and exits with its exit code.

use std::{io::Write, process::ExitCode};

use anyhow::Context as _;
use berth_api::object::find_kind;
use berth_apiserver::ExecOutput;
use http::Method;
use serde::Serialize;

use super::{
    objects::{block_on, connect},
    pods::resolve_pod,
    resource::object_path,
};
use crate::{
    cli::{GlobalArgs, PodExecArgs},
    client::{Body, with_query},
};

/// The body of `POST .../pods/{name}/exec`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecRequest {
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// The process exit code of a command's: 0..=255 as the shell sees it.
pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code.rem_euclid(256)).unwrap_or(1))
}

pub fn run(global: &GlobalArgs, args: PodExecArgs) -> anyhow::Result<ExitCode> {
    let client = connect(global)?;
    block_on(async move {
        let namespace = &args.namespace.namespace;
        let pod = resolve_pod(&client, "exec", namespace, &args.pod).await?;
        let kind = find_kind("Pod").ok_or_else(|| anyhow::anyhow!("Pod is a known kind"))?;
        let path = with_query(
            &format!("{}/exec", object_path(kind, namespace, &pod)),
            &[("container", args.container.as_deref().unwrap_or_default())],
        );
        let request = ExecRequest {
            command: args.command,
            timeout_seconds: args.timeout,
        };
        let output: ExecOutput = client
            .json(Method::POST, &path, Some(Body::json("exec", &request)?))
            .await?;
        std::io::stdout()
            .write_all(output.stdout.as_bytes())
            .and_then(|()| std::io::stdout().flush())
            .context("cannot write to standard output")?;
        std::io::stderr()
            .write_all(output.stderr.as_bytes())
            .context("cannot write to standard error")?;
        Ok(exit_code(output.exit_code))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_wrap_like_a_shell() {
        assert_eq!(exit_code(0), ExitCode::SUCCESS);
        assert_eq!(exit_code(4), ExitCode::from(4));
        assert_eq!(exit_code(137), ExitCode::from(137));
        assert_eq!(exit_code(256), ExitCode::from(0));
        assert_eq!(exit_code(-1), ExitCode::from(255));
    }

    #[test]
    fn request_body_is_camel_case() {
        let body = serde_json::to_value(ExecRequest {
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
            timeout_seconds: Some(5),
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"command": ["sh", "-c", "exit 3"], "timeoutSeconds": 5})
        );
    }
}
