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
    /// The system call's own structures, set up once (their pointers stay valid: boxed).
    #[cfg(target_os = "linux")]
    calls: Box<imp::Calls>,
}

impl Batch {
    pub fn new() -> Self {
        let mut buffers = vec![0u8; DATAGRAM * BATCH];
        Self {
            #[cfg(target_os = "linux")]
            calls: imp::Calls::new(&mut buffers),
            buffers,
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

    const NAME_LEN: u32 = size_of::<libc::sockaddr_storage>() as u32;

    /// Headers, buffer descriptors and addresses for `recvmmsg` (pointing into the batch's
    /// buffers) and for `sendmmsg` (filled per send). Built once a worker, as the kernel
    /// only writes lengths and addresses back into them.
    pub struct Calls {
        names: [libc::sockaddr_storage; BATCH],
        iovecs: [libc::iovec; BATCH],
        headers: [libc::mmsghdr; BATCH],
        send_names: [libc::sockaddr_storage; BATCH],
        send_iovecs: [libc::iovec; BATCH],
        send_headers: [libc::mmsghdr; BATCH],
    }

    impl Calls {
        pub fn new(buffers: &mut [u8]) -> Box<Self> {
            // SAFETY: all-zero is a valid value of these plain C structs.
            let mut calls: Box<Self> = Box::new(unsafe { zeroed() });
            let this = &mut *calls;
            for i in 0..BATCH {
                this.iovecs[i].iov_base = buffers[i * DATAGRAM..].as_mut_ptr().cast();
                this.iovecs[i].iov_len = DATAGRAM;
                let header = &mut this.headers[i].msg_hdr;
                header.msg_name = (&mut this.names[i] as *mut libc::sockaddr_storage).cast();
                header.msg_iov = &mut this.iovecs[i];
                header.msg_iovlen = 1;
                let header = &mut this.send_headers[i].msg_hdr;
                header.msg_name = (&mut this.send_names[i] as *mut libc::sockaddr_storage).cast();
                header.msg_iov = &mut this.send_iovecs[i];
                header.msg_iovlen = 1;
            }
            calls
        }
    }

    impl Batch {
        /// Blocks until at least one datagram is waiting (or the socket's read timeout
        /// passes), then takes every waiting one, up to [`BATCH`].
        pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            self.received = 0;
            let calls = &mut *self.calls;
            for header in &mut calls.headers {
                header.msg_hdr.msg_namelen = NAME_LEN;
            }
            // SAFETY: every header points at a live iovec over its own slice of `buffers`
            // (DATAGRAM bytes each) and at its own sockaddr_storage; all are owned by `self`,
            // boxed or on the heap, and outlive the call.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    calls.headers.as_mut_ptr(),
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
                self.lens[i] = calls.headers[i].msg_len as usize;
                self.peers[i] = socket_addr(&calls.names[i]);
            }
            self.received = n;
            Ok(n)
        }

        /// Sends each reply to its peer, as few calls as the kernel allows. A reply the
        /// kernel refuses is skipped (and counted in the result) so the rest still go out.
        pub fn send(&mut self, socket: &UdpSocket, replies: &[(&[u8], SocketAddr)]) -> usize {
            let calls = &mut *self.calls;
            let mut failed = 0;
            let mut next = 0;
            while next < replies.len() {
                let chunk = &replies[next..replies.len().min(next + BATCH)];
                for (i, (reply, peer)) in chunk.iter().enumerate() {
                    calls.send_iovecs[i].iov_base = reply.as_ptr() as *mut libc::c_void;
                    calls.send_iovecs[i].iov_len = reply.len();
                    calls.send_headers[i].msg_hdr.msg_namelen =
                        write_addr(&mut calls.send_names[i], peer);
                }
                // SAFETY: `chunk.len()` headers, each pointing at its own address and at an
                // iovec over a reply that outlives the call; the replies are only read.
                let sent = unsafe {
                    libc::sendmmsg(
                        socket.as_raw_fd(),
                        calls.send_headers.as_mut_ptr(),
                        chunk.len() as u32,
                        0,
                    )
                };
                if sent <= 0 {
                    let error = io::Error::last_os_error();
                    if error.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    tracing::debug!(%error, peer = %chunk[0].1, "udp send failed");
                    failed += 1;
                    next += 1;
                } else {
                    next += sent as usize;
                }
            }
            failed
        }
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

        /// Sends each reply to its peer; returns how many failed.
        pub fn send(&mut self, socket: &UdpSocket, replies: &[(&[u8], SocketAddr)]) -> usize {
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
}
