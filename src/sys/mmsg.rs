//! `recvmmsg`/`sendmmsg` over `N` datagram slots: the structures the kernel reads are set up
//! once and reused, so a call costs only what the kernel does. `dns::batch` owns the buffers
//! and decides what to send; this is the C library side of it.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::RawFd;

const NAME_LEN: u32 = size_of::<libc::sockaddr_storage>() as u32;

/// Headers, buffer descriptors and addresses for `recvmmsg` (pointing into the caller's
/// buffers) and for `sendmmsg` (filled per send). Boxed: the headers point into it.
pub struct Mmsg<const N: usize> {
    names: [libc::sockaddr_storage; N],
    iovecs: [libc::iovec; N],
    headers: [libc::mmsghdr; N],
    send_names: [libc::sockaddr_storage; N],
    send_iovecs: [libc::iovec; N],
    send_headers: [libc::mmsghdr; N],
}

impl<const N: usize> Mmsg<N> {
    /// Receive slot `i` is `buffers[i * slot..][..slot]`.
    ///
    /// # Safety
    /// `buffers` (at least `N * slot` bytes) must neither move nor be freed while this lives:
    /// [`Mmsg::receive`] has the kernel write into it.
    pub unsafe fn new(buffers: &mut [u8], slot: usize) -> Box<Self> {
        assert!(buffers.len() >= N * slot);
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut calls: Box<Self> = Box::new(unsafe { zeroed() });
        let this = &mut *calls;
        for i in 0..N {
            this.iovecs[i].iov_base = buffers[i * slot..].as_mut_ptr().cast();
            this.iovecs[i].iov_len = slot;
            let header = &mut this.headers[i].msg_hdr;
            header.msg_name = (&mut this.names[i] as *mut libc::sockaddr_storage).cast();
            header.msg_iov = &mut this.iovecs[i];
            header.msg_iovlen = 1;
            header.msg_namelen = NAME_LEN;
            let header = &mut this.send_headers[i].msg_hdr;
            header.msg_name = (&mut this.send_names[i] as *mut libc::sockaddr_storage).cast();
            header.msg_iov = &mut this.send_iovecs[i];
            header.msg_iovlen = 1;
        }
        calls
    }

    /// Blocks until at least one datagram is waiting on `fd` (or its read timeout passes),
    /// then takes every waiting one, up to `N`. Writes each one's length and source into
    /// `lens` and `peers`; returns how many.
    pub fn receive(
        &mut self,
        fd: RawFd,
        lens: &mut [usize; N],
        peers: &mut [Option<SocketAddr>; N],
    ) -> io::Result<usize> {
        // The system call itself rather than libc's wrapper, a thread-cancellation point
        // (two more calls around it) that nothing here uses. Every header's name length is
        // the whole sockaddr_storage: set in `new`, and again below for those the kernel
        // shortened.
        // SAFETY: every header points at its own iovec over a slot of the caller's buffers
        // (alive and unmoved, as `new` requires) and at its own sockaddr_storage in `self`.
        let n = unsafe {
            libc::syscall(
                libc::SYS_recvmmsg,
                fd,
                self.headers.as_mut_ptr(),
                N as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut::<libc::timespec>(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            lens[i] = self.headers[i].msg_len as usize;
            peers[i] = socket_addr(&self.names[i]);
            self.headers[i].msg_hdr.msg_namelen = NAME_LEN;
        }
        Ok(n)
    }

    /// Sends each reply to its peer, as few calls as the kernel allows. A reply the kernel
    /// refuses is skipped (and counted in the result) so the rest still go out.
    pub fn send(&mut self, fd: RawFd, replies: &[Vec<u8>], peers: &[SocketAddr]) -> usize {
        let mut failed = 0;
        let mut next = 0;
        let count = replies.len().min(peers.len());
        while next < count {
            let end = count.min(next + N);
            let chunk = replies[next..end].iter().zip(&peers[next..end]);
            for (i, (reply, peer)) in chunk.enumerate() {
                self.send_iovecs[i].iov_base = reply.as_ptr() as *mut libc::c_void;
                self.send_iovecs[i].iov_len = reply.len();
                self.send_headers[i].msg_hdr.msg_namelen =
                    write_addr(&mut self.send_names[i], peer);
            }
            // SAFETY: `end - next` headers, each pointing at its own address and at an iovec
            // over a reply that outlives the call; the replies are only read.
            let sent = unsafe {
                let headers = self.send_headers.as_mut_ptr();
                let count = (end - next) as libc::c_uint;
                libc::syscall(libc::SYS_sendmmsg, fd, headers, count, 0 as libc::c_int)
            };
            if sent <= 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                send_failed(&error, &peers[next]);
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

/// Out of the send loop's line: a failed send is rare, and its log call is a lot of code.
#[cold]
#[inline(never)]
fn send_failed(error: &io::Error, peer: &SocketAddr) {
    tracing::debug!(%error, %peer, "udp send failed");
}
