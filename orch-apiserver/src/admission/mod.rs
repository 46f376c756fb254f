//! Admission: what runs on every write between decoding and storage, in upstream's order —
//! mutating plugins (defaulting, [`default_tolerations`], [`default_storage_class`],
//! [`pod_preset`], [`service_account`]), the mutating admission webhooks, then validation and
//! the validating admission webhooks ([`crate::webhook`]), then the plugins that need storage
//! (`usage.rs`): [`limit_ranger`] and [`resource_quota`], called by the create and update paths
//! just before the write.
//!
//! Defaulting and validation come from `orch_types` (`defaults::apply_defaults`,
//! `validation::validate` / `validate_update`); invalid objects are rejected with 422 and one
//! `details.causes[]` entry per field error, before anything is written.

pub mod default_storage_class;
pub mod default_tolerations;
pub mod limit_ranger;
pub mod pod_preset;
pub mod resource_quota;
pub mod service_account;
mod usage;

use crate::rest::update::Part;
use crate::rest::{Resource, RestResult};
use crate::server::ApiServer;
use orch_types::{ApiError, DynamicObject};

/// `fieldValidation` of a write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown or duplicate fields fail the request (400).
    Strict,
    /// They are dropped with a `Warning` header (the default).
    Warn,
    /// They are dropped silently.
    Ignore,
}

impl FieldValidation {
    /// Parses the query parameter (`None`: the default, Warn).
    pub fn parse(v: Option<&str>) -> RestResult<Self> {
        match v.unwrap_or("") {
            "" | "Warn" => Ok(Self::Warn),
            "Strict" => Ok(Self::Strict),
            "Ignore" => Ok(Self::Ignore),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Strict, Warn, Ignore; got {other:?}"
            ))),
        }
    }
}

impl ApiServer {
    /// Checks unknown fields per `fieldValidation` (`None`: not checked, the in-process client);
    /// returns the warnings to send. Values of the wrong type are always a 400.
    pub(crate) fn check_fields(
        &self,
        info: Resource,
        obj: &DynamicObject,
        validation: Option<&str>,
    ) -> RestResult<Vec<String>> {
        let Some(validation) = validation else {
            return Ok(Vec::new());
        };
        let mode = FieldValidation::parse(Some(validation))?;
        if mode == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        let unknown = match self.custom(info) {
            Some(cr) => crate::crd::admission::unknown_fields(&cr, obj),
            None => unknown_fields(info, obj)?,
        };
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        let text: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        match mode {
            FieldValidation::Strict => Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                text.join(", ")
            ))),
            _ => Ok(text),
        }
    }

    /// Runs the admission chain on a create (`old == None`) or update: defaulting, the
    /// DefaultTolerationSeconds plugin on pod writes, the DefaultStorageClass plugin on claim
    /// creation, the PodPreset plugin on pod creation, the mutating admission webhooks
    /// ([`crate::webhook`]; a patched object is defaulted again, as upstream decodes it),
    /// validation, then the validating admission webhooks.
    ///
    /// A `status` write (`part` [`Part::Status`]) carries the stored object with the client's
    /// status (see `rest::update`): only its status is defaulted and checked against the typed
    /// struct, and validation is the status strategy's (metadata update; upstream
    /// `pkg/registry/core/pod/strategy.go` `podStatusStrategy.ValidateUpdate`). A write to a
    /// pod's `ephemeralcontainers` carries the stored pod with the client's ephemeral
    /// containers: defaulted whole, validated as `podEphemeralContainersStrategy` does (they
    /// may only be added), and, like upstream's plugins on a subresource, left alone by
    /// DefaultTolerationSeconds.
    ///
    /// What admission leaves to do once the object is stored (a PodPreset conflict's Event)
    /// comes back in [`Admitted::after_store`]: a dry run or a failed write records nothing.
    pub(crate) async fn admit(
        &self,
        info: Resource,
        obj: &mut DynamicObject,
        old: Option<&DynamicObject>,
        part: Part,
        dry_run: bool,
    ) -> RestResult<Admitted> {
        let custom = self.custom(info);
        self.default_object(info, custom.as_deref(), obj, old, part)?;
        crate::auth::admit(self, info, obj, old)?;
        let mut preset_conflict = None;
        if matches!(part, Part::Main | Part::Finalize) {
            // Upstream's DefaultTolerationSeconds handles creates and updates alike, so a
            // `kubectl replace` of an unchanged pod keeps the tolerations it was given.
            default_tolerations::admit(info, obj);
        }
        if old.is_none() {
            default_storage_class::admit(info, obj, || self.storage_classes());
            let ns = obj.namespace().unwrap_or_default().to_string();
            if let pod_preset::Outcome::Conflict { presets, message } =
                pod_preset::admit(info, obj, || self.pod_presets(&ns))?
            {
                preset_conflict = Some((presets, message));
            }
            if self.config.service_account_admission
                && info.group.is_empty()
                && info.kind == "Pod"
                && part == Part::Main
            {
                self.admit_service_account(obj, &ns).await?;
            }
        }
        let op = match old {
            None => crate::webhook::Operation::Create,
            Some(_) => crate::webhook::Operation::Update,
        };
        let mutated = self
            .mutate_by_webhooks(info, op, part.subresource(), obj, old, dry_run)
            .await?;
        if mutated.changed {
            self.default_object(info, custom.as_deref(), obj, old, part)?;
        }
        // `obj` is defaulted now: validate it as is (defaulting is idempotent).
        let errors = match (old, part) {
            (None, _) => orch_types::validation::validate_defaulted(obj),
            (Some(old), Part::Status) => orch_types::validation::validate_status_update(obj, old),
            (Some(old), Part::Approval) => {
                orch_types::validation::validate_approval_update(obj, old)
            }
            (Some(old), Part::EphemeralContainers) => {
                orch_types::validation::validate_ephemeral_containers_update(obj, old)
            }
            (Some(old), Part::Main | Part::Finalize) => {
                orch_types::validation::validate_update_defaulted(obj, old)
            }
        };
        let mut errors = errors;
        let kind = match &custom {
            Some(cr) => {
                errors.extend(crate::crd::admission::validate(cr, obj, old));
                crate::crd::admission::qualified_kind(cr)
            }
            None => info.kind.to_string(),
        };
        if !errors.is_empty() {
            let causes = errors.iter().map(|e| e.to_status_cause()).collect();
            return Err(ApiError::invalid(&kind, obj.name(), causes));
        }
        let mut warnings = mutated.warnings;
        warnings.extend(
            self.validate_by_webhooks(info, op, part.subresource(), Some(obj), old, dry_run)
                .await?,
        );
        Ok(Admitted {
            warnings,
            preset_conflict,
        })
    }

    /// Pruning and defaulting of a custom object by its schema, then the built-in defaults
    /// (of the status only on a `status` write).
    fn default_object(
        &self,
        info: Resource,
        custom: Option<&crate::crd::CustomResource>,
        obj: &mut DynamicObject,
        old: Option<&DynamicObject>,
        part: Part,
    ) -> RestResult<()> {
        if let Some(cr) = custom {
            crate::crd::admission::mutate(cr, obj)?;
        }
        let defaulted = match (old, part) {
            (Some(_), Part::Status | Part::Approval) => {
                orch_types::defaults::apply_status_defaults(obj)
            }
            _ => orch_types::defaults::apply_defaults(obj),
        };
        defaulted.map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request does not fit a {}: {}",
                info.kind, e.source
            ))
        })
    }
}

/// The outcome of [`ApiServer::admit`].
#[derive(Debug, Default)]
pub(crate) struct Admitted {
    /// Warnings for the response.
    pub warnings: Vec<String>,
    /// PodPresets that conflicted on a pod being created, and why.
    preset_conflict: Option<(Vec<String>, String)>,
}

impl Admitted {
    /// Records what admission owes once `stored` is written: the Warning Event of a PodPreset
    /// conflict, about the pod as stored.
    pub fn after_store(self, api: &ApiServer, stored: &DynamicObject) {
        if let Some((presets, message)) = self.preset_conflict {
            api.record_pod_preset_conflict(stored, &presets, &message);
        }
    }
}

impl ApiServer {
    /// The StorageClasses in the watch cache (what upstream's admission reads from its
    /// informer's lister); objects that do not decode are skipped.
    fn storage_classes(&self) -> Vec<k8s_openapi::api::storage::v1::StorageClass> {
        let prefix = crate::storage::key::resource_prefix("storage.k8s.io", "storageclasses");
        self.cache
            .list(&prefix, &prefix)
            .items
            .iter()
            .filter_map(|e| e.decode_as().ok())
            .collect()
    }
}

impl ApiServer {
    /// The ServiceAccount admission plugin ([`service_account`]) on a pod being created in
    /// `ns`: its service account is read from storage; `default`, which the serviceaccount
    /// controller may still be creating in a new namespace, is looked for up to ten times
    /// 100–200 ms apart, as upstream's plugin does.
    async fn admit_service_account(&self, pod: &mut DynamicObject, ns: &str) -> RestResult<()> {
        let sa = if service_account::is_mirror_pod(pod) {
            None
        } else {
            let name = service_account::default_name(pod);
            self.service_account_of(pod, ns, &name).await?
        };
        service_account::admit(pod, ns, sa.as_ref(), || {
            crate::rest::meta::generate_name(service_account::VOLUME_PREFIX)
        })
    }

    async fn service_account_of(
        &self,
        pod: &DynamicObject,
        ns: &str,
        name: &str,
    ) -> RestResult<Option<k8s_openapi::api::core::v1::ServiceAccount>> {
        let info = orch_types::registry::by_kind("v1", "ServiceAccount")
            .ok_or_else(|| ApiError::internal("ServiceAccount is not registered"))?;
        let attempts = if name == service_account::DEFAULT_SERVICE_ACCOUNT {
            10
        } else {
            1
        };
        for attempt in 0..attempts {
            if attempt > 0 {
                let ms = 100 + rand::random_range(0..100);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            match self.get_object(info, Some(ns), name).await {
                Ok(sa) => {
                    return sa.to_typed().map(Some).map_err(|e| {
                        ApiError::internal(format!("cannot decode service account: {}", e.source))
                    })
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(ApiError::forbidden(
                        "pods",
                        pod.name(),
                        &format!(
                            "error looking up service account {ns}/{name}: {}",
                            e.message
                        ),
                    ))
                }
            }
        }
        Ok(None)
    }
}

impl ApiServer {
    /// The PodPresets of namespace `ns` in the watch cache (upstream's plugin reads its
    /// informer's lister), by name; objects that do not decode are skipped.
    fn pod_presets(&self, ns: &str) -> Vec<orch_types::settings::PodPreset> {
        let resource = crate::storage::key::resource_prefix("settings.k8s.io", "podpresets");
        let prefix =
            crate::storage::key::collection_prefix("settings.k8s.io", "podpresets", Some(ns));
        self.cache
            .list(&resource, &prefix)
            .items
            .iter()
            .filter_map(|e| e.decode_as().ok())
            .collect()
    }

    /// Writes the `Warning` Event of a PodPreset conflict on `pod`
    /// ([`pod_preset::conflict_event`]) in the background, as upstream's plugin created it
    /// through its client: the pod's creation neither waits for it nor fails with it.
    fn record_pod_preset_conflict(&self, pod: &DynamicObject, presets: &[String], message: &str) {
        let event = pod_preset::conflict_event(pod, presets, message, self.config.clock.now());
        let (Some(server), Some(info), Ok(handle), Ok(obj)) = (
            self.me.upgrade(),
            orch_types::registry::by_kind("v1", "Event"),
            tokio::runtime::Handle::try_current(),
            DynamicObject::from_typed(&event),
        ) else {
            return;
        };
        handle.spawn(async move {
            let ns = obj.namespace().map(str::to_string);
            if let Err(e) = server
                .create_object(info, ns.as_deref(), obj, &Default::default())
                .await
            {
                tracing::warn!(error = %e, "PodPreset: recording the conflict event failed");
            }
        });
    }
}

/// Unknown field paths of `obj` (`spec.containers[0].imagePullPolice`), from the typed schema
/// of its kind (`orch_types::decode::typed_check`); 400 when a value has the wrong type.
pub fn unknown_fields(info: Resource, obj: &DynamicObject) -> RestResult<Vec<String>> {
    let value = obj.to_value();
    match orch_types::decode::typed_check(&info.api_version(), info.kind, &value) {
        None => Ok(Vec::new()),
        Some(Ok(paths)) => Ok(paths),
        Some(Err(e)) => Err(ApiError::bad_request(format!(
            "the body of the request does not fit a {}: {e}",
            info.kind
        ))),
    }
}
