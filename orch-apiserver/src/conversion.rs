//! Conversion between the versions a resource is served in and the version it is stored in.
//!
//! `autoscaling/v1` HorizontalPodAutoscalers are stored as `autoscaling/v2` (what the
//! autoscaler controller reads and writes) and converted on the way in and out of the HTTP API,
//! as upstream converts through its internal version (`pkg/apis/autoscaling/v1/conversion.go`):
//! - v1's `targetCPUUtilizationPercentage` is v2's CPU `Utilization` metric; every other v2
//!   metric travels in the `autoscaling.alpha.kubernetes.io/metrics` annotation as a list of
//!   v1 `MetricSpec`s, the current metrics in `…/current-metrics`, the conditions in
//!   `…/conditions` and the scaling behavior in `…/behavior`, so a v1 read-modify-write keeps
//!   them;
//! - a v1 object without any metric gets upstream's implicit 80% CPU target.
//!
//! ```
//! use orch_apiserver::conversion::{hpa_v1_to_v2, hpa_v2_to_v1};
//! use serde_json::json;
//! let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
//!     "metadata": {"name": "web"},
//!     "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
//!              "targetCPUUtilizationPercentage": 60}});
//! let v2 = hpa_v1_to_v2(&v1).unwrap();
//! assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 60);
//! assert_eq!(hpa_v2_to_v1(&v2), v1);
//! ```

use serde_json::{json, Map, Value};

/// The annotation holding v2 metrics other than the CPU utilization target, as v1 `MetricSpec`s.
pub const METRIC_SPECS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// The annotation holding every current metric, as v1 `MetricStatus`es.
pub const METRIC_STATUSES_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// The annotation holding the status conditions.
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// The annotation holding `spec.behavior`.
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

const ROUND_TRIP: [&str; 4] = [
    METRIC_SPECS_ANNOTATION,
    METRIC_STATUSES_ANNOTATION,
    CONDITIONS_ANNOTATION,
    BEHAVIOR_ANNOTATION,
];

/// Upstream `autoscaling.DefaultCPUUtilization`: the target of a v1 object without one.
const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// Copies the listed fields of `from` that are present into a new object.
fn pick(from: &Value, fields: &[&str]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|f| {
            from.get(*f)
                .filter(|v| !v.is_null())
                .map(|v| (f.to_string(), v.clone()))
        })
        .collect()
}

/// `obj[key] = value` unless `value` is null.
fn put(obj: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    if let Some(v) = value.filter(|v| !v.is_null()) {
        obj.insert(key.into(), v.clone());
    }
}

fn is_cpu_resource(m: &Value) -> bool {
    m["type"] == "Resource" && m["resource"]["name"] == "cpu"
}

/// How one field of a v1 metric source (or status) maps to v2: the v1 name, the path below the
/// v2 source, and whether it is a Go non-pointer `Quantity` (always present, zero by default).
type FieldMap = (&'static str, &'static [&'static str], bool);

/// The fields of each metric source type, v1 name → v2 path, in the order of v1's Go structs
/// (upstream `pkg/apis/autoscaling/v1/conversion.go`, `Convert_*MetricSource*` and
/// `Convert_*MetricStatus*`). `status` selects the `MetricStatus` form.
fn fields(ty: &str, status: bool) -> &'static [FieldMap] {
    const NAME: FieldMap = ("name", &["name"], false);
    const CONTAINER: FieldMap = ("container", &["container"], false);
    const METRIC: FieldMap = ("metricName", &["metric", "name"], false);
    const SELECTOR: FieldMap = ("selector", &["metric", "selector"], false);
    const METRIC_SELECTOR: FieldMap = ("metricSelector", &["metric", "selector"], false);
    const DESCRIBED: FieldMap = ("target", &["describedObject"], false);
    match (ty, status) {
        ("Resource", false) => &[
            NAME,
            (
                "targetAverageUtilization",
                &["target", "averageUtilization"],
                false,
            ),
            ("targetAverageValue", &["target", "averageValue"], false),
        ],
        ("ContainerResource", false) => &[
            NAME,
            (
                "targetAverageUtilization",
                &["target", "averageUtilization"],
                false,
            ),
            ("targetAverageValue", &["target", "averageValue"], false),
            CONTAINER,
        ],
        ("Pods", false) => &[
            METRIC,
            ("targetAverageValue", &["target", "averageValue"], true),
            SELECTOR,
        ],
        ("Object", false) => &[
            DESCRIBED,
            METRIC,
            ("targetValue", &["target", "value"], true),
            SELECTOR,
            ("averageValue", &["target", "averageValue"], false),
        ],
        ("External", false) => &[
            METRIC,
            METRIC_SELECTOR,
            ("targetValue", &["target", "value"], false),
            ("targetAverageValue", &["target", "averageValue"], false),
        ],
        ("Resource", true) => &[
            NAME,
            (
                "currentAverageUtilization",
                &["current", "averageUtilization"],
                false,
            ),
            ("currentAverageValue", &["current", "averageValue"], true),
        ],
        ("ContainerResource", true) => &[
            NAME,
            (
                "currentAverageUtilization",
                &["current", "averageUtilization"],
                false,
            ),
            ("currentAverageValue", &["current", "averageValue"], true),
            CONTAINER,
        ],
        ("Pods", true) => &[
            METRIC,
            ("currentAverageValue", &["current", "averageValue"], true),
            SELECTOR,
        ],
        ("Object", true) => &[
            DESCRIBED,
            METRIC,
            ("currentValue", &["current", "value"], true),
            SELECTOR,
            ("averageValue", &["current", "averageValue"], false),
        ],
        ("External", true) => &[
            METRIC,
            METRIC_SELECTOR,
            ("currentValue", &["current", "value"], true),
            ("currentAverageValue", &["current", "averageValue"], false),
        ],
        _ => &[],
    }
}

/// The key of a metric type's source in a `MetricSpec` / `MetricStatus` (`Pods` → `pods`).
fn source_key(ty: &str) -> String {
    let mut k = ty.to_string();
    if let Some(first) = k.get_mut(..1) {
        first.make_ascii_lowercase();
    }
    k
}

fn get_path<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |cur, k| cur.get(*k))
        .filter(|v| !v.is_null())
}

fn set_path(obj: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        let next = cur.entry(p.to_string()).or_insert_with(|| json!({}));
        let Some(m) = next.as_object_mut() else {
            return;
        };
        cur = m;
    }
    cur.insert(last.to_string(), value);
}

/// A v2 `MetricSpec` or `MetricStatus` as v1's (the annotation form).
fn metric_to_v1(m: &Value, status: bool) -> Value {
    let ty = m["type"].as_str().unwrap_or_default();
    let key = source_key(ty);
    let src = &m[&key];
    let mut out = Map::new();
    for (v1, path, quantity) in fields(ty, status) {
        match (get_path(src, path), *quantity) {
            (Some(v), _) => {
                out.insert(v1.to_string(), v.clone());
            }
            (None, true) => {
                out.insert(v1.to_string(), json!("0"));
            }
            // Go non-pointer strings are always written.
            (None, false) if ["container", "metricName"].contains(v1) => {
                out.insert(v1.to_string(), json!(""));
            }
            (None, false) => {}
        }
    }
    json!({"type": ty, key: Value::Object(out)})
}

/// A v1 `MetricSpec` or `MetricStatus` (from the annotation) as v2's.
fn metric_to_v2(m: &Value, status: bool) -> Value {
    let ty = m["type"].as_str().unwrap_or_default();
    let key = source_key(ty);
    let src = &m[&key];
    let mut out = Map::new();
    if !status {
        let has = |f: &str| src.get(f).is_some_and(|v| !v.is_null());
        // The target type that v1 leaves implicit.
        let target_type = match ty {
            "Resource" | "ContainerResource" if has("targetAverageUtilization") => "Utilization",
            "Object" if !has("averageValue") => "Value",
            "External" if has("targetValue") => "Value",
            _ => "AverageValue",
        };
        set_path(&mut out, &["target", "type"], target_type.into());
    }
    for (v1, path, quantity) in fields(ty, status) {
        match (src.get(*v1).filter(|v| !v.is_null()), *quantity) {
            (Some(v), _) => set_path(&mut out, path, v.clone()),
            (None, true) => set_path(&mut out, path, json!("0")),
            (None, false) => {}
        }
    }
    json!({"type": ty, key: Value::Object(out)})
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// An `autoscaling/v2` HorizontalPodAutoscaler as `autoscaling/v1`
/// (upstream `Convert_autoscaling_HorizontalPodAutoscaler_To_v1_HorizontalPodAutoscaler`).
pub fn hpa_v2_to_v1(v2: &Value) -> Value {
    let mut metadata = v2.get("metadata").cloned().unwrap_or_else(|| json!({}));
    // Round-trip annotations are only ever the ones this conversion writes.
    if let Some(a) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        for k in ROUND_TRIP {
            a.remove(k);
        }
    }
    let spec2 = &v2["spec"];
    let mut spec = pick(spec2, &["scaleTargetRef", "minReplicas", "maxReplicas"]);
    let metrics = array(&spec2["metrics"]);
    if let Some(cpu) = metrics.iter().find(|m| is_cpu_resource(m)) {
        put(
            &mut spec,
            "targetCPUUtilizationPercentage",
            cpu["resource"]["target"].get("averageUtilization"),
        );
    }
    let others: Vec<Value> = metrics
        .iter()
        .filter(|m| !is_cpu_resource(m) || m["resource"]["target"]["averageUtilization"].is_null())
        .map(|m| metric_to_v1(m, false))
        .collect();

    let status2 = &v2["status"];
    let mut status = pick(
        status2,
        &[
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ],
    );
    let current = array(&status2["currentMetrics"]);
    for m in current.iter().filter(|m| is_cpu_resource(m)) {
        put(
            &mut status,
            "currentCPUUtilizationPercentage",
            m["resource"]["current"].get("averageUtilization"),
        );
    }
    let conditions = array(&status2["conditions"]);

    let mut annotations: Vec<(&str, String)> = Vec::new();
    if !others.is_empty() {
        annotations.push((METRIC_SPECS_ANNOTATION, Value::Array(others).to_string()));
    }
    if !current.is_empty() {
        let statuses: Vec<Value> = current.iter().map(|m| metric_to_v1(m, true)).collect();
        annotations.push((
            METRIC_STATUSES_ANNOTATION,
            Value::Array(statuses).to_string(),
        ));
    }
    if !conditions.is_empty() {
        annotations.push((
            CONDITIONS_ANNOTATION,
            Value::Array(conditions.to_vec()).to_string(),
        ));
    }
    if let Some(b) = spec2.get("behavior").filter(|b| !b.is_null()) {
        annotations.push((BEHAVIOR_ANNOTATION, b.to_string()));
    }
    if !annotations.is_empty() {
        if let Some(m) = metadata.as_object_mut() {
            let a = m.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = a.as_object_mut() {
                for (k, v) in annotations {
                    a.insert(k.into(), v.into());
                }
            }
        }
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), "autoscaling/v1".into());
    out.insert("kind".into(), "HorizontalPodAutoscaler".into());
    out.insert("metadata".into(), metadata);
    out.insert("spec".into(), Value::Object(spec));
    if v2.get("status").is_some_and(|s| !s.is_null()) {
        out.insert("status".into(), Value::Object(status));
    }
    Value::Object(out)
}

/// Reads and removes a round-trip annotation holding JSON.
fn take_annotation(metadata: &mut Value, key: &str) -> Result<Option<Value>, String> {
    let Some(text) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.remove(key))
    else {
        return Ok(None);
    };
    let text = text.as_str().unwrap_or_default().to_string();
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("annotation {key}: {e}"))
}

/// An `autoscaling/v1` HorizontalPodAutoscaler as `autoscaling/v2`
/// (upstream `Convert_v1_HorizontalPodAutoscaler_To_autoscaling_HorizontalPodAutoscaler`).
/// Fails when a round-trip annotation does not hold what it should.
pub fn hpa_v1_to_v2(v1: &Value) -> Result<Value, String> {
    let mut metadata = v1.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let other_metrics = take_annotation(&mut metadata, METRIC_SPECS_ANNOTATION)?;
    let current_metrics = take_annotation(&mut metadata, METRIC_STATUSES_ANNOTATION)?;
    let conditions = take_annotation(&mut metadata, CONDITIONS_ANNOTATION)?;
    // Only well-formed behavior moves to the field (upstream ignores the rest).
    let behavior = take_annotation(&mut metadata, BEHAVIOR_ANNOTATION)
        .ok()
        .flatten()
        .filter(|b| b.as_object().is_some_and(|o| !o.is_empty()));
    if metadata
        .get("annotations")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        if let Some(m) = metadata.as_object_mut() {
            m.remove("annotations");
        }
    }

    let spec1 = &v1["spec"];
    let mut spec = pick(spec1, &["scaleTargetRef", "minReplicas", "maxReplicas"]);
    let mut metrics: Vec<Value> = match &other_metrics {
        Some(Value::Array(list)) => list.iter().map(|m| metric_to_v2(m, false)).collect(),
        Some(_) => return Err(format!("annotation {METRIC_SPECS_ANNOTATION}: not a list")),
        None => Vec::new(),
    };
    let cpu = spec1
        .get("targetCPUUtilizationPercentage")
        .filter(|v| !v.is_null())
        .cloned();
    if cpu.is_some() || metrics.is_empty() {
        let utilization = cpu.unwrap_or_else(|| json!(DEFAULT_CPU_UTILIZATION));
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": utilization}}}));
    }
    spec.insert("metrics".into(), Value::Array(metrics));
    if let Some(b) = behavior {
        spec.insert("behavior".into(), b);
    }

    let mut out = Map::new();
    out.insert("apiVersion".into(), "autoscaling/v2".into());
    out.insert("kind".into(), "HorizontalPodAutoscaler".into());
    out.insert("metadata".into(), metadata);
    out.insert("spec".into(), Value::Object(spec));
    if let Some(status1) = v1.get("status").filter(|s| !s.is_null()) {
        let mut status = pick(
            status1,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
        );
        let current = match current_metrics {
            Some(Value::Array(list)) => list.iter().map(|m| metric_to_v2(m, true)).collect(),
            Some(_) => {
                return Err(format!(
                    "annotation {METRIC_STATUSES_ANNOTATION}: not a list"
                ))
            }
            None => status1
                .get("currentCPUUtilizationPercentage")
                .filter(|v| !v.is_null())
                .map(|u| {
                    vec![json!({"type": "Resource", "resource": {"name": "cpu",
                        "current": {"averageUtilization": u}}})]
                })
                .unwrap_or_default(),
        };
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current));
        }
        match conditions {
            Some(c @ Value::Array(_)) => {
                status.insert("conditions".into(), c);
            }
            Some(_) => return Err(format!("annotation {CONDITIONS_ANNOTATION}: not a list")),
            None => {}
        }
        out.insert("status".into(), Value::Object(status));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests;
