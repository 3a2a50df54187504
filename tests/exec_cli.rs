//! `berth container exec` into a `berth run -d` container: output streamed,
//! exit codes propagated, docker's 127 for a missing command. Root only.

mod support;

use std::time::{Duration, Instant};

use support::Env;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn exec_streams_output_and_propagates_exit_codes() {
    let Some(env) = Env::new() else { return };
    let name = env.name("exec");
    let run = env.berth(&["run", "-d", "--name", &name, "busybox", "sleep", "100"]);
    assert!(run.status.success(), "{}", stderr(&run));

    let deadline = Instant::now() + Duration::from_secs(5);
    let out = loop {
        let out = env.berth(&[
            "container",
            "exec",
            "-e",
            "GREETING=hi",
            &name,
            "--",
            "sh",
            "-c",
            "echo $GREETING from $(cat /proc/1/cmdline | tr '\\0' ' '); echo oops >&2; exit 4",
        ]);
        if out.status.code() == Some(4) || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi from sleep 100\n");
    assert_eq!(stderr(&out), "oops\n");

    let missing = env.berth(&["container", "exec", &name, "nope"]);
    assert_eq!(missing.status.code(), Some(127));
    assert!(
        stderr(&missing).contains("exec: \"nope\": executable file not found in $PATH"),
        "{}",
        stderr(&missing)
    );

    let timed = env.berth(&["container", "exec", "--timeout", "1", &name, "sleep", "30"]);
    assert_eq!(timed.status.code(), Some(137), "{}", stderr(&timed));

    let removed = env.berth(&["container", "rm", "-f", &name]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    let gone = env.berth(&["container", "exec", &name, "true"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("no such container"),
        "{}",
        stderr(&gone)
    );
    env.assert_no_containers_left();
}
