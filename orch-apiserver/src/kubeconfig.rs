//! Minimal kubeconfig files: writing one that points at an orch API server, and reading the
//! server URL and bearer token of the current context.

use serde_json::Value;
use std::path::Path;

/// Errors reading or writing a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// File I/O failed.
    #[error("kubeconfig {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("kubeconfig {path}: invalid YAML: {message}")]
    Yaml {
        /// The file.
        path: String,
        /// Parser message.
        message: String,
    },
    /// The current context or its cluster is missing.
    #[error("kubeconfig {path}: {message}")]
    Incomplete {
        /// The file.
        path: String,
        /// What is missing.
        message: String,
    },
}

/// The connection settings of the current context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Server URL, e.g. `http://127.0.0.1:6443`.
    pub server: String,
    /// Bearer token, if the user has one.
    pub token: Option<String>,
}

/// Writes a kubeconfig with one cluster/context/user named `orch` pointing at `server_url`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("kubeconfig");
/// orch_apiserver::kubeconfig::write_kubeconfig(&path, "http://127.0.0.1:6443").unwrap();
/// let ep = orch_apiserver::kubeconfig::read_endpoint(&path).unwrap();
/// assert_eq!(ep.server, "http://127.0.0.1:6443");
/// ```
pub fn write_kubeconfig(path: impl AsRef<Path>, server_url: &str) -> Result<(), KubeconfigError> {
    let path = path.as_ref();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: orch\n  cluster:\n    server: {server_url}\ncontexts:\n- name: orch\n  context:\n    cluster: orch\n    user: orch\n    namespace: default\ncurrent-context: orch\nusers:\n- name: orch\n  user: {{}}\npreferences: {{}}\n"
    );
    let io = |source| KubeconfigError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads the server and token of the current context.
pub fn read_endpoint(path: impl AsRef<Path>) -> Result<Endpoint, KubeconfigError> {
    let path = path.as_ref();
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KubeconfigError::Io {
        path: p.clone(),
        source,
    })?;
    let doc: Value = serde_yaml_ng::from_str(&text).map_err(|e| KubeconfigError::Yaml {
        path: p.clone(),
        message: e.to_string(),
    })?;
    let incomplete = |m: &str| KubeconfigError::Incomplete {
        path: p.clone(),
        message: m.to_string(),
    };
    let find = |list: &str, name: &str| -> Option<Value> {
        doc.get(list)?
            .as_array()?
            .iter()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
            .cloned()
    };
    let current = doc
        .get("current-context")
        .and_then(Value::as_str)
        .ok_or_else(|| incomplete("no current-context"))?;
    let ctx = find("contexts", current).ok_or_else(|| incomplete("current context not found"))?;
    let cluster_name = ctx
        .pointer("/context/cluster")
        .and_then(Value::as_str)
        .ok_or_else(|| incomplete("context has no cluster"))?;
    let cluster = find("clusters", cluster_name).ok_or_else(|| incomplete("cluster not found"))?;
    let server = cluster
        .pointer("/cluster/server")
        .and_then(Value::as_str)
        .ok_or_else(|| incomplete("cluster has no server"))?
        .trim_end_matches('/')
        .to_string();
    let token = ctx
        .pointer("/context/user")
        .and_then(Value::as_str)
        .and_then(|u| find("users", u))
        .and_then(|u| {
            u.pointer("/user/token")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    Ok(Endpoint { server, token })
}
