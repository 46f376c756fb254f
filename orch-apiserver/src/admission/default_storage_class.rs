//! `DefaultStorageClass`: a PersistentVolumeClaim created without a class gets the default
//! StorageClass (upstream `plugin/pkg/admission/storage/storageclass/setdefault/admission.go`,
//! with `GetDefaultClass` from `pkg/volume/util/storageclass.go`).
//!
//! A claim "has a class" when `spec.storageClassName` is set, even to `""` (which asks for no
//! class), or when it carries the beta `volume.beta.kubernetes.io/storage-class` annotation
//! (upstream `helper.PersistentVolumeClaimHasClass`). The default class is one annotated
//! `storageclass.kubernetes.io/is-default-class: "true"` (or its beta form); when several are,
//! the newest wins, ties broken by name. Only creates are admitted, as upstream.

use crate::rest::Resource;
use jiff::Timestamp;
use k8s_openapi::api::storage::v1::StorageClass;
use orch_types::DynamicObject;
use serde_json::Value;

/// The annotation marking the default StorageClass.
pub const IS_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// Its beta form, still honoured upstream.
pub const BETA_IS_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// The beta annotation that names a claim's class.
pub const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// Whether `sc` is annotated as a default class (upstream `IsDefaultAnnotation`).
pub fn is_default(sc: &StorageClass) -> bool {
    let a = sc.metadata.annotations.as_ref();
    [IS_DEFAULT_CLASS, BETA_IS_DEFAULT_CLASS]
        .iter()
        .any(|k| a.and_then(|a| a.get(*k)).is_some_and(|v| v == "true"))
}

/// The default class among `classes` (upstream `GetDefaultClass`): of those annotated as
/// default, the most recently created, then the first by name.
pub fn default_class(classes: &[StorageClass]) -> Option<&StorageClass> {
    let created = |c: &StorageClass| {
        c.metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
    };
    classes.iter().filter(|c| is_default(c)).min_by(|a, b| {
        created(b)
            .cmp(&created(a))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    })
}

/// Sets `spec.storageClassName` of a claim being created without a class to the default
/// class from `classes` (called only when needed). Other kinds are left alone.
///
/// ```
/// use orch_apiserver::admission::default_storage_class::admit;
/// use k8s_openapi::api::storage::v1::StorageClass;
/// let info = orch_types::registry::by_kind("v1", "PersistentVolumeClaim").unwrap();
/// let local: StorageClass = serde_json::from_value(serde_json::json!({
///     "metadata": {"name": "local",
///                  "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
///     "provisioner": "orch.dev/local"})).unwrap();
/// let mut pvc = orch_types::DynamicObject::new("v1", "PersistentVolumeClaim", "data");
/// pvc.data.insert("spec".into(), serde_json::json!({"accessModes": ["ReadWriteOnce"]}));
/// admit(info, &mut pvc, || vec![local.clone()]);
/// assert_eq!(pvc.data["spec"]["storageClassName"], "local");
/// ```
pub fn admit(info: Resource, pvc: &mut DynamicObject, classes: impl FnOnce() -> Vec<StorageClass>) {
    if info.kind != "PersistentVolumeClaim" || !info.group.is_empty() {
        return;
    }
    let annotated = pvc
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(BETA_STORAGE_CLASS));
    let spec = pvc
        .data
        .entry("spec")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    let named = spec.get("storageClassName").is_some_and(|v| !v.is_null());
    if annotated || named {
        return;
    }
    let classes = classes();
    if let Some(name) = default_class(&classes).and_then(|c| c.metadata.name.clone()) {
        spec.insert("storageClassName".into(), Value::String(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(name: &str, default: Option<&str>, created: i64) -> StorageClass {
        let mut v = json!({"metadata": {"name": name,
            "creationTimestamp": Timestamp::from_second(created).unwrap().to_string()},
            "provisioner": "orch.dev/local"});
        if let Some(d) = default {
            v["metadata"]["annotations"] = json!({IS_DEFAULT_CLASS: d});
        }
        serde_json::from_value(v).unwrap()
    }

    fn claim(spec: Value) -> DynamicObject {
        let mut c = DynamicObject::new("v1", "PersistentVolumeClaim", "data");
        c.data.insert("spec".into(), spec);
        c
    }

    #[test]
    fn newest_default_wins_then_name() {
        let classes = vec![
            class("old", Some("true"), 100),
            class("b-new", Some("true"), 200),
            class("a-new", Some("true"), 200),
            class("newest-but-not-default", Some("false"), 300),
            class("plain", None, 400),
        ];
        assert_eq!(
            default_class(&classes).and_then(|c| c.metadata.name.as_deref()),
            Some("a-new")
        );
        assert!(default_class(&classes[3..]).is_none());
    }

    #[test]
    fn only_claims_without_a_class_are_defaulted() {
        let info = orch_types::registry::by_kind("v1", "PersistentVolumeClaim").unwrap();
        let classes = || vec![class("local", Some("true"), 1)];
        let mut none = claim(json!({}));
        admit(info, &mut none, classes);
        assert_eq!(none.data["spec"]["storageClassName"], "local");
        // `""` asks for no class: kept.
        let mut empty = claim(json!({"storageClassName": ""}));
        admit(info, &mut empty, classes);
        assert_eq!(empty.data["spec"]["storageClassName"], "");
        // The beta annotation counts as a class.
        let mut beta = claim(json!({}));
        beta.metadata.annotations =
            Some([(BETA_STORAGE_CLASS.to_string(), "fast".to_string())].into());
        admit(info, &mut beta, classes);
        assert!(beta.data["spec"].get("storageClassName").is_none());
        // No default class: nothing set.
        let mut lonely = claim(json!({}));
        admit(info, &mut lonely, || vec![class("fast", None, 1)]);
        assert!(lonely.data["spec"].get("storageClassName").is_none());
        // Other kinds are left alone.
        let pods = orch_types::registry::by_kind("v1", "Pod").unwrap();
        let mut pod = DynamicObject::new("v1", "Pod", "p");
        admit(pods, &mut pod, || panic!("classes are not read for a pod"));
        assert!(pod.data.get("spec").is_none());
    }
}
