//! certificates.k8s.io/v1 CertificateSigningRequest, after upstream
//! `pkg/apis/certificates/validation/validation.go` (and `ValidateSignerName` in
//! `pkg/apis/core/validation`): the request is a PEM `CERTIFICATE REQUEST` whose signature
//! verifies, usages are given, known and not repeated, the signer name is `domain/path`,
//! `expirationSeconds` is at least 600, conditions are well formed (Approved and Denied
//! exclusive, Approved/Denied/Failed only `True`), `status.certificate` is PEM certificates;
//! on update, Approved/Denied/Failed conditions may not be removed, approval conditions only
//! change through `/approval` and the certificate only through `/status`, once.

use std::collections::BTreeSet;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use super::field::{FieldError, Path};
use super::meta::{self, NameRule};
use crate::names;

/// The signer name no v1 request may use (upstream `LegacyUnknownSignerName`).
pub const LEGACY_UNKNOWN_SIGNER: &str = "kubernetes.io/legacy-unknown";

/// Every key usage a request may name (upstream `allValidUsages`).
pub const KNOWN_USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// Which path a CSR write came through: what it may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrWrite {
    /// The main resource: neither approval conditions nor the certificate.
    Main,
    /// `/status`: the certificate (once) and non-approval conditions.
    Status,
    /// `/approval`: the Approved and Denied conditions.
    Approval,
}

/// Whether `pem` holds a certificate request that parses and whose signature verifies.
fn check_request(pem: &[u8]) -> Result<(), String> {
    const WANT: &str = "PEM block type must be CERTIFICATE REQUEST";
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| WANT.to_string())?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err(WANT.into());
    }
    let (_, csr) = X509CertificationRequest::from_der(&block.contents)
        .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    csr.verify_signature()
        .map_err(|_| "x509: signature verification failure".to_string())
}

/// Upstream `validateCertificate`: empty, or one or more `CERTIFICATE` PEM blocks (text around
/// them allowed), each a certificate.
fn check_certificate(pem: &[u8]) -> Result<(), String> {
    if pem.is_empty() {
        return Ok(());
    }
    let mut blocks = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| e.to_string())?;
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                block.label
            ));
        }
        x509_parser::parse_x509_certificate(&block.contents)
            .map_err(|e| format!("x509: malformed certificate: {e}"))?;
        blocks += 1;
    }
    if blocks == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".into());
    }
    Ok(())
}

/// Upstream `ValidateSignerName`: `domain/path` of at most 571 bytes, the domain DNS-1123
/// labels with at least one dot, the path DNS-1123 subdomains separated by dots.
pub fn signer_name(p: &Path, name: &str) -> Vec<FieldError> {
    const DOMAIN_MAX: usize = 253;
    const MAX: usize = DOMAIN_MAX + (253 + 63 + 1) + 1;
    if name.is_empty() {
        return vec![FieldError::required(p, "")];
    }
    let Some((domain, path)) = name.split_once('/').filter(|(_, b)| !b.contains('/')) else {
        return vec![FieldError::invalid(
            p,
            name,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        )];
    };
    let mut errs = Vec::new();
    if domain.len() > DOMAIN_MAX {
        errs.push(FieldError::too_long(p, DOMAIN_MAX));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if let Some((l, msgs)) = labels
        .iter()
        .map(|l| (l, names::is_dns1123_label(l)))
        .find(|(_, m)| !m.is_empty())
    {
        for m in msgs {
            errs.push(FieldError::invalid(
                p,
                domain,
                format!("validating label {l:?}: {m}"),
            ));
        }
    }
    if labels.len() < 2 {
        errs.push(FieldError::invalid(
            p,
            domain,
            "should be a domain with at least two segments separated by dots",
        ));
    }
    if let Some((l, msgs)) = path
        .split('.')
        .map(|l| (l, names::is_dns1123_subdomain(l)))
        .find(|(_, m)| !m.is_empty())
    {
        for m in msgs {
            errs.push(FieldError::invalid(
                p,
                path,
                format!("validating label {l:?}: {m}"),
            ));
        }
    }
    if name.len() > MAX {
        errs.push(FieldError::too_long(p, MAX));
    }
    errs
}

fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn certificate(csr: &CertificateSigningRequest) -> &[u8] {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .map(|b| b.0.as_slice())
        .unwrap_or_default()
}

/// Whether the request carries a condition of type `t`.
pub fn has_condition(csr: &CertificateSigningRequest, t: &str) -> bool {
    conditions(csr).iter().any(|c| c.type_ == t)
}

/// What an old object's existing problems let an update keep (upstream
/// `getValidationOptions`: bad data already stored is tolerated).
#[derive(Debug, Default, Clone, Copy)]
struct Tolerate {
    legacy_signer: bool,
    both_approved_and_denied: bool,
    duplicate_conditions: bool,
    empty_condition_type: bool,
    arbitrary_certificate: bool,
    unknown_usages: bool,
    duplicate_usages: bool,
}

impl Tolerate {
    fn of(new: &CertificateSigningRequest, old: Option<&CertificateSigningRequest>) -> Self {
        let Some(old) = old else {
            return Self::default();
        };
        let usages = old.spec.usages.as_deref().unwrap_or_default();
        let types: Vec<&str> = conditions(old).iter().map(|c| c.type_.as_str()).collect();
        let distinct: BTreeSet<&str> = types.iter().copied().collect();
        let distinct_usages: BTreeSet<&String> = usages.iter().collect();
        Self {
            legacy_signer: old.spec.signer_name == LEGACY_UNKNOWN_SIGNER,
            both_approved_and_denied: types.contains(&"Approved") && types.contains(&"Denied"),
            duplicate_conditions: distinct.len() != types.len(),
            empty_condition_type: types.contains(&""),
            arbitrary_certificate: certificate(new) == certificate(old)
                || check_certificate(certificate(old)).is_err(),
            unknown_usages: usages.iter().any(|u| !KNOWN_USAGES.contains(&u.as_str())),
            duplicate_usages: distinct_usages.len() != usages.len(),
        }
    }
}

fn validate(csr: &CertificateSigningRequest, t: Tolerate) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&csr.metadata, false, NameRule::PathSegment);
    let sp = Path::new("spec");
    if let Err(e) = check_request(&csr.spec.request.0) {
        errs.push(FieldError::invalid_no_value(sp.child("request"), e));
    }
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    if usages.is_empty() {
        errs.push(FieldError::required(sp.child("usages"), ""));
    }
    if !t.unknown_usages {
        for (i, u) in usages.iter().enumerate() {
            if !KNOWN_USAGES.contains(&u.as_str()) {
                errs.push(FieldError::not_supported(
                    sp.child("usages").index(i),
                    u,
                    KNOWN_USAGES,
                ));
            }
        }
    }
    if !t.duplicate_usages {
        let mut seen = BTreeSet::new();
        for (i, u) in usages.iter().enumerate() {
            if !seen.insert(u) {
                errs.push(FieldError::duplicate(sp.child("usages").index(i), u));
            }
        }
    }
    let signer = &csr.spec.signer_name;
    if !t.legacy_signer && signer == LEGACY_UNKNOWN_SIGNER {
        errs.push(FieldError::invalid(
            sp.child("signerName"),
            signer,
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        errs.extend(signer_name(&sp.child("signerName"), signer));
    }
    if let Some(s) = csr.spec.expiration_seconds.filter(|s| *s < 600) {
        errs.push(FieldError::invalid_num(
            sp.child("expirationSeconds"),
            i64::from(s),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    errs.extend(validate_conditions(csr, t));
    if !t.arbitrary_certificate {
        if let Err(e) = check_certificate(certificate(csr)) {
            errs.push(FieldError::invalid(
                Path::new("status").child("certificate"),
                "<certificate data>",
                e,
            ));
        }
    }
    errs
}

fn validate_conditions(csr: &CertificateSigningRequest, t: Tolerate) -> Vec<FieldError> {
    let p = Path::new("status").child("conditions");
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    let (mut approved, mut denied) = (false, false);
    for (i, c) in conditions(csr).iter().enumerate() {
        let cp = p.index(i);
        if !t.empty_condition_type && c.type_.is_empty() {
            errs.push(FieldError::required(cp.child("type"), ""));
        }
        let allowed: &[&str] = if ["Approved", "Denied", "Failed"].contains(&c.type_.as_str()) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        if c.status.is_empty() {
            errs.push(FieldError::required(cp.child("status"), ""));
        } else if !allowed.contains(&c.status.as_str()) {
            errs.push(FieldError::not_supported(
                cp.child("status"),
                &c.status,
                allowed,
            ));
        }
        if !t.both_approved_and_denied {
            let exclusive = match c.type_.as_str() {
                "Approved" => {
                    approved = true;
                    denied
                }
                "Denied" => {
                    denied = true;
                    approved
                }
                _ => false,
            };
            if exclusive {
                errs.push(FieldError::invalid(
                    cp.child("type"),
                    &c.type_,
                    "Approved and Denied conditions are mutually exclusive",
                ));
            }
        }
        if !t.duplicate_conditions && !seen.insert(c.type_.as_str()) {
            errs.push(FieldError::duplicate(cp.child("type"), &c.type_));
        }
    }
    errs
}

/// Validates a CSR being created.
pub fn csr_create(csr: &CertificateSigningRequest) -> Vec<FieldError> {
    validate(csr, Tolerate::of(csr, None))
}

/// Validates an update of a CSR through `write` (upstream
/// `ValidateCertificateSigningRequest{,Status,Approval}Update`).
pub fn csr_update(
    new: &CertificateSigningRequest,
    old: &CertificateSigningRequest,
    write: CsrWrite,
) -> Vec<FieldError> {
    let mut errs = validate(new, Tolerate::of(new, Some(old)));
    let cp = Path::new("status").child("conditions");
    let of_type =
        |csr: &CertificateSigningRequest, t: &str| -> Vec<CertificateSigningRequestCondition> {
            conditions(csr)
                .iter()
                .filter(|c| c.type_ == t)
                .cloned()
                .collect()
        };
    for t in ["Approved", "Denied", "Failed"] {
        if of_type(new, t).len() < of_type(old, t).len() {
            errs.push(FieldError::forbidden(
                &cp,
                format!("updates may not remove a condition of type {t:?}"),
            ));
        }
    }
    if write != CsrWrite::Approval {
        for t in ["Approved", "Denied"] {
            let (n, o) = (of_type(new, t), of_type(old, t));
            if n.len() > o.len() {
                errs.push(FieldError::forbidden(
                    &cp,
                    format!("updates may not add a condition of type {t:?}"),
                ));
            } else if n.len() == o.len() && n != o {
                errs.push(FieldError::forbidden(
                    &cp,
                    format!("updates may not modify a condition of type {t:?}"),
                ));
            }
        }
    }
    let cert = Path::new("status").child("certificate");
    if certificate(new) != certificate(old) {
        if write != CsrWrite::Status {
            errs.push(FieldError::forbidden(
                &cert,
                "updates may not set certificate content",
            ));
        } else if !certificate(old).is_empty() {
            errs.push(FieldError::forbidden(
                &cert,
                "updates may not modify existing certificate content",
            ));
        } else if !has_condition(new, "Approved") {
            // orch's guard: a signer issues only approved requests, so the API holds it to it.
            errs.push(FieldError::forbidden(
                &cert,
                "a certificate may only be issued for an Approved request",
            ));
        }
    }
    errs.extend(meta::object_meta_update(&new.metadata, &old.metadata));
    errs
}

#[cfg(test)]
mod tests;
