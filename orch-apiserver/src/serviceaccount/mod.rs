//! Service-account tokens: bound JSON Web Tokens the API server issues through the
//! `serviceaccounts/token` subresource (TokenRequest, [`token_request`]) and accepts as bearer
//! tokens ([`authenticator`]).
//!
//! A token is an ES256 JWT signed with the API server's service-account key
//! ([`TokenConfig::signing_key_pem`]; without one, a P-256 key generated when the server starts,
//! so tokens do not survive a restart). Its claims are upstream's ([`claims`],
//! `pkg/serviceaccount/claims.go`): issuer, subject `system:serviceaccount:NS:NAME`, audiences,
//! expiry, and a private `kubernetes.io` claim naming the service account and the object the
//! token is bound to (a Pod, a Secret or a Node), each with its UID. A token stops
//! authenticating when it expires or when the service account or its bound object is deleted
//! (or re-created with another UID).
//!
//! Legacy (unbound, non-expiring) tokens are not issued.

pub mod authenticator;
pub mod claims;
pub mod keys;
pub mod token_request;

/// Upstream's default `--service-account-issuer` for a cluster whose DNS domain is
/// `cluster.local`.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The user name prefix of service accounts (`system:serviceaccount:NS:NAME`).
pub const USER_PREFIX: &str = "system:serviceaccount:";

/// The group of every service account.
pub const ALL_SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

/// How service-account tokens are signed and what they are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// The signing key: an ECDSA P-256 private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`,
    /// what `orch up` writes to `DATA_DIR/pki/sa.key`). `None`: a key generated when the API
    /// server starts (tokens it issued are refused after a restart).
    pub signing_key_pem: Option<String>,
    /// The `iss` claim of issued tokens; tokens of another issuer are not this
    /// authenticator's (upstream `--service-account-issuer`).
    pub issuer: String,
    /// The audiences the API server accepts (upstream `--api-audiences`); a TokenRequest
    /// without audiences gets them. Empty: the issuer.
    pub audiences: Vec<String>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            signing_key_pem: None,
            issuer: DEFAULT_ISSUER.to_string(),
            audiences: Vec::new(),
        }
    }
}

impl TokenConfig {
    /// The audiences the API server accepts: [`TokenConfig::audiences`], or the issuer.
    pub fn api_audiences(&self) -> Vec<String> {
        if self.audiences.is_empty() {
            vec![self.issuer.clone()]
        } else {
            self.audiences.clone()
        }
    }
}

/// `system:serviceaccount:NS:NAME`.
pub fn user_name(namespace: &str, name: &str) -> String {
    format!("{USER_PREFIX}{namespace}:{name}")
}

/// The groups of a service account of `namespace`: `system:serviceaccounts`,
/// `system:serviceaccounts:NS` and `system:authenticated` (upstream
/// `serviceaccount.MakeGroupNames` plus the authenticated group every authenticated user
/// gets).
pub fn groups(namespace: &str) -> Vec<String> {
    vec![
        ALL_SERVICE_ACCOUNTS_GROUP.to_string(),
        format!("{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}"),
        "system:authenticated".to_string(),
    ]
}

/// The namespace and name of a service-account user name (`None` for any other user).
pub fn split_user_name(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(USER_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// Signs and verifies the server's service-account tokens: the key, the issuer and the
/// accepted audiences.
#[derive(Debug)]
pub struct Issuer {
    key: keys::SigningKey,
    issuer: String,
    audiences: Vec<String>,
}

impl Issuer {
    /// From the configuration: its key, or a new one.
    pub fn new(config: &TokenConfig) -> Result<Self, keys::KeyError> {
        let key = match &config.signing_key_pem {
            Some(pem) => keys::SigningKey::from_pem(pem)?,
            None => keys::SigningKey::generate()?,
        };
        Ok(Self {
            key,
            issuer: config.issuer.clone(),
            audiences: config.api_audiences(),
        })
    }

    /// The `iss` of tokens this server issues.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences the API server accepts.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The signing key.
    pub fn key(&self) -> &keys::SigningKey {
        &self.key
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &claims::Claims) -> Result<String, String> {
        self.key.sign(claims)
    }

    /// The claims of `token` when its signature, issuer, subject, time (at `now`, Unix
    /// seconds) and audiences check out; `None` when it is not a JWT of this issuer (another
    /// authenticator's token). The bound objects are checked by the caller
    /// ([`claims::Claims::check_bound`]).
    pub fn verify(&self, token: &str, now: i64) -> Option<Result<claims::Claims, String>> {
        if unverified_issuer(token)? != self.issuer {
            return None;
        }
        Some(self.verify_ours(token, now))
    }

    fn verify_ours(&self, token: &str, now: i64) -> Result<claims::Claims, String> {
        let c: claims::Claims = self
            .key
            .verify(token)
            .map_err(|e| format!("invalid service account token: {e}"))?;
        c.check_subject()?;
        c.check_time(now)?;
        c.check_audiences(&self.audiences)?;
        Ok(c)
    }
}

/// The `iss` claim of a token that looks like a JWT, read without checking anything (to tell
/// whether it is this issuer's, as upstream's `jwtTokenAuthenticator.hasCorrectIssuer`).
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_round_trip() {
        let u = user_name("ns", "build");
        assert_eq!(u, "system:serviceaccount:ns:build");
        assert_eq!(split_user_name(&u), Some(("ns", "build")));
        assert_eq!(split_user_name("system:serviceaccount:ns"), None);
        assert_eq!(split_user_name("alice"), None);
        assert_eq!(
            groups("ns"),
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ]
        );
    }

    fn issuer() -> Issuer {
        Issuer::new(&TokenConfig::default()).unwrap()
    }

    fn claims(now: i64) -> claims::Claims {
        claims::Claims::new(claims::Request {
            issuer: DEFAULT_ISSUER,
            namespace: "ns",
            service_account: claims::Ref {
                name: "default".into(),
                uid: "u".into(),
            },
            bound: claims::Bound::None,
            audiences: vec![DEFAULT_ISSUER.into()],
            now,
            expiration_seconds: 600,
            jti: "j".into(),
        })
    }

    #[test]
    fn the_issuer_verifies_its_tokens_and_ignores_others() {
        let iss = issuer();
        let token = iss.sign(&claims(1000)).unwrap();
        assert_eq!(iss.verify(&token, 1000).unwrap().unwrap(), claims(1000));
        // Expired.
        let e = iss.verify(&token, 1000 + 600 + 61).unwrap().unwrap_err();
        assert_eq!(e, "service account token has expired");
        // Another issuer's JWT, or no JWT at all: not ours.
        let mut other = claims(1000);
        other.iss = "https://elsewhere".into();
        assert!(iss.verify(&iss.sign(&other).unwrap(), 1000).is_none());
        assert!(iss.verify("abc", 1000).is_none());
        assert!(iss.verify("a.b.c", 1000).is_none());
        // Signed by another key (a restarted server with an ephemeral key): refused.
        let e = issuer().verify(&token, 1000).unwrap().unwrap_err();
        assert!(e.starts_with("invalid service account token"), "{e}");
        // For another audience.
        let mut vault = claims(1000);
        vault.aud = vec!["vault".into()];
        let e = iss
            .verify(&iss.sign(&vault).unwrap(), 1000)
            .unwrap()
            .unwrap_err();
        assert!(e.contains("invalid for the target audiences"), "{e}");
    }

    #[test]
    fn audiences_default_to_the_issuer() {
        let c = TokenConfig::default();
        assert_eq!(c.api_audiences(), [DEFAULT_ISSUER]);
        let c = TokenConfig {
            audiences: vec!["a".into()],
            ..c
        };
        assert_eq!(c.api_audiences(), ["a"]);
    }
}

#[cfg(test)]
mod request_tests;
