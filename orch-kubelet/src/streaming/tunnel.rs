//! SPDY tunnelled over WebSocket: the port-forward transport of kubectl ≥ 1.31 (client-go
//! `tools/portforward/tunneling_dialer.go`).
//!
//! The client asks for a WebSocket upgrade whose sub-protocols are the SPDY protocols it would
//! negotiate in `X-Stream-Protocol-Version`, each prefixed with `SPDY/3.1+`
//! (`SPDY/3.1+portforward.k8s.io`). The answer is a WebSocket `101` naming the chosen one with
//! its prefix; then the connection carries a SPDY/3.1 session whose bytes travel in WebSocket
//! binary messages, message boundaries meaning nothing (client-go
//! `tools/portforward/tunneling_connection.go` reads and writes the messages as one byte
//! stream). A client whose upgrade fails falls back to a plain SPDY upgrade
//! (`fallback_dialer.go`), which [`super::spdy`] serves.
//!
//! Upstream's kubelet does not speak the tunnel: the API server translates it into a SPDY
//! upgrade towards the kubelet (`staging/src/k8s.io/apiserver/pkg/util/proxy/streamtunnel.go`).
//! orch's kubelet speaks every protocol and the API server relays bytes
//! (docs/design/streaming.md), so the tunnel is served here: [`WsIo`] turns the WebSocket into
//! a byte stream, and the SPDY port-forward session of [`super::spdy`] runs on it unchanged.

use super::websocket::{self, Ws};
use super::{is_websocket, spdy, StreamSource};
use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Sink, Stream};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// The prefix of a tunnelled SPDY protocol (upstream `WebsocketsSPDYTunnelingPrefix`).
pub const PREFIX: &str = "SPDY/3.1+";
/// The suffix every tunnelled protocol has (upstream `KubernetesSuffix`).
const SUFFIX: &str = ".k8s.io";

/// The SPDY protocols a WebSocket request offers to tunnel, prefix stripped, in the client's
/// order (upstream `spdyProtocolsFromWebsocketProtocols`).
pub fn offered(req: &Request) -> Vec<String> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| p.ends_with(SUFFIX))
        .filter_map(|p| p.strip_prefix(PREFIX))
        .map(str::to_string)
        .collect()
}

/// True for a WebSocket upgrade offering a tunnelled SPDY protocol (upstream
/// `wsstream.IsWebSocketRequestWithTunnelingProtocol`).
pub fn is_request(req: &Request) -> bool {
    is_websocket(req) && !offered(req).is_empty()
}

/// Upgrades a tunnelled port-forward request for the pod with UID `pod_uid` and serves the
/// SPDY port-forward session inside it. No SPDY protocol in common is upstream's handshake
/// error (403), which the client takes as an upgrade failure and falls back to plain SPDY.
pub fn serve_port_forward(req: Request, src: Arc<dyn StreamSource>, pod_uid: String) -> Response {
    let offered = offered(&req);
    let offered: Vec<&str> = offered.iter().map(String::as_str).collect();
    let protocol = match spdy::negotiate_offered(&offered, spdy::PORT_FORWARD_PROTOCOLS) {
        Ok(p) => p,
        Err(f) => return f.into_response(),
    };
    websocket::accept(req, format!("{PREFIX}{protocol}"), move |ws: Ws| {
        spdy::port_forward_session(spdy::session::Session::new(WsIo::new(ws)), src, pod_uid)
    })
}

/// A WebSocket as a byte stream: what is read is the concatenated payloads of the binary
/// messages received, each write is sent as one binary message. A normal close (or a close
/// without a code) is the end of the stream; a text message is an error, as client-go's
/// `TunnelingConnection.Read` has it. Shutting down sends a normal close. Pings are answered
/// by tungstenite while reading.
pub struct WsIo<S> {
    ws: WebSocketStream<S>,
    /// What is left of the binary message being read.
    pending: Bytes,
    eof: bool,
    close_sent: bool,
}

impl<S> WsIo<S> {
    /// Wraps an established WebSocket.
    pub fn new(ws: WebSocketStream<S>) -> Self {
        Self {
            ws,
            pending: Bytes::new(),
            eof: false,
            close_sent: false,
        }
    }
}

fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, e)
        }
        e => io::Error::other(e),
    }
}

impl<S> AsyncRead for WsIo<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => this.pending = b,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "invalid message type received: text in a SPDY tunnel",
                    )))
                }
                Some(Ok(Message::Close(None))) => this.eof = true,
                Some(Ok(Message::Close(Some(f)))) if f.code == CloseCode::Normal => this.eof = true,
                Some(Ok(Message::Close(Some(f)))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("websocket closed with code {}: {}", f.code, f.reason),
                    )))
                }
                // Pings (tungstenite queues the pong), pongs, raw frames.
                Some(Ok(_)) => {}
                // A peer gone without a close is the end of the stream too.
                Some(Err(
                    WsError::ConnectionClosed
                    | WsError::AlreadyClosed
                    | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                ))
                | None => this.eof = true,
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
    }
}

impl<S> AsyncWrite for WsIo<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        let mut ws = Pin::new(&mut this.ws);
        ready!(ws.as_mut().poll_ready(cx)).map_err(io_error)?;
        ws.start_send(Message::binary(Bytes::copy_from_slice(buf)))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_flush(cx)
            .map_err(io_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut ws = Pin::new(&mut this.ws);
        if !this.close_sent {
            let sent = ready!(ws.as_mut().poll_ready(cx)).and_then(|()| {
                ws.as_mut().start_send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                })))
            });
            this.close_sent = true;
            match sent {
                // The peer closed first: nothing left to say.
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                    return Poll::Ready(Ok(()))
                }
                Err(e) => return Poll::Ready(Err(io_error(e))),
                Ok(()) => {}
            }
        }
        match ready!(ws.poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_tungstenite::tungstenite::protocol::Role;

    async fn pair() -> (WsIo<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        (WsIo::new(server), client)
    }

    #[tokio::test]
    async fn messages_read_as_one_byte_stream() {
        let (mut io, mut client) = pair().await;
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            // Uneven messages, pings and an empty message between them.
            for (i, chunk) in sent.chunks(7_777).enumerate() {
                if i % 5 == 0 {
                    client
                        .send(Message::Ping(Bytes::from_static(b"p")))
                        .await
                        .unwrap();
                    client.send(Message::binary(Vec::new())).await.unwrap();
                }
                client.send(Message::binary(chunk.to_vec())).await.unwrap();
            }
            client
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                })))
                .await
                .unwrap();
            // The pongs and the close's answer come back.
            let mut pongs = 0;
            while let Some(Ok(m)) = client.next().await {
                if m.is_pong() {
                    pongs += 1;
                }
            }
            pongs
        });
        let mut got = Vec::new();
        // Small reads split messages.
        let mut buf = [0u8; 1000];
        loop {
            let n = io.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got.len(), payload.len());
        assert!(got == payload, "bytes differ");
        // EOF stays EOF.
        assert_eq!(io.read(&mut buf).await.unwrap(), 0);
        drop(io);
        assert_eq!(writer.await.unwrap(), 8);
    }

    #[tokio::test]
    async fn writes_are_binary_messages_and_shutdown_closes_normally() {
        let (mut io, mut client) = pair().await;
        let reader = tokio::spawn(async move {
            let (mut got, mut close) = (Vec::new(), None);
            while let Some(m) = client.next().await {
                match m.unwrap() {
                    Message::Binary(b) => got.extend_from_slice(&b),
                    Message::Close(f) => {
                        close = f;
                        break;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            (got, close)
        });
        io.write_all(b"hello").await.unwrap();
        io.write_all(b"").await.unwrap();
        io.write_all(&[0u8; 100_000]).await.unwrap();
        io.flush().await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        let (got, close) = reader.await.unwrap();
        assert_eq!(&got[..5], b"hello");
        assert_eq!(got.len(), 100_005);
        assert_eq!(close.map(|f| f.code), Some(CloseCode::Normal));
    }

    #[tokio::test]
    async fn text_and_abnormal_close_are_errors() {
        let (mut io, mut client) = pair().await;
        client.send(Message::text("nope")).await.unwrap();
        let mut buf = [0u8; 16];
        let e = io.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);

        let (mut io, mut client) = pair().await;
        client
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Error,
                reason: "boom".into(),
            })))
            .await
            .unwrap();
        let e = io.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert!(e.to_string().contains("boom"), "{e}");

        // A peer that just goes away is the end of the stream.
        let (mut io, client) = pair().await;
        drop(client);
        assert_eq!(io.read(&mut buf).await.unwrap(), 0);
    }
}
