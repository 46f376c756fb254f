//! The streaming subresources, proxied to the kubelet: `pods/exec`, `pods/attach`,
//! `pods/portforward` (GET and POST) and `nodes/{name}/proxy/{path}` (any method).
//!
//! The API server checks the request as upstream `pkg/registry/core/pod/strategy.go`
//! (`ExecLocation`, `AttachLocation`, `PortForwardLocation`, `streamLocation`): the pod exists
//! (404), the container is one of the pod's (400 `container X is not valid for pod Y`; none
//! named in a pod of several: 400 `a container name must be specified …`), the pod has a node
//! (400 `pod X does not have a host assigned`). Then it dials the node's kubelet
//! ([`crate::kubelet_client::dial`]), sends it the request (kubelet path, the client's query,
//! its `Connection`/`Upgrade`/`Sec-WebSocket-*`/`X-Stream-Protocol-Version` headers), and when
//! the kubelet switches protocols relays the 101 and copies bytes both ways between the two
//! upgraded connections. The kubelet speaks every protocol itself (WebSocket and SPDY), so no
//! translation happens here (upstream translates WebSocket to SPDY in the API server:
//! docs/design/streaming.md). A kubelet's non-101 answer (its Status) is passed through.

use super::enc;
use crate::rest::RestResult;
use crate::server::ApiServer;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Request as HttpRequest, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use orch_types::status::reason;
use orch_types::{ApiError, DynamicObject};
use serde_json::Value;
use std::sync::Arc;

/// What a streaming path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `pods/{exec,attach,portforward}` of `namespace/name`.
    Pod {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
        /// `exec`, `attach` or `portforward`.
        sub: &'static str,
    },
    /// `nodes/{name}/proxy/{path}`.
    NodeProxy {
        /// Node name.
        node: String,
        /// The path on the kubelet (starting with `/`).
        path: String,
    },
}

/// The streaming target of a request path, if it is one.
pub fn target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, sub] => {
            let sub = ["exec", "attach", "portforward"]
                .into_iter()
                .find(|s| s == sub)?;
            Some(Target::Pod {
                namespace: ns.to_string(),
                name: name.to_string(),
                sub,
            })
        }
        ["api", "v1", "nodes", node, "proxy", rest @ ..] => Some(Target::NodeProxy {
            node: node.to_string(),
            path: format!("/{}", rest.join("/")),
        }),
        _ => None,
    }
}

fn resource(plural: &str) -> RestResult<crate::rest::Resource> {
    orch_types::registry::by_plural("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} not served")))
}

/// The names of a pod's containers (app, init and ephemeral).
fn container_names(pod: &DynamicObject) -> Vec<String> {
    let spec = pod.data.get("spec");
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec.and_then(|s| s.get(*k)).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The container of an exec or attach, as upstream `streamLocation` picks and checks it.
fn container(pod: &DynamicObject, asked: Option<&str>) -> RestResult<String> {
    let name = pod.name();
    let app: Vec<String> = pod
        .data
        .get("spec")
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let c = match asked.filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None if app.len() == 1 => app[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                container_names(pod).join(" ")
            )))
        }
    };
    if !container_names(pod).contains(&c) {
        return Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        )));
    }
    Ok(c)
}

/// Proxies a streaming request to the kubelet of the pod's (or the named) node.
pub async fn proxy(api: &Arc<ApiServer>, req: Request, t: Target) -> RestResult<Response> {
    let query = req.uri().query().map(str::to_string);
    let (node_name, path) = match &t {
        Target::Pod {
            namespace,
            name,
            sub,
        } => {
            let pod = api
                .get_object(resource("pods")?, Some(namespace), name)
                .await?;
            let asked = container_param(query.as_deref());
            let asked = asked.as_deref();
            let path = match *sub {
                "portforward" => format!("/portForward/{}/{}", enc(namespace), enc(name)),
                _ => {
                    let c = container(&pod, asked)?;
                    format!("/{sub}/{}/{}/{}", enc(namespace), enc(name), enc(&c))
                }
            };
            let node = pod
                .data
                .get("spec")
                .and_then(|s| s.get("nodeName"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("pod {name} does not have a host assigned"))
                })?
                .to_string();
            (node, path)
        }
        Target::NodeProxy { node, path } => (node.clone(), path.clone()),
    };
    let node = api.get_object(resource("nodes")?, None, &node_name).await?;
    let stream = crate::kubelet_client::dial(api, &node).await?;
    let pq = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    forward(&node, stream, req, &pq).await
}

/// The last `container` query parameter, percent-decoded.
fn container_param(query: Option<&str>) -> Option<String> {
    let raw = query?
        .split('&')
        .filter_map(|p| p.strip_prefix("container="))
        .next_back()?;
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(if b[i] == b'+' { b' ' } else { b[i] });
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The client headers the kubelet gets: everything but the hop-by-hop ones (upgrade headers
/// included again explicitly) and the client's credentials for the API server.
fn forwarded(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host"
            | "authorization"
            | "proxy-authorization"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "impersonate-user"
            | "impersonate-group"
    ) && !name.as_str().starts_with("impersonate-")
}

async fn forward(
    node: &DynamicObject,
    stream: crate::kubelet_client::KubeletStream,
    mut req: Request,
    path_and_query: &str,
) -> RestResult<Response> {
    let unreachable = |e: &dyn std::fmt::Display| crate::kubelet_client::unreachable(node, e);
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    let mut out = HttpRequest::builder()
        .method(parts.method.clone())
        .uri(path_and_query);
    for (k, v) in parts.headers.iter().filter(|(k, _)| forwarded(k)) {
        out = out.header(k, v);
    }
    let host = crate::subresources::kubelet_address(node)
        .map(|(h, p)| format!("{h}:{p}"))
        .unwrap_or_default();
    let out = out
        .header(header::HOST, host)
        .body(body)
        .map_err(|e| ApiError::bad_request(format!("cannot proxy the request: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet connection ended");
        }
    });
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| unreachable(&e))?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let kubelet_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(kubelet), Ok(client)) = (kubelet_upgrade.await, client_upgrade.await) else {
                tracing::debug!("streaming upgrade failed");
                return;
            };
            let (mut k, mut c) = (TokioIo::new(kubelet), TokioIo::new(client));
            let _ = tokio::io::copy_bidirectional(&mut c, &mut k).await;
        });
    }
    let (rparts, rbody) = resp.into_parts();
    let mut r = Response::builder().status(rparts.status);
    for (k, v) in rparts.headers.iter() {
        r = r.header(k, v);
    }
    if rparts.status == StatusCode::SWITCHING_PROTOCOLS {
        return r
            .body(Body::empty())
            .map_err(|_| ApiError::internal("cannot relay the upgrade"));
    }
    let failed = rparts.status.is_client_error() || rparts.status.is_server_error();
    if failed
        && rparts.headers.get(header::CONTENT_TYPE)
            != Some(&HeaderValue::from_static("application/json"))
    {
        use http_body_util::BodyExt;
        let text = rbody
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(ApiError::new(
            rparts.status.as_u16(),
            reason::BAD_REQUEST,
            String::from_utf8_lossy(&text).trim().to_string(),
        ));
    }
    r.body(Body::new(rbody))
        .map_err(|_| ApiError::internal("cannot relay the kubelet's answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_paths() {
        assert_eq!(
            target("/api/v1/namespaces/default/pods/web/exec"),
            Some(Target::Pod {
                namespace: "default".into(),
                name: "web".into(),
                sub: "exec"
            })
        );
        assert_eq!(target("/api/v1/namespaces/default/pods/web/log"), None);
        assert_eq!(
            target("/api/v1/nodes/n1/proxy/stats/summary"),
            Some(Target::NodeProxy {
                node: "n1".into(),
                path: "/stats/summary".into()
            })
        );
        assert_eq!(
            target("/api/v1/nodes/n1/proxy"),
            Some(Target::NodeProxy {
                node: "n1".into(),
                path: "/".into()
            })
        );
    }
}
