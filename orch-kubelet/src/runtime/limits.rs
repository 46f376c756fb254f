//! What a runtime needs to know about a pod's resources and ports, read from its spec: the
//! per-container CPU request/limit and memory limit, the pod-level totals the pod cgroup gets
//! (upstream `ResourceConfigForPod` in `pkg/kubelet/cm/helpers_linux.go`: CPU and memory limits
//! only when every app container sets one), the QoS class and the host port mappings.

use super::PortMapping;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use orch_types::quantity::Quantity;

fn quantity(c: &Container, limits: bool, name: &str) -> Option<Quantity> {
    let r = c.resources.as_ref()?;
    let list = if limits {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    };
    list?.get(name).and_then(|q| Quantity::try_from(q).ok())
}

/// `(requests.cpu in milliCPU, limits.cpu in milliCPU, limits.memory in bytes)` of a container.
pub fn container_resources(c: &Container) -> (Option<i64>, Option<i64>, Option<i64>) {
    (
        quantity(c, false, "cpu").map(|q| q.milli_value()),
        quantity(c, true, "cpu").map(|q| q.milli_value()),
        quantity(c, true, "memory").map(|q| q.value()),
    )
}

/// Pod-level `(cpu request, cpu limit, memory limit)`: sums over the app containers; a limit
/// only when every app container has one.
pub fn pod_resources(spec: &PodSpec) -> (Option<i64>, Option<i64>, Option<i64>) {
    let all: Vec<_> = spec.containers.iter().map(container_resources).collect();
    let req = all.iter().filter_map(|r| r.0).reduce(|a, b| a + b);
    let cpu_lim = all.iter().map(|r| r.1).sum::<Option<i64>>();
    let mem_lim = all.iter().map(|r| r.2).sum::<Option<i64>>();
    (req, cpu_lim, mem_lim)
}

/// Every `hostPort` of the pod (app and init containers) with its container port and `hostIP`.
pub fn port_mappings(spec: &PodSpec) -> Vec<PortMapping> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| PortMapping {
            host_port: p.host_port.unwrap_or_default(),
            container_port: p.container_port,
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pod_limits_only_when_every_container_has_one() {
        let s = spec(serde_json::json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}},
        ]}));
        assert_eq!(pod_resources(&s), (Some(1250), Some(1500), None));
        assert_eq!(
            container_resources(&s.containers[0]),
            (Some(250), Some(500), Some(64 << 20))
        );
        let none = spec(serde_json::json!({"containers": [{"name": "a"}]}));
        assert_eq!(pod_resources(&none), (None, None, None));
    }

    #[test]
    fn host_port_mappings() {
        let s = spec(serde_json::json!({"containers": [{"name": "a", "ports": [
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
            {"containerPort": 9000},
        ]}]}));
        let m = port_mappings(&s);
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].host_port, m[0].container_port, m[0].protocol.as_str()),
            (8080, 80, "TCP")
        );
        assert_eq!(
            (m[1].protocol.as_str(), m[1].host_ip.as_str()),
            ("UDP", "127.0.0.1")
        );
    }
}
