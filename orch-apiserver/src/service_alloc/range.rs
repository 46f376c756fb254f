//! The ranges Services are given addresses and node ports from: `--service-cluster-ip-range`
//! (a CIDR, default `10.96.0.0/12`) and `--service-node-port-range` (default `30000-32767`),
//! parsed and checked as kube-apiserver does (`cmd/kube-apiserver/app/options/validation.go`
//! `validateMaxCIDRRange`, `k8s.io/apimachinery/pkg/util/net/port_range.go`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The default `--service-cluster-ip-range`.
pub const DEFAULT_CLUSTER_IP_RANGE: &str = "10.96.0.0/12";
/// The default `--service-node-port-range`.
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";

/// A range may span at most this many host bits (upstream `maxCIDRBits`: the range is kept in
/// storage; a larger one adds nothing).
const MAX_CIDR_BITS: u32 = 20;

/// The Service IP range: a CIDR whose usable addresses are handed out (the network address,
/// and for IPv4 the broadcast address, excluded, as upstream's bitmap allocator does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u32,
}

impl IpRange {
    /// Parses `--service-cluster-ip-range`: one CIDR (orch serves single-stack Services, so a
    /// dual-stack pair is refused), at most 20 host bits, at least two usable addresses.
    pub fn parse(s: &str) -> Result<Self, String> {
        let flag = "--service-cluster-ip-range";
        let s = s.trim();
        if s.contains(',') {
            return Err(format!(
                "{flag} {s:?}: dual-stack Service ranges are not supported; give one CIDR"
            ));
        }
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{flag} {s:?}: not a CIDR (e.g. 10.96.0.0/12)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{flag} {s:?}: not a CIDR (e.g. 10.96.0.0/12)"))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u32 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(|| format!("{flag} {s:?}: not a CIDR (e.g. 10.96.0.0/12)"))?;
        if bits - prefix > MAX_CIDR_BITS {
            return Err(format!(
                "specified {flag} is too large; for {bits}-bit addresses, the mask must be >= {}",
                bits - MAX_CIDR_BITS
            ));
        }
        let host = bits - prefix;
        let network = from_u128(addr.is_ipv6(), to_u128(addr) >> host << host);
        let r = Self { network, prefix };
        if r.size() < 2 {
            return Err(format!(
                "{flag} {s:?}: too small; it must hold at least two addresses"
            ));
        }
        Ok(r)
    }

    /// `"IPv4"` or `"IPv6"` (the Service's `ipFamilies` value).
    pub fn family(&self) -> &'static str {
        family_of(&self.network)
    }

    fn host_bits(&self) -> u32 {
        if self.network.is_ipv4() {
            32 - self.prefix
        } else {
            128 - self.prefix
        }
    }

    /// How many addresses are handed out.
    pub fn size(&self) -> u64 {
        let all = 1u64 << self.host_bits();
        // The network address; for IPv4 the broadcast address too.
        let excluded = if self.network.is_ipv4() { 2 } else { 1 };
        all.saturating_sub(excluded)
    }

    /// The offset of `ip` among the usable addresses, if it is one.
    pub fn offset(&self, ip: IpAddr) -> Option<u64> {
        if ip.is_ipv4() != self.network.is_ipv4() {
            return None;
        }
        let d = to_u128(ip).checked_sub(to_u128(self.network))?;
        let off = d.checked_sub(1)?;
        (off < u128::from(self.size())).then_some(off as u64)
    }

    /// The usable address at `offset` (`offset < size`).
    pub fn nth(&self, offset: u64) -> IpAddr {
        from_u128(
            self.network.is_ipv6(),
            to_u128(self.network) + 1 + u128::from(offset),
        )
    }

    /// The first usable address: the `kubernetes` Service's.
    pub fn first(&self) -> IpAddr {
        self.nth(0)
    }

    /// The size of the low band kept for static (requested) addresses: dynamic allocation takes
    /// addresses above it first (upstream `calculateRangeOffset`, KEP-3070: between 16 and 256
    /// addresses, a sixteenth of the range).
    pub fn static_band(&self) -> u64 {
        let all = 1u64 << self.host_bits();
        if all < 16 {
            0
        } else {
            (all / 16).clamp(16, 256).min(self.size())
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `"IPv4"` or `"IPv6"`.
pub fn family_of(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v6: bool, v: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    }
}

/// The node port range: `BASE-MAX`, `BASE+OFFSET` or one port (upstream `ParsePortRange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub base: u16,
    /// Number of ports.
    pub size: u32,
}

impl PortRange {
    /// Parses `--service-node-port-range`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("--service-node-port-range {s:?}: not a port range (e.g. 30000-32767 or 30000+2767)")
        };
        let s = s.trim();
        let port = |p: &str| p.trim().parse::<u16>().ok();
        let (low, high) = if let Some((a, b)) = s.split_once('-') {
            (port(a).ok_or_else(bad)?, port(b).ok_or_else(bad)?)
        } else if let Some((a, b)) = s.split_once('+') {
            let a = port(a).ok_or_else(bad)?;
            let off = port(b).ok_or_else(bad)?;
            (a, a.checked_add(off).ok_or_else(bad)?)
        } else {
            let p = port(s).ok_or_else(bad)?;
            (p, p)
        };
        if low == 0 || high < low {
            return Err(bad());
        }
        Ok(Self {
            base: low,
            size: u32::from(high - low) + 1,
        })
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        port >= self.base && u32::from(port - self.base) < self.size
    }

    /// The port at `offset` (`offset < size`).
    pub fn nth(&self, offset: u32) -> u16 {
        (u32::from(self.base) + offset) as u16
    }

    /// The low band kept for static (requested) ports (upstream `calculateRangeOffset` of the
    /// port allocator, KEP-3668: between 16 and 128 ports, a thirty-second of the range).
    pub fn static_band(&self) -> u32 {
        if self.size < 16 {
            0
        } else {
            (self.size / 32).clamp(16, 128)
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.base, u32::from(self.base) + self.size - 1)
    }
}
