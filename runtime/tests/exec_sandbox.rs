//! Root-only tests of `exec` into running containers and of pod sandboxes (shared net, IPC and
//! UTS namespaces pinned without a process), on a busybox rootfs. Like `container.rs` this
//! binary has its own `main`: the runtime re-executes it as the shim (container, exec and
//! sandbox modes), so the first thing it does is `run_if_shim`. Guards remove containers and
//! sandboxes even when a test panics.
//!
//! Run: `cargo test -p berth-runtime --test exec_sandbox [-- FILTER]` as root.

mod container_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_runtime::container::{
    ContainerConfig, ContainerId, CreateOptions, ExecConfig, ExecIo, ExecOutput, LinuxRuntime,
    RuntimeError, Status,
};
use berth_runtime::sandbox::{Sandbox, SandboxConfig, SandboxError, SandboxNetwork};
use berth_runtime::shim::zygote::Zygote;
use nix::mount::MsFlags;
use nix::sys::signal::Signal;

const CAPTURE: ExecIo = ExecIo::Capture { limit: 10 * 1024 };

struct Fixture {
    _dir: tempfile::TempDir,
    rootfs: PathBuf,
    runtime: LinuxRuntime,
    /// The same runtime, forking shims and sandbox shims from a zygote, as the daemon does.
    zygote: LinuxRuntime,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = container_support::busybox_rootfs(dir.path());
        let runtime = container_support::runtime(dir.path(), "/berth-test-exec");
        let zygote = container_support::runtime(dir.path(), "/berth-test-exec").with_zygote(
            Arc::new(Zygote::new(std::env::current_exe().expect("current_exe"))),
        );
        Self {
            _dir: dir,
            rootfs,
            runtime,
            zygote,
        }
    }

    fn config(&self, name: &str, args: &[&str]) -> ContainerConfig {
        let id: ContainerId = format!("x-{name}-{}", std::process::id()).parse().unwrap();
        ContainerConfig::new(
            id,
            vec![self.rootfs.clone()],
            args.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// Create and start; the guard deletes the container.
    fn start(&self, config: ContainerConfig) -> Guard<'_> {
        start_on(&self.runtime, config)
    }

    fn exec(&self, id: &ContainerId, args: &[&str]) -> ExecOutput {
        self.runtime
            .exec(id, ExecConfig::new(args.iter().copied()), CAPTURE)
            .expect("exec")
    }

    /// Exec `script` until it succeeds (the container's command may still be starting).
    fn exec_until_ok(&self, id: &ContainerId, script: &str) -> ExecOutput {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.exec(id, &["sh", "-c", script]);
            if out.status.code == 0 || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self, id: &ContainerId) -> String {
        let text = std::fs::read_to_string(self.runtime.container_dir(id).join("container.log"))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    fn sandbox(&self, name: &str, hostname: &str) -> SandboxGuard<'_> {
        let id = format!("sb-{name}-{}", std::process::id());
        let sandbox = self
            .runtime
            .create_sandbox(SandboxConfig {
                id: id.clone(),
                hostname: hostname.into(),
                network: SandboxNetwork::New,
                labels: BTreeMap::from([("pod".to_string(), name.to_string())]),
            })
            .expect("create_sandbox");
        SandboxGuard {
            runtime: &self.runtime,
            sandbox,
        }
    }
}

/// Create and start on `runtime`; the guard deletes the container.
fn start_on(runtime: &LinuxRuntime, config: ContainerConfig) -> Guard<'_> {
    let id = config.id.clone();
    runtime
        .create(
            config,
            CreateOptions {
                detach: true,
                attach: false,
                start: false,
            },
        )
        .expect("create");
    let guard = Guard { runtime, id };
    runtime.start(&guard.id).expect("start");
    guard
}

/// `/proc/<pid>/cgroup`, as the host sees it, of `sleep SECS` exec'd into the container whose
/// init is `init_pid`. `secs` must make the command line one no other test running at the
/// same time uses.
fn host_cgroup_of_an_exec(
    runtime: &LinuxRuntime,
    id: &ContainerId,
    init_pid: i32,
    secs: &str,
) -> String {
    let command = format!("sleep {secs}");
    std::thread::scope(|s| {
        let exec = s.spawn(|| {
            runtime.exec(
                id,
                ExecConfig::new(["sleep", secs]).with_timeout(Duration::from_secs(10)),
                CAPTURE,
            )
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut found = None;
        while found.is_none() && Instant::now() < deadline {
            found = children_named(init_pid, &command);
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = found.expect("exec'd sleep seen from the host");
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert_eq!(exec.join().unwrap().unwrap().status.code, 0);
        cgroup
    })
}

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

struct SandboxGuard<'a> {
    runtime: &'a LinuxRuntime,
    sandbox: Sandbox,
}

impl Drop for SandboxGuard<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.runtime.delete_sandbox(&self.sandbox.config.id) {
            eprintln!("cleanup of sandbox {}: {err}", self.sandbox.config.id);
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn exec_sees_the_containers_processes_hostname_and_files(fx: &Fixture) {
    let mut config = fx.config(
        "world",
        // Written then renamed: an exec that lands between the shell's create and its write
        // would otherwise read an empty marker.
        &[
            "sh",
            "-c",
            "echo inside > /tmp/.marker; mv /tmp/.marker /tmp/marker; exec sleep 1000",
        ],
    );
    config.hostname = Some("exec-host".into());
    let c = fx.start(config);
    let out = fx.exec_until_ok(&c.id, "cat /tmp/marker");
    assert_eq!(text(&out.stdout), "inside\n", "{out:?}");

    let out = fx.exec(
        &c.id,
        &[
            "sh",
            "-c",
            "ps -o pid,args; hostname; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
        ],
    );
    assert_eq!(out.status.code, 0, "{out:?}");
    let stdout = text(&out.stdout);
    let pid1 = stdout.lines().find(|l| l.trim_start().starts_with("1 "));
    assert!(
        pid1.is_some_and(|l| l.contains("sleep 1000")),
        "PID 1 is the container's command: {stdout}"
    );
    assert!(stdout.lines().any(|l| l == "exec-host"), "{stdout}");
    assert!(stdout.contains("CapEff:\t00000000a80425fb"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");
    assert!(stdout.contains("Seccomp:\t2"), "{stdout}");

    // Same cgroup as the init, seen from inside and from the host.
    let out = fx.exec(
        &c.id,
        &[
            "sh",
            "-c",
            "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup",
        ],
    );
    let stdout = text(&out.stdout);
    let (own, init) = stdout.split_once("--\n").unwrap();
    assert_eq!(own, init, "{stdout}");
    let init_pid = fx.runtime.state(&c.id).unwrap().init_pid.unwrap();
    let host_init = std::fs::read_to_string(format!("/proc/{init_pid}/cgroup")).unwrap();
    assert!(
        host_init.contains(c.id.as_str()),
        "init in its cgroup: {host_init}"
    );
    // The exec'd process is in the container's cgroup from the host's point of view.
    assert_eq!(
        host_cgroup_of_an_exec(&fx.runtime, &c.id, init_pid, "2"),
        host_init
    );
}

/// The runtime driving the host's cgroup2 mount as a v2 host: `/sys/fs/cgroup` itself on a
/// pure v2 host, `/sys/fs/cgroup/unified` on a hybrid one (no controllers there, so no limits,
/// but the real placement: the init and exec'd processes are cloned into the cgroup).
fn cgroup_v2_runtime(fx: &Fixture) -> Option<(LinuxRuntime, PathBuf)> {
    let Some(mount) = berth_runtime::testing::cgroup2_mount() else {
        eprintln!("skipped: no cgroup2 mount");
        return None;
    };
    let mut config = fx.runtime.config().clone();
    config.cgroup_root = mount.clone();
    config.cgroup_parent = PathBuf::from(format!("/berth-test-v2-{}", std::process::id()));
    let runtime = LinuxRuntime::new(config, Arc::new(berth_runtime::syscall::LinuxSyscall));
    Some((runtime, mount))
}

fn cgroup_v2_places_the_init_and_execs_in_the_container_cgroup(fx: &Fixture) {
    let Some((runtime, root)) = cgroup_v2_runtime(fx) else {
        return;
    };
    let config = fx.config("v2", &["sleep", "1000"]);
    let dir = root
        .join(runtime.config().cgroup_parent.strip_prefix("/").unwrap())
        .join(config.id.as_str());
    let c = start_on(&runtime, config);
    let init_pid = runtime.state(&c.id).unwrap().init_pid.unwrap();
    let expected = format!("{}/{}", runtime.config().cgroup_parent.display(), c.id);
    let unified_line = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
    };
    assert_eq!(unified_line(init_pid).as_deref(), Some(expected.as_str()));

    // Inside: the cgroup namespace is rooted at the container's cgroup, and the cgroup2 file
    // system mounted at /sys/fs/cgroup is that cgroup, holding the init and the exec'd shell.
    let out = runtime
        .exec(
            &c.id,
            ExecConfig::new([
                "sh",
                "-c",
                "grep '^0::' /proc/self/cgroup; wc -l < /sys/fs/cgroup/cgroup.procs",
            ]),
            CAPTURE,
        )
        .expect("exec");
    assert_eq!(out.status.code, 0, "{out:?}");
    // At least the init and the shell.
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("0::/"), "{stdout}");
    let procs: usize = lines.next().unwrap_or("").trim().parse().unwrap_or(0);
    assert!(
        procs >= 2,
        "init and exec'd processes in the cgroup: {stdout}"
    );

    // From the host: an exec'd process is in the same cgroup as the init.
    let exec = host_cgroup_of_an_exec(&runtime, &c.id, init_pid, "3");
    let exec_line = exec.lines().find_map(|l| l.strip_prefix("0::"));
    assert_eq!(exec_line, Some(expected.as_str()), "{exec}");

    drop(c);
    assert!(!dir.exists(), "cgroup left: {}", dir.display());
    let parent = dir.parent().unwrap().to_path_buf();
    let _ = std::fs::remove_dir(&parent);
}

/// An exec shim that is our child.
fn exec_shim() -> Option<i32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid = stat[stat.rfind(')')? + 2..].split(' ').nth(1)?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let is_exec = cmd.split(|b| *b == 0).nth(1) == Some(b"__berth-exec".as_slice());
        (ppid == me && is_exec).then_some(pid)
    })
}

/// A process whose command line is `cmdline` (spaces for NULs) that is not `not_pid`.
fn children_named(not_pid: i32, cmdline: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        (pid != not_pid && cmd.trim_end() == cmdline).then_some(pid)
    })
}

fn exit_codes_errors_and_output_limits(fx: &Fixture) {
    let c = fx.start(fx.config("codes", &["sleep", "1000"]));
    let out = fx.exec_until_ok(&c.id, "true");
    assert_eq!(out.status.code, 0);
    assert_eq!(fx.exec(&c.id, &["sh", "-c", "exit 3"]).status.code, 3);
    let killed = fx.exec(&c.id, &["sh", "-c", "kill -9 $$"]);
    assert_eq!((killed.status.code, killed.status.signal), (137, Some(9)));
    let out = fx.exec(&c.id, &["sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        ("out\n".into(), "err\n".into())
    );

    let err = fx
        .runtime
        .exec(&c.id, ExecConfig::new(["nope"]), CAPTURE)
        .unwrap_err();
    assert_eq!(err.exit_code(), 127, "{err}");
    assert_eq!(
        err.to_string(),
        "exec: \"nope\": executable file not found in $PATH"
    );
    let err = fx
        .runtime
        .exec(&c.id, ExecConfig::new(["/etc/passwd"]), CAPTURE)
        .unwrap_err();
    assert_eq!(err.exit_code(), 126, "{err}");

    // Environment, cwd and user overrides; the container's by default.
    let mut config = ExecConfig::new(["sh", "-c", "echo $FOO; pwd; id -u"]);
    config.env = Some(vec!["FOO=bar".into()]);
    config.cwd = Some("/tmp".into());
    config.user = Some(berth_runtime::container::config::User {
        uid: 33,
        gid: 33,
        additional_gids: vec![],
    });
    let out = fx.runtime.exec(&c.id, config, CAPTURE).unwrap();
    assert_eq!(text(&out.stdout), "bar\n/tmp\n33\n");

    let big = fx
        .runtime
        .exec(
            &c.id,
            ExecConfig::new([
                "sh",
                "-c",
                "yes | head -c 100000; yes no | head -c 50000 >&2",
            ]),
            ExecIo::Capture { limit: 10 * 1024 },
        )
        .unwrap();
    assert_eq!((big.stdout.len(), big.stderr.len()), (10 * 1024, 10 * 1024));
    assert_eq!(big.status.code, 0);
}

fn timeout_kills_and_container_stop_ends_execs(fx: &Fixture) {
    let c = fx.start(fx.config("timeout", &["sleep", "1000"]));
    fx.exec_until_ok(&c.id, "true");
    let began = Instant::now();
    let out = fx
        .runtime
        .exec(
            &c.id,
            ExecConfig::new(["sleep", "30"]).with_timeout(Duration::from_millis(300)),
            CAPTURE,
        )
        .unwrap();
    assert!(out.timed_out);
    assert_eq!(out.status.code, 137);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );

    // The timeout takes the process group: a shell's background children go too.
    let out = fx
        .runtime
        .exec(
            &c.id,
            ExecConfig::new(["sh", "-c", "sleep 301 & sleep 302"])
                .with_timeout(Duration::from_millis(300)),
            CAPTURE,
        )
        .unwrap();
    assert!(out.timed_out);
    let ps = fx.exec(&c.id, &["ps", "-o", "args"]);
    assert!(
        !text(&ps.stdout).contains("sleep 30"),
        "{}",
        text(&ps.stdout)
    );

    // Signals sent to the exec shim reach the process.
    std::thread::scope(|s| {
        let exec = s.spawn(|| {
            fx.runtime.exec(
                &c.id,
                ExecConfig::new([
                    "sh",
                    "-c",
                    "trap 'exit 9' TERM; echo ready; while :; do sleep 0.05; done",
                ])
                .with_timeout(Duration::from_secs(20)),
                CAPTURE,
            )
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let shim = loop {
            // The process's own trap must be installed: wait for it to run its loop.
            let looping = children_named(0, "sleep 0.05").is_some();
            if let (true, Some(pid)) = (looping, exec_shim()) {
                break pid;
            }
            assert!(Instant::now() < deadline, "exec shim not found");
            std::thread::sleep(Duration::from_millis(20));
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), Signal::SIGTERM).unwrap();
        let out = exec.join().unwrap().unwrap();
        assert_eq!(out.status.code, 9, "{out:?}");
        assert_eq!(text(&out.stdout), "ready\n");
    });

    // An exec cannot outlive its container.
    std::thread::scope(|s| {
        let exec = s.spawn(|| {
            fx.runtime
                .exec(&c.id, ExecConfig::new(["sleep", "60"]), CAPTURE)
        });
        std::thread::sleep(Duration::from_millis(500));
        let began = Instant::now();
        fx.runtime.kill(&c.id, Signal::SIGKILL).unwrap();
        let out = exec.join().unwrap().unwrap();
        assert_eq!(out.status.code, 137);
        assert!(began.elapsed() < Duration::from_secs(5));
    });
    fx.runtime.wait(&c.id).unwrap();

    let err = fx
        .runtime
        .exec(&c.id, ExecConfig::new(["true"]), CAPTURE)
        .unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::WrongStatus {
                status: Status::Stopped,
                ..
            }
        ),
        "{err}"
    );
}

fn sandbox_containers_share_loopback_and_hostname_not_pids(fx: &Fixture) {
    let sb = fx.sandbox("pod", "pod-host");
    let dir = fx.runtime.sandbox_dir(&sb.sandbox.config.id);
    assert_eq!(
        fx.runtime.list_sandboxes().unwrap(),
        std::slice::from_ref(&sb.sandbox)
    );

    // The directory is a shared mount of itself with the namespace files mounted below it.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount_of = |path: &Path| {
        mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == path.to_str())
            .unwrap_or_else(|| panic!("{} not mounted: {mountinfo}", path.display()))
            .to_string()
    };
    assert!(mount_of(&dir).contains(" shared:"), "{}", mount_of(&dir));
    for kind in ["net", "ipc", "uts"] {
        mount_of(&dir.join(kind));
    }

    let mut server = fx.config(
        "server",
        &[
            "sh",
            "-c",
            "echo hello-pod > /var/www/index.html; exec httpd -f -p 127.0.0.1:8080 -h /var/www",
        ],
    );
    sb.sandbox.join(&mut server.namespaces);
    let server = fx.start(server);

    let mut client = fx.config(
        "client",
        &[
            "sh",
            "-c",
            "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ && break; sleep 0.1; done; \
             hostname; echo pid=$$; cat /proc/[0-9]*/comm | grep -cx httpd",
        ],
    );
    sb.sandbox.join(&mut client.namespaces);
    let client = fx.start(client);
    let exit = fx.runtime.wait(&client.id).unwrap();
    let log = fx.log(&client.id);
    assert_eq!(
        exit.code, 1,
        "grep finds no httpd in its own pid namespace: {log}"
    );
    assert!(log.contains("hello-pod\n"), "{log}");
    assert!(log.contains("pod-host\n"), "{log}");
    assert!(log.contains("pid=1\n"), "{log}");
    assert!(log.contains("\n0\n"), "{log}");

    // exec into a sandboxed container sees the same hostname.
    let out = fx.exec(&server.id, &["hostname"]);
    assert_eq!(text(&out.stdout), "pod-host\n");

    drop((client, server));
    let id = sb.sandbox.config.id.clone();
    drop(sb);
    assert!(!dir.exists(), "sandbox dir left");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&id), "mount left: {mountinfo}");
    assert!(fx.runtime.list_sandboxes().unwrap().is_empty());
    fx.runtime
        .delete_sandbox(&id)
        .expect("delete is idempotent");
}

fn half_created_and_failed_sandboxes_leave_nothing(fx: &Fixture) {
    // As if creation stopped after the first namespace file was mounted.
    let id = format!("sb-half-{}", std::process::id());
    let dir = fx.runtime.sandbox_dir(&id);
    std::fs::create_dir_all(&dir).unwrap();
    nix::mount::mount(
        Some(&dir),
        &dir,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    nix::mount::mount(
        None::<&str>,
        &dir,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .unwrap();
    std::fs::write(dir.join("net"), "").unwrap();
    nix::mount::mount(
        Some("/proc/self/ns/net"),
        &dir.join("net"),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    assert!(fx.runtime.list_sandboxes().unwrap().is_empty());
    fx.runtime.delete_sandbox(&id).unwrap();
    assert!(!dir.exists());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&id), "mount left: {mountinfo}");

    // The kernel refuses a 65-character hostname: create fails and cleans up after itself.
    let id = format!("sb-bad-{}", std::process::id());
    let err = fx
        .runtime
        .create_sandbox(SandboxConfig {
            id: id.clone(),
            hostname: "h".repeat(65),
            network: SandboxNetwork::New,
            labels: BTreeMap::new(),
        })
        .unwrap_err();
    assert!(matches!(err, SandboxError::Setup { .. }), "{err}");
    assert!(err.to_string().contains("sethostname"), "{err}");
    assert!(!fx.runtime.sandbox_dir(&id).exists());
}

/// The zygote's children of this process (the test binary run as `__berth-zygote`).
fn zygotes() -> Vec<i32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(me.as_str()) && cmdline.windows(14).any(|w| w == b"__berth-zygote")
        })
        .collect()
}

fn zygote_forks_sandbox_shims_and_shims_and_comes_back_after_a_kill(fx: &Fixture) {
    let rt = &fx.zygote;
    let id = format!("sb-zyg-{}", std::process::id());
    let config = |hostname: &str| SandboxConfig {
        id: id.clone(),
        hostname: hostname.into(),
        network: SandboxNetwork::New,
        labels: BTreeMap::new(),
    };
    // The sandbox shim's stderr and exit status come back through the zygote.
    let err = rt.create_sandbox(config(&"h".repeat(65))).unwrap_err();
    assert!(err.to_string().contains("sethostname"), "{err}");
    assert!(!rt.sandbox_dir(&id).exists());
    let sandbox = rt
        .create_sandbox(config("zyg-host"))
        .expect("create_sandbox");
    let sandbox = SandboxGuard {
        runtime: rt,
        sandbox,
    };
    let zygote = zygotes();
    assert_eq!(zygote.len(), 1, "one zygote, a child of this process");

    let run = |name: &str| {
        let mut config = fx.config(name, &["sh", "-c", "hostname; echo from-zygote; exit 3"]);
        sandbox.sandbox.join(&mut config.namespaces);
        let guard = start_on(rt, config);
        let exit = rt.wait(&guard.id).unwrap();
        assert_eq!(exit.code, 3);
        let log = fx.log(&guard.id);
        assert_eq!(log, "zyg-host\nfrom-zygote\n");
        guard
    };
    drop(run("zyg1"));
    assert_eq!(zygotes(), zygote, "the same zygote serves every request");

    // exec (as probes do) through the zygote: output, exit code and an exec that fails.
    let mut config = fx.config("zyg-exec", &["sleep", "30"]);
    sandbox.sandbox.join(&mut config.namespaces);
    let sleeper = start_on(rt, config);
    let exec = |args: &[&str]| rt.exec(&sleeper.id, ExecConfig::new(args.iter().copied()), CAPTURE);
    let out = exec(&["sh", "-c", "hostname; echo oops >&2; exit 7"]).expect("exec");
    assert_eq!(out.status.code, 7);
    assert_eq!(text(&out.stdout), "zyg-host\n");
    assert_eq!(text(&out.stderr), "oops\n");
    let err = exec(&["/no/such/binary"]).unwrap_err();
    assert!(matches!(err, RuntimeError::Exec { code: 127, .. }), "{err}");
    drop(sleeper);
    assert_eq!(zygotes(), zygote);

    // A dead zygote is replaced on the next request.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(zygote[0]), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{}/stat", zygote[0]))
        .is_ok_and(|s| !s.contains(") Z "))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(run("zyg2"));
    let replaced = zygotes();
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert_ne!(replaced, zygote);
}

fn main() {
    berth_runtime::shim::run_if_shim();
    type Test = fn(&Fixture);
    let tests: &[(&str, Test)] = &[
        (
            "exec_sees_the_containers_processes_hostname_and_files",
            exec_sees_the_containers_processes_hostname_and_files,
        ),
        (
            "exit_codes_errors_and_output_limits",
            exit_codes_errors_and_output_limits,
        ),
        (
            "timeout_kills_and_container_stop_ends_execs",
            timeout_kills_and_container_stop_ends_execs,
        ),
        (
            "sandbox_containers_share_loopback_and_hostname_not_pids",
            sandbox_containers_share_loopback_and_hostname_not_pids,
        ),
        (
            "zygote_forks_sandbox_shims_and_shims_and_comes_back_after_a_kill",
            zygote_forks_sandbox_shims_and_shims_and_comes_back_after_a_kill,
        ),
        (
            "half_created_and_failed_sandboxes_leave_nothing",
            half_created_and_failed_sandboxes_leave_nothing,
        ),
        (
            "cgroup_v2_places_the_init_and_execs_in_the_container_cgroup",
            cgroup_v2_places_the_init_and_execs_in_the_container_cgroup,
        ),
    ];
    container_support::run(tests, Fixture::new);
}
