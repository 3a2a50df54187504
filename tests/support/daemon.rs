//! A real `berth daemon` for end-to-end tests: its own root, run dir and socket in the test's
//! tempdir, killed (SIGKILL, as a crash) or stopped (SIGTERM) by the test; whatever it leaves
//! running is removed when the [`Env`] goes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::Env;

pub struct Daemon<'a> {
    pub env: &'a Env,
    child: Option<Child>,
    extra: Vec<String>,
}

impl<'a> Daemon<'a> {
    /// Starts a daemon with a 1s/2s backoff and waits until it answers.
    pub fn start(env: &'a Env, extra: &[&str]) -> Self {
        let mut daemon = Self {
            env,
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        daemon.spawn();
        daemon
    }

    pub fn socket(&self) -> PathBuf {
        self.env.run_dir().join("berth.sock")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = self
            .env
            .command(&["daemon", "--backoff-initial", "1s", "--backoff-max", "2s"])
            .args(["--bridge", &bridge(), "--pod-cidr", &pod_cidr()])
            .args(&self.extra)
            .env("BERTH_SOCKET", self.socket())
            .env("RUST_LOG", "info,berth=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.berth(&["get", "namespaces", "-o", "name"]);
            if out.status.success() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "daemon not answering after 30s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.env.root().with_file_name("daemon.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `berth --socket ... ARGS`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.env.command(args);
        command.env("BERTH_SOCKET", self.socket());
        command
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a CLI command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `berth get ... -o json` parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Applies YAML text (through a file, as a user would).
    pub fn apply(&self, name: &str, yaml: &str) -> String {
        let path = self.env.root().with_file_name(name);
        std::fs::write(&path, yaml).unwrap();
        self.ok(&["apply", "-f", path.to_str().unwrap()])
    }

    /// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` with `what`
    /// and the daemon's log.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() > deadline {
                let pods = self.berth(&["get", "pods", "-A", "-o", "wide"]);
                panic!(
                    "timed out after {timeout:?} waiting for {what}\npods:\n{}\nlog tail:\n{}",
                    String::from_utf8_lossy(&pods.stdout),
                    tail(&self.log(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL (a crash): nothing is cleaned up by the daemon.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        super::wait_timeout(&mut child, Duration::from_secs(30))
    }

    /// Starts the daemon again (after [`kill`](Self::kill) or [`stop`](Self::stop)).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    /// Short ids (12 characters) of the running containers of this environment, from the
    /// runtime's own view (`berth container ls`), not the daemon's.
    pub fn running_containers(&self) -> Vec<String> {
        let out = self.env.berth(&["container", "ls"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .skip(1)
            .filter(|row| row.contains(" Up "))
            .filter_map(|row| row.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("daemon log:\n{}", tail(&self.log(), 200));
        }
        self.kill();
        // The daemon leaves containers running by design; remove the pods' containers and
        // sandboxes so that nothing of the test remains.
        cleanup_sandboxes(&self.env.run_dir());
        let _ = berth_runtime::network::delete_bridge(&bridge());
    }
}

/// This test process's own bridge and pod range, so that daemons of tests running in parallel
/// (and a real daemon) never share addresses.
pub fn bridge() -> String {
    format!("bd{}", std::process::id())
}

pub fn pod_cidr() -> String {
    format!("10.197.{}.0/24", std::process::id() % 250)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Unmounts and removes every sandbox under the run dir (containers are removed by `Env`).
fn cleanup_sandboxes(run_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(run_dir.join("sandboxes")) else {
        return;
    };
    for entry in entries.flatten() {
        for ns in ["net", "ipc", "uts"] {
            let _ = nix::mount::umount2(&entry.path().join(ns), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(entry.path());
    }
}
