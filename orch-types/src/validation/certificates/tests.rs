use super::*;
use k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus;
use k8s_openapi::ByteString;

fn request_pem(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn csr(request: &[u8]) -> CertificateSigningRequest {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "node-csr-1"},
        "spec": {
            "request": base64_of(request),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
        }
    }))
    .unwrap()
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn lines(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

fn condition(t: &str) -> CertificateSigningRequestCondition {
    CertificateSigningRequestCondition {
        type_: t.into(),
        status: "True".into(),
        ..Default::default()
    }
}

fn with_status(
    mut c: CertificateSigningRequest,
    conds: &[&str],
    cert: Option<&str>,
) -> CertificateSigningRequest {
    c.status = Some(CertificateSigningRequestStatus {
        conditions: Some(conds.iter().map(|t| condition(t)).collect()),
        certificate: cert.map(|p| ByteString(p.as_bytes().to_vec())),
    });
    c
}

fn self_signed_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::new(vec!["a".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem()
}

#[test]
fn a_signed_request_is_valid() {
    let c = csr(request_pem("system:node:n1").as_bytes());
    assert_eq!(lines(&csr_create(&c)), Vec::<String>::new());
}

#[test]
fn the_request_must_be_a_pem_csr_whose_signature_verifies() {
    let c = csr(b"not pem");
    assert_eq!(
        lines(&csr_create(&c)),
        ["spec.request: Invalid value: PEM block type must be CERTIFICATE REQUEST"]
    );
    // A request whose signed bytes were changed after signing: flip one byte of the
    // signature (the last bytes of the DER).
    let pem = request_pem("x");
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let mut der = block.contents;
    let last = der.len() - 3;
    der[last] ^= 0x55;
    let tampered = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64_of(&der)
    );
    let errs = csr_create(&csr(tampered.as_bytes()));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "spec.request");
}

#[test]
fn spec_rules() {
    let mut c = csr(request_pem("x").as_bytes());
    c.spec.usages = Some(vec![
        "client auth".into(),
        "flying".into(),
        "client auth".into(),
    ]);
    c.spec.expiration_seconds = Some(599);
    c.spec.signer_name = "noslash".into();
    let got = lines(&csr_create(&c));
    assert!(
        got[0].starts_with(
            "spec.usages[1]: Unsupported value: \"flying\": supported values: \"any\""
        ),
        "{got:?}"
    );
    assert_eq!(
        got[1..],
        [
            "spec.usages[2]: Duplicate value: \"client auth\"",
            "spec.signerName: Invalid value: \"noslash\": must be a fully qualified domain and path of the form 'example.com/signer-name'",
            "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)",
        ]
    );
    c.spec.usages = Some(vec![]);
    c.spec.expiration_seconds = Some(600);
    c.spec.signer_name = LEGACY_UNKNOWN_SIGNER.into();
    assert_eq!(
        lines(&csr_create(&c)),
        [
            "spec.usages: Required value",
            "spec.signerName: Invalid value: \"kubernetes.io/legacy-unknown\": the legacy signerName is not allowed via this API version",
        ]
    );
}

#[test]
fn signer_names() {
    let p = Path::new("spec").child("signerName");
    assert!(signer_name(&p, "example.com/my-signer").is_empty());
    assert!(signer_name(&p, "kubernetes.io/kube-apiserver-client").is_empty());
    assert_eq!(
        lines(&signer_name(&p, "")),
        ["spec.signerName: Required value"]
    );
    assert_eq!(
        lines(&signer_name(&p, "localhost/x")),
        ["spec.signerName: Invalid value: \"localhost\": should be a domain with at least two segments separated by dots"]
    );
    assert_eq!(signer_name(&p, "a.com/b/c").len(), 1);
    assert!(lines(&signer_name(&p, "Ex.com/x"))[0].contains("validating label \"Ex\""));
}

#[test]
fn conditions_are_exclusive_and_true_only() {
    let c = csr(request_pem("x").as_bytes());
    let mut both = with_status(c.clone(), &["Approved", "Denied"], None);
    assert_eq!(
        lines(&csr_create(&both)),
        ["status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"]
    );
    both.status.as_mut().unwrap().conditions.as_mut().unwrap()[1] =
        CertificateSigningRequestCondition {
            type_: "Approved".into(),
            status: "False".into(),
            ..Default::default()
        };
    assert_eq!(
        lines(&csr_create(&both)),
        [
            "status.conditions[1].status: Unsupported value: \"False\": supported values: \"True\"",
            "status.conditions[1].type: Duplicate value: \"Approved\"",
        ]
    );
}

#[test]
fn approval_only_through_approval_and_never_removed() {
    let old = csr(request_pem("x").as_bytes());
    let approved = with_status(old.clone(), &["Approved"], None);
    assert_eq!(
        lines(&csr_update(&approved, &old, CsrWrite::Status)),
        ["status.conditions: Forbidden: updates may not add a condition of type \"Approved\""]
    );
    assert!(csr_update(&approved, &old, CsrWrite::Approval).is_empty());
    assert_eq!(
        lines(&csr_update(&old, &approved, CsrWrite::Approval)),
        ["status.conditions: Forbidden: updates may not remove a condition of type \"Approved\""]
    );
    let failed = with_status(old.clone(), &["Approved", "Failed"], None);
    assert!(csr_update(&failed, &approved, CsrWrite::Status).is_empty());
}

#[test]
fn the_certificate_is_set_once_through_status_after_approval() {
    let old = csr(request_pem("x").as_bytes());
    let cert = self_signed_pem();
    let issued = with_status(old.clone(), &["Approved"], Some(&cert));
    let approved = with_status(old.clone(), &["Approved"], None);
    assert!(csr_update(&issued, &approved, CsrWrite::Status).is_empty());
    assert_eq!(
        lines(&csr_update(&issued, &approved, CsrWrite::Approval)),
        ["status.certificate: Forbidden: updates may not set certificate content"]
    );
    let pending = with_status(old.clone(), &[], Some(&cert));
    assert_eq!(
        lines(&csr_update(&pending, &old, CsrWrite::Status)),
        ["status.certificate: Forbidden: a certificate may only be issued for an Approved request"]
    );
    let other = with_status(old.clone(), &["Approved"], Some(&self_signed_pem()));
    assert_eq!(
        lines(&csr_update(&other, &issued, CsrWrite::Status)),
        ["status.certificate: Forbidden: updates may not modify existing certificate content"]
    );
    let junk = with_status(old, &["Approved"], Some("junk"));
    assert_eq!(
        lines(&csr_update(&junk, &approved, CsrWrite::Status)),
        ["status.certificate: Invalid value: \"<certificate data>\": must contain at least one CERTIFICATE PEM block"]
    );
}
