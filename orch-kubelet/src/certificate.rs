//! The kubelet's certificates from the cluster's signers (upstream kubelet TLS bootstrap,
//! `pkg/kubelet/certificate/bootstrap/bootstrap.go`, and client-go's
//! `util/certificate/certificate_manager.go`): a fresh P-256 key, a PKCS#10 request for
//! `system:node:NAME` in `system:nodes` (with the node's names for a serving certificate),
//! a CertificateSigningRequest for the `kubernetes.io/kube-apiserver-client-kubelet` or
//! `kubernetes.io/kubelet-serving` signer, and the wait for its certificate. A certificate is
//! renewed once a jittered 70–90 % of its lifetime has passed ([`rotation_deadline`]) by a
//! [`Rotation`] running beside the kubelet; the certificate in use sits in a
//! [`CurrentCertificate`], which rustls asks at every handshake (as a client certificate
//! resolver towards the API server, as a server certificate resolver of the kubelet's HTTPS
//! server), so a renewed certificate is used by the next connection without a restart.

use jiff::Timestamp;
use orch_types::client::{PostParams, SharedClient};
use orch_types::clock::SharedClock;
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The signer of kubelets' client certificates.
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of kubelets' serving certificates.
pub const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

/// Why a certificate could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// Making the key or the request failed.
    #[error("creating the certificate request: {0}")]
    Request(String),
    /// The API refused or failed a call.
    #[error("certificate signing request: {0}")]
    Api(Box<orch_types::client::ClientError>),
    /// The request was denied or failed.
    #[error("certificate signing request {name} was {outcome}: {message}")]
    Refused {
        /// The request's name.
        name: String,
        /// `denied` or `failed`.
        outcome: &'static str,
        /// Its condition's reason and message.
        message: String,
    },
    /// No certificate within the time allowed.
    #[error("timed out waiting for certificate signing request {0} to be issued")]
    Timeout(String),
}

impl From<orch_types::client::ClientError> for CertificateError {
    fn from(e: orch_types::client::ClientError) -> Self {
        Self::Api(Box::new(e))
    }
}

/// A key and the certificate issued for it, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate (chain), PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

/// A new key and the PEM request of node `node` (`hosts`: DNS names and IPs of a serving
/// certificate; none for a client certificate).
pub fn new_request(node: &str, hosts: &[String]) -> Result<(KeyPair, String), CertificateError> {
    let err = |e: rcgen::Error| CertificateError::Request(e.to_string());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("system:node:{node}"));
    let pem = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(err)?;
    Ok((key, pem))
}

/// Creates a CertificateSigningRequest for `request_pem` with `signer` and `usages` and waits
/// (polling every `poll`, at most `timeout`) for its certificate.
pub async fn request_certificate(
    client: &SharedClient,
    request_pem: &str,
    signer: &str,
    usages: &[&str],
    poll: Duration,
    timeout: Duration,
) -> Result<String, CertificateError> {
    use base64::Engine;
    let r = ApiResource::of::<k8s_openapi::api::certificates::v1::CertificateSigningRequest>();
    let generate = if signer == CLIENT_SIGNER {
        "node-csr-"
    } else {
        "csr-"
    };
    let body = DynamicObject::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": generate},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(request_pem),
            "signerName": signer,
            "usages": usages,
        },
    }))
    .map_err(|e| CertificateError::Request(e.to_string()))?;
    let created = client
        .create(&r, None, &body, &PostParams::default())
        .await?;
    let name = created.name().to_string();
    let start = tokio::time::Instant::now();
    loop {
        let csr = client.get(&r, None, &name).await?;
        let status = csr.data.get("status");
        for c in status
            .and_then(|s| s.get("conditions"))
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            let outcome = match c.get("type").and_then(|t| t.as_str()) {
                Some("Denied") => "denied",
                Some("Failed") => "failed",
                _ => continue,
            };
            let text = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            return Err(CertificateError::Refused {
                name,
                outcome,
                message: format!("{}: {}", text("reason"), text("message")),
            });
        }
        if let Some(cert) = status
            .and_then(|s| s.get("certificate"))
            .and_then(|c| c.as_str())
            .filter(|c| !c.is_empty())
        {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(cert)
                .map_err(|e| CertificateError::Request(e.to_string()))?;
            return String::from_utf8(pem).map_err(|e| CertificateError::Request(e.to_string()));
        }
        if start.elapsed() >= timeout {
            return Err(CertificateError::Timeout(name));
        }
        tokio::time::sleep(poll).await;
    }
}

/// A new key and its certificate from `signer` for node `node`.
pub async fn obtain(
    client: &SharedClient,
    node: &str,
    hosts: &[String],
    timeout: Duration,
) -> Result<Issued, CertificateError> {
    let (key, request) = new_request(node, hosts)?;
    let (signer, usages): (&str, &[&str]) = if hosts.is_empty() {
        (CLIENT_SIGNER, &["digital signature", "client auth"])
    } else {
        (SERVING_SIGNER, &["digital signature", "server auth"])
    };
    let cert_pem = request_certificate(
        client,
        &request,
        signer,
        usages,
        Duration::from_millis(500),
        timeout,
    )
    .await?;
    Ok(Issued {
        cert_pem,
        key_pem: key.serialize_pem(),
    })
}

/// The validity (not before, not after) of the first certificate of `pem`.
pub fn validity(pem: &str) -> Option<(Timestamp, Timestamp)> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = block.parse_x509().ok()?;
    let v = cert.validity();
    Some((
        Timestamp::from_second(v.not_before.timestamp()).ok()?,
        Timestamp::from_second(v.not_after.timestamp()).ok()?,
    ))
}

/// When a certificate valid from `not_before` to `not_after` is renewed: after 70 % of its
/// lifetime plus `jitter` (in `[0, 1)`) times 20 % (upstream `nextRotationDeadline`).
pub fn rotation_deadline(not_before: Timestamp, not_after: Timestamp, jitter: f64) -> Timestamp {
    let total = not_after.as_millisecond() - not_before.as_millisecond();
    let fraction = 0.7 + 0.2 * jitter.clamp(0.0, 1.0);
    // Lifetimes are at most centuries in milliseconds: exact in f64.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let offset = (total as f64 * fraction).round() as i64;
    Timestamp::from_millisecond(not_before.as_millisecond() + offset).unwrap_or(not_after)
}

/// The certificate and key in use, swapped when renewed. rustls asks it at every handshake: as
/// the client certificate of a kubelet's API client, and as the serving certificate of its
/// HTTPS server (while it holds none, such handshakes fail: upstream's "no serving certificate
/// available for the kubelet").
#[derive(Default)]
pub struct CurrentCertificate {
    slot: parking_lot::RwLock<Option<(Issued, Arc<CertifiedKey>)>>,
}

impl std::fmt::Debug for CurrentCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentCertificate")
            .field("set", &self.slot.read().is_some())
            .finish()
    }
}

impl CurrentCertificate {
    /// Holding `initial`, if any.
    pub fn new(initial: Option<Issued>) -> Result<Arc<Self>, CertificateError> {
        let current = Arc::new(Self::default());
        if let Some(i) = initial {
            current.set(i)?;
        }
        Ok(current)
    }

    /// Uses `issued` from the next handshake on (refused when its key or certificate do not
    /// load).
    pub fn set(&self, issued: Issued) -> Result<(), CertificateError> {
        let key = certified_key(&issued)?;
        *self.slot.write() = Some((issued, key));
        Ok(())
    }

    /// The certificate and key in use.
    pub fn get(&self) -> Option<Issued> {
        self.slot.read().as_ref().map(|(i, _)| i.clone())
    }

    fn key(&self) -> Option<Arc<CertifiedKey>> {
        self.slot.read().as_ref().map(|(_, k)| k.clone())
    }
}

/// The rustls form of a PEM certificate chain and key.
fn certified_key(issued: &Issued) -> Result<Arc<CertifiedKey>, CertificateError> {
    let err = |e: String| CertificateError::Request(format!("loading the certificate: {e}"));
    let certs = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).map_err(|e| err(e.to_string()))?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| err(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(certs, signer)))
}

impl rustls::client::ResolvesClientCert for CurrentCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.key()
    }

    fn has_certs(&self) -> bool {
        self.slot.read().is_some()
    }
}

impl rustls::server::ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _client_hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.key()
    }
}

/// How long a kubelet waits for one request's certificate (upstream certificate manager's
/// `certificateWaitTimeout`, 15 minutes); then it asks again.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A jitter in `[0, 1)` for [`rotation_deadline`], from a random UUID.
pub fn random_jitter() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u32;
    f64::from(bits) / (f64::from(u32::MAX) + 1.0)
}

/// Keeps the certificate of a [`CurrentCertificate`] renewed (upstream client-go
/// `util/certificate/certificate_manager.go`, `Start`/`rotateCerts`): at each round a new
/// jittered deadline at 70–90 % of the current certificate's lifetime (now when it holds none
/// or an unreadable one), a wait until the clock passes it, then a new certificate whose
/// arrival replaces the current one and is persisted; a failed renewal is retried after a
/// backoff doubling from [`Rotation::retry`] up to [`Rotation::max_retry`].
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The certificate renewed.
    pub current: Arc<CurrentCertificate>,
    /// The clock deadlines are compared with.
    pub clock: SharedClock,
    /// How often the clock is read while waiting for a deadline.
    pub check_every: Duration,
    /// The first wait after a failed renewal.
    pub retry: Duration,
    /// The longest wait after failed renewals.
    pub max_retry: Duration,
    /// Draws the jitter of each deadline, in `[0, 1)`.
    pub jitter: fn() -> f64,
}

impl Rotation {
    /// A rotation of `current` on `clock`: the clock read every 10 s, retries after 1 s up to
    /// 5 minutes, random jitter.
    pub fn new(current: Arc<CurrentCertificate>, clock: SharedClock) -> Self {
        Self {
            current,
            clock,
            check_every: Duration::from_secs(10),
            retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(300),
            jitter: random_jitter,
        }
    }

    /// When the current certificate is due for renewal (`None`: now).
    pub fn deadline(&self) -> Option<Timestamp> {
        let (from, to) = validity(&self.current.get()?.cert_pem)?;
        Some(rotation_deadline(from, to, (self.jitter)()))
    }

    /// Renews the certificate forever with `renew`, calling `persist` with each new one once
    /// it is in use. Runs until dropped (spawn it, abort it to stop).
    pub async fn run<R, F>(self, mut renew: R, mut persist: impl FnMut(&Issued))
    where
        R: FnMut() -> F,
        F: Future<Output = Result<Issued, CertificateError>>,
    {
        let mut backoff = self.retry;
        loop {
            if let Some(deadline) = self.deadline() {
                tracing::info!(%deadline, "next certificate rotation");
                loop {
                    let now = self.clock.now();
                    if now >= deadline {
                        break;
                    }
                    let left = Duration::try_from(deadline.duration_since(now)).unwrap_or_default();
                    tokio::time::sleep(left.min(self.check_every)).await;
                }
            }
            match renew()
                .await
                .and_then(|i| self.current.set(i.clone()).map(|()| i))
            {
                Ok(issued) => {
                    persist(&issued);
                    backoff = self.retry;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "certificate renewal failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.max_retry);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_fall_between_70_and_90_percent() {
        let a = Timestamp::from_second(1_000_000).unwrap();
        let b = Timestamp::from_second(1_001_000).unwrap();
        assert_eq!(rotation_deadline(a, b, 0.0).as_second(), 1_000_700);
        assert_eq!(rotation_deadline(a, b, 0.5).as_second(), 1_000_800);
        assert_eq!(rotation_deadline(a, b, 0.99).as_second(), 1_000_898);
    }

    /// A self-signed certificate valid from `from` to `to` (year 2030, month 1, days).
    fn cert_for_days(from: u8, to: u8) -> Issued {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(vec![]).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, from);
        params.not_after = rcgen::date_time_ymd(2030, 1, to);
        Issued {
            cert_pem: params.self_signed(&key).unwrap().pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn day(d: i64) -> Timestamp {
        Timestamp::from_second(1_893_456_000 + (d - 1) * 86_400).unwrap() // 2030-01-01 + d-1
    }

    async fn eventually(what: &str, f: impl Fn() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}");
    }

    #[tokio::test]
    async fn renews_after_the_jittered_deadline_on_the_clock_and_swaps_the_certificate() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let first = cert_for_days(1, 11);
        let current = CurrentCertificate::new(Some(first.clone())).unwrap();
        let clock = Arc::new(orch_types::clock::ManualClock::new(day(1)));
        let mut rotation = Rotation::new(current.clone(), clock.clone());
        rotation.check_every = Duration::from_millis(5);
        rotation.jitter = || 0.5; // 80 %: day 9 of a 10-day certificate from day 1
        assert_eq!(rotation.deadline(), Some(day(9)));
        let renewals = Arc::new(AtomicUsize::new(0));
        let persisted = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (r, p) = (renewals.clone(), persisted.clone());
        let task = tokio::spawn(rotation.run(
            move || {
                r.fetch_add(1, Ordering::SeqCst);
                async { Ok(cert_for_days(9, 19)) }
            },
            move |i: &Issued| p.lock().push(i.clone()),
        ));
        clock.set(day(9) - jiff::SignedDuration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            renewals.load(Ordering::SeqCst),
            0,
            "renewed before the deadline"
        );
        assert_eq!(current.get(), Some(first.clone()));
        clock.set(day(9));
        eventually("a renewal at the deadline", || {
            renewals.load(Ordering::SeqCst) == 1
        })
        .await;
        eventually("the new certificate in use", || {
            current.get() != Some(first.clone())
        })
        .await;
        assert_eq!(persisted.lock().len(), 1);
        assert_eq!(
            validity(&current.get().unwrap().cert_pem).map(|v| v.0),
            Some(day(9))
        );
        // The next deadline follows the new certificate (day 17), not the old one.
        clock.set(day(12));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(renewals.load(Ordering::SeqCst), 1);
        task.abort();
    }

    #[tokio::test]
    async fn renews_at_once_without_a_certificate_and_retries_failures() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let current = CurrentCertificate::new(None).unwrap();
        let clock = Arc::new(orch_types::clock::ManualClock::new(day(1)));
        let mut rotation = Rotation::new(current.clone(), clock);
        rotation.retry = Duration::from_millis(5);
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let task = tokio::spawn(rotation.run(
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(CertificateError::Timeout("csr-x".into()))
                    } else {
                        Ok(cert_for_days(1, 11))
                    }
                }
            },
            |_: &Issued| {},
        ));
        eventually("a certificate after two failures", || {
            current.get().is_some()
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        task.abort();
    }

    #[test]
    fn a_bad_certificate_is_refused_and_the_old_one_kept() {
        let good = cert_for_days(1, 11);
        let current = CurrentCertificate::new(Some(good.clone())).unwrap();
        let bad = Issued {
            cert_pem: "not a certificate".into(),
            key_pem: good.key_pem.clone(),
        };
        assert!(current.set(bad).is_err());
        assert_eq!(current.get(), Some(good));
    }

    #[test]
    fn requests_name_the_node() {
        let (_, pem) = new_request("n1", &[]).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        assert_eq!(block.label, "CERTIFICATE REQUEST");
        use x509_parser::prelude::FromDer;
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
                .unwrap();
        let subject = csr.certification_request_info.subject.to_string();
        assert!(subject.contains("CN=system:node:n1"), "{subject}");
        assert!(subject.contains("O=system:nodes"), "{subject}");
    }
}
