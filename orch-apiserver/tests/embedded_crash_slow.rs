//! Kill -9 durability of the embedded store: a child process writes with 16 concurrent writers
//! and prints every acknowledged write; the parent SIGKILLs it mid-load, reopens the directory
//! and checks that every acknowledged write is there and the revision never goes backwards.

use orch_apiserver::storage::{embedded::EmbeddedStore, Storage};
use orch_types::DynamicObject;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DIR_ENV: &str = "ORCH_CRASH_CHILD_DIR";
const ROUND_ENV: &str = "ORCH_CRASH_CHILD_ROUND";

/// The child: runs only when spawned by the parent test.
#[test]
fn slow_crash_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let round = std::env::var(ROUND_ENV).unwrap_or_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let s = std::sync::Arc::new(EmbeddedStore::open(&dir).unwrap());
        let mut tasks = Vec::new();
        for t in 0..16 {
            let s = s.clone();
            let round = round.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/registry/core/configmaps/default/r{round}-t{t}-{i}");
                    let v = s
                        .create(&key, DynamicObject::new("v1", "ConfigMap", "x"))
                        .await
                        .unwrap();
                    println!("ack {key} {}", v.mod_revision);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn slow_kill9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut max_seen = 0u64;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "slow_crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .env(ROUND_ENV, round.to_string())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acks = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, u64)>::new()));
        let sink = acks.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if parts.next() == Some("ack") {
                    let key = parts.next().unwrap().to_string();
                    let rev: u64 = parts.next().unwrap().parse().unwrap();
                    sink.lock().unwrap().push((key, rev));
                }
            }
        });
        // Kill mid-load: once the child has acknowledged a few hundred writes.
        let started = Instant::now();
        while acks.lock().unwrap().len() < 200 * (round + 1)
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let acks = acks.lock().unwrap().clone();
        assert!(
            !acks.is_empty(),
            "child acknowledged nothing in {:?}",
            started.elapsed()
        );

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            let rev = s.current_revision();
            for (key, r) in &acks {
                let v = s.get(key).await.unwrap();
                let v = v.unwrap_or_else(|| panic!("acknowledged write {key}@{r} lost"));
                assert_eq!(v.mod_revision, *r);
                assert!(*r <= rev);
            }
            assert!(
                rev >= max_seen,
                "revision went backwards: {rev} < {max_seen}"
            );
            max_seen = rev;
            let next = s
                .create(
                    &format!("/registry/x/after-{round}"),
                    DynamicObject::new("v1", "ConfigMap", "y"),
                )
                .await
                .unwrap();
            assert!(next.mod_revision > rev);
            max_seen = next.mod_revision;
        });
    }
}
