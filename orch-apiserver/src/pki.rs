//! The cluster's public-key infrastructure: a CA, the API server's serving certificate, the
//! service-account signing key and client certificates for the components, kept in
//! `DATA_DIR/pki/` (the layout and names of kubeadm's `/etc/kubernetes/pki`, upstream
//! `cmd/kubeadm/app/constants/constants.go`).
//!
//! [`Pki::load_or_create`] creates what is missing on first start and reuses the files on later
//! starts; a leaf certificate is issued again when it no longer verifies against the CA, has
//! expired or lacks a requested subject alternative name. Given files (`--tls-cert-file`,
//! `--tls-private-key-file`, `--client-ca-file`, `--service-account-key-file`, as upstream's
//! kube-apiserver flags) are taken instead of the generated ones. Keys are written with mode
//! 0600.
//!
//! | file | what |
//! |---|---|
//! | `ca.crt`, `ca.key` | the cluster CA: signs every certificate below |
//! | `apiserver.crt`, `.key` | the API server's serving certificate |
//! | `sa.key`, `sa.pub` | ECDSA P-256 key signing service-account tokens |
//! | `admin.crt`, `.key` | `kubernetes-admin` in `system:masters` (the admin kubeconfig) |
//! | `apiserver-kubelet-client.crt`, `.key` | the API server's identity towards kubelets |
//!
//! ```
//! use orch_apiserver::pki::{Pki, PkiOptions};
//! let dir = tempfile::tempdir().unwrap();
//! let pki = Pki::load_or_create(&PkiOptions::new(dir.path())).unwrap();
//! let admin = pki.admin().unwrap();
//! assert!(admin.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! // Later starts reuse the files.
//! let again = Pki::load_or_create(&PkiOptions::new(dir.path())).unwrap();
//! assert_eq!(again.ca_cert_pem(), pki.ca_cert_pem());
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The first address of the default service range (`10.96.0.0/12`): the `kubernetes` Service's
/// ClusterIP, a SAN of the serving certificate.
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

/// The DNS names of the `kubernetes` Service, SANs of the serving certificate (upstream
/// `pkg/controlplane/apiserver/options`, `ServiceIPRange` and the default alternate names).
pub const KUBERNETES_SERVICE_NAMES: &[&str] = &[
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// The group whose members are cluster administrators (upstream `user.SystemPrivilegedGroup`).
pub const SYSTEM_MASTERS: &str = "system:masters";

/// The group of kubelets' client certificates (upstream `user.NodesGroup`).
pub const SYSTEM_NODES: &str = "system:nodes";

/// Leaf certificates are valid for a year, as kubeadm's (`CertificateValidityPeriod`).
const LEAF_VALIDITY_DAYS: i64 = 365;

/// The CA is valid for ten years, as kubeadm's (`CACertificateValidityPeriod`).
const CA_VALIDITY_DAYS: i64 = 3650;

/// Errors creating or reading the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable certificate or key.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Generating or signing a certificate failed.
    #[error("cannot create the certificate of {what}: {source}")]
    Certificate {
        /// Whose certificate.
        what: String,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// A certificate was asked for but the CA's private key is not at hand.
    #[error("cannot issue certificates: the CA key {0} does not exist")]
    NoCaKey(PathBuf),
    /// Only one of `--tls-cert-file` and `--tls-private-key-file` was given.
    #[error("--tls-cert-file and --tls-private-key-file must be given together")]
    HalfServingPair,
}

/// A certificate (PEM, possibly a chain) and its private key (PEM, PKCS#8).
#[derive(Clone, PartialEq, Eq)]
pub struct CertKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Where the PKI lives and which given files replace generated ones.
#[derive(Debug, Clone, Default)]
pub struct PkiOptions {
    /// The PKI directory (`DATA_DIR/pki`).
    pub dir: PathBuf,
    /// Extra subject alternative names of the serving certificate (host names or IP addresses:
    /// the listen and advertise addresses) besides `localhost`, `127.0.0.1`, the host name, the
    /// `kubernetes` Service names and [`KUBERNETES_SERVICE_IP`].
    pub serving_hosts: Vec<String>,
    /// `--tls-cert-file`: the serving certificate (chain) to use instead of `apiserver.crt`.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-private-key-file`: its key.
    pub tls_private_key_file: Option<PathBuf>,
    /// `--client-ca-file`: the CA bundle client certificates are verified against, instead of
    /// `ca.crt` (certificates this PKI issues are signed by `ca.crt`: include it to keep them
    /// valid).
    pub client_ca_file: Option<PathBuf>,
    /// `--service-account-key-file`: the ECDSA private key (PEM) signing service-account
    /// tokens, instead of `sa.key`.
    pub service_account_key_file: Option<PathBuf>,
}

impl PkiOptions {
    /// Everything generated in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            ..Self::default()
        }
    }
}

/// The cluster PKI, loaded or created by [`Pki::load_or_create`].
pub struct Pki {
    dir: PathBuf,
    ca_cert_pem: String,
    ca_key: Option<KeyPair>,
    client_ca_pem: String,
    serving: CertKey,
    sa_key_pem: String,
    sa_public_pem: String,
    sa_key_path: PathBuf,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish()
    }
}

impl Pki {
    /// Loads the PKI in `opts.dir`, creating the CA, the serving certificate and the
    /// service-account key if missing (see the module documentation).
    pub fn load_or_create(opts: &PkiOptions) -> Result<Self, PkiError> {
        let dir = opts.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| PkiError::Io {
            path: dir.clone(),
            source,
        })?;
        let (ca_cert_pem, ca_key) = load_or_create_ca(&dir)?;
        let client_ca_pem = match &opts.client_ca_file {
            Some(path) => {
                let pem = read(path)?;
                if parse_cert(&pem).is_none() {
                    return Err(invalid(path, "no PEM certificate"));
                }
                pem
            }
            None => ca_cert_pem.clone(),
        };
        let (sa_key_path, sa_key_pem, sa_public_pem) =
            load_or_create_sa_key(&dir, opts.service_account_key_file.as_deref())?;
        let mut pki = Self {
            dir,
            ca_cert_pem,
            ca_key,
            client_ca_pem,
            serving: CertKey {
                cert_pem: String::new(),
                key_pem: String::new(),
            },
            sa_key_pem,
            sa_public_pem,
            sa_key_path,
        };
        pki.serving = match (&opts.tls_cert_file, &opts.tls_private_key_file) {
            (Some(cert), Some(key)) => {
                let pair = CertKey {
                    cert_pem: read(cert)?,
                    key_pem: read(key)?,
                };
                if parse_cert(&pair.cert_pem).is_none() {
                    return Err(invalid(cert, "no PEM certificate"));
                }
                KeyPair::from_pem(&pair.key_pem)
                    .map_err(|e| invalid(key, &format!("not a private key: {e}")))?;
                pair
            }
            (None, None) => {
                let mut hosts: Vec<String> = ["localhost", "127.0.0.1", KUBERNETES_SERVICE_IP]
                    .into_iter()
                    .map(String::from)
                    .collect();
                hosts.extend(KUBERNETES_SERVICE_NAMES.iter().map(|s| s.to_string()));
                hosts.extend(host_name());
                hosts.extend(opts.serving_hosts.iter().cloned());
                pki.serving_cert("apiserver", "kube-apiserver", &hosts)?
            }
            _ => return Err(PkiError::HalfServingPair),
        };
        Ok(pki)
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster CA certificate (PEM): clients verify the API server and kubelets with it.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The CA bundle (PEM) client certificates are verified against.
    pub fn client_ca_pem(&self) -> &str {
        &self.client_ca_pem
    }

    /// The API server's serving certificate and key.
    pub fn serving(&self) -> &CertKey {
        &self.serving
    }

    /// The service-account signing key: ECDSA P-256, PKCS#8 PEM.
    pub fn service_account_key_pem(&self) -> &str {
        &self.sa_key_pem
    }

    /// Its public key, PEM (`sa.pub`): service-account tokens verify against it.
    pub fn service_account_public_key_pem(&self) -> &str {
        &self.sa_public_pem
    }

    /// The file holding the service-account signing key.
    pub fn service_account_key_path(&self) -> &Path {
        &self.sa_key_path
    }

    /// `admin.crt`/`.key`: `kubernetes-admin` in `system:masters`.
    pub fn admin(&self) -> Result<CertKey, PkiError> {
        self.client_cert("admin", "kubernetes-admin", &[SYSTEM_MASTERS])
    }

    /// `apiserver-kubelet-client.crt`/`.key`: the API server's client certificate towards
    /// kubelets.
    pub fn apiserver_kubelet_client(&self) -> Result<CertKey, PkiError> {
        self.client_cert(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            &[SYSTEM_MASTERS],
        )
    }

    /// The client certificate `NAME.crt`/`.key` for user `common_name` in `organizations`,
    /// reused if it exists, verifies against the CA, has not expired and names the same
    /// subject; issued otherwise.
    pub fn client_cert(
        &self,
        name: &str,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<CertKey, PkiError> {
        let (crt, key) = self.paths(name);
        if let Some(pair) = self.reusable(&crt, &key, |c| {
            subject_of(c) == (common_name.to_string(), owned(organizations))
        })? {
            return Ok(pair);
        }
        let pair = self.issue_client(common_name, organizations)?;
        write_pair(&crt, &key, &pair)?;
        Ok(pair)
    }

    /// A new client certificate for user `common_name` in `organizations` (not stored).
    pub fn issue_client(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<CertKey, PkiError> {
        let mut params = leaf_params(common_name, &[])?;
        for o in organizations {
            params
                .distinguished_name
                .push(DnType::OrganizationName, o.to_string());
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(common_name, params)
    }

    /// The serving certificate `NAME.crt`/`.key` for `hosts` (DNS names or IP addresses),
    /// reused if it exists, verifies against the CA, has not expired and covers every host;
    /// issued otherwise.
    pub fn serving_cert(
        &self,
        name: &str,
        common_name: &str,
        hosts: &[String],
    ) -> Result<CertKey, PkiError> {
        let (crt, key) = self.paths(name);
        if let Some(pair) = self.reusable(&crt, &key, |c| covers(c, hosts))? {
            return Ok(pair);
        }
        let pair = self.issue_serving(common_name, hosts)?;
        write_pair(&crt, &key, &pair)?;
        Ok(pair)
    }

    /// A new serving certificate for `hosts` (not stored).
    pub fn issue_serving(&self, common_name: &str, hosts: &[String]) -> Result<CertKey, PkiError> {
        let mut params = leaf_params(common_name, hosts)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(common_name, params)
    }

    /// A kubelet's serving certificate `kubelet-NODE.crt`/`.key`: CN `system:node:NODE`, SANs
    /// the node name and `addresses`.
    pub fn kubelet_serving(&self, node: &str, addresses: &[String]) -> Result<CertKey, PkiError> {
        let mut hosts = vec![node.to_string()];
        hosts.extend(addresses.iter().filter(|a| *a != node).cloned());
        self.serving_cert(
            &format!("kubelet-{node}"),
            &format!("system:node:{node}"),
            &hosts,
        )
    }

    /// A kubelet's client certificate `kubelet-client-NODE.crt`/`.key`: `system:node:NODE` in
    /// `system:nodes`.
    pub fn kubelet_client(&self, node: &str) -> Result<CertKey, PkiError> {
        self.client_cert(
            &format!("kubelet-client-{node}"),
            &format!("system:node:{node}"),
            &[SYSTEM_NODES],
        )
    }

    fn paths(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        )
    }

    /// The pair in `crt`/`key` if both exist, the certificate verifies against the CA, is
    /// valid now and satisfies `fits`.
    fn reusable(
        &self,
        crt: &Path,
        key: &Path,
        fits: impl Fn(&x509_parser::certificate::X509Certificate<'_>) -> bool,
    ) -> Result<Option<CertKey>, PkiError> {
        if !crt.exists() || !key.exists() {
            return Ok(None);
        }
        let pair = CertKey {
            cert_pem: read(crt)?,
            key_pem: read(key)?,
        };
        let Some(der) = parse_cert(&pair.cert_pem) else {
            return Ok(None);
        };
        let Some(ca_der) = parse_cert(&self.ca_cert_pem) else {
            return Ok(None);
        };
        let (Ok((_, cert)), Ok((_, ca))) = (
            x509_parser::parse_x509_certificate(&der),
            x509_parser::parse_x509_certificate(&ca_der),
        ) else {
            return Ok(None);
        };
        let ok = cert.verify_signature(Some(ca.public_key())).is_ok()
            && cert.validity().is_valid()
            && fits(&cert)
            && KeyPair::from_pem(&pair.key_pem).is_ok();
        Ok(ok.then_some(pair))
    }

    fn sign(&self, what: &str, params: CertificateParams) -> Result<CertKey, PkiError> {
        let ca_key = self
            .ca_key
            .as_ref()
            .ok_or_else(|| PkiError::NoCaKey(self.dir.join("ca.key")))?;
        let cert_err = |source| PkiError::Certificate {
            what: what.to_string(),
            source,
        };
        let issuer = Issuer::from_ca_cert_pem(&self.ca_cert_pem, ca_key).map_err(cert_err)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
        let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
        Ok(CertKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The DER of the first certificate in `pem`.
fn parse_cert(pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()
        .map(|c| c.to_vec())
}

/// The Common Name and Organizations of a certificate's subject.
pub(crate) fn subject_of(
    cert: &x509_parser::certificate::X509Certificate<'_>,
) -> (String, Vec<String>) {
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .next()
        .unwrap_or_default()
        .to_string();
    let orgs = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(String::from)
        .collect();
    (cn, orgs)
}

/// Whether the certificate's SANs name every host.
fn covers(cert: &x509_parser::certificate::X509Certificate<'_>, hosts: &[String]) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return hosts.is_empty();
    };
    let mut names = vec![];
    let mut ips = vec![];
    for n in &san.value.general_names {
        match n {
            GeneralName::DNSName(d) => names.push(d.to_ascii_lowercase()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                16 => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                _ => {}
            },
            _ => {}
        }
    }
    hosts.iter().all(|h| match h.parse::<IpAddr>() {
        Ok(ip) => ips.contains(&ip),
        Err(_) => names.contains(&h.to_ascii_lowercase()),
    })
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Parameters of a leaf certificate valid from yesterday for [`LEAF_VALIDITY_DAYS`].
fn leaf_params(common_name: &str, hosts: &[String]) -> Result<CertificateParams, PkiError> {
    let mut sans: Vec<String> = vec![];
    for h in hosts {
        let h = h.trim_start_matches('[').trim_end_matches(']').to_string();
        if !h.is_empty() && !sans.contains(&h) {
            sans.push(h);
        }
    }
    let mut params = CertificateParams::new(sans).map_err(|source| PkiError::Certificate {
        what: common_name.to_string(),
        source,
    })?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_VALIDITY_DAYS);
    Ok(params)
}

/// Valid from yesterday (some clock skew) to `days` from now.
fn set_validity(params: &mut CertificateParams, days: i64) {
    let day = |offset: i64| {
        let d = jiff::Zoned::now()
            .with_time_zone(jiff::tz::TimeZone::UTC)
            .date()
            .checked_add(jiff::Span::new().days(offset))
            .unwrap_or(jiff::civil::Date::MAX);
        rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
    };
    params.not_before = day(-1);
    params.not_after = day(days);
}

fn load_or_create_ca(dir: &Path) -> Result<(String, Option<KeyPair>), PkiError> {
    let crt = dir.join("ca.crt");
    let key = dir.join("ca.key");
    if crt.exists() {
        let pem = read(&crt)?;
        if parse_cert(&pem).is_none() {
            return Err(invalid(&crt, "no PEM certificate"));
        }
        if !key.exists() {
            return Ok((pem, None));
        }
        let pair = KeyPair::from_pem(&read(&key)?)
            .map_err(|e| invalid(&key, &format!("not a private key: {e}")))?;
        return Ok((pem, Some(pair)));
    }
    let cert_err = |source| PkiError::Certificate {
        what: "the cluster CA".into(),
        source,
    };
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kubernetes");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    set_validity(&mut params, CA_VALIDITY_DAYS);
    let pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
    let cert = params.self_signed(&pair).map_err(cert_err)?;
    let ck = CertKey {
        cert_pem: cert.pem(),
        key_pem: pair.serialize_pem(),
    };
    write_pair(&crt, &key, &ck)?;
    Ok((ck.cert_pem, Some(pair)))
}

/// The service-account key: the given file, else `sa.key` (created if missing); `sa.pub` is
/// written beside a generated key.
fn load_or_create_sa_key(
    dir: &Path,
    given: Option<&Path>,
) -> Result<(PathBuf, String, String), PkiError> {
    let path = given.map_or_else(|| dir.join("sa.key"), Path::to_path_buf);
    if given.is_some() || path.exists() {
        // PKCS#8 or SEC1 (`EC PRIVATE KEY`), kept as PKCS#8 (what rcgen on ring reads).
        let pem = crate::serviceaccount::keys::pkcs8_pem(&read(&path)?);
        let pair = KeyPair::from_pem(&pem)
            .map_err(|e| invalid(&path, &format!("not a private key: {e}")))?;
        if !pair.is_compatible(&PKCS_ECDSA_P256_SHA256) {
            return Err(invalid(&path, "not an ECDSA P-256 key"));
        }
        return Ok((path, pem, pair.public_key_pem()));
    }
    let pair =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Certificate {
            what: "the service-account key".into(),
            source,
        })?;
    let (pem, public) = (pair.serialize_pem(), pair.public_key_pem());
    write_file(&path, &pem, 0o600)?;
    write_file(&dir.join("sa.pub"), &public, 0o644)?;
    Ok((path, pem, public))
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(path: &Path, message: &str) -> PkiError {
    PkiError::Invalid {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn write_pair(crt: &Path, key: &Path, pair: &CertKey) -> Result<(), PkiError> {
    write_file(key, &pair.key_pem, 0o600)?;
    write_file(crt, &pair.cert_pem, 0o644)
}

/// Writes `text` to `path` atomically (a temporary file renamed) with `mode`.
pub(crate) fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests;
