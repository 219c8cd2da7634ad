//! Binding a listen address: a UDP socket for each worker and a TCP listener for each worker,
//! all bound with SO_REUSEPORT to the same address. The kernel then spreads datagrams and
//! connections over them — by a hash of the source, or with `udp_steering = "cpu"` to the
//! worker on the CPU that received the datagram — so that no worker waits behind another on one
//! socket's queue and lock (as Knot's udp-workers, NSD's reuseport and gdnsd do).

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Steering;

/// The sockets of one listen address.
#[derive(Debug)]
pub struct Bound {
    /// One for each worker, in the order the kernel's group numbers them.
    pub udp: Vec<UdpSocket>,
    pub tcp: Vec<TcpListener>,
}

/// Ports tried for port 0 (tests): a port may be taken.
const PORT_TRIES: usize = 64;
/// Connections waiting to be accepted, per listener.
const BACKLOG: i32 = 1024;

/// Binds `addr` (port 0: a port free for UDP and TCP alike) for `workers` workers.
pub fn bind(addr: SocketAddr, workers: usize, steering: Steering) -> io::Result<Bound> {
    let error = |e: io::Error| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}"));
    let mut tries = 0;
    loop {
        tries += 1;
        let mut at = addr;
        if addr.port() == 0 {
            at.set_port(free_port_candidate());
        }
        match bind_group(at, workers.max(1)) {
            Err(e) if addr.port() == 0 && tries < PORT_TRIES => {
                tracing::debug!(error = %e, "port taken between probe and bind; another");
            }
            Err(e) => return Err(error(e)),
            Ok(bound) => {
                if steering == Steering::Cpu {
                    crate::sys::steer_by_cpu(&bound.udp[0], bound.udp.len()).map_err(|e| {
                        error(io::Error::new(
                            e.kind(),
                            format!("udp_steering = \"cpu\": {e}"),
                        ))
                    })?;
                }
                return Ok(bound);
            }
        }
    }
}

/// A port to try for port 0: below the kernel's ephemeral range. A client's source port comes
/// from that range, and a client that sets SO_REUSEPORT itself (BIND's dig does) and lands on
/// our port would join our socket group and be handed some of our queries — its own among
/// them. A fixed port such as 53 is never a source port.
fn free_port_candidate() -> u16 {
    let low = ephemeral_low();
    fastrand::u16((low / 2).max(1024)..low.max(2048))
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768)
}

fn bind_group(addr: SocketAddr, workers: usize) -> io::Result<Bound> {
    // A plain bind first: a server already on the address fails it, where SO_REUSEPORT alone
    // would let a second server of the same user share the port without a word.
    let addr = {
        let probe_udp = socket(addr, Type::DGRAM)?;
        probe_udp.bind(&addr.into())?;
        let chosen = probe_udp.local_addr()?.as_socket().unwrap_or(addr);
        let probe_tcp = socket(chosen, Type::STREAM)?;
        probe_tcp.bind(&chosen.into())?;
        chosen
    };
    let udp = (0..workers)
        .map(|_| reuse_port(addr, Type::DGRAM).map(UdpSocket::from))
        .collect::<io::Result<Vec<_>>>()?;
    let tcp = (0..workers)
        .map(|_| {
            let socket = reuse_port(addr, Type::STREAM)?;
            socket.listen(BACKLOG)?;
            socket.set_nonblocking(true)?;
            Ok(TcpListener::from(socket))
        })
        .collect::<io::Result<Vec<_>>>()?;
    Ok(Bound { udp, tcp })
}

/// An unbound socket of `kind` for `addr`. An IPv6 one takes IPv6 only (as NSD's and Knot's
/// do), so that `0.0.0.0:53` and `[::]:53` both bind whatever `net.ipv6.bindv6only` says.
fn socket(addr: SocketAddr, kind: Type) -> io::Result<Socket> {
    let protocol = match kind {
        Type::STREAM => Protocol::TCP,
        _ => Protocol::UDP,
    };
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // As std's listeners do: a port whose old connections are in TIME_WAIT binds at once.
    if kind == Type::STREAM {
        socket.set_reuse_address(true)?;
    }
    Ok(socket)
}

/// A socket of `kind` bound to `addr` in its SO_REUSEPORT group.
fn reuse_port(addr: SocketAddr, kind: Type) -> io::Result<Socket> {
    let socket = socket(addr, kind)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_binds_below_the_ephemeral_range() {
        let low = ephemeral_low();
        let bound = bind("127.0.0.1:0".parse().unwrap(), 2, Steering::Hash).unwrap();
        let port = bound.udp[0].local_addr().unwrap().port();
        assert!(port < low && port >= 1024, "{port} vs {low}");
        assert_eq!(bound.udp[1].local_addr().unwrap().port(), port);
        assert_eq!(bound.tcp[0].local_addr().unwrap().port(), port);
    }

    /// Every IPv4 and every IPv6 address on one port, as the systemd config listens.
    #[test]
    fn the_ipv4_and_ipv6_wildcards_bind_side_by_side() {
        let v4 = bind("0.0.0.0:0".parse().unwrap(), 1, Steering::Hash).unwrap();
        let port = v4.udp[0].local_addr().unwrap().port();
        let v6 = bind(
            SocketAddr::new("::".parse().unwrap(), port),
            1,
            Steering::Hash,
        );
        assert!(v6.is_ok(), "{:?}", v6.err());
    }
}
