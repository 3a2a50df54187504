//! Root-only tests of [`LinuxContainerRuntime`] with real containers on a busybox image. This
//! binary has its own `main`: the runtime re-executes it as its container, exec and sandbox
//! shim, so the first thing it does is `run_if_shim`, before any tokio thread exists. Every
//! container and sandbox gets a fresh random id; a guard removes them (through the synchronous
//! runtime) even when a test panics.
//!
//! Run: `cargo test -p berth-agent --test linux_runtime [-- FILTER]` as root.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_agent::linux::LinuxContainerRuntime;
use berth_agent::runtime::{
    ContainerId, ContainerRuntime, ContainerSpec, ContainerState, LabelFilter, Resources,
    RuntimeError, SandboxId, SandboxSpec, Security, Signal, labels,
};
use berth_runtime::container::LinuxRuntime;
use berth_runtime::image::{BuildOptions, ImageStore};

const IMAGE: &str = "busybox:agent-test";
/// The same with `USER www` (33:33 in the busybox rootfs' /etc/passwd).
const WWW_IMAGE: &str = "busybox:agent-test-www";

struct Fixture {
    dir: tempfile::TempDir,
    tokio: tokio::runtime::Runtime,
    /// The synchronous runtime the cleanup guards use.
    cleanup: LinuxRuntime,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = berth_runtime::testing::busybox_rootfs(dir.path());
        let images = ImageStore::open(&dir.path().join("images")).expect("image store");
        let options = BuildOptions {
            rootfs_dir: rootfs,
            tag: IMAGE.into(),
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin".into(), "FROM_IMAGE=yes".into()],
            ..BuildOptions::default()
        };
        images.build(options.clone()).expect("build image");
        images
            .build(BuildOptions {
                tag: WWW_IMAGE.into(),
                user: Some("www".into()),
                ..options
            })
            .expect("build www image");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let cleanup = linux_runtime(dir.path());
        Self {
            dir,
            tokio,
            cleanup,
        }
    }

    /// A fresh adapter over the fixture's directories, as an agent (re)starting would make.
    fn adapter(&self) -> LinuxContainerRuntime {
        LinuxContainerRuntime::new(
            linux_runtime(self.dir.path()),
            ImageStore::open(&self.dir.path().join("images")).expect("image store"),
        )
    }

    fn guard(&self) -> Guard<'_> {
        Guard {
            runtime: &self.cleanup,
            containers: Mutex::default(),
            sandboxes: Mutex::default(),
        }
    }
}

fn linux_runtime(dir: &Path) -> LinuxRuntime {
    berth_runtime::testing::test_runtime(dir, "/berth-test-agent")
}

/// Removes what a test made, even when it panics.
struct Guard<'a> {
    runtime: &'a LinuxRuntime,
    containers: Mutex<Vec<ContainerId>>,
    sandboxes: Mutex<Vec<SandboxId>>,
}

impl Guard<'_> {
    fn container(&self, id: ContainerId) -> ContainerId {
        self.containers.lock().unwrap().push(id.clone());
        id
    }

    fn sandbox(&self, id: SandboxId) -> SandboxId {
        self.sandboxes.lock().unwrap().push(id.clone());
        id
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        for id in self.containers.lock().unwrap().drain(..) {
            if let Ok(id) = id.0.parse() {
                let _ = self.runtime.delete(&id, true);
            }
        }
        for id in self.sandboxes.lock().unwrap().drain(..) {
            let _ = self.runtime.delete_sandbox(&id.0);
        }
    }
}

fn spec(name: &str, argv: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: IMAGE.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..ContainerSpec::default()
    }
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

async fn run(
    rt: &LinuxContainerRuntime,
    guard: &Guard<'_>,
    spec: ContainerSpec,
) -> Result<ContainerId, RuntimeError> {
    let id = guard.container(rt.create(spec).await?);
    rt.start(&id).await?;
    Ok(id)
}

/// Waits until the container has created `/tmp/ready`.
async fn until_ready(rt: &LinuxContainerRuntime, id: &ContainerId) {
    let probe = argv(&["test", "-e", "/tmp/ready"]);
    for _ in 0..100 {
        let result = rt.exec(id, &probe, Duration::from_secs(5)).await;
        if result.expect("exec test").exit_code == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("container {id} never became ready");
}

fn sandbox_containers_share_loopback_and_hostname(fx: &Fixture) {
    let guard = fx.guard();
    let rt = fx.adapter();
    fx.tokio.block_on(async {
        let sandbox = rt
            .create_sandbox(SandboxSpec {
                dns: None,
                name: "default/web".into(),
                hostname: "web-0".into(),
                ..SandboxSpec::default()
            })
            .await
            .expect("create sandbox");
        let sandbox = guard.sandbox(sandbox.id);
        let mut httpd = spec(
            "httpd",
            &["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/var/www"],
        );
        httpd.sandbox = Some(sandbox.clone());
        let httpd = run(&rt, &guard, httpd).await.expect("httpd");
        let fetch = "for i in $(seq 50); do wget -q -O - http://127.0.0.1:8080/ && exit 0; \
                     sleep 0.1; done; exit 1";
        let mut wget = spec("wget", &["sh", "-c", fetch]);
        wget.sandbox = Some(sandbox.clone());
        let wget = run(&rt, &guard, wget).await.expect("wget");
        let exit = rt.wait(&wget).await.expect("wait wget");
        assert!(
            exit.succeeded(),
            "wget through the shared loopback: {exit:?}"
        );

        let page = rt
            .exec(
                &httpd,
                &argv(&["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]),
                Duration::from_secs(10),
            )
            .await
            .expect("exec wget");
        let page = String::from_utf8_lossy(&page.stdout).into_owned();
        assert!(page.contains("hello from berth"), "{page}");
        let hostname = rt
            .exec(&httpd, &argv(&["hostname"]), Duration::from_secs(10))
            .await
            .expect("exec hostname");
        assert_eq!(hostname.stdout, b"web-0\n");

        let info = rt.inspect(&httpd).await.expect("inspect");
        assert_eq!(info.sandbox.as_ref(), Some(&sandbox));
        assert_eq!((info.name.as_str(), info.image.as_str()), ("httpd", IMAGE));
        assert_eq!(info.state, ContainerState::Running);
        assert!(info.pid.is_some());

        rt.stop(&httpd, Duration::from_millis(300), None)
            .await
            .expect("stop httpd");
        for id in [&httpd, &wget] {
            rt.delete(id).await.expect("delete");
            assert!(matches!(
                rt.inspect(id).await,
                Err(RuntimeError::ContainerNotFound { .. })
            ));
        }
        rt.delete_sandbox(&sandbox).await.expect("delete sandbox");
        let dir = fx.dir.path().join("run/sandboxes").join(&sandbox.0);
        assert!(!dir.exists(), "{} left behind", dir.display());
        // Both deletions are idempotent.
        rt.delete_sandbox(&sandbox).await.expect("delete again");
        rt.delete(&httpd).await.expect("delete again");
    });
}

fn wait_reports_the_exit_and_is_cancellable(fx: &Fixture) {
    let guard = fx.guard();
    let rt = fx.adapter();
    fx.tokio.block_on(async {
        let id = run(&rt, &guard, spec("exit7", &["sh", "-c", "sleep 1; exit 7"]))
            .await
            .expect("run");
        // Dropping a pending wait (here by a timeout) only stops waiting.
        let early = tokio::time::timeout(Duration::from_millis(200), rt.wait(&id)).await;
        assert!(early.is_err(), "wait returned early: {early:?}");
        let began = Instant::now();
        let exit = rt.wait(&id).await.expect("wait");
        assert_eq!(
            (exit.exit_code, exit.signal, exit.oom_killed),
            (7, None, false)
        );
        assert!(exit.finished_at >= exit.started_at, "{exit:?}");
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "{:?}",
            began.elapsed()
        );
        // Several waiters at once, and after the fact, see the same exit.
        let (a, b) = tokio::join!(rt.wait(&id), rt.wait(&id));
        assert_eq!(a.expect("wait a"), exit);
        assert_eq!(b.expect("wait b"), exit);
        assert_eq!(
            rt.inspect(&id).await.expect("inspect").state,
            ContainerState::Exited(exit)
        );
        let exec = rt.exec(&id, &argv(&["true"]), Duration::from_secs(1)).await;
        assert!(
            matches!(exec, Err(RuntimeError::InvalidState { .. })),
            "{exec:?}"
        );
    });
}

fn stop_sends_the_signal_then_kills_after_grace(fx: &Fixture) {
    let guard = fx.guard();
    let rt = fx.adapter();
    fx.tokio.block_on(async {
        let stubborn = run(
            &rt,
            &guard,
            spec("stubborn", &["sh", "-c", "trap '' TERM; sleep 100"]),
        )
        .await
        .expect("run stubborn");
        let began = Instant::now();
        rt.stop(&stubborn, Duration::from_millis(500), None)
            .await
            .expect("stop stubborn");
        let took = began.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(8),
            "{took:?}"
        );
        let exit = rt.wait(&stubborn).await.expect("wait stubborn");
        assert_eq!((exit.exit_code, exit.signal), (137, Some(Signal::KILL)));

        let polite = run(
            &rt,
            &guard,
            spec(
                "polite",
                &[
                    "sh",
                    "-c",
                    "trap 'exit 3' USR1; touch /tmp/ready; while true; do sleep 0.1; done",
                ],
            ),
        )
        .await
        .expect("run polite");
        // A PID 1 ignores signals it has no handler for: wait until the trap is set.
        until_ready(&rt, &polite).await;
        let began = Instant::now();
        rt.stop(&polite, Duration::from_secs(20), Some(Signal::USR1))
            .await
            .expect("stop polite");
        let took = began.elapsed();
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(rt.wait(&polite).await.expect("wait polite").exit_code, 3);
        // Stopping an exited container succeeds.
        rt.stop(&polite, Duration::from_secs(1), None)
            .await
            .expect("stop again");

        let killed = run(&rt, &guard, spec("killed", &["sleep", "100"]))
            .await
            .expect("run killed");
        rt.kill(&killed, Signal::KILL).await.expect("kill");
        let exit = rt.wait(&killed).await.expect("wait killed");
        assert_eq!((exit.exit_code, exit.signal), (137, Some(Signal::KILL)));
        let again = rt.kill(&killed, Signal::KILL).await;
        assert!(
            matches!(again, Err(RuntimeError::InvalidState { .. })),
            "{again:?}"
        );
    });
}

fn exec_captures_output_and_times_out(fx: &Fixture) {
    let guard = fx.guard();
    let rt = fx.adapter();
    fx.tokio.block_on(async {
        let mut sleeper = spec("sleeper", &["sleep", "100"]);
        sleeper.env = vec![("FROM_SPEC".into(), "1".into())];
        let id = run(&rt, &guard, sleeper).await.expect("run");
        let out = rt
            .exec(
                &id,
                &argv(&[
                    "sh",
                    "-c",
                    "echo $FROM_IMAGE$FROM_SPEC; echo err >&2; exit 4",
                ]),
                Duration::from_secs(10),
            )
            .await
            .expect("exec");
        assert_eq!(out.exit_code, 4);
        assert_eq!(out.stdout, b"yes1\n", "image env merged with the spec's");
        assert_eq!(out.stderr, b"err\n");

        let big = rt
            .exec(
                &id,
                &argv(&["head", "-c", "100000", "/dev/zero"]),
                Duration::from_secs(10),
            )
            .await
            .expect("exec big");
        assert_eq!((big.exit_code, big.stdout.len()), (0, 10 * 1024));

        let began = Instant::now();
        let slow = rt
            .exec(&id, &argv(&["sleep", "30"]), Duration::from_millis(300))
            .await;
        assert!(
            matches!(slow, Err(RuntimeError::ExecTimedOut { .. })),
            "{slow:?}"
        );
        assert!(began.elapsed() < Duration::from_secs(10));

        let missing = rt
            .exec(&id, &argv(&["/no/such"]), Duration::from_secs(5))
            .await;
        assert!(
            matches!(missing, Err(RuntimeError::Exec { .. })),
            "{missing:?}"
        );

        let stats = rt.stats(&id).await.expect("stats");
        assert!(stats.pids >= 1 && stats.memory_usage_bytes > 0, "{stats:?}");
        rt.stop(&id, Duration::from_millis(100), None)
            .await
            .expect("stop");
    });
}

fn list_finds_containers_again_after_an_agent_restart(fx: &Fixture) {
    let guard = fx.guard();
    let pod_uid = format!("uid-{}", std::process::id());
    let pod_labels: BTreeMap<String, String> = [(labels::POD_UID.to_string(), pod_uid.clone())]
        .into_iter()
        .collect();
    let (sandbox, running, created) = fx.tokio.block_on(async {
        let rt = fx.adapter();
        let sandbox = rt
            .create_sandbox(SandboxSpec {
                dns: None,
                name: "default/readopt".into(),
                hostname: "readopt".into(),
                labels: pod_labels.clone(),
                ..SandboxSpec::default()
            })
            .await
            .expect("sandbox");
        let sandbox = guard.sandbox(sandbox.id);
        let mut ids = Vec::new();
        for name in ["main", "side"] {
            let mut spec = spec(name, &["sleep", "100"]);
            spec.sandbox = Some(sandbox.clone());
            spec.labels = pod_labels.clone();
            spec.labels
                .insert(labels::CONTAINER_NAME.into(), name.into());
            ids.push(guard.container(rt.create(spec).await.expect("create")));
        }
        rt.start(&ids[0]).await.expect("start");
        (sandbox, ids[0].clone(), ids[1].clone())
        // The first adapter is dropped here, as an agent that exits.
    });
    fx.tokio.block_on(async {
        let rt = fx.adapter();
        let mut found = rt
            .list(&LabelFilter::new([(labels::POD_UID, pod_uid.as_str())]))
            .await
            .expect("list");
        found.sort_by(|a, b| a.name.cmp(&b.name));
        let seen: Vec<_> = found
            .iter()
            .map(|c| (c.id.clone(), c.name.as_str(), c.state.clone()))
            .collect();
        assert_eq!(
            seen,
            [
                (running.clone(), "main", ContainerState::Running),
                (created.clone(), "side", ContainerState::Created),
            ]
        );
        for info in &found {
            assert_eq!(info.sandbox.as_ref(), Some(&sandbox));
            assert_eq!(info.labels.get(labels::POD_UID), Some(&pod_uid));
            assert!(
                info.labels
                    .keys()
                    .all(|k| !k.starts_with("berth.dev/agent."))
            );
        }
        let side = LabelFilter::new([
            (labels::POD_UID, pod_uid.as_str()),
            (labels::CONTAINER_NAME, "side"),
        ]);
        assert_eq!(rt.list(&side).await.expect("list side").len(), 1);
        let other = LabelFilter::new([(labels::POD_UID, "no-such-pod")]);
        assert!(rt.list(&other).await.expect("list other").is_empty());

        // The new instance waits on the re-adopted container through its pidfd.
        let waiter = {
            let rt = rt.clone();
            let id = running.clone();
            tokio::spawn(async move { rt.wait(&id).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        rt.kill(&running, Signal::KILL).await.expect("kill");
        let exit = waiter.await.expect("join").expect("wait");
        assert_eq!(exit.signal, Some(Signal::KILL));
        // A never-started container can be deleted.
        for id in [&running, &created] {
            rt.delete(id).await.expect("delete");
        }
        rt.delete_sandbox(&sandbox).await.expect("delete sandbox");
    });
}

fn memory_limit_reports_oom_killed(fx: &Fixture) {
    let guard = fx.guard();
    let rt = fx.adapter();
    fx.tokio.block_on(async {
        let mut hog = spec("hog", &["tail", "/dev/zero"]);
        hog.resources = Resources {
            memory_limit_bytes: Some(16 << 20),
            ..Resources::default()
        };
        let id = run(&rt, &guard, hog).await.expect("run");
        let exit = tokio::time::timeout(Duration::from_secs(60), rt.wait(&id))
            .await
            .expect("OOM kill within a minute")
            .expect("wait");
        assert_eq!((exit.exit_code, exit.oom_killed), (137, true), "{exit:?}");
        assert!(!exit.succeeded());
    });
}

fn create_reports_missing_images_and_sandboxes(fx: &Fixture) {
    let rt = fx.adapter();
    fx.tokio.block_on(async {
        let mut missing_image = spec("x", &["true"]);
        missing_image.image = "no-such-image:1".into();
        let err = rt.create(missing_image).await;
        assert!(matches!(err, Err(RuntimeError::Create { .. })), "{err:?}");
        let mut missing_sandbox = spec("x", &["true"]);
        missing_sandbox.sandbox = Some(SandboxId("no-such-sandbox".into()));
        let err = rt.create(missing_sandbox).await;
        assert!(
            matches!(err, Err(RuntimeError::SandboxNotFound { .. })),
            "{err:?}"
        );
        // The init checks the executable before it waits for start.
        let missing_exe = rt.create(spec("nope", &["/no/such/exe"])).await;
        assert!(
            matches!(&missing_exe, Err(RuntimeError::Create { message, .. }) if message.contains("/no/such/exe")),
            "{missing_exe:?}"
        );
        let gone = ContainerId("no-such-container".into());
        assert!(matches!(
            rt.wait(&gone).await,
            Err(RuntimeError::ContainerNotFound { .. })
        ));
        rt.delete(&gone)
            .await
            .expect("deleting a missing container");
    });
}

fn security_context_and_image_user_reach_the_process(fx: &Fixture) {
    let guard = fx.guard();
    let rt = fx.adapter();
    fx.tokio.block_on(async {
        let locked_script = "grep -Eq '^NoNewPrivs:[[:space:]]+1$' /proc/self/status || exit 10; \
             grep -Eq '^CapEff:[[:space:]]+0+$' /proc/self/status || exit 11; \
             touch /written 2>/dev/null && exit 12; exit 0";
        let mut locked = spec("locked", &["sh", "-c", locked_script]);
        locked.security = Security {
            read_only_root_filesystem: true,
            capabilities_drop: vec!["ALL".into()],
            no_new_privileges: true,
            ..Security::default()
        };
        let id = run(&rt, &guard, locked).await.expect("run locked");
        assert_eq!(rt.wait(&id).await.expect("wait locked").exit_code, 0);

        let mut www = spec("www", &["sh", "-c", "[ \"$(id -u):$(id -g)\" = 33:33 ]"]);
        www.image = WWW_IMAGE.into();
        let id = run(&rt, &guard, www).await.expect("run www");
        assert_eq!(rt.wait(&id).await.expect("wait www").exit_code, 0);

        let open_script = "grep -Eq '^NoNewPrivs:[[:space:]]+0$' /proc/self/status || exit 10; \
             touch /written || exit 12";
        let id = run(&rt, &guard, spec("open", &["sh", "-c", open_script]))
            .await
            .expect("run open");
        assert_eq!(rt.wait(&id).await.expect("wait open").exit_code, 0);
    });
}

type Test = berth_runtime::testing::Test<Fixture>;

const TESTS: &[Test] = &[
    (
        "sandbox_containers_share_loopback_and_hostname",
        sandbox_containers_share_loopback_and_hostname,
    ),
    (
        "wait_reports_the_exit_and_is_cancellable",
        wait_reports_the_exit_and_is_cancellable,
    ),
    (
        "stop_sends_the_signal_then_kills_after_grace",
        stop_sends_the_signal_then_kills_after_grace,
    ),
    (
        "exec_captures_output_and_times_out",
        exec_captures_output_and_times_out,
    ),
    (
        "list_finds_containers_again_after_an_agent_restart",
        list_finds_containers_again_after_an_agent_restart,
    ),
    (
        "memory_limit_reports_oom_killed",
        memory_limit_reports_oom_killed,
    ),
    (
        "security_context_and_image_user_reach_the_process",
        security_context_and_image_user_reach_the_process,
    ),
    (
        "create_reports_missing_images_and_sandboxes",
        create_reports_missing_images_and_sandboxes,
    ),
];

fn main() {
    berth_runtime::shim::run_if_shim();
    berth_runtime::testing::run_tests(TESTS, Fixture::new);
}
