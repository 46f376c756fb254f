//! The repair loop (upstream `pkg/registry/core/service/ipallocator/controller/repair.go`,
//! `portallocator/controller/repair.go` and the IPAddress `repairip` controller): at start and
//! every [`super::ServiceAllocConfig::repair_interval`] it compares the allocation records
//! with the Services in storage:
//!
//! - a record no Service holds, older than [`super::ServiceAllocConfig::leak_grace`] (a write
//!   that crashed between its record and its Service, or a release that failed), is deleted;
//!   younger, it may belong to a write in flight and is kept;
//! - a record naming a Service that no longer holds the value, while another Service does, is
//!   given to that Service;
//! - a value a Service holds without a record (stored before allocation existed, or restored
//!   from a backup) gets its record back, unless it is outside the range (logged, as upstream's
//!   `ClusterIPOutOfRange`);
//! - a value held by several Services is logged (upstream's `ClusterIPAlreadyAllocated`): it
//!   cannot be fixed without recreating one of them.
//!
//! Every change compares the record's revision, so repairs on several API servers of one store
//! and concurrent writes never undo each other.

use super::{held_keys, ip_record, port_record, Owner, IP_PREFIX, NODE_PORT_PREFIX};
use crate::server::ApiServer;
use crate::storage::{ListOptions, StorageError, WriteOp};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Weak;

/// What one repair round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Records re-created for values Services hold.
    pub restored: usize,
    /// Leaked records deleted.
    pub freed: usize,
    /// Records given to the Service that holds their value.
    pub reassigned: usize,
    /// Values held by several Services, or outside the range (record keys).
    pub conflicts: Vec<String>,
}

/// One repair round.
pub async fn repair(api: &ApiServer) -> Result<RepairReport, StorageError> {
    let storage = api.storage.as_ref();
    let a = &api.service_alloc;
    let mut report = RepairReport::default();
    // Records first: a record created after this list is not judged this round.
    let mut records = storage
        .list(IP_PREFIX, &ListOptions::default())
        .await?
        .items;
    records.extend(
        storage
            .list(NODE_PORT_PREFIX, &ListOptions::default())
            .await?
            .items,
    );
    let services = storage
        .list(
            &crate::storage::key::resource_prefix("", "services"),
            &ListOptions::default(),
        )
        .await?;
    let mut held: BTreeMap<String, Vec<Owner>> = BTreeMap::new();
    for (_, v) in &services.items {
        let owner = Owner::of(&v.object);
        for key in held_keys(&v.object) {
            held.entry(key).or_default().push(owner.clone());
        }
    }
    let now = api.config.clock.now();
    let grace = i64::try_from(a.config().leak_grace.as_secs()).unwrap_or(i64::MAX);
    let mut kept = BTreeSet::new();
    for (key, v) in &records {
        let owner = Owner::of_record(&v.object);
        let holders = held.get(key).map(Vec::as_slice).unwrap_or_default();
        if owner.as_ref().is_some_and(|o| holders.contains(o)) {
            kept.insert(key.clone());
            continue;
        }
        let age = v
            .object
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(i64::MAX, |t| now.as_second() - t.0.as_second());
        if age < grace {
            kept.insert(key.clone());
            continue;
        }
        let result = match holders.first() {
            Some(holder) => {
                let mut record = (*v.object).clone();
                if let Some(p) = record
                    .data
                    .get_mut("spec")
                    .and_then(|s| s.get_mut("parentRef"))
                    .and_then(|p| p.as_object_mut())
                {
                    p.insert("namespace".into(), holder.namespace.clone().into());
                    p.insert("name".into(), holder.name.clone().into());
                }
                record.metadata.resource_version = None;
                tracing::warn!(key, service = ?holder, "Service allocation record named another Service; given to the holder");
                storage
                    .write(WriteOp::Update {
                        key: key.clone(),
                        object: record,
                        expected: Some(v.mod_revision),
                        ttl: None,
                    })
                    .await
                    .map(|_| {
                        report.reassigned += 1;
                        kept.insert(key.clone());
                    })
            }
            None => {
                tracing::info!(key, owner = ?owner, "freeing a leaked Service allocation");
                storage
                    .delete(key, Some(v.mod_revision))
                    .await
                    .map(|_| report.freed += 1)
            }
        };
        match result {
            Ok(()) | Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let listed: BTreeSet<&String> = records.iter().map(|(k, _)| k).collect();
    let stamp = crate::rest::meta::time(now).0.to_string();
    for (key, holders) in &held {
        if holders.len() > 1 {
            tracing::warn!(key, services = ?holders, "a Service IP or node port is held by several Services; recreate all but one");
            report.conflicts.push(key.clone());
        }
        if listed.contains(key) {
            continue;
        }
        let record = if let Some(ip) = key.strip_prefix(IP_PREFIX) {
            match ip.parse::<IpAddr>() {
                Ok(ip) if a.config().cluster_ip_range.offset(ip).is_some() => {
                    Some(ip_record(&ip, &holders[0], &stamp))
                }
                _ => None,
            }
        } else {
            key.strip_prefix(NODE_PORT_PREFIX)
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| a.config().node_port_range.contains(*p))
                .map(|p| port_record(p, &holders[0], &stamp))
        };
        let Some(record) = record else {
            tracing::warn!(key, services = ?holders, "a Service holds a value outside the configured range");
            report.conflicts.push(key.clone());
            continue;
        };
        let create = WriteOp::Create {
            key: key.clone(),
            object: record,
            ttl: None,
        };
        match storage.write(create).await {
            Ok(_) => {
                tracing::info!(key, service = ?holders[0], "restored a missing Service allocation record");
                report.restored += 1;
            }
            Err(StorageError::KeyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        kept.insert(key.clone());
    }
    a.reset_hints(&kept);
    Ok(report)
}

/// One [`repair`] pass whose findings and failures are logged.
pub(crate) async fn round(api: &ApiServer) {
    match repair(api).await {
        Ok(r) if r != RepairReport::default() => {
            tracing::info!(report = ?r, "repaired Service allocations");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "repairing Service allocations failed"),
    }
}

/// Runs [`round`] every interval until the server stops serving (the first pass ran at
/// start, in `ApiServer::bootstrap`). The server is held only during a round, never once it
/// stopped, so its storage is released with it.
pub(crate) async fn run(api: Weak<ApiServer>) {
    let mut stop = match api.upgrade() {
        Some(a) => a.stop.subscribe(),
        None => return,
    };
    loop {
        let every = match api.upgrade() {
            Some(server) => server.service_alloc.config().repair_interval,
            None => return,
        };
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(every) => {}
        }
        if *stop.borrow_and_update() {
            return;
        }
        let Some(server) = api.upgrade() else { return };
        round(&server).await;
    }
}
