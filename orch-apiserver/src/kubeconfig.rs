//! Kubeconfig files: writing one that points at an orch API server with its CA and a client
//! certificate or token embedded, and reading the connection settings of the current context
//! (`certificate-authority[-data]`, `client-certificate[-data]`, `client-key[-data]`, `token`,
//! `tokenFile`, `insecure-skip-tls-verify`; relative file paths are resolved against the
//! kubeconfig's directory, as client-go's `ResolvePaths`).

use crate::pki::CertKey;
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

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
    /// A `*-data` field is not valid base64.
    #[error("kubeconfig {path}: {field} is not valid base64")]
    Base64 {
        /// The file.
        path: String,
        /// The field.
        field: &'static str,
    },
    /// The CA, client certificate or key cannot be used for TLS.
    #[error("kubeconfig {path}: {source}")]
    Tls {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: crate::tls::TlsError,
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
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// Server URL, e.g. `https://127.0.0.1:6443`.
    pub server: String,
    /// Bearer token, if the user has one.
    pub token: Option<String>,
    /// The CA bundle (PEM) the server's certificate is verified against; `None`: the system
    /// has no roots here, so an `https://` server needs it or `insecure_skip_tls_verify`.
    pub ca_pem: Option<String>,
    /// The client certificate and key the user presents.
    pub client: Option<CertKey>,
    /// Do not verify the server's certificate.
    pub insecure_skip_tls_verify: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.is_some())
            .field("client", &self.client)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .finish()
    }
}

impl Endpoint {
    /// An endpoint at `server` without credentials.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            ..Self::default()
        }
    }

    /// The TLS configuration for an `https://` server (`None` for `http://`): verifying against
    /// [`Endpoint::ca_pem`] (or not at all with `insecure_skip_tls_verify`), presenting
    /// [`Endpoint::client`].
    pub fn tls_config(&self) -> Result<Option<rustls::ClientConfig>, crate::tls::TlsError> {
        self.trust()?
            .map(|trust| crate::tls::client_config(&trust, self.client.as_ref()))
            .transpose()
    }

    /// How the server of an `https://` endpoint is verified (`None` for `http://`).
    pub fn trust(&self) -> Result<Option<crate::tls::ServerTrust>, crate::tls::TlsError> {
        if !self.server.starts_with("https://") {
            return Ok(None);
        }
        Ok(Some(match (&self.ca_pem, self.insecure_skip_tls_verify) {
            (_, true) => crate::tls::ServerTrust::Insecure,
            (Some(ca), false) => crate::tls::ServerTrust::Ca(ca.clone()),
            (None, false) => {
                return Err(crate::tls::TlsError::Pem {
                    what: "CA bundle",
                    message: format!(
                        "{} is https but the kubeconfig has no certificate-authority",
                        self.server
                    ),
                })
            }
        }))
    }
}

/// Writes a kubeconfig with one cluster/context/user named `orch` pointing at `server_url`,
/// without credentials.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("kubeconfig");
/// orch_apiserver::kubeconfig::write_kubeconfig(&path, "http://127.0.0.1:6443").unwrap();
/// let ep = orch_apiserver::kubeconfig::read_endpoint(&path).unwrap();
/// assert_eq!(ep.server, "http://127.0.0.1:6443");
/// ```
pub fn write_kubeconfig(path: impl AsRef<Path>, server_url: &str) -> Result<(), KubeconfigError> {
    write(path, &Endpoint::new(server_url))
}

/// Writes a kubeconfig with one cluster/context/user named `orch` for `ep`, embedding the CA
/// (`certificate-authority-data`), the client certificate and key (`client-certificate-data`,
/// `client-key-data`) and the token. Mode 0600: it holds credentials.
///
/// ```
/// use orch_apiserver::kubeconfig::{read_endpoint, write, Endpoint};
/// use orch_apiserver::pki::{Pki, PkiOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let pki = Pki::load_or_create(&PkiOptions::new(dir.path().join("pki"))).unwrap();
/// let ep = Endpoint {
///     ca_pem: Some(pki.ca_cert_pem().to_string()),
///     client: Some(pki.admin().unwrap()),
///     ..Endpoint::new("https://127.0.0.1:6443")
/// };
/// write(dir.path().join("kubeconfig"), &ep).unwrap();
/// assert_eq!(read_endpoint(dir.path().join("kubeconfig")).unwrap(), ep);
/// ```
pub fn write(path: impl AsRef<Path>, ep: &Endpoint) -> Result<(), KubeconfigError> {
    let path = path.as_ref();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut cluster = json!({ "server": ep.server });
    if let Some(ca) = &ep.ca_pem {
        cluster["certificate-authority-data"] = json!(b64(ca));
    }
    if ep.insecure_skip_tls_verify {
        cluster["insecure-skip-tls-verify"] = json!(true);
    }
    let mut user = json!({});
    if let Some(c) = &ep.client {
        user["client-certificate-data"] = json!(b64(&c.cert_pem));
        user["client-key-data"] = json!(b64(&c.key_pem));
    }
    if let Some(t) = &ep.token {
        user["token"] = json!(t);
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "orch", "cluster": cluster }],
        "contexts": [{
            "name": "orch",
            "context": { "cluster": "orch", "user": "orch", "namespace": "default" },
        }],
        "current-context": "orch",
        "users": [{ "name": "orch", "user": user }],
        "preferences": {},
    });
    let io = |source| KubeconfigError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = serde_yaml_ng::to_string(&doc).map_err(|e| KubeconfigError::Yaml {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    crate::pki::write_file(path, &text, 0o600).map_err(|e| match e {
        crate::pki::PkiError::Io { source, .. } => io(source),
        other => io(std::io::Error::other(other.to_string())),
    })
}

/// Reads the connection settings of the current context.
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
    let cluster = find("clusters", cluster_name)
        .ok_or_else(|| incomplete("cluster not found"))?
        .get("cluster")
        .cloned()
        .unwrap_or(Value::Null);
    let server = cluster
        .get("server")
        .and_then(Value::as_str)
        .ok_or_else(|| incomplete("cluster has no server"))?
        .trim_end_matches('/')
        .to_string();
    let user = ctx
        .pointer("/context/user")
        .and_then(Value::as_str)
        .and_then(|u| find("users", u))
        .and_then(|u| u.get("user").cloned())
        .unwrap_or(Value::Null);
    let base = path.parent().unwrap_or(Path::new("."));
    let field =
        |obj: &Value, data: &'static str, file: &str| -> Result<Option<String>, KubeconfigError> {
            if let Some(d) = obj
                .get(data)
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
            {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(d.trim())
                    .map_err(|_| KubeconfigError::Base64 {
                        path: p.clone(),
                        field: data,
                    })?;
                return Ok(Some(String::from_utf8_lossy(&bytes).into_owned()));
            }
            match obj
                .get(file)
                .and_then(Value::as_str)
                .filter(|f| !f.is_empty())
            {
                Some(f) => read_relative(base, f).map(Some),
                None => Ok(None),
            }
        };
    let ca_pem = field(
        &cluster,
        "certificate-authority-data",
        "certificate-authority",
    )?;
    let cert = field(&user, "client-certificate-data", "client-certificate")?;
    let key = field(&user, "client-key-data", "client-key")?;
    let client = match (cert, key) {
        (Some(cert_pem), Some(key_pem)) => Some(CertKey { cert_pem, key_pem }),
        (None, None) => None,
        _ => {
            return Err(incomplete(
                "user has a client certificate without its key or the reverse",
            ))
        }
    };
    let token = match user
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        Some(t) => Some(t.to_string()),
        None => match user
            .get("tokenFile")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
        {
            Some(f) => Some(read_relative(base, f)?.trim().to_string()),
            None => None,
        },
    };
    let insecure_skip_tls_verify = cluster
        .get("insecure-skip-tls-verify")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Endpoint {
        server,
        token,
        ca_pem,
        client,
        insecure_skip_tls_verify,
    })
}

fn read_relative(base: &Path, file: &str) -> Result<String, KubeconfigError> {
    let path: PathBuf = if Path::new(file).is_absolute() {
        file.into()
    } else {
        base.join(file)
    };
    std::fs::read_to_string(&path).map_err(|source| KubeconfigError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_file_references_relative_to_the_kubeconfig() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), "CA").expect("write");
        std::fs::write(dir.path().join("c.pem"), "CERT").expect("write");
        std::fs::write(dir.path().join("k.pem"), "KEY").expect("write");
        std::fs::write(dir.path().join("tok"), "abc\n").expect("write");
        let kc = dir.path().join("config");
        std::fs::write(
            &kc,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: {server: 'https://h:1/', certificate-authority: ca.pem, insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {client-certificate: c.pem, client-key: k.pem, tokenFile: tok}\n",
        )
        .expect("write");
        let ep = read_endpoint(&kc).expect("read");
        assert_eq!(ep.server, "https://h:1");
        assert_eq!(ep.ca_pem.as_deref(), Some("CA"));
        assert_eq!(
            ep.client,
            Some(CertKey {
                cert_pem: "CERT".into(),
                key_pem: "KEY".into()
            })
        );
        assert_eq!(ep.token.as_deref(), Some("abc"));
        assert!(ep.insecure_skip_tls_verify);
    }

    #[test]
    fn bad_data_and_half_pairs_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kc = dir.path().join("config");
        let doc = |user: &str| {
            format!("current-context: c\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\nclusters:\n- name: k\n  cluster: {{server: 'https://h:1', certificate-authority-data: '!!'}}\nusers:\n- name: u\n  user: {user}\n")
        };
        std::fs::write(&kc, doc("{}")).expect("write");
        assert!(matches!(
            read_endpoint(&kc),
            Err(KubeconfigError::Base64 { .. })
        ));
        std::fs::write(
            &kc,
            doc("{client-certificate-data: QQ==}").replace("'!!'", "QQ=="),
        )
        .expect("write");
        assert!(matches!(
            read_endpoint(&kc),
            Err(KubeconfigError::Incomplete { .. })
        ));
    }

    #[test]
    fn https_without_a_ca_is_refused_http_needs_no_tls() {
        let ep = Endpoint::new("https://h:1");
        assert!(ep.tls_config().is_err());
        assert!(Endpoint::new("http://h:1")
            .tls_config()
            .expect("http")
            .is_none());
        let insecure = Endpoint {
            insecure_skip_tls_verify: true,
            ..ep
        };
        assert!(insecure.tls_config().expect("insecure").is_some());
    }
}
