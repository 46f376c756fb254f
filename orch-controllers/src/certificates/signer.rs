//! `csrsigning`, after upstream `pkg/controller/certificates/signer/signer.go`: an Approved
//! request of `kubernetes.io/kube-apiserver-client`, `kubernetes.io/kube-apiserver-client-kubelet`
//! or `kubernetes.io/kubelet-serving` is signed with the cluster CA (`--cluster-signing-cert-file`,
//! `--cluster-signing-key-file`) and the certificate written through `/status`; a request its
//! signer's rules refuse gets a `Failed` condition (reason `SignerValidationFailure`) instead.
//! Denied, failed, issued requests and those of other signers (`kubernetes.io/legacy-unknown`
//! among them) are left alone.
//!
//! The certificate: the request's subject and subject alternative names and public key, the
//! key usages and extended key usages of `spec.usages`, not a CA, valid from five minutes ago
//! (upstream's backdate) for `min(expirationSeconds, --cluster-signing-duration)` (at least ten
//! minutes), never past the CA's own expiry.

use super::{
    has_condition, is_issued, kubelet_client, kubelet_serving, parse, usages, Request,
    KUBELET_SERVING, KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET,
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::ByteString;
use orch_runtime::action::Action;
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use std::collections::BTreeSet;
use std::time::Duration;

/// Upstream `--cluster-signing-duration` default: one year.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// Reason of the Failed condition when the signer's rules refuse a request.
pub const VALIDATION_FAILURE: &str = "SignerValidationFailure";
/// How far back a certificate's validity starts (upstream's backdate, for clock skew).
const BACKDATE: SignedDuration = SignedDuration::from_mins(5);
/// The shortest certificate issued.
const MIN_DURATION: Duration = Duration::from_secs(600);

/// The cluster CA the signer signs with.
#[derive(Clone)]
pub struct ClusterSigning {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// `--cluster-signing-duration`: the longest certificate issued.
    pub duration: Duration,
}

impl std::fmt::Debug for ClusterSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSigning")
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

/// The controller's declaration. Keys are request names. Without a CA it signs nothing
/// (upstream does not start it without `--cluster-signing-*` files).
#[derive(Debug, Default, Clone)]
pub struct CsrSigningController {
    /// The CA, if configured.
    pub signing: Option<ClusterSigning>,
}

/// Upstream `validAPIServerClientUsages`: client auth, optionally digital signature and key
/// encipherment, nothing else.
fn api_server_client_usages(u: &BTreeSet<&str>) -> Result<(), String> {
    if let Some(bad) = u
        .iter()
        .find(|x| !["digital signature", "key encipherment", "client auth"].contains(*x))
    {
        return Err(format!("invalid usage for client certificate: {bad}"));
    }
    if !u.contains("client auth") {
        return Err("missing required usage for client certificate: client auth".into());
    }
    Ok(())
}

/// The rules of the signer of `csr` (upstream `isKubeletServing`, `isKubeletClient`,
/// `isKubeAPIServerClient`): `None` for a signer this controller does not serve.
fn check(csr: &CertificateSigningRequest, r: &Request) -> Option<Result<(), String>> {
    let u = usages(csr);
    Some(match csr.spec.signer_name.as_str() {
        KUBE_APISERVER_CLIENT => api_server_client_usages(&u),
        KUBE_APISERVER_CLIENT_KUBELET => kubelet_client(r, &u),
        KUBELET_SERVING => kubelet_serving(r, &u),
        _ => return None,
    })
}

impl CsrSigningController {
    /// What a request needs: its certificate, a Failed condition, or nothing.
    pub fn reconcile(&self, csr: &CertificateSigningRequest, now: Timestamp) -> Vec<Action> {
        let Some(signing) = &self.signing else {
            return Vec::new();
        };
        if !has_condition(csr, "Approved")
            || has_condition(csr, "Denied")
            || has_condition(csr, "Failed")
            || is_issued(csr)
        {
            return Vec::new();
        }
        let request = match parse(&csr.spec.request.0) {
            Ok(r) => r,
            Err(e) => return vec![failed(csr, "SigningFailed", &e, now)],
        };
        match check(csr, &request) {
            None => Vec::new(),
            Some(Err(e)) => vec![failed(csr, VALIDATION_FAILURE, &e, now)],
            Some(Ok(())) => match sign(signing, csr, now) {
                Ok(pem) => {
                    let mut next = csr.clone();
                    next.status.get_or_insert_with(Default::default).certificate =
                        Some(ByteString(pem.into_bytes()));
                    vec![Action::update_status(&next)]
                }
                Err(e) => vec![failed(csr, "SigningFailed", &e, now)],
            },
        }
    }
}

/// The request with a Failed condition, written through `/status`.
fn failed(csr: &CertificateSigningRequest, reason: &str, message: &str, now: Timestamp) -> Action {
    let mut next = csr.clone();
    next.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(CertificateSigningRequestCondition {
            type_: "Failed".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_update_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
        });
    Action::update_status(&next)
}

/// Upstream `duration`: the requested one within [10 min, the configured maximum].
fn lifetime(max: Duration, requested: Option<i32>) -> Duration {
    match requested {
        None => max,
        Some(s) => Duration::from_secs(u64::try_from(s).unwrap_or(0))
            .clamp(MIN_DURATION, max.max(MIN_DURATION)),
    }
}

fn key_usage(u: &str) -> Option<KeyUsagePurpose> {
    Some(match u {
        "digital signature" => KeyUsagePurpose::DigitalSignature,
        "content commitment" => KeyUsagePurpose::ContentCommitment,
        "key encipherment" => KeyUsagePurpose::KeyEncipherment,
        "key agreement" => KeyUsagePurpose::KeyAgreement,
        "data encipherment" => KeyUsagePurpose::DataEncipherment,
        "cert sign" => KeyUsagePurpose::KeyCertSign,
        "crl sign" => KeyUsagePurpose::CrlSign,
        "encipher only" => KeyUsagePurpose::EncipherOnly,
        "decipher only" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

fn extended_key_usage(u: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match u {
        "any" => ExtendedKeyUsagePurpose::Any,
        "server auth" => ExtendedKeyUsagePurpose::ServerAuth,
        "client auth" => ExtendedKeyUsagePurpose::ClientAuth,
        "code signing" => ExtendedKeyUsagePurpose::CodeSigning,
        "email protection" => ExtendedKeyUsagePurpose::EmailProtection,
        "timestamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocsp signing" => ExtendedKeyUsagePurpose::OcspSigning,
        _ => return None,
    })
}

/// Signs `csr` with the CA: the certificate, PEM.
fn sign(
    ca: &ClusterSigning,
    csr: &CertificateSigningRequest,
    now: Timestamp,
) -> Result<String, String> {
    let pem = std::str::from_utf8(&csr.spec.request.0).map_err(|e| e.to_string())?;
    let mut req = CertificateSigningRequestParams::from_pem(pem).map_err(|e| e.to_string())?;
    let key = KeyPair::from_pem(&ca.key_pem).map_err(|e| format!("cluster signing key: {e}"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, &key)
        .map_err(|e| format!("cluster signing certificate: {e}"))?;
    let ca_not_after = ca_expiry(&ca.cert_pem)?;
    let life = lifetime(ca.duration, csr.spec.expiration_seconds);
    let not_after = now
        .checked_add(SignedDuration::try_from(life).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?
        .min(ca_not_after);
    // rcgen's time type, through x509-parser's (which converts to it).
    let at = |t: Timestamp| {
        x509_parser::time::ASN1Time::from_timestamp(t.as_second())
            .map(|a| a.to_datetime())
            .map_err(|e| e.to_string())
    };
    let p = &mut req.params;
    p.not_before = at(now - BACKDATE)?;
    p.not_after = at(not_after)?;
    let serial: [u8; 16] = rand::random();
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    let u = usages(csr);
    p.key_usages = u.iter().filter_map(|x| key_usage(x)).collect();
    p.extended_key_usages = u.iter().filter_map(|x| extended_key_usage(x)).collect();
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    let cert = req.signed_by(&issuer).map_err(|e| e.to_string())?;
    Ok(cert.pem())
}

/// When the CA certificate expires.
fn ca_expiry(pem: &str) -> Result<Timestamp, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| format!("cluster signing certificate: {e}"))?;
    let cert = block
        .parse_x509()
        .map_err(|e| format!("cluster signing certificate: {e}"))?;
    Timestamp::from_second(cert.validity().not_after.timestamp()).map_err(|e| e.to_string())
}

impl Controller for CsrSigningController {
    fn name(&self) -> &'static str {
        "csrsigning"
    }

    fn component(&self) -> &'static str {
        "certificatesigningrequest-signing-controller"
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
    use super::super::SYSTEM_NODES;
    use super::*;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus;

    fn ca() -> ClusterSigning {
        let key = KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "orch-ca");
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        ClusterSigning {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            duration: DEFAULT_DURATION,
        }
    }

    fn approved(mut c: CertificateSigningRequest) -> CertificateSigningRequest {
        c.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            certificate: None,
        });
        c
    }

    fn now() -> Timestamp {
        Timestamp::now()
    }

    fn issued(out: &[Action]) -> String {
        let [Action::UpdateStatus { object, .. }] = out else {
            panic!("{out:?}")
        };
        let c: CertificateSigningRequest = object.to_typed().unwrap();
        String::from_utf8(c.status.unwrap().certificate.unwrap().0).unwrap()
    }

    fn failure(out: &[Action]) -> (String, String) {
        let [Action::UpdateStatus { object, .. }] = out else {
            panic!("{out:?}")
        };
        let c: CertificateSigningRequest = object.to_typed().unwrap();
        let f = c.status.unwrap().conditions.unwrap().pop().unwrap();
        assert_eq!((f.type_.as_str(), f.status.as_str()), ("Failed", "True"));
        (f.reason.unwrap(), f.message.unwrap())
    }

    #[test]
    fn a_kubelet_client_certificate_chains_to_the_ca_with_the_requested_subject_and_usages() {
        let signing = ca();
        let ctl = CsrSigningController {
            signing: Some(signing.clone()),
        };
        let pem = request_pem("system:node:n1", &[SYSTEM_NODES], &[]);
        let mut c = approved(csr(
            "a",
            &pem,
            KUBE_APISERVER_CLIENT_KUBELET,
            &["digital signature", "client auth"],
            "system:bootstrap:abcdef",
        ));
        c.spec.expiration_seconds = Some(3600);
        let t = now();
        let cert_pem = issued(&ctl.reconcile(&c, t));
        let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
        let cert = block.parse_x509().unwrap();
        let (_, ca_block) = x509_parser::pem::parse_x509_pem(signing.cert_pem.as_bytes()).unwrap();
        let ca_cert = ca_block.parse_x509().unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        let o: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!((cn, o), (vec!["system:node:n1"], vec![SYSTEM_NODES]));
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_encipherment());
        assert!(!cert.is_ca());
        let v = cert.validity();
        assert_eq!(v.not_after.timestamp() - t.as_second(), 3600);
        assert_eq!(t.as_second() - v.not_before.timestamp(), 300);
    }

    #[test]
    fn durations_are_bounded() {
        let year = DEFAULT_DURATION;
        assert_eq!(lifetime(year, None), year);
        assert_eq!(lifetime(year, Some(60)), MIN_DURATION);
        assert_eq!(lifetime(year, Some(i32::MAX)), year);
        assert_eq!(
            lifetime(Duration::from_secs(7200), Some(3600)),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn a_serving_certificate_carries_its_names() {
        let ctl = CsrSigningController {
            signing: Some(ca()),
        };
        let pem = request_pem("system:node:n1", &[SYSTEM_NODES], &["n1", "10.0.0.7"]);
        let c = approved(csr(
            "s",
            &pem,
            KUBELET_SERVING,
            &["digital signature", "server auth"],
            "system:node:n1",
        ));
        let cert_pem = issued(&ctl.reconcile(&c, now()));
        let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap();
        let cert = block.parse_x509().unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(san.general_names.len(), 2);
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .server_auth
        );
    }

    #[test]
    fn requests_the_signer_refuses_fail_and_others_are_left_alone() {
        let ctl = CsrSigningController {
            signing: Some(ca()),
        };
        let node = request_pem("system:node:n1", &[SYSTEM_NODES], &[]);
        let user = "system:bootstrap:abcdef";
        let admin = approved(csr(
            "m",
            &request_pem("system:node:n1", &["system:masters"], &[]),
            KUBE_APISERVER_CLIENT_KUBELET,
            &["digital signature", "client auth"],
            user,
        ));
        assert_eq!(
            failure(&ctl.reconcile(&admin, now())),
            (
                VALIDATION_FAILURE.into(),
                "subject organization is not system:nodes".into()
            )
        );
        let server = approved(csr(
            "c",
            &node,
            KUBE_APISERVER_CLIENT,
            &["server auth"],
            user,
        ));
        assert_eq!(
            failure(&ctl.reconcile(&server, now())),
            (
                VALIDATION_FAILURE.into(),
                "invalid usage for client certificate: server auth".into()
            )
        );
        let client = approved(csr(
            "k",
            &request_pem("alice", &["dev"], &[]),
            KUBE_APISERVER_CLIENT,
            &["client auth"],
            user,
        ));
        issued(&ctl.reconcile(&client, now()));
        // Pending, legacy-unknown, another signer, or no CA: nothing.
        let pending = csr(
            "p",
            &node,
            KUBE_APISERVER_CLIENT_KUBELET,
            &["digital signature", "client auth"],
            user,
        );
        let legacy = approved(csr(
            "l",
            &node,
            "kubernetes.io/legacy-unknown",
            &["client auth"],
            user,
        ));
        let other = approved(csr(
            "o",
            &node,
            "example.com/signer",
            &["client auth"],
            user,
        ));
        for c in [&pending, &legacy, &other] {
            assert!(ctl.reconcile(c, now()).is_empty());
        }
        assert!(CsrSigningController::default()
            .reconcile(&client, now())
            .is_empty());
    }
}
