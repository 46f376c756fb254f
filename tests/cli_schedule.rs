//! `orch schedule` end to end: decisions in queue order, `--explain` JSON, and bad input
//! reported with the document and field.

use std::process::Command;

fn orch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .output()
        .expect("run orch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scenario(name: &str) -> String {
    format!(
        "{}/orch-scheduler/tests/scenarios/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn schedules_in_queue_order_and_explains() {
    let (code, out, err) = orch(&["schedule", "-f", &scenario("preemption")]);
    assert_eq!(code, 0, "{err}");
    let decisions: Vec<serde_json::Value> = serde_yaml_ng::from_str(&out).unwrap();
    let order: Vec<(&str, &str)> = decisions
        .iter()
        .map(|d| (d["pod"].as_str().unwrap(), d["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        order,
        vec![
            ("default/urgent", "unschedulable"),
            ("default/urgent", "scheduled"),
            ("default/polite", "unschedulable"),
            ("default/filler", "unschedulable"),
        ]
    );
    assert_eq!(decisions[0]["victims"][0], "default/batch-1");

    let (code, out, _) = orch(&[
        "schedule",
        "-f",
        &scenario("taints"),
        "--explain",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[1]["node"], "plain");
    assert!(v[1]["explanation"]["nodes"].as_array().unwrap().len() == 4);
    assert!(v[1]["explanation"]["winner"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("plain scored"));
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(&f, "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, resources: {requests: {memory: 1Zi}}}]\n").unwrap();
    let (code, out, err) = orch(&["schedule", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("document 2: Pod/p") && err.contains("memory"),
        "{err}"
    );
}
