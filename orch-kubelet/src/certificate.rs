//! The kubelet's certificates from the cluster's signers (upstream kubelet TLS bootstrap,
//! `pkg/kubelet/certificate/bootstrap/bootstrap.go`, and client-go's
//! `util/certificate/certificate_manager.go`): a fresh P-256 key, a PKCS#10 request for
//! `system:node:NAME` in `system:nodes` (with the node's names for a serving certificate),
//! a CertificateSigningRequest for the `kubernetes.io/kube-apiserver-client-kubelet` or
//! `kubernetes.io/kubelet-serving` signer, and the wait for its certificate. A certificate is
//! renewed once a jittered 70–90 % of its lifetime has passed ([`rotation_deadline`]).

use jiff::Timestamp;
use orch_types::client::{PostParams, SharedClient};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use serde_json::json;
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
