//! A real `etcd` server for one test: loopback ports, a data directory in the test's temporary
//! directory, killed when dropped; optionally serving TLS and requiring client certificates.
//! Or a three-member cluster of them ([`EtcdCluster`]), whose leader a test can find and kill.

// The loopback port picker, shared with the root package's test helpers.
#[path = "port.rs"]
#[allow(clippy::duplicate_mod)] // tests including both helpers load it twice
mod port;
use port::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `etcd-server` package installs the server.
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// How long a fresh etcd member may take to answer and know a leader.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `etcd` child process.
pub struct EtcdServer {
    child: Child,
    /// The client URL (`http://127.0.0.1:PORT`, `https://` with TLS).
    pub url: String,
    /// With TLS: the PEM files of the CA, of a client certificate and of its key.
    pub tls: Option<TlsFiles>,
    log: PathBuf,
}

/// PEM files of a test CA, and of a certificate it signed for `127.0.0.1` (server and client
/// use) with its key.
pub struct TlsFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// A new CA and certificate, written under `dir`.
    fn generate(dir: &Path) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
            KeyUsagePurpose, SanType,
        };
        let ca_key = KeyPair::generate().expect("generate the CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign the CA");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("generate the key");
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("parameters");
        leaf.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        leaf.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = leaf.signed_by(&key, &issuer).expect("sign the certificate");
        let files = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.ca, ca_cert.pem()).expect("write ca.pem");
        std::fs::write(&files.cert, cert.pem()).expect("write cert.pem");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key.pem");
        files
    }

    fn client_options(&self) -> etcd_client::ConnectOptions {
        let read = |p: &Path| std::fs::read(p).expect("read a test PEM file");
        let tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read(&self.ca)))
            .identity(etcd_client::Identity::from_pem(
                read(&self.cert),
                read(&self.key),
            ));
        etcd_client::ConnectOptions::new().with_tls(tls)
    }
}

impl EtcdServer {
    /// Starts a single-member etcd with its data under `dir` and waits until it answers.
    ///
    /// Panics (failing the test) if `/usr/bin/etcd` is missing: the etcd tests need Debian's
    /// `etcd-server` package, which CI installs.
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, false, &[]).await
    }

    /// Like [`EtcdServer::start`], with these further etcd flags (`--quota-backend-bytes=N`).
    pub async fn start_with_flags(dir: &Path, flags: &[&str]) -> Self {
        Self::start_with(dir, false, flags).await
    }

    /// Like [`EtcdServer::start`], serving TLS only and requiring client certificates signed by
    /// a CA generated for the test ([`EtcdServer::tls`]).
    pub async fn start_tls(dir: &Path) -> Self {
        Self::start_with(dir, true, &[]).await
    }

    async fn start_with(dir: &Path, tls: bool, flags: &[&str]) -> Self {
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let tls = tls.then(|| TlsFiles::generate(dir));
        let cluster = format!("etcd={peer_url}");
        let mut server = Self::spawn(dir, "etcd", url, &peer_url, &cluster, tls, flags);
        server.wait_ready().await;
        server
    }

    /// Starts the member `name` (data in `dir/NAME-data`, output in `dir/NAME.log`) of the
    /// cluster `initial_cluster` (etcd's `--initial-cluster`), with the further `flags`,
    /// without waiting for it.
    fn spawn(
        dir: &Path,
        name: &str,
        url: String,
        peer_url: &str,
        initial_cluster: &str,
        tls: Option<TlsFiles>,
        flags: &[&str],
    ) -> Self {
        assert!(
            Path::new(ETCD_BIN).exists(),
            "{ETCD_BIN} is missing: the etcd storage tests run a real etcd; install it with \
             `apt-get install etcd-server`"
        );
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("create the etcd log");
        let err = out.try_clone().expect("clone the etcd log handle");
        let mut cmd = Command::new(ETCD_BIN);
        if let Some(t) = &tls {
            cmd.arg(format!("--trusted-ca-file={}", t.ca.display()))
                .arg(format!("--cert-file={}", t.cert.display()))
                .arg(format!("--key-file={}", t.key.display()))
                .arg("--client-cert-auth");
        }
        let child = cmd
            .arg(format!("--name={name}"))
            .arg(format!(
                "--data-dir={}",
                dir.join(format!("{name}-data")).display()
            ))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .args(flags)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {ETCD_BIN}: {e}"));
        Self {
            child,
            url,
            tls,
            log,
        }
    }

    async fn client(&self) -> Result<etcd_client::Client, etcd_client::Error> {
        let options = self.tls.as_ref().map(TlsFiles::client_options);
        etcd_client::Client::connect([self.url.as_str()], options).await
    }

    /// Waits until the member answers and knows a leader.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "etcd exited with {status} before answering:\n{}",
                    self.log()
                );
            }
            if let Ok(mut c) = self.client().await {
                if c.status().await.is_ok_and(|s| s.leader() != 0) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What etcd printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id (to stop and continue it with signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A three-member etcd cluster on loopback ports (`m0`, `m1`, `m2`, each with its own data
/// directory and log under the test's directory), killed when dropped.
pub struct EtcdCluster {
    /// The members, in the order of [`EtcdCluster::urls`].
    pub members: Vec<EtcdServer>,
}

impl EtcdCluster {
    /// Starts the three members and waits until each answers and knows the leader.
    pub async fn start(dir: &Path) -> Self {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let peer_url = |p: u16| format!("http://127.0.0.1:{p}");
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}={}", peer_url(*peer)))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<EtcdServer> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                let url = format!("http://127.0.0.1:{client}");
                EtcdServer::spawn(
                    dir,
                    &format!("m{i}"),
                    url,
                    &peer_url(*peer),
                    &initial_cluster,
                    None,
                    &[],
                )
            })
            .collect();
        for m in &mut members {
            m.wait_ready().await;
        }
        Self { members }
    }

    /// The client URLs of all members.
    pub fn urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.url.clone()).collect()
    }

    /// The index of the member that is the leader, as the members that answer report it (each
    /// member's `Status`: `leader` is the leader's member ID, `header.member_id` its own);
    /// `None` while no answering member is the leader it reports.
    pub async fn leader(&self) -> Option<usize> {
        for (i, m) in self.members.iter().enumerate() {
            let Ok(mut c) = m.client().await else {
                continue;
            };
            let Ok(status) = c.status().await else {
                continue;
            };
            if status
                .header()
                .is_some_and(|h| h.member_id() == status.leader() && status.leader() != 0)
            {
                return Some(i);
            }
        }
        None
    }

    /// What every member printed so far, each under its URL.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- {}\n{}", m.url, m.log()))
            .collect()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}
