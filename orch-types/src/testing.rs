//! Fluent builders for tests in every orch crate (feature `testing`), in the spirit of upstream
//! `pkg/scheduler/testing/wrappers.go`.
//!
//! ```
//! use orch_types::testing::{NodeBuilder, PodBuilder};
//! let pod = PodBuilder::new("p").req("cpu", "500m").label("app", "web").build();
//! assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
//! let node = NodeBuilder::new("n1").capacity("cpu", "4").taint("dedicated", "gpu", "NoSchedule").build();
//! assert_eq!(node.status.unwrap().allocatable.unwrap()["cpu"].0, "4");
//! ```
//!
//! Builders panic on malformed input (they are for tests only).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerImage, ContainerPort, Node, NodeAffinity, NodeCondition,
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, NodeSpec, NodeStatus, Pod,
    PodAffinity, PodAffinityTerm, PodAntiAffinity, PodCondition, PodSpec, PodStatus,
    PodTemplateSpec, ResourceRequirements, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use crate::quantity::Quantity;

fn canonical(q: &str) -> K8sQuantity {
    let parsed: Quantity = q
        .parse()
        .unwrap_or_else(|e| panic!("bad quantity {q:?}: {e}"));
    parsed.into()
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        uid: Some(format!("uid-{}-{name}", namespace.unwrap_or(""))),
        ..Default::default()
    }
}

fn time(secs: i64) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(secs)
            .unwrap_or_else(|e| panic!("bad timestamp {secs}: {e}")),
    )
}

fn labels_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Builds a [`Pod`] in namespace `default` with one container `c0` (image `registry.k8s.io/pause:3.10`).
#[derive(Debug, Clone)]
pub struct PodBuilder {
    pod: Pod,
}

impl PodBuilder {
    /// A new pod named `name`.
    pub fn new(name: &str) -> Self {
        Self {
            pod: Pod {
                metadata: meta(name, Some("default")),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "c0".into(),
                        image: Some("registry.k8s.io/pause:3.10".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                status: None,
            },
        }
    }

    fn spec(&mut self) -> &mut PodSpec {
        self.pod.spec.get_or_insert_with(Default::default)
    }

    fn last_container(&mut self) -> &mut Container {
        let spec = self.spec();
        if spec.containers.is_empty() {
            spec.containers.push(Container {
                name: "c0".into(),
                ..Default::default()
            });
        }
        spec.containers.last_mut().expect("one container exists")
    }

    fn affinity(&mut self) -> &mut Affinity {
        self.spec().affinity.get_or_insert_with(Default::default)
    }

    /// Sets the namespace (and the derived uid).
    pub fn namespace(mut self, ns: &str) -> Self {
        self.pod.metadata.namespace = Some(ns.into());
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        self.pod.metadata.uid = Some(format!("uid-{ns}-{name}"));
        self
    }

    /// Sets the uid.
    pub fn uid(mut self, uid: &str) -> Self {
        self.pod.metadata.uid = Some(uid.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.pod
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }

    /// Adds several labels.
    pub fn labels(mut self, pairs: &[(&str, &str)]) -> Self {
        for (k, v) in pairs {
            self = self.label(k, v);
        }
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.pod
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }

    /// Appends a container; later `req`/`limit`/`image`/`host_port` calls apply to it.
    pub fn container(mut self, name: &str, image: &str) -> Self {
        self.spec().containers.push(Container {
            name: name.into(),
            image: Some(image.into()),
            ..Default::default()
        });
        self
    }

    /// Appends an init container with the given requests (`&[("cpu", "1")]`).
    pub fn init_container(mut self, name: &str, requests: &[(&str, &str)]) -> Self {
        let c = Container {
            name: name.into(),
            image: Some("registry.k8s.io/pause:3.10".into()),
            resources: Some(ResourceRequirements {
                requests: Some(
                    requests
                        .iter()
                        .map(|(k, v)| (k.to_string(), canonical(v)))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.spec()
            .init_containers
            .get_or_insert_with(Default::default)
            .push(c);
        self
    }

    /// Appends a sidecar (init container with `restartPolicy: Always`).
    pub fn sidecar(mut self, name: &str, requests: &[(&str, &str)]) -> Self {
        self = self.init_container(name, requests);
        if let Some(c) = self
            .spec()
            .init_containers
            .as_mut()
            .and_then(|v| v.last_mut())
        {
            c.restart_policy = Some("Always".into());
        }
        self
    }

    /// Sets the image of the last container.
    pub fn image(mut self, image: &str) -> Self {
        self.last_container().image = Some(image.into());
        self
    }

    /// Adds a resource request to the last container.
    pub fn req(mut self, resource: &str, q: &str) -> Self {
        self.last_container()
            .resources
            .get_or_insert_with(Default::default)
            .requests
            .get_or_insert_with(Default::default)
            .insert(resource.into(), canonical(q));
        self
    }

    /// Adds a resource limit to the last container.
    pub fn limit(mut self, resource: &str, q: &str) -> Self {
        self.last_container()
            .resources
            .get_or_insert_with(Default::default)
            .limits
            .get_or_insert_with(Default::default)
            .insert(resource.into(), canonical(q));
        self
    }

    /// Adds a TCP host port to the last container.
    pub fn host_port(mut self, port: i32) -> Self {
        self.last_container()
            .ports
            .get_or_insert_with(Default::default)
            .push(ContainerPort {
                container_port: port,
                host_port: Some(port),
                protocol: Some("TCP".into()),
                ..Default::default()
            });
        self
    }

    /// Sets `spec.nodeName`.
    pub fn node_name(mut self, node: &str) -> Self {
        self.spec().node_name = Some(node.into());
        self
    }

    /// Sets `spec.schedulerName`.
    pub fn scheduler_name(mut self, s: &str) -> Self {
        self.spec().scheduler_name = Some(s.into());
        self
    }

    /// Sets `spec.restartPolicy`.
    pub fn restart_policy(mut self, p: &str) -> Self {
        self.spec().restart_policy = Some(p.into());
        self
    }

    /// Adds a toleration (`operator` `Equal` or `Exists`; empty strings mean unset).
    pub fn toleration(mut self, key: &str, operator: &str, value: &str, effect: &str) -> Self {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        self.spec()
            .tolerations
            .get_or_insert_with(Default::default)
            .push(Toleration {
                key: opt(key),
                operator: opt(operator),
                value: opt(value),
                effect: opt(effect),
                toleration_seconds: None,
            });
        self
    }

    /// Adds a `spec.nodeSelector` entry.
    pub fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }

    /// Adds a required node-affinity term with one requirement (`op` In/NotIn/Exists/…).
    pub fn node_affinity_required(mut self, key: &str, op: &str, values: &[&str]) -> Self {
        let term = NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: (!values.is_empty())
                    .then(|| values.iter().map(|s| s.to_string()).collect()),
            }]),
            match_fields: None,
        };
        let na = self
            .affinity()
            .node_affinity
            .get_or_insert_with(NodeAffinity::default);
        na.required_during_scheduling_ignored_during_execution
            .get_or_insert_with(|| NodeSelector {
                node_selector_terms: vec![],
            })
            .node_selector_terms
            .push(term);
        self
    }

    /// Adds a preferred node-affinity term (`In` on one key) with a weight.
    pub fn node_affinity_preferred(mut self, weight: i32, key: &str, values: &[&str]) -> Self {
        let na = self
            .affinity()
            .node_affinity
            .get_or_insert_with(NodeAffinity::default);
        na.preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(k8s_openapi::api::core::v1::PreferredSchedulingTerm {
                weight,
                preference: NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: key.into(),
                        operator: "In".into(),
                        values: Some(values.iter().map(|s| s.to_string()).collect()),
                    }]),
                    match_fields: None,
                },
            });
        self
    }

    fn affinity_term(topology_key: &str, match_labels: &[(&str, &str)]) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(labels_of(match_labels)),
                match_expressions: None,
            }),
            topology_key: topology_key.into(),
            ..Default::default()
        }
    }

    /// Adds a required pod-affinity term (`matchLabels` selector, topology key).
    pub fn pod_affinity(mut self, topology_key: &str, match_labels: &[(&str, &str)]) -> Self {
        let t = Self::affinity_term(topology_key, match_labels);
        self.affinity()
            .pod_affinity
            .get_or_insert_with(PodAffinity::default)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(t);
        self
    }

    /// Adds a required pod-anti-affinity term.
    pub fn pod_anti_affinity(mut self, topology_key: &str, match_labels: &[(&str, &str)]) -> Self {
        let t = Self::affinity_term(topology_key, match_labels);
        self.affinity()
            .pod_anti_affinity
            .get_or_insert_with(PodAntiAffinity::default)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(t);
        self
    }

    /// Sets `spec.priority`.
    pub fn priority(mut self, p: i32) -> Self {
        self.spec().priority = Some(p);
        self
    }

    /// Sets `spec.priorityClassName`.
    pub fn priority_class(mut self, name: &str) -> Self {
        self.spec().priority_class_name = Some(name.into());
        self
    }

    /// Adds a controller owner reference (`kind` e.g. `ReplicaSet`, apiVersion derived).
    pub fn owner(mut self, kind: &str, name: &str, uid: &str) -> Self {
        let api_version = match kind {
            "ReplicaSet" | "Deployment" | "DaemonSet" | "StatefulSet" => "apps/v1",
            "Job" => "batch/v1",
            _ => "v1",
        };
        self.pod
            .metadata
            .owner_references
            .get_or_insert_with(Default::default)
            .push(OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: name.into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            });
        self
    }

    /// Sets `status.phase`.
    pub fn phase(mut self, phase: &str) -> Self {
        self.pod.status.get_or_insert_with(PodStatus::default).phase = Some(phase.into());
        self
    }

    /// Sets the `Ready` condition (and phase `Running` when ready and no phase is set).
    pub fn ready(mut self, ready: bool) -> Self {
        let st = self.pod.status.get_or_insert_with(PodStatus::default);
        if ready && st.phase.is_none() {
            st.phase = Some("Running".into());
        }
        let conds = st.conditions.get_or_insert_with(Default::default);
        conds.retain(|c| c.type_ != "Ready");
        conds.push(PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        });
        self
    }

    /// Sets `status.nominatedNodeName`.
    pub fn nominated_node(mut self, node: &str) -> Self {
        self.pod
            .status
            .get_or_insert_with(PodStatus::default)
            .nominated_node_name = Some(node.into());
        self
    }

    /// Sets `metadata.creationTimestamp` to `secs` after the Unix epoch.
    pub fn created_at(mut self, secs: i64) -> Self {
        self.pod.metadata.creation_timestamp = Some(time(secs));
        self
    }

    /// Marks the pod terminating (`metadata.deletionTimestamp` at `secs`, grace 30 s).
    pub fn terminating(mut self, secs: i64) -> Self {
        self.pod.metadata.deletion_timestamp = Some(time(secs));
        self.pod.metadata.deletion_grace_period_seconds = Some(30);
        self
    }

    /// The pod.
    pub fn build(self) -> Pod {
        self.pod
    }
}

/// Builds a [`Node`]; capacity and allocatable start with `pods: 110` (kubelet's default).
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    node: Node,
}

impl NodeBuilder {
    /// A new node named `name`, labelled `kubernetes.io/hostname=<name>`.
    pub fn new(name: &str) -> Self {
        let pods = BTreeMap::from([("pods".to_string(), K8sQuantity("110".into()))]);
        Self {
            node: Node {
                metadata: ObjectMeta {
                    labels: Some(BTreeMap::from([(
                        "kubernetes.io/hostname".to_string(),
                        name.to_string(),
                    )])),
                    ..meta(name, None)
                },
                spec: Some(NodeSpec::default()),
                status: Some(NodeStatus {
                    capacity: Some(pods.clone()),
                    allocatable: Some(pods),
                    ..Default::default()
                }),
            },
        }
    }

    fn status(&mut self) -> &mut NodeStatus {
        self.node.status.get_or_insert_with(Default::default)
    }

    /// Sets capacity AND allocatable of a resource.
    pub fn capacity(mut self, resource: &str, q: &str) -> Self {
        let st = self.status();
        st.capacity
            .get_or_insert_with(Default::default)
            .insert(resource.into(), canonical(q));
        st.allocatable
            .get_or_insert_with(Default::default)
            .insert(resource.into(), canonical(q));
        self
    }

    /// Sets only allocatable of a resource.
    pub fn allocatable(mut self, resource: &str, q: &str) -> Self {
        self.status()
            .allocatable
            .get_or_insert_with(Default::default)
            .insert(resource.into(), canonical(q));
        self
    }

    /// Adds a label.
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.node
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.into());
        self
    }

    /// Adds a taint (`effect` NoSchedule / PreferNoSchedule / NoExecute; empty value = unset).
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.node
            .spec
            .get_or_insert_with(Default::default)
            .taints
            .get_or_insert_with(Default::default)
            .push(Taint {
                key: key.into(),
                value: (!value.is_empty()).then(|| value.to_string()),
                effect: effect.into(),
                time_added: None,
            });
        self
    }

    /// Sets `spec.unschedulable`.
    pub fn unschedulable(mut self, u: bool) -> Self {
        self.node
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(u);
        self
    }

    /// Sets the `Ready` condition.
    pub fn ready(mut self, ready: bool) -> Self {
        let conds = self
            .status()
            .conditions
            .get_or_insert_with(Default::default);
        conds.retain(|c| c.type_ != "Ready");
        conds.push(NodeCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            reason: Some(
                if ready {
                    "KubeletReady"
                } else {
                    "KubeletNotReady"
                }
                .into(),
            ),
            ..Default::default()
        });
        self
    }

    /// Adds an image present on the node.
    pub fn image(mut self, names: &[&str], size_bytes: i64) -> Self {
        self.status()
            .images
            .get_or_insert_with(Default::default)
            .push(ContainerImage {
                names: Some(names.iter().map(|s| s.to_string()).collect()),
                size_bytes: Some(size_bytes),
            });
        self
    }

    /// The node.
    pub fn build(self) -> Node {
        self.node
    }
}

fn template(labels: &BTreeMap<String, String>, image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// Builds a [`Deployment`] whose selector equals its template labels (default `app=<name>`).
#[derive(Debug, Clone)]
pub struct DeploymentBuilder {
    name: String,
    namespace: String,
    replicas: i32,
    labels: BTreeMap<String, String>,
    image: String,
    strategy: Option<DeploymentStrategy>,
}

impl DeploymentBuilder {
    /// A deployment of one `nginx:1.27` replica.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            namespace: "default".into(),
            replicas: 1,
            labels: BTreeMap::from([("app".to_string(), name.to_string())]),
            image: "nginx:1.27".into(),
            strategy: None,
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = ns.into();
        self
    }

    /// Sets `spec.replicas`.
    pub fn replicas(mut self, n: i32) -> Self {
        self.replicas = n;
        self
    }

    /// Replaces selector/template labels.
    pub fn labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.labels = labels_of(pairs);
        self
    }

    /// Sets the container image.
    pub fn image(mut self, image: &str) -> Self {
        self.image = image.into();
        self
    }

    /// Sets `spec.strategy`.
    pub fn strategy(mut self, s: DeploymentStrategy) -> Self {
        self.strategy = Some(s);
        self
    }

    /// The deployment.
    pub fn build(self) -> Deployment {
        Deployment {
            metadata: meta(&self.name, Some(&self.namespace)),
            spec: Some(DeploymentSpec {
                replicas: Some(self.replicas),
                selector: LabelSelector {
                    match_labels: Some(self.labels.clone()),
                    match_expressions: None,
                },
                template: template(&self.labels, &self.image),
                strategy: self.strategy,
                ..Default::default()
            }),
            status: None,
        }
    }
}

/// Builds a [`ReplicaSet`] whose selector equals its template labels (default `app=<name>`).
#[derive(Debug, Clone)]
pub struct ReplicaSetBuilder {
    name: String,
    namespace: String,
    replicas: i32,
    labels: BTreeMap<String, String>,
    image: String,
    owner: Option<OwnerReference>,
}

impl ReplicaSetBuilder {
    /// A replica set of one `nginx:1.27` replica.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            namespace: "default".into(),
            replicas: 1,
            labels: BTreeMap::from([("app".to_string(), name.to_string())]),
            image: "nginx:1.27".into(),
            owner: None,
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = ns.into();
        self
    }

    /// Sets `spec.replicas`.
    pub fn replicas(mut self, n: i32) -> Self {
        self.replicas = n;
        self
    }

    /// Replaces selector/template labels.
    pub fn labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.labels = labels_of(pairs);
        self
    }

    /// Sets the container image.
    pub fn image(mut self, image: &str) -> Self {
        self.image = image.into();
        self
    }

    /// Makes a Deployment its controller owner.
    pub fn owned_by_deployment(mut self, name: &str, uid: &str) -> Self {
        self.owner = Some(OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        });
        self
    }

    /// The replica set.
    pub fn build(self) -> ReplicaSet {
        let mut m = meta(&self.name, Some(&self.namespace));
        m.labels = Some(self.labels.clone());
        m.owner_references = self.owner.map(|o| vec![o]);
        ReplicaSet {
            metadata: m,
            spec: Some(ReplicaSetSpec {
                replicas: Some(self.replicas),
                selector: LabelSelector {
                    match_labels: Some(self.labels.clone()),
                    match_expressions: None,
                },
                template: Some(template(&self.labels, &self.image)),
                ..Default::default()
            }),
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::pod_requests;

    #[test]
    fn pod_builder_resources_and_scheduling_fields() {
        let p = PodBuilder::new("p")
            .req("cpu", "0.5")
            .limit("cpu", "1")
            .container("side", "busybox")
            .req("memory", "1Gi")
            .init_container("init", &[("cpu", "2")])
            .toleration("k", "Exists", "", "NoSchedule")
            .node_affinity_required("zone", "In", &["a"])
            .pod_anti_affinity("kubernetes.io/hostname", &[("app", "web")])
            .priority(100)
            .owner("ReplicaSet", "rs", "rs-uid")
            .ready(true)
            .created_at(1_700_000_000)
            .terminating(1_700_000_100)
            .build();
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(
            spec.containers[0]
                .resources
                .as_ref()
                .unwrap()
                .requests
                .as_ref()
                .unwrap()["cpu"]
                .0,
            "500m"
        );
        assert_eq!(pod_requests(spec).to_string(), "cpu=2,memory=1Gi");
        assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
        assert_eq!(
            p.metadata.owner_references.unwrap()[0].api_version,
            "apps/v1"
        );
    }

    #[test]
    fn node_and_workload_builders() {
        let n = NodeBuilder::new("n")
            .capacity("cpu", "4")
            .unschedulable(true)
            .ready(false)
            .build();
        assert_eq!(
            n.status.as_ref().unwrap().capacity.as_ref().unwrap()["pods"].0,
            "110"
        );
        assert_eq!(n.spec.unwrap().unschedulable, Some(true));
        let d = DeploymentBuilder::new("web").replicas(3).build();
        let ds = d.spec.unwrap();
        assert_eq!(
            ds.selector.match_labels,
            ds.template.metadata.unwrap().labels
        );
        let rs = ReplicaSetBuilder::new("web-1")
            .owned_by_deployment("web", "u")
            .build();
        assert_eq!(rs.metadata.owner_references.unwrap()[0].kind, "Deployment");
    }
}
