//! `vmstat`: one report in procps `vmstat` layout, averaged since boot like
//! vmstat's first line:
//!
//! ```text
//! procs -----------memory---------- ---swap-- -----io---- -system-- ------cpu-----
//!  r  b   swpd   free   buff  cache   si   so    bi    bo   in   cs us sy id wa st
//!  1  0      0 23365712   2480 1179288    0    0   389   213  110  119 13  1 86  0  0
//! ```
//!
//! * memory (KiB) from `/proc/meminfo`: swpd = SwapTotal - SwapFree, free =
//!   MemFree, buff = Buffers, cache = Cached + SReclaimable;
//! * swap and io from `/proc/vmstat`: pswpin/pswpout (pages, shown in KiB)
//!   and pgpgin/pgpgout (KiB), per second;
//! * r, b, in, cs and the CPU split from `/proc/stat` (procs_running,
//!   procs_blocked, intr, ctxt, the `cpu` line).
//!
//! Rates divide by the CPU time since boot the way procps 3.3 does: with
//! `Div` the sum of the user, system, idle, iowait and steal ticks,
//! `rate = (count * HZ + Div / 2) / Div` and `us = (100 * user + Div / 2) /
//! Div`. A missing file or field counts as 0 (a small kernel may lack
//! `/proc/stat` or `/proc/vmstat`).
//!
//! Kernel-describing: not compared with native Linux.
#![no_std]
#![no_main]

use vmrt::procfs::{fields, lines, parse_u64, value};
use vmrt::{eprintln, println};

vmrt::entry!(main);

/// The aggregate `cpu` line of `/proc/stat`: user, nice, system, idle,
/// iowait, irq, softirq, steal (in clock ticks).
fn cpu_ticks(stat: &[u8]) -> [u64; 8] {
    let mut t = [0u64; 8];
    if let Some(line) = lines(stat).find(|l| fields(l).next() == Some(b"cpu")) {
        for (slot, f) in t.iter_mut().zip(fields(line).skip(1)) {
            *slot = parse_u64(f).unwrap_or(0);
        }
    }
    t
}

fn main() -> i32 {
    let meminfo = match vmrt::io::read_file(c"/proc/meminfo") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("vmstat: /proc/meminfo: {e}");
            return 1;
        }
    };
    let vmstat = vmrt::io::read_file(c"/proc/vmstat").unwrap_or_default();
    let stat = vmrt::io::read_file(c"/proc/stat").unwrap_or_default();
    let mem = |k| value(&meminfo, k).unwrap_or(0);
    let vm = |k| value(&vmstat, k).unwrap_or(0);
    let st = |k| value(&stat, k).unwrap_or(0);
    let hz = vmrt::env::auxv(vmrt::env::AT_CLKTCK).unwrap_or(100) as u64;
    let kb_per_page = vmrt::env::auxv(vmrt::env::AT_PAGESZ).unwrap_or(4096) as u64 / 1024;

    let [user, nice, system, idle, iowait, irq, softirq, steal] = cpu_ticks(&stat);
    let (duse, dsys, mut didl) = (user + nice, system + irq + softirq, idle);
    let mut div = duse + dsys + didl + iowait + steal;
    if div == 0 {
        div = 1;
        didl = 1;
    }
    let half = div / 2;
    let rate = |count: u64| (count * hz + half) / div;
    let pct = |ticks: u64| (100 * ticks + half) / div;

    println!("procs -----------memory---------- ---swap-- -----io---- -system-- ------cpu-----");
    println!(" r  b   swpd   free   buff  cache   si   so    bi    bo   in   cs us sy id wa st");
    println!(
        "{:>2} {:>2} {:>6} {:>6} {:>6} {:>6} {:>4} {:>4} {:>5} {:>5} {:>4} {:>4} {:>2} {:>2} {:>2} {:>2} {:>2}",
        st("procs_running"),
        st("procs_blocked"),
        mem("SwapTotal").saturating_sub(mem("SwapFree")),
        mem("MemFree"),
        mem("Buffers"),
        mem("Cached") + mem("SReclaimable"),
        rate(vm("pswpin") * kb_per_page),
        rate(vm("pswpout") * kb_per_page),
        rate(vm("pgpgin")),
        rate(vm("pgpgout")),
        rate(st("intr")),
        rate(st("ctxt")),
        pct(duse),
        pct(dsys),
        pct(didl),
        pct(iowait),
        pct(steal),
    );
    0
}
