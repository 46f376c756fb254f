use super::*;
use crate::storage::memory::MemoryStore;
use crate::storage::SharedStorage;
use crate::ApiServerConfig;
use k8s_openapi::api::discovery::v1::EndpointSlice;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn subsets_group_addresses_by_port() {
    let s = subsets(&[
        addr("10.0.0.2:6443"),
        addr("10.0.0.1:6443"),
        addr("127.0.0.1:7000"),
        addr("10.0.0.1:6443"),
    ]);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
             "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
            {"addresses": [{"ip": "127.0.0.1"}],
             "ports": [{"name": "https", "port": 7000, "protocol": "TCP"}]},
        ])
    );
    assert!(subsets(&[]).is_empty());
}

#[test]
fn the_service_is_upstreams() {
    let v = serde_json::to_value(service("10.96.0.1", 6443)).unwrap();
    assert_eq!(v["metadata"]["labels"]["component"], "apiserver");
    assert_eq!(v["metadata"]["labels"]["provider"], "kubernetes");
    assert_eq!(v["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(
        v["spec"]["ports"],
        serde_json::json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
    );
}

#[test]
fn an_unspecified_bind_address_advertises_a_real_one() {
    assert_eq!(
        advertise_address(IpAddr::from([192, 0, 2, 7])),
        IpAddr::from([192, 0, 2, 7])
    );
    assert!(!advertise_address(IpAddr::from([0, 0, 0, 0])).is_unspecified());
    let cfg = KubernetesServiceConfig::new(addr("127.0.0.1:6443"));
    assert_eq!(cfg.endpoint(), addr("127.0.0.1:6443"));
    assert_eq!(cfg.service_ip, "10.96.0.1");
}

async fn server(storage: &SharedStorage, listen: &str) -> Arc<ApiServer> {
    let config = ApiServerConfig {
        kubernetes_service: Some(KubernetesServiceConfig {
            interval: Duration::from_millis(50),
            lease_ttl: Duration::from_secs(1),
            ..KubernetesServiceConfig::new(addr(listen))
        }),
        ..ApiServerConfig::memory()
    };
    ApiServer::start(storage.clone(), config).await.unwrap()
}

async fn endpoint_ports(api: &ApiServer) -> Vec<i32> {
    let e: Api<Endpoints> = Api::namespaced(api.client(), "default");
    let Some(ep) = e.get_opt(NAME).await.unwrap() else {
        return vec![];
    };
    assert_eq!(
        ep.metadata.labels.unwrap()[SKIP_MIRROR],
        "true",
        "not mirrored to EndpointSlices"
    );
    let mut ports: Vec<i32> = ep
        .subsets
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s.ports.iter().flatten().map(|p| p.port))
        .collect();
    ports.sort();
    ports
}

async fn until(api: &ApiServer, want: &[i32]) {
    for _ in 0..200 {
        if endpoint_ports(api).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("endpoints {:?}, want {want:?}", endpoint_ports(api).await);
}

/// Three API servers on one store all appear; one that shuts down leaves at once, one that
/// dies without a word leaves when its record expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_list_the_live_api_servers() {
    let storage: SharedStorage = Arc::new(MemoryStore::new());
    let a = server(&storage, "127.0.0.1:7001").await;
    let b = server(&storage, "127.0.0.1:7002").await;
    let c = server(&storage, "127.0.0.1:7003").await;
    until(&a, &[7001, 7002, 7003]).await;
    let svc: Api<Service> = Api::namespaced(a.client(), "default");
    let s = svc.get(NAME).await.unwrap();
    assert_eq!(s.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.1"));

    // b shuts down: its record goes, the others see the endpoints without it.
    b.stop.send_replace(true);
    until(&a, &[7001, 7003]).await;
    until(&c, &[7001, 7003]).await;

    // c dies (its loops end with it): its record expires after the TTL.
    drop(c);
    until(&a, &[7001]).await;
    // Its EndpointSlice was written before the Endpoints in the same round.
    let slices: Api<EndpointSlice> = Api::namespaced(a.client(), "default");
    let es = slices.get(NAME).await.unwrap();
    assert_eq!(es.address_type, "IPv4");
    assert_eq!(
        es.metadata.labels.unwrap()["kubernetes.io/service-name"],
        NAME
    );
    assert_eq!(es.ports.unwrap()[0].port, Some(7001));
    assert_eq!(es.endpoints[0].addresses, ["127.0.0.1"]);

    // The Service comes back when deleted.
    svc.delete(NAME, &Default::default()).await.unwrap();
    for _ in 0..200 {
        if svc.get_opt(NAME).await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the kubernetes service was not re-created");
}

#[test]
fn the_slice_is_the_first_subset() {
    let s = slice::from_subsets(&subsets(&[
        addr("[fd00::2]:6443"),
        addr("[fd00::1]:6443"),
        addr("10.0.0.1:7000"),
    ]));
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv6",
            "endpoints": [{"addresses": ["fd00::1"], "conditions": {"ready": true}},
                          {"addresses": ["fd00::2"], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        })
    );
    assert_eq!(slice::from_subsets(&[]).address_type, "IPv4");
}
