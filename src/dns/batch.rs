//! Datagrams in batches: one `recvmmsg` takes every query waiting on the socket (up to
//! [`BATCH`]) and one `sendmmsg` sends their replies, so the per-syscall cost (entry, file
//! lookup, libc's cancellation points) is paid once a batch rather than twice a query. The
//! only module that names `libc`'s socket calls; elsewhere than Linux a batch holds one
//! datagram and uses the standard library.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Most datagrams taken by one receive call.
pub const BATCH: usize = 32;

/// Largest UDP datagram; queries are far smaller, but a short buffer would cut a long one and
/// turn it into FORMERR instead of a proper parse. The pages are touched only as far as
/// datagrams fill them, so the resident cost is small.
const DATAGRAM: usize = 65_535;

/// Receive buffers and source addresses for one worker, reused for every batch.
pub struct Batch {
    buffers: Vec<u8>,
    lens: [usize; BATCH],
    peers: [Option<SocketAddr>; BATCH],
    received: usize,
}

impl Batch {
    pub fn new() -> Self {
        Self {
            buffers: vec![0u8; DATAGRAM * BATCH],
            lens: [0; BATCH],
            peers: [None; BATCH],
            received: 0,
        }
    }

    /// The datagrams of the last [`Batch::receive`], with their sources.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        (0..self.received).filter_map(move |i| {
            let start = i * DATAGRAM;
            Some((&self.buffers[start..start + self.lens[i]], self.peers[i]?))
        })
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::mem::{size_of, zeroed};
    use std::os::fd::AsRawFd;

    use super::*;

    impl Batch {
        /// Blocks until at least one datagram is waiting (or the socket's read timeout
        /// passes), then takes every waiting one, up to [`BATCH`].
        pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            self.received = 0;
            // SAFETY: all-zero is a valid value of these plain C structs.
            let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
            let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
            let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
            for (i, ((iov, name), header)) in iovecs
                .iter_mut()
                .zip(names.iter_mut())
                .zip(headers.iter_mut())
                .enumerate()
            {
                iov.iov_base = self.buffers[i * DATAGRAM..].as_mut_ptr().cast();
                iov.iov_len = DATAGRAM;
                header.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
                header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
                header.msg_hdr.msg_iov = iov;
                header.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: every header points at a live iovec over its own slice of `buffers`
            // (DATAGRAM bytes each) and at its own sockaddr_storage; all outlive the call.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    headers.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            for i in 0..n {
                self.lens[i] = headers[i].msg_len as usize;
                self.peers[i] = socket_addr(&names[i]);
            }
            self.received = n;
            Ok(n)
        }
    }

    /// Sends each reply to its peer, as few calls as the kernel allows. A reply the kernel
    /// refuses is skipped (and returned in the error count) so the rest still go out.
    pub fn send(socket: &UdpSocket, replies: &[(&[u8], SocketAddr)]) -> usize {
        let mut failed = 0;
        let mut next = 0;
        while next < replies.len() {
            let chunk = &replies[next..replies.len().min(next + BATCH)];
            // SAFETY: as in `receive`; the replies are only read.
            let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
            let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
            let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
            for (i, (reply, peer)) in chunk.iter().enumerate() {
                iovecs[i].iov_base = reply.as_ptr() as *mut libc::c_void;
                iovecs[i].iov_len = reply.len();
                headers[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
                headers[i].msg_hdr.msg_namelen = write_addr(&mut names[i], peer);
                headers[i].msg_hdr.msg_iov = &mut iovecs[i];
                headers[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: `chunk.len()` headers, each pointing at live iovecs and addresses.
            let sent = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    headers.as_mut_ptr(),
                    chunk.len() as u32,
                    0,
                )
            };
            if sent <= 0 {
                let error = io::Error::last_os_error();
                tracing::debug!(%error, peer = %chunk[0].1, "udp send failed");
                failed += 1;
                next += 1;
            } else {
                next += sent as usize;
            }
        }
        failed
    }

    fn socket_addr(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(name.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
                let sin: &libc::sockaddr_in = unsafe { &*(name as *const _ as *const _) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
                let sin6: &libc::sockaddr_in6 = unsafe { &*(name as *const _ as *const _) };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn write_addr(name: &mut libc::sockaddr_storage, peer: &SocketAddr) -> u32 {
        match peer {
            SocketAddr::V4(v4) => {
                // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
                let sin: &mut libc::sockaddr_in = unsafe { &mut *(name as *mut _ as *mut _) };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = v4.port().to_be();
                sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
                size_of::<libc::sockaddr_in>() as u32
            }
            SocketAddr::V6(v6) => {
                // SAFETY: as above.
                let sin6: &mut libc::sockaddr_in6 = unsafe { &mut *(name as *mut _ as *mut _) };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = v6.port().to_be();
                sin6.sin6_flowinfo = v6.flowinfo();
                sin6.sin6_addr.s6_addr = v6.ip().octets();
                sin6.sin6_scope_id = v6.scope_id();
                size_of::<libc::sockaddr_in6>() as u32
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    impl Batch {
        /// One datagram a batch.
        pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            self.received = 0;
            let (len, peer) = socket.recv_from(&mut self.buffers[..DATAGRAM])?;
            self.lens[0] = len;
            self.peers[0] = Some(peer);
            self.received = 1;
            Ok(1)
        }
    }

    /// Sends each reply to its peer; returns how many failed.
    pub fn send(socket: &UdpSocket, replies: &[(&[u8], SocketAddr)]) -> usize {
        let mut failed = 0;
        for (reply, peer) in replies {
            if let Err(error) = socket.send_to(reply, peer) {
                tracing::debug!(%error, %peer, "udp send failed");
                failed += 1;
            }
        }
        failed
    }
}

pub use imp::send;
