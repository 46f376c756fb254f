use serde_json::Value;

use super::*;

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                out.push(r.to_string());
            }
            m.values().for_each(|c| refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
        _ => {}
    }
}

#[test]
fn index_lists_every_served_group_version() {
    let idx = index(&Default::default());
    for (g, v) in registry::group_versions() {
        let p = gv_path(g, v);
        let url = idx["paths"][&p]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("{p} missing from index"));
        assert!(url.starts_with(&format!("/openapi/v3/{p}?hash=")), "{url}");
    }
}

#[test]
fn every_ref_resolves_inside_its_document() {
    for (g, v) in registry::group_versions() {
        let doc = document(g, v).expect("served");
        let mut all = Vec::new();
        refs(&doc, &mut all);
        let comps = doc["components"]["schemas"].as_object().expect("schemas");
        for r in all {
            let name = r.strip_prefix(REF_PREFIX).expect("components ref");
            assert!(comps.contains_key(name), "{g}/{v}: dangling {r}");
        }
    }
}

#[test]
fn patch_operations_carry_gvk_and_field_validation() {
    // What kubectl's QueryParamVerifierV3 checks before server-side field validation.
    for (g, v) in registry::group_versions() {
        let doc = document(g, v).expect("served");
        let paths = doc["paths"].as_object().expect("paths");
        let mut patched = 0;
        for (path, item) in paths {
            let Some(op) = item.get("patch") else {
                continue;
            };
            patched += 1;
            assert!(
                op["x-kubernetes-group-version-kind"]["kind"].is_string(),
                "{path}"
            );
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            assert!(names.contains(&"fieldValidation"), "{path}");
        }
        // The review groups (authorization.k8s.io, authentication.k8s.io) are create-only.
        let patchable = registry::BUILTIN
            .iter()
            .any(|r| r.group == g && r.version == v && r.verbs.contains(&"patch"));
        assert_eq!(patched > 0, patchable, "{g}/{v}: patch operations");
    }
}

#[test]
fn explain_walk_reaches_deployment_strategy_fields() {
    let doc = document("apps", "v1").expect("apps/v1");
    let comps = &doc["components"]["schemas"];
    let resolve = |v: &Value| -> Value {
        let r = v
            .get("$ref")
            .or_else(|| {
                v.get("allOf")
                    .and_then(|a| a.get(0))
                    .and_then(|x| x.get("$ref"))
            })
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(REF_PREFIX))
            .expect("ref");
        comps[r].clone()
    };
    let deploy = &comps["io.k8s.api.apps.v1.Deployment"];
    let spec = resolve(&deploy["properties"]["spec"]);
    let strategy = resolve(&spec["properties"]["strategy"]);
    assert!(strategy["properties"]["type"].is_object());
    assert!(strategy["properties"]["rollingUpdate"].is_object());
    assert_eq!(
        spec["properties"]["strategy"]["x-kubernetes-patch-strategy"],
        "retainKeys"
    );
    let pod_spec = &comps["io.k8s.api.core.v1.PodSpec"];
    assert_eq!(
        pod_spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
        "name"
    );
    let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["patch"]["x-kubernetes-group-version-kind"]["kind"],
        "Scale"
    );
    assert!(comps.get("io.k8s.api.autoscaling.v1.Scale").is_some());
}

#[test]
fn unknown_group_version_is_not_served() {
    assert!(document("apps", "v9").is_none());
    assert!(!served().docs.contains_key("apis/apps/v9"));
}
