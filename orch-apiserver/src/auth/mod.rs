//! Who is asking, and may they: the identities the API server authenticates and the
//! interfaces its authenticators share.
//!
//! - A TLS client certificate verified against the cluster CA arrives as a
//!   [`ClientIdentity`] request extension (inserted by the TLS acceptor): the user is its
//!   Common Name, the groups its Organizations (upstream `x509.CommonNameUserConversion`,
//!   `staging/src/k8s.io/apiserver/pkg/authentication/request/x509/x509.go`).
//! - A bearer token is offered to each [`TokenAuthenticator`] in turn.
//!
//! Identities are Kubernetes' `authentication.k8s.io/v1` [`UserInfo`].

pub use k8s_openapi::api::authentication::v1::UserInfo;

/// The subject of a client certificate that verified against the client CA, put on each
/// request of the connection by the TLS acceptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Subject Common Name: the user name.
    pub common_name: String,
    /// Subject Organizations: the groups.
    pub organizations: Vec<String>,
}

/// Checks a bearer token.
#[async_trait::async_trait]
pub trait TokenAuthenticator: Send + Sync + std::fmt::Debug {
    /// `None`: not a token of this kind (the next authenticator is asked); `Some(Err(why))`:
    /// a token of this kind that is not valid (expired, revoked, bound object gone), answered
    /// with 401; `Some(Ok(user))`: authenticated.
    async fn authenticate(&self, token: &str) -> Option<Result<UserInfo, String>>;
}
