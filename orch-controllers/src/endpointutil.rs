//! What the Endpoints controller ([`crate::endpoints`]) and the EndpointSlice controller
//! ([`crate::endpointslice`]) decide the same way about a pod behind a Service: whether it is
//! listed at all, its ready/serving/terminating state, the port a Service port resolves to on
//! it, its hostname, its reference, and which Services a pod change concerns. Upstream shares
//! these through `pkg/controller/util/endpoint` and `staging/src/k8s.io/endpointslice/util`
//! (`ShouldPodBeInEndpoints`, `ShouldSetHostname`) and `podutil.FindPort`.

use crate::controller_utils::{is_pod_ready, is_pod_terminal};
use crate::selector::from_map;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use orch_runtime::controller::Mapper;
use orch_runtime::object::{is_deleting, key_of, namespace};
use orch_runtime::store::Change;
use std::sync::Arc;

/// `ShouldPodBeInEndpoints`: not terminal, has an IP, and — unless `include_terminating` —
/// not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if is_pod_terminal(pod) {
        return false;
    }
    let status = pod.status.as_ref();
    let has_ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty())
        || status
            .and_then(|s| s.pod_ips.as_ref())
            .is_some_and(|ips| !ips.is_empty());
    has_ip && (include_terminating || !is_deleting(&pod.metadata))
}

/// The state of a listed pod (upstream `podToEndpoint`): `serving` is the pod's Ready
/// condition, `terminating` its deletion, and `ready` is serving and not terminating — or
/// always, when the Service publishes not-ready addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodState {
    /// Receives traffic (`EndpointConditions.ready`; the Endpoints `addresses` list).
    pub ready: bool,
    /// Passes its readiness checks (`EndpointConditions.serving`).
    pub serving: bool,
    /// Being deleted (`EndpointConditions.terminating`).
    pub terminating: bool,
}

/// [`PodState`] of `pod` behind a Service with `publishNotReadyAddresses: publish`.
pub fn pod_state(pod: &Pod, publish: bool) -> PodState {
    let serving = is_pod_ready(pod);
    let terminating = is_deleting(&pod.metadata);
    PodState {
        ready: publish || (serving && !terminating),
        serving,
        terminating,
    }
}

/// `podutil.FindPort`: the container port a Service port's target names on this pod (by
/// number, or by the name and protocol of one of its containers' ports); the Service port
/// itself when no target is given. `None` when a named target is not on the pod.
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    let protocol = sp.protocol.as_deref().unwrap_or("TCP");
    match sp.target_port.as_ref() {
        None => Some(sp.port),
        Some(IntOrString::Int(i)) => Some(*i),
        Some(IntOrString::String(n)) => pod.spec.as_ref()?.containers.iter().find_map(|c| {
            c.ports.as_ref()?.iter().find_map(|p| {
                (p.name.as_deref() == Some(n.as_str())
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                    .then_some(p.container_port)
            })
        }),
    }
}

/// `ShouldSetHostname`: the pod's hostname when its subdomain names the Service (same
/// namespace).
pub fn hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let h = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.is_some()
        && spec.subdomain == svc.metadata.name
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| h.to_string())
}

/// The `targetRef` of a pod's address.
pub fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Pod trigger: the Services of the pod's namespace whose selector matches its labels before
/// or after the change.
pub fn services_of_pod() -> Mapper<Pod> {
    Arc::new(|c, caches, keys| {
        let p = c.object();
        let old = match c {
            Change::Updated(old, _) => Some(old.metadata.labels.as_ref()),
            _ => None,
        };
        for s in caches
            .get::<Service>()
            .list_namespace(namespace(&p.metadata))
        {
            let sel = from_map(s.spec.as_ref().and_then(|x| x.selector.as_ref()));
            if sel.matches_opt(p.metadata.labels.as_ref())
                || old.is_some_and(|l| sel.matches_opt(l))
            {
                keys.push(key_of(&s.metadata));
            }
        }
    })
}
