use super::*;

fn cert(pem: &str) -> Vec<u8> {
    parse_cert(pem).expect("a certificate")
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn creates_the_layout_with_private_keys_0600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&PkiOptions::new(dir.path())).expect("pki");
    pki.admin().expect("admin");
    pki.apiserver_kubelet_client().expect("kubelet client");
    for f in [
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "sa.key",
        "sa.pub",
        "admin.crt",
        "admin.key",
        "apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.key",
    ] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    for key in ["ca.key", "apiserver.key", "sa.key", "admin.key"] {
        assert_eq!(mode(&dir.path().join(key)), 0o600, "{key}");
    }
    assert!(pki
        .service_account_public_key_pem()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
}

#[test]
fn later_starts_reuse_every_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = PkiOptions::new(dir.path());
    let first = Pki::load_or_create(&opts).expect("pki");
    let admin = first.admin().expect("admin");
    let second = Pki::load_or_create(&opts).expect("pki again");
    assert_eq!(first.ca_cert_pem(), second.ca_cert_pem());
    assert_eq!(first.serving(), second.serving());
    assert_eq!(
        first.service_account_key_pem(),
        second.service_account_key_pem()
    );
    assert_eq!(admin, second.admin().expect("admin again"));
}

#[test]
fn serving_certificate_names_the_service_and_listen_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = PkiOptions::new(dir.path());
    opts.serving_hosts = vec!["10.1.2.3".into(), "api.example".into(), "[::1]".into()];
    let pki = Pki::load_or_create(&opts).expect("pki");
    let der = cert(&pki.serving().cert_pem);
    let (_, c) = x509_parser::parse_x509_certificate(&der).expect("parse");
    let want: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "10.96.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.1.2.3",
        "api.example",
        "::1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert!(covers(&c, &want));
    assert!(!covers(&c, &["other.example".to_string()]));
    // A new listen address re-issues the certificate; the CA stays.
    let before = pki.serving().clone();
    opts.serving_hosts.push("10.9.9.9".into());
    let again = Pki::load_or_create(&opts).expect("pki again");
    assert_ne!(&before, again.serving());
    assert_eq!(pki.ca_cert_pem(), again.ca_cert_pem());
}

#[test]
fn client_certificates_carry_user_and_groups_and_verify_against_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&PkiOptions::new(dir.path())).expect("pki");
    let ca_der = cert(pki.ca_cert_pem());
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("ca");
    for (pair, cn, orgs) in [
        (
            pki.admin().expect("admin"),
            "kubernetes-admin",
            vec!["system:masters"],
        ),
        (
            pki.issue_client("system:kube-scheduler", &[])
                .expect("sched"),
            "system:kube-scheduler",
            vec![],
        ),
        (
            pki.kubelet_client("n1").expect("kubelet"),
            "system:node:n1",
            vec!["system:nodes"],
        ),
    ] {
        let der = cert(&pair.cert_pem);
        let (_, c) = x509_parser::parse_x509_certificate(&der).expect("parse");
        assert!(c.verify_signature(Some(ca.public_key())).is_ok());
        assert_eq!(subject_of(&c), (cn.to_string(), owned(&orgs)));
    }
}

#[test]
fn a_new_ca_reissues_leaves_signed_by_the_old_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = PkiOptions::new(dir.path());
    let old = Pki::load_or_create(&opts).expect("pki");
    let admin = old.admin().expect("admin");
    std::fs::remove_file(dir.path().join("ca.crt")).expect("rm");
    std::fs::remove_file(dir.path().join("ca.key")).expect("rm");
    let new = Pki::load_or_create(&opts).expect("pki");
    assert_ne!(old.ca_cert_pem(), new.ca_cert_pem());
    assert_ne!(old.serving(), new.serving());
    assert_ne!(admin, new.admin().expect("admin"));
}

#[test]
fn given_files_replace_generated_ones() {
    let given = tempfile::tempdir().expect("tempdir");
    let other = Pki::load_or_create(&PkiOptions::new(given.path().join("other"))).expect("other");
    let serving = other
        .issue_serving("x", &["example.test".into()])
        .expect("serving");
    let (crt, key, sa) = (
        given.path().join("s.crt"),
        given.path().join("s.key"),
        given.path().join("sa.key"),
    );
    std::fs::write(&crt, &serving.cert_pem).expect("write");
    std::fs::write(&key, &serving.key_pem).expect("write");
    std::fs::write(&sa, other.service_account_key_pem()).expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = PkiOptions {
        tls_cert_file: Some(crt.clone()),
        tls_private_key_file: Some(key),
        client_ca_file: Some(given.path().join("other/ca.crt")),
        service_account_key_file: Some(sa.clone()),
        ..PkiOptions::new(dir.path())
    };
    let pki = Pki::load_or_create(&opts).expect("pki");
    assert_eq!(pki.serving(), &serving);
    assert_eq!(pki.client_ca_pem(), other.ca_cert_pem());
    assert_ne!(pki.ca_cert_pem(), other.ca_cert_pem());
    assert_eq!(pki.service_account_key_path(), sa);
    assert_eq!(
        pki.service_account_public_key_pem(),
        other.service_account_public_key_pem()
    );
    assert!(!dir.path().join("apiserver.crt").exists());
}

#[test]
fn bad_files_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "not a pem").expect("write");
    let half = PkiOptions {
        tls_cert_file: Some(junk.clone()),
        ..PkiOptions::new(dir.path().join("a"))
    };
    assert!(matches!(
        Pki::load_or_create(&half),
        Err(PkiError::HalfServingPair)
    ));
    let bad_ca = PkiOptions {
        client_ca_file: Some(junk.clone()),
        ..PkiOptions::new(dir.path().join("b"))
    };
    assert!(matches!(
        Pki::load_or_create(&bad_ca),
        Err(PkiError::Invalid { .. })
    ));
    let missing = PkiOptions {
        service_account_key_file: Some(dir.path().join("nope")),
        ..PkiOptions::new(dir.path().join("c"))
    };
    assert!(matches!(
        Pki::load_or_create(&missing),
        Err(PkiError::Io { .. })
    ));
    // A CA certificate without its key loads, but cannot issue.
    let d = dir.path().join("d");
    Pki::load_or_create(&PkiOptions::new(&d)).expect("pki");
    std::fs::remove_file(d.join("ca.key")).expect("rm");
    std::fs::remove_file(d.join("admin.crt")).ok();
    let pki = Pki::load_or_create(&PkiOptions::new(&d)).expect("pki without CA key");
    assert!(matches!(pki.admin(), Err(PkiError::NoCaKey(_))));
}
