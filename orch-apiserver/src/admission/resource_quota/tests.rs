//! ResourceQuota and LimitRanger admission through the in-process client (no controller: the
//! tests write the quota status a controller would).

use crate::{ApiServer, ApiServerConfig};
use k8s_openapi::api::core::v1::{LimitRange, Pod, ResourceQuota, Service};
use orch_types::client::{Api, ClientError, PostParams};
use std::sync::Arc;

fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_yaml_ng::from_str(s).expect("yaml")
}

fn pod(name: &str, resources: &str) -> Pod {
    yaml(&format!(
        "metadata: {{name: {name}}}\nspec: {{containers: [{{name: c, image: nginx, resources: {resources}}}]}}"
    ))
}

/// Creates a quota and writes the status the controller would (`used` as given).
async fn quota(api: &Arc<ApiServer>, name: &str, hard: &str, used: &str) -> Api<ResourceQuota> {
    let quotas: Api<ResourceQuota> = Api::namespaced(api.client(), "default");
    let q: ResourceQuota = yaml(&format!(
        "metadata: {{name: {name}}}\nspec: {{hard: {hard}}}"
    ));
    let mut q = quotas.create(&q).await.expect("create quota");
    assert_eq!(q.status, Some(Default::default()), "status starts empty");
    q.status = Some(yaml(&format!("{{hard: {hard}, used: {used}}}")));
    quotas.replace_status(&q).await.expect("status");
    quotas
}

fn message(e: ClientError) -> (u16, String) {
    let a = e.api().expect("an API error").clone();
    (a.code, a.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_exceed_the_hard_limit() {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("api");
    let quotas = quota(&api, "pods", "{pods: '3'}", "{pods: '0'}").await;
    let pods: Api<Pod> = Api::namespaced(api.client(), "default");
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let pods = pods.clone();
            tokio::spawn(async move { pods.create(&pod(&format!("p-{i}"), "{}")).await })
        })
        .collect();
    let mut admitted = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("join") {
            Ok(_) => admitted += 1,
            Err(e) => assert_eq!(
                message(e),
                (
                    403,
                    format!("pods \"p-{i}\" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=3, limited: pods=3")
                )
            ),
        }
    }
    assert_eq!(admitted, 3);
    let q = quotas.get("pods").await.expect("quota");
    assert_eq!(q.status.unwrap().used.unwrap()["pods"].0, "3");
    assert_eq!(
        pods.list(&Default::default())
            .await
            .expect("list")
            .items
            .len(),
        3
    );
}

#[tokio::test]
async fn unknown_status_dry_runs_and_scopes() {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("api");
    // Until the controller wrote `status.hard`, a quota applies to nothing (upstream matches
    // quotas on their status); with a hard limit but no usage yet, it refuses.
    let quotas: Api<ResourceQuota> = Api::namespaced(api.client(), "default");
    let mut fresh = quotas
        .create(&yaml("metadata: {name: fresh}\nspec: {hard: {pods: '1'}}"))
        .await
        .expect("quota");
    let pods: Api<Pod> = Api::namespaced(api.client(), "default");
    pods.create(&pod("early", "{}"))
        .await
        .expect("not yet counted");
    fresh.status = Some(yaml("{hard: {pods: '1'}}"));
    quotas.replace_status(&fresh).await.expect("status");
    let e = pods.create(&pod("a", "{}")).await.unwrap_err();
    assert_eq!(
        message(e),
        (
            403,
            "pods \"a\" is forbidden: status unknown for quota: fresh, resources: pods".into()
        )
    );
    quotas
        .delete("fresh", &Default::default())
        .await
        .expect("delete");
    // A BestEffort quota leaves other pods alone; a dry run is checked but not charged.
    let be = quota(&api, "be", "{pods: '1'}", "{pods: '0'}").await;
    let mut scoped = be.get("be").await.expect("get");
    scoped.spec.as_mut().unwrap().scopes = Some(vec!["BestEffort".into()]);
    let e = be.replace(&scoped).await.unwrap_err();
    assert_eq!(e.api().map(|a| a.code), Some(422), "scopes are immutable");
    be.delete("be", &Default::default()).await.expect("delete");
    let quotas: Api<ResourceQuota> = Api::namespaced(api.client(), "default");
    let q: ResourceQuota =
        yaml("metadata: {name: be}\nspec: {hard: {pods: '1'}, scopes: [BestEffort]}");
    let mut q = quotas.create(&q).await.expect("create");
    q.status = Some(yaml("{hard: {pods: '1'}, used: {pods: '0'}}"));
    quotas.replace_status(&q).await.expect("status");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.client()
        .create(
            pods.resource(),
            Some("default"),
            &orch_types::DynamicObject::from_typed(&pod("dry", "{}")).unwrap(),
            &dry,
        )
        .await
        .expect("dry run");
    pods.create(&pod("burstable", "{requests: {cpu: 100m}}"))
        .await
        .expect("not BestEffort: not under the quota");
    pods.create(&pod("be-1", "{}")).await.expect("the first");
    let e = pods.create(&pod("be-2", "{}")).await.unwrap_err();
    assert_eq!(
        message(e).1,
        "pods \"be-2\" is forbidden: exceeded quota: be, requested: pods=1, used: pods=1, limited: pods=1"
    );
}

#[tokio::test]
async fn limit_range_defaults_count_against_quota() {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("api");
    let ranges: Api<LimitRange> = Api::namespaced(api.client(), "default");
    ranges
        .create(&yaml(
            "metadata: {name: limits}\nspec: {limits: [{type: Container, max: {cpu: '1'}, defaultRequest: {cpu: 500m}, default: {cpu: 500m}}]}",
        ))
        .await
        .expect("limit range");
    quota(
        &api,
        "compute",
        "{requests.cpu: '1', limits.cpu: '2'}",
        "{requests.cpu: '0', limits.cpu: '0'}",
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(api.client(), "default");
    let p = pods.create(&pod("a", "{}")).await.expect("defaulted");
    assert_eq!(
        serde_json::to_value(&p.spec.unwrap().containers[0].resources).unwrap(),
        serde_json::json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "500m"}})
    );
    assert_eq!(
        p.metadata.annotations.unwrap()["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu request for container c; cpu limit for container c"
    );
    let e = pods
        .create(&pod("big", "{limits: {cpu: '2'}}"))
        .await
        .unwrap_err();
    assert_eq!(
        message(e),
        (
            403,
            "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
                .into()
        )
    );
    pods.create(&pod("b", "{}")).await.expect("second");
    let e = pods.create(&pod("c", "{}")).await.unwrap_err();
    assert_eq!(
        message(e).1,
        "pods \"c\" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=1, limited: requests.cpu=1"
    );
}

#[tokio::test]
async fn a_service_update_is_charged_its_node_ports() {
    let api = ApiServer::new(ApiServerConfig::memory()).expect("api");
    quota(
        &api,
        "svc",
        "{services.nodeports: '1'}",
        "{services.nodeports: '0'}",
    )
    .await;
    let svcs: Api<Service> = Api::namespaced(api.client(), "default");
    let mut s = svcs
        .create(&yaml(
            "metadata: {name: web}\nspec: {ports: [{name: a, port: 80}, {name: b, port: 81}]}",
        ))
        .await
        .expect("ClusterIP uses no node port");
    s.spec.as_mut().unwrap().type_ = Some("NodePort".into());
    let e = svcs.replace(&s).await.unwrap_err();
    assert_eq!(
        message(e),
        (
            403,
            "services \"web\" is forbidden: exceeded quota: svc, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1".into()
        )
    );
}
