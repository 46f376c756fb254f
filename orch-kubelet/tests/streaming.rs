//! The kubelet's streaming endpoints over real WebSockets, with the process runtime: exec with
//! stdin, stdout and the exit code (`v5.channel.k8s.io` and `v4.channel.k8s.io`), and a
//! port-forward to a listener of the "pod" (host networking without a sandbox).

use futures::{SinkExt, StreamExt};
use jiff::Timestamp;
use orch_kubelet::runtime::process::{PodNetwork, ProcessConfig, ProcessRuntime};
use orch_kubelet::runtime::*;
use orch_kubelet::streaming::{self, Failure, StreamSource};
use std::sync::Arc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct One {
    rt: ProcessRuntime,
    id: String,
}

impl StreamSource for One {
    fn exec(&self, _: &str, _: &str, c: &str, req: &StreamRequest) -> Result<ProcessIo, Failure> {
        if c != "app" {
            return Err(Failure::not_found(format!("container not found ({c:?})")));
        }
        Ok(self.rt.exec(&self.id, req)?)
    }
    fn attach(&self, _: &str, _: &str, _: &str, req: &StreamRequest) -> Result<ProcessIo, Failure> {
        Ok(self.rt.attach(&self.id, req)?)
    }
    fn pod_uid(&self, _: &str, _: &str) -> Option<String> {
        Some("uid-s".into())
    }
    fn port_forward(&self, uid: &str, port: u16) -> Result<std::net::TcpStream, Failure> {
        Ok(self.rt.port_forward(uid, port)?)
    }
}

async fn serve() -> (std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ProcessConfig::new(dir.path());
    cfg.pod_network = PodNetwork::Host;
    cfg.cgroups = false;
    let rt = ProcessRuntime::open(cfg).unwrap();
    let c = ContainerConfig {
        pod_uid: "uid-s".into(),
        namespace: "default".into(),
        pod_name: "p".into(),
        name: "app".into(),
        image: "busybox:1".into(),
        command: vec!["sleep".into(), "30".into()],
        env: vec![("GREETING".into(), "hello".into())],
        ..Default::default()
    };
    let id = rt.start_container(&c, Timestamp::now()).unwrap();
    let router = streaming::router(Arc::new(One { rt, id }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    (addr, dir)
}

fn request(
    url: &str,
    protocol: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut r = url.into_client_request().unwrap();
    r.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    r
}

/// Runs `sh -c SCRIPT` with `input` on stdin; returns (stdout, the error channel's status).
async fn exec(
    addr: std::net::SocketAddr,
    protocol: &str,
    script: &str,
    input: &[u8],
) -> (Vec<u8>, serde_json::Value) {
    let q: String = format!(
        "command=sh&command=-c&command={}",
        script
            .replace(' ', "%20")
            .replace(';', "%3B")
            .replace('$', "%24")
    );
    let url = format!("ws://{addr}/exec/default/p/app?{q}&stdin=1&stdout=1&stderr=1");
    let (mut ws, resp) = tokio_tungstenite::connect_async(request(&url, protocol))
        .await
        .unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], protocol);
    let mut m = vec![0u8];
    m.extend_from_slice(input);
    ws.send(Message::binary(m)).await.unwrap();
    if protocol.starts_with("v5") {
        ws.send(Message::binary(vec![255u8, 0])).await.unwrap();
    }
    let (mut out, mut status) = (vec![], serde_json::Value::Null);
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Binary(b) = msg {
            match b.first() {
                Some(1) => out.extend_from_slice(&b[1..]),
                Some(3) => status = serde_json::from_slice(&b[1..]).unwrap(),
                _ => {}
            }
        }
    }
    (out, status)
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_over_websocket_streams_stdin_stdout_and_the_exit_code() {
    let (addr, _dir) = serve().await;
    let (out, status) = exec(
        addr,
        "v5.channel.k8s.io",
        "read x; echo $GREETING $x; exit 3",
        b"world\n",
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out), "hello world\n");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    // v4 has no CLOSE signal: a command that does not wait for EOF
    let (out, status) = exec(addr, "v4.channel.k8s.io", "echo hi", b"").await;
    assert_eq!(out, b"hi\n");
    assert_eq!(status["status"], "Success");
    // a missing container is answered before the upgrade, with upstream's message
    let url = format!("ws://{addr}/exec/default/p/nope?command=true&stdout=1");
    let err = tokio_tungstenite::connect_async(request(&url, "v5.channel.k8s.io"))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => {
            assert_eq!(r.status(), 404);
            let body: serde_json::Value =
                serde_json::from_slice(r.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["message"], "container not found (\"nope\")");
        }
        e => panic!("unexpected {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_over_websocket_reaches_the_pod_port() {
    let (addr, _dir) = serve().await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = l.accept().await.unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.unwrap();
        s.write_all(&[b"pong:".as_slice(), &b].concat())
            .await
            .unwrap();
    });
    let url = format!("ws://{addr}/portForward/default/p?ports={port}");
    let (mut ws, _) = tokio_tungstenite::connect_async(request(&url, "v4.channel.k8s.io"))
        .await
        .unwrap();
    ws.send(Message::binary(b"\x00ping".to_vec()))
        .await
        .unwrap();
    let mut data = vec![];
    let mut opened = 0;
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Binary(b) = msg {
            if b.len() == 3 && opened < 2 {
                assert_eq!(u16::from_le_bytes([b[1], b[2]]), port);
                opened += 1;
                continue;
            }
            if b[0] == 0 {
                data.extend_from_slice(&b[1..]);
            }
        }
    }
    assert_eq!(opened, 2);
    assert_eq!(data, b"pong:ping");
}
