//! Test support: a CA and a serving certificate for 127.0.0.1, and an HTTPS server of an axum
//! router signed by it (webhook and aggregation tests). Also compiled into the root package's
//! end-to-end tests (`tests/common/mod.rs`).

use std::sync::Arc;

use hyper_util::rt::TokioIo;

/// A CA and a certificate for 127.0.0.1 it signs: (CA PEM, certificate DER, key DER).
pub fn certificates() -> (String, Vec<u8>, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("self-sign the CA");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("parameters");
    let cert = leaf.signed_by(&key, &issuer).expect("sign");
    (ca_cert.pem(), cert.der().to_vec(), key.serialize_der())
}

/// A TLS acceptor for the certificate and key of [`certificates`].
pub fn acceptor(cert: Vec<u8>, key: Vec<u8>) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
        )
        .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(tls))
}

/// Serves `router` over HTTPS on 127.0.0.1: (port, CA PEM). The server stops when the
/// returned handle is aborted or the runtime ends.
pub async fn serve_router(router: axum::Router) -> (u16, Vec<u8>, tokio::task::JoinHandle<()>) {
    let (ca, cert, key) = certificates();
    let acceptor = acceptor(cert, key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, ca.into_bytes(), task)
}
