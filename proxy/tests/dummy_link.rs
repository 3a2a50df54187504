//! [`DummyLink`] against the kernel, as root, in a network namespace of its own (created by a
//! dedicated thread with `unshare(CLONE_NEWNET)`, so the host's links are never touched and the
//! test binary's other threads stay where they are). Skipped, saying so, when not root.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use berth_proxy::{ClusterAddresses, DummyLink};
use futures_util::TryStreamExt;

/// Whether a link of the namespace carries `ip`, as rtnetlink lists it.
async fn carried(ip: IpAddr) -> bool {
    let (connection, handle, _) = rtnetlink::new_connection().unwrap();
    let connection = tokio::spawn(connection);
    let found: Vec<_> = handle
        .address()
        .get()
        .set_address_filter(ip)
        .execute()
        .try_collect()
        .await
        .unwrap();
    connection.abort();
    !found.is_empty()
}

#[test]
fn cluster_ips_are_added_to_and_removed_from_the_dummy_link() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: creating links needs root");
        return;
    }
    let outcome = std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("a network namespace of our own");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let link = DummyLink::new("berth-svc");
            let ip = IpAddr::V4(Ipv4Addr::new(10, 74, 0, 5));
            assert!(!carried(ip).await, "not there before");
            link.add(ip).await.expect("the address is added");
            link.add(ip).await.expect("adding twice is fine");
            assert!(carried(ip).await, "there after add");
            let listener = std::net::TcpListener::bind(SocketAddr::new(ip, 80));
            assert!(listener.is_ok(), "a listener can bind it: {listener:?}");
            drop(listener);
            link.remove(ip).await.expect("the address is removed");
            link.remove(ip).await.expect("removing twice is fine");
            assert!(!carried(ip).await, "gone after remove");
        });
    })
    .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
