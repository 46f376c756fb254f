//! The storage flags shared by `orch up` and `orch apiserver`: `--storage embedded|memory|etcd`
//! and, for etcd, kube-apiserver's `--etcd-servers`, `--etcd-prefix`, `--etcd-cafile`,
//! `--etcd-certfile` and `--etcd-keyfile`.

use orch_apiserver::StorageConfig;
use std::path::{Path, PathBuf};

/// Storage choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageArg {
    /// Durable in the data dir.
    Embedded,
    /// In memory (nothing survives a restart).
    Memory,
    /// An etcd v3 cluster (`--etcd-servers`); needs orch built with the `etcd` feature.
    Etcd,
}

impl StorageArg {
    /// The name printed in status lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Memory => "memory",
            Self::Etcd => "etcd",
        }
    }
}

/// The etcd connection flags (used with `--storage etcd`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EtcdArgs {
    /// Client URLs of the etcd members, comma separated (`http://127.0.0.1:2379`; `https://`
    /// with the TLS flags).
    #[arg(long, value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    /// Prepended to every key (keys are `PREFIX/registry/GROUP/RESOURCE/…`); lets several
    /// clusters share one etcd.
    #[arg(long, default_value = "")]
    pub etcd_prefix: String,
    /// Client TLS.
    #[command(flatten)]
    pub tls: EtcdTlsArgs,
}

/// The etcd client TLS flags (kube-apiserver's).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct EtcdTlsArgs {
    /// PEM bundle of the CA that signed the etcd servers' certificates.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// PEM client certificate for etcd (with `--etcd-keyfile`).
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// PEM private key of `--etcd-certfile`.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
}

impl EtcdTlsArgs {
    /// Whether any TLS flag is given.
    pub fn any(&self) -> bool {
        self.etcd_cafile.is_some() || self.etcd_certfile.is_some() || self.etcd_keyfile.is_some()
    }

    /// The client TLS settings, when any flag is given.
    #[cfg(feature = "etcd")]
    pub fn tls(&self) -> Option<orch_apiserver::storage::etcd::EtcdTls> {
        self.any().then(|| orch_apiserver::storage::etcd::EtcdTls {
            ca_file: self.etcd_cafile.clone(),
            cert_file: self.etcd_certfile.clone(),
            key_file: self.etcd_keyfile.clone(),
        })
    }
}

/// What `--storage etcd` and `etcd:` stores say in a build without the `etcd` feature.
#[cfg(not(feature = "etcd"))]
pub const NO_ETCD: &str = "this orch was built without etcd support: build it with `cargo build \
                           --release --features etcd` (which needs protoc, Debian's \
                           protobuf-compiler)";

/// The API server's storage for `storage`; embedded keeps its files in `data_dir/store`.
///
/// Fails with a message for the user: etcd flags without `--storage etcd`, `--storage etcd`
/// without servers, or an orch built without the `etcd` feature.
pub fn storage_config(
    storage: StorageArg,
    etcd: &EtcdArgs,
    data_dir: &Path,
) -> Result<StorageConfig, String> {
    let etcd_flags =
        !etcd.etcd_servers.is_empty() || !etcd.etcd_prefix.is_empty() || etcd.tls.any();
    match storage {
        StorageArg::Embedded | StorageArg::Memory if etcd_flags => Err(format!(
            "the --etcd-* flags need --storage etcd (the storage is {})",
            storage.name()
        )),
        StorageArg::Embedded => Ok(StorageConfig::Embedded(data_dir.join("store"))),
        StorageArg::Memory => Ok(StorageConfig::Memory),
        StorageArg::Etcd => etcd_config(etcd),
    }
}

#[cfg(feature = "etcd")]
fn etcd_config(etcd: &EtcdArgs) -> Result<StorageConfig, String> {
    if etcd.etcd_servers.iter().all(|s| s.trim().is_empty()) {
        return Err("--storage etcd needs --etcd-servers URL[,URL…]".into());
    }
    Ok(StorageConfig::Etcd {
        servers: etcd.etcd_servers.clone(),
        prefix: etcd.etcd_prefix.clone(),
        tls: etcd.tls.tls(),
    })
}

#[cfg(not(feature = "etcd"))]
fn etcd_config(_: &EtcdArgs) -> Result<StorageConfig, String> {
    Err(NO_ETCD.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_flags_need_the_etcd_storage() {
        let etcd = EtcdArgs {
            etcd_servers: vec!["http://127.0.0.1:2379".into()],
            ..Default::default()
        };
        let e = storage_config(StorageArg::Embedded, &etcd, Path::new("d")).unwrap_err();
        assert_eq!(
            e,
            "the --etcd-* flags need --storage etcd (the storage is embedded)"
        );
        assert_eq!(
            storage_config(StorageArg::Embedded, &EtcdArgs::default(), Path::new("d")),
            Ok(StorageConfig::Embedded(PathBuf::from("d/store")))
        );
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn etcd_storage_takes_the_flags() {
        let e = storage_config(StorageArg::Etcd, &EtcdArgs::default(), Path::new("d"));
        assert_eq!(
            e,
            Err("--storage etcd needs --etcd-servers URL[,URL…]".to_string())
        );
        let etcd = EtcdArgs {
            etcd_servers: vec!["https://a:2379".into(), "https://b:2379".into()],
            etcd_prefix: "/one".into(),
            tls: EtcdTlsArgs {
                etcd_cafile: Some("ca.pem".into()),
                ..Default::default()
            },
        };
        let Ok(StorageConfig::Etcd {
            servers,
            prefix,
            tls,
        }) = storage_config(StorageArg::Etcd, &etcd, Path::new("d"))
        else {
            panic!("not an etcd storage")
        };
        assert_eq!(servers, ["https://a:2379", "https://b:2379"]);
        assert_eq!(prefix, "/one");
        assert_eq!(tls.and_then(|t| t.ca_file), Some(PathBuf::from("ca.pem")));
    }

    #[cfg(not(feature = "etcd"))]
    #[test]
    fn etcd_storage_says_how_to_build_it() {
        let e = storage_config(StorageArg::Etcd, &EtcdArgs::default(), Path::new("d"));
        assert!(e.unwrap_err().contains("--features etcd"));
    }
}
