//! `csrcleaner`, after upstream `pkg/controller/certificates/cleaner/cleaner.go`: requests are
//! deleted once they are of no more use: approved, denied or failed ones after an hour, pending
//! ones after a day, issued ones once their certificate expired if that comes first.

use super::is_issued;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use std::time::Duration;

/// Upstream `approvedExpiration`, `deniedExpiration`, `failedExpiration`.
const DECIDED: SignedDuration = SignedDuration::from_hours(1);
/// Upstream `pendingExpiration`.
const PENDING: SignedDuration = SignedDuration::from_hours(24);

/// The controller's declaration. Keys are request names.
#[derive(Debug, Default, Clone, Copy)]
pub struct CsrCleanerController;

fn expiry_of_certificate(csr: &CertificateSigningRequest) -> Option<Timestamp> {
    let pem = &csr.status.as_ref()?.certificate.as_ref()?.0;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let cert = block.parse_x509().ok()?;
    Timestamp::from_second(cert.validity().not_after.timestamp()).ok()
}

impl CsrCleanerController {
    /// When `csr` is due for deletion: an hour after it was approved, denied or failed (its
    /// condition's `lastUpdateTime`), a day after it was created while pending, and when its
    /// certificate expires if that is sooner.
    pub fn due(&self, csr: &CertificateSigningRequest) -> Option<Timestamp> {
        let created = csr.metadata.creation_timestamp.as_ref()?.0;
        let decided = csr
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| ["Approved", "Denied", "Failed"].contains(&c.type_.as_str()))
            .map(|c| c.last_update_time.as_ref().map_or(created, |t| t.0))
            .max();
        let due = match decided {
            Some(t) => t + DECIDED,
            None => created + PENDING,
        };
        Some(
            match expiry_of_certificate(csr).filter(|_| is_issued(csr)) {
                Some(expiry) => due.min(expiry),
                None => due,
            },
        )
    }

    /// Deletes `csr` when it is due, else looks again then.
    pub fn reconcile(&self, csr: &CertificateSigningRequest, now: Timestamp) -> Vec<Action> {
        let Some(due) = self.due(csr) else {
            return Vec::new();
        };
        if now >= due {
            return vec![Action::delete(csr)];
        }
        let wait = now.duration_until(due).unsigned_abs();
        vec![Action::requeue(wait.min(Duration::from_secs(3600)))]
    }
}

impl Controller for CsrCleanerController {
    fn name(&self) -> &'static str {
        "csrcleaner"
    }

    fn component(&self) -> &'static str {
        "certificatesigningrequest-cleaner-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<CertificateSigningRequest>(trigger_self());
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        match caches.get::<CertificateSigningRequest>().get(key) {
            Some(csr) => self.reconcile(&csr, now),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{csr, request_pem};
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn pending_requests_last_a_day_decided_ones_an_hour() {
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let mut c = csr(
            "a",
            &request_pem("x", &[], &[]),
            "example.com/s",
            &["client auth"],
            "u",
        );
        c.metadata.creation_timestamp = Some(Time(t0));
        assert_eq!(CsrCleanerController.due(&c), Some(t0 + PENDING));
        assert!(matches!(
            CsrCleanerController.reconcile(&c, t0)[..],
            [Action::Requeue(_)]
        ));
        c.status = Some(Default::default());
        c.status.as_mut().unwrap().conditions = Some(vec![Default::default()]);
        c.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].type_ = "Denied".into();
        c.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "True".into();
        assert_eq!(CsrCleanerController.due(&c), Some(t0 + DECIDED));
        assert!(matches!(
            CsrCleanerController.reconcile(&c, t0 + DECIDED)[..],
            [Action::Delete { .. }]
        ));
    }
}
