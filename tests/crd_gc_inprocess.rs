//! Garbage collection and namespace deletion of custom objects, in process: the API server
//! (memory storage) and the controller manager, no kubelet. Owner references both ways
//! between a custom kind and built-in ones, the three propagation policies, a namespace
//! deleted with custom objects in it, and a CRD deleted while the collector watches its kind.

use orch_apiserver::{ApiServer, ApiServerConfig};
use orch_controllers::manager::{ControllerManager, ManagerConfig};
use orch_types::client::{DeleteParams, PostParams, PropagationPolicy, SharedClient};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

struct Env {
    client: SharedClient,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Env {
    async fn start() -> Env {
        let api = ApiServer::new(ApiServerConfig::memory()).expect("api server");
        let client = api.client();
        let clock: orch_types::clock::SharedClock = Arc::new(orch_types::clock::SystemClock);
        let cm = ControllerManager::new(client.clone(), clock, ManagerConfig::default())
            .expect("manager");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            cm.run(async {
                let _ = rx.await;
            })
            .await;
        });
        Env {
            client,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

/// Polls `f` until it returns `Ok`, at most 20 s.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let last = match f().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn widgets() -> ApiResource {
    ApiResource {
        group: "gc.example.com".into(),
        version: "v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
        namespaced: true,
    }
}

fn resource(api_version: &str, kind: &str) -> ApiResource {
    orch_types::registry::by_kind(api_version, kind)
        .expect("built-in")
        .api_resource()
}

fn crd() -> DynamicObject {
    DynamicObject::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.gc.example.com"},
        "spec": {
            "group": "gc.example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap()
}

/// An ownerReference to `owner`.
fn owned_by(owner: &DynamicObject, block: bool) -> serde_json::Value {
    json!([{"apiVersion": owner.types.api_version, "kind": owner.types.kind,
            "name": owner.name(), "uid": owner.metadata.uid, "blockOwnerDeletion": block}])
}

async fn create(
    c: &SharedClient,
    r: &ApiResource,
    ns: &str,
    name: &str,
    owners: serde_json::Value,
) -> DynamicObject {
    let mut v = json!({"apiVersion": r.api_version(), "kind": r.kind,
        "metadata": {"name": name, "namespace": ns}});
    if !owners.is_null() {
        v["metadata"]["ownerReferences"] = owners;
    }
    c.create(
        r,
        Some(ns),
        &DynamicObject::from_value(v).unwrap(),
        &PostParams::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("create {} {name}: {e}", r.kind))
}

/// Creates a dependent and waits until the collector has seen it. Orphaning strips the
/// references of the dependents the collector knows of; one it has not observed yet when its
/// owner's deletion arrives is collected once the owner is gone. Upstream's integration test
/// waits the same way (`test/integration/garbagecollector`, `TestOrphaning`: "we need wait for
/// the gc to observe the creation of the pods"). The signal here: a second reference, to an
/// owner that never existed, which the collector strips as soon as it looks at the object.
async fn observed_by_collector(
    c: &SharedClient,
    r: &ApiResource,
    ns: &str,
    name: &str,
    owners: serde_json::Value,
) {
    let mut refs = owners.as_array().cloned().unwrap_or_default();
    let wanted = refs.len();
    refs.push(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "never-was",
        "uid": "00000000-0000-0000-0000-000000000000"}),
    );
    create(c, r, ns, name, serde_json::Value::Array(refs)).await;
    eventually(&format!("the collector to see {name}"), || async {
        let o = c.get(r, Some(ns), name).await.map_err(|e| e.to_string())?;
        match o.metadata.owner_references.map_or(0, |v| v.len()) {
            n if n == wanted => Ok(()),
            n => Err(format!("{n} references")),
        }
    })
    .await;
}

async fn delete(
    c: &SharedClient,
    r: &ApiResource,
    ns: Option<&str>,
    name: &str,
    p: PropagationPolicy,
) {
    c.delete(r, ns, name, &DeleteParams::propagation(p))
        .await
        .unwrap_or_else(|e| panic!("delete {} {name}: {e}", r.kind));
}

async fn gone(c: &SharedClient, r: &ApiResource, ns: Option<&str>, name: &str) {
    eventually(&format!("{} {name} to go", r.kind), || async {
        match c.get(r, ns, name).await {
            Err(e) if e.is_not_found() => Ok(()),
            Ok(o) => Err(format!(
                "still there, finalizers {:?}",
                o.metadata.finalizers
            )),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_objects_are_collected_and_namespaces_emptied_like_built_in_ones() {
    let env = Env::start().await;
    let c = env.client.clone();
    let (cms, ns) = (resource("v1", "ConfigMap"), "default");
    c.create(
        &resource("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        None,
        &crd(),
        &PostParams::default(),
    )
    .await
    .expect("CRD");
    // Served once its names are accepted.
    let w0 = eventually("widgets to be served", || async {
        let v = DynamicObject::from_value(json!({"apiVersion": "gc.example.com/v1",
            "kind": "Widget", "metadata": {"name": "probe", "namespace": ns}}))
        .unwrap();
        c.create(&widgets(), Some(ns), &v, &PostParams::default())
            .await
            .map_err(|e| e.to_string())
    })
    .await;

    // A ConfigMap owned by a custom object goes with it (background).
    let cm0 = create(&c, &cms, ns, "of-widget", owned_by(&w0, false)).await;
    assert_eq!(
        cm0.metadata.owner_references.as_ref().map(Vec::len),
        Some(1)
    );
    delete(
        &c,
        &widgets(),
        Some(ns),
        "probe",
        PropagationPolicy::Background,
    )
    .await;
    gone(&c, &cms, Some(ns), "of-widget").await;

    // A custom object owned by a ConfigMap goes with it.
    let owner = create(&c, &cms, ns, "owner", serde_json::Value::Null).await;
    create(&c, &widgets(), ns, "of-configmap", owned_by(&owner, false)).await;
    delete(&c, &cms, Some(ns), "owner", PropagationPolicy::Background).await;
    gone(&c, &widgets(), Some(ns), "of-configmap").await;

    // Foreground: the custom owner waits for its blocking dependent, then goes.
    let w = create(&c, &widgets(), ns, "fg", serde_json::Value::Null).await;
    create(&c, &cms, ns, "fg-dep", owned_by(&w, true)).await;
    delete(
        &c,
        &widgets(),
        Some(ns),
        "fg",
        PropagationPolicy::Foreground,
    )
    .await;
    gone(&c, &cms, Some(ns), "fg-dep").await;
    gone(&c, &widgets(), Some(ns), "fg").await;

    // Orphan: the custom owner goes, its dependent stays without the reference.
    let w = create(&c, &widgets(), ns, "orphaner", serde_json::Value::Null).await;
    observed_by_collector(&c, &cms, ns, "orphan", owned_by(&w, true)).await;
    delete(
        &c,
        &widgets(),
        Some(ns),
        "orphaner",
        PropagationPolicy::Orphan,
    )
    .await;
    gone(&c, &widgets(), Some(ns), "orphaner").await;
    let o = c.get(&cms, Some(ns), "orphan").await.expect("orphan kept");
    assert!(
        o.metadata.owner_references.unwrap_or_default().is_empty(),
        "the reference is removed"
    );

    // A namespace with custom objects in it is emptied and goes away.
    let nss = resource("v1", "Namespace");
    c.create(
        &nss,
        None,
        &DynamicObject::from_value(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team"}}))
        .unwrap(),
        &PostParams::default(),
    )
    .await
    .expect("namespace");
    create(&c, &widgets(), "team", "w1", serde_json::Value::Null).await;
    create(&c, &widgets(), "team", "w2", serde_json::Value::Null).await;
    delete(&c, &nss, None, "team", PropagationPolicy::Background).await;
    gone(&c, &widgets(), Some("team"), "w1").await;
    gone(&c, &nss, None, "team").await;

    // The CRD goes while the collector watches widgets: the collector keeps working.
    let w = create(&c, &widgets(), ns, "last", serde_json::Value::Null).await;
    create(&c, &cms, ns, "of-last", owned_by(&w, false)).await;
    let crds = resource("apiextensions.k8s.io/v1", "CustomResourceDefinition");
    delete(
        &c,
        &crds,
        None,
        "widgets.gc.example.com",
        PropagationPolicy::Background,
    )
    .await;
    gone(&c, &crds, None, "widgets.gc.example.com").await;
    // Its objects went first, so their dependents are collected.
    gone(&c, &cms, Some(ns), "of-last").await;
    let owner = create(&c, &cms, ns, "after", serde_json::Value::Null).await;
    create(&c, &cms, ns, "after-dep", owned_by(&owner, false)).await;
    delete(&c, &cms, Some(ns), "after", PropagationPolicy::Background).await;
    gone(&c, &cms, Some(ns), "after-dep").await;
    // A reference to a kind no longer served is not taken for a gone owner, once the
    // collector has discovered that it is gone (a CRD change makes it discover again after
    // 200 ms; until then the API's 404 for the owner looks like upstream's, which deletes).
    eventually("widgets to be no longer served", || async {
        let d = c.discover().await.map_err(|e| e.to_string())?;
        match d.iter().any(|r| r.resource.kind == "Widget") {
            true => Err("still served".to_string()),
            false => Ok(()),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    create(
        &c,
        &cms,
        ns,
        "of-unserved",
        json!([{"apiVersion": "gc.example.com/v1", "kind": "Widget", "name": "x", "uid": "u-x"}]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(c.get(&cms, Some(ns), "of-unserved").await.is_ok());
    env.stop().await;
}
