//! Leader election on a coordination.k8s.io/v1 Lease (client-go `leaderelection` with the
//! `LeaseLock`): acquire when the Lease is free or expired, renew every `retry_period`, give up
//! (stop the controllers) when renewing fails for `renew_deadline`. Two instances never act at
//! once as long as their clocks agree within `lease_duration - renew_deadline`.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use orch_types::client::{ClientError, PostParams, SharedClient};
use orch_types::clock::SharedClock;
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use std::future::Future;
use std::time::Duration;

/// Configuration (kube-controller-manager defaults).
#[derive(Debug, Clone)]
pub struct LeaderElectionConfig {
    /// Lease namespace.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This instance's identity (holderIdentity).
    pub identity: String,
    /// `--leader-elect-lease-duration` (15 s).
    pub lease_duration: Duration,
    /// `--leader-elect-renew-deadline` (10 s).
    pub renew_deadline: Duration,
    /// `--leader-elect-retry-period` (2 s).
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// Defaults for `kube-system/<name>` held by `identity`.
    pub fn new(name: &str, identity: &str) -> Self {
        Self {
            namespace: "kube-system".into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do with the Lease now.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseDecision {
    /// No Lease yet: create this one.
    Create(Lease),
    /// Write this Lease (renewal, or takeover of an expired one); optimistic on resourceVersion.
    Update(Lease),
    /// Someone else holds a valid Lease.
    Wait {
        /// The current holder.
        holder: String,
    },
}

/// Pure decision: acquire, renew or wait (`tryAcquireOrRenew`).
pub fn decide(
    existing: Option<&Lease>,
    cfg: &LeaderElectionConfig,
    now: Timestamp,
) -> LeaseDecision {
    let secs = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let mine = |transitions: i32, acquire: Timestamp, meta: ObjectMeta| Lease {
        metadata: meta,
        spec: Some(LeaseSpec {
            holder_identity: Some(cfg.identity.clone()),
            lease_duration_seconds: Some(secs),
            acquire_time: Some(MicroTime(acquire)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }),
    };
    let Some(l) = existing else {
        let meta = ObjectMeta {
            name: Some(cfg.name.clone()),
            namespace: Some(cfg.namespace.clone()),
            ..Default::default()
        };
        return LeaseDecision::Create(mine(0, now, meta));
    };
    let spec = l.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let transitions = spec.lease_transitions.unwrap_or(0);
    if holder == cfg.identity {
        let acquired = spec.acquire_time.map_or(now, |t| t.0);
        return LeaseDecision::Update(mine(transitions, acquired, l.metadata.clone()));
    }
    let duration =
        SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(secs)));
    let expired = holder.is_empty()
        || spec
            .renew_time
            .as_ref()
            .is_none_or(|r| r.0.checked_add(duration).is_ok_and(|end| end <= now));
    if expired {
        LeaseDecision::Update(mine(transitions + 1, now, l.metadata.clone()))
    } else {
        LeaseDecision::Wait { holder }
    }
}

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Renewal failed for longer than the renew deadline.
    #[error("leader election lost: could not renew lease {0} in time")]
    Lost(String),
}

async fn try_once(
    client: &SharedClient,
    cfg: &LeaderElectionConfig,
    now: Timestamp,
) -> Result<bool, ClientError> {
    let res = ApiResource::of::<Lease>();
    let existing = match client.get(&res, Some(&cfg.namespace), &cfg.name).await {
        Ok(d) => Some(d.to_typed::<Lease>()?),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    match decide(existing.as_ref(), cfg, now) {
        LeaseDecision::Wait { .. } => Ok(false),
        LeaseDecision::Create(l) => {
            let d = DynamicObject::from_typed(&l)?;
            match client
                .create(&res, Some(&cfg.namespace), &d, &PostParams::default())
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if e.is_already_exists() => Ok(false),
                Err(e) => Err(e),
            }
        }
        LeaseDecision::Update(l) => {
            let d = DynamicObject::from_typed(&l)?;
            match client
                .update(&res, Some(&cfg.namespace), &d, &PostParams::default())
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if e.is_conflict() => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits for leadership, then runs `work(stop)` while renewing; `stop` resolves when leadership
/// is lost (then `Err(Lost)` is returned once `work` finished) or `shutdown` resolves.
pub async fn run_as_leader<W, Fut>(
    client: SharedClient,
    clock: SharedClock,
    cfg: LeaderElectionConfig,
    shutdown: impl Future<Output = ()> + Send,
    work: W,
) -> Result<(), LeaderError>
where
    W: FnOnce(tokio::sync::oneshot::Receiver<()>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let acquired = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = try_once(&client, &cfg, clock.now()) => r,
        };
        match acquired {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election: acquire failed"),
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(cfg.retry_period) => {}
        }
    }
    tracing::info!(lease = %format!("{}/{}", cfg.namespace, cfg.name), identity = %cfg.identity, "became leader");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let mut handle = tokio::spawn(work(stop_rx));
    let mut last_renew = std::time::Instant::now();
    let mut lost = false;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = &mut handle => return Ok(()),
            _ = tokio::time::sleep(cfg.retry_period) => {
                match try_once(&client, &cfg, clock.now()).await {
                    Ok(true) => last_renew = std::time::Instant::now(),
                    Ok(false) => { lost = true; break; }
                    Err(e) => tracing::warn!(error = %e, "leader election: renew failed"),
                }
                if last_renew.elapsed() > cfg.renew_deadline {
                    lost = true;
                    break;
                }
            }
        }
    }
    let _ = stop_tx.send(());
    let _ = handle.await;
    if lost {
        Err(LeaderError::Lost(format!("{}/{}", cfg.namespace, cfg.name)))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(who: &str, renew: i64) -> Lease {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kcm", "namespace": "kube-system", "resourceVersion": "5"},
            "spec": {"holderIdentity": who, "leaseDurationSeconds": 15, "leaseTransitions": 2,
                     "renewTime": Timestamp::from_second(renew).unwrap().to_string(),
                     "acquireTime": Timestamp::from_second(0).unwrap().to_string()}
        }))
        .unwrap()
    }

    #[test]
    fn acquire_renew_wait_and_take_over_expired() {
        let cfg = LeaderElectionConfig::new("kcm", "me");
        let t = |s| Timestamp::from_second(s).unwrap();
        assert!(matches!(decide(None, &cfg, t(0)), LeaseDecision::Create(_)));
        assert_eq!(
            decide(Some(&held_by("other", 100)), &cfg, t(110)),
            LeaseDecision::Wait {
                holder: "other".into()
            }
        );
        let LeaseDecision::Update(l) = decide(Some(&held_by("other", 100)), &cfg, t(115)) else {
            panic!("expired lease should be taken over")
        };
        let s = l.spec.unwrap();
        assert_eq!(
            (s.holder_identity.as_deref(), s.lease_transitions),
            (Some("me"), Some(3))
        );
        assert_eq!(l.metadata.resource_version.as_deref(), Some("5"));
        let LeaseDecision::Update(r) = decide(Some(&held_by("me", 100)), &cfg, t(105)) else {
            panic!("renewal expected")
        };
        assert_eq!(r.spec.unwrap().lease_transitions, Some(2));
    }
}
