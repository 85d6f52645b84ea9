//! `swapstress [vmstat]`: every kind of page goes to swap and comes back intact.
//! `madvise(MADV_PAGEOUT)` reclaims a range at once (swapping out anonymous and shared
//! memory), then every byte is checked, in these cases:
//! - private anonymous memory;
//! - shared anonymous memory, checked by a child and by the parent;
//! - a private mapping of a tmpfs file with half its pages written (copy-on-write copies
//!   swapped, the file's own pages dropped and read back);
//! - memory swapped out before a fork, so parent and children share swap slots: each child
//!   checks it, writes its own half, swaps again and checks; the parent's copy is
//!   unchanged;
//! - mremap (moving), mprotect (read-only and back) and munmap of part of a swapped range.
//!
//! Natively the same checks pass (Linux without swap keeps anonymous pages, which is
//! allowed), so the output is compared with the host. `vmstat` adds what only the guest
//! can show: VmSwap after a pageout, swapoff of /dev/vda bringing everything back (and
//! swapon again), and swap in use once everything is unmapped (0).
#![no_std]
#![no_main]

use vmrt::println;
use vmrt::procfs::value;
use vmrt::sys::fs::{close, open, write, O_CREAT, O_RDWR, O_TRUNC};
use vmrt::sys::mm::{
    madvise, mmap, mprotect, mremap, munmap, MADV_PAGEOUT, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED,
    MREMAP_MAYMOVE, PAGE_SIZE, PROT_READ, PROT_WRITE,
};
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};

vmrt::entry!(main);

const MIB: usize = 1 << 20;
/// Words per page.
const WORDS: usize = PAGE_SIZE / 8;
/// The swap disk of the guest run (`vmstat` mode).
const SWAP_DEV: &core::ffi::CStr = c"/dev/vda";
/// The tmpfs file of the copy-on-write case.
const FILE: &core::ffi::CStr = c"/tmp/swapstress.dat";

/// The value of word `i` of pattern `seed`.
fn pat(seed: u64, i: usize) -> u64 {
    let mut z = (i as u64) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 32)
}

fn fill(p: *mut u64, words: usize, seed: u64) {
    for i in 0..words {
        // SAFETY: the caller's mapping holds `words` words.
        unsafe { p.add(i).write_volatile(pat(seed, i)) };
    }
}

/// The first word of `p[..words]` that differs from pattern `seed`.
fn check(p: *const u64, words: usize, seed: u64) -> Option<usize> {
    (0..words).find(|&i| {
        // SAFETY: the caller's mapping holds `words` words.
        unsafe { p.add(i).read_volatile() != pat(seed, i) }
    })
}

fn report(what: &str, bad: Option<usize>) -> bool {
    match bad {
        None => println!("{what}: ok"),
        Some(i) => println!("{what}: word {i} differs"),
    }
    bad.is_none()
}

fn map(len: usize, flags: u32) -> *mut u64 {
    // SAFETY: without MAP_FIXED the kernel picks unused addresses.
    match unsafe { mmap(0, len, PROT_READ | PROT_WRITE, flags, -1, 0) } {
        Ok(p) => p.cast(),
        Err(e) => {
            println!("mmap: {e}");
            exit_group(1);
        }
    }
}

fn pageout(p: *mut u64, len: usize) {
    // SAFETY: reclaim keeps the contents.
    if let Err(e) = unsafe { madvise(p.cast(), len, MADV_PAGEOUT) } {
        println!("madvise(MADV_PAGEOUT): {e}");
        exit_group(1);
    }
}

fn status_kb(key: &str) -> u64 {
    vmrt::io::read_file(c"/proc/self/status")
        .ok()
        .and_then(|s| value(&s, key))
        .unwrap_or(0)
}

fn meminfo_kb(key: &str) -> u64 {
    vmrt::io::read_file(c"/proc/meminfo")
        .ok()
        .and_then(|s| value(&s, key))
        .unwrap_or(0)
}

/// Wait for `pid`; whether it exited 0.
fn reap(pid: i32) -> bool {
    matches!(wait4(pid, 0), Ok((_, st)) if !st.signaled() && st.exit_status() == 0)
}

fn main() -> i32 {
    let guest = vmrt::env::arg(1).map(|a| a.as_bytes()) == Some(b"vmstat");
    let mut ok = true;

    // Private anonymous memory.
    let len = 2 * MIB;
    let anon = map(len, MAP_PRIVATE | MAP_ANONYMOUS);
    fill(anon, len / 8, 1);
    pageout(anon, len);
    if guest {
        println!(
            "VmSwap after pageout > 0: {}",
            vmrt::io::yes_no(status_kb("VmSwap") > 0)
        );
    }
    ok &= report("anonymous", check(anon, len / 8, 1));
    if guest {
        // swapoff brings every page back; swapon takes the area again.
        pageout(anon, len);
        let off = vmrt::sys::fs::swapoff(SWAP_DEV);
        println!(
            "swapoff {SWAP_DEV:?}: {}",
            if off.is_ok() { "ok" } else { "failed" }
        );
        println!("swap in use after swapoff: {} kB", meminfo_kb("SwapTotal"));
        ok &= report("anonymous after swapoff", check(anon, len / 8, 1));
        let on = vmrt::sys::fs::swapon(SWAP_DEV, 0);
        println!(
            "swapon {SWAP_DEV:?}: {}",
            if on.is_ok() { "ok" } else { "failed" }
        );
    }

    // Shared anonymous memory: a child and the parent see the same data after swap.
    let shlen = MIB;
    let shared = map(shlen, MAP_SHARED | MAP_ANONYMOUS);
    fill(shared, shlen / 8, 2);
    pageout(shared, shlen);
    match fork() {
        Ok(Fork::Child) => {
            let good = check(shared, shlen / 8, 2).is_none();
            // The child rewrites the second half; the parent must see it.
            fill(shared.wrapping_add(shlen / 16), shlen / 16, 3);
            pageout(shared, shlen);
            exit_group(if good { 0 } else { 1 });
        }
        Ok(Fork::Parent(pid)) => {
            ok &= report("shared anonymous, in a child", (!reap(pid)).then_some(0));
            let first = check(shared, shlen / 16, 2);
            let second = check(shared.wrapping_add(shlen / 16), shlen / 16, 3);
            ok &= report("shared anonymous, the child's writes", first.or(second));
        }
        Err(e) => {
            println!("fork: {e}");
            return 1;
        }
    }

    // A private mapping of a tmpfs file, half of its pages written (COW copies).
    let flen = MIB;
    let fd = match open(FILE, O_RDWR | O_CREAT | O_TRUNC, 0o600) {
        Ok(fd) => fd,
        Err(e) => {
            println!("open {FILE:?}: {e}");
            return 1;
        }
    };
    let mut page = [0u64; WORDS];
    for pg in 0..flen / PAGE_SIZE {
        for (i, w) in page.iter_mut().enumerate() {
            *w = pat(4, pg * WORDS + i);
        }
        // SAFETY: plain bytes of an array of u64.
        let bytes = unsafe { core::slice::from_raw_parts(page.as_ptr().cast::<u8>(), PAGE_SIZE) };
        if write(fd, bytes) != Ok(PAGE_SIZE) {
            println!("write: short");
            return 1;
        }
    }
    // SAFETY: a new private mapping of the file.
    let fmap: *mut u64 = match unsafe { mmap(0, flen, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) }
    {
        Ok(p) => p.cast(),
        Err(e) => {
            println!("mmap of the file: {e}");
            return 1;
        }
    };
    let _ = close(fd);
    for pg in (0..flen / PAGE_SIZE).step_by(2) {
        for i in 0..WORDS {
            let w = pg * WORDS + i;
            // SAFETY: inside the mapping.
            unsafe { fmap.add(w).write_volatile(pat(5, w)) };
        }
    }
    pageout(fmap, flen);
    let mut bad = None;
    for pg in 0..flen / PAGE_SIZE {
        let seed = if pg % 2 == 0 { 5 } else { 4 };
        for i in 0..WORDS {
            let w = pg * WORDS + i;
            // SAFETY: inside the mapping.
            if bad.is_none() && unsafe { fmap.add(w).read_volatile() } != pat(seed, w) {
                bad = Some(w);
            }
        }
    }
    ok &= report("private file mapping with copies", bad);
    let _ = vmrt::sys::fs::unlink(FILE);

    // Swapped before a fork: the children share the slots.
    let forklen = 2 * MIB;
    let sw = map(forklen, MAP_PRIVATE | MAP_ANONYMOUS);
    fill(sw, forklen / 8, 6);
    pageout(sw, forklen);
    let mut kids = [0i32; 2];
    for (k, slot) in kids.iter_mut().enumerate() {
        match fork() {
            Ok(Fork::Child) => {
                let mut good = check(sw, forklen / 8, 6).is_none();
                let half = forklen / 16;
                fill(sw.wrapping_add(k * half), half, 7 + k as u64);
                pageout(sw, forklen);
                good &= check(sw.wrapping_add(k * half), half, 7 + k as u64).is_none();
                exit_group(if good { 0 } else { 1 });
            }
            Ok(Fork::Parent(pid)) => *slot = pid,
            Err(e) => {
                println!("fork: {e}");
                return 1;
            }
        }
    }
    for (k, pid) in kids.iter().enumerate() {
        let r = (!reap(*pid)).then_some(k);
        ok &= report("a child sharing swap slots", r);
    }
    ok &= report(
        "the parent's copy after the children",
        check(sw, forklen / 8, 6),
    );

    // mremap, mprotect and munmap of swapped memory.
    let mlen = MIB;
    let m = map(mlen, MAP_PRIVATE | MAP_ANONYMOUS);
    fill(m, mlen / 8, 8);
    pageout(m, mlen);
    // SAFETY: `m` is not used after the move.
    let moved: *mut u64 = match unsafe { mremap(m.cast(), mlen, 2 * mlen, MREMAP_MAYMOVE, 0) } {
        Ok(p) => p.cast(),
        Err(e) => {
            println!("mremap: {e}");
            return 1;
        }
    };
    ok &= report("moved by mremap while swapped", check(moved, mlen / 8, 8));
    pageout(moved, mlen);
    // SAFETY: read-only while nothing writes.
    let _ = unsafe { mprotect(moved.cast(), mlen, PROT_READ) };
    ok &= report("read-only while swapped", check(moved, mlen / 8, 8));
    pageout(moved, mlen);
    // SAFETY: writable again.
    let _ = unsafe { mprotect(moved.cast(), mlen, PROT_READ | PROT_WRITE) };
    fill(moved, mlen / 8, 9);
    ok &= report("written after mprotect", check(moved, mlen / 8, 9));
    pageout(moved, 2 * mlen);
    // SAFETY: the first half is not used afterwards.
    let _ = unsafe { munmap(moved.cast(), mlen / 2) };
    let rest = moved.wrapping_add(mlen / 16);
    let bad = (0..mlen / 16).find(|&i| {
        // SAFETY: inside the remaining half.
        unsafe { rest.add(i).read_volatile() != pat(9, mlen / 16 + i) }
    });
    ok &= report("the half left by munmap", bad);

    // Everything goes: no swap may stay in use.
    // SAFETY: none of these mappings is used afterwards.
    unsafe {
        let _ = munmap(anon.cast(), len);
        let _ = munmap(shared.cast(), shlen);
        let _ = munmap(fmap.cast(), flen);
        let _ = munmap(sw.cast(), forklen);
        let _ = munmap(moved.cast(), 2 * mlen);
    }
    if guest {
        let used = meminfo_kb("SwapTotal").saturating_sub(meminfo_kb("SwapFree"));
        println!("swap in use after unmapping everything: {used} kB");
    }
    println!("all checks: {}", if ok { "passed" } else { "FAILED" });
    if ok {
        0
    } else {
        1
    }
}
