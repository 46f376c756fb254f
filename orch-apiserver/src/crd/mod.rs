//! Serving CustomResourceDefinitions: what a CRD adds to the API while it exists.
//!
//! Every API server keeps a [`Catalog`] of the custom resources it serves, rebuilt from the
//! CustomResourceDefinitions in its watch cache whenever one changes ([`controller`]), so a CRD
//! written through any API server sharing the storage is served by all of them within a watch
//! round trip, and again after a restart (the catalog is built before the server answers).
//!
//! A version of a CRD is served once its names are accepted (the `NamesAccepted` or
//! `Established` condition is true; upstream `apiextensions-apiserver/pkg/apiserver/
//! customresource_handler.go`), under `status.acceptedNames`, while `served: true`. Each served
//! version becomes a [`ResourceInfo`] like a built-in kind's, so the generic REST verbs, watch
//! cache, tables and clients handle custom objects with no special path; what is particular to
//! custom resources (the schema, printer columns, the scale subresource, the storage version)
//! is looked up through [`CustomResource`].
//!
//! [`ResourceInfo`] borrows `'static` strings. Custom entries are built once per distinct
//! definition and kept for the life of the process ([`intern`]): memory grows with the number
//! of distinct CRD name/scope/subresource combinations ever served, not with requests.

pub mod admission;
pub mod controller;
pub mod openapi;
pub mod table;

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use orch_types::registry::{self, ResourceInfo, SubresourceInfo};
use parking_lot::{Mutex, RwLock};

use crate::rest::Resource;
use crate::server::ApiServer;

/// The finalizer that makes deleting a CRD delete its objects first (upstream
/// `apiextensionsv1.CustomResourceCleanupFinalizer`).
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The CustomResourceDefinition kind itself.
pub fn crd_info() -> Resource {
    registry::by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .expect("CustomResourceDefinition is a built-in kind")
}

/// One served version of a custom resource.
#[derive(Debug)]
pub struct CustomResource {
    /// The resource as routes, caches and clients see it.
    pub info: Resource,
    /// The entry of the storage version (objects are stored in it whatever version a client
    /// uses); equal to `info` for the storage version itself.
    pub storage: Resource,
    /// The definition.
    pub crd: Arc<CustomResourceDefinition>,
    /// This version's entry of `spec.versions`.
    pub version: CustomResourceDefinitionVersion,
    /// The version's compiled structural schema (pruning, defaulting, validation); `None`
    /// when the version has none.
    pub structural: Option<orch_types::crd::Structural>,
    /// The schema set server-side apply tracks and merges this version's fields by
    /// ([`openapi::apply_schema`]); `None` when the version has no schema.
    pub apply_schemas: Option<&'static crate::schema::Schemas>,
}

impl CustomResource {
    /// Whether the CRD is being deleted (its objects are being removed; creates are refused).
    pub fn terminating(&self) -> bool {
        self.crd.metadata.deletion_timestamp.is_some()
    }

    /// The `openAPIV3Schema` of this version, if it has one.
    pub fn schema(
        &self,
    ) -> Option<&k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps>
    {
        self.version.schema.as_ref()?.open_api_v3_schema.as_ref()
    }

    /// Whether the version has the `status` subresource.
    pub fn has_status(&self) -> bool {
        self.info.subresource("status").is_some()
    }
}

/// The custom resources one API server serves, keyed by group, version and plural.
#[derive(Debug, Default)]
pub struct Catalog {
    by_path: HashMap<(String, String, String), Arc<CustomResource>>,
    /// Served entries ordered as discovery lists them: by group, then version priority.
    ordered: Vec<Arc<CustomResource>>,
    /// OpenAPI v3 documents of the custom group versions (`apis/GROUP/VERSION` → document).
    pub(crate) openapi: openapi::Documents,
}

impl Catalog {
    /// Builds the catalog from every CRD: the served versions of those whose names are
    /// accepted. A CRD naming a built-in resource is never served. Schemas of versions whose
    /// CRD has the same UID and generation in `previous` are reused, not compiled again.
    pub fn build(crds: &[Arc<CustomResourceDefinition>], previous: Option<&Catalog>) -> Self {
        let mut ordered = Vec::new();
        let mut sorted: Vec<&Arc<CustomResourceDefinition>> = crds.iter().collect();
        sorted.sort_by(|a, b| {
            a.spec
                .group
                .cmp(&b.spec.group)
                .then(a.spec.names.plural.cmp(&b.spec.names.plural))
        });
        for crd in sorted {
            if !accepted(crd) {
                continue;
            }
            let Some(storage_version) = crd.spec.versions.iter().find(|v| v.storage) else {
                continue;
            };
            let storage = intern(&Spec::of(crd, storage_version));
            if registry::by_plural(storage.group, storage.version, storage.plural).is_some() {
                continue;
            }
            let mut versions: Vec<&CustomResourceDefinitionVersion> =
                crd.spec.versions.iter().filter(|v| v.served).collect();
            versions.sort_by(|a, b| compare_versions(&a.name, &b.name));
            for v in versions {
                let info = intern(&Spec::of(crd, v));
                let structural = previous
                    .and_then(|p| p.get(info.group, info.version, info.plural))
                    .filter(|old| {
                        old.crd.metadata.uid == crd.metadata.uid
                            && old.crd.metadata.generation == crd.metadata.generation
                    })
                    .map(|old| old.structural.clone())
                    .unwrap_or_else(|| compile(crd, v));
                let mut r = CustomResource {
                    info,
                    storage,
                    crd: crd.clone(),
                    version: v.clone(),
                    structural,
                    apply_schemas: None,
                };
                r.apply_schemas = openapi::apply_schemas_of(&r);
                ordered.push(Arc::new(r));
            }
        }
        // Groups in name order; a group's versions in priority order.
        ordered.sort_by(|a, b| {
            a.info
                .group
                .cmp(b.info.group)
                .then(compare_versions(a.info.version, b.info.version))
        });
        let by_path = ordered
            .iter()
            .map(|c| {
                (
                    (
                        c.info.group.to_string(),
                        c.info.version.to_string(),
                        c.info.plural.to_string(),
                    ),
                    c.clone(),
                )
            })
            .collect();
        let openapi = openapi::Documents::build(&ordered);
        Self {
            by_path,
            ordered,
            openapi,
        }
    }

    /// The custom resource served at `group`/`version`/`plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<CustomResource>> {
        self.by_path
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// Every served custom resource, in discovery order.
    pub fn resources(&self) -> &[Arc<CustomResource>] {
        &self.ordered
    }
}

/// The catalog an API server serves from, swapped whole when a CRD changes.
#[derive(Debug, Default)]
pub struct CustomResources {
    current: RwLock<Arc<Catalog>>,
}

impl CustomResources {
    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.current.read().clone()
    }

    pub(crate) fn replace(&self, catalog: Catalog) {
        *self.current.write() = Arc::new(catalog);
    }
}

impl ApiServer {
    /// The resource served at `group`/`version`/`plural`: built-in or defined by a CRD.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
        registry::by_plural(group, version, plural).or_else(|| {
            self.custom_resources
                .catalog()
                .get(group, version, plural)
                .map(|c| c.info)
        })
    }

    /// The CRD-defined resource `info` is, if it is one.
    pub fn custom(&self, info: Resource) -> Option<Arc<CustomResource>> {
        if registry::is_builtin(info) {
            return None;
        }
        self.custom_resources
            .catalog()
            .get(info.group, info.version, info.plural)
            .cloned()
    }

    /// The custom resources served now.
    pub fn custom_catalog(&self) -> Arc<Catalog> {
        self.custom_resources.catalog()
    }
}

/// The structural schema of a version (`None` without one; a schema that does not compile,
/// which validation keeps out of storage, is logged and serves without one).
fn compile(
    crd: &CustomResourceDefinition,
    v: &CustomResourceDefinitionVersion,
) -> Option<orch_types::crd::Structural> {
    let props = v.schema.as_ref()?.open_api_v3_schema.as_ref()?;
    let path = orch_types::validation::Path::new("openAPIV3Schema");
    match orch_types::crd::Structural::new(props, &path) {
        Ok(s) => Some(s),
        Err(errs) => {
            tracing::warn!(
                crd = crd.metadata.name.as_deref().unwrap_or_default(),
                version = %v.name,
                errors = errs.len(),
                "serving a CRD version whose schema does not compile without its schema"
            );
            None
        }
    }
}

/// Whether a CRD's names are accepted (what makes it served).
fn accepted(crd: &CustomResourceDefinition) -> bool {
    let Some(status) = &crd.status else {
        return false;
    };
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| (c.type_ == "NamesAccepted" || c.type_ == "Established") && c.status == "True")
        && status
            .accepted_names
            .as_ref()
            .is_some_and(|n| !n.plural.is_empty())
}

/// Compares two version names as Kubernetes orders them (higher priority first): versions
/// like `v1`, `v2beta1`, `v1alpha2` before others; GA before beta before alpha; then by major,
/// then minor number, higher first; anything else after, alphabetically (upstream
/// `apimachinery/pkg/version/helpers.go`, `CompareKubeAwareVersionStrings`).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        if major == 0 {
            return None;
        }
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        if num.is_empty() || !num.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some((major, level, num.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ma, la, na)), Some((mb, lb, nb))) => lb.cmp(&la).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// What the generic REST layers need of a custom resource beyond its [`ResourceInfo`]: its
/// table columns and selectable fields. Kept with the interned entry, so code holding only
/// the entry (rendering a Table, compiling a field selector) finds them.
#[derive(Debug)]
pub struct Extras {
    /// Table columns after the name ([`table`]).
    pub columns: Arc<[table::PrinterColumn]>,
    /// `selectableFields` as field selector names (`spec.color`).
    pub selectable_fields: Arc<[String]>,
}

fn extras_registry() -> &'static Mutex<HashMap<usize, Arc<Extras>>> {
    static R: std::sync::OnceLock<Mutex<HashMap<usize, Arc<Extras>>>> = std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

/// The [`Extras`] of `info` when it is a custom resource's entry.
pub fn extras(info: Resource) -> Option<Arc<Extras>> {
    extras_registry()
        .lock()
        .get(&(info as *const _ as usize))
        .cloned()
}

/// What a served custom resource's [`ResourceInfo`] is made of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Spec {
    group: String,
    version: String,
    kind: String,
    plural: String,
    singular: String,
    short_names: Vec<String>,
    categories: Vec<String>,
    namespaced: bool,
    status: bool,
    scale: bool,
    columns: Vec<table::PrinterColumn>,
    selectable_fields: Vec<String>,
    /// Verbs when not all of [`VERBS`] (an aggregated API's resources).
    verbs: Vec<String>,
}

impl Spec {
    fn of(crd: &CustomResourceDefinition, v: &CustomResourceDefinitionVersion) -> Self {
        let names = crd
            .status
            .as_ref()
            .and_then(|s| s.accepted_names.as_ref())
            .filter(|n| !n.plural.is_empty())
            .unwrap_or(&crd.spec.names);
        let sub = v.subresources.as_ref();
        Self {
            group: crd.spec.group.clone(),
            version: v.name.clone(),
            kind: names.kind.clone(),
            plural: names.plural.clone(),
            singular: names
                .singular
                .clone()
                .unwrap_or_else(|| names.kind.to_lowercase()),
            short_names: names.short_names.clone().unwrap_or_default(),
            categories: names.categories.clone().unwrap_or_default(),
            namespaced: crd.spec.scope == "Namespaced",
            status: sub.is_some_and(|s| s.status.is_some()),
            scale: sub.is_some_and(|s| s.scale.is_some()),
            columns: table::declared(v.additional_printer_columns.as_ref()),
            selectable_fields: v
                .selectable_fields
                .iter()
                .flatten()
                .map(|f| f.json_path.trim_start_matches('.').to_string())
                .collect(),
            verbs: Vec::new(),
        }
    }
}

/// The entry of a resource an aggregated API server lists in its discovery document (an
/// `APIResourceList` item, with the names of its subresources), so discovery lists it beside
/// the built-in and custom ones. `None` for an entry without a name or kind.
pub(crate) fn intern_listed(
    group: &str,
    version: &str,
    entry: &serde_json::Value,
    subresources: &[&str],
) -> Option<Resource> {
    let s = |k: &str| {
        entry
            .get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    let list = |k: &str| -> Vec<String> {
        entry
            .get(k)
            .and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    if s("name").is_empty() || s("kind").is_empty() {
        return None;
    }
    Some(intern(&Spec {
        group: group.to_string(),
        version: version.to_string(),
        kind: s("kind").to_string(),
        plural: s("name").to_string(),
        singular: s("singularName").to_string(),
        short_names: list("shortNames"),
        categories: list("categories"),
        namespaced: entry
            .get("namespaced")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        status: subresources.contains(&"status"),
        scale: subresources.contains(&"scale"),
        columns: Vec::new(),
        selectable_fields: Vec::new(),
        verbs: list("verbs"),
    }))
}

/// Verbs of every custom resource (upstream serves them all).
const VERBS: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];
const SUB_VERBS: &[&str] = &["get", "patch", "update"];

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn leak_all(v: &[String]) -> &'static [&'static str] {
    Box::leak(
        v.iter()
            .map(|s| leak(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

/// The `'static` entry of `spec`: made once per distinct spec and reused after.
fn intern(spec: &Spec) -> &'static ResourceInfo {
    static INTERNED: std::sync::OnceLock<Mutex<HashMap<Spec, &'static ResourceInfo>>> =
        std::sync::OnceLock::new();
    let mut map = INTERNED.get_or_init(Default::default).lock();
    if let Some(info) = map.get(spec) {
        return info;
    }
    let group = leak(&spec.group);
    let version = leak(&spec.version);
    let kind = leak(&spec.kind);
    let mut subresources = Vec::new();
    if spec.status {
        subresources.push(SubresourceInfo {
            name: "status",
            group,
            version,
            kind,
            verbs: SUB_VERBS,
        });
    }
    if spec.scale {
        subresources.push(SubresourceInfo {
            name: "scale",
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: SUB_VERBS,
        });
    }
    let info: &'static ResourceInfo = Box::leak(Box::new(ResourceInfo {
        group,
        version,
        kind,
        plural: leak(&spec.plural),
        singular: leak(&spec.singular),
        short_names: leak_all(&spec.short_names),
        namespaced: spec.namespaced,
        verbs: if spec.verbs.is_empty() {
            VERBS
        } else {
            leak_all(&spec.verbs)
        },
        categories: leak_all(&spec.categories),
        subresources: Box::leak(subresources.into_boxed_slice()),
    }));
    extras_registry().lock().insert(
        info as *const _ as usize,
        Arc::new(Extras {
            columns: table::printed(&spec.columns),
            selectable_fields: spec.selectable_fields.clone().into(),
        }),
    );
    map.insert(spec.clone(), info);
    info
}

#[cfg(test)]
mod tests;
