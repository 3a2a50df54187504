//! cgroup v1: one hierarchy per controller (or per group of co-mounted controllers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::files::{self, POLL_INTERVAL};
use super::{
    CgroupError, CgroupManager, CgroupPath, CgroupVersion, CpuQuota, DEFAULT_KILL_TIMEOUT,
    Resources, Result, Stats,
};

/// `memory.limit_in_bytes` at or above this is the kernel's "unlimited" (PAGE_COUNTER_MAX times
/// the page size, 0x7FFFFFFFFFFFF000 on 64-bit).
const UNLIMITED_THRESHOLD: u64 = 1 << 62;
/// How long one freeze waits for `freezer.state` to reach FROZEN before signalling anyway.
const FREEZE_WAIT: Duration = Duration::from_secs(1);

/// cgroup v1 manager over a set of controller mounts.
#[derive(Debug, Clone)]
pub struct LinuxCgroupV1 {
    /// Controller name -> mount point (co-mounted controllers share a mount point).
    mounts: BTreeMap<String, PathBuf>,
    kill_timeout: Duration,
}

impl LinuxCgroupV1 {
    /// A manager over `mounts` (controller -> mount point, as [`super::detect_layout`] finds
    /// them). Every hierarchy in the map is joined.
    pub fn new(mounts: BTreeMap<String, PathBuf>) -> Self {
        Self {
            mounts,
            kill_timeout: DEFAULT_KILL_TIMEOUT,
        }
    }

    /// How long `signal_all(SIGKILL)` and `delete` wait for the cgroup to empty.
    pub fn with_kill_timeout(mut self, timeout: Duration) -> Self {
        self.kill_timeout = timeout;
        self
    }

    pub fn mounts(&self) -> &BTreeMap<String, PathBuf> {
        &self.mounts
    }

    /// Each distinct hierarchy mount point once.
    fn hierarchies(&self) -> BTreeSet<&Path> {
        self.mounts.values().map(PathBuf::as_path).collect()
    }

    /// The cgroup's directory in `controller`'s hierarchy, if that controller is mounted.
    fn dir(&self, controller: &str, path: &CgroupPath) -> Result<Option<PathBuf>> {
        let relative = path.relative()?;
        Ok(self
            .mounts
            .get(controller)
            .map(|mount| mount.join(&relative)))
    }

    fn require(&self, controller: &str, path: &CgroupPath) -> Result<PathBuf> {
        self.dir(controller, path)?
            .ok_or_else(|| CgroupError::ControllerMissing {
                controller: controller.to_owned(),
                path: path.0.clone(),
            })
    }

    /// The hierarchy whose `cgroup.procs` answers "who is in the cgroup": freezer (the one
    /// `signal_all` freezes), else pids, else memory, else any.
    fn primary_dir(&self, path: &CgroupPath) -> Result<PathBuf> {
        for controller in ["freezer", "pids", "memory"] {
            if let Some(dir) = self.dir(controller, path)? {
                return Ok(dir);
            }
        }
        let relative = path.relative()?;
        self.hierarchies()
            .into_iter()
            .next()
            .map(|mount| mount.join(relative))
            .ok_or_else(|| CgroupError::ControllerMissing {
                controller: "any".to_owned(),
                path: path.0.clone(),
            })
    }

    fn is_cpuset(&self, mount: &Path) -> bool {
        self.mounts.get("cpuset").is_some_and(|m| m == mount)
    }

    /// Create every level of `relative` below `mount`; in the cpuset hierarchy copy
    /// `cpuset.cpus`/`cpuset.mems` from the parent into each level whose values are empty, or no
    /// task could join it.
    fn create_in(&self, mount: &Path, relative: &Path) -> Result<()> {
        let cpuset = self.is_cpuset(mount);
        let mut dir = mount.to_path_buf();
        for component in relative.components() {
            let parent = dir.clone();
            dir.push(component);
            files::create_dir(&dir)?;
            if cpuset {
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let own = dir.join(file);
                    if files::read(&own)?.trim().is_empty() {
                        let inherited = files::read(&parent.join(file))?;
                        files::write(&own, inherited.trim())?;
                    }
                }
            }
        }
        Ok(())
    }

    fn set_memory(&self, dir: &Path, limit: u64) -> Result<()> {
        let memory = dir.join("memory.limit_in_bytes");
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        let value = limit.to_string();
        if !memsw.exists() {
            return files::write(&memory, &value);
        }
        // memsw must stay >= memory at every step: raise memsw first, lower memory first.
        let current = files::read_u64(&memory)?;
        if limit > current {
            files::write(&memsw, &value)?;
            files::write(&memory, &value)
        } else {
            files::write(&memory, &value)?;
            files::write(&memsw, &value)
        }
    }

    fn set_cpu_quota(&self, dir: &Path, quota: CpuQuota) -> Result<()> {
        let period = dir.join("cpu.cfs_period_us");
        let quota_file = dir.join("cpu.cfs_quota_us");
        let period_value = quota.period_us.to_string();
        let quota_value = quota.quota_us.to_string();
        // Period first, as runc does; if the kernel refuses the period against the old quota,
        // set the quota first and try again.
        match files::write(&period, &period_value) {
            Ok(()) => files::write(&quota_file, &quota_value),
            Err(CgroupError::Write { source, .. })
                if source.raw_os_error() == Some(Errno::EINVAL as i32) =>
            {
                files::write(&quota_file, &quota_value)?;
                files::write(&period, &period_value)
            }
            Err(err) => Err(err),
        }
    }

    fn freeze(&self, freezer: &Path, state: &str) -> Result<()> {
        let file = freezer.join("freezer.state");
        files::write(&file, state)?;
        if state == "THAWED" {
            return Ok(());
        }
        // FREEZING can linger; runc rewrites FROZEN while waiting.
        let frozen = files::wait_until(FREEZE_WAIT, || {
            if files::read(&file)?.trim() == "FROZEN" {
                return Ok(true);
            }
            files::write(&file, "FROZEN")?;
            Ok(false)
        })?;
        if !frozen {
            tracing::warn!(path = %freezer.display(), "cgroup did not freeze; signalling anyway");
        }
        Ok(())
    }

    fn kill_all(&self, path: &CgroupPath) -> Result<()> {
        let primary = self.primary_dir(path)?;
        if !primary.exists() {
            return Ok(());
        }
        // Nothing to kill (the usual case once a container's init has exited): no freezing,
        // which would also flip the kernel's freezer static key, patching its text on every CPU.
        if files::subtree_pids(&primary)?.is_empty() {
            return Ok(());
        }
        let freezer = self
            .dir("freezer", path)?
            .filter(|dir| dir.join("freezer.state").exists());
        let start = Instant::now();
        loop {
            let round = || -> Result<bool> {
                match &freezer {
                    Some(freezer) => {
                        self.freeze(freezer, "FROZEN")?;
                        let result = files::signal_subtree(&primary, Signal::SIGKILL);
                        // Thaw even if signalling failed, or the tasks stay frozen forever.
                        let thawed = self.freeze(freezer, "THAWED");
                        result?;
                        thawed?;
                    }
                    None => {
                        files::signal_subtree(&primary, Signal::SIGKILL)?;
                    }
                }
                files::wait_until(POLL_INTERVAL * 5, || {
                    Ok(files::subtree_pids(&primary)?.is_empty())
                })
            };
            if files::done_unless_gone(&primary, round())? {
                tracing::debug!(cgroup = %path, "cgroup emptied");
                return Ok(());
            }
            if start.elapsed() >= self.kill_timeout {
                return Err(CgroupError::KillTimeout {
                    path: primary,
                    waited: start.elapsed(),
                });
            }
        }
    }
}

impl CgroupManager for LinuxCgroupV1 {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn layout(&self) -> super::Layout {
        super::Layout::V1 {
            mounts: self.mounts.clone(),
        }
    }

    fn create(&self, path: &CgroupPath, resources: &Resources) -> Result<()> {
        let relative = path.relative()?;
        for mount in self.hierarchies() {
            self.create_in(mount, &relative)?;
        }
        if let (Some(rules), Some(dir)) = (resources.devices.rules(), self.dir("devices", path)?) {
            // Deny everything, then allow each rule: one rule per write(2). No task is in the
            // cgroup yet, so none sees the moment in between.
            files::write(&dir.join("devices.deny"), "a")?;
            let lines: Vec<String> = rules.iter().map(ToString::to_string).collect();
            files::write_each(&dir.join("devices.allow"), &lines)?;
        }
        self.update(path, resources)
    }

    fn update(&self, path: &CgroupPath, resources: &Resources) -> Result<()> {
        if let Some(limit) = resources.memory_limit {
            self.set_memory(&self.require("memory", path)?, limit)?;
        }
        if let Some(quota) = resources.cpu_quota {
            self.set_cpu_quota(&self.require("cpu", path)?, quota)?;
        }
        if let Some(shares) = resources.cpu_shares {
            let dir = self.require("cpu", path)?;
            files::write(&dir.join("cpu.shares"), &shares.to_string())?;
        }
        if let Some(limit) = resources.pids_limit {
            let dir = self.require("pids", path)?;
            files::write(&dir.join("pids.max"), &limit.to_string())?;
        }
        Ok(())
    }

    fn add_process(&self, path: &CgroupPath, pid: Pid) -> Result<()> {
        let relative = path.relative()?;
        let value = pid.as_raw().to_string();
        for mount in self.hierarchies() {
            files::write(&mount.join(&relative).join("cgroup.procs"), &value)?;
        }
        Ok(())
    }

    fn join_files(&self, path: &CgroupPath) -> Result<Vec<PathBuf>> {
        let relative = path.relative()?;
        Ok(self
            .hierarchies()
            .into_iter()
            .map(|mount| mount.join(&relative).join("tasks"))
            .collect())
    }

    fn pids(&self, path: &CgroupPath) -> Result<Vec<Pid>> {
        files::read_pids(&self.primary_dir(path)?.join("cgroup.procs"))
    }

    fn signal_all(&self, path: &CgroupPath, signal: Signal) -> Result<()> {
        if signal == Signal::SIGKILL {
            return self.kill_all(path);
        }
        let primary = self.primary_dir(path)?;
        files::signal_subtree(&primary, signal).map(drop)
    }

    fn stats(&self, path: &CgroupPath) -> Result<Stats> {
        let mut stats = Stats::default();
        if let Some(dir) = self.dir("cpuacct", path)? {
            stats.cpu_usage_ns = files::read_u64(&dir.join("cpuacct.usage"))?;
        }
        if let Some(dir) = self.dir("memory", path)? {
            stats.memory_usage_bytes = files::read_u64(&dir.join("memory.usage_in_bytes"))?;
            let stat_file = dir.join("memory.stat");
            let stat = files::read(&stat_file)?;
            let inactive_file =
                files::keyed_u64(&stat_file, &stat, "total_inactive_file")?.unwrap_or(0);
            stats.memory_working_set_bytes = stats.memory_usage_bytes.saturating_sub(inactive_file);
            let limit = files::read_u64(&dir.join("memory.limit_in_bytes"))?;
            stats.memory_limit_bytes = (limit < UNLIMITED_THRESHOLD).then_some(limit);
            let oom_file = dir.join("memory.oom_control");
            let oom = files::read(&oom_file)?;
            stats.oom_kill_count = files::keyed_u64(&oom_file, &oom, "oom_kill")?.unwrap_or(0);
        }
        if let Some(dir) = self.dir("pids", path)? {
            stats.pids_current = files::read_u64(&dir.join("pids.current"))?;
        }
        Ok(stats)
    }

    fn saw_oom_kill(&self, path: &CgroupPath) -> Result<bool> {
        let Some(dir) = self.dir("memory", path)? else {
            return Ok(false);
        };
        let oom_file = dir.join("memory.oom_control");
        let Some(oom) = files::read_optional(&oom_file)? else {
            return Ok(false);
        };
        Ok(files::keyed_u64(&oom_file, &oom, "oom_kill")?.unwrap_or(0) > 0)
    }

    fn delete(&self, path: &CgroupPath) -> Result<()> {
        let relative = path.relative()?;
        let primary = self.primary_dir(path)?;
        // The usual end: an empty leaf in every hierarchy, gone with one rmdir each. The primary
        // goes first, so a cgroup that still has tasks is left whole for the walk below.
        let mut leaves = vec![primary.clone()];
        leaves.extend(
            self.hierarchies()
                .into_iter()
                .map(|mount| mount.join(&relative))
                .filter(|dir| *dir != primary),
        );
        if files::remove_empty_leaves(&leaves)? {
            tracing::debug!(cgroup = %path, "cgroup deleted");
            return Ok(());
        }
        // Nested cgroups first: kill and remove children before their parents.
        let mut nested = Vec::new();
        for dir in files::subtree_post_order(&primary)? {
            if let Ok(below) = dir.strip_prefix(&primary) {
                nested.push(relative.join(below));
            }
        }
        for cgroup in &nested {
            self.kill_all(&CgroupPath::new(Path::new("/").join(cgroup)))?;
        }
        for mount in self.hierarchies() {
            for dir in files::subtree_post_order(&mount.join(&relative))? {
                files::remove_dir(&dir)?;
            }
        }
        tracing::debug!(cgroup = %path, "cgroup deleted");
        Ok(())
    }

    fn hierarchy_dirs(&self, path: &CgroupPath) -> Vec<(String, PathBuf)> {
        let Ok(relative) = path.relative() else {
            tracing::warn!(cgroup = %path, "invalid cgroup path has no hierarchy directories");
            return Vec::new();
        };
        self.hierarchies()
            .into_iter()
            .map(|mount| {
                let name = mount
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, mount.join(&relative))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command};

    use super::*;
    use crate::cgroup::testing::FakeCgroupFs;

    fn setup() -> (tempfile::TempDir, FakeCgroupFs, LinuxCgroupV1, CgroupPath) {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeCgroupFs::v1_default(dir.path());
        let manager = LinuxCgroupV1::new(fake.v1_mounts());
        let path = CgroupPath::new("/berth/c1");
        fake.add_cgroup(&path, &[]);
        (dir, fake, manager, path)
    }

    fn sleeper() -> Child {
        Command::new("/bin/busybox")
            .args(["sleep", "100"])
            .spawn()
            .expect("spawn busybox sleep")
    }

    #[test]
    fn create_applies_limits_and_initialises_cpuset() {
        let (_dir, fake, manager, path) = setup();
        let resources = Resources {
            memory_limit: Some(16 << 20),
            cpu_quota: Some(CpuQuota {
                quota_us: 50_000,
                period_us: 100_000,
            }),
            cpu_shares: Some(512),
            pids_limit: Some(64),
            ..Resources::default()
        };
        manager.create(&path, &resources).unwrap();

        assert_eq!(
            fake.read("memory/berth/c1/memory.limit_in_bytes"),
            "16777216"
        );
        assert_eq!(
            fake.read("memory/berth/c1/memory.memsw.limit_in_bytes"),
            "16777216"
        );
        assert_eq!(fake.read("cpu,cpuacct/berth/c1/cpu.cfs_quota_us"), "50000");
        assert_eq!(
            fake.read("cpu,cpuacct/berth/c1/cpu.cfs_period_us"),
            "100000"
        );
        assert_eq!(fake.read("cpu,cpuacct/berth/c1/cpu.shares"), "512");
        assert_eq!(fake.read("pids/berth/c1/pids.max"), "64");
        // Every level of the cpuset hierarchy got the parent's cpus and mems.
        for level in ["cpuset/berth", "cpuset/berth/c1"] {
            assert_eq!(fake.read(format!("{level}/cpuset.cpus")), "0-1");
            assert_eq!(fake.read(format!("{level}/cpuset.mems")), "0");
        }
        // Creating again is harmless.
        manager.create(&path, &resources).unwrap();
    }

    #[test]
    fn create_makes_missing_directories_in_every_hierarchy() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeCgroupFs::v1(dir.path(), &[&["cpu", "cpuacct"], &["memory"]]);
        let manager = LinuxCgroupV1::new(fake.v1_mounts());
        manager
            .create(&CgroupPath::new("/berth/new"), &Resources::default())
            .unwrap();
        assert!(dir.path().join("cpu,cpuacct/berth/new").is_dir());
        assert!(dir.path().join("memory/berth/new").is_dir());
    }

    #[test]
    fn create_denies_every_device_but_the_standard_ones_unless_all_are_allowed() {
        let (_dir, fake, manager, path) = setup();
        manager.create(&path, &Resources::default()).unwrap();
        assert_eq!(fake.read("devices/berth/c1/devices.deny"), "a");
        let allowed = fake.read("devices/berth/c1/devices.allow");
        let lines: Vec<&str> = allowed.lines().collect();
        assert_eq!(lines.len(), 11, "{allowed}");
        assert_eq!(lines[..3], ["c *:* m", "b *:* m", "c 1:3 rwm"]);
        assert!(lines.contains(&"c 136:* rwm"));

        // A privileged container's cgroup keeps the parent's allow-everything.
        let privileged = CgroupPath::new("/berth/c2");
        fake.add_cgroup(&privileged, &[]);
        let all = Resources {
            devices: super::super::Devices::All,
            ..Resources::default()
        };
        manager.create(&privileged, &all).unwrap();
        assert_eq!(fake.read("devices/berth/c2/devices.deny"), "");
        assert_eq!(fake.read("devices/berth/c2/devices.allow"), "");
    }

    #[test]
    fn memory_limit_can_be_lowered_and_raised() {
        let (_dir, fake, manager, path) = setup();
        for limit in [64u64 << 20, 8 << 20, 128 << 20] {
            let resources = Resources {
                memory_limit: Some(limit),
                ..Resources::default()
            };
            manager.update(&path, &resources).unwrap();
            assert_eq!(
                fake.read("memory/berth/c1/memory.limit_in_bytes"),
                limit.to_string()
            );
            assert_eq!(
                fake.read("memory/berth/c1/memory.memsw.limit_in_bytes"),
                limit.to_string()
            );
        }
    }

    #[test]
    fn memory_limit_without_swap_accounting_leaves_memsw_alone() {
        let (_dir, fake, manager, path) = setup();
        std::fs::remove_file(
            fake.dir("memory", &path)
                .join("memory.memsw.limit_in_bytes"),
        )
        .unwrap();
        let resources = Resources {
            memory_limit: Some(1 << 20),
            ..Resources::default()
        };
        manager.update(&path, &resources).unwrap();
        assert_eq!(
            fake.read("memory/berth/c1/memory.limit_in_bytes"),
            "1048576"
        );
        assert!(
            !fake
                .dir("memory", &path)
                .join("memory.memsw.limit_in_bytes")
                .exists()
        );
    }

    #[test]
    fn limit_for_an_unmounted_controller_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeCgroupFs::v1(dir.path(), &[&["memory"]]);
        let manager = LinuxCgroupV1::new(fake.v1_mounts());
        let path = CgroupPath::new("/berth/c1");
        fake.add_cgroup(&path, &[]);
        let resources = Resources {
            pids_limit: Some(5),
            ..Resources::default()
        };
        let err = manager.create(&path, &resources).unwrap_err();
        assert!(
            matches!(&err, CgroupError::ControllerMissing { controller, .. } if controller == "pids"),
            "{err}"
        );
    }

    #[test]
    fn add_process_writes_every_hierarchy_once() {
        let (_dir, fake, manager, path) = setup();
        manager.add_process(&path, Pid::from_raw(4242)).unwrap();
        for hierarchy in [
            "cpu,cpuacct",
            "cpuset",
            "memory",
            "pids",
            "freezer",
            "devices",
        ] {
            assert_eq!(
                fake.read(format!("{hierarchy}/berth/c1/cgroup.procs")),
                "4242",
                "{hierarchy}"
            );
        }
        fake.write("freezer/berth/c1/cgroup.procs", "4242\n4243\n");
        assert_eq!(
            manager.pids(&path).unwrap(),
            vec![Pid::from_raw(4242), Pid::from_raw(4243)]
        );
    }

    #[test]
    fn stats_are_parsed_from_the_control_files() {
        let (_dir, fake, manager, path) = setup();
        fake.write("cpu,cpuacct/berth/c1/cpuacct.usage", "123456789\n");
        fake.write("memory/berth/c1/memory.usage_in_bytes", "10485760\n");
        fake.write(
            "memory/berth/c1/memory.stat",
            "cache 4194304\nrss 6291456\ninactive_file 1\ntotal_inactive_file 4194304\n",
        );
        fake.write(
            "memory/berth/c1/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        fake.write("pids/berth/c1/pids.current", "3\n");

        let stats = manager.stats(&path).unwrap();
        assert_eq!(stats.cpu_usage_ns, 123_456_789);
        assert_eq!(stats.memory_usage_bytes, 10 << 20);
        assert_eq!(stats.memory_working_set_bytes, 6 << 20);
        assert_eq!(
            stats.memory_limit_bytes, None,
            "the kernel's unlimited value"
        );
        assert_eq!(stats.oom_kill_count, 2);
        assert_eq!(stats.pids_current, 3);
        assert_eq!(stats.memory_pressure_some_avg10, None);
        assert!(manager.saw_oom_kill(&path).unwrap());

        fake.write("memory/berth/c1/memory.limit_in_bytes", "16777216\n");
        // Kernels before 4.13 have no oom_kill line.
        fake.write(
            "memory/berth/c1/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\n",
        );
        let stats = manager.stats(&path).unwrap();
        assert_eq!(stats.memory_limit_bytes, Some(16 << 20));
        assert_eq!(stats.oom_kill_count, 0);
        assert!(!manager.saw_oom_kill(&path).unwrap());
    }

    #[test]
    fn signal_all_delivers_other_signals_without_freezing() {
        let (_dir, fake, manager, path) = setup();
        let mut child = sleeper();
        fake.write(
            "freezer/berth/c1/cgroup.procs",
            &format!("{}\n", child.id()),
        );
        manager.signal_all(&path, Signal::SIGTERM).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
        assert_eq!(fake.read("freezer/berth/c1/freezer.state"), "THAWED\n");
    }

    #[test]
    fn signals_reach_nested_cgroups() {
        let (_dir, fake, manager, path) = setup();
        let nested = CgroupPath::new("/berth/c1/nested");
        fake.add_cgroup(&nested, &[]);
        let mut child = sleeper();
        fake.write(
            "freezer/berth/c1/nested/cgroup.procs",
            &format!("{}\n", child.id()),
        );
        assert!(
            manager.pids(&path).unwrap().is_empty(),
            "own processes only"
        );
        manager.signal_all(&path, Signal::SIGTERM).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn sigkill_freezes_kills_thaws_and_gives_up_after_the_timeout() {
        let (_dir, fake, manager, path) = setup();
        let manager = manager.with_kill_timeout(Duration::from_millis(100));
        let mut child = sleeper();
        // The fake's cgroup.procs never empties, so the kill loop must time out.
        fake.write(
            "freezer/berth/c1/cgroup.procs",
            &format!("{}\n", child.id()),
        );
        let err = manager.signal_all(&path, Signal::SIGKILL).unwrap_err();
        assert!(matches!(err, CgroupError::KillTimeout { .. }), "{err}");
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert_eq!(fake.read("freezer/berth/c1/freezer.state"), "THAWED");
    }

    #[test]
    fn v1_has_no_placement_and_makes_nothing_for_it() {
        let (_dir, _fake, manager, _path) = setup();
        let path = CgroupPath::new("/berth/not-made");
        assert_eq!(manager.create_for_placement(&path).unwrap(), None);
        assert_eq!(manager.placement_dir(&path).unwrap(), None);
        assert!(
            manager
                .hierarchy_dirs(&path)
                .iter()
                .all(|(_, dir)| !dir.exists())
        );
    }

    #[test]
    fn delete_of_a_missing_cgroup_is_fine() {
        let (_dir, _fake, manager, _path) = setup();
        manager
            .delete(&CgroupPath::new("/berth/never-created"))
            .unwrap();
        manager
            .delete(&CgroupPath::new("/not-even-the-parent/x"))
            .unwrap();
    }

    #[test]
    fn rejects_paths_that_leave_the_hierarchy() {
        let (_dir, _fake, manager, _path) = setup();
        let err = manager
            .create(&CgroupPath::new("/berth/../../x"), &Resources::default())
            .unwrap_err();
        assert!(matches!(err, CgroupError::InvalidPath { .. }), "{err}");
        assert!(manager.hierarchy_dirs(&CgroupPath::new("/")).is_empty());
    }
}
