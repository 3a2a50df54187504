//! Egress masquerade: what CNI's `bridge` plugin does with `ipMasq: true`.
//!
//! Traffic from the pod CIDR that leaves through any interface but the pod bridge is
//! source-NATed to the address of the interface it leaves by, so pods reach networks beyond
//! the host and the replies find their way back. It is one nftables rule in a table of its
//! own, per bridge, so a test bridge never touches the daemon's:
//!
//! ```text
//! table ip berth_<bridge> {
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip saddr <cidr> oifname != "<bridge>" masquerade
//!     }
//! }
//! ```
//!
//! The table is written over `NETLINK_NETFILTER` as one nf_tables batch, which the kernel
//! applies atomically: "add table; delete table; add table, chain, rule". Adding an existing
//! table is not an error (no `NLM_F_EXCL`) and deleting a table deletes its chains and rules,
//! so running [`ensure_masquerade`] again replaces the table rather than duplicating the
//! rule, and a changed CIDR takes effect. [`remove_masquerade`] deletes the table the same
//! way ("add; delete"), so it is idempotent too. No `nft` or `iptables` binary is involved,
//! and no nftables crate: the pure-Rust one (`rustables`) is GPL-3.0, the others wrap the C
//! libraries `libnftnl`/`libmnl`; the handful of messages below are plain netlink.
//!
//! Not our business: the host firewall's `forward` chains (iptables `FORWARD` policy `DROP`,
//! as Docker sets it, or an nftables `forward` hook with policy drop) may still refuse pod
//! traffic; berth does not open them, as CNI's bridge plugin does not. Forwarding itself
//! (`net.ipv4.ip_forward`) is turned on by [`super::ensure_bridge`].
//!
//! Wire format (include/uapi/linux/netfilter/nf_tables.h): every message is an `nlmsghdr`,
//! an `nfgenmsg` (family, version, resource id) and netlink attributes; integers inside
//! nf_tables attributes are big-endian; nested attributes carry `NLA_F_NESTED`.

use std::net::Ipv4Addr;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::{NetworkConfig, NetworkError, PodCidr, Result};

// Netlink (linux/netlink.h).
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
pub(super) const NLM_F_CREATE: u16 = 0x400;
pub(super) const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 0x2;
pub(super) const NLA_F_NESTED: u16 = 0x8000;
const NLMSG_HDRLEN: usize = 16;

// nfnetlink (linux/netfilter/nfnetlink.h).
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFPROTO_IPV4: u8 = 2;
const AF_UNSPEC: u8 = 0;

// nf_tables messages and attributes (linux/netfilter/nf_tables.h).
pub(super) const NFT_MSG_NEWTABLE: u16 = 0;
pub(super) const NFT_MSG_DELTABLE: u16 = 2;
pub(super) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(super) const NFT_MSG_NEWRULE: u16 = 6;
const NFTA_TABLE_NAME: u16 = 1;
pub(super) const NFTA_CHAIN_TABLE: u16 = 1;
pub(super) const NFTA_CHAIN_NAME: u16 = 3;
pub(super) const NFTA_CHAIN_HOOK: u16 = 4;
pub(super) const NFTA_CHAIN_TYPE: u16 = 7;
pub(super) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(super) const NFTA_HOOK_PRIORITY: u16 = 2;
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
pub(super) const NFTA_DATA_VALUE: u16 = 1;
pub(super) const NFTA_PAYLOAD_DREG: u16 = 1;
pub(super) const NFTA_PAYLOAD_BASE: u16 = 2;
pub(super) const NFTA_PAYLOAD_OFFSET: u16 = 3;
pub(super) const NFTA_PAYLOAD_LEN: u16 = 4;
pub(super) const NFTA_BITWISE_SREG: u16 = 1;
pub(super) const NFTA_BITWISE_DREG: u16 = 2;
pub(super) const NFTA_BITWISE_LEN: u16 = 3;
pub(super) const NFTA_BITWISE_MASK: u16 = 4;
pub(super) const NFTA_BITWISE_XOR: u16 = 5;
pub(super) const NFTA_CMP_SREG: u16 = 1;
pub(super) const NFTA_CMP_OP: u16 = 2;
pub(super) const NFTA_CMP_DATA: u16 = 3;
pub(super) const NFTA_META_DREG: u16 = 1;
pub(super) const NFTA_META_KEY: u16 = 2;
pub(super) const NFT_REG_1: u32 = 1;
pub(super) const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub(super) const NFT_CMP_EQ: u32 = 0;
pub(super) const NFT_CMP_NEQ: u32 = 1;
pub(super) const NFT_META_OIFNAME: u32 = 7;
pub(super) const NF_INET_POST_ROUTING: u32 = 4;
/// `NF_IP_PRI_NAT_SRC`, what `nft` calls `srcnat`.
pub(super) const NF_IP_PRI_NAT_SRC: i32 = 100;
/// Interface names are compared as `IFNAMSIZ` bytes, zero-padded.
pub(super) const IFNAMSIZ: usize = 16;
/// Offset of the source address in the IPv4 header.
const IPV4_SADDR_OFFSET: u32 = 12;

/// The chain holding the masquerade rule.
pub const MASQUERADE_CHAIN: &str = "postrouting";

/// The nftables table (family `ip`) holding the masquerade rule of `bridge`.
pub fn masquerade_table(bridge: &str) -> String {
    format!("berth_{bridge}")
}

/// Installs (or replaces) the masquerade table of `config`'s bridge; idempotent.
pub fn ensure_masquerade(config: &NetworkConfig) -> Result<()> {
    config.validate()?;
    let table = masquerade_table(&config.bridge);
    let mut batch = Batch::new();
    // Create-if-absent then delete, so the delete cannot fail and the table is rebuilt.
    batch.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &table_attrs(&table));
    batch.push(NFT_MSG_DELTABLE, 0, &table_attrs(&table));
    batch.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &table_attrs(&table));
    batch.push(
        NFT_MSG_NEWCHAIN,
        NLM_F_CREATE,
        &nat_chain(
            &table,
            MASQUERADE_CHAIN,
            NF_INET_POST_ROUTING,
            NF_IP_PRI_NAT_SRC,
        ),
    );
    batch.push(
        NFT_MSG_NEWRULE,
        NLM_F_CREATE | NLM_F_APPEND,
        &rule_attrs(&table, config.cidr, &config.bridge),
    );
    batch.send().map_err(|source| NetworkError::Nftables {
        op: "install masquerade table",
        table,
        source,
    })
}

/// Deletes the masquerade table of `bridge`, if there is one; idempotent.
pub fn remove_masquerade(bridge: &str) -> Result<()> {
    delete_table(masquerade_table(bridge), "delete masquerade table")
}

/// Deletes `table` (family `ip`) if it exists: created-if-absent then deleted, in one
/// transaction, so that a missing table is not an error.
pub(super) fn delete_table(table: String, op: &'static str) -> Result<()> {
    let mut batch = Batch::new();
    batch.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &table_attrs(&table));
    batch.push(NFT_MSG_DELTABLE, 0, &table_attrs(&table));
    batch
        .send()
        .map_err(|source| NetworkError::Nftables { op, table, source })
}

pub(super) fn table_attrs(table: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, NFTA_TABLE_NAME, table);
    out
}

/// A base chain of type `nat` on `hook` at `priority`.
pub(super) fn nat_chain(table: &str, name: &str, hook: u32, priority: i32) -> Vec<u8> {
    let mut hook_attrs = Vec::new();
    put_u32(&mut hook_attrs, NFTA_HOOK_HOOKNUM, hook);
    put_u32(&mut hook_attrs, NFTA_HOOK_PRIORITY, priority as u32);
    let mut out = Vec::new();
    put_str(&mut out, NFTA_CHAIN_TABLE, table);
    put_str(&mut out, NFTA_CHAIN_NAME, name);
    put_nested(&mut out, NFTA_CHAIN_HOOK, &hook_attrs);
    put_str(&mut out, NFTA_CHAIN_TYPE, "nat");
    out
}

/// `ip saddr <cidr> oifname != "<bridge>" masquerade` as nf_tables expressions:
/// payload → reg1, bitwise reg1 &= mask, cmp reg1 == network, meta oifname → reg1,
/// cmp reg1 != bridge, masq.
fn rule_attrs(table: &str, cidr: PodCidr, bridge: &str) -> Vec<u8> {
    let mask = prefix_mask(cidr.prefix_len());
    let mut exprs = Vec::new();

    let mut payload = Vec::new();
    put_u32(&mut payload, NFTA_PAYLOAD_DREG, NFT_REG_1);
    put_u32(&mut payload, NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
    put_u32(&mut payload, NFTA_PAYLOAD_OFFSET, IPV4_SADDR_OFFSET);
    put_u32(&mut payload, NFTA_PAYLOAD_LEN, 4);
    put_expr(&mut exprs, "payload", &payload);

    let mut bitwise = Vec::new();
    put_u32(&mut bitwise, NFTA_BITWISE_SREG, NFT_REG_1);
    put_u32(&mut bitwise, NFTA_BITWISE_DREG, NFT_REG_1);
    put_u32(&mut bitwise, NFTA_BITWISE_LEN, 4);
    put_nested(&mut bitwise, NFTA_BITWISE_MASK, &data_value(&mask.octets()));
    put_nested(&mut bitwise, NFTA_BITWISE_XOR, &data_value(&[0; 4]));
    put_expr(&mut exprs, "bitwise", &bitwise);

    let mut cmp = Vec::new();
    put_u32(&mut cmp, NFTA_CMP_SREG, NFT_REG_1);
    put_u32(&mut cmp, NFTA_CMP_OP, NFT_CMP_EQ);
    put_nested(
        &mut cmp,
        NFTA_CMP_DATA,
        &data_value(&cidr.network().octets()),
    );
    put_expr(&mut exprs, "cmp", &cmp);

    let mut meta = Vec::new();
    put_u32(&mut meta, NFTA_META_DREG, NFT_REG_1);
    put_u32(&mut meta, NFTA_META_KEY, NFT_META_OIFNAME);
    put_expr(&mut exprs, "meta", &meta);

    let mut name = [0u8; IFNAMSIZ];
    name[..bridge.len()].copy_from_slice(bridge.as_bytes());
    let mut cmp = Vec::new();
    put_u32(&mut cmp, NFTA_CMP_SREG, NFT_REG_1);
    put_u32(&mut cmp, NFTA_CMP_OP, NFT_CMP_NEQ);
    put_nested(&mut cmp, NFTA_CMP_DATA, &data_value(&name));
    put_expr(&mut exprs, "cmp", &cmp);

    put_expr(&mut exprs, "masq", &[]);

    let mut out = Vec::new();
    put_str(&mut out, NFTA_RULE_TABLE, table);
    put_str(&mut out, NFTA_RULE_CHAIN, MASQUERADE_CHAIN);
    put_nested(&mut out, NFTA_RULE_EXPRESSIONS, &exprs);
    out
}

pub(super) fn prefix_mask(prefix_len: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

pub(super) fn data_value(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_attr(&mut out, NFTA_DATA_VALUE, bytes);
    out
}

pub(super) fn put_expr(list: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut expr = Vec::new();
    put_str(&mut expr, NFTA_EXPR_NAME, name);
    if !data.is_empty() {
        put_nested(&mut expr, NFTA_EXPR_DATA, data);
    }
    put_nested(list, NFTA_LIST_ELEM, &expr);
}

pub(super) fn put_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len() + (4 - len % 4) % 4, 0);
}

pub(super) fn put_nested(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    put_attr(out, kind | NLA_F_NESTED, payload);
}

pub(super) fn put_str(out: &mut Vec<u8>, kind: u16, value: &str) {
    let mut bytes = value.as_bytes().to_vec();
    bytes.push(0);
    put_attr(out, kind, &bytes);
}

pub(super) fn put_u32(out: &mut Vec<u8>, kind: u16, value: u32) {
    put_attr(out, kind, &value.to_be_bytes());
}

/// The netlink messages of one datagram: (type, payload after the header).
pub(super) fn messages(mut buf: &[u8]) -> std::io::Result<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(buf[4..6].try_into().expect("2 bytes"));
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("truncated netlink reply ({len} of {} bytes)", buf.len()),
            ));
        }
        out.push((kind, &buf[NLMSG_HDRLEN..len]));
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    Ok(out)
}

/// The errno (negative) of an `NLMSG_ERROR` payload; 0 is an acknowledgement.
pub(super) fn error_code(payload: &[u8]) -> i32 {
    payload.get(..4).map_or(0, |code| {
        i32::from_ne_bytes(code.try_into().expect("4 bytes"))
    })
}

/// One nf_tables transaction: `BATCH_BEGIN`, the messages, `BATCH_END`.
pub(super) struct Batch {
    buf: Vec<u8>,
    /// Sequence numbers of the messages that ask for an acknowledgement.
    pending: Vec<u32>,
    next_seq: u32,
}

impl Batch {
    pub(super) fn new() -> Self {
        let mut batch = Self {
            buf: Vec::new(),
            pending: Vec::new(),
            next_seq: 1,
        };
        batch.message(NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, &[]);
        batch
    }

    /// How many messages wait for an acknowledgement.
    #[cfg(test)]
    pub(super) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Appends an nf_tables message (family `ip`) that the kernel acknowledges.
    pub(super) fn push(&mut self, msg: u16, flags: u16, attrs: &[u8]) {
        let seq = self.message(
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            flags | NLM_F_ACK,
            NFPROTO_IPV4,
            attrs,
        );
        self.pending.push(seq);
    }

    fn message(&mut self, kind: u16, flags: u16, family: u8, attrs: &[u8]) -> u32 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let len = NLMSG_HDRLEN + 4 + attrs.len();
        self.buf.extend_from_slice(&(len as u32).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf
            .extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version NFNETLINK_V0, resource id (big-endian): the subsystem
        // for batch messages, 0 otherwise.
        let res_id = if kind == NFNL_MSG_BATCH_BEGIN || kind == NFNL_MSG_BATCH_END {
            NFNL_SUBSYS_NFTABLES
        } else {
            0
        };
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.buf.extend_from_slice(attrs);
        seq
    }

    /// Sends the batch and waits for every acknowledgement; the first error the kernel
    /// reports (the whole batch is then rolled back) is returned.
    pub(super) fn send(mut self) -> std::io::Result<()> {
        self.message(NFNL_MSG_BATCH_END, 0, AF_UNSPEC, &[]);
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.send(&self.buf, 0)?;
        let mut acked = 0;
        while acked < self.pending.len() {
            let mut buf = Vec::with_capacity(64 * 1024);
            let n = socket.recv(&mut buf, 0)?;
            for (kind, payload) in messages(&buf[..n])? {
                if kind != NLMSG_ERROR {
                    continue;
                }
                // Any error ends the wait, also one about the batch framing itself (`EPERM`
                // without CAP_NET_ADMIN), which is never acknowledged otherwise.
                let code = error_code(payload);
                if code != 0 {
                    return Err(std::io::Error::from_raw_os_error(-code));
                }
                // The acknowledged request's header follows the code: its sequence number.
                let seq = payload
                    .get(12..16)
                    .map(|seq| u32::from_ne_bytes(seq.try_into().expect("4 bytes")));
                if seq.is_some_and(|seq| self.pending.contains(&seq)) {
                    acked += 1;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks attributes at one level: (type without flags, payload).
    fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
        let mut out = Vec::new();
        while buf.len() >= 4 {
            let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
            let kind = u16::from_ne_bytes([buf[2], buf[3]]) & !NLA_F_NESTED;
            out.push((kind, &buf[4..len]));
            buf = &buf[((len + 3) & !3).min(buf.len())..];
        }
        out
    }

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let mut out = Vec::new();
        put_str(&mut out, NFTA_TABLE_NAME, "berth_x");
        // 4 header + 8 ("berth_x\0") = 12, already aligned.
        assert_eq!(out.len(), 12);
        put_str(&mut out, NFTA_TABLE_NAME, "ab");
        // 4 + 3 = 7, padded to 8.
        assert_eq!(out.len(), 20);
        assert_eq!(attrs(&out)[1], (NFTA_TABLE_NAME, &b"ab\0"[..]));
    }

    #[test]
    fn masks_follow_the_prefix_length() {
        assert_eq!(prefix_mask(16), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(prefix_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_mask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(prefix_mask(32), Ipv4Addr::BROADCAST);
    }

    #[test]
    fn the_rule_matches_the_cidr_and_excludes_the_bridge() {
        let cidr = PodCidr::new(Ipv4Addr::new(10, 73, 0, 0), 16).unwrap();
        let rule = rule_attrs("berth_berth0", cidr, "berth0");
        let top = attrs(&rule);
        assert_eq!(top[0], (NFTA_RULE_TABLE, &b"berth_berth0\0"[..]));
        assert_eq!(top[1], (NFTA_RULE_CHAIN, &b"postrouting\0"[..]));
        let exprs = attrs(top[2].1);
        let names: Vec<&[u8]> = exprs.iter().map(|(_, e)| attrs(e)[0].1).collect();
        assert_eq!(
            names,
            [
                &b"payload\0"[..],
                b"bitwise\0",
                b"cmp\0",
                b"meta\0",
                b"cmp\0",
                b"masq\0"
            ]
        );
        // The first cmp compares with the network address, equal.
        let cmp = attrs(attrs(exprs[2].1)[1].1);
        assert_eq!(cmp[1], (NFTA_CMP_OP, &NFT_CMP_EQ.to_be_bytes()[..]));
        assert_eq!(attrs(cmp[2].1)[0].1, [10, 73, 0, 0]);
        // The second compares with the zero-padded bridge name, not equal.
        let cmp = attrs(attrs(exprs[4].1)[1].1);
        assert_eq!(cmp[1], (NFTA_CMP_OP, &NFT_CMP_NEQ.to_be_bytes()[..]));
        let mut name = [0u8; IFNAMSIZ];
        name[..6].copy_from_slice(b"berth0");
        assert_eq!(attrs(cmp[2].1)[0].1, name);
    }

    #[test]
    fn a_batch_is_framed_by_begin_and_end() {
        let mut batch = Batch::new();
        batch.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &table_attrs("t"));
        assert_eq!(batch.pending, [2]);
        batch.message(NFNL_MSG_BATCH_END, 0, AF_UNSPEC, &[]);
        let kinds: Vec<u16> = {
            let mut rest = &batch.buf[..];
            let mut kinds = Vec::new();
            while !rest.is_empty() {
                let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
                kinds.push(u16::from_ne_bytes(rest[4..6].try_into().unwrap()));
                rest = &rest[len..];
            }
            kinds
        };
        assert_eq!(
            kinds,
            [
                NFNL_MSG_BATCH_BEGIN,
                (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE,
                NFNL_MSG_BATCH_END
            ]
        );
    }
}
