//! Real cgroup v2 tests against whatever cgroup2 mount the host has: `/sys/fs/cgroup` on a pure
//! v2 host, `/sys/fs/cgroup/unified` on a hybrid one (where no controller is enabled, so only the
//! core files — procs, kill, freeze, events, cpu.stat, PSI — are exercised). Need root; skip
//! themselves otherwise.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_runtime::cgroup::mountinfo;
use berth_runtime::cgroup::{CgroupManager, CgroupPath, LinuxCgroupV2, Resources};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Deletes the test parent cgroup and kills the spawned children, pass or fail.
struct Guard {
    manager: LinuxCgroupV2,
    parent: CgroupPath,
    children: Vec<Child>,
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

fn setup() -> Option<Guard> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let content = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let Some(mount) = mountinfo::parse(&content)
        .into_iter()
        .rev()
        .find(|m| m.fs_type == "cgroup2" && m.mount_point.starts_with("/sys/fs/cgroup"))
    else {
        eprintln!("skipped: no cgroup2 mount");
        return None;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    Some(Guard {
        manager: LinuxCgroupV2::new(mount.mount_point),
        parent: CgroupPath::new(format!("/berth-test-{}-{nanos:x}", std::process::id())),
        children: Vec::new(),
    })
}

#[test]
fn cgroup_v2_lifecycle_on_the_real_unified_hierarchy() {
    let Some(mut guard) = setup() else { return };
    let path = CgroupPath::new(guard.parent.0.join("c1"));
    let nested = CgroupPath::new(path.0.join("nested"));
    guard.manager.create(&path, &Resources::default()).unwrap();
    guard
        .manager
        .create(&nested, &Resources::default())
        .unwrap();

    for target in [&path, &nested] {
        let child = Command::new("/bin/busybox")
            .args(["sleep", "100"])
            .spawn()
            .expect("spawn busybox sleep");
        let pid = Pid::from_raw(child.id() as i32);
        guard.children.push(child);
        guard.manager.add_process(target, pid).unwrap();
        assert_eq!(guard.manager.pids(target).unwrap(), vec![pid]);
    }
    let stats = guard.manager.stats(&path).unwrap();
    if guard.manager.root().join("cgroup.pressure").exists() {
        assert!(stats.cpu_pressure_some_avg10.is_some(), "{stats:?}");
    }

    // SIGKILL reaches the nested cgroup too (cgroup.kill, or freeze + kill per cgroup).
    guard.manager.signal_all(&path, Signal::SIGKILL).unwrap();
    assert!(guard.manager.pids(&path).unwrap().is_empty());
    for child in &mut guard.children {
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
    let frozen = std::fs::read_to_string(dir(&guard, &path).join("cgroup.freeze")).unwrap();
    assert_eq!(frozen.trim(), "0");

    guard.manager.delete(&path).unwrap();
    assert!(!dir(&guard, &nested).exists());
    assert!(!dir(&guard, &path).exists());
    guard.manager.delete(&path).unwrap();
}

fn dir(guard: &Guard, path: &CgroupPath) -> PathBuf {
    Path::new(guard.manager.root()).join(path.relative().unwrap())
}
