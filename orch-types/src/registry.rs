//! The one table of every built-in kind orch serves.
//!
//! The API server's routes, discovery documents and kubectl's short names all come from
//! [`BUILTIN`], so a kind is added in exactly one place. Data mirrors upstream discovery
//! (`kubectl api-resources -o wide` against Kubernetes 1.33).

use std::borrow::Cow;

/// A subresource of a kind (`pods/status`, `deployments/scale`, `pods/eviction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubresourceInfo {
    /// Subresource name, e.g. `status`.
    pub name: &'static str,
    /// Group of the subresource's own kind (`policy` for `pods/eviction`).
    pub group: &'static str,
    /// Version of the subresource's own kind.
    pub version: &'static str,
    /// Kind sent and returned by the subresource.
    pub kind: &'static str,
    /// Verbs the subresource supports.
    pub verbs: &'static [&'static str],
}

/// Static metadata of one built-in resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group, `""` for core.
    pub group: &'static str,
    /// API version within the group, e.g. `v1`.
    pub version: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Plural resource name used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// Singular name, e.g. `deployment`.
    pub singular: &'static str,
    /// kubectl short names, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Namespaced (true) or cluster-scoped (false).
    pub namespaced: bool,
    /// Verbs served on the main resource.
    pub verbs: &'static [&'static str],
    /// Discovery categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [SubresourceInfo],
}

const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const CREATE_ONLY: &[&str] = &["create"];
/// `pods/exec`, `pods/attach`, `pods/portforward`: GET and POST upgrades.
const STREAM_VERBS: &[&str] = &["create", "get"];
/// `nodes/proxy`.
const PROXY_VERBS: &[&str] = &["create", "delete", "get", "patch", "update"];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];
const API_EXTENSIONS: &[&str] = &["api-extensions"];

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> SubresourceInfo {
    SubresourceInfo {
        name: "status",
        group,
        version,
        kind,
        verbs: STATUS_VERBS,
    }
}

const fn scale() -> SubresourceInfo {
    SubresourceInfo {
        name: "scale",
        group: "autoscaling",
        version: "v1",
        kind: "Scale",
        verbs: STATUS_VERBS,
    }
}

#[allow(clippy::too_many_arguments)]
const fn r(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
    verbs: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [SubresourceInfo],
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        singular,
        short_names,
        namespaced,
        verbs,
        categories,
        subresources,
    }
}

/// Every built-in resource orch serves (wave 1).
#[rustfmt::skip]
pub static BUILTIN: &[ResourceInfo] = &[
    r("", "v1", "Pod", "pods", "pod", &["po"], true, RW, ALL, &[
        status("", "v1", "Pod"),
        SubresourceInfo { name: "binding", group: "", version: "v1", kind: "Binding", verbs: CREATE_ONLY },
        SubresourceInfo { name: "ephemeralcontainers", group: "", version: "v1", kind: "Pod", verbs: STATUS_VERBS },
        SubresourceInfo { name: "eviction", group: "policy", version: "v1", kind: "Eviction", verbs: CREATE_ONLY },
        SubresourceInfo { name: "log", group: "", version: "v1", kind: "Pod", verbs: &["get"] },
        // Streaming, proxied to the kubelet (orch-apiserver `subresources::stream`).
        SubresourceInfo { name: "exec", group: "", version: "v1", kind: "PodExecOptions", verbs: STREAM_VERBS },
        SubresourceInfo { name: "attach", group: "", version: "v1", kind: "PodAttachOptions", verbs: STREAM_VERBS },
        SubresourceInfo { name: "portforward", group: "", version: "v1", kind: "PodPortForwardOptions", verbs: STREAM_VERBS },
    ]),
    r("", "v1", "Node", "nodes", "node", &["no"], false, RW, NONE, &[
        status("", "v1", "Node"),
        SubresourceInfo { name: "proxy", group: "", version: "v1", kind: "NodeProxyOptions", verbs: PROXY_VERBS },
    ]),
    r("", "v1", "Namespace", "namespaces", "namespace", &["ns"], false,
        &["create", "delete", "get", "list", "patch", "update", "watch"], NONE,
        &[status("", "v1", "Namespace"),
          SubresourceInfo { name: "finalize", group: "", version: "v1", kind: "Namespace", verbs: &["update"] }]),
    r("", "v1", "Service", "services", "service", &["svc"], true,
        &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"], ALL,
        &[status("", "v1", "Service")]),
    r("", "v1", "Endpoints", "endpoints", "endpoints", &["ep"], true, RW, NONE, &[]),
    r("", "v1", "Event", "events", "event", &["ev"], true, RW, NONE, &[]),
    r("", "v1", "ConfigMap", "configmaps", "configmap", &["cm"], true, RW, NONE, &[]),
    r("", "v1", "Secret", "secrets", "secret", &[], true, RW, NONE, &[]),
    r("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", &["sa"], true, RW, NONE, &[
        SubresourceInfo { name: "token", group: "authentication.k8s.io", version: "v1", kind: "TokenRequest", verbs: CREATE_ONLY },
    ]),
    r("", "v1", "PodTemplate", "podtemplates", "podtemplate", &[], true, RW, NONE, &[]),
    r("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", &["rc"], true, RW, ALL,
        &[status("", "v1", "ReplicationController"), scale()]),
    r("", "v1", "Binding", "bindings", "binding", &[], true, CREATE_ONLY, NONE, &[]),
    r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", &["pvc"], true, RW, NONE,
        &[status("", "v1", "PersistentVolumeClaim")]),
    r("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", &["pv"], false, RW, NONE,
        &[status("", "v1", "PersistentVolume")]),
    r("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", &["quota"], true, RW, NONE,
        &[status("", "v1", "ResourceQuota")]),
    r("", "v1", "LimitRange", "limitranges", "limitrange", &["limits"], true, RW, NONE, &[]),
    r("apps", "v1", "ReplicaSet", "replicasets", "replicaset", &["rs"], true, RW, ALL,
        &[status("apps", "v1", "ReplicaSet"), scale()]),
    r("apps", "v1", "Deployment", "deployments", "deployment", &["deploy"], true, RW, ALL,
        &[status("apps", "v1", "Deployment"), scale()]),
    r("apps", "v1", "DaemonSet", "daemonsets", "daemonset", &["ds"], true, RW, ALL,
        &[status("apps", "v1", "DaemonSet")]),
    r("apps", "v1", "StatefulSet", "statefulsets", "statefulset", &["sts"], true, RW, ALL,
        &[status("apps", "v1", "StatefulSet"), scale()]),
    r("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", &[], true, RW, NONE, &[]),
    r("batch", "v1", "Job", "jobs", "job", &[], true, RW, ALL, &[status("batch", "v1", "Job")]),
    r("batch", "v1", "CronJob", "cronjobs", "cronjob", &["cj"], true, RW, ALL, &[status("batch", "v1", "CronJob")]),
    r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", &["pdb"], true, RW, NONE,
        &[status("policy", "v1", "PodDisruptionBudget")]),
    r("coordination.k8s.io", "v1", "Lease", "leases", "lease", &[], true, RW, NONE, &[]),
    // Written by the endpointslice controller (orch-controllers `endpointslice`).
    r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", &[], true, RW, NONE, &[]),
    r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", &["hpa"], true, RW, ALL,
        &[status("autoscaling", "v2", "HorizontalPodAutoscaler")]),
    r("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", &["sc"], false, RW, NONE, &[]),
    // API Priority and Fairness (orch-apiserver `flowcontrol`): read by the API server's filter.
    r("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", "flowschema", &[], false, RW, NONE,
        &[status("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema")]),
    r("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations",
        "prioritylevelconfiguration", &[], false, RW, NONE,
        &[status("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration")]),
    r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", &["pc"], false, RW, NONE, &[]),
    r("settings.k8s.io", "v1alpha1", "PodPreset", "podpresets", "podpreset", &[], true, RW, NONE, &[]),
    r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition",
        &["crd", "crds"], false, RW, API_EXTENSIONS, &[status("apiextensions.k8s.io", "v1", "CustomResourceDefinition")]),
    r("events.k8s.io", "v1", "Event", "events", "event", &["ev"], true, RW, NONE, &[]),
    // Approval conditions are written through `approval`, the issued certificate through `status`.
    r("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", "certificatesigningrequest",
        &["csr"], false, RW, NONE, &[
        status("certificates.k8s.io", "v1", "CertificateSigningRequest"),
        SubresourceInfo { name: "approval", group: "certificates.k8s.io", version: "v1", kind: "CertificateSigningRequest",
            verbs: STATUS_VERBS },
    ]),
    r("apiregistration.k8s.io", "v1", "APIService", "apiservices", "apiservice", &[], false, RW,
        API_EXTENSIONS, &[status("apiregistration.k8s.io", "v1", "APIService")]),
    r("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration", &[], false, RW, API_EXTENSIONS, &[]),
    r("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
        "validatingwebhookconfiguration", &[], false, RW, API_EXTENSIONS, &[]),
    r("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", &[], true, RW, NONE, &[]),
    r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", &[], false, RW, NONE, &[]),
    r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", &[], true, RW, NONE, &[]),
    r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", &[], false, RW,
        NONE, &[]),
    // The review APIs: created and answered, never stored (`orch-apiserver`'s `auth::review`).
    r("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", &[],
        false, CREATE_ONLY, NONE, &[]),
    r("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", &[], false,
        CREATE_ONLY, NONE, &[]),
    r("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", "localsubjectaccessreview",
        &[], true, CREATE_ONLY, NONE, &[]),
    r("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", &[],
        false, CREATE_ONLY, NONE, &[]),
    r("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", &[], false,
        CREATE_ONLY, NONE, &[]),
    r("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview", &[], false, CREATE_ONLY, NONE, &[]),
];

/// Resources also served at a version other than the one they are stored in: the API server
/// converts them to and from their [`storage_of`] entry in [`BUILTIN`] on the way in and out
/// (upstream serves every version of a kind through one storage version). Components inside
/// orch only see the storage version; [`BUILTIN`] lists each resource once.
#[rustfmt::skip]
pub static CONVERTED: &[ResourceInfo] = &[
    r("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", &["hpa"], true, RW, ALL,
        &[status("autoscaling", "v1", "HorizontalPodAutoscaler")]),
];

/// The storage entry of a [`CONVERTED`] resource (`None` for a storage version itself).
pub fn storage_of(info: &ResourceInfo) -> Option<&'static ResourceInfo> {
    if CONVERTED.as_ptr_range().contains(&std::ptr::from_ref(info)) {
        by_group_kind(info.group, info.kind)
    } else {
        None
    }
}

/// Whether `info` is an entry of [`BUILTIN`] or [`CONVERTED`] (rather than one an API server
/// made at run time for a CustomResourceDefinition or an aggregated API): a pointer check.
pub fn is_builtin(info: &ResourceInfo) -> bool {
    let p = std::ptr::from_ref(info);
    BUILTIN.as_ptr_range().contains(&p) || CONVERTED.as_ptr_range().contains(&p)
}

impl ResourceInfo {
    /// `apiVersion` string: `v1` for core, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The owned [`ApiResource`] for this entry.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: Cow::Borrowed(self.group),
            version: Cow::Borrowed(self.version),
            kind: Cow::Borrowed(self.kind),
            plural: Cow::Borrowed(self.plural),
            namespaced: self.namespaced,
        }
    }

    /// The group-qualified resource as API errors name it (`deployments.apps`, `pods`),
    /// upstream `GroupResource.String()`.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Looks up a subresource by name.
    pub fn subresource(&self, name: &str) -> Option<&SubresourceInfo> {
        self.subresources.iter().find(|s| s.name == name)
    }
}

/// Identifies a resource type for a [`crate::client::Client`] call: built-in or defined at run
/// time by a CustomResourceDefinition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiResource {
    /// API group, empty for core.
    pub group: Cow<'static, str>,
    /// Version.
    pub version: Cow<'static, str>,
    /// Kind.
    pub kind: Cow<'static, str>,
    /// Plural (URL segment).
    pub plural: Cow<'static, str>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

impl ApiResource {
    /// The `ApiResource` of a typed k8s-openapi object.
    pub fn of<K: k8s_openapi::Resource>() -> Self
    where
        K::Scope: 'static,
    {
        Self {
            group: Cow::Borrowed(K::GROUP),
            version: Cow::Borrowed(K::VERSION),
            kind: Cow::Borrowed(K::KIND),
            plural: Cow::Borrowed(K::URL_PATH_SEGMENT),
            namespaced: std::any::TypeId::of::<K::Scope>()
                == std::any::TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
        }
    }

    /// `apiVersion` string.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// URL prefix of the group version: `/api/v1` or `/apis/GROUP/VERSION`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// Collection URL path, e.g. `/apis/apps/v1/namespaces/default/deployments`.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => {
                format!(
                    "{}/namespaces/{}/{}",
                    self.group_version_path(),
                    ns,
                    self.plural
                )
            }
            _ => format!("{}/{}", self.group_version_path(), self.plural),
        }
    }

    /// Object URL path.
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{}", self.collection_path(namespace), name)
    }
}

/// Looks up a built-in resource by group, version and plural.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    BUILTIN
        .iter()
        .chain(CONVERTED)
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks up a built-in resource by `apiVersion` and kind (as found in a manifest), in the
/// version it is stored in: what defaulting, validation and every component work with.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let (group, version) = split_api_version(api_version);
    BUILTIN
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// [`by_kind`] over every version the API serves, [`CONVERTED`] ones included (what an HTTP
/// request body may be).
pub fn served_by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    by_kind(api_version, kind).or_else(|| {
        let (group, version) = split_api_version(api_version);
        CONVERTED
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
    })
}

/// Looks up a built-in resource by API group and kind, whatever the version (what an owner or
/// scale-target reference names).
pub fn by_group_kind(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    BUILTIN.iter().find(|r| r.group == group && r.kind == kind)
}

/// Looks up by any name kubectl accepts: plural, singular, short name or kind (case-insensitive).
pub fn by_name(name: &str) -> Vec<&'static ResourceInfo> {
    let lower = name.to_ascii_lowercase();
    BUILTIN
        .iter()
        .filter(|r| {
            r.plural == lower
                || r.singular == lower
                || r.short_names.contains(&lower.as_str())
                || r.kind.eq_ignore_ascii_case(name)
        })
        .collect()
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// All (group, version) pairs served, core first, in registry order without duplicates.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in BUILTIN {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(
            by_plural("apps", "v1", "deployments").unwrap().kind,
            "Deployment"
        );
        assert_eq!(by_kind("v1", "Pod").unwrap().plural, "pods");
        assert_eq!(by_name("deploy")[0].kind, "Deployment");
        assert_eq!(by_name("ev").len(), 2);
        assert!(by_kind("apps/v1", "Nope").is_none());
        let pod = by_kind("v1", "Pod").unwrap();
        let ev = pod.subresource("eviction").unwrap();
        assert_eq!((ev.group, ev.kind), ("policy", "Eviction"));
    }

    #[test]
    fn builtin_entries_are_told_from_copies_by_address() {
        assert!(BUILTIN.iter().chain(CONVERTED).all(is_builtin));
        let copy = Box::new(BUILTIN[0].clone());
        assert!(!is_builtin(&copy));
        assert_eq!(storage_of(&copy), None);
    }

    #[test]
    fn typed_api_resource_matches_registry() {
        use k8s_openapi::api::apps::v1::Deployment;
        use k8s_openapi::api::core::v1::Node;
        assert_eq!(
            ApiResource::of::<Deployment>(),
            by_kind("apps/v1", "Deployment").unwrap().api_resource()
        );
        assert!(!ApiResource::of::<Node>().namespaced);
        assert_eq!(
            ApiResource::of::<Deployment>().object_path(Some("ns"), "d"),
            "/apis/apps/v1/namespaces/ns/deployments/d"
        );
    }

    #[test]
    fn unique_plurals_per_group_version() {
        for (i, a) in BUILTIN.iter().enumerate() {
            for b in &BUILTIN[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} duplicated",
                    a.plural
                );
            }
        }
    }
}
