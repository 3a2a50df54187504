//! Real cgroup v2 tests against whatever cgroup2 mount the host has: `/sys/fs/cgroup` on a pure
//! v2 host, `/sys/fs/cgroup/unified` on a hybrid one (where no controller is enabled, so only the
//! core files — procs, kill, freeze, events, cpu.stat, PSI — are exercised). Need root; skip
//! themselves otherwise.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_runtime::cgroup::{CgroupManager, CgroupPath, Devices, LinuxCgroupV2, Resources};
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
    let Some(mount) = berth_runtime::testing::cgroup2_mount() else {
        eprintln!("skipped: no cgroup2 mount");
        return None;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    Some(Guard {
        manager: LinuxCgroupV2::new(mount),
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

/// The eBPF device filter as the kernel runs it: a process moved into the cgroup can open
/// /dev/null but not a node it made for /dev/kmsg (1:11, which opens for writing without any
/// capability), unless the cgroup allows every device.
#[test]
fn cgroup_v2_device_filter_allows_only_the_standard_devices() {
    let Some(mut guard) = setup() else { return };
    let nodes = tempfile::tempdir().unwrap();
    for (name, devices, expected) in [
        ("standard", Devices::Standard, "null-ok kmsg-denied"),
        ("all", Devices::All, "null-ok kmsg-opened"),
    ] {
        let path = CgroupPath::new(guard.parent.0.join(name));
        let resources = Resources {
            devices,
            ..Resources::default()
        };
        guard.manager.create(&path, &resources).unwrap();
        // Twice: a repeated create keeps the one program.
        guard.manager.create(&path, &resources).unwrap();

        let kmsg = nodes.path().join(format!("kmsg-{name}"));
        nix::sys::stat::mknod(
            &kmsg,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(1, 11),
        )
        .unwrap();
        // The child waits for a line on stdin: by then it is in the cgroup.
        let script = format!(
            "read _; (exec 3>/dev/null) && echo null-ok; \
             (exec 3>{}) 2>/dev/null && echo kmsg-opened || echo kmsg-denied",
            kmsg.display()
        );
        let mut child = Command::new("/bin/busybox")
            .args(["sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn busybox sh");
        let pid = Pid::from_raw(child.id() as i32);
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        guard.children.push(child);
        guard.manager.add_process(&path, pid).unwrap();
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        let mut out = String::new();
        stdout.read_to_string(&mut out).unwrap();
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>().join(" "),
            expected,
            "{name}"
        );
    }
}

fn dir(guard: &Guard, path: &CgroupPath) -> PathBuf {
    Path::new(guard.manager.root()).join(path.relative().unwrap())
}
