//! Port-forward, independent of the transport: the `ports` of a request (upstream
//! `k8s.io/kubelet/pkg/cri/streaming/portforward/websocket.go`, `NewV4Options`), the
//! connection to a port of the pod ([`connect`]) and the copy between it and a client's byte
//! channels ([`pump`]).

use super::{Failure, StreamSource};
use bytes::Bytes;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The ports of a WebSocket port-forward: every `ports` parameter, each a comma-separated list
/// of ports in 1..=65535; at least one.
pub fn ports(query: &[(String, String)]) -> Result<Vec<u16>, Failure> {
    let mut out = vec![];
    for (_, v) in query.iter().filter(|(k, _)| k == "ports") {
        if v.is_empty() {
            return Err(Failure::bad_request(
                "query parameter \"port\" cannot be empty",
            ));
        }
        for p in v.split(',') {
            let port: u16 = p.trim().parse().map_err(|e| {
                Failure::bad_request(format!("unable to parse {v:?} as a port: {e}"))
            })?;
            if port == 0 {
                return Err(Failure::bad_request(format!("port {v:?} must be > 0")));
            }
            out.push(port);
        }
    }
    if out.is_empty() {
        return Err(Failure::bad_request("query parameter \"port\" is required"));
    }
    Ok(out)
}

/// Connects to `port` of the pod with UID `pod_uid` (on a blocking thread: the runtime may
/// enter the pod's network namespace).
pub async fn connect(
    src: Arc<dyn StreamSource>,
    pod_uid: String,
    port: u16,
) -> Result<tokio::net::TcpStream, String> {
    let tcp = tokio::task::spawn_blocking(move || src.port_forward(&pod_uid, port))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|f| f.message)?;
    tcp.set_nonblocking(true).map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    tokio::net::TcpStream::from_std(tcp).map_err(|e| e.to_string())
}

/// Copies between `tcp` and a client: `from_client` to the port (its end half-closes the
/// connection), the port's data to `to_client`; returns when the port closes its side (or the
/// client is gone).
pub async fn pump(
    tcp: tokio::net::TcpStream,
    mut from_client: mpsc::Receiver<Bytes>,
    to_client: mpsc::Sender<Bytes>,
) {
    let (mut r, mut w) = tcp.into_split();
    let upstream = async move {
        while let Some(b) = from_client.recv().await {
            if w.write_all(&b).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
        // keep reading the other way until it ends
        std::future::pending::<()>().await
    };
    let downstream = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to_client
                        .send(Bytes::copy_from_slice(&buf[..n]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_every_ports_parameter_split_on_commas() {
        let q = |v: &[&str]| -> Vec<(String, String)> {
            v.iter()
                .map(|p| ("ports".to_string(), p.to_string()))
                .collect()
        };
        assert_eq!(
            ports(&q(&["80,8080", "9000"])).unwrap(),
            vec![80, 8080, 9000]
        );
        assert_eq!(ports(&[]).unwrap_err().code, 400);
        assert_eq!(ports(&q(&["0"])).unwrap_err().code, 400);
        assert_eq!(ports(&q(&["http"])).unwrap_err().code, 400);
    }
}
