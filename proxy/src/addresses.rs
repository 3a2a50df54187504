//! Making cluster IPs local addresses, so that the proxy can listen on them.
//!
//! A cluster IP belongs to no interface; the host (and pods, through the gateway `10.73.0.1`,
//! whose traffic the host routes) reaches it only if some local link carries it. [`DummyLink`]
//! puts each one as a `/32` on the dummy link `berth-svc`, created on first use (as kube-proxy's
//! IPVS mode does with `kube-ipvs0`). [`NoAddresses`] does nothing: for tests, whose cluster IPs
//! are `127.0.0.0/8` addresses that are local already.
//!
//! Kernels built without the dummy driver (`EOPNOTSUPP`, e.g. minimal VM kernels) get the
//! addresses on the loopback link `lo` instead: the host accepts traffic for any local address
//! whatever the link, so the effect for clients (the host and pods routed through the gateway)
//! is the same.

use std::{
    net::IpAddr,
    sync::{Arc, OnceLock},
};

use futures_util::TryStreamExt;
use rtnetlink::{
    Handle, LinkDummy, LinkUnspec,
    packet_route::address::{AddressAttribute, AddressMessage},
};

/// Why a cluster IP could not be added to or removed from the link.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("cannot open a netlink socket to configure link {link}")]
    Socket {
        link: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {operation} on link {link} (address {address})")]
    Netlink {
        link: String,
        operation: &'static str,
        address: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("link {link} is missing after it was created")]
    LinkMissing { link: String },
}

/// Makes cluster IPs local (or not) for the proxy to listen on them.
#[async_trait::async_trait]
pub trait ClusterAddresses: Send + Sync {
    /// Makes `ip` a local address; idempotent.
    async fn add(&self, ip: IpAddr) -> Result<(), AddressError>;
    /// Removes `ip`; idempotent.
    async fn remove(&self, ip: IpAddr) -> Result<(), AddressError>;
}

/// Leaves the addresses alone: they are local already (loopback addresses in tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAddresses;

#[async_trait::async_trait]
impl ClusterAddresses for NoAddresses {
    async fn add(&self, _ip: IpAddr) -> Result<(), AddressError> {
        Ok(())
    }
    async fn remove(&self, _ip: IpAddr) -> Result<(), AddressError> {
        Ok(())
    }
}

/// Cluster IPs as `/32` addresses of a dummy link (`berth-svc` by default), over rtnetlink.
#[derive(Debug, Clone)]
pub struct DummyLink {
    name: String,
    /// The link actually used: `name`, or `lo` without the dummy driver; set on first use.
    effective: Arc<OnceLock<String>>,
}

impl Default for DummyLink {
    fn default() -> Self {
        Self::new("berth-svc")
    }
}

impl DummyLink {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            effective: Arc::new(OnceLock::new()),
        }
    }

    async fn handle(&self) -> Result<Handle, AddressError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|source| AddressError::Socket {
                link: self.name.clone(),
                source,
            })?;
        tokio::spawn(connection);
        Ok(handle)
    }

    fn failed(
        &self,
        operation: &'static str,
        address: impl ToString,
    ) -> impl FnOnce(rtnetlink::Error) -> AddressError {
        let (link, address) = (self.link_name().to_owned(), address.to_string());
        move |source| AddressError::Netlink {
            link,
            operation,
            address,
            source,
        }
    }

    /// The link the addresses go to (see [`DummyLink::ensure_link`]).
    fn link_name(&self) -> &str {
        self.effective.get().map_or(&self.name, String::as_str)
    }

    async fn index(&self, handle: &Handle) -> Result<Option<u32>, AddressError> {
        let mut links = handle
            .link()
            .get()
            .match_name(self.link_name().to_owned())
            .execute();
        match links.try_next().await {
            Ok(link) => Ok(link.map(|l| l.header.index)),
            Err(err) if errno(&err) == Some(libc::ENODEV) => Ok(None),
            Err(err) => Err(self.failed("find the link", "-")(err)),
        }
    }

    /// The link's index; created (and set up) when missing. Without the dummy driver, the
    /// loopback link's.
    async fn ensure_link(&self, handle: &Handle) -> Result<u32, AddressError> {
        if let Some(index) = self.index(handle).await? {
            return Ok(index);
        }
        match handle
            .link()
            .add(LinkDummy::new(&self.name).build())
            .execute()
            .await
        {
            Ok(()) => {}
            Err(err) if errno(&err) == Some(libc::EEXIST) => {}
            Err(err) if errno(&err) == Some(libc::EOPNOTSUPP) => {
                tracing::info!(
                    link = %self.name,
                    "the kernel has no dummy links; cluster IPs go on the loopback link"
                );
                let _ = self.effective.set("lo".to_owned());
            }
            Err(err) => return Err(self.failed("create the dummy link", "-")(err)),
        }
        let index = self
            .index(handle)
            .await?
            .ok_or_else(|| AddressError::LinkMissing {
                link: self.name.clone(),
            })?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(self.failed("set the link up", "-"))?;
        Ok(index)
    }
}

fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(message) => Some(-message.raw_code()),
        _ => None,
    }
}

fn prefix_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn carries(message: &AddressMessage, ip: IpAddr) -> bool {
    message.attributes.iter().any(|attribute| match attribute {
        AddressAttribute::Local(address) | AddressAttribute::Address(address) => *address == ip,
        _ => false,
    })
}

#[async_trait::async_trait]
impl ClusterAddresses for DummyLink {
    async fn add(&self, ip: IpAddr) -> Result<(), AddressError> {
        let handle = self.handle().await?;
        let index = self.ensure_link(&handle).await?;
        handle
            .address()
            .add(index, ip, prefix_len(ip))
            .replace()
            .execute()
            .await
            .map_err(self.failed("add the address", ip))
    }

    async fn remove(&self, ip: IpAddr) -> Result<(), AddressError> {
        let handle = self.handle().await?;
        let Some(index) = self.index(&handle).await? else {
            return Ok(());
        };
        let addresses: Vec<AddressMessage> = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(self.failed("list the addresses", ip))?;
        for message in addresses.into_iter().filter(|m| carries(m, ip)) {
            match handle.address().del(message).execute().await {
                Ok(()) => {}
                Err(err) if errno(&err) == Some(libc::EADDRNOTAVAIL) => {}
                Err(err) => return Err(self.failed("remove the address", ip)(err)),
            }
        }
        Ok(())
    }
}
