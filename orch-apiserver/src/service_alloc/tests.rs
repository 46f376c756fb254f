use super::*;
use crate::rest::update::{Part, UpdateOutcome};
use crate::storage::memory::MemoryStore;
use crate::storage::SharedStorage;
use crate::ApiServerConfig;
use orch_types::client::{DeleteParams, PostParams};
use std::sync::Arc;

fn info() -> Resource {
    orch_types::registry::by_kind("v1", "Service").unwrap()
}

fn config() -> ApiServerConfig {
    ApiServerConfig {
        services: ServiceAllocConfig {
            // Long enough that the loop started with the server never runs twice in a test.
            repair_interval: Duration::from_secs(3600),
            ..ServiceAllocConfig::from_flags(Some("10.96.0.0/24"), Some("30000-30099")).unwrap()
        },
        ..ApiServerConfig::memory()
    }
}

async fn server(storage: &SharedStorage) -> Arc<ApiServer> {
    ApiServer::start(storage.clone(), config()).await.unwrap()
}

fn store() -> SharedStorage {
    Arc::new(MemoryStore::new())
}

fn svc(name: &str, spec: Value) -> DynamicObject {
    let mut o = DynamicObject::new("v1", "Service", name);
    o.metadata.namespace = Some("default".into());
    o.data.insert("spec".into(), spec);
    o
}

fn web(name: &str) -> DynamicObject {
    svc(
        name,
        json!({"selector": {"app": name}, "ports": [{"port": 80}]}),
    )
}

async fn create(api: &ApiServer, o: DynamicObject) -> Result<Value, ApiError> {
    create_with(api, o, false).await
}

async fn create_with(api: &ApiServer, o: DynamicObject, dry_run: bool) -> Result<Value, ApiError> {
    let p = PostParams {
        dry_run,
        ..Default::default()
    };
    let w = api.create_object(info(), Some("default"), o, &p).await?;
    Ok(w.object.data["spec"].clone())
}

async fn update(api: &ApiServer, o: DynamicObject) -> Result<Value, ApiError> {
    let name = o.name().to_string();
    let out = api
        .update_object(
            info(),
            Some("default"),
            &name,
            Part::Main,
            o,
            &PostParams::default(),
        )
        .await?;
    match out {
        UpdateOutcome::Updated(w) | UpdateOutcome::Created(w) | UpdateOutcome::Deleted(w) => {
            Ok(w.object.data["spec"].clone())
        }
    }
}

async fn delete(api: &ApiServer, name: &str) {
    api.delete_object(info(), Some("default"), name, &DeleteParams::default())
        .await
        .unwrap();
}

async fn records(storage: &SharedStorage) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for prefix in [IP_PREFIX, NODE_PORT_PREFIX] {
        let l = storage.list(prefix, &Default::default()).await.unwrap();
        keys.extend(l.items.into_iter().map(|(k, _)| k));
    }
    keys
}

#[test]
fn flags_parse_as_upstreams() {
    let c = ServiceAllocConfig::from_flags(None, None).unwrap();
    assert_eq!(c.cluster_ip_range.to_string(), "10.96.0.0/12");
    assert_eq!(c.kubernetes_service_ip().to_string(), "10.96.0.1");
    assert_eq!(c.cluster_ip_range.size(), (1 << 20) - 2);
    assert_eq!(c.cluster_ip_range.static_band(), 256);
    assert_eq!(c.node_port_range.to_string(), "30000-32767");
    assert_eq!(c.node_port_range.static_band(), 86);
    let r = IpRange::parse("10.0.0.7/24").unwrap();
    assert_eq!(r.to_string(), "10.0.0.0/24");
    assert_eq!(r.offset("10.0.0.1".parse().unwrap()), Some(0));
    assert_eq!(r.offset("10.0.0.255".parse().unwrap()), None, "broadcast");
    assert_eq!(r.offset("10.0.0.0".parse().unwrap()), None, "network");
    assert_eq!(r.offset("10.0.1.1".parse().unwrap()), None);
    let v6 = IpRange::parse("fd00::/108").unwrap();
    assert_eq!(v6.family(), "IPv6");
    assert_eq!(v6.first().to_string(), "fd00::1");
    assert_eq!(
        PortRange::parse("30000+99").unwrap().to_string(),
        "30000-30099"
    );
    assert_eq!(PortRange::parse("8080").unwrap().size, 1);
    for bad in ["10.96.0.0", "10.96.0.0/33", "x/12", "10.0.0.0/32"] {
        assert!(IpRange::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        IpRange::parse("10.0.0.0/8").unwrap_err(),
        "specified --service-cluster-ip-range is too large; for 32-bit addresses, the mask must be >= 12"
    );
    assert!(IpRange::parse("10.96.0.0/12,fd00::/108")
        .unwrap_err()
        .contains("dual-stack"));
    for bad in ["", "0-10", "32767-30000", "a-b", "65535+2"] {
        assert!(PortRange::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_service_gets_an_address_above_the_static_band() {
    let storage = store();
    let api = server(&storage).await;
    let spec = create(&api, web("web")).await.unwrap();
    let ip: IpAddr = spec["clusterIP"].as_str().unwrap().parse().unwrap();
    let off = api
        .service_alloc
        .config()
        .cluster_ip_range
        .offset(ip)
        .unwrap();
    assert!(off >= 16, "dynamic allocations avoid the static band: {ip}");
    assert_eq!(spec["clusterIPs"], json!([ip.to_string()]));
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(records(&storage).await, vec![format!("{IP_PREFIX}{ip}")]);
    let r = storage
        .get(&ip_key(&ip.to_string()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.object.types.kind, "IPAddress");
    assert_eq!(
        r.object.data["spec"]["parentRef"],
        json!({"group": "", "resource": "services", "namespace": "default", "name": "web"})
    );
}

#[tokio::test]
async fn a_requested_address_is_honoured_once() {
    let storage = store();
    let api = server(&storage).await;
    let mut a = web("a");
    a.data["spec"]["clusterIP"] = json!("10.96.0.10");
    let spec = create(&api, a).await.unwrap();
    assert_eq!(spec["clusterIP"], "10.96.0.10");
    assert_eq!(spec["clusterIPs"], json!(["10.96.0.10"]));
    let mut b = web("b");
    b.data["spec"]["clusterIPs"] = json!(["10.96.0.10"]);
    let e = create(&api, b).await.unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "Service \"b\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.10\"}: failed to allocate IP 10.96.0.10: provided IP is already allocated"
    );
    let mut c = web("c");
    c.data["spec"]["clusterIP"] = json!("10.97.0.1");
    let e = create(&api, c).await.unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "Service \"c\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.97.0.1\"}: failed to allocate IP 10.97.0.1: the provided IP (10.97.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/24"
    );
    let mut d = web("d");
    d.data["spec"]["clusterIP"] = json!("fd00::1");
    let e = create(&api, d).await.unwrap_err();
    assert!(
        e.message.contains("spec.clusterIPs[0]: Invalid value: []string{\"fd00::1\"}: IPv6 is not configured on this cluster"),
        "{}",
        e.message
    );
    let mut e2 = web("e");
    e2.data["spec"]["ipFamilyPolicy"] = json!("RequireDualStack");
    let e = create(&api, e2).await.unwrap_err();
    assert!(e
        .message
        .contains("this cluster is not configured for dual-stack services"));
    // Nothing half-allocated by the refusals.
    assert_eq!(
        records(&storage).await,
        vec![format!("{IP_PREFIX}10.96.0.10")]
    );
    // Delete frees: the address can be taken again.
    delete(&api, "a").await;
    assert!(records(&storage).await.is_empty());
    let mut b = web("b");
    b.data["spec"]["clusterIP"] = json!("10.96.0.10");
    assert_eq!(create(&api, b).await.unwrap()["clusterIP"], "10.96.0.10");
}

#[tokio::test]
async fn headless_and_external_name_services_get_no_address() {
    let storage = store();
    let api = server(&storage).await;
    let mut h = web("h");
    h.data["spec"]["clusterIP"] = json!("None");
    let spec = create(&api, h).await.unwrap();
    assert_eq!(spec["clusterIPs"], json!(["None"]));
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    let spec = create(
        &api,
        svc("hs", json!({"clusterIP": "None", "ports": [{"port": 80}]})),
    )
    .await
    .unwrap();
    assert_eq!(
        spec["ipFamilyPolicy"], "RequireDualStack",
        "selectorless headless"
    );
    assert_eq!(spec["ipFamilies"], json!(["IPv4", "IPv6"]));
    let spec = create(
        &api,
        svc(
            "x",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ),
    )
    .await
    .unwrap();
    assert!(spec.get("clusterIP").is_none());
    assert!(spec.get("ipFamilies").is_none());
    assert!(records(&storage).await.is_empty());
    // ExternalName -> ClusterIP allocates; back to ExternalName releases.
    let mut x = svc("x", json!({"type": "ClusterIP", "ports": [{"port": 80}]}));
    x.data["spec"]["selector"] = json!({"app": "x"});
    let spec = update(&api, x).await.unwrap();
    let ip = spec["clusterIP"].as_str().unwrap().to_string();
    assert_eq!(records(&storage).await, vec![ip_key(&ip)]);
    let mut back = svc(
        "x",
        json!({"type": "ExternalName", "externalName": "example.com"}),
    );
    back.data["spec"]["clusterIP"] = json!(ip);
    back.data["spec"]["clusterIPs"] = json!([ip]);
    back.data["spec"]["ipFamilies"] = json!(["IPv4"]);
    back.data["spec"]["ipFamilyPolicy"] = json!("SingleStack");
    let spec = update(&api, back).await.unwrap();
    assert!(spec.get("clusterIP").is_none(), "{spec}");
    assert!(records(&storage).await.is_empty());
}

#[tokio::test]
async fn node_ports_are_allocated_per_port_and_released() {
    let storage = store();
    let api = server(&storage).await;
    let np = svc(
        "np",
        json!({"type": "NodePort", "selector": {"app": "np"}, "ports": [
            {"name": "http", "port": 80},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "dns-udp", "port": 53, "protocol": "UDP"},
            {"name": "fixed", "port": 8080, "nodePort": 30007},
        ]}),
    );
    let spec = create(&api, np).await.unwrap();
    let ports: Vec<i64> = spec["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodePort"].as_i64().unwrap())
        .collect();
    assert!((30000..30100).contains(&ports[0]));
    assert_eq!(ports[1], ports[2], "same port number, one node port");
    assert_eq!(ports[3], 30007);
    assert_eq!(
        records(&storage).await.len(),
        4,
        "an address and 3 node ports"
    );
    let taken = svc(
        "t",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30007}]}),
    );
    let e = create(&api, taken).await.unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        "Service \"t\" is invalid: spec.ports[0].nodePort: Invalid value: 30007: provided port is already allocated"
    );
    let out = svc(
        "o",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}),
    );
    let e = create(&api, out).await.unwrap_err();
    assert_eq!(
        e.message,
        "Service \"o\" is invalid: spec.ports[0].nodePort: Invalid value: 31000: provided port is not in the valid range. The range of valid ports is 30000-30099"
    );
    assert_eq!(records(&storage).await.len(), 4, "refusals took nothing");
    // An update that omits the allocated values keeps them.
    let again = svc(
        "np",
        json!({"type": "NodePort", "selector": {"app": "np"}, "ports": [
            {"name": "http", "port": 80},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "dns-udp", "port": 53, "protocol": "UDP"},
            {"name": "fixed", "port": 8080, "nodePort": 30007},
        ]}),
    );
    let kept = update(&api, again).await.unwrap();
    assert_eq!(kept["clusterIP"], spec["clusterIP"]);
    assert_eq!(kept["ports"], spec["ports"]);
    // NodePort -> ClusterIP drops and releases the node ports.
    let mut to_cluster = svc("np", kept.clone());
    to_cluster.data["spec"]["type"] = json!("ClusterIP");
    let spec = update(&api, to_cluster).await.unwrap();
    assert!(spec["ports"][0].get("nodePort").is_none(), "{spec}");
    assert!(spec.get("externalTrafficPolicy").is_none(), "{spec}");
    assert_eq!(records(&storage).await.len(), 1, "only the address is left");
    // 30007 is free again.
    let taken = svc(
        "t",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30007}]}),
    );
    create(&api, taken).await.unwrap();
    delete(&api, "t").await;
    delete(&api, "np").await;
    assert!(records(&storage).await.is_empty());
}

#[tokio::test]
async fn a_local_load_balancer_gets_a_health_check_node_port() {
    let storage = store();
    let api = server(&storage).await;
    let lb = svc(
        "lb",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
               "selector": {"app": "lb"}, "ports": [{"port": 80}]}),
    );
    let spec = create(&api, lb).await.unwrap();
    let hc = spec["healthCheckNodePort"].as_i64().unwrap();
    assert!((30000..30100).contains(&hc));
    assert_ne!(hc, spec["ports"][0]["nodePort"].as_i64().unwrap());
    assert_eq!(records(&storage).await.len(), 3);
    let no_ports = svc(
        "lb2",
        json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
               "ports": [{"port": 80}]}),
    );
    let spec = create(&api, no_ports).await.unwrap();
    assert!(spec["ports"][0].get("nodePort").is_none());
    delete(&api, "lb").await;
    delete(&api, "lb2").await;
    assert!(records(&storage).await.is_empty());
}

#[tokio::test]
async fn a_failed_write_and_a_dry_run_leave_nothing_allocated() {
    let storage = store();
    let api = server(&storage).await;
    create(&api, web("dup")).await.unwrap();
    let before = records(&storage).await;
    let mut again = svc(
        "dup",
        json!({"type": "NodePort", "clusterIP": "10.96.0.20", "ports": [{"port": 80, "nodePort": 30020}]}),
    );
    again.data["spec"]["selector"] = json!({"app": "dup"});
    let e = create(&api, again).await.unwrap_err();
    assert_eq!(e.code, 409, "{}", e.message);
    assert_eq!(
        records(&storage).await,
        before,
        "the failed create was rolled back"
    );
    let mut dry = web("dry");
    dry.data["spec"]["clusterIP"] = json!("10.96.0.30");
    let spec = create_with(&api, dry, true).await.unwrap();
    assert_eq!(spec["clusterIP"], "10.96.0.30");
    let spec = create_with(&api, web("dry2"), true).await.unwrap();
    assert!(spec["clusterIP"].as_str().unwrap().starts_with("10.96.0."));
    assert_eq!(records(&storage).await, before, "a dry run takes nothing");
    // A dry run still refuses a taken address.
    let ip = before[0].strip_prefix(IP_PREFIX).unwrap();
    let mut dry = web("dry3");
    dry.data["spec"]["clusterIP"] = json!(ip);
    assert_eq!(create_with(&api, dry, true).await.unwrap_err().code, 422);
}

#[tokio::test]
async fn a_crash_before_the_service_write_leaks_but_never_double_allocates() {
    let storage = store();
    let api = server(&storage).await;
    // The crash point: the record of 10.96.0.40 is written, the Service never is.
    let owner = Owner {
        namespace: "default".into(),
        name: "lost".into(),
    };
    storage
        .create(
            &ip_key("10.96.0.40"),
            ip_record(
                &"10.96.0.40".parse().unwrap(),
                &owner,
                "2020-01-01T00:00:00Z",
            ),
        )
        .await
        .unwrap();
    // And a Service stored without its record (written before allocation existed).
    let mut old = web("old");
    old.data["spec"]["clusterIP"] = json!("10.96.0.41");
    old.data["spec"]["clusterIPs"] = json!(["10.96.0.41"]);
    storage
        .create(
            &crate::storage::key::object_key("", "services", Some("default"), "old"),
            old,
        )
        .await
        .unwrap();
    // The leaked address is not handed out again before repair...
    let mut a = web("a");
    a.data["spec"]["clusterIP"] = json!("10.96.0.40");
    assert_eq!(create(&api, a.clone()).await.unwrap_err().code, 422);
    // ...a restarted server's repair, which runs at its start before it serves, frees it and
    // restores the missing record: a second pass finds nothing left to do.
    drop(api);
    let api = server(&storage).await;
    let report = repair::repair(&api).await.unwrap();
    assert_eq!((report.freed, report.restored), (0, 0));
    assert_eq!(create(&api, a).await.unwrap()["clusterIP"], "10.96.0.40");
    let mut b = web("b");
    b.data["spec"]["clusterIP"] = json!("10.96.0.41");
    assert_eq!(create(&api, b).await.unwrap_err().code, 422, "held by old");
    // A young record with no Service is a write in flight: kept.
    let now = crate::rest::meta::time(api.config.clock.now())
        .0
        .to_string();
    storage
        .create(
            &ip_key("10.96.0.42"),
            ip_record(&"10.96.0.42".parse().unwrap(), &owner, &now),
        )
        .await
        .unwrap();
    let report = repair::repair(&api).await.unwrap();
    assert_eq!(report, repair::RepairReport::default());
    assert!(records(&storage).await.contains(&ip_key("10.96.0.42")));
}

#[tokio::test]
async fn api_servers_sharing_a_store_never_hand_out_one_address_twice() {
    let storage = store();
    let a = server(&storage).await;
    let b = server(&storage).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let api = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut s = svc(
                &format!("s{i}"),
                json!({"type": "NodePort", "ports": [{"port": 80}]}),
            );
            s.data["spec"]["selector"] = json!({"app": "s"});
            create(&api, s).await.unwrap()
        }));
    }
    let mut ips = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for t in tasks {
        let spec = t.await.unwrap();
        assert!(ips.insert(spec["clusterIP"].as_str().unwrap().to_string()));
        assert!(node_ports.insert(spec["ports"][0]["nodePort"].as_i64().unwrap()));
    }
    // Both ask for one address: exactly one gets it.
    let mut x = web("x");
    x.data["spec"]["clusterIP"] = json!("10.96.0.5");
    let mut y = web("y");
    y.data["spec"]["clusterIP"] = json!("10.96.0.5");
    let (rx, ry) = tokio::join!(create(&a, x), create(&b, y));
    assert!(rx.is_ok() != ry.is_ok(), "{rx:?} {ry:?}");
}
