//! Webhooks: admission webhooks (admissionregistration.k8s.io/v1 Mutating- and
//! ValidatingWebhookConfiguration, [`admission`]) and the conversion webhooks of
//! CustomResourceDefinitions ([`conversion`]), all over the one HTTPS client of [`client`].
//!
//! Upstream: `staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/` and
//! `apiextensions-apiserver/pkg/apiserver/conversion/webhook_converter.go`. What is and is not
//! supported is in `docs/design/webhooks.md`.

pub mod admission;
pub mod client;
pub mod conversion;
pub mod matching;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use orch_types::DynamicObject;
use serde_json::json;

use crate::rest::{Resource, RestResult};
use crate::server::ApiServer;

/// The operation a write is admitted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST`.
    Create,
    /// `PUT`, `PATCH` and their subresources.
    Update,
    /// `DELETE`.
    Delete,
}

impl Operation {
    /// The AdmissionReview spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }

    fn options_kind(self) -> &'static str {
        match self {
            Self::Create => "CreateOptions",
            Self::Update => "UpdateOptions",
            Self::Delete => "DeleteOptions",
        }
    }
}

/// Resources never sent to webhooks, so that a broken webhook cannot lock its own
/// configuration (upstream `IsExemptAdmissionConfigurationResource`).
fn exempt(info: Resource) -> bool {
    info.group == "admissionregistration.k8s.io"
}

impl ApiServer {
    /// The configurations of `plural` in the watch cache; objects that do not decode are
    /// skipped.
    fn webhook_configurations<T: serde::de::DeserializeOwned>(&self, plural: &str) -> Vec<T> {
        let prefix = crate::storage::key::resource_prefix("admissionregistration.k8s.io", plural);
        self.cache
            .list(&prefix, &prefix)
            .items
            .iter()
            .filter_map(|e| e.decode_as().ok())
            .collect()
    }

    /// The request of an admission review of a write of `info`.
    async fn admission_request(
        &self,
        info: Resource,
        op: Operation,
        subresource: Option<&str>,
        object: Option<&DynamicObject>,
        old: Option<&DynamicObject>,
        dry_run: bool,
    ) -> admission::Request {
        let any = object.or(old);
        let namespace = any.and_then(|o| o.namespace()).unwrap_or("").to_string();
        let namespace_labels = if info.group.is_empty() && info.plural == "namespaces" {
            any.map(|o| o.metadata.labels.clone().unwrap_or_default())
        } else if namespace.is_empty() {
            None
        } else {
            Some(self.namespace_labels(&namespace).await)
        };
        let mut options = json!({"apiVersion": "meta.k8s.io/v1", "kind": op.options_kind()});
        if dry_run {
            options["dryRun"] = json!(["All"]);
        }
        admission::Request {
            operation: op.as_str(),
            group: info.group.to_string(),
            version: info.version.to_string(),
            kind: info.kind.to_string(),
            resource: info.plural.to_string(),
            subresource: subresource.unwrap_or("").to_string(),
            namespace,
            name: any.map(|o| o.name().to_string()).unwrap_or_default(),
            old_object: old.map(DynamicObject::to_value),
            dry_run,
            options,
            namespace_labels,
            user: crate::auth::current_user(),
        }
    }

    /// Labels of namespace `ns` (none when it does not exist).
    async fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let key = crate::storage::key::object_key("", "namespaces", None, ns);
        match self.storage.get(&key).await {
            Ok(Some(v)) => v.object.metadata.labels.clone().unwrap_or_default(),
            _ => BTreeMap::new(),
        }
    }

    /// Runs the mutating admission webhooks on a write of `obj`; returns their warnings and
    /// whether they changed it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn mutate_by_webhooks(
        &self,
        info: Resource,
        op: Operation,
        subresource: Option<&str>,
        obj: &mut DynamicObject,
        old: Option<&DynamicObject>,
        dry_run: bool,
    ) -> RestResult<admission::Mutated> {
        if exempt(info) {
            return Ok(Default::default());
        }
        let hooks =
            admission::mutating_hooks(self.webhook_configurations("mutatingwebhookconfigurations"));
        if hooks.is_empty() {
            return Ok(Default::default());
        }
        let req = self
            .admission_request(info, op, subresource, Some(obj), old, dry_run)
            .await;
        let mut value = obj.to_value();
        let out = admission::mutate(&hooks, &req, Some(&mut value)).await?;
        if out.changed {
            *obj = DynamicObject::from_value(value).map_err(|e| {
                orch_types::ApiError::internal(format!(
                    "Internal error occurred: the object patched by admission webhooks is not a valid {}: {}",
                    info.kind, e.source
                ))
            })?;
        }
        Ok(out)
    }

    /// Runs the validating admission webhooks on a write of `obj` (`None`: a delete of `old`);
    /// returns their warnings.
    pub(crate) async fn validate_by_webhooks(
        &self,
        info: Resource,
        op: Operation,
        subresource: Option<&str>,
        obj: Option<&DynamicObject>,
        old: Option<&DynamicObject>,
        dry_run: bool,
    ) -> RestResult<Vec<String>> {
        if exempt(info) {
            return Ok(Vec::new());
        }
        let hooks = admission::validating_hooks(
            self.webhook_configurations("validatingwebhookconfigurations"),
        );
        if hooks.is_empty() {
            return Ok(Vec::new());
        }
        let req = self
            .admission_request(info, op, subresource, obj, old, dry_run)
            .await;
        let value = obj.map(DynamicObject::to_value);
        admission::validate(&hooks, &req, value.as_ref()).await
    }

    /// The admission webhooks of a delete of `old`: mutating webhooks are called without an
    /// object (a patch is refused), then the validating ones.
    pub(crate) async fn admit_delete_by_webhooks(
        &self,
        info: Resource,
        old: &DynamicObject,
        dry_run: bool,
    ) -> RestResult<()> {
        if exempt(info) {
            return Ok(());
        }
        let hooks =
            admission::mutating_hooks(self.webhook_configurations("mutatingwebhookconfigurations"));
        if !hooks.is_empty() {
            let req = self
                .admission_request(info, Operation::Delete, None, None, Some(old), dry_run)
                .await;
            admission::mutate(&hooks, &req, None).await?;
        }
        self.validate_by_webhooks(info, Operation::Delete, None, None, Some(old), dry_run)
            .await?;
        Ok(())
    }
}
