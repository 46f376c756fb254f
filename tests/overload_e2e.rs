//! Max-in-flight (issue 21) on `orch apiserver --max-mutating-requests-inflight 1
//! --max-requests-inflight 0` with real kubectl: a create whose body is still arriving holds
//! the only mutating seat; another write is answered upstream's 429 (`Retry-After: 1`, a
//! `TooManyRequests` Status), reads are not limited (0), and `kubectl create` started
//! meanwhile succeeds once the seat is free (client-go waits `Retry-After` and retries).

mod common;

use common::{LogsOnPanic, Split, TestEnv};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

/// Sends the headers of a create of `len` body bytes and the first `sent` of `body`.
fn start_create(addr: SocketAddr, body: &str, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "POST {CONFIGMAPS} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..sent]
    )
    .expect("write");
    s
}

/// Reads a whole `Connection: close` answer: (status line, headers, body).
fn answer(mut s: TcpStream) -> (String, String, String) {
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read answer");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_lowercase(), body.to_string())
}

fn configmap(name: &str) -> String {
    format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#)
}

#[test]
fn a_full_mutating_pool_answers_429_and_kubectl_retries() {
    let env = TestEnv::new();
    let _logs = LogsOnPanic(vec![env.path().to_path_buf()]);
    let split = Split::apiserver_with(
        &env,
        "apiserver",
        &[
            "--insecure-http",
            "--max-requests-inflight",
            "0",
            "--max-mutating-requests-inflight",
            "1",
        ],
    );
    let held_body = configmap("held");
    // The held create takes the seat once its headers are read; a probe that raced it (and
    // got the seat first, so the held create was refused) is removed and both are retried.
    let (mut held, headers, body) =
        common::wait_for("a write refused with 429", Duration::from_secs(30), || {
            let held = start_create(split.addr, &held_body, 10);
            std::thread::sleep(Duration::from_millis(300));
            let probe = configmap("probe");
            let (status, headers, body) = answer(start_create(split.addr, &probe, probe.len()));
            if status.contains(" 429 ") {
                return Ok((held, headers, body));
            }
            drop(held);
            let _ = env.kubectl_try(&["delete", "configmap", "probe", "--ignore-not-found"]);
            Err(status)
        });
    assert!(
        headers.contains("retry-after: 1\r\n") || headers.ends_with("retry-after: 1"),
        "{headers}"
    );
    let status: serde_json::Value = serde_json::from_str(&body).expect("a Status");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["code"], 429);
    assert_eq!(
        status["message"],
        "Too many requests, please try again later."
    );
    // Reads are unlimited (0).
    for _ in 0..5 {
        env.kubectl(&["get", "configmaps", "-n", "default"]);
    }
    std::thread::scope(|scope| {
        let waited = scope.spawn(|| env.kubectl_try(&["create", "configmap", "waited"]));
        std::thread::sleep(Duration::from_millis(1500));
        held.write_all(&held_body.as_bytes()[10..])
            .expect("finish the held body");
        let (status, _, body) = answer(held);
        assert!(status.contains(" 201 "), "{status}: {body}");
        let out = waited.join().expect("kubectl thread");
        assert!(
            out.is_ok(),
            "kubectl create after the seat was freed: {out:?}"
        );
    });
    let names = env.kubectl(&[
        "get",
        "configmaps",
        "-n",
        "default",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert!(
        names.contains("held") && names.contains("waited"),
        "{names}"
    );
}
