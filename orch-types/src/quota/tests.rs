//! Cases after upstream `pkg/quota/v1/evaluator/core/pods_test.go`, `services_test.go`,
//! `persistent_volume_claims_test.go` and `plugin/pkg/admission/resourcequota/admission_test.go`,
//! in our words.

use super::*;
use crate::testing::PodBuilder;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaimSpec, ResourceQuotaSpec, ResourceQuotaStatus, ScopeSelector, ServicePort,
    ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

fn rl(pairs: &[(&str, &str)]) -> BTreeMap<String, K8sQuantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), K8sQuantity(v.to_string())))
        .collect()
}

/// A quota whose status already mirrors its spec (as the controller leaves it).
fn quota(name: &str, hard: &[(&str, &str)], used: &[(&str, &str)]) -> ResourceQuota {
    ResourceQuota {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ResourceQuotaSpec {
            hard: Some(rl(hard)),
            ..Default::default()
        }),
        status: Some(ResourceQuotaStatus {
            hard: Some(rl(hard)),
            used: Some(rl(used)),
        }),
    }
}

fn scoped(mut q: ResourceQuota, scopes: &[&str]) -> ResourceQuota {
    q.spec.as_mut().unwrap().scopes = Some(scopes.iter().map(|s| s.to_string()).collect());
    q
}

fn selector(mut q: ResourceQuota, scope: &str, op: &str, values: &[&str]) -> ResourceQuota {
    q.spec.as_mut().unwrap().scope_selector = Some(ScopeSelector {
        match_expressions: Some(vec![ScopedResourceSelectorRequirement {
            scope_name: scope.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }]),
    });
    q
}

#[test]
fn pod_usage_table() {
    struct Case {
        name: &'static str,
        pod: Pod,
        now: i64,
        want: &'static str,
    }
    let cases = vec![
        Case {
            name: "requests and limits of one container",
            pod: PodBuilder::new("p")
                .req("cpu", "1")
                .req("memory", "1Gi")
                .limit("cpu", "2")
                .limit("memory", "2Gi")
                .build(),
            now: 0,
            want: "count/pods=1,cpu=1,limits.cpu=2,limits.memory=2Gi,memory=1Gi,pods=1,requests.cpu=1,requests.memory=1Gi",
        },
        Case {
            name: "init container larger than the containers",
            pod: PodBuilder::new("p")
                .req("cpu", "250m")
                .init_container("init", &[("cpu", "1")])
                .build(),
            now: 0,
            want: "count/pods=1,cpu=1,pods=1,requests.cpu=1",
        },
        Case {
            name: "sidecar adds to the containers and to the init containers after it",
            pod: PodBuilder::new("p")
                .req("cpu", "1")
                .sidecar("log", &[("cpu", "500m")])
                .init_container("init", &[("cpu", "2")])
                .build(),
            now: 0,
            // init 2 runs beside the sidecar: 2.5 > 1 + 0.5.
            want: "count/pods=1,cpu=2500m,pods=1,requests.cpu=2500m",
        },
        Case {
            name: "hugepages and extended resources",
            pod: PodBuilder::new("p")
                .req("hugepages-2Mi", "4Mi")
                .req("example.com/gpu", "2")
                .build(),
            now: 0,
            want: "count/pods=1,hugepages-2Mi=4Mi,pods=1,requests.example.com/gpu=2,requests.hugepages-2Mi=4Mi",
        },
        Case {
            name: "a succeeded pod is only an object",
            pod: PodBuilder::new("p").req("cpu", "1").phase("Succeeded").build(),
            now: 0,
            want: "count/pods=1",
        },
        Case {
            name: "a failed pod is only an object",
            pod: PodBuilder::new("p").req("cpu", "1").phase("Failed").build(),
            now: 0,
            want: "count/pods=1",
        },
        Case {
            name: "being deleted within its grace period: still charged",
            pod: PodBuilder::new("p").req("cpu", "1").terminating(100).build(),
            now: 130,
            want: "count/pods=1,cpu=1,pods=1,requests.cpu=1",
        },
        Case {
            name: "being deleted past its grace period: only an object",
            pod: PodBuilder::new("p").req("cpu", "1").terminating(100).build(),
            now: 131,
            want: "count/pods=1",
        },
    ];
    for c in cases {
        let got = Evaluator::Pods.usage(Item::Pod(&c.pod), at(c.now));
        assert_eq!(got.to_string(), c.want, "{}", c.name);
    }
    // Overhead is part of the pod's requests.
    let mut p = PodBuilder::new("p").req("cpu", "1").build();
    p.spec.as_mut().unwrap().overhead = Some(rl(&[("cpu", "250m")]));
    let got = Evaluator::Pods.usage(Item::Pod(&p), at(0));
    assert_eq!(got.get("requests.cpu").unwrap().to_string(), "1250m");
}

#[test]
fn pod_scopes() {
    let best_effort = PodBuilder::new("be").build();
    let burstable = PodBuilder::new("bu").req("memory", "1Mi").build();
    let mut terminating = PodBuilder::new("t").build();
    terminating.spec.as_mut().unwrap().active_deadline_seconds = Some(60);
    let high = PodBuilder::new("h").priority_class("high").build();
    let req = |scope: &str, op: &str, values: &[&str]| ScopedResourceSelectorRequirement {
        scope_name: scope.into(),
        operator: op.into(),
        values: Some(values.iter().map(|v| v.to_string()).collect()),
    };
    let cases: Vec<(&str, ScopedResourceSelectorRequirement, &Pod, bool)> = vec![
        (
            "BestEffort",
            req("BestEffort", "Exists", &[]),
            &best_effort,
            true,
        ),
        (
            "BestEffort",
            req("BestEffort", "Exists", &[]),
            &burstable,
            false,
        ),
        (
            "NotBestEffort",
            req("NotBestEffort", "Exists", &[]),
            &burstable,
            true,
        ),
        (
            "Terminating",
            req("Terminating", "Exists", &[]),
            &terminating,
            true,
        ),
        (
            "Terminating",
            req("Terminating", "Exists", &[]),
            &best_effort,
            false,
        ),
        (
            "NotTerminating",
            req("NotTerminating", "Exists", &[]),
            &best_effort,
            true,
        ),
        (
            "PriorityClass In",
            req("PriorityClass", "In", &["high"]),
            &high,
            true,
        ),
        (
            "PriorityClass In",
            req("PriorityClass", "In", &["low"]),
            &high,
            false,
        ),
        (
            "PriorityClass NotIn",
            req("PriorityClass", "NotIn", &["low"]),
            &high,
            true,
        ),
        (
            "PriorityClass NotIn, none",
            req("PriorityClass", "NotIn", &["low"]),
            &best_effort,
            true,
        ),
        (
            "PriorityClass Exists",
            req("PriorityClass", "Exists", &[]),
            &high,
            true,
        ),
        (
            "PriorityClass Exists, none",
            req("PriorityClass", "Exists", &[]),
            &best_effort,
            false,
        ),
        (
            "PriorityClass DoesNotExist",
            req("PriorityClass", "DoesNotExist", &[]),
            &best_effort,
            true,
        ),
    ];
    for (name, r, pod, want) in cases {
        assert_eq!(
            Evaluator::Pods.matches_scope(&r, Item::Pod(pod)),
            Ok(want),
            "{name} on {}",
            pod.metadata.name.as_deref().unwrap()
        );
    }
    // Scopes select pods only.
    assert_eq!(
        Evaluator::for_resource("", "configmaps")
            .matches_scope(&req("BestEffort", "Exists", &[]), Item::Object),
        Ok(false)
    );
}

#[test]
fn quotas_match_by_resource_and_scope() {
    let pods = quota("pods", &[("pods", "3")], &[("pods", "0")]);
    let cm = quota("cm", &[("configmaps", "3")], &[("configmaps", "0")]);
    let deploys = quota("d", &[("count/deployments.apps", "1")], &[]);
    let pod = PodBuilder::new("p").build();
    assert_eq!(Evaluator::Pods.matches(&pods, Item::Pod(&pod)), Ok(true));
    assert_eq!(Evaluator::Pods.matches(&cm, Item::Pod(&pod)), Ok(false));
    let cms = Evaluator::for_resource("", "configmaps");
    assert_eq!(cms.matches(&cm, Item::Object), Ok(true));
    // A quota with a scope never matches a kind without scopes.
    assert_eq!(
        cms.matches(&scoped(cm.clone(), &["BestEffort"]), Item::Object),
        Ok(false)
    );
    let d = Evaluator::for_resource("apps", "deployments");
    assert_eq!(d.matches(&deploys, Item::Object), Ok(true));
    assert_eq!(
        d.usage(Item::Object, at(0)).to_string(),
        "count/deployments.apps=1"
    );
    assert_eq!(
        cms.usage(Item::Object, at(0)).to_string(),
        "configmaps=1,count/configmaps=1"
    );
    // A BestEffort quota takes the BestEffort pod only.
    let be = scoped(pods.clone(), &["BestEffort"]);
    let burstable = PodBuilder::new("b").req("cpu", "1").build();
    assert_eq!(Evaluator::Pods.matches(&be, Item::Pod(&pod)), Ok(true));
    assert_eq!(
        Evaluator::Pods.matches(&be, Item::Pod(&burstable)),
        Ok(false)
    );
    let high = selector(pods, "PriorityClass", "In", &["high"]);
    let high_pod = PodBuilder::new("h").priority_class("high").build();
    assert_eq!(
        Evaluator::Pods.matches(&high, Item::Pod(&high_pod)),
        Ok(true)
    );
    assert_eq!(Evaluator::Pods.matches(&high, Item::Pod(&pod)), Ok(false));
}

#[test]
fn must_specify_what_the_quota_constrains() {
    let q = quota(
        "compute",
        &[
            ("limits.cpu", "2"),
            ("requests.memory", "1Gi"),
            ("pods", "5"),
        ],
        &[("limits.cpu", "0"), ("requests.memory", "0"), ("pods", "0")],
    );
    let pod = PodBuilder::new("p")
        .container("web", "nginx")
        .limit("cpu", "1")
        .init_container("init", &[("memory", "1Mi")])
        .build();
    let e = check(
        &[q],
        &Evaluator::Pods,
        Item::Pod(&pod),
        Operation::Create,
        at(0),
    )
    .unwrap_err();
    assert_eq!(
        e,
        CheckError::Forbidden(
            "failed quota: compute: must specify limits.cpu for: c0,init; requests.memory for: c0,web"
                .into()
        )
    );
}

#[test]
fn status_unknown_until_the_controller_counted() {
    let q = quota("fresh", &[("pods", "2")], &[]);
    let pod = PodBuilder::new("p").build();
    let e = check(
        &[q],
        &Evaluator::Pods,
        Item::Pod(&pod),
        Operation::Create,
        at(0),
    )
    .unwrap_err();
    assert_eq!(
        e,
        CheckError::Forbidden("status unknown for quota: fresh, resources: pods".into())
    );
}

#[test]
fn requests_are_charged_until_the_hard_limit() {
    let qs = vec![
        quota(
            "compute",
            &[("pods", "2"), ("requests.cpu", "1")],
            &[("pods", "1"), ("requests.cpu", "600m")],
        ),
        quota("objects", &[("count/pods", "10")], &[("count/pods", "1")]),
        quota("cms", &[("configmaps", "1")], &[("configmaps", "0")]),
    ];
    let small = PodBuilder::new("p").req("cpu", "400m").build();
    let out = check(
        &qs,
        &Evaluator::Pods,
        Item::Pod(&small),
        Operation::Create,
        at(0),
    )
    .unwrap();
    assert_eq!(
        out[0].as_ref().unwrap().to_string(),
        "pods=2,requests.cpu=1"
    );
    assert_eq!(out[1].as_ref().unwrap().to_string(), "count/pods=2");
    assert!(
        out[2].is_none(),
        "a quota of other resources is not charged"
    );
    let big = PodBuilder::new("p").req("cpu", "500m").build();
    let e = check(
        &qs,
        &Evaluator::Pods,
        Item::Pod(&big),
        Operation::Create,
        at(0),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1"
    );
    // Several resources over at once: all named, in order.
    let full = vec![quota(
        "compute",
        &[("pods", "1"), ("requests.cpu", "1")],
        &[("pods", "1"), ("requests.cpu", "1")],
    )];
    let e = check(
        &full,
        &Evaluator::Pods,
        Item::Pod(&big),
        Operation::Create,
        at(0),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "exceeded quota: compute, requested: pods=1,requests.cpu=500m, used: pods=1,requests.cpu=1, limited: pods=1,requests.cpu=1"
    );
}

#[test]
fn an_update_is_charged_what_it_adds() {
    let q = vec![quota(
        "svc",
        &[("services.nodeports", "2"), ("services", "5")],
        &[("services.nodeports", "1"), ("services", "1")],
    )];
    let svc = |ty: &str, ports: usize| Service {
        spec: Some(ServiceSpec {
            type_: Some(ty.into()),
            ports: Some(
                (0..ports)
                    .map(|i| ServicePort {
                        port: 80 + i as i32,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    let old = svc("ClusterIP", 1);
    let new = svc("NodePort", 1);
    let out = check(
        &q,
        &Evaluator::Services,
        Item::Service(&new),
        Operation::Update(Item::Service(&old)),
        at(0),
    )
    .unwrap();
    assert_eq!(
        out[0].as_ref().unwrap().to_string(),
        "services=1,services.nodeports=2"
    );
    let two = svc("NodePort", 2);
    let e = check(
        &q,
        &Evaluator::Services,
        Item::Service(&two),
        Operation::Update(Item::Service(&old)),
        at(0),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "exceeded quota: svc, requested: services.nodeports=2, used: services.nodeports=1, limited: services.nodeports=2"
    );
    // Nothing added: nothing charged.
    let out = check(
        &q,
        &Evaluator::Services,
        Item::Service(&old),
        Operation::Update(Item::Service(&old)),
        at(0),
    )
    .unwrap();
    assert!(out[0].is_none());
    // Object counts are charged on create only.
    let cms = Evaluator::for_resource("", "configmaps");
    let cq = vec![quota("cm", &[("configmaps", "1")], &[("configmaps", "1")])];
    assert!(check(
        &cq,
        &cms,
        Item::Object,
        Operation::Update(Item::Object),
        at(0)
    )
    .is_ok());
    assert!(check(&cq, &cms, Item::Object, Operation::Create, at(0)).is_err());
}

#[test]
fn service_usage_table() {
    let svc = |ty: &str, ports: &[Option<i32>], allocate: Option<bool>| Service {
        spec: Some(ServiceSpec {
            type_: Some(ty.into()),
            allocate_load_balancer_node_ports: allocate,
            ports: Some(
                ports
                    .iter()
                    .enumerate()
                    .map(|(i, np)| ServicePort {
                        port: 80 + i as i32,
                        node_port: *np,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cases = [
        (
            svc("ClusterIP", &[None], None),
            "count/services=1,services=1,services.loadbalancers=0,services.nodeports=0",
        ),
        (
            svc("NodePort", &[None, None], None),
            "count/services=1,services=1,services.loadbalancers=0,services.nodeports=2",
        ),
        (
            svc("LoadBalancer", &[None, None], None),
            "count/services=1,services=1,services.loadbalancers=1,services.nodeports=2",
        ),
        (
            svc("LoadBalancer", &[Some(30001), None], Some(false)),
            "count/services=1,services=1,services.loadbalancers=1,services.nodeports=1",
        ),
    ];
    for (s, want) in cases {
        assert_eq!(service_usage(&s).to_string(), want);
    }
}

#[test]
fn claim_usage_by_storage_class() {
    let claim = |class: Option<&str>, storage: &str| PersistentVolumeClaim {
        spec: Some(PersistentVolumeClaimSpec {
            storage_class_name: class.map(str::to_string),
            resources: Some(VolumeResourceRequirements {
                requests: Some(rl(&[("storage", storage)])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        claim_usage(&claim(Some("gold"), "10Gi")).to_string(),
        "count/persistentvolumeclaims=1,gold.storageclass.storage.k8s.io/persistentvolumeclaims=1,\
         gold.storageclass.storage.k8s.io/requests.storage=10Gi,persistentvolumeclaims=1,requests.storage=10Gi"
    );
    // Fractions of a byte are rounded up.
    assert_eq!(
        claim_usage(&claim(None, "1500m"))
            .get(REQUESTS_STORAGE)
            .unwrap()
            .to_string(),
        "2"
    );
    let ev = Evaluator::PersistentVolumeClaims;
    assert_eq!(
        ev.matching_resources([
            "requests.storage",
            "gold.storageclass.storage.k8s.io/requests.storage",
            "pods",
            "count/persistentvolumeclaims"
        ]),
        [
            "requests.storage",
            "gold.storageclass.storage.k8s.io/requests.storage",
            "count/persistentvolumeclaims"
        ]
    );
}

#[test]
fn arithmetic() {
    let a: ResourceList = [("cpu".to_string(), "1".parse().unwrap())]
        .into_iter()
        .collect();
    let b: ResourceList = [
        ("cpu".to_string(), "1500m".parse().unwrap()),
        ("memory".to_string(), "1Gi".parse().unwrap()),
    ]
    .into_iter()
    .collect();
    assert_eq!(subtract_non_negative(&a, &b).to_string(), "cpu=0");
    assert_eq!(
        subtract_non_negative(&b, &a).to_string(),
        "cpu=500m,memory=1Gi"
    );
    assert_eq!(less_than_or_equal(&b, &a), (false, vec!["cpu".to_string()]));
    assert_eq!(less_than_or_equal(&a, &b), (true, vec![]));
    assert_eq!(mask(&b, ["memory", "pods"]).to_string(), "memory=1Gi");
}
