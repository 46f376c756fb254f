//! TLS for the API server and its clients, with rustls on ring (no OpenSSL).
//!
//! - [`server_config`]: TLS 1.2/1.3, ALPN `h2` and `http/1.1`, client certificates verified
//!   against the client CA when presented (as upstream's `--client-ca-file`). A certificate
//!   from another CA fails the handshake (the kubelet's server).
//! - [`api_server_tls`]: the API server's: any client certificate is taken at the handshake
//!   (its holder still proves it has the key) and checked against the client CA after it, as
//!   upstream's `RequestClientCert` and x509 authenticator do, so that a certificate from
//!   another CA is answered `401 Unauthorized` (a failed handshake reaches a Go client as
//!   "connection reset by peer" or "http2: client conn could not be established" as often as
//!   the TLS alert).
//! - [`serve_router`]: serves an axum router over TLS with graceful shutdown; each request of a
//!   connection whose client presented a verified certificate carries its subject as a
//!   [`ClientIdentity`] extension, one whose certificate did not verify a
//!   [`RefusedClientCertificate`]. Plain HTTP sent to the TLS port is answered `400` with
//!   "Client sent an HTTP request to an HTTPS server." as Go's `net/http` does.
//! - [`client_config`] and [`reqwest_client`]: clients verifying the server against a CA and
//!   presenting a client certificate.

use crate::auth::{ClientIdentity, RefusedClientCertificate};
use crate::pki::CertKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What Go's `net/http` answers a plain HTTP request on a TLS port
/// (`src/net/http/server.go`, `tls: first record does not look like a TLS handshake`).
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Errors building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM certificate or key could not be read.
    #[error("invalid {what}: {message}")]
    Pem {
        /// Which: `certificate`, `private key`, `CA bundle`.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// rustls refused the configuration (e.g. a key not matching its certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
    /// The client certificate verifier could not be built (e.g. an empty CA bundle).
    #[error("client CA: {0}")]
    Verifier(String),
}

/// The crypto provider of every TLS configuration: ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates in a PEM bundle (at least one).
pub fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: "certificate",
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: "certificate",
            message: "no PEM certificate".into(),
        });
    }
    Ok(certs)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Pem {
        what: "private key",
        message: e.to_string(),
    })
}

/// A root store holding the certificates of a PEM bundle.
pub fn roots(pem: &str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certs(pem)? {
        store.add(c).map_err(|e| TlsError::Pem {
            what: "CA bundle",
            message: e.to_string(),
        })?;
    }
    Ok(store)
}

/// A server configuration serving `serving`, verifying client certificates against
/// `client_ca_pem` when presented (a server that requires one, such as the kubelet, answers
/// 401 to a request without).
pub fn server_config(
    serving: &CertKey,
    client_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = server_builder(client_verifier(client_ca_pem)?)?
        .with_single_cert(certs(&serving.cert_pem)?, key(&serving.key_pem)?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The API server's TLS: its rustls configuration and the check of client certificates run
/// after the handshake (see [`api_server_tls`]).
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    clients: Arc<dyn ClientCertVerifier>,
}

impl ServerTls {
    /// The rustls configuration.
    pub fn config(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }

    /// The identity of a presented certificate chain (leaf first): its subject when it
    /// verifies against the client CA now, else why not.
    pub fn identity_of(
        &self,
        chain: &[CertificateDer<'_>],
    ) -> Result<ClientIdentity, RefusedClientCertificate> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| RefusedClientCertificate("no certificate".to_string()))?;
        self.clients
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| RefusedClientCertificate(e.to_string()))?;
        identity_of(Some(chain))
            .ok_or_else(|| RefusedClientCertificate("unparsable certificate".to_string()))
    }
}

/// The API server's TLS serving `serving`: as [`server_config`], except that a client
/// certificate is checked against `client_ca_pem` after the handshake, as upstream's
/// (`staging/src/k8s.io/apiserver/pkg/server/options/serving.go` asks for client certificates
/// with `tls.RequestClientCert`; `.../authentication/request/x509/x509.go` verifies them).
pub fn api_server_tls(serving: &CertKey, client_ca_pem: &str) -> Result<ServerTls, TlsError> {
    let clients = client_verifier(client_ca_pem)?;
    let mut config = server_builder(Arc::new(VerifiedAfterHandshake(clients.clone())))?
        .with_single_cert(certs(&serving.cert_pem)?, key(&serving.key_pem)?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        clients,
    })
}

/// Takes any client certificate chain at the handshake, checking only the holder's signature
/// (that it has the key); [`ServerTls::identity_of`] checks the chain.
#[derive(Debug)]
struct VerifiedAfterHandshake(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for VerifiedAfterHandshake {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// As [`server_config`], serving whatever certificate `resolver` holds at each handshake (one
/// that is renewed while the server runs, such as a kubelet's rotated serving certificate;
/// handshakes fail while it holds none).
pub fn server_config_resolving(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
    client_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = server_builder(client_verifier(client_ca_pem)?)?.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Client certificates verified against `client_ca_pem`, optional.
fn client_verifier(client_ca_pem: &str) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(client_ca_pem)?), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))
}

fn server_builder(
    verifier: Arc<dyn ClientCertVerifier>,
) -> Result<rustls::ConfigBuilder<rustls::ServerConfig, rustls::server::WantsServerCert>, TlsError>
{
    Ok(rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier))
}

/// How a client verifies the server.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// Against this CA bundle (PEM).
    Ca(String),
    /// Not at all (`insecure-skip-tls-verify`).
    Insecure,
}

/// A client configuration trusting `trust` and presenting `identity` if given; ALPN
/// `http/1.1` (the clients here speak HTTP/1.1).
pub fn client_config(
    trust: &ServerTrust,
    identity: Option<&CertKey>,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = client_builder(trust)?;
    let mut config = match identity {
        Some(id) => builder.with_client_auth_cert(certs(&id.cert_pem)?, key(&id.key_pem)?)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// As [`client_config`], presenting whatever certificate `resolver` holds at each handshake
/// (a client certificate renewed while the client runs, such as a kubelet's).
pub fn client_config_resolving(
    trust: &ServerTrust,
    resolver: Arc<dyn rustls::client::ResolvesClientCert>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = client_builder(trust)?.with_client_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn client_builder(
    trust: &ServerTrust,
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>, TlsError>
{
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    Ok(match trust {
        ServerTrust::Ca(pem) => builder.with_root_certificates(roots(pem)?),
        ServerTrust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerifier(provider))),
    })
}

/// Makes ring the process's default rustls provider (once; kept if another is installed):
/// reqwest is built without a provider of its own (`rustls-no-provider`) and needs one for
/// any client, plain HTTP included.
pub fn install_default_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client from `builder` speaking TLS with `tls` (none: reqwest's own rustls
/// configuration on ring, with no trusted roots, for plain `http://` URLs). Every reqwest client
/// of the workspace is built here or after [`install_default_provider`].
pub fn reqwest_client(
    builder: reqwest::ClientBuilder,
    tls: Option<rustls::ClientConfig>,
) -> reqwest::Result<reqwest::Client> {
    install_default_provider();
    match tls {
        Some(t) => builder.tls_backend_preconfigured(t).build(),
        None => builder.tls_certs_only([]).build(),
    }
}

/// A plain-HTTP reqwest client (see [`reqwest_client`]).
pub fn plain_reqwest_client() -> reqwest::Client {
    install_default_provider();
    reqwest_client(reqwest::Client::builder(), None).unwrap_or_default()
}

/// The subject of the first (leaf) certificate a client presented.
pub fn identity_of(certs: Option<&[CertificateDer<'_>]>) -> Option<ClientIdentity> {
    let leaf = certs?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let (common_name, organizations) = crate::pki::subject_of(&cert);
    Some(ClientIdentity {
        common_name,
        organizations,
    })
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then waits for open
/// connections to finish (call sites end long requests such as watches when `shutdown`
/// fires). HTTP/1.1 (with upgrades) and HTTP/2 by ALPN.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    tls: ServerTls,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, as axum::serve does.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        let checker = tls.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Some(tls) = handshake(&acceptor, tcp).await else {
                return;
            };
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| checker.identity_of(chain));
            let service = hyper::service::service_fn(move |mut req: http::Request<_>| {
                match &identity {
                    Some(Ok(id)) => {
                        req.extensions_mut().insert(id.clone());
                    }
                    Some(Err(refused)) => {
                        req.extensions_mut().insert(refused.clone());
                    }
                    None => {}
                }
                tower::ServiceExt::oneshot(router.clone(), req)
            });
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let conn =
                builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "TLS connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The TLS handshake of an accepted connection; a plain HTTP request gets Go's answer.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let mut first = [0u8; 1];
    // 0x16: a TLS handshake record; anything else (an ASCII method) is not TLS.
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != 0x16 => {
            let mut tcp = tcp;
            let _ = tcp.write_all(PLAIN_HTTP_ANSWER).await;
            let _ = tcp.shutdown().await;
            return None;
        }
        Ok(Ok(1)) => {}
        _ => return None,
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp).into_fallible()).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err((e, tcp))) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            close_after_alert(tcp).await;
            None
        }
        Err(_) => None,
    }
}

/// How long a refused client has to read the alert and close before the connection is dropped.
const ALERT_LINGER: Duration = Duration::from_secs(2);

/// Closes a connection whose handshake failed after its alert was sent (tokio-rustls writes it
/// before returning the error). With TLS 1.3 the client considers the handshake complete before
/// the server checks its certificate and has usually sent its request already: closing with that
/// request unread makes the kernel answer with a reset, which can reach the client before the
/// alert, so that it reports "connection reset by peer" instead of the TLS error. Half-closing
/// and reading until the client closes (or [`ALERT_LINGER`] passes) lets the alert arrive.
async fn close_after_alert(mut tcp: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let _ = tcp.shutdown().await;
    let _ = tokio::time::timeout(ALERT_LINGER, async {
        let mut sink = [0u8; 4096];
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Accepts any server certificate (`insecure-skip-tls-verify`); handshake signatures are
/// still checked.
#[derive(Debug)]
struct NoVerifier(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
