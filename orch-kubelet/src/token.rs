//! Service-account tokens the kubelet requests for its pods' projected volumes, as upstream's
//! token manager (`pkg/kubelet/token/token_manager.go`): a TokenRequest
//! (`serviceaccounts/NAME/token`) bound to the pod (its name and UID), cached per pod, service
//! account, audience and lifetime, and requested again once 80 % of its lifetime has passed or
//! it is 24 hours old ([`requires_refresh`]), so the file in the pod is always valid.
//!
//! Pure apart from the cache's lock: the driver asks [`TokenManager::get`] with the clock's
//! time, requests a token when it answers `None` ([`request_body`]) and hands the answer to
//! [`TokenManager::set`].

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use orch_types::DynamicObject;
use parking_lot::Mutex;
use std::collections::HashMap;

/// A token older than this is refreshed whatever its lifetime (upstream `maxTTL`).
pub const MAX_TTL: SignedDuration = SignedDuration::from_hours(24);

/// What a cached token is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenKey {
    /// The pod's namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: String,
    /// The pod's UID (the token is bound to it).
    pub pod_uid: String,
    /// The audience (empty: the API server's).
    pub audience: String,
    /// The requested `expirationSeconds`.
    pub expiration_seconds: i64,
}

#[derive(Debug, Clone)]
struct Cached {
    token: String,
    expires: Timestamp,
}

/// Whether a token of `expiration_seconds` expiring at `expires` must be requested again at
/// `now`: when 80 % of its lifetime has passed, or 24 hours since it was issued (upstream
/// `requiresRefresh`, without its random jitter).
///
/// ```
/// use jiff::{SignedDuration, Timestamp};
/// use orch_kubelet::token::requires_refresh;
/// let issued: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
/// let expires = issued + SignedDuration::from_secs(3600);
/// assert!(!requires_refresh(issued + SignedDuration::from_secs(2879), expires, 3600));
/// assert!(requires_refresh(issued + SignedDuration::from_secs(2880), expires, 3600));
/// ```
pub fn requires_refresh(now: Timestamp, expires: Timestamp, expiration_seconds: i64) -> bool {
    let lifetime = SignedDuration::from_secs(expiration_seconds);
    let issued = expires - lifetime;
    now >= issued + MAX_TTL || now >= expires - lifetime / 5
}

/// The kubelet's cache of requested tokens.
#[derive(Debug, Default)]
pub struct TokenManager {
    cache: Mutex<HashMap<TokenKey, Cached>>,
}

impl TokenManager {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached token for `key` if it does not need a refresh at `now`.
    pub fn get(&self, key: &TokenKey, now: Timestamp) -> Option<String> {
        let cache = self.cache.lock();
        let c = cache.get(key)?;
        (!requires_refresh(now, c.expires, key.expiration_seconds)).then(|| c.token.clone())
    }

    /// Caches a token answered by the API server (its `status`).
    pub fn set(&self, key: TokenKey, token: String, expires: Timestamp) {
        self.cache.lock().insert(key, Cached { token, expires });
    }

    /// Forgets the tokens of a pod that is gone (upstream `DeleteServiceAccountToken`).
    pub fn forget_pod(&self, pod_uid: &str) {
        self.cache.lock().retain(|k, _| k.pod_uid != pod_uid);
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.cache.lock().len()
    }

    /// True when no token is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.lock().is_empty()
    }
}

/// The TokenRequest the kubelet sends for `pod` (upstream `getServiceAccountToken` in
/// `pkg/volume/projected`): the audience when one is given (else the API server's), the
/// lifetime, bound to the pod by name and UID.
pub fn request_body(pod: &Pod, audience: &str, expiration_seconds: i64) -> DynamicObject {
    let mut tr = DynamicObject::new("authentication.k8s.io/v1", "TokenRequest", "");
    let mut spec = serde_json::json!({
        "expirationSeconds": expiration_seconds,
        "boundObjectRef": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod.metadata.name.clone().unwrap_or_default(),
            "uid": pod.metadata.uid.clone().unwrap_or_default(),
        },
    });
    if !audience.is_empty() {
        spec["audiences"] = serde_json::json!([audience]);
    }
    tr.data.insert("spec".into(), spec);
    tr
}

/// The token and its expiry from a TokenRequest answer.
pub fn from_response(answer: &DynamicObject) -> Result<(String, Timestamp), String> {
    let status = answer
        .data
        .get("status")
        .ok_or("the TokenRequest answer has no status")?;
    let token = status
        .get("token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or("the TokenRequest answer has no token")?;
    let expires = status
        .get("expirationTimestamp")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse::<Timestamp>().ok())
        .ok_or("the TokenRequest answer has no expirationTimestamp")?;
    Ok((token.to_string(), expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey {
            namespace: "default".into(),
            service_account: "default".into(),
            pod_uid: "u1".into(),
            audience: String::new(),
            expiration_seconds: 600,
        }
    }

    /// A short-lived token on a fake clock: served from the cache until 80 % of its lifetime,
    /// then requested again; a day-old long-lived token too.
    #[test]
    fn tokens_are_refreshed_after_80_percent_of_their_lifetime() {
        let m = TokenManager::new();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(m.get(&key(), t0), None);
        m.set(key(), "first".into(), t0 + SignedDuration::from_secs(600));
        assert_eq!(m.get(&key(), t0).as_deref(), Some("first"));
        let later = t0 + SignedDuration::from_secs(479);
        assert_eq!(m.get(&key(), later).as_deref(), Some("first"));
        let due = t0 + SignedDuration::from_secs(480);
        assert_eq!(m.get(&key(), due), None, "refresh at 80 %");
        m.set(key(), "second".into(), due + SignedDuration::from_secs(600));
        assert_eq!(m.get(&key(), due).as_deref(), Some("second"));

        // A year-long token is still refreshed after a day.
        let year = 365 * 24 * 3600;
        assert!(!requires_refresh(
            t0 + SignedDuration::from_hours(23),
            t0 + SignedDuration::from_secs(year),
            year
        ));
        assert!(requires_refresh(
            t0 + MAX_TTL,
            t0 + SignedDuration::from_secs(year),
            year
        ));

        m.forget_pod("u1");
        assert!(m.is_empty());
    }

    #[test]
    fn the_request_is_bound_to_the_pod() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"}}))
        .unwrap();
        let body = request_body(&pod, "", 3607);
        assert_eq!(
            body.data["spec"],
            serde_json::json!({"expirationSeconds": 3607,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u1"}})
        );
        assert_eq!(
            request_body(&pod, "vault", 600).data["spec"]["audiences"][0],
            "vault"
        );
        let mut answer = body.clone();
        answer.data.insert(
            "status".into(),
            serde_json::json!({"token": "abc", "expirationTimestamp": "2026-01-01T01:00:07Z"}),
        );
        let (token, expires) = from_response(&answer).unwrap();
        assert_eq!(token, "abc");
        assert_eq!(expires.to_string(), "2026-01-01T01:00:07Z");
        assert!(from_response(&body).is_err());
    }
}
