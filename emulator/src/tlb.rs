//! A per-CPU TLB with the caching behaviour software must respect (SDM Vol. 3A, 4.10):
//! a walk fills it; later page-table changes are invisible until INVLPG, a CR3 write
//! (non-global entries, unless PCID no-flush), a CR4 write touching paging bits, INVPCID, or
//! a #PF on that address. Entries cache the combined rights of all levels, so a stale entry
//! can give a stale translation or a spurious fault, as on hardware.
//!
//! Organisation: direct-mapped on the 4 KiB virtual page number. A 2 MiB or 1 GiB page
//! fills one entry per 4 KiB page touched; INVLPG therefore removes every entry that came
//! from the large page containing the address, as hardware removes the large entry.

use crate::addr::{GuestPhysAddr, GuestVirtAddr};
use crate::mmu::Translation;

/// Default number of entries (a power of two).
pub const DEFAULT_TLB_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlbMode {
    /// Cache translations (the hardware behaviour).
    On,
    /// Walk the page tables on every access.
    Off,
    /// Cache, but on every hit compare with a fresh walk and report stale uses.
    Check,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// vpn + 1 (0 = invalid).
    tag: u64,
    pcid: u16,
    t: Option<Translation>,
}

/// Why entries were flushed; counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushCause {
    Invlpg,
    Cr3,
    Cr4,
    Invpcid,
    PageFault,
    Other,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlbStats {
    pub hits: u64,
    pub misses: u64,
    pub flush_invlpg: u64,
    pub flush_cr3: u64,
    pub flush_cr4: u64,
    pub flush_invpcid: u64,
    pub flush_pf: u64,
    pub flush_other: u64,
    /// `--tlb check`: translations used from the TLB that the tables no longer allow.
    pub stale_uses: u64,
    /// `--tlb check`: #PFs raised from cached rights that the tables would now allow.
    pub spurious_faults: u64,
}

pub struct Tlb {
    entries: Vec<Entry>,
    mask: u64,
    /// Slots holding entries from 2 MiB / 1 GiB pages, so INVLPG and #PF check only those
    /// instead of scanning the whole TLB. May hold slots since overwritten (checked when
    /// used, and dropped at the next flush).
    large: Vec<u32>,
    pub mode: TlbMode,
    pub stats: TlbStats,
}

impl Tlb {
    pub fn new(size: usize, mode: TlbMode) -> Self {
        let size = size.max(1).next_power_of_two();
        Tlb {
            entries: vec![Entry::default(); size],
            mask: size as u64 - 1,
            large: Vec::new(),
            mode,
            stats: TlbStats::default(),
        }
    }

    #[inline]
    pub fn lookup(&mut self, va: GuestVirtAddr, pcid: u16) -> Option<Translation> {
        if self.mode == TlbMode::Off {
            return None;
        }
        let vpn = va.vpn();
        let e = &self.entries[(vpn & self.mask) as usize];
        if e.tag == vpn + 1 {
            if let Some(t) = e.t {
                if t.global || e.pcid == pcid {
                    self.stats.hits += 1;
                    return Some(t);
                }
            }
        }
        self.stats.misses += 1;
        None
    }

    pub fn fill(&mut self, va: GuestVirtAddr, pcid: u16, t: Translation) {
        if self.mode == TlbMode::Off {
            return;
        }
        let vpn = va.vpn();
        let i = (vpn & self.mask) as usize;
        let was_large = self.entries[i].t.is_some_and(|o| o.page_shift > 12);
        if t.page_shift > 12 && !was_large {
            self.large.push(i as u32);
        }
        self.entries[i] = Entry {
            tag: vpn + 1,
            pcid,
            t: Some(t),
        };
    }

    fn count(&mut self, cause: FlushCause) {
        let s = &mut self.stats;
        match cause {
            FlushCause::Invlpg => s.flush_invlpg += 1,
            FlushCause::Cr3 => s.flush_cr3 += 1,
            FlushCause::Cr4 => s.flush_cr4 += 1,
            FlushCause::Invpcid => s.flush_invpcid += 1,
            FlushCause::PageFault => s.flush_pf += 1,
            FlushCause::Other => s.flush_other += 1,
        }
    }

    fn invalidate(&mut self, i: usize) {
        self.entries[i] = Entry::default();
    }

    /// Remove the translations of the page containing `va` (any PCID, global too), as
    /// INVLPG and a #PF do.
    pub fn flush_page(&mut self, va: GuestVirtAddr, cause: FlushCause) {
        self.count(cause);
        let vpn = va.vpn();
        let i = (vpn & self.mask) as usize;
        if self.entries[i].tag == vpn + 1 {
            self.invalidate(i);
        }
        let entries = &mut self.entries;
        self.large.retain(|&i| {
            let e = &mut entries[i as usize];
            match e.t {
                Some(t) if t.page_shift > 12 => {
                    let span = (t.page_shift - 12) as u64;
                    if (e.tag - 1) >> span == vpn >> span {
                        *e = Entry::default();
                        false
                    } else {
                        true
                    }
                }
                _ => false,
            }
        });
    }

    /// Flush all non-global entries (of `pcid` only, if given), as a CR3 load does.
    pub fn flush_non_global(&mut self, pcid: Option<u16>, cause: FlushCause) {
        self.count(cause);
        for i in 0..self.entries.len() {
            let e = self.entries[i];
            if let Some(t) = e.t {
                if !t.global && pcid.is_none_or(|p| p == e.pcid) {
                    self.invalidate(i);
                }
            }
        }
        let entries = &self.entries;
        self.large
            .retain(|&i| entries[i as usize].t.is_some_and(|t| t.page_shift > 12));
    }

    /// Flush everything, global entries included.
    pub fn flush_all(&mut self, cause: FlushCause) {
        self.count(cause);
        self.entries.iter_mut().for_each(|e| *e = Entry::default());
        self.large.clear();
    }

    /// Physical address for `va` if cached (used by debuggers; does not count).
    pub fn peek(&self, va: GuestVirtAddr) -> Option<GuestPhysAddr> {
        let vpn = va.vpn();
        let e = &self.entries[(vpn & self.mask) as usize];
        (e.tag == vpn + 1)
            .then(|| e.t.map(|t| t.phys(va)))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(frame: u64, shift: u8, global: bool) -> Translation {
        Translation {
            frame: GuestPhysAddr(frame),
            page_shift: shift,
            writable: true,
            user: false,
            nx: false,
            global,
            dirty: false,
        }
    }

    #[test]
    fn stale_until_invlpg() {
        let mut tlb = Tlb::new(64, TlbMode::On);
        let va = GuestVirtAddr(0x1234_5000);
        assert!(tlb.lookup(va, 0).is_none());
        tlb.fill(va, 0, t(0x9000, 12, false));
        assert_eq!(tlb.lookup(va, 0).unwrap().frame, GuestPhysAddr(0x9000));
        tlb.flush_page(va, FlushCause::Invlpg);
        assert!(tlb.lookup(va, 0).is_none());
    }

    #[test]
    fn global_survives_cr3_and_large_pages_flush_together() {
        let mut tlb = Tlb::new(64, TlbMode::On);
        tlb.fill(GuestVirtAddr(0x20_0000), 0, t(0x40_0000, 21, true));
        tlb.fill(GuestVirtAddr(0x20_1000), 0, t(0x40_1000, 21, true));
        tlb.flush_non_global(None, FlushCause::Cr3);
        assert!(tlb.lookup(GuestVirtAddr(0x20_1000), 0).is_some());
        tlb.flush_page(GuestVirtAddr(0x3f_f000), FlushCause::Invlpg);
        assert!(tlb.lookup(GuestVirtAddr(0x20_0000), 0).is_none());
        assert!(tlb.lookup(GuestVirtAddr(0x20_1000), 0).is_none());
    }
}
