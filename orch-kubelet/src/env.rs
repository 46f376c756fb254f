//! Container environment, as upstream `kubelet_pods.go` `makeEnvironmentVariables` builds it:
//! service links, `envFrom`, `env` (values, `fieldRef`, `resourceFieldRef`, `configMapKeyRef`,
//! `secretKeyRef`) and `$(VAR)` expansion (`third_party/forked/golang/expansion`).
//!
//! Pure: the caller hands over the ConfigMaps, Secrets and Services it fetched.

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use orch_types::quantity::Quantity;
use std::collections::BTreeMap;

/// Errors that keep a container from starting (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A referenced ConfigMap does not exist.
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    /// A referenced Secret does not exist.
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    /// A key is missing from a ConfigMap.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKey {
        /// Namespace.
        namespace: String,
        /// ConfigMap name.
        name: String,
        /// Missing key.
        key: String,
    },
    /// A key is missing from a Secret.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKey {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// Missing key.
        key: String,
    },
    /// A `fieldRef` path the kubelet does not support.
    #[error("unsupported fieldPath: {0}")]
    FieldPath(String),
    /// A `resourceFieldRef` that cannot be resolved.
    #[error("unsupported resource: {0}")]
    Resource(String),
}

/// What environment resolution may read.
#[derive(Debug, Clone, Default)]
pub struct EnvContext {
    /// ConfigMaps of the pod's namespace by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets of the pod's namespace by name.
    pub secrets: BTreeMap<String, Secret>,
    /// Services of the pod's namespace that existed when the pod started.
    pub services: Vec<Service>,
    /// The `kubernetes` service in `default` (host, port), always exposed.
    pub master_service: Option<(String, i32)>,
    /// Node allocatable cpu, used for unset `limits.cpu`.
    pub node_cpu: Option<Quantity>,
    /// Node allocatable memory, used for unset `limits.memory`.
    pub node_memory: Option<Quantity>,
    /// `status.podIP`.
    pub pod_ip: String,
    /// `status.hostIP`.
    pub host_ip: String,
    /// The pod's `imagePullSecrets`, resolved (handed to the image source).
    pub pull_secrets: Vec<Secret>,
    /// The pod's claim-backed volumes (not environment, but fetched and refreshed with it).
    pub volumes: crate::volume::PodVolumes,
}

/// Ordered environment with replace-in-place semantics.
#[derive(Debug, Default)]
struct Env(Vec<(String, String)>);

impl Env {
    fn set(&mut self, k: &str, v: String) {
        match self.0.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v,
            None => self.0.push((k.to_string(), v)),
        }
    }
    fn map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

/// Expands `$(VAR)` references from `vars`; `$$` escapes; unknown references stay as written.
///
/// ```
/// use std::collections::BTreeMap;
/// let vars = BTreeMap::from([("A".to_string(), "x".to_string())]);
/// assert_eq!(orch_kubelet::env::expand("$(A)-$(B)-$$(A)", &vars), "x-$(B)-$(A)");
/// ```
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let b = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            match b[i + 1] {
                b'$' => {
                    out.push_str(&input[last..i]);
                    out.push('$');
                    i += 2;
                    last = i;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        out.push_str(&input[last..i]);
                        match vars.get(name) {
                            Some(v) => out.push_str(v),
                            None => out.push_str(&input[i..i + 3 + end]),
                        }
                        i += 3 + end;
                        last = i;
                        continue;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push_str(&input[last..]);
    out
}

fn service_env(svc: &Service, env: &mut Env) {
    let Some(spec) = &svc.spec else { return };
    let Some(ip) = spec.cluster_ip.as_deref() else {
        return;
    };
    if ip.is_empty() || ip == "None" {
        return;
    }
    let name = svc
        .metadata
        .name
        .as_deref()
        .unwrap_or_default()
        .to_uppercase()
        .replace('-', "_");
    let ports = spec.ports.as_deref().unwrap_or_default();
    env.set(&format!("{name}_SERVICE_HOST"), ip.to_string());
    if let Some(p) = ports.first() {
        env.set(&format!("{name}_SERVICE_PORT"), p.port.to_string());
    }
    for p in ports {
        if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
            env.set(
                &format!(
                    "{name}_SERVICE_PORT_{}",
                    pn.to_uppercase().replace('-', "_")
                ),
                p.port.to_string(),
            );
        }
    }
    // Docker link variables (upstream `makeLinkVariables`).
    if let Some(p) = ports.first() {
        let proto = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
        env.set(
            &format!("{name}_PORT"),
            format!("{proto}://{ip}:{}", p.port),
        );
    }
    for p in ports {
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_uppercase());
        let lower = proto.to_lowercase();
        env.set(&prefix, format!("{lower}://{ip}:{}", p.port));
        env.set(&format!("{prefix}_PROTO"), lower);
        env.set(&format!("{prefix}_PORT"), p.port.to_string());
        env.set(&format!("{prefix}_ADDR"), ip.to_string());
    }
}

pub(crate) fn field_ref(pod: &Pod, path: &str, ctx: &EnvContext) -> Result<String, EnvError> {
    let m = &pod.metadata;
    let subscript = |prefix: &str| -> Option<String> {
        path.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_string)
    };
    if let Some(k) = subscript("metadata.labels") {
        return Ok(m
            .labels
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(k) = subscript("metadata.annotations") {
        return Ok(m
            .annotations
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default());
    }
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => fmt_map(m.labels.as_ref()),
        "metadata.annotations" => fmt_map(m.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.clone(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.clone(),
        _ => return Err(EnvError::FieldPath(path.to_string())),
    })
}

fn fmt_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

fn ceil_div(a: i128, b: i128) -> i128 {
    if b == 0 {
        return 0;
    }
    (a + b - 1).div_euclid(b)
}

/// Value of a `resourceFieldRef` (upstream `resource.ExtractContainerResourceValue`): cpu rounds
/// up to whole divisors (`1` core by default), memory to whole divisors of bytes; unset limits
/// fall back to the node's allocatable.
pub fn resource_field(
    container: &Container,
    resource: &str,
    divisor: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    ctx: &EnvContext,
) -> Result<String, EnvError> {
    let bad = || EnvError::Resource(resource.to_string());
    let divisor = match divisor {
        Some(d) => Quantity::try_from(d).map_err(|_| bad())?,
        None => Quantity::from_value(1, orch_types::quantity::Format::DecimalSI),
    };
    let res = container.resources.as_ref();
    let (section, name) = resource.split_once('.').ok_or_else(bad)?;
    let list = match section {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => return Err(bad()),
    };
    let q = list
        .and_then(|l| l.get(name))
        .map(Quantity::try_from)
        .transpose()
        .map_err(|_| bad())?;
    let q = match (q, section, name) {
        (Some(q), _, _) => q,
        (None, "limits", "cpu") => ctx.node_cpu.unwrap_or_default(),
        (None, "limits", "memory") => ctx.node_memory.unwrap_or_default(),
        (None, _, _) => Quantity::default(),
    };
    let v = if name == "cpu" {
        ceil_div(q.milli_value() as i128, divisor.milli_value() as i128)
    } else {
        ceil_div(q.value() as i128, divisor.value() as i128)
    };
    Ok(v.to_string())
}

/// The environment of `container` in `pod`, in order.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    ctx: &EnvContext,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let spec = pod.spec.as_ref();
    let mut services = Env::default();
    if let Some((host, port)) = &ctx.master_service {
        services.set("KUBERNETES_SERVICE_HOST", host.clone());
        services.set("KUBERNETES_SERVICE_PORT", port.to_string());
        services.set("KUBERNETES_SERVICE_PORT_HTTPS", port.to_string());
        services.set("KUBERNETES_PORT", format!("tcp://{host}:{port}"));
        let p = format!("KUBERNETES_PORT_{port}_TCP");
        services.set(&p, format!("tcp://{host}:{port}"));
        services.set(&format!("{p}_PROTO"), "tcp".into());
        services.set(&format!("{p}_PORT"), port.to_string());
        services.set(&format!("{p}_ADDR"), host.clone());
    }
    if spec.and_then(|s| s.enable_service_links).unwrap_or(true) {
        for s in &ctx.services {
            if s.metadata.name.as_deref() == Some("kubernetes") && ns == "default" {
                continue;
            }
            service_env(s, &mut services);
        }
    }
    let mut env = Env::default();
    for from in container.env_from.as_deref().unwrap_or_default() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match ctx.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        env.set(&format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        }
        if let Some(r) = &from.secret_ref {
            match ctx.secrets.get(&r.name) {
                Some(s) => {
                    for (k, v) in s.data.iter().flatten() {
                        env.set(
                            &format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                    for (k, v) in s.string_data.iter().flatten() {
                        env.set(&format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        }
    }
    for e in container.env.as_deref().unwrap_or_default() {
        let mut scope = services.map();
        scope.extend(env.map());
        let value = if let Some(v) = &e.value {
            Some(expand(v, &scope))
        } else if let Some(src) = &e.value_from {
            if let Some(f) = &src.field_ref {
                Some(field_ref(pod, &f.field_path, ctx)?)
            } else if let Some(r) = &src.resource_field_ref {
                let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                    Some(n) => spec
                        .into_iter()
                        .flat_map(|s| {
                            s.containers
                                .iter()
                                .chain(s.init_containers.iter().flatten())
                        })
                        .find(|c| c.name == n)
                        .unwrap_or(container),
                    None => container,
                };
                Some(resource_field(
                    target,
                    &r.resource,
                    r.divisor.as_ref(),
                    ctx,
                )?)
            } else if let Some(r) = &src.config_map_key_ref {
                let optional = r.optional == Some(true);
                match ctx.config_maps.get(&r.name) {
                    None if optional => None,
                    None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                    Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => Some(v.clone()),
                        None if optional => None,
                        None => {
                            return Err(EnvError::ConfigMapKey {
                                namespace: ns.clone(),
                                name: r.name.clone(),
                                key: r.key.clone(),
                            })
                        }
                    },
                }
            } else if let Some(r) = &src.secret_key_ref {
                let optional = r.optional == Some(true);
                match ctx.secrets.get(&r.name) {
                    None if optional => None,
                    None => return Err(EnvError::SecretNotFound(r.name.clone())),
                    Some(s) => {
                        let v = s
                            .data
                            .as_ref()
                            .and_then(|d| d.get(&r.key))
                            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                            .or_else(|| {
                                s.string_data.as_ref().and_then(|d| d.get(&r.key)).cloned()
                            });
                        match v {
                            Some(v) => Some(v),
                            None if optional => None,
                            None => {
                                return Err(EnvError::SecretKey {
                                    namespace: ns.clone(),
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                })
                            }
                        }
                    }
                }
            } else {
                Some(String::new())
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            env.set(&e.name, v);
        }
    }
    // Service variables the pod did not override come last (upstream appends them to the map).
    let defined = env.map();
    for (k, v) in services.0 {
        if !defined.contains_key(&k) {
            env.0.push((k, v));
        }
    }
    Ok(env.0)
}

/// `command` and `args` with `$(VAR)` expanded from the container's environment.
pub fn expand_command(
    container: &Container,
    env: &[(String, String)],
) -> (Vec<String>, Vec<String>) {
    let vars: BTreeMap<String, String> = env.iter().cloned().collect();
    let f = |v: &Option<Vec<String>>| {
        v.iter()
            .flatten()
            .map(|s| expand(s, &vars))
            .collect::<Vec<_>>()
    };
    (f(&container.command), f(&container.args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "c",
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                "env": [
                    {"name": "A", "value": "a"},
                    {"name": "B", "value": "$(A)-$(CFG_x)-$(NOPE)-$$(A)"},
                    {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPULIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                    {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k", "optional": true}}}
                ]
            }]}
        }))
        .unwrap()
    }

    fn ctx() -> EnvContext {
        let cm: ConfigMap = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "cfg"}, "data": {"x": "1"}}),
        )
        .unwrap();
        let s: Secret = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "s"}, "data": {"pw": "aHVudGVyMg=="}}),
        )
        .unwrap();
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "redis-primary"},
            "spec": {"clusterIP": "10.96.0.11", "ports": [{"name": "db", "port": 6379, "protocol": "TCP"}]}
        }))
        .unwrap();
        EnvContext {
            config_maps: [("cfg".to_string(), cm)].into(),
            secrets: [("s".to_string(), s)].into(),
            services: vec![svc],
            master_service: Some(("10.96.0.1".into(), 443)),
            node_cpu: Some("4".parse().unwrap()),
            node_memory: None,
            pod_ip: "10.0.0.7".into(),
            host_ip: "127.0.0.1".into(),
            pull_secrets: vec![],
            volumes: Default::default(),
        }
    }

    #[test]
    fn resolves_every_source_and_expands() {
        let p = pod();
        let env = container_env(&p, &p.spec.as_ref().unwrap().containers[0], &ctx()).unwrap();
        let m: BTreeMap<_, _> = env.iter().cloned().collect();
        assert_eq!(m["CFG_x"], "1");
        assert_eq!(m["B"], "a-1-$(NOPE)-$(A)");
        assert_eq!(m["NAME"], "p");
        assert_eq!(m["APP"], "web");
        assert_eq!(m["IP"], "10.0.0.7");
        assert_eq!(m["NODE"], "n1");
        assert_eq!(m["CPU"], "250");
        assert_eq!(m["MEM"], "128");
        assert_eq!(m["CPULIM"], "4");
        assert_eq!(m["PW"], "hunter2");
        assert!(!m.contains_key("OPT"));
        assert_eq!(m["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
        assert_eq!(m["KUBERNETES_SERVICE_PORT"], "443");
        assert_eq!(m["REDIS_PRIMARY_SERVICE_HOST"], "10.96.0.11");
        assert_eq!(m["REDIS_PRIMARY_SERVICE_PORT_DB"], "6379");
        assert_eq!(m["REDIS_PRIMARY_PORT_6379_TCP_ADDR"], "10.96.0.11");
        // env from the pod comes before the service variables
        assert_eq!(env[0].0, "CFG_x");
    }

    #[test]
    fn missing_references_are_errors_unless_optional() {
        let mut p = pod();
        let c = &mut p.spec.as_mut().unwrap().containers[0];
        c.env = Some(vec![EnvVar {
            name: "X".into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "cfg".into(),
                    key: "nope".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let c = c.clone();
        let err = container_env(&p, &c, &ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "couldn't find key nope in ConfigMap ns/cfg"
        );
        let mut no_cm = ctx();
        no_cm.config_maps.clear();
        let err = container_env(&p, &c, &no_cm).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"cfg\" not found");
    }

    #[test]
    fn service_links_can_be_disabled() {
        let mut p = pod();
        p.spec.as_mut().unwrap().enable_service_links = Some(false);
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let env = container_env(&p, &c, &ctx()).unwrap();
        assert!(env.iter().all(|(k, _)| !k.starts_with("REDIS")));
        assert!(env.iter().any(|(k, _)| k == "KUBERNETES_SERVICE_HOST"));
    }
}
