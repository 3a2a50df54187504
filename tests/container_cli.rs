//! `berth run -d` and `berth container ls|inspect|logs|stop|kill|rm` across processes. Root only.

mod support;

use std::time::{Duration, Instant};

use support::Env;

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn detached_container_lifecycle() {
    let Some(env) = Env::new() else { return };
    let name = env.name("web");
    let script =
        "echo hello; echo oops >&2; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done";
    let out = env.berth(&["run", "-d", "--name", &name, "busybox", "sh", "-c", script]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = text(&out).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");

    // A second container may not take the name.
    let clash = env.berth(&["run", "-d", "--name", &name, "busybox", "true"]);
    assert_eq!(clash.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&clash.stderr).contains("already in use"));

    let ls = text(&env.berth(&["container", "ls"]));
    let row = ls
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{ls}"));
    assert!(
        row.starts_with(&id[..12]) && row.contains("Up ") && row.contains("busybox"),
        "{row}"
    );

    // Logs through the CRI file, by name and by id prefix.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text(&env.berth(&["container", "logs", &name])).contains("oops") {
        assert!(Instant::now() < deadline, "no logs");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        text(&env.berth(&["container", "logs", &id[..8]])),
        "hello\noops\n"
    );
    let stamped = text(&env.berth(&["container", "logs", "-t", "--tail", "1", &name]));
    let (stamp, line) = stamped.trim_end().split_once(' ').unwrap();
    assert!(
        stamp.parse::<jiff::Timestamp>().is_ok() && line == "oops",
        "{stamped}"
    );
    let raw = std::fs::read_to_string(
        env.root()
            .join("containers")
            .join(&id)
            .join("container.log"),
    )
    .unwrap();
    assert!(
        raw.lines().any(|l| l.ends_with(" stdout F hello"))
            && raw.lines().any(|l| l.ends_with(" stderr F oops")),
        "{raw}"
    );

    let rm = env.berth(&["container", "rm", &name]);
    assert!(
        !rm.status.success(),
        "a running container is not removed without -f"
    );

    // Cooperative: exits on SIGTERM well before the grace period.
    let began = Instant::now();
    assert!(env.berth(&["container", "stop", &name]).status.success());
    assert!(began.elapsed() < Duration::from_secs(5));
    assert!(text(&env.berth(&["container", "logs", &name])).ends_with("bye\n"));
    let inspect: serde_json::Value =
        serde_json::from_slice(&env.berth(&["container", "inspect", &name]).stdout).unwrap();
    assert_eq!(inspect["state"]["status"], "stopped");
    assert_eq!(inspect["state"]["exit_code"], 0);
    assert!(
        inspect["state"]["finished_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let ls = text(&env.berth(&["container", "ls"]));
    assert!(
        ls.lines()
            .any(|l| l.contains(&name) && l.contains("Exited (0)")),
        "{ls}"
    );

    assert!(env.berth(&["container", "rm", &name]).status.success());
    env.assert_no_containers_left();
}

#[test]
fn stop_kills_a_container_that_ignores_sigterm_after_the_grace_period() {
    let Some(env) = Env::new() else { return };
    let name = env.name("stubborn");
    let out = env.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; sleep 100",
    ]);
    assert!(out.status.success());
    let began = Instant::now();
    assert!(
        env.berth(&["container", "stop", "--time", "1", &name])
            .status
            .success()
    );
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let inspect: serde_json::Value =
        serde_json::from_slice(&env.berth(&["container", "inspect", &name]).stdout).unwrap();
    assert_eq!(inspect["state"]["exit_code"], 137);
    assert_eq!(inspect["state"]["exit_signal"], 9);
    assert!(env.berth(&["container", "rm", &name]).status.success());
    env.assert_no_containers_left();
}

#[test]
fn kill_with_a_signal_name_and_forced_rm() {
    let Some(env) = Env::new() else { return };
    let a = env.name("a");
    let b = env.name("b");
    assert!(
        env.berth(&[
            "run",
            "-d",
            "--name",
            &a,
            "busybox",
            "sh",
            "-c",
            "trap 'exit 7' USR1; while :; do sleep 0.1; done"
        ])
        .status
        .success()
    );
    assert!(
        env.berth(&["run", "-d", "--name", &b, "busybox", "sleep", "100"])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        env.berth(&["container", "kill", "--signal", "USR1", &a])
            .status
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let inspect: serde_json::Value =
            serde_json::from_slice(&env.berth(&["container", "inspect", &a]).stdout).unwrap();
        if inspect["state"]["status"] == "stopped" {
            assert_eq!(inspect["state"]["exit_code"], 7);
            break;
        }
        assert!(Instant::now() < deadline, "USR1 not delivered");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !env.berth(&["container", "kill", "--signal", "NOPE", &b])
            .status
            .success()
    );
    // Forced removal kills the whole cgroup and leaves nothing.
    assert!(
        env.berth(&["container", "rm", "-f", &a, &b])
            .status
            .success()
    );
    let ls = text(&env.berth(&["container", "ls", "-q"]));
    assert!(ls.trim().is_empty(), "{ls}");
    env.assert_no_containers_left();
}
