//! core/v1 defaults, after upstream `pkg/apis/core/v1/defaults.go` and the `+default` markers
//! of `k8s.io/api/core/v1/types.go` (Kubernetes 1.33).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EphemeralContainer, Namespace, Node, Pod, PodSpec, PodTemplateSpec, Probe,
    ReplicationController, Secret, Service, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::image::default_pull_policy;
use crate::quantity::Quantity;

fn set<T>(slot: &mut Option<T>, v: T) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

fn set_str(slot: &mut Option<String>, v: &str) {
    if slot.as_deref().is_none_or(str::is_empty) {
        *slot = Some(v.to_string());
    }
}

/// `SetDefaults_ResourceList`: round up to milli precision and store canonically.
pub(crate) fn resource_list(list: &mut Option<BTreeMap<String, K8sQuantity>>) {
    for v in list.iter_mut().flat_map(|m| m.values_mut()) {
        if let Ok(q) = Quantity::try_from(&*v) {
            let milli = q.milli_value();
            let rounded = if Quantity::from_milli(milli) == q {
                q
            } else {
                // keep the suffix family (upstream RoundUp keeps the format)
                q.add(&Quantity::from_milli(milli).sub(&q))
            };
            *v = rounded.into();
        }
    }
}

/// `SetDefaults_Probe` + `SetDefaults_HTTPGetAction` + GRPC service `+default=""`.
fn probe(p: &mut Option<Probe>) {
    let Some(p) = p.as_mut() else { return };
    set(&mut p.timeout_seconds, 1);
    set(&mut p.period_seconds, 10);
    set(&mut p.success_threshold, 1);
    set(&mut p.failure_threshold, 3);
    if let Some(h) = p.http_get.as_mut() {
        set_str(&mut h.path, "/");
        set_str(&mut h.scheme, "HTTP");
    }
    if let Some(g) = p.grpc.as_mut() {
        set(&mut g.service, String::new());
    }
}

fn lifecycle_http(c: &mut Container) {
    if let Some(l) = c.lifecycle.as_mut() {
        for h in [l.post_start.as_mut(), l.pre_stop.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(g) = h.http_get.as_mut() {
                set_str(&mut g.path, "/");
                set_str(&mut g.scheme, "HTTP");
            }
        }
    }
}

/// `SetDefaults_Container`, ports `+default="TCP"`, probes, resource lists, env field refs.
pub(crate) fn container(c: &mut Container) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy = Some(default_pull_policy(c.image.as_deref().unwrap_or("")).into());
    }
    set_str(&mut c.termination_message_path, "/dev/termination-log");
    set_str(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        set_str(&mut p.protocol, "TCP");
    }
    probe(&mut c.liveness_probe);
    probe(&mut c.readiness_probe);
    probe(&mut c.startup_probe);
    lifecycle_http(c);
    if let Some(r) = c.resources.as_mut() {
        resource_list(&mut r.limits);
        resource_list(&mut r.requests);
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            set_str(&mut f.api_version, "v1");
        }
    }
}

fn ephemeral_container(c: &mut EphemeralContainer) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy = Some(default_pull_policy(c.image.as_deref().unwrap_or("")).into());
    }
    set_str(&mut c.termination_message_path, "/dev/termination-log");
    set_str(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        set_str(&mut p.protocol, "TCP");
    }
}

/// `SetDefaults_Volume` and the volume source defaults (`defaultMode` 0644, hostPath type,
/// token expiration 3600).
pub(crate) fn volume(v: &mut Volume) {
    let only_name = serde_json::to_value(&*v)
        .ok()
        .and_then(|j| j.as_object().map(|m| m.len() <= 1))
        .unwrap_or(false);
    if only_name {
        v.empty_dir = Some(Default::default());
    }
    if let Some(s) = v.secret.as_mut() {
        set(&mut s.default_mode, 0o644);
    }
    if let Some(s) = v.config_map.as_mut() {
        set(&mut s.default_mode, 0o644);
    }
    if let Some(s) = v.downward_api.as_mut() {
        set(&mut s.default_mode, 0o644);
        for i in s.items.iter_mut().flatten() {
            if let Some(f) = i.field_ref.as_mut() {
                set_str(&mut f.api_version, "v1");
            }
        }
    }
    if let Some(p) = v.projected.as_mut() {
        set(&mut p.default_mode, 0o644);
        for src in p.sources.iter_mut().flatten() {
            if let Some(t) = src.service_account_token.as_mut() {
                set(&mut t.expiration_seconds, 3600);
            }
        }
    }
    if let Some(h) = v.host_path.as_mut() {
        set(&mut h.type_, String::new());
    }
    if let Some(pvc) = v
        .ephemeral
        .as_mut()
        .and_then(|e| e.volume_claim_template.as_mut())
    {
        set_str(&mut pvc.spec.volume_mode, "Filesystem");
    }
}

/// `SetDefaults_PodSpec` plus everything reachable from a pod spec (containers, volumes).
pub(crate) fn pod_spec(s: &mut PodSpec) {
    set_str(&mut s.dns_policy, "ClusterFirst");
    set_str(&mut s.restart_policy, "Always");
    set(&mut s.security_context, Default::default());
    set(&mut s.termination_grace_period_seconds, 30);
    set_str(&mut s.scheduler_name, "default-scheduler");
    for c in s.containers.iter_mut() {
        container(c);
    }
    for c in s.init_containers.iter_mut().flatten() {
        container(c);
    }
    for c in s.ephemeral_containers.iter_mut().flatten() {
        ephemeral_container(c);
    }
    for v in s.volumes.iter_mut().flatten() {
        volume(v);
    }
    resource_list(&mut s.overhead);
    if let Some(r) = s.resources.as_mut() {
        resource_list(&mut r.limits);
        resource_list(&mut r.requests);
    }
}

/// A pod template inside a workload: pod spec defaults only (not `SetDefaults_Pod`).
pub(crate) fn pod_template(t: &mut PodTemplateSpec) {
    if let Some(s) = t.spec.as_mut() {
        pod_spec(s);
    }
}

fn requests_from_limits(c: &mut Container) {
    let Some(r) = c.resources.as_mut() else {
        return;
    };
    let Some(limits) = r.limits.clone() else {
        return;
    };
    let req = r.requests.get_or_insert_with(BTreeMap::new);
    for (k, v) in limits {
        req.entry(k).or_insert(v);
    }
}

/// `SetDefaults_Pod`: requests default to limits, enableServiceLinks, host-network ports.
pub(crate) fn pod(p: &mut Pod) {
    let Some(s) = p.spec.as_mut() else { return };
    pod_spec(s);
    for c in s.containers.iter_mut() {
        requests_from_limits(c);
    }
    for c in s.init_containers.iter_mut().flatten() {
        requests_from_limits(c);
    }
    set(&mut s.enable_service_links, true);
    if s.host_network == Some(true) {
        let all = s
            .containers
            .iter_mut()
            .chain(s.init_containers.iter_mut().flatten());
        for c in all {
            for port in c.ports.iter_mut().flatten() {
                if port.host_port.unwrap_or(0) == 0 {
                    port.host_port = Some(port.container_port);
                }
            }
        }
    }
}

/// `SetDefaults_Service` (+ ports protocol).
pub(crate) fn service(svc: &mut Service) {
    let Some(s) = svc.spec.as_mut() else { return };
    set_str(&mut s.session_affinity, "None");
    match s.session_affinity.as_deref() {
        Some("None") => s.session_affinity_config = None,
        Some("ClientIP") => {
            let has_timeout = s
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .is_some();
            if !has_timeout {
                s.session_affinity_config =
                    Some(k8s_openapi::api::core::v1::SessionAffinityConfig {
                        client_ip: Some(k8s_openapi::api::core::v1::ClientIPConfig {
                            timeout_seconds: Some(10800),
                        }),
                    });
            }
        }
        _ => {}
    }
    set_str(&mut s.type_, "ClusterIP");
    for p in s.ports.iter_mut().flatten() {
        set_str(&mut p.protocol, "TCP");
        let zero = match &p.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(x)) => x.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if zero {
            p.target_port = Some(IntOrString::Int(p.port));
        }
    }
    let ty = s.type_.clone().unwrap_or_default();
    let externally_accessible = ty == "LoadBalancer"
        || ty == "NodePort"
        || (ty == "ClusterIP" && s.external_ips.as_ref().is_some_and(|e| !e.is_empty()));
    if externally_accessible {
        set_str(&mut s.external_traffic_policy, "Cluster");
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        set_str(&mut s.internal_traffic_policy, "Cluster");
    }
    if ty == "LoadBalancer" {
        set(&mut s.allocate_load_balancer_node_ports, true);
    }
}

/// `SetDefaults_ReplicationController` (+ replicas `+default=1`).
pub(crate) fn replication_controller(rc: &mut ReplicationController) {
    let Some(s) = rc.spec.as_mut() else { return };
    set(&mut s.replicas, 1);
    if let Some(t) = s.template.as_mut() {
        let labels = t.metadata.as_ref().and_then(|m| m.labels.clone());
        if let Some(labels) = labels {
            if s.selector.as_ref().is_none_or(BTreeMap::is_empty) {
                s.selector = Some(labels.clone());
            }
            if rc.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
                rc.metadata.labels = Some(labels);
            }
        }
        pod_template(t);
    }
}

/// `SetDefaults_Secret`, after the v1 → internal conversion's handling of `stringData`
/// (upstream `pkg/apis/core/v1/conversion.go`, `Convert_v1_Secret_To_core_Secret`): each
/// `stringData` entry overwrites the `data` entry of the same key, and `stringData` is never
/// stored or returned.
pub(crate) fn secret(s: &mut Secret) {
    if let Some(string_data) = s.string_data.take() {
        let data = s.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in string_data {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
    set_str(&mut s.type_, "Opaque");
}

/// `SetDefaults_Namespace` + `SetDefaults_NamespaceStatus`.
pub(crate) fn namespace(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("kubernetes.io/metadata.name".into(), name);
    }
    let st = ns.status.get_or_insert_with(Default::default);
    set_str(&mut st.phase, "Active");
}

/// `SetDefaults_NodeStatus`: allocatable defaults to capacity.
pub(crate) fn node(n: &mut Node) {
    if let Some(st) = n.status.as_mut() {
        resource_list(&mut st.capacity);
        resource_list(&mut st.allocatable);
        if st.allocatable.is_none() && st.capacity.is_some() {
            st.allocatable = st.capacity.clone();
        }
    }
}

/// `SetDefaults_Endpoints`: ports protocol TCP.
pub(crate) fn endpoints(e: &mut k8s_openapi::api::core::v1::Endpoints) {
    for ss in e.subsets.iter_mut().flatten() {
        for p in ss.ports.iter_mut().flatten() {
            set_str(&mut p.protocol, "TCP");
        }
    }
}
