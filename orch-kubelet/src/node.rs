//! The Node object the kubelet registers and keeps up to date: capacity (from the host or
//! overrides), allocatable (capacity − kube-reserved − system-reserved − hard eviction
//! threshold, as upstream `pkg/kubelet/cm/node_container_manager_linux.go`), labels, taints,
//! addresses, nodeInfo, conditions and images; and pod admission against allocatable
//! (upstream `lifecycle/predicate.go`: OutOfcpu, OutOfmemory, OutOfpods).
//!
//! The pressure conditions come from [`crate::eviction`]: each node status evaluates the hard
//! eviction thresholds against [`NodeConfig::stats`] (fixed healthy values unless a
//! [`HostStats`](crate::eviction::HostStats) provider is set, as
//! `orch kubelet --node-stats host` does).

use crate::eviction::{
    default_eviction_hard, thresholds_met, FixedStats, NodeStatsProvider, Pressure,
    PressureTracker, Signal, Threshold, PRESSURE_TRANSITION_PERIOD,
};
use crate::runtime::{ImageInfo, RuntimeInfo};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeSpec, NodeStatus, NodeSystemInfo, Pod, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use orch_types::quantity::Quantity;
use orch_types::resources::{pod_requests, ResourceList};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// `kubeletVersion` reported in `nodeInfo`.
pub const KUBELET_VERSION: &str = "v1.33.0";

/// Errors in node settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeConfigError {
    /// A quantity did not parse.
    #[error("invalid quantity {value:?} for {what}: {message}")]
    Quantity {
        /// Which setting.
        what: String,
        /// The text.
        value: String,
        /// Why.
        message: String,
    },
    /// A `key=value` list did not parse.
    #[error("invalid {what} {value:?}: want key=value[,key=value...]")]
    Pairs {
        /// Which setting.
        what: String,
        /// The text.
        value: String,
    },
    /// A taint did not parse.
    #[error("invalid taint {0:?}: want key[=value]:NoSchedule|PreferNoSchedule|NoExecute")]
    Taint(String),
    /// `--eviction-hard` did not parse.
    #[error("invalid --eviction-hard: {0}")]
    Eviction(#[from] crate::eviction::EvictionError),
}

/// Settings that shape the Node object.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name.
    pub name: String,
    /// InternalIP.
    pub ip: String,
    /// Kubelet port in `daemonEndpoints`.
    pub port: u16,
    /// `--cpu` override.
    pub cpu: Option<Quantity>,
    /// `--memory` override.
    pub memory: Option<Quantity>,
    /// `--pods` (default 110).
    pub pods: i64,
    /// `--kube-reserved`.
    pub kube_reserved: ResourceList,
    /// `--system-reserved`.
    pub system_reserved: ResourceList,
    /// `--eviction-hard` (default upstream's: `memory.available<100Mi`, `nodefs.available<10%`,
    /// `nodefs.inodesFree<5%`, `imagefs.available<15%`, `imagefs.inodesFree<5%`).
    pub eviction_hard: Vec<Threshold>,
    /// `--eviction-pressure-transition-period` (5 minutes).
    pub pressure_transition_period: Duration,
    /// Where the pressure signals come from (default: [`FixedStats`], no pressure).
    pub stats: Arc<dyn NodeStatsProvider>,
    /// When each pressure was last observed (shared by clones of this config).
    pub pressure: Arc<Mutex<PressureTracker>>,
    /// Extra labels (`--node-labels`).
    pub labels: BTreeMap<String, String>,
    /// `--register-with-taints`.
    pub taints: Vec<Taint>,
}

impl NodeConfig {
    /// The pressure conditions to report at `now`: thresholds met by a fresh observation,
    /// kept for the transition period (an unreadable observation counts as no pressure).
    pub fn observe_pressure(&self, now: Timestamp) -> BTreeSet<Pressure> {
        let met = match self.stats.stats() {
            Ok(s) => thresholds_met(&self.eviction_hard, &s),
            Err(e) => {
                tracing::debug!(error = %e, "node stats unavailable");
                BTreeSet::new()
            }
        };
        self.pressure
            .lock()
            .observe(now, &met, self.pressure_transition_period)
    }

    /// Defaults for a node called `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            ip: "127.0.0.1".into(),
            port: 0,
            cpu: None,
            memory: None,
            pods: 110,
            kube_reserved: ResourceList::new(),
            system_reserved: ResourceList::new(),
            eviction_hard: default_eviction_hard(),
            pressure_transition_period: PRESSURE_TRANSITION_PERIOD,
            stats: Arc::new(FixedStats::default()),
            pressure: Arc::default(),
            labels: BTreeMap::new(),
            taints: vec![],
        }
    }
}

/// Parses `a=1,b=2` (node labels, reserved resources).
pub fn parse_pairs(what: &str, s: &str) -> Result<BTreeMap<String, String>, NodeConfigError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| NodeConfigError::Pairs {
            what: what.into(),
            value: s.into(),
        })?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// Parses a resource list such as `cpu=100m,memory=200Mi`.
pub fn parse_resources(what: &str, s: &str) -> Result<ResourceList, NodeConfigError> {
    let mut r = ResourceList::new();
    for (k, v) in parse_pairs(what, s)? {
        r.insert(k, parse_quantity(what, &v)?);
    }
    Ok(r)
}

/// Parses one quantity with a named error.
pub fn parse_quantity(what: &str, v: &str) -> Result<Quantity, NodeConfigError> {
    v.parse().map_err(
        |e: orch_types::quantity::QuantityError| NodeConfigError::Quantity {
            what: what.into(),
            value: v.into(),
            message: e.to_string(),
        },
    )
}

/// Parses `key=value:Effect` or `key:Effect` (the `--register-with-taints` syntax).
pub fn parse_taint(s: &str) -> Result<Taint, NodeConfigError> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| NodeConfigError::Taint(s.into()))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(NodeConfigError::Taint(s.into()));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(NodeConfigError::Taint(s.into()));
    }
    Ok(Taint {
        key: key.into(),
        value,
        effect: effect.into(),
        time_added: None,
    })
}

fn host_memory_bytes() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map_or(4 << 30, |kb| kb * 1024)
}

/// Capacity: overrides, else the host's CPUs and memory; pods from the config.
pub fn capacity(cfg: &NodeConfig) -> ResourceList {
    use orch_types::quantity::Format;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
    let mut r = ResourceList::new();
    r.insert(
        "cpu",
        cfg.cpu
            .unwrap_or_else(|| Quantity::from_value(cpus, Format::DecimalSI)),
    );
    r.insert(
        "memory",
        cfg.memory
            .unwrap_or_else(|| Quantity::from_value(host_memory_bytes(), Format::BinarySI)),
    );
    r.insert("pods", Quantity::from_value(cfg.pods, Format::DecimalSI));
    r
}

/// Allocatable = capacity − kube-reserved − system-reserved − hard eviction threshold of
/// `memory.available` (a percentage of memory capacity), never below zero.
pub fn allocatable(cfg: &NodeConfig, capacity: &ResourceList) -> ResourceList {
    let mut a = capacity.clone();
    a.sub(&cfg.kube_reserved);
    a.sub(&cfg.system_reserved);
    let memory = capacity.get("memory").map_or(0, |q| q.value());
    if let Some(t) = cfg
        .eviction_hard
        .iter()
        .find(|t| t.signal == Signal::MemoryAvailable)
    {
        let mut ev = ResourceList::new();
        ev.insert(
            "memory",
            Quantity::from_value(t.amount(memory), orch_types::quantity::Format::BinarySI),
        );
        a.sub(&ev);
    }
    let zero = Quantity::default();
    ResourceList(
        a.0.into_iter()
            .map(|(k, v)| (k, if v < zero { zero } else { v }))
            .collect(),
    )
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into())
}

/// The kubelet's node conditions: the pressure conditions (True for each pressure in
/// `pressure`), then Ready. `lastTransitionTime` changes only when a status changes
/// (upstream `nodestatus` setters).
pub fn conditions(
    now: Timestamp,
    previous: Option<&NodeStatus>,
    pressure: &BTreeSet<Pressure>,
) -> Vec<NodeCondition> {
    let c = |t: &str, status: &str, reason: &str, msg: &str| {
        let prev = previous
            .and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == t));
        let transition = match prev {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(Time(now)),
        };
        NodeCondition {
            type_: t.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(msg.into()),
            last_heartbeat_time: Some(Time(now)),
            last_transition_time: transition,
        }
    };
    let mut out: Vec<NodeCondition> = Pressure::ALL
        .into_iter()
        .map(|p| {
            let under = pressure.contains(&p);
            let (reason, message) = p.reason_and_message(under);
            let status = if under { "True" } else { "False" };
            c(p.condition_type(), status, reason, message)
        })
        .collect();
    out.push(c(
        "Ready",
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
    ));
    out
}

/// The node status.
pub fn node_status(
    cfg: &NodeConfig,
    runtime: &RuntimeInfo,
    images: &[ImageInfo],
    now: Timestamp,
    previous: Option<&NodeStatus>,
) -> NodeStatus {
    let cap = capacity(cfg);
    let alloc = allocatable(cfg, &cap);
    let mut images: Vec<ContainerImage> = images
        .iter()
        .map(|i| ContainerImage {
            names: Some(vec![i.id.clone(), i.reference.clone()]),
            size_bytes: Some(i.size_bytes),
        })
        .collect();
    images.sort_by(|a, b| b.size_bytes.cmp(&a.size_bytes).then(a.names.cmp(&b.names)));
    images.truncate(50);
    NodeStatus {
        capacity: Some(cap.to_k8s()),
        allocatable: Some(alloc.to_k8s()),
        conditions: Some(conditions(now, previous, &cfg.observe_pressure(now))),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: cfg.ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: cfg.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(cfg.port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: arch().into(),
            operating_system: "linux".into(),
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            os_image: os_image(),
            machine_id: read_trim("/etc/machine-id"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            system_uuid: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: String::new(),
            container_runtime_version: format!("{}://{}", runtime.name, runtime.version),
            ..Default::default()
        }),
        images: Some(images),
        ..Default::default()
    }
}

/// The Node object to register.
pub fn build_node(
    cfg: &NodeConfig,
    runtime: &RuntimeInfo,
    images: &[ImageInfo],
    now: Timestamp,
) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), cfg.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch().to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), arch().to_string()),
    ]);
    labels.extend(cfg.labels.clone());
    Node {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_string(),
                "0".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!cfg.taints.is_empty()).then(|| cfg.taints.clone()),
            ..Default::default()
        }),
        status: Some(node_status(cfg, runtime, images, now, None)),
    }
}

/// Why admission refused a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmitError {
    /// `OutOfcpu`, `OutOfmemory`, `OutOfpods`, `OutOf<resource>`.
    pub reason: String,
    /// Upstream's message.
    pub message: String,
}

/// Admits `pod` if its requests fit next to `running` (the admitted, non-terminal pods) in
/// `allocatable`; the first resource that does not fit names the reason.
pub fn admit(pod: &Pod, running: &[&Pod], allocatable: &ResourceList) -> Result<(), AdmitError> {
    admit_usage(pod, running.len(), &usage(running), allocatable)
}

/// What `running` pods request, summed (what [`admit`] counts as used).
pub fn usage(running: &[&Pod]) -> ResourceList {
    let mut used = ResourceList::new();
    for p in running {
        if let Some(s) = &p.spec {
            used.add(&pod_requests(s));
        }
    }
    used
}

/// [`admit`] for a caller that keeps the node's usage itself: `running` pods using `used`.
pub fn admit_usage(
    pod: &Pod,
    running: usize,
    used: &ResourceList,
    allocatable: &ResourceList,
) -> Result<(), AdmitError> {
    let req = pod.spec.as_ref().map(pod_requests).unwrap_or_default();
    let pods_cap = allocatable.get("pods").map_or(110, Quantity::value);
    if running as i64 + 1 > pods_cap {
        return Err(AdmitError {
            reason: "OutOfpods".into(),
            message: format!(
                "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: {}, capacity: {pods_cap}",
                running
            ),
        });
    }
    for (name, q) in req.iter() {
        if q.is_zero() {
            continue;
        }
        let cap = allocatable.get_or_zero(name);
        let u = used.get_or_zero(name);
        if q.add(&u) > cap {
            let (rq, uq, cq) = if name == "cpu" {
                (q.milli_value(), u.milli_value(), cap.milli_value())
            } else {
                (q.value(), u.value(), cap.value())
            };
            return Err(AdmitError {
                reason: format!("OutOf{name}"),
                message: format!(
                    "Pod was rejected: Node didn't have enough resource: {name}, requested: {rq}, used: {uq}, capacity: {cq}"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu: &str, mem: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn allocatable_subtracts_reservations_and_eviction() {
        let mut cfg = NodeConfig::new("n1");
        cfg.cpu = Some("4".parse().unwrap());
        cfg.memory = Some("8Gi".parse().unwrap());
        cfg.kube_reserved = parse_resources("kube-reserved", "cpu=500m,memory=1Gi").unwrap();
        cfg.system_reserved = parse_resources("system-reserved", "cpu=500m").unwrap();
        let a = allocatable(&cfg, &capacity(&cfg));
        assert_eq!(a.get("cpu").unwrap().to_string(), "3");
        assert_eq!(a.get("memory").unwrap().to_string(), "7068Mi");
        assert_eq!(a.get("pods").unwrap().to_string(), "110");
    }

    #[test]
    fn admission_reasons_match_upstream() {
        let mut alloc = ResourceList::new();
        alloc.insert("cpu", "1".parse().unwrap());
        alloc.insert("memory", "1Gi".parse().unwrap());
        alloc.insert("pods", "2".parse().unwrap());
        let a = pod("600m", "100Mi");
        assert!(admit(&a, &[], &alloc).is_ok());
        let e = admit(&pod("500m", "10Mi"), &[&a], &alloc).unwrap_err();
        assert_eq!(e.reason, "OutOfcpu");
        assert_eq!(e.message, "Pod was rejected: Node didn't have enough resource: cpu, requested: 500, used: 600, capacity: 1000");
        let e = admit(&pod("100m", "1000Mi"), &[&a], &alloc).unwrap_err();
        assert_eq!(e.reason, "OutOfmemory");
        let e = admit(&pod("1m", "1Mi"), &[&a, &a], &alloc).unwrap_err();
        assert_eq!(e.reason, "OutOfpods");
    }

    #[test]
    fn taints_and_pairs_parse_with_clear_errors() {
        let t = parse_taint("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        assert_eq!(parse_taint("x:NoExecute").unwrap().value, None);
        assert!(matches!(
            parse_taint("x=y:Sometimes"),
            Err(NodeConfigError::Taint(_))
        ));
        assert_eq!(parse_pairs("node-labels", "a=1, b=2").unwrap().len(), 2);
        assert!(parse_pairs("node-labels", "a").is_err());
        assert!(parse_resources("kube-reserved", "cpu=lots").is_err());
    }

    #[test]
    fn pressure_conditions_follow_the_stats_with_transition_times() {
        use crate::eviction::{parse_eviction_hard, FixedStats, NodeStats};
        let rt = RuntimeInfo {
            name: "sim".into(),
            version: "0.1.0".into(),
        };
        let t = |s: i64| Timestamp::from_second(1_700_000_000 + s).unwrap();
        let mut cfg = NodeConfig::new("n1");
        cfg.memory = Some("4Gi".parse().unwrap());
        let status = |cfg: &NodeConfig, at: i64, prev: Option<&NodeStatus>| {
            node_status(cfg, &rt, &[], t(at), prev)
        };
        let cond = |s: &NodeStatus, ty: &str| {
            let c = s
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == ty)
                .unwrap()
                .clone();
            (
                c.status,
                c.reason.unwrap(),
                c.message.unwrap(),
                c.last_transition_time.unwrap().0,
            )
        };
        let s0 = status(&cfg, 0, None);
        for ty in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert_eq!(cond(&s0, ty).0, "False", "{ty}");
        }
        let mut low = NodeStats::healthy();
        low.memory.available = 10 << 20;
        low.nodefs.available = low.nodefs.capacity / 20;
        cfg.stats = Arc::new(FixedStats(low));
        let s1 = status(&cfg, 10, Some(&s0));
        assert_eq!(
            cond(&s1, "MemoryPressure"),
            (
                "True".into(),
                "KubeletHasInsufficientMemory".into(),
                "kubelet has insufficient memory available".into(),
                t(10)
            )
        );
        assert_eq!(
            cond(&s1, "DiskPressure"),
            (
                "True".into(),
                "KubeletHasDiskPressure".into(),
                "kubelet has disk pressure".into(),
                t(10)
            )
        );
        assert_eq!(
            cond(&s1, "PIDPressure"),
            (
                "False".into(),
                "KubeletHasSufficientPID".into(),
                "kubelet has sufficient PID available".into(),
                t(0)
            )
        );
        assert_eq!(cond(&s1, "Ready").0, "True");
        // Recovered, but reported for the 5-minute transition period after the last sighting.
        cfg.stats = Arc::new(FixedStats::default());
        let s2 = status(&cfg, 200, Some(&s1));
        assert_eq!(cond(&s2, "MemoryPressure").0, "True");
        assert_eq!(
            cond(&s2, "MemoryPressure").3,
            t(10),
            "no change, same transition"
        );
        let s3 = status(&cfg, 310, Some(&s2));
        assert_eq!(
            cond(&s3, "MemoryPressure"),
            (
                "False".into(),
                "KubeletHasSufficientMemory".into(),
                "kubelet has sufficient memory available".into(),
                t(310)
            )
        );
        // --eviction-hard replaces the defaults: no disk thresholds at all here.
        cfg.eviction_hard = parse_eviction_hard("memory.available<1Gi").unwrap();
        let a = allocatable(&cfg, &capacity(&cfg));
        assert_eq!(a.get("memory").unwrap().to_string(), "3Gi");
        cfg.eviction_hard = parse_eviction_hard("memory.available<25%").unwrap();
        let a = allocatable(&cfg, &capacity(&cfg));
        assert_eq!(a.get("memory").unwrap().to_string(), "3Gi");
    }

    #[test]
    fn node_object_snapshot() {
        let mut cfg = NodeConfig::new("n1");
        cfg.cpu = Some("2".parse().unwrap());
        cfg.memory = Some("4Gi".parse().unwrap());
        cfg.port = 10250;
        cfg.labels = parse_pairs("node-labels", "zone=a").unwrap();
        cfg.taints = vec![parse_taint("gpu:NoSchedule").unwrap()];
        let rt = RuntimeInfo {
            name: "sim".into(),
            version: "0.1.0".into(),
        };
        let n = build_node(
            &cfg,
            &rt,
            &[],
            Timestamp::from_second(1_700_000_000).unwrap(),
        );
        insta::assert_yaml_snapshot!(n, {
            ".status.nodeInfo.kernelVersion" => "[host]",
            ".status.nodeInfo.osImage" => "[host]",
            ".status.nodeInfo.machineID" => "[host]",
            ".status.nodeInfo.bootID" => "[host]",
            ".status.nodeInfo.architecture" => "[host]",
            ".metadata.labels[\"kubernetes.io/arch\"]" => "[host]",
            ".metadata.labels[\"beta.kubernetes.io/arch\"]" => "[host]",
        });
    }
}
