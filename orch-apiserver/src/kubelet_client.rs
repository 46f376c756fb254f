//! The API server's connections to kubelets: one place that knows where a node's kubelet
//! listens and how to reach it, for the `pods/log` proxy ([`crate::subresources`]), the
//! `metrics.k8s.io` summaries ([`crate::metrics`]) and the streaming proxies (`pods/exec`,
//! `pods/attach`, `pods/portforward`, `nodes/proxy`).
//!
//! The address is the node's `InternalIP` and `status.daemonEndpoints.kubeletEndpoint.Port`
//! (upstream `pkg/kubelet/client/kubelet_client.go`, `NodeConnectionInfoGetter`).

use crate::server::ApiServer;
use orch_types::{ApiError, DynamicObject};
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a kubelet, ready for an HTTP/1.1 request.
pub trait KubeletIo: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> KubeletIo for T {}

/// A connection to a kubelet (see [`dial`]).
pub type KubeletStream = Box<dyn KubeletIo>;

/// Opens a connection to `node`'s kubelet, ready for an HTTP/1.1 request (the streaming
/// proxies upgrade it). A node without an address answers 400, an unreachable kubelet 502.
pub async fn dial(_api: &ApiServer, node: &DynamicObject) -> Result<KubeletStream, ApiError> {
    let (host, port) = crate::subresources::kubelet_address(node)?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| unreachable(node, &e))?;
    tcp.set_nodelay(true).map_err(|e| unreachable(node, &e))?;
    Ok(Box::new(tcp))
}

/// The HTTP client for requests to kubelets (`pods/log`, `/stats/summary`).
pub fn http(_api: &ApiServer) -> reqwest::Client {
    reqwest::Client::new()
}

/// The 502 answered when `node`'s kubelet cannot be reached.
pub fn unreachable(node: &DynamicObject, e: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(
        502,
        orch_types::status::reason::SERVICE_UNAVAILABLE,
        format!("cannot reach the kubelet of node \"{}\": {e}", node.name()),
    )
}
