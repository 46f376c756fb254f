//! `orch validate` end to end: runs the built binary on files, directories and stdin.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn orch(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run orch");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("wait orch")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn example_manifests_are_valid_and_print_defaulted() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/manifests");
    let out = orch(&["validate", "-f", dir, "--defaults", "-o", "json"], None);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(v["kind"], "List");
    let items = v["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "Pod", "Service"]);
    // Defaults were applied.
    assert_eq!(items[1]["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(
        items[2]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(items[3]["spec"]["type"], "ClusterIP");
}

#[test]
fn errors_name_file_object_and_field_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: -2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx\n        imagePullPolicyy: Always\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  restartPolicy: Sometimes\n  containers:\n  - name: c\n    image: busybox\n---\napiVersion: example.com/v1\nkind: Shirt\nmetadata:\n  name: s\n",
    )
    .unwrap();
    let p = path.display().to_string();
    let out = orch(&["validate", "-f", &p], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing printed for invalid input");
    let lines: Vec<String> = text(&out.stderr).lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        [
            format!("{p}: Deployment/web: spec.template.spec.containers[0].imagePullPolicyy: unknown field \"imagePullPolicyy\""),
            format!("{p}: Pod/p: spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""),
            format!("{p}: Shirt/s: kind: no matches for kind \"Shirt\" in version \"example.com/v1\""),
        ]
    );
}

#[test]
fn stdin_json_list_and_yaml_output() {
    let list = r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}},
        {"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"},"stringData":{"p":"q"}}]}"#;
    let out = orch(&["validate", "-f", "-", "--defaults"], Some(list));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("kind: ConfigMap"), "{stdout}");
    assert!(stdout.contains("---\n"), "{stdout}");
    assert!(
        stdout.contains("type: Opaque"),
        "defaulted secret type: {stdout}"
    );

    let invalid = orch(&["validate", "-f", "-"], Some("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: x, resources: {requests: {cpu: 2}, limits: {cpu: 1}}}]}\n"));
    assert_eq!(invalid.status.code(), Some(1));
    assert_eq!(
        text(&invalid.stderr).trim(),
        "-: Pod/x: spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
    );

    let syntax = orch(&["validate", "-f", "-"], Some("apiVersion: v1\nkind: [\n"));
    assert_eq!(syntax.status.code(), Some(1));
    assert!(
        text(&syntax.stderr).starts_with("-: document 1, line"),
        "{}",
        text(&syntax.stderr)
    );
}

#[test]
fn missing_file_is_an_error() {
    let out = orch(&["validate", "-f", "/nonexistent/orch-validate.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/orch-validate.yaml"));
}
