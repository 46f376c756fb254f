//! The leader election flags shared by `orch scheduler` and `orch controller-manager`
//! (kube-scheduler's and kube-controller-manager's `--leader-elect*`): with several instances
//! on one cluster, only the holder of the Lease `kube-system/NAME` acts.

use super::parse_duration;
use orch_controllers::leader::LeaderElectionConfig;
use std::time::Duration;

/// `--leader-elect`, `--leader-elect-lease-duration`, `--leader-elect-renew-deadline`,
/// `--leader-elect-retry-period` and `--identity`.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaderElectArgs {
    /// `--leader-elect` (default true): act only while holding the leader Lease.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// How long a Lease holds without renewal before another instance may take it over
    /// (a Go duration: `15s`, `500ms`, `1m`).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps acting without a successful renewal.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// The interval between attempts to acquire or renew the Lease.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// Identity in the leader Lease (default: hostname + pid).
    #[arg(long)]
    pub identity: Option<String>,
}

impl LeaderElectArgs {
    /// The election on the Lease `kube-system/NAME`, or a message when the durations are not
    /// ordered as kube's leader election requires (lease duration > renew deadline > retry
    /// period).
    pub fn config(&self, name: &str) -> Result<LeaderElectionConfig, String> {
        let (lease, renew, retry) = (
            self.leader_elect_lease_duration,
            self.leader_elect_renew_deadline,
            self.leader_elect_retry_period,
        );
        if !(lease > renew && renew > retry && !retry.is_zero()) {
            return Err(format!(
                "--leader-elect-lease-duration ({lease:?}) must be greater than \
                 --leader-elect-renew-deadline ({renew:?}), which must be greater than \
                 --leader-elect-retry-period ({retry:?}), which must not be 0"
            ));
        }
        let identity = self.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "orch".into());
            format!("{host}_{}", std::process::id())
        });
        let mut le = LeaderElectionConfig::new(name, &identity);
        le.lease_duration = lease;
        le.renew_deadline = renew;
        le.retry_period = retry;
        Ok(le)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_must_be_ordered() {
        let args = |lease, renew, retry| LeaderElectArgs {
            leader_elect: true,
            leader_elect_lease_duration: Duration::from_secs(lease),
            leader_elect_renew_deadline: Duration::from_secs(renew),
            leader_elect_retry_period: Duration::from_secs(retry),
            identity: Some("me".into()),
        };
        let le = args(4, 3, 1).config("kube-scheduler").unwrap();
        assert_eq!(
            (le.name.as_str(), le.identity.as_str(), le.lease_duration),
            ("kube-scheduler", "me", Duration::from_secs(4))
        );
        assert!(args(3, 3, 1).config("x").is_err());
        assert!(args(4, 3, 3).config("x").is_err());
        assert!(args(4, 3, 0).config("x").is_err());
    }
}
