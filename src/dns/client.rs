//! A minimal stub client: one question to one server over UDP or TCP, the whole response
//! back (flags, response code, sections), for tests and `orch bench dns`. Messages are
//! hickory-proto's; only the socket handling is here.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP without EDNS (answers over 512 bytes come back truncated).
    Udp,
    /// UDP with EDNS advertising this payload size.
    UdpEdns(u16),
    /// TCP (two-byte length prefix).
    Tcp,
}

/// Errors of [`query`].
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The name is not a DNS name.
    #[error("invalid name {0:?}")]
    Name(String),
    /// Socket trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer could not be decoded or encoded.
    #[error("bad message: {0}")]
    Message(String),
}

/// Builds a query for `name` (made fully qualified) and `rtype`.
pub fn message(
    id: u16,
    name: &str,
    rtype: RecordType,
    edns: Option<u16>,
) -> Result<Message, QueryError> {
    let mut n = Name::from_ascii(name).map_err(|_| QueryError::Name(name.into()))?;
    n.set_fqdn(true);
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(n, rtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    Ok(m)
}

/// Asks `server` once and returns its response.
pub async fn query(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    transport: Transport,
    timeout: Duration,
) -> Result<Message, QueryError> {
    let id = rand_id();
    let edns = match transport {
        Transport::UdpEdns(size) => Some(size),
        _ => None,
    };
    let bytes = message(id, name, rtype, edns)?
        .to_vec()
        .map_err(|e| QueryError::Message(e.to_string()))?;
    let exchange = async {
        let answer = match transport {
            Transport::Udp | Transport::UdpEdns(_) => {
                let bind: SocketAddr = if server.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let sock = UdpSocket::bind(bind).await?;
                sock.connect(server).await?;
                sock.send(&bytes).await?;
                let mut buf = vec![0u8; 65535];
                loop {
                    let n = sock.recv(&mut buf).await?;
                    let m = Message::from_vec(&buf[..n])
                        .map_err(|e| QueryError::Message(e.to_string()))?;
                    if m.id() == id {
                        break m;
                    }
                }
            }
            Transport::Tcp => {
                let mut s = TcpStream::connect(server).await?;
                let len = u16::try_from(bytes.len())
                    .map_err(|_| QueryError::Message("query too long".into()))?;
                s.write_all(&len.to_be_bytes()).await?;
                s.write_all(&bytes).await?;
                let mut lb = [0u8; 2];
                s.read_exact(&mut lb).await?;
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lb))];
                s.read_exact(&mut buf).await?;
                Message::from_vec(&buf).map_err(|e| QueryError::Message(e.to_string()))?
            }
        };
        Ok::<_, QueryError>(answer)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| QueryError::Timeout(timeout))?
}

/// A query id that differs from call to call.
fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u16);
    NEXT.fetch_add(1, Ordering::Relaxed).wrapping_add(seed)
}
