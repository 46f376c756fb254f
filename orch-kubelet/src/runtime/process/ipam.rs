//! Pod IP allocation from the node's `spec.podCIDR`, persisted like the CNI `host-local` IPAM
//! plugin (`plugins/ipam/host-local/backend/disk`): one file per allocated address under
//! `<root-dir>/network/ips/`, named by the address and holding the pod UID, plus
//! `last_reserved_ip`, so a restarted kubelet never hands out an address twice and a freed
//! address is not reused at once (allocation continues round-robin after the last one).
//!
//! The gateway (the bridge) is the first address of the range; pods get the second to the last
//! but one (network and broadcast addresses are never handed out).

use super::RuntimeError;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// An IPv4 CIDR, normalized to its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub network: Ipv4Addr,
    /// Prefix length.
    pub len: u8,
}

impl std::str::FromStr for Cidr {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RuntimeError::Sandbox(format!("invalid pod CIDR {s:?} (want a.b.c.d/n)"));
        let (ip, len) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        // at least network, gateway, one pod and broadcast
        if len > 30 {
            return Err(bad());
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Ok(Self {
            network: Ipv4Addr::from(u32::from(ip) & mask),
            len,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

impl Cidr {
    /// The gateway: the first address after the network address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// First and last address a pod may get.
    fn pod_range(&self) -> (u32, u32) {
        let base = u32::from(self.network);
        let size = 1u64 << (32 - u32::from(self.len));
        (base + 2, (u64::from(base) + size - 2) as u32)
    }

    /// True if the two ranges share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let len = self.len.min(other.len);
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        u32::from(self.network) & mask == u32::from(other.network) & mask
    }
}

/// The next free pod address after `last` (round-robin), `None` if the range is full.
pub fn next_free(
    cidr: &Cidr,
    last: Option<Ipv4Addr>,
    used: impl Fn(Ipv4Addr) -> bool,
) -> Option<Ipv4Addr> {
    let (lo, hi) = cidr.pod_range();
    let start = match last.map(u32::from) {
        Some(l) if l >= lo && l < hi => l + 1,
        _ => lo,
    };
    let n = hi - lo + 1;
    (0..n)
        .map(|k| lo + (start - lo + k) % n)
        .map(Ipv4Addr::from)
        .find(|ip| !used(*ip))
}

/// The on-disk allocator of one node.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
}

impl Ipam {
    /// The allocator whose state lives in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The address already held by `owner`, if any.
    pub fn lookup(&self, owner: &str) -> Option<Ipv4Addr> {
        fs::read_dir(&self.dir).ok()?.flatten().find_map(|e| {
            let ip: Ipv4Addr = e.file_name().to_str()?.parse().ok()?;
            (fs::read_to_string(e.path()).ok()?.trim() == owner).then_some(ip)
        })
    }

    /// Allocates an address of `cidr` to `owner` (the address it already holds, if any).
    pub fn allocate(&self, cidr: &Cidr, owner: &str) -> Result<Ipv4Addr, RuntimeError> {
        let io = |e: std::io::Error| RuntimeError::Sandbox(format!("IP allocation: {e}"));
        fs::create_dir_all(&self.dir).map_err(io)?;
        if let Some(ip) = self.lookup(owner) {
            let (lo, hi) = cidr.pod_range();
            if (lo..=hi).contains(&u32::from(ip)) {
                return Ok(ip);
            }
            self.release(owner);
        }
        let last_file = self.dir.join("last_reserved_ip");
        let mut last = fs::read_to_string(&last_file)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        loop {
            let ip = next_free(cidr, last, |ip| self.dir.join(ip.to_string()).exists())
                .ok_or_else(|| {
                    RuntimeError::Sandbox(format!("no free IP address left in pod CIDR {cidr}"))
                })?;
            // create_new: two allocators never get the same address
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.dir.join(ip.to_string()))
            {
                Ok(mut f) => {
                    f.write_all(owner.as_bytes()).map_err(io)?;
                    let _ = fs::write(&last_file, ip.to_string());
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(ip),
                Err(e) => return Err(io(e)),
            }
        }
    }

    /// Frees every address held by `owner`.
    pub fn release(&self, owner: &str) {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let is_ip = e
                .file_name()
                .to_str()
                .is_some_and(|n| n.parse::<Ipv4Addr>().is_ok());
            if is_ip && fs::read_to_string(e.path()).is_ok_and(|s| s.trim() == owner) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalizes() {
        assert_eq!(cidr("10.244.1.7/24").to_string(), "10.244.1.0/24");
        assert_eq!(cidr("10.244.1.0/24").gateway().to_string(), "10.244.1.1");
        assert!("10.244.1.0".parse::<Cidr>().is_err());
        assert!("10.244.1.0/31".parse::<Cidr>().is_err());
        assert!("300.1.1.1/24".parse::<Cidr>().is_err());
    }

    #[test]
    fn overlap() {
        assert!(cidr("10.244.0.0/16").overlaps(&cidr("10.244.3.0/24")));
        assert!(cidr("10.244.3.0/24").overlaps(&cidr("10.244.0.0/16")));
        assert!(!cidr("10.244.3.0/24").overlaps(&cidr("10.244.4.0/24")));
    }

    #[test]
    fn round_robin_skips_gateway_network_and_broadcast() {
        let c = cidr("10.0.0.0/29"); // .0 network, .1 gateway, .2-.6 pods, .7 broadcast
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(next_free(&c, None, |_| false), Some(ip("10.0.0.2")));
        assert_eq!(
            next_free(&c, Some(ip("10.0.0.2")), |_| false),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(
            next_free(&c, Some(ip("10.0.0.6")), |_| false),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            next_free(&c, Some(ip("10.0.0.4")), |a| a != ip("10.0.0.3")),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(next_free(&c, None, |_| true), None);
    }

    #[test]
    fn persisted_allocation_survives_a_new_allocator_and_is_not_reused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let c = cidr("10.9.0.0/24");
        let a = Ipam::new(dir.path().join("ips"));
        let ip1 = a.allocate(&c, "pod-a").unwrap();
        assert_eq!(ip1.to_string(), "10.9.0.2");
        assert_eq!(
            a.allocate(&c, "pod-a").unwrap(),
            ip1,
            "same owner, same address"
        );
        let b = Ipam::new(dir.path().join("ips")); // a restarted kubelet
        assert_eq!(b.lookup("pod-a"), Some(ip1));
        let ip2 = b.allocate(&c, "pod-b").unwrap();
        assert_eq!(ip2.to_string(), "10.9.0.3");
        b.release("pod-a");
        assert_eq!(b.lookup("pod-a"), None);
        assert_eq!(b.allocate(&c, "pod-c").unwrap().to_string(), "10.9.0.4");
    }
}
