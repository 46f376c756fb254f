//! REST semantics through the in-process client (no sockets).

use futures::StreamExt;
use orch_apiserver::{ApiServer, ApiServerConfig};
use orch_types::client::{
    DeleteOutcome, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
    SharedClient, WatchEvent, WatchParams,
};
use orch_types::registry::{self, ApiResource};
use orch_types::DynamicObject;
use serde_json::json;

fn res(name: &str) -> ApiResource {
    registry::by_name(name)[0].api_resource()
}

fn cm(name: &str, data: serde_json::Value) -> DynamicObject {
    let mut o = DynamicObject::new("v1", "ConfigMap", name);
    o.data.insert("data".into(), data);
    o
}

fn deploy(name: &str, replicas: i64) -> DynamicObject {
    let mut o = DynamicObject::new("apps/v1", "Deployment", name);
    o.data.insert(
        "spec".into(),
        json!({"replicas": replicas, "selector": {"matchLabels": {"app": name}},
               "template": {"metadata": {"labels": {"app": name}},
                            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}),
    );
    o
}

fn client() -> SharedClient {
    ApiServer::new(ApiServerConfig::memory()).unwrap().client()
}

#[tokio::test]
async fn create_sets_server_fields_and_rejects_duplicates() {
    let c = client();
    let r = res("cm");
    let created = c
        .create(
            &r,
            Some("default"),
            &cm("a", json!({"k": "v"})),
            &PostParams::default(),
        )
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.namespace(), Some("default"));
    assert!(created.resource_version().is_some());
    let dup = c
        .create(
            &r,
            Some("default"),
            &cm("a", json!({})),
            &PostParams::default(),
        )
        .await
        .unwrap_err();
    assert!(dup.is_already_exists(), "{dup}");
    let mut gen = DynamicObject::new("v1", "ConfigMap", "");
    gen.metadata.name = None;
    gen.metadata.generate_name = Some("gen-".into());
    let g = c
        .create(&r, Some("default"), &gen, &PostParams::default())
        .await
        .unwrap();
    assert!(
        g.name().starts_with("gen-") && g.name().len() == 9,
        "{}",
        g.name()
    );
    let missing_ns = c
        .create(
            &r,
            Some("nope"),
            &cm("a", json!({})),
            &PostParams::default(),
        )
        .await
        .unwrap_err();
    assert!(missing_ns.is_not_found(), "{missing_ns}");
}

#[tokio::test]
async fn update_conflicts_generation_and_noop() {
    let c = client();
    let r = res("deploy");
    let d = c
        .create(&r, Some("default"), &deploy("d", 1), &PostParams::default())
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    // Same object back: no write, same resourceVersion.
    let same = c
        .update(&r, Some("default"), &d, &PostParams::default())
        .await
        .unwrap();
    assert_eq!(same.resource_version(), d.resource_version());
    // Label change: new RV, same generation.
    let mut labelled = d.clone();
    labelled.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let l = c
        .update(&r, Some("default"), &labelled, &PostParams::default())
        .await
        .unwrap();
    assert_ne!(l.resource_version(), d.resource_version());
    assert_eq!(l.metadata.generation, Some(1));
    // Stale RV: 409.
    let stale = c
        .update(&r, Some("default"), &d, &PostParams::default())
        .await
        .unwrap_err();
    assert!(stale.is_conflict(), "{stale}");
    // Spec change: generation 2.
    let mut scaled = l.clone();
    scaled.data.get_mut("spec").unwrap()["replicas"] = json!(3);
    let s = c
        .update(&r, Some("default"), &scaled, &PostParams::default())
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(2));
    // Status is ignored on the main resource and set through the subresource.
    let mut with_status = s.clone();
    with_status
        .data
        .insert("status".into(), json!({"replicas": 3}));
    let ignored = c
        .update(&r, Some("default"), &with_status, &PostParams::default())
        .await
        .unwrap();
    assert_eq!(ignored.data.get("status"), s.data.get("status"));
    let st = c
        .update_status(&r, Some("default"), &with_status, &PostParams::default())
        .await
        .unwrap();
    assert_eq!(st.data["status"]["replicas"], 3);
    assert_eq!(st.metadata.generation, Some(2));
}

#[tokio::test]
async fn patch_merge_and_json() {
    let c = client();
    let r = res("cm");
    c.create(
        &r,
        Some("default"),
        &cm("p", json!({"a": "1", "b": "2"})),
        &PostParams::default(),
    )
    .await
    .unwrap();
    let m = c
        .patch(
            &r,
            Some("default"),
            "p",
            None,
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
            &PatchParams::default(),
        )
        .await
        .unwrap();
    assert_eq!(m.data["data"], json!({"b": "2", "c": "3"}));
    let j = c
        .patch(
            &r,
            Some("default"),
            "p",
            None,
            &Patch::Json(json!([{"op": "replace", "path": "/data/b", "value": "9"}])),
            &PatchParams::default(),
        )
        .await
        .unwrap();
    assert_eq!(j.data["data"]["b"], "9");
    let bad = c
        .patch(
            &r,
            Some("default"),
            "p",
            None,
            &Patch::Json(json!([{"op": "test", "path": "/data/b", "value": "0"}])),
            &PatchParams::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.api().unwrap().code, 422);
}

#[tokio::test]
async fn finalizers_block_deletion_until_removed() {
    let c = client();
    let r = res("cm");
    let mut o = cm("f", json!({}));
    o.metadata.finalizers = Some(vec!["example.com/x".into()]);
    c.create(&r, Some("default"), &o, &PostParams::default())
        .await
        .unwrap();
    let out = c
        .delete(&r, Some("default"), "f", &DeleteParams::default())
        .await
        .unwrap();
    let DeleteOutcome::Pending(marked) = out else {
        panic!("expected pending")
    };
    assert!(marked.metadata.deletion_timestamp.is_some());
    let mut cleared = marked.clone();
    cleared.metadata.finalizers = Some(vec![]);
    c.update(&r, Some("default"), &cleared, &PostParams::default())
        .await
        .unwrap();
    let gone = c.get(&r, Some("default"), "f").await.unwrap_err();
    assert!(gone.is_not_found());

    // Orphan propagation adds the orphan finalizer.
    c.create(
        &r,
        Some("default"),
        &cm("o", json!({})),
        &PostParams::default(),
    )
    .await
    .unwrap();
    let o = c
        .delete(
            &r,
            Some("default"),
            "o",
            &DeleteParams::propagation(PropagationPolicy::Orphan),
        )
        .await
        .unwrap();
    assert_eq!(
        o.object().metadata.finalizers.as_deref(),
        Some(&["orphan".to_string()][..])
    );
}

#[tokio::test]
async fn namespace_delete_marks_terminating_and_blocks_creates() {
    let c = client();
    let ns = res("ns");
    c.create(
        &ns,
        None,
        &DynamicObject::new("v1", "Namespace", "team"),
        &PostParams::default(),
    )
    .await
    .unwrap();
    let out = c
        .delete(&ns, None, "team", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(out.object().data["status"]["phase"], "Terminating");
    let err = c
        .create(
            &res("cm"),
            Some("team"),
            &cm("x", json!({})),
            &PostParams::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.api().unwrap().code, 403, "{err}");
}

#[tokio::test]
async fn list_selectors_pagination_and_watch() {
    let c = client();
    let r = res("cm");
    for i in 0..5 {
        let mut o = cm(&format!("c{i}"), json!({}));
        o.metadata.labels = Some(
            [(
                "parity".to_string(),
                (if i % 2 == 0 { "even" } else { "odd" }).to_string(),
            )]
            .into(),
        );
        c.create(&r, Some("default"), &o, &PostParams::default())
            .await
            .unwrap();
    }
    let even = c
        .list(
            &r,
            Some("default"),
            &ListParams::default().labels("parity=even"),
        )
        .await
        .unwrap();
    assert_eq!(even.items.len(), 3);
    let named = c
        .list(&r, None, &ListParams::default().fields("metadata.name=c1"))
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);
    let p1 = c
        .list(&r, Some("default"), &ListParams::default().limit(2))
        .await
        .unwrap();
    assert_eq!(p1.items.len(), 2);
    assert_eq!(p1.metadata.remaining_item_count, Some(3));
    // A write between pages is not visible: the pages read one revision.
    c.create(
        &r,
        Some("default"),
        &cm("c9", json!({})),
        &PostParams::default(),
    )
    .await
    .unwrap();
    let mut p = ListParams::default().limit(2);
    p.continue_token = p1.metadata.continue_.clone();
    let p2 = c.list(&r, Some("default"), &p).await.unwrap();
    p.continue_token = p2.metadata.continue_.clone();
    let p3 = c.list(&r, Some("default"), &p).await.unwrap();
    let names: Vec<_> = p1
        .items
        .iter()
        .chain(&p2.items)
        .chain(&p3.items)
        .map(|o| o.name().to_string())
        .collect();
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
    assert!(p3.metadata.continue_.is_none());

    let mut w = c
        .watch(
            &r,
            Some("default"),
            &WatchParams {
                resource_version: p1.metadata.resource_version.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    match w.next().await.unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.name(), "c9"),
        other => panic!("unexpected {other:?}"),
    }
    c.delete(&r, Some("default"), "c0", &DeleteParams::default())
        .await
        .unwrap();
    match w.next().await.unwrap().unwrap() {
        WatchEvent::Deleted(o) => assert_eq!(o.name(), "c0"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_field_causes() {
    let c = client();
    let pods = res("pod");
    let mut pod = DynamicObject::new("v1", "Pod", "p");
    pod.data.insert(
        "spec".into(),
        json!({"containers": [{"name": "Bad_Name", "image": "busybox"}]}),
    );
    let err = c
        .create(&pods, Some("default"), &pod, &PostParams::default())
        .await
        .unwrap_err();
    let api = err.api().expect("api error");
    assert_eq!((api.code, api.reason.as_str()), (422, "Invalid"), "{api:?}");
    let causes = api
        .details
        .as_ref()
        .and_then(|d| d.causes.clone())
        .unwrap_or_default();
    assert!(
        causes.iter().any(|c| c
            .field
            .as_deref()
            .is_some_and(|f| f.starts_with("spec.containers[0].name"))),
        "{causes:?}"
    );
    // Nothing was written.
    assert!(c
        .get(&pods, Some("default"), "p")
        .await
        .unwrap_err()
        .is_not_found());
}

#[test]
fn new_outside_a_runtime_is_a_typed_error() {
    let err = ApiServer::new(ApiServerConfig::memory()).unwrap_err();
    assert!(
        matches!(err, orch_apiserver::ApiServerError::NoRuntime),
        "{err}"
    );
}

/// A `status` write keeps the stored spec and metadata (upstream status strategies'
/// `PrepareForUpdate`), drops unknown status fields, rejects a status that does not fit the
/// typed struct with 400, and still defaults Node status (allocatable from capacity).
#[tokio::test]
async fn status_writes_change_only_a_checked_status() {
    let c = client();
    let pods = res("po");
    let mut p = DynamicObject::new("v1", "Pod", "s");
    p.data.insert(
        "spec".into(),
        json!({"containers": [{"name": "c", "image": "nginx:1.27"}]}),
    );
    let created = c
        .create(&pods, Some("default"), &p, &PostParams::default())
        .await
        .unwrap();
    let mut w = created.clone();
    w.data.get_mut("spec").unwrap()["containers"][0]["image"] = json!("other:2");
    w.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    w.data.insert(
        "status".into(),
        json!({"phase": "Running", "unknownField": 1, "podIP": "10.0.0.1"}),
    );
    let st = c
        .update_status(&pods, Some("default"), &w, &PostParams::default())
        .await
        .unwrap();
    assert_eq!(st.data["spec"], created.data["spec"]);
    assert_eq!(st.metadata.labels, created.metadata.labels);
    assert_eq!(st.data["status"]["phase"], "Running");
    assert_eq!(st.data["status"]["podIP"], "10.0.0.1");
    assert!(st.data["status"].get("unknownField").is_none());
    let mut bad = st.clone();
    bad.data.insert("status".into(), json!({"phase": 7}));
    let e = c
        .update_status(&pods, Some("default"), &bad, &PostParams::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not fit a Pod"), "{e}");
    let again = c.get(&pods, Some("default"), "s").await.unwrap();
    assert_eq!(again.data["status"], st.data["status"]);

    let nodes = res("no");
    let n = c
        .create(
            &nodes,
            None,
            &DynamicObject::new("v1", "Node", "n1"),
            &PostParams::default(),
        )
        .await
        .unwrap();
    let mut ns = n.clone();
    ns.data.insert(
        "status".into(),
        json!({"capacity": {"cpu": "2", "memory": "1Gi"}}),
    );
    let n2 = c
        .update_status(&nodes, None, &ns, &PostParams::default())
        .await
        .unwrap();
    assert_eq!(
        n2.data["status"]["allocatable"],
        json!({"cpu": "2", "memory": "1Gi"})
    );
}

/// NamespaceLifecycle: `default`, `kube-system` and `kube-public` may not be deleted (403 with
/// upstream's message and details); `kube-node-lease` may, and the API server re-creates it.
#[tokio::test]
async fn immortal_namespaces_and_system_namespace_recreation() {
    let config = ApiServerConfig {
        system_namespaces_interval: std::time::Duration::from_millis(50),
        ..ApiServerConfig::memory()
    };
    let c = ApiServer::new(config).unwrap().client();
    let ns = res("ns");
    for name in ["default", "kube-system", "kube-public"] {
        let orch_types::client::ClientError::Api(e) = c
            .delete(&ns, None, name, &DeleteParams::default())
            .await
            .expect_err("immortal")
        else {
            panic!("an API error expected")
        };
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted")
        );
        let d = e.details.expect("details");
        assert_eq!(
            (d.name.as_deref(), d.kind.as_deref()),
            (Some(name), Some("namespaces"))
        );
    }
    let before = c.get(&ns, None, "kube-node-lease").await.unwrap();
    c.delete(&ns, None, "kube-node-lease", &DeleteParams::default())
        .await
        .expect("kube-node-lease may be deleted");
    // The namespace finalizer is the namespace controller's, absent here: finish by hand.
    c.patch(
        &ns,
        None,
        "kube-node-lease",
        Some("finalize"),
        &Patch::Merge(json!({"spec": {"finalizers": []}})),
        &PatchParams::default(),
    )
    .await
    .expect("finalize");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match c.get(&ns, None, "kube-node-lease").await {
            Ok(again) if again.metadata.uid != before.metadata.uid => break,
            _ if std::time::Instant::now() > deadline => panic!("kube-node-lease not re-created"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

/// A Secret's `stringData` is merged into `data` (overriding) and never stored.
#[tokio::test]
async fn secret_string_data_is_merged_into_data() {
    let c = client();
    let r = res("secret");
    let mut s = DynamicObject::new("v1", "Secret", "s");
    s.data
        .insert("data".into(), json!({"user": "b2xk", "pw": "eA=="}));
    s.data.insert("stringData".into(), json!({"user": "admin"}));
    let created = c
        .create(&r, Some("default"), &s, &PostParams::default())
        .await
        .unwrap();
    assert_eq!(
        created.data["data"],
        json!({"pw": "eA==", "user": "YWRtaW4="})
    );
    assert!(created.data.get("stringData").is_none());
    let patched = c
        .patch(
            &r,
            Some("default"),
            "s",
            None,
            &Patch::Merge(json!({"stringData": {"pw": "hunter2"}})),
            &PatchParams::default(),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["data"]["pw"], "aHVudGVyMg==");
    assert!(patched.data.get("stringData").is_none());
}
