//! A fake cgroupfs in an ordinary directory, for tests without root or without the layout under
//! test (v2 on a v1 host and vice versa).
//!
//! A real kernel fills a new cgroup directory with control files on `mkdir`; a plain directory
//! cannot, so tests declare the cgroups they will use up front with [`FakeCgroupFs::add_cgroup`]
//! (the managers' `mkdir` then finds them present). Files hold what a fresh kernel cgroup holds;
//! afterwards they hold whatever the code under test last wrote, which is what tests assert.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::CgroupPath;
use super::devices::{DeviceFilter, DeviceFilterError, DeviceRule};

/// A [`DeviceFilter`] that records what it was asked to attach (a fake tree is no cgroup to
/// attach an eBPF program to), or fails with `errno` when told to.
#[derive(Debug, Default)]
pub struct RecordingDeviceFilter {
    attached: Mutex<Vec<(PathBuf, Vec<DeviceRule>)>>,
    fail: Option<nix::errno::Errno>,
}

impl RecordingDeviceFilter {
    /// A filter whose every attach fails with `errno`.
    pub fn failing(errno: nix::errno::Errno) -> Self {
        Self {
            fail: Some(errno),
            ..Self::default()
        }
    }

    /// The (cgroup directory, rules) of every successful attach, in order.
    pub fn attached(&self) -> Vec<(PathBuf, Vec<DeviceRule>)> {
        self.attached.lock().expect("recorder lock").clone()
    }
}

impl DeviceFilter for RecordingDeviceFilter {
    fn attach(&self, cgroup_dir: &Path, rules: &[DeviceRule]) -> Result<(), DeviceFilterError> {
        if let Some(source) = self.fail {
            return Err(DeviceFilterError::Attach {
                path: cgroup_dir.to_path_buf(),
                source,
            });
        }
        self.attached
            .lock()
            .expect("recorder lock")
            .push((cgroup_dir.to_path_buf(), rules.to_vec()));
        Ok(())
    }
}

/// Controllers a fake v2 root offers.
pub const V2_ROOT_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc";

/// A fake cgroup v1 or v2 tree below `root`.
#[derive(Debug, Clone)]
pub struct FakeCgroupFs {
    root: PathBuf,
    /// v1: hierarchy directory name -> controllers in it. Empty for v2.
    hierarchies: BTreeMap<String, Vec<String>>,
}

impl FakeCgroupFs {
    /// A v2 root at `root` (an existing, normally temporary, directory).
    pub fn v2(root: &Path) -> Self {
        let fs = Self {
            root: root.to_path_buf(),
            hierarchies: BTreeMap::new(),
        };
        fs.write("cgroup.controllers", &format!("{V2_ROOT_CONTROLLERS}\n"));
        fs.write("cgroup.subtree_control", "\n");
        fs.write("cgroup.procs", "");
        fs.write(
            "cpu.pressure",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        );
        fs.write("memory.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        fs
    }

    /// A v1 layout at `root`: one directory per hierarchy, named after its controllers joined
    /// with `,` (so `&["cpu", "cpuacct"]` is a co-mount at `root/cpu,cpuacct`).
    pub fn v1(root: &Path, hierarchies: &[&[&str]]) -> Self {
        let mut fs = Self {
            root: root.to_path_buf(),
            hierarchies: BTreeMap::new(),
        };
        for controllers in hierarchies {
            let name = controllers.join(",");
            fs.hierarchies.insert(
                name.clone(),
                controllers.iter().map(|c| (*c).to_owned()).collect(),
            );
        }
        let names: Vec<String> = fs.hierarchies.keys().cloned().collect();
        for name in names {
            fs.write_v1_files(Path::new(&name), true);
        }
        fs
    }

    /// The v1 hierarchy with the usual distro layout: `cpu,cpuacct` co-mounted, the rest alone.
    pub fn v1_default(root: &Path) -> Self {
        Self::v1(
            root,
            &[
                &["cpu", "cpuacct"],
                &["cpuset"],
                &["memory"],
                &["pids"],
                &["freezer"],
                &["devices"],
            ],
        )
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// controller -> mount point, as `detect_layout` would report for this tree (v1).
    pub fn v1_mounts(&self) -> BTreeMap<String, PathBuf> {
        let mut mounts = BTreeMap::new();
        for (name, controllers) in &self.hierarchies {
            for controller in controllers {
                mounts.insert(controller.clone(), self.root.join(name));
            }
        }
        mounts
    }

    /// Declare the cgroup `path` and its missing ancestors, filled with a fresh kernel cgroup's
    /// control files. On v2 every level offers `controllers` (what its parent would have
    /// enabled); on v1 `controllers` is ignored (each hierarchy has its own).
    pub fn add_cgroup(&self, path: &CgroupPath, controllers: &[&str]) {
        let relative = path.relative().expect("valid cgroup path");
        let mut current = PathBuf::new();
        for component in relative.components() {
            current.push(component);
            if self.hierarchies.is_empty() {
                if !self.root.join(&current).exists() {
                    self.write_v2_files(&current, controllers);
                }
            } else {
                let names: Vec<String> = self.hierarchies.keys().cloned().collect();
                for name in names {
                    let dir = Path::new(&name).join(&current);
                    if !self.root.join(&dir).exists() {
                        self.write_v1_files(&dir, false);
                    }
                }
            }
        }
    }

    /// The directory of `path` in hierarchy `name` (v1) or in the tree (v2: pass "").
    pub fn dir(&self, hierarchy: &str, path: &CgroupPath) -> PathBuf {
        self.root
            .join(hierarchy)
            .join(path.relative().expect("valid cgroup path"))
    }

    /// Write `content` to `relative` below the fake root, creating directories.
    pub fn write(&self, relative: impl AsRef<Path>, content: &str) {
        let file = self.root.join(relative);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("create fake cgroup directory");
        }
        std::fs::write(&file, content).expect("write fake cgroup file");
    }

    /// The content of `relative` below the fake root.
    pub fn read(&self, relative: impl AsRef<Path>) -> String {
        let file = self.root.join(relative);
        std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("read fake cgroup file {}: {err}", file.display()))
    }

    fn write_v2_files(&self, dir: &Path, controllers: &[&str]) {
        let f = |name: &str, content: &str| self.write(dir.join(name), content);
        f(
            "cgroup.controllers",
            &format!("{}\n", controllers.join(" ")),
        );
        f("cgroup.subtree_control", "\n");
        f("cgroup.procs", "");
        f("cgroup.kill", "");
        f("cgroup.freeze", "0\n");
        f("cgroup.events", "populated 0\nfrozen 0\n");
        f("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
        f(
            "cpu.pressure",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        );
        if controllers.contains(&"cpu") {
            f("cpu.max", "max 100000\n");
            f("cpu.weight", "100\n");
        }
        if controllers.contains(&"memory") {
            f("memory.max", "max\n");
            f("memory.swap.max", "max\n");
            f("memory.current", "0\n");
            f(
                "memory.stat",
                "anon 0\nfile 0\nactive_file 0\ninactive_file 0\n",
            );
            f(
                "memory.events",
                "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
            );
            f(
                "memory.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            );
        }
        if controllers.contains(&"pids") {
            f("pids.max", "max\n");
            f("pids.current", "0\n");
        }
    }

    /// `dir` is `<hierarchy name>/<cgroup>`; `root` marks a hierarchy root, which lacks the
    /// per-cgroup files a kernel does not create there (freezer.state, pids.max, ...).
    fn write_v1_files(&self, dir: &Path, root: bool) {
        let name = dir
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let controllers = self.hierarchies.get(&name).cloned().unwrap_or_default();
        let f = |file: &str, content: &str| self.write(dir.join(file), content);
        f("cgroup.procs", "");
        f("tasks", "");
        for controller in &controllers {
            match controller.as_str() {
                "cpu" => {
                    f("cpu.shares", "1024\n");
                    f("cpu.cfs_period_us", "100000\n");
                    f("cpu.cfs_quota_us", "-1\n");
                }
                "cpuacct" => f("cpuacct.usage", "0\n"),
                "cpuset" => {
                    f("cpuset.cpus", if root { "0-1\n" } else { "\n" });
                    f("cpuset.mems", if root { "0\n" } else { "\n" });
                }
                "memory" => {
                    f("memory.limit_in_bytes", "9223372036854771712\n");
                    f("memory.memsw.limit_in_bytes", "9223372036854771712\n");
                    f("memory.usage_in_bytes", "0\n");
                    f(
                        "memory.stat",
                        "cache 0\nrss 0\ntotal_inactive_file 0\ntotal_active_file 0\n",
                    );
                    f(
                        "memory.oom_control",
                        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
                    );
                }
                "pids" if !root => {
                    f("pids.max", "max\n");
                    f("pids.current", "0\n");
                }
                "freezer" if !root => f("freezer.state", "THAWED\n"),
                "devices" => {
                    f("devices.allow", "");
                    f("devices.deny", "");
                    f("devices.list", "a *:* rwm\n");
                }
                _ => {}
            }
        }
    }
}
