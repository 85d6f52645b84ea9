//! TLB self-test: what software may and may not rely on (SDM Vol. 3A 4.10.4). After a
//! page-table entry changes, INVLPG or a CR3 reload must make the new mapping visible; an
//! access *before* that may use the stale translation. The stale read is deliberate here
//! (a "missing INVLPG"), so that `vmscope --tlb check` can be seen to catch it: the line
//! `tlb stale-read at rip=...` names the instruction the checker must report. Whether the
//! stale read saw the old or the new page is implementation-specific (QEMU, vmscope with
//! `--tlb off`, and hardware may all differ), so the stale read happens only with
//! `selftest=tlb-stale`; `selftest=tlb` is a correct kernel path with architecturally
//! defined results only.

use core::arch::asm;
use core::ptr::{read_volatile, write_volatile};

use super::testpages::{flush_tlb, pml4_entry, pte, Pages};
use crate::kprintln;

/// PML4 slot 6: one test page whose PTE is switched between two frames.
const SLOT6_BASE: u64 = 0x300_0000_0000;
const TEST_VA: u64 = SLOT6_BASE;
/// What each frame holds in its first word.
const OLD_VALUE: u64 = 0x01d0_01d0;
const NEW_VALUE: u64 = 0x0e30_0e30;

/// PDPT, PD, PT and the two frames.
static PAGES: Pages<5> = Pages::new();
const PDPT: usize = 0;
const PD: usize = 1;
const PT: usize = 2;
const OLD_FRAME: usize = 3;
const NEW_FRAME: usize = 4;

/// Point the test PTE at `frame` without flushing anything.
fn set_pte(frame: usize) {
    // SAFETY: the PT belongs to this test.
    unsafe { write_volatile(PAGES.entry(PT, 0), PAGES.phys(frame) | pte::P | pte::W) };
}

fn read_test_page() -> u64 {
    // SAFETY: TEST_VA is mapped by `map` while the test runs.
    unsafe { read_volatile(TEST_VA as *const u64) }
}

fn map() {
    let rw = pte::P | pte::W;
    // SAFETY: single CPU; slot 6 and these tables belong to this test.
    unsafe {
        write_volatile(pml4_entry(SLOT6_BASE >> 39), PAGES.phys(PDPT) | rw);
        write_volatile(PAGES.entry(PDPT, 0), PAGES.phys(PD) | rw);
        write_volatile(PAGES.entry(PD, 0), PAGES.phys(PT) | rw);
        write_volatile(PAGES.entry(OLD_FRAME, 0), OLD_VALUE);
        write_volatile(PAGES.entry(NEW_FRAME, 0), NEW_VALUE);
    }
    set_pte(OLD_FRAME);
    flush_tlb();
}

fn unmap() {
    // SAFETY: as in `map`.
    unsafe { write_volatile(pml4_entry(SLOT6_BASE >> 39), 0) };
    flush_tlb();
}

/// Remap without INVLPG and read through the (possibly) stale translation, at a known
/// instruction. Returns (value read, RIP of the read).
fn stale_read() -> (u64, u64) {
    let _ = read_test_page(); // fill the TLB with the old translation
    set_pte(NEW_FRAME); // ... and "forget" the INVLPG
    let (value, rip): (u64, u64);
    // SAFETY: reads the mapped test page; the label's address is taken with LEA.
    unsafe {
        asm!(
            "lea {rip}, [rip + 2f]",
            "2:",
            "mov {v}, [{va}]",
            va = in(reg) TEST_VA,
            v = out(reg) value,
            rip = out(reg) rip,
            options(nostack, readonly, preserves_flags),
        );
    }
    (value, rip)
}

fn check(name: &str, ok: bool) -> bool {
    kprintln!("tlb {name}: {}", if ok { "ok" } else { "FAIL" });
    ok
}

/// Run the cases; `show_stale` also prints the implementation-specific stale read.
/// Returns (passed, total).
pub fn run(show_stale: bool) -> (u32, u32) {
    map();
    let mut results = [false; 3];
    results[0] = check("first-read", read_test_page() == OLD_VALUE);

    if show_stale {
        let (value, rip) = stale_read();
        let which = match value {
            OLD_VALUE => "old",
            NEW_VALUE => "new",
            _ => "garbage",
        };
        kprintln!("tlb stale-read at rip={rip:#x}: {which} mapping");
    } else {
        set_pte(NEW_FRAME);
    }
    // SAFETY: INVLPG only drops cached translations.
    unsafe { asm!("invlpg [{}]", in(reg) TEST_VA, options(nostack, preserves_flags)) };
    results[1] = check("invlpg-shows-new-mapping", read_test_page() == NEW_VALUE);

    set_pte(OLD_FRAME);
    flush_tlb();
    results[2] = check(
        "cr3-reload-shows-new-mapping",
        read_test_page() == OLD_VALUE,
    );
    unmap();
    let pass = results.iter().filter(|&&ok| ok).count() as u32;
    (pass, results.len() as u32)
}
