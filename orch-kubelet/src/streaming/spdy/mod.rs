//! The SPDY/3.1 transport of exec, attach and port-forward, for the clients that still speak it
//! (kubectl before 1.30 for exec/attach/cp, before 1.31 for port-forward, and client-go
//! programs of that age).
//!
//! The HTTP upgrade is upstream's (`k8s.io/apimachinery/pkg/util/httpstream`: `Handshake`
//! negotiates `X-Stream-Protocol-Version`; `spdy/upgrade.go` answers `101` with
//! `Connection: Upgrade` and `Upgrade: SPDY/3.1`). Then the client opens one SPDY stream per
//! channel, each named by its `streamType` header:
//! - exec and attach (`pkg/kubelet/cri/streaming/remotecommand/httpstream.go`): `error`,
//!   `stdin`, `stdout`, `stderr` and, with a tty from protocol v3 on, `resize` (JSON
//!   `{"Width":…,"Height":…}` objects); the session starts once every stream asked for has
//!   arrived, or is dropped after [`STREAM_CREATION_TIMEOUT`]. The process's outcome is written
//!   on `error`: a `metav1.Status` from v4 on ([`super::remotecommand::status_body`]), the bare
//!   message before. The client's FIN on `stdin` is the process's EOF.
//! - port-forward (`pkg/kubelet/cri/streaming/portforward/httpstream.go`): per forwarded
//!   connection a `data` and an `error` stream with the same `port` and `requestID` headers
//!   (without `requestID`, old clients: the error stream's id, and the data stream's id minus
//!   2); a pair completes or gets "timed out waiting for streams" on its error stream.
//!
//! No maintained Rust crate implements SPDY (it was superseded by HTTP/2 in 2015), so the
//! framing ([`frame`]) and the session ([`session`]) are written here, from the draft 3.1
//! specification; docs/design/dependencies.md records the choice.

pub mod frame;
pub mod session;

use super::remotecommand::{self, Outcome};
use super::{portforward, ExecStreams, Failure, StreamSource};
use crate::runtime::{ProcessIo, StreamRequest, TermSize};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use session::{IncomingStream, Session, Stream};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The `Upgrade` token of SPDY/3.1.
pub const UPGRADE: &str = "SPDY/3.1";
/// The header carrying the sub-protocols the client offers and the one chosen.
pub const PROTOCOL_HEADER: &str = "x-stream-protocol-version";
/// The header listing what the server accepts when nothing the client offers matches.
pub const ACCEPTED_HEADER: &str = "x-accepted-stream-protocol-versions";
/// `v4.channel.k8s.io`: the error stream carries a JSON `metav1.Status` with the exit code.
pub const V4: &str = "v4.channel.k8s.io";
/// `v3.channel.k8s.io`: adds the resize stream.
pub const V3: &str = "v3.channel.k8s.io";
/// `v2.channel.k8s.io`.
pub const V2: &str = "v2.channel.k8s.io";
/// `channel.k8s.io` (v1).
pub const V1: &str = "channel.k8s.io";
/// The exec/attach protocols over SPDY, in upstream's order (`SupportedStreamingProtocols`; v5
/// exists only over WebSocket).
pub const EXEC_PROTOCOLS: &[&str] = &[V4, V3, V2, V1];
/// The port-forward protocol over SPDY.
pub const PORT_FORWARD_PROTOCOLS: &[&str] = &["portforward.k8s.io"];
/// How long the client has to open the streams of a session (upstream
/// `DefaultStreamCreationTimeout`).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// True for a SPDY/3.1 upgrade (upstream `IsUpgradeRequest` plus the upgrader's check of
/// `Upgrade`).
pub fn is_upgrade(req: &Request) -> bool {
    let joined = |n: header::HeaderName| {
        req.headers()
            .get_all(n)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
            .to_ascii_lowercase()
    };
    joined(header::CONNECTION).contains("upgrade") && joined(header::UPGRADE).contains("spdy/3.1")
}

/// Upstream `httpstream.Handshake`: the first protocol of the client's comma-separated
/// `X-Stream-Protocol-Version` values that the server supports. None offered is a 400; none in
/// common a 403 naming both lists.
pub fn negotiate(req: &Request, supported: &[&str]) -> Result<String, Failure> {
    let offered: Vec<&str> = req
        .headers()
        .get_all(PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    negotiate_offered(&offered, supported)
}

/// [`negotiate`] on a list of offered protocols (the SPDY protocols of a WebSocket tunnel
/// request, [`super::tunnel`]).
pub fn negotiate_offered(offered: &[&str], supported: &[&str]) -> Result<String, Failure> {
    if offered.is_empty() {
        return Err(Failure::bad_request(
            "unable to upgrade: X-Stream-Protocol-Version is required",
        ));
    }
    offered.iter().find(|p| supported.contains(p)).map(|p| p.to_string()).ok_or_else(|| Failure {
        code: 403,
        reason: "Forbidden",
        message: format!(
            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {supported:?}"
        ),
    })
}

/// Answers `101 Switching Protocols` for SPDY/3.1 with the negotiated protocol and runs
/// `run` on the session once hyper hands over the connection.
fn upgrade<F, Fut>(mut req: Request, protocol: String, run: F) -> Response
where
    F: FnOnce(Session) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => run(Session::new(TokioIo::new(up))).await,
            Err(e) => tracing::debug!(error = %e, "spdy upgrade failed"),
        }
    });
    let mut resp = (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, HeaderValue::from_static("Upgrade")),
            (header::UPGRADE, HeaderValue::from_static(UPGRADE)),
        ],
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&protocol) {
        resp.headers_mut().insert(PROTOCOL_HEADER, v);
    }
    resp
}

/// Upgrades an exec or attach request and runs the session (`io` is the started process, or
/// why it could not start: then only the error status is sent).
pub fn serve_exec(
    req: Request,
    protocol: String,
    opts: StreamRequest,
    io: Result<ProcessIo, String>,
) -> Response {
    let version = protocol_version(&protocol);
    upgrade(req, protocol, move |session| {
        exec_session(session, version, opts, io)
    })
}

/// The protocol number (1–4) of a negotiated exec protocol.
fn protocol_version(p: &str) -> u8 {
    match p {
        V4 => 4,
        V3 => 3,
        V2 => 2,
        _ => 1,
    }
}

/// The streams of an exec session, by `streamType`.
#[derive(Default)]
struct ExecChannels {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

/// Accepts streams until the `expected` ones have arrived (upstream `waitForStreams`); streams
/// of another type are answered and ignored.
async fn wait_for_streams(session: &mut Session, expected: usize) -> Option<ExecChannels> {
    let mut ch = ExecChannels::default();
    let mut received = 0;
    let wait = async {
        while received < expected {
            let incoming = session.accept().await?;
            let kind = incoming
                .headers()
                .get("streamtype")
                .unwrap_or_default()
                .to_string();
            let stream = incoming.accept();
            let slot = match kind.as_str() {
                "error" => &mut ch.error,
                "stdin" => &mut ch.stdin,
                "stdout" => &mut ch.stdout,
                "stderr" => &mut ch.stderr,
                "resize" => &mut ch.resize,
                other => {
                    tracing::debug!(stream_type = other, "spdy exec: unexpected stream type");
                    continue;
                }
            };
            *slot = Some(stream);
            received += 1;
        }
        Some(())
    };
    tokio::time::timeout(STREAM_CREATION_TIMEOUT, wait)
        .await
        .ok()
        .flatten()?;
    Some(ch)
}

async fn exec_session(
    mut session: Session,
    version: u8,
    opts: StreamRequest,
    io: Result<ProcessIo, String>,
) {
    let expected = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr)
        + usize::from(opts.tty && version >= 3);
    let Some(ch) = wait_for_streams(&mut session, expected).await else {
        tracing::debug!("spdy exec: timed out waiting for client to create streams");
        if let Ok(ProcessIo {
            cancel: Some(cancel),
            ..
        }) = io
        {
            cancel();
        }
        return;
    };
    let gone = session.gone();
    // This side never writes on stdin and resize, but keeps them open until the end: client-go
    // takes the server's FIN on stdin as the end of the session and stops sending stdin.
    let mut keep_open = vec![];
    let outcome: Outcome = match io {
        Ok(io) => {
            let streams = ExecStreams {
                stdin: ch.stdin.map(|s| {
                    keep_open.push(s.tx);
                    s.rx
                }),
                stdout: ch.stdout.map(|s| s.tx),
                stderr: ch.stderr.map(|s| s.tx),
                resize: ch.resize.map(|s| {
                    keep_open.push(s.tx);
                    resize_events(s.rx)
                }),
            };
            remotecommand::run(io, streams, gone.cancelled_owned()).await
        }
        Err(e) => Err(e),
    };
    if let Some(error) = ch.error {
        let status = if version >= 4 {
            remotecommand::status_body(&opts.command, &outcome)
        } else {
            remotecommand::v1_status_body(&opts.command, &outcome)
        };
        if !status.is_empty() {
            let _ = error.tx.send(Bytes::from(status)).await;
        }
    }
    drop(keep_open);
    session.close().await;
}

/// Decodes the resize stream's concatenated JSON objects into terminal sizes.
fn resize_events(mut rx: mpsc::Receiver<Bytes>) -> mpsc::Receiver<TermSize> {
    let (tx, out) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut pending = Vec::new();
        while let Some(b) = rx.recv().await {
            pending.extend_from_slice(&b);
            let mut it = serde_json::Deserializer::from_slice(&pending).into_iter::<TermSize>();
            let mut used = 0;
            loop {
                match it.next() {
                    Some(Ok(size)) => {
                        used = it.byte_offset();
                        if tx.send(size).await.is_err() {
                            return;
                        }
                    }
                    // An object cut off at the end of the chunk: wait for the rest.
                    Some(Err(e)) if e.is_eof() => break,
                    // Upstream stops reading resizes at the first bad message.
                    Some(Err(_)) => return,
                    None => break,
                }
            }
            pending.drain(..used);
        }
    });
    out
}

/// Upgrades a port-forward request for the pod with UID `pod_uid`.
pub fn serve_port_forward(
    req: Request,
    protocol: String,
    src: Arc<dyn StreamSource>,
    pod_uid: String,
) -> Response {
    upgrade(req, protocol, move |session| {
        port_forward_session(session, src, pod_uid)
    })
}

/// The data and error streams of one forwarded connection.
#[derive(Default)]
struct Pair {
    data: Option<Stream>,
    error: Option<Stream>,
}

/// The port of a port-forward stream, checked as upstream `httpStreamReceived` does.
fn stream_port(s: &IncomingStream) -> Result<u16, String> {
    let p = s.headers().get("port").unwrap_or_default();
    if p.is_empty() {
        return Err("\"port\" header is required".into());
    }
    let port: u16 = p
        .parse()
        .map_err(|e| format!("unable to parse {p:?} as a port: {e}"))?;
    if port == 0 {
        return Err(format!("port {p:?} must be > 0"));
    }
    match s.headers().get("streamtype").unwrap_or_default() {
        "data" | "error" => Ok(port),
        "" => Err("\"streamType\" header is required".into()),
        other => Err(format!("invalid stream type {other:?}")),
    }
}

/// Serves port-forward on `session` until the client is done: each data/error stream pair
/// is one forwarded connection to a port of the pod with UID `pod_uid`. Shared by the SPDY
/// upgrade and the WebSocket tunnel ([`super::tunnel`]).
pub(super) async fn port_forward_session(
    mut session: Session,
    src: Arc<dyn StreamSource>,
    pod_uid: String,
) {
    let pairs: Arc<parking_lot::Mutex<HashMap<String, Pair>>> = Arc::default();
    let (mut forwards, mut monitors) = (vec![], vec![]);
    while let Some(incoming) = session.accept().await {
        let port = match stream_port(&incoming) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "spdy port-forward: stream refused");
                incoming.refuse();
                continue;
            }
        };
        let is_error = incoming.headers().get("streamtype") == Some("error");
        let request_id = match incoming
            .headers()
            .get("requestid")
            .filter(|r| !r.is_empty())
        {
            Some(r) => r.to_string(),
            None if is_error => incoming.id().to_string(),
            None => incoming.id().saturating_sub(2).to_string(),
        };
        let stream = incoming.accept();
        let complete = {
            let mut map = pairs.lock();
            let created = !map.contains_key(&request_id);
            let pair = map.entry(request_id.clone()).or_default();
            let slot = if is_error {
                &mut pair.error
            } else {
                &mut pair.data
            };
            if slot.is_some() {
                let kind = if is_error { "error" } else { "data" };
                let msg = format!("error processing stream for request {request_id}: {kind} stream already assigned");
                if let Some(e) = &pair.error {
                    let _ = e.tx.try_send(Bytes::from(msg));
                }
                continue;
            }
            *slot = Some(stream);
            if created {
                monitors.push(tokio::spawn(monitor(pairs.clone(), request_id.clone())));
            }
            if pair.data.is_some() && pair.error.is_some() {
                map.remove(&request_id)
            } else {
                None
            }
        };
        if let Some(Pair {
            data: Some(data),
            error: Some(error),
        }) = complete
        {
            let (src, uid, gone) = (src.clone(), pod_uid.clone(), session.gone());
            forwards.push(tokio::spawn(async move {
                match portforward::connect(src, uid.clone(), port).await {
                    // An idle port never ends the pump by itself once the client is gone.
                    Ok(tcp) => {
                        tokio::select! {
                            () = portforward::pump(tcp, data.rx, data.tx) => {}
                            () = gone.cancelled() => {}
                        }
                    }
                    Err(e) => {
                        let msg = format!("error forwarding port {port} to pod {uid}: {e}");
                        let _ = error.tx.send(Bytes::from(msg)).await;
                    }
                }
            }));
        }
    }
    for t in forwards {
        let _ = t.await;
    }
    for t in monitors {
        t.abort();
    }
    // Incomplete pairs end with the session.
    pairs.lock().clear();
    session.close().await;
}

/// Ends a pair that is still incomplete after [`STREAM_CREATION_TIMEOUT`] (upstream
/// `monitorStreamPair`).
async fn monitor(pairs: Arc<parking_lot::Mutex<HashMap<String, Pair>>>, request_id: String) {
    tokio::time::sleep(STREAM_CREATION_TIMEOUT).await;
    let Some(pair) = pairs.lock().remove(&request_id) else {
        return;
    };
    if let Some(error) = pair.error {
        let msg = format!("(request={request_id}) timed out waiting for streams");
        let _ = error.tx.send(Bytes::from(msg)).await;
    }
}
