//! Defaults of the remaining wave-1 groups: autoscaling/v2 (`pkg/apis/autoscaling/v2/
//! defaults.go`), scheduling.k8s.io/v1 (`pkg/apis/scheduling/v1/defaults.go`),
//! apiextensions.k8s.io/v1 (`apiextensions-apiserver/pkg/apis/apiextensions/v1/defaults.go`) and
//! discovery.k8s.io/v1 (`pkg/apis/discovery/v1/defaults.go`).

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition,
};

fn set<T>(slot: &mut Option<T>, v: T) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

fn policy(type_: &str, value: i32) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds: 15,
    }
}

/// `GenerateHPAScaleUpRules` / `GenerateHPAScaleDownRules`: fill unset fields.
fn rules(r: &mut Option<HPAScalingRules>, window: i32, policies: Vec<HPAScalingPolicy>) {
    let r = r.get_or_insert_with(Default::default);
    set(&mut r.stabilization_window_seconds, window);
    set(&mut r.select_policy, "Max".to_string());
    set(&mut r.policies, policies);
}

/// `SetDefaults_HorizontalPodAutoscaler` (+ behavior).
pub(crate) fn hpa(h: &mut HorizontalPodAutoscaler) {
    let Some(s) = h.spec.as_mut() else { return };
    set(&mut s.min_replicas, 1);
    if s.metrics.as_ref().is_none_or(Vec::is_empty) {
        s.metrics = Some(vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]);
    }
    if let Some(b) = s.behavior.as_mut() {
        rules(
            &mut b.scale_up,
            0,
            vec![policy("Pods", 4), policy("Percent", 100)],
        );
        rules(&mut b.scale_down, 300, vec![policy("Percent", 100)]);
    }
}

/// `SetDefaults_PriorityClass`.
pub(crate) fn priority_class(pc: &mut PriorityClass) {
    set(
        &mut pc.preemption_policy,
        "PreemptLowerPriority".to_string(),
    );
}

/// `SetDefaults_CustomResourceDefinitionSpec`: singular and listKind from kind, conversion
/// strategy `None`.
pub(crate) fn crd(c: &mut CustomResourceDefinition) {
    set(
        &mut c.spec.conversion,
        CustomResourceConversion {
            strategy: "None".into(),
            webhook: None,
        },
    );
    if c.spec.names.list_kind.as_deref().is_none_or(str::is_empty) && !c.spec.names.kind.is_empty()
    {
        c.spec.names.list_kind = Some(format!("{}List", c.spec.names.kind));
    }
    if c.spec.names.singular.as_deref().is_none_or(str::is_empty) {
        c.spec.names.singular = Some(c.spec.names.kind.to_lowercase());
    }
}

/// APIService (upstream `apiregistration/v1/defaults.go`): the service port is 443.
pub(crate) fn api_service(
    a: &mut k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
) {
    if let Some(svc) = a.spec.as_mut().and_then(|s| s.service.as_mut()) {
        svc.port.get_or_insert(443);
    }
}

/// `SetDefaults_EndpointPort` of discovery.k8s.io/v1 (`pkg/apis/discovery/v1/defaults.go`):
/// an unset port name becomes `""`, an unset protocol `TCP`.
pub(crate) fn endpoint_slice(s: &mut k8s_openapi::api::discovery::v1::EndpointSlice) {
    for p in s.ports.iter_mut().flatten() {
        set(&mut p.name, String::new());
        set(&mut p.protocol, "TCP".to_string());
    }
}
