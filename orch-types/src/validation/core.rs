//! core/v1 validation, after upstream `pkg/apis/core/validation/validation.go` (1.33).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, Container, Endpoints, EnvFromSource, EnvVar, Event, LifecycleHandler,
    Namespace, Node, NodeSelector, NodeSelectorRequirement, Pod, PodSpec, PodTemplateSpec, Probe,
    ReplicationController, ResourceRequirements, Secret, Service, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::field::{FieldError, Path};
use super::meta::{self, immutable, non_negative, positive};
use crate::labels::Selector;
use crate::names;
use crate::quantity::Quantity;

/// Upstream `MaxSecretSize` (also the ConfigMap limit).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// Upstream `ValidatePortNumOrName`.
fn port_num_or_name(port: &IntOrString, p: &Path) -> Vec<FieldError> {
    match port {
        IntOrString::Int(n) => names::is_valid_port_num(*n)
            .into_iter()
            .map(|m| FieldError::invalid_num(p.clone(), i64::from(*n), m))
            .collect(),
        IntOrString::String(s) if s.is_empty() => vec![FieldError::required(p.clone(), "")],
        IntOrString::String(s) => names::is_valid_port_name(s)
            .into_iter()
            .map(|m| FieldError::invalid(p.clone(), s, m))
            .collect(),
    }
}

fn port_num(n: i32, p: Path) -> Vec<FieldError> {
    names::is_valid_port_num(n)
        .into_iter()
        .map(|m| FieldError::invalid_num(p.clone(), i64::from(n), m))
        .collect()
}

fn protocol(v: Option<&str>, p: Path) -> Option<FieldError> {
    match v {
        None | Some("") => Some(FieldError::required(p, "")),
        Some(x) if !PROTOCOLS.contains(&x) => Some(FieldError::not_supported(p, x, PROTOCOLS)),
        _ => None,
    }
}

fn enum_field(v: Option<&str>, p: Path, allowed: &[&str], required: bool) -> Option<FieldError> {
    match v {
        None | Some("") if required => Some(FieldError::required(p, "")),
        None | Some("") => None,
        Some(x) if !allowed.contains(&x) => Some(FieldError::not_supported(p, x, allowed)),
        _ => None,
    }
}

/// Upstream `ValidateResourceRequirements` (quantities, non-negative, requests ≤ limits).
fn resources(r: &ResourceRequirements, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let parse = |list: Option<&BTreeMap<String, K8sQuantity>>,
                 lp: Path,
                 errs: &mut Vec<FieldError>| {
        let mut out = BTreeMap::new();
        for (k, v) in list.into_iter().flatten() {
            let rp = lp.key(k);
            if k.contains('/') || !["cpu", "memory", "ephemeral-storage"].contains(&k.as_str()) {
                for m in names::is_qualified_name(k) {
                    errs.push(FieldError::invalid(rp.clone(), k, m));
                }
            }
            match Quantity::try_from(v) {
                Ok(q) if q < Quantity::ZERO => errs.push(FieldError::invalid(
                    rp,
                    &q.to_string(),
                    "must be greater than or equal to 0",
                )),
                Ok(q) => {
                    out.insert(k.clone(), q);
                }
                Err(e) => errs.push(FieldError::invalid(rp, &v.0, e.to_string())),
            }
        }
        out
    };
    let limits = parse(r.limits.as_ref(), p.child("limits"), &mut errs);
    let requests = parse(r.requests.as_ref(), p.child("requests"), &mut errs);
    for (k, req) in &requests {
        if let Some(lim) = limits.get(k) {
            if req > lim {
                errs.push(FieldError::invalid(
                    p.child("requests").key(k),
                    &req.to_string(),
                    format!("must be less than or equal to {k} limit of {lim}"),
                ));
            }
        }
    }
    errs
}

fn handler_count(
    exec: bool,
    http: bool,
    tcp: bool,
    grpc: bool,
    sleep: bool,
    p: &Path,
) -> Vec<FieldError> {
    let set: Vec<&str> = [
        ("exec", exec),
        ("httpGet", http),
        ("tcpSocket", tcp),
        ("grpc", grpc),
        ("sleep", sleep),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(n, _)| *n)
    .collect();
    match set.len() {
        0 => vec![FieldError::required(
            p.clone(),
            "must specify a handler type",
        )],
        1 => vec![],
        _ => set[1..]
            .iter()
            .map(|n| FieldError::forbidden(p.child(n), "may not specify more than 1 handler type"))
            .collect(),
    }
}

fn http_get(h: &k8s_openapi::api::core::v1::HTTPGetAction, p: &Path) -> Vec<FieldError> {
    let mut errs = port_num_or_name(&h.port, &p.child("port"));
    if let Some(e) = enum_field(
        h.scheme.as_deref(),
        p.child("scheme"),
        &["HTTP", "HTTPS"],
        false,
    ) {
        errs.push(e);
    }
    errs
}

/// Upstream `validateProbe` + `validateHandler`.
fn probe(pr: &Probe, p: &Path, kind: &str) -> Vec<FieldError> {
    let mut errs = handler_count(
        pr.exec.is_some(),
        pr.http_get.is_some(),
        pr.tcp_socket.is_some(),
        pr.grpc.is_some(),
        false,
        p,
    );
    if let Some(e) = &pr.exec {
        if e.command.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required(p.child("exec").child("command"), ""));
        }
    }
    if let Some(h) = &pr.http_get {
        errs.extend(http_get(h, &p.child("httpGet")));
    }
    if let Some(t) = &pr.tcp_socket {
        errs.extend(port_num_or_name(
            &t.port,
            &p.child("tcpSocket").child("port"),
        ));
    }
    if let Some(g) = &pr.grpc {
        errs.extend(port_num(g.port, p.child("grpc").child("port")));
    }
    for (f, v) in [
        ("initialDelaySeconds", pr.initial_delay_seconds),
        ("timeoutSeconds", pr.timeout_seconds),
        ("periodSeconds", pr.period_seconds),
        ("successThreshold", pr.success_threshold),
        ("failureThreshold", pr.failure_threshold),
    ] {
        errs.extend(non_negative(v.map(i64::from), p.child(f)));
    }
    if kind != "readinessProbe" {
        if let Some(s) = pr.success_threshold {
            if s != 1 {
                errs.push(FieldError::invalid_num(
                    p.child("successThreshold"),
                    i64::from(s),
                    "must be 1",
                ));
            }
        }
    }
    if let Some(t) = pr.termination_grace_period_seconds {
        if kind == "readinessProbe" {
            errs.push(FieldError::invalid_num(
                p.child("terminationGracePeriodSeconds"),
                t,
                "must not be set for readinessProbes",
            ));
        } else {
            errs.extend(positive(Some(t), p.child("terminationGracePeriodSeconds")));
        }
    }
    errs
}

fn lifecycle_handler(h: &LifecycleHandler, p: &Path) -> Vec<FieldError> {
    let mut errs = handler_count(
        h.exec.is_some(),
        h.http_get.is_some(),
        h.tcp_socket.is_some(),
        false,
        h.sleep.is_some(),
        p,
    );
    if let Some(g) = &h.http_get {
        errs.extend(http_get(g, &p.child("httpGet")));
    }
    errs
}

/// What kind of container list is validated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ContainerKind {
    Regular,
    Init,
    /// Only the common rules: the fields an ephemeral container may not set are refused by
    /// [`ephemeral_forbidden`] instead (upstream `validateEphemeralContainers`).
    Ephemeral,
}

fn container(
    c: &Container,
    p: &Path,
    kind: ContainerKind,
    volumes: &BTreeSet<String>,
    host_network: bool,
    for_pod: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if c.name.is_empty() {
        errs.push(FieldError::required(p.child("name"), ""));
    } else {
        for m in names::is_dns1123_label(&c.name) {
            errs.push(FieldError::invalid(p.child("name"), &c.name, m));
        }
    }
    // Upstream `validateContainerCommon`: only an empty image is missing, in pods and in
    // templates alike (a template's " " is a placeholder some tools fill in later);
    // `validateContainersOnlyForPod` refuses surrounding whitespace in a pod
    // (pkg/apis/core/validation/validation.go).
    match c.image.as_deref() {
        None | Some("") => errs.push(FieldError::required(p.child("image"), "")),
        Some(i) if for_pod && i.trim() != i => errs.push(FieldError::invalid(
            p.child("image"),
            i,
            "must not have leading or trailing whitespace",
        )),
        Some(_) => {}
    }
    if let Some(e) = enum_field(
        c.image_pull_policy.as_deref(),
        p.child("imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
        true,
    ) {
        errs.push(e);
    }
    if let Some(e) = enum_field(
        c.termination_message_policy.as_deref(),
        p.child("terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
        true,
    ) {
        errs.push(e);
    }
    let sidecar = c.restart_policy.as_deref() == Some("Always");
    match (kind, c.restart_policy.as_deref()) {
        (_, None) | (ContainerKind::Ephemeral, _) => {}
        (ContainerKind::Regular, Some(_)) => errs.push(FieldError::forbidden(
            p.child("restartPolicy"),
            "may not be set for non-init containers",
        )),
        (ContainerKind::Init, Some("Always")) => {}
        (ContainerKind::Init, Some(x)) => errs.push(FieldError::not_supported(
            p.child("restartPolicy"),
            x,
            &["Always"],
        )),
    }
    // Ports.
    let mut port_names = BTreeSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let pp = p.child("ports").index(i);
        if let Some(n) = port.name.as_deref().filter(|n| !n.is_empty()) {
            for m in names::is_valid_port_name(n) {
                errs.push(FieldError::invalid(pp.child("name"), n, m));
            }
            if !port_names.insert(n.to_string()) {
                errs.push(FieldError::duplicate(pp.child("name"), n));
            }
        }
        errs.extend(port_num(port.container_port, pp.child("containerPort")));
        if let Some(h) = port.host_port.filter(|h| *h != 0) {
            errs.extend(port_num(h, pp.child("hostPort")));
            if host_network && h != port.container_port {
                errs.push(FieldError::invalid_num(
                    pp.child("hostPort"),
                    i64::from(h),
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
        errs.extend(protocol(port.protocol.as_deref(), pp.child("protocol")));
    }
    errs.extend(env(c.env.as_deref().unwrap_or_default(), &p.child("env")));
    errs.extend(env_from(
        c.env_from.as_deref().unwrap_or_default(),
        &p.child("envFrom"),
    ));
    errs.extend(volume_mounts(
        c.volume_mounts.as_deref().unwrap_or_default(),
        volumes,
        &p.child("volumeMounts"),
    ));
    // Probes and lifecycle (an ephemeral container may set neither: ephemeral_forbidden).
    if kind == ContainerKind::Ephemeral {
        if let Some(r) = &c.resources {
            errs.extend(resources(r, &p.child("resources")));
        }
        return errs;
    }
    for (name, pr) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        let Some(pr) = pr else { continue };
        if kind == ContainerKind::Init && !sidecar {
            errs.push(FieldError::forbidden(
                p.child(name),
                "may not be set for init containers without restartPolicy=Always",
            ));
        } else {
            errs.extend(probe(pr, &p.child(name), name));
        }
    }
    if let Some(l) = &c.lifecycle {
        if kind == ContainerKind::Init && !sidecar {
            errs.push(FieldError::forbidden(
                p.child("lifecycle"),
                "may not be set for init containers without restartPolicy=Always",
            ));
        } else {
            if let Some(h) = &l.post_start {
                errs.extend(lifecycle_handler(
                    h,
                    &p.child("lifecycle").child("postStart"),
                ));
            }
            if let Some(h) = &l.pre_stop {
                errs.extend(lifecycle_handler(h, &p.child("lifecycle").child("preStop")));
            }
        }
    }
    if let Some(r) = &c.resources {
        errs.extend(resources(r, &p.child("resources")));
    }
    errs
}

/// The message of upstream's relaxed environment variable name check (`IsRelaxedEnvVarName`).
const ENV_VAR_NAME_MSG: &str =
    "a valid environment variable name must consist only of printable ASCII characters other than '='";

/// Upstream `IsRelaxedEnvVarName`: printable ASCII but `=`.
fn env_var_name_ok(name: &str) -> bool {
    name.bytes().all(|b| (32..=126).contains(&b) && b != b'=')
}

/// Upstream `ValidateEnv`: names, and `valueFrom` with exactly one source and no `value`.
pub(crate) fn env(vars: &[EnvVar], p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, e) in vars.iter().enumerate() {
        let ep = p.index(i);
        if e.name.is_empty() {
            errs.push(FieldError::required(ep.child("name"), ""));
        } else if !env_var_name_ok(&e.name) {
            errs.push(FieldError::invalid(
                ep.child("name"),
                &e.name,
                ENV_VAR_NAME_MSG,
            ));
        }
        if let Some(vf) = &e.value_from {
            let n = [
                vf.field_ref.is_some(),
                vf.resource_field_ref.is_some(),
                vf.config_map_key_ref.is_some(),
                vf.secret_key_ref.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if n == 0 {
                errs.push(FieldError::invalid(ep.child("valueFrom"), "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
            } else if n > 1 {
                errs.push(FieldError::invalid(
                    ep.child("valueFrom"),
                    "",
                    "may not have more than one field specified at a time",
                ));
            }
            if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errs.push(FieldError::invalid(
                    ep.child("valueFrom"),
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
        }
    }
    errs
}

/// Upstream `ValidateEnvFrom`: exactly one of `configMapRef` / `secretRef`, each naming a valid
/// object, and a valid variable-name `prefix`.
pub(crate) fn env_from(sources: &[EnvFromSource], p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ef) in sources.iter().enumerate() {
        let ep = p.index(i);
        if let Some(prefix) = ef.prefix.as_deref().filter(|x| !x.is_empty()) {
            if !env_var_name_ok(prefix) {
                errs.push(FieldError::invalid(
                    ep.child("prefix"),
                    prefix,
                    ENV_VAR_NAME_MSG,
                ));
            }
        }
        let refs = [
            ("configMapRef", ef.config_map_ref.as_ref().map(|r| &r.name)),
            ("secretRef", ef.secret_ref.as_ref().map(|r| &r.name)),
        ];
        let mut count = 0;
        for (field, name) in refs {
            let Some(name) = name else { continue };
            count += 1;
            let np = ep.child(field).child("name");
            if name.is_empty() {
                errs.push(FieldError::required(np, ""));
            } else {
                for m in names::is_dns1123_subdomain(name) {
                    errs.push(FieldError::invalid(np.clone(), name, m));
                }
            }
        }
        match count {
            // Upstream reports this one on the list, not the entry.
            0 => errs.push(FieldError::invalid(
                p.clone(),
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            )),
            1 => {}
            _ => errs.push(FieldError::forbidden(
                ep,
                "may not have more than one field specified at a time",
            )),
        }
    }
    errs
}

/// Upstream `ValidateVolumeMounts`: each names one of `volumes` and has a unique `mountPath`.
pub(crate) fn volume_mounts(
    mounts: &[VolumeMount],
    volumes: &BTreeSet<String>,
    p: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut mount_paths = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let mp = p.index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(mp.child("name"), ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(mp.child("name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(mp.child("mountPath"), ""));
        } else if !mount_paths.insert(m.mount_path.clone()) {
            errs.push(FieldError::invalid(
                mp.child("mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
    }
    errs
}

/// Upstream `ValidateVolumes`: names unique DNS labels, exactly one source each; returns the
/// names (for [`volume_mounts`]) and the errors.
pub(crate) fn volumes(vs: &[Volume], p: &Path) -> (BTreeSet<String>, Vec<FieldError>) {
    let mut errs = Vec::new();
    let mut vol_names = BTreeSet::new();
    for (i, v) in vs.iter().enumerate() {
        let vp = p.index(i);
        if v.name.is_empty() {
            errs.push(FieldError::required(vp.child("name"), ""));
        } else {
            for m in names::is_dns1123_label(&v.name) {
                errs.push(FieldError::invalid(vp.child("name"), &v.name, m));
            }
            if !vol_names.insert(v.name.clone()) {
                errs.push(FieldError::duplicate(vp.child("name"), &v.name));
            }
        }
        let sources = volume_source_count(v);
        match sources.len() {
            0 => errs.push(FieldError::required(
                vp.clone(),
                "must specify a volume type",
            )),
            1 => {}
            _ => {
                for src in &sources[1..] {
                    errs.push(FieldError::forbidden(
                        vp.child(src),
                        "may not specify more than 1 volume type",
                    ));
                }
            }
        }
    }
    (vol_names, errs)
}

fn volume_source_count(v: &Volume) -> Vec<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(m)) => m.keys().filter(|k| *k != "name").cloned().collect(),
        _ => Vec::new(),
    }
}

fn node_selector_requirement(
    r: &NodeSelectorRequirement,
    p: &Path,
    fields: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let n = r.values.as_ref().map_or(0, Vec::len);
    match r.operator.as_str() {
        "In" | "NotIn" => {
            if n == 0 {
                errs.push(FieldError::required(
                    p.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            } else if fields && n != 1 {
                errs.push(FieldError::required(p.child("values"), "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"));
            }
        }
        "Exists" | "DoesNotExist" if !fields => {
            if n > 0 {
                errs.push(FieldError::forbidden(
                    p.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        "Gt" | "Lt" if !fields => {
            let ok = n == 1
                && r.values
                    .as_ref()
                    .is_some_and(|v| v[0].parse::<i64>().is_ok());
            if !ok {
                errs.push(FieldError::required(
                    p.child("values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            }
        }
        other => errs.push(FieldError::invalid(
            p.child("operator"),
            other,
            "not a valid selector operator",
        )),
    }
    if fields {
        if r.key != "metadata.name" {
            errs.push(FieldError::invalid(
                p.child("key"),
                &r.key,
                "not a valid field selector key",
            ));
        }
    } else {
        for m in names::is_qualified_name(&r.key) {
            errs.push(FieldError::invalid(p.child("key"), &r.key, m));
        }
    }
    errs
}

/// Upstream `ValidateNodeSelector` (a PersistentVolume's `nodeAffinity.required`): at least
/// one term, each requirement checked like a pod's node affinity.
pub(super) fn node_selector(ns: &NodeSelector, p: &Path) -> Vec<FieldError> {
    let tp = p.child("nodeSelectorTerms");
    if ns.node_selector_terms.is_empty() {
        return vec![FieldError::required(
            tp,
            "must have at least one node selector term",
        )];
    }
    let mut errs = Vec::new();
    for (i, t) in ns.node_selector_terms.iter().enumerate() {
        let ip = tp.index(i);
        for (j, r) in t.match_expressions.iter().flatten().enumerate() {
            errs.extend(node_selector_requirement(
                r,
                &ip.child("matchExpressions").index(j),
                false,
            ));
        }
        for (j, r) in t.match_fields.iter().flatten().enumerate() {
            errs.extend(node_selector_requirement(
                r,
                &ip.child("matchFields").index(j),
                true,
            ));
        }
    }
    errs
}

fn affinity(a: &Affinity, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(na) = &a.node_affinity {
        let np = p.child("nodeAffinity");
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            let rp = np.child("requiredDuringSchedulingIgnoredDuringExecution");
            if req.node_selector_terms.is_empty() {
                errs.push(FieldError::required(
                    rp.child("nodeSelectorTerms"),
                    "must have at least one node selector term",
                ));
            }
            for (i, t) in req.node_selector_terms.iter().enumerate() {
                let tp = rp.child("nodeSelectorTerms").index(i);
                for (j, r) in t.match_expressions.iter().flatten().enumerate() {
                    errs.extend(node_selector_requirement(
                        r,
                        &tp.child("matchExpressions").index(j),
                        false,
                    ));
                }
                for (j, r) in t.match_fields.iter().flatten().enumerate() {
                    errs.extend(node_selector_requirement(
                        r,
                        &tp.child("matchFields").index(j),
                        true,
                    ));
                }
            }
        }
        for (i, pt) in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            let pp = np
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            if !(1..=100).contains(&pt.weight) {
                errs.push(FieldError::invalid_num(
                    pp.child("weight"),
                    i64::from(pt.weight),
                    "must be in the range 1-100",
                ));
            }
            for (j, r) in pt.preference.match_expressions.iter().flatten().enumerate() {
                errs.extend(node_selector_requirement(
                    r,
                    &pp.child("preference").child("matchExpressions").index(j),
                    false,
                ));
            }
        }
    }
    let pod_terms = [
        (
            "podAffinity",
            a.pod_affinity.as_ref().map(|x| {
                (
                    &x.required_during_scheduling_ignored_during_execution,
                    &x.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
        (
            "podAntiAffinity",
            a.pod_anti_affinity.as_ref().map(|x| {
                (
                    &x.required_during_scheduling_ignored_during_execution,
                    &x.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
    ];
    for (name, terms) in pod_terms {
        let Some((req, pref)) = terms else { continue };
        let ap = p.child(name);
        let check = |t: &k8s_openapi::api::core::v1::PodAffinityTerm,
                     tp: Path,
                     errs: &mut Vec<FieldError>| {
            if t.topology_key.is_empty() {
                errs.push(FieldError::required(
                    tp.child("topologyKey"),
                    "can not be empty",
                ));
            } else {
                for m in names::is_qualified_name(&t.topology_key) {
                    errs.push(FieldError::invalid(
                        tp.child("topologyKey"),
                        &t.topology_key,
                        m,
                    ));
                }
            }
            if let Some(s) = &t.label_selector {
                errs.extend(meta::label_selector(s, &tp.child("labelSelector")));
            }
        };
        for (i, t) in req.iter().flatten().enumerate() {
            check(
                t,
                ap.child("requiredDuringSchedulingIgnoredDuringExecution")
                    .index(i),
                &mut errs,
            );
        }
        for (i, w) in pref.iter().flatten().enumerate() {
            let wp = ap
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            if !(1..=100).contains(&w.weight) {
                errs.push(FieldError::invalid_num(
                    wp.child("weight"),
                    i64::from(w.weight),
                    "must be in the range 1-100",
                ));
            }
            check(&w.pod_affinity_term, wp.child("podAffinityTerm"), &mut errs);
        }
    }
    errs
}

/// Upstream `ValidateTolerations`.
pub(crate) fn tolerations(ts: &[Toleration], p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, t) in ts.iter().enumerate() {
        let tp = p.index(i);
        let key = t.key.as_deref().unwrap_or("");
        if !key.is_empty() {
            for m in names::is_qualified_name(key) {
                errs.push(FieldError::invalid(tp.child("key"), key, m));
            }
        }
        let op = t.operator.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                tp.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
            errs.push(FieldError::invalid(
                tp.child("effect"),
                t.effect.as_deref().unwrap_or(""),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "" | "Equal" => {
                for m in names::is_valid_label_value(value) {
                    errs.push(FieldError::invalid(tp.child("value"), value, m));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        tp.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                tp.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if let Some(e) = enum_field(
            t.effect.as_deref(),
            tp.child("effect"),
            &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            false,
        ) {
            errs.push(e);
        }
    }
    errs
}

/// Upstream `validateTopologySpreadConstraints`.
fn topology_spread(
    cs: &[k8s_openapi::api::core::v1::TopologySpreadConstraint],
    p: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, c) in cs.iter().enumerate() {
        let cp = p.index(i);
        if c.max_skew <= 0 {
            errs.push(FieldError::invalid_num(
                cp.child("maxSkew"),
                i64::from(c.max_skew),
                "must be greater than zero",
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(FieldError::required(
                cp.child("topologyKey"),
                "can not be empty",
            ));
        } else {
            for m in names::is_qualified_name(&c.topology_key) {
                errs.push(FieldError::invalid(
                    cp.child("topologyKey"),
                    &c.topology_key,
                    m,
                ));
            }
        }
        let wu = c.when_unsatisfiable.as_str();
        if !["DoNotSchedule", "ScheduleAnyway"].contains(&wu) {
            errs.push(FieldError::not_supported(
                cp.child("whenUnsatisfiable"),
                wu,
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if let Some(md) = c.min_domains {
            if md <= 0 {
                errs.push(FieldError::invalid_num(
                    cp.child("minDomains"),
                    i64::from(md),
                    "must be greater than 0",
                ));
            } else if wu != "DoNotSchedule" {
                errs.push(FieldError::invalid_num(cp.child("minDomains"), i64::from(md), "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway"));
            }
        }
        for (f, v) in [
            ("nodeAffinityPolicy", &c.node_affinity_policy),
            ("nodeTaintsPolicy", &c.node_taints_policy),
        ] {
            if let Some(e) = enum_field(v.as_deref(), cp.child(f), &["Honor", "Ignore"], false) {
                errs.push(e);
            }
        }
        if let Some(s) = &c.label_selector {
            errs.extend(meta::label_selector(s, &cp.child("labelSelector")));
        }
        if !seen.insert((c.topology_key.clone(), c.when_unsatisfiable.clone())) {
            errs.push(FieldError::duplicate(
                cp.child("{topologyKey, whenUnsatisfiable}"),
                &format!("{}, {}", c.topology_key, wu),
            ));
        }
    }
    errs
}

/// Upstream's message for a field an ephemeral container may not set.
pub(crate) const NOT_FOR_EPHEMERAL: &str = "cannot be set for an Ephemeral Container";

/// The fields an ephemeral container may not set, in upstream's field order (everything
/// outside `allowedEphemeralContainerFields`: set means not Go's zero value, so an empty
/// `resources: {}` passes but an empty list does not), and volume mounts with `subPath` or
/// `subPathExpr`.
fn ephemeral_forbidden(c: &Container, p: &Path) -> Vec<FieldError> {
    let set = [
        ("ports", c.ports.is_some()),
        (
            "resources",
            c.resources
                .as_ref()
                .is_some_and(|r| *r != ResourceRequirements::default()),
        ),
        ("resizePolicy", c.resize_policy.is_some()),
        ("restartPolicy", c.restart_policy.is_some()),
        ("livenessProbe", c.liveness_probe.is_some()),
        ("readinessProbe", c.readiness_probe.is_some()),
        ("startupProbe", c.startup_probe.is_some()),
        ("lifecycle", c.lifecycle.is_some()),
    ];
    let mut errs: Vec<FieldError> = set
        .iter()
        .filter(|(_, set)| *set)
        .map(|(f, _)| FieldError::forbidden(p.child(f), NOT_FOR_EPHEMERAL))
        .collect();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = p.child("volumeMounts").index(i);
        if m.sub_path.as_deref().is_some_and(|s| !s.is_empty()) {
            errs.push(FieldError::forbidden(
                mp.child("subPath"),
                NOT_FOR_EPHEMERAL,
            ));
        }
        if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
            errs.push(FieldError::forbidden(
                mp.child("subPathExpr"),
                NOT_FOR_EPHEMERAL,
            ));
        }
    }
    errs
}

/// Upstream `ValidatePodSpec` (the parts orch models). `for_pod` is false inside templates.
pub(crate) fn pod_spec(s: &PodSpec, p: &Path, for_pod: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (vol_names, vol_errs) = volumes(
        s.volumes.as_deref().unwrap_or_default(),
        &p.child("volumes"),
    );
    errs.extend(vol_errs);
    // Containers.
    let host_network = s.host_network == Some(true);
    if s.containers.is_empty() {
        errs.push(FieldError::required(p.child("containers"), ""));
    }
    let mut all_names = BTreeSet::new();
    for (i, c) in s.init_containers.iter().flatten().enumerate() {
        let cp = p.child("initContainers").index(i);
        errs.extend(container(
            c,
            &cp,
            ContainerKind::Init,
            &vol_names,
            host_network,
            for_pod,
        ));
        if !c.name.is_empty() && !all_names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(cp.child("name"), &c.name));
        }
    }
    for (i, c) in s.containers.iter().enumerate() {
        let cp = p.child("containers").index(i);
        errs.extend(container(
            c,
            &cp,
            ContainerKind::Regular,
            &vol_names,
            host_network,
            for_pod,
        ));
        if !c.name.is_empty() && !all_names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(cp.child("name"), &c.name));
        }
    }
    // Ephemeral containers (upstream `validateEphemeralContainers`): the common container
    // rules (and the pod-only ones, even in a template), a name unique among all containers,
    // a target that is a regular or init container, and none of the fields they may not set.
    let targets: BTreeSet<&str> = s
        .containers
        .iter()
        .chain(s.init_containers.iter().flatten())
        .map(|c| c.name.as_str())
        .collect();
    for (i, e) in s.ephemeral_containers.iter().flatten().enumerate() {
        let cp = p.child("ephemeralContainers").index(i);
        let c = crate::ephemeral::as_container(e);
        errs.extend(container(
            &c,
            &cp,
            ContainerKind::Ephemeral,
            &vol_names,
            host_network,
            true,
        ));
        if !c.name.is_empty() && !all_names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(cp.child("name"), &c.name));
        }
        if let Some(t) = e.target_container_name.as_deref().filter(|t| !t.is_empty()) {
            if !targets.contains(t) {
                errs.push(FieldError::not_found(cp.child("targetContainerName"), t));
            }
        }
        errs.extend(ephemeral_forbidden(&c, &cp));
    }
    if let Some(e) = enum_field(
        s.restart_policy.as_deref(),
        p.child("restartPolicy"),
        RESTART_POLICIES,
        true,
    ) {
        errs.push(e);
    }
    if let Some(e) = enum_field(
        s.dns_policy.as_deref(),
        p.child("dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        true,
    ) {
        errs.push(e);
    }
    errs.extend(pod_dns_config(
        s.dns_config.as_ref(),
        s.dns_policy.as_deref(),
        &p.child("dnsConfig"),
    ));
    errs.extend(meta::labels(
        s.node_selector.as_ref(),
        &p.child("nodeSelector"),
    ));
    for (f, v) in [
        ("serviceAccountName", &s.service_account_name),
        ("nodeName", &s.node_name),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            for m in names::is_dns1123_subdomain(v) {
                errs.push(FieldError::invalid(p.child(f), v, m));
            }
        }
    }
    for (f, v) in [("hostname", &s.hostname), ("subdomain", &s.subdomain)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            for m in names::is_dns1123_label(v) {
                errs.push(FieldError::invalid(p.child(f), v, m));
            }
        }
    }
    if let Some(a) = s.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&a) {
            errs.push(FieldError::invalid_num(
                p.child("activeDeadlineSeconds"),
                a,
                format!("must be between 1 and {}, inclusive", i32::MAX),
            ));
        }
    }
    if let Some(t) = &s.tolerations {
        errs.extend(tolerations(t, &p.child("tolerations")));
    }
    if let Some(a) = &s.affinity {
        errs.extend(affinity(a, &p.child("affinity")));
    }
    errs.extend(topology_spread(
        s.topology_spread_constraints.as_deref().unwrap_or_default(),
        &p.child("topologySpreadConstraints"),
    ));
    if let Some(e) = enum_field(
        s.preemption_policy.as_deref(),
        p.child("preemptionPolicy"),
        &["Never", "PreemptLowerPriority"],
        false,
    ) {
        errs.push(e);
    }
    if let Some(o) = &s.overhead {
        errs.extend(
            resources(
                &ResourceRequirements {
                    requests: Some(o.clone()),
                    ..Default::default()
                },
                p,
            )
            .into_iter()
            .map(|mut e| {
                e.path = e
                    .path
                    .replacen(&format!("{p}.requests"), &format!("{p}.overhead"), 1);
                e
            }),
        );
    }
    errs
}

/// Pod (create).
pub(crate) fn pod(pod: &Pod) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&pod.metadata, true, meta::NameRule::Subdomain);
    match &pod.spec {
        Some(s) => errs.extend(pod_spec(s, &Path::new("spec"), true)),
        None => errs.push(FieldError::required("spec", "")),
    }
    errs
}

/// What upstream `ValidatePodCreate` adds for a new pod only: ephemeral containers come
/// through the `ephemeralcontainers` subresource of an existing pod, never with the pod.
pub(crate) fn pod_create(pod: &Pod) -> Vec<FieldError> {
    let set = pod
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref())
        .is_some_and(|e| !e.is_empty());
    if set {
        vec![FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        )]
    } else {
        Vec::new()
    }
}

/// The annotation of a mirror (static) pod.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Upstream `ValidatePodEphemeralContainersUpdate`: the metadata update, `pod_errors` (the
/// pod's own rules on `new`, which the caller ran), no static pod (that error alone, as
/// upstream), and existing ephemeral containers neither removed nor changed (matched by name,
/// as a patch need not keep their order), so they can only be added. The "may not be changed"
/// message ends in our own diff of the fields, not go-cmp's.
pub(crate) fn pod_ephemeral_containers_update(
    new: &Pod,
    old: &Pod,
    pod_errors: Vec<FieldError>,
) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    errs.extend(pod_errors);
    let mirror = old
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION));
    if mirror {
        return vec![FieldError::forbidden(
            "",
            "static pods do not support ephemeral containers",
        )];
    }
    let list = |p: &Pod| p.spec.as_ref().and_then(|s| s.ephemeral_containers.clone());
    let (new_list, old_list) = (list(new).unwrap_or_default(), list(old).unwrap_or_default());
    for o in &old_list {
        match new_list.iter().find(|n| n.name == o.name) {
            None => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!(
                    "existing ephemeral containers {:?} may not be removed\n",
                    o.name
                ),
            )),
            Some(n) if n != o => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!(
                    "existing ephemeral containers {:?} may not be changed\n{}",
                    o.name,
                    field_diff(o, n)
                ),
            )),
            Some(_) => {}
        }
    }
    errs
}

/// A line per top-level field that differs between two objects' JSON forms: `-field: old`
/// and `+field: new` (absent fields print as `null`).
fn field_diff<T: serde::Serialize>(old: &T, new: &T) -> String {
    let as_map = |v: &T| match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (o, n) = (as_map(old), as_map(new));
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let null = serde_json::Value::Null;
    let mut out = String::new();
    for k in keys {
        let (a, b) = (o.get(k).unwrap_or(&null), n.get(k).unwrap_or(&null));
        if a != b {
            out.push_str(&format!("-{k}: {a}\n+{k}: {b}\n"));
        }
    }
    out
}

/// Upstream `ValidatePodUpdate`: only images, activeDeadlineSeconds, tolerations (additions)
/// and scheduling-gate removal may change.
pub(crate) fn pod_update(new: &Pod, old: &Pod) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    let (Some(ns), Some(os)) = (&new.spec, &old.spec) else {
        return errs;
    };
    let mut mutated = os.clone();
    for (m, n) in mutated.containers.iter_mut().zip(&ns.containers) {
        m.image.clone_from(&n.image);
    }
    for (m, n) in mutated
        .init_containers
        .iter_mut()
        .flatten()
        .zip(ns.init_containers.iter().flatten())
    {
        m.image.clone_from(&n.image);
    }
    mutated.active_deadline_seconds = ns.active_deadline_seconds;
    // Tolerations are checked on their own: every old one must stay, only its
    // tolerationSeconds may change (upstream `validateOnlyAddedTolerations`).
    let new_tols = ns.tolerations.as_deref().unwrap_or_default();
    let kept = |old: &k8s_openapi::api::core::v1::Toleration| {
        new_tols.iter().any(|n| {
            let mut o = old.clone();
            o.toleration_seconds = n.toleration_seconds;
            &o == n
        })
    };
    if !os.tolerations.iter().flatten().all(kept) {
        errs.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    mutated.tolerations.clone_from(&ns.tolerations);
    let old_gates = os.scheduling_gates.clone().unwrap_or_default();
    if ns
        .scheduling_gates
        .iter()
        .flatten()
        .all(|g| old_gates.contains(g))
    {
        mutated.scheduling_gates.clone_from(&ns.scheduling_gates);
    }
    if os.termination_grace_period_seconds.is_some_and(|t| t < 0)
        && ns.termination_grace_period_seconds == Some(1)
    {
        mutated.termination_grace_period_seconds = Some(1);
    }
    if &mutated != ns {
        errs.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
    errs
}

/// Upstream `ValidatePodTemplateSpecForReplicaSet`-style checks shared by workload kinds:
/// template labels match the selector, restartPolicy must be one of `restart` (an empty
/// `restart`: the caller checks it, as Job does), no activeDeadlineSeconds (unless
/// `allow_deadline`).
pub(crate) fn workload_template(
    t: Option<&PodTemplateSpec>,
    selector: Option<&Selector>,
    p: &Path,
    restart: &[&str],
    deadline_owner: Option<&str>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(t) = t else {
        errs.push(FieldError::required(p.clone(), ""));
        return errs;
    };
    let empty = BTreeMap::new();
    let tlabels = t
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&empty);
    if let Some(sel) = selector {
        if !sel.is_everything() && !sel.matches(tlabels) {
            errs.push(FieldError::invalid_raw(
                p.child("metadata").child("labels"),
                format!("{:?}", tlabels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if let Some(m) = &t.metadata {
        errs.extend(meta::labels(
            m.labels.as_ref(),
            &p.child("metadata").child("labels"),
        ));
        errs.extend(meta::annotations(
            m.annotations.as_ref(),
            &p.child("metadata").child("annotations"),
        ));
    }
    let sp = p.child("spec");
    match &t.spec {
        Some(s) => {
            errs.extend(pod_spec(s, &sp, false));
            let rp = s.restart_policy.as_deref().unwrap_or("");
            if !restart.is_empty() && !rp.is_empty() && !restart.contains(&rp) {
                errs.push(FieldError::not_supported(
                    sp.child("restartPolicy"),
                    rp,
                    restart,
                ));
            }
            if let (Some(owner), Some(_)) = (deadline_owner, s.active_deadline_seconds) {
                errs.push(FieldError::forbidden(
                    sp.child("activeDeadlineSeconds"),
                    format!("activeDeadlineSeconds in {owner} is not Supported"),
                ));
            }
        }
        None => errs.push(FieldError::required(sp, "")),
    }
    errs
}

/// PodTemplate (upstream `ValidatePodTemplate`): its name is a pod name, and its template is
/// validated as a pod template of any workload, except that it may not hold ephemeral
/// containers (`ValidatePodTemplateSpec`).
pub(crate) fn pod_template(t: &k8s_openapi::api::core::v1::PodTemplate) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&t.metadata, true, meta::NameRule::Subdomain);
    let p = Path::new("template");
    errs.extend(workload_template(t.template.as_ref(), None, &p, &[], None));
    if let Some(spec) = t.template.as_ref().and_then(|t| t.spec.as_ref()) {
        if spec
            .ephemeral_containers
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            errs.push(FieldError::forbidden(
                p.child("spec").child("ephemeralContainers"),
                "ephemeral containers not allowed in pod template",
            ));
        }
    }
    errs
}

/// Service (create).
pub(crate) fn service(svc: &Service) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&svc.metadata, true, meta::NameRule::Dns1035);
    let sp = Path::new("spec");
    let Some(s) = &svc.spec else {
        errs.push(FieldError::required(sp, ""));
        return errs;
    };
    let ty = s.type_.as_deref().unwrap_or("ClusterIP");
    if let Some(e) = enum_field(
        Some(ty),
        sp.child("type"),
        &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        true,
    ) {
        errs.push(e);
    }
    let headless = s.cluster_ip.as_deref() == Some("None");
    let ports = s.ports.as_deref().unwrap_or_default();
    if ty == "ExternalName" {
        match s.external_name.as_deref() {
            None | Some("") => errs.push(FieldError::required(sp.child("externalName"), "")),
            Some(n) => {
                for m in names::is_dns1123_subdomain(n.trim_end_matches('.')) {
                    errs.push(FieldError::invalid(sp.child("externalName"), n, m));
                }
            }
        }
    } else if ports.is_empty() && !headless {
        errs.push(FieldError::required(sp.child("ports"), ""));
    }
    let mut port_names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = sp.child("ports").index(i);
        match port.name.as_deref().filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => errs.push(FieldError::required(pp.child("name"), "")),
            None => {}
            Some(n) => {
                for m in names::is_dns1123_label(n) {
                    errs.push(FieldError::invalid(pp.child("name"), n, m));
                }
                if !port_names.insert(n.to_string()) {
                    errs.push(FieldError::duplicate(pp.child("name"), n));
                }
            }
        }
        errs.extend(port_num(port.port, pp.child("port")));
        errs.extend(protocol(port.protocol.as_deref(), pp.child("protocol")));
        if let Some(tp) = &port.target_port {
            errs.extend(port_num_or_name(tp, &pp.child("targetPort")));
        }
        if let Some(np) = port.node_port.filter(|n| *n != 0) {
            if ty == "ClusterIP" {
                errs.push(FieldError::forbidden(
                    pp.child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else {
                errs.extend(port_num(np, pp.child("nodePort")));
            }
        }
    }
    if let Some(e) = enum_field(
        s.session_affinity.as_deref(),
        sp.child("sessionAffinity"),
        &["ClientIP", "None"],
        false,
    ) {
        errs.push(e);
    }
    errs.extend(meta::labels(s.selector.as_ref(), &sp.child("selector")));
    if let Some(ip) = s
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    {
        if ip.parse::<std::net::IpAddr>().is_err() {
            errs.push(FieldError::invalid(
                sp.child("clusterIP"),
                ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    for (f, v, allowed) in [
        (
            "externalTrafficPolicy",
            &s.external_traffic_policy,
            &["Cluster", "Local"][..],
        ),
        (
            "internalTrafficPolicy",
            &s.internal_traffic_policy,
            &["Cluster", "Local"][..],
        ),
        (
            "ipFamilyPolicy",
            &s.ip_family_policy,
            &["SingleStack", "PreferDualStack", "RequireDualStack"][..],
        ),
    ] {
        if let Some(e) = enum_field(v.as_deref(), sp.child(f), allowed, false) {
            errs.push(e);
        }
    }
    errs
}

/// Service update: clusterIP immutable once set (except to/from ExternalName).
pub(crate) fn service_update(new: &Service, old: &Service) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    let ns = new.spec.clone().unwrap_or_default();
    let os = old.spec.clone().unwrap_or_default();
    let external =
        |s: &k8s_openapi::api::core::v1::ServiceSpec| s.type_.as_deref() == Some("ExternalName");
    if !external(&ns) && !external(&os) {
        if let (Some(o), Some(n)) = (os.cluster_ip.as_deref(), ns.cluster_ip.as_deref()) {
            if !o.is_empty() && !n.is_empty() && o != n {
                errs.push(immutable(Path::new("spec").child("clusterIP"), n));
            }
        }
    }
    errs
}

fn data_keys(keys: impl Iterator<Item = String>, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for k in keys {
        for m in names::is_config_map_key(&k) {
            errs.push(FieldError::invalid(p.key(&k), &k, m));
        }
    }
    errs
}

/// ConfigMap (create).
pub(crate) fn config_map(cm: &ConfigMap) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&cm.metadata, true, meta::NameRule::Subdomain);
    errs.extend(data_keys(
        cm.data.iter().flat_map(|d| d.keys().cloned()),
        &Path::new("data"),
    ));
    errs.extend(data_keys(
        cm.binary_data.iter().flat_map(|d| d.keys().cloned()),
        &Path::new("binaryData"),
    ));
    let mut size = 0;
    for (k, v) in cm.data.iter().flatten() {
        size += k.len() + v.len();
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        size += k.len() + v.0.len();
        if cm.data.as_ref().is_some_and(|d| d.contains_key(k)) {
            errs.push(FieldError::invalid(
                Path::new("binaryData").key(k),
                k,
                "duplicate of key present in data",
            ));
        }
    }
    if size > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
    errs
}

/// ConfigMap update: data frozen when `immutable: true`.
pub(crate) fn config_map_update(new: &ConfigMap, old: &ConfigMap) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        if new.data != old.data {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
        if new.binary_data != old.binary_data {
            errs.push(FieldError::forbidden(
                "binaryData",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

/// Secret (create), with the per-type required keys.
pub(crate) fn secret(s: &Secret) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&s.metadata, true, meta::NameRule::Subdomain);
    let dp = Path::new("data");
    let mut keys: BTreeSet<String> = s.data.iter().flat_map(|d| d.keys().cloned()).collect();
    keys.extend(s.string_data.iter().flat_map(|d| d.keys().cloned()));
    errs.extend(data_keys(keys.iter().cloned(), &dp));
    let size: usize = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.0.len())
        .sum::<usize>()
        + s.string_data
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    if size > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(dp.clone(), MAX_SECRET_SIZE));
    }
    let need = |k: &str, errs: &mut Vec<FieldError>| {
        if !keys.contains(k) {
            errs.push(FieldError::required(dp.key(k), ""));
        }
    };
    match s.type_.as_deref().unwrap_or("Opaque") {
        "kubernetes.io/service-account-token" => {
            let has = s.metadata.annotations.as_ref().is_some_and(|a| {
                a.get("kubernetes.io/service-account.name")
                    .is_some_and(|v| !v.is_empty())
            });
            if !has {
                errs.push(FieldError::required(
                    Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => need(".dockercfg", &mut errs),
        "kubernetes.io/dockerconfigjson" => need(".dockerconfigjson", &mut errs),
        "kubernetes.io/basic-auth" if !keys.contains("username") && !keys.contains("password") => {
            errs.push(FieldError::required(dp.key("username"), ""));
            errs.push(FieldError::required(dp.key("password"), ""));
        }
        "kubernetes.io/ssh-auth" => need("ssh-privatekey", &mut errs),
        "kubernetes.io/tls" => {
            need("tls.crt", &mut errs);
            need("tls.key", &mut errs);
        }
        _ => {}
    }
    errs
}

/// Secret update: type immutable; data frozen when `immutable: true`.
pub(crate) fn secret_update(new: &Secret, old: &Secret) -> Vec<FieldError> {
    let mut errs = meta::object_meta_update(&new.metadata, &old.metadata);
    if new.type_ != old.type_ {
        errs.push(immutable(
            Path::new("type"),
            new.type_.as_deref().unwrap_or(""),
        ));
    }
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        if new.data != old.data {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

/// Namespace (create).
pub(crate) fn namespace(n: &Namespace) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&n.metadata, false, meta::NameRule::Label);
    for (i, f) in n
        .spec
        .iter()
        .flat_map(|s| s.finalizers.iter().flatten())
        .enumerate()
    {
        for m in names::is_qualified_name(f) {
            errs.push(FieldError::invalid(
                Path::new("spec").child("finalizers").index(i),
                f,
                m,
            ));
        }
    }
    errs
}

/// Node (create): taints.
pub(crate) fn node(n: &Node) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&n.metadata, false, meta::NameRule::Subdomain);
    let tp = Path::new("spec").child("taints");
    let mut seen = BTreeSet::new();
    for (i, t) in n
        .spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .enumerate()
    {
        let ip = tp.index(i);
        for m in names::is_qualified_name(&t.key) {
            errs.push(FieldError::invalid(ip.child("key"), &t.key, m));
        }
        if let Some(v) = &t.value {
            for m in names::is_valid_label_value(v) {
                errs.push(FieldError::invalid(ip.child("value"), v, m));
            }
        }
        if let Some(e) = enum_field(
            Some(t.effect.as_str()),
            ip.child("effect"),
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            true,
        ) {
            errs.push(e);
        }
        if !seen.insert((t.key.clone(), t.effect.clone())) {
            errs.push(FieldError::duplicate(
                ip,
                &format!("{}:{}", t.key, t.effect),
            ));
        }
    }
    errs
}

/// Endpoints (create).
pub(crate) fn endpoints(e: &Endpoints) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&e.metadata, true, meta::NameRule::Subdomain);
    for (i, ss) in e.subsets.iter().flatten().enumerate() {
        let sp = Path::new("subsets").index(i);
        for (list, name) in [
            (&ss.addresses, "addresses"),
            (&ss.not_ready_addresses, "notReadyAddresses"),
        ] {
            for (j, a) in list.iter().flatten().enumerate() {
                if a.ip.parse::<std::net::IpAddr>().is_err() {
                    errs.push(FieldError::invalid(
                        sp.child(name).index(j).child("ip"),
                        &a.ip,
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    ));
                }
            }
        }
        let ports = ss.ports.as_deref().unwrap_or_default();
        for (j, p) in ports.iter().enumerate() {
            let pp = sp.child("ports").index(j);
            if ports.len() > 1 && p.name.as_deref().is_none_or(str::is_empty) {
                errs.push(FieldError::required(pp.child("name"), ""));
            }
            errs.extend(port_num(p.port, pp.child("port")));
            errs.extend(protocol(p.protocol.as_deref(), pp.child("protocol")));
        }
    }
    errs
}

/// core/v1 Event (create): `legacyValidateEvent`.
pub(crate) fn event(ev: &Event) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&ev.metadata, true, meta::NameRule::Subdomain);
    let ns = ev.metadata.namespace.as_deref().unwrap_or("");
    let ins = ev.involved_object.namespace.as_deref().unwrap_or("");
    let bad = if ins.is_empty() {
        !ns.is_empty() && ns != "default"
    } else {
        !ns.is_empty() && ns != ins
    };
    if bad {
        errs.push(FieldError::invalid(
            Path::new("involvedObject").child("namespace"),
            ins,
            "does not match event.namespace",
        ));
    }
    errs
}

/// ReplicationController (create).
pub(crate) fn replication_controller(rc: &ReplicationController) -> Vec<FieldError> {
    let mut errs = meta::object_meta(&rc.metadata, true, meta::NameRule::Subdomain);
    let sp = Path::new("spec");
    let Some(s) = &rc.spec else {
        errs.push(FieldError::required(sp, ""));
        return errs;
    };
    errs.extend(non_negative(
        s.replicas.map(i64::from),
        sp.child("replicas"),
    ));
    errs.extend(non_negative(
        s.min_ready_seconds.map(i64::from),
        sp.child("minReadySeconds"),
    ));
    let selector = s.selector.clone().unwrap_or_default();
    if selector.is_empty() {
        errs.push(FieldError::required(sp.child("selector"), ""));
    }
    errs.extend(meta::labels(Some(&selector), &sp.child("selector")));
    let sel = (!selector.is_empty()).then(|| Selector::from_map(&selector));
    errs.extend(workload_template(
        s.template.as_ref(),
        sel.as_ref(),
        &sp.child("template"),
        &["Always"],
        Some("ReplicationController"),
    ));
    errs
}

/// Most nameservers, search paths and search-line characters of a pod's `dnsConfig`
/// (upstream `MaxDNSNameservers`, `MaxDNSSearchPaths`, `MaxDNSSearchListChars`).
const MAX_DNS_NAMESERVERS: usize = 3;
const MAX_DNS_SEARCH_PATHS: usize = 32;
const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;

/// A Go `[]string` as `field.Invalid` prints it.
fn go_string_slice(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// `spec.dnsConfig` (upstream `validatePodDNSConfig` in `pkg/apis/core/validation/validation.go`):
/// `dnsPolicy: None` needs it with a nameserver; at most 3 nameservers, each an IP; at most 32
/// search domains and 2,048 characters in the search line, each a DNS-1123 subdomain (a
/// trailing dot allowed); options need a name.
fn pod_dns_config(
    config: Option<&k8s_openapi::api::core::v1::PodDNSConfig>,
    policy: Option<&str>,
    p: &Path,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if policy == Some("None") {
        let Some(c) = config else {
            errs.push(FieldError::required(
                p,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
            return errs;
        };
        if c.nameservers.as_ref().is_none_or(|n| n.is_empty()) {
            errs.push(FieldError::required(
                p.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
            return errs;
        }
    }
    let Some(c) = config else {
        return errs;
    };
    let nameservers = c.nameservers.clone().unwrap_or_default();
    if nameservers.len() > MAX_DNS_NAMESERVERS {
        errs.push(FieldError::invalid_raw(
            p.child("nameservers"),
            go_string_slice(&nameservers),
            format!("must not have more than {MAX_DNS_NAMESERVERS} nameservers"),
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        if ns.parse::<std::net::IpAddr>().is_err() {
            errs.push(FieldError::invalid(
                p.child("nameservers").index(i),
                ns,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    let searches = c.searches.clone().unwrap_or_default();
    if searches.len() > MAX_DNS_SEARCH_PATHS {
        errs.push(FieldError::invalid_raw(
            p.child("searches"),
            go_string_slice(&searches),
            format!("must not have more than {MAX_DNS_SEARCH_PATHS} search paths"),
        ));
    }
    if searches.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
        errs.push(FieldError::invalid_raw(
            p.child("searches"),
            go_string_slice(&searches),
            format!(
                "must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters (including \
                 spaces) in the search list"
            ),
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        let search = search.strip_suffix('.').unwrap_or(search);
        for m in names::is_dns1123_subdomain(search) {
            errs.push(FieldError::invalid(p.child("searches").index(i), search, m));
        }
    }
    for (i, o) in c.options.iter().flatten().enumerate() {
        if o.name.as_deref().is_none_or(str::is_empty) {
            errs.push(FieldError::required(
                p.child("options").index(i),
                "must not be empty",
            ));
        }
    }
    errs
}
