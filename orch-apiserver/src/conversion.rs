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

/// A Go non-pointer `resource.Quantity`: zero when absent.
fn quantity(v: Option<&Value>) -> Value {
    v.filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| json!("0"))
}

fn is_cpu_resource(m: &Value) -> bool {
    m["type"] == "Resource" && m["resource"]["name"] == "cpu"
}

/// A v2 `MetricSpec` as v1's (the annotation form).
fn metric_spec_to_v1(m: &Value) -> Value {
    let ty = m["type"].as_str().unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), ty.into());
    match ty {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let src = &m[key];
            let mut r = pick(src, &["name"]);
            put(
                &mut r,
                "targetAverageUtilization",
                src["target"].get("averageUtilization"),
            );
            put(
                &mut r,
                "targetAverageValue",
                src["target"].get("averageValue"),
            );
            if ty == "ContainerResource" {
                r.insert(
                    "container".into(),
                    src.get("container").cloned().unwrap_or(json!("")),
                );
            }
            out.insert(key.into(), Value::Object(r));
        }
        "Pods" => {
            let src = &m["pods"];
            let mut p = Map::new();
            p.insert("metricName".into(), src["metric"]["name"].clone());
            p.insert(
                "targetAverageValue".into(),
                quantity(src["target"].get("averageValue")),
            );
            put(&mut p, "selector", src["metric"].get("selector"));
            out.insert("pods".into(), Value::Object(p));
        }
        "Object" => {
            let src = &m["object"];
            let mut o = Map::new();
            o.insert(
                "target".into(),
                Value::Object(pick(
                    &src["describedObject"],
                    &["kind", "name", "apiVersion"],
                )),
            );
            o.insert("metricName".into(), src["metric"]["name"].clone());
            o.insert("targetValue".into(), quantity(src["target"].get("value")));
            put(&mut o, "selector", src["metric"].get("selector"));
            put(&mut o, "averageValue", src["target"].get("averageValue"));
            out.insert("object".into(), Value::Object(o));
        }
        "External" => {
            let src = &m["external"];
            let mut e = Map::new();
            e.insert("metricName".into(), src["metric"]["name"].clone());
            put(&mut e, "metricSelector", src["metric"].get("selector"));
            put(&mut e, "targetValue", src["target"].get("value"));
            put(
                &mut e,
                "targetAverageValue",
                src["target"].get("averageValue"),
            );
            out.insert("external".into(), Value::Object(e));
        }
        _ => {}
    }
    Value::Object(out)
}

/// A v1 `MetricSpec` (from the annotation) as v2's.
fn metric_spec_to_v2(m: &Value) -> Value {
    let ty = m["type"].as_str().unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), ty.into());
    match ty {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let src = &m[key];
            let utilization = src.get("targetAverageUtilization").filter(|v| !v.is_null());
            let mut target = Map::new();
            target.insert(
                "type".into(),
                if utilization.is_some() {
                    "Utilization"
                } else {
                    "AverageValue"
                }
                .into(),
            );
            put(&mut target, "averageUtilization", utilization);
            put(&mut target, "averageValue", src.get("targetAverageValue"));
            let mut r = pick(src, &["name"]);
            if ty == "ContainerResource" {
                put(&mut r, "container", src.get("container"));
            }
            r.insert("target".into(), Value::Object(target));
            out.insert(key.into(), Value::Object(r));
        }
        "Pods" => {
            let src = &m["pods"];
            out.insert(
                "pods".into(),
                json!({
                    "metric": identifier(src.get("metricName"), src.get("selector")),
                    "target": {"type": "AverageValue", "averageValue": quantity(src.get("targetAverageValue"))},
                }),
            );
        }
        "Object" => {
            let src = &m["object"];
            let average = src.get("averageValue").filter(|v| !v.is_null());
            let mut target = Map::new();
            target.insert(
                "type".into(),
                if average.is_some() {
                    "AverageValue"
                } else {
                    "Value"
                }
                .into(),
            );
            target.insert("value".into(), quantity(src.get("targetValue")));
            put(&mut target, "averageValue", average);
            out.insert(
                "object".into(),
                json!({
                    "describedObject": Value::Object(pick(&src["target"], &["kind", "name", "apiVersion"])),
                    "metric": identifier(src.get("metricName"), src.get("selector")),
                    "target": Value::Object(target),
                }),
            );
        }
        "External" => {
            let src = &m["external"];
            let value = src.get("targetValue").filter(|v| !v.is_null());
            let mut target = Map::new();
            target.insert(
                "type".into(),
                if value.is_some() {
                    "Value"
                } else {
                    "AverageValue"
                }
                .into(),
            );
            put(&mut target, "value", value);
            put(&mut target, "averageValue", src.get("targetAverageValue"));
            out.insert(
                "external".into(),
                json!({
                    "metric": identifier(src.get("metricName"), src.get("metricSelector")),
                    "target": Value::Object(target),
                }),
            );
        }
        _ => {}
    }
    Value::Object(out)
}

/// A v2 `MetricIdentifier`.
fn identifier(name: Option<&Value>, selector: Option<&Value>) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), name.cloned().unwrap_or(json!("")));
    put(&mut m, "selector", selector);
    Value::Object(m)
}

/// A v2 `MetricStatus` as v1's (the annotation form).
fn metric_status_to_v1(m: &Value) -> Value {
    let ty = m["type"].as_str().unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), ty.into());
    match ty {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let src = &m[key];
            let mut r = pick(src, &["name"]);
            put(
                &mut r,
                "currentAverageUtilization",
                src["current"].get("averageUtilization"),
            );
            r.insert(
                "currentAverageValue".into(),
                quantity(src["current"].get("averageValue")),
            );
            if ty == "ContainerResource" {
                r.insert(
                    "container".into(),
                    src.get("container").cloned().unwrap_or(json!("")),
                );
            }
            out.insert(key.into(), Value::Object(r));
        }
        "Pods" => {
            let src = &m["pods"];
            let mut p = Map::new();
            p.insert("metricName".into(), src["metric"]["name"].clone());
            p.insert(
                "currentAverageValue".into(),
                quantity(src["current"].get("averageValue")),
            );
            put(&mut p, "selector", src["metric"].get("selector"));
            out.insert("pods".into(), Value::Object(p));
        }
        "Object" => {
            let src = &m["object"];
            let mut o = Map::new();
            o.insert(
                "target".into(),
                Value::Object(pick(
                    &src["describedObject"],
                    &["kind", "name", "apiVersion"],
                )),
            );
            o.insert("metricName".into(), src["metric"]["name"].clone());
            o.insert("currentValue".into(), quantity(src["current"].get("value")));
            put(&mut o, "selector", src["metric"].get("selector"));
            put(&mut o, "averageValue", src["current"].get("averageValue"));
            out.insert("object".into(), Value::Object(o));
        }
        "External" => {
            let src = &m["external"];
            let mut e = Map::new();
            e.insert("metricName".into(), src["metric"]["name"].clone());
            put(&mut e, "metricSelector", src["metric"].get("selector"));
            e.insert("currentValue".into(), quantity(src["current"].get("value")));
            put(
                &mut e,
                "currentAverageValue",
                src["current"].get("averageValue"),
            );
            out.insert("external".into(), Value::Object(e));
        }
        _ => {}
    }
    Value::Object(out)
}

/// A v1 `MetricStatus` (from the annotation) as v2's.
fn metric_status_to_v2(m: &Value) -> Value {
    let ty = m["type"].as_str().unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), ty.into());
    match ty {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let src = &m[key];
            let mut current = Map::new();
            put(&mut current, "averageValue", src.get("currentAverageValue"));
            put(
                &mut current,
                "averageUtilization",
                src.get("currentAverageUtilization"),
            );
            let mut r = pick(src, &["name"]);
            if ty == "ContainerResource" {
                put(&mut r, "container", src.get("container"));
            }
            r.insert("current".into(), Value::Object(current));
            out.insert(key.into(), Value::Object(r));
        }
        "Pods" => {
            let src = &m["pods"];
            out.insert(
                "pods".into(),
                json!({
                    "metric": identifier(src.get("metricName"), src.get("selector")),
                    "current": {"averageValue": quantity(src.get("currentAverageValue"))},
                }),
            );
        }
        "Object" => {
            let src = &m["object"];
            let mut current = Map::new();
            current.insert("value".into(), quantity(src.get("currentValue")));
            put(&mut current, "averageValue", src.get("averageValue"));
            out.insert(
                "object".into(),
                json!({
                    "describedObject": Value::Object(pick(&src["target"], &["kind", "name", "apiVersion"])),
                    "metric": identifier(src.get("metricName"), src.get("selector")),
                    "current": Value::Object(current),
                }),
            );
        }
        "External" => {
            let src = &m["external"];
            let mut current = Map::new();
            current.insert("value".into(), quantity(src.get("currentValue")));
            put(&mut current, "averageValue", src.get("currentAverageValue"));
            out.insert(
                "external".into(),
                json!({
                    "metric": identifier(src.get("metricName"), src.get("metricSelector")),
                    "current": Value::Object(current),
                }),
            );
        }
        _ => {}
    }
    Value::Object(out)
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
    let mut spec = Map::new();
    put(&mut spec, "scaleTargetRef", spec2.get("scaleTargetRef"));
    put(&mut spec, "minReplicas", spec2.get("minReplicas"));
    put(&mut spec, "maxReplicas", spec2.get("maxReplicas"));
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
        .map(metric_spec_to_v1)
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
        let statuses: Vec<Value> = current.iter().map(metric_status_to_v1).collect();
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
        Some(Value::Array(list)) => list.iter().map(metric_spec_to_v2).collect(),
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
            Some(Value::Array(list)) => list.iter().map(metric_status_to_v2).collect(),
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
