//! `orch bench dns`: queries per second and latency of the cluster DNS server from one client.
//!
//! The server ([`super::DnsServer`], UDP on 127.0.0.1) answers from a zone built from
//! `services` Services (ClusterIP, one named port, spread over 10 namespaces; every tenth also
//! a headless Service with three endpoints), as the informers would build it; one client on
//! one UDP socket asks one question at a time, in a fixed mix: 70 % A of a Service, 10 % SRV
//! of its port, 10 % A of a headless Service, 10 % a missing name (NXDOMAIN). Reported:
//! queries/s, p50/p99/max latency, and p99 of the NXDOMAIN answers.

use super::records::{EndpointAddress, EndpointPort, ServiceEndpoints};
use super::{ClusterZone, DnsConfig, DnsServer};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::Service;
use serde::Serialize;
use std::time::{Duration, Instant};

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct DnsBenchReport {
    /// Services in the zone.
    pub services: usize,
    /// Record sets in the zone.
    pub record_sets: usize,
    /// Time to build the zone, ms.
    pub build_ms: f64,
    /// Queries asked.
    pub queries: usize,
    /// Queries per second.
    pub qps: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Slowest answer, µs.
    pub max_us: f64,
    /// 99th percentile of the NXDOMAIN answers, µs.
    pub nxdomain_p99_us: f64,
}

impl std::fmt::Display for DnsBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "cluster DNS, {} Services ({} record sets, zone built in {:.1} ms), one UDP client:",
            self.services, self.record_sets, self.build_ms
        )?;
        write!(
            f,
            "  {} queries: {:.0} queries/s, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; NXDOMAIN p99 {:.0} µs",
            self.queries, self.qps, self.p50_us, self.p99_us, self.max_us, self.nxdomain_p99_us
        )
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// The Services and endpoints of the benchmark's cluster.
fn cluster(services: usize) -> (Vec<Service>, Vec<ServiceEndpoints>) {
    let mut svcs = Vec::new();
    let mut eps = Vec::new();
    for i in 0..services {
        let ns = format!("ns-{}", i % 10);
        let ip = format!("10.96.{}.{}", 1 + i / 250, 1 + i % 250);
        svcs.push(Service {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(format!("svc-{i}")),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                cluster_ip: Some(ip),
                ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        if i % 10 == 0 {
            let name = format!("headless-{i}");
            svcs.push(Service {
                metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                },
                spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                    cluster_ip: Some("None".into()),
                    ..Default::default()
                }),
                ..Default::default()
            });
            eps.push(ServiceEndpoints {
                namespace: ns,
                service: name,
                groups: vec![(
                    (0..3)
                        .map(|k| EndpointAddress {
                            ip: format!("10.244.{}.{}", i / 250, 3 * (i % 80) + k + 1)
                                .parse()
                                .unwrap_or(std::net::IpAddr::from([10, 244, 0, 1])),
                            hostname: format!("headless-{i}-{k}"),
                            ready: true,
                        })
                        .collect(),
                    vec![EndpointPort {
                        name: "web".into(),
                        port: 80,
                        protocol: "TCP".into(),
                    }],
                )],
            });
        }
    }
    (svcs, eps)
}

/// Runs the benchmark: `services` Services, `queries` questions.
pub async fn run(services: usize, queries: usize) -> Result<DnsBenchReport, String> {
    let services = services.max(1);
    let (svcs, eps) = cluster(services);
    let refs: Vec<&Service> = svcs.iter().collect();
    let t0 = Instant::now();
    let zone =
        ClusterZone::build("cluster.local", 1, &refs, &eps, &[]).map_err(|e| e.to_string())?;
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    let record_sets = zone.len();
    let config = DnsConfig {
        listen: vec!["127.0.0.1:0".parse().map_err(|e| format!("{e}"))?],
        cluster_domain: "cluster.local".into(),
        upstream: vec![],
    };
    let server = DnsServer::bind(&config).await.map_err(|e| e.to_string())?;
    let addr = server.local_addrs()[0];
    server.zone().set(zone);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stop_rx.await;
    }));

    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(addr).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let mut all = Vec::with_capacity(queries);
    let mut nx = Vec::new();
    let start = Instant::now();
    for q in 0..queries {
        let i = (q * 7919) % services;
        let (name, rtype, expect) = match q % 10 {
            0 => (
                format!("_http._tcp.svc-{i}.ns-{}.svc.cluster.local", i % 10),
                RecordType::SRV,
                ResponseCode::NoError,
            ),
            1 => {
                let h = i - i % 10;
                (
                    format!("headless-{h}.ns-{}.svc.cluster.local", h % 10),
                    RecordType::A,
                    ResponseCode::NoError,
                )
            }
            2 => (
                format!("missing-{i}.ns-{}.svc.cluster.local", i % 10),
                RecordType::A,
                ResponseCode::NXDomain,
            ),
            _ => (
                format!("svc-{i}.ns-{}.svc.cluster.local", i % 10),
                RecordType::A,
                ResponseCode::NoError,
            ),
        };
        let id = (q % 65536) as u16;
        let bytes = super::client::message(id, &name, rtype, None)
            .and_then(|m| {
                m.to_vec()
                    .map_err(|e| super::client::QueryError::Message(e.to_string()))
            })
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        sock.send(&bytes).await.map_err(|e| e.to_string())?;
        let m = loop {
            let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
                .await
                .map_err(|_| format!("no answer to {name}"))?
                .map_err(|e| e.to_string())?;
            let m = Message::from_vec(&buf[..n]).map_err(|e| e.to_string())?;
            if m.id() == id {
                break m;
            }
        };
        let took = t.elapsed();
        if m.response_code() != expect
            || (expect == ResponseCode::NoError && m.answers().is_empty())
        {
            return Err(format!(
                "{name} {rtype}: {} with {} answers",
                m.response_code(),
                m.answers().len()
            ));
        }
        all.push(took);
        if expect == ResponseCode::NXDomain {
            nx.push(took);
        }
    }
    let elapsed = start.elapsed();
    let _ = stop_tx.send(());
    let _ = serving.await;
    all.sort();
    nx.sort();
    Ok(DnsBenchReport {
        services,
        record_sets,
        build_ms,
        queries,
        qps: queries as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_us: percentile(&all, 0.50),
        p99_us: percentile(&all, 0.99),
        max_us: all.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
        nxdomain_p99_us: percentile(&nx, 0.99),
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn small_run_answers_every_question() {
        let r = super::run(50, 200).await.unwrap();
        assert_eq!(r.queries, 200);
        assert!(r.qps > 0.0 && r.p99_us >= r.p50_us);
    }
}
