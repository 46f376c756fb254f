//! settings.k8s.io/v1alpha1 validation: upstream `ValidatePodPreset`
//! (`pkg/apis/settings/validation/validation.go` of 1.19, the last release that served it).
//!
//! The env, envFrom, volume and volume mount rules are the pod's (`core.rs`), as upstream calls
//! the core validators.

use super::core;
use super::field::{FieldError, Path};
use super::meta::{self, NameRule};
use crate::settings::PodPreset;

/// `ValidatePodPreset`: metadata (namespaced, DNS subdomain name), a valid selector, at least one
/// of env / envFrom / volumes / volumeMounts, each valid as in a pod, mounts naming the preset's
/// own volumes. An update is held to the same rules plus the metadata update rules
/// (`ValidatePodPresetUpdate`), which `validate_update` applies to every kind.
pub(crate) fn pod_preset(pp: &PodPreset) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&pp.metadata, true, NameRule::Subdomain);
    let spec = &pp.spec;
    let p = Path::new("spec");
    errs.extend(meta::label_selector(&spec.selector, &p.child("selector")));
    if spec.env.is_none()
        && spec.env_from.is_none()
        && spec.volume_mounts.is_none()
        && spec.volumes.is_none()
    {
        // Upstream's path: `fldPath.Child("volumes", "env", "envFrom", "volumeMounts")`.
        errs.push(FieldError::required(
            p.child("volumes")
                .child("env")
                .child("envFrom")
                .child("volumeMounts"),
            "must specify at least one",
        ));
    }
    let (volumes, vol_errs) = core::volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        &p.child("volumes"),
    );
    errs.extend(vol_errs);
    errs.extend(core::env(
        spec.env.as_deref().unwrap_or_default(),
        &p.child("env"),
    ));
    errs.extend(core::env_from(
        spec.env_from.as_deref().unwrap_or_default(),
        &p.child("envFrom"),
    ));
    errs.extend(core::volume_mounts(
        spec.volume_mounts.as_deref().unwrap_or_default(),
        &volumes,
        &p.child("volumeMounts"),
    ));
    errs
}

#[cfg(test)]
mod tests {
    use crate::validation::validate;
    use crate::DynamicObject;

    fn preset(spec: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "settings.k8s.io/v1alpha1", "kind": "PodPreset",
            "metadata": {"name": "allow-database", "namespace": "default"},
            "spec": spec}))
        .unwrap()
    }

    fn lines(d: &DynamicObject) -> Vec<String> {
        validate(d).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_docs_example_is_valid() {
        let d = preset(serde_json::json!({
            "selector": {"matchLabels": {"role": "frontend"}},
            "env": [{"name": "DB_PORT", "value": "6379"}],
            "volumeMounts": [{"mountPath": "/cache", "name": "cache-volume"}],
            "volumes": [{"name": "cache-volume", "emptyDir": {}}]}));
        assert_eq!(lines(&d), Vec::<String>::new());
    }

    #[test]
    fn needs_something_to_inject() {
        let d = preset(serde_json::json!({"selector": {"matchLabels": {"role": "frontend"}}}));
        assert_eq!(
            lines(&d),
            ["spec.volumes.env.envFrom.volumeMounts: Required value: must specify at least one"]
        );
    }

    #[test]
    fn selector_env_and_mounts_are_checked_as_in_a_pod() {
        let d = preset(serde_json::json!({
            "selector": {"matchExpressions": [{"key": "role", "operator": "In"}]},
            "env": [{"name": "A=B", "value": "x"}],
            "envFrom": [{}],
            "volumeMounts": [{"mountPath": "/cache", "name": "missing"}],
            "volumes": [{"name": "Bad_Name", "emptyDir": {}}]}));
        let got = lines(&d);
        assert!(
            got.iter()
                .any(|l| l.starts_with("spec.selector.matchExpressions[0].values")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|l| l.starts_with("spec.env[0].name: Invalid value: \"A=B\"")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|l| l.starts_with("spec.envFrom: Invalid value")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|l| l == "spec.volumeMounts[0].name: Not found: \"missing\""),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|l| l.starts_with("spec.volumes[0].name: Invalid value: \"Bad_Name\"")),
            "{got:?}"
        );
    }
}
