//! cgroup v2: the unified hierarchy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::devices::{DeviceFilter, LinuxDeviceFilter};
use super::files::{self, POLL_INTERVAL};
use super::{
    CgroupError, CgroupManager, CgroupPath, CgroupVersion, DEFAULT_KILL_TIMEOUT, Resources, Result,
    Stats,
};

/// Controllers enabled in every ancestor's `cgroup.subtree_control`.
pub const CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];
/// How long one freeze waits for `cgroup.events` to say `frozen 1` before signalling anyway.
const FREEZE_WAIT: Duration = Duration::from_secs(1);

/// Convert v1 `cpu.shares` (2..=262144) to v2 `cpu.weight` (1..=10000) with the linear mapping
/// runc and crun use, so the default 1024 becomes 39 (not the v2 default 100: the same mapping
/// everywhere matters more than matching defaults).
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// cgroup v2 manager rooted at the unified mount.
#[derive(Debug, Clone)]
pub struct LinuxCgroupV2 {
    root: PathBuf,
    kill_timeout: Duration,
    device_filter: Arc<dyn DeviceFilter>,
}

impl LinuxCgroupV2 {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            kill_timeout: DEFAULT_KILL_TIMEOUT,
            device_filter: Arc::new(LinuxDeviceFilter),
        }
    }

    /// Put device allow lists in force with `filter` instead of the kernel's eBPF (a fake tree
    /// is no cgroup to attach a program to).
    pub fn with_device_filter(mut self, filter: Arc<dyn DeviceFilter>) -> Self {
        self.device_filter = filter;
        self
    }

    /// How long `signal_all(SIGKILL)` and `delete` wait for the cgroup to empty.
    pub fn with_kill_timeout(mut self, timeout: Duration) -> Self {
        self.kill_timeout = timeout;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, path: &CgroupPath) -> Result<PathBuf> {
        Ok(self.root.join(path.relative()?))
    }

    /// Make the cgroup's directory and its parents, enabling the controllers on the way down
    /// (a level can only enable what its parent enabled for it). Returns the directory.
    fn make_dirs(&self, path: &CgroupPath) -> Result<PathBuf> {
        let relative = path.relative()?;
        let mut dir = self.root.clone();
        for component in relative.components() {
            self.enable_controllers(&dir)?;
            dir.push(component);
            files::create_dir(&dir)?;
        }
        Ok(dir)
    }

    /// Enable in `dir`'s `cgroup.subtree_control` those of [`CONTROLLERS`] its
    /// `cgroup.controllers` offers and that are not enabled yet. A controller the kernel refuses
    /// is logged and left out; a limit that needs it fails later with `ControllerMissing`.
    fn enable_controllers(&self, dir: &Path) -> Result<()> {
        let offered = files::read(&dir.join("cgroup.controllers"))?;
        let subtree_control = dir.join("cgroup.subtree_control");
        let enabled = files::read(&subtree_control)?;
        let missing: Vec<&str> = CONTROLLERS
            .iter()
            .copied()
            .filter(|c| offered.split_whitespace().any(|o| o == *c))
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
        if files::write(&subtree_control, &all.join(" ")).is_ok() {
            return Ok(());
        }
        // One refused controller fails the whole write; enable the others one by one.
        for controller in missing {
            if let Err(err) = files::write(&subtree_control, &format!("+{controller}")) {
                tracing::warn!(path = %dir.display(), controller, ?err, "cannot enable controller");
            }
        }
        Ok(())
    }

    fn require(&self, dir: &Path, controller: &str, path: &CgroupPath) -> Result<()> {
        let offered = files::read(&dir.join("cgroup.controllers"))?;
        if offered.split_whitespace().any(|c| c == controller) {
            Ok(())
        } else {
            Err(CgroupError::ControllerMissing {
                controller: controller.to_owned(),
                path: path.0.clone(),
            })
        }
    }

    /// Whether the cgroup (with its descendants) holds no task.
    fn is_empty(dir: &Path) -> Result<bool> {
        let events_file = dir.join("cgroup.events");
        if let Some(events) = files::read_optional(&events_file)?
            && let Some(populated) = files::keyed_u64(&events_file, &events, "populated")?
        {
            return Ok(populated == 0);
        }
        Ok(files::subtree_pids(dir)?.is_empty())
    }

    fn set_frozen(dir: &Path, frozen: bool) -> Result<()> {
        files::write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
        if !frozen {
            return Ok(());
        }
        let events_file = dir.join("cgroup.events");
        let done = files::wait_until(FREEZE_WAIT, || {
            let events = files::read(&events_file)?;
            Ok(files::keyed_u64(&events_file, &events, "frozen")? == Some(1))
        })?;
        if !done {
            tracing::warn!(path = %dir.display(), "cgroup did not freeze; signalling anyway");
        }
        Ok(())
    }

    /// SIGKILL everything in the cgroup and its descendants: `cgroup.kill` (Linux 5.14+) or,
    /// failing that, freeze + kill + thaw, until the cgroup is empty or the timeout passes.
    fn kill_all(&self, dir: &Path) -> Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        let kill_file = dir.join("cgroup.kill");
        let has_kill = kill_file.exists();
        let has_freeze = dir.join("cgroup.freeze").exists();
        let start = Instant::now();
        loop {
            let round = || -> Result<bool> {
                if has_kill {
                    files::write(&kill_file, "1")?;
                } else if has_freeze {
                    Self::set_frozen(dir, true)?;
                    let result = files::signal_subtree(dir, Signal::SIGKILL);
                    let thawed = Self::set_frozen(dir, false);
                    result?;
                    thawed?;
                } else {
                    files::signal_subtree(dir, Signal::SIGKILL)?;
                }
                files::wait_until(POLL_INTERVAL * 5, || Self::is_empty(dir))
            };
            if files::done_unless_gone(dir, round())? {
                return Ok(());
            }
            if start.elapsed() >= self.kill_timeout {
                return Err(CgroupError::KillTimeout {
                    path: dir.to_path_buf(),
                    waited: start.elapsed(),
                });
            }
        }
    }
}

impl CgroupManager for LinuxCgroupV2 {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn layout(&self) -> super::Layout {
        super::Layout::V2 {
            root: self.root.clone(),
        }
    }

    fn create(&self, path: &CgroupPath, resources: &Resources) -> Result<()> {
        let dir = self.make_dirs(path)?;
        if let Some(rules) = resources.devices.rules() {
            self.device_filter
                .attach(&dir, &rules)
                .map_err(|source| CgroupError::Devices {
                    path: dir.clone(),
                    source,
                })?;
        }
        self.update(path, resources)
    }

    fn update(&self, path: &CgroupPath, resources: &Resources) -> Result<()> {
        let dir = self.dir(path)?;
        if let Some(limit) = resources.memory_limit {
            self.require(&dir, "memory", path)?;
            files::write(&dir.join("memory.max"), &limit.to_string())?;
            // No swap on top of the limit, like v1's memsw = limit. Absent without swap
            // accounting.
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                files::write(&swap, "0")?;
            }
        }
        if let Some(quota) = resources.cpu_quota {
            self.require(&dir, "cpu", path)?;
            files::write(
                &dir.join("cpu.max"),
                &format!("{} {}", quota.quota_us, quota.period_us),
            )?;
        }
        if let Some(shares) = resources.cpu_shares {
            self.require(&dir, "cpu", path)?;
            files::write(
                &dir.join("cpu.weight"),
                &shares_to_weight(shares).to_string(),
            )?;
        }
        if let Some(limit) = resources.pids_limit {
            self.require(&dir, "pids", path)?;
            files::write(&dir.join("pids.max"), &limit.to_string())?;
        }
        Ok(())
    }

    fn add_process(&self, path: &CgroupPath, pid: Pid) -> Result<()> {
        files::write(
            &self.dir(path)?.join("cgroup.procs"),
            &pid.as_raw().to_string(),
        )
    }

    fn join_files(&self, path: &CgroupPath) -> Result<Vec<PathBuf>> {
        Ok(vec![self.dir(path)?.join("cgroup.procs")])
    }

    fn placement_dir(&self, path: &CgroupPath) -> Result<Option<PathBuf>> {
        self.dir(path).map(Some)
    }

    fn create_for_placement(&self, path: &CgroupPath) -> Result<Option<PathBuf>> {
        self.make_dirs(path).map(Some)
    }

    fn pids(&self, path: &CgroupPath) -> Result<Vec<Pid>> {
        files::read_pids(&self.dir(path)?.join("cgroup.procs"))
    }

    fn signal_all(&self, path: &CgroupPath, signal: Signal) -> Result<()> {
        let dir = self.dir(path)?;
        if signal == Signal::SIGKILL {
            return self.kill_all(&dir);
        }
        files::signal_subtree(&dir, signal).map(drop)
    }

    fn stats(&self, path: &CgroupPath) -> Result<Stats> {
        let dir = self.dir(path)?;
        let mut stats = Stats::default();

        let cpu_stat_file = dir.join("cpu.stat");
        let cpu_stat = files::read(&cpu_stat_file)?;
        let usage_usec = files::keyed_u64(&cpu_stat_file, &cpu_stat, "usage_usec")?.unwrap_or(0);
        stats.cpu_usage_ns = usage_usec.saturating_mul(1000);

        if let Some(current) = files::read_optional(&dir.join("memory.current"))? {
            stats.memory_usage_bytes = files::parse_u64(&dir.join("memory.current"), &current)?;
            let stat_file = dir.join("memory.stat");
            let stat = files::read(&stat_file)?;
            let inactive_file = files::keyed_u64(&stat_file, &stat, "inactive_file")?.unwrap_or(0);
            stats.memory_working_set_bytes = stats.memory_usage_bytes.saturating_sub(inactive_file);
            let max_file = dir.join("memory.max");
            stats.memory_limit_bytes = files::parse_max(&max_file, &files::read(&max_file)?)?;
            let events_file = dir.join("memory.events");
            let events = files::read(&events_file)?;
            stats.oom_kill_count =
                files::keyed_u64(&events_file, &events, "oom_kill")?.unwrap_or(0);
        }
        let pids_file = dir.join("pids.current");
        if let Some(current) = files::read_optional(&pids_file)? {
            stats.pids_current = files::parse_u64(&pids_file, &current)?;
        }
        for (file, slot) in [
            ("memory.pressure", &mut stats.memory_pressure_some_avg10),
            ("cpu.pressure", &mut stats.cpu_pressure_some_avg10),
        ] {
            let file = dir.join(file);
            // Reading PSI fails with EOPNOTSUPP when the kernel was booted with psi=0.
            if let Ok(Some(content)) = files::read_optional(&file) {
                *slot = files::psi_some_avg10(&file, &content)?;
            }
        }
        Ok(stats)
    }

    fn saw_oom_kill(&self, path: &CgroupPath) -> Result<bool> {
        let events_file = self.dir(path)?.join("memory.events");
        let Some(events) = files::read_optional(&events_file)? else {
            return Ok(false);
        };
        Ok(files::keyed_u64(&events_file, &events, "oom_kill")?.unwrap_or(0) > 0)
    }

    fn delete(&self, path: &CgroupPath) -> Result<()> {
        let dir = self.dir(path)?;
        // The usual end: an empty leaf, gone with one rmdir.
        if files::remove_empty_leaves(std::slice::from_ref(&dir))? {
            tracing::debug!(cgroup = %path, "cgroup deleted");
            return Ok(());
        }
        for cgroup in files::subtree_post_order(&dir)? {
            self.kill_all(&cgroup)?;
            files::remove_dir(&cgroup)?;
        }
        tracing::debug!(cgroup = %path, "cgroup deleted");
        Ok(())
    }

    fn hierarchy_dirs(&self, path: &CgroupPath) -> Vec<(String, PathBuf)> {
        match self.dir(path) {
            Ok(dir) => vec![(String::new(), dir)],
            Err(err) => {
                tracing::warn!(cgroup = %path, ?err, "invalid cgroup path has no hierarchy directory");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command};

    use super::*;
    use crate::cgroup::CpuQuota;
    use crate::cgroup::testing::{FakeCgroupFs, RecordingDeviceFilter};
    use crate::cgroup::{Devices, devices};

    const ALL: &[&str] = &["cpuset", "cpu", "io", "memory", "pids"];

    fn setup(controllers: &[&str]) -> (tempfile::TempDir, FakeCgroupFs, LinuxCgroupV2, CgroupPath) {
        let (dir, fake, manager, path, _) = setup_recording(controllers);
        (dir, fake, manager, path)
    }

    fn setup_recording(
        controllers: &[&str],
    ) -> (
        tempfile::TempDir,
        FakeCgroupFs,
        LinuxCgroupV2,
        CgroupPath,
        Arc<RecordingDeviceFilter>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeCgroupFs::v2(dir.path());
        let filter = Arc::new(RecordingDeviceFilter::default());
        let manager = LinuxCgroupV2::new(dir.path()).with_device_filter(filter.clone());
        let path = CgroupPath::new("/berth/c1");
        fake.add_cgroup(&path, controllers);
        (dir, fake, manager, path, filter)
    }

    #[test]
    fn create_attaches_the_standard_device_filter_to_the_leaf_only() {
        let (dir, _fake, manager, path, filter) = setup_recording(ALL);
        manager.create(&path, &Resources::default()).unwrap();
        assert_eq!(
            filter.attached(),
            [(dir.path().join("berth/c1"), devices::standard_rules())]
        );

        // Privileged: nothing attached.
        let all = Resources {
            devices: Devices::All,
            ..Resources::default()
        };
        manager.create(&path, &all).unwrap();
        assert_eq!(filter.attached().len(), 1);
    }

    #[test]
    fn a_cgroup_made_for_placement_gets_its_filter_and_limits_from_create() {
        let (dir, fake, manager, path, filter) = setup_recording(ALL);
        let made = manager.create_for_placement(&path).unwrap();
        assert_eq!(made, Some(dir.path().join("berth/c1")));
        assert_eq!(manager.placement_dir(&path).unwrap(), made);
        // Controllers are enabled on the way down, so the child is born where limits work.
        assert_eq!(fake.read("cgroup.subtree_control"), "+cpu +memory +pids");
        assert!(filter.attached().is_empty());
        let before = fake.read("berth/c1/pids.max");

        let resources = Resources {
            pids_limit: Some(5),
            ..Resources::default()
        };
        manager.create(&path, &resources).unwrap();
        assert_ne!(before, "5");
        assert_eq!(fake.read("berth/c1/pids.max"), "5");
        assert_eq!(filter.attached().len(), 1);
    }

    #[test]
    fn a_device_filter_that_cannot_be_attached_fails_the_create() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeCgroupFs::v2(dir.path());
        let path = CgroupPath::new("/berth/c1");
        fake.add_cgroup(&path, ALL);
        let filter = Arc::new(RecordingDeviceFilter::failing(nix::errno::Errno::EPERM));
        let manager = LinuxCgroupV2::new(dir.path()).with_device_filter(filter);
        let err = manager.create(&path, &Resources::default()).unwrap_err();
        assert!(matches!(&err, CgroupError::Devices { .. }), "{err}");
    }

    fn sleeper() -> Child {
        Command::new("/bin/busybox")
            .args(["sleep", "100"])
            .spawn()
            .expect("spawn busybox sleep")
    }

    #[test]
    fn weight_conversion_matches_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // Out-of-range shares are clamped first.
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn create_enables_offered_controllers_in_every_ancestor() {
        let (_dir, fake, manager, path) = setup(ALL);
        // The intermediate level offers no pids controller.
        fake.write("berth/cgroup.controllers", "cpu io memory\n");
        manager.create(&path, &Resources::default()).unwrap();
        assert_eq!(fake.read("cgroup.subtree_control"), "+cpu +memory +pids");
        assert_eq!(fake.read("berth/cgroup.subtree_control"), "+cpu +memory");
        // The leaf holds processes; its subtree_control stays untouched.
        assert_eq!(fake.read("berth/c1/cgroup.subtree_control"), "\n");
    }

    #[test]
    fn create_enables_only_what_is_not_enabled_yet() {
        let (_dir, fake, manager, path) = setup(ALL);
        fake.write("cgroup.subtree_control", "cpu memory\n");
        fake.write("berth/cgroup.subtree_control", "cpu memory pids\n");
        manager.create(&path, &Resources::default()).unwrap();
        assert_eq!(fake.read("cgroup.subtree_control"), "+pids");
        assert_eq!(
            fake.read("berth/cgroup.subtree_control"),
            "cpu memory pids\n"
        );
    }

    #[test]
    fn create_writes_limits() {
        let (_dir, fake, manager, path) = setup(ALL);
        let resources = Resources {
            memory_limit: Some(16 << 20),
            cpu_quota: Some(CpuQuota {
                quota_us: 50_000,
                period_us: 100_000,
            }),
            cpu_shares: Some(1024),
            pids_limit: Some(5),
            ..Resources::default()
        };
        manager.create(&path, &resources).unwrap();
        assert_eq!(fake.read("berth/c1/memory.max"), "16777216");
        assert_eq!(fake.read("berth/c1/memory.swap.max"), "0");
        assert_eq!(fake.read("berth/c1/cpu.max"), "50000 100000");
        assert_eq!(fake.read("berth/c1/cpu.weight"), "39");
        assert_eq!(fake.read("berth/c1/pids.max"), "5");
    }

    #[test]
    fn limit_for_a_controller_the_cgroup_lacks_is_an_error() {
        let (_dir, _fake, manager, path) = setup(&["cpu", "memory"]);
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
    fn stats_are_parsed_from_the_control_files() {
        let (_dir, fake, manager, path) = setup(ALL);
        fake.write(
            "berth/c1/cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
        );
        fake.write("berth/c1/memory.current", "10485760\n");
        fake.write(
            "berth/c1/memory.stat",
            "anon 6291456\nfile 4194304\nactive_file 0\ninactive_file 4194304\n",
        );
        fake.write(
            "berth/c1/memory.events",
            "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n",
        );
        fake.write("berth/c1/pids.current", "4\n");
        fake.write(
            "berth/c1/memory.pressure",
            "some avg10=12.50 avg60=1.00 avg300=0.10 total=99\nfull avg10=3.00 avg60=0.00 avg300=0.00 total=9\n",
        );
        fake.write(
            "berth/c1/cpu.pressure",
            "some avg10=0.25 avg60=0.00 avg300=0.00 total=1\n",
        );

        let stats = manager.stats(&path).unwrap();
        assert_eq!(stats.cpu_usage_ns, 1_500_000);
        assert_eq!(stats.memory_usage_bytes, 10 << 20);
        assert_eq!(stats.memory_working_set_bytes, 6 << 20);
        assert_eq!(stats.memory_limit_bytes, None, "memory.max is \"max\"");
        assert_eq!(stats.oom_kill_count, 1);
        assert_eq!(stats.pids_current, 4);
        assert_eq!(stats.memory_pressure_some_avg10, Some(12.5));
        assert_eq!(stats.cpu_pressure_some_avg10, Some(0.25));
        assert!(manager.saw_oom_kill(&path).unwrap());

        fake.write("berth/c1/memory.max", "16777216\n");
        assert_eq!(
            manager.stats(&path).unwrap().memory_limit_bytes,
            Some(16 << 20)
        );
        fake.write("berth/c1/memory.max", "lots\n");
        let err = manager.stats(&path).unwrap_err();
        assert!(matches!(err, CgroupError::Parse { .. }), "{err}");
    }

    #[test]
    fn stats_without_memory_and_pids_controllers() {
        let (_dir, _fake, manager, path) = setup(&[]);
        let stats = manager.stats(&path).unwrap();
        assert_eq!(stats.memory_usage_bytes, 0);
        assert_eq!(stats.pids_current, 0);
        assert_eq!(stats.memory_pressure_some_avg10, None);
        assert_eq!(stats.cpu_pressure_some_avg10, Some(0.0));
    }

    #[test]
    fn sigkill_uses_cgroup_kill() {
        let (_dir, fake, manager, path) = setup(ALL);
        manager.signal_all(&path, Signal::SIGKILL).unwrap();
        assert_eq!(fake.read("berth/c1/cgroup.kill"), "1");
        assert_eq!(
            fake.read("berth/c1/cgroup.freeze"),
            "0\n",
            "no freeze needed"
        );
    }

    #[test]
    fn sigkill_without_cgroup_kill_freezes_signals_and_thaws() {
        let (_dir, fake, manager, path) = setup(ALL);
        let dir = fake.dir("", &path);
        std::fs::remove_file(dir.join("cgroup.kill")).unwrap();
        let mut child = sleeper();
        fake.write("berth/c1/cgroup.procs", &format!("{}\n", child.id()));
        fake.write("berth/c1/cgroup.events", "populated 0\nfrozen 1\n");
        manager.signal_all(&path, Signal::SIGKILL).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert_eq!(
            fake.read("berth/c1/cgroup.freeze"),
            "0",
            "thawed after the kill"
        );
    }

    #[test]
    fn kill_gives_up_after_the_timeout() {
        let (_dir, fake, manager, path) = setup(ALL);
        let manager = manager.with_kill_timeout(Duration::from_millis(100));
        fake.write("berth/c1/cgroup.events", "populated 1\nfrozen 0\n");
        let err = manager.signal_all(&path, Signal::SIGKILL).unwrap_err();
        assert!(matches!(err, CgroupError::KillTimeout { .. }), "{err}");
    }

    #[test]
    fn other_signals_go_to_every_listed_process() {
        let (_dir, fake, manager, path) = setup(ALL);
        let mut child = sleeper();
        fake.write("berth/c1/cgroup.procs", &format!("{}\n", child.id()));
        assert_eq!(
            manager.pids(&path).unwrap(),
            vec![Pid::from_raw(child.id() as i32)]
        );
        manager.signal_all(&path, Signal::SIGTERM).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
        assert_eq!(
            fake.read("berth/c1/cgroup.kill"),
            "",
            "cgroup.kill is for SIGKILL only"
        );
    }

    #[test]
    fn add_process_and_delete_of_a_missing_cgroup() {
        let (_dir, fake, manager, path) = setup(ALL);
        manager.add_process(&path, Pid::from_raw(77)).unwrap();
        assert_eq!(fake.read("berth/c1/cgroup.procs"), "77");
        manager.delete(&CgroupPath::new("/berth/gone")).unwrap();
        assert_eq!(
            manager.hierarchy_dirs(&path),
            vec![(String::new(), fake.root().join("berth/c1"))]
        );
    }
}
