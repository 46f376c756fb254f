//! Exec, attach and port-forward for the process runtime.
//!
//! - **exec** runs the command as the container's own processes run: its environment and
//!   working directory, the same namespace prefix (the pod's network namespace, a UTS namespace
//!   with the pod's hostname and its `/etc/hosts`, the mount namespace of its volumes: see
//!   [`super::uts_prefix`]) and, with cgroups, the container's cgroup (a small shell joins it,
//!   then `exec`s the rest, so the command itself and whatever it forks are inside). With a tty
//!   the command gets a new pseudo-terminal as stdin/stdout/stderr, made its controlling
//!   terminal by util-linux `setsid --ctty`; resizes set the window size on the master side.
//! - **attach** follows the container's raw `stdout`/`stderr` files from their current end and,
//!   for a container with `stdin: true`, writes to its stdin: a FIFO in the container directory
//!   that the runtime holds open for writing, so the container sees no EOF until a `stdinOnce`
//!   attach ends. Containers with `tty: true` get no terminal (they run on pipes like the others).
//! - **port-forward** connects to `127.0.0.1:PORT` inside the pod's network namespace: a
//!   dedicated thread joins the namespace (`setns`), creates the socket there and ends; the
//!   socket stays in the namespace it was created in. Host-network pods: the host's loopback.

use super::*;
use crate::runtime::{ProcessIo, StreamError, StreamRequest, TermSize};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// Joins the cgroups given as `N file…` (its own PID into each `cgroup.procs`), then `exec`s the
/// rest, keeping its PID (so the command is inside).
const JOIN: &str = r#"n="$1"; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@""#;

/// How often a follower of a container's output looks for more, and for its exit.
const FOLLOW: Duration = Duration::from_millis(50);

fn failed(e: impl std::fmt::Display) -> StreamError {
    StreamError::Failed(e.to_string())
}

impl ProcessRuntime {
    /// The running container `id`'s environment, working directory, namespace prefix and
    /// cgroups; [`StreamError::NotRunning`] when it is unknown or exited.
    fn running(&self, id: &str) -> Result<StateFile, StreamError> {
        let mut inner = self.inner.lock();
        let p = inner
            .procs
            .get_mut(id)
            .ok_or_else(|| StreamError::NotRunning(id.into()))?;
        self.poll(p, Timestamp::now());
        if p.st.finished.is_some() {
            return Err(StreamError::NotRunning(id.into()));
        }
        Ok(p.st.clone())
    }

    pub(super) fn stream_exec(
        &self,
        id: &str,
        req: &StreamRequest,
    ) -> Result<ProcessIo, StreamError> {
        if req.command.is_empty() {
            return Err(StreamError::BadRequest(
                "you must specify at least 1 command".into(),
            ));
        }
        let st = self.running(id)?;
        let procs = cgroup::procs_files(&st.cgroups);
        let mut argv: Vec<String> = vec![];
        if req.tty {
            argv.extend(["setsid".to_string(), "--ctty".to_string()]);
        }
        if !procs.is_empty() {
            argv.extend(["/bin/sh", "-c", JOIN, "orch-exec"].map(String::from));
            argv.push(procs.len().to_string());
            argv.extend(procs.iter().map(|p| p.to_string_lossy().into_owned()));
        }
        argv.extend(st.exec_prefix.iter().cloned());
        argv.extend(req.command.iter().cloned());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(st.env.iter().map(|(k, v)| (k, v)));
        let wd = st
            .working_dir
            .clone()
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(|| self.dir(id));
        cmd.current_dir(wd);
        let mut master: Option<OwnedFd> = None;
        if req.tty {
            let pty = nix::pty::openpty(None, None).map_err(failed)?;
            let slave = File::from(pty.slave);
            let dup = || slave.try_clone().map(Stdio::from).map_err(failed);
            cmd.stdin(dup()?).stdout(dup()?).stderr(dup()?);
            master = Some(pty.master);
        } else {
            // its own process group, so cancelling kills what it forked too
            cmd.process_group(0)
                .stdin(if req.stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(if req.stdout {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stderr(if req.stderr {
                    Stdio::piped()
                } else {
                    Stdio::null()
                });
        }
        let mut child = cmd.spawn().map_err(|e| {
            StreamError::Failed(format!(
                "cannot run {:?} in container {id}: {e}",
                req.command
            ))
        })?;
        drop(cmd); // the parent's copies of the pty slave: the child's exit must end the output
        let pgid = Pid::from_raw(child.id() as i32);
        let mut io = ProcessIo {
            stdin: None,
            stdout: None,
            stderr: None,
            resize: None,
            wait: Box::new(|| Ok(0)),
            cancel: Some(Box::new(move || {
                let _ = killpg(pgid, Signal::SIGKILL);
            })),
        };
        if let Some(m) = master {
            let m = File::from(m);
            let reader = m.try_clone().map_err(failed)?;
            let sizer = m.try_clone().map_err(failed)?;
            if req.stdin {
                io.stdin = Some(Box::new(m));
            }
            io.stdout = Some(Box::new(PtyReader(reader)));
            io.resize = Some(Box::new(move |s: TermSize| {
                let ws = rustix::termios::Winsize {
                    ws_row: s.height,
                    ws_col: s.width,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                let _ = rustix::termios::tcsetwinsize(&sizer, ws);
            }));
        } else {
            io.stdin = child
                .stdin
                .take()
                .map(|w| Box::new(w) as Box<dyn Write + Send>);
            io.stdout = child
                .stdout
                .take()
                .map(|r| Box::new(r) as Box<dyn Read + Send>);
            io.stderr = child
                .stderr
                .take()
                .map(|r| Box::new(r) as Box<dyn Read + Send>);
        }
        io.wait = Box::new(move || {
            let s = child.wait().map_err(io_err)?;
            Ok(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)))
        });
        Ok(io)
    }

    pub(super) fn stream_attach(
        &self,
        id: &str,
        req: &StreamRequest,
    ) -> Result<ProcessIo, StreamError> {
        self.running(id)?;
        let dir = self.dir(id);
        let done = Arc::new(AtomicBool::new(false));
        let follow = |name: &str| -> Result<Box<dyn Read + Send>, StreamError> {
            let f = File::open(dir.join(name)).map_err(failed)?;
            let pos = f.metadata().map(|m| m.len()).unwrap_or(0);
            Ok(Box::new(Follower {
                file: f,
                pos,
                rt: self.clone(),
                id: id.to_string(),
                done: done.clone(),
            }))
        };
        let stdout = if req.stdout {
            Some(follow("stdout")?)
        } else {
            None
        };
        let stderr = if req.stderr {
            Some(follow("stderr")?)
        } else {
            None
        };
        let stdin: Option<Box<dyn Write + Send>> = if req.stdin {
            Some(match self.container_stdin(id) {
                Some(w) => w,
                // upstream runtimes ignore stdin for a container without `stdin: true`
                None => Box::new(std::io::sink()),
            })
        } else {
            None
        };
        let (rt, wid, wdone) = (self.clone(), id.to_string(), done.clone());
        let cancel_done = done.clone();
        Ok(ProcessIo {
            stdin,
            stdout,
            stderr,
            resize: None,
            wait: Box::new(move || {
                while !wdone.load(Ordering::Relaxed) && rt.is_running(&wid) {
                    std::thread::sleep(FOLLOW);
                }
                Ok(0)
            }),
            cancel: Some(Box::new(move || cancel_done.store(true, Ordering::Relaxed))),
        })
    }

    fn is_running(&self, id: &str) -> bool {
        self.running(id).is_ok()
    }

    /// A writer to container `id`'s stdin FIFO (see [`open_stdin`]), if it has one; with
    /// `stdinOnce` the first attach that closes it closes the container's stdin for good.
    fn container_stdin(&self, id: &str) -> Option<Box<dyn Write + Send>> {
        let mut inner = self.inner.lock();
        let p = inner.procs.get_mut(id)?;
        if p.stdin.is_none() {
            p.stdin = open_stdin(&self.dir(id), false).ok().flatten();
        }
        let w = p.stdin.as_ref()?.try_clone().ok()?;
        Some(Box::new(StdinWriter {
            file: Some(w),
            once: p.st.stdin_once.then(|| (self.clone(), id.to_string())),
        }))
    }

    pub(super) fn stream_port_forward(
        &self,
        pod_uid: &str,
        port: u16,
    ) -> Result<std::net::TcpStream, StreamError> {
        let netns = self.pod_netns(pod_uid);
        let connect = move || -> Result<std::net::TcpStream, StreamError> {
            if let Some(ns) = &netns {
                let f = File::open(Path::new("/run/netns").join(ns))
                    .map_err(|e| failed(format!("network namespace {ns}: {e}")))?;
                nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| failed(format!("entering network namespace {ns}: {e}")))?;
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                .map_err(|e| failed(format!("failed to connect to localhost:{port}: {e}")))
        };
        if self.pod_netns(pod_uid).is_none() {
            return connect();
        }
        // setns changes the calling thread only: a thread of its own, which then ends
        std::thread::spawn(connect)
            .join()
            .map_err(|_| failed("port-forward thread failed"))?
    }
}

fn io_err(e: std::io::Error) -> RuntimeError {
    RuntimeError::Io(e.to_string())
}

/// Opens container stdin FIFO `<dir>/stdin` for writing (read-write, so opening never blocks
/// and the container sees no EOF while it is held); `create` makes the FIFO first. `None`: the
/// container has no stdin FIFO.
pub(super) fn open_stdin(dir: &Path, create: bool) -> std::io::Result<Option<File>> {
    let path = dir.join("stdin");
    if create {
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(std::io::Error::from)?;
    } else if !path.exists() {
        return Ok(None);
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map(Some)
}

/// Reads the master side of a pty: `EIO` once the last slave is closed (the command exited)
/// is the end of the output, not an error.
struct PtyReader(File);

impl Read for PtyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf) {
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(0),
            r => r,
        }
    }
}

/// Follows a container's raw output file from where it was opened until the container exits
/// or the session is cancelled (then reads what is left and ends).
struct Follower {
    file: File,
    pos: u64,
    rt: ProcessRuntime,
    id: String,
    done: Arc<AtomicBool>,
}

impl Read for Follower {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let len = self.file.metadata()?.len();
            if len < self.pos {
                self.pos = 0; // truncated by log collection
            }
            if len > self.pos {
                self.file.seek(SeekFrom::Start(self.pos))?;
                let n = self.file.read(buf)?;
                self.pos += n as u64;
                return Ok(n);
            }
            if self.done.load(Ordering::Relaxed) || !self.rt.is_running(&self.id) {
                return Ok(0);
            }
            std::thread::sleep(FOLLOW);
        }
    }
}

/// An attach's writer to a container's stdin FIFO; with `stdinOnce` (`once`), dropping it
/// closes the runtime's handle and removes the FIFO, so the container reads EOF.
struct StdinWriter {
    file: Option<File>,
    once: Option<(ProcessRuntime, String)>,
}

impl Write for StdinWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for StdinWriter {
    fn drop(&mut self) {
        self.file = None;
        if let Some((rt, id)) = self.once.take() {
            if let Some(p) = rt.inner.lock().procs.get_mut(&id) {
                p.stdin = None;
            }
            let _ = fs::remove_file(rt.dir(&id).join("stdin"));
        }
    }
}
