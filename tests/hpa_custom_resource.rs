//! A HorizontalPodAutoscaler whose `scaleTargetRef` is a custom kind (issue 17): the Backup of
//! `examples/crd/backup-crd.yaml`, whose scale subresource is `.spec.workers` /
//! `.status.workers` / `.status.selector`. In process ([`orch::Cluster`], memory store, sim
//! runtime) and driven with real kubectl: the status selector (set by `kubectl patch
//! --subresource=status`, as a Backup controller would) selects the pods of a Deployment that
//! uses 200 % of its CPU request, so the autoscaler resolves `ops.example.org/v1 Backup`
//! through discovery, reads its scale from the cached object at the CRD's paths, and writes
//! `spec.workers` through `backups/scale`.

use orch::Cluster;
use std::time::{Duration, Instant};

/// Runs kubectl against `cluster`; the trimmed stdout, panicking with stderr on failure.
fn kubectl(cluster: &Cluster) -> impl Fn(&[&str]) -> String + Send + 'static {
    let kubeconfig = cluster.kubeconfig().expect("kubeconfig").to_path_buf();
    let cache = cluster.work_dir().join("kube-cache");
    move |args| {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

const WORKLOAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: busy
spec:
  replicas: 1
  selector:
    matchLabels:
      app: busy
  template:
    metadata:
      labels:
        app: busy
      annotations:
        sim.orch.dev/cpu-usage: 400m
        sim.orch.dev/memory-usage: 16Mi
    spec:
      containers:
      - name: app
        image: busybox
        resources:
          requests:
            cpu: 200m
---
apiVersion: ops.example.org/v1
kind: Backup
metadata:
  name: nightly
spec:
  database: orders
  workers: 1
"#;

const HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: nightly
spec:
  scaleTargetRef:
    apiVersion: ops.example.org/v1
    kind: Backup
    name: nightly
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 50
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaler_scales_a_custom_resource_through_its_scale_subresource() {
    let cluster = Cluster::builder().nodes(1).start().await.expect("start");
    let run = kubectl(&cluster);
    let dir = cluster.work_dir().to_path_buf();
    let (workers, active, scale, row) = tokio::task::spawn_blocking(move || {
        let crd = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/crd/backup-crd.yaml");
        run(&["apply", "-f", crd]);
        run(&[
            "wait",
            "--for=condition=Established",
            "crd/backups.ops.example.org",
            "--timeout=30s",
        ]);
        let (workload, hpa) = (dir.join("workload.yaml"), dir.join("hpa.yaml"));
        std::fs::write(&workload, WORKLOAD).expect("write manifest");
        std::fs::write(&hpa, HPA).expect("write manifest");
        run(&["apply", "-f", workload.to_str().expect("utf-8 path")]);
        // What a Backup controller reports: its workers and the pods they run as.
        run(&[
            "patch",
            "backup",
            "nightly",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"workers":1,"selector":"app=busy"}}"#,
        ]);
        run(&["rollout", "status", "deployment/busy", "--timeout=30s"]);
        run(&["apply", "-f", hpa.to_str().expect("utf-8 path")]);
        // 200 % of the request against a 50 % target: 1 → 3 (maxReplicas) at the first sync
        // that has a figure for the pod (metrics are polled every 15 s).
        let deadline = Instant::now() + Duration::from_secs(45);
        let workers = loop {
            let w = run(&[
                "get",
                "backup",
                "nightly",
                "-o",
                "jsonpath={.spec.workers}",
            ]);
            if w != "1" || Instant::now() > deadline {
                break w;
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        let active = run(&[
            "get",
            "hpa",
            "nightly",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="ScalingActive")].status}/{.status.conditions[?(@.type=="ScalingActive")].reason}/{.status.desiredReplicas}"#,
        ]);
        let scale = run(&[
            "get",
            "--raw",
            "/apis/ops.example.org/v1/namespaces/default/backups/nightly/scale",
        ]);
        (workers, active, scale, run(&["get", "hpa", "nightly"]))
    })
    .await
    .expect("join");
    assert_eq!(workers, "3", "spec.workers after the rescale");
    assert_eq!(active, "True/ValidMetricFound/3");
    let scale: serde_json::Value = serde_json::from_str(&scale).expect("a Scale");
    assert_eq!(scale["spec"]["replicas"], 3, "{scale}");
    assert_eq!(scale["status"]["selector"], "app=busy", "{scale}");
    let row: Vec<&str> = row
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["nightly", "Backup/nightly", "cpu:", "200%/50%"]);
    cluster.shutdown().await.expect("clean shutdown");
}
