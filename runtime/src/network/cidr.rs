//! The pod CIDR: an IPv4 network whose first host is the bridge's gateway address and whose
//! other hosts (not the network or broadcast address) are handed out to sandboxes.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network such as `10.73.0.0/16`, with host bits zero and a prefix of 1 to 30 (a /31
/// or /32 has no room for a gateway and a pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PodCidr {
    network: Ipv4Addr,
    prefix_len: u8,
}

/// Why a pod CIDR string was refused; names the value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pod CIDR {value:?}: {expected}")]
pub struct InvalidCidr {
    pub value: String,
    pub expected: String,
}

impl PodCidr {
    /// `network/prefix_len`; refuses host bits and prefixes outside 1..=30.
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Result<Self, InvalidCidr> {
        let value = format!("{network}/{prefix_len}");
        if !(1..=30).contains(&prefix_len) {
            return Err(InvalidCidr {
                value,
                expected: "a prefix length from 1 to 30".into(),
            });
        }
        let cidr = Self {
            network,
            prefix_len,
        };
        if u32::from(network) & !cidr.mask() != 0 {
            let masked = Ipv4Addr::from(u32::from(network) & cidr.mask());
            return Err(InvalidCidr {
                value,
                expected: format!(
                    "the network address with host bits zero ({masked}/{prefix_len})"
                ),
            });
        }
        Ok(cidr)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix_len))
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }

    /// The first host: the bridge's address and every pod's default route.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The addresses handed out to sandboxes, in order: every host but the gateway.
    pub fn pod_range(&self) -> std::ops::RangeInclusive<u32> {
        u32::from(self.network) + 2..=u32::from(self.broadcast()) - 1
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// A file name for this network (`10.73.0.0-16`), as host-local names its directories.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.network, self.prefix_len)
    }
}

impl fmt::Display for PodCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for PodCidr {
    type Err = InvalidCidr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidCidr {
            value: s.to_string(),
            expected: "an IPv4 network as ADDRESS/PREFIX, e.g. 10.73.0.0/16".into(),
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(invalid)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        Self::new(addr, prefix).map_err(|e| InvalidCidr {
            value: s.to_string(),
            ..e
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_derives_gateway_broadcast_and_pod_range() {
        let cidr: PodCidr = "10.73.0.0/16".parse().unwrap();
        assert_eq!(cidr.to_string(), "10.73.0.0/16");
        assert_eq!(cidr.gateway(), Ipv4Addr::new(10, 73, 0, 1));
        assert_eq!(cidr.broadcast(), Ipv4Addr::new(10, 73, 255, 255));
        let range = cidr.pod_range();
        assert_eq!(Ipv4Addr::from(*range.start()), Ipv4Addr::new(10, 73, 0, 2));
        assert_eq!(
            Ipv4Addr::from(*range.end()),
            Ipv4Addr::new(10, 73, 255, 254)
        );
        assert!(cidr.contains(Ipv4Addr::new(10, 73, 9, 9)));
        assert!(!cidr.contains(Ipv4Addr::new(10, 74, 0, 1)));
        assert_eq!(cidr.dir_name(), "10.73.0.0-16");

        let small: PodCidr = "192.168.5.4/30".parse().unwrap();
        assert_eq!(small.pod_range().count(), 1);
    }

    #[test]
    fn refuses_host_bits_bad_prefixes_and_garbage_naming_the_value() {
        let err = "10.73.0.1/16".parse::<PodCidr>().unwrap_err();
        assert_eq!(err.value, "10.73.0.1/16");
        assert!(err.expected.contains("10.73.0.0/16"), "{err}");
        for bad in [
            "10.73.0.0/31",
            "10.73.0.0/0",
            "10.73.0.0",
            "x/8",
            "10.0.0.0/33",
        ] {
            let err = bad.parse::<PodCidr>().unwrap_err();
            assert_eq!(err.value, bad);
        }
    }
}
