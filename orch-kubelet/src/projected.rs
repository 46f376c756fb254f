//! Projected volumes (`projected: {sources: [...]}`), as upstream's projected volume plugin
//! builds them (`pkg/volume/projected/projected.go` `collectData`) and writes them
//! (`pkg/volume/util/atomic_writer.go`): the files of each source — `configMap` and `secret`
//! keys (all, or the listed `items`), `downwardAPI` fields, and a `serviceAccountToken` the
//! kubelet requests for the pod ([`crate::token`]) — in one directory per pod volume, replaced
//! atomically so a reader never sees a half-written set.
//!
//! [`payload`] is pure (the driver fetches the ConfigMaps, Secrets and tokens first, see
//! [`sources`]); [`write_atomic`] is the file I/O: the files live in a hidden timestamped
//! directory, `..data` is a symlink to it, and each top-level name is a symlink through
//! `..data`; a new payload goes into a new directory and `..data` is swapped with one
//! `rename`, then the old directory is removed. Writing the same payload again changes
//! nothing.
//!
//! The ServiceAccount admission plugin adds such a volume to every pod
//! (`kube-api-access-XXXXX`: the token, `ca.crt` from the `kube-root-ca.crt` ConfigMap and the
//! pod's `namespace`), mounted at `/var/run/secrets/kubernetes.io/serviceaccount`.

use crate::env::{resource_field, EnvContext};
use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, ProjectedVolumeSource, Secret};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

/// Upstream `ProjectedVolumeSourceDefaultMode` (0644).
pub const DEFAULT_MODE: i32 = 0o644;

/// One file of a volume: its mode and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    /// The file's bytes.
    pub data: Vec<u8>,
    /// Its permission bits.
    pub mode: u32,
}

/// A volume's files by relative path.
pub type Payload = BTreeMap<String, FileProjection>;

/// What the sources of a pod's projected volumes name, for the driver to fetch: ConfigMaps,
/// Secrets (in the pod's namespace) and service-account tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// ConfigMap names.
    pub config_maps: Vec<String>,
    /// Secret names.
    pub secrets: Vec<String>,
    /// Tokens: (audience, expirationSeconds), audience empty for the API server's own.
    pub tokens: Vec<(String, i64)>,
}

/// The pod's projected volumes by name.
pub fn volumes(pod: &Pod) -> Vec<(&str, &ProjectedVolumeSource)> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| Some((v.name.as_str(), v.projected.as_ref()?)))
        .collect()
}

/// What the pod's projected volumes reference.
pub fn sources(pod: &Pod) -> Sources {
    let mut out = Sources::default();
    for (_, p) in volumes(pod) {
        for s in p.sources.iter().flatten() {
            if let Some(c) = &s.config_map {
                out.config_maps.push(c.name.clone());
            }
            if let Some(c) = &s.secret {
                out.secrets.push(c.name.clone());
            }
            if let Some(t) = &s.service_account_token {
                out.tokens.push((
                    t.audience.clone().unwrap_or_default(),
                    t.expiration_seconds.unwrap_or(3600),
                ));
            }
        }
    }
    out.config_maps.sort();
    out.config_maps.dedup();
    out.secrets.sort();
    out.secrets.dedup();
    out.tokens.sort();
    out.tokens.dedup();
    out
}

/// The objects a projected volume's files come from.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// ConfigMaps of the pod's namespace by name (missing ones absent).
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets of the pod's namespace by name.
    pub secrets: BTreeMap<String, Secret>,
    /// Tokens by (audience, expirationSeconds), or why the request failed.
    pub tokens: BTreeMap<(String, i64), Result<String, String>>,
}

fn key_files(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    mode: u32,
    kind: &str,
    out: &mut Payload,
) -> Result<(), String> {
    match items {
        None => {
            for (k, v) in data {
                out.insert(k, FileProjection { data: v, mode });
            }
        }
        Some(items) => {
            for it in items {
                let Some(v) = data.get(&it.key) else {
                    return Err(format!(
                        "{kind} references non-existent config key: {}",
                        it.key
                    ));
                };
                let mode = it.mode.map_or(mode, |m| m as u32);
                out.insert(
                    it.path.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode,
                    },
                );
            }
        }
    }
    Ok(())
}

/// The files of projected volume `p` of `pod` from the fetched objects (upstream
/// `collectData`): a missing ConfigMap, Secret or key is an error unless the source is
/// optional; a token that could not be requested is an error.
pub fn payload(
    pod: &Pod,
    p: &ProjectedVolumeSource,
    fetched: &Fetched,
    env: &EnvContext,
) -> Result<Payload, String> {
    let default_mode = p.default_mode.unwrap_or(DEFAULT_MODE) as u32;
    let mut out = Payload::new();
    for s in p.sources.iter().flatten() {
        if let Some(c) = &s.config_map {
            match fetched.config_maps.get(&c.name) {
                Some(cm) => {
                    let mut data: BTreeMap<String, Vec<u8>> = cm
                        .data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                        .collect();
                    data.extend(
                        cm.binary_data
                            .iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), v.0.clone())),
                    );
                    key_files(data, c.items.as_ref(), default_mode, "configmap", &mut out)?;
                }
                None if c.optional == Some(true) => {}
                None => return Err(format!("configmap \"{}\" not found", c.name)),
            }
        }
        if let Some(c) = &s.secret {
            match fetched.secrets.get(&c.name) {
                Some(sec) => {
                    let mut data: BTreeMap<String, Vec<u8>> = sec
                        .string_data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                        .collect();
                    data.extend(
                        sec.data
                            .iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), v.0.clone())),
                    );
                    key_files(data, c.items.as_ref(), default_mode, "secret", &mut out)?;
                }
                None if c.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", c.name)),
            }
        }
        if let Some(d) = &s.downward_api {
            for it in d.items.iter().flatten() {
                let value = if let Some(f) = &it.field_ref {
                    crate::env::field_ref(pod, &f.field_path, env).map_err(|e| e.to_string())?
                } else if let Some(r) = &it.resource_field_ref {
                    let spec = pod.spec.as_ref();
                    let container = spec
                        .and_then(|s| {
                            s.containers
                                .iter()
                                .find(|c| Some(&c.name) == r.container_name.as_ref())
                        })
                        .ok_or_else(|| {
                            format!(
                                "cannot find container {}",
                                r.container_name.as_deref().unwrap_or("")
                            )
                        })?;
                    resource_field(container, &r.resource, r.divisor.as_ref(), env)
                        .map_err(|e| e.to_string())?
                } else {
                    continue;
                };
                out.insert(
                    it.path.clone(),
                    FileProjection {
                        data: value.into_bytes(),
                        mode: it.mode.map_or(default_mode, |m| m as u32),
                    },
                );
            }
        }
        if let Some(t) = &s.service_account_token {
            let key = (
                t.audience.clone().unwrap_or_default(),
                t.expiration_seconds.unwrap_or(3600),
            );
            match fetched.tokens.get(&key) {
                Some(Ok(token)) => {
                    out.insert(
                        t.path.clone(),
                        FileProjection {
                            data: token.clone().into_bytes(),
                            mode: default_mode,
                        },
                    );
                }
                Some(Err(e)) => return Err(e.clone()),
                None => return Err("no service account token was requested".into()),
            }
        }
    }
    for path in out.keys() {
        validate_path(path)?;
    }
    Ok(out)
}

/// A payload path must be relative, without `..` elements and not start with `..` (upstream
/// `validatePath`).
fn validate_path(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.is_empty()
        || p.is_absolute()
        || path.starts_with("..")
        || p.components().any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!("invalid path in volume payload: {path:?}"));
    }
    Ok(())
}

const DATA_LINK: &str = "..data";

/// The payload currently in `dir` (through `..data`), if any.
fn current(dir: &Path, payload: &Payload) -> Option<bool> {
    let data = dir.join(DATA_LINK);
    std::fs::symlink_metadata(&data).ok()?;
    for (path, f) in payload {
        let p = data.join(path);
        let meta = std::fs::metadata(&p).ok()?;
        if meta.permissions().mode() & 0o7777 != f.mode || std::fs::read(&p).ok()? != f.data {
            return Some(false);
        }
    }
    // No stale files either: the same set of top-level names.
    let names: std::collections::BTreeSet<String> = payload.keys().map(|k| top(k)).collect();
    let existing = visible_names(dir);
    Some(existing == names)
}

fn top(path: &str) -> String {
    path.split('/').next().unwrap_or(path).to_string()
}

fn visible_names(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with(".."))
        .collect()
}

/// Writes `payload` into `dir` atomically (upstream `AtomicWriter.Write`): unchanged content
/// is left alone (returns `false`); otherwise the files go into a new hidden directory that
/// `..data` is switched to with a rename, the top-level symlinks are made, stale ones and the
/// old directory removed (returns `true`).
pub fn write_atomic(dir: &Path, payload: &Payload) -> std::io::Result<bool> {
    for path in payload.keys() {
        validate_path(path).map_err(std::io::Error::other)?;
    }
    std::fs::create_dir_all(dir)?;
    if current(dir, payload) == Some(true) {
        return Ok(false);
    }
    let old = std::fs::read_link(dir.join(DATA_LINK)).ok();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!(
        "..{}.{:09}.{}",
        stamp.as_secs(),
        stamp.subsec_nanos(),
        std::process::id()
    );
    let ts = dir.join(&name);
    std::fs::create_dir(&ts)?;
    for (path, f) in payload {
        let p = ts.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(f.mode)
            .open(&p)?;
        file.write_all(&f.data)?;
        file.sync_all()?;
        // The umask may have narrowed the mode given at creation.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&name, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA_LINK))?;
    let names: std::collections::BTreeSet<String> = payload.keys().map(|k| top(k)).collect();
    for n in &names {
        let link = dir.join(n);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_LINK).join(n), &link)?;
        }
    }
    for stale in visible_names(dir).difference(&names) {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != name.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
