//! The kubelet's HTTPS server: its serving certificate (signed by the cluster CA), client
//! certificates verified against the client CA when presented; a certificate from another CA
//! fails the handshake. Each request that came with a verified client certificate carries its
//! subject as a [`ClientIdentity`] extension, from which [`crate::auth`] authenticates it
//! (other requests need a bearer token there, or get `401 Unauthorized`).
//!
//! The rustls [`rustls::ServerConfig`] is given in [`crate::kubelet::KubeletConfig::tls`]
//! (built by the caller, e.g. with `orch_apiserver::tls::server_config`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The subject of the client certificate of the connection a request came on: the user (Common
/// Name) and groups (Organizations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Subject Common Name: the user name.
    pub common_name: String,
    /// Subject Organizations: the groups.
    pub organizations: Vec<String>,
}

/// The subject of a leaf certificate.
fn identity_of(certs: Option<&[rustls::pki_types::CertificateDer<'_>]>) -> Option<ClientIdentity> {
    let leaf = certs?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .next()
        .unwrap_or_default()
        .to_string();
    let organizations = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(String::from)
        .collect();
    Some(ClientIdentity {
        common_name,
        organizations,
    })
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves; requests with a verified
/// client certificate carry its [`ClientIdentity`].
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "kubelet TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let identity = identity_of(tls.get_ref().1.peer_certificates());
            let service = hyper::service::service_fn(move |mut req: axum::http::Request<_>| {
                let router = router.clone();
                let identity = identity.clone();
                async move {
                    if let Some(id) = identity {
                        req.extensions_mut().insert(id);
                    }
                    tower::ServiceExt::oneshot(router, req).await
                }
            });
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let conn =
                builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "kubelet TLS connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
