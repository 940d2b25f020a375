//! Giving memory back to the system after a burst. The proxy's binary allocates with mimalloc,
//! set to return freed pages at once (main.rs), so its own heap needs no help. glibc's allocator
//! (the allocator of the library's tests, and of the C code linked in: SQLite's page cache)
//! keeps what a burst freed in its heaps for reuse (an overload over
//! thousands of connections left 130–180 MiB resident where the proxy idles at 18 MiB);
//! `malloc_trim` returns the free parts of them.
//!
//! mimalloc's `mi_collect(true)` is not called: run after a burst on a thread of its own, it
//! made the heap larger, not smaller (resident anonymous memory from 28 to 36 MiB after 10,000
//! requests, tests/faults.rs, measured with transparent huge pages still allowed).

/// Returns the C allocator's free memory to the system.
pub fn trim() {
    glibc_trim();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_trim() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other C allocators give memory back by themselves, or not at all.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_trim() {}
