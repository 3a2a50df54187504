//! Pod networking: what CNI's `bridge` and `host-local` plugins do for podman and k3s, as
//! berth's own code over netlink.
//!
//! Every sandbox with a network namespace of its own gets one end of a veth pair, created
//! inside that namespace as `eth0`, with an address from the pod CIDR and a default route via the gateway; the other
//! end stays on the host, attached to a bridge that holds the gateway address. Pods reach
//! each other across the bridge and the host reaches them through the bridge's connected
//! route. IPv4 forwarding is turned on so traffic can leave through the host; nothing here
//! depends on `br_netfilter` (`net.bridge.*`).
//!
//! ```text
//!   host netns                                  sandbox netns
//!   berth0 10.73.0.1/16 ──┬── vb1a2b3c4d ◄──veth──► eth0 10.73.0.2/16, default via 10.73.0.1
//!                         └── vb5e6f7a8b ◄──veth──► eth0 10.73.0.3/16 (another sandbox)
//! ```
//!
//! Defaults: bridge `berth0`, CIDR `10.73.0.0/16`, chosen apart from podman (10.88/16,
//! 10.89.x/24), Docker (172.17/16) and k3s (10.42/16, 10.43/16). Both are [`NetworkConfig`]
//! fields so tests use their own bridge and CIDR and never touch a real daemon's.
//!
//! Identity on the host: the host end is named `vb` + 8 hex digits of a hash of the bridge
//! name, the runtime's state directory and the sandbox id (interface names have at most 15
//! bytes), and carries the alias `berth:<bridge>:<hash of root>:<sandbox id>`, so
//! [`reconcile`] and cleanup tell this runtime's links from anything else on the host,
//! including another runtime's (a test's) on a bridge of the same name. Addresses are
//! managed by [`Ipam`], persisted under `<root>/network/`.
//!
//! Order, so that any crash leaves something [`reconcile`] recognises:
//!
//! ```text
//!  attach: forwarding, bridge ──► address file (owner = id) ──► veth pair in one request:
//!          eth0 born in the netns; host end on the bridge, aliased, up
//!          ──► inside: address, up, default route
//!  detach: host veth (takes the peer with it) ──► address file; after the sandbox's
//!          namespace is unpinned ([`detach_unpinned`]), the kernel's teardown of the
//!          namespace deletes the pair, and only a pair still there after a grace is deleted
//!          ──► conntrack entries leading to the address deleted ([`conntrack`])
//! ```
//! A failure in `attach` undoes what was made (veth, address) before returning.
//!
//! Egress: [`ensure_bridge`] also installs a masquerade rule for the pod CIDR in an nftables
//! table of the bridge's own (module `nat`), so pods reach networks beyond the host;
//! [`delete_bridge`] removes it again.
//!
//! Gaps: IPv4 only (host ports are the proxy's, `berth_proxy::hostport`); changing the CIDR of an
//! existing bridge leaves the old gateway address on it as well.

mod cidr;
pub mod conntrack;
mod ipam;
mod nat;
mod netlink;
mod services;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use cidr::{InvalidCidr, PodCidr};
pub use ipam::Ipam;
pub use nat::{MASQUERADE_CHAIN, ensure_masquerade, masquerade_table, remove_masquerade};
pub use services::{ServiceRule, remove_services, services_table, sync_services};

pub type Result<T, E = NetworkError> = std::result::Result<T, E>;

/// The interface name inside every sandbox.
pub const POD_INTERFACE: &str = "eth0";

/// `/proc/sys/net/ipv4/ip_forward`.
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The host bridge and the pod CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The bridge's interface name (`berth0`): 1-15 bytes, no `/`, `:` or whitespace.
    pub bridge: String,
    /// Pod addresses; the first host is the bridge's (the pods' gateway).
    pub cidr: PodCidr,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            bridge: "berth0".into(),
            cidr: PodCidr::new(Ipv4Addr::new(10, 73, 0, 0), 16).expect("a valid /16"),
        }
    }
}

impl NetworkConfig {
    fn validate(&self) -> Result<()> {
        let name = &self.bridge;
        let valid = !name.is_empty()
            && name.len() <= 15
            && name != "."
            && name != ".."
            && !name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace());
        if valid {
            Ok(())
        } else {
            Err(NetworkError::InvalidBridgeName(name.clone()))
        }
    }

    /// The alias prefix marking host veth ends of this bridge.
    fn alias_prefix(&self, root: &Path) -> String {
        format!("berth:{}:{}:", self.bridge, root_tag(root))
    }

    /// The alias of the host veth end of sandbox `id`.
    fn alias(&self, root: &Path, id: &str) -> String {
        format!("{}{id}", self.alias_prefix(root))
    }
}

/// What a sandbox got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
}

/// What [`reconcile`] cleaned up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Addresses released, with the sandbox id that held them (empty if unknown).
    pub released: Vec<(Ipv4Addr, String)>,
    /// Host veth ends deleted.
    pub deleted_links: Vec<String>,
}

/// Errors of pod networking; each names the interface, address range or file concerned.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("invalid bridge name {0:?}: expected 1-15 bytes without '/', ':' or whitespace")]
    InvalidBridgeName(String),
    #[error("pod CIDR {cidr}: all {in_use} pod addresses are in use")]
    Exhausted { cidr: PodCidr, in_use: usize },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot enter the network namespace {path}")]
    Namespace {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot open a netlink socket")]
    Socket(#[source] std::io::Error),
    #[error("cannot start the netlink thread")]
    Thread(#[source] std::io::Error),
    #[error("the netlink thread panicked")]
    ThreadPanicked,
    #[error("netlink: {op} {target}")]
    Netlink {
        op: &'static str,
        target: String,
        #[source]
        source: Box<rtnetlink::Error>,
    },
    #[error("no network interface named {0}")]
    LinkMissing(String),
    #[error("network interface {0} exists but is not a bridge; expected the pod bridge")]
    NotABridge(String),
    #[error(
        "network interface {0} already exists: another sandbox with the same id (or a colliding name) uses this bridge"
    )]
    LinkExists(String),
    #[error("nftables: {op} ip {table}")]
    Nftables {
        op: &'static str,
        table: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{original}; cleanup also failed: {cleanup}")]
    Cleanup {
        original: Box<NetworkError>,
        cleanup: Box<NetworkError>,
    },
}

/// The host end of the veth pair of the sandbox `sandbox` of the runtime with state in
/// `root` on `config`'s bridge: `vb` + 8 hex digits of a hash of the three.
pub fn host_veth_name(config: &NetworkConfig, root: &Path, sandbox: &str) -> String {
    format!("vb{}", short_hash(&config.bridge, root, sandbox))
}

/// The name the sandbox end had on the host while it was still created there and moved into
/// its namespace afterwards (before berth created it in place): still looked for by
/// [`detach`] and [`reconcile`], which clean up after a crash of such a version.
fn peer_veth_name(config: &NetworkConfig, root: &Path, sandbox: &str) -> String {
    format!("vp{}", short_hash(&config.bridge, root, sandbox))
}

fn short_hash(bridge: &str, root: &Path, sandbox: &str) -> String {
    let digest = Sha256::new()
        .chain_update(bridge.as_bytes())
        .chain_update([0])
        .chain_update(root.as_os_str().as_encoded_bytes())
        .chain_update([0])
        .chain_update(sandbox.as_bytes())
        .finalize();
    hex::encode(&digest[..4])
}

/// Tells runtimes with different state directories apart in link aliases, so two of them
/// (a daemon and a test, say) never take each other's links for their own.
fn root_tag(root: &Path) -> String {
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    hex::encode(&digest[..4])
}

/// Turn on IPv4 forwarding unless it is on already.
fn enable_forwarding() -> Result<()> {
    let io = |source| NetworkError::Io {
        path: PathBuf::from(IP_FORWARD),
        source,
    };
    if std::fs::read_to_string(IP_FORWARD).map_err(io)?.trim() == "1" {
        return Ok(());
    }
    std::fs::write(IP_FORWARD, "1").map_err(io)
}

/// Creates the bridge with the gateway address (idempotent), enables forwarding and
/// installs the pod CIDR's egress masquerade ([`ensure_masquerade`]), so that services bound
/// to the gateway (the daemon's DNS) can start before the first pod does.
pub fn ensure_bridge(config: &NetworkConfig) -> Result<()> {
    config.validate()?;
    enable_forwarding()?;
    let cidr = config.cidr;
    netlink::run(None, |handle| async move {
        netlink::ensure_bridge(&handle, &config.bridge, cidr.gateway(), cidr.prefix_len()).await
    })?;
    ensure_masquerade(config)
}

/// Give the sandbox `id`, whose network namespace is pinned at `netns`, an address from the
/// pod CIDR and a veth pair to the bridge (created on first use). On failure whatever was
/// made is removed again.
#[tracing::instrument(skip(config, root, netns), fields(sandbox = %id, bridge = %config.bridge))]
pub fn attach(config: &NetworkConfig, root: &Path, id: &str, netns: &Path) -> Result<Attachment> {
    config.validate()?;
    enable_forwarding()?;
    let cidr = config.cidr;
    let bridge_index = netlink::run(None, |handle| async move {
        netlink::ensure_bridge(&handle, &config.bridge, cidr.gateway(), cidr.prefix_len()).await
    })?;
    let ip = Ipam::new(root, cidr).allocate(id)?;
    let attachment = Attachment {
        ip,
        prefix_len: cidr.prefix_len(),
        gateway: cidr.gateway(),
    };
    match wire(config, root, id, netns, bridge_index, attachment) {
        Ok(()) => {
            tracing::debug!(ip = %ip, "sandbox attached");
            Ok(attachment)
        }
        // Not ours to remove: only give the address back.
        Err(original @ NetworkError::LinkExists(_)) => match Ipam::new(root, cidr).release(id) {
            Ok(_) => Err(original),
            Err(cleanup) => Err(NetworkError::Cleanup {
                original: Box::new(original),
                cleanup: Box::new(cleanup),
            }),
        },
        Err(original) => match detach(config, root, id) {
            Ok(()) => Err(original),
            Err(cleanup) => Err(NetworkError::Cleanup {
                original: Box::new(original),
                cleanup: Box::new(cleanup),
            }),
        },
    }
}

fn wire(
    config: &NetworkConfig,
    root: &Path,
    id: &str,
    netns: &Path,
    bridge_index: u32,
    attachment: Attachment,
) -> Result<()> {
    let host = host_veth_name(config, root, id);
    let alias = config.alias(root, id);
    let netns_file = std::fs::File::open(netns).map_err(|source| NetworkError::Io {
        path: netns.to_path_buf(),
        source,
    })?;
    let (host, alias, netns_file) = (&host, &alias, &netns_file);
    netlink::run(None, |handle| async move {
        netlink::create_veth(
            &handle,
            host,
            POD_INTERFACE,
            netns_file,
            bridge_index,
            alias,
        )
        .await
    })?;
    netlink::run(Some(netns), |handle| async move {
        netlink::configure_inside(
            &handle,
            POD_INTERFACE,
            attachment.ip,
            attachment.prefix_len,
            attachment.gateway,
        )
        .await
    })
}

/// Remove the sandbox `id`'s host veth (if still there) and release its address.
/// Idempotent; copes with an attach that never finished.
#[tracing::instrument(skip(config, root), fields(sandbox = %id, bridge = %config.bridge))]
pub fn detach(config: &NetworkConfig, root: &Path, id: &str) -> Result<()> {
    detach_with(config, root, id, None)
}

/// [`detach`] for a sandbox whose network namespace is no longer pinned (nothing of the
/// sandbox left in it): the kernel deletes the veth pair with the namespace, asynchronously
/// and in batches, so wait up to `grace` for that before deleting the host end directly.
///
/// Deleting a link waits for RCU grace periods under the kernel's global rtnl lock (20–50 ms
/// each on a 2-core VM, `ip link del`), which every other pod start or stop queues behind;
/// the namespace's own teardown deleted five pairs in 37 ms altogether, off that lock.
/// The address is released only once the pair is gone, so it is never handed out while a
/// dying namespace still answers for it.
#[tracing::instrument(skip(config, root), fields(sandbox = %id, bridge = %config.bridge))]
pub fn detach_unpinned(
    config: &NetworkConfig,
    root: &Path,
    id: &str,
    grace: Duration,
) -> Result<()> {
    detach_with(config, root, id, Some(grace))
}

fn detach_with(
    config: &NetworkConfig,
    root: &Path,
    id: &str,
    grace: Option<Duration>,
) -> Result<()> {
    config.validate()?;
    let host = host_veth_name(config, root, id);
    let peer = peer_veth_name(config, root, id);
    let alias = config.alias(root, id);
    let (host, peer, alias) = (&host, &peer, &alias);
    netlink::run(None, |handle| async move {
        if let Some(grace) = grace
            && netlink::await_gone(&handle, host, grace).await?
        {
            tracing::debug!(link = %host, "the namespace's teardown took the veth pair");
        } else {
            netlink::delete_link(&handle, host, Some(alias)).await?;
        }
        // Left on the host only by a crash of a berth that moved the sandbox end after
        // creating it.
        netlink::delete_link(&handle, peer, Some(alias)).await?;
        Ok(())
    })?;
    let ipam = Ipam::new(root, config.cidr);
    // Before the address can be handed out again: conntrack entries that still lead to it
    // would send a client that reuses a source port to the dead pod ([`conntrack`]).
    for (ip, owner) in ipam.allocations()? {
        if owner == id {
            match conntrack::forget(ip) {
                Ok(0) => {}
                Ok(n) => tracing::debug!(%ip, entries = n, "forgot conntrack entries"),
                Err(err) => tracing::warn!(%ip, error = %err, "cannot forget conntrack entries"),
            }
        }
    }
    ipam.release(id)?;
    Ok(())
}

/// After a crash: release every address whose owner is not in `live` and delete every host
/// veth of this bridge whose sandbox is not in `live`. Call it before creating sandboxes
/// (at daemon start): a sandbox being created meanwhile that is not yet in `live` would lose
/// its address.
#[tracing::instrument(skip(config, root, live), fields(bridge = %config.bridge))]
pub fn reconcile(
    config: &NetworkConfig,
    root: &Path,
    live: &BTreeSet<String>,
) -> Result<ReconcileReport> {
    config.validate()?;
    let ipam = Ipam::new(root, config.cidr);
    let dead: Vec<(Ipv4Addr, String)> = ipam
        .allocations()?
        .into_iter()
        .filter(|(_, owner)| !live.contains(owner))
        .collect();
    let prefix = config.alias_prefix(root);
    // Link name -> the alias it must carry if it carries one.
    let mut doomed: BTreeMap<String, String> = dead
        .iter()
        .filter(|(_, owner)| !owner.is_empty())
        .flat_map(|(_, owner)| {
            [
                host_veth_name(config, root, owner),
                peer_veth_name(config, root, owner),
            ]
            .map(|name| (name, config.alias(root, owner)))
        })
        .collect();
    let deleted_links = netlink::run(None, |handle| async move {
        for link in netlink::links(&handle).await? {
            let owner = netlink::link_alias(&link).and_then(|a| a.strip_prefix(prefix.as_str()));
            if let (Some(owner), Some(name)) = (owner, netlink::link_name(&link))
                && !live.contains(owner)
            {
                doomed.insert(name.to_string(), config.alias(root, owner));
            }
        }
        let mut deleted = Vec::new();
        for (name, alias) in doomed {
            if netlink::delete_link(&handle, &name, Some(&alias)).await? {
                deleted.push(name);
            }
        }
        Ok(deleted)
    })?;
    for (ip, owner) in &dead {
        ipam.release_address(*ip)?;
        tracing::info!(ip = %ip, sandbox = %owner, "released the address of a sandbox that is gone");
    }
    for name in &deleted_links {
        tracing::info!(link = %name, "deleted a stray host veth");
    }
    Ok(ReconcileReport {
        released: dead,
        deleted_links,
    })
}

/// Delete the bridge `name` if it exists (the host veths on it stay, detached), its masquerade
/// table and its Services' table; returns whether the bridge existed. For tests and `berth` teardown;
/// sandboxes recreate it on first use.
pub fn delete_bridge(name: &str) -> Result<bool> {
    let deleted = netlink::run(None, |handle| async move {
        netlink::delete_link(&handle, name, None).await
    })?;
    remove_masquerade(name)?;
    remove_services(name)?;
    Ok(deleted)
}

/// Whether a network interface `name` exists in the caller's namespace.
pub fn link_exists(name: &str) -> Result<bool> {
    netlink::run(None, |handle| async move {
        Ok(netlink::find_link(&handle, name).await?.is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_fit_ifnamsiz_and_differ_by_bridge_and_sandbox() {
        let config = NetworkConfig::default();
        let other = NetworkConfig {
            bridge: "bt1".into(),
            ..NetworkConfig::default()
        };
        let root = Path::new("/var/lib/berth");
        let a = host_veth_name(&config, root, "pod-a");
        assert_eq!(a.len(), 10);
        assert!(a.starts_with("vb"));
        assert_eq!(a, host_veth_name(&config, root, "pod-a"));
        assert_ne!(a, host_veth_name(&config, root, "pod-b"));
        assert_ne!(a, host_veth_name(&other, root, "pod-a"));
        assert_ne!(a, host_veth_name(&config, Path::new("/tmp/t"), "pod-a"));
        assert_ne!(a, peer_veth_name(&config, root, "pod-a"));
        let long = "x".repeat(128);
        assert!(host_veth_name(&config, root, &long).len() <= 15);
        assert!(config.alias(root, &long).len() < 256, "IFALIASZ");
        assert!(config.alias(root, "pod-a").starts_with("berth:berth0:"));
        assert_ne!(
            config.alias(root, "pod-a"),
            config.alias(Path::new("/tmp/t"), "pod-a")
        );
    }

    #[test]
    fn bridge_names_are_checked() {
        let mut config = NetworkConfig::default();
        assert_eq!(config.bridge, "berth0");
        assert_eq!(config.cidr.to_string(), "10.73.0.0/16");
        config.validate().unwrap();
        for bad in ["", "a-name-that-is-too-long", "a/b", "a:b", "a b", ".."] {
            config.bridge = bad.into();
            let err = config.validate().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn reconcile_releases_addresses_of_sandboxes_that_are_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let config = NetworkConfig {
            bridge: format!("bu{}", std::process::id() % 100_000),
            cidr: "10.199.250.0/29".parse().unwrap(),
        };
        let ipam = Ipam::new(tmp.path(), config.cidr);
        let kept = ipam.allocate("alive").unwrap();
        let lost = ipam.allocate("gone").unwrap();
        // No link of this bridge exists, so only the files change (no privilege needed).
        let report = reconcile(&config, tmp.path(), &BTreeSet::from(["alive".into()])).unwrap();
        assert_eq!(report.released, [(lost, "gone".to_string())]);
        assert!(report.deleted_links.is_empty());
        assert_eq!(ipam.allocations().unwrap(), [(kept, "alive".to_string())]);
    }
}
