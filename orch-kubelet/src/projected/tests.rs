use super::*;
use serde_json::json;

fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "team", "uid": "u1", "labels": {"app": "web"}},
        "spec": {
            "containers": [{"name": "app", "resources": {"limits": {"memory": "64Mi"}}}],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [
                    {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
                    {"path": "labels/app", "fieldRef": {"fieldPath": "metadata.labels['app']"}, "mode": 256},
                    {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}}]}},
                {"secret": {"name": "extra", "optional": true}}]}}]}}))
    .unwrap()
}

fn fetched() -> Fetched {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "kube-root-ca.crt", "namespace": "team"},
        "data": {"ca.crt": "CA PEM", "other": "x"}}))
    .unwrap();
    Fetched {
        config_maps: BTreeMap::from([("kube-root-ca.crt".to_string(), cm)]),
        secrets: BTreeMap::new(),
        tokens: BTreeMap::from([((String::new(), 3607), Ok("TOKEN".to_string()))]),
    }
}

fn text(p: &Payload, path: &str) -> String {
    String::from_utf8(p[path].data.clone()).unwrap()
}

#[test]
fn the_service_account_volume_has_token_ca_and_namespace() {
    let pod = pod();
    let vols = volumes(&pod);
    assert_eq!(vols.len(), 1);
    assert_eq!(
        sources(&pod),
        Sources {
            config_maps: vec!["kube-root-ca.crt".into()],
            secrets: vec!["extra".into()],
            tokens: vec![(String::new(), 3607)],
        }
    );
    let p = payload(&pod, vols[0].1, &fetched(), &EnvContext::default()).unwrap();
    assert_eq!(
        p.keys().collect::<Vec<_>>(),
        ["ca.crt", "labels/app", "mem", "namespace", "token"]
    );
    assert_eq!(text(&p, "token"), "TOKEN");
    assert_eq!(text(&p, "ca.crt"), "CA PEM");
    assert_eq!(text(&p, "namespace"), "team");
    assert_eq!(text(&p, "labels/app"), "web");
    assert_eq!(text(&p, "mem"), "64");
    assert_eq!(p["token"].mode, 0o644);
    assert_eq!(p["labels/app"].mode, 0o400);
}

#[test]
fn missing_sources_are_errors_unless_optional() {
    let pod = pod();
    let vol = volumes(&pod)[0].1;
    let mut f = fetched();
    f.config_maps.clear();
    assert_eq!(
        payload(&pod, vol, &f, &EnvContext::default()).unwrap_err(),
        "configmap \"kube-root-ca.crt\" not found"
    );
    let mut f = fetched();
    f.tokens.insert(
        (String::new(), 3607),
        Err("serviceaccounts \"default\" not found".into()),
    );
    assert_eq!(
        payload(&pod, vol, &f, &EnvContext::default()).unwrap_err(),
        "serviceaccounts \"default\" not found"
    );
    let mut f = fetched();
    let cm = f.config_maps.get_mut("kube-root-ca.crt").unwrap();
    cm.data.as_mut().unwrap().remove("ca.crt");
    assert_eq!(
        payload(&pod, vol, &f, &EnvContext::default()).unwrap_err(),
        "configmap references non-existent config key: ca.crt"
    );
}

#[test]
fn paths_must_stay_inside_the_volume() {
    for bad in ["", "/etc/passwd", "../x", "a/../../x", "..data"] {
        assert!(validate_path(bad).is_err(), "{bad}");
    }
    assert!(validate_path("a/b").is_ok());
}

fn file(data: &str, mode: u32) -> FileProjection {
    FileProjection {
        data: data.as_bytes().to_vec(),
        mode,
    }
}

/// Files appear through `..data`; rewriting the same payload changes nothing; a new one swaps
/// `..data`, drops stale names and the old directory.
#[test]
fn writes_are_atomic_swaps_of_the_data_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("vol");
    let first = Payload::from([
        ("token".to_string(), file("t1", 0o600)),
        ("ca.crt".to_string(), file("ca", 0o644)),
        ("sub/x".to_string(), file("x", 0o644)),
    ]);
    assert!(write_atomic(&d, &first).unwrap());
    assert_eq!(std::fs::read_to_string(d.join("token")).unwrap(), "t1");
    assert_eq!(std::fs::read_to_string(d.join("sub/x")).unwrap(), "x");
    assert_eq!(
        std::fs::read_link(d.join("token")).unwrap(),
        Path::new("..data/token")
    );
    let mode = std::fs::metadata(d.join("token"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let target = std::fs::read_link(d.join("..data")).unwrap();
    assert!(
        !write_atomic(&d, &first).unwrap(),
        "unchanged: not rewritten"
    );
    assert_eq!(std::fs::read_link(d.join("..data")).unwrap(), target);

    let second = Payload::from([
        ("token".to_string(), file("t2", 0o600)),
        ("ca.crt".to_string(), file("ca", 0o644)),
    ]);
    assert!(write_atomic(&d, &second).unwrap());
    assert_eq!(std::fs::read_to_string(d.join("token")).unwrap(), "t2");
    assert!(
        std::fs::symlink_metadata(d.join("sub")).is_err(),
        "stale name removed"
    );
    assert!(!d.join(&target).exists(), "old data directory removed");
    let hidden: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".."))
        .collect();
    assert_eq!(hidden.len(), 2, "..data and one data directory: {hidden:?}");
}
