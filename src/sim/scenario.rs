//! The scenario file of `orch sim` and `orch.Simulation`: node groups, workloads and disruptions
//! at given virtual times, and a duration.
//!
//! ```yaml
//! duration: 30m
//! nodeGroups:
//!   - name: pool
//!     count: 300
//!     zones: [a, b, c]            # round-robin; sets topology.kubernetes.io/zone
//!     template:                   # a Node manifest (labels, taints, capacity)
//!       metadata: {labels: {tier: general}}
//!       status: {capacity: {cpu: "8", memory: 32Gi, pods: "110"}}
//! workloads:
//!   - at: 0s
//!     manifests: [ {apiVersion: apps/v1, kind: Deployment, ...} ]   # or `yaml: |` text
//! disruptions:
//!   - {at: 10m, action: zoneDown, zone: a}
//!   - {at: 20m, action: scale, target: deployment/default/web, replicas: 50}
//!   - {at: 25m, action: load, target: deployment/default/web, cpu: "12"}  # total CPU of its pods
//!   - {at: 28m, action: load, target: deployment/default/web, cpu: "0"}   # load ends
//! ```
//!
//! A `load` step stands for traffic: the workload's Running pods use `cpu` in total, as the
//! metrics the engine feeds to the HorizontalPodAutoscaler controller every 15 s show it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Errors reading a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The text is not valid YAML for a scenario.
    #[error("scenario is not valid: {0}")]
    Parse(#[from] serde_yaml_ng::Error),
    /// A duration string like `10m` could not be read.
    #[error("invalid duration {0:?}: expected a duration such as 500ms, 40s, 2m, 1h30m or a number of seconds")]
    Duration(String),
    /// A field is semantically wrong.
    #[error("{field}: {message}")]
    Field {
        /// Path of the field, e.g. `nodeGroups[0].count`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// A whole scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// How long to simulate (virtual time). `None`: until the cluster is stable.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// Seed of every random choice (overridden by `--seed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Groups of identical nodes.
    #[serde(default)]
    pub node_groups: Vec<NodeGroup>,
    /// Manifests applied at given times.
    #[serde(default)]
    pub workloads: Vec<Workload>,
    /// Disruptions at given times.
    #[serde(default)]
    pub disruptions: Vec<Disruption>,
    /// How often utilization is sampled (default 10s).
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub sample_every: Option<Duration>,
}

/// `count` nodes made from one template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGroup {
    /// Name prefix: nodes are `<name>-<i>` (`i` from 0).
    pub name: String,
    /// Number of nodes.
    #[serde(default = "one")]
    pub count: u32,
    /// Zones, assigned round-robin (`topology.kubernetes.io/zone` label).
    #[serde(default)]
    pub zones: Vec<String>,
    /// A Node manifest: labels, taints, `status.capacity` (allocatable defaults to capacity).
    #[serde(default)]
    pub template: Value,
}

fn one() -> u32 {
    1
}

/// Manifests applied at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// When (virtual time from the start).
    #[serde(default, with = "duration")]
    pub at: Duration,
    /// Objects as manifests.
    #[serde(default)]
    pub manifests: Vec<Value>,
    /// Objects as multi-document YAML text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yaml: Option<String>,
}

/// A disruption at a time. (`deny_unknown_fields` does not combine with `flatten`; the
/// action's own fields are still checked by its tag.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disruption {
    /// When (virtual time from the start).
    #[serde(with = "duration")]
    pub at: Duration,
    /// What happens.
    #[serde(flatten)]
    pub action: Action,
}

/// The disruptions a scenario can ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "action",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Action {
    /// The node's kubelet stops (no heartbeats; its pods keep "running" unseen).
    NodeDown {
        /// Node name.
        node: String,
    },
    /// The node's kubelet comes back.
    NodeUp {
        /// Node name.
        node: String,
    },
    /// Every node of the zone goes down.
    ZoneDown {
        /// Zone name.
        zone: String,
    },
    /// Every node of the zone comes back.
    ZoneUp {
        /// Zone name.
        zone: String,
    },
    /// `kubectl cordon`.
    Cordon {
        /// Node name.
        node: String,
    },
    /// `kubectl uncordon`.
    Uncordon {
        /// Node name.
        node: String,
    },
    /// `kubectl drain`: cordon, then evict every pod not owned by a DaemonSet.
    Drain {
        /// Node name.
        node: String,
    },
    /// `kubectl scale`: `target` is `kind/namespace/name` or `kind/name` (namespace `default`).
    Scale {
        /// `deployment/default/web`.
        target: String,
        /// New replica count.
        replicas: i32,
    },
    /// `kubectl set image`: every container (or the named one) of the workload's pod template.
    SetImage {
        /// `deployment/default/web`.
        target: String,
        /// New image.
        image: String,
        /// Only this container.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<String>,
    },
    /// Load on a workload (`target` as for `scale`): from now on its Running pods use `cpu`
    /// in total (a quantity, `"2"`, `"1500m"`), spread evenly over them at every metrics
    /// scrape, each pod's share split over its containers in proportion to their CPU
    /// requests (evenly when none requests any). It overrides the pods'
    /// `sim.orch.dev/cpu-usage` figure; `cpu: "0"` ends it.
    Load {
        /// `deployment/default/web`.
        target: String,
        /// Total CPU of the workload's pods.
        cpu: String,
    },
}

impl Scenario {
    /// Parses and checks a scenario.
    pub fn from_yaml(text: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = serde_yaml_ng::from_str(text)?;
        s.check()?;
        Ok(s)
    }

    /// A scenario with one group of `count` nodes of the given capacity, and nothing else.
    pub fn with_nodes(count: u32, cpu: &str, memory: &str, pods: &str) -> Self {
        Scenario {
            node_groups: vec![NodeGroup {
                name: "node".into(),
                count,
                zones: Vec::new(),
                template: serde_json::json!({
                    "status": {"capacity": {"cpu": cpu, "memory": memory, "pods": pods}}
                }),
            }],
            ..Default::default()
        }
    }

    /// Checks what serde cannot: names, counts, template shape.
    pub fn check(&self) -> Result<(), ScenarioError> {
        let field = |f: String, m: &str| ScenarioError::Field {
            field: f,
            message: m.into(),
        };
        let mut names = std::collections::BTreeSet::new();
        for (i, g) in self.node_groups.iter().enumerate() {
            if g.name.is_empty()
                || !g
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(field(
                    format!("nodeGroups[{i}].name"),
                    "must be a non-empty DNS label (lowercase letters, digits, '-')",
                ));
            }
            if !names.insert(g.name.as_str()) {
                return Err(field(
                    format!("nodeGroups[{i}].name"),
                    "duplicate group name",
                ));
            }
            if !(g.template.is_null() || g.template.is_object()) {
                return Err(field(
                    format!("nodeGroups[{i}].template"),
                    "must be a Node manifest (a mapping)",
                ));
            }
        }
        for (i, w) in self.workloads.iter().enumerate() {
            if w.manifests.iter().any(|m| !m.is_object()) {
                return Err(field(
                    format!("workloads[{i}].manifests"),
                    "every manifest must be a mapping",
                ));
            }
        }
        for (i, d) in self.disruptions.iter().enumerate() {
            if let Action::Scale { target, .. }
            | Action::SetImage { target, .. }
            | Action::Load { target, .. } = &d.action
            {
                parse_target(target).map_err(|m| field(format!("disruptions[{i}].target"), &m))?;
            }
            if let Action::Scale { replicas, .. } = &d.action {
                if *replicas < 0 {
                    return Err(field(format!("disruptions[{i}].replicas"), "must be >= 0"));
                }
            }
            if let Action::Load { cpu, .. } = &d.action {
                load_nano_cores(cpu).map_err(|m| field(format!("disruptions[{i}].cpu"), &m))?;
            }
        }
        Ok(())
    }
}

/// The CPU of a `load` step in nano-cores: a non-negative quantity.
///
/// ```
/// use orch::sim::scenario::load_nano_cores;
/// assert_eq!(load_nano_cores("1500m"), Ok(1_500_000_000));
/// assert!(load_nano_cores("-1").is_err());
/// assert!(load_nano_cores("lots").is_err());
/// ```
pub fn load_nano_cores(cpu: &str) -> Result<u64, String> {
    let q = cpu
        .trim()
        .parse::<orch_types::quantity::Quantity>()
        .map_err(|e| format!("{cpu:?} is not a quantity: {e}"))?;
    u64::try_from(q.nanos()).map_err(|_| format!("{cpu:?} must not be negative"))
}

/// Splits `kind/namespace/name` or `kind/name` into (kind, namespace, name).
pub fn parse_target(t: &str) -> Result<(String, String, String), String> {
    let parts: Vec<&str> = t.split('/').collect();
    match parts.as_slice() {
        [k, n] if !k.is_empty() && !n.is_empty() => {
            Ok((k.to_string(), "default".into(), n.to_string()))
        }
        [k, ns, n] if !k.is_empty() && !ns.is_empty() && !n.is_empty() => {
            Ok((k.to_string(), ns.to_string(), n.to_string()))
        }
        _ => Err(format!("{t:?} is not kind/name or kind/namespace/name")),
    }
}

/// Reads a Go duration (`time.ParseDuration`: `500ms`, `30s`, `10m`, `1.5h`, `1h30m`, units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, each number may have a fraction, an optional leading
/// `+`) or a plain number of seconds (an orch extension, for scenario files and the flags that
/// took seconds; Go accepts only `0` without a unit). Negative durations are refused.
/// The one parser of every duration flag of every `orch` command (`crate::cli::parse_duration`).
pub fn parse_duration(s: &str) -> Result<Duration, ScenarioError> {
    const UNITS: &[(&str, f64)] = &[
        ("ns", 1e-9),
        ("us", 1e-6),
        ("\u{b5}s", 1e-6),  // µ (micro sign), as Go accepts
        ("\u{3bc}s", 1e-6), // μ (Greek mu)
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    let err = || ScenarioError::Duration(s.to_string());
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return if secs.is_finite() && secs >= 0.0 {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(err())
        };
    }
    let mut rest = t.strip_prefix('+').unwrap_or(t);
    if rest.is_empty() {
        return Err(err());
    }
    let mut secs = 0.0_f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        // Go: at least one digit on either side of the point ("1.", ".5" but not ".").
        if !num.bytes().any(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let v: f64 = num.parse().map_err(|_| err())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(err)?;
        secs += v * scale;
        rest = after;
    }
    if !secs.is_finite() {
        return Err(err());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| err())
}

/// Prints a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}

mod duration {
    use super::*;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = Value::deserialize(d)?;
        let text = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "invalid duration {other}"
                )))
            }
        };
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

mod opt_duration {
    use super::*;
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        // Go's time.ParseDuration syntax.
        assert_eq!(parse_duration("40s").unwrap(), Duration::from_secs(40));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("2h45m30.5s").unwrap(),
            Duration::from_millis(9_930_500)
        );
        assert_eq!(
            parse_duration("1m.5s").unwrap(),
            Duration::from_millis(60_500)
        );
        assert_eq!(parse_duration("+3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("300us").unwrap(), Duration::from_micros(300));
        assert_eq!(
            parse_duration("300\u{b5}s").unwrap(),
            Duration::from_micros(300)
        );
        assert_eq!(
            parse_duration("1500ns").unwrap(),
            Duration::from_nanos(1500)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in [
            "", "10x", "m", "-3", "5m3", "-1s", ".s", "1sm", "3d", "+", "1e400h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(60)), "60s");
    }

    #[test]
    fn full_scenario_parses() {
        let s = Scenario::from_yaml(
            r#"
duration: 30m
nodeGroups:
  - name: pool
    count: 3
    zones: [a, b]
    template: {status: {capacity: {cpu: "4", memory: 8Gi}}}
workloads:
  - at: 0
    yaml: |
      apiVersion: v1
      kind: Pod
      metadata: {name: p}
disruptions:
  - {at: 1m, action: zoneDown, zone: a}
  - {at: 2m, action: scale, target: deployment/web, replicas: 3}
  - {at: 3m, action: setImage, target: deployment/ns/web, image: "nginx:2"}
  - {at: 4m, action: load, target: deployment/web, cpu: 1500m}
"#,
        )
        .unwrap();
        assert_eq!(s.duration, Some(Duration::from_secs(1800)));
        assert_eq!(s.node_groups[0].count, 3);
        assert_eq!(
            s.disruptions[0].action,
            Action::ZoneDown { zone: "a".into() }
        );
        assert_eq!(
            s.disruptions[3].action,
            Action::Load {
                target: "deployment/web".into(),
                cpu: "1500m".into()
            }
        );
        assert_eq!(
            s.disruptions[2].action,
            Action::SetImage {
                target: "deployment/ns/web".into(),
                image: "nginx:2".into(),
                container: None
            }
        );
    }

    #[test]
    fn bad_scenarios_name_the_field() {
        let e = Scenario::from_yaml("nodeGroups: [{name: Bad_Name}]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "nodeGroups[0].name: must be a non-empty DNS label (lowercase letters, digits, '-')"
        );
        let e =
            Scenario::from_yaml("disruptions: [{at: 1s, action: scale, target: web, replicas: 1}]")
                .unwrap_err();
        assert!(e.to_string().starts_with("disruptions[0].target:"), "{e}");
        let e = Scenario::from_yaml(
            "disruptions: [{at: 1s, action: load, target: deployment/web, cpu: lots}]",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("disruptions[0].cpu:"), "{e}");
        let e =
            Scenario::from_yaml("disruptions: [{at: 1s, action: load, target: web, cpu: \"1\"}]")
                .unwrap_err();
        assert!(e.to_string().starts_with("disruptions[0].target:"), "{e}");
        let e = Scenario::from_yaml("disruptions: [{at: 1s, action: explode}]").unwrap_err();
        assert!(matches!(e, ScenarioError::Parse(_)), "{e}");
        let e = Scenario::from_yaml("durration: 5m").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = Scenario::from_yaml("duration: soon").unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
    }
}
