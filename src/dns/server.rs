//! The DNS server: hickory-server's UDP and TCP listeners with a request handler that answers
//! from the current [`ClusterZone`] and forwards everything else to upstream resolvers.
//!
//! Answers from the zone are authoritative (`AA`), negative ones carry the zone's SOA in the
//! authority section (NXDOMAIN for a missing name, NOERROR without answers for an existing name
//! without records of the type). Over UDP an answer larger than the client can take (512 bytes
//! without EDNS, its advertised size with EDNS) is sent truncated (`TC`, no records) so the
//! client asks again over TCP. Forwarded answers come from hickory-resolver towards the
//! upstream nameservers (default: the host's `/etc/resolv.conf`), with its cache; upstream
//! NXDOMAIN stays NXDOMAIN, an unreachable upstream is SERVFAIL.

use super::records::{Answer, ClusterZone};
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::xfer::Protocol;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The zone the server answers from, swapped whole when the cluster changes.
#[derive(Debug, Clone)]
pub struct ZoneHandle(Arc<RwLock<Arc<ClusterZone>>>);

impl ZoneHandle {
    /// A handle on `zone`.
    pub fn new(zone: ClusterZone) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(zone))))
    }

    /// The current zone.
    pub fn get(&self) -> Arc<ClusterZone> {
        match self.0.read() {
            Ok(z) => z.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the zone.
    pub fn set(&self, zone: ClusterZone) {
        let zone = Arc::new(zone);
        match self.0.write() {
            Ok(mut z) => *z = zone,
            Err(poisoned) => *poisoned.into_inner() = zone,
        }
    }
}

/// Forwards queries outside the cluster to upstream nameservers.
#[derive(Clone)]
pub struct Forwarder {
    resolver: TokioResolver,
    upstream: Vec<SocketAddr>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("upstream", &self.upstream)
            .finish()
    }
}

impl Forwarder {
    /// A forwarder to these nameservers (UDP, TCP when an answer is truncated).
    pub fn new(upstream: &[SocketAddr]) -> Self {
        let mut config = ResolverConfig::new();
        for addr in upstream {
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
        }
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        // Names are forwarded as asked: no search list, CNAME chains kept in the answer.
        opts.ndots = 0;
        opts.preserve_intermediates = true;
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Self {
            resolver,
            upstream: upstream.to_vec(),
        }
    }

    /// The host's nameservers (`/etc/resolv.conf`), port 53.
    pub fn system_nameservers() -> Vec<SocketAddr> {
        hickory_resolver::system_conf::read_system_conf()
            .map(|(c, _)| {
                let mut v: Vec<SocketAddr> =
                    c.name_servers().iter().map(|n| n.socket_addr).collect();
                v.dedup();
                v
            })
            .unwrap_or_default()
    }

    /// The upstream nameservers.
    pub fn upstream(&self) -> &[SocketAddr] {
        &self.upstream
    }

    /// (response code, answers, authority) from upstream.
    async fn forward(&self, query: &Query) -> (ResponseCode, Vec<Record>, Vec<Record>) {
        let mut name = query.name().clone();
        name.set_fqdn(true);
        match self.resolver.lookup(name, query.query_type()).await {
            Ok(lookup) => (ResponseCode::NoError, lookup.records().to_vec(), vec![]),
            Err(e) => match e.proto().map(|p| p.kind()) {
                Some(hickory_proto::ProtoErrorKind::NoRecordsFound {
                    response_code, soa, ..
                }) => {
                    let soa = soa
                        .as_ref()
                        .map(|s| vec![s.as_ref().clone().into_record_of_rdata()])
                        .unwrap_or_default();
                    (*response_code, vec![], soa)
                }
                _ => {
                    tracing::debug!(error = %e, query = %query, "upstream lookup failed");
                    (ResponseCode::ServFail, vec![], vec![])
                }
            },
        }
    }
}

/// hickory-server's request handler of the cluster DNS.
#[derive(Debug, Clone)]
pub struct DnsHandler {
    zone: ZoneHandle,
    forwarder: Option<Forwarder>,
}

/// Largest UDP answer to a client that did not send EDNS (RFC 1035 §4.2.1).
const PLAIN_UDP_MAX: usize = 512;

impl DnsHandler {
    /// Answers from `zone`; other names go to `forwarder` (REFUSED without one).
    pub fn new(zone: ZoneHandle, forwarder: Option<Forwarder>) -> Self {
        Self { zone, forwarder }
    }

    /// The response code, answer and authority sections for `query`, and whether they are
    /// authoritative.
    pub async fn resolve(&self, query: &Query) -> (ResponseCode, Vec<Record>, Vec<Record>, bool) {
        let zone = self.zone.get();
        match zone.lookup(query.name(), query.query_type()) {
            Answer::Records(rs) => {
                // A CNAME out of the zone (ExternalName): the target's records from upstream
                // for address questions, as CoreDNS does.
                let last_cname = rs.last().and_then(|r| match r.data() {
                    hickory_proto::rr::RData::CNAME(c) if r.record_type() != query.query_type() => {
                        Some(c.0.clone())
                    }
                    _ => None,
                });
                if let (Some(target), Some(fwd)) = (last_cname, &self.forwarder) {
                    if matches!(query.query_type(), RecordType::A | RecordType::AAAA) {
                        let (code, more, _) =
                            fwd.forward(&Query::query(target, query.query_type())).await;
                        let mut rs = rs;
                        if code == ResponseCode::NoError {
                            rs.extend(more);
                        }
                        return (ResponseCode::NoError, rs, vec![], true);
                    }
                }
                (ResponseCode::NoError, rs, vec![], true)
            }
            Answer::NoData => (
                ResponseCode::NoError,
                vec![],
                vec![zone.soa().clone()],
                true,
            ),
            Answer::NxDomain => (
                ResponseCode::NXDomain,
                vec![],
                vec![zone.soa().clone()],
                true,
            ),
            Answer::NotOurs => match &self.forwarder {
                Some(f) => {
                    let (code, answers, authority) = f.forward(query).await;
                    (code, answers, authority, false)
                }
                None => (ResponseCode::Refused, vec![], vec![], false),
            },
        }
    }
}

/// Whether `answers` make a message larger than a plain (no EDNS) UDP client takes.
pub fn too_big_for_plain_udp(query: &Query, answers: &[Record], authority: &[Record]) -> bool {
    let mut m = Message::new();
    m.add_query(query.clone());
    m.add_answers(answers.iter().cloned());
    m.add_name_servers(authority.iter().cloned());
    m.to_vec().map_or(true, |b| b.len() > PLAIN_UDP_MAX)
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut header = Header::response_from_request(request.header());
        header.set_recursion_available(self.forwarder.is_some());
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(req_edns) = request.edns() {
            let mut e = Edns::new();
            e.set_max_payload(req_edns.max_payload().max(512));
            e.set_version(0);
            builder.edns(e);
        }
        let query = match request.request_info() {
            Ok(info)
                if request.message_type() == MessageType::Query
                    && request.op_code() == OpCode::Query =>
            {
                info.query.original().clone()
            }
            Ok(_) => {
                return send(
                    &mut response_handle,
                    builder.error_msg(request.header(), ResponseCode::NotImp),
                )
                .await
            }
            Err(_) => {
                return send(
                    &mut response_handle,
                    builder.error_msg(request.header(), ResponseCode::FormErr),
                )
                .await
            }
        };
        let (code, answers, authority, authoritative) = self.resolve(&query).await;
        header.set_response_code(code);
        header.set_authoritative(authoritative);
        if request.protocol() == Protocol::Udp
            && request.edns().is_none()
            && too_big_for_plain_udp(&query, &answers, &authority)
        {
            header.set_truncated(true);
            return send(&mut response_handle, builder.build_no_records(header)).await;
        }
        let response = builder.build(header, answers.iter(), [], authority.iter(), []);
        send(&mut response_handle, response).await
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    response: hickory_server::authority::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    let id = response.header().id();
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "cannot send DNS response");
            let mut h = Header::new();
            h.set_id(id);
            h.set_response_code(ResponseCode::ServFail);
            h.into()
        }
    }
}
