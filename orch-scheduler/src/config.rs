//! `KubeSchedulerConfiguration` (`kubescheduler.config.k8s.io/v1`): profiles by schedulerName,
//! plugins enabled/disabled per extension point (and `multiPoint`), weights, plugin args and
//! `percentageOfNodesToScore`. Unknown fields are rejected with the field named.

use serde::{Deserialize, Serialize};

/// Errors in a scheduler configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// YAML/JSON could not be parsed.
    #[error("invalid KubeSchedulerConfiguration: {0}")]
    Parse(String),
    /// Wrong apiVersion/kind.
    #[error("expected apiVersion kubescheduler.config.k8s.io/v1, kind KubeSchedulerConfiguration; got {api_version}/{kind}")]
    WrongKind {
        /// apiVersion.
        api_version: String,
        /// kind.
        kind: String,
    },
    /// A plugin name is not registered.
    #[error("profiles[{profile}]: unknown plugin {name:?}")]
    UnknownPlugin {
        /// Profile scheduler name.
        profile: String,
        /// Plugin name.
        name: String,
    },
    /// Plugin args are invalid.
    #[error("profiles[{profile}].pluginConfig[{plugin}].args: {message}")]
    Args {
        /// Profile.
        profile: String,
        /// Plugin.
        plugin: String,
        /// Why.
        message: String,
    },
    /// Other validation failures.
    #[error("{0}")]
    Invalid(String),
}

/// A plugin reference with optional weight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// Name (`*` in disabled = all).
    pub name: String,
    /// Score weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

/// Enabled/disabled plugins of one extension point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSet {
    /// Enabled (appended after defaults).
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    /// Disabled defaults.
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

impl PluginSet {
    /// True when `name` (or `*`) is disabled.
    pub fn disables(&self, name: &str) -> bool {
        self.disabled
            .iter()
            .any(|p| p.name == name || p.name == "*")
    }
}

/// `plugins` of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugins {
    /// Every extension point the plugin implements.
    #[serde(default)]
    pub multi_point: PluginSet,
    /// PreEnqueue.
    #[serde(default)]
    pub pre_enqueue: PluginSet,
    /// QueueSort.
    #[serde(default)]
    pub queue_sort: PluginSet,
    /// PreFilter.
    #[serde(default)]
    pub pre_filter: PluginSet,
    /// Filter.
    #[serde(default)]
    pub filter: PluginSet,
    /// PostFilter.
    #[serde(default)]
    pub post_filter: PluginSet,
    /// PreScore.
    #[serde(default)]
    pub pre_score: PluginSet,
    /// Score.
    #[serde(default)]
    pub score: PluginSet,
    /// Reserve.
    #[serde(default)]
    pub reserve: PluginSet,
    /// Permit.
    #[serde(default)]
    pub permit: PluginSet,
    /// PreBind.
    #[serde(default)]
    pub pre_bind: PluginSet,
    /// Bind.
    #[serde(default)]
    pub bind: PluginSet,
    /// PostBind.
    #[serde(default)]
    pub post_bind: PluginSet,
}

/// `pluginConfig` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Plugin name.
    pub name: String,
    /// Args (plugin-specific).
    #[serde(default)]
    pub args: serde_json::Value,
}

/// A profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileConfig {
    /// `schedulerName` the profile serves.
    #[serde(default = "default_scheduler_name")]
    pub scheduler_name: String,
    /// Overrides the global percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Plugins.
    #[serde(default)]
    pub plugins: Plugins,
    /// Plugin args.
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

fn default_scheduler_name() -> String {
    "default-scheduler".into()
}

impl Default for ProfileConfig {
    fn default() -> Self {
        Self {
            scheduler_name: default_scheduler_name(),
            percentage_of_nodes_to_score: None,
            plugins: Plugins::default(),
            plugin_config: Vec::new(),
        }
    }
}

impl ProfileConfig {
    /// Args for a plugin.
    pub fn args(&self, name: &str) -> Option<&serde_json::Value> {
        self.plugin_config
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.args)
    }
}

/// The configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeSchedulerConfiguration {
    /// `kubescheduler.config.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `KubeSchedulerConfiguration`.
    #[serde(default)]
    pub kind: String,
    /// Global percentage of nodes to score (unset/0 = adaptive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Profiles (one default profile when empty).
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
    /// Fields kube-scheduler has that orch accepts and ignores (leader election, clients, …).
    #[serde(flatten)]
    pub ignored: serde_json::Map<String, serde_json::Value>,
}

impl Default for KubeSchedulerConfiguration {
    fn default() -> Self {
        Self {
            api_version: "kubescheduler.config.k8s.io/v1".into(),
            kind: "KubeSchedulerConfiguration".into(),
            percentage_of_nodes_to_score: None,
            profiles: vec![ProfileConfig::default()],
            ignored: serde_json::Map::new(),
        }
    }
}

const ACCEPTED_TOP_LEVEL: &[&str] = &[
    "parallelism",
    "leaderElection",
    "clientConnection",
    "healthzBindAddress",
    "metricsBindAddress",
    "enableProfiling",
    "enableContentionProfiling",
    "podInitialBackoffSeconds",
    "podMaxBackoffSeconds",
    "extenders",
    "delayCacheUntilActive",
];

impl KubeSchedulerConfiguration {
    /// Parses YAML (or JSON) and validates it.
    ///
    /// ```
    /// use orch_scheduler::config::KubeSchedulerConfiguration;
    /// let c = KubeSchedulerConfiguration::from_yaml(r#"
    /// apiVersion: kubescheduler.config.k8s.io/v1
    /// kind: KubeSchedulerConfiguration
    /// profiles:
    /// - schedulerName: bin-packer
    ///   pluginConfig:
    ///   - name: NodeResourcesFit
    ///     args: {scoringStrategy: {type: MostAllocated}}
    /// "#).unwrap();
    /// assert_eq!(c.profiles[0].scheduler_name, "bin-packer");
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let mut c: Self =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        if c.api_version != "kubescheduler.config.k8s.io/v1"
            || c.kind != "KubeSchedulerConfiguration"
        {
            return Err(ConfigError::WrongKind {
                api_version: c.api_version,
                kind: c.kind,
            });
        }
        if let Some(k) = c
            .ignored
            .keys()
            .find(|k| !ACCEPTED_TOP_LEVEL.contains(&k.as_str()))
        {
            return Err(ConfigError::Invalid(format!("unknown field {k:?}")));
        }
        if let Some(p) = c.percentage_of_nodes_to_score {
            if !(0..=100).contains(&p) {
                return Err(ConfigError::Invalid(format!(
                    "percentageOfNodesToScore: Invalid value: {p}: not in valid range [0-100]"
                )));
            }
        }
        if c.profiles.is_empty() {
            c.profiles.push(ProfileConfig::default());
        }
        let mut names = std::collections::BTreeSet::new();
        for p in &c.profiles {
            if !names.insert(p.scheduler_name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "profiles: duplicate schedulerName {:?}",
                    p.scheduler_name
                )));
            }
        }
        Ok(c)
    }
}

/// Upstream `numFeasibleNodesToFind`: all nodes below 100; otherwise the percentage (adaptive
/// `50 - nodes/125`, at least 5 %, when unset or 0), never fewer than 100 nodes.
///
/// ```
/// use orch_scheduler::config::num_feasible_nodes_to_find;
/// assert_eq!(num_feasible_nodes_to_find(None, 50), 50);
/// assert_eq!(num_feasible_nodes_to_find(None, 5000), 500);   // 10 %
/// assert_eq!(num_feasible_nodes_to_find(None, 15000), 750);  // 5 %
/// assert_eq!(num_feasible_nodes_to_find(Some(100), 5000), 5000);
/// ```
pub fn num_feasible_nodes_to_find(percentage: Option<i32>, num_all_nodes: usize) -> usize {
    const MIN_NODES: usize = 100;
    const MIN_PERCENT: i64 = 5;
    if num_all_nodes < MIN_NODES {
        return num_all_nodes;
    }
    let mut pct = i64::from(percentage.unwrap_or(0));
    if pct == 0 {
        pct = (50 - num_all_nodes as i64 / 125).max(MIN_PERCENT);
    }
    let n = (num_all_nodes as i64 * pct / 100) as usize;
    n.max(MIN_NODES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_configs() {
        assert!(matches!(
            KubeSchedulerConfiguration::from_yaml("apiVersion: v1\nkind: Pod\n"),
            Err(ConfigError::WrongKind { .. })
        ));
        let e = KubeSchedulerConfiguration::from_yaml(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: a\n  plugin: {}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("plugin"), "{e}");
        let e = KubeSchedulerConfiguration::from_yaml(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\npercentageOfNodesToScore: 150\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("percentageOfNodesToScore"));
    }
}
