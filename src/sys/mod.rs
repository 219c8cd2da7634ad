//! Calls to the C library that no crate wraps for us; `libc` is named only under `sys`:
//! memory (here) and batched datagrams ([`mmsg`]).

#[cfg(target_os = "linux")]
pub mod mmsg;

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

/// Drops the resident pages of a read-only private file map (`start`, `len`: the whole map):
/// they stop counting towards RSS and are read back from the file if touched again.
///
/// # Safety
/// The range must be exactly a live, read-only, private mapping of a file whose contents do
/// not change, so that pages faulted back in hold the same bytes.
pub unsafe fn drop_file_pages(start: usize, len: usize) {
    #[cfg(unix)]
    // SAFETY: as the caller promises; MADV_DONTNEED only unmaps the pages.
    unsafe {
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
    }
}
