//! Test images built from the host's static binaries, without a registry or the internet
//! (issue 22): OCI image layout archives (`oci-layout`, `index.json`, `blobs/sha256/…`, as
//! the OCI image-spec's `image-layout.md` describes them) that `ctr images import` and so
//! `orch images load` read.
//!
//! Three images share one layer, Debian's `busybox-static` binary with a symlink per applet:
//! - [`BUSYBOX`]: `sh` by default;
//! - [`PAUSE`]: the pod sandbox image: a `sh` loop that sleeps until SIGTERM/SIGINT and then
//!   exits 0, as upstream's `pause` (`build/pause/linux/pause.c`) does. Upstream's pause also
//!   reaps zombies as PID 1 of a shared PID namespace; orch does not share PID namespaces
//!   (`shareProcessNamespace`) yet, so that difference does not show;
//! - [`HTTPD`]: busybox `httpd` serving `/www` (an `index.html` layer) on port 8080.
//!
//! Layers are uncompressed tars (`application/vnd.oci.image.layer.v1.tar`), so a layer's
//! digest is its diff ID; every file has mtime 0, so a build is reproducible.

use ring::digest::{digest, SHA256};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The busybox image (`sh`).
pub const BUSYBOX: &str = "orch.test/busybox:v1";
/// The pod sandbox image.
pub const PAUSE: &str = "orch.test/pause:v1";
/// The HTTP test server (busybox `httpd` on port 8080, `GET /` answers `index.html`).
pub const HTTPD: &str = "orch.test/httpd:v1";

/// Where Debian's `busybox-static` installs its binary.
pub const BUSYBOX_BINARY: &str = "/bin/busybox";

/// Errors building the test images.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The busybox binary is missing or unreadable.
    #[error("cannot read {path}: {source} (install Debian's busybox-static: apt-get install -y busybox-static)")]
    Busybox {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// `busybox --list-full` failed.
    #[error("{0}")]
    Applets(String),
    /// Writing an archive failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// One entry of a tar archive.
enum Entry {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// A minimal POSIX ustar writer (directories, regular files, symlinks; names under 100 bytes
/// or split at a `/` into the 155-byte prefix).
#[derive(Default)]
struct Tar {
    out: Vec<u8>,
}

impl Tar {
    fn add(&mut self, path: &str, entry: &Entry) {
        let mut h = [0u8; 512];
        let (prefix, name) = if path.len() <= 100 {
            ("", path)
        } else {
            let cut = path[..path.len().min(155)].rfind('/').unwrap_or(0);
            (&path[..cut], &path[cut + 1..])
        };
        h[..name.len()].copy_from_slice(name.as_bytes());
        let (mode, size, kind, link) = match entry {
            Entry::Dir { mode } => (*mode, 0, b'5', ""),
            Entry::File { mode, data } => (*mode, data.len(), b'0', ""),
            Entry::Symlink { target } => (0o777, 0, b'2', target.as_str()),
        };
        let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{v:0w$o}", w = len - 1);
            h[at..at + len - 1].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, u64::from(mode));
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, size as u64);
        octal(&mut h, 136, 12, 0);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.out.extend_from_slice(&h);
        if let Entry::File { data, .. } = entry {
            self.out.extend_from_slice(data);
            self.out
                .resize(self.out.len() + (512 - data.len() % 512) % 512, 0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 1024, 0);
        self.out
    }
}

/// A content-addressed blob: `sha256:<hex>` and its bytes.
struct Blob {
    digest: String,
    data: Vec<u8>,
}

impl Blob {
    fn new(data: Vec<u8>) -> Self {
        let d = digest(&SHA256, &data);
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Self {
            digest: format!("sha256:{hex}"),
            data,
        }
    }

    fn descriptor(&self, media_type: &str) -> serde_json::Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.data.len()})
    }
}

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The OCI `architecture` of this build (Go's `GOARCH` names).
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The busybox layer: the binary at `/bin/busybox`, a symlink per applet (`busybox
/// --list-full`), `/tmp`, and a root entry in `/etc/passwd` and `/etc/group`.
fn busybox_layer(binary: &Path) -> Result<Blob, BuildError> {
    let data = std::fs::read(binary).map_err(|source| BuildError::Busybox {
        path: binary.display().to_string(),
        source,
    })?;
    let out = std::process::Command::new(binary)
        .arg("--list-full")
        .output()
        .map_err(|e| BuildError::Applets(format!("{} --list-full: {e}", binary.display())))?;
    if !out.status.success() {
        return Err(BuildError::Applets(format!(
            "{} --list-full failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for d in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "var", "www",
    ] {
        entries.insert(format!("{d}/"), Entry::Dir { mode: 0o755 });
    }
    entries.insert("tmp/".into(), Entry::Dir { mode: 0o1777 });
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet == "bin/busybox" || applet.contains("..") {
            continue;
        }
        if let Some((dir, _)) = applet.rsplit_once('/') {
            entries
                .entry(format!("{dir}/"))
                .or_insert(Entry::Dir { mode: 0o755 });
        }
        entries.insert(
            applet.to_string(),
            Entry::Symlink {
                target: "/bin/busybox".into(),
            },
        );
    }
    entries.insert("bin/busybox".into(), Entry::File { mode: 0o755, data });
    entries.insert(
        "etc/passwd".into(),
        Entry::File {
            mode: 0o644,
            data: b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
                .to_vec(),
        },
    );
    entries.insert(
        "etc/group".into(),
        Entry::File {
            mode: 0o644,
            data: b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
        },
    );
    // Directories sort before their contents ("bin/" < "bin/x").
    let mut tar = Tar::default();
    for (path, e) in &entries {
        tar.add(path, e);
    }
    Ok(Blob::new(tar.finish()))
}

/// The `index.html` layer of the httpd image.
fn www_layer() -> Blob {
    let mut tar = Tar::default();
    tar.add("www/", &Entry::Dir { mode: 0o755 });
    tar.add(
        "www/index.html",
        &Entry::File {
            mode: 0o644,
            data: b"hello from orch httpd\n".to_vec(),
        },
    );
    Blob::new(tar.finish())
}

/// Writes one image as an OCI layout archive at `path`.
fn write_image(
    path: &Path,
    name: &str,
    layers: &[&Blob],
    config: serde_json::Value,
) -> Result<(), BuildError> {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let config = Blob::new(
        serde_json::to_vec(&json!({
            "architecture": oci_arch(),
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "orch images build-test", "comment": name}],
        }))
        .unwrap_or_default(),
    );
    let manifest = Blob::new(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config.descriptor(CONFIG),
            "layers": layers.iter().map(|l| l.descriptor(LAYER)).collect::<Vec<_>>(),
        }))
        .unwrap_or_default(),
    );
    let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
    let mut desc = manifest.descriptor(MANIFEST);
    desc["platform"] = json!({"architecture": oci_arch(), "os": "linux"});
    // containerd's importer names the image after `io.containerd.image.name`; other tools read
    // the OCI `ref.name` (the tag).
    desc["annotations"] = json!({
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": tag,
    });
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [desc],
    }))
    .unwrap_or_default();
    let mut tar = Tar::default();
    tar.add(
        "oci-layout",
        &Entry::File {
            mode: 0o644,
            data: br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        },
    );
    tar.add(
        "index.json",
        &Entry::File {
            mode: 0o644,
            data: index,
        },
    );
    tar.add("blobs/", &Entry::Dir { mode: 0o755 });
    tar.add("blobs/sha256/", &Entry::Dir { mode: 0o755 });
    let mut seen = std::collections::BTreeSet::new();
    for b in layers.iter().copied().chain([&config, &manifest]) {
        if seen.insert(b.digest.clone()) {
            let hex = b.digest.trim_start_matches("sha256:");
            tar.add(
                &format!("blobs/sha256/{hex}"),
                &Entry::File {
                    mode: 0o644,
                    data: b.data.clone(),
                },
            );
        }
    }
    std::fs::write(path, tar.finish()).map_err(|source| BuildError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// The archives [`build_test_images`] writes: image name and file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// Image reference (e.g. [`BUSYBOX`]).
    pub name: String,
    /// The OCI archive.
    pub path: PathBuf,
}

/// Builds [`BUSYBOX`], [`PAUSE`] and [`HTTPD`] from `busybox` (normally [`BUSYBOX_BINARY`])
/// into `dir` (`busybox.tar`, `pause.tar`, `httpd.tar`).
pub fn build_test_images(dir: &Path, busybox: &Path) -> Result<Vec<BuiltImage>, BuildError> {
    std::fs::create_dir_all(dir).map_err(|source| BuildError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let base = busybox_layer(busybox)?;
    let www = www_layer();
    let path_env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
    let images = [
        (
            BUSYBOX,
            "busybox.tar",
            vec![&base],
            json!({"Env": path_env, "Cmd": ["sh"], "WorkingDir": "/"}),
        ),
        (
            PAUSE,
            "pause.tar",
            vec![&base],
            json!({
                "Env": path_env,
                "Entrypoint": ["/bin/sh", "-c",
                    "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"],
                "WorkingDir": "/",
            }),
        ),
        (
            HTTPD,
            "httpd.tar",
            vec![&base, &www],
            json!({
                "Env": path_env,
                "Entrypoint": ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"],
                "ExposedPorts": {"8080/tcp": {}},
                "WorkingDir": "/www",
            }),
        ),
    ];
    let mut built = Vec::new();
    for (name, file, layers, config) in images {
        let path = dir.join(file);
        write_image(&path, name, &layers, config)?;
        built.push(BuiltImage {
            name: name.to_string(),
            path,
        });
    }
    Ok(built)
}

/// Opens the `cri` runtime of a kubelet whose state is in `root`: with `endpoint`, the CRI
/// runtime at that socket; without, a containerd of its own under `root/containerd` whose
/// sandbox image is [`PAUSE`], built here from the host's busybox and imported at its start.
#[cfg(feature = "cri")]
pub fn open_cri_runtime(
    root: &Path,
    node: &str,
    host_ip: &str,
    endpoint: Option<String>,
    pod_cidr: Option<String>,
) -> Result<std::sync::Arc<dyn orch_kubelet::runtime::ContainerRuntime>, String> {
    let mut cfg = orch_kubelet::runtime::cri::CriConfig::new(root, node);
    cfg.host_ip = host_ip.to_string();
    cfg.pod_cidr = pod_cidr;
    cfg.sandbox_image = PAUSE.to_string();
    if endpoint.is_none() {
        orch_kubelet::runtime::cri::containerd::check_prerequisites(&cfg.cni_bin_dir)?;
        let built = build_test_images(
            &root.join("containerd").join("images"),
            Path::new(BUSYBOX_BINARY),
        )
        .map_err(|e| e.to_string())?;
        cfg.sandbox_image_archive = built.into_iter().find(|b| b.name == PAUSE).map(|b| b.path);
    }
    cfg.endpoint = endpoint;
    let rt = orch_kubelet::runtime::cri::CriRuntime::open(cfg)?;
    Ok(std::sync::Arc::new(rt))
}

/// Without the `cri` feature the runtime is not built: says so (see [`open_cri_runtime`] of
/// a `--features cri` build).
#[cfg(not(feature = "cri"))]
pub fn open_cri_runtime(
    _root: &Path,
    _node: &str,
    _host_ip: &str,
    _endpoint: Option<String>,
    _pod_cidr: Option<String>,
) -> Result<std::sync::Arc<dyn orch_kubelet::runtime::ContainerRuntime>, String> {
    Err(NO_CRI.to_string())
}

/// What a build without the `cri` feature answers to `--runtime cri` and `orch images ls`.
pub const NO_CRI: &str = "the cri runtime is not in this build of orch: build it with \
    `cargo build --release --features cri` (which needs protoc: apt-get install protobuf-compiler)";

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back the entries of an archive: (name, type flag, size, link target).
    fn entries(tar: &[u8]) -> Vec<(String, u8, usize, String)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 512 <= tar.len() && tar[at] != 0 {
            let h = &tar[at..at + 512];
            let field = |a: usize, b: usize| {
                String::from_utf8_lossy(&h[a..b])
                    .trim_end_matches('\0')
                    .to_string()
            };
            let size = usize::from_str_radix(field(124, 135).trim(), 8).unwrap();
            let sum: u32 = h[..148]
                .iter()
                .chain([b' '; 8].iter())
                .chain(h[156..].iter())
                .map(|&b| u32::from(b))
                .sum();
            assert_eq!(
                u32::from_str_radix(field(148, 154).trim(), 8).unwrap(),
                sum,
                "checksum"
            );
            let prefix = field(345, 500);
            let name = if prefix.is_empty() {
                field(0, 100)
            } else {
                format!("{prefix}/{}", field(0, 100))
            };
            out.push((name, h[156], size, field(157, 257)));
            at += 512 + size.div_ceil(512) * 512;
        }
        out
    }

    #[test]
    fn tar_entries_round_trip() {
        let mut t = Tar::default();
        t.add("a/", &Entry::Dir { mode: 0o755 });
        t.add(
            "a/f",
            &Entry::File {
                mode: 0o644,
                data: vec![7; 600],
            },
        );
        t.add(
            "a/l",
            &Entry::Symlink {
                target: "/bin/x".into(),
            },
        );
        let long = format!("{}/{}", "d".repeat(120), "file");
        t.add(
            &long,
            &Entry::File {
                mode: 0o644,
                data: vec![],
            },
        );
        let bytes = t.finish();
        assert_eq!(bytes.len() % 512, 0);
        let e = entries(&bytes);
        assert_eq!(e[0], ("a/".into(), b'5', 0, String::new()));
        assert_eq!(e[1], ("a/f".into(), b'0', 600, String::new()));
        assert_eq!(e[2], ("a/l".into(), b'2', 0, "/bin/x".into()));
        assert_eq!(e[3].0, long);
    }

    #[test]
    fn layout_digests_and_media_types() {
        let dir = tempfile::tempdir().unwrap();
        // Any executable that answers `--list-full` will do: a script standing in for busybox.
        let fake = dir.path().join("busybox");
        std::fs::write(&fake, "#!/bin/sh\necho bin/sh\necho usr/bin/env\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let built = build_test_images(&dir.path().join("out"), &fake).unwrap();
        assert_eq!(built.len(), 3);
        let archive = std::fs::read(&built[2].path).unwrap();
        let names: Vec<String> = entries(&archive).into_iter().map(|e| e.0).collect();
        assert_eq!(
            names[..2],
            ["oci-layout".to_string(), "index.json".to_string()]
        );
        // Every blob is stored under its own digest; the index names the manifest and its
        // platform; the manifest lists the config and two layers (busybox, www).
        let mut blobs = BTreeMap::new();
        let mut at = 0;
        let mut index = serde_json::Value::Null;
        while at + 512 <= archive.len() && archive[at] != 0 {
            let name = String::from_utf8_lossy(&archive[at..at + 100])
                .trim_end_matches('\0')
                .to_string();
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&archive[at + 124..at + 135]).trim(),
                8,
            )
            .unwrap();
            let data = archive[at + 512..at + 512 + size].to_vec();
            if let Some(hex) = name.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
                assert_eq!(Blob::new(data.clone()).digest, format!("sha256:{hex}"));
                blobs.insert(format!("sha256:{hex}"), data);
            } else if name == "index.json" {
                index = serde_json::from_slice(&data).unwrap();
            }
            at += 512 + size.div_ceil(512) * 512;
        }
        let m = &index["manifests"][0];
        assert_eq!(index["mediaType"], INDEX);
        assert_eq!(m["mediaType"], MANIFEST);
        assert_eq!(m["annotations"]["io.containerd.image.name"], HTTPD);
        assert_eq!(m["platform"]["os"], "linux");
        let manifest: serde_json::Value =
            serde_json::from_slice(&blobs[m["digest"].as_str().unwrap()]).unwrap();
        assert_eq!(manifest["config"]["mediaType"], CONFIG);
        assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
        assert_eq!(manifest["layers"][0]["mediaType"], LAYER);
        let config: serde_json::Value =
            serde_json::from_slice(&blobs[manifest["config"]["digest"].as_str().unwrap()]).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            manifest["layers"][0]["digest"]
        );
        assert_eq!(config["config"]["Entrypoint"][0], "httpd");
        // The busybox layer holds the binary and the applet symlinks.
        let layer = &blobs[manifest["layers"][0]["digest"].as_str().unwrap()];
        let files = entries(layer);
        assert!(files.iter().any(|e| e.0 == "bin/busybox" && e.1 == b'0'));
        assert!(files
            .iter()
            .any(|e| e.0 == "usr/bin/env" && e.1 == b'2' && e.3 == "/bin/busybox"));
        // Reproducible: the same input gives the same archive.
        let again = build_test_images(&dir.path().join("again"), &fake).unwrap();
        assert_eq!(std::fs::read(&again[2].path).unwrap(), archive);
    }
}
