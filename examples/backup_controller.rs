//! A controller for a custom kind, written as a library user writes one: the Backup kind of
//! `examples/crd/backup-crd.yaml` (`ops.example.org/v1`), typed through a `serde` struct.
//!
//! For each Backup it keeps a ConfigMap `backup-<name>` (controlled by the Backup, labelled
//! `backup=<name>`, data `database` and `schedule` from the spec) in step with the spec, and
//! writes `status.workers` (= `spec.workers`) and `status.selector` (`backup=<name>`, what
//! `kubectl scale` reads through the scale subresource). It never sets `status.lastRun`.
//! Deleting a Backup deletes its ConfigMap through the garbage collector (the owner
//! reference), so the controller has nothing to do on deletion.
//!
//! The same [`BackupController`] runs on orch-runtime's live driver against any API server
//! given a kubeconfig (`orch up`'s, or a real Kubernetes cluster's: the HTTP client speaks
//! Kubernetes' API), in process against `orch::Cluster`, and in the simulator
//! (`SimOptions::controllers`); `tests/backup_controller.rs` runs it all three ways.
//!
//! ```text
//! orch up --data-dir /tmp/orch &
//! kubectl --kubeconfig /tmp/orch/kubeconfig apply -f examples/crd/backup-crd.yaml
//! cargo run --example backup_controller -- /tmp/orch/kubeconfig
//! kubectl --kubeconfig /tmp/orch/kubeconfig apply -f - <<EOF
//! apiVersion: ops.example.org/v1
//! kind: Backup
//! metadata: {name: nightly}
//! spec: {database: orders, workers: 2}
//! EOF
//! kubectl --kubeconfig /tmp/orch/kubeconfig get configmap backup-nightly -o yaml
//! ```
//!
//! Without an argument it uses `$KUBECONFIG`, then `~/.kube/config`. On a real cluster the
//! kubeconfig's user needs get/list/watch on `backups.ops.example.org` and ConfigMaps,
//! patch on `backups/status`, and create/update on ConfigMaps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_runtime::controller::{trigger_owner, trigger_self, Caches, Controller, Watches};
use orch_runtime::live::LiveConfig;
use orch_runtime::object::{controller_of, controller_ref_of, is_deleting, key_from};
use orch_runtime::Action;
use orch_types::client::SharedClient;
use serde::{Deserialize, Serialize};

/// A Backup (`ops.example.org/v1`), as the CRD's schema has it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Backup {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// What the user asks for.
    pub spec: BackupSpec,
    /// What the controller reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BackupStatus>,
}

/// `spec` of a Backup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// The database to back up.
    pub database: String,
    /// When to run, in cron syntax (the CRD defaults it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// How many backups to keep (the CRD defaults it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<i64>,
    /// Parallel backup workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<i64>,
}

/// `status` of a Backup; fields left `None` are not written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// Workers running (`spec.workers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<i64>,
    /// Label selector of the Backup's objects (`backup=<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// When the last backup ran (not set by this controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
}

orch_runtime::custom_kind!(
    Backup,
    group = "ops.example.org",
    version = "v1",
    kind = "Backup",
    plural = "backups",
    scope = Namespaced
);

/// Keeps each Backup's ConfigMap and status in step with its spec.
#[derive(Debug, Default)]
pub struct BackupController;

/// The name of the ConfigMap of Backup `name`.
pub fn config_map_name(name: &str) -> String {
    format!("backup-{name}")
}

impl BackupController {
    /// The ConfigMap Backup `b` should have.
    fn config_map(b: &Backup) -> ConfigMap {
        let name = b.metadata.name.as_deref().unwrap_or_default();
        let mut data = BTreeMap::from([("database".to_string(), b.spec.database.clone())]);
        if let Some(s) = &b.spec.schedule {
            data.insert("schedule".into(), s.clone());
        }
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(config_map_name(name)),
                namespace: b.metadata.namespace.clone(),
                labels: Some(BTreeMap::from([("backup".into(), name.into())])),
                owner_references: Some(vec![controller_ref_of(b)]),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }
    }
}

impl Controller for BackupController {
    fn name(&self) -> &'static str {
        "backup"
    }

    fn component(&self) -> &'static str {
        "backup-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<Backup>(trigger_self());
        // A ConfigMap changed or deleted by someone else brings its Backup back here.
        w.watch::<ConfigMap>(trigger_owner("Backup"));
    }

    fn sync(&self, key: &str, caches: &Caches, _now: jiff::Timestamp) -> Vec<Action> {
        let Some(b) = caches.get::<Backup>().get(key) else {
            return vec![]; // Gone: the garbage collector deletes its ConfigMap.
        };
        if is_deleting(&b.metadata) {
            return vec![];
        }
        let mut actions = Vec::new();
        let want = Self::config_map(&b);
        let have = caches.get::<ConfigMap>().get(&key_from(
            b.metadata.namespace.as_deref(),
            want.metadata.name.as_deref().unwrap_or_default(),
        ));
        let in_step = have.is_some_and(|cm| {
            cm.data == want.data
                && cm.metadata.labels == want.metadata.labels
                && controller_of(&cm.metadata).map(|r| &r.uid) == b.metadata.uid.as_ref()
        });
        if !in_step {
            actions.push(Action::create_or_update(&want));
        }
        let status = BackupStatus {
            workers: b.spec.workers,
            selector: Some(format!(
                "backup={}",
                b.metadata.name.as_deref().unwrap_or_default()
            )),
            last_run: None,
        };
        let current = b.status.clone().unwrap_or_default();
        if (current.workers, &current.selector) != (status.workers, &status.selector) {
            actions.push(Action::patch_status(b.as_ref(), &status));
        }
        actions
    }
}

/// Runs the Backup controller on the live driver against `client` until `shutdown`.
pub async fn run(client: SharedClient, shutdown: impl std::future::Future<Output = ()> + Send) {
    orch_runtime::live::run(
        client,
        Arc::new(orch_types::clock::SystemClock),
        vec![Arc::new(BackupController)],
        LiveConfig::default(),
        shutdown,
    )
    .await;
}

/// The kubeconfig to use: the first argument, `$KUBECONFIG`, or `~/.kube/config`.
fn kubeconfig() -> Option<PathBuf> {
    std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")))
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let Some(path) = kubeconfig() else {
        eprintln!("usage: backup_controller [KUBECONFIG]");
        std::process::exit(2);
    };
    let client = match orch_apiserver::client::HttpClient::from_kubeconfig(&path) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "backup controller: watching Backups through {}",
        path.display()
    );
    rt.block_on(run(client, async {
        let _ = tokio::signal::ctrl_c().await;
    }));
}
