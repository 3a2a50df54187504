//! Shared setup of the CLI tests: a tempdir with `--root`/`--run-dir`, a busybox image built
//! with `berth image build`, and cleanup of every container a test names, even on panic.
#![allow(dead_code)]

pub mod daemon;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

pub struct Env {
    dir: tempfile::TempDir,
    tag: String,
}

impl Env {
    /// `None` (test skipped) unless root.
    pub fn new() -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("needs root; skipped");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/busybox-rootfs.sh");
        assert!(
            Command::new(script)
                .arg(&rootfs)
                .status()
                .unwrap()
                .success()
        );
        let tag = format!("t{}", std::process::id());
        let env = Self { dir, tag };
        let out = env.berth(&[
            "image",
            "build",
            rootfs.to_str().unwrap(),
            "--tag",
            "busybox",
        ]);
        assert!(
            out.status.success(),
            "image build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(env)
    }

    /// Builds the busybox rootfs into one more image named `tag` (e.g. the examples'
    /// `berth.local/busybox:latest`).
    pub fn tag_image(&self, tag: &str) {
        let rootfs = self.dir.path().join("rootfs");
        let out = self.berth(&["image", "build", rootfs.to_str().unwrap(), "--tag", tag]);
        assert!(
            out.status.success(),
            "image build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// A container name unique to this process.
    pub fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.tag)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .arg("--root")
            .arg(self.root())
            .arg("--run-dir")
            .arg(self.run_dir())
            .args(args);
        command
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// No container directory, state, cgroup or mount of this environment remains.
    pub fn assert_no_containers_left(&self) {
        let entries = |dir: &Path| -> Vec<_> {
            std::fs::read_dir(dir)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default()
        };
        for dir in [
            self.root().join("containers"),
            self.run_dir().join("containers"),
        ] {
            let left = entries(&dir);
            assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
        }
        // A removed container's shim deletes its cgroup and then its directories from the
        // trash just after reporting the exit: they go within moments.
        for dir in [self.root().join("trash"), self.run_dir().join("trash")] {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !entries(&dir).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let left = entries(&dir);
            assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo.contains(self.dir.path().to_str().unwrap()),
            "mount left"
        );
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Remove whatever a failed test left running.
        let Ok(entries) = std::fs::read_dir(self.root().join("containers")) else {
            return;
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let _ = self.berth(&["container", "rm", "-f", &id]);
        }
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
