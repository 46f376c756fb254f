//! Container image references `[registry[:port]/]repo[:tag][@digest]`, normalized as the
//! kubelet does (`distribution/reference.ParseNormalizedNamed` + `parsers.ParseImageName`), so
//! the kubelet and the pull-policy default share one parser.
//!
//! ```
//! use orch_types::image::ImageRef;
//! let r: ImageRef = "nginx".parse().unwrap();
//! assert_eq!(r.name(), "docker.io/library/nginx");
//! assert_eq!(r.tag_or_default(), Some("latest"));
//! let r: ImageRef = "localhost:5000/team/app:1.2@sha256:0123456789abcdef0123456789abcdef".parse().unwrap();
//! assert_eq!((r.registry.as_str(), r.repository.as_str()), ("localhost:5000", "team/app"));
//! assert_eq!(r.tag.as_deref(), Some("1.2"));
//! ```

use std::fmt;
use std::str::FromStr;

/// Registry used when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host (and port), `docker.io` by default.
    pub registry: String,
    /// Repository path, `library/nginx` for a bare `nginx` on Docker Hub.
    pub repository: String,
    /// Explicit tag.
    pub tag: Option<String>,
    /// Explicit digest `algorithm:hex`.
    pub digest: Option<String>,
}

/// Why a reference is invalid (messages after `distribution/reference`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    /// Empty string.
    #[error("repository name must have at least one component")]
    Empty,
    /// Uppercase letters in the repository path.
    #[error("repository name must be lowercase")]
    Uppercase,
    /// Anything else that does not match the reference grammar.
    #[error("invalid reference format: {0:?}")]
    Format(String),
    /// Name longer than 255 characters.
    #[error("repository name must not be more than 255 characters")]
    TooLong,
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // Separator run.
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || sep.is_empty() {
            return false;
        }
    }
    true
}

fn domain_ok(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || p.bytes().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    if host.starts_with('[') && host.ends_with(']') {
        return host.len() > 2;
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

fn tag_ok(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn digest_ok(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let alg_ok = !alg.is_empty()
        && alg.as_bytes()[0].is_ascii_alphabetic()
        && alg
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+' | b'.'));
    alg_ok && hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ImageRefError::Empty);
        }
        let bad = || ImageRefError::Format(s.to_string());
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !digest_ok(d) {
                    return Err(bad());
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is a `:` after the last `/`.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !tag_ok(t) {
                    return Err(bad());
                }
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(bad());
        }
        if name.len() > 255 {
            return Err(ImageRefError::TooLong);
        }
        let (registry, repo) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|c| c.is_ascii_uppercase()) =>
            {
                if !domain_ok(first) {
                    return Err(bad());
                }
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        if repo.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(ImageRefError::Uppercase);
        }
        if !repo.split('/').all(path_component_ok) {
            return Err(bad());
        }
        let repository = if registry == DEFAULT_REGISTRY && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl ImageRef {
    /// Fully qualified repository name: `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag, or `latest` when neither tag nor digest is given (upstream
    /// `parsers.ParseImageName`); `None` for digest-only references.
    pub fn tag_or_default(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some(DEFAULT_TAG),
            (None, Some(_)) => None,
        }
    }
}

impl fmt::Display for ImageRef {
    /// Normalized full reference: `docker.io/library/nginx:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = self.tag_or_default() {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The default `imagePullPolicy` for an image (upstream `SetDefaults_Container`): `Always`
/// when the tag is `latest` (explicit or implied), otherwise `IfNotPresent` (also for
/// unparsable references).
///
/// ```
/// # use orch_types::image::default_pull_policy;
/// assert_eq!(default_pull_policy("nginx"), "Always");
/// assert_eq!(default_pull_policy("nginx:latest"), "Always");
/// assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
/// ```
pub fn default_pull_policy(image: &str) -> &'static str {
    match image.parse::<ImageRef>() {
        Ok(r) if r.tag_or_default() == Some(DEFAULT_TAG) => "Always",
        _ => "IfNotPresent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:v1", "localhost:5000/app:v1"),
            ("gcr.io/a/b/c:x_y-z.1", "gcr.io/a/b/c:x_y-z.1"),
            ("my-reg.io:443/a__b/c--d", "my-reg.io:443/a__b/c--d:latest"),
            (
                "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ];
        for (input, want) in cases {
            let r: ImageRef = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want);
        }
    }

    #[test]
    fn invalid() {
        assert_eq!("".parse::<ImageRef>(), Err(ImageRefError::Empty));
        assert_eq!("Nginx".parse::<ImageRef>(), Err(ImageRefError::Uppercase));
        for bad in [
            "nginx:",
            "nginx:-x",
            ":tag",
            "a//b",
            "-a",
            "a@sha256:123",
            "nginx:1 2",
            "a/b_",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(
            default_pull_policy("busybox@sha256:0123456789abcdef0123456789abcdef"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("registry:5000/x"), "Always");
        assert_eq!(default_pull_policy("NOT VALID"), "IfNotPresent");
    }
}
