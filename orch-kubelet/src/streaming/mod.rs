//! The kubelet's streaming endpoints: `/exec/{ns}/{pod}/{container}`,
//! `/attach/{ns}/{pod}/{container}` and `/portForward/{ns}/{pod}` (GET and POST), as upstream
//! `pkg/kubelet/server/server.go` serves them through `k8s.io/kubelet/pkg/cri/streaming`.
//!
//! Layers, so that each transport is written once against one interface:
//! - [`StreamSource`] (the kubelet): finds the pod and container and asks the runtime
//!   ([`crate::runtime::ContainerRuntime::exec`], `attach`, `port_forward`), in blocking calls.
//! - [`remotecommand`]: transport-independent. An exec or attach session is a
//!   [`crate::runtime::ProcessIo`] (the process side) pumped to and from [`ExecStreams`] (the
//!   client side: byte channels for stdin/stdout/stderr, resize events) by
//!   [`remotecommand::run`]; its outcome becomes the `metav1.Status` of the error stream
//!   ([`remotecommand::status_body`]). Port-forward is a TCP stream per port
//!   ([`portforward::connect`]) copied to a byte-channel pair ([`portforward::pump`]).
//! - Transports: [`websocket`] (the channel protocols `v5.channel.k8s.io`,
//!   `v4.channel.k8s.io`, `channel.k8s.io`, their `base64.` forms, and port-forward's
//!   `v4.channel.k8s.io` with `ports=`), [`spdy`] (SPDY/3.1 upgrades, `v4`…`v1` of
//!   `channel.k8s.io` and `portforward.k8s.io`, for kubectl before 1.30/1.31) and [`tunnel`]
//!   (the SPDY port-forward session inside a WebSocket, `SPDY/3.1+portforward.k8s.io`, for
//!   kubectl ≥ 1.31), all against the same interface.
//!
//! Errors found before the upgrade (no such pod or container, a container that is not running,
//! a bad query) are answered as `metav1.Status` bodies with upstream's codes; the client shows
//! them as `unable to upgrade connection: …`. See docs/design/streaming.md.

pub mod portforward;
pub mod remotecommand;
pub mod spdy;
pub mod tunnel;
pub mod websocket;

use crate::runtime::{ProcessIo, StreamError, StreamRequest, TermSize};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The client side of an exec or attach session, whatever the transport: what the client
/// sends arrives on `stdin` (closed: EOF), what the process writes goes to `stdout`/`stderr`,
/// terminal sizes arrive on `resize`. A `None` stream was not asked for.
#[derive(Debug, Default)]
pub struct ExecStreams {
    /// Data from the client for the process's stdin; the channel's end is stdin's EOF.
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    /// The process's stdout, to the client.
    pub stdout: Option<mpsc::Sender<Bytes>>,
    /// The process's stderr, to the client.
    pub stderr: Option<mpsc::Sender<Bytes>>,
    /// Terminal sizes from the client.
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

/// A failure answered before upgrading: an HTTP status with a `metav1.Status` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.Status` reason (`NotFound`, `BadRequest`, `InternalError`).
    pub reason: &'static str,
    /// The message shown to the user.
    pub message: String,
}

impl Failure {
    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
        }
    }

    /// 404 `NotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: message.into(),
        }
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: 500,
            reason: "InternalError",
            message: message.into(),
        }
    }
}

impl From<StreamError> for Failure {
    fn from(e: StreamError) -> Self {
        match e {
            // upstream: the container is not among the running ones (`findContainer`)
            StreamError::NotRunning(_) => Self::not_found(e.to_string()),
            StreamError::BadRequest(_) => Self::bad_request(e.to_string()),
            StreamError::Unsupported(_) | StreamError::Failed(_) => Self::internal(e.to_string()),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        (
            StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// What the streaming endpoints need from the kubelet. Every call blocks (the endpoints run
/// them on blocking threads).
pub trait StreamSource: Send + Sync + 'static {
    /// Starts an exec in `container` of pod `namespace/pod`.
    fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        req: &StreamRequest,
    ) -> Result<ProcessIo, Failure>;
    /// Attaches to `container` of pod `namespace/pod`.
    fn attach(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        req: &StreamRequest,
    ) -> Result<ProcessIo, Failure>;
    /// The UID of pod `namespace/pod`, if the kubelet runs it (port-forward checks it before
    /// upgrading).
    fn pod_uid(&self, namespace: &str, pod: &str) -> Option<String>;
    /// Whether the ports of the pod with UID `pod_uid` can be forwarded at all, asked before
    /// upgrading (the sim runtime's pods have no network). Default: yes.
    fn port_forward_available(&self, pod_uid: &str) -> Result<(), Failure> {
        let _ = pod_uid;
        Ok(())
    }
    /// Connects to `port` in the network namespace of the pod with UID `pod_uid`.
    fn port_forward(&self, pod_uid: &str, port: u16) -> Result<std::net::TcpStream, Failure>;
}

/// The routes of the streaming endpoints.
pub fn router(source: Arc<dyn StreamSource>) -> Router {
    Router::new()
        .route("/exec/{ns}/{pod}/{container}", get(exec).post(exec))
        .route("/attach/{ns}/{pod}/{container}", get(attach).post(attach))
        .route(
            "/portForward/{ns}/{pod}",
            get(port_forward).post(port_forward),
        )
        .with_state(source)
}

/// The query parameters in order, repeated ones included (`command=sh&command=-c&…`).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let dec = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

/// The exec/attach options of a query, as upstream `remotecommand.NewOptions`: `stderr` is
/// dropped with `tty` (the terminal merges it), and at least one stream must be asked for.
pub fn stream_request(query: &[(String, String)]) -> Result<StreamRequest, Failure> {
    let flag = |k: &str| {
        query
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .is_some_and(|(_, v)| matches!(v.as_str(), "1" | "true" | "True"))
    };
    let mut req = StreamRequest {
        command: query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect(),
        stdin: flag("stdin") || flag("input"),
        stdout: flag("stdout") || flag("output"),
        stderr: flag("stderr") || flag("error"),
        tty: flag("tty"),
    };
    if req.tty && req.stderr {
        req.stderr = false;
    }
    if !req.stdin && !req.stdout && !req.stderr {
        return Err(Failure::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    Ok(req)
}

/// True for a WebSocket upgrade (upstream `wsstream.IsWebSocketRequest`).
pub fn is_websocket(req: &Request) -> bool {
    let h = |n: header::HeaderName| {
        req.headers()
            .get_all(n)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
            .to_ascii_lowercase()
    };
    h(header::UPGRADE).trim() == "websocket"
        && h(header::CONNECTION)
            .split(',')
            .any(|t| t.trim() == "upgrade")
}

/// The answer to a request that is not an upgrade a transport here speaks.
fn upgrade_required(req: &Request) -> Response {
    let asked = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if asked.is_empty() {
        Failure::bad_request("Upgrade request required").into_response()
    } else {
        Failure::bad_request(format!(
            "unsupported upgrade {asked:?}: this kubelet streams over WebSocket and SPDY/3.1"
        ))
        .into_response()
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Exec,
    Attach,
}

async fn exec(
    State(src): State<Arc<dyn StreamSource>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    session(src, Kind::Exec, ns, pod, container, req).await
}

async fn attach(
    State(src): State<Arc<dyn StreamSource>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    session(src, Kind::Attach, ns, pod, container, req).await
}

async fn session(
    src: Arc<dyn StreamSource>,
    kind: Kind,
    ns: String,
    pod: String,
    container: String,
    req: Request,
) -> Response {
    let query = query_pairs(req.uri().query());
    let opts = match stream_request(&query) {
        Ok(o) => o,
        Err(f) => return f.into_response(),
    };
    if matches!(kind, Kind::Exec) && opts.command.is_empty() {
        return Failure::bad_request("you must specify at least 1 command").into_response();
    }
    let spdy = spdy::is_upgrade(&req);
    if !spdy && !is_websocket(&req) {
        return upgrade_required(&req);
    }
    let negotiated = if spdy {
        spdy::negotiate(&req, spdy::EXEC_PROTOCOLS)
    } else {
        websocket::negotiate(&req, websocket::EXEC_PROTOCOLS)
    };
    let protocol = match negotiated {
        Ok(p) => p,
        Err(f) => return f.into_response(),
    };
    let o = opts.clone();
    let started = tokio::task::spawn_blocking(move || match kind {
        Kind::Exec => src.exec(&ns, &pod, &container, &o),
        Kind::Attach => src.attach(&ns, &pod, &container, &o),
    })
    .await
    .unwrap_or_else(|e| Err(Failure::internal(e.to_string())));
    // A command that cannot start is reported on the error channel, as upstream (the
    // runtime starts it after the upgrade); a missing pod or container is not.
    let io = match started {
        Ok(io) => Ok(io),
        Err(f) if f.code == 500 => Err(f.message),
        Err(f) => return f.into_response(),
    };
    if spdy {
        return spdy::serve_exec(req, protocol, opts, io);
    }
    websocket::serve_exec(req, protocol, opts, io)
}

async fn port_forward(
    State(src): State<Arc<dyn StreamSource>>,
    Path((ns, pod)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (s2, n2, p2) = (src.clone(), ns.clone(), pod.clone());
    let uid = tokio::task::spawn_blocking(move || s2.pod_uid(&n2, &p2))
        .await
        .ok()
        .flatten();
    let Some(uid) = uid else {
        return Failure::not_found("pod does not exist").into_response();
    };
    let (s2, u2) = (src.clone(), uid.clone());
    let available = tokio::task::spawn_blocking(move || s2.port_forward_available(&u2))
        .await
        .unwrap_or_else(|e| Err(Failure::internal(e.to_string())));
    if let Err(f) = available {
        return f.into_response();
    }
    // SPDY clients name each port on its streams, not in the query; kubectl ≥ 1.31 tunnels
    // SPDY through a WebSocket first.
    if tunnel::is_request(&req) {
        return tunnel::serve_port_forward(req, src, uid);
    }
    if spdy::is_upgrade(&req) {
        return match spdy::negotiate(&req, spdy::PORT_FORWARD_PROTOCOLS) {
            Ok(protocol) => spdy::serve_port_forward(req, protocol, src, uid),
            Err(f) => f.into_response(),
        };
    }
    if !is_websocket(&req) {
        return upgrade_required(&req);
    }
    let ports = match portforward::ports(&query_pairs(req.uri().query())) {
        Ok(p) => p,
        Err(f) => return f.into_response(),
    };
    let protocol = match websocket::negotiate(&req, websocket::PORT_FORWARD_PROTOCOLS) {
        Ok(p) => p,
        Err(f) => return f.into_response(),
    };
    websocket::serve_port_forward(req, protocol, src, uid, ports)
}
