//! The container's init process: what it does between fork and exec.
//!
//! ```text
//!  Forked ──cgroup placed──► Namespaced ──rootfs──► Pivoted ──user, caps, nnp──► Ready
//!         ──start fifo──► exec ─► (user's process is PID 1)
//!  any step fails ──► error written to the CLOEXEC status pipe ──► _exit
//! ```
//! The pure decisions (capability sets, environment, executable lookup, docker's exit codes)
//! live here and are unit tested; [`init`] strings the kernel calls together.
//!
//! The user's process is the container's PID 1, as with docker without `--init`: it must reap
//! its own children. Orphans that escape its namespace's teardown reparent to the shim, which
//! is a subreaper and reaps them.

pub(crate) mod fork;
pub mod init;
pub mod seccomp;

use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::unistd::{Gid, Uid};

use crate::container::config::User;
use crate::rootfs::RootfsError;
use crate::syscall::{Syscall, SyscallError};

/// The standard PATH docker gives a container whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the init could not exec the user's process. The text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("waiting for the shim")]
    Sync(#[source] SyscallError),
    #[error("joining the cgroup")]
    Cgroup(#[source] SyscallError),
    #[error("namespaces")]
    Namespace(#[source] SyscallError),
    #[error("root filesystem")]
    Rootfs(#[source] RootfsError),
    #[error("hostname")]
    Hostname(#[source] SyscallError),
    #[error("resource limit {name}")]
    Rlimit {
        name: String,
        #[source]
        source: Option<SyscallError>,
    },
    #[error("chdir to cwd ({path:?}) set in config.json failed")]
    Cwd {
        path: PathBuf,
        #[source]
        source: SyscallError,
    },
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("user {uid}:{gid}")]
    User {
        uid: u32,
        gid: u32,
        #[source]
        source: SyscallError,
    },
    #[error("capabilities")]
    Capabilities(#[source] SyscallError),
    #[error("seccomp filter")]
    Seccomp(#[source] SyscallError),
    #[error("exec: {command:?}: executable file not found in $PATH")]
    NotFound { command: String },
    #[error("exec {command:?}: {}", std::io::Error::from(*.errno))]
    Exec { command: String, errno: Errno },
    #[error("waiting for start")]
    Start(#[source] SyscallError),
}

impl InitError {
    /// The errno at the bottom of the error, if any.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            InitError::Sync(e)
            | InitError::Cgroup(e)
            | InitError::Namespace(e)
            | InitError::Hostname(e)
            | InitError::Capabilities(e)
            | InitError::Seccomp(e)
            | InitError::Start(e)
            | InitError::Cwd { source: e, .. }
            | InitError::User { source: e, .. } => Some(e.errno),
            InitError::Rlimit { source, .. } => source.as_ref().map(|e| e.errno),
            InitError::Rootfs(RootfsError::Mount { source, .. })
            | InitError::Rootfs(RootfsError::Prepare { source, .. })
            | InitError::Rootfs(RootfsError::Pivot { source, .. }) => Some(source.errno),
            InitError::Exec { errno, .. } => Some(*errno),
            InitError::NotFound { .. } => Some(Errno::ENOENT),
            InitError::UnknownCapability(_) | InitError::Rootfs(RootfsError::NoLayers) => None,
        }
    }

    /// Docker CLI's mapping: "not found" 127, "permission denied"/"is a directory" 126, 125
    /// for any other failure to start.
    pub fn exit_code(&self) -> i32 {
        match self.errno() {
            Some(Errno::ENOENT) => 127,
            Some(Errno::EACCES | Errno::EISDIR) => 126,
            _ => 125,
        }
    }

    /// The full message: this error and its causes joined by ": ".
    pub fn message(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(err) = source {
            text.push_str(": ");
            text.push_str(&err.to_string());
            source = err.source();
        }
        text
    }
}

/// Parse capability names (`CAP_NET_ADMIN`, `net_admin`).
pub fn parse_capabilities(names: &[String]) -> Result<CapsHashSet, InitError> {
    names
        .iter()
        .map(|name| {
            let canonical = caps::to_canonical(name);
            canonical
                .parse::<Capability>()
                .map_err(|_| InitError::UnknownCapability(name.clone()))
        })
        .collect()
}

/// Every capability name the runtime knows (`CAP_…`), sorted by number.
pub fn all_capability_names() -> Vec<String> {
    let mut all: Vec<Capability> = caps::all().into_iter().collect();
    all.sort_by_key(|c| c.index());
    all.iter().map(|c| c.to_string()).collect()
}

/// The capability sets the process gets, as docker: `caps` in bounding, permitted and effective,
/// empty inheritable and ambient. The kernel then clears permitted/effective at exec for a
/// non-root uid (no ambient set, as docker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityPlan {
    /// Every capability the kernel knows that is not kept: dropped from the bounding set.
    pub drop_bounding: Vec<Capability>,
    pub keep: CapsHashSet,
}

impl CapabilityPlan {
    pub fn new(keep: CapsHashSet) -> Self {
        let mut drop_bounding: Vec<Capability> = caps::all()
            .into_iter()
            .filter(|c| !keep.contains(c))
            .collect();
        drop_bounding.sort_by_key(|c| c.index());
        Self {
            drop_bounding,
            keep,
        }
    }

    /// The mask CapEff shows in /proc/<pid>/status for uid 0.
    pub fn effective_mask(&self) -> u64 {
        self.keep.iter().fold(0, |mask, c| mask | c.bitmask())
    }
}

/// Switch to the container's identity and capabilities: bounding set first (needs
/// CAP_SETPCAP), keep permitted caps across setresuid, then set the sets.
pub fn apply_identity(
    syscall: &dyn Syscall,
    user: &User,
    plan: &CapabilityPlan,
) -> Result<(), InitError> {
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok());
    for cap in &plan.drop_bounding {
        if last_cap.is_some_and(|last| cap.index() > last) {
            continue; // unknown to this kernel: nothing to drop
        }
        syscall
            .drop_bounding(*cap)
            .map_err(InitError::Capabilities)?;
    }
    syscall
        .set_keep_caps(true)
        .map_err(InitError::Capabilities)?;
    let groups: Vec<Gid> = user
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    syscall
        .set_ids(Uid::from_raw(user.uid), Gid::from_raw(user.gid), &groups)
        .map_err(|source| InitError::User {
            uid: user.uid,
            gid: user.gid,
            source,
        })?;
    syscall
        .set_keep_caps(false)
        .map_err(InitError::Capabilities)?;
    let none = CapsHashSet::new();
    syscall
        .set_capabilities(CapSet::Ambient, &none)
        .map_err(InitError::Capabilities)?;
    syscall
        .set_capabilities(CapSet::Inheritable, &none)
        .map_err(InitError::Capabilities)?;
    // Effective first: permitted may only shrink to a superset of the effective set.
    syscall
        .set_capabilities(CapSet::Effective, &plan.keep)
        .map_err(InitError::Capabilities)?;
    syscall
        .set_capabilities(CapSet::Permitted, &plan.keep)
        .map_err(InitError::Capabilities)
}

/// The home directory of `uid` in an /etc/passwd text.
pub fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 6 && fields[2].parse() == Ok(uid)).then(|| fields[5].to_string())
    })
}

/// Add what docker adds when missing: PATH, HOSTNAME, HOME (from /etc/passwd, else `/`…
/// docker uses `/root` for root and `/` otherwise).
pub fn complete_env(env: &[String], hostname: &str, home: Option<String>, uid: u32) -> Vec<String> {
    let has = |key: &str| {
        env.iter()
            .any(|e| e.split_once('=').is_some_and(|(k, _)| k == key))
    };
    let mut out = Vec::with_capacity(env.len() + 3);
    if !has("PATH") {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOSTNAME") {
        out.push(format!("HOSTNAME={hostname}"));
    }
    out.extend(env.iter().cloned());
    if !has("HOME") {
        let home = home.unwrap_or_else(|| if uid == 0 { "/root".into() } else { "/".into() });
        out.push(format!("HOME={home}"));
    }
    out
}

/// Find `command` as the kernel would exec it inside `root`: a name with a slash is taken as
/// is, anything else is searched in the container's PATH. The result is a path inside the
/// container.
pub fn find_executable(root: &Path, command: &str, env: &[String]) -> Result<PathBuf, InitError> {
    use std::os::unix::fs::PermissionsExt;
    let check = |p: &Path| -> Result<(), Errno> {
        let host = root.join(p.strip_prefix("/").unwrap_or(p));
        let meta = std::fs::metadata(&host)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)))?;
        if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
            Err(Errno::EACCES)
        } else {
            Ok(())
        }
    };
    if command.is_empty() {
        return Err(InitError::NotFound {
            command: command.into(),
        });
    }
    if command.contains('/') {
        let path = PathBuf::from(command);
        return match check(&path) {
            Ok(()) => Ok(path),
            Err(errno) => Err(InitError::Exec {
                command: command.into(),
                errno,
            }),
        };
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut denied = None;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(command);
        match check(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(Errno::EACCES) => denied = Some(candidate),
            Err(_) => {}
        }
    }
    match denied {
        Some(_) => Err(InitError::Exec {
            command: command.into(),
            errno: Errno::EACCES,
        }),
        None => Err(InitError::NotFound {
            command: command.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::config::DEFAULT_CAPABILITIES;
    use crate::syscall::{Call, RecordingSyscall};

    #[test]
    fn docker_default_capabilities_give_the_known_mask() {
        let names: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
        let plan = CapabilityPlan::new(parse_capabilities(&names).unwrap());
        assert_eq!(plan.effective_mask(), 0x00000000a80425fb);
        assert!(plan.drop_bounding.contains(&Capability::CAP_SYS_ADMIN));
        assert!(!plan.drop_bounding.contains(&Capability::CAP_CHOWN));
        assert_eq!(plan.drop_bounding.len() + 14, caps::all().len());
        assert!(
            parse_capabilities(&["net_admin".into()])
                .unwrap()
                .contains(&Capability::CAP_NET_ADMIN)
        );
        assert!(matches!(
            parse_capabilities(&["CAP_NOPE".into()]),
            Err(InitError::UnknownCapability(n)) if n == "CAP_NOPE"
        ));
    }

    #[test]
    fn identity_switch_keeps_caps_across_setuid_and_empties_inheritable() {
        let syscall = RecordingSyscall::new();
        let keep = parse_capabilities(&["CAP_KILL".into()]).unwrap();
        let plan = CapabilityPlan::new(keep);
        let user = User {
            uid: 1000,
            gid: 100,
            additional_gids: vec![5],
        };
        apply_identity(&syscall, &user, &plan).unwrap();
        let calls = syscall.calls();
        let first_non_drop = calls
            .iter()
            .position(|c| !matches!(c, Call::DropBounding(_)))
            .unwrap();
        assert!(first_non_drop > 0);
        assert_eq!(
            calls[first_non_drop..],
            [
                Call::KeepCaps(true),
                Call::SetIds {
                    uid: Uid::from_raw(1000),
                    gid: Gid::from_raw(100),
                    groups: vec![Gid::from_raw(5)]
                },
                Call::KeepCaps(false),
                Call::SetCapabilities {
                    set: "ambient",
                    caps: vec![]
                },
                Call::SetCapabilities {
                    set: "inheritable",
                    caps: vec![]
                },
                Call::SetCapabilities {
                    set: "effective",
                    caps: vec![Capability::CAP_KILL]
                },
                Call::SetCapabilities {
                    set: "permitted",
                    caps: vec![Capability::CAP_KILL]
                },
            ]
        );
    }

    #[test]
    fn env_gets_path_home_and_hostname_unless_set() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n";
        assert_eq!(home_of(passwd, 33).as_deref(), Some("/var/www"));
        assert_eq!(home_of(passwd, 7), None);
        let env = complete_env(&["A=1".into()], "h", home_of(passwd, 0), 0);
        assert_eq!(
            env,
            [
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=h".into(),
                "A=1".into(),
                "HOME=/root".into()
            ]
        );
        let env = complete_env(&["PATH=/x".into(), "HOME=/h".into()], "h", None, 1000);
        assert_eq!(env, ["HOSTNAME=h", "PATH=/x", "HOME=/h"]);
        assert_eq!(complete_env(&[], "h", None, 1000).last().unwrap(), "HOME=/");
    }

    #[test]
    fn executables_are_found_in_the_containers_path_with_docker_exit_codes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/tool"), "").unwrap();
        std::fs::set_permissions(
            root.join("bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(root.join("bin/data"), "").unwrap();
        let env = vec!["PATH=/usr/bin:/bin".to_string()];

        assert_eq!(
            find_executable(root, "tool", &env).unwrap(),
            Path::new("/bin/tool")
        );
        assert_eq!(
            find_executable(root, "/bin/tool", &env).unwrap(),
            Path::new("/bin/tool")
        );

        let missing = find_executable(root, "nope", &env).unwrap_err();
        assert_eq!(missing.exit_code(), 127);
        assert_eq!(
            missing.message(),
            r#"exec: "nope": executable file not found in $PATH"#
        );
        let missing_abs = find_executable(root, "/bin/nope", &env).unwrap_err();
        assert_eq!(missing_abs.exit_code(), 127);
        assert_eq!(
            missing_abs.message(),
            r#"exec "/bin/nope": No such file or directory (os error 2)"#
        );
        assert_eq!(
            find_executable(root, "/bin/data", &env)
                .unwrap_err()
                .exit_code(),
            126
        );
        assert_eq!(
            find_executable(root, "/bin", &env).unwrap_err().exit_code(),
            126
        );
        let other = InitError::Namespace(SyscallError::new("unshare", "x", Errno::EINVAL));
        assert_eq!(other.exit_code(), 125);
    }
}
