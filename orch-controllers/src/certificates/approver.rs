//! `csrapproving`, after upstream `pkg/controller/certificates/approver/sarapprove.go`: a
//! pending request of the `kubernetes.io/kube-apiserver-client-kubelet` signer that is a node
//! client request ([`super::kubelet_client`]) is approved when a SubjectAccessReview says its
//! requestor may `create` `certificatesigningrequests/selfnodeclient` (renewing its own
//! certificate: the request's CN is the requestor) or `certificatesigningrequests/nodeclient`
//! (a new node, e.g. a bootstrap token). Nothing else is approved automatically: serving
//! requests wait for `kubectl certificate approve`.

use super::{
    has_condition, is_issued, kubelet_client, parse, usages, KUBE_APISERVER_CLIENT_KUBELET,
};
use jiff::Timestamp;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use orch_runtime::action::{Action, Authorization};
use orch_runtime::controller::{trigger_self, Caches, Controller, Watches};
use orch_types::registry::ApiResource;
use orch_types::DynamicObject;
use serde_json::json;

/// The reason of the Approved condition it adds.
pub const REASON: &str = "AutoApproved";
/// Message when the requestor renews its own node certificate.
pub const SELF_NODE_MESSAGE: &str =
    "Auto approving self kubelet client certificate after SubjectAccessReview.";
/// Message for a new node's certificate.
pub const NODE_MESSAGE: &str =
    "Auto approving kubelet client certificate after SubjectAccessReview.";

/// The controller's declaration. Keys are request names.
#[derive(Debug, Default, Clone, Copy)]
pub struct CsrApprovingController;

/// The SubjectAccessReview asking whether the requestor of `csr` may create
/// `certificatesigningrequests/SUBRESOURCE`.
fn review(csr: &CertificateSigningRequest, subresource: &str) -> DynamicObject {
    let s = &csr.spec;
    let mut spec = json!({
        "resourceAttributes": {
            "group": "certificates.k8s.io",
            "resource": "certificatesigningrequests",
            "verb": "create",
            "subresource": subresource,
        },
    });
    if let Some(u) = &s.username {
        spec["user"] = json!(u);
    }
    if let Some(uid) = &s.uid {
        spec["uid"] = json!(uid);
    }
    if let Some(g) = &s.groups {
        spec["groups"] = json!(g);
    }
    if let Some(e) = &s.extra {
        spec["extra"] = json!(e);
    }
    let mut o = DynamicObject::new("authorization.k8s.io/v1", "SubjectAccessReview", "");
    o.data.insert("spec".into(), spec);
    o
}

impl CsrApprovingController {
    /// What a request needs: nothing, or the reviews whose first allowed one approves it.
    pub fn reconcile(&self, csr: &CertificateSigningRequest, now: Timestamp) -> Vec<Action> {
        if csr.spec.signer_name != KUBE_APISERVER_CLIENT_KUBELET
            || has_condition(csr, "Approved")
            || has_condition(csr, "Denied")
            || is_issued(csr)
        {
            return Vec::new();
        }
        let Ok(request) = parse(&csr.spec.request.0) else {
            return Vec::new();
        };
        if kubelet_client(&request, &usages(csr)).is_err() {
            return Vec::new();
        }
        let own = csr.spec.username.as_deref() == Some(request.common_name.as_str());
        let mut choices = Vec::new();
        if own {
            choices.push(Authorization {
                review: review(csr, "selfnodeclient"),
                then: vec![approve(csr, SELF_NODE_MESSAGE, now)],
            });
        }
        choices.push(Authorization {
            review: review(csr, "nodeclient"),
            then: vec![approve(csr, NODE_MESSAGE, now)],
        });
        vec![Action::Authorized(choices)]
    }
}

/// The request with the Approved condition, written through `/approval`.
fn approve(csr: &CertificateSigningRequest, message: &str, now: Timestamp) -> Action {
    let mut conditions = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    conditions.push(CertificateSigningRequestCondition {
        type_: "Approved".into(),
        status: "True".into(),
        reason: Some(REASON.into()),
        message: Some(message.into()),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    Action::Patch {
        resource: ApiResource::of::<CertificateSigningRequest>(),
        namespace: None,
        name: csr.metadata.name.clone().unwrap_or_default(),
        subresource: Some("approval".into()),
        patch: orch_types::client::Patch::Merge(json!({
            "metadata": {"resourceVersion": csr.metadata.resource_version},
            "status": {"conditions": conditions},
        })),
    }
}

impl Controller for CsrApprovingController {
    fn name(&self) -> &'static str {
        "csrapproving"
    }

    fn component(&self) -> &'static str {
        "certificatesigningrequest-approving-controller"
    }

    fn watches(&self, w: &mut Watches) {
        w.watch::<CertificateSigningRequest>(trigger_self());
    }

    fn sync(&self, key: &str, caches: &Caches, now: Timestamp) -> Vec<Action> {
        match caches.get::<CertificateSigningRequest>().get(key) {
            Some(csr) => self.reconcile(&csr, now),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{csr, request_pem};
    use super::super::{KUBELET_SERVING, SYSTEM_NODES};
    use super::*;

    const CLIENT: &[&str] = &["digital signature", "client auth"];

    fn choices(a: &[Action]) -> Vec<(String, String)> {
        let [Action::Authorized(choices)] = a else {
            panic!("{a:?}")
        };
        choices
            .iter()
            .map(|c| {
                let attrs = &c.review.data["spec"]["resourceAttributes"];
                let Action::Patch {
                    patch, subresource, ..
                } = &c.then[0]
                else {
                    panic!()
                };
                assert_eq!(subresource.as_deref(), Some("approval"));
                let cond = &patch.body()["status"]["conditions"][0];
                assert_eq!(cond["reason"], REASON);
                (
                    attrs["subresource"].as_str().unwrap().to_string(),
                    cond["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn a_bootstrap_request_is_reviewed_as_nodeclient() {
        let pem = request_pem("system:node:n1", &[SYSTEM_NODES], &[]);
        let c = csr(
            "a",
            &pem,
            KUBE_APISERVER_CLIENT_KUBELET,
            CLIENT,
            "system:bootstrap:abcdef",
        );
        let out = CsrApprovingController.reconcile(&c, Timestamp::UNIX_EPOCH);
        assert_eq!(
            choices(&out),
            [("nodeclient".to_string(), NODE_MESSAGE.to_string())]
        );
        let Action::Authorized(ch) = &out[0] else {
            panic!()
        };
        let spec = &ch[0].review.data["spec"];
        assert_eq!(spec["user"], "system:bootstrap:abcdef");
        assert_eq!(spec["groups"][0], "system:bootstrappers");
        assert_eq!(spec["resourceAttributes"]["verb"], "create");
    }

    #[test]
    fn a_node_renewing_its_own_certificate_is_reviewed_as_selfnodeclient_first() {
        let pem = request_pem("system:node:n1", &[SYSTEM_NODES], &[]);
        let c = csr(
            "a",
            &pem,
            KUBE_APISERVER_CLIENT_KUBELET,
            CLIENT,
            "system:node:n1",
        );
        let out = CsrApprovingController.reconcile(&c, Timestamp::UNIX_EPOCH);
        assert_eq!(
            choices(&out),
            [
                ("selfnodeclient".to_string(), SELF_NODE_MESSAGE.to_string()),
                ("nodeclient".to_string(), NODE_MESSAGE.to_string())
            ]
        );
    }

    #[test]
    fn other_requests_are_left_alone() {
        let node = request_pem("system:node:n1", &[SYSTEM_NODES], &[]);
        let user = "system:bootstrap:abcdef";
        let serving = csr(
            "s",
            &request_pem("system:node:n1", &[SYSTEM_NODES], &["n1"]),
            KUBELET_SERVING,
            &["digital signature", "server auth"],
            user,
        );
        let admin = csr(
            "m",
            &request_pem("system:node:n1", &["system:masters"], &[]),
            KUBE_APISERVER_CLIENT_KUBELET,
            CLIENT,
            user,
        );
        let wrong_usages = csr(
            "u",
            &node,
            KUBE_APISERVER_CLIENT_KUBELET,
            &["digital signature", "client auth", "server auth"],
            user,
        );
        let mut approved = csr("d", &node, KUBE_APISERVER_CLIENT_KUBELET, CLIENT, user);
        approved.status = Some(Default::default());
        approved.status.as_mut().unwrap().conditions =
            Some(vec![CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                ..Default::default()
            }]);
        for c in [serving, admin, wrong_usages, approved] {
            assert!(
                CsrApprovingController
                    .reconcile(&c, Timestamp::UNIX_EPOCH)
                    .is_empty(),
                "{:?}",
                c.metadata.name
            );
        }
    }
}
