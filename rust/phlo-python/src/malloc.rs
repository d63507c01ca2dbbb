//! glibc's malloc settings for the process, set when the module loads: blocks up to
//! `MMAP_THRESHOLD` come from the heap and freed memory stays there up to `TRIM_THRESHOLD`.
//! By default glibc maps each block over 128 KiB (a decode buffer of a batch) on its own and
//! unmaps it on free, so every batch faulted its buffers in afresh (docs/benchmarks.md,
//! "Quality checks": a quality run's page faults halved on the full table, its CPU 15–23%
//! lower). The settings are the process's: up to 64 MiB freed by any library stays mapped.

/// Blocks up to this size are carved from the heap instead of mapped on their own.
const MMAP_THRESHOLD: i32 = 4 << 20;
/// Free memory at the heap's top kept for later blocks instead of returned to the OS.
const TRIM_THRESHOLD: i32 = 64 << 20;

/// Sets the thresholds, unless the user set malloc's own (`GLIBC_TUNABLES`, `MALLOC_*_`).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."))
            || std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("MALLOC_"));
        if !tuned {
            // SAFETY: mallopt only sets malloc's parameters; any thread may call it.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            }
        }
    }
}
