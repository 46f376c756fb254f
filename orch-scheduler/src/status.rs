//! [`Status`], its [`Code`] and the structured [`Reason`]s plugins give for rejecting a node.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// What a plugin says about a pod (and node); each variant says what the scheduler does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The plugin ran and allows the pod; the scheduler continues with the next plugin.
    Success,
    /// The node cannot host the pod now; preemption (PostFilter) may change that, and the pod is
    /// retried when a relevant cluster event happens.
    Unschedulable,
    /// The node cannot host the pod and preemption cannot help (wrong labels, taints, …); the
    /// node is left out of preemption.
    UnschedulableAndUnresolvable,
    /// An internal error; the pod goes to backoff and is retried.
    Error,
    /// The plugin has nothing to do for this pod: at PreFilter/PreScore, its Filter/Score is
    /// skipped for the whole cycle.
    Skip,
    /// Permit only: the pod waits before binding.
    Wait,
    /// PreEnqueue only: the pod is not allowed into the active queue yet (scheduling gates).
    Pending,
}

impl Code {
    /// True for `Unschedulable` and `UnschedulableAndUnresolvable`.
    pub fn is_rejected(self) -> bool {
        matches!(
            self,
            Self::Unschedulable | Self::UnschedulableAndUnresolvable
        )
    }
}

/// Why a node was rejected, as data. [`Reason::message`] renders upstream's exact sentence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// NodeResourcesFit: not enough of a resource (`Insufficient cpu`).
    InsufficientResource {
        /// Resource name.
        resource: String,
        /// Requested by the pod.
        requested: i64,
        /// Already requested by pods on the node.
        used: i64,
        /// Node allocatable.
        capacity: i64,
    },
    /// NodeResourcesFit: the node has no room for another pod (`Too many pods`).
    TooManyPods {
        /// Pods on the node.
        used: i64,
        /// Allowed pods.
        capacity: i64,
    },
    /// TaintToleration: a NoSchedule/NoExecute taint the pod does not tolerate.
    UntoleratedTaint {
        /// Taint key.
        key: String,
        /// Taint value.
        value: String,
        /// Taint effect.
        effect: String,
    },
    /// NodeUnschedulable: the node is cordoned.
    NodeUnschedulable,
    /// NodeName: `spec.nodeName` names another node.
    NodeNameMismatch,
    /// NodeAffinity: nodeSelector / required node affinity does not match.
    NodeAffinityMismatch,
    /// NodeAffinity: the profile's `addedAffinity` does not match.
    EnforcedNodeAffinityMismatch,
    /// NodePorts: a requested host port is in use.
    HostPortConflict,
    /// PodTopologySpread: placing the pod would exceed maxSkew.
    SpreadConstraintsNotMatch,
    /// PodTopologySpread: the node lacks a constraint's topology key label.
    SpreadMissingTopologyLabel,
    /// InterPodAffinity: required pod affinity not satisfied.
    PodAffinityRulesNotMatch,
    /// InterPodAffinity: the pod's required anti-affinity is violated.
    PodAntiAffinityRulesNotMatch,
    /// InterPodAffinity: an existing pod's required anti-affinity is violated.
    ExistingPodsAntiAffinityRulesNotMatch,
    /// VolumeBinding (PreFilter): a claim the pod uses does not exist.
    PvcNotFound {
        /// The claim's name.
        name: String,
    },
    /// VolumeBinding (PreFilter): a claim the pod uses is being deleted.
    PvcBeingDeleted {
        /// The claim's name.
        name: String,
    },
    /// VolumeBinding (PreFilter): the claim of a generic ephemeral volume is not created yet.
    EphemeralPvcNotCreated {
        /// The claim's name (`<pod>-<volume>`).
        name: String,
    },
    /// VolumeBinding (PreFilter): a claim of an `Immediate` class is not bound yet.
    UnboundImmediatePvc,
    /// VolumeBinding: a bound volume's node affinity excludes the node.
    VolumeNodeAffinityConflict,
    /// VolumeBinding: no volume to bind and no way to provision one on the node.
    VolumeBindConflict,
    /// VolumeBinding: a claim is bound to a volume that does not exist.
    PvNotExist,
    /// SchedulingGates: the pod still has gates.
    SchedulingGated {
        /// Remaining gate names.
        gates: Vec<String>,
    },
    /// DefaultPreemption: the node was rejected by an unresolvable filter.
    PreemptionNotHelpful,
    /// DefaultPreemption: no pod of lower priority on the node.
    NoPreemptionVictims,
    /// DefaultPreemption: the pod's preemptionPolicy is Never.
    PreemptionPolicyNever,
    /// Any other message (custom plugins, errors).
    Other {
        /// The message.
        message: String,
    },
}

impl Reason {
    /// Upstream's sentence for this reason (what `kubectl describe` shows).
    pub fn message(&self) -> Cow<'static, str> {
        match self {
            Self::InsufficientResource { resource, .. } => {
                Cow::Owned(format!("Insufficient {resource}"))
            }
            Self::TooManyPods { .. } => "Too many pods".into(),
            Self::UntoleratedTaint { key, value, .. } => {
                Cow::Owned(format!("node(s) had untolerated taint {{{key}: {value}}}"))
            }
            Self::NodeUnschedulable => "node(s) were unschedulable".into(),
            Self::NodeNameMismatch => "node(s) didn't match the requested node name".into(),
            Self::NodeAffinityMismatch => {
                "node(s) didn't match Pod's node affinity/selector".into()
            }
            Self::EnforcedNodeAffinityMismatch => {
                "node(s) didn't match scheduler-enforced node affinity".into()
            }
            Self::HostPortConflict => {
                "node(s) didn't have free ports for the requested pod ports".into()
            }
            Self::SpreadConstraintsNotMatch => {
                "node(s) didn't match pod topology spread constraints".into()
            }
            Self::SpreadMissingTopologyLabel => {
                "node(s) didn't match pod topology spread constraints (missing required label)"
                    .into()
            }
            Self::PodAffinityRulesNotMatch => "node(s) didn't match pod affinity rules".into(),
            Self::PodAntiAffinityRulesNotMatch => {
                "node(s) didn't match pod anti-affinity rules".into()
            }
            Self::ExistingPodsAntiAffinityRulesNotMatch => {
                "node(s) didn't satisfy existing pods anti-affinity rules".into()
            }
            Self::PvcNotFound { name } => {
                Cow::Owned(format!("persistentvolumeclaim \"{name}\" not found"))
            }
            Self::PvcBeingDeleted { name } => {
                Cow::Owned(format!("persistentvolumeclaim \"{name}\" is being deleted"))
            }
            Self::EphemeralPvcNotCreated { name } => Cow::Owned(format!(
                "waiting for ephemeral volume controller to create the persistentvolumeclaim \"{name}\""
            )),
            Self::UnboundImmediatePvc => "pod has unbound immediate PersistentVolumeClaims".into(),
            Self::VolumeNodeAffinityConflict => "node(s) had volume node affinity conflict".into(),
            Self::VolumeBindConflict => {
                "node(s) didn't find available persistent volumes to bind".into()
            }
            Self::PvNotExist => {
                "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)".into()
            }
            Self::SchedulingGated { gates } => Cow::Owned(format!(
                "waiting for scheduling gates: [{}]",
                gates.join(" ")
            )),
            Self::PreemptionNotHelpful => "Preemption is not helpful for scheduling".into(),
            Self::NoPreemptionVictims => "No preemption victims found for incoming pod".into(),
            Self::PreemptionPolicyNever => "not eligible due to preemptionPolicy=Never.".into(),
            Self::Other { message } => Cow::Owned(message.clone()),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// A plugin's verdict: a code, structured reasons, and the plugin that produced it.
///
/// ```
/// use orch_scheduler::status::{Code, Reason, Status};
/// let s = Status::new(Code::UnschedulableAndUnresolvable, Reason::NodeUnschedulable)
///     .with_plugin("NodeUnschedulable");
/// assert!(!s.is_success());
/// assert_eq!(s.message(), "node(s) were unschedulable");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The code.
    pub code: Code,
    /// Reasons (empty on success). Borrowed from a `static` for the common fixed rejections
    /// ([`Status::fixed`]), so rejecting a node need not allocate.
    #[serde(default, skip_serializing_if = "no_reasons")]
    pub reasons: Cow<'static, [Reason]>,
    /// The plugin that returned it (empty for success or framework statuses).
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub plugin: Cow<'static, str>,
}

// serde's skip_serializing_if passes the field's type by reference.
#[allow(clippy::ptr_arg)]
fn no_reasons(r: &Cow<'static, [Reason]>) -> bool {
    r.is_empty()
}

impl Default for Status {
    fn default() -> Self {
        Self::success()
    }
}

impl Status {
    /// Success (allocation free).
    pub const fn success() -> Self {
        Self {
            code: Code::Success,
            reasons: Cow::Borrowed(&[]),
            plugin: Cow::Borrowed(""),
        }
    }

    /// Skip (allocation free).
    pub const fn skip() -> Self {
        Self {
            code: Code::Skip,
            reasons: Cow::Borrowed(&[]),
            plugin: Cow::Borrowed(""),
        }
    }

    /// A status with one reason.
    pub fn new(code: Code, reason: Reason) -> Self {
        Self {
            code,
            reasons: Cow::Owned(vec![reason]),
            plugin: Cow::Borrowed(""),
        }
    }

    /// A status with reasons from a `static` (allocation free; the per-node rejections).
    ///
    /// ```
    /// use orch_scheduler::status::{Code, Reason, Status};
    /// static WHY: [Reason; 1] = [Reason::NodeUnschedulable];
    /// let s = Status::fixed(Code::UnschedulableAndUnresolvable, &WHY);
    /// assert_eq!(s, Status::new(Code::UnschedulableAndUnresolvable, Reason::NodeUnschedulable));
    /// ```
    pub const fn fixed(code: Code, reasons: &'static [Reason]) -> Self {
        Self {
            code,
            reasons: Cow::Borrowed(reasons),
            plugin: Cow::Borrowed(""),
        }
    }

    /// A status with several reasons.
    pub fn with_reasons(code: Code, reasons: Vec<Reason>) -> Self {
        Self {
            code,
            reasons: Cow::Owned(reasons),
            plugin: Cow::Borrowed(""),
        }
    }

    /// An internal error.
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(
            Code::Error,
            Reason::Other {
                message: message.into(),
            },
        )
    }

    /// Sets the plugin name.
    pub fn with_plugin(mut self, plugin: &'static str) -> Self {
        self.plugin = Cow::Borrowed(plugin);
        self
    }

    /// True when the code is Success.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// True when the code is Skip.
    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    /// The reasons joined with ", " (upstream `Status.Message`).
    pub fn message(&self) -> String {
        let mut out = String::new();
        for (i, r) in self.reasons.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&r.message());
        }
        out
    }
}
