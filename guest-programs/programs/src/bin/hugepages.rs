//! `hugepages [all|hugetlb|thp|always|4k]`: 2 MiB pages, hugetlb and transparent.
//!
//! - `hugetlb`: grow the pool to 32 pages through /proc/sys/vm/nr_hugepages, map 64 MiB
//!   with MAP_HUGETLB (reserved at mmap: HugePages_Rsvd 32), touch every 4 KiB page
//!   (about 32 faults), check meminfo and smaps (Private_Hugetlb), the 2 MiB alignment
//!   rules of munmap and mprotect (EINVAL), ENOMEM from an empty pool at mmap, SIGBUS at
//!   fault time for a MAP_NORESERVE mapping, MAP_HUGE_1GB refused, a forked child's
//!   copy-on-write of a private hugetlb page; then unmap, HugePages_Free back to 32, and
//!   shrink the pool to 0.
//! - `thp`: 64 MiB of anonymous memory, 2 MiB aligned, with MADV_HUGEPAGE (the default
//!   `enabled` is `madvise`): about 32 faults, AnonHugePages 65536 kB in meminfo and in
//!   smaps, thp_fault_alloc +32; a 4 KiB munmap inside a THP splits it (thp_split_pmd),
//!   a 4 KiB mprotect inside another splits it, the contents survive; fork with a THP:
//!   the child sees the parent's data, its writes stay its own, the parent's too; then
//!   unmap everything: AnonHugePages 0.
//! - `always`: `enabled` set to `always`, 64 MiB without madvise: THPs again (32 faults).
//! - `4k`: the same 64 MiB without madvise under `madvise`: 16,384 faults (the baseline).
//! - `pageout` (needs a swap disk): 8 MiB of THPs, MADV_PAGEOUT of the first 4 MiB splits
//!   those two THPs and swaps their pages out (pswpout), reading them back gives the data.
//!
//! Every phase prints `faults: N` for its touch loop (minflt from /proc/self/stat). Exit
//! status 0 when every check held. Not for the host: it changes the machine's settings.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::ffi::CStr;

use vmrt::io::{read_file, Report};
use vmrt::println;
use vmrt::procfs::value;
use vmrt::sys::fs::{close, open, write, O_CLOEXEC, O_WRONLY};
use vmrt::sys::mm::{
    madvise, mincore, mmap, mprotect, munmap, MADV_HUGEPAGE, MADV_PAGEOUT, MAP_ANONYMOUS,
    MAP_NORESERVE, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE,
};
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};
use vmrt::sys::Errno;

vmrt::entry!(main);

const MAP_HUGETLB: u32 = 0x4_0000;
const MAP_HUGE_2MB: u32 = 21 << 26;
const MAP_HUGE_1GB: u32 = 30 << 26;
const HUGE: usize = 2 << 20;
/// What each phase touches.
const LEN: usize = 64 << 20;
const POOL: u64 = (LEN / HUGE) as u64;

fn write_file(path: &CStr, v: &[u8]) -> Result<(), Errno> {
    let fd = open(path, O_WRONLY | O_CLOEXEC, 0)?;
    let r = write(fd, v).map(drop);
    let _ = close(fd);
    r
}

fn meminfo(key: &str) -> u64 {
    read_file(c"/proc/meminfo")
        .ok()
        .and_then(|m| value(&m, key))
        .unwrap_or(u64::MAX)
}

fn vmstat(key: &str) -> u64 {
    read_file(c"/proc/vmstat")
        .ok()
        .and_then(|m| value(&m, key))
        .unwrap_or(u64::MAX)
}

/// Minor faults so far (field 10 of /proc/self/stat).
fn minflt() -> u64 {
    let s = read_file(c"/proc/self/stat").unwrap_or_default();
    let after = s
        .iter()
        .rposition(|&c| c == b')')
        .map_or(&s[..], |i| &s[i + 2..]);
    after
        .split(|&c| c == b' ')
        .nth(7)
        .and_then(vmrt::procfs::parse_u64)
        .unwrap_or(0)
}

/// A field of the smaps entry of the VMA that starts at `start`.
fn smaps(start: usize, key: &str) -> u64 {
    let s = read_file(c"/proc/self/smaps").unwrap_or_default();
    let mut hex = [0u8; 16];
    let n = {
        let mut v = start;
        let mut i = 16;
        while i > 0 {
            i -= 1;
            hex[i] = b"0123456789abcdef"[v & 15];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        &hex[i..]
    };
    let mut found = false;
    for line in s.split(|&c| c == b'\n') {
        if line.contains(&b'-') && line.first().is_some_and(|c| c.is_ascii_hexdigit()) {
            found = line.starts_with(n) && line.get(n.len()) == Some(&b'-');
            continue;
        }
        if found {
            if let Some(v) = value(line, key) {
                return v;
            }
        }
    }
    u64::MAX
}

/// Write each 4 KiB page's first word; returns the faults it took.
fn touch(p: *mut u8, len: usize, tag: u64) -> u64 {
    let before = minflt();
    let mut off = 0;
    while off < len {
        // SAFETY: inside a read-write mapping of `len` bytes.
        unsafe { (p.add(off) as *mut u64).write_volatile(tag ^ off as u64) };
        off += PAGE_SIZE;
    }
    minflt() - before
}

/// Whether every page of `[p + from, p + to)` still holds its word.
fn intact(p: *mut u8, from: usize, to: usize, tag: u64) -> bool {
    let mut off = from;
    while off < to {
        // SAFETY: mapped and readable (the caller leaves holes out).
        if unsafe { (p.add(off) as *const u64).read_volatile() } != tag ^ off as u64 {
            return false;
        }
        off += PAGE_SIZE;
    }
    true
}

fn hugetlb(r: &mut Report) {
    println!("== hugetlb");
    r.check(
        "nr_hugepages = 32",
        write_file(c"/proc/sys/vm/nr_hugepages", b"32\n").is_ok(),
    );
    let total = meminfo("HugePages_Total");
    let free0 = meminfo("HugePages_Free");
    println!(
        "HugePages_Total: {total} HugePages_Free: {free0} Hugepagesize: {} kB",
        meminfo("Hugepagesize")
    );
    r.check("pool of 32", total == POOL && free0 == POOL);
    r.check(
        "MAP_HUGE_1GB refused",
        unsafe {
            mmap(
                0,
                HUGE,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_1GB,
                -1,
                0,
            )
        } == Err(Errno::EINVAL),
    );
    // SAFETY: a fresh mapping.
    let p = match unsafe {
        mmap(
            0,
            LEN,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB,
            -1,
            0,
        )
    } {
        Ok(p) => p,
        Err(e) => {
            println!("mmap MAP_HUGETLB: {e}");
            r.fail();
            return;
        }
    };
    r.check("2 MiB aligned", (p as usize).is_multiple_of(HUGE));
    let rsvd = meminfo("HugePages_Rsvd");
    println!(
        "after mmap: HugePages_Free: {} HugePages_Rsvd: {rsvd}",
        meminfo("HugePages_Free")
    );
    r.check("32 reserved at mmap", rsvd == POOL);
    // The pool is all promised: another mapping cannot be backed.
    r.check(
        "ENOMEM when the pool cannot back it",
        unsafe {
            mmap(
                0,
                HUGE,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
                -1,
                0,
            )
        } == Err(Errno::ENOMEM),
    );
    let faults = touch(p, LEN, 0x1111);
    println!("hugetlb: touched 64 MiB, faults: {faults}");
    r.check("about one fault per 2 MiB", (32..=40).contains(&faults));
    let free = meminfo("HugePages_Free");
    println!(
        "touched: HugePages_Free: {free} HugePages_Rsvd: {} Hugetlb: {} kB",
        meminfo("HugePages_Rsvd"),
        meminfo("Hugetlb")
    );
    r.check("HugePages_Free dropped by 32", free == free0 - POOL);
    let ph = smaps(p as usize, "Private_Hugetlb");
    println!(
        "smaps: Private_Hugetlb: {ph} kB KernelPageSize: {} kB Rss: {} kB",
        smaps(p as usize, "KernelPageSize"),
        smaps(p as usize, "Rss")
    );
    r.check("smaps Private_Hugetlb 65536 kB", ph == 65536);
    // SAFETY: refused calls change nothing.
    r.check(
        "munmap inside a huge page: EINVAL",
        unsafe { munmap(p.add(PAGE_SIZE), PAGE_SIZE) } == Err(Errno::EINVAL),
    );
    r.check(
        "mprotect of half a huge page: EINVAL",
        unsafe { mprotect(p, HUGE / 2, PROT_READ) } == Err(Errno::EINVAL),
    );
    r.check(
        "mprotect of a whole huge page",
        unsafe { mprotect(p, HUGE, PROT_READ) }.is_ok(),
    );
    r.check("contents kept", intact(p, 0, LEN, 0x1111));
    // Fork: the child shares the pages; its write copies one 2 MiB page. The pool is
    // empty, so the copy has no page: SIGBUS, as Linux when a child without reservations
    // writes. Give one page back first by unmapping the last 2 MiB.
    // SAFETY: nothing uses the last 2 MiB afterwards.
    r.check(
        "munmap of the last huge page",
        unsafe { munmap(p.add(LEN - HUGE), HUGE) }.is_ok(),
    );
    r.check("one page back", meminfo("HugePages_Free") == 1);
    match fork() {
        Ok(Fork::Child) => {
            let ok = intact(p, HUGE, 2 * HUGE, 0x1111);
            // SAFETY: the child's own copy-on-write mapping.
            unsafe { (p.add(HUGE) as *mut u64).write_volatile(7) };
            exit_group(
                if ok && unsafe { (p.add(HUGE) as *const u64).read_volatile() } == 7 {
                    0
                } else {
                    1
                },
            );
        }
        Ok(Fork::Parent(pid)) => {
            let st = wait4(pid, 0);
            r.check(
                "child copied a hugetlb page",
                st.is_ok_and(|(_, s)| s.exited() && s.exit_status() == 0),
            );
            r.check("parent's page unchanged", intact(p, HUGE, 2 * HUGE, 0x1111));
            r.check(
                "the copy went back to the pool",
                meminfo("HugePages_Free") == 1,
            );
        }
        Err(e) => {
            println!("fork: {e}");
            r.fail();
        }
    }
    // SAFETY: not used afterwards.
    r.check("munmap", unsafe { munmap(p, LEN - HUGE) }.is_ok());
    println!(
        "unmapped: HugePages_Free: {} HugePages_Rsvd: {}",
        meminfo("HugePages_Free"),
        meminfo("HugePages_Rsvd")
    );
    r.check(
        "HugePages_Free back",
        meminfo("HugePages_Free") == POOL && meminfo("HugePages_Rsvd") == 0,
    );
    // SIGBUS at fault time: MAP_NORESERVE reserves nothing; with an empty pool the fault
    // has no page.
    r.check(
        "nr_hugepages = 0",
        write_file(c"/proc/sys/vm/nr_hugepages", b"0\n").is_ok(),
    );
    // SAFETY: a fresh mapping.
    match unsafe {
        mmap(
            0,
            HUGE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE,
            -1,
            0,
        )
    } {
        Ok(q) => match fork() {
            Ok(Fork::Child) => {
                // SAFETY: faults; no pool page: SIGBUS.
                unsafe { q.write_volatile(1) };
                exit_group(0);
            }
            Ok(Fork::Parent(pid)) => {
                let st = wait4(pid, 0);
                r.check(
                    "SIGBUS when the pool runs out at fault time",
                    st.is_ok_and(|(_, s)| s.signaled() && s.term_signal() == 7),
                );
                // SAFETY: not used.
                let _ = unsafe { munmap(q, HUGE) };
            }
            Err(_) => r.fail(),
        },
        Err(e) => {
            println!("mmap MAP_NORESERVE: {e}");
            r.fail();
        }
    }
    println!(
        "pool emptied: HugePages_Total: {}",
        meminfo("HugePages_Total")
    );
    r.check("pool empty", meminfo("HugePages_Total") == 0);
}

/// 64 MiB of anonymous memory at a 2 MiB-aligned address (the extra trimmed).
fn aligned_anon(len: usize) -> Option<*mut u8> {
    // SAFETY: a fresh mapping; the trimmed parts are not used.
    unsafe {
        let raw = mmap(
            0,
            len + HUGE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )
        .ok()?;
        let p = (raw as usize).next_multiple_of(HUGE) as *mut u8;
        let head = p as usize - raw as usize;
        if head > 0 {
            munmap(raw, head).ok()?;
        }
        if HUGE - head > 0 {
            munmap(p.add(len), HUGE - head).ok()?;
        }
        Some(p)
    }
}

fn thp(r: &mut Report, advise: bool, expect_thp: bool) {
    let Some(p) = aligned_anon(LEN) else {
        println!("mmap failed");
        r.fail();
        return;
    };
    if advise {
        // SAFETY: advice only.
        r.check(
            "MADV_HUGEPAGE",
            unsafe { madvise(p, LEN, MADV_HUGEPAGE) }.is_ok(),
        );
    }
    println!("THPeligible: {}", smaps(p as usize, "THPeligible"));
    let allocs = vmstat("thp_fault_alloc");
    let faults = touch(p, LEN, 0x2222);
    let got = vmstat("thp_fault_alloc") - allocs;
    println!("touched 64 MiB, faults: {faults}, thp_fault_alloc +{got}");
    let anon_huge = meminfo("AnonHugePages");
    let smaps_huge = smaps(p as usize, "AnonHugePages");
    println!(
        "AnonHugePages: {anon_huge} kB, smaps AnonHugePages: {smaps_huge} kB, Rss: {} kB",
        smaps(p as usize, "Rss")
    );
    if !expect_thp {
        r.check(
            "one fault per 4 KiB page",
            (16384..16400).contains(&faults) && got == 0,
        );
        // SAFETY: not used afterwards.
        r.check("munmap", unsafe { munmap(p, LEN) }.is_ok());
        return;
    }
    r.check(
        "about one fault per 2 MiB",
        (32..=40).contains(&faults) && got == POOL,
    );
    r.check(
        "AnonHugePages 64 MiB",
        anon_huge == 65536 && smaps_huge == 65536,
    );
    if !advise {
        // SAFETY: not used afterwards.
        r.check("munmap", unsafe { munmap(p, LEN) }.is_ok());
        r.check("AnonHugePages 0", meminfo("AnonHugePages") == 0);
        return;
    }
    // A partial munmap splits the first THP.
    let splits = vmstat("thp_split_pmd");
    // SAFETY: the hole is not used afterwards.
    r.check(
        "munmap 4 KiB inside a THP",
        unsafe { munmap(p.add(HUGE / 2), PAGE_SIZE) }.is_ok(),
    );
    let split = vmstat("thp_split_pmd") - splits;
    println!(
        "partial munmap: thp_split_pmd +{split}, AnonHugePages: {} kB",
        meminfo("AnonHugePages")
    );
    r.check(
        "split by munmap",
        split == 1 && meminfo("AnonHugePages") == 65536 - 2048,
    );
    r.check(
        "contents around the hole",
        intact(p, 0, HUGE / 2, 0x2222) && intact(p, HUGE / 2 + PAGE_SIZE, HUGE, 0x2222),
    );
    let mut vec = [0u8; 256];
    r.check(
        "mincore: resident around the hole, ENOMEM in it",
        mincore(p, HUGE / 2, &mut vec).is_ok()
            && vec.iter().all(|&v| v & 1 == 1)
            && mincore(p.wrapping_add(HUGE / 2), PAGE_SIZE, &mut vec) == Err(Errno::ENOMEM),
    );
    // A partial mprotect splits the second.
    // SAFETY: read-only from now on, and only read.
    r.check(
        "mprotect 4 KiB inside a THP",
        unsafe { mprotect(p.add(HUGE + HUGE / 2), PAGE_SIZE, PROT_READ) }.is_ok(),
    );
    let split = vmstat("thp_split_pmd") - splits;
    println!(
        "partial mprotect: thp_split_pmd +{split}, AnonHugePages: {} kB",
        meminfo("AnonHugePages")
    );
    r.check(
        "split by mprotect",
        split == 2 && meminfo("AnonHugePages") == 65536 - 2 * 2048,
    );
    r.check(
        "contents after the mprotect split",
        intact(p, HUGE, 2 * HUGE, 0x2222),
    );
    // SAFETY: a writable page of the split THP.
    unsafe { (p.add(HUGE) as *mut u64).write_volatile(0x2222 ^ HUGE as u64) };
    // A whole-THP mprotect keeps the THP.
    // SAFETY: the third THP becomes read-only and is only read until made writable.
    r.check(
        "mprotect of a whole THP",
        unsafe { mprotect(p.add(2 * HUGE), HUGE, PROT_READ) }.is_ok(),
    );
    r.check(
        "whole-THP mprotect keeps it",
        vmstat("thp_split_pmd") - splits == 2 && intact(p, 2 * HUGE, 3 * HUGE, 0x2222),
    );
    // SAFETY: writable again.
    r.check(
        "mprotect back",
        unsafe { mprotect(p.add(2 * HUGE), HUGE, PROT_READ | PROT_WRITE) }.is_ok(),
    );
    // Fork with THPs: copy-on-write of 4 KiB pages.
    let t = p.wrapping_add(4 * HUGE);
    match fork() {
        Ok(Fork::Child) => {
            let saw = intact(p, 4 * HUGE, 5 * HUGE, 0x2222);
            // SAFETY: the child's copy-on-write mapping.
            unsafe { (t as *mut u64).write_volatile(42) };
            let mine = unsafe { (t as *const u64).read_volatile() } == 42;
            let rest = intact(p, 4 * HUGE + PAGE_SIZE, 5 * HUGE, 0x2222);
            exit_group(if saw && mine && rest { 0 } else { 1 });
        }
        Ok(Fork::Parent(pid)) => {
            // SAFETY: the parent's own page, after fork: copy-on-write.
            unsafe { (t.add(PAGE_SIZE) as *mut u64).write_volatile(43) };
            let st = wait4(pid, 0);
            r.check(
                "child: parent's data, its write its own",
                st.is_ok_and(|(_, s)| s.exited() && s.exit_status() == 0),
            );
            r.check(
                "parent: unchanged by the child",
                intact(p, 4 * HUGE, 4 * HUGE + PAGE_SIZE, 0x2222)
                    && unsafe { (t.add(PAGE_SIZE) as *const u64).read_volatile() } == 43,
            );
        }
        Err(e) => {
            println!("fork: {e}");
            r.fail();
        }
    }
    println!(
        "after fork: AnonHugePages: {} kB, thp_split_pmd +{}",
        meminfo("AnonHugePages"),
        vmstat("thp_split_pmd") - splits
    );
    // SAFETY: not used afterwards (the hole is unmapped already; munmap skips it).
    r.check("munmap all", unsafe { munmap(p, LEN) }.is_ok());
    println!("unmapped: AnonHugePages: {} kB", meminfo("AnonHugePages"));
    r.check("AnonHugePages 0", meminfo("AnonHugePages") == 0);
}

fn pageout(r: &mut Report) {
    const N: usize = 8 << 20;
    let Some(p) = aligned_anon(N) else {
        r.fail();
        return;
    };
    // SAFETY: advice only.
    r.check(
        "MADV_HUGEPAGE",
        unsafe { madvise(p, N, MADV_HUGEPAGE) }.is_ok(),
    );
    touch(p, N, 0x3333);
    r.check("4 THPs", meminfo("AnonHugePages") == 8192);
    let (splits, out) = (vmstat("thp_split_pmd"), vmstat("pswpout"));
    // SAFETY: reclaim only; the data comes back from swap.
    r.check(
        "MADV_PAGEOUT",
        unsafe { madvise(p, N / 2, MADV_PAGEOUT) }.is_ok(),
    );
    let (splits, out) = (vmstat("thp_split_pmd") - splits, vmstat("pswpout") - out);
    println!(
        "pageout: thp_split_pmd +{splits}, pswpout +{out}, AnonHugePages: {} kB",
        meminfo("AnonHugePages")
    );
    r.check(
        "split, then swapped",
        splits == 2 && out >= 1024 && meminfo("AnonHugePages") == 4096,
    );
    r.check("contents back from swap", intact(p, 0, N, 0x3333));
    // SAFETY: not used afterwards.
    r.check("munmap", unsafe { munmap(p, N) }.is_ok());
}

fn main() -> i32 {
    let mut r = Report::new();
    let mode = vmrt::env::arg(1).map(|a| Vec::from(a.as_bytes()));
    let mode = mode.as_deref().unwrap_or(b"all");
    let free_before = meminfo("MemFree");
    if mode == b"all" || mode == b"hugetlb" {
        hugetlb(&mut r);
    }
    if mode == b"all" || mode == b"thp" {
        println!("== thp (madvise)");
        thp(&mut r, true, true);
    }
    if mode == b"all" || mode == b"always" {
        println!("== thp (always)");
        r.check(
            "enabled = always",
            write_file(c"/sys/kernel/mm/transparent_hugepage/enabled", b"always\n").is_ok(),
        );
        if let Ok(t) = read_file(c"/sys/kernel/mm/transparent_hugepage/enabled") {
            println!("enabled: {}", vmrt::io::Lossy(t.trim_ascii_end()));
        }
        thp(&mut r, false, true);
        r.check(
            "enabled = madvise",
            write_file(c"/sys/kernel/mm/transparent_hugepage/enabled", b"madvise\n").is_ok(),
        );
    }
    if mode == b"pageout" {
        println!("== MADV_PAGEOUT of THPs");
        pageout(&mut r);
    }
    if mode == b"4k" {
        println!("== 4 KiB pages (enabled = madvise, no madvise)");
        thp(&mut r, false, false);
    }
    let free_after = meminfo("MemFree");
    println!(
        "MemFree: {} kB before, {} kB after",
        free_before, free_after
    );
    match read_file(c"/proc/vmscope/selfcheck") {
        Ok(s) => {
            println!("selfcheck: {}", vmrt::io::Lossy(s.trim_ascii_end()));
            r.check("selfcheck ok", s.trim_ascii_end() == b"ok");
        }
        Err(e) => println!("selfcheck: {e}"),
    }
    r.exit_status()
}
