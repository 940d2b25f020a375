//! Giving memory back to the system after a burst. The proxy's binary allocates with mimalloc,
//! set to return freed pages at once (main.rs); `trim` also has it collect the calling thread's
//! heap and those of threads that ended. glibc
//! (the allocator of the library's tests and of anything linked against it) keeps what a burst
//! freed in its heaps for reuse (an overload over thousands of connections left 130–180 MiB
//! resident where the proxy idles at 18 MiB); `malloc_trim` returns the free parts of them.

/// Returns the allocators' free memory to the system.
pub fn trim() {
    // SAFETY: mi_collect only frees mimalloc's own unused memory; it is safe to call whether or
    // not mimalloc is the global allocator.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
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
