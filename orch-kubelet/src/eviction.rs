//! Node pressure: hard eviction thresholds, the signals they are checked against, and the
//! node conditions they raise (`MemoryPressure`, `DiskPressure`, `PIDPressure`), as upstream's
//! eviction manager (`pkg/kubelet/eviction/{helpers.go,eviction_manager.go}`) and the node
//! status setters (`pkg/kubelet/nodestatus/setters.go`).
//!
//! Pure parts: [`parse_eviction_hard`] (the `--eviction-hard` syntax,
//! `memory.available<100Mi,nodefs.available<10%`), [`thresholds_met`], [`PressureTracker`]
//! (the pressure transition period, time from the caller). Signals come from a
//! [`NodeStatsProvider`]: [`HostStats`] reads the host (`/proc/meminfo` `MemAvailable`,
//! `statvfs` of the kubelet root dir, `pid_max` against the task count), [`FixedStats`]
//! reports configured values (simulated nodes: deterministic, no pressure by default).
//!
//! orch reports the conditions only: it does not evict pods under pressure (no ranking, no
//! soft thresholds, no min-reclaim). There is no separate image filesystem: `imagefs.*`
//! signals observe the kubelet root dir, like `nodefs.*`.
//!
//! ```
//! use orch_kubelet::eviction::{parse_eviction_hard, thresholds_met, NodeStats, Pressure};
//! let t = parse_eviction_hard("memory.available<100Mi,nodefs.available<10%").unwrap();
//! let mut s = NodeStats::healthy();
//! assert!(thresholds_met(&t, &s).is_empty());
//! s.memory.available = 50 << 20;
//! assert!(thresholds_met(&t, &s).contains(&Pressure::Memory));
//! ```

use jiff::Timestamp;
use orch_types::quantity::Quantity;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// An eviction signal (upstream `evictionapi.Signal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// `memory.available`: bytes of memory available.
    MemoryAvailable,
    /// `nodefs.available`: bytes free on the kubelet's filesystem.
    NodeFsAvailable,
    /// `nodefs.inodesFree`: inodes free on the kubelet's filesystem.
    NodeFsInodesFree,
    /// `imagefs.available`: bytes free on the image filesystem.
    ImageFsAvailable,
    /// `imagefs.inodesFree`: inodes free on the image filesystem.
    ImageFsInodesFree,
    /// `pid.available`: process IDs available.
    PidAvailable,
}

impl Signal {
    /// Every supported signal.
    pub const ALL: [Signal; 6] = [
        Signal::MemoryAvailable,
        Signal::NodeFsAvailable,
        Signal::NodeFsInodesFree,
        Signal::ImageFsAvailable,
        Signal::ImageFsInodesFree,
        Signal::PidAvailable,
    ];

    /// The signal's name in flags and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MemoryAvailable => "memory.available",
            Self::NodeFsAvailable => "nodefs.available",
            Self::NodeFsInodesFree => "nodefs.inodesFree",
            Self::ImageFsAvailable => "imagefs.available",
            Self::ImageFsInodesFree => "imagefs.inodesFree",
            Self::PidAvailable => "pid.available",
        }
    }

    /// The node condition a met threshold of this signal raises (upstream
    /// `signalToNodeCondition`).
    pub fn pressure(self) -> Pressure {
        match self {
            Self::MemoryAvailable => Pressure::Memory,
            Self::PidAvailable => Pressure::Pid,
            _ => Pressure::Disk,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Signal {
    type Err = EvictionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| EvictionError::UnsupportedSignal(s.to_string()))
    }
}

/// The node conditions raised by pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pressure {
    /// `MemoryPressure`.
    Memory,
    /// `DiskPressure`.
    Disk,
    /// `PIDPressure`.
    Pid,
}

impl Pressure {
    /// Every pressure condition, in the order the kubelet reports them.
    pub const ALL: [Pressure; 3] = [Pressure::Memory, Pressure::Disk, Pressure::Pid];

    /// The condition type.
    pub fn condition_type(self) -> &'static str {
        match self {
            Self::Memory => "MemoryPressure",
            Self::Disk => "DiskPressure",
            Self::Pid => "PIDPressure",
        }
    }

    /// `(reason, message)` of the condition (upstream `nodestatus` setters): `under` = True.
    pub fn reason_and_message(self, under: bool) -> (&'static str, &'static str) {
        match (self, under) {
            (Self::Memory, true) => (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            (Self::Memory, false) => (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            (Self::Disk, true) => ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            (Self::Disk, false) => ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            (Self::Pid, true) => (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            (Self::Pid, false) => (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
        }
    }
}

/// A threshold's value: an absolute quantity or a fraction of capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdValue {
    /// Bytes (or inodes, PIDs).
    Quantity(Quantity),
    /// A fraction of capacity in `(0, 1)` (`10%` = 0.1).
    Percentage(f64),
}

/// A hard eviction threshold: the signal is below `value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Signal.
    pub signal: Signal,
    /// Value.
    pub value: ThresholdValue,
}

impl Threshold {
    /// The threshold as an absolute amount for a resource of `capacity` (upstream
    /// `GetThresholdQuantity`: capacity × percentage, truncated).
    pub fn amount(&self, capacity: i64) -> i64 {
        match self.value {
            ThresholdValue::Quantity(q) => q.value(),
            ThresholdValue::Percentage(p) => (capacity as f64 * p) as i64,
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.value {
            ThresholdValue::Quantity(q) => write!(f, "{}<{q}", self.signal),
            ThresholdValue::Percentage(p) => {
                // 0.15 × 100 is 15.000000000000002 in binary floating point
                let pct = (p * 100.0 * 1e6).round() / 1e6;
                write!(f, "{}<{pct}%", self.signal)
            }
        }
    }
}

/// A bad `--eviction-hard` value (messages as upstream `ParseThresholdConfig`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvictionError {
    /// Not `signal<value`.
    #[error("malformed pair {0:?}, expect string<string")]
    Malformed(String),
    /// Unknown signal.
    #[error("unsupported eviction signal {0}")]
    UnsupportedSignal(String),
    /// The value is neither a quantity nor a percentage.
    #[error("invalid eviction threshold {signal}: {value:?}: {message}")]
    Value {
        /// Signal.
        signal: Signal,
        /// The text.
        value: String,
        /// Why.
        message: String,
    },
    /// A percentage outside 0%–100%.
    #[error("eviction percentage threshold {signal} must be >= 0% and <= 100%: {value}")]
    Percentage {
        /// Signal.
        signal: Signal,
        /// The text.
        value: String,
    },
    /// A quantity that is zero or negative.
    #[error("eviction threshold {signal} must be positive: {value}")]
    NotPositive {
        /// Signal.
        signal: Signal,
        /// The text.
        value: String,
    },
}

/// Upstream's default hard thresholds on Linux (`DefaultEvictionHard`): `memory.available<100Mi`,
/// `nodefs.available<10%`, `nodefs.inodesFree<5%`, `imagefs.available<15%`,
/// `imagefs.inodesFree<5%`.
pub fn default_eviction_hard() -> Vec<Threshold> {
    let q = Quantity::from_value(100 << 20, orch_types::quantity::Format::BinarySI);
    let p = |signal, v| Threshold {
        signal,
        value: ThresholdValue::Percentage(v),
    };
    vec![
        Threshold {
            signal: Signal::MemoryAvailable,
            value: ThresholdValue::Quantity(q),
        },
        p(Signal::NodeFsAvailable, 0.10),
        p(Signal::NodeFsInodesFree, 0.05),
        p(Signal::ImageFsAvailable, 0.15),
        p(Signal::ImageFsInodesFree, 0.05),
    ]
}

/// Parses `--eviction-hard` (`signal<value[,signal<value…]`; value a quantity or `N%`).
/// As upstream: `0%` and `100%` disable a signal, a later entry for the same signal wins, and
/// a flag that sets any threshold replaces all the defaults (unset signals get none).
pub fn parse_eviction_hard(s: &str) -> Result<Vec<Threshold>, EvictionError> {
    let mut out: BTreeMap<Signal, Option<Threshold>> = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('<')
            .ok_or_else(|| EvictionError::Malformed(part.to_string()))?;
        let signal: Signal = name.trim().parse()?;
        out.insert(signal, parse_threshold(signal, value.trim())?);
    }
    Ok(out.into_values().flatten().collect())
}

/// One `signal<value` statement (upstream `parseThresholdStatement`); `None` for `0%`/`100%`.
fn parse_threshold(signal: Signal, value: &str) -> Result<Option<Threshold>, EvictionError> {
    if let Some(pct) = value.strip_suffix('%') {
        if value == "0%" || value == "100%" {
            return Ok(None);
        }
        let p: f64 = pct.trim().parse().map_err(|_| EvictionError::Value {
            signal,
            value: value.into(),
            message: "not a percentage".into(),
        })?;
        if !(0.0..=100.0).contains(&p) {
            return Err(EvictionError::Percentage {
                signal,
                value: value.into(),
            });
        }
        return Ok(Some(Threshold {
            signal,
            value: ThresholdValue::Percentage(p / 100.0),
        }));
    }
    let q: Quantity =
        value.parse().map_err(
            |e: orch_types::quantity::QuantityError| EvictionError::Value {
                signal,
                value: value.into(),
                message: e.to_string(),
            },
        )?;
    if q <= Quantity::default() {
        return Err(EvictionError::NotPositive {
            signal,
            value: value.into(),
        });
    }
    Ok(Some(Threshold {
        signal,
        value: ThresholdValue::Quantity(q),
    }))
}

/// One observed resource: what is available out of what capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observation {
    /// Available amount.
    pub available: i64,
    /// Capacity.
    pub capacity: i64,
}

/// The signals of one observation of the node (upstream `signalObservations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStats {
    /// Memory, bytes.
    pub memory: Observation,
    /// The kubelet's filesystem, bytes.
    pub nodefs: Observation,
    /// The kubelet's filesystem, inodes (`None` where the filesystem has no inode limit).
    pub nodefs_inodes: Option<Observation>,
    /// Process IDs.
    pub pids: Observation,
}

impl NodeStats {
    /// A roomy node: 16 GiB memory, 100 GiB disk, a million inodes and 4 million PIDs,
    /// each with 90 % available.
    pub fn healthy() -> Self {
        let ninety = |capacity: i64| Observation {
            available: capacity / 10 * 9,
            capacity,
        };
        Self {
            memory: ninety(16 << 30),
            nodefs: ninety(100 << 30),
            nodefs_inodes: Some(ninety(1 << 20)),
            pids: ninety(4 << 20),
        }
    }

    /// The observation behind `signal` (image filesystem = the kubelet's filesystem).
    pub fn observe(&self, signal: Signal) -> Option<Observation> {
        match signal {
            Signal::MemoryAvailable => Some(self.memory),
            Signal::NodeFsAvailable | Signal::ImageFsAvailable => Some(self.nodefs),
            Signal::NodeFsInodesFree | Signal::ImageFsInodesFree => self.nodefs_inodes,
            Signal::PidAvailable => Some(self.pids),
        }
    }
}

/// The thresholds met by `stats` (available below the threshold amount, upstream
/// `thresholdsMet`), as the pressure conditions they raise.
pub fn thresholds_met(thresholds: &[Threshold], stats: &NodeStats) -> BTreeSet<Pressure> {
    thresholds
        .iter()
        .filter(|t| {
            stats
                .observe(t.signal)
                .is_some_and(|o| o.available < t.amount(o.capacity))
        })
        .map(|t| t.signal.pressure())
        .collect()
}

/// Upstream's `--eviction-pressure-transition-period` default: a condition stays True for
/// 5 minutes after pressure was last observed, so it does not flap.
pub const PRESSURE_TRANSITION_PERIOD: Duration = Duration::from_secs(300);

/// Remembers when each pressure was last observed (upstream `nodeConditionsLastObservedAt`
/// and `nodeConditionsObservedSince`).
#[derive(Debug, Clone, Default)]
pub struct PressureTracker {
    last_observed: BTreeMap<Pressure, Timestamp>,
}

impl PressureTracker {
    /// Records the pressures observed at `now` and returns those to report: every pressure
    /// observed less than `period` ago.
    pub fn observe(
        &mut self,
        now: Timestamp,
        observed: &BTreeSet<Pressure>,
        period: Duration,
    ) -> BTreeSet<Pressure> {
        for p in observed {
            self.last_observed.insert(*p, now);
        }
        self.last_observed
            .iter()
            .filter(|(_, at)| {
                let since = Duration::try_from(now.duration_since(**at)).unwrap_or_default();
                since < period
            })
            .map(|(p, _)| *p)
            .collect()
    }
}

/// Where the pressure signals come from.
pub trait NodeStatsProvider: Send + Sync + std::fmt::Debug {
    /// One observation; an error (e.g. unreadable `/proc`) means "no signal" (no pressure).
    fn stats(&self) -> Result<NodeStats, String>;
}

/// Fixed values: simulated nodes stay deterministic (no pressure unless configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedStats(pub NodeStats);

impl Default for FixedStats {
    fn default() -> Self {
        Self(NodeStats::healthy())
    }
}

impl NodeStatsProvider for FixedStats {
    fn stats(&self) -> Result<NodeStats, String> {
        Ok(self.0)
    }
}

/// The host: `/proc/meminfo` (`MemAvailable` of `MemTotal`), `statvfs` of the kubelet root
/// dir, and `min(pid_max, threads-max)` against the task count of `/proc/loadavg` (upstream
/// `pkg/kubelet/stats/pidlimit`).
#[derive(Debug, Clone)]
pub struct HostStats {
    root: PathBuf,
}

impl HostStats {
    /// Observes the filesystem holding `root_dir`.
    pub fn new(root_dir: impl Into<PathBuf>) -> Self {
        Self {
            root: root_dir.into(),
        }
    }
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// `MemAvailable` and `MemTotal` from `/proc/meminfo` text, in bytes.
pub fn parse_meminfo(text: &str) -> Option<Observation> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<i64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
    };
    Some(Observation {
        available: field("MemAvailable:")?,
        capacity: field("MemTotal:")?,
    })
}

/// The task count (4th field `running/total` of `/proc/loadavg`).
pub fn parse_loadavg_tasks(text: &str) -> Option<i64> {
    text.split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

impl NodeStatsProvider for HostStats {
    fn stats(&self) -> Result<NodeStats, String> {
        let memory = parse_meminfo(&read("/proc/meminfo")?)
            .ok_or("/proc/meminfo: no MemAvailable/MemTotal")?;
        let dir = if self.root.exists() {
            self.root.clone()
        } else {
            PathBuf::from("/")
        };
        let vfs =
            nix::sys::statvfs::statvfs(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let frsize = vfs.fragment_size() as i64;
        let nodefs = Observation {
            available: vfs.blocks_available() as i64 * frsize,
            capacity: vfs.blocks() as i64 * frsize,
        };
        let nodefs_inodes = (vfs.files() > 0).then(|| Observation {
            available: vfs.files_available() as i64,
            capacity: vfs.files() as i64,
        });
        let max = |path: &str| read(path).ok().and_then(|s| s.trim().parse::<i64>().ok());
        let pid_max = match (
            max("/proc/sys/kernel/pid_max"),
            max("/proc/sys/kernel/threads-max"),
        ) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).ok_or("no pid_max")?,
        };
        let tasks =
            parse_loadavg_tasks(&read("/proc/loadavg")?).ok_or("/proc/loadavg: no task count")?;
        Ok(NodeStats {
            memory,
            nodefs,
            nodefs_inodes,
            pids: Observation {
                available: pid_max - tasks,
                capacity: pid_max,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn parses_eviction_hard_like_upstream() {
        let th = parse_eviction_hard(
            "memory.available<100Mi, nodefs.available<10%,pid.available<5%,imagefs.available<0%",
        )
        .unwrap();
        let shown: Vec<String> = th.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "memory.available<100Mi",
                "nodefs.available<10%",
                "pid.available<5%"
            ]
        );
        assert_eq!(th[0].amount(0), 100 << 20);
        assert_eq!(th[1].amount(1000), 100);
        assert_eq!(
            parse_eviction_hard("memory.available<1Gi,memory.available<2Gi").unwrap()[0].amount(0),
            2 << 30,
            "the later entry wins"
        );
        assert_eq!(parse_eviction_hard("").unwrap(), vec![]);
        let defaults: Vec<String> = default_eviction_hard()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            defaults,
            [
                "memory.available<100Mi",
                "nodefs.available<10%",
                "nodefs.inodesFree<5%",
                "imagefs.available<15%",
                "imagefs.inodesFree<5%"
            ]
        );
        assert_eq!(
            parse_eviction_hard("imagefs.available<12.5%").unwrap()[0].to_string(),
            "imagefs.available<12.5%"
        );
        let err = |s: &str| parse_eviction_hard(s).unwrap_err().to_string();
        assert_eq!(
            err("memory.available=1Gi"),
            "malformed pair \"memory.available=1Gi\", expect string<string"
        );
        assert_eq!(
            err("cpu.available<1"),
            "unsupported eviction signal cpu.available"
        );
        assert_eq!(
            err("nodefs.available<120%"),
            "eviction percentage threshold nodefs.available must be >= 0% and <= 100%: 120%"
        );
        assert_eq!(
            err("memory.available<-1Mi"),
            "eviction threshold memory.available must be positive: -1Mi"
        );
        assert!(err("memory.available<lots")
            .starts_with("invalid eviction threshold memory.available: \"lots\""));
        assert!(err("nodefs.available<x%").contains("not a percentage"));
    }

    #[test]
    fn thresholds_met_maps_signals_to_conditions() {
        let th = default_eviction_hard();
        let mut s = NodeStats::healthy();
        assert!(thresholds_met(&th, &s).is_empty());
        s.memory.available = (100 << 20) - 1;
        assert_eq!(thresholds_met(&th, &s), BTreeSet::from([Pressure::Memory]));
        s.memory.available = 100 << 20;
        assert!(
            thresholds_met(&th, &s).is_empty(),
            "exactly at the threshold is fine"
        );
        // imagefs.available<15% looks at the same filesystem: 14 % free is pressure.
        s.nodefs.available = s.nodefs.capacity / 100 * 14;
        assert_eq!(thresholds_met(&th, &s), BTreeSet::from([Pressure::Disk]));
        s = NodeStats::healthy();
        s.nodefs_inodes = Some(Observation {
            available: 4,
            capacity: 100,
        });
        assert_eq!(thresholds_met(&th, &s), BTreeSet::from([Pressure::Disk]));
        s.nodefs_inodes = None;
        assert!(
            thresholds_met(&th, &s).is_empty(),
            "no inode signal, no inode pressure"
        );
        // pid.available has no default threshold.
        s.pids.available = 1;
        assert!(thresholds_met(&th, &s).is_empty());
        let pid = parse_eviction_hard("pid.available<10%").unwrap();
        assert_eq!(thresholds_met(&pid, &s), BTreeSet::from([Pressure::Pid]));
    }

    #[test]
    fn pressure_stays_reported_for_the_transition_period() {
        let mut tr = PressureTracker::default();
        let p = PRESSURE_TRANSITION_PERIOD;
        let mem = BTreeSet::from([Pressure::Memory]);
        assert!(tr.observe(t(0), &BTreeSet::new(), p).is_empty());
        assert_eq!(tr.observe(t(10), &mem, p), mem);
        assert_eq!(tr.observe(t(20), &BTreeSet::new(), p), mem);
        assert_eq!(tr.observe(t(309), &BTreeSet::new(), p), mem);
        assert!(tr.observe(t(310), &BTreeSet::new(), p).is_empty());
        assert!(tr
            .observe(t(10), &BTreeSet::new(), Duration::ZERO)
            .is_empty());
    }

    #[test]
    fn host_files_parse() {
        let mi = "MemTotal:       16318480 kB\nMemFree:  1 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(
            parse_meminfo(mi),
            Some(Observation {
                available: 8_000_000 * 1024,
                capacity: 16_318_480 * 1024
            })
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert_eq!(
            parse_loadavg_tasks("0.52 0.58 0.59 3/1043 12345\n"),
            Some(1043)
        );
        assert_eq!(parse_loadavg_tasks("garbage"), None);
        let s = HostStats::new(std::env::temp_dir()).stats().unwrap();
        assert!(s.memory.capacity > 0 && s.nodefs.capacity > 0 && s.pids.capacity > 0);
    }
}
