//! Offline scheduling of a cluster description (what `orch schedule -f cluster.yaml` runs):
//! Nodes, running Pods (with `spec.nodeName`), pending Pods, PriorityClasses,
//! PodDisruptionBudgets, Namespaces, and the PersistentVolumeClaims, PersistentVolumes and
//! StorageClasses the pods' volumes use, in one multi-document YAML. Pending pods go through the
//! scheduling queue in QueueSort order; each binding is applied before the next pod, and a
//! successful preemption deletes its victims and retries the pod, as the real scheduler would
//! once the victims are gone.

use crate::decision::{Decision, Outcome};
use crate::pod_info::PodInfo;
use crate::queue::{QueueConfig, SchedulingQueue};
use crate::scheduler::Scheduler;
use crate::snapshot::{Snapshot, SnapshotError};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use orch_types::clock::ManualClock;
use orch_types::decode::{decode_documents, strict_errors};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Errors in a cluster description.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not valid YAML, or unknown fields.
    #[error(transparent)]
    Decode(#[from] orch_types::decode::DecodeError),
    /// A document of a kind the scheduler does not read.
    #[error("document {document}: {kind}/{name}: kind not supported here (expected Node, Pod, PriorityClass, PodDisruptionBudget, Namespace, PersistentVolumeClaim, PersistentVolume or StorageClass)")]
    UnsupportedKind {
        /// 1-based document.
        document: usize,
        /// Kind.
        kind: String,
        /// Name.
        name: String,
    },
    /// An object the scheduler cannot use.
    #[error("document {document}: {kind}/{name}: {message}")]
    Invalid {
        /// 1-based document.
        document: usize,
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// Why.
        message: String,
    },
}

/// A parsed cluster description.
#[derive(Debug, Default, Clone)]
pub struct ClusterInput {
    /// The cluster state.
    pub snapshot: Snapshot,
    /// Pending pods in file order.
    pub pending: Vec<PodInfo>,
}

fn invalid(document: usize, kind: &str, name: &str, message: impl ToString) -> InputError {
    InputError::Invalid {
        document: document + 1,
        kind: kind.into(),
        name: name.into(),
        message: message.to_string(),
    }
}

/// Computes `disruptionsAllowed` for a PDB without status from the running pods it selects
/// (what the disruption controller would write; all running pods count as healthy).
fn pdb_status(
    pdb: &PodDisruptionBudget,
    snap: &Snapshot,
) -> Result<PodDisruptionBudgetStatus, String> {
    let ns = pdb.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pdb.spec.clone().unwrap_or_default();
    let sel = orch_types::labels::Selector::from_optional(spec.selector.as_ref())
        .map_err(|e| e.to_string())?;
    let healthy = snap
        .all_pods()
        .filter(|p| p.namespace == ns && !p.terminating && sel.matches(&p.labels))
        .count() as i32;
    let desired = match (&spec.min_available, &spec.max_unavailable) {
        (Some(min), _) => orch_types::intstr::scaled_value(min, healthy, true)
            .map_err(|e| format!("spec.minAvailable: {e}"))?,
        (None, Some(max)) => {
            healthy
                - orch_types::intstr::scaled_value(max, healthy, true)
                    .map_err(|e| format!("spec.maxUnavailable: {e}"))?
        }
        (None, None) => healthy,
    };
    Ok(PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: healthy,
        disruptions_allowed: (healthy - desired).max(0),
        ..Default::default()
    })
}

impl ClusterInput {
    /// Parses and validates a cluster description (strict: unknown fields are errors).
    ///
    /// ```
    /// let input = orch_scheduler::simulate::ClusterInput::from_yaml(r#"
    /// apiVersion: v1
    /// kind: Node
    /// metadata: {name: n1}
    /// status: {allocatable: {cpu: "2", memory: 4Gi, pods: "10"}}
    /// ---
    /// apiVersion: v1
    /// kind: Pod
    /// metadata: {name: web}
    /// spec: {containers: [{name: c, image: nginx}]}
    /// "#).unwrap();
    /// assert_eq!(input.pending.len(), 1);
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, InputError> {
        let docs = decode_documents(text)?;
        let strict: Vec<_> = docs.iter().flat_map(|d| strict_errors(d, text)).collect();
        if !strict.is_empty() {
            return Err(orch_types::decode::DecodeError::Strict(strict).into());
        }
        let mut classes: BTreeMap<String, PriorityClass> = BTreeMap::new();
        let mut nodes = Vec::new();
        let mut pods = Vec::new();
        let mut pdbs = Vec::new();
        let mut input = ClusterInput::default();
        for d in &docs {
            let o = &d.object;
            let (kind, name) = (o.types.kind.as_str(), o.name().to_string());
            let conv =
                |e: orch_types::dynamic::ConvertError| invalid(d.document, kind, &name, e.source);
            match kind {
                "Node" => nodes.push((d.document, o.to_typed::<Node>().map_err(conv)?)),
                "Pod" => pods.push((d.document, o.to_typed::<Pod>().map_err(conv)?)),
                "PriorityClass" => {
                    classes.insert(name.clone(), o.to_typed::<PriorityClass>().map_err(conv)?);
                }
                "PodDisruptionBudget" => pdbs.push((
                    d.document,
                    o.to_typed::<PodDisruptionBudget>().map_err(conv)?,
                )),
                "PersistentVolumeClaim" => {
                    let mut c = o.to_typed::<PersistentVolumeClaim>().map_err(conv)?;
                    c.metadata.namespace.get_or_insert_with(|| "default".into());
                    input.snapshot.upsert_claim(Arc::new(c));
                }
                "PersistentVolume" => {
                    let v = o.to_typed::<PersistentVolume>().map_err(conv)?;
                    input.snapshot.upsert_volume(Arc::new(v));
                }
                "StorageClass" => {
                    let c = o.to_typed::<StorageClass>().map_err(conv)?;
                    input.snapshot.upsert_storage_class(Arc::new(c));
                }
                "Namespace" => {
                    let ns = o.to_typed::<Namespace>().map_err(conv)?;
                    input
                        .snapshot
                        .set_namespace(&name, ns.metadata.labels.unwrap_or_default());
                }
                _ => {
                    return Err(InputError::UnsupportedKind {
                        document: d.document + 1,
                        kind: kind.into(),
                        name,
                    })
                }
            }
        }
        for (doc, n) in nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            input
                .snapshot
                .upsert_node(n)
                .map_err(|e| invalid(doc, "Node", &name, e))?;
        }
        let default_class = classes
            .values()
            .find(|c| c.global_default == Some(true))
            .cloned();
        let mut seen = std::collections::BTreeSet::new();
        for (doc, mut p) in pods {
            let name = p.metadata.name.clone().unwrap_or_default();
            let ns = p
                .metadata
                .namespace
                .get_or_insert_with(|| "default".into())
                .clone();
            if !seen.insert(format!("{ns}/{name}")) {
                return Err(invalid(
                    doc,
                    "Pod",
                    &name,
                    format!("duplicate pod {ns}/{name}"),
                ));
            }
            let spec = p.spec.get_or_insert_with(Default::default);
            // Priority admission: resolve priorityClassName (or the global default).
            if spec.priority.is_none() {
                let class = match &spec.priority_class_name {
                    Some(c) => Some(classes.get(c).cloned().ok_or_else(|| {
                        invalid(
                            doc,
                            "Pod",
                            &name,
                            format!(
                                "spec.priorityClassName: no PriorityClass with name {c} was found"
                            ),
                        )
                    })?),
                    None => default_class.clone(),
                };
                if let Some(c) = class {
                    spec.priority = Some(c.value);
                    if spec.preemption_policy.is_none() {
                        spec.preemption_policy = c.preemption_policy.clone();
                    }
                }
            }
            let info = PodInfo::new(p).map_err(|e| invalid(doc, "Pod", &name, e))?;
            if info.node_name.is_some() {
                input.snapshot.upsert_pod_info(Arc::new(info));
            } else {
                input.pending.push(info);
            }
        }
        for (doc, mut pdb) in pdbs {
            let name = pdb.metadata.name.clone().unwrap_or_default();
            pdb.metadata
                .namespace
                .get_or_insert_with(|| "default".into());
            if pdb.status.is_none() {
                pdb.status = Some(
                    pdb_status(&pdb, &input.snapshot)
                        .map_err(|e| invalid(doc, "PodDisruptionBudget", &name, e))?,
                );
            }
            input
                .snapshot
                .upsert_pdb(&pdb)
                .map_err(|e: SnapshotError| invalid(doc, "PodDisruptionBudget", &name, e))?;
        }
        Ok(input)
    }

    /// Schedules every pending pod in queue order; returns the decisions in the order they
    /// were made (a preempting pod appears twice: nominated, then placed).
    pub fn run(mut self, scheduler: &mut Scheduler) -> Vec<Decision> {
        let clock = ManualClock::at_epoch_seconds(0);
        let mut out = Vec::new();
        let mut queues: BTreeMap<String, SchedulingQueue> = BTreeMap::new();
        for p in scheduler.profiles() {
            queues.insert(
                p.scheduler_name.clone(),
                SchedulingQueue::new(
                    p.queue_sort.clone(),
                    Vec::new(),
                    Arc::new(clock.clone()),
                    QueueConfig::default(),
                ),
            );
        }
        for pod in self.pending.drain(..) {
            match queues.get_mut(&pod.scheduler_name) {
                Some(q) => q.add(Arc::new(pod)),
                None => out.push(Decision {
                    pod: pod.key.clone(),
                    outcome: Outcome::Error {
                        message: format!(
                            "no profile for schedulerName {:?}; pod left alone",
                            pod.scheduler_name
                        ),
                    },
                    explanation: None,
                }),
            }
        }
        for q in queues.values_mut() {
            while let Some(qp) = q.pop() {
                let d = scheduler.schedule_and_assume(&qp.pod, &mut self.snapshot);
                let retry = match &d.outcome {
                    Outcome::Unschedulable {
                        nominated_node: Some(n),
                        victims,
                        ..
                    } if qp.attempts == 1 => {
                        for v in victims {
                            self.snapshot.remove_pod(v);
                        }
                        let mut p = (*qp.pod).clone();
                        p.nominated_node = Some(n.clone());
                        Some(p)
                    }
                    _ => None,
                };
                out.push(d);
                if let Some(p) = retry {
                    let mut again = qp.clone();
                    again.pod = Arc::new(p);
                    // Victims are gone: the pod is retried right away (no backoff in a
                    // simulation without time).
                    let d = scheduler.schedule_and_assume(&again.pod, &mut self.snapshot);
                    out.push(d);
                }
            }
        }
        out
    }
}
