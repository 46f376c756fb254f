//! [`Profile`]: the plugins of one schedulerName per extension point, with score weights,
//! built from the default plugin set and a [`ProfileConfig`] through a [`Registry`].

use crate::config::{ConfigError, PluginSet, ProfileConfig};
use crate::framework::*;
use crate::plugins;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One plugin instance, seen through every extension point it implements.
#[derive(Clone, Default)]
pub struct PluginHandle {
    /// Name.
    pub name: &'static str,
    /// Default score weight.
    pub default_weight: i64,
    /// QueueSort.
    pub queue_sort: Option<Arc<dyn QueueSortPlugin>>,
    /// PreEnqueue.
    pub pre_enqueue: Option<Arc<dyn PreEnqueuePlugin>>,
    /// PreFilter.
    pub pre_filter: Option<Arc<dyn PreFilterPlugin>>,
    /// Filter.
    pub filter: Option<Arc<dyn FilterPlugin>>,
    /// PostFilter.
    pub post_filter: Option<Arc<dyn PostFilterPlugin>>,
    /// PreScore.
    pub pre_score: Option<Arc<dyn PreScorePlugin>>,
    /// Score.
    pub score: Option<Arc<dyn ScorePlugin>>,
    /// Reserve.
    pub reserve: Option<Arc<dyn ReservePlugin>>,
    /// Permit.
    pub permit: Option<Arc<dyn PermitPlugin>>,
    /// PreBind.
    pub pre_bind: Option<Arc<dyn PreBindPlugin>>,
    /// Bind.
    pub bind: Option<Arc<dyn BindPlugin>>,
}

impl std::fmt::Debug for PluginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHandle")
            .field("name", &self.name)
            .finish()
    }
}

/// Builds a plugin from its args (`null` when none are configured).
pub type Factory = fn(&serde_json::Value) -> Result<PluginHandle, String>;

/// Plugin factories by name; [`Registry::default`] holds the in-tree plugins. Register your own
/// to use them from a configuration file.
#[derive(Clone)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut r = Registry {
            factories: BTreeMap::new(),
        };
        for (name, f) in plugins::in_tree() {
            r.register(name, f);
        }
        r
    }
}

impl Registry {
    /// Adds (or replaces) a factory.
    pub fn register(&mut self, name: &str, f: Factory) {
        self.factories.insert(name.to_string(), f);
    }

    fn build(&self, profile: &ProfileConfig, name: &str) -> Result<PluginHandle, ConfigError> {
        let f = self
            .factories
            .get(name)
            .ok_or_else(|| ConfigError::UnknownPlugin {
                profile: profile.scheduler_name.clone(),
                name: name.to_string(),
            })?;
        let args = profile
            .args(name)
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        f(&args).map_err(|message| ConfigError::Args {
            profile: profile.scheduler_name.clone(),
            plugin: name.to_string(),
            message,
        })
    }
}

/// The default plugins of kube-scheduler 1.33 in `multiPoint` order, with default weights.
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    ("SchedulingGates", 0),
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeBinding", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
];

/// The plugins of one profile, per extension point, in execution order.
#[derive(Clone)]
pub struct Profile {
    /// `schedulerName`.
    pub scheduler_name: String,
    /// percentageOfNodesToScore for this profile.
    pub percentage_of_nodes_to_score: Option<i32>,
    /// QueueSort (exactly one).
    pub queue_sort: Arc<dyn QueueSortPlugin>,
    /// PreEnqueue.
    pub pre_enqueue: Vec<Arc<dyn PreEnqueuePlugin>>,
    /// PreFilter with names.
    pub pre_filter: Vec<(&'static str, Arc<dyn PreFilterPlugin>)>,
    /// Filter with names.
    pub filter: Vec<(&'static str, Arc<dyn FilterPlugin>)>,
    /// PostFilter.
    pub post_filter: Vec<(&'static str, Arc<dyn PostFilterPlugin>)>,
    /// PreScore.
    pub pre_score: Vec<(&'static str, Arc<dyn PreScorePlugin>)>,
    /// Score with weights.
    pub score: Vec<(&'static str, Arc<dyn ScorePlugin>, i64)>,
    /// Reserve.
    pub reserve: Vec<Arc<dyn ReservePlugin>>,
    /// Permit.
    pub permit: Vec<Arc<dyn PermitPlugin>>,
    /// PreBind.
    pub pre_bind: Vec<Arc<dyn PreBindPlugin>>,
    /// Bind.
    pub bind: Vec<Arc<dyn BindPlugin>>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("scheduler_name", &self.scheduler_name)
            .field(
                "filter",
                &self.filter.iter().map(|p| p.0).collect::<Vec<_>>(),
            )
            .field(
                "score",
                &self.score.iter().map(|p| (p.0, p.2)).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Profile {
    fn default() -> Self {
        // The default configuration always builds.
        Self::from_config(&ProfileConfig::default(), None, &Registry::default())
            .unwrap_or_else(|e| unreachable!("default profile: {e}"))
    }
}

impl Profile {
    /// Builds a profile: defaults, minus disabled, plus enabled, with args from pluginConfig.
    pub fn from_config(
        cfg: &ProfileConfig,
        global_percentage: Option<i32>,
        registry: &Registry,
    ) -> Result<Self, ConfigError> {
        let mut handles: BTreeMap<String, PluginHandle> = BTreeMap::new();
        let mut get = |name: &str| -> Result<PluginHandle, ConfigError> {
            if let Some(h) = handles.get(name) {
                return Ok(h.clone());
            }
            let h = registry.build(cfg, name)?;
            handles.insert(name.to_string(), h.clone());
            Ok(h)
        };
        let p = &cfg.plugins;
        // Resolve the plugin list of one extension point: (handle, weight).
        let mut point = |set: &PluginSet,
                         has: fn(&PluginHandle) -> bool|
         -> Result<Vec<(PluginHandle, i64)>, ConfigError> {
            let mut out: Vec<(PluginHandle, i64)> = Vec::new();
            for (name, w) in DEFAULT_PLUGINS {
                if p.multi_point.disables(name) || set.disables(name) {
                    continue;
                }
                let h = get(name)?;
                if has(&h) {
                    out.push((h, *w));
                }
            }
            for r in p.multi_point.enabled.iter().chain(set.enabled.iter()) {
                let h = get(&r.name)?;
                if !has(&h) {
                    continue;
                }
                let w = r.weight.unwrap_or(if h.default_weight > 0 {
                    h.default_weight
                } else {
                    1
                });
                if let Some(e) = out.iter_mut().find(|(x, _)| x.name == h.name) {
                    if r.weight.is_some() {
                        e.1 = w;
                    }
                } else {
                    out.push((h, w));
                }
            }
            Ok(out)
        };
        let queue_sort = point(&p.queue_sort, |h| h.queue_sort.is_some())?;
        let pre_enqueue = point(&p.pre_enqueue, |h| h.pre_enqueue.is_some())?;
        let pre_filter = point(&p.pre_filter, |h| h.pre_filter.is_some())?;
        let filter = point(&p.filter, |h| h.filter.is_some())?;
        let post_filter = point(&p.post_filter, |h| h.post_filter.is_some())?;
        let pre_score = point(&p.pre_score, |h| h.pre_score.is_some())?;
        let score = point(&p.score, |h| h.score.is_some())?;
        let reserve = point(&p.reserve, |h| h.reserve.is_some())?;
        let permit = point(&p.permit, |h| h.permit.is_some())?;
        let pre_bind = point(&p.pre_bind, |h| h.pre_bind.is_some())?;
        let bind = point(&p.bind, |h| h.bind.is_some())?;
        if queue_sort.len() != 1 {
            return Err(ConfigError::Invalid(format!(
                "profiles[{}]: exactly one queueSort plugin must be enabled, got {}",
                cfg.scheduler_name,
                queue_sort.len()
            )));
        }
        if bind.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "profiles[{}]: at least one bind plugin is needed",
                cfg.scheduler_name
            )));
        }
        if let Some((h, w)) = score.iter().find(|(_, w)| !(1..=100).contains(w)) {
            return Err(ConfigError::Invalid(format!(
                "profiles[{}]: score plugin {} weight {w} not in [1, 100]",
                cfg.scheduler_name, h.name
            )));
        }
        macro_rules! list {
            ($v:ident, $f:ident) => {
                $v.into_iter()
                    .filter_map(|(h, _)| h.$f.map(|x| (h.name, x)))
                    .collect()
            };
        }
        macro_rules! plain {
            ($v:ident, $f:ident) => {
                $v.into_iter().filter_map(|(h, _)| h.$f).collect()
            };
        }
        let qs = queue_sort
            .into_iter()
            .find_map(|(h, _)| h.queue_sort)
            .ok_or_else(|| ConfigError::Invalid("no queueSort plugin".into()))?;
        Ok(Self {
            scheduler_name: cfg.scheduler_name.clone(),
            percentage_of_nodes_to_score: cfg.percentage_of_nodes_to_score.or(global_percentage),
            queue_sort: qs,
            pre_enqueue: plain!(pre_enqueue, pre_enqueue),
            pre_filter: list!(pre_filter, pre_filter),
            filter: list!(filter, filter),
            post_filter: list!(post_filter, post_filter),
            pre_score: list!(pre_score, pre_score),
            score: score
                .into_iter()
                .filter_map(|(h, w)| h.score.map(|s| (h.name, s, w)))
                .collect(),
            reserve: plain!(reserve, reserve),
            permit: plain!(permit, permit),
            pre_bind: plain!(pre_bind, pre_bind),
            bind: plain!(bind, bind),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KubeSchedulerConfiguration;

    #[test]
    fn default_profile_matches_upstream() {
        let p = Profile::default();
        let filters: Vec<&str> = p.filter.iter().map(|f| f.0).collect();
        assert_eq!(
            filters,
            vec![
                "NodeUnschedulable",
                "NodeName",
                "TaintToleration",
                "NodeAffinity",
                "NodePorts",
                "NodeResourcesFit",
                "VolumeBinding",
                "PodTopologySpread",
                "InterPodAffinity"
            ]
        );
        let scores: Vec<(&str, i64)> = p.score.iter().map(|s| (s.0, s.2)).collect();
        assert_eq!(
            scores,
            vec![
                ("TaintToleration", 3),
                ("NodeAffinity", 2),
                ("NodeResourcesFit", 1),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1),
                ("ImageLocality", 1)
            ]
        );
    }

    #[test]
    fn enable_disable_and_weights() {
        let c = KubeSchedulerConfiguration::from_yaml(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: custom
  plugins:
    score:
      disabled: [{name: "*"}]
      enabled: [{name: NodeResourcesFit, weight: 5}]
    filter:
      disabled: [{name: NodePorts}]
"#,
        )
        .unwrap();
        let p = Profile::from_config(&c.profiles[0], None, &Registry::default()).unwrap();
        assert_eq!(
            p.score.iter().map(|s| (s.0, s.2)).collect::<Vec<_>>(),
            vec![("NodeResourcesFit", 5)]
        );
        assert!(!p.filter.iter().any(|f| f.0 == "NodePorts"));
        let bad = KubeSchedulerConfiguration::from_yaml(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- plugins: {filter: {enabled: [{name: Nope}]}}
"#,
        )
        .unwrap();
        let e = Profile::from_config(&bad.profiles[0], None, &Registry::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "profiles[default-scheduler]: unknown plugin \"Nope\""
        );
        let bad_args = KubeSchedulerConfiguration::from_yaml(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy: {type: Nope}}}]
"#,
        )
        .unwrap();
        let e =
            Profile::from_config(&bad_args.profiles[0], None, &Registry::default()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("profiles[default-scheduler].pluginConfig[NodeResourcesFit].args:"),
            "{e}"
        );
    }
}
