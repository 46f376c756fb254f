//! Storage: PersistentVolumeClaim and PersistentVolume (core/v1, upstream
//! `pkg/apis/core/validation/validation.go` `ValidatePersistentVolumeClaim`,
//! `ValidatePersistentVolume` and their `…Update` functions) and StorageClass
//! (storage.k8s.io/v1, `pkg/apis/storage/validation/validation.go`), Kubernetes 1.33 with default
//! feature gates.
//!
//! The claim and volume rules sit here rather than in `core.rs` because they form one concept
//! with StorageClass (the classes, modes and policies they share); `core.rs` keeps the pod side.
//!
//! What is checked is the part of upstream's rules that concerns what orch does with storage:
//! metadata, access modes, sizes, reclaim policies, volume modes, class names, exactly one
//! volume source (with the `hostPath` and `local` sources checked in depth), node affinity, the
//! claim's data sources, and the immutability rules. Not checked: the fields of the cloud and
//! network volume sources (`nfs`, `csi`, `rbd`, …) beyond their presence, `mountOptions`, and
//! `volumeAttributesClassName` (its feature gate is off by default in 1.33).

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec, TypedLocalObjectReference,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::field::{FieldError, Path};
use super::meta::{self, immutable};
use crate::names;
use crate::quantity::Quantity;

/// Upstream `supportedAccessModes` (with `ReadWriteOncePod`, GA), sorted as `sets.List` prints
/// them.
pub const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
/// Upstream `supportedReclaimPolicy` of a PersistentVolume.
pub const PV_RECLAIM_POLICIES: &[&str] = &["Delete", "Recycle", "Retain"];
/// Upstream `supportedReclaimPolicy` of a StorageClass (no `Recycle`).
pub const CLASS_RECLAIM_POLICIES: &[&str] = &["Delete", "Retain"];
/// Upstream `supportedVolumeModes`.
pub const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
/// Upstream `supportedVolumeBindingModes`.
pub const BINDING_MODES: &[&str] = &["Immediate", "WaitForFirstConsumer"];
/// Upstream `supportedHostPathTypes` (`""` is unset).
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];
/// The beta annotation that named a claim's or volume's class before `storageClassName`.
pub const BETA_STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";
/// Upstream `maxProvisionerParameterLen`.
const MAX_PARAMETERS: usize = 512;
/// Upstream `maxProvisionerParameterSize`.
const MAX_PARAMETERS_SIZE: usize = 256 * 1024;

/// The volume sources of a PersistentVolumeSpec, in the order upstream checks them.
const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

/// `ValidateClassName` (a DNS-1123 subdomain) as `field.Invalid` errors.
fn class_name(name: &str, p: &Path) -> Vec<FieldError> {
    names::is_dns1123_subdomain(name)
        .into_iter()
        .map(|m| FieldError::invalid(p.clone(), name, m))
        .collect()
}

/// The access-mode rules shared by claims and volumes (upstream loops in
/// `ValidatePersistentVolumeSpec` and `ValidatePersistentVolumeClaimSpec`).
fn access_modes(modes: &[String], p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (mut once_pod, mut other) = (false, false);
    for m in modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            errs.push(FieldError::not_supported(p.clone(), m, ACCESS_MODES));
        }
        if m == "ReadWriteOncePod" {
            once_pod = true;
        } else if ACCESS_MODES.contains(&m.as_str()) {
            other = true;
        }
    }
    if once_pod && other {
        errs.push(FieldError::forbidden(
            p.clone(),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    errs
}

/// `ValidatePositiveQuantityValue`: `must be greater than zero`.
fn positive_quantity(q: &K8sQuantity, p: &Path) -> Vec<FieldError> {
    match Quantity::try_from(q) {
        Ok(v) if v <= Quantity::ZERO => vec![FieldError::invalid(
            p.clone(),
            &v.to_string(),
            "must be greater than zero",
        )],
        Ok(_) => Vec::new(),
        Err(e) => vec![FieldError::invalid(p.clone(), &q.0, e.to_string())],
    }
}

/// `validatePathNoBacksteps`.
fn no_backsteps(path: &str, p: &Path) -> Option<FieldError> {
    path.split('/')
        .any(|s| s == "..")
        .then(|| FieldError::invalid(p.clone(), path, "must not contain '..'"))
}

/// `validateDataSource` of a claim's `dataSource` / `dataSourceRef`.
fn data_source(kind: &str, name: &str, api_group: Option<&str>, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push(FieldError::required(p.child("name"), ""));
    }
    if kind.is_empty() {
        errs.push(FieldError::required(p.child("kind"), ""));
    }
    if api_group.unwrap_or("").is_empty() && kind != "PersistentVolumeClaim" {
        errs.push(FieldError::invalid(p.clone(), kind, ""));
    }
    errs
}

fn same_source(a: &TypedLocalObjectReference, spec: &PersistentVolumeClaimSpec) -> bool {
    spec.data_source_ref.as_ref().is_none_or(|r| {
        r.kind == a.kind
            && r.name == a.name
            && r.api_group == a.api_group
            && r.namespace.as_deref().unwrap_or("").is_empty()
    })
}

/// `ValidatePersistentVolumeClaimSpec`: access modes, `resources.requests.storage`, class
/// name, volume mode, data sources. Public to the crate so workload templates
/// (`volumeClaimTemplates`) can use it too.
pub(crate) fn pvc_spec(spec: &PersistentVolumeClaimSpec, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let modes = spec.access_modes.as_deref().unwrap_or_default();
    if modes.is_empty() {
        errs.push(FieldError::required(
            p.child("accessModes"),
            "at least 1 access mode is required",
        ));
    }
    if let Some(sel) = &spec.selector {
        errs.extend(meta::label_selector(sel, &p.child("selector")));
    }
    errs.extend(access_modes(modes, &p.child("accessModes")));
    // Upstream keys the path on `resources` itself: `spec.resources[storage]`.
    let storage_path = p.child("resources").key("storage");
    match spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    {
        None => errs.push(FieldError::required(storage_path, "")),
        Some(q) => errs.extend(positive_quantity(q, &storage_path)),
    }
    if let Some(c) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        errs.extend(class_name(c, &p.child("storageClassName")));
    }
    if let Some(m) = spec.volume_mode.as_deref() {
        if !VOLUME_MODES.contains(&m) {
            errs.push(FieldError::not_supported(
                p.child("volumeMode"),
                m,
                VOLUME_MODES,
            ));
        }
    }
    if let Some(ds) = &spec.data_source {
        errs.extend(data_source(
            &ds.kind,
            &ds.name,
            ds.api_group.as_deref(),
            &p.child("dataSource"),
        ));
        if !same_source(ds, spec) {
            errs.push(FieldError::invalid(
                p.clone(),
                p.child("dataSource").as_str(),
                "must match dataSourceRef",
            ));
        }
    }
    if let Some(r) = &spec.data_source_ref {
        errs.extend(data_source(
            &r.kind,
            &r.name,
            r.api_group.as_deref(),
            &p.child("dataSourceRef"),
        ));
    }
    errs
}

/// `ValidatePersistentVolumeClaim`.
pub(crate) fn pvc(c: &PersistentVolumeClaim) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&c.metadata, true, meta::NameRule::Subdomain);
    match &c.spec {
        Some(spec) => errs.extend(pvc_spec(spec, &Path::new("spec"))),
        None => errs.extend(pvc_spec(&Default::default(), &Path::new("spec"))),
    }
    errs
}

fn annotation<'a>(
    m: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    k: &str,
) -> Option<&'a str> {
    m.annotations.as_ref()?.get(k).map(String::as_str)
}

/// `ValidatePersistentVolumeClaimUpdate`: the spec is immutable except `volumeName` (set once,
/// by binding), `resources.requests` of a bound claim (expansion, and shrinking back down to
/// more than `status.capacity`: `RecoverVolumeExpansionFailure` is on by default in 1.33), and a
/// class set where there was none (`RetroactiveDefaultStorageClass`) or moved from the beta
/// annotation to `storageClassName`. Upstream appends a diff of the two specs to the
/// `spec` message; orch gives the sentence without the Go diff.
pub(crate) fn pvc_update(
    new: &PersistentVolumeClaim,
    old: &PersistentVolumeClaim,
) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    let mut n = new.spec.clone().unwrap_or_default();
    let mut o = old.spec.clone().unwrap_or_default();
    if o.volume_name.as_deref().unwrap_or("").is_empty() {
        o.volume_name.clone_from(&n.volume_name);
    }
    let old_beta = annotation(&old.metadata, BETA_STORAGE_CLASS_ANNOTATION);
    let new_beta = annotation(&new.metadata, BETA_STORAGE_CLASS_ANNOTATION);
    // validateStorageClassUpgradeFromAnnotation
    let from_annotation = old_beta.is_some()
        && o.storage_class_name.is_none()
        && n.storage_class_name.as_deref() == old_beta
        && new_beta.is_none_or(|b| Some(b) == old_beta);
    if from_annotation {
        n.storage_class_name = None;
    } else {
        if new_beta != old_beta {
            errs.push(immutable(
                Path::new("metadata")
                    .child("annotations")
                    .key(BETA_STORAGE_CLASS_ANNOTATION),
                new_beta.unwrap_or(""),
            ));
        }
        // validateStorageClassUpgradeFromNil
        let from_nil = n.storage_class_name.is_some()
            && o.storage_class_name.is_none()
            && old_beta.is_none_or(|b| n.storage_class_name.as_deref() == Some(b));
        if from_nil {
            n.storage_class_name = None;
        }
    }
    let bound = new
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Bound");
    if bound {
        let old_storage = o
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .cloned();
        if let Some(reqs) = n.resources.as_mut().and_then(|r| r.requests.as_mut()) {
            match old_storage {
                Some(q) => {
                    reqs.insert("storage".into(), q);
                }
                None => {
                    reqs.remove("storage");
                }
            }
        }
    }
    if n != o {
        errs.push(FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    if let (Some(ns), Some(os)) = (
        crate::resources::claim_storage_request(new),
        crate::resources::claim_storage_request(old),
    ) {
        if ns < os {
            let status = old
                .status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .and_then(|q| Quantity::try_from(q).ok())
                .unwrap_or(Quantity::ZERO);
            if ns <= status {
                errs.push(FieldError::forbidden(
                    Path::new("spec")
                        .child("resources")
                        .child("requests")
                        .child("storage"),
                    "field can not be less than status.capacity",
                ));
            }
        }
    }
    let mode = |c: &PersistentVolumeClaim| c.spec.as_ref().and_then(|s| s.volume_mode.clone());
    if mode(new) != mode(old) {
        errs.push(immutable(
            Path::new("volumeMode"),
            mode(new).as_deref().unwrap_or(""),
        ));
    }
    errs
}

/// The volume sources set in a PersistentVolume's spec, in upstream's order.
pub(crate) fn pv_sources(pv: &PersistentVolume) -> Vec<&'static str> {
    let Some(spec) = &pv.spec else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Object(m)) = serde_json::to_value(spec) else {
        return Vec::new();
    };
    PV_SOURCES
        .iter()
        .copied()
        .filter(|s| m.get(*s).is_some_and(|v| !v.is_null()))
        .collect()
}

/// `ValidatePersistentVolume` (`ValidatePersistentVolumeSpec` of a non-inline volume).
pub(crate) fn pv(pv: &PersistentVolume) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&pv.metadata, false, meta::NameRule::Subdomain);
    let p = Path::new("spec");
    let empty = Default::default();
    let s = pv.spec.as_ref().unwrap_or(&empty);
    let modes = s.access_modes.as_deref().unwrap_or_default();
    if modes.is_empty() {
        errs.push(FieldError::required(p.child("accessModes"), ""));
    }
    errs.extend(access_modes(modes, &p.child("accessModes")));
    let cap = s.capacity.as_ref();
    if cap.is_none_or(|c| c.is_empty()) {
        errs.push(FieldError::required(p.child("capacity"), ""));
    }
    if cap.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        let keys: Vec<&str> = cap.into_iter().flatten().map(|(k, _)| k.as_str()).collect();
        errs.push(FieldError::not_supported(
            p.child("capacity"),
            &format!("{keys:?}"),
            &["storage"],
        ));
    }
    for (k, q) in cap.into_iter().flatten() {
        errs.extend(positive_quantity(q, &p.child("capacity").key(k)));
    }
    if let Some(r) = s.persistent_volume_reclaim_policy.as_deref() {
        if !r.is_empty() && !PV_RECLAIM_POLICIES.contains(&r) {
            errs.push(FieldError::not_supported(
                p.child("persistentVolumeReclaimPolicy"),
                r,
                PV_RECLAIM_POLICIES,
            ));
        }
    }
    let affinity = s.node_affinity.is_some();
    if let Some(na) = &s.node_affinity {
        let np = p.child("nodeAffinity");
        match &na.required {
            Some(req) => errs.extend(super::core::node_selector(req, &np.child("required"))),
            None => errs.push(FieldError::required(
                np.child("required"),
                "must specify required node constraints",
            )),
        }
    }
    let sources = pv_sources(pv);
    match sources.first() {
        None => errs.push(FieldError::required(
            p.clone(),
            "must specify a volume type",
        )),
        Some(first) => {
            match *first {
                "hostPath" => {
                    let hp = s
                        .host_path
                        .as_ref()
                        .map(|h| (h.path.as_str(), h.type_.as_deref()));
                    if let Some((path, ty)) = hp {
                        let hpp = p.child("hostPath");
                        if path.is_empty() {
                            errs.push(FieldError::required(hpp.child("path"), ""));
                        } else {
                            errs.extend(no_backsteps(path, &hpp.child("path")));
                        }
                        if let Some(t) = ty {
                            if !HOST_PATH_TYPES.contains(&t) {
                                errs.push(FieldError::not_supported(
                                    hpp.child("type"),
                                    t,
                                    HOST_PATH_TYPES,
                                ));
                            }
                        }
                    }
                }
                "local" => {
                    let lp = p.child("local");
                    match s.local.as_ref().map(|l| l.path.as_str()) {
                        Some("") | None => errs.push(FieldError::required(lp.child("path"), "")),
                        Some(path) => errs.extend(no_backsteps(path, &lp.child("path"))),
                    }
                    if !affinity {
                        errs.push(FieldError::required(
                            p.child("nodeAffinity"),
                            "Local volume requires node affinity",
                        ));
                    }
                }
                _ => {}
            }
            for extra in &sources[1..] {
                errs.push(FieldError::forbidden(
                    p.child(extra),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    if let Some(h) = &s.host_path {
        let clean = h.path.trim_end_matches('/');
        if clean.is_empty()
            && h.path.starts_with('/')
            && s.persistent_volume_reclaim_policy.as_deref() == Some("Recycle")
        {
            errs.push(FieldError::forbidden(
                p.child("persistentVolumeReclaimPolicy"),
                "may not be 'recycle' for a hostPath mount of '/'",
            ));
        }
    }
    if let Some(c) = s.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        errs.extend(class_name(c, &p.child("storageClassName")));
    }
    if let Some(m) = s.volume_mode.as_deref() {
        if !VOLUME_MODES.contains(&m) {
            errs.push(FieldError::not_supported(
                p.child("volumeMode"),
                m,
                VOLUME_MODES,
            ));
        }
    }
    errs
}

/// The `PersistentVolumeSource` part of a spec (the sources), as JSON for comparison.
fn source_part(pv: &PersistentVolume) -> serde_json::Map<String, serde_json::Value> {
    let Some(spec) = &pv.spec else {
        return Default::default();
    };
    match serde_json::to_value(spec) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.retain(|k, _| PV_SOURCES.contains(&k.as_str()));
            m
        }
        _ => Default::default(),
    }
}

/// `ValidatePersistentVolumeUpdate`: the volume source and `volumeMode` are immutable, and
/// `nodeAffinity` once set. Upstream appends a diff of the sources to the message; orch gives
/// the sentence alone.
pub(crate) fn pv_update(new: &PersistentVolume, old: &PersistentVolume) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if source_part(new) != source_part(old) {
        errs.push(FieldError::forbidden(
            Path::new("spec").child("persistentvolumesource"),
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    let mode = |v: &PersistentVolume| v.spec.as_ref().and_then(|s| s.volume_mode.clone());
    if mode(new) != mode(old) {
        errs.push(immutable(
            Path::new("volumeMode"),
            mode(new).as_deref().unwrap_or(""),
        ));
    }
    let affinity = |v: &PersistentVolume| v.spec.as_ref().and_then(|s| s.node_affinity.clone());
    if affinity(old).is_some() && affinity(new) != affinity(old) {
        errs.push(FieldError::invalid_raw(
            Path::new("nodeAffinity"),
            "{...}",
            "field is immutable",
        ));
    }
    errs
}

/// `ValidateStorageClass`.
pub(crate) fn storage_class(sc: &StorageClass) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&sc.metadata, false, meta::NameRule::Subdomain);
    // validateProvisioner
    if sc.provisioner.is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    } else {
        for m in names::is_qualified_name(&sc.provisioner.to_lowercase()) {
            errs.push(FieldError::invalid("provisioner", &sc.provisioner, m));
        }
    }
    // validateParameters
    let params = sc.parameters.as_ref();
    let n = params.map_or(0, |p| p.len());
    if n > MAX_PARAMETERS {
        errs.push(FieldError::too_long("parameters", MAX_PARAMETERS));
    } else {
        let mut size = 0;
        for (k, v) in params.into_iter().flatten() {
            if k.is_empty() {
                errs.push(FieldError::invalid(
                    "parameters",
                    k,
                    "field can not be empty.",
                ));
            }
            size += k.len() + v.len();
        }
        if size > MAX_PARAMETERS_SIZE {
            errs.push(FieldError::too_long("parameters", MAX_PARAMETERS_SIZE));
        }
    }
    // validateReclaimPolicy
    if let Some(r) = sc.reclaim_policy.as_deref().filter(|r| !r.is_empty()) {
        if !CLASS_RECLAIM_POLICIES.contains(&r) {
            errs.push(FieldError::not_supported(
                "reclaimPolicy",
                r,
                CLASS_RECLAIM_POLICIES,
            ));
        }
    }
    // validateVolumeBindingMode (defaulting fills it in; a nil mode is an error)
    match sc.volume_binding_mode.as_deref() {
        None => errs.push(FieldError::required("volumeBindingMode", "")),
        Some(m) if !BINDING_MODES.contains(&m) => errs.push(FieldError::not_supported(
            "volumeBindingMode",
            m,
            BINDING_MODES,
        )),
        Some(_) => {}
    }
    // validateAllowedTopologies: each term needs matchLabelExpressions with values.
    for (i, t) in sc.allowed_topologies.iter().flatten().enumerate() {
        let tp = Path::new("allowedTopologies").index(i);
        let exprs = t.match_label_expressions.as_deref().unwrap_or_default();
        if exprs.is_empty() {
            errs.push(FieldError::required(tp.child("matchLabelExpressions"), ""));
        }
        for (j, e) in exprs.iter().enumerate() {
            let ep = tp.child("matchLabelExpressions").index(j);
            for m in names::is_qualified_name(&e.key) {
                errs.push(FieldError::invalid(ep.child("key"), &e.key, m));
            }
            if e.values.is_empty() {
                errs.push(FieldError::required(
                    ep.child("values"),
                    "must specify as least one value",
                ));
            }
        }
    }
    errs
}

/// `ValidateStorageClassUpdate`: parameters, provisioner, reclaim policy and binding mode are
/// fixed.
pub(crate) fn storage_class_update(new: &StorageClass, old: &StorageClass) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if new.parameters.clone().unwrap_or_default() != old.parameters.clone().unwrap_or_default() {
        errs.push(FieldError::forbidden(
            "parameters",
            "updates to parameters are forbidden.",
        ));
    }
    if new.provisioner != old.provisioner {
        errs.push(FieldError::forbidden(
            "provisioner",
            "updates to provisioner are forbidden.",
        ));
    }
    if new.reclaim_policy != old.reclaim_policy {
        errs.push(FieldError::forbidden(
            "reclaimPolicy",
            "updates to reclaimPolicy are forbidden.",
        ));
    }
    if new.volume_binding_mode != old.volume_binding_mode {
        errs.push(immutable(
            Path::new("volumeBindingMode"),
            new.volume_binding_mode.as_deref().unwrap_or(""),
        ));
    }
    errs
}
