//! The claims of a bound service-account token (upstream `pkg/serviceaccount/claims.go`) and
//! their checks, pure: the caller looks the bound objects up and passes what it found.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Leeway on `exp`, `nbf` and `iat` for clock skew (go-jose's `DefaultLeeway`, which upstream's
/// validator uses).
pub const LEEWAY_SECONDS: i64 = 60;

/// `user.extra` keys a service-account token sets (upstream
/// `pkg/serviceaccount/claims.go`, `authentication.kubernetes.io/…`).
pub mod extra {
    /// Name of the pod the token is bound to.
    pub const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
    /// UID of the pod the token is bound to.
    pub const POD_UID: &str = "authentication.kubernetes.io/pod-uid";
    /// Name of the node the token (or its pod) is bound to.
    pub const NODE_NAME: &str = "authentication.kubernetes.io/node-name";
    /// UID of the node the token (or its pod) is bound to.
    pub const NODE_UID: &str = "authentication.kubernetes.io/node-uid";
    /// `JTI=<jti>`: which credential authenticated.
    pub const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";
}

/// A named object with its UID, as the private claims carry them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// The `kubernetes.io` private claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Private {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: Ref,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    /// The secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    /// The node the token is bound to, or its pod's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
    /// Unix time after which a client using the token is warned (extended tokens only; orch
    /// does not extend tokens, it only reads the claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// The claims of a service-account token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// `system:serviceaccount:NS:NAME`.
    pub sub: String,
    /// Audiences (a JSON string when there is one, an array otherwise, as go-jose writes).
    #[serde(with = "audiences")]
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Unique token ID.
    #[serde(default)]
    pub jti: String,
    /// Kubernetes' private claims.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Private,
}

mod audiences {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        match v {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        })
    }
}

/// The object a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// Not bound (only the service account's lifetime applies).
    None,
    /// A pod, and the node it is scheduled to if any.
    Pod {
        /// The pod.
        pod: Ref,
        /// Its node.
        node: Option<Ref>,
    },
    /// A secret.
    Secret(Ref),
    /// A node.
    Node(Ref),
}

/// What the issuer knows when it signs: the service account, the binding and the lifetime.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Issuer.
    pub issuer: &'a str,
    /// Namespace of the service account.
    pub namespace: &'a str,
    /// The service account.
    pub service_account: Ref,
    /// What the token is bound to.
    pub bound: Bound,
    /// Audiences.
    pub audiences: Vec<String>,
    /// Issued at (Unix seconds).
    pub now: i64,
    /// Lifetime in seconds.
    pub expiration_seconds: i64,
    /// Token ID.
    pub jti: String,
}

impl Claims {
    /// The claims of a new token (upstream `serviceaccount.Claims`): issued and valid from
    /// `now`, expiring `expiration_seconds` later.
    pub fn new(r: Request<'_>) -> Self {
        let (pod, secret, node) = match r.bound {
            Bound::None => (None, None, None),
            Bound::Pod { pod, node } => (Some(pod), None, node),
            Bound::Secret(s) => (None, Some(s), None),
            Bound::Node(n) => (None, None, Some(n)),
        };
        Self {
            iss: r.issuer.to_string(),
            sub: super::user_name(r.namespace, &r.service_account.name),
            aud: r.audiences,
            exp: r.now + r.expiration_seconds,
            iat: r.now,
            nbf: r.now,
            jti: r.jti,
            kubernetes: Private {
                namespace: r.namespace.to_string(),
                serviceaccount: r.service_account,
                pod,
                secret,
                node,
                warnafter: None,
            },
        }
    }

    /// Expiry and not-before against `now` (Unix seconds) with [`LEEWAY_SECONDS`].
    pub fn check_time(&self, now: i64) -> Result<(), String> {
        if now > self.exp + LEEWAY_SECONDS {
            return Err("service account token has expired".into());
        }
        if now + LEEWAY_SECONDS < self.nbf {
            return Err("service account token is not valid yet".into());
        }
        if now + LEEWAY_SECONDS < self.iat {
            return Err("service account token was issued in the future".into());
        }
        Ok(())
    }

    /// The audiences of the token the server accepts (upstream `jwt.go`: the token's
    /// audiences intersected with `--api-audiences`); an error when none.
    pub fn check_audiences(&self, accepted: &[String]) -> Result<Vec<String>, String> {
        let both: Vec<String> = self
            .aud
            .iter()
            .filter(|a| accepted.contains(a))
            .cloned()
            .collect();
        if both.is_empty() {
            return Err(format!(
                "token audiences {:?} is invalid for the target audiences {:?}",
                self.aud, accepted
            ));
        }
        Ok(both)
    }

    /// The subject agrees with the private claims and names a service account (upstream's
    /// validator refuses tokens whose claims are incomplete).
    pub fn check_subject(&self) -> Result<(), String> {
        let k = &self.kubernetes;
        if k.namespace.is_empty() {
            return Err("service account token claims are missing namespace".into());
        }
        if k.serviceaccount.name.is_empty() || k.serviceaccount.uid.is_empty() {
            return Err("service account token claims are missing the service account".into());
        }
        if super::split_user_name(&self.sub) != Some((&k.namespace, &k.serviceaccount.name)) {
            return Err("service account token subject does not match its claims".into());
        }
        Ok(())
    }

    /// Checks the bound objects against what exists now (upstream `validator.Validate` in
    /// `claims.go`): the service account and the pod, secret or node must still exist with the
    /// UIDs in the token. A pod-bound token's node claim is informational and not checked,
    /// as upstream.
    pub fn check_bound(&self, found: &Found) -> Result<(), String> {
        let k = &self.kubernetes;
        let ns = &k.namespace;
        check_one(
            found.service_account.as_deref(),
            &k.serviceaccount,
            || {
                format!(
                    "service account {ns}/{} has been deleted",
                    k.serviceaccount.name
                )
            },
            "service account",
        )?;
        if let Some(pod) = &k.pod {
            check_one(
                found.pod.as_deref(),
                pod,
                || format!("pod {ns}/{} has been deleted", pod.name),
                "pod",
            )?;
        }
        if let Some(secret) = &k.secret {
            check_one(
                found.secret.as_deref(),
                secret,
                || format!("secret {ns}/{} has been deleted", secret.name),
                "secret",
            )?;
        }
        if let (Some(node), None) = (&k.node, &k.pod) {
            check_one(
                found.node.as_deref(),
                node,
                || format!("node {} has been deleted", node.name),
                "node",
            )?;
        }
        Ok(())
    }

    /// `user.extra` of the authenticated user (pod name and UID, node name and UID,
    /// credential ID).
    pub fn extra(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        let k = &self.kubernetes;
        if let Some(pod) = &k.pod {
            out.insert(extra::POD_NAME.to_string(), vec![pod.name.clone()]);
            out.insert(extra::POD_UID.to_string(), vec![pod.uid.clone()]);
        }
        if let Some(node) = &k.node {
            out.insert(extra::NODE_NAME.to_string(), vec![node.name.clone()]);
            out.insert(extra::NODE_UID.to_string(), vec![node.uid.clone()]);
        }
        if !self.jti.is_empty() {
            out.insert(
                extra::CREDENTIAL_ID.to_string(),
                vec![format!("JTI={}", self.jti)],
            );
        }
        out
    }
}

/// The UIDs of the objects a token names, as found now (`None`: not found or being deleted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The service account's UID.
    pub service_account: Option<String>,
    /// The bound pod's UID.
    pub pod: Option<String>,
    /// The bound secret's UID.
    pub secret: Option<String>,
    /// The bound node's UID.
    pub node: Option<String>,
}

fn check_one(
    found: Option<&str>,
    claim: &Ref,
    gone: impl FnOnce() -> String,
    what: &str,
) -> Result<(), String> {
    match found {
        None => Err(gone()),
        Some(uid) if uid != claim.uid => Err(format!(
            "{what} UID ({uid}) does not match claim ({})",
            claim.uid
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, uid: &str) -> Ref {
        Ref {
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn pod_bound() -> Claims {
        Claims::new(Request {
            issuer: "https://iss",
            namespace: "ns",
            service_account: r("default", "sa-1"),
            bound: Bound::Pod {
                pod: r("web", "pod-1"),
                node: Some(r("n1", "node-1")),
            },
            audiences: vec!["https://iss".into()],
            now: 1000,
            expiration_seconds: 3600,
            jti: "j-1".into(),
        })
    }

    #[test]
    fn claims_have_upstreams_shape() {
        let v = serde_json::to_value(pod_bound()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "iss": "https://iss", "sub": "system:serviceaccount:ns:default",
                "aud": "https://iss", "exp": 4600, "iat": 1000, "nbf": 1000, "jti": "j-1",
                "kubernetes.io": {
                    "namespace": "ns",
                    "serviceaccount": {"name": "default", "uid": "sa-1"},
                    "pod": {"name": "web", "uid": "pod-1"},
                    "node": {"name": "n1", "uid": "node-1"},
                }
            })
        );
        let back: Claims = serde_json::from_value(v).unwrap();
        assert_eq!(back, pod_bound());
        let mut two = pod_bound();
        two.aud.push("b".into());
        let v = serde_json::to_value(&two).unwrap();
        assert_eq!(v["aud"], serde_json::json!(["https://iss", "b"]));
        assert_eq!(serde_json::from_value::<Claims>(v).unwrap(), two);
    }

    #[test]
    fn expiry_and_not_before_allow_a_minute_of_skew() {
        let c = pod_bound();
        assert!(c.check_time(1000).is_ok());
        assert!(c.check_time(4600 + 60).is_ok());
        assert_eq!(
            c.check_time(4600 + 61).unwrap_err(),
            "service account token has expired"
        );
        assert!(c.check_time(1000 - 60).is_ok());
        assert!(c.check_time(1000 - 61).is_err());
    }

    #[test]
    fn audiences_must_intersect() {
        let c = pod_bound();
        assert_eq!(
            c.check_audiences(&["x".into(), "https://iss".into()])
                .unwrap(),
            ["https://iss"]
        );
        let e = c.check_audiences(&["vault".into()]).unwrap_err();
        assert!(e.contains("is invalid for the target audiences"), "{e}");
    }

    #[test]
    fn bound_objects_must_exist_with_their_uid() {
        let c = pod_bound();
        let all = Found {
            service_account: Some("sa-1".into()),
            pod: Some("pod-1".into()),
            secret: None,
            node: None,
        };
        assert!(c.check_bound(&all).is_ok());
        let no_pod = Found {
            pod: None,
            ..all.clone()
        };
        assert_eq!(
            c.check_bound(&no_pod).unwrap_err(),
            "pod ns/web has been deleted"
        );
        let recreated = Found {
            pod: Some("pod-2".into()),
            ..all.clone()
        };
        assert_eq!(
            c.check_bound(&recreated).unwrap_err(),
            "pod UID (pod-2) does not match claim (pod-1)"
        );
        let no_sa = Found {
            service_account: None,
            ..all.clone()
        };
        assert_eq!(
            c.check_bound(&no_sa).unwrap_err(),
            "service account ns/default has been deleted"
        );
        // A node-bound token checks its node.
        let mut node = pod_bound();
        node.kubernetes.pod = None;
        assert_eq!(
            node.check_bound(&all).unwrap_err(),
            "node n1 has been deleted"
        );
        let with_node = Found {
            node: Some("node-1".into()),
            ..all
        };
        assert!(node.check_bound(&with_node).is_ok());
    }

    #[test]
    fn subject_must_match_the_private_claims() {
        let mut c = pod_bound();
        assert!(c.check_subject().is_ok());
        c.sub = "system:serviceaccount:other:default".into();
        assert!(c.check_subject().is_err());
    }

    #[test]
    fn extra_names_pod_node_and_credential() {
        let e = pod_bound().extra();
        assert_eq!(e[extra::POD_NAME], ["web"]);
        assert_eq!(e[extra::POD_UID], ["pod-1"]);
        assert_eq!(e[extra::NODE_NAME], ["n1"]);
        assert_eq!(e[extra::CREDENTIAL_ID], ["JTI=j-1"]);
    }
}
