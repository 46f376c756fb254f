//! Service cluster IPs and node ports on `orch up` with real kubectl (the one on PATH and the
//! bundled 1.33 and 1.27): `--service-cluster-ip-range` and `--service-node-port-range` are
//! honoured (the `kubernetes` Service takes the range's first address), `kubectl create
//! service` and `kubectl expose` Services show their CLUSTER-IP and `80:3xxxx/TCP` node ports,
//! requested values are honoured once and refused with upstream's messages when taken or out
//! of range, a deleted Service's address can be taken again, headless Services show `None`
//! and ExternalName ones their external name; after `kill -9` and a restart on the same data
//! dir every allocation is still there and new Services never get a taken value.

mod common;

use common::{kubectl_command, orch_bin, wait_for, TestEnv, Up};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const RANGE: &str = "10.100.0.0/24";
const PORTS: &str = "30000-30099";

/// The row of `kubectl get svc NAME`, split on whitespace.
fn row(env: &TestEnv, name: &str) -> Vec<String> {
    let out = env.kubectl(&["get", "svc", name, "--no-headers"]);
    out.split_whitespace().map(str::to_string).collect()
}

fn spec(env: &TestEnv, name: &str) -> Value {
    env.get_json(&["svc", name]).unwrap()["spec"].clone()
}

/// `kubectl create ARGS` is refused; its stderr.
fn refused(env: &TestEnv, args: &[&str]) -> String {
    env.kubectl_try(args)
        .expect_err("the request should be refused")
}

/// Every cluster IP and node port of every Service, checking none is held twice.
fn allocations(env: &TestEnv) -> (BTreeSet<String>, BTreeSet<i64>) {
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for s in env.get_items(&["svc", "-A"]).unwrap() {
        let ip = s["spec"]["clusterIP"].as_str().unwrap_or("");
        if !ip.is_empty() && ip != "None" {
            assert!(ips.insert(ip.to_string()), "{ip} held twice");
        }
        for p in s["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(np) = p["nodePort"].as_i64() {
                assert!(ports.insert(np), "node port {np} held twice");
            }
        }
    }
    (ips, ports)
}

/// Bad range flags are refused before anything starts.
#[test]
fn bad_ranges_are_refused() {
    let env = TestEnv::new();
    let data = env.data_dir();
    for (cmd, flag, value, why) in [
        (
            "up",
            "--service-cluster-ip-range",
            "10.0.0.0/8",
            "the mask must be >= 12",
        ),
        (
            "up",
            "--service-cluster-ip-range",
            "10.96.0.0",
            "not a CIDR",
        ),
        (
            "apiserver",
            "--service-node-port-range",
            "32767-30000",
            "not a port range",
        ),
    ] {
        let o = std::process::Command::new(orch_bin())
            .args([
                cmd,
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args([flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{cmd} {flag} {value}: {err}");
        assert!(err.contains(why), "{cmd} {flag} {value}: {err}");
    }
}

#[test]
fn service_ips_and_node_ports_with_kubectl() {
    let env = TestEnv::new();
    let extra = [
        "--service-cluster-ip-range",
        RANGE,
        "--service-node-port-range",
        PORTS,
    ];
    let mut up = Up::start(&env, 1, "sim", &extra);
    let k8s = wait_for("the kubernetes Service", WAIT, || {
        env.get_json(&["svc", "kubernetes"])
    });
    assert_eq!(k8s["spec"]["clusterIP"], "10.100.0.1", "{k8s}");

    // Dynamic allocation, shown by `kubectl get svc`.
    env.kubectl(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let r = row(&env, "web");
    assert_eq!(r[1], "ClusterIP");
    assert!(r[2].starts_with("10.100.0."), "{r:?}");
    assert_eq!(r[3], "<none>");
    assert_eq!(r[4], "80/TCP");
    let s = spec(&env, "web");
    assert_eq!(s["clusterIPs"][0], r[2].as_str());
    assert_eq!(s["ipFamilies"], serde_json::json!(["IPv4"]));
    assert_eq!(s["ipFamilyPolicy"], "SingleStack");

    // kubectl expose, as a NodePort Service.
    env.kubectl(&["create", "deployment", "app", "--image=busybox"]);
    env.kubectl(&[
        "expose",
        "deployment",
        "app",
        "--port=80",
        "--type=NodePort",
    ]);
    let r = row(&env, "app");
    assert_eq!(r[1], "NodePort");
    assert!(r[2].starts_with("10.100.0."), "{r:?}");
    let port: i64 = r[4]
        .strip_prefix("80:")
        .and_then(|p| p.strip_suffix("/TCP"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("PORT(S) {r:?}"));
    assert!((30000..30100).contains(&port), "{r:?}");

    // A requested address is honoured once; out of range is refused.
    env.kubectl(&[
        "create",
        "service",
        "clusterip",
        "fixed",
        "--tcp=80",
        "--clusterip=10.100.0.10",
    ]);
    assert_eq!(row(&env, "fixed")[2], "10.100.0.10");
    let e = refused(
        &env,
        &[
            "create",
            "service",
            "clusterip",
            "fixed2",
            "--tcp=80",
            "--clusterip=10.100.0.10",
        ],
    );
    assert!(
        e.contains("Service \"fixed2\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.100.0.10\"}: failed to allocate IP 10.100.0.10: provided IP is already allocated"),
        "{e}"
    );
    let e = refused(
        &env,
        &[
            "create",
            "service",
            "clusterip",
            "far",
            "--tcp=80",
            "--clusterip=10.200.0.1",
        ],
    );
    assert!(
        e.contains("failed to allocate IP 10.200.0.1: the provided IP (10.200.0.1) is not in the valid range. The range of valid IPs is 10.100.0.0/24"),
        "{e}"
    );

    // Node ports: requested, taken, out of range.
    env.kubectl(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:8080",
        "--node-port=30050",
    ]);
    assert_eq!(row(&env, "np")[4], "80:30050/TCP");
    let e = refused(
        &env,
        &[
            "create",
            "service",
            "nodeport",
            "np2",
            "--tcp=80",
            "--node-port=30050",
        ],
    );
    assert!(
        e.contains(
            "spec.ports[0].nodePort: Invalid value: 30050: provided port is already allocated"
        ),
        "{e}"
    );
    let e = refused(
        &env,
        &[
            "create",
            "service",
            "nodeport",
            "np3",
            "--tcp=80",
            "--node-port=31000",
        ],
    );
    assert!(
        e.contains(
            "provided port is not in the valid range. The range of valid ports is 30000-30099"
        ),
        "{e}"
    );

    // Delete frees: the address and the node port can be taken again.
    env.kubectl(&["delete", "svc", "fixed", "np"]);
    env.kubectl(&[
        "create",
        "service",
        "clusterip",
        "fixed2",
        "--tcp=80",
        "--clusterip=10.100.0.10",
    ]);
    env.kubectl(&[
        "create",
        "service",
        "nodeport",
        "np2",
        "--tcp=80",
        "--node-port=30050",
    ]);

    // Headless and ExternalName.
    env.kubectl(&[
        "create",
        "service",
        "clusterip",
        "hl",
        "--clusterip=None",
        "--tcp=80",
    ]);
    let r = row(&env, "hl");
    assert_eq!(r[2], "None", "{r:?}");
    env.kubectl(&[
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name=example.com",
    ]);
    let r = row(&env, "ext");
    assert_eq!(
        &r[1..5],
        ["ExternalName", "<none>", "example.com", "<none>"],
        "{r:?}"
    );

    // ClusterIP -> NodePort and back: node ports come and go with the type.
    env.kubectl(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    assert!(
        row(&env, "web")[4].starts_with("80:300"),
        "{:?}",
        row(&env, "web")
    );
    env.kubectl(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    assert_eq!(row(&env, "web")[4], "80/TCP");

    // kubectl 1.33 and 1.27 see and get the same.
    for minor in ["1.33", "1.27"] {
        let bin = common::bundled_kubectl(minor)
            .unwrap_or_else(|| panic!("kubectl {minor} beside the kubectl on PATH"));
        let run = |args: &[&str]| kubectl_command(&env, &bin).args(args).output().unwrap();
        let name = format!("v{}", minor.replace('.', "-"));
        let o = run(&["create", "service", "nodeport", &name, "--tcp=80"]);
        assert!(o.status.success(), "{minor}: {o:?}");
        let o = run(&["get", "svc", &name, "--no-headers"]);
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        let cols: Vec<&str> = text.split_whitespace().collect();
        assert!(cols[2].starts_with("10.100.0."), "{minor}: {text}");
        assert!(
            cols[4].starts_with("80:300") && cols[4].ends_with("/TCP"),
            "{minor}: {text}"
        );
        let o = run(&[
            "create",
            "service",
            "clusterip",
            "taken",
            "--tcp=80",
            "--clusterip=10.100.0.10",
        ]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            err.contains("spec.clusterIPs: Invalid value: []string{\"10.100.0.10\"}: failed to allocate IP 10.100.0.10: provided IP is already allocated"),
            "{minor}: {err}"
        );
    }

    // kill -9 and a restart on the data dir: allocations survive, new ones never collide.
    let before = allocations(&env);
    let web_ip = spec(&env, "web")["clusterIP"].clone();
    let port = up.addr.port();
    up.proc.kill9();
    drop(up);
    let _up = Up::start_on(&env, port, 1, "sim", &extra);
    assert_eq!(spec(&env, "web")["clusterIP"], web_ip);
    let e = refused(
        &env,
        &[
            "create",
            "service",
            "clusterip",
            "again",
            "--tcp=80",
            "--clusterip=10.100.0.10",
        ],
    );
    assert!(e.contains("provided IP is already allocated"), "{e}");
    for i in 0..15 {
        env.kubectl(&[
            "create",
            "service",
            "nodeport",
            &format!("n{i}"),
            "--tcp=80",
        ]);
    }
    let after = allocations(&env);
    assert!(after.0.is_superset(&before.0) && after.0.len() == before.0.len() + 15);
    assert!(after.1.is_superset(&before.1) && after.1.len() == before.1.len() + 15);
}

/// The in-process cluster (`orch::Cluster`, whose API server the simulator also runs) takes
/// the ranges and allocates through the same code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_cluster_allocates_the_same_way() {
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    use orch_apiserver::service_alloc::ServiceAllocConfig;
    use orch_types::client::Api;
    let ranges =
        ServiceAllocConfig::from_flags(Some("10.101.0.0/24"), Some("31000-31009")).expect("ranges");
    let cluster = orch::Cluster::builder()
        .nodes(1)
        .service_alloc(ranges)
        .start()
        .await
        .expect("start");
    let services: Api<Service> = Api::namespaced(cluster.client(), "default");
    let svc = Service {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("inproc".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let spec = services.create(&svc).await.expect("create").spec.unwrap();
    assert!(spec.cluster_ip.unwrap().starts_with("10.101.0."));
    let np = spec.ports.unwrap()[0].node_port.unwrap();
    assert!((31000..31010).contains(&np), "{np}");
    for _ in 0..100 {
        if let Some(k) = services.get_opt("kubernetes").await.expect("get") {
            assert_eq!(k.spec.unwrap().cluster_ip.as_deref(), Some("10.101.0.1"));
            cluster.shutdown().await.expect("clean shutdown");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no kubernetes Service");
}
