//! Root-only tests of the runtime with real containers on a busybox rootfs (the single lower
//! layer). This binary has its own `main`: the runtime re-executes it as the shim, so the
//! first thing it does is `run_if_shim`. Each test uses a unique container id, and a guard
//! removes its container even when the test panics.
//!
//! Run: `cargo test -p berth-runtime --test container [-- FILTER]` as root.
// The runtime's own tests may change this (single-threaded) process's signal dispositions.
#![allow(unsafe_code)]

mod container_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_runtime::cgroup::Resources;
use berth_runtime::container::config::{Mount, MountKind, NamespaceMode, User};
use berth_runtime::container::{
    ContainerConfig, ContainerId, CreateOptions, ExitStatus, LinuxRuntime, Reason, RuntimeError,
    Status,
};
use nix::sys::signal::Signal;

struct Fixture {
    _dir: tempfile::TempDir,
    rootfs: PathBuf,
    runtime: LinuxRuntime,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = container_support::busybox_rootfs(dir.path());
        let runtime = container_support::runtime(dir.path(), "/berth-test");
        Self {
            _dir: dir,
            rootfs,
            runtime,
        }
    }

    fn config(&self, name: &str, args: &[&str]) -> ContainerConfig {
        let id: ContainerId = format!("t-{name}-{}", std::process::id()).parse().unwrap();
        ContainerConfig::new(
            id,
            vec![self.rootfs.clone()],
            args.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// Create, start and wait; returns the exit and the log.
    fn run(&self, config: ContainerConfig) -> (ExitStatus, String, Guard<'_>) {
        let guard = self.create(config);
        self.runtime.start(&guard.id).expect("start");
        let exit = self.runtime.wait(&guard.id).expect("wait");
        let log = self.log(&guard.id);
        (exit, log, guard)
    }

    fn create(&self, config: ContainerConfig) -> Guard<'_> {
        let id = config.id.clone();
        self.runtime
            .create(
                config,
                CreateOptions {
                    detach: true,
                    attach: false,
                    start: false,
                },
            )
            .expect("create");
        Guard {
            runtime: &self.runtime,
            id,
        }
    }

    /// The text of the log's records, without timestamps and stream tags.
    fn log(&self, id: &ContainerId) -> String {
        let text = std::fs::read_to_string(self.runtime.container_dir(id).join("container.log"))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    fn run_sh(&self, name: &str, script: &str) -> (ExitStatus, String) {
        let (exit, log, _guard) = self.run(self.config(name, &["sh", "-c", script]));
        (exit, log)
    }
}

/// Removes the container (forcefully) when dropped, even on panic.
struct Guard<'a> {
    runtime: &'a LinuxRuntime,
    id: ContainerId,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        match self.runtime.delete(&self.id, true) {
            Ok(()) | Err(RuntimeError::NotFound(_)) => {}
            Err(err) => eprintln!("cleanup of {}: {err}", self.id),
        }
    }
}

fn assert_nothing_left(fx: &Fixture, id: &ContainerId) {
    let config = fx.runtime.config();
    assert!(!fx.runtime.container_dir(id).exists(), "container dir left");
    assert!(!fx.runtime.state_dir(id).exists(), "state dir left");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(id.as_str()), "mount left: {mountinfo}");
    for hierarchy in std::fs::read_dir(&config.cgroup_root).unwrap() {
        let dir = hierarchy
            .unwrap()
            .path()
            .join(config.cgroup_parent.strip_prefix("/").unwrap())
            .join(id.as_str());
        assert!(!dir.exists(), "cgroup left: {}", dir.display());
    }
    for base in [&config.root, &config.run_dir] {
        let trashed = base.join("trash").join(id.as_str());
        assert!(
            !trashed.exists(),
            "left in the trash: {}",
            trashed.display()
        );
    }
    let link = config.root.join("names").join(id.as_str());
    assert!(std::fs::symlink_metadata(link).is_err(), "name left");
}

fn pid1_hostname_and_isolated_proc(fx: &Fixture) {
    let mut config = fx.config(
        "pid1",
        &[
            "sh",
            "-c",
            "echo $$; hostname; ls /proc | grep '^[0-9]' | tr '\\n' ' '",
        ],
    );
    config.hostname = Some("box".into());
    let (exit, log, _g) = fx.run(config);
    assert_eq!(exit.code, 0, "{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1], "box");
    // Only the container's own processes: sh (1) and the pipeline's.
    let pids: Vec<u32> = lines[2]
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        pids.contains(&1) && pids.len() <= 4 && pids.iter().all(|p| *p < 10),
        "{pids:?}"
    );
}

fn docker_capabilities_no_new_privs_and_seccomp(fx: &Fixture) {
    let script = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; \
        unshare -U true 2>/dev/null && echo USERNS; echo done";
    let (exit, log) = fx.run_sh("caps", script);
    assert_eq!(exit.code, 0, "{log}");
    for expected in [
        "CapInh:\t0000000000000000",
        "CapPrm:\t00000000a80425fb",
        "CapEff:\t00000000a80425fb",
        "CapBnd:\t00000000a80425fb",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(log.contains(expected), "{expected} not in {log}");
    }
    // No user namespace either: capabilities do not guard those, the seccomp filter does.
    assert!(log.ends_with("done\n") && !log.contains("USERNS"), "{log}");

    let mut config = fx.config("unconfined", &["grep", "Seccomp:", "/proc/self/status"]);
    config.process.seccomp = false;
    let (_, log, _g) = fx.run(config);
    assert_eq!(log, "Seccomp:\t0\n");
}

fn non_root_user_gets_no_effective_caps(fx: &Fixture) {
    let mut config = fx.config(
        "user",
        &[
            "sh",
            "-c",
            "id -u; id -g; id -G; grep CapEff /proc/self/status; echo $HOME",
        ],
    );
    config.process.user = User {
        uid: 33,
        gid: 33,
        additional_gids: vec![44],
    };
    let (exit, log, _g) = fx.run(config);
    assert_eq!(exit.code, 0, "{log}");
    assert_eq!(log, "33\n33\n33 44\nCapEff:\t0000000000000000\n/var/www\n");
}

fn masked_and_readonly_paths_hold(fx: &Fixture) {
    let script = "cat /proc/kcore 2>/dev/null | wc -c; \
        ls /proc/acpi 2>/dev/null | wc -l; \
        (echo x > /proc/sys/kernel/hostname) 2>&1 | grep -q 'Read-only' && echo SYS-RO; \
        (echo h > /proc/sysrq-trigger) 2>/dev/null && echo WROTE-SYSRQ; \
        mkdir -p /tmp/m; mount -t tmpfs x /tmp/m 2>&1 | grep -q 'denied' && echo MOUNT-DENIED; \
        touch /sys/x 2>/dev/null && echo WROTE-SYSFS; \
        ls /sys/fs/cgroup | grep -c memory; \
        cat /proc/timer_list /proc/keys | wc -c; ls /sys/firmware | wc -l; \
        echo done";
    let (exit, log) = fx.run_sh("masked", script);
    assert_eq!(exit.code, 0, "{log}");
    assert!(!log.contains("WROTE") && !log.contains("MOUNTED"), "{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0].trim(), "0", "/proc/kcore must read empty: {log}");
    assert_eq!(lines[1].trim(), "0", "/proc/acpi must be empty: {log}");
    assert_eq!(
        lines[2..],
        ["SYS-RO", "MOUNT-DENIED", "1", "0", "0", "done"],
        "{log}"
    );
    let host_timer_list = std::fs::read_to_string("/proc/timer_list").unwrap_or_default();
    assert!(
        !host_timer_list.is_empty(),
        "the host's /proc/timer_list has content to hide"
    );
}

fn no_fd_leaks_into_the_container(fx: &Fixture) {
    // Looked at from the host: the running PID 1 holds exactly stdin, stdout and stderr.
    let guard = fx.create(fx.config("fds", &["sleep", "5"]));
    fx.runtime.start(&guard.id).unwrap();
    let init = fx.runtime.state(&guard.id).unwrap().init_pid.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_link(format!("/proc/{init}/exe"))
        .map(|e| !e.ends_with("busybox"))
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "init never exec'd");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{init}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"]);
    let stdin = std::fs::read_link(format!("/proc/{init}/fd/0")).unwrap();
    assert_eq!(stdin, Path::new("/dev/null"));
    fx.runtime.kill(&guard.id, Signal::SIGKILL).unwrap();
}

fn devices_and_network_none(fx: &Fixture) {
    let script = "ls /dev | tr '\\n' ' '; echo; stat -c '%a %t,%T' /dev/null; \
        cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; \
        cat /sys/class/net/lo/operstate; echo hi > /dev/shm/x && cat /dev/shm/x";
    let (exit, log) = fx.run_sh("dev", script);
    assert_eq!(exit.code, 0, "{log}");
    let lines: Vec<&str> = log.lines().collect();
    for node in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "mqueue", "fd",
        "stdin",
    ] {
        assert!(
            lines[0].split(' ').any(|n| n == node),
            "/dev/{node} missing: {}",
            lines[0]
        );
    }
    assert_eq!(lines[1], "666 1,3");
    assert_eq!(lines[2], "lo", "only loopback: {log}");
    assert_eq!(
        lines[3], "unknown",
        "lo is up (operstate of lo reads unknown): {log}"
    );
    assert_eq!(lines[4], "hi");
}

/// Capabilities do not guard devices: with CAP_MKNOD a container makes any node. Only the
/// standard devices open; /dev/kmsg (1:11, writable without any capability) does not, unless
/// the container is privileged.
fn only_standard_devices_open_unless_privileged(fx: &Fixture) {
    let script = "mknod /tmp/kmsg c 1 11 && echo made; \
        mknod /tmp/null c 1 3 && echo x > /tmp/null && echo null-ok; \
        (exec 3>/tmp/kmsg) 2>/dev/null && echo kmsg-opened || echo kmsg-denied";
    let (exit, log) = fx.run_sh("devices", script);
    assert_eq!(exit.code, 0, "{log}");
    assert_eq!(log, "made\nnull-ok\nkmsg-denied\n");

    let mut config = fx.config("devices-all", &["sh", "-c", script]);
    config.resources.devices = berth_runtime::cgroup::Devices::All;
    let (exit, log, _guard) = fx.run(config);
    assert_eq!(exit.code, 0, "{log}");
    assert_eq!(log, "made\nnull-ok\nkmsg-opened\n");
}

/// Signals the caller ignores (as `nohup` does SIGHUP, Rust's runtime SIGPIPE, and this test
/// binary's environment real-time signals 32 and 33) are not ignored in the container, and none
/// is blocked.
fn the_container_ignores_and_blocks_no_signal(fx: &Fixture) {
    // SAFETY: the test binary is single-threaded; the disposition is restored below.
    let previous = unsafe {
        nix::sys::signal::signal(Signal::SIGHUP, nix::sys::signal::SigHandler::SigIgn).unwrap()
    };
    let mut config = fx.config(
        "sigign",
        &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"],
    );
    config.hostname = None;
    let (exit, log, _guard) = fx.run(config);
    // SAFETY: as above.
    unsafe { nix::sys::signal::signal(Signal::SIGHUP, previous).unwrap() };
    assert_eq!(exit.code, 0, "{log}");
    assert_eq!(
        log.split_whitespace().collect::<Vec<_>>(),
        ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000"],
        "{log}"
    );
}

fn exit_codes_and_signals_propagate(fx: &Fixture) {
    let (exit, _) = fx.run_sh("exit3", "exit 3");
    assert_eq!((exit.code, exit.signal), (3, None));
    let (exit, _) = fx.run_sh("exit0", "true");
    assert_eq!(exit.code, 0);

    // Killed from the host: 128 + 9.
    let guard = fx.create(fx.config("killed", &["sleep", "100"]));
    fx.runtime.start(&guard.id).unwrap();
    fx.runtime.kill(&guard.id, Signal::SIGKILL).unwrap();
    let exit = fx.runtime.wait(&guard.id).unwrap();
    assert_eq!((exit.code, exit.signal), (137, Some(9)));
    let state = fx.runtime.state(&guard.id).unwrap();
    assert_eq!(state.reason, Some(Reason::Error));
    assert!(state.started_at.is_some() && state.finished_at.is_some());

    // A child killed by a signal inside: the shell reports 128+9 as its exit code.
    let (exit, _) = fx.run_sh("selfkill", "sh -c 'kill -9 $$'; exit $?");
    assert_eq!(exit.code, 137);
}

fn setup_errors_are_reported_with_docker_codes(fx: &Fixture) {
    let config = fx.config("nocmd", &["/bin/nope"]);
    let id = config.id.clone();
    let err = fx
        .runtime
        .create(
            config,
            CreateOptions {
                detach: true,
                attach: false,
                start: false,
            },
        )
        .unwrap_err();
    assert_eq!(err.exit_code(), 127);
    assert_eq!(
        err.to_string(),
        r#"exec "/bin/nope": No such file or directory (os error 2)"#
    );
    assert_nothing_left(fx, &id);

    let config = fx.config("nopath", &["nope"]);
    let err = fx
        .runtime
        .create(config, CreateOptions::default())
        .unwrap_err();
    assert_eq!(err.exit_code(), 127);
    assert!(
        err.to_string()
            .contains("executable file not found in $PATH"),
        "{err}"
    );

    let mut config = fx.config("badcwd", &["true"]);
    config.process.cwd = "/etc/passwd".into();
    let id = config.id.clone();
    let err = fx
        .runtime
        .create(config, CreateOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("cwd"), "{err}");
    assert_nothing_left(fx, &id);

    // The shim makes the cgroup while the init sets up its namespaces: a limit the kernel
    // refuses (a CFS quota below 1 ms) fails create, and the waiting init goes with it.
    let mut config = fx.config("badquota", &["true"]);
    config.resources = Resources {
        cpu_quota: Some(berth_runtime::cgroup::CpuQuota {
            quota_us: 500,
            period_us: 100_000,
        }),
        ..Default::default()
    };
    let id = config.id.clone();
    let err = fx
        .runtime
        .create(config, CreateOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("cgroup"), "{err}");
    assert_nothing_left(fx, &id);

    // A missing cwd is created, as docker does.
    let mut config = fx.config("newcwd", &["pwd"]);
    config.process.cwd = "/work/dir".into();
    let (exit, log, _g) = fx.run(config);
    assert_eq!((exit.code, log.as_str()), (0, "/work/dir\n"));
}

fn memory_limit_oom_kills(fx: &Fixture) {
    let mut config = fx.config("oom", &["tail", "/dev/zero"]);
    config.resources = Resources {
        memory_limit: Some(16 << 20),
        ..Default::default()
    };
    let (exit, log, g) = fx.run(config);
    assert_eq!((exit.code, exit.oom_killed), (137, true), "{log}");
    assert_eq!(
        fx.runtime.state(&g.id).unwrap().reason,
        Some(Reason::OomKilled)
    );
}

fn pids_limit_holds_against_a_fork_loop(fx: &Fixture) {
    // Ten fit; the loop's fork fails (busybox sh then exits 2) before it gets to forty.
    let script = "for i in $(seq 40); do sleep 1 & echo $i > /tmp/forked; done; echo ALL-FORKED";
    let mut config = fx.config("pids", &["sh", "-c", script]);
    config.resources = Resources {
        pids_limit: Some(10),
        ..Default::default()
    };
    let (exit, log, g) = fx.run(config);
    assert_eq!(exit.code, 2, "{log}");
    assert!(
        log.contains("can't fork") && !log.contains("ALL-FORKED"),
        "{log}"
    );
    let _ = g;
}

fn stop_kills_after_grace_and_cooperative_exits_on_term(fx: &Fixture) {
    let guard = fx.create(fx.config("stubborn", &["sh", "-c", "trap '' TERM; sleep 100"]));
    fx.runtime.start(&guard.id).unwrap();
    let began = Instant::now();
    let exit = fx
        .runtime
        .stop(&guard.id, Duration::from_secs(1), None)
        .unwrap()
        .unwrap();
    let took = began.elapsed();
    assert_eq!(exit.code, 137);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );

    let guard = fx.create(fx.config(
        "polite",
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ],
    ));
    fx.runtime.start(&guard.id).unwrap();
    std::thread::sleep(Duration::from_millis(200)); // let the trap be installed
    let began = Instant::now();
    let exit = fx
        .runtime
        .stop(&guard.id, Duration::from_secs(10), None)
        .unwrap()
        .unwrap();
    assert_eq!(exit.code, 0);
    assert!(began.elapsed() < Duration::from_secs(3));
}

/// A created container's init waits for `start` as berth's binary inside the container, with
/// the container's capabilities: a process without CAP_SYS_PTRACE (as the container's own are)
/// must not reach its `/proc/<pid>/exe`, the host's berth binary.
fn the_init_before_exec_is_out_of_reach(fx: &Fixture) {
    let guard = fx.create(fx.config("dumpable", &["true"]));
    let init = fx
        .runtime
        .state(&guard.id)
        .unwrap()
        .init_pid
        .expect("init pid");
    // SAFETY: the test binary is single-threaded; the child only drops a capability, makes one
    // syscall and exits.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let dropped = [caps::CapSet::Effective, caps::CapSet::Permitted]
                .into_iter()
                .all(|set| caps::drop(None, set, caps::Capability::CAP_SYS_PTRACE).is_ok());
            let code = match std::fs::read_link(format!("/proc/{init}/exe")) {
                _ if !dropped => 2,
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => 0,
                _ => 1,
            };
            // SAFETY: ends the forked child without running the test binary's cleanup.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(
                status,
                nix::sys::wait::WaitStatus::Exited(child, 0),
                "the init's exe was reachable (1) or the capability not dropped (2)"
            );
        }
    }
}

fn created_container_can_be_listed_killed_and_deleted(fx: &Fixture) {
    let guard = fx.create(fx.config("created", &["true"]));
    let state = fx.runtime.state(&guard.id).unwrap();
    assert_eq!(state.status, Status::Created);
    assert!(
        fx.runtime
            .list()
            .unwrap()
            .iter()
            .any(|c| c.config.id == guard.id)
    );
    assert!(fx.runtime.stats(&guard.id).is_ok());
    assert!(matches!(
        fx.runtime.delete(&guard.id, false),
        Err(RuntimeError::Running(_))
    ));
    fx.runtime.delete(&guard.id, true).unwrap();
    assert_nothing_left(fx, &guard.id);
}

/// `berth run`'s path: the process starts as soon as it is set up. The container is Running
/// when create returns, no exec fifo is made, and an exec failure after set-up is recorded.
fn started_at_create_runs_without_the_fifo(fx: &Fixture) {
    let start = CreateOptions {
        detach: true,
        attach: false,
        start: true,
    };
    let config = fx.config("startnow", &["sh", "-c", "echo hi; sleep 0.3"]);
    let id = config.id.clone();
    let guard = Guard {
        runtime: &fx.runtime,
        id: id.clone(),
    };
    fx.runtime.create(config, start).expect("create");
    let state = fx.runtime.state(&id).unwrap();
    assert_eq!(state.status, Status::Running);
    assert!(state.started_at.is_some());
    assert!(!fx.runtime.state_dir(&id).join("exec.fifo").exists());
    assert!(matches!(
        fx.runtime.start(&id),
        Err(RuntimeError::WrongStatus {
            status: Status::Running,
            ..
        })
    ));
    let exit = fx.runtime.wait(&id).unwrap();
    assert_eq!((exit.code, fx.log(&id).as_str()), (0, "hi\n"));
    drop(guard);
    assert_nothing_left(fx, &id);

    // Set-up errors still come back from create, and leave nothing.
    let config = fx.config("startnope", &["/bin/nope"]);
    let id = config.id.clone();
    let err = fx.runtime.create(config, start).unwrap_err();
    assert_eq!(err.exit_code(), 127);
    assert_nothing_left(fx, &id);

    // The kernel refuses the exec itself (ENOEXEC) after "started" was sent: the failure
    // follows it on the status pipe and is recorded as the exit.
    let script = fx.rootfs.parent().unwrap().join("noexec-layer");
    std::fs::create_dir_all(&script).unwrap();
    std::fs::write(script.join("noexec"), "not a program\n").unwrap();
    std::fs::set_permissions(
        script.join("noexec"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut config = fx.config("startnoexec", &["/noexec"]);
    config.rootfs.layers.push(script);
    let id = config.id.clone();
    let guard = Guard {
        runtime: &fx.runtime,
        id: id.clone(),
    };
    fx.runtime.create(config, start).expect("create");
    let exit = fx.runtime.wait(&id).unwrap();
    assert_eq!(exit.code, 125);
    let state = fx.runtime.state(&id).unwrap();
    assert_eq!(state.reason, Some(Reason::StartError));
    assert!(
        state.error.as_deref().unwrap_or_default().contains("exec"),
        "{:?}",
        state.error
    );
    drop(guard);
}

/// `rm -f` of a running container races the shim: the first SIGKILL ends the init, and the
/// shim deletes the cgroup while the delete still freezes and signals what is left in it. The
/// cgroup going away under it means the job is done, not an error.
fn force_delete_of_running_containers_races_the_shim_cleanly(fx: &Fixture) {
    for round in 0..20 {
        let mut config = fx.config(
            &format!("rmf{round}"),
            &["sh", "-c", "sleep 100 & sleep 100 & exec sleep 100"],
        );
        config.id = format!("t-rmf{round}-{}", std::process::id())
            .parse()
            .unwrap();
        let start = CreateOptions {
            detach: true,
            attach: false,
            start: true,
        };
        let id = config.id.clone();
        let guard = Guard {
            runtime: &fx.runtime,
            id: id.clone(),
        };
        fx.runtime.create(config, start).expect("create");
        if let Err(err) = fx.runtime.delete(&id, true) {
            panic!("round {round}: rm -f failed: {err:?}");
        }
        drop(guard);
        assert_nothing_left(fx, &id);
    }
}

fn logs_and_cleanup_after_delete(fx: &Fixture) {
    let (exit, log, guard) = fx.run(fx.config("logs", &["sh", "-c", "echo out; echo err >&2"]));
    assert_eq!(exit.code, 0);
    assert_eq!(log, "out\nerr\n");
    let raw =
        std::fs::read_to_string(fx.runtime.container_dir(&guard.id).join("container.log")).unwrap();
    assert!(raw.lines().any(|l| l.ends_with(" stdout F out")), "{raw}");
    assert!(raw.lines().any(|l| l.ends_with(" stderr F err")), "{raw}");
    let id = guard.id.clone();
    drop(guard);
    assert_nothing_left(fx, &id);
}

fn auto_remove_leaves_nothing(fx: &Fixture) {
    let mut config = fx.config("autorm", &["sh", "-c", "sleep 0.2"]);
    config.auto_remove = true;
    let id = config.id.clone();
    let created = fx
        .runtime
        .create(
            config,
            CreateOptions {
                detach: true,
                attach: false,
                start: false,
            },
        )
        .unwrap();
    let exit_fd = fx
        .runtime
        .exit_fd(&created.id)
        .unwrap()
        .expect("shim alive");
    fx.runtime.start(&id).unwrap();
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&exit_fd),
        nix::poll::PollFlags::POLLIN,
    )];
    nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
    assert_nothing_left(fx, &id);
}

/// `berth run --rm` in the foreground: the caller is told the exit code once the container is
/// gone from every listing; the shim deletes its cgroup and directories after that.
fn foreground_caller_hears_the_exit_before_the_cleanup(fx: &Fixture) {
    let mut config = fx.config("fgrm", &["sh", "-c", "exit 3"]);
    config.auto_remove = true;
    let id = config.id.clone();
    let created = fx
        .runtime
        .create(
            config,
            CreateOptions {
                detach: false,
                attach: false,
                start: true,
            },
        )
        .expect("create");
    let mut reports = created.reports.expect("foreground reports");
    assert_eq!(
        reports.next_report(),
        Some(berth_runtime::shim::SyncMessage::Exited { code: 3 })
    );
    assert!(matches!(
        fx.runtime.resolve(id.as_str()),
        Err(RuntimeError::NotFound(_))
    ));
    assert!(!fx.runtime.state_dir(&id).exists());
    assert!(!fx.runtime.ids().unwrap().contains(&id));
    let status = created.shim.expect("shim").wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(reports.next_report(), None);
    assert_nothing_left(fx, &id);
}

fn readonly_rootfs_and_extra_mounts(fx: &Fixture) {
    let host_dir = fx.rootfs.parent().unwrap().join("shared");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("file"), "from host\n").unwrap();
    let mut config = fx.config("ro", &["sh", "-c", "touch /x 2>/dev/null && echo WROTE-ROOT; cat /data/file; (echo no > /data/y) 2>/dev/null && echo WROTE-DATA; echo ok > /scratch/z && cat /scratch/z; (echo ok > /tmp/t) 2>/dev/null || echo tmp-ro"]);
    config.rootfs.readonly = true;
    config.mounts = vec![
        Mount {
            destination: "/data".into(),
            kind: MountKind::Bind {
                source: host_dir.clone(),
                readonly: true,
            },
        },
        Mount {
            destination: "/scratch".into(),
            kind: MountKind::Tmpfs {
                size_bytes: Some(1 << 20),
                mode: 0o1777,
            },
        },
    ];
    let (exit, log, _g) = fx.run(config);
    assert_eq!(exit.code, 0, "{log}");
    assert!(!log.contains("WROTE"), "{log}");
    assert!(log.contains("from host\nok\ntmp-ro"), "{log}");
    assert!(!host_dir.join("y").exists());
}

fn host_network_and_joined_namespace(fx: &Fixture) {
    let mut config = fx.config("hostnet", &["sh", "-c", "cat /proc/net/dev | wc -l"]);
    config.namespaces.network = NamespaceMode::Host;
    let (exit, log, _g) = fx.run(config);
    assert_eq!(exit.code, 0);
    let host_lines = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .count();
    assert_eq!(log.trim().parse::<usize>().unwrap(), host_lines);

    // A second container joins the first one's network and UTS namespaces (a pod).
    let mut first = fx.config("pod-a", &["sleep", "30"]);
    first.hostname = Some("pod".into());
    let first = fx.create(first);
    fx.runtime.start(&first.id).unwrap();
    let init = fx.runtime.state(&first.id).unwrap().init_pid.unwrap();
    let mut second = fx.config(
        "pod-b",
        &["sh", "-c", "hostname; readlink /proc/self/ns/net"],
    );
    second.namespaces.network = NamespaceMode::Join(format!("/proc/{init}/ns/net").into());
    second.namespaces.uts = NamespaceMode::Join(format!("/proc/{init}/ns/uts").into());
    let (exit, log, _g) = fx.run(second);
    assert_eq!(exit.code, 0, "{log}");
    let first_net = std::fs::read_link(format!("/proc/{init}/ns/net")).unwrap();
    assert_eq!(log, format!("pod\n{}\n", first_net.display()));
}

/// A named test of this harness.
type Test = fn(&Fixture);

fn main() {
    berth_runtime::shim::run_if_shim();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("container tests need root; skipped");
        return;
    }
    let tests: &[(&str, Test)] = &[
        (
            "pid1_hostname_and_isolated_proc",
            pid1_hostname_and_isolated_proc,
        ),
        (
            "force_delete_of_running_containers_races_the_shim_cleanly",
            force_delete_of_running_containers_races_the_shim_cleanly,
        ),
        (
            "docker_capabilities_no_new_privs_and_seccomp",
            docker_capabilities_no_new_privs_and_seccomp,
        ),
        (
            "non_root_user_gets_no_effective_caps",
            non_root_user_gets_no_effective_caps,
        ),
        (
            "masked_and_readonly_paths_hold",
            masked_and_readonly_paths_hold,
        ),
        (
            "no_fd_leaks_into_the_container",
            no_fd_leaks_into_the_container,
        ),
        ("devices_and_network_none", devices_and_network_none),
        (
            "foreground_caller_hears_the_exit_before_the_cleanup",
            foreground_caller_hears_the_exit_before_the_cleanup,
        ),
        (
            "only_standard_devices_open_unless_privileged",
            only_standard_devices_open_unless_privileged,
        ),
        (
            "the_container_ignores_and_blocks_no_signal",
            the_container_ignores_and_blocks_no_signal,
        ),
        (
            "exit_codes_and_signals_propagate",
            exit_codes_and_signals_propagate,
        ),
        (
            "the_init_before_exec_is_out_of_reach",
            the_init_before_exec_is_out_of_reach,
        ),
        (
            "setup_errors_are_reported_with_docker_codes",
            setup_errors_are_reported_with_docker_codes,
        ),
        ("memory_limit_oom_kills", memory_limit_oom_kills),
        (
            "pids_limit_holds_against_a_fork_loop",
            pids_limit_holds_against_a_fork_loop,
        ),
        (
            "stop_kills_after_grace_and_cooperative_exits_on_term",
            stop_kills_after_grace_and_cooperative_exits_on_term,
        ),
        (
            "created_container_can_be_listed_killed_and_deleted",
            created_container_can_be_listed_killed_and_deleted,
        ),
        (
            "started_at_create_runs_without_the_fifo",
            started_at_create_runs_without_the_fifo,
        ),
        (
            "logs_and_cleanup_after_delete",
            logs_and_cleanup_after_delete,
        ),
        ("auto_remove_leaves_nothing", auto_remove_leaves_nothing),
        (
            "readonly_rootfs_and_extra_mounts",
            readonly_rootfs_and_extra_mounts,
        ),
        (
            "host_network_and_joined_namespace",
            host_network_and_joined_namespace,
        ),
    ];
    container_support::run(tests, Fixture::new);
}
