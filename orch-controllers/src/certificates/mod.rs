//! The certificate controllers of kube-controller-manager (upstream
//! `pkg/controller/certificates/`): [`approver`] (`csrapproving`: auto-approves kubelets'
//! client certificate requests a SubjectAccessReview allows), [`signer`] (`csrsigning`: issues
//! approved requests of the `kubernetes.io` signers with the cluster CA) and [`cleaner`]
//! (`csrcleaner`: deletes old requests). This module reads requests: their PKCS#10 subject and
//! names (x509-parser), their conditions, and the subject rules of kubelet certificates
//! (upstream `pkg/apis/certificates/helpers.go`).

pub mod approver;
pub mod cleaner;
pub mod signer;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use std::collections::BTreeSet;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// Signer of client certificates for the API server (any subject).
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// Signer of kubelets' client certificates (`system:node:NAME` in `system:nodes`).
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Signer of kubelets' serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// The group of every node.
pub const SYSTEM_NODES: &str = "system:nodes";
/// The user-name prefix of a node.
pub const NODE_PREFIX: &str = "system:node:";

/// What a request asks for: its subject and subject alternative names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Subject Common Name (empty when none).
    pub common_name: String,
    /// Subject Organizations.
    pub organizations: Vec<String>,
    /// DNS names.
    pub dns_names: Vec<String>,
    /// IP addresses.
    pub ip_addresses: Vec<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// URIs.
    pub uris: Vec<String>,
}

/// Parses the PEM `CERTIFICATE REQUEST` of a request (upstream `ParseCSR`).
pub fn parse(pem: &[u8]) -> Result<Request, String> {
    const WANT: &str = "PEM block type must be CERTIFICATE REQUEST";
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| WANT.to_string())?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err(WANT.into());
    }
    let (_, csr) = X509CertificationRequest::from_der(&block.contents)
        .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    let subject = &csr.certification_request_info.subject;
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        a.as_str().map(str::to_string).unwrap_or_default()
    };
    let mut out = Request {
        common_name: subject
            .iter_common_name()
            .next()
            .map(text)
            .unwrap_or_default(),
        organizations: subject.iter_organization().map(text).collect(),
        ..Default::default()
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for n in &san.general_names {
                match n {
                    GeneralName::DNSName(d) => out.dns_names.push(d.to_string()),
                    GeneralName::RFC822Name(e) => out.emails.push(e.to_string()),
                    GeneralName::URI(u) => out.uris.push(u.to_string()),
                    GeneralName::IPAddress(ip) => out.ip_addresses.push(ip_text(ip)),
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

fn ip_text(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => String::new(),
    }
}

/// The usages of a request as a set.
pub fn usages(csr: &CertificateSigningRequest) -> BTreeSet<&str> {
    csr.spec
        .usages
        .iter()
        .flatten()
        .map(String::as_str)
        .collect()
}

/// Go's `%v` of a sorted string list: `[a b]`.
fn listed(u: &BTreeSet<&str>) -> String {
    format!("[{}]", u.iter().copied().collect::<Vec<_>>().join(" "))
}

fn only_system_nodes(r: &Request) -> Result<(), String> {
    if r.organizations != [SYSTEM_NODES] {
        return Err("subject organization is not system:nodes".into());
    }
    Ok(())
}

fn node_common_name(r: &Request) -> Result<(), String> {
    if !r.common_name.starts_with(NODE_PREFIX) {
        return Err("subject common name does not begin with system:node:".into());
    }
    Ok(())
}

/// Upstream `ValidateKubeletClientCSR`: O exactly `system:nodes`, no SANs, CN
/// `system:node:…`, usages digital signature + client auth (+ key encipherment).
pub fn kubelet_client(r: &Request, usages: &BTreeSet<&str>) -> Result<(), String> {
    only_system_nodes(r)?;
    let sans = [
        (&r.dns_names, "DNS"),
        (&r.emails, "Email"),
        (&r.ip_addresses, "IP"),
        (&r.uris, "URI"),
    ];
    if let Some((_, kind)) = sans.iter().find(|(v, _)| !v.is_empty()) {
        return Err(format!("{kind} subjectAltNames are not allowed"));
    }
    node_common_name(r)?;
    let plain = BTreeSet::from(["client auth", "digital signature"]);
    let rsa = BTreeSet::from(["client auth", "digital signature", "key encipherment"]);
    if *usages != plain && *usages != rsa {
        return Err(format!("usages did not match {}", listed(usages)));
    }
    Ok(())
}

/// Upstream `ValidateKubeletServingCSR`: O exactly `system:nodes`, a DNS or IP SAN and no
/// email or URI, usages digital signature + server auth (+ key encipherment), CN
/// `system:node:…`.
pub fn kubelet_serving(r: &Request, usages: &BTreeSet<&str>) -> Result<(), String> {
    only_system_nodes(r)?;
    if r.dns_names.is_empty() && r.ip_addresses.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !r.emails.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !r.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    let plain = BTreeSet::from(["digital signature", "server auth"]);
    let rsa = BTreeSet::from(["digital signature", "key encipherment", "server auth"]);
    if *usages != plain && *usages != rsa {
        return Err(format!("usages did not match {}", listed(usages)));
    }
    node_common_name(r)
}

/// Whether the request has a condition of type `t` (status True).
pub fn has_condition(csr: &CertificateSigningRequest, t: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == t && c.status == "True"))
}

/// Whether a certificate was issued.
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Requests made with rcgen for the tests of the certificate controllers.
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

    /// A PEM request for `cn` in `orgs` with DNS `sans`.
    pub fn request_pem(cn: &str, orgs: &[&str], sans: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    /// A request object named `name` by `user` for `signer` with `usages`.
    pub fn csr(
        name: &str,
        pem: &str,
        signer: &str,
        usages: &[&str],
        user: &str,
    ) -> CertificateSigningRequest {
        use base64::Engine;
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "resourceVersion": "1"},
            "spec": {
                "request": base64::engine::general_purpose::STANDARD.encode(pem),
                "signerName": signer,
                "usages": usages,
                "username": user,
                "uid": "uid-1",
                "groups": ["system:bootstrappers", "system:authenticated"],
            }
        }))
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::request_pem;
    use super::*;

    #[test]
    fn kubelet_client_rules() {
        let ok = parse(request_pem("system:node:n1", &[SYSTEM_NODES], &[]).as_bytes()).unwrap();
        assert_eq!(ok.common_name, "system:node:n1");
        let u = BTreeSet::from(["client auth", "digital signature"]);
        assert_eq!(kubelet_client(&ok, &u), Ok(()));
        let rsa = BTreeSet::from(["client auth", "digital signature", "key encipherment"]);
        assert_eq!(kubelet_client(&ok, &rsa), Ok(()));
        assert_eq!(
            kubelet_client(&ok, &BTreeSet::from(["client auth", "server auth"])),
            Err("usages did not match [client auth server auth]".into())
        );
        let admin = parse(request_pem("system:node:n1", &["system:masters"], &[]).as_bytes());
        assert_eq!(
            kubelet_client(&admin.unwrap(), &u),
            Err("subject organization is not system:nodes".into())
        );
        let user = parse(request_pem("alice", &[SYSTEM_NODES], &[]).as_bytes()).unwrap();
        assert_eq!(
            kubelet_client(&user, &u),
            Err("subject common name does not begin with system:node:".into())
        );
        let san = parse(request_pem("system:node:n1", &[SYSTEM_NODES], &["n1"]).as_bytes());
        assert_eq!(
            kubelet_client(&san.unwrap(), &u),
            Err("DNS subjectAltNames are not allowed".into())
        );
    }

    #[test]
    fn kubelet_serving_rules() {
        let u = BTreeSet::from(["digital signature", "server auth"]);
        let ok =
            parse(request_pem("system:node:n1", &[SYSTEM_NODES], &["n1", "10.0.0.1"]).as_bytes())
                .unwrap();
        assert_eq!(ok.ip_addresses, ["10.0.0.1"]);
        assert_eq!(kubelet_serving(&ok, &u), Ok(()));
        let bare = parse(request_pem("system:node:n1", &[SYSTEM_NODES], &[]).as_bytes()).unwrap();
        assert_eq!(
            kubelet_serving(&bare, &u),
            Err("DNS or IP subjectAltName is required".into())
        );
        assert!(
            kubelet_serving(&ok, &BTreeSet::from(["client auth", "digital signature"])).is_err()
        );
        assert_eq!(
            parse(b"junk"),
            Err("PEM block type must be CERTIFICATE REQUEST".into())
        );
    }
}
