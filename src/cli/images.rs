//! `orch images …`: container images of `--runtime cri` nodes, the way `kind load` serves
//! local clusters.
//!
//! - `orch images build-test DIR`: writes the project's test images (busybox, pause, httpd) as
//!   OCI archives built from Debian's `busybox-static` ([`crate::images`]);
//! - `orch images load IMAGE.tar [--node N] [--data-dir D]`: imports an OCI or docker-archive
//!   tarball into the containerd of each node of `orch up --runtime cri` (or of
//!   `--container-runtime-endpoint`), with containerd's `ctr images import`;
//! - `orch images ls [--node N]`: the images a node's CRI runtime has (CRI `ListImages`).

use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// `orch images` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build the test images (busybox, pause, httpd) from the host's static busybox into OCI
    /// archives in DIR.
    BuildTest(BuildTestArgs),
    /// Import an image archive (OCI layout or docker-archive tarball) into the containerd of
    /// each node (or of `--node`) of a `--runtime cri` cluster.
    Load(LoadArgs),
    /// List the images of each node (or of `--node`).
    Ls(NodesArgs),
}

/// Which nodes' containerd: those of `orch up --data-dir`, or one endpoint.
#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Data dir of `orch up --runtime cri`.
    #[arg(long, default_value = ".orch")]
    pub data_dir: PathBuf,
    /// Only this node (default: every node of the data dir).
    #[arg(long)]
    pub node: Option<String>,
    /// The CRI socket of a containerd (`unix:///run/containerd/containerd.sock`) instead of
    /// the nodes of a data dir (for `orch kubelet --container-runtime-endpoint`).
    #[arg(long, conflicts_with = "node")]
    pub container_runtime_endpoint: Option<String>,
}

/// Arguments of `orch images load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The image archive.
    pub archive: PathBuf,
    /// The nodes.
    #[command(flatten)]
    pub nodes: NodesArgs,
}

/// The (node, socket) pairs `args` names.
fn sockets(args: &NodesArgs) -> Result<Vec<(String, PathBuf)>, String> {
    if let Some(e) = &args.container_runtime_endpoint {
        return Ok(vec![(
            e.clone(),
            orch_kubelet::runtime::cri::endpoint_path(e)?,
        )]);
    }
    let data_dir = std::path::absolute(&args.data_dir).unwrap_or_else(|_| args.data_dir.clone());
    let kubelets = data_dir.join("kubelet");
    let mut names: Vec<String> = match &args.node {
        Some(n) => vec![n.clone()],
        None => std::fs::read_dir(&kubelets)
            .map_err(|e| {
                format!(
                    "{}: {e} (is this the data dir of `orch up --runtime cri`?)",
                    kubelets.display()
                )
            })?
            .flatten()
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .collect(),
    };
    names.sort();
    let mut out = vec![];
    for n in names {
        let sock = orch_kubelet::runtime::cri::CriConfig::own_socket(&kubelets.join(&n));
        if sock.exists() {
            out.push((n, sock));
        } else if args.node.is_some() {
            return Err(format!(
                "node {n} has no containerd at {} (is `orch up --runtime cri --data-dir {}` running?)",
                sock.display(),
                args.data_dir.display()
            ));
        }
    }
    if out.is_empty() {
        return Err(format!(
            "no node of {} runs containerd (is `orch up --runtime cri --data-dir {}` running?)",
            args.data_dir.display(),
            args.data_dir.display()
        ));
    }
    Ok(out)
}

fn load(a: &LoadArgs) -> Result<(), String> {
    if !a.archive.is_file() {
        return Err(format!("{}: no such file", a.archive.display()));
    }
    for (node, sock) in sockets(&a.nodes)? {
        let out = orch_kubelet::runtime::cri::containerd::import_archive(&sock, &a.archive)?;
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            println!("{node}: {}", line.trim());
        }
    }
    Ok(())
}

fn ls(a: &NodesArgs) -> Result<(), String> {
    println!(
        "{:<12} {:<48} {:<20} {:>10}",
        "NODE", "IMAGE", "IMAGE ID", "SIZE"
    );
    for (node, sock) in sockets(a)? {
        let rt = crate::images::open_cri_runtime(
            Path::new("."),
            &node,
            "127.0.0.1",
            Some(format!("unix://{}", sock.display())),
            None,
        )?;
        let mut images = rt.list_images();
        images.sort_by(|x, y| x.reference.cmp(&y.reference));
        for i in images {
            let id = i.id.rsplit(':').next().unwrap_or(&i.id);
            println!(
                "{:<12} {:<48} {:<20} {:>10}",
                node,
                i.reference,
                &id[..id.len().min(13)],
                human_size(i.size_bytes)
            );
        }
    }
    Ok(())
}

/// `2.0MB`, as crictl prints sizes (decimal units).
fn human_size(b: i64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.1}GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1}MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1}kB", b / 1e3)
    } else {
        format!("{b}B")
    }
}

/// Arguments of `orch images build-test`.
#[derive(Debug, Args)]
pub struct BuildTestArgs {
    /// Directory for `busybox.tar`, `pause.tar` and `httpd.tar` (created if missing).
    pub dir: PathBuf,
    /// The static busybox binary the images are made of.
    #[arg(long, default_value = crate::images::BUSYBOX_BINARY)]
    pub busybox: PathBuf,
}

/// Runs an `orch images` subcommand; returns the exit code.
pub fn run(what: ImagesCommand) -> i32 {
    match what {
        ImagesCommand::BuildTest(a) => match crate::images::build_test_images(&a.dir, &a.busybox) {
            Ok(built) => {
                for b in built {
                    println!("{}\t{}", b.name, b.path.display());
                }
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        ImagesCommand::Load(a) => report(load(&a)),
        ImagesCommand::Ls(a) => report(ls(&a)),
    }
}

fn report(r: Result<(), String>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
