//! Garbage collection and namespace deletion of custom objects with real kubectl: the Backup
//! CRD of `examples/crd/backup-crd.yaml`, owner references both ways between Backups
//! and built-in kinds, the three `--cascade` modes, `kubectl delete namespace` with Backups
//! in it, and the CRD deleted while the collector watches Backups. Once on `orch up` (the
//! controllers on the in-process client) and once with `orch controller-manager` over HTTP
//! (discovery through the API's aggregated discovery).

mod common;

use std::time::Duration;

use common::{wait_for, Split, TestEnv, Up};

const WAIT: Duration = Duration::from_secs(20);

fn crd_manifest() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/crd/backup-crd.yaml");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn uid(env: &TestEnv, args: &[&str]) -> String {
    let v = env.get_json(args).unwrap_or_else(|e| panic!("{e}"));
    v["metadata"]["uid"].as_str().expect("uid").to_string()
}

/// `ownerReferences` YAML naming one owner.
fn owner(api_version: &str, kind: &str, name: &str, uid: &str, block: bool) -> String {
    format!(
        "  ownerReferences:\n  - apiVersion: {api_version}\n    kind: {kind}\n    name: {name}\n    uid: {uid}\n    blockOwnerDeletion: {block}\n"
    )
}

fn backup(ns: &str, name: &str, owners: &str) -> String {
    format!(
        "apiVersion: ops.example.org/v1\nkind: Backup\nmetadata:\n  name: {name}\n  namespace: {ns}\n{owners}spec:\n  database: db-{name}\n"
    )
}

fn config_map(ns: &str, name: &str, owners: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n{owners}"
    )
}

fn gone(env: &TestEnv, args: &[&str]) {
    wait_for(&format!("{} to go", args.join(" ")), WAIT, || {
        match env.kubectl_try(&[&["get"], args, &["-o", "name"]].concat()) {
            Err(e) if e.contains("NotFound") || e.contains("not found") => Ok(()),
            Err(e) => Err(e),
            Ok(out) => Err(format!("still there: {out}")),
        }
    });
}

fn journey(env: &TestEnv) {
    let ns = "default";
    env.apply(&crd_manifest());
    wait_for("backups to be served", WAIT, || {
        env.kubectl_try(&["get", "backups", "-n", ns]).map(|_| ())
    });

    // A ConfigMap owned by a Backup goes with it (kubectl's default, background).
    env.apply(&backup(ns, "parent", ""));
    let parent = uid(env, &["backup", "parent", "-n", ns]);
    env.apply(&config_map(
        ns,
        "child",
        &owner("ops.example.org/v1", "Backup", "parent", &parent, false),
    ));
    env.kubectl(&["delete", "backup", "parent", "-n", ns]);
    gone(env, &["configmap", "child", "-n", ns]);

    // A Backup owned by a Deployment goes with it.
    env.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: keeper\n  namespace: default\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: keeper}\n  template:\n    metadata:\n      labels: {app: keeper}\n    spec:\n      containers:\n      - {name: c, image: busybox}\n",
    );
    let keeper = uid(env, &["deployment", "keeper", "-n", ns]);
    env.apply(&backup(
        ns,
        "kept",
        &owner("apps/v1", "Deployment", "keeper", &keeper, false),
    ));
    env.kubectl(&["delete", "deployment", "keeper", "-n", ns]);
    gone(env, &["backup", "kept", "-n", ns]);

    // Foreground: the Backup waits for its blocking ConfigMap, then goes.
    env.apply(&backup(ns, "fg", ""));
    let fg = uid(env, &["backup", "fg", "-n", ns]);
    env.apply(&config_map(
        ns,
        "fg-dep",
        &owner("ops.example.org/v1", "Backup", "fg", &fg, true),
    ));
    env.kubectl(&[
        "delete",
        "backup",
        "fg",
        "-n",
        ns,
        "--cascade=foreground",
        "--wait=false",
    ]);
    gone(env, &["configmap", "fg-dep", "-n", ns]);
    gone(env, &["backup", "fg", "-n", ns]);

    // Orphan: the Backup goes, its ConfigMap stays without the reference.
    env.apply(&backup(ns, "op", ""));
    let op = uid(env, &["backup", "op", "-n", ns]);
    // A second reference, to an owner that never existed, which the collector strips when it
    // looks at the ConfigMap: once it is gone the collector knows the dependent, and orphaning
    // will find it (upstream's `TestOrphaning` waits for the collector the same way).
    let never = owner(
        "v1",
        "ConfigMap",
        "never-was",
        "00000000-0000-0000-0000-000000000000",
        false,
    );
    let both = owner("ops.example.org/v1", "Backup", "op", &op, true)
        + never.trim_start_matches("  ownerReferences:\n");
    env.apply(&config_map(ns, "op-dep", &both));
    wait_for("the collector to see op-dep", WAIT, || {
        let v = env.get_json(&["configmap", "op-dep", "-n", ns])?;
        match v["metadata"]["ownerReferences"]
            .as_array()
            .map_or(0, Vec::len)
        {
            1 => Ok(()),
            n => Err(format!("{n} references")),
        }
    });
    env.kubectl(&["delete", "backup", "op", "-n", ns, "--cascade=orphan"]);
    gone(env, &["backup", "op", "-n", ns]);
    let dep = env
        .get_json(&["configmap", "op-dep", "-n", ns])
        .expect("kept");
    assert!(
        dep["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "orphaned: {dep}"
    );

    // kubectl delete namespace removes the Backups in it, and the namespace goes.
    env.kubectl(&["create", "namespace", "gc-e2e"]);
    env.apply(&backup("gc-e2e", "b1", ""));
    env.apply(&backup("gc-e2e", "b2", ""));
    env.kubectl(&["delete", "namespace", "gc-e2e", "--timeout=20s"]);
    gone(env, &["namespace", "gc-e2e"]);
    let left = env
        .get_items(&["backups", "-A"])
        .expect("list backups")
        .into_iter()
        .filter(|b| b["metadata"]["namespace"] == "gc-e2e")
        .count();
    assert_eq!(left, 0);

    // The CRD goes while the collector watches Backups: it keeps collecting.
    env.apply(&backup(ns, "last", ""));
    let last = uid(env, &["backup", "last", "-n", ns]);
    env.apply(&config_map(
        ns,
        "of-last",
        &owner("ops.example.org/v1", "Backup", "last", &last, false),
    ));
    env.kubectl(&["delete", "crd", "backups.ops.example.org", "--timeout=20s"]);
    gone(env, &["configmap", "of-last", "-n", ns]);
    env.apply(&config_map(ns, "after", ""));
    let after = uid(env, &["configmap", "after", "-n", ns]);
    env.apply(&config_map(
        ns,
        "after-dep",
        &owner("v1", "ConfigMap", "after", &after, false),
    ));
    env.kubectl(&["delete", "configmap", "after", "-n", ns]);
    gone(env, &["configmap", "after-dep", "-n", ns]);
}

#[test]
fn custom_objects_are_collected_on_orch_up() {
    let env = TestEnv::new();
    let _up = Up::start(&env, 0, "process", &[]);
    journey(&env);
}

#[test]
fn custom_objects_are_collected_by_a_controller_manager_over_http() {
    let env = TestEnv::new();
    let mut split = Split::apiserver(&env);
    split.component(&env, "controller-manager", "controller-manager", &[]);
    journey(&env);
}
