//! Datagrams in batches: one `recvmmsg` takes every query waiting on the socket (up to
//! [`BATCH`]) and one `sendmmsg` sends their replies, so the per-syscall cost (entry, file
//! lookup, libc's cancellation points) is paid once a batch rather than twice a query. The
//! calls themselves are `sys::mmsg`; elsewhere than Linux a batch holds one datagram and uses
//! the standard library.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Most datagrams taken by one receive call.
pub const BATCH: usize = 32;

/// Largest UDP datagram; queries are far smaller, but a short buffer would cut a long one and
/// turn it into FORMERR instead of a proper parse. The pages are touched only as far as
/// datagrams fill them, so the resident cost is small.
const DATAGRAM: usize = 65_535;

/// Replies and the peers they go to, in the same order.
pub type Outgoing<'a> = (&'a [Vec<u8>], &'a [SocketAddr]);

/// Receive buffers and source addresses for one worker, reused for every batch.
pub struct Batch {
    buffers: Vec<u8>,
    lens: [usize; BATCH],
    peers: [Option<SocketAddr>; BATCH],
    received: usize,
    /// The system calls' own structures, set up once, pointing into `buffers`.
    #[cfg(target_os = "linux")]
    calls: Box<crate::sys::mmsg::Mmsg<BATCH>>,
}

impl Batch {
    pub fn new() -> Self {
        let mut buffers = vec![0u8; DATAGRAM * BATCH];
        Self {
            // SAFETY: `buffers` is a heap allocation owned by the batch next to `calls`, never
            // resized: it neither moves nor is freed while `calls` lives.
            #[cfg(target_os = "linux")]
            calls: unsafe { crate::sys::mmsg::Mmsg::new(&mut buffers, DATAGRAM) },
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
    use std::os::fd::AsRawFd;

    use super::*;

    impl Batch {
        /// Blocks until at least one datagram is waiting (or the socket's read timeout
        /// passes), then takes every waiting one, up to [`BATCH`].
        pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            self.received = 0;
            let fd = socket.as_raw_fd();
            self.received = self.calls.receive(fd, &mut self.lens, &mut self.peers)?;
            Ok(self.received)
        }

        /// Sends each reply to its peer; returns how many failed.
        pub fn send(&mut self, socket: &UdpSocket, (replies, peers): Outgoing<'_>) -> usize {
            self.calls.send(socket.as_raw_fd(), replies, peers)
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
        pub fn send(&mut self, socket: &UdpSocket, (replies, peers): Outgoing<'_>) -> usize {
            let mut failed = 0;
            for (reply, peer) in replies.iter().zip(peers) {
                if let Err(error) = socket.send_to(reply, peer) {
                    tracing::debug!(%error, %peer, "udp send failed");
                    failed += 1;
                }
            }
            failed
        }
    }
}
