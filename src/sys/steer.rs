//! Steering datagrams by CPU: a classic BPF program on a SO_REUSEPORT group picks the socket
//! whose number is the receiving CPU's (modulo the group's size), and each worker runs on the
//! CPUs whose datagrams it receives — the datagram is answered on the CPU (and in the caches)
//! that took it in, as Knot's and NSD's CPU affinity options do.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// Attaches the CPU-steering program to `socket`'s SO_REUSEPORT group of `sockets` sockets.
pub fn steer_by_cpu(socket: &UdpSocket, sockets: usize) -> io::Result<()> {
    // A = the CPU this packet is processed on; A %= sockets; return A (the socket's number in
    // the group, in bind order).
    const SKF_AD_CPU: u32 = 36;
    const SKF_AD_OFF: i32 = -0x1000;
    let mut program = [
        filter(
            BPF_LD | BPF_W | BPF_ABS,
            (SKF_AD_OFF as u32).wrapping_add(SKF_AD_CPU),
        ),
        filter(BPF_ALU | BPF_MOD | BPF_K, sockets.max(1) as u32),
        filter(BPF_RET | BPF_A, 0),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `program`, alive for the call; the kernel copies it.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::from_ref(&fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    match done {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_MOD: u16 = 0x90;
const BPF_K: u16 = 0x00;
const BPF_A: u16 = 0x10;

fn filter(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// Runs the calling thread on the CPUs (of those it may use) whose datagrams worker `worker`
/// of `workers` receives: CPU c goes to worker c % workers. Does nothing where that leaves no
/// CPU.
pub fn pin_worker(worker: usize, workers: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain bits; sched_getaffinity/setaffinity read and write only it.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut mine: libc::cpu_set_t = std::mem::zeroed();
        let mut any = false;
        for cpu in (worker..libc::CPU_SETSIZE as usize).step_by(workers.max(1)) {
            if libc::CPU_ISSET(cpu, &allowed) {
                libc::CPU_SET(cpu, &mut mine);
                any = true;
            }
        }
        if any && libc::sched_setaffinity(0, size, &mine) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
