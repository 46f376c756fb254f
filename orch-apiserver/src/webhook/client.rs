//! The one HTTPS client of admission and conversion webhooks: a JSON `POST` over rustls,
//! verifying the server against the configuration's `caBundle` (the system roots in
//! `/etc/ssl/certs` when it has none), under the webhook's timeout.
//!
//! Each call opens its own connection (HTTP/1.1, `Connection: close`): webhook calls are
//! rare next to the writes they guard, and nothing is shared between configurations.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

/// Largest response body read from a webhook (upstream limits a webhook response to 3 MiB
/// too).
const MAX_RESPONSE: usize = 3 << 20;

/// Where a webhook is and how to trust it: the fields shared by admissionregistration's and
/// apiextensions' `WebhookClientConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    /// `https://host[:port][/path]`.
    pub url: Option<String>,
    /// A Service reference: `(namespace, name, path, port)`.
    pub service: Option<(String, String, Option<String>, u16)>,
    /// PEM certificates that sign the webhook's serving certificate.
    pub ca_bundle: Option<Vec<u8>>,
}

impl From<&k8s_openapi::api::admissionregistration::v1::WebhookClientConfig> for ClientConfig {
    fn from(c: &k8s_openapi::api::admissionregistration::v1::WebhookClientConfig) -> Self {
        Self {
            url: c.url.clone(),
            service: c.service.as_ref().map(|s| {
                let port = u16::try_from(s.port.unwrap_or(443)).unwrap_or(443);
                (s.namespace.clone(), s.name.clone(), s.path.clone(), port)
            }),
            ca_bundle: c.ca_bundle.as_ref().map(|b| b.0.clone()),
        }
    }
}

impl From<&k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::WebhookClientConfig>
    for ClientConfig
{
    fn from(
        c: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::WebhookClientConfig,
    ) -> Self {
        Self {
            url: c.url.clone(),
            service: c.service.as_ref().map(|s| {
                let port = u16::try_from(s.port.unwrap_or(443)).unwrap_or(443);
                (s.namespace.clone(), s.name.clone(), s.path.clone(), port)
            }),
            ca_bundle: c.ca_bundle.as_ref().map(|b| b.0.clone()),
        }
    }
}

/// Why a webhook could not be called; the text is the reason after
/// `failed calling webhook "X": `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The configuration names no reachable URL.
    #[error("failed to call webhook: {0}")]
    Config(String),
    /// Connecting, the TLS handshake or the HTTP exchange failed, or the timeout ran out.
    #[error("failed to call webhook: Post \"{url}\": {reason}")]
    Transport {
        /// The URL posted to (with `?timeout=`).
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The webhook answered with a status outside 2xx.
    #[error("failed to call webhook: an error on the server ({body:?}) has prevented the request from succeeding (post {url}: {status})")]
    Status {
        /// The URL posted to.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The body is not the JSON expected.
    #[error("received invalid webhook response: {0}")]
    InvalidResponse(String),
}

/// The URL a configuration posts to, with upstream's `?timeout=` query: `url` as given, a
/// `service` as `https://<name>.<namespace>.svc:<port><path>` (resolved through the system
/// resolver only: orch does not route to Service ClusterIPs).
pub fn target_url(cfg: &ClientConfig, timeout: Duration) -> Result<String, CallError> {
    let base = match (&cfg.url, &cfg.service) {
        (Some(u), _) => u.clone(),
        (None, Some((ns, name, path, port))) => {
            let path = path.as_deref().unwrap_or("");
            format!("https://{name}.{ns}.svc:{port}{path}")
        }
        (None, None) => {
            return Err(CallError::Config(
                "the client configuration has neither url nor service".into(),
            ))
        }
    };
    Ok(format!("{base}?timeout={}s", timeout.as_secs().max(1)))
}

/// The host, port and path-and-query of an `https://` URL.
pub(crate) fn split_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| "unsupported protocol scheme (only https)".to_string())?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, rest) = v6.split_once(']').ok_or("invalid IPv6 host")?;
        let port = rest.strip_prefix(':').unwrap_or("443");
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (authority.to_string(), "443"),
        }
    };
    let port = port
        .parse()
        .map_err(|_| format!("invalid port {port:?} in URL"))?;
    if host.is_empty() {
        return Err("no host in URL".into());
    }
    Ok((host, port, path))
}

/// The roots a webhook's certificate must chain to.
fn roots(ca_bundle: Option<&[u8]>) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    let pem = match ca_bundle.filter(|b| !b.is_empty()) {
        Some(b) => b.to_vec(),
        None => std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default(),
    };
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("invalid caBundle: {e}"))?;
        store
            .add(cert)
            .map_err(|e| format!("invalid caBundle certificate: {e}"))?;
    }
    if store.is_empty() {
        return Err("no CA certificate to verify the webhook with (caBundle is empty)".into());
    }
    Ok(store)
}

/// An HTTP/1.1 connection over TLS to `host:port`, its certificate verified against
/// `ca_bundle` (PEM; the system roots when empty). The connection is driven by a task of its
/// own until the sender is dropped. Used by webhooks and by the aggregator's proxy.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    ca_bundle: Option<&[u8]>,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
    let store = roots(ca_bundle)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|e| format!("invalid host {host:?}: {e}"))?;
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// POSTs `body` as JSON to the webhook of `cfg` and returns the JSON it answers, all within
/// `timeout`.
pub async fn post_json(
    cfg: &ClientConfig,
    body: &Value,
    timeout: Duration,
) -> Result<Value, CallError> {
    let url = target_url(cfg, timeout)?;
    let transport = |reason: String| CallError::Transport {
        url: url.clone(),
        reason,
    };
    let (host, port, path) = split_url(&url).map_err(transport)?;
    let payload = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let exchange = async {
        let mut sender = connect(&host, port, cfg.ca_bundle.as_deref()).await?;
        let authority = if port == 443 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        let req = http::Request::post(path.as_str())
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, */*")
            .header(http::header::CONNECTION, "close")
            .body(Full::new(payload))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| format!("reading the response: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    };
    let (status, bytes) = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => return Err(transport("context deadline exceeded".into())),
        Ok(Err(e)) => return Err(transport(e)),
        Ok(Ok(r)) => r,
    };
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(&bytes);
        return Err(CallError::Status {
            url,
            status,
            body: text.chars().take(200).collect(),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| CallError::InvalidResponse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        assert_eq!(
            split_url("https://127.0.0.1:8443/mutate?timeout=10s").unwrap(),
            ("127.0.0.1".into(), 8443, "/mutate?timeout=10s".into())
        );
        assert_eq!(
            split_url("https://hooks.example.com?timeout=5s").unwrap(),
            ("hooks.example.com".into(), 443, "/?timeout=5s".into())
        );
        assert_eq!(
            split_url("https://[::1]:9443/x").unwrap(),
            ("::1".into(), 9443, "/x".into())
        );
        assert!(split_url("http://x/").is_err());
    }

    #[test]
    fn services_become_cluster_dns_names() {
        let cfg = ClientConfig {
            service: Some(("ns".into(), "hook".into(), Some("/v".into()), 8443)),
            ..Default::default()
        };
        assert_eq!(
            target_url(&cfg, Duration::from_secs(10)).unwrap(),
            "https://hook.ns.svc:8443/v?timeout=10s"
        );
    }
}
