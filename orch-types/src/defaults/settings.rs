//! settings.k8s.io/v1alpha1 defaults: upstream's generated defaulter for PodPreset
//! (`pkg/apis/settings/v1alpha1/zz_generated.defaults.go` of 1.19) runs the core/v1 defaults on
//! the volumes and env vars a preset carries, so what the PodPreset admission plugin injects is
//! already defaulted like the rest of the pod (and compares equal to a defaulted pod's own).

use super::core;
use crate::settings::PodPreset;

/// `SetObjectDefaults_PodPreset`: volume source defaults, `fieldRef.apiVersion: v1`.
pub(crate) fn pod_preset(pp: &mut PodPreset) {
    for v in pp.spec.volumes.iter_mut().flatten() {
        core::volume(v);
    }
    for e in pp.spec.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            if f.api_version.as_deref().is_none_or(str::is_empty) {
                f.api_version = Some("v1".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::defaults::apply_defaults;
    use crate::DynamicObject;

    #[test]
    fn volumes_and_field_refs_are_defaulted() {
        let mut d: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "settings.k8s.io/v1alpha1", "kind": "PodPreset",
            "metadata": {"name": "p"},
            "spec": {"selector": {},
                     "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                     "volumes": [{"name": "s", "secret": {"secretName": "s"}}, {"name": "e"}]}}))
        .unwrap();
        apply_defaults(&mut d).unwrap();
        let spec = &d.data["spec"];
        assert_eq!(spec["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(spec["volumes"][0]["secret"]["defaultMode"], 0o644);
        assert_eq!(spec["volumes"][1]["emptyDir"], serde_json::json!({}));
        let once = d.clone();
        apply_defaults(&mut d).unwrap();
        assert_eq!(d, once);
    }
}
