//! A real `etcd` server for one test: loopback ports, a data directory in the test's temporary
//! directory, killed when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `etcd-server` package installs the server.
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// How long a fresh single-member etcd may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `etcd` child process.
pub struct EtcdServer {
    child: Child,
    /// The client URL (`http://127.0.0.1:PORT`).
    pub url: String,
    log: PathBuf,
}

fn free_port() -> u16 {
    // The port is free once the listener is dropped; etcd binds it right after.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

impl EtcdServer {
    /// Starts a single-member etcd with its data under `dir` and waits until it answers.
    ///
    /// Panics (failing the test) if `/usr/bin/etcd` is missing: the etcd tests need Debian's
    /// `etcd-server` package, which CI installs.
    pub async fn start(dir: &Path) -> Self {
        assert!(
            Path::new(ETCD_BIN).exists(),
            "{ETCD_BIN} is missing: the etcd storage tests run a real etcd; install it with \
             `apt-get install etcd-server`"
        );
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = dir.join("etcd.log");
        let out = std::fs::File::create(&log).expect("create the etcd log");
        let err = out.try_clone().expect("clone the etcd log handle");
        let child = Command::new(ETCD_BIN)
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.join("etcd-data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {ETCD_BIN}: {e}"));
        let mut server = Self { child, url, log };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "etcd exited with {status} before answering:\n{}",
                    self.log()
                );
            }
            if let Ok(mut c) = etcd_client::Client::connect([self.url.as_str()], None).await {
                if c.status().await.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What etcd printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
