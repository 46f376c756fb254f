//! Exec and attach sessions, independent of the transport: [`run`] pumps a
//! [`ProcessIo`](crate::runtime::ProcessIo) to and from [`ExecStreams`], and [`status_body`] is
//! the `metav1.Status` a session ends with on the error stream (upstream
//! `k8s.io/kubelet/pkg/cri/streaming/remotecommand`, `exec.go` and `httpstream.go`).

use super::ExecStreams;
use crate::runtime::ProcessIo;
use bytes::Bytes;
use std::future::Future;
use std::io::{Read, Write};

/// How a session ended: the command's exit code, or why it could not run.
pub type Outcome = Result<i32, String>;

/// Size of one read from the process.
const CHUNK: usize = 32 * 1024;

/// Runs a session to its end: stdin from the client to the process (its end is the process's
/// EOF), stdout and stderr to the client, resizes to the terminal, until the process is done
/// and its output is drained. When `client_gone` resolves first, the session is cancelled
/// (the exec'd command is killed) and its outcome is the command's exit then.
pub async fn run(
    io: ProcessIo,
    streams: ExecStreams,
    client_gone: impl Future<Output = ()>,
) -> Outcome {
    let ProcessIo {
        stdin,
        stdout,
        stderr,
        resize,
        wait,
        cancel,
    } = io;
    let ExecStreams {
        stdin: stdin_rx,
        stdout: stdout_tx,
        stderr: stderr_tx,
        resize: resize_rx,
    } = streams;
    if let (Some(mut w), Some(mut rx)) = (stdin, stdin_rx) {
        std::thread::spawn(move || {
            while let Some(b) = rx.blocking_recv() {
                if w.write_all(&b).and_then(|()| w.flush()).is_err() {
                    break;
                }
            }
        });
    }
    let mut readers = vec![];
    for (r, tx) in [(stdout, stdout_tx), (stderr, stderr_tx)] {
        if let (Some(mut r), Some(tx)) = (r, tx) {
            readers.push(tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }
    // never completes: it only applies resizes while the session lasts
    let resizer = async move {
        if let (Some(f), Some(mut rx)) = (resize, resize_rx) {
            while let Some(s) = rx.recv().await {
                f(s);
            }
        }
        std::future::pending::<()>().await
    };
    let waiter = tokio::task::spawn_blocking(wait);
    let done = async {
        let code = waiter.await;
        for r in readers {
            let _ = r.await;
        }
        code
    };
    tokio::pin!(done, client_gone, resizer);
    let code = loop {
        tokio::select! {
            c = &mut done => break c,
            () = &mut resizer => {}
            () = &mut client_gone => {
                if let Some(c) = &cancel {
                    c();
                }
                break (&mut done).await;
            }
        }
    };
    match code {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The `metav1.Status` ending a session on the error stream (protocol v4 and later): Success
/// for exit code 0; for another code, Failure with reason `NonZeroExitCode` and the code as the
/// message of an `ExitCode` cause (clients read the exit code from it); for a session that
/// could not run, `InternalError`.
pub fn status_body(command: &[String], outcome: &Outcome) -> Vec<u8> {
    let v = match outcome {
        Ok(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Ok(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: error executing command in container: {e}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": format!("error executing command in container: {e}")}]},
            "code": 500,
        }),
    };
    v.to_string().into_bytes()
}

/// The error stream's text before protocol v4: nothing on success, else the message.
pub fn v1_status_body(command: &[String], outcome: &Outcome) -> Vec<u8> {
    match outcome {
        Ok(0) => vec![],
        Ok(code) => format!(
            "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
        )
        .into_bytes(),
        Err(e) => format!("error executing command in container: {e}").into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_carries_the_exit_code_as_clients_read_it() {
        let cmd = vec!["sh".to_string()];
        let ok: serde_json::Value = serde_json::from_slice(&status_body(&cmd, &Ok(0))).unwrap();
        assert_eq!(ok["status"], "Success");
        let bad: serde_json::Value = serde_json::from_slice(&status_body(&cmd, &Ok(3))).unwrap();
        assert_eq!(bad["reason"], "NonZeroExitCode");
        assert_eq!(bad["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(bad["details"]["causes"][0]["message"], "3");
        assert!(v1_status_body(&cmd, &Ok(0)).is_empty());
    }
}
