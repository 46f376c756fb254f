//! A real `etcd` server for one test: loopback ports, a data directory in the test's temporary
//! directory, killed when dropped; optionally serving TLS and requiring client certificates.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `etcd-server` package installs the server.
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// How long a fresh single-member etcd may take to answer.
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

fn free_port() -> u16 {
    // The port is free once the listener is dropped; etcd binds it right after.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

impl EtcdServer {
    /// Starts a single-member etcd with its data under `dir` and waits until it answers.
    ///
    /// Panics (failing the test) if `/usr/bin/etcd` is missing: the etcd tests need Debian's
    /// `etcd-server` package, which CI installs.
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, false).await
    }

    /// Like [`EtcdServer::start`], serving TLS only and requiring client certificates signed by
    /// a CA generated for the test ([`EtcdServer::tls`]).
    pub async fn start_tls(dir: &Path) -> Self {
        Self::start_with(dir, true).await
    }

    async fn start_with(dir: &Path, tls: bool) -> Self {
        assert!(
            Path::new(ETCD_BIN).exists(),
            "{ETCD_BIN} is missing: the etcd storage tests run a real etcd; install it with \
             `apt-get install etcd-server`"
        );
        let (client, peer) = (free_port(), free_port());
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let tls = tls.then(|| TlsFiles::generate(dir));
        let log = dir.join("etcd.log");
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
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.join("etcd-data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {ETCD_BIN}: {e}"));
        let mut server = Self {
            child,
            url,
            tls,
            log,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "etcd exited with {status} before answering:\n{}",
                    self.log()
                );
            }
            let options = self.tls.as_ref().map(TlsFiles::client_options);
            if let Ok(mut c) = etcd_client::Client::connect([self.url.as_str()], options).await {
                if c.status().await.is_ok() {
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
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
