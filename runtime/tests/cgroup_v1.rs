//! Real cgroup v1 tests: need root and a v1 (or hybrid) host; they skip themselves otherwise.
//!
//! Every test works below its own `/berth-test-<random>` parent, which a guard deletes (killing
//! whatever is left) even when the test fails.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_runtime::cgroup::{
    self, CgroupManager, CgroupPath, CgroupVersion, CpuQuota, Layout, LinuxCgroupV1, Resources,
};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Deletes the test parent cgroup and kills the spawned children, pass or fail.
struct Guard {
    manager: LinuxCgroupV1,
    parent: CgroupPath,
    children: Vec<Child>,
}

impl Guard {
    fn path(&self, name: &str) -> CgroupPath {
        CgroupPath::new(self.parent.0.join(name))
    }

    /// A busybox shell running `script` once it reads a line from stdin, so it can be moved
    /// into a cgroup before it does anything.
    fn spawn_waiting(&mut self, script: &str) -> usize {
        let child = Command::new("/bin/busybox")
            .args(["sh", "-c", &format!("read go; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn busybox sh");
        self.children.push(child);
        self.children.len() - 1
    }

    fn pid(&self, child: usize) -> Pid {
        Pid::from_raw(self.children[child].id() as i32)
    }

    fn release(&mut self, child: usize) {
        let stdin = self.children[child].stdin.as_mut().expect("piped stdin");
        stdin.write_all(b"go\n").expect("release child");
    }

    fn wait(&mut self, child: usize) -> std::process::ExitStatus {
        self.children[child].wait().expect("wait child")
    }

    /// The child's stderr; blocks until every process holding the pipe is gone.
    fn stderr(&mut self, child: usize) -> String {
        let mut stderr = String::new();
        if let Some(mut pipe) = self.children[child].stderr.take() {
            pipe.read_to_string(&mut stderr).expect("read stderr");
        }
        stderr
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(err) = self.manager.delete(&self.parent) {
            eprintln!("cleanup of {} failed: {err}", self.parent);
        }
    }
}

/// The real v1 manager and a fresh parent, or `None` (test skipped) without root or v1.
fn setup() -> Option<Guard> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let mountinfo = std::fs::read_to_string(MOUNTINFO).expect("read mountinfo");
    let Layout::V1 { mounts } =
        cgroup::detect_layout(Path::new(CGROUP_ROOT), &mountinfo).expect("cgroups mounted")
    else {
        eprintln!("skipped: host is not cgroup v1");
        return None;
    };
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    let parent = CgroupPath::new(format!(
        "/berth-test-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    Some(Guard {
        manager: LinuxCgroupV1::new(mounts),
        parent,
        children: Vec::new(),
    })
}

fn dir_of(guard: &Guard, controller: &str, path: &CgroupPath) -> PathBuf {
    guard.manager.mounts()[controller].join(path.relative().expect("valid path"))
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
        .trim()
        .to_owned()
}

#[test]
fn cgroup_v1_detect_finds_v1_on_this_host() {
    let Some(_guard) = setup() else { return };
    let manager = cgroup::detect(Path::new(CGROUP_ROOT), Path::new(MOUNTINFO)).unwrap();
    assert_eq!(manager.version(), CgroupVersion::V1);
    let names: Vec<String> = manager
        .hierarchy_dirs(&CgroupPath::new("/berth/x"))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for expected in ["cpuacct", "freezer", "memory", "pids"] {
        assert!(
            names.iter().any(|n| n.split(',').any(|c| c == expected)),
            "{expected} in {names:?}"
        );
    }
}

#[test]
fn cgroup_v1_limits_are_applied_to_the_kernel_files() {
    let Some(guard) = setup() else { return };
    let path = guard.path("limits");
    let resources = Resources {
        memory_limit: Some(32 << 20),
        cpu_quota: Some(CpuQuota {
            quota_us: 25_000,
            period_us: 50_000,
        }),
        cpu_shares: Some(256),
        pids_limit: Some(42),
        ..Resources::default()
    };
    guard.manager.create(&path, &resources).unwrap();
    let memory = dir_of(&guard, "memory", &path);
    assert_eq!(read(memory.join("memory.limit_in_bytes")), "33554432");
    if memory.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(read(memory.join("memory.memsw.limit_in_bytes")), "33554432");
    }
    let cpu = dir_of(&guard, "cpu", &path);
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "25000");
    assert_eq!(read(cpu.join("cpu.cfs_period_us")), "50000");
    assert_eq!(read(cpu.join("cpu.shares")), "256");
    assert_eq!(read(dir_of(&guard, "pids", &path).join("pids.max")), "42");
    let cpuset = dir_of(&guard, "cpuset", &path);
    let root_cpus = read(guard.manager.mounts()["cpuset"].join("cpuset.cpus"));
    assert_eq!(read(cpuset.join("cpuset.cpus")), root_cpus);

    // Lower then raise the memory limit (memsw ordering), change the CPU period.
    for limit in [8u64 << 20, 64 << 20] {
        let update = Resources {
            memory_limit: Some(limit),
            cpu_quota: Some(CpuQuota {
                quota_us: 10_000,
                period_us: 20_000,
            }),
            ..Resources::default()
        };
        guard.manager.update(&path, &update).unwrap();
        assert_eq!(
            read(memory.join("memory.limit_in_bytes")),
            limit.to_string()
        );
        assert_eq!(
            guard.manager.stats(&path).unwrap().memory_limit_bytes,
            Some(limit)
        );
    }
    assert_eq!(read(cpu.join("cpu.cfs_period_us")), "20000");
}

#[test]
fn cgroup_v1_processes_join_every_hierarchy_and_sigkill_empties_the_cgroup() {
    let Some(mut guard) = setup() else { return };
    let path = guard.path("procs");
    guard.manager.create(&path, &Resources::default()).unwrap();
    let child = guard.spawn_waiting("i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; sleep 100");
    let pid = guard.pid(child);
    guard.manager.add_process(&path, pid).unwrap();
    assert_eq!(guard.manager.pids(&path).unwrap(), vec![pid]);
    let membership = read(PathBuf::from(format!("/proc/{pid}/cgroup")));
    for controller in ["memory", "pids", "freezer", "cpuacct", "cpuset"] {
        let line = membership
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|c| c == controller))
            })
            .unwrap_or_else(|| panic!("{controller} in {membership}"));
        assert!(line.ends_with(&path.to_string()), "{line}");
    }

    guard.release(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let stats = guard.manager.stats(&path).unwrap();
        if stats.cpu_usage_ns > 0 && stats.memory_usage_bytes > 0 || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(stats.cpu_usage_ns > 0, "{stats:?}");
    assert!(stats.memory_usage_bytes > 0, "{stats:?}");
    assert_eq!(
        stats.pids_current, 1,
        "the shell (busybox runs sleep in-process): {stats:?}"
    );
    assert_eq!(stats.memory_limit_bytes, None);

    guard.manager.signal_all(&path, Signal::SIGKILL).unwrap();
    assert!(guard.manager.pids(&path).unwrap().is_empty());
    let status = guard.wait(child);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(
        read(dir_of(&guard, "freezer", &path).join("freezer.state")),
        "THAWED"
    );
}

#[test]
fn cgroup_v1_memory_limit_triggers_the_oom_killer() {
    let Some(mut guard) = setup() else { return };
    let path = guard.path("oom");
    let resources = Resources {
        memory_limit: Some(16 << 20),
        ..Resources::default()
    };
    guard.manager.create(&path, &resources).unwrap();
    assert!(!guard.manager.saw_oom_kill(&path).unwrap());
    let child = guard.spawn_waiting(r#"x=$(head -c 100000000 /dev/zero | tr '\0' a); echo ${#x}"#);
    guard.manager.add_process(&path, guard.pid(child)).unwrap();
    guard.release(child);
    let status = guard.wait(child);
    let stats = guard.manager.stats(&path).unwrap();
    assert!(stats.oom_kill_count >= 1, "{status:?} {stats:?}");
    assert!(guard.manager.saw_oom_kill(&path).unwrap());
    assert_eq!(stats.memory_limit_bytes, Some(16 << 20));
}

#[test]
fn cgroup_v1_pids_limit_stops_forks() {
    let Some(mut guard) = setup() else { return };
    let path = guard.path("pids");
    let resources = Resources {
        pids_limit: Some(5),
        ..Resources::default()
    };
    guard.manager.create(&path, &resources).unwrap();
    // ash gives up at the first fork that fails, leaving the sleeps that got in.
    let child = guard.spawn_waiting(
        "i=0; while [ $i -lt 10 ]; do /bin/busybox sleep 100 & i=$((i+1)); done; \
         exec /bin/busybox sleep 100",
    );
    guard.manager.add_process(&path, guard.pid(child)).unwrap();
    guard.release(child);
    let status = guard.wait(child);
    assert_ne!(
        status.code(),
        None,
        "the shell exits on its own: {status:?}"
    );
    assert_ne!(status.code(), Some(0));
    let stats = guard.manager.stats(&path).unwrap();
    assert_eq!(
        stats.pids_current, 4,
        "5 tasks at most, the shell gone: {stats:?}"
    );
    assert_eq!(guard.manager.pids(&path).unwrap().len(), 4);

    guard.manager.signal_all(&path, Signal::SIGKILL).unwrap();
    assert!(guard.manager.pids(&path).unwrap().is_empty());
    let stderr = guard.stderr(child);
    assert!(
        stderr.contains("fork"),
        "forks beyond pids.max fail: {stderr:?}"
    );
}

#[test]
fn cgroup_v1_sigkill_reaches_nested_cgroups() {
    let Some(mut guard) = setup() else { return };
    let path = guard.path("tree");
    let nested = CgroupPath::new(path.0.join("nested"));
    guard.manager.create(&path, &Resources::default()).unwrap();
    guard
        .manager
        .create(&nested, &Resources::default())
        .unwrap();
    let top = guard.spawn_waiting("sleep 100");
    let inner = guard.spawn_waiting("sleep 100");
    guard.manager.add_process(&path, guard.pid(top)).unwrap();
    guard
        .manager
        .add_process(&nested, guard.pid(inner))
        .unwrap();

    guard.manager.signal_all(&path, Signal::SIGKILL).unwrap();
    for child in [top, inner] {
        assert_eq!(guard.wait(child).signal(), Some(libc::SIGKILL));
    }
    assert!(guard.manager.pids(&nested).unwrap().is_empty());
}

#[test]
fn cgroup_v1_delete_kills_nested_cgroups_and_removes_every_directory() {
    let Some(mut guard) = setup() else { return };
    let path = guard.path("del");
    let nested = CgroupPath::new(path.0.join("nested"));
    guard.manager.create(&path, &Resources::default()).unwrap();
    guard
        .manager
        .create(&nested, &Resources::default())
        .unwrap();
    let child = guard.spawn_waiting("sleep 100");
    guard
        .manager
        .add_process(&nested, guard.pid(child))
        .unwrap();

    guard.manager.delete(&path).unwrap();
    let status = guard.wait(child);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let dirs = guard.manager.hierarchy_dirs(&path);
    assert!(dirs.len() >= 4, "{dirs:?}");
    for (name, dir) in dirs {
        assert!(!dir.exists(), "{name}: {} still exists", dir.display());
    }
    // Idempotent.
    guard.manager.delete(&path).unwrap();
}

#[test]
fn cgroup_v1_delete_kills_tasks_left_in_the_cgroup_itself() {
    let Some(mut guard) = setup() else { return };
    let path = guard.path("busy");
    guard.manager.create(&path, &Resources::default()).unwrap();
    let child = guard.spawn_waiting("sleep 100");
    guard.manager.add_process(&path, guard.pid(child)).unwrap();

    // The one-rmdir-per-hierarchy path meets EBUSY and hands over to the full walk.
    guard.manager.delete(&path).unwrap();
    assert_eq!(guard.wait(child).signal(), Some(libc::SIGKILL));
    for (name, dir) in guard.manager.hierarchy_dirs(&path) {
        assert!(!dir.exists(), "{name}: {} still exists", dir.display());
    }
}
