//! The kernel side of pod networking over rtnetlink: the bridge, veth pairs, addresses and
//! routes. Nothing here shells out to `ip`.
//!
//! The runtime's API is synchronous and must work with or without a tokio runtime around it
//! (the agent calls it from `spawn_blocking`, `berth` subcommands from plain threads), so each
//! operation runs on a short-lived thread of its own with a current-thread tokio runtime and
//! its own netlink socket. A netlink socket talks to the network namespace it was created in:
//! for work inside a sandbox the thread first `setns`es into the sandbox's namespace, then
//! opens the socket. The thread ends with the operation, so no other thread (least of all a
//! daemon worker) ever changes namespace.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::Duration;

use futures_util::TryStreamExt;
use nix::sched::CloneFlags;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use super::{NetworkError, Result};

/// Run `op` with a netlink handle in the caller's network namespace (`netns` `None`) or in
/// the namespace pinned at `netns`, on a thread of its own.
pub(super) fn run<T, F, Fut>(netns: Option<&Path>, op: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T>>,
{
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("berth-netlink".into())
            .spawn_scoped(scope, move || {
                if let Some(path) = netns {
                    enter(path)?;
                }
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                    .map_err(NetworkError::Socket)?;
                runtime.block_on(async move {
                    let (connection, handle, _) =
                        rtnetlink::new_connection().map_err(NetworkError::Socket)?;
                    let connection = tokio::spawn(connection);
                    let outcome = op(handle).await;
                    connection.abort();
                    outcome
                })
            })
            .map_err(NetworkError::Thread)?;
        thread.join().unwrap_or(Err(NetworkError::ThreadPanicked))
    })
}

/// Move the calling thread into the network namespace pinned at `path`.
fn enter(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|source| NetworkError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| {
        NetworkError::Namespace {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn failed(
    op: &'static str,
    target: impl Into<String>,
) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let target = target.into();
    move |source| NetworkError::Netlink {
        op,
        target,
        source: Box::new(source),
    }
}

/// The errno of a netlink error reply, if it is one.
fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(message) => Some(-message.raw_code()),
        _ => None,
    }
}

/// The link named `name`, or `None` when there is none.
pub(super) async fn find_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(err) if errno(&err) == Some(libc::ENODEV) => Ok(None),
        Err(err) => Err(failed("get link", name)(err)),
    }
}

async fn link_index(handle: &Handle, name: &str) -> Result<u32> {
    find_link(handle, name)
        .await?
        .map(|link| link.header.index)
        .ok_or_else(|| NetworkError::LinkMissing(name.to_string()))
}

/// Every link of the namespace.
pub(super) async fn links(handle: &Handle) -> Result<Vec<LinkMessage>> {
    handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(failed("list links", "all"))
}

pub(super) fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.as_str()),
        _ => None,
    })
}

fn is_bridge(link: &LinkMessage) -> bool {
    link.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|info| matches!(info, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

pub(super) fn link_alias(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(alias) => Some(alias.as_str()),
        _ => None,
    })
}

async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(failed("set link up", name))
}

/// The bridge `name` with `gateway/prefix_len`, up; created if missing. Idempotent, and a
/// concurrent creation by someone else is fine. Returns its index.
pub(super) async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix_len: u8,
) -> Result<u32> {
    if let Some(link) = find_link(handle, name).await? {
        if !is_bridge(&link) {
            return Err(NetworkError::NotABridge(name.to_string()));
        }
    } else {
        match handle
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
        {
            Ok(()) => {}
            Err(err) if errno(&err) == Some(libc::EEXIST) => {}
            Err(err) => return Err(failed("create bridge", name)(err)),
        }
    }
    let index = link_index(handle, name).await?;
    handle
        .address()
        .add(index, IpAddr::V4(gateway), prefix_len)
        .replace()
        .execute()
        .await
        .map_err(failed(
            "add gateway address",
            format!("{name} {gateway}/{prefix_len}"),
        ))?;
    set_up(handle, index, name).await?;
    Ok(index)
}

/// Create the veth pair `host`/`peer` in one request: `peer` is born inside the namespace of
/// `netns` (named `peer` there; it cannot be set up in the same request, the kernel opens
/// it before its other end exists), `host` on the bridge `bridge_index`, tagged with `alias`, up.
///
/// Creating the sandbox end in its namespace rather than moving it there afterwards matters:
/// moving a link between namespaces waits for an RCU grace period under the kernel's global
/// rtnl lock (15–25 ms on a 2-core VM, measured with `ip link set … netns`), so concurrent pod
/// starts queued behind each other; created in place it costs no more than any link.
pub(super) async fn create_veth(
    handle: &Handle,
    host: &str,
    peer: &str,
    netns: &std::fs::File,
    bridge_index: u32,
    alias: &str,
) -> Result<()> {
    let peer_message = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer)
        .setns_by_fd(netns.as_raw_fd())
        .build();
    let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
        .controller(bridge_index)
        .alias(alias)
        .up()
        .build();
    handle
        .link()
        .add(message)
        .execute()
        .await
        .map_err(|err| match errno(&err) {
            Some(libc::EEXIST) => NetworkError::LinkExists(format!("{host}/{peer}")),
            _ => failed("create veth pair", format!("{host}/{peer}"))(err),
        })
}

/// Inside the sandbox: give `ifname` (the sandbox end, born under its final name)
/// `ip/prefix_len`, bring it up and route everything else via `gateway`. Loopback is up already: the
/// sandbox shim brought it up when it made the namespace.
pub(super) async fn configure_inside(
    handle: &Handle,
    ifname: &str,
    ip: Ipv4Addr,
    prefix_len: u8,
    gateway: Ipv4Addr,
) -> Result<()> {
    let index = link_index(handle, ifname).await?;
    handle
        .address()
        .add(index, IpAddr::V4(ip), prefix_len)
        .execute()
        .await
        .map_err(failed("add address", format!("{ifname} {ip}/{prefix_len}")))?;
    set_up(handle, index, ifname).await?;
    handle
        .route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .output_interface(index)
                .build(),
        )
        .execute()
        .await
        .map_err(failed(
            "add default route",
            format!("via {gateway} dev {ifname}"),
        ))
}

/// Wait up to `grace` for the link `name` to disappear (its namespace's teardown deleting
/// it); returns whether it did. Looking a link up by name does not take the rtnl lock.
pub(super) async fn await_gone(handle: &Handle, name: &str, grace: Duration) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + grace;
    let mut pause = Duration::from_millis(2);
    loop {
        if find_link(handle, name).await?.is_none() {
            return Ok(true);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Delete the link `name` if it exists, unless it carries an alias other than `alias`
/// (someone else's link with a colliding name); returns whether it did.
pub(super) async fn delete_link(handle: &Handle, name: &str, alias: Option<&str>) -> Result<bool> {
    let Some(link) = find_link(handle, name).await? else {
        return Ok(false);
    };
    if let (Some(ours), Some(theirs)) = (alias, link_alias(&link))
        && ours != theirs
    {
        return Ok(false);
    }
    match handle.link().del(link.header.index).execute().await {
        Ok(()) => Ok(true),
        // Gone meanwhile (its namespace was destroyed, taking the pair with it).
        Err(err) if errno(&err) == Some(libc::ENODEV) => Ok(false),
        Err(err) => Err(failed("delete link", name)(err)),
    }
}
