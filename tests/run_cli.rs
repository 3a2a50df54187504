//! `berth run` end to end: the built binary with `--root`/`--run-dir` in a tempdir and a busybox
//! image made with `berth image build`. Root only (skipped otherwise).

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::Env;

#[test]
fn foreground_streams_output_and_exits_with_the_container_code() {
    let Some(env) = Env::new() else { return };
    let out = env.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    env.assert_no_containers_left();

    // A process killed by SIGKILL: 128 + 9. (PID 1 itself cannot receive SIGKILL from inside
    // its namespace, as with docker, hence the child.)
    let killed = env.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "sh -c 'kill -9 $$'; exit $?",
    ]);
    assert_eq!(killed.status.code(), Some(137));
}

#[test]
fn start_errors_use_docker_exit_codes() {
    let Some(env) = Env::new() else { return };
    let out = env.berth(&["run", "--rm", "busybox", "/bin/nope"]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        r#"berth: exec "/bin/nope": No such file or directory (os error 2)"#
    );
    let out = env.berth(&["run", "--rm", "busybox", "nope"]);
    assert_eq!(out.status.code(), Some(127));
    let out = env.berth(&["run", "--rm", "no-such-image", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let out = env.berth(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(
        out.status.code(),
        Some(126),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.assert_no_containers_left();
}

#[test]
fn flags_set_env_user_workdir_hostname_and_security() {
    let Some(env) = Env::new() else { return };
    let script = "echo $A $B; id -u; id -g; pwd; hostname; touch /x 2>/dev/null || echo ro; grep CapEff /proc/self/status";
    let out = env.berth(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-e",
        "B=2",
        "--user",
        "www",
        "--workdir",
        "/tmp",
        "--hostname",
        "h1",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "KILL",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1 2\n33\n33\n/tmp\nh1\nro\nCapEff:\t0000000000000000\n"
    );

    let out = env.berth(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/echo",
        "busybox",
        "a",
        "b",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a b\n");
}

#[test]
fn memory_limit_ends_in_oom_kill_137() {
    let Some(env) = Env::new() else { return };
    let out = env.berth(&[
        "run",
        "--name",
        &env.name("oom"),
        "--memory",
        "16Mi",
        "busybox",
        "tail",
        "/dev/zero",
    ]);
    assert_eq!(out.status.code(), Some(137));
    let inspect = env.berth(&["container", "inspect", &env.name("oom")]);
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(json["state"]["reason"], "OOMKilled");
    assert_eq!(json["state"]["exit_code"], 137);
    assert_eq!(json["config"]["resources"]["memory_limit"], 16 << 20);
    assert!(
        env.berth(&["container", "rm", &env.name("oom")])
            .status
            .success()
    );
    env.assert_no_containers_left();
}

#[test]
fn sigterm_and_sigint_to_berth_run_reach_the_container() {
    let Some(env) = Env::new() else { return };
    for (signal, code) in [(Signal::SIGTERM, 5), (Signal::SIGINT, 6)] {
        let script = format!(
            "trap 'echo got; exit {code}' TERM INT; echo ready; while :; do sleep 0.1; done"
        );
        let mut child = env
            .command(&["run", "--rm", "busybox", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "got");
        let status = support::wait_timeout(&mut child, Duration::from_secs(10));
        assert_eq!(status.code(), Some(code));
    }
    env.assert_no_containers_left();
}
