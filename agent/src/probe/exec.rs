//! `exec` probes: run a command in the container through the runtime; exit status 0 is success.

use std::time::Duration;

use super::{Outcome, ProbeError, Result, output_text, seconds};
use crate::runtime::{ContainerId, ContainerRuntime, RuntimeError};

/// Slack given to the runtime beyond the probe's timeout before the prober stops waiting itself.
const RUNTIME_SLACK: Duration = Duration::from_secs(1);

/// Runs `command` in container `id`. A command that outlives `timeout` is a failure (as since
/// Kubernetes 1.20); a runtime that cannot run it at all is a [`ProbeError`].
pub async fn probe(
    runtime: &dyn ContainerRuntime,
    id: &ContainerId,
    command: &[String],
    timeout: Duration,
) -> Result<Outcome> {
    if command.is_empty() {
        return Err(ProbeError::EmptyCommand {
            container: id.to_string(),
        });
    }
    let timed_out = || {
        Outcome::failure(format!(
            "command {:?} timed out after {}",
            command.join(" "),
            seconds(timeout)
        ))
    };
    match tokio::time::timeout(timeout + RUNTIME_SLACK, runtime.exec(id, command, timeout)).await {
        Err(_) | Ok(Err(RuntimeError::ExecTimedOut { .. })) => Ok(timed_out()),
        Ok(Err(source)) => Err(ProbeError::Exec {
            id: id.clone(),
            argv: command.to_vec(),
            source: Box::new(source),
        }),
        Ok(Ok(result)) => {
            let mut output = result.stdout;
            output.extend_from_slice(&result.stderr);
            let output = output_text(&output);
            Ok(if result.exit_code == 0 {
                Outcome::success(output)
            } else {
                Outcome::failure(output)
            })
        }
    }
}

/// Expands `$(VAR)` in an exec probe's command from the container's literal env values, as the
/// kubelet's `ExpandContainerCommandOnlyStatic`: `$$` is a `$`, unknown references stay as they
/// are, and a later definition of a name wins.
pub fn expand_command(command: &[String], env: &[(String, String)]) -> Vec<String> {
    command.iter().map(|arg| expand(arg, env)).collect()
}

fn expand(input: &str, env: &[(String, String)]) -> String {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after.strip_prefix('(').and_then(|r| r.split_once(')')) {
            match lookup(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn expands_static_env_references_like_the_kubelet() {
        let env = vec![
            ("PORT".to_owned(), "8080".to_owned()),
            ("HOST".to_owned(), "a".to_owned()),
            ("HOST".to_owned(), "b".to_owned()),
        ];
        let cases = [
            ("curl localhost:$(PORT)/", "curl localhost:8080/"),
            ("$(HOST)", "b"),
            ("$$(PORT)", "$(PORT)"),
            ("$(MISSING) $", "$(MISSING) $"),
            ("$(PORT", "$(PORT"),
            ("a$b", "a$b"),
            ("$(PORT)$(PORT)", "80808080"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, &env), expected, "{input}");
        }
        assert_eq!(
            expand_command(&["echo".into(), "$(PORT)".into()], &env),
            vec!["echo", "8080"]
        );
    }

    use super::*;
    use crate::{
        probe::Health,
        runtime::ContainerSpec,
        testing::{ExecScript, FakeRuntime, Script},
    };

    #[tokio::test(start_paused = true)]
    async fn exit_status_decides_and_timeouts_fail() {
        let rt = FakeRuntime::new();
        rt.script(
            "app",
            Script::new()
                .exec(ExecScript::ok())
                .exec(ExecScript::fail(3, "not yet"))
                .exec(ExecScript::Hang)
                .exec(ExecScript::Fail {
                    message: "no such binary".into(),
                }),
        );
        let spec = ContainerSpec {
            name: "app".into(),
            image: "img".into(),
            ..Default::default()
        };
        let id = rt.create(spec).await.unwrap();
        rt.start(&id).await.unwrap();
        let argv = vec!["cat".to_owned(), "/tmp/healthy".to_owned()];
        let second = Duration::from_secs(1);

        assert_eq!(
            probe(&rt, &id, &argv, second).await.unwrap().health,
            Health::Success
        );
        assert_eq!(
            probe(&rt, &id, &argv, second).await.unwrap(),
            Outcome::failure("not yet")
        );
        let start = tokio::time::Instant::now();
        let timed_out = probe(&rt, &id, &argv, second).await.unwrap();
        assert_eq!(
            timed_out,
            Outcome::failure("command \"cat /tmp/healthy\" timed out after 1s")
        );
        assert_eq!(start.elapsed(), second);
        assert!(matches!(
            probe(&rt, &id, &argv, second).await,
            Err(ProbeError::Exec { .. })
        ));
        assert!(matches!(
            probe(&rt, &id, &[], second).await,
            Err(ProbeError::EmptyCommand { .. })
        ));
    }
}
