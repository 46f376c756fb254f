//! The WebSocket transport: the channel protocols of upstream
//! `k8s.io/apimachinery/pkg/util/httpstream/wsstream/conn.go`. Every binary message starts with
//! its channel number (the `base64.` protocols: an ASCII digit, then the data in base64, as text
//! messages). Exec and attach (`k8s.io/kubelet/pkg/cri/streaming/remotecommand/websocket.go`):
//! 0 stdin, 1 stdout, 2 stderr, 3 error (the final `metav1.Status`), 4 resize (JSON
//! `{"Width":…,"Height":…}`); `v5.channel.k8s.io` adds the CLOSE signal, a message `[255, n]`
//! half-closing channel `n` (stdin's EOF). Port-forward (`…/portforward/websocket.go`): per
//! requested port a data channel `2i` and an error channel `2i+1`, each opened with the port as
//! two little-endian bytes.

use super::portforward;
use super::remotecommand::{self, Outcome};
use super::{ExecStreams, Failure, StreamSource};
use crate::runtime::{ProcessIo, StreamRequest, TermSize};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// `v5.channel.k8s.io`: v4 plus the CLOSE signal.
pub const V5: &str = "v5.channel.k8s.io";
/// `v4.channel.k8s.io`: the exit status as a JSON `metav1.Status`, resize on channel 4.
pub const V4: &str = "v4.channel.k8s.io";
/// `v4.base64.channel.k8s.io`.
pub const V4_BASE64: &str = "v4.base64.channel.k8s.io";
/// `channel.k8s.io` (before v4: the error channel carries a message only on failure).
pub const CHANNEL: &str = "channel.k8s.io";
/// `base64.channel.k8s.io`.
pub const BASE64: &str = "base64.channel.k8s.io";

/// The protocols of exec and attach (an empty one: the client named none).
pub const EXEC_PROTOCOLS: &[&str] = &[V5, V4, V4_BASE64, CHANNEL, BASE64, ""];
/// The protocols of port-forward.
pub const PORT_FORWARD_PROTOCOLS: &[&str] = &[V4, V4_BASE64, CHANNEL, BASE64, ""];

/// The CLOSE signal's channel (`v5.channel.k8s.io`).
const CLOSE: u8 = 255;
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;

/// The first protocol the client lists (`Sec-WebSocket-Protocol`, in its order) that is among
/// `supported`, as upstream's handshake picks it; `""` when the client lists none.
pub fn negotiate(req: &Request, supported: &[&str]) -> Result<String, Failure> {
    let asked: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if asked.is_empty() && supported.contains(&"") {
        return Ok(String::new());
    }
    asked
        .iter()
        .find(|p| supported.contains(&p.as_str()))
        .cloned()
        .ok_or_else(|| {
            Failure::bad_request(format!(
                "requested protocol(s) are not supported: {asked:?}; supports {:?}",
                supported
                    .iter()
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
            ))
        })
}

/// Answers the WebSocket handshake with 101 and runs `session` on the upgraded connection,
/// framed by the channel protocol `protocol`.
fn upgrade<F, Fut>(req: Request, protocol: String, session: F) -> Response
where
    F: FnOnce(Ws, Codec) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let codec = Codec {
        base64: protocol.contains("base64"),
        v4: protocol.starts_with("v4.") || protocol.starts_with("v5."),
        v5: protocol == V5,
    };
    accept(req, protocol, move |ws| session(ws, codec))
}

/// Answers the WebSocket handshake with 101 naming the sub-protocol `protocol` (none when
/// empty) and runs `session` on the upgraded connection, whatever its messages carry (the
/// channel protocols here, SPDY in [`super::tunnel`]).
pub(super) fn accept<F, Fut>(mut req: Request, protocol: String, session: F) -> Response
where
    F: FnOnce(Ws) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return Failure::bad_request("missing Sec-WebSocket-Key").into_response();
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                session(ws).await;
            }
            Err(e) => tracing::debug!(error = %e, "streaming upgrade failed"),
        }
    });
    let mut resp = (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, HeaderValue::from_static("Upgrade")),
            (header::UPGRADE, HeaderValue::from_static("websocket")),
        ],
    )
        .into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if !protocol.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&protocol) {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
    }
    resp
}

/// How messages are framed on the negotiated protocol.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    base64: bool,
    v4: bool,
    v5: bool,
}

impl Codec {
    fn encode(self, channel: u8, data: &[u8]) -> Message {
        if self.base64 {
            let mut s = String::with_capacity(1 + data.len() * 4 / 3 + 4);
            s.push(char::from(b'0' + channel));
            base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
            Message::text(s)
        } else {
            let mut v = Vec::with_capacity(data.len() + 1);
            v.push(channel);
            v.extend_from_slice(data);
            Message::binary(v)
        }
    }

    /// Channel and data of a client message; `None` for control and empty messages. On the
    /// binary protocols a text message is read as bytes too, as upstream's
    /// `wsstream.Conn.handle` (`apimachinery/pkg/util/httpstream/wsstream/conn.go`) receives
    /// any data frame into a byte slice: the Python client writes `str` stdin as text frames.
    fn decode(self, m: Message) -> Option<(u8, Bytes)> {
        match m {
            Message::Binary(b) if !b.is_empty() && !self.base64 => Some((b[0], b.slice(1..))),
            Message::Text(t) if !t.is_empty() && !self.base64 => {
                let b = Bytes::from(t);
                Some((b[0], b.slice(1..)))
            }
            Message::Text(t) if self.base64 && !t.is_empty() => {
                let b = t.as_bytes();
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&b[1..])
                    .ok()?;
                Some((b[0].wrapping_sub(b'0'), Bytes::from(data)))
            }
            _ => None,
        }
    }
}

/// A server-side WebSocket on an upgraded HTTP connection.
pub(super) type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
type Out = mpsc::Sender<(u8, Bytes)>;

/// Splits `ws`: a task writes what is sent on the returned channel (then a normal close once
/// every sender is gone); the read half is returned.
fn writer(ws: Ws, codec: Codec) -> (Out, futures::stream::SplitStream<Ws>) {
    let (mut sink, stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<(u8, Bytes)>(64);
    tokio::spawn(async move {
        while let Some((ch, data)) = rx.recv().await {
            if sink.send(codec.encode(ch, &data)).await.is_err() {
                return;
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
    });
    (tx, stream)
}

/// Forwards a byte channel to channel `ch` of the connection.
fn forward(ch: u8, out: Out) -> mpsc::Sender<Bytes> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if out.send((ch, b)).await.is_err() {
                return;
            }
        }
    });
    tx
}

/// Upgrades an exec or attach request and runs the session (`io` is the started process, or
/// why it could not start: then only the error status is sent).
pub fn serve_exec(
    req: Request,
    protocol: String,
    opts: StreamRequest,
    io: Result<ProcessIo, String>,
) -> Response {
    upgrade(req, protocol, move |ws, codec| {
        exec_session(ws, codec, opts, io)
    })
}

async fn exec_session(ws: Ws, codec: Codec, opts: StreamRequest, io: Result<ProcessIo, String>) {
    let (out, mut incoming) = writer(ws, codec);
    // an empty message on the lowest writable channel tells the client the streams are ready
    let first = if opts.stdout {
        STDOUT
    } else if opts.stderr {
        STDERR
    } else {
        ERROR
    };
    let _ = out.send((first, Bytes::new())).await;
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<TermSize>(4);
    let (gone_tx, gone_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut stdin = Some(stdin_tx);
        while let Some(Ok(m)) = incoming.next().await {
            if m.is_close() {
                break;
            }
            let Some((ch, data)) = codec.decode(m) else {
                continue;
            };
            match ch {
                STDIN => {
                    if let Some(tx) = &stdin {
                        if tx.send(data).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                RESIZE => {
                    if let Ok(s) = serde_json::from_slice::<TermSize>(&data) {
                        let _ = resize_tx.send(s).await;
                    }
                }
                CLOSE if codec.v5 && data.first() == Some(&STDIN) => stdin = None,
                _ => {}
            }
        }
        let _ = gone_tx.send(());
    });
    let outcome: Outcome = match io {
        Ok(io) => {
            let streams = ExecStreams {
                stdin: opts.stdin.then_some(stdin_rx),
                stdout: opts.stdout.then(|| forward(STDOUT, out.clone())),
                stderr: opts.stderr.then(|| forward(STDERR, out.clone())),
                resize: opts.tty.then_some(resize_rx),
            };
            remotecommand::run(io, streams, async {
                let _ = gone_rx.await;
            })
            .await
        }
        Err(e) => Err(e),
    };
    let status = if codec.v4 {
        remotecommand::status_body(&opts.command, &outcome)
    } else {
        remotecommand::v1_status_body(&opts.command, &outcome)
    };
    if !status.is_empty() {
        let _ = out.send((ERROR, Bytes::from(status))).await;
    }
}

/// Upgrades a port-forward request and forwards every port of `ports` in pod `pod_uid`.
pub fn serve_port_forward(
    req: Request,
    protocol: String,
    src: Arc<dyn StreamSource>,
    pod_uid: String,
    ports: Vec<u16>,
) -> Response {
    upgrade(req, protocol, move |ws, codec| {
        port_forward_session(ws, codec, src, pod_uid, ports)
    })
}

async fn port_forward_session(
    ws: Ws,
    codec: Codec,
    src: Arc<dyn StreamSource>,
    pod_uid: String,
    ports: Vec<u16>,
) {
    let (out, mut incoming) = writer(ws, codec);
    let mut data_in = vec![];
    let mut tasks = vec![];
    for (i, port) in ports.iter().copied().enumerate() {
        let (data_ch, err_ch) = (2 * i as u8, 2 * i as u8 + 1);
        let le = Bytes::copy_from_slice(&port.to_le_bytes());
        let _ = out.send((data_ch, le.clone())).await;
        let _ = out.send((err_ch, le)).await;
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        data_in.push(tx);
        let (src, uid, out) = (src.clone(), pod_uid.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            match portforward::connect(src, uid.clone(), port).await {
                Ok(tcp) => portforward::pump(tcp, rx, forward(data_ch, out)).await,
                Err(e) => {
                    let msg = format!("error forwarding port {port} to pod {uid}: {e}");
                    let _ = out.send((err_ch, Bytes::from(msg))).await;
                }
            }
        }));
    }
    drop(out);
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = incoming.next().await {
            if m.is_close() {
                break;
            }
            let Some((ch, data)) = codec.decode(m) else {
                continue;
            };
            if ch % 2 == 0 {
                if let Some(tx) = data_in.get(usize::from(ch / 2)) {
                    let _ = tx.send(data).await;
                }
            }
        }
    });
    for t in tasks {
        let _ = t.await;
    }
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_protocols_read_text_frames_as_bytes() {
        let v5 = Codec {
            base64: false,
            v4: true,
            v5: true,
        };
        assert_eq!(
            v5.decode(Message::binary(b"\x00data".to_vec())),
            Some((0, Bytes::from_static(b"data")))
        );
        assert_eq!(
            v5.decode(Message::text("\u{0}ping\n")),
            Some((0, Bytes::from_static(b"ping\n")))
        );
        assert_eq!(v5.decode(Message::text("")), None);
        let b64 = Codec {
            base64: true,
            v4: true,
            v5: false,
        };
        assert_eq!(
            b64.decode(Message::text("0ZGF0YQ==")),
            Some((0, Bytes::from_static(b"data")))
        );
        assert_eq!(b64.decode(Message::binary(b"\x00data".to_vec())), None);
    }
}
