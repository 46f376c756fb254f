//! `orch storage migrate --from SPEC --to SPEC`: copies a whole cluster from one store into an
//! empty other one (`orch_apiserver::storage::migrate::copy`), e.g. from the embedded store of
//! `orch up` to etcd and back. Stop every API server of both stores first.
//!
//! A store SPEC is one of:
//! - `embedded:DIR`: an embedded (redb) store. `DIR` is the store directory itself if it holds
//!   `store.redb`, or if it is named `store` and has no `store` subdirectory; otherwise it is a
//!   data directory (`orch up --data-dir DIR`) whose store is `DIR/store`. So `embedded:D` and
//!   `embedded:D/store` both name the store of `orch up --data-dir D`. A source must exist; a
//!   target is created.
//! - `etcd:URL[,URL…][?prefix=P]`: an etcd v3 cluster, keys under the prefix `P` (as
//!   `--etcd-prefix P`; empty by default). `--etcd-cafile/--etcd-certfile/--etcd-keyfile` apply
//!   to each etcd side. Needs orch built with the `etcd` feature.

use super::storage::EtcdTlsArgs;
#[cfg(not(feature = "etcd"))]
use super::storage::NO_ETCD;
use orch_apiserver::storage::embedded::EmbeddedStore;
use orch_apiserver::storage::migrate::{self, MigrateReport, Progress};
use orch_apiserver::storage::Storage;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// `orch storage` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StorageCommand {
    /// Copy every object of a stopped cluster's store into an empty store (names, UIDs and the
    /// relative resourceVersion order are kept): `--from embedded:DIR --to etcd:URL` and back.
    Migrate(MigrateArgs),
}

/// Arguments of `orch storage migrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// The store to read: `embedded:DIR` (a store or data directory) or
    /// `etcd:URL[,URL…][?prefix=P]`.
    #[arg(long, value_name = "SPEC")]
    pub from: StoreSpec,
    /// The store to write, which must hold no object: `embedded:DIR` or
    /// `etcd:URL[,URL…][?prefix=P]`.
    #[arg(long, value_name = "SPEC")]
    pub to: StoreSpec,
    /// Client TLS for each etcd side.
    #[command(flatten)]
    pub tls: EtcdTlsArgs,
}

/// A store named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// `embedded:DIR`: a store directory or a data directory (see the module documentation).
    Embedded(PathBuf),
    /// `etcd:URL[,URL…][?prefix=P]`.
    Etcd {
        /// Client URLs of the members.
        servers: Vec<String>,
        /// Key prefix (empty: keys are `/registry/…`).
        prefix: String,
    },
}

/// Why a store SPEC does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Neither `embedded:` nor `etcd:`.
    #[error("`{0}` is not a store: use embedded:DIR or etcd:URL[,URL…][?prefix=P]")]
    UnknownKind(String),
    /// `embedded:` without a directory.
    #[error("`{0}` names no directory: use embedded:DIR")]
    NoDirectory(String),
    /// `etcd:` without a server URL.
    #[error("`{0}` names no server: use etcd:URL[,URL…], e.g. etcd:http://127.0.0.1:2379")]
    NoServer(String),
    /// An option after `?` other than `prefix=P`.
    #[error("`{spec}`: unknown option `{option}` (the only option is prefix=P)")]
    UnknownOption {
        /// The whole spec.
        spec: String,
        /// The option.
        option: String,
    },
}

impl FromStr for StoreSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        match spec.split_once(':') {
            Some(("embedded", "")) => Err(SpecError::NoDirectory(spec.into())),
            Some(("embedded", dir)) => Ok(Self::Embedded(PathBuf::from(dir))),
            Some(("etcd", rest)) => {
                let (servers, options) = rest.split_once('?').unwrap_or((rest, ""));
                let servers: Vec<String> = servers
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if servers.is_empty() {
                    return Err(SpecError::NoServer(spec.into()));
                }
                let mut prefix = String::new();
                for option in options.split('&').filter(|o| !o.is_empty()) {
                    match option.strip_prefix("prefix=") {
                        Some(p) => prefix = p.to_string(),
                        None => {
                            return Err(SpecError::UnknownOption {
                                spec: spec.into(),
                                option: option.into(),
                            })
                        }
                    }
                }
                Ok(Self::Etcd { servers, prefix })
            }
            _ => Err(SpecError::UnknownKind(spec.into())),
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded(dir) => write!(f, "embedded:{}", dir.display()),
            Self::Etcd { servers, prefix } if prefix.is_empty() => {
                write!(f, "etcd:{}", servers.join(","))
            }
            Self::Etcd { servers, prefix } => {
                write!(f, "etcd:{}?prefix={prefix}", servers.join(","))
            }
        }
    }
}

impl StoreSpec {
    fn is_etcd(&self) -> bool {
        matches!(self, Self::Etcd { .. })
    }
}

/// The store directory `embedded:DIR` names (see the module documentation).
pub fn embedded_store_dir(dir: &Path) -> PathBuf {
    let named_store = dir.file_name().is_some_and(|n| n == "store");
    if dir.join("store.redb").exists() || (named_store && !dir.join("store").is_dir()) {
        dir.to_path_buf()
    } else {
        dir.join("store")
    }
}

/// Which end of the copy a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Target,
}

/// Opens the store of `spec`; a source embedded store must exist.
async fn open(
    spec: &StoreSpec,
    side: Side,
    args: &MigrateArgs,
) -> Result<Box<dyn Storage>, String> {
    match spec {
        StoreSpec::Embedded(dir) => {
            let store = embedded_store_dir(dir);
            if side == Side::Source && !store.join("store.redb").exists() {
                return Err(format!(
                    "no embedded store in {}: neither {} nor {} exists",
                    dir.display(),
                    dir.join("store.redb").display(),
                    dir.join("store").join("store.redb").display()
                ));
            }
            let opened = EmbeddedStore::open(&store).map_err(|e| {
                format!(
                    "cannot open the embedded store in {} ({e}); is an orch still running on it? \
                     Stop it first",
                    store.display()
                )
            })?;
            Ok(Box::new(opened))
        }
        StoreSpec::Etcd { servers, prefix } => open_etcd(servers, prefix, args).await,
    }
}

#[cfg(feature = "etcd")]
async fn open_etcd(
    servers: &[String],
    prefix: &str,
    args: &MigrateArgs,
) -> Result<Box<dyn Storage>, String> {
    use orch_apiserver::storage::etcd::EtcdStore;
    let store = EtcdStore::connect(servers, prefix, args.tls.tls().as_ref())
        .await
        .map_err(|e| format!("cannot connect to etcd at {}: {e}", servers.join(",")))?;
    Ok(Box::new(store))
}

#[cfg(not(feature = "etcd"))]
async fn open_etcd(_: &[String], _: &str, _: &MigrateArgs) -> Result<Box<dyn Storage>, String> {
    Err(NO_ETCD.into())
}

/// Refuses what cannot work before anything is opened (and a target directory created).
fn check(args: &MigrateArgs) -> Result<(), String> {
    if args.tls.any() && !args.from.is_etcd() && !args.to.is_etcd() {
        return Err("the --etcd-* flags need an etcd: store in --from or --to".into());
    }
    let same = match (&args.from, &args.to) {
        (StoreSpec::Embedded(a), StoreSpec::Embedded(b)) => {
            let (a, b) = (embedded_store_dir(a), embedded_store_dir(b));
            a == b
                || a.canonicalize()
                    .ok()
                    .zip(b.canonicalize().ok())
                    .is_some_and(|(a, b)| a == b)
        }
        (
            StoreSpec::Etcd {
                servers: s1,
                prefix: p1,
            },
            StoreSpec::Etcd {
                servers: s2,
                prefix: p2,
            },
        ) => {
            s1.iter().any(|s| s2.contains(s))
                && p1.trim_end_matches('/') == p2.trim_end_matches('/')
        }
        _ => false,
    };
    if same {
        return Err(format!(
            "--from {} and --to {} are the same store",
            args.from, args.to
        ));
    }
    #[cfg(not(feature = "etcd"))]
    if args.from.is_etcd() || args.to.is_etcd() {
        return Err(NO_ETCD.into());
    }
    Ok(())
}

/// How to start an API server on the migrated store.
fn start_hint(to: &StoreSpec) -> Option<String> {
    match to {
        StoreSpec::Embedded(dir) => {
            let store = embedded_store_dir(dir);
            let data = store
                .parent()
                .filter(|_| store.file_name().is_some_and(|n| n == "store"))?;
            Some(format!("orch up --data-dir {}", data.display()))
        }
        StoreSpec::Etcd { servers, prefix } => {
            let mut hint = format!(
                "orch up --storage etcd --etcd-servers {}",
                servers.join(",")
            );
            if !prefix.is_empty() {
                hint.push_str(&format!(" --etcd-prefix {prefix}"));
            }
            Some(hint)
        }
    }
}

/// The summary printed after a successful copy.
fn summary(args: &MigrateArgs, report: &MigrateReport, took: Duration) -> String {
    let mut out = format!(
        "copied {} objects from {} (revision {}) to {}",
        report.objects, args.from, report.source_revision, args.to
    );
    if let Some((first, last)) = report.target_revisions {
        out.push_str(&format!(" (revisions {first}..{last})"));
    }
    out.push_str(&format!(" in {:.2}s\n", took.as_secs_f64()));
    let width = report
        .per_resource
        .keys()
        .map(String::len)
        .chain(["RESOURCE".len()])
        .max()
        .unwrap_or(0);
    if !report.per_resource.is_empty() {
        out.push_str(&format!("{:<width$}  OBJECTS\n", "RESOURCE"));
        for (resource, n) in &report.per_resource {
            out.push_str(&format!("{resource:<width$}  {n}\n"));
        }
    }
    if let Some(hint) = start_hint(&args.to) {
        out.push_str(&format!("start it with: {hint}\n"));
    }
    out
}

/// Progress lines on stderr: one every this many objects.
const PROGRESS_EVERY: usize = 1000;

async fn migrate(args: &MigrateArgs) -> Result<String, String> {
    check(args)?;
    let from = open(&args.from, Side::Source, args).await?;
    let to = open(&args.to, Side::Target, args).await?;
    let started = Instant::now();
    let mut progress = |p: Progress<'_>| match p {
        Progress::Read { objects, revision } => {
            eprintln!(
                "read {objects} objects from {} at revision {revision}",
                args.from
            );
        }
        Progress::Copied { done, total, .. } if done % PROGRESS_EVERY == 0 && done < total => {
            eprintln!("copied {done}/{total}");
        }
        Progress::Copied { .. } => {}
    };
    let report = migrate::copy(from.as_ref(), to.as_ref(), &mut progress)
        .await
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    // Closes the stores (an embedded store's writer finishes) before reporting success.
    drop((from, to));
    Ok(summary(args, &report, took))
}

/// Runs `orch storage …`; returns the exit code.
pub fn run(command: StorageCommand) -> i32 {
    let StorageCommand::Migrate(args) = command;
    let Some(rt) = super::runtime(true) else {
        return 1;
    };
    match rt.block_on(migrate(&args)) {
        Ok(summary) => {
            print!("{summary}");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StoreSpec, SpecError> {
        s.parse()
    }

    #[test]
    fn specs_parse_and_print() {
        assert_eq!(
            parse("embedded:/d/store"),
            Ok(StoreSpec::Embedded("/d/store".into()))
        );
        let etcd = parse("etcd:http://a:2379, http://b:2379?prefix=/one").unwrap();
        assert_eq!(
            etcd,
            StoreSpec::Etcd {
                servers: vec!["http://a:2379".into(), "http://b:2379".into()],
                prefix: "/one".into()
            }
        );
        assert_eq!(
            etcd.to_string(),
            "etcd:http://a:2379,http://b:2379?prefix=/one"
        );
        assert_eq!(
            parse("etcd:http://a:2379").unwrap().to_string(),
            "etcd:http://a:2379"
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert_eq!(parse("/d"), Err(SpecError::UnknownKind("/d".into())));
        assert_eq!(
            parse("memory:x"),
            Err(SpecError::UnknownKind("memory:x".into()))
        );
        assert_eq!(
            parse("embedded:"),
            Err(SpecError::NoDirectory("embedded:".into()))
        );
        assert_eq!(
            parse("etcd: , "),
            Err(SpecError::NoServer("etcd: , ".into()))
        );
        assert_eq!(
            parse("etcd:?prefix=/x"),
            Err(SpecError::NoServer("etcd:?prefix=/x".into()))
        );
        let e = parse("etcd:http://a:2379?tls=1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`etcd:http://a:2379?tls=1`: unknown option `tls=1` (the only option is prefix=P)"
        );
    }

    #[test]
    fn embedded_dirs_are_store_or_data_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        // Not there yet: a directory named `store` is the store, any other a data dir.
        assert_eq!(embedded_store_dir(&data.join("store")), data.join("store"));
        assert_eq!(embedded_store_dir(&data), data.join("store"));
        // A data dir named `store` holding a store.
        let odd = tmp.path().join("store");
        std::fs::create_dir_all(odd.join("store")).unwrap();
        assert_eq!(embedded_store_dir(&odd), odd.join("store"));
        // A store directory with another name.
        let other = tmp.path().join("copy");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("store.redb"), b"").unwrap();
        assert_eq!(embedded_store_dir(&other), other);
    }

    fn args(from: &str, to: &str) -> MigrateArgs {
        MigrateArgs {
            from: parse(from).unwrap(),
            to: parse(to).unwrap(),
            tls: EtcdTlsArgs::default(),
        }
    }

    #[test]
    fn the_same_store_or_stray_tls_flags_are_refused() {
        let e = check(&args("embedded:/d", "embedded:/d/store")).unwrap_err();
        assert!(e.contains("are the same store"), "{e}");
        let e = check(&args(
            "etcd:http://a:1?prefix=/x/",
            "etcd:http://a:1?prefix=/x",
        ));
        assert!(e.unwrap_err().contains("are the same store"));
        let mut a = args("embedded:/d", "embedded:/e");
        assert_eq!(check(&a), Ok(()));
        a.tls.etcd_cafile = Some("ca.pem".into());
        assert_eq!(
            check(&a),
            Err("the --etcd-* flags need an etcd: store in --from or --to".into())
        );
    }

    #[cfg(not(feature = "etcd"))]
    #[test]
    fn etcd_says_how_to_build_it() {
        let e = check(&args("embedded:/d", "etcd:http://a:2379")).unwrap_err();
        assert!(e.contains("--features etcd"), "{e}");
    }

    #[test]
    fn a_missing_source_is_an_error_and_creates_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let a = args(
            &format!("embedded:{}", tmp.path().join("none").display()),
            &format!("embedded:{}", tmp.path().join("new").display()),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt.block_on(migrate(&a)).unwrap_err();
        assert!(e.starts_with("no embedded store in "), "{e}");
        assert!(!tmp.path().join("none").exists());
        assert!(!tmp.path().join("new").exists());
    }

    #[test]
    fn the_summary_counts_per_resource_and_says_how_to_start() {
        let report = MigrateReport {
            source_revision: 40,
            objects: 3,
            target_revisions: Some((5, 7)),
            per_resource: [
                ("configmaps".to_string(), 2),
                ("deployments.apps".to_string(), 1),
            ]
            .into_iter()
            .collect(),
        };
        let s = summary(
            &args("embedded:/d/store", "etcd:http://a:2379?prefix=/p"),
            &report,
            Duration::from_millis(1500),
        );
        assert_eq!(
            s,
            "copied 3 objects from embedded:/d/store (revision 40) to \
             etcd:http://a:2379?prefix=/p (revisions 5..7) in 1.50s\n\
             RESOURCE          OBJECTS\n\
             configmaps        2\n\
             deployments.apps  1\n\
             start it with: orch up --storage etcd --etcd-servers http://a:2379 --etcd-prefix /p\n"
        );
    }
}
