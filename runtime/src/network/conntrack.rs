//! Forgetting a released pod address in conntrack.
//!
//! A connection through a Service is pinned to its endpoint by its conntrack entry. When a pod
//! goes, entries to it that never saw the connection close (cut by the pod's SIGKILL, say) stay
//! behind in `ESTABLISHED`, `LAST_ACK` or `SYN_SENT` for up to days. A client that later picks
//! the same source port for the same Service matches such an entry: conntrack passes its SYN
//! with the old translation, to an address nobody answers, and the connect times out where a
//! new translation would have found a live endpoint. (Entries in `TIME_WAIT` or `CLOSE` are
//! harmless: conntrack treats a SYN there as a new connection.) Measured here: 17 timeouts in
//! 62,000 requests through a node port while 5 pods were replaced one by one.
//!
//! So when an address goes back to the pool, every entry whose translated destination (the
//! reply's source) or original destination is that address is deleted, unless it is a TCP entry
//! in `TIME_WAIT` or `CLOSE`, as kube-proxy does for UDP: the entries are dumped over
//! `NETLINK_NETFILTER` (ctnetlink) and each match is deleted by its original tuple, copied from
//! the dump as it is.

use std::net::Ipv4Addr;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::nat::{error_code, messages, put_attr, put_nested};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_DONE: u16 = 0x3;
const NLMSG_ERROR: u16 = 0x2;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const AF_INET: u8 = 2;
const NLA_TYPE_MASK: u16 = 0x3fff;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_PROTOINFO: u16 = 4;
const CTA_ZONE: u16 = 18;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
/// `TCP_CONNTRACK_TIME_WAIT` and `TCP_CONNTRACK_CLOSE`: a SYN there starts a new connection.
const TCP_CONNTRACK_TIME_WAIT: u8 = 7;
const TCP_CONNTRACK_CLOSE: u8 = 8;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;

/// Deletes every conntrack entry (IPv4, this network namespace) that leads to `ip`: translated
/// to it or addressed to it. Returns how many it deleted; entries that vanish meanwhile are
/// fine.
pub fn forget(ip: Ipv4Addr) -> std::io::Result<usize> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(&message(IPCTNL_MSG_CT_GET, NLM_F_DUMP, 1, &[]), 0)?;
    let mut doomed: Vec<Vec<u8>> = Vec::new();
    'dump: loop {
        let mut buf = Vec::with_capacity(256 * 1024);
        let n = socket.recv(&mut buf, 0)?;
        for (kind, payload) in messages(&buf[..n])? {
            match kind {
                NLMSG_DONE => break 'dump,
                NLMSG_ERROR => {
                    let code = error_code(payload);
                    if code != 0 {
                        return Err(std::io::Error::from_raw_os_error(-code));
                    }
                }
                _ => {
                    if let Some(delete) = payload
                        .get(NFGENMSG_LEN..)
                        .and_then(|attrs| delete_request(attrs, ip))
                    {
                        doomed.push(delete);
                    }
                }
            }
        }
    }
    // Without NLM_F_ACK the kernel answers only failures (an entry gone meanwhile: ENOENT).
    let mut sent = 0;
    for chunk in doomed.chunks(256) {
        let mut buf = Vec::new();
        for (i, attrs) in chunk.iter().enumerate() {
            buf.extend(message(
                IPCTNL_MSG_CT_DELETE,
                0,
                (sent + i + 2) as u32,
                attrs,
            ));
        }
        socket.send(&buf, 0)?;
        sent += chunk.len();
    }
    Ok(doomed.len())
}

/// The attributes of a delete request for the entry `attrs` describes, when it leads to `ip`.
fn delete_request(attrs: &[u8], ip: Ipv4Addr) -> Option<Vec<u8>> {
    let mut orig = None;
    let mut zone = None;
    let mut hits = false;
    let mut closed = false;
    for (kind, payload) in attributes(attrs) {
        match kind {
            CTA_TUPLE_ORIG => {
                hits |= tuple_ip(payload, CTA_IP_V4_DST) == Some(ip);
                orig = Some(payload);
            }
            CTA_TUPLE_REPLY => hits |= tuple_ip(payload, CTA_IP_V4_SRC) == Some(ip),
            CTA_PROTOINFO => {
                closed = matches!(
                    tcp_state(payload),
                    Some(TCP_CONNTRACK_TIME_WAIT | TCP_CONNTRACK_CLOSE)
                )
            }
            CTA_ZONE => zone = Some(payload),
            _ => {}
        }
    }
    // Closed TCP entries are harmless (a SYN there is a new connection) and after a busy pod
    // they are nearly all of them: deleting tens of thousands of them stalled new connections
    // through the Services for a second or two.
    if !hits || closed {
        return None;
    }
    let mut out = Vec::new();
    put_nested(&mut out, CTA_TUPLE_ORIG, orig?);
    if let Some(zone) = zone {
        put_attr(&mut out, CTA_ZONE, zone);
    }
    Some(out)
}

/// The TCP state of a `CTA_PROTOINFO`, when it is TCP's.
fn tcp_state(protoinfo: &[u8]) -> Option<u8> {
    let (_, tcp) = attributes(protoinfo).find(|(kind, _)| *kind == CTA_PROTOINFO_TCP)?;
    let (_, state) = attributes(tcp).find(|(kind, _)| *kind == CTA_PROTOINFO_TCP_STATE)?;
    state.first().copied()
}

/// The IPv4 address `which` (source or destination) of a tuple.
fn tuple_ip(tuple: &[u8], which: u16) -> Option<Ipv4Addr> {
    let (_, ips) = attributes(tuple).find(|(kind, _)| *kind == CTA_TUPLE_IP)?;
    let (_, address) = attributes(ips).find(|(kind, _)| *kind == which)?;
    let octets: [u8; 4] = address.try_into().ok()?;
    Some(Ipv4Addr::from(octets))
}

/// The attributes at one level: (type without flags, payload).
fn attributes(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let payload = &buf[4..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some((kind, payload))
    })
}

/// A ctnetlink request: header, nfgenmsg (IPv4, version 0, resource 0), attributes.
fn message(msg: u16, flags: u16, seq: u32, attrs: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | msg).to_ne_bytes());
    out.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[AF_INET, 0, 0, 0]);
    out.extend_from_slice(attrs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut ips = Vec::new();
        put_attr(&mut ips, CTA_IP_V4_SRC, &src);
        put_attr(&mut ips, CTA_IP_V4_DST, &dst);
        let mut tuple = Vec::new();
        put_nested(&mut tuple, CTA_TUPLE_IP, &ips);
        // CTA_TUPLE_PROTO with a protocol number only: not looked at.
        let mut proto = Vec::new();
        put_attr(&mut proto, 1, &[6]);
        put_nested(&mut tuple, 2, &proto);
        tuple
    }

    fn entry(orig: &[u8], reply: &[u8]) -> Vec<u8> {
        entry_in(orig, reply, 3)
    }

    /// An entry whose TCP state is `state` (3: ESTABLISHED).
    fn entry_in(orig: &[u8], reply: &[u8], state: u8) -> Vec<u8> {
        let mut attrs = Vec::new();
        put_nested(&mut attrs, CTA_TUPLE_ORIG, orig);
        put_nested(&mut attrs, CTA_TUPLE_REPLY, reply);
        let mut tcp = Vec::new();
        put_attr(&mut tcp, CTA_PROTOINFO_TCP_STATE, &[state]);
        let mut protoinfo = Vec::new();
        put_nested(&mut protoinfo, CTA_PROTOINFO_TCP, &tcp);
        put_nested(&mut attrs, CTA_PROTOINFO, &protoinfo);
        put_attr(&mut attrs, CTA_ZONE, &0u16.to_be_bytes());
        attrs
    }

    #[test]
    fn entries_translated_to_or_addressed_to_the_address_are_picked_by_their_original_tuple() {
        let pod = Ipv4Addr::new(10, 73, 0, 9);
        // 127.0.0.1 -> node port, translated to the pod (reply from the pod to the bridge).
        let orig = tuple([127, 0, 0, 1], [127, 0, 0, 1]);
        let translated = entry(&orig, &tuple([10, 73, 0, 9], [10, 73, 0, 1]));
        let request = delete_request(&translated, pod).expect("translated to the pod");
        let picked: Vec<(u16, &[u8])> = attributes(&request).collect();
        assert_eq!(picked[0], (CTA_TUPLE_ORIG, orig.as_slice()));
        assert_eq!(picked[1], (CTA_ZONE, &[0u8, 0][..]));

        // Straight to the pod.
        let direct = entry(
            &tuple([10, 73, 0, 1], [10, 73, 0, 9]),
            &tuple([10, 73, 0, 9], [10, 73, 0, 1]),
        );
        assert!(delete_request(&direct, pod).is_some());

        // Another pod's, and the pod as a client of someone else, stay.
        let other = entry(
            &tuple([127, 0, 0, 1], [127, 0, 0, 1]),
            &tuple([10, 73, 0, 8], [10, 73, 0, 1]),
        );
        assert!(delete_request(&other, pod).is_none());
        let outgoing = entry(
            &tuple([10, 73, 0, 9], [10, 0, 0, 53]),
            &tuple([10, 0, 0, 53], [10, 73, 0, 9]),
        );
        assert!(delete_request(&outgoing, pod).is_none());

        // Closed connections to the pod stay too: a SYN there starts a new connection.
        for state in [TCP_CONNTRACK_TIME_WAIT, TCP_CONNTRACK_CLOSE] {
            let closed = entry_in(&orig, &tuple([10, 73, 0, 9], [10, 73, 0, 1]), state);
            assert!(delete_request(&closed, pod).is_none());
        }
        let last_ack = entry_in(&orig, &tuple([10, 73, 0, 9], [10, 73, 0, 1]), 6);
        assert!(delete_request(&last_ack, pod).is_some());
    }

    #[test]
    fn truncated_replies_are_errors_not_panics() {
        let mut reply = message(IPCTNL_MSG_CT_GET, 0, 1, &[1, 2, 3, 4]);
        reply[0] = 200;
        assert!(messages(&reply).is_err());
        assert_eq!(attributes(&[8, 0, 1, 0, 1]).count(), 0);
    }
}
