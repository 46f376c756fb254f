//! The kubelet's streaming endpoints over SPDY/3.1 with the process runtime, driven by a client
//! made of the crate's own frame codec: the upgrade and protocol negotiation, exec with stdin,
//! stdout and the exit code (v4 status and the bare v2 message), resize, and port-forward
//! pairs (data through, and the error of a closed port).

use bytes::{Bytes, BytesMut};
use jiff::Timestamp;
use orch_kubelet::runtime::process::{PodNetwork, ProcessConfig, ProcessRuntime};
use orch_kubelet::runtime::*;
use orch_kubelet::streaming::spdy::frame::{Decoder, Encoder, Frame, Headers};
use orch_kubelet::streaming::{self, Failure, StreamSource};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
        ..Default::default()
    };
    let id = rt.start_container(&c, Timestamp::now()).unwrap();
    let router = streaming::router(Arc::new(One { rt, id }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    (addr, dir)
}

/// A SPDY client session after a successful upgrade.
struct Client {
    io: TcpStream,
    enc: Encoder,
    dec: Decoder,
    buf: BytesMut,
    next_id: u32,
    /// Data received per stream, and whether it ended.
    got: HashMap<u32, (Vec<u8>, bool)>,
    /// Streams in the order the server half-closed them.
    fins: Vec<u32>,
}

/// Sends the upgrade request; returns the status line and headers, and the client on a 101.
async fn upgrade(
    addr: std::net::SocketAddr,
    path: &str,
    protocols: &[&str],
) -> (String, Option<Client>) {
    let mut io = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: kubelet\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
    );
    for p in protocols {
        req.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    req.push_str("Content-Length: 0\r\n\r\n");
    io.write_all(req.as_bytes()).await.unwrap();
    let mut buf = BytesMut::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(
            io.read_buf(&mut buf).await.unwrap() > 0,
            "EOF in the response head"
        );
    };
    let head = String::from_utf8_lossy(&buf.split_to(head_end)).into_owned();
    if !head.starts_with("HTTP/1.1 101") {
        // the rest is the Status body
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < len {
            assert!(io.read_buf(&mut buf).await.unwrap() > 0, "EOF in the body");
        }
        return (format!("{head}{}", String::from_utf8_lossy(&buf)), None);
    }
    let client = Client {
        io,
        enc: Encoder::new(),
        dec: Decoder::new(),
        buf,
        next_id: 1,
        got: HashMap::new(),
        fins: vec![],
    };
    (head, Some(client))
}

impl Client {
    async fn send(&mut self, f: Frame) {
        let mut out = BytesMut::new();
        self.enc.encode(&f, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    /// Opens a stream with `headers` and waits for its SYN_REPLY (as client-go does).
    async fn open(&mut self, headers: &[(&str, &str)]) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        let headers: Headers = headers.iter().copied().collect();
        let f = Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers,
        };
        self.send(f).await;
        loop {
            match self.next().await {
                Some(Frame::SynReply { stream_id, .. }) if stream_id == id => return id,
                Some(Frame::RstStream { stream_id, status }) if stream_id == id => {
                    panic!("stream {id} reset: {status}")
                }
                Some(_) => {}
                None => panic!("EOF before the reply of stream {id}"),
            }
        }
    }

    async fn write(&mut self, id: u32, data: &[u8], fin: bool) {
        self.send(Frame::Data {
            stream_id: id,
            fin,
            data: Bytes::copy_from_slice(data),
        })
        .await;
    }

    /// The next frame (data is recorded per stream as well), `None` at EOF.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                if let Frame::Data {
                    stream_id,
                    fin,
                    data,
                } = &f
                {
                    let e = self.got.entry(*stream_id).or_default();
                    e.0.extend_from_slice(data);
                    e.1 |= *fin;
                    if *fin {
                        self.fins.push(*stream_id);
                    }
                }
                return Some(f);
            }
            let n = tokio::time::timeout(Duration::from_secs(20), self.io.read_buf(&mut self.buf))
                .await
                .expect("a frame within 20s")
                .ok()?;
            if n == 0 {
                return None;
            }
        }
    }

    /// Reads until every stream of `ids` has ended; their data.
    async fn until_ended(&mut self, ids: &[u32]) -> Vec<Vec<u8>> {
        while !ids.iter().all(|id| self.got.get(id).is_some_and(|g| g.1)) {
            if self.next().await.is_none() {
                break;
            }
        }
        ids.iter()
            .map(|id| self.got.get(id).map(|g| g.0.clone()).unwrap_or_default())
            .collect()
    }
}

fn exec_path(script: &str, stdin: bool, tty: bool) -> String {
    let enc: String = script
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!(
        "/exec/default/p/app?command=sh&command=-c&command={enc}&stdin={}&stdout=1&tty={}",
        u8::from(stdin),
        u8::from(tty)
    )
}

#[tokio::test]
async fn exec_v4_carries_stdin_stdout_and_the_exit_code() {
    let (addr, _dir) = serve().await;
    let (head, c) = upgrade(
        addr,
        &exec_path("cat; exit 3", true, false),
        &["v4.channel.k8s.io", "v3.channel.k8s.io"],
    )
    .await;
    assert!(
        head.to_ascii_lowercase()
            .contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    let mut c = c.unwrap();
    let error = c.open(&[("streamType", "error")]).await;
    let stdin = c.open(&[("streamType", "stdin")]).await;
    let stdout = c.open(&[("streamType", "stdout")]).await;
    c.write(stdin, b"through spdy\n", false).await;
    c.write(stdin, b"", true).await;
    let got = c.until_ended(&[stdout, error]).await;
    assert_eq!(got[0], b"through spdy\n");
    let status: serde_json::Value = serde_json::from_slice(&got[1]).unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    // stdin stays open until the status is out: client-go stops sending stdin at its FIN.
    let pos = |id| c.fins.iter().position(|f| *f == id);
    assert!(
        pos(stdin).is_none() || pos(stdin) > pos(error),
        "{:?}",
        c.fins
    );
    // The session ends with GOAWAY and the connection closes.
    let mut goaway = false;
    while let Some(f) = c.next().await {
        goaway |= matches!(f, Frame::GoAway { .. });
    }
    assert!(goaway);
}

#[tokio::test]
async fn exec_v2_reports_failure_as_text_and_v3_takes_resizes() {
    let (addr, _dir) = serve().await;
    let (_, c) = upgrade(
        addr,
        &exec_path("echo out; exit 2", false, false),
        &["v2.channel.k8s.io"],
    )
    .await;
    let mut c = c.unwrap();
    let error = c.open(&[("streamType", "error")]).await;
    let stdout = c.open(&[("streamType", "stdout")]).await;
    let got = c.until_ended(&[stdout, error]).await;
    assert_eq!(got[0], b"out\n");
    let msg = String::from_utf8(got[1].clone()).unwrap();
    assert!(msg.contains("exit code 2"), "{msg}");

    // With a tty from v3 on, a resize stream is part of the session; the terminal takes its
    // size (the JSON split across two frames).
    let (_, c) = upgrade(
        addr,
        &exec_path("sleep 1; stty size", false, true),
        &["v3.channel.k8s.io"],
    )
    .await;
    let mut c = c.unwrap();
    let error = c.open(&[("streamType", "error")]).await;
    let stdout = c.open(&[("streamType", "stdout")]).await;
    let resize = c.open(&[("streamType", "resize")]).await;
    c.write(resize, br#"{"Width":91,"#, false).await;
    c.write(resize, br#""Height":17}"#, false).await;
    let got = c.until_ended(&[stdout, error]).await;
    assert_eq!(String::from_utf8_lossy(&got[0]).trim(), "17 91");
    assert!(got[1].is_empty(), "v3 success has no error text");
}

#[tokio::test]
async fn the_upgrade_needs_a_protocol_in_common() {
    let (addr, _dir) = serve().await;
    let (head, c) = upgrade(addr, &exec_path("true", false, false), &[]).await;
    assert!(c.is_none() && head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(
        head.contains("X-Stream-Protocol-Version is required"),
        "{head}"
    );
    let (head, c) = upgrade(
        addr,
        &exec_path("true", false, false),
        &["v9.channel.k8s.io"],
    )
    .await;
    assert!(c.is_none() && head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(
        head.contains("\"reason\":\"Forbidden\"") && head.contains("unable to negotiate protocol"),
        "{head}"
    );
    let (head, c) = upgrade(addr, "/portForward/default/p", &["portforward.k8s.io"]).await;
    assert!(c.is_some(), "{head}");
}

#[tokio::test]
async fn port_forward_pairs_carry_data_and_errors() {
    let (addr, _dir) = serve().await;
    // The "pod" shares the host network: a listener that answers each line in upper case.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    let up = buf[..n].to_ascii_uppercase();
                    if s.write_all(&up).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let (_, c) = upgrade(addr, "/portForward/default/p", &["portforward.k8s.io"]).await;
    let mut c = c.unwrap();
    // Two connections at once, each a pair named by requestID.
    let mut pairs = vec![];
    for rid in ["0", "1"] {
        let err = c
            .open(&[("streamType", "error"), ("port", &port), ("requestID", rid)])
            .await;
        let data = c
            .open(&[("streamType", "data"), ("port", &port), ("requestID", rid)])
            .await;
        pairs.push((err, data));
    }
    for (i, (_, data)) in pairs.iter().enumerate() {
        c.write(*data, format!("hello {i}").as_bytes(), true).await;
    }
    // The listener echoes, then the pod side closes when our write side is done.
    let ids: Vec<u32> = pairs.iter().map(|p| p.1).collect();
    let got = c.until_ended(&ids).await;
    assert_eq!(got, vec![b"HELLO 0".to_vec(), b"HELLO 1".to_vec()]);

    // A port nobody listens on: the error stream says so.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let err = c
        .open(&[
            ("streamType", "error"),
            ("port", &closed),
            ("requestID", "2"),
        ])
        .await;
    let data = c
        .open(&[
            ("streamType", "data"),
            ("port", &closed),
            ("requestID", "2"),
        ])
        .await;
    let got = c.until_ended(&[err, data]).await;
    let msg = String::from_utf8_lossy(&got[0]);
    assert!(
        msg.contains(&format!("error forwarding port {closed}")),
        "{msg}"
    );

    // A stream without a valid port is refused.
    let headers: Headers = [("streamType", "data"), ("port", "0")]
        .into_iter()
        .collect();
    let id = c.next_id;
    c.send(Frame::SynStream {
        stream_id: id,
        associated_to: 0,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers,
    })
    .await;
    loop {
        match c.next().await.expect("a reset") {
            Frame::RstStream { stream_id, .. } if stream_id == id => break,
            _ => {}
        }
    }
}

#[tokio::test]
async fn megabytes_of_stdin_arrive_whole() {
    let (addr, _dir) = serve().await;
    let (_, c) = upgrade(
        addr,
        &exec_path("wc -c", true, false),
        &["v4.channel.k8s.io"],
    )
    .await;
    let mut c = c.unwrap();
    let error = c.open(&[("streamType", "error")]).await;
    let stdin = c.open(&[("streamType", "stdin")]).await;
    let stdout = c.open(&[("streamType", "stdout")]).await;
    let chunk = vec![b'x'; 32 * 1024];
    for _ in 0..100 {
        c.write(stdin, &chunk, false).await;
    }
    c.write(stdin, b"", true).await;
    let got = c.until_ended(&[stdout, error]).await;
    assert_eq!(
        String::from_utf8_lossy(&got[0]).trim(),
        (100 * 32 * 1024).to_string()
    );
}
