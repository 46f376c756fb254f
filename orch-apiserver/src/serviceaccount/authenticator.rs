//! The bearer-token authenticator of service-account tokens (upstream
//! `pkg/serviceaccount/jwt.go` `AuthenticateToken` with the bound-token validator of
//! `claims.go`): a JWT of this server's issuer whose signature, time and audiences check out,
//! whose service account and bound object still exist with the UIDs it names, is the user
//! `system:serviceaccount:NS:NAME`.

use super::claims::{Claims, Found};
use crate::auth::{TokenAuthenticator, UserInfo};
use crate::server::ApiServer;
use orch_types::DynamicObject;
use std::sync::{Arc, Weak};

/// An object deleted (given a `deletionTimestamp`) longer ago than this no longer backs a token
/// (upstream's validator allows the same grace for objects still terminating).
const DELETION_GRACE_SECONDS: i64 = 60;

/// Service-account tokens as a [`TokenAuthenticator`] of an API server.
#[derive(Debug, Clone)]
pub struct ServiceAccountAuthenticator {
    api: Weak<ApiServer>,
}

impl ServiceAccountAuthenticator {
    /// The authenticator of `api`'s tokens.
    pub fn new(api: &Arc<ApiServer>) -> Self {
        Self {
            api: Arc::downgrade(api),
        }
    }
}

#[async_trait::async_trait]
impl TokenAuthenticator for ServiceAccountAuthenticator {
    async fn authenticate(&self, token: &str) -> Option<Result<UserInfo, String>> {
        self.api
            .upgrade()?
            .authenticate_service_account_token(token)
            .await
    }
}

impl ApiServer {
    /// The user of a service-account token: `None` when `token` is not a JWT of this
    /// server's issuer, `Some(Err(why))` when it is one that does not authenticate (bad
    /// signature, expired, wrong audience, service account or bound object gone).
    pub async fn authenticate_service_account_token(
        &self,
        token: &str,
    ) -> Option<Result<UserInfo, String>> {
        let now = self.config.clock.now().as_second();
        let claims = match self.tokens.verify(token, now)? {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let found = self.found(&claims, now).await;
        Some(claims.check_bound(&found).map(|()| user_info(&claims)))
    }

    /// The UIDs of the objects `claims` names that exist now and are not past their deletion
    /// grace.
    async fn found(&self, claims: &Claims, now: i64) -> Found {
        let k = &claims.kubernetes;
        let ns = Some(k.namespace.as_str());
        let uid = |o: Option<Arc<DynamicObject>>| -> Option<String> {
            let o = o?;
            let gone = o
                .metadata
                .deletion_timestamp
                .as_ref()
                .is_some_and(|t| t.0.as_second() + DELETION_GRACE_SECONDS < now);
            (!gone).then(|| o.metadata.uid.clone().unwrap_or_default())
        };
        Found {
            service_account: uid(self
                .core_object("ServiceAccount", ns, Some(&k.serviceaccount.name))
                .await),
            pod: uid(self
                .core_object("Pod", ns, k.pod.as_ref().map(|r| r.name.as_str()))
                .await),
            secret: uid(self
                .core_object("Secret", ns, k.secret.as_ref().map(|r| r.name.as_str()))
                .await),
            node: uid(self
                .core_object("Node", None, k.node.as_ref().map(|r| r.name.as_str()))
                .await),
        }
    }

    /// A core/v1 object by kind and name (`None` when not named, not found or unreadable).
    async fn core_object(
        &self,
        kind: &str,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Option<Arc<DynamicObject>> {
        let info = orch_types::registry::by_kind("v1", kind)?;
        self.get_object(info, ns, name?).await.ok()
    }

    /// This server's service-account token authenticator (for the authentication chain).
    pub fn service_account_authenticator(&self) -> ServiceAccountAuthenticator {
        ServiceAccountAuthenticator::new(&self.arc())
    }
}

/// The user a verified token stands for (upstream `serviceaccount.ServiceAccountInfo.UserInfo`).
pub fn user_info(claims: &Claims) -> UserInfo {
    let k = &claims.kubernetes;
    let extra = claims.extra();
    UserInfo {
        username: Some(super::user_name(&k.namespace, &k.serviceaccount.name)),
        uid: Some(k.serviceaccount.uid.clone()),
        groups: Some(super::groups(&k.namespace)),
        extra: (!extra.is_empty()).then_some(extra),
    }
}
