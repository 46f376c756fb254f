//! Real probe and hook handlers for runtimes with real processes: `exec` (a process with the
//! container's environment), `httpGet` (ureq, 200–399 is success, as upstream
//! `pkg/probe/http`), `tcpSocket` (a connect), `grpc` (tonic's `grpc.health.v1.Health/Check`,
//! as upstream `pkg/probe/grpc`), `sleep`. All bounded by a timeout.

use crate::runtime::{HandlerAction, HandlerOutcome, HandlerTarget};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Resolves a probe port (number or container port name).
pub fn resolve_port(port: &IntOrString, target: &HandlerTarget) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(s) => match s.parse::<u16>() {
            Ok(p) => Ok(p),
            Err(_) => target
                .named_ports
                .get(s)
                .and_then(|p| u16::try_from(*p).ok())
                .ok_or_else(|| format!("couldn't find port: {s}")),
        },
    }
}

/// Runs a command with `env` in `cwd`, killing it (its process group) at `timeout`.
/// Returns the exit code (`None` on timeout) and up to 10 KiB of output.
pub fn exec_with_timeout(
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&Path>,
    timeout: Duration,
) -> Result<(Option<i32>, String), String> {
    let Some((prog, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !env.iter().any(|(k, _)| k == "PATH") {
        cmd.env("PATH", crate::runtime::process::DEFAULT_PATH);
    }
    if let Some(d) = cwd.filter(|d| d.is_dir()) {
        cmd.current_dir(d);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| format!("{prog}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let code = loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                break st.code().or_else(|| {
                    std::os::unix::process::ExitStatusExt::signal(&st).map(|s| 128 + s)
                })
            }
            Ok(None) if Instant::now() >= deadline => {
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut out = String::new();
    let mut buf = vec![];
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut buf);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_end(&mut buf);
    }
    buf.truncate(10 * 1024);
    out.push_str(&String::from_utf8_lossy(&buf));
    Ok((code, out))
}

/// Runs a network or sleep handler (exec is the runtime's business: it knows the container).
pub fn run_network(
    action: &HandlerAction,
    target: &HandlerTarget,
    timeout: Duration,
) -> HandlerOutcome {
    match action {
        HandlerAction::HttpGet(g) => {
            let port = match resolve_port(&g.port, target) {
                Ok(p) => p,
                Err(e) => return HandlerOutcome::Failure(e),
            };
            let scheme = g.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
            let host = g
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| target.pod_ip.clone());
            let path = g.path.clone().unwrap_or_else(|| "/".into());
            let path = if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            };
            let url = format!("{scheme}://{host}:{port}{path}");
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .http_status_as_error(false)
                .max_redirects(10)
                .build()
                .into();
            let mut req = agent.get(&url).header("User-Agent", "kube-probe/1.33");
            for h in g.http_headers.iter().flatten() {
                req = req.header(h.name.as_str(), h.value.as_str());
            }
            match req.call() {
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    if (200..400).contains(&code) {
                        HandlerOutcome::Success
                    } else {
                        HandlerOutcome::Failure(format!(
                            "HTTP probe failed with statuscode: {code}"
                        ))
                    }
                }
                Err(e) => HandlerOutcome::Failure(format!("Get \"{url}\": {e}")),
            }
        }
        HandlerAction::TcpSocket(t) => {
            let port = match resolve_port(&t.port, target) {
                Ok(p) => p,
                Err(e) => return HandlerOutcome::Failure(e),
            };
            let host = t
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| target.pod_ip.clone());
            let addr = match (host.as_str(), port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
            {
                Some(a) => a,
                None => {
                    return HandlerOutcome::Failure(format!("dial tcp {host}:{port}: no such host"))
                }
            };
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(_) => HandlerOutcome::Success,
                Err(e) => HandlerOutcome::Failure(format!("dial tcp {addr}: {e}")),
            }
        }
        HandlerAction::Sleep(s) => {
            std::thread::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(timeout));
            HandlerOutcome::Success
        }
        HandlerAction::Grpc(g) => grpc_probe(
            &target.pod_ip,
            g.port,
            g.service.as_deref().unwrap_or_default(),
            timeout,
        ),
        HandlerAction::Exec(_) => HandlerOutcome::Failure("exec needs a container".into()),
    }
}

/// `host:port`, with brackets around an IPv6 host (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A gRPC health probe, as upstream `pkg/probe/grpc/grpc.go`: plaintext HTTP/2 to
/// `host:port`, `grpc.health.v1.Health/Check` with `service` (empty = the whole server);
/// `SERVING` is success, anything else a failure with upstream's message. Connecting and the
/// call together are bounded by `timeout`. Blocking: runs its own single-threaded tokio
/// runtime (on a helper thread when the caller is inside a tokio runtime).
pub fn grpc_probe(host: &str, port: i32, service: &str, timeout: Duration) -> HandlerOutcome {
    let run = || match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(grpc_check(host, port, service, timeout)),
        Err(e) => HandlerOutcome::Failure(format!("error: grpc probe runtime: {e}")),
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return run();
    }
    std::thread::scope(|s| {
        s.spawn(run)
            .join()
            .unwrap_or_else(|_| HandlerOutcome::Failure("error: grpc probe panicked".into()))
    })
}

/// An error with its sources, `a: b: c` (as Go's `%+v` of a wrapped error reads).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

async fn grpc_check(host: &str, port: i32, service: &str, timeout: Duration) -> HandlerOutcome {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let addr = join_host_port(host, port);
    let within = crate::backoff::go_duration(timeout);
    let connect_error = |e: &dyn std::error::Error| {
        HandlerOutcome::Failure(format!(
            "error: failed to connect service at {addr:?}: {}",
            error_chain(e)
        ))
    };
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .and_then(|e| e.user_agent("kube-probe/1.33"))
    {
        Ok(e) => e.connect_timeout(timeout),
        Err(e) => return connect_error(&e),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let channel = match tokio::time::timeout_at(deadline, endpoint.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) if !is_timeout(&e) => return connect_error(&e),
        _ => {
            return HandlerOutcome::Failure(format!(
                "timeout: failed to connect service {addr:?} within {within}: context deadline exceeded"
            ))
        }
    };
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    let mut client = HealthClient::new(channel);
    let timed_out = || {
        HandlerOutcome::Failure(format!(
            "timeout: health rpc did not complete within {within}"
        ))
    };
    match tokio::time::timeout_at(deadline, client.check(request)).await {
        Err(_) => timed_out(),
        Ok(Err(status)) => match status.code() {
            tonic::Code::Unimplemented => HandlerOutcome::Failure(format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            )),
            tonic::Code::DeadlineExceeded => timed_out(),
            code => HandlerOutcome::Failure(format!(
                "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                status.message()
            )),
        },
        Ok(Ok(resp)) => match ServingStatus::try_from(resp.into_inner().status) {
            Ok(ServingStatus::Serving) => HandlerOutcome::Success,
            Ok(other) => HandlerOutcome::Failure(format!(
                "service unhealthy (responded with \"{}\")",
                other.as_str_name()
            )),
            Err(_) => HandlerOutcome::Failure("service unhealthy (responded with \"UNKNOWN\")".into()),
        },
    }
}

/// Whether a connect error is tonic's connect timeout.
fn is_timeout(e: &tonic::transport::Error) -> bool {
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        if s.to_string().contains("timed out") {
            return true;
        }
        src = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{HTTPGetAction, TCPSocketAction};
    use std::io::Write;
    use std::net::TcpListener;

    fn target() -> HandlerTarget {
        HandlerTarget {
            pod_ip: "127.0.0.1".into(),
            named_ports: [("http".to_string(), 1)].into(),
            ..Default::default()
        }
    }

    #[test]
    fn exec_reports_exit_code_and_timeout() {
        let sh = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
        let (code, out) =
            exec_with_timeout(&sh("echo hi; exit 3"), &[], None, Duration::from_secs(5)).unwrap();
        assert_eq!((code, out.as_str()), (Some(3), "hi\n"));
        let (code, _) =
            exec_with_timeout(&sh("sleep 5"), &[], None, Duration::from_millis(100)).unwrap();
        assert_eq!(code, None);
        let (_, out) = exec_with_timeout(
            &sh("echo $X"),
            &[("X".into(), "y".into())],
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out, "y\n");
    }

    /// A tonic server with the standard health service on 127.0.0.1:0 (`""` SERVING,
    /// `down` NOT_SERVING), run on its own thread; returns its port.
    fn health_server() -> u16 {
        use tonic_health::ServingStatus;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (reporter, service) = tonic_health::server::health_reporter();
                reporter
                    .set_service_status("up", ServingStatus::Serving)
                    .await;
                reporter
                    .set_service_status("down", ServingStatus::NotServing)
                    .await;
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap().port()).unwrap();
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
                    .await
                    .unwrap();
            });
        });
        rx.recv().unwrap()
    }

    #[test]
    fn grpc_probe_against_a_real_health_server() {
        let port = health_server();
        let t = Duration::from_secs(5);
        let probe = |service: &str| {
            let action = HandlerAction::Grpc(k8s_openapi::api::core::v1::GRPCAction {
                port: port.into(),
                service: (!service.is_empty()).then(|| service.to_string()),
            });
            run_network(&action, &target(), t)
        };
        assert_eq!(probe(""), HandlerOutcome::Success);
        assert_eq!(probe("up"), HandlerOutcome::Success);
        assert_eq!(
            probe("down"),
            HandlerOutcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        assert_eq!(
            probe("nope"),
            HandlerOutcome::Failure(
                "error: health rpc probe failed: rpc error: code = NotFound desc = service not registered"
                    .into()
            )
        );
    }

    #[tokio::test]
    async fn grpc_probe_can_be_called_from_async_code() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(matches!(
            grpc_probe("127.0.0.1", closed.into(), "", Duration::from_secs(1)),
            HandlerOutcome::Failure(_)
        ));
    }

    #[test]
    fn grpc_probe_failures_without_a_health_server() {
        // Nothing listening: the connect error, at once.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let start = Instant::now();
        match grpc_probe("127.0.0.1", closed.into(), "", Duration::from_secs(5)) {
            HandlerOutcome::Failure(m) => assert!(
                m.starts_with(&format!(
                    "error: failed to connect service at \"127.0.0.1:{closed}\": "
                )),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        // A peer that accepts but never answers: the timeout is honoured.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let held = std::thread::spawn(move || {
            let conns: Vec<_> = silent.incoming().take(1).collect();
            std::thread::sleep(Duration::from_secs(2));
            drop(conns);
        });
        let start = Instant::now();
        match grpc_probe("127.0.0.1", port.into(), "", Duration::from_millis(300)) {
            HandlerOutcome::Failure(m) => assert!(m.starts_with("timeout: "), "{m}"),
            other => panic!("{other:?}"),
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        held.join().unwrap();
        // A gRPC server without the health service.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap().port()).unwrap();
                tonic::transport::Server::builder()
                    .add_routes(tonic::service::Routes::default())
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
                    .await
                    .unwrap();
            });
        });
        let port = rx.recv().unwrap();
        match grpc_probe("127.0.0.1", port.into(), "", Duration::from_secs(5)) {
            HandlerOutcome::Failure(m) => assert!(
                m.starts_with("error: this server does not implement the grpc health protocol (grpc.health.v1.Health)"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_and_tcp_probes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (n, s) in l.incoming().enumerate() {
                let Ok(mut s) = s else { continue };
                let mut buf = [0u8; 1024];
                let _ = std::io::Read::read(&mut s, &mut buf);
                let status = if n == 0 {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        let get = HandlerAction::HttpGet(HTTPGetAction {
            port: IntOrString::Int(port.into()),
            path: Some("/healthz".into()),
            ..Default::default()
        });
        assert_eq!(
            run_network(&get, &target(), Duration::from_secs(2)),
            HandlerOutcome::Success
        );
        assert_eq!(
            run_network(&get, &target(), Duration::from_secs(2)),
            HandlerOutcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
        let tcp = HandlerAction::TcpSocket(TCPSocketAction {
            port: IntOrString::Int(port.into()),
            host: None,
        });
        assert_eq!(
            run_network(&tcp, &target(), Duration::from_secs(2)),
            HandlerOutcome::Success
        );
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tcp = HandlerAction::TcpSocket(TCPSocketAction {
            port: IntOrString::Int(closed.into()),
            host: None,
        });
        assert!(matches!(
            run_network(&tcp, &target(), Duration::from_secs(2)),
            HandlerOutcome::Failure(_)
        ));
        let named = HandlerAction::TcpSocket(TCPSocketAction {
            port: IntOrString::String("nope".into()),
            host: None,
        });
        assert_eq!(
            run_network(&named, &target(), Duration::from_secs(1)),
            HandlerOutcome::Failure("couldn't find port: nope".into())
        );
    }
}
