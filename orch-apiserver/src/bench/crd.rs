//! `orch bench crd`: how fast a CustomResourceDefinition becomes a served resource, and custom
//! objects against ConfigMaps side by side in one run (creates, full lists, watch replay) over
//! HTTP on the memory store.

use std::fmt;
use std::time::{Duration, Instant};

use futures::StreamExt;
use orch_types::client::{Client, ListParams, PostParams, WatchEvent, WatchParams};
use orch_types::registry::{self, ApiResource};
use orch_types::DynamicObject;
use serde::Serialize;

use super::{percentile, start, BenchError, BenchStore, Running};

/// Parameters of `orch bench crd`.
#[derive(Debug, Clone)]
pub struct CrdBenchConfig {
    /// CRDs created one after the other for the served-latency figures.
    pub crds: usize,
    /// Objects of each kind for the throughput figures.
    pub objects: usize,
    /// Concurrent HTTP clients creating them.
    pub clients: usize,
}

impl Default for CrdBenchConfig {
    fn default() -> Self {
        Self {
            crds: 20,
            objects: 10_000,
            clients: 8,
        }
    }
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    pub(crate) fn of(mut v: Vec<Duration>) -> Self {
        v.sort_unstable();
        Self {
            p50_ms: percentile(&v, 0.5),
            p99_ms: percentile(&v, 0.99),
            max_ms: v.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        }
    }
}

/// Throughput of one kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindRound {
    /// `ConfigMap` or the custom kind.
    pub kind: String,
    /// Objects.
    pub objects: usize,
    /// Creates per second with the configured clients.
    pub creates_per_second: f64,
    /// Listing every object in one request (median of 5).
    pub list_ms: f64,
    /// Objects listed per second at that median.
    pub listed_per_second: f64,
    /// A watch from resourceVersion 0 replaying every object: time to the last ADDED.
    pub watch_replay_ms: f64,
    /// Events delivered per second in that replay.
    pub watch_events_per_second: f64,
}

/// The report of `orch bench crd`.
#[derive(Debug, Clone, Serialize)]
pub struct CrdBenchReport {
    /// CRDs measured.
    pub crds: usize,
    /// CRD created (201) → a list of its resource answers 200.
    pub served: Latency,
    /// CRD created → its `Established` condition is true.
    pub established: Latency,
    /// ConfigMaps, then the custom kind.
    pub kinds: Vec<KindRound>,
}

impl fmt::Display for CrdBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "CRD create → served, {} CRDs (HTTP, memory store):",
            self.crds
        )?;
        for (what, l) in [("served", &self.served), ("established", &self.established)] {
            writeln!(
                f,
                "  {what:<12} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.p50_ms, l.p99_ms, l.max_ms
            )?;
        }
        writeln!(f, "Objects side by side (HTTP, memory store):")?;
        for k in &self.kinds {
            writeln!(
                f,
                "  {:<10} {} objects: creates {:.0}/s; list all {:.1} ms ({:.0} objects/s); watch replay {:.1} ms ({:.0} events/s)",
                k.kind,
                k.objects,
                k.creates_per_second,
                k.list_ms,
                k.listed_per_second,
                k.watch_replay_ms,
                k.watch_events_per_second
            )?;
        }
        Ok(())
    }
}

fn crd_of(i: usize) -> Result<DynamicObject, BenchError> {
    let v = serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets{i}.bench.example.com")},
        "spec": {
            "group": "bench.example.com",
            "scope": "Namespaced",
            "names": {"plural": format!("widgets{i}"), "kind": format!("Widget{i}")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer", "minimum": 0},
                        "color": {"type": "string", "default": "blue"}}}}}}}],
        }
    });
    DynamicObject::from_value(v).map_err(|e| BenchError::Setup(e.source.to_string()))
}

fn widget_resource(i: usize) -> ApiResource {
    ApiResource {
        group: "bench.example.com".into(),
        version: "v1".into(),
        kind: format!("Widget{i}").into(),
        plural: format!("widgets{i}").into(),
        namespaced: true,
    }
}

fn builtin(api_version: &str, kind: &str) -> Result<ApiResource, BenchError> {
    registry::by_kind(api_version, kind)
        .map(|i| i.api_resource())
        .ok_or_else(|| BenchError::Setup(format!("no {kind} kind")))
}

/// Polls `f` every millisecond for at most 30 s; the time until it first holds.
async fn until<F: std::future::Future<Output = bool>>(
    started: Instant,
    mut f: impl FnMut() -> F,
) -> Result<Duration, BenchError> {
    while started.elapsed() < Duration::from_secs(30) {
        if f().await {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err(BenchError::Setup("timed out waiting for a CRD".into()))
}

async fn crd_latencies(
    r: &Running,
    crds: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), BenchError> {
    let crd = builtin("apiextensions.k8s.io/v1", "CustomResourceDefinition")?;
    let (mut served, mut established) = (Vec::new(), Vec::new());
    for i in 0..crds {
        let started = Instant::now();
        r.client
            .create(&crd, None, &crd_of(i)?, &PostParams::default())
            .await?;
        let w = widget_resource(i);
        served.push(
            until(started, || async {
                r.client
                    .list(&w, Some("default"), &ListParams::default().limit(1))
                    .await
                    .is_ok()
            })
            .await?,
        );
        let name = format!("widgets{i}.bench.example.com");
        established.push(
            until(started, || async {
                r.client.get(&crd, None, &name).await.is_ok_and(|o| {
                    o.data["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Established" && c["status"] == "True")
                    })
                })
            })
            .await?,
        );
    }
    Ok((served, established))
}

fn object(r: &ApiResource, name: &str) -> Result<DynamicObject, BenchError> {
    let mut o = DynamicObject::new(&r.api_version(), &r.kind, name);
    if r.kind == "ConfigMap" {
        o.data.insert(
            "data".into(),
            serde_json::json!({"size": "3", "color": "red"}),
        );
    } else {
        o.data.insert(
            "spec".into(),
            serde_json::json!({"size": 3, "color": "red"}),
        );
    }
    Ok(o)
}

async fn kind_round(
    r: &Running,
    res: &ApiResource,
    ns: &str,
    objects: usize,
    clients: usize,
) -> Result<KindRound, BenchError> {
    let per = objects.div_ceil(clients.max(1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = r.client.clone();
        let res = res.clone();
        let ns = ns.to_string();
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            for i in 0..per {
                let o = object(&res, &format!("o-{c}-{i}"))?;
                client
                    .create(&res, Some(&ns), &o, &PostParams::default())
                    .await?;
                n += 1;
            }
            Ok::<_, BenchError>(n)
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += t.await.map_err(|e| BenchError::Setup(e.to_string()))??;
    }
    let creates_per_second = created as f64 / started.elapsed().as_secs_f64();
    let mut lists = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let l = r.client.list(res, Some(ns), &ListParams::default()).await?;
        lists.push(t.elapsed());
        if l.items.len() != created {
            return Err(BenchError::Setup(format!(
                "listed {} of {created} {}",
                l.items.len(),
                res.kind
            )));
        }
    }
    lists.sort_unstable();
    let list_ms = percentile(&lists, 0.5);
    let t = Instant::now();
    let mut w = r
        .client
        .watch(
            res,
            Some(ns),
            &WatchParams {
                resource_version: Some("0".into()),
                ..Default::default()
            },
        )
        .await?;
    let mut seen = 0;
    while seen < created {
        match w.next().await {
            Some(Ok(WatchEvent::Added(_))) => seen += 1,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => break,
        }
    }
    let replay = t.elapsed().as_secs_f64();
    Ok(KindRound {
        kind: res.kind.to_string(),
        objects: created,
        creates_per_second,
        list_ms,
        listed_per_second: created as f64 / (list_ms / 1000.0).max(1e-9),
        watch_replay_ms: replay * 1000.0,
        watch_events_per_second: seen as f64 / replay.max(1e-9),
    })
}

/// Runs `orch bench crd`.
pub async fn run(cfg: &CrdBenchConfig) -> Result<CrdBenchReport, BenchError> {
    let r = start(BenchStore::Memory, None).await?;
    let (served, established) = crd_latencies(&r, cfg.crds.max(1)).await?;
    let ns = builtin("v1", "Namespace")?;
    let mut kinds = Vec::new();
    for (res, name) in [
        (builtin("v1", "ConfigMap")?, "bench-configmaps"),
        (widget_resource(0), "bench-widgets"),
    ] {
        r.client
            .create(
                &ns,
                None,
                &DynamicObject::new("v1", "Namespace", name),
                &PostParams::default(),
            )
            .await?;
        kinds.push(kind_round(&r, &res, name, cfg.objects, cfg.clients).await?);
    }
    r.stop().await;
    Ok(CrdBenchReport {
        crds: served.len(),
        served: Latency::of(served),
        established: Latency::of(established),
        kinds,
    })
}
