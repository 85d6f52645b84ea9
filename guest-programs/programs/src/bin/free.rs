//! `free`: memory totals from `/proc/meminfo`, in KiB, laid out like
//! procps-ng's `free -k`:
//!
//! ```text
//!                total        used        free      shared  buff/cache   available
//! Mem:        24683656      402412    23365712        8952     1181668    24281244
//! Swap:              0           0           0
//! ```
//!
//! As in procps-ng 4: `used = MemTotal - MemAvailable` (MemFree if the
//! kernel has no MemAvailable), `buff/cache = Buffers + Cached +
//! SReclaimable`, `shared = Shmem`. Missing fields count as 0.
//!
//! Kernel-describing: not compared with native Linux.
#![no_std]
#![no_main]

use vmrt::procfs::value;
use vmrt::{eprintln, println};

vmrt::entry!(main);

fn main() -> i32 {
    let meminfo = match vmrt::io::read_file(c"/proc/meminfo") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("free: /proc/meminfo: {e}");
            return 1;
        }
    };
    let get = |key| value(&meminfo, key).unwrap_or(0);
    let total = get("MemTotal");
    let free = get("MemFree");
    let available = value(&meminfo, "MemAvailable").unwrap_or(free);
    let buff_cache = get("Buffers") + get("Cached") + get("SReclaimable");
    let used = total
        .checked_sub(available)
        .unwrap_or(total.saturating_sub(free));
    let (swap_total, swap_free) = (get("SwapTotal"), get("SwapFree"));
    println!("               total        used        free      shared  buff/cache   available");
    println!(
        "{:<9}{:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
        "Mem:",
        total,
        used,
        free,
        get("Shmem"),
        buff_cache,
        available
    );
    println!(
        "{:<9}{:>11} {:>11} {:>11}",
        "Swap:",
        swap_total,
        swap_total.saturating_sub(swap_free),
        swap_free
    );
    0
}
