//! Address management persisted on disk, as CNI's host-local plugin does it:
//!
//! ```text
//! <root>/network/<network>-<prefix>/            e.g. 10.73.0.0-16
//! <root>/network/<network>-<prefix>/10.73.0.2   one file per address in use; content: sandbox id
//! <root>/network/<network>-<prefix>/last_reserved  the last address handed out (round-robin hint)
//! ```
//!
//! An address is taken by creating its file with `O_EXCL`, so two callers (or a caller after
//! a crash) never get the same address: whatever the kernel let one of them create, the other
//! sees as taken. The hint only decides where the search starts; after it the search wraps
//! around the whole range, so a lost or stale hint costs time, never correctness. The gateway,
//! network and broadcast addresses are never candidates. A file whose sandbox is gone (a crash
//! between allocation and release) is released by
//! [`crate::container::LinuxRuntime::reconcile_network`].

use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::{NetworkError, PodCidr, Result};

const HINT: &str = "last_reserved";

/// The allocator of one pod CIDR below a state directory.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    cidr: PodCidr,
}

impl Ipam {
    /// The allocator for `cidr` with its files under `root/network/`.
    pub fn new(root: &Path, cidr: PodCidr) -> Self {
        Self {
            dir: root.join("network").join(cidr.dir_name()),
            cidr,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cidr(&self) -> PodCidr {
        self.cidr
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NetworkError + '_ {
        move |source| NetworkError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An address for `owner`: the one it already holds, else the next free one after the
    /// hint. Fails with [`NetworkError::Exhausted`] when every pod address is taken.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr> {
        if let Some((ip, _)) = self
            .allocations()?
            .into_iter()
            .find(|(_, held_by)| held_by == owner)
        {
            return Ok(ip);
        }
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let range = self.cidr.pod_range();
        let (first, last) = (*range.start(), *range.end());
        let start = match self.hint() {
            Some(hint) if (first..last).contains(&u32::from(hint)) => u32::from(hint) + 1,
            _ => first,
        };
        let candidates = (start..=last).chain(first..start);
        for candidate in candidates {
            let ip = Ipv4Addr::from(candidate);
            let path = self.dir.join(ip.to_string());
            let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(NetworkError::Io { path, source }),
            };
            // No fsync: an address only matters within one boot (its network namespace does
            // not survive a reboot), and the page cache survives a crash of berth.
            if let Err(source) = file.write_all(owner.as_bytes()) {
                // Best effort: an empty file left behind is released by reconciliation.
                let _ = std::fs::remove_file(&path);
                return Err(NetworkError::Io { path, source });
            }
            // The address is ours (its file exists); the hint only spreads allocations, so a
            // failure to update it must not fail the allocation.
            if let Err(err) = self.write_hint(ip) {
                tracing::debug!(error = %err, "updating the allocation hint");
            }
            return Ok(ip);
        }
        Err(NetworkError::Exhausted {
            cidr: self.cidr,
            in_use: range.count(),
        })
    }

    fn hint(&self) -> Option<Ipv4Addr> {
        std::fs::read_to_string(self.dir.join(HINT))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn write_hint(&self, ip: Ipv4Addr) -> Result<()> {
        // A temporary of this allocation's own: concurrent allocations each rename theirs.
        let tmp = self.dir.join(format!(".{HINT}.{ip}.tmp"));
        std::fs::write(&tmp, ip.to_string()).map_err(Self::io(&tmp))?;
        let path = self.dir.join(HINT);
        std::fs::rename(&tmp, &path).map_err(Self::io(&path))
    }

    /// Every address in use with its owner (empty when a crash interrupted the write), sorted
    /// by address.
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(NetworkError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Self::io(&self.dir))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let path = entry.path();
            match std::fs::read_to_string(&path) {
                Ok(owner) => out.push((ip, owner.trim().to_string())),
                // Released meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(NetworkError::Io { path, source }),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Release every address `owner` holds; returns them. Releasing nothing is fine.
    pub fn release(&self, owner: &str) -> Result<Vec<Ipv4Addr>> {
        let mut released = Vec::new();
        for (ip, held_by) in self.allocations()? {
            if held_by == owner {
                self.release_address(ip)?;
                released.push(ip);
            }
        }
        Ok(released)
    }

    /// Release `ip` whoever holds it; releasing a free address is fine.
    pub fn release_address(&self, ip: Ipv4Addr) -> Result<()> {
        let path = self.dir.join(ip.to_string());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetworkError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ipam(dir: &Path, cidr: &str) -> Ipam {
        Ipam::new(dir, cidr.parse().unwrap())
    }

    #[test]
    fn hands_out_distinct_addresses_round_robin_skipping_gateway() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.199.3.0/29");
        assert_eq!(ipam.dir(), tmp.path().join("network/10.199.3.0-29"));
        let a = ipam.allocate("a").unwrap();
        let b = ipam.allocate("b").unwrap();
        assert_eq!(
            a,
            Ipv4Addr::new(10, 199, 3, 2),
            "the gateway .1 is never handed out"
        );
        assert_eq!(b, Ipv4Addr::new(10, 199, 3, 3));
        assert_eq!(ipam.allocate("a").unwrap(), a, "an owner keeps its address");
        assert_eq!(
            std::fs::read_to_string(ipam.dir().join("10.199.3.2")).unwrap(),
            "a"
        );
        // Round robin: a released address is not reused before the range wraps.
        assert_eq!(ipam.release("a").unwrap(), [a]);
        let c = ipam.allocate("c").unwrap();
        assert_eq!(c, Ipv4Addr::new(10, 199, 3, 4));
        assert_eq!(
            ipam.allocations().unwrap(),
            [(b, "b".to_string()), (c, "c".to_string())]
        );
        assert!(ipam.release("nobody").unwrap().is_empty());
    }

    #[test]
    fn fills_the_range_never_repeats_and_fails_clearly_when_exhausted() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.199.4.0/28");
        let cidr = ipam.cidr();
        let mut seen = BTreeSet::new();
        for i in 0..13 {
            let ip = ipam.allocate(&format!("s{i}")).unwrap();
            assert!(cidr.contains(ip));
            assert_ne!(ip, cidr.gateway());
            assert_ne!(ip, cidr.network());
            assert_ne!(ip, cidr.broadcast());
            assert!(seen.insert(ip), "{ip} handed out twice");
        }
        let err = ipam.allocate("one-too-many").unwrap_err();
        assert!(
            matches!(err, NetworkError::Exhausted { in_use: 13, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("10.199.4.0/28"), "{err}");

        // A freed address in the middle is found again after wrapping around.
        ipam.release("s5").unwrap();
        let again = ipam.allocate("late").unwrap();
        assert_eq!(again, Ipv4Addr::new(10, 199, 4, 7));
    }

    #[test]
    fn a_slash_30_has_one_pod_address() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.199.5.0/30");
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(10, 199, 5, 2));
        assert!(matches!(
            ipam.allocate("b"),
            Err(NetworkError::Exhausted { in_use: 1, .. })
        ));
    }

    #[test]
    fn files_made_by_someone_else_or_a_crash_are_respected_and_hints_are_only_hints() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.199.6.0/29");
        std::fs::create_dir_all(ipam.dir()).unwrap();
        // Another process took .2; a crash left .3 empty; the hint is garbage.
        std::fs::write(ipam.dir().join("10.199.6.2"), "other").unwrap();
        std::fs::write(ipam.dir().join("10.199.6.3"), "").unwrap();
        std::fs::write(ipam.dir().join(HINT), "not an address").unwrap();
        assert_eq!(ipam.allocate("mine").unwrap(), Ipv4Addr::new(10, 199, 6, 4));
        assert_eq!(
            ipam.allocations().unwrap()[1],
            (Ipv4Addr::new(10, 199, 6, 3), String::new())
        );
        // A hint at the end of the range wraps to the start.
        std::fs::write(ipam.dir().join(HINT), "10.199.6.6").unwrap();
        ipam.release_address(Ipv4Addr::new(10, 199, 6, 3)).unwrap();
        assert_eq!(ipam.allocate("next").unwrap(), Ipv4Addr::new(10, 199, 6, 3));
        ipam.release_address(Ipv4Addr::new(10, 199, 6, 3)).unwrap();
        ipam.release_address(Ipv4Addr::new(10, 199, 6, 3)).unwrap();
    }

    #[test]
    fn concurrent_allocations_all_succeed_with_distinct_addresses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let threads: Vec<_> = (0..16)
            .map(|n| {
                let dir = dir.clone();
                std::thread::spawn(move || ipam(&dir, "10.199.7.0/24").allocate(&format!("sb{n}")))
            })
            .collect();
        let mut ips: Vec<Ipv4Addr> = threads
            .into_iter()
            .map(|t| t.join().unwrap().expect("every allocation succeeds"))
            .collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 16, "no address handed out twice");
    }
}
