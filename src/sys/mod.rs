//! Calls to the operating system that no crate wraps for us; `libc` is named only under `sys`:
//! memory and durable file writes (here), batched datagrams ([`mmsg`]) and steering datagrams
//! to workers by CPU (`steer`).

use std::io::Write;
use std::path::Path;

#[cfg(target_os = "linux")]
pub mod mmsg;
#[cfg(target_os = "linux")]
mod steer;
#[cfg(target_os = "linux")]
pub use steer::{pin_worker, steer_by_cpu};

/// Nanoseconds on the monotonic clock: what `Instant` reads, as a plain integer, so that a
/// UDP worker times each batch with one subtraction (`Instant`'s checked arithmetic cost more
/// than the clock read).
pub fn monotonic_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
    }
    (now.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(now.tv_nsec as u64)
}

/// Returns the heap freed by a load to the system. Parsing a large zone allocates several times
/// what the built zone keeps (the TOML document, the spec); glibc keeps freed memory in the
/// process otherwise, and it shows as RSS for as long as the server runs.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims glibc's own heap; it takes no pointers of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drops the resident pages of a read-only file mapping (`start`, `len`: the whole mapping):
/// they stop counting towards RSS and are read back from the file if touched again.
///
/// # Safety
/// The range must be exactly a live, read-only mapping of a file (shared or private) whose
/// contents do not change while it is mapped, so that pages faulted back in hold the same
/// bytes; for a private mapping, one never written to (MADV_DONTNEED would drop the writes).
pub unsafe fn drop_file_pages(start: usize, len: usize) {
    #[cfg(unix)]
    // SAFETY: as the caller promises; MADV_DONTNEED only unmaps the pages.
    unsafe {
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
    }
}

/// Writes `bytes` to `path` so that readers and crashes see the old file or the new one:
/// a temp file in the same folder, fsync, rename over, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    // Hidden, so that a leftover temp file is never loaded as a zone.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The machine's host name (for `server.nsid = "hostname"`).
pub fn hostname() -> std::io::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..len].to_vec()).map_err(std::io::Error::other)
}

/// Bytes from the system's random source (for secrets), through ring, which DNSSEC and TSIG
/// already use (getrandom(2), without a file descriptor).
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| std::io::Error::other("the system's random source failed"))?;
    Ok(out)
}

/// Lets a write to a closed pipe end the process quietly, as it ends other command-line tools:
/// A file size limit (`ulimit -f`, systemd's `LimitFSIZE=`) would otherwise end the process
/// with SIGXFSZ on the write that crosses it: ignored, the write fails with EFBIG instead, and
/// the change that needed it is refused like one on a full disk (for `serve`).
pub fn ignore_file_size_signal() {
    // SAFETY: `signal` with SIG_IGN changes only the process's disposition of SIGXFSZ; it
    // reads and writes no Rust memory, and is called from `main` before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Rust ignores SIGPIPE, which turns `meridian simulate | head` into a panic in `println!`. For
/// the commands that print, never for `serve` (a client closing its TCP connection must not
/// end the server).
pub fn default_sigpipe() {
    // SAFETY: `signal` with SIG_DFL changes only the process's disposition of SIGPIPE; it
    // reads and writes no Rust memory, and is called from `main` before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_bytes_differ_between_calls() {
        let a: [u8; 32] = super::random_bytes().unwrap();
        let b: [u8; 32] = super::random_bytes().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
