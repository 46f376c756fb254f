//! Which cluster CIDR an `orch up` cluster uses when its pods get network namespaces: several
//! clusters on one host (a developer's second `orch up`, tests running in parallel) must not
//! route the same pod range through two bridges. Upstream has one cluster per host and a fixed
//! `--cluster-cidr`; here a cluster without an explicit one picks the first /16 of
//! 10.244.0.0/16, 10.245.0.0/16, … 10.255.0.0/16, 10.128.0.0/16, … that no host route
//! overlaps and no running cluster claimed. Claims are files under `/run/orch/cluster-cidrs/`
//! created with `O_EXCL` and holding the owner's PID and data dir, so two clusters starting at
//! the same moment never pick the same range; a claim whose process is gone is taken over.
//! The choice is remembered in the data dir, so a restarted cluster keeps its range (and its
//! nodes' podCIDRs).

use super::ipam::Cidr;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where claims live.
pub const CLAIM_DIR: &str = "/run/orch/cluster-cidrs";

/// A claimed range; dropping it releases the claim (if still ours).
#[derive(Debug)]
pub struct ClusterCidrClaim {
    cidr: String,
    file: Option<PathBuf>,
}

impl ClusterCidrClaim {
    /// The range, `a.b.c.d/16`.
    pub fn cidr(&self) -> &str {
        &self.cidr
    }
}

impl Drop for ClusterCidrClaim {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            let ours =
                fs::read_to_string(f).is_ok_and(|s| owner_pid(&s) == Some(std::process::id()));
            if ours {
                let _ = fs::remove_file(f);
            }
        }
    }
}

fn owner_pid(text: &str) -> Option<u32> {
    text.split_whitespace().next()?.parse().ok()
}

fn candidates() -> impl Iterator<Item = String> {
    (244..=255)
        .chain(128..244)
        .map(|b| format!("10.{b}.0.0/16"))
}

/// Ranges routed on this host (`ip -4 route`), parsed from `/proc/net/route`.
fn host_routes() -> Vec<Cidr> {
    let text = fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            if mask == 0 {
                return None; // default route
            }
            // little-endian hex in /proc/net/route
            let ip = std::net::Ipv4Addr::from(dest.swap_bytes());
            let len = mask.count_ones();
            format!("{ip}/{len}").parse().ok()
        })
        .collect()
}

fn claim_file(dir: &Path, cidr: &str) -> PathBuf {
    dir.join(cidr.replace('/', "-"))
}

fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The cluster CIDR for the cluster whose data dir is `data_dir`: the remembered one, else the
/// first free candidate (claimed). Without root (no namespaces, so no routes) the default
/// 10.244.0.0/16 without a claim.
pub fn claim_cluster_cidr(data_dir: &Path) -> ClusterCidrClaim {
    claim_in(Path::new(CLAIM_DIR), data_dir, &host_routes())
}

fn claim_in(dir: &Path, data_dir: &Path, routes: &[Cidr]) -> ClusterCidrClaim {
    let remembered = data_dir.join("cluster-cidr");
    let me = format!("{} {}\n", std::process::id(), data_dir.display());
    if let Some(c) = fs::read_to_string(&remembered)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| s.parse::<Cidr>().is_ok())
    {
        let f = claim_file(dir, &c);
        let file = (fs::create_dir_all(dir).is_ok() && fs::write(&f, &me).is_ok()).then_some(f);
        return ClusterCidrClaim { cidr: c, file };
    }
    if fs::create_dir_all(dir).is_err() {
        return ClusterCidrClaim {
            cidr: candidates().next().unwrap_or_default(),
            file: None,
        };
    }
    for c in candidates() {
        let Ok(cidr) = c.parse::<Cidr>() else {
            continue;
        };
        if routes.iter().any(|r| r.overlaps(&cidr)) {
            continue;
        }
        let f = claim_file(dir, &c);
        let created = OpenOptions::new().write(true).create_new(true).open(&f);
        let got = match created {
            Ok(mut file) => file.write_all(me.as_bytes()).is_ok(),
            Err(_) => {
                // taken: take it over only if its owner is gone
                let stale = fs::read_to_string(&f)
                    .ok()
                    .and_then(|s| owner_pid(&s))
                    .is_none_or(|p| !pid_alive(p));
                // remove + create_new again, so two takers never both win
                stale
                    && fs::remove_file(&f).is_ok()
                    && OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&f)
                        .and_then(|mut file| file.write_all(me.as_bytes()))
                        .is_ok()
            }
        };
        if got {
            let _ = fs::create_dir_all(data_dir);
            let _ = fs::write(&remembered, &c);
            return ClusterCidrClaim {
                cidr: c,
                file: Some(f),
            };
        }
    }
    ClusterCidrClaim {
        cidr: candidates().next().unwrap_or_default(),
        file: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_free_ranges_claims_them_and_remembers() {
        let reg = tempfile::tempdir().unwrap();
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let routes: Vec<Cidr> = vec!["10.244.3.0/24".parse().unwrap()];
        let a = claim_in(reg.path(), d1.path(), &routes);
        assert_eq!(a.cidr(), "10.245.0.0/16", "10.244/16 overlaps a host route");
        let b = claim_in(reg.path(), d2.path(), &routes);
        assert_eq!(
            b.cidr(),
            "10.246.0.0/16",
            "10.245/16 is claimed by a live process"
        );
        drop(b);
        // remembered across restarts, even while its claim is held
        let again = claim_in(reg.path(), d1.path(), &[]);
        assert_eq!(again.cidr(), "10.245.0.0/16");
        // a stale claim (dead owner) is taken over
        fs::write(claim_file(reg.path(), "10.244.0.0/16"), "999999999 /gone\n").unwrap();
        let d3 = tempfile::tempdir().unwrap();
        assert_eq!(claim_in(reg.path(), d3.path(), &[]).cidr(), "10.244.0.0/16");
    }
}
