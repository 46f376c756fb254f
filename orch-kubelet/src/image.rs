//! Where images come from: the [`ImageSource`] trait and the default [`LocalCatalog`], a YAML
//! file under the kubelet's root dir mapping image references to an entrypoint, default args,
//! env and working directory for the `process` runtime. An image the catalog does not know
//! runs the container's own `command` on the host. A containerd-backed source (real OCI
//! images) can implement the same trait later.
//!
//! ```
//! use orch_kubelet::image::{ImageSource, LocalCatalog};
//! let cat = LocalCatalog::from_yaml("images:\n  web:\n    entrypoint: [python3, -m, http.server]\n    args: ['8080']\n").unwrap();
//! let spec = cat.resolve("docker.io/library/web:1.0").unwrap();
//! assert_eq!(spec.entrypoint, vec!["python3", "-m", "http.server"]);
//! assert!(cat.resolve("unknown:1").is_none());
//! ```

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What an image contributes to a container: the OCI config subset the process runtime uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSpec {
    /// `Entrypoint`.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// `Cmd` (default args).
    #[serde(default)]
    pub args: Vec<String>,
    /// `Env`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `WorkingDir`.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// If set, pulls of this image fail with this message (to exercise ErrImagePull).
    #[serde(default)]
    pub pull_error: Option<String>,
}

/// A source of images.
pub trait ImageSource: Send + Sync + std::fmt::Debug {
    /// The image's config, `None` when the source does not know it (the container's own
    /// command then runs on the host).
    fn resolve(&self, image: &str) -> Option<ImageSpec>;
    /// Fetches the image with the pod's pull secrets.
    fn pull(&self, image: &str, secrets: &[Secret]) -> Result<(), String> {
        let _ = secrets;
        match self.resolve(image).and_then(|s| s.pull_error) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Errors loading the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read.
    #[error("cannot read image catalog {path}: {source}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The YAML is invalid.
    #[error("invalid image catalog: {0}")]
    Parse(#[from] serde_yaml_ng::Error),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    images: BTreeMap<String, ImageSpec>,
}

/// The local catalog (`<root-dir>/images.yaml`).
#[derive(Debug, Clone, Default)]
pub struct LocalCatalog {
    images: BTreeMap<String, ImageSpec>,
}

/// Strips registry `docker.io/library/`, tag and digest: `docker.io/library/nginx:1.27` → `nginx`.
fn short_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    let no_tag = match no_digest[last_slash..].find(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    };
    no_tag
        .strip_prefix("docker.io/library/")
        .or_else(|| no_tag.strip_prefix("docker.io/"))
        .unwrap_or(no_tag)
}

impl LocalCatalog {
    /// Parses catalog YAML.
    pub fn from_yaml(text: &str) -> Result<Self, CatalogError> {
        let f: CatalogFile = serde_yaml_ng::from_str(text)?;
        Ok(Self { images: f.images })
    }

    /// Loads `path`; a missing file is an empty catalog.
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        match std::fs::read_to_string(path) {
            Ok(t) => Self::from_yaml(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(CatalogError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

impl ImageSource for LocalCatalog {
    fn resolve(&self, image: &str) -> Option<ImageSpec> {
        self.images
            .get(image)
            .or_else(|| self.images.get(short_name(image)))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(short_name("nginx"), "nginx");
        assert_eq!(short_name("nginx:1.27"), "nginx");
        assert_eq!(short_name("docker.io/library/nginx:1.27"), "nginx");
        assert_eq!(
            short_name("localhost:5000/team/app:v1"),
            "localhost:5000/team/app"
        );
        assert_eq!(short_name("app@sha256:abc"), "app");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = LocalCatalog::from_yaml("images:\n  a:\n    entrypont: [x]\n").unwrap_err();
        assert!(e.to_string().contains("entrypont"), "{e}");
    }
}
