use std::sync::Arc;
use std::time::Duration;

use orch_types::client::{PatchParams, PostParams};
use orch_types::clock::ManualClock;
use orch_types::registry;
use serde_json::json;

use super::*;
use crate::rest::patch::PatchType;
use crate::rest::update::Part;
use crate::server::ApiServer;

const T0: &str = "2025-06-01T00:00:00Z";

/// A memory API server on a manual clock at [`T0`].
fn server() -> (Arc<ApiServer>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0.parse().unwrap()));
    let api =
        ApiServer::new(crate::ApiServerConfig::memory().with_clock(clock.clone())).expect("server");
    (api, clock)
}

fn info(plural: &str) -> Resource {
    registry::BUILTIN
        .iter()
        .find(|r| r.plural == plural)
        .expect("served")
}

fn by(manager: &str) -> PostParams {
    PostParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    }
}

fn patch_by(manager: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    }
}

fn deployment(replicas: i64, image: &str) -> DynamicObject {
    DynamicObject::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": image}]}}}
    }))
    .unwrap()
}

/// `(manager, operation, subresource, time)` of each entry, in order.
fn summary(o: &DynamicObject) -> Vec<(String, String, String, Option<String>)> {
    o.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
                e.subresource.clone().unwrap_or_default(),
                e.time.as_ref().map(|t| t.0.to_string()),
            )
        })
        .collect()
}

/// The field paths of `manager`'s entries (every subresource), as upstream prints them.
fn owned(o: &DynamicObject, manager: &str) -> Vec<String> {
    let m = Managed::decode(o.metadata.managed_fields.as_deref().unwrap_or_default()).unwrap();
    m.entries
        .iter()
        .filter(|e| e.id.manager == manager)
        .flat_map(|e| e.fields.paths())
        .map(|p| p.to_string())
        .collect()
}

fn e(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

#[tokio::test]
async fn create_records_the_fields_sent_and_defaulted() {
    let (api, _) = server();
    let w = api
        .create_object(
            info("deployments"),
            Some("default"),
            deployment(2, "nginx:1.27"),
            &by("kubectl-create"),
        )
        .await
        .expect("create");
    // Defaults are the creator's (upstream defaults on decode), status and server metadata
    // nobody's.
    insta::assert_yaml_snapshot!(w.object.metadata.managed_fields);
    let fields = owned(&w.object, "kubectl-create");
    assert!(fields.contains(&".spec.strategy.type".to_string()));
    assert!(!fields
        .iter()
        .any(|f| f.starts_with(".status") || f == ".metadata.name" || f == ".metadata.namespace"));
}

#[tokio::test]
async fn updates_move_ownership_between_managers() {
    let (api, clock) = server();
    let cms = info("configmaps");
    let cm = |data: serde_json::Value| {
        DynamicObject::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": data}))
        .unwrap()
    };
    let ns = Some("default");
    api.create_object(cms, ns, cm(json!({"x": "1", "y": "2"})), &by("alice"))
        .await
        .expect("create");
    assert_eq!(
        owned(&api.get_object(cms, ns, "c").await.unwrap(), "alice"),
        e(&[".data", ".data.x", ".data.y"])
    );

    clock.advance(Duration::from_secs(60));
    // PUT by bob changes x: x is bob's now, y stays alice's (her time does not move).
    let mut put = (*api.get_object(cms, ns, "c").await.unwrap()).clone();
    put.data["data"]["x"] = json!("10");
    let o = api
        .update_object(cms, ns, "c", Part::Main, put, &by("bob"))
        .await
        .expect("put");
    let o = &o.written().object;
    assert_eq!(owned(o, "alice"), e(&[".data", ".data.y"]));
    assert_eq!(owned(o, "bob"), e(&[".data.x"]));
    assert_eq!(
        summary(o),
        [
            ("alice".into(), "Update".into(), "".into(), Some(T0.into())),
            (
                "bob".into(),
                "Update".into(),
                "".into(),
                Some("2025-06-01T00:01:00Z".into())
            ),
        ]
    );

    // A merge patch adding a label: carol owns the new map (`.`) and its entry.
    let o = api
        .patch_object(
            cms,
            ns,
            "c",
            Part::Main,
            PatchType::Merge,
            &json!({"metadata": {"labels": {"team": "a"}}}),
            &patch_by("carol"),
        )
        .await
        .expect("merge");
    assert_eq!(
        owned(&o.written().object, "carol"),
        e(&[".metadata.labels", ".metadata.labels.team"])
    );

    // A JSON patch removing y: alice's last field goes, and her entry with it.
    let o = api
        .patch_object(
            cms,
            ns,
            "c",
            Part::Main,
            PatchType::Json,
            &json!([{"op": "remove", "path": "/data/y"}]),
            &patch_by("dave"),
        )
        .await
        .expect("json patch");
    let o = &o.written().object;
    assert_eq!(owned(o, "alice"), e(&[".data"]));
    assert!(owned(o, "dave").is_empty(), "removing owns nothing");

    // A strategic patch changing x back: bob loses it to erin.
    let o = api
        .patch_object(
            cms,
            ns,
            "c",
            Part::Main,
            PatchType::Strategic,
            &json!({"data": {"x": "1"}}),
            &patch_by("erin"),
        )
        .await
        .expect("strategic");
    let o = &o.written().object;
    assert!(owned(o, "bob").is_empty());
    assert_eq!(owned(o, "erin"), e(&[".data.x"]));

    // A write that changes nothing changes no entry.
    let before = o.metadata.managed_fields.clone();
    clock.advance(Duration::from_secs(60));
    let same = api
        .update_object(cms, ns, "c", Part::Main, (**o).clone(), &by("frank"))
        .await
        .expect("no-op");
    assert_eq!(same.written().object.metadata.managed_fields, before);
}

#[tokio::test]
async fn status_and_scale_writes_get_entries_of_their_own() {
    let (api, clock) = server();
    let d = info("deployments");
    let ns = Some("default");
    api.create_object(d, ns, deployment(2, "nginx:1.27"), &by("kubectl-create"))
        .await
        .expect("create");
    clock.advance(Duration::from_secs(5));
    let mut st = (*api.get_object(d, ns, "web").await.unwrap()).clone();
    st.data.insert(
        "status".into(),
        json!({"replicas": 2, "observedGeneration": 1}),
    );
    api.update_object(
        d,
        ns,
        "web",
        Part::Status,
        st,
        &by("kube-controller-manager"),
    )
    .await
    .expect("status");
    clock.advance(Duration::from_secs(5));
    api.patch_scale(
        d,
        ns,
        "web",
        PatchType::Merge,
        &json!({"spec": {"replicas": 3}}),
        false,
        Some("kubectl"),
    )
    .await
    .expect("scale");
    clock.advance(Duration::from_secs(5));
    let o = api
        .patch_object(
            d,
            ns,
            "web",
            Part::Main,
            PatchType::Merge,
            &json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}}}),
            &patch_by("kube-controller-manager"),
        )
        .await
        .expect("annotate");
    let o = &o.written().object;
    // The scale entry has no time (upstream's ScaleHandler); its replicas left the creator.
    insta::assert_yaml_snapshot!(o.metadata.managed_fields);
    assert!(!owned(o, "kubectl-create").contains(&".spec.replicas".to_string()));
    assert_eq!(
        summary(o)
            .into_iter()
            .map(|(m, _, s, _)| format!("{m}/{s}"))
            .collect::<Vec<_>>(),
        [
            "kubectl/scale",
            "kubectl-create/",
            "kube-controller-manager/status",
            "kube-controller-manager/"
        ]
    );
}

#[tokio::test]
async fn apply_conflicts_with_update_managers_unless_forced() {
    let (api, _) = server();
    let d = info("deployments");
    let ns = Some("default");
    let mut created = deployment(2, "nginx:1.27");
    let last = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}});
    created.metadata.annotations = Some([(LAST_APPLIED.to_string(), last.to_string())].into());
    api.create_object(d, ns, created, &by("kubectl-client-side-apply"))
        .await
        .expect("create");
    let config = |replicas: i64| {
        let mut c = serde_json::to_value(deployment(replicas, "nginx:1.27")).unwrap();
        c["metadata"].as_object_mut().unwrap().remove("labels");
        c
    };
    let other = patch_by("other");
    let err = api
        .apply_object(d, ns, "web", Part::Main, &config(3), &other)
        .await
        .expect_err("conflict");
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    let cause = &err.details.as_ref().unwrap().causes.as_ref().unwrap()[0];
    assert_eq!(
        (cause.reason.as_deref(), cause.field.as_deref()),
        (Some("FieldManagerConflict"), Some(".spec.replicas"))
    );
    // The same value is shared, not a conflict.
    api.apply_object(d, ns, "web", Part::Main, &config(2), &other)
        .await
        .expect("same value");
    let forced = api
        .apply_object(
            d,
            ns,
            "web",
            Part::Main,
            &config(3),
            &PatchParams {
                force: true,
                ..other.clone()
            },
        )
        .await
        .expect("forced");
    let o = &forced.written().object;
    assert!(owned(o, "other").contains(&".spec.replicas".to_string()));
    assert!(!owned(o, "kubectl-client-side-apply").contains(&".spec.replicas".to_string()));
    assert_eq!(o.data["spec"]["replicas"], 3);
}

#[tokio::test]
async fn kubectl_applier_takes_over_what_client_side_apply_set() {
    let (api, _) = server();
    let d = info("deployments");
    let ns = Some("default");
    let last = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}});
    let mut created = deployment(2, "nginx:1.27");
    created.metadata.annotations = Some([(LAST_APPLIED.to_string(), format!("{last}\n"))].into());
    api.create_object(d, ns, created, &by("kubectl-client-side-apply"))
        .await
        .expect("create");
    // The image was set by client-side apply and is still what it applied: kubectl takes it.
    let mut cfg = last.clone();
    cfg["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    let o = api
        .apply_object(d, ns, "web", Part::Main, &cfg, &patch_by(KUBECTL_APPLIER))
        .await
        .expect("upgrade without conflict");
    let o = &o.written().object;
    assert!(owned(o, "kubectl")
        .contains(&".spec.template.spec.containers[name=\"nginx\"].image".to_string()));
    let annotation = &o.metadata.annotations.as_ref().unwrap()[LAST_APPLIED];
    assert!(annotation.contains("nginx:1.28") && annotation.ends_with('\n'));

    // Replicas changed by someone else since: not client-side apply's to give away.
    api.patch_scale(
        d,
        ns,
        "web",
        PatchType::Merge,
        &json!({"spec": {"replicas": 5}}),
        false,
        Some("kubectl-scale"),
    )
    .await
    .expect("scale");
    cfg["spec"]["replicas"] = json!(4);
    let err = api
        .apply_object(d, ns, "web", Part::Main, &cfg, &patch_by(KUBECTL_APPLIER))
        .await
        .expect_err("conflict");
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
}

#[tokio::test]
async fn untracked_objects_stay_untracked_until_applied() {
    let (api, _) = server();
    let cms = info("configmaps");
    let ns = Some("default");
    let cm = DynamicObject::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c"}, "data": {"a": "1"}}))
    .unwrap();
    api.create_object(cms, ns, cm, &by("alice"))
        .await
        .expect("create");
    // `managedFields: [{}]` clears them (upstream isResetManagedFields).
    let o = api
        .patch_object(
            cms,
            ns,
            "c",
            Part::Main,
            PatchType::Merge,
            &json!({"metadata": {"managedFields": [{}]}}),
            &patch_by("reset"),
        )
        .await
        .expect("reset");
    assert_eq!(o.written().object.metadata.managed_fields, None);
    let o = api
        .patch_object(
            cms,
            ns,
            "c",
            Part::Main,
            PatchType::Merge,
            &json!({"data": {"b": "2"}}),
            &patch_by("bob"),
        )
        .await
        .expect("update");
    assert_eq!(o.written().object.metadata.managed_fields, None);
    // The first apply records what was there as `before-first-apply`.
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"c": "3"}});
    let o = api
        .apply_object(cms, ns, "c", Part::Main, &cfg, &patch_by("carol"))
        .await
        .expect("apply");
    let o = &o.written().object;
    assert_eq!(
        owned(o, BEFORE_FIRST_APPLY),
        e(&[".data", ".data.a", ".data.b"])
    );
    assert_eq!(owned(o, "carol"), e(&[".data.c"]));
    assert_eq!(summary(o)[0].1, "Apply", "appliers sort first");
}

#[test]
fn update_entries_are_capped_into_ancient_changes() {
    let t = |s: i64| Some(Timestamp::from_second(1_700_000_000 + s).unwrap());
    let field = |name: &str| {
        let mut f = FieldSet::new();
        f.insert(&["f:data".into(), format!("f:{name}")]);
        f
    };
    let mut managed = Managed {
        entries: (0..10)
            .map(|i| Entry {
                id: Identity::update(&format!("m{i}"), "v1", ""),
                api_version: "v1".into(),
                fields: field(&format!("k{i}")),
                time: t(i),
            })
            .collect(),
    };
    managed.entries.push(Entry {
        id: Identity::apply("applier", ""),
        api_version: "v1".into(),
        fields: field("applied"),
        time: t(0),
    });
    let cmp = Comparison {
        added: field("new"),
        ..Default::default()
    };
    record_update(
        &mut managed,
        &cmp,
        &Identity::update("m10", "v1", ""),
        "v1",
        t(100),
    );
    // 11 updaters: the two oldest become one `ancient-changes` with the newer one's time.
    insta::assert_yaml_snapshot!(managed.encode());
    let updaters = managed
        .entries
        .iter()
        .filter(|e| e.id.operation == Operation::Update)
        .count();
    assert_eq!(updaters, MAX_UPDATE_MANAGERS);
    let ancient = managed
        .get(&Identity::update(ANCIENT_CHANGES, "v1", ""))
        .expect("bucket");
    assert_eq!(ancient.fields.paths().len(), 2);
    assert_eq!(ancient.time, t(1));
}

#[tokio::test]
async fn manager_names_are_validated_as_upstream() {
    let (api, _) = server();
    let cm = DynamicObject::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c"}, "data": {"a": "b"}}))
    .unwrap();
    let long = "m".repeat(129);
    let err = api
        .create_object(info("configmaps"), Some("default"), cm.clone(), &by(&long))
        .await
        .expect_err("too long");
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "CreateOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long: may not be more than 128 bytes"
    );
    let err = validate_manager(Some("a\u{7}"), "PatchOptions").expect_err("unprintable");
    assert_eq!(
        err.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Invalid value: \"a\\u0007\": invalid character U+0007 (at position 1)"
    );
    assert!(validate_manager(Some(&"m".repeat(128)), "UpdateOptions").is_ok());
    // Without fieldManager, HTTP requests are the User-Agent's up to its first `/`.
    assert_eq!(
        prefix_from_user_agent("kubectl/v1.33.0 (linux/amd64) kubernetes/abcdef"),
        "kubectl"
    );
    assert_eq!(prefix_from_user_agent(&"x".repeat(300)).len(), 128);
    // No name at all: `unknown`.
    let o = api
        .create_object(
            info("configmaps"),
            Some("default"),
            cm,
            &PostParams::default(),
        )
        .await
        .expect("create");
    assert_eq!(summary(&o.object)[0].0, UNKNOWN_MANAGER);
}

#[test]
fn comparison_owns_new_list_elements_and_maps_but_not_value_structs() {
    let schema = Schemas::builtin().root("", "v1", "Pod").unwrap();
    let old =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}]}});
    let new = json!({"metadata": {"name": "p", "labels": {"k": "v"}},
        "spec": {"containers": [{"name": "a", "image": "y"}, {"name": "b", "image": "z",
                 "resources": {"limits": {"cpu": "1"}}}],
                 "nodeSelector": {"disk": "ssd"}}});
    let cmp = typed::compare(
        Some(Object::of(&old)),
        Object::of(&new),
        schema,
        Scope::default(),
    );
    let paths = |s: &FieldSet| -> Vec<String> { s.paths().iter().map(|p| p.to_string()).collect() };
    assert_eq!(
        paths(&cmp.added),
        [
            ".metadata.labels",
            ".metadata.labels.k",
            ".spec.containers[name=\"b\"]",
            ".spec.containers[name=\"b\"].image",
            ".spec.containers[name=\"b\"].name",
            ".spec.containers[name=\"b\"].resources.limits",
            ".spec.containers[name=\"b\"].resources.limits.cpu",
            ".spec.nodeSelector",
        ]
    );
    assert_eq!(paths(&cmp.modified), [".spec.containers[name=\"a\"].image"]);
    let back = typed::compare(
        Some(Object::of(&new)),
        Object::of(&old),
        schema,
        Scope::default(),
    );
    assert_eq!(back.removed, cmp.added);
}
