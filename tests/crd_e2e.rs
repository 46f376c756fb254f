//! CustomResourceDefinitions with real kubectl (the version the server picks, 1.33, and 1.27)
//! against `orch apiserver`: a CRD applied becomes a served kind that get (server-side
//! columns), field selectors, explain, describe, patch, client- and server-side apply, edit,
//! scale and delete work on; a deleted CRD takes its objects with it. The Kubernetes docs'
//! Shirt example (`shared/corpus`) runs too when the corpus is beside the repository.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bundled_kubectl, wait_for, Split, TestEnv};
use serde_json::Value;

/// One kubectl binary with the test's kubeconfig and cache.
struct Kubectl<'a> {
    bin: PathBuf,
    env: &'a TestEnv,
}

impl Kubectl<'_> {
    fn run_with(&self, args: &[&str], editor: Option<&str>) -> Result<String, String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.env.kubeconfig)
            .arg("--cache-dir")
            .arg(self.env.path().join("kube-cache"))
            .arg("--request-timeout=30s")
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        if let Some(e) = editor {
            cmd.env("KUBE_EDITOR", e);
        }
        let o = cmd
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin.display()));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() {
            Ok(out)
        } else {
            Err(format!(
                "kubectl {} failed: {}{out}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
            ))
        }
    }

    fn try_run(&self, args: &[&str]) -> Result<String, String> {
        self.run_with(args, None)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.try_run(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
    }
}

fn manifest(name: &str) -> String {
    format!("{}/examples/crd/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The Kubernetes website examples beside the repository, if present.
fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/kubernetes-website-examples/customresourcedefinition");
    p.is_dir().then_some(p)
}

fn journey(k: &Kubectl<'_>, ns: &str) {
    k.ok(&["create", "namespace", ns]);
    let created = k.ok(&["apply", "-f", &manifest("backup-crd.yaml")]);
    assert!(
        created.contains("customresourcedefinition.apiextensions.k8s.io/backups.ops.example.org"),
        "{created}"
    );
    k.ok(&[
        "wait",
        "--for=condition=established",
        "--timeout=30s",
        "crd/backups.ops.example.org",
    ]);
    let ext = k.ok(&["get", "api-extensions", "-o", "name"]);
    assert!(
        ext.contains("customresourcedefinition.apiextensions.k8s.io/backups.ops.example.org"),
        "{ext}"
    );
    let out = k.ok(&["apply", "-n", ns, "-f", &manifest("backups.yaml")]);
    assert!(
        out.contains("backup.ops.example.org/orders created"),
        "{out}"
    );

    // Server-side columns, short name and category.
    let table = k.ok(&["get", "bk", "-n", ns]);
    let header = table.lines().next().unwrap_or_default();
    for col in ["NAME", "DATABASE", "SCHEDULE", "WORKERS", "AGE"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("users") && l.contains("30 1 * * *")),
        "{table}"
    );
    let all = k.ok(&["get", "all", "-n", ns, "-o", "name"]);
    assert!(all.contains("backup.ops.example.org/orders"), "{all}");

    // Defaults from the schema; selectable fields.
    let orders = k.json(&["backup", "orders", "-n", ns]);
    assert_eq!(orders["spec"]["schedule"], "0 3 * * *", "{orders}");
    assert_eq!(orders["spec"]["keep"], 7, "{orders}");
    let by_db = k.ok(&[
        "get",
        "backups",
        "-n",
        ns,
        "--field-selector",
        "spec.database=users",
        "-o",
        "name",
    ]);
    assert_eq!(by_db.trim(), "backup.ops.example.org/users");

    // Validation: 422 with the field named; nothing stored.
    let bad = k
        .try_run(&[
            "patch",
            "backup",
            "orders",
            "-n",
            ns,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"keep":0}}"#,
        ])
        .expect_err("keep: 0 is below the minimum");
    assert!(bad.contains("spec.keep"), "{bad}");
    assert_eq!(k.json(&["backup", "orders", "-n", ns])["spec"]["keep"], 7);

    // Strategic merge patch is not offered for custom resources, as upstream.
    let smp = k
        .try_run(&[
            "patch",
            "backup",
            "orders",
            "-n",
            ns,
            "-p",
            r#"{"spec":{"keep":3}}"#,
        ])
        .expect_err("strategic merge patch refused");
    assert!(
        smp.contains("UnsupportedMediaType") || smp.contains("unknown format"),
        "{smp}"
    );

    // explain reads the published OpenAPI schema.
    let explain = k.ok(&["explain", "backup.spec"]);
    assert!(
        explain.contains("database") && explain.contains("The database to back up"),
        "{explain}"
    );

    // describe, edit, server-side apply.
    let described = k.ok(&["describe", "backup", "users", "-n", ns]);
    assert!(described.contains("users"), "{described}");
    let editor = k.env.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/30 1 \\* \\* \\*/45 2 * * */' \"$1\"\n",
    )
    .expect("write editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod editor");
    k.run_with(
        &["edit", "backup", "users", "-n", ns],
        Some(editor.to_str().expect("utf-8 path")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        k.json(&["backup", "users", "-n", ns])["spec"]["schedule"],
        "45 2 * * *"
    );
    let ssa = std::env::temp_dir().join(format!("orch-crd-ssa-{}.yaml", std::process::id()));
    std::fs::write(
        &ssa,
        "apiVersion: ops.example.org/v1\nkind: Backup\nmetadata:\n  name: audit\nspec:\n  database: audit\n  keep: 30\n",
    )
    .expect("write manifest");
    k.ok(&[
        "apply",
        "--server-side",
        "-n",
        ns,
        "-f",
        ssa.to_str().expect("utf-8 path"),
    ]);
    let audit = k.json(&["backup", "audit", "-n", ns, "--show-managed-fields"]);
    assert_eq!(audit["spec"]["keep"], 30);
    assert!(
        audit["metadata"]["managedFields"]
            .as_array()
            .is_some_and(|m| m
                .iter()
                .any(|f| f["manager"] == "kubectl" && f["operation"] == "Apply")),
        "{audit}"
    );

    // scale through the CRD's scale subresource.
    k.ok(&["scale", "backup/orders", "-n", ns, "--replicas=3"]);
    assert_eq!(
        k.json(&["backup", "orders", "-n", ns])["spec"]["workers"],
        3
    );

    // Deleting the CRD deletes its objects, then the resource is gone.
    k.ok(&["delete", "crd", "backups.ops.example.org", "--timeout=60s"]);
    let gone = wait_for(
        "backups to be unserved",
        Duration::from_secs(30),
        || match k.try_run(&["get", "backups", "-n", ns]) {
            Err(e) => Ok(e),
            Ok(out) => Err(format!("still served: {out}")),
        },
    );
    // With kubectl's discovery cache from before the delete, the list itself gets 404.
    assert!(
        gone.contains("the server doesn't have a resource type")
            || gone.contains("the server could not find the requested resource"),
        "{gone}"
    );
}

fn shirts(k: &Kubectl<'_>, dir: &Path) {
    let crd = dir.join("shirt-resource-definition.yaml");
    k.ok(&["apply", "-f", crd.to_str().expect("utf-8 path")]);
    k.ok(&[
        "wait",
        "--for=condition=established",
        "--timeout=30s",
        "crd/shirts.stable.example.com",
    ]);
    let objs = dir.join("shirt-resources.yaml");
    k.ok(&["apply", "-f", objs.to_str().expect("utf-8 path")]);
    let blue = k.ok(&[
        "get",
        "shirts",
        "--field-selector",
        "spec.color=blue",
        "-o",
        "name",
    ]);
    let names: Vec<&str> = blue.lines().collect();
    assert_eq!(
        names,
        [
            "shirt.stable.example.com/example1",
            "shirt.stable.example.com/example2"
        ]
    );
    let table = k.ok(&["get", "shirts"]);
    assert!(
        table.lines().next().unwrap_or_default().contains("COLOR"),
        "{table}"
    );
    k.ok(&["delete", "crd", "shirts.stable.example.com"]);
}

#[test]
fn crd_journey_with_kubectl() {
    let env = TestEnv::new();
    let _api = Split::apiserver(&env);
    let current = Kubectl {
        bin: PathBuf::from("kubectl"),
        env: &env,
    };
    journey(&current, "crd-current");
    if let Some(dir) = corpus() {
        shirts(&current, &dir);
    } else {
        eprintln!("note: shared/corpus not beside the repository; the Shirt example is skipped");
    }
    match bundled_kubectl("1.27") {
        Some(bin) => journey(&Kubectl { bin, env: &env }, "crd-127"),
        None => eprintln!("note: kubectl 1.27 is not installed; its journey is skipped"),
    }
}
