//! Cases after upstream `resource_quota_controller_test.go` (`TestSyncResourceQuota`), in our
//! words.

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use std::collections::BTreeMap;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("fits")
}

/// A pod `name` in `ns` with this spec (one container `c` with these resources) and phase.
fn pod(name: &str, resources: serde_json::Value, phase: &str) -> Arc<Pod> {
    Arc::new(typed(json!({
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"containers": [{"name": "c", "resources": resources}]},
        "status": {"phase": phase}
    })))
}

#[derive(Default)]
struct Objects {
    pods: Vec<Arc<Pod>>,
    services: Vec<Arc<Service>>,
    counts: BTreeMap<String, usize>,
}

impl NamespaceObjects for Objects {
    fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods.clone()
    }
    fn services(&self) -> Vec<Arc<Service>> {
        self.services.clone()
    }
    fn claims(&self) -> Vec<Arc<PersistentVolumeClaim>> {
        Vec::new()
    }
    fn count(&self, r: &ApiResource) -> usize {
        self.counts.get(r.plural.as_ref()).copied().unwrap_or(0)
    }
}

fn quota(spec: serde_json::Value, status: Option<serde_json::Value>) -> ResourceQuota {
    ResourceQuota {
        metadata: ObjectMeta {
            name: Some("q".into()),
            namespace: Some("ns".into()),
            resource_version: Some("5".into()),
            ..Default::default()
        },
        spec: Some(typed(spec)),
        status: status.map(typed),
    }
}

fn written(actions: &[Action]) -> Option<serde_json::Value> {
    actions.iter().find_map(|a| match a {
        Action::UpdateStatus { object, .. } => Some(object.data["status"].clone()),
        _ => None,
    })
}

fn objects() -> Objects {
    let running = || json!({"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "200m", "memory": "2Gi"}});
    let mut be: Pod = (*pod("be", json!({}), "Running")).clone();
    be.spec.as_mut().unwrap().active_deadline_seconds = Some(60);
    Objects {
        pods: vec![
            pod("a", running(), "Running"),
            pod("b", running(), "Running"),
            pod("done", json!({"requests": {"cpu": "1"}}), "Succeeded"),
            Arc::new(be),
        ],
        services: vec![Arc::new(typed(json!({
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}
        })))],
        counts: [
            ("configmaps".to_string(), 3),
            ("deployments".to_string(), 2),
        ]
        .into(),
    }
}

#[test]
fn recounts_what_the_namespace_uses() {
    let q = quota(
        json!({"hard": {"pods": "10", "count/pods": "10", "requests.cpu": "4",
                        "limits.memory": "8Gi", "services.nodeports": "5", "configmaps": "5",
                        "count/deployments.apps": "4", "requests.example.com/gpu": "2"}}),
        None,
    );
    let st = written(&reconcile(&q, &objects(), t(0))).expect("first sync writes");
    assert_eq!(
        st,
        serde_json::json!({
            "hard": {"configmaps": "5", "count/deployments.apps": "4", "count/pods": "10",
                     "limits.memory": "8Gi", "pods": "10", "requests.cpu": "4",
                     "requests.example.com/gpu": "2", "services.nodeports": "5"},
            // The succeeded pod is an object, not a pod; nobody asks for a GPU.
            "used": {"configmaps": "3", "count/deployments.apps": "2", "count/pods": "4",
                     "limits.memory": "4Gi", "pods": "3", "requests.cpu": "200m",
                     "requests.example.com/gpu": "0", "services.nodeports": "2"}
        })
    );
    // Synced and unchanged: nothing to write.
    let mut synced = q.clone();
    synced.status = Some(serde_json::from_value(st).unwrap());
    assert!(reconcile(&synced, &objects(), t(0)).is_empty());
    // A new hard limit is taken over even when usage is the same.
    synced.spec.as_mut().unwrap().hard.as_mut().unwrap().insert(
        "pods".into(),
        k8s_openapi::apimachinery::pkg::api::resource::Quantity("20".into()),
    );
    let st = written(&reconcile(&synced, &objects(), t(0))).expect("hard changed");
    assert_eq!(st["hard"]["pods"], "20");
}

#[test]
fn scopes_select_pods_only() {
    let q = quota(
        json!({"hard": {"pods": "10", "cpu": "4"}, "scopes": ["NotTerminating"]}),
        Some(json!({"hard": {"pods": "10", "cpu": "4"}, "used": {"pods": "0", "cpu": "0"}})),
    );
    let st = written(&reconcile(&q, &objects(), t(0))).expect("recount");
    assert_eq!(st["used"], json!({"cpu": "200m", "pods": "2"}));
    let terminating = quota(
        json!({"hard": {"pods": "10"}, "scopes": ["Terminating"]}),
        Some(json!({"hard": {"pods": "10"}, "used": {"pods": "0"}})),
    );
    let st = written(&reconcile(&terminating, &objects(), t(0))).expect("recount");
    assert_eq!(st["used"], json!({"pods": "1"}));
}

#[test]
fn deleted_pods_past_their_grace_period_free_their_quota() {
    let mut objs = objects();
    let mut leaving: Pod = (*pod("leaving", json!({"requests": {"cpu": "1"}}), "Running")).clone();
    leaving.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(0)));
    leaving.metadata.deletion_grace_period_seconds = Some(30);
    objs.pods = vec![Arc::new(leaving)];
    let q = quota(json!({"hard": {"requests.cpu": "2"}}), None);
    let within = written(&reconcile(&q, &objs, t(29))).unwrap();
    assert_eq!(within["used"]["requests.cpu"], "1");
    let past = written(&reconcile(&q, &objs, t(31))).unwrap();
    assert_eq!(past["used"]["requests.cpu"], "0");
}

#[test]
fn events_are_never_quotable() {
    let all = quotable_resources();
    assert!(all.iter().any(|r| r.plural == "configmaps"));
    assert!(all
        .iter()
        .any(|r| r.plural == "deployments" && r.group == "apps"));
    assert!(all.iter().any(|r| r.plural == "resourcequotas"));
    assert!(!all.iter().any(|r| r.plural == "events"));
    assert!(!all.iter().any(|r| r.plural == "nodes"));
}
