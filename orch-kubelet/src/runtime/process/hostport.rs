//! Host ports. With host networking a `hostPort` only has to be free; with a pod network
//! namespace the kubelet forwards it, like the CNI `portmap` plugin (which uses iptables DNAT):
//! here a userspace TCP proxy that listens on `hostIP:hostPort` (`0.0.0.0` when `hostIP` is
//! empty) and connects each client to `podIP:containerPort`. The listening socket is also the
//! reservation, so a second pod asking for the same port is refused. UDP host ports are only
//! reserved (the socket is held open), not forwarded.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One `hostPort` of a pod.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mapping {
    /// `hostPort`.
    pub host_port: i32,
    /// `containerPort`.
    pub container_port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// `hostIP` (empty = all addresses).
    pub host_ip: String,
}

impl Mapping {
    fn listen_addr(&self) -> io::Result<SocketAddr> {
        let ip: IpAddr = if self.host_ip.is_empty() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            self.host_ip.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid hostIP {:?}", self.host_ip),
                )
            })?
        };
        let port = u16::try_from(self.host_port)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "hostPort out of range"))?;
        Ok(SocketAddr::new(ip, port))
    }
}

/// True if the host port can be bound now (host networking: the pod binds it itself).
pub fn is_free(m: &Mapping) -> bool {
    let Ok(addr) = m.listen_addr() else {
        return false;
    };
    match m.protocol.as_str() {
        "UDP" => UdpSocket::bind(addr).is_ok(),
        _ => TcpListener::bind(addr).is_ok(),
    }
}

/// A held host port: a running TCP proxy or a reserved UDP socket. Dropping it stops both.
#[derive(Debug)]
pub struct Forward {
    stop: Arc<AtomicBool>,
    wake: Option<SocketAddr>,
    thread: Option<std::thread::JoinHandle<()>>,
    _udp: Option<UdpSocket>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.wake {
            // unblock accept(), then wait until the port is closed, so it can be bound again
            if TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok() {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

/// Starts forwarding `m` to `pod_ip` (or reserving it, for UDP/SCTP).
pub fn forward(m: &Mapping, pod_ip: Ipv4Addr) -> io::Result<Forward> {
    let addr = m.listen_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    if m.protocol != "TCP" {
        let udp = UdpSocket::bind(addr)?;
        return Ok(Forward {
            stop,
            wake: None,
            thread: None,
            _udp: Some(udp),
        });
    }
    let listener = TcpListener::bind(addr)?;
    let target = SocketAddr::new(IpAddr::V4(pod_ip), m.container_port as u16);
    let wake = if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    };
    let s = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("hostport-{}", m.host_port))
        .spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(client) = conn {
                    let _ = std::thread::Builder::new()
                        .name("hostport-conn".into())
                        .spawn(move || proxy(client, target));
                }
            }
        })?;
    Ok(Forward {
        stop,
        wake: Some(wake),
        thread: Some(thread),
        _udp: None,
    })
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn proxy(client: TcpStream, target: SocketAddr) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        return; // the client sees the connection closed, as with nothing listening
    };
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let t = std::thread::spawn(move || pipe(c2, u2));
    pipe(upstream, client);
    let _ = t.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_and_reserves_then_releases() {
        // a "pod" server on 127.0.0.1, forwarded from a free host port on 127.0.0.1
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let sport = server.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in server.incoming().flatten() {
                let mut c = c;
                let _ = c.write_all(b"hello");
            }
        });
        let hport = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let m = Mapping {
            host_port: i32::from(hport),
            container_port: i32::from(sport),
            protocol: "TCP".into(),
            host_ip: "127.0.0.1".into(),
        };
        let f = forward(&m, Ipv4Addr::LOCALHOST).unwrap();
        assert!(!is_free(&m), "the forwarder holds the port");
        let mut got = String::new();
        TcpStream::connect(("127.0.0.1", hport))
            .unwrap()
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "hello");
        drop(f);
        std::thread::sleep(Duration::from_millis(50));
        assert!(is_free(&m), "dropping the forwarder frees the port");
    }
}
