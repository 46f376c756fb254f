//! `PodPreset`: a pod being created gets the env, envFrom, volumes and volume mounts of every
//! PodPreset of its namespace whose selector matches its labels (upstream
//! `plugin/pkg/admission/podpreset/admission.go` of 1.19, the last release that had it).
//!
//! As upstream:
//! - only pod CREATE; pods annotated [`EXCLUDE_ANNOTATION`]` = "true"` and mirror pods
//!   ([`MIRROR_POD_ANNOTATION`]) are left alone;
//! - all matching presets are checked together first (`safeToApplyPodPresetsOnPod`): an env var
//!   of the same name with a different value, a volume mount of the same name or the same mount
//!   path that differs, a volume of the same name that differs — in any container or init
//!   container, against the pod or against another preset — is a conflict, and then nothing is
//!   injected and the pod is still created;
//! - otherwise env vars, volume mounts (skipping identical ones) and envFrom (appended) go into
//!   every container and init container, volumes into the pod, and the pod is annotated
//!   `podpreset.admission.kubernetes.io/podpreset-<name>: "<resourceVersion>"` per preset.
//!
//! Upstream 1.19 only logs a conflict; its first version (1.6–1.7) recorded a `Warning` Event
//! on the pod from source component `pip <name>` with the merge error as message and no reason,
//! which is what [`conflict_event`] builds (the API server writes it, see `admission/mod.rs`).
//! The messages are upstream's, with the conflicting items printed as JSON where Go printed
//! `%#v`.

use crate::rest::Resource;
use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVar, Pod, Volume, VolumeMount};
use orch_types::events::{EventAggregator, EventType, ObjectRef};
use orch_types::labels::Selector;
use orch_types::settings::PodPreset;
use orch_types::{ApiError, DynamicObject};
use std::collections::BTreeMap;

/// Prefix of the annotations the plugin reads and writes.
pub const ANNOTATION_PREFIX: &str = "podpreset.admission.kubernetes.io";
/// A pod annotated with this key set to `"true"` opts out (upstream
/// `PodPresetOptOutAnnotationKey`).
pub const EXCLUDE_ANNOTATION: &str = "podpreset.admission.kubernetes.io/exclude";
/// Annotation of a kubelet's mirror pod (upstream `MirrorPodAnnotationKey`); mirror pods are
/// left alone.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// What the plugin did to a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a pod create, opted out, a mirror pod, or no preset matched: the pod is unchanged.
    Skipped,
    /// These presets (by name) were applied.
    Applied(Vec<String>),
    /// These presets matched but conflict: the pod is unchanged; `message` is the merge error.
    Conflict {
        /// Names of the matching presets.
        presets: Vec<String>,
        /// Upstream's merge error text (errors joined as `utilerrors.NewAggregate` does).
        message: String,
    },
}

/// The annotation recording that preset `name` was applied.
pub fn applied_annotation(name: &str) -> String {
    format!("{ANNOTATION_PREFIX}/podpreset-{name}")
}

/// Runs the plugin on a pod being created; `presets` lists the PodPresets of its namespace.
///
/// Fails (as upstream's `filtering pod presets failed`) only when a stored preset has a selector
/// that does not convert, which validation prevents.
///
/// ```
/// use orch_apiserver::admission::pod_preset::{admit, Outcome};
/// use orch_types::settings::PodPreset;
/// let info = orch_types::registry::by_kind("v1", "Pod").unwrap();
/// let mut pod: orch_types::DynamicObject = serde_json::from_value(serde_json::json!({
///     "apiVersion": "v1", "kind": "Pod",
///     "metadata": {"name": "web", "namespace": "default", "labels": {"role": "frontend"}},
///     "spec": {"containers": [{"name": "c", "image": "nginx"}]}})).unwrap();
/// let preset: PodPreset = serde_json::from_value(serde_json::json!({
///     "metadata": {"name": "db", "namespace": "default", "resourceVersion": "7"},
///     "spec": {"selector": {"matchLabels": {"role": "frontend"}},
///              "env": [{"name": "DB_PORT", "value": "6379"}]}})).unwrap();
/// let out = admit(info, &mut pod, || vec![preset]).unwrap();
/// assert_eq!(out, Outcome::Applied(vec!["db".into()]));
/// assert_eq!(pod.data["spec"]["containers"][0]["env"][0]["name"], "DB_PORT");
/// assert_eq!(pod.metadata.annotations.unwrap()["podpreset.admission.kubernetes.io/podpreset-db"], "7");
/// ```
pub fn admit(
    info: Resource,
    pod: &mut DynamicObject,
    presets: impl FnOnce() -> Vec<PodPreset>,
) -> Result<Outcome, ApiError> {
    if info.kind != "Pod" || !info.group.is_empty() {
        return Ok(Outcome::Skipped);
    }
    let annotations = pod.metadata.annotations.as_ref();
    let annotation = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    if annotation(MIRROR_POD_ANNOTATION).is_some() || annotation(EXCLUDE_ANNOTATION) == Some("true")
    {
        return Ok(Outcome::Skipped);
    }
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let mut matching = Vec::new();
    for pp in presets() {
        let selector = Selector::try_from(&pp.spec.selector).map_err(|e| {
            ApiError::internal(format!(
                "filtering pod presets failed: label selector conversion failed: {e}"
            ))
        })?;
        if selector.matches(&labels) {
            matching.push(pp);
        }
    }
    if matching.is_empty() {
        return Ok(Outcome::Skipped);
    }
    // Defaulting made the pod fit its typed struct; if it does not, validation says why.
    let Ok(mut typed) = pod.to_typed::<Pod>() else {
        return Ok(Outcome::Skipped);
    };
    let names: Vec<String> = matching.iter().map(name).collect();
    if let Err(message) = safe_to_apply(&typed, &matching) {
        return Ok(Outcome::Conflict {
            presets: names,
            message,
        });
    }
    apply(&mut typed, &matching);
    let Ok(merged) = DynamicObject::from_typed(&typed) else {
        return Ok(Outcome::Skipped);
    };
    *pod = merged;
    Ok(Outcome::Applied(names))
}

/// The `Warning` Event recording a conflict on `pod` (see the module docs), at `now`.
pub fn conflict_event(
    pod: &DynamicObject,
    presets: &[String],
    message: &str,
    now: jiff::Timestamp,
) -> k8s_openapi::api::core::v1::Event {
    let component = format!("pip {}", presets.join(","));
    EventAggregator::new(&component, None).build(
        &ObjectRef::of_dynamic(pod),
        EventType::Warning,
        "",
        message,
        now,
    )
}

fn name(pp: &PodPreset) -> String {
    pp.metadata.name.clone().unwrap_or_default()
}

/// JSON of an item in a conflict message (upstream prints Go's `%#v`).
fn show<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `utilerrors.NewAggregate(errs).Error()`: one message as is, several as `[a, b]`.
fn aggregate(errs: Vec<String>) -> Result<(), String> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(errs.into_iter().next().unwrap_or_default()),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

/// `safeToApplyPodPresetsOnPod`: volumes, then every container and init container.
fn safe_to_apply(pod: &Pod, presets: &[PodPreset]) -> Result<(), String> {
    let Some(spec) = &pod.spec else {
        return Ok(());
    };
    let mut errs = Vec::new();
    if let Err(e) = merge_volumes(spec.volumes.as_deref().unwrap_or_default(), presets) {
        errs.push(e);
    }
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let mut cerrs = Vec::new();
        if let Err(e) = merge_env(c.env.as_deref().unwrap_or_default(), presets) {
            cerrs.push(e);
        }
        if let Err(e) = merge_volume_mounts(c.volume_mounts.as_deref().unwrap_or_default(), presets)
        {
            cerrs.push(e);
        }
        if let Err(e) = aggregate(cerrs) {
            errs.push(e);
        }
    }
    aggregate(errs)
}

/// `applyPodPresetsOnPod`, after [`safe_to_apply`] said yes.
fn apply(pod: &mut Pod, presets: &[PodPreset]) {
    if let Some(spec) = pod.spec.as_mut() {
        if let Ok(v) = merge_volumes(spec.volumes.as_deref().unwrap_or_default(), presets) {
            spec.volumes = non_empty(v);
        }
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            apply_on_container(c, presets);
        }
    }
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for pp in presets {
        annotations.insert(
            applied_annotation(&name(pp)),
            pp.metadata.resource_version.clone().unwrap_or_default(),
        );
    }
}

/// `applyPodPresetsOnContainer`: env, volume mounts, envFrom.
fn apply_on_container(c: &mut Container, presets: &[PodPreset]) {
    if let Ok(v) = merge_env(c.env.as_deref().unwrap_or_default(), presets) {
        c.env = non_empty(v);
    }
    if let Ok(v) = merge_volume_mounts(c.volume_mounts.as_deref().unwrap_or_default(), presets) {
        c.volume_mounts = non_empty(v);
    }
    c.env_from = non_empty(merge_env_from(
        c.env_from.as_deref().unwrap_or_default(),
        presets,
    ));
}

/// Upstream's empty slices serialize as omitted fields.
fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// Adds each preset's items (`of`) to `own` unless one of the same name exists, which must then
/// be identical (`mergeEnv`, `mergeVolumes`); `what` names the list in the conflict message.
fn merge_by_name<T: Clone + PartialEq + serde::Serialize>(
    own: &[T],
    presets: &[PodPreset],
    of: impl Fn(&PodPreset) -> Option<&Vec<T>>,
    key: impl Fn(&T) -> &str,
    what: &str,
) -> Result<Vec<T>, String> {
    let mut by_name: BTreeMap<String, T> = own
        .iter()
        .map(|v| (key(v).to_string(), v.clone()))
        .collect();
    let mut merged = own.to_vec();
    let mut errs = Vec::new();
    for pp in presets {
        for v in of(pp).into_iter().flatten() {
            match by_name.get(key(v)) {
                None => {
                    by_name.insert(key(v).to_string(), v.clone());
                    merged.push(v.clone());
                }
                // Upstream's message says "in container" for volumes too.
                Some(found) if found != v => errs.push(format!(
                    "merging {what} for {} has a conflict on {}: \n{}\ndoes not match\n{}\n in container",
                    name(pp),
                    key(v),
                    show(v),
                    show(found)
                )),
                Some(_) => {}
            }
        }
    }
    aggregate(errs).map(|()| merged)
}

/// `mergeEnv`.
fn merge_env(env: &[EnvVar], presets: &[PodPreset]) -> Result<Vec<EnvVar>, String> {
    merge_by_name(env, presets, |pp| pp.spec.env.as_ref(), |v| &v.name, "env")
}

/// `mergeEnvFrom`: appended, never a conflict.
fn merge_env_from(env_from: &[EnvFromSource], presets: &[PodPreset]) -> Vec<EnvFromSource> {
    let mut merged = env_from.to_vec();
    for pp in presets {
        merged.extend(pp.spec.env_from.iter().flatten().cloned());
    }
    merged
}

/// `mergeVolumeMounts`: a preset's mount is added unless one of that name exists; a mount of the
/// same name, or at the same path, must be identical.
fn merge_volume_mounts(
    mounts: &[VolumeMount],
    presets: &[PodPreset],
) -> Result<Vec<VolumeMount>, String> {
    let mut by_name: BTreeMap<String, VolumeMount> =
        mounts.iter().map(|m| (m.name.clone(), m.clone())).collect();
    let mut by_path: BTreeMap<String, VolumeMount> = mounts
        .iter()
        .map(|m| (m.mount_path.clone(), m.clone()))
        .collect();
    let mut merged = mounts.to_vec();
    let mut errs = Vec::new();
    for pp in presets {
        for m in pp.spec.volume_mounts.iter().flatten() {
            match by_name.get(&m.name) {
                None => {
                    by_name.insert(m.name.clone(), m.clone());
                    merged.push(m.clone());
                }
                Some(found) if found != m => errs.push(format!(
                    "merging volume mounts for {} has a conflict on {}: \n{}\ndoes not match\n{}\n in container",
                    name(pp),
                    m.name,
                    show(m),
                    show(found)
                )),
                Some(_) => {}
            }
            match by_path.get(&m.mount_path) {
                None => {
                    by_path.insert(m.mount_path.clone(), m.clone());
                }
                Some(found) if found != m => errs.push(format!(
                    "merging volume mounts for {} has a conflict on mount path {}: \n{}\ndoes not match\n{}\n in container",
                    name(pp),
                    m.mount_path,
                    show(m),
                    show(found)
                )),
                Some(_) => {}
            }
        }
    }
    aggregate(errs).map(|()| merged)
}

/// `mergeVolumes`.
fn merge_volumes(volumes: &[Volume], presets: &[PodPreset]) -> Result<Vec<Volume>, String> {
    merge_by_name(
        volumes,
        presets,
        |pp| pp.spec.volumes.as_ref(),
        |v| &v.name,
        "volumes",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn pod_info() -> Resource {
        orch_types::registry::by_kind("v1", "Pod").unwrap()
    }

    fn pod(meta: Value, spec: Value) -> DynamicObject {
        let mut d: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}))
        .unwrap();
        orch_types::defaults::apply_defaults(&mut d).unwrap();
        d
    }

    fn frontend(spec: Value) -> DynamicObject {
        pod(
            json!({"name": "website", "namespace": "default", "labels": {"role": "frontend"}}),
            spec,
        )
    }

    fn preset(name: &str, rv: &str, spec: Value) -> PodPreset {
        let mut d: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "settings.k8s.io/v1alpha1", "kind": "PodPreset",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
            "spec": spec}))
        .unwrap();
        orch_types::defaults::apply_defaults(&mut d).unwrap();
        d.to_typed().unwrap()
    }

    /// The preset of the upstream task page "Inject Information into Pods Using a PodPreset".
    fn allow_database() -> PodPreset {
        preset(
            "allow-database",
            "42",
            json!({"selector": {"matchLabels": {"role": "frontend"}},
                   "env": [{"name": "DB_PORT", "value": "6379"}],
                   "envFrom": [{"configMapRef": {"name": "etcd-env-config"}}],
                   "volumeMounts": [{"mountPath": "/cache", "name": "cache-volume"}],
                   "volumes": [{"name": "cache-volume", "emptyDir": {}}]}),
        )
    }

    #[test]
    fn merges_into_every_container_and_init_container() {
        let mut p = frontend(json!({
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [
                {"name": "website", "image": "nginx", "env": [{"name": "A", "value": "1"}],
                 "envFrom": [{"secretRef": {"name": "s"}}]},
                {"name": "sidecar", "image": "busybox",
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}));
        let out = admit(pod_info(), &mut p, || vec![allow_database()]).unwrap();
        assert_eq!(out, Outcome::Applied(vec!["allow-database".into()]));
        let spec = &p.data["spec"];
        let web = &spec["containers"][0];
        assert_eq!(
            web["env"],
            json!([{"name": "A", "value": "1"}, {"name": "DB_PORT", "value": "6379"}])
        );
        assert_eq!(
            web["envFrom"],
            json!([{"secretRef": {"name": "s"}}, {"configMapRef": {"name": "etcd-env-config"}}])
        );
        assert_eq!(
            web["volumeMounts"],
            json!([{"mountPath": "/cache", "name": "cache-volume"}])
        );
        let sidecar = &spec["containers"][1];
        assert_eq!(sidecar["volumeMounts"][1]["name"], "cache-volume");
        assert_eq!(spec["initContainers"][0]["env"][0]["name"], "DB_PORT");
        assert_eq!(
            spec["volumes"],
            json!([{"name": "data", "emptyDir": {}}, {"name": "cache-volume", "emptyDir": {}}])
        );
        assert_eq!(
            p.metadata.annotations.as_ref().unwrap()
                ["podpreset.admission.kubernetes.io/podpreset-allow-database"],
            "42"
        );
        // The result is still a valid pod.
        assert_eq!(orch_types::validation::validate_defaulted(&p), vec![]);
    }

    #[test]
    fn identical_items_are_not_duplicated_and_presets_combine() {
        let mut p = frontend(json!({
            "containers": [{"name": "website", "image": "nginx",
                            "env": [{"name": "DB_PORT", "value": "6379"}]}]}));
        let other = preset(
            "proxy",
            "43",
            json!({"selector": {}, "env": [{"name": "HTTP_PROXY", "value": "http://p"}]}),
        );
        let out = admit(pod_info(), &mut p, || vec![allow_database(), other]).unwrap();
        assert_eq!(
            out,
            Outcome::Applied(vec!["allow-database".into(), "proxy".into()])
        );
        let names: Vec<&str> = p.data["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["DB_PORT", "HTTP_PROXY"]);
        let ann = p.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            ann["podpreset.admission.kubernetes.io/podpreset-proxy"],
            "43"
        );
    }

    #[test]
    fn a_conflict_injects_nothing_and_names_the_conflict() {
        let spec = json!({
            "containers": [{"name": "website", "image": "nginx",
                            "env": [{"name": "DB_PORT", "value": "5432"}]}]});
        let mut p = frontend(spec.clone());
        let before = p.clone();
        let out = admit(pod_info(), &mut p, || vec![allow_database()]).unwrap();
        assert_eq!(p, before);
        let Outcome::Conflict { presets, message } = out else {
            panic!("expected a conflict, got {out:?}");
        };
        assert_eq!(presets, ["allow-database"]);
        assert_eq!(
            message,
            "merging env for allow-database has a conflict on DB_PORT: \n\
             {\"name\":\"DB_PORT\",\"value\":\"6379\"}\ndoes not match\n\
             {\"name\":\"DB_PORT\",\"value\":\"5432\"}\n in container"
        );
        let ev = conflict_event(&p, &presets, &message, jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        assert_eq!(ev.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(ev.involved_object.name.as_deref(), Some("website"));
        assert_eq!(
            ev.source.and_then(|s| s.component).as_deref(),
            Some("pip allow-database")
        );
    }

    #[test]
    fn mount_path_volume_and_preset_against_preset_conflicts() {
        // Same mount path, other volume name.
        let mut p = frontend(json!({
            "containers": [{"name": "website", "image": "nginx",
                            "volumeMounts": [{"name": "data", "mountPath": "/cache"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}));
        let Outcome::Conflict { message, .. } =
            admit(pod_info(), &mut p, || vec![allow_database()]).unwrap()
        else {
            panic!("mount path conflict not seen");
        };
        assert!(
            message.starts_with(
                "merging volume mounts for allow-database has a conflict on mount path /cache: "
            ),
            "{message}"
        );
        // Same volume name, other source.
        let mut p = frontend(json!({
            "containers": [{"name": "website", "image": "nginx"}],
            "volumes": [{"name": "cache-volume", "hostPath": {"path": "/tmp"}}]}));
        let Outcome::Conflict { message, .. } =
            admit(pod_info(), &mut p, || vec![allow_database()]).unwrap()
        else {
            panic!("volume conflict not seen");
        };
        assert!(
            message
                .starts_with("merging volumes for allow-database has a conflict on cache-volume: "),
            "{message}"
        );
        // Two presets disagreeing with each other.
        let rival = preset(
            "rival",
            "44",
            json!({"selector": {}, "env": [{"name": "DB_PORT", "value": "1"}]}),
        );
        let mut p = frontend(json!({"containers": [{"name": "website", "image": "nginx"}]}));
        let out = admit(pod_info(), &mut p, || vec![allow_database(), rival]).unwrap();
        assert!(
            matches!(&out, Outcome::Conflict { message, .. } if message.starts_with("merging env for rival has a conflict on DB_PORT")),
            "{out:?}"
        );
        assert!(p.metadata.annotations.is_none());
    }

    #[test]
    fn excluded_mirror_and_unselected_pods_are_left_alone() {
        let spec = json!({"containers": [{"name": "website", "image": "nginx"}]});
        for annotations in [
            json!({"podpreset.admission.kubernetes.io/exclude": "true"}),
            json!({"kubernetes.io/config.mirror": "abc"}),
        ] {
            let mut p = pod(
                json!({"name": "w", "namespace": "default", "labels": {"role": "frontend"},
                       "annotations": annotations}),
                spec.clone(),
            );
            let before = p.clone();
            let out = admit(pod_info(), &mut p, || panic!("presets are not even listed")).unwrap();
            assert_eq!(out, Outcome::Skipped);
            assert_eq!(p, before);
        }
        let mut p = pod(
            json!({"name": "w", "namespace": "default", "labels": {"role": "backend"}}),
            spec.clone(),
        );
        let before = p.clone();
        assert_eq!(
            admit(pod_info(), &mut p, || vec![allow_database()]).unwrap(),
            Outcome::Skipped
        );
        assert_eq!(p, before);
        // "exclude: false" does not opt out.
        let mut p = pod(
            json!({"name": "w", "namespace": "default", "labels": {"role": "frontend"},
                   "annotations": {"podpreset.admission.kubernetes.io/exclude": "false"}}),
            spec,
        );
        assert!(matches!(
            admit(pod_info(), &mut p, || vec![allow_database()]).unwrap(),
            Outcome::Applied(_)
        ));
    }

    #[test]
    fn other_kinds_are_not_touched() {
        let info = orch_types::registry::by_kind("v1", "ConfigMap").unwrap();
        let mut cm = DynamicObject::new("v1", "ConfigMap", "c");
        assert_eq!(
            admit(info, &mut cm, || vec![allow_database()]).unwrap(),
            Outcome::Skipped
        );
    }
}
