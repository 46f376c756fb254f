//! Real probe and hook handlers for runtimes with real processes: `exec` (a process with the
//! container's environment), `httpGet` (ureq, 200–399 is success, as upstream
//! `pkg/probe/http`), `tcpSocket` (a connect), `sleep`. All bounded by a timeout.

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
        HandlerAction::Exec(_) => HandlerOutcome::Failure("exec needs a container".into()),
    }
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
