//! Disk full on the embedded store (issue 21): an API server whose data directory is on a small
//! tmpfs of the test's is written to until the filesystem is full. A write refused for lack of
//! space answers 500 with a Status naming the data directory and the full disk (as
//! kube-apiserver answers 500 when etcd reports `mvcc: database space exceeded`), reads keep
//! working from the store and the watch cache, and once a filler file placed on the same
//! filesystem beforehand is deleted, writes resume without a restart. Last, the store is
//! reopened on the same directory: every acknowledged write is there with its resourceVersion.
//!
//! Mounting needs root (CAP_SYS_ADMIN): without it the test says so and passes without running.

mod out_of_space;

use out_of_space::{
    agent, assert_reads, call, configmap, create_at_once, fill, listed, rv, watch_events, Kubectl,
    Server, NS,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Size of the tmpfs holding the data directory.
const FS_SIZE: &str = "12m";
/// The filler file, deleted to give space back.
const FILLER_BYTES: usize = 4 << 20;
/// Data in each ConfigMap: a few dozen fill the filesystem.
const VALUE_BYTES: usize = 96 << 10;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of [`FS_SIZE`] at `dir`; `None` when this process may not mount.
    fn mount(dir: &Path) -> Option<Self> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_SIZE}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Self {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Asserts `(status, body)` is the disk-full refusal for the data directory `data`.
fn assert_disk_full(status: u16, body: &Value, data: &Path) {
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], 500, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no space left on device")
            && message.contains(&data.display().to_string()),
        "the message names the full disk and the data directory: {message}"
    );
}

#[test]
fn embedded_store_refuses_writes_when_the_disk_is_full_and_resumes_when_space_returns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount(tmp.path()) else {
        eprintln!(
            "SKIPPED embedded_store_refuses_writes_when_the_disk_is_full_and_resumes_when_space_\
             returns: mounting a tmpfs needs root (CAP_SYS_ADMIN)"
        );
        return;
    };
    let filler = fs.dir.join("filler");
    std::fs::write(&filler, vec![0xa5u8; FILLER_BYTES]).expect("write the filler file");
    let data = fs.dir.join("data");
    let server = Server::start(orch_apiserver::ApiServerConfig::embedded(&data));
    let agent = agent();
    let url = server.url.clone();
    let collection = format!("{url}/api/v1/namespaces/{NS}/configmaps");

    // Fill the filesystem: every 201 is an acknowledged write.
    let full = fill(&agent, &collection, VALUE_BYTES);
    let (mut acked, order, refused) = (full.acked, full.order, full.refused);
    assert_disk_full(full.status, &full.body, &data);

    // Still full: an update and a delete are refused the same way, and nothing changes.
    let first = order[0].clone();
    let (_, mut current) = call(&agent, "GET", &format!("{collection}/{first}"), None);
    current["data"]["v"] = Value::String("y".repeat(VALUE_BYTES));
    let (status, body) = call(
        &agent,
        "PUT",
        &format!("{collection}/{first}"),
        Some(&current),
    );
    assert_disk_full(status, &body, &data);
    let (status, body) = call(
        &agent,
        "POST",
        &collection,
        Some(&configmap(&refused, VALUE_BYTES)),
    );
    assert_disk_full(status, &body, &data);
    // Concurrent writes (committed as one batch or a few) are all refused.
    let bodies = (0..8)
        .map(|i| configmap(&format!("par-{i}"), VALUE_BYTES))
        .collect();
    for (status, body) in create_at_once(&agent, &collection, bodies) {
        assert_disk_full(status, &body, &data);
    }
    // kubectl shows the refusal as kube-apiserver's 500 and still reads.
    let kubectl = Kubectl::new(&url);
    let kubectl = |args: &[&str]| kubectl.run(args);
    let literal = format!("v={}", "k".repeat(VALUE_BYTES));
    let out = kubectl(&[
        "create",
        "configmap",
        "by-kubectl",
        "--from-literal",
        &literal,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "kubectl create on a full disk succeeded"
    );
    assert!(
        stderr.contains("Internal error occurred: no space left on device")
            && stderr.contains(&data.display().to_string()),
        "kubectl create on a full disk: {stderr}"
    );
    let out = kubectl(&["get", "configmaps", "-n", NS, "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("configmap/").map(str::to_string))
        .collect();
    assert_eq!(
        names.len(),
        acked.len(),
        "kubectl get on a full disk: {names:?}"
    );

    // Reads keep working: from the store and from the watch cache.
    assert_reads(&agent, &url, &acked, &first);

    // Space returns: writes resume on the same server.
    std::fs::remove_file(&filler).expect("delete the filler file");
    let (status, body) = call(
        &agent,
        "POST",
        &collection,
        Some(&configmap(&refused, VALUE_BYTES)),
    );
    assert_eq!(status, 201, "a write after space returned: {body}");
    acked.insert(refused.clone(), rv(&body));
    let acked_rv_of_first = acked[&first].clone();
    let (status, body) = call(&agent, "DELETE", &format!("{collection}/{first}"), None);
    assert_eq!(status, 200, "a delete after space returned: {body}");
    acked.remove(&first);
    assert_eq!(listed(&agent, &url, ""), acked, "list after space returned");

    // The watch cache saw exactly the acknowledged writes: a watch from the first write's
    // resourceVersion replays every later create, the one after space returned and the delete,
    // in order, and nothing of the refused writes.
    let from = &acked_rv_of_first;
    let mut expected: Vec<(String, String)> = order[1..]
        .iter()
        .map(|name| ("ADDED".to_string(), name.clone()))
        .collect();
    expected.push(("ADDED".into(), refused));
    expected.push(("DELETED".into(), first.clone()));
    let events = watch_events(&agent, &collection, from);
    assert_eq!(events, expected, "watch from {from}");

    // Every acknowledged write survives a restart of the store, with its resourceVersion.
    server.shutdown();
    let server = Server::start(orch_apiserver::ApiServerConfig::embedded(&data));
    assert_eq!(
        listed(&agent, &server.url, ""),
        acked,
        "list after reopening the store"
    );
    server.shutdown();
    drop(fs);
}
