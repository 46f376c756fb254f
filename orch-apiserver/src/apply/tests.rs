use orch_types::registry;
use serde_json::json;

use super::*;
use crate::schema::Schemas;

const NOW: &str = "2025-06-01T00:00:00Z";

fn deploy_schema() -> SchemaNode<'static> {
    Schemas::builtin()
        .root("apps", "v1", "Deployment")
        .expect("schema")
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": image,
                                                       "ports": [{"containerPort": 80}]}]}}}
    })
}

fn manager_fields<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
        .map(|e| &e["fieldsV1"])
}

#[test]
fn fieldsets_key_list_elements_by_merge_key() {
    let fs = typed::field_set(
        Object::of(&deployment(2, "nginx:1.27")),
        deploy_schema(),
        Scope::default(),
    )
    .to_fields_v1();
    insta::assert_yaml_snapshot!(fs);
    let containers = &fs["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert!(
        containers.get(r#"k:{"name":"nginx"}"#).is_some(),
        "{containers}"
    );
}

#[test]
fn create_then_reapply_is_stable() {
    let s = deploy_schema();
    let first =
        apply(None, &deployment(2, "nginx:1.27"), "kubectl", false, s, NOW).expect("create");
    assert_eq!(first["spec"]["replicas"], 2);
    let entry = &first["metadata"]["managedFields"][0];
    assert_eq!(
        (
            &entry["manager"],
            &entry["operation"],
            &entry["apiVersion"],
            &entry["fieldsType"]
        ),
        (
            &json!("kubectl"),
            &json!("Apply"),
            &json!("apps/v1"),
            &json!("FieldsV1")
        )
    );
    let again = apply(
        Some(&first),
        &deployment(2, "nginx:1.27"),
        "kubectl",
        false,
        s,
        NOW,
    )
    .expect("reapply");
    assert_eq!(again, first);
    let changed = apply(
        Some(&first),
        &deployment(2, "nginx:1.28"),
        "kubectl",
        false,
        s,
        NOW,
    )
    .expect("change");
    let c = &changed["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.28");
    assert_eq!(c["ports"][0]["containerPort"], 80);
}

#[test]
fn conflicts_and_force() {
    let s = deploy_schema();
    let live = apply(None, &deployment(2, "nginx:1.27"), "alice", false, s, NOW).expect("create");
    let err = apply(
        Some(&live),
        &deployment(5, "nginx:1.27"),
        "bob",
        false,
        s,
        NOW,
    )
    .expect_err("conflict");
    assert_eq!(
        err,
        ApplyError::Conflicts(vec![Conflict {
            manager: Identity::apply("alice", ""),
            field: FieldPath(vec!["f:spec".into(), "f:replicas".into()]),
        }])
    );
    let api = err.to_api_error();
    assert_eq!((api.code, api.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        api.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
    );
    // Same value: shared ownership, no conflict.
    let shared = apply(
        Some(&live),
        &deployment(2, "nginx:1.27"),
        "bob",
        false,
        s,
        NOW,
    )
    .expect("same values");
    assert!(manager_fields(&shared, "alice").is_some() && manager_fields(&shared, "bob").is_some());
    // Force takes the field over.
    let forced = apply(
        Some(&live),
        &deployment(5, "nginx:1.27"),
        "bob",
        true,
        s,
        NOW,
    )
    .expect("force");
    assert_eq!(forced["spec"]["replicas"], 5);
    let alice = manager_fields(&forced, "alice").expect("alice keeps other fields");
    assert!(alice["f:spec"].get("f:replicas").is_none(), "{alice}");
    assert!(manager_fields(&forced, "bob").expect("bob")["f:spec"]
        .get("f:replicas")
        .is_some());
}

#[test]
fn omitted_fields_are_removed_unless_owned_elsewhere() {
    let s = Schemas::builtin()
        .root("", "v1", "ConfigMap")
        .expect("schema");
    let cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
    let live = apply(
        None,
        &cm(json!({"a": "1", "b": "2"})),
        "alice",
        false,
        s,
        NOW,
    )
    .expect("create");
    let fewer = apply(Some(&live), &cm(json!({"a": "1"})), "alice", false, s, NOW).expect("drop b");
    assert_eq!(fewer["data"], json!({"a": "1"}));
    let with_bob =
        apply(Some(&live), &cm(json!({"b": "2"})), "bob", false, s, NOW).expect("bob shares b");
    let alice_drops_b = apply(
        Some(&with_bob),
        &cm(json!({"a": "1"})),
        "alice",
        false,
        s,
        NOW,
    )
    .expect("drop");
    assert_eq!(alice_drops_b["data"], json!({"a": "1", "b": "2"}));
}

#[test]
fn malformed_configurations() {
    let s = deploy_schema();
    let cases = [
        (json!([1]), "apply configuration must be an object"),
        (
            json!({"kind": "Deployment"}),
            "apiVersion must be set in the apply configuration",
        ),
        (
            json!({"apiVersion": "apps/v1"}),
            "kind must be set in the apply configuration",
        ),
    ];
    for (cfg, msg) in cases {
        assert_eq!(
            apply(None, &cfg, "m", false, s, NOW),
            Err(ApplyError::Invalid(msg.into()))
        );
    }
}

#[tokio::test]
async fn apply_object_creates_and_updates() {
    let api = ApiServer::new(crate::ApiServerConfig::memory()).expect("server");
    let info = registry::by_plural("apps", "v1", "deployments").expect("served");
    let p = PatchParams {
        field_manager: Some("kubectl".into()),
        ..Default::default()
    };
    let created = api
        .apply_object(
            info,
            Some("default"),
            "web",
            Part::Main,
            &deployment(2, "nginx:1.27"),
            &p,
        )
        .await
        .expect("create");
    assert_eq!(created.written().object.data["spec"]["replicas"], 2);
    let updated = api
        .apply_object(
            info,
            Some("default"),
            "web",
            Part::Main,
            &deployment(3, "nginx:1.27"),
            &p,
        )
        .await
        .expect("update");
    assert_eq!(updated.written().object.data["spec"]["replicas"], 3);
    let other = PatchParams {
        field_manager: Some("other".into()),
        ..Default::default()
    };
    let err = api
        .apply_object(
            info,
            Some("default"),
            "web",
            Part::Main,
            &deployment(4, "nginx:1.27"),
            &other,
        )
        .await
        .expect_err("conflict");
    assert_eq!(err.code, 409);
    let none = PatchParams::default();
    let err = api
        .apply_object(
            info,
            Some("default"),
            "web",
            Part::Main,
            &deployment(4, "nginx:1.27"),
            &none,
        )
        .await
        .expect_err("no manager");
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
}
