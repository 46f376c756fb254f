//! The API server's connections to kubelets: one place that knows where a node's kubelet
//! listens and how to reach it, for the `pods/log` proxy ([`crate::subresources`]), the
//! `metrics.k8s.io` summaries ([`crate::metrics`]) and the streaming proxies (`pods/exec`,
//! `pods/attach`, `pods/portforward`, `nodes/proxy`).
//!
//! The address is the node's `InternalIP` and `status.daemonEndpoints.kubeletEndpoint.Port`
//! (upstream `pkg/kubelet/client/kubelet_client.go`, `NodeConnectionInfoGetter`).

use crate::server::ApiServer;
use orch_types::{ApiError, DynamicObject};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a kubelet, ready for an HTTP/1.1 request.
pub trait KubeletIo: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> KubeletIo for T {}

/// A connection to a kubelet (see [`dial`]).
pub type KubeletStream = Box<dyn KubeletIo>;

/// Opens a connection to `node`'s kubelet, ready for an HTTP/1.1 request (the streaming
/// proxies upgrade it): TLS when [`crate::ApiServerConfig::kubelet_tls`] is set, verifying the
/// kubelet's serving certificate for its address against the cluster CA (upstream does not by
/// default, `pkg/kubelet/client/kubelet_client.go`; orch does) and presenting the API server's
/// kubelet-client certificate. A node without an address answers 400, an unreachable kubelet or
/// a failed handshake 502.
pub async fn dial(api: &ApiServer, node: &DynamicObject) -> Result<KubeletStream, ApiError> {
    let (host, port) = crate::subresources::kubelet_address(node)?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| unreachable(node, &e))?;
    tcp.set_nodelay(true).map_err(|e| unreachable(node, &e))?;
    let Some(tls) = &api.config.kubelet_tls else {
        return Ok(Box::new(tcp));
    };
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| unreachable(node, &format!("invalid address {host:?}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| unreachable(node, &format!("tls: {e}")))?;
    Ok(Box::new(stream))
}

/// The HTTP client for requests to kubelets (`pods/log`, `/stats/summary`), built once with
/// the API server (see [`http_client`]).
pub fn http(api: &ApiServer) -> reqwest::Client {
    api.kubelet_http.clone()
}

/// `url`, a kubelet URL as [`crate::subresources::kubelet_url`] builds it (`http://`), with
/// the scheme this API server speaks to kubelets.
pub fn with_scheme(api: &ApiServer, url: String) -> String {
    if api.config.kubelet_tls.is_some() {
        url.replacen("http://", "https://", 1)
    } else {
        url
    }
}

/// A client speaking TLS with `tls` (see [`dial`]), plain HTTP without.
pub(crate) fn http_client(tls: Option<Arc<rustls::ClientConfig>>) -> reqwest::Client {
    let builder = reqwest::Client::builder();
    crate::tls::reqwest_client(builder, tls.map(|t| t.as_ref().clone())).unwrap_or_default()
}

/// `e` with its sources (`error sending request: … : invalid peer certificate: UnknownIssuer`):
/// reqwest's own message does not say why.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

/// The 502 answered when `node`'s kubelet cannot be reached.
pub fn unreachable(node: &DynamicObject, e: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(
        502,
        orch_types::status::reason::SERVICE_UNAVAILABLE,
        format!("cannot reach the kubelet of node \"{}\": {e}", node.name()),
    )
}
