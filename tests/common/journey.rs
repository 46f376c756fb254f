//! The concepts journey of the README tour as reusable steps: each function drives a running
//! cluster (whatever started it: `orch up` or separate processes) through kubectl and asserts on
//! kubectl's output and on the objects.

use super::{pod_ready, summarize, wait_for, TestEnv};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// Generous bound for anything that involves starting real processes.
pub const T: Duration = Duration::from_secs(90);

/// Path of a file under `examples/`.
pub fn example(rel: &str) -> String {
    format!("{}/examples/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// Names of the items.
pub fn names(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

/// UIDs of the items.
pub fn uids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .filter_map(|i| i["metadata"]["uid"].as_str().map(str::to_string))
        .collect()
}

/// The controller owner reference `(kind, name, uid)` of an object, if any.
pub fn controller_of(obj: &Value) -> Option<(String, String, String)> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or_default().to_string(),
                r["name"].as_str().unwrap_or_default().to_string(),
                r["uid"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Not being deleted.
pub fn live(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_null()
}

/// Ready pods with the label selector, not terminating.
pub fn wait_ready_pods(env: &TestEnv, selector: &str, n: usize) -> Vec<Value> {
    env.wait_count(
        &format!("{n} ready pods with {selector}"),
        &["pods", "-l", selector],
        n,
        T,
        |p| pod_ready(p) && live(p),
    )
}

/// Waits until no object of `kind` matches the selector.
pub fn wait_none(env: &TestEnv, kind: &str, selector: &str) {
    wait_for(&format!("no {kind} with {selector}"), T, || {
        let items = env.get_items(&[kind, "-l", selector])?;
        if items.is_empty() {
            Ok(())
        } else {
            Err(summarize(&items))
        }
    });
}

/// Waits until `kubectl get KIND NAME` answers NotFound.
pub fn wait_gone(env: &TestEnv, kind: &str, name: &str) {
    wait_for(&format!("{kind}/{name} to be gone"), T, || {
        match env.kubectl_try(&["get", kind, name, "-o", "name"]) {
            Err(e) if e.contains("NotFound") || e.contains("not found") => Ok(()),
            Err(e) => Err(e),
            Ok(out) => Err(format!("still there: {out}")),
        }
    });
}

/// Images of the containers of the items' first container.
pub fn images(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .filter_map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// The Deployments part of the tour: rollout, pod-template-hash, history with change-cause,
/// undo, pause/resume, scale, cascading delete. Starts from an empty `default` namespace.
pub fn deployment_journey(env: &TestEnv) {
    env.kubectl(&["apply", "-f", &example("tour/deployment.yaml")]);
    let out = env.kubectl(&["rollout", "status", "deployment/app", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");

    // One ReplicaSet named after the pod-template-hash, which every pod carries.
    let rs = env.get_items(&["rs", "-l", "app=app"]).expect("list rs");
    assert_eq!(rs.len(), 1, "{rs:#?}");
    let hash = rs[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .expect("pod-template-hash label on the ReplicaSet")
        .to_string();
    assert_eq!(rs[0]["metadata"]["name"], format!("app-{hash}"));
    assert_eq!(
        rs[0]["spec"]["selector"]["matchLabels"]["pod-template-hash"], hash,
        "the ReplicaSet selector includes the hash"
    );
    assert_eq!(
        rs[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let pods = wait_ready_pods(env, "app=app", 3);
    for p in &pods {
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash);
        let (kind, name, _) = controller_of(p).expect("pod owned by its ReplicaSet");
        assert_eq!(
            (kind.as_str(), name.as_str()),
            ("ReplicaSet", &*format!("app-{hash}"))
        );
    }
    let table = env.kubectl(&["get", "deployment", "app"]);
    assert!(table.contains("3/3"), "READY column: {table}");

    // Rolling update to a new image, then its change-cause: the controller copies the
    // Deployment's annotations to the *new* ReplicaSet on every sync (upstream
    // `SetNewReplicaSetAnnotations`), so annotating before `set image` would relabel revision 1.
    env.kubectl(&["set", "image", "deployment/app", "app=busybox:1.37"]);
    env.kubectl(&[
        "annotate",
        "deployment/app",
        "kubernetes.io/change-cause=busybox 1.37",
        "--overwrite",
    ]);
    let out = env.kubectl(&["rollout", "status", "deployment/app", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = wait_ready_pods(env, "app=app", 3);
    assert_eq!(images(&pods), BTreeSet::from(["busybox:1.37".to_string()]));
    let rs = wait_for("old ReplicaSet scaled to 0", T, || {
        let rs = env.get_items(&["rs", "-l", "app=app"])?;
        let sizes: Vec<i64> = rs
            .iter()
            .map(|r| r["spec"]["replicas"].as_i64().unwrap_or(-1))
            .collect();
        let mut sorted = sizes.clone();
        sorted.sort();
        if sorted == [0, 3] {
            Ok(rs)
        } else {
            Err(format!("replicas {sizes:?}"))
        }
    });
    assert_eq!(rs.len(), 2);

    wait_for("rollout history with both change-causes", T, || {
        let hist = env.kubectl_try(&["rollout", "history", "deployment/app"])?;
        let has = |rev: char, cause: &str| {
            hist.lines()
                .any(|l| l.starts_with(rev) && l.trim_end().ends_with(cause))
        };
        if has('1', "busybox 1.36") && has('2', "busybox 1.37") {
            Ok(())
        } else {
            Err(hist)
        }
    });
    let rev1 = env.kubectl(&["rollout", "history", "deployment/app", "--revision=1"]);
    assert!(rev1.contains("busybox:1.36"), "{rev1}");

    // Undo: the 1.36 template comes back as revision 3 (revision 1 disappears from history).
    env.kubectl(&["rollout", "undo", "deployment/app"]);
    let out = env.kubectl(&["rollout", "status", "deployment/app", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let d = env
        .get_json(&["deployment", "app"])
        .expect("get deployment");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let pods = wait_for("pods back on busybox:1.36", T, || {
        let pods: Vec<Value> = env
            .get_items(&["pods", "-l", "app=app"])?
            .into_iter()
            .filter(|p| pod_ready(p) && live(p))
            .collect();
        if pods.len() == 3 && images(&pods) == BTreeSet::from(["busybox:1.36".to_string()]) {
            Ok(pods)
        } else {
            Err(summarize(&pods))
        }
    });
    assert!(pods
        .iter()
        .all(|p| p["metadata"]["labels"]["pod-template-hash"] == hash));
    let hist = env.kubectl(&["rollout", "history", "deployment/app"]);
    let revs: Vec<&str> = hist
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(revs, ["2", "3"], "history after undo:\n{hist}");

    // Pause: a template change is recorded but not rolled out; scaling still applies.
    env.kubectl(&["rollout", "pause", "deployment/app"]);
    env.kubectl(&["set", "image", "deployment/app", "app=busybox:1.38"]);
    env.kubectl(&["scale", "deployment/app", "--replicas=5"]);
    let pods = wait_ready_pods(env, "app=app", 5);
    assert_eq!(images(&pods), BTreeSet::from(["busybox:1.36".to_string()]));
    let rs = env.get_items(&["rs", "-l", "app=app"]).expect("list rs");
    assert_eq!(rs.len(), 2, "no new ReplicaSet while paused: {rs:#?}");
    let d = env
        .get_json(&["deployment", "app"])
        .expect("get deployment");
    assert_eq!(d["spec"]["paused"], true);

    env.kubectl(&["rollout", "resume", "deployment/app"]);
    let out = env.kubectl(&["rollout", "status", "deployment/app", "--timeout=150s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_for("5 ready pods on busybox:1.38", T, || {
        let pods: Vec<Value> = env
            .get_items(&["pods", "-l", "app=app"])?
            .into_iter()
            .filter(|p| pod_ready(p) && live(p))
            .collect();
        if pods.len() == 5 && images(&pods) == BTreeSet::from(["busybox:1.38".to_string()]) {
            Ok(())
        } else {
            Err(summarize(&pods))
        }
    });

    // Cascading delete: ReplicaSets and pods go with the Deployment.
    env.kubectl(&["delete", "deployment", "app", "--timeout=120s"]);
    wait_none(env, "rs", "app=app");
    wait_none(env, "pods", "app=app");
}
