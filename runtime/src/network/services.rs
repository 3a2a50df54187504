//! The kernel data path of Services: cluster IPs translated by nf_tables DNAT, as kube-proxy's
//! nftables mode does, instead of a userspace copy of every connection.
//!
//! One table per bridge, `ip berth_svc_<bridge>`, rebuilt as a whole in one nf_tables
//! transaction whenever a Service or its ready endpoints change (the kernel swaps it
//! atomically; connections already set up keep their conntrack entry and so their endpoint):
//!
//! ```text
//! chain prerouting  { type nat hook prerouting priority dstnat; …dispatch… }  from outside
//! chain output      { type nat hook output priority -100; …dispatch… }        from the node
//!   dispatch: ip daddr <cluster IP> meta l4proto tcp tcp dport <port> jump svc<n>
//!             fib daddr type local meta l4proto tcp tcp dport <node port> jump svc<n>
//! chain svc<n> {    one rule per endpoint, each taken with probability 1/(endpoints left):
//!   numgen random mod 3 == 0 dnat to 10.73.0.5:8080
//!   numgen random mod 2 == 0 dnat to 10.73.0.6:8080
//!   dnat to 10.73.0.7:8080
//! }
//! chain postrouting { type nat hook postrouting priority srcnat;
//!   ip saddr <pod CIDR> oifname <bridge> ct status dnat masquerade
//!   ip saddr 127.0.0.0/8 oifname <bridge> ct status dnat masquerade }
//! ```
//! A node port reached on `127.0.0.1` leaves through the bridge with a loopback source, which
//! the kernel allows with `route_localnet` on the bridge (set when there is a node port) and
//! which the masquerade then replaces.
//! The masquerade makes replies to pods come back through the node, so that conntrack can undo
//! the translation although client and endpoint sit on the same bridge (a pod calling a
//! Service, even its own). Connections from the node keep their source address. A Service without ready endpoints has an empty chain: its connections reach the
//! cluster IP itself (local on the node), where nothing listens, and are refused at once.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::nat::{
    Batch, IFNAMSIZ, NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC, NFT_CMP_EQ, NFT_CMP_NEQ,
    NFT_META_OIFNAME, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFT_MSG_NEWTABLE,
    NFT_PAYLOAD_NETWORK_HEADER, NFT_REG_1, NFTA_BITWISE_DREG, NFTA_BITWISE_LEN, NFTA_BITWISE_MASK,
    NFTA_BITWISE_SREG, NFTA_BITWISE_XOR, NFTA_CHAIN_NAME, NFTA_CHAIN_TABLE, NFTA_CMP_DATA,
    NFTA_CMP_OP, NFTA_CMP_SREG, NFTA_META_DREG, NFTA_META_KEY, NFTA_PAYLOAD_BASE,
    NFTA_PAYLOAD_DREG, NFTA_PAYLOAD_LEN, NFTA_PAYLOAD_OFFSET, NFTA_RULE_CHAIN,
    NFTA_RULE_EXPRESSIONS, NFTA_RULE_TABLE, NLM_F_APPEND, NLM_F_CREATE, data_value, nat_chain,
    put_attr, put_expr, put_nested, put_str, put_u32, table_attrs,
};
use super::{NetworkError, Result};

const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_IP_PRI_NAT_DST: i32 = -100;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_META_L4PROTO: u32 = 16;
const NFT_REG_2: u32 = 2;
const NFT_REG_VERDICT: u32 = 0;
const NFT_JUMP: i32 = -3;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_NG_DREG: u16 = 1;
const NFTA_NG_MODULUS: u16 = 2;
const NFTA_NG_TYPE: u16 = 3;
const NFT_NG_RANDOM: u32 = 1;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFT_NAT_DNAT: u32 = 1;
const NFPROTO_IPV4: u32 = 2;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFT_CT_STATUS: u32 = 2;
/// `IPS_DST_NAT` in the conntrack status bits.
const IPS_DST_NAT: u32 = 1 << 5;
const IPPROTO_TCP: u8 = 6;
const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 1 << 1;
/// `RTN_LOCAL`: an address of this host.
const RTN_LOCAL: u32 = 2;
const IPV4_SADDR_OFFSET: u32 = 12;
const IPV4_DADDR_OFFSET: u32 = 16;
const TCP_DPORT_OFFSET: u32 = 2;

/// One TCP port of a Service on its cluster IP (and node port) and the ready endpoints behind
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRule {
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    /// The port on every local address of the node (`NodePort` Services).
    pub node_port: Option<u16>,
    pub endpoints: Vec<SocketAddrV4>,
}

/// The nftables table (family `ip`) of the Services of `bridge`.
pub fn services_table(bridge: &str) -> String {
    format!("berth_svc_{bridge}")
}

/// Makes the kernel translate `rules` (and nothing else) for `bridge`'s pods and the node, in
/// one transaction; with no rules the table is removed. Idempotent.
pub fn sync_services(bridge: &str, cidr: super::PodCidr, rules: &[ServiceRule]) -> Result<()> {
    if bridge.is_empty() || bridge.len() >= IFNAMSIZ {
        return Err(NetworkError::Nftables {
            op: "install service table",
            table: services_table(bridge),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid bridge name {bridge:?}"),
            ),
        });
    }
    let table = services_table(bridge);
    if rules.iter().any(|r| r.node_port.is_some()) {
        // A node port reached on 127.0.0.1 is translated to a pod: the kernel routes a
        // loopback source out of the bridge only with route_localnet (on that bridge alone).
        let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
        std::fs::write(&path, "1").map_err(|source| NetworkError::Nftables {
            op: "enable route_localnet on the bridge",
            table: table.clone(),
            source,
        })?;
    }
    let batch = batch(&table, bridge, cidr, rules);
    batch.send().map_err(|source| NetworkError::Nftables {
        op: if rules.is_empty() {
            "delete service table"
        } else {
            "install service table"
        },
        table,
        source,
    })
}

/// Deletes the Services' table of `bridge`, if there is one; idempotent.
pub fn remove_services(bridge: &str) -> Result<()> {
    super::nat::delete_table(services_table(bridge), "delete service table")
}

fn batch(table: &str, bridge: &str, cidr: super::PodCidr, rules: &[ServiceRule]) -> Batch {
    let mut batch = Batch::new();
    // Create-if-absent then delete, so the delete cannot fail; then build it anew.
    batch.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &table_attrs(table));
    batch.push(NFT_MSG_DELTABLE, 0, &table_attrs(table));
    if rules.is_empty() {
        return batch;
    }
    batch.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &table_attrs(table));
    for (chain, hook, priority) in [
        ("prerouting", NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST),
        ("output", NF_INET_LOCAL_OUT, NF_IP_PRI_NAT_DST),
        ("postrouting", NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC),
    ] {
        batch.push(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            &nat_chain(table, chain, hook, priority),
        );
    }
    for (n, service) in rules.iter().enumerate() {
        let chain = format!("svc{n}");
        batch.push(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            &regular_chain(table, &chain),
        );
        for hooked in ["prerouting", "output"] {
            batch.push(
                NFT_MSG_NEWRULE,
                NLM_F_CREATE | NLM_F_APPEND,
                &rule(table, hooked, &dispatch(service, &chain)),
            );
            if let Some(node_port) = service.node_port {
                batch.push(
                    NFT_MSG_NEWRULE,
                    NLM_F_CREATE | NLM_F_APPEND,
                    &rule(table, hooked, &dispatch_node_port(node_port, &chain)),
                );
            }
        }
        let count = service.endpoints.len();
        for (i, endpoint) in service.endpoints.iter().enumerate() {
            // Of the endpoints not passed yet, this one with probability 1/left.
            let left = (count - i) as u32;
            batch.push(
                NFT_MSG_NEWRULE,
                NLM_F_CREATE | NLM_F_APPEND,
                &rule(table, &chain, &pick(left, *endpoint)),
            );
        }
    }
    batch.push(
        NFT_MSG_NEWRULE,
        NLM_F_CREATE | NLM_F_APPEND,
        &rule(table, "postrouting", &masquerade_translated(bridge, cidr)),
    );
    let loopback = super::PodCidr::new(Ipv4Addr::new(127, 0, 0, 0), 8).expect("127.0.0.0/8");
    batch.push(
        NFT_MSG_NEWRULE,
        NLM_F_CREATE | NLM_F_APPEND,
        &rule(
            table,
            "postrouting",
            &masquerade_translated(bridge, loopback),
        ),
    );
    batch
}

fn regular_chain(table: &str, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, NFTA_CHAIN_TABLE, table);
    put_str(&mut out, NFTA_CHAIN_NAME, name);
    out
}

fn rule(table: &str, chain: &str, exprs: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, NFTA_RULE_TABLE, table);
    put_str(&mut out, NFTA_RULE_CHAIN, chain);
    put_nested(&mut out, NFTA_RULE_EXPRESSIONS, exprs);
    out
}

/// `ip daddr <cluster IP> meta l4proto tcp tcp dport <port> jump <chain>`.
fn dispatch(rule: &ServiceRule, chain: &str) -> Vec<u8> {
    let mut exprs = Vec::new();
    payload(&mut exprs, NFT_PAYLOAD_NETWORK_HEADER, IPV4_DADDR_OFFSET, 4);
    cmp(&mut exprs, NFT_CMP_EQ, &rule.cluster_ip.octets());
    meta(&mut exprs, NFT_META_L4PROTO);
    cmp(&mut exprs, NFT_CMP_EQ, &[IPPROTO_TCP]);
    payload(
        &mut exprs,
        NFT_PAYLOAD_TRANSPORT_HEADER,
        TCP_DPORT_OFFSET,
        2,
    );
    cmp(&mut exprs, NFT_CMP_EQ, &rule.port.to_be_bytes());
    jump(&mut exprs, chain);
    exprs
}

/// `fib daddr type local meta l4proto tcp tcp dport <node port> jump <chain>`.
fn dispatch_node_port(node_port: u16, chain: &str) -> Vec<u8> {
    let mut exprs = Vec::new();
    let mut fib = Vec::new();
    put_u32(&mut fib, NFTA_FIB_DREG, NFT_REG_1);
    put_u32(&mut fib, NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
    put_u32(&mut fib, NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR);
    put_expr(&mut exprs, "fib", &fib);
    // The address type is a host-order integer.
    cmp(&mut exprs, NFT_CMP_EQ, &RTN_LOCAL.to_ne_bytes());
    meta(&mut exprs, NFT_META_L4PROTO);
    cmp(&mut exprs, NFT_CMP_EQ, &[IPPROTO_TCP]);
    payload(
        &mut exprs,
        NFT_PAYLOAD_TRANSPORT_HEADER,
        TCP_DPORT_OFFSET,
        2,
    );
    cmp(&mut exprs, NFT_CMP_EQ, &node_port.to_be_bytes());
    jump(&mut exprs, chain);
    exprs
}

fn jump(exprs: &mut Vec<u8>, chain: &str) {
    let mut verdict = Vec::new();
    put_u32(&mut verdict, NFTA_VERDICT_CODE, NFT_JUMP as u32);
    put_str(&mut verdict, NFTA_VERDICT_CHAIN, chain);
    let mut data = Vec::new();
    put_nested(&mut data, NFTA_DATA_VERDICT, &verdict);
    let mut immediate = Vec::new();
    put_u32(&mut immediate, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
    put_nested(&mut immediate, NFTA_IMMEDIATE_DATA, &data);
    put_expr(exprs, "immediate", &immediate);
}

/// `[numgen random mod <left> == 0] dnat to <endpoint>`; the condition is left out when this is
/// the last endpoint (`left` 1).
fn pick(left: u32, endpoint: SocketAddrV4) -> Vec<u8> {
    let mut exprs = Vec::new();
    if left > 1 {
        let mut numgen = Vec::new();
        put_u32(&mut numgen, NFTA_NG_DREG, NFT_REG_1);
        put_u32(&mut numgen, NFTA_NG_MODULUS, left);
        put_u32(&mut numgen, NFTA_NG_TYPE, NFT_NG_RANDOM);
        put_expr(&mut exprs, "numgen", &numgen);
        // Zero reads the same in either byte order.
        cmp(&mut exprs, NFT_CMP_EQ, &0u32.to_ne_bytes());
    }
    immediate(&mut exprs, NFT_REG_1, &endpoint.ip().octets());
    immediate(&mut exprs, NFT_REG_2, &endpoint.port().to_be_bytes());
    let mut nat = Vec::new();
    put_u32(&mut nat, NFTA_NAT_TYPE, NFT_NAT_DNAT);
    put_u32(&mut nat, NFTA_NAT_FAMILY, NFPROTO_IPV4);
    put_u32(&mut nat, NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
    put_u32(&mut nat, NFTA_NAT_REG_PROTO_MIN, NFT_REG_2);
    put_expr(&mut exprs, "nat", &nat);
    exprs
}

/// `ip saddr <pod CIDR> oifname <bridge> ct status & dnat != 0 masquerade`.
fn masquerade_translated(bridge: &str, cidr: super::PodCidr) -> Vec<u8> {
    let mut exprs = Vec::new();
    payload(&mut exprs, NFT_PAYLOAD_NETWORK_HEADER, IPV4_SADDR_OFFSET, 4);
    let mut mask = Vec::new();
    put_u32(&mut mask, NFTA_BITWISE_SREG, NFT_REG_1);
    put_u32(&mut mask, NFTA_BITWISE_DREG, NFT_REG_1);
    put_u32(&mut mask, NFTA_BITWISE_LEN, 4);
    put_nested(
        &mut mask,
        NFTA_BITWISE_MASK,
        &data_value(&super::nat::prefix_mask(cidr.prefix_len()).octets()),
    );
    put_nested(&mut mask, NFTA_BITWISE_XOR, &data_value(&[0; 4]));
    put_expr(&mut exprs, "bitwise", &mask);
    cmp(&mut exprs, NFT_CMP_EQ, &cidr.network().octets());
    meta(&mut exprs, NFT_META_OIFNAME);
    let mut name = [0u8; IFNAMSIZ];
    name[..bridge.len()].copy_from_slice(bridge.as_bytes());
    cmp(&mut exprs, NFT_CMP_EQ, &name);
    let mut ct = Vec::new();
    put_u32(&mut ct, NFTA_CT_DREG, NFT_REG_1);
    put_u32(&mut ct, NFTA_CT_KEY, NFT_CT_STATUS);
    put_expr(&mut exprs, "ct", &ct);
    let mut bitwise = Vec::new();
    put_u32(&mut bitwise, NFTA_BITWISE_SREG, NFT_REG_1);
    put_u32(&mut bitwise, NFTA_BITWISE_DREG, NFT_REG_1);
    put_u32(&mut bitwise, NFTA_BITWISE_LEN, 4);
    // The status is a host-order integer.
    put_nested(
        &mut bitwise,
        NFTA_BITWISE_MASK,
        &data_value(&IPS_DST_NAT.to_ne_bytes()),
    );
    put_nested(&mut bitwise, NFTA_BITWISE_XOR, &data_value(&[0; 4]));
    put_expr(&mut exprs, "bitwise", &bitwise);
    cmp(&mut exprs, NFT_CMP_NEQ, &0u32.to_ne_bytes());
    // The client's source port is kept (the default, not `fully-random`): the translated
    // 4-tuple then follows the client's own, whose initial sequence numbers and timestamps
    // its kernel keeps increasing, so an endpoint still holding the same 4-tuple in TIME_WAIT
    // from an earlier connection takes the new SYN as a new connection. Random ports paired
    // unrelated sequence numbers with an endpoint's TIME_WAIT: about half such SYNs were
    // answered with a bare ACK, the client reset, and connect waited for retransmissions
    // (1,400 per 8 s under wrk through a node port on 127.0.0.1; now and then a connect timed
    // out after 2 s). Conntrack still picks another port when the client's is taken.
    let masq = Vec::new();
    put_expr(&mut exprs, "masq", &masq);
    exprs
}

fn payload(exprs: &mut Vec<u8>, base: u32, offset: u32, len: u32) {
    let mut attrs = Vec::new();
    put_u32(&mut attrs, NFTA_PAYLOAD_DREG, NFT_REG_1);
    put_u32(&mut attrs, NFTA_PAYLOAD_BASE, base);
    put_u32(&mut attrs, NFTA_PAYLOAD_OFFSET, offset);
    put_u32(&mut attrs, NFTA_PAYLOAD_LEN, len);
    put_expr(exprs, "payload", &attrs);
}

fn meta(exprs: &mut Vec<u8>, key: u32) {
    let mut attrs = Vec::new();
    put_u32(&mut attrs, NFTA_META_DREG, NFT_REG_1);
    put_u32(&mut attrs, NFTA_META_KEY, key);
    put_expr(exprs, "meta", &attrs);
}

fn cmp(exprs: &mut Vec<u8>, op: u32, data: &[u8]) {
    let mut attrs = Vec::new();
    put_u32(&mut attrs, NFTA_CMP_SREG, NFT_REG_1);
    put_u32(&mut attrs, NFTA_CMP_OP, op);
    put_nested(&mut attrs, NFTA_CMP_DATA, &data_value(data));
    put_expr(exprs, "cmp", &attrs);
}

fn immediate(exprs: &mut Vec<u8>, register: u32, value: &[u8]) {
    let mut data = Vec::new();
    put_attr(&mut data, super::nat::NFTA_DATA_VALUE, value);
    let mut attrs = Vec::new();
    put_u32(&mut attrs, NFTA_IMMEDIATE_DREG, register);
    put_nested(&mut attrs, NFTA_IMMEDIATE_DATA, &data);
    put_expr(exprs, "immediate", &attrs);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks attributes at one level: (type without flags, payload).
    fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
        let mut out = Vec::new();
        while buf.len() >= 4 {
            let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
            let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x7fff;
            out.push((kind, &buf[4..len]));
            buf = &buf[((len + 3) & !3).min(buf.len())..];
        }
        out
    }

    fn names(exprs: &[u8]) -> Vec<String> {
        attrs(exprs)
            .iter()
            .map(|(_, e)| {
                String::from_utf8_lossy(attrs(e)[0].1)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn endpoints_are_picked_with_falling_moduli_and_the_last_unconditionally() {
        let ep = |i| SocketAddrV4::new(Ipv4Addr::new(10, 73, 0, i), 8080);
        let first = pick(3, ep(5));
        assert_eq!(
            names(&first),
            ["numgen", "cmp", "immediate", "immediate", "nat"]
        );
        let numgen = attrs(attrs(attrs(&first)[0].1)[1].1);
        assert_eq!(numgen[1], (NFTA_NG_MODULUS, &3u32.to_be_bytes()[..]));
        let address = attrs(attrs(attrs(&first)[2].1)[1].1);
        assert_eq!(attrs(address[1].1)[0].1, [10, 73, 0, 5]);
        let port = attrs(attrs(attrs(&first)[3].1)[1].1);
        assert_eq!(attrs(port[1].1)[0].1, 8080u16.to_be_bytes());
        assert_eq!(names(&pick(1, ep(7))), ["immediate", "immediate", "nat"]);
    }

    #[test]
    fn dispatch_matches_address_protocol_and_port_then_jumps() {
        let rule = ServiceRule {
            cluster_ip: Ipv4Addr::new(10, 74, 0, 10),
            port: 80,
            node_port: None,
            endpoints: vec![],
        };
        let exprs = dispatch(&rule, "svc0");
        assert_eq!(
            names(&exprs),
            [
                "payload",
                "cmp",
                "meta",
                "cmp",
                "payload",
                "cmp",
                "immediate"
            ]
        );
        let ip = attrs(attrs(attrs(&exprs)[1].1)[1].1);
        assert_eq!(attrs(ip[2].1)[0].1, [10, 74, 0, 10]);
        let port = attrs(attrs(attrs(&exprs)[5].1)[1].1);
        assert_eq!(attrs(port[2].1)[0].1, [0, 80]);
    }

    #[test]
    fn an_empty_rule_set_only_removes_the_table() {
        let batch = batch("berth_svc_b", "b", cidr(), &[]);
        // NEWTABLE and DELTABLE, each acknowledged.
        assert_eq!(batch.pending_len(), 2);
        let mut rules = [ServiceRule {
            cluster_ip: Ipv4Addr::new(10, 74, 0, 10),
            port: 80,
            node_port: None,
            endpoints: vec![
                SocketAddrV4::new(Ipv4Addr::new(10, 73, 0, 2), 8080),
                SocketAddrV4::new(Ipv4Addr::new(10, 73, 0, 3), 8080),
            ],
        }];
        // 3 table ops, 3 hooked chains, svc0, 2 dispatch rules, 2 endpoint rules, 2 masquerades.
        assert_eq!(batch_len(&rules), 13);
        // A node port adds its dispatch rule to both hooked chains.
        rules[0].node_port = Some(30080);
        assert_eq!(batch_len(&rules), 15);
        assert_eq!(
            names(&dispatch_node_port(30080, "svc0")),
            ["fib", "cmp", "meta", "cmp", "payload", "cmp", "immediate"]
        );
    }

    fn batch_len(rules: &[ServiceRule]) -> usize {
        batch("berth_svc_b", "b", cidr(), rules).pending_len()
    }

    fn cidr() -> crate::network::PodCidr {
        crate::network::PodCidr::new(Ipv4Addr::new(10, 73, 0, 0), 16).unwrap()
    }
}
