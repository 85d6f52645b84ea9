//! A per-CPU TLB with the caching behaviour software must respect (SDM Vol. 3A, 4.10):
//! a walk fills it; later page-table changes are invisible until INVLPG, a CR3 write
//! (non-global entries, unless PCID no-flush), a CR4 write touching paging bits, INVPCID, or
//! a #PF on that address. Entries cache the combined rights of all levels, so a stale entry
//! can give a stale translation or a spurious fault, as on hardware.
//!
//! Organisation: direct-mapped on the 4 KiB virtual page number. A 2 MiB or 1 GiB page
//! fills one entry per 4 KiB page touched; INVLPG therefore removes every entry that came
//! from the large page containing the address, as hardware removes the large entry.
//!
//! Non-global flushes (a CR3 write, INVPCID of a context) are O(1): every entry records the
//! generation at which it was filled, and a flush only records the generation from which
//! entries count (for every PCID, or for one). An entry filled before that generation is
//! invalid, exactly as if it had been cleared.
//!
//! **Fast entries** (the emulator's own cache, not part of the model): next to each slot,
//! one fast entry per access kind (read, write, fetch) holds the host offset of the frame
//! and the key under which the modelled entry was found to permit that access: the
//! privilege class and paging-control bits ([`Tlb::fast_key`]'s `ctx`) and an epoch that
//! every non-global or full flush advances. A fast entry is installed only after the
//! modelled entry permitted the access (a write only when its D bit is set) and is cleared
//! with its slot, so a fast hit is by construction what a modelled hit would have given; it
//! counts as a hit. The modelled TLB stays the single source of truth: `--tlb off` and
//! `--tlb check` never install fast entries. `VMSCOPE_TLB_SHADOW=1` re-checks every fast
//! hit against the modelled TLB and panics on a difference (for CI).

use crate::addr::{GuestPhysAddr, GuestVirtAddr};
use crate::mmu::Translation;

/// Default number of entries (a power of two).
pub const DEFAULT_TLB_ENTRIES: usize = 4096;

/// Region buckets of the large-page list (see `Tlb::large`).
const LARGE_BUCKETS: usize = 1024;

/// The bucket of a 4 KiB page number for the large-page list: its 1 GiB region (every
/// page a 2 MiB or 1 GiB entry covers lies in the entry's region), folded.
#[inline(always)]
fn large_bucket(vpn: u64) -> u16 {
    let r = vpn >> 18;
    ((r ^ (r >> 10) ^ (r >> 20)) as usize & (LARGE_BUCKETS - 1)) as u16
}

/// Bits of a fast key below the epoch (see [`Tlb::fast_key`]).
const FAST_EPOCH_SHIFT: u32 = 45;
/// Epochs before they wrap (then every fast entry is cleared).
const FAST_EPOCHS: u64 = 1 << (64 - FAST_EPOCH_SHIFT);

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
    /// The TLB's generation when the entry was filled (see [`Tlb::valid`]).
    gen: u64,
    t: Option<Translation>,
}

/// The fast entries of one slot: per access kind (index [`crate::mmu::AccessKind`] as
/// usize), the key that must match; the frame they all translate to.
#[derive(Debug, Clone, Copy, Default)]
struct Fast {
    /// vpn + 1 of the slot's modelled entry (0 = no fast entries).
    tag: u64,
    key: [u64; 3],
    /// Guest-physical address of the 4 KiB frame.
    frame: u64,
    /// Offset of the frame in the host mapping of guest RAM.
    host: usize,
}

/// A fast hit: the guest-physical and the host address of the byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastHit {
    pub pa: GuestPhysAddr,
    pub host: usize,
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
    /// Fast entries, one per slot of `entries`.
    fast: Vec<Fast>,
    mask: u64,
    /// Slots holding entries from 2 MiB / 1 GiB pages, so INVLPG and #PF check only those
    /// instead of scanning the whole TLB, each with the region bucket of the entry it was
    /// pushed for ([`large_bucket`]). May hold slots since overwritten or flushed (checked
    /// when used, and dropped then). Invariant: every slot whose entry holds a large page
    /// has a pair with that entry's bucket.
    large: Vec<(u32, u16)>,
    /// Per region bucket, the pairs of `large` with that bucket: a flush of a page whose
    /// bucket has none cannot meet a large entry covering it and skips the scan.
    large_count: Vec<u32>,
    /// Generation counter: advanced by every non-global flush; fills record it.
    clock: u64,
    /// Non-global entries filled before this generation are invalid (any PCID).
    ng_flushed: u64,
    /// Per PCID: non-global entries of that PCID filled before this generation are invalid.
    pcid_flushed: Vec<u64>,
    /// The epoch of fast entries (bits from [`FAST_EPOCH_SHIFT`] of their key): advanced
    /// by every flush that is not of one page.
    fast_epoch: u64,
    /// Advanced by every change to any fast entry (a fill, an install, an invalidation, a
    /// flush): while it is unchanged, a fast lookup that hit gives the same hit again for
    /// the same page and key (see [`Tlb::fast_gen`]).
    fast_gen: u64,
    /// Re-check every fast hit against the modelled TLB (`VMSCOPE_TLB_SHADOW=1`).
    pub shadow: bool,
    pub mode: TlbMode,
    pub stats: TlbStats,
}

impl Tlb {
    pub fn new(size: usize, mode: TlbMode) -> Self {
        let size = size.max(1).next_power_of_two();
        Tlb {
            entries: vec![Entry::default(); size],
            fast: vec![Fast::default(); size],
            mask: size as u64 - 1,
            large: Vec::new(),
            large_count: vec![0; LARGE_BUCKETS],
            clock: 0,
            ng_flushed: 0,
            pcid_flushed: vec![0; 4096],
            fast_epoch: 1,
            fast_gen: 0,
            shadow: std::env::var_os("VMSCOPE_TLB_SHADOW").is_some_and(|v| v == "1"),
            mode,
            stats: TlbStats::default(),
        }
    }

    /// Whether `e` (tag and PCID aside) still holds a translation: not flushed since it was
    /// filled.
    #[inline(always)]
    fn valid(&self, e: &Entry) -> Option<Translation> {
        let t = e.t?;
        if t.global
            || (e.gen >= self.ng_flushed && e.gen >= self.pcid_flushed[e.pcid as usize & 0xfff])
        {
            Some(t)
        } else {
            None
        }
    }

    #[inline]
    pub fn lookup(&mut self, va: GuestVirtAddr, pcid: u16) -> Option<Translation> {
        if self.mode == TlbMode::Off {
            return None;
        }
        match self.probe(va, pcid) {
            Some(t) => {
                self.stats.hits += 1;
                Some(t)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// What [`Self::lookup`] would return, without counting.
    #[inline]
    pub fn probe(&self, va: GuestVirtAddr, pcid: u16) -> Option<Translation> {
        let vpn = va.vpn();
        let e = &self.entries[(vpn & self.mask) as usize];
        if e.tag == vpn + 1 {
            if let Some(t) = self.valid(e) {
                if t.global || e.pcid == pcid {
                    return Some(t);
                }
            }
        }
        None
    }

    pub fn fill(&mut self, va: GuestVirtAddr, pcid: u16, t: Translation) {
        if self.mode == TlbMode::Off {
            return;
        }
        let vpn = va.vpn();
        let i = (vpn & self.mask) as usize;
        if t.page_shift > 12 {
            let b = large_bucket(vpn);
            let old = &self.entries[i];
            let same = old.t.is_some_and(|o| o.page_shift > 12) && large_bucket(old.tag - 1) == b;
            if !same {
                self.large.push((i as u32, b));
                self.large_count[b as usize] += 1;
                if self.large.len() > 2 * self.entries.len() + 64 {
                    self.large_compact();
                }
            }
        }
        self.entries[i] = Entry {
            tag: vpn + 1,
            pcid,
            gen: self.clock,
            t: Some(t),
        };
        self.fast[i].tag = 0;
        self.fast_gen += 1;
    }

    // ---- fast entries ---------------------------------------------------------------------

    /// The key a fast entry must hold to serve an access made with the paging context
    /// `ctx` (the privilege class and paging-control bits; see `Cpu::fast_ctx`).
    #[inline(always)]
    pub fn fast_key(&self, ctx: u64) -> u64 {
        ctx | (self.fast_epoch << FAST_EPOCH_SHIFT)
    }

    /// The generation of the fast entries: every change to a fast entry (its tag, keys,
    /// frame or host offset, the epoch) advances it. So if [`Self::fast_lookup`] hit for a
    /// page and key, it hits again with the same result for as long as this is unchanged
    /// (the blocks of `Cpu::run_block` count such a hit with [`Self::count_fast_hit`]
    /// instead of looking it up again).
    #[inline(always)]
    pub fn fast_gen(&self) -> u64 {
        self.fast_gen
    }

    /// Count a fast hit without the lookup: only for a page and key whose lookup hit while
    /// [`Self::fast_gen`] had its current value.
    #[inline(always)]
    pub fn count_fast_hit(&mut self) {
        self.stats.hits += 1;
    }

    /// Count `n` fast hits without the lookups (a block's fetches, see
    /// [`Self::count_fast_hit`]).
    #[inline(always)]
    pub fn count_fast_hits(&mut self, n: u64) {
        self.stats.hits += n;
    }

    /// Take back fast hits counted by [`Self::count_fast_hits`] for fetches not made.
    #[inline(always)]
    pub fn uncount_fast_hits(&mut self, n: u64) {
        self.stats.hits -= n;
    }

    /// A fast hit for an access of kind `kind` (as usize) at `va` under `key`: counted as
    /// a TLB hit.
    #[inline(always)]
    pub fn fast_lookup(&mut self, va: u64, kind: usize, key: u64) -> Option<FastHit> {
        let vpn = va >> 12;
        let f = &self.fast[(vpn & self.mask) as usize];
        if f.tag == vpn + 1 && f.key[kind] == key {
            let off = va & 0xfff;
            let hit = FastHit {
                pa: GuestPhysAddr(f.frame | off),
                host: f.host + off as usize,
            };
            self.stats.hits += 1;
            return Some(hit);
        }
        None
    }

    /// What [`Self::fast_lookup`] would give, without counting a hit (a bulk string
    /// operation looks its pages up first and counts one hit per element it then makes).
    #[inline(always)]
    pub fn fast_peek(&self, va: u64, kind: usize, key: u64) -> Option<FastHit> {
        let vpn = va >> 12;
        let f = &self.fast[(vpn & self.mask) as usize];
        if f.tag == vpn + 1 && f.key[kind] == key {
            let off = va & 0xfff;
            return Some(FastHit {
                pa: GuestPhysAddr(f.frame | off),
                host: f.host + off as usize,
            });
        }
        None
    }

    /// After the modelled entry for `va` permitted an access of kind `kind` (a write: with
    /// D set) under `key`: install the fast entry. `host` is the host offset of the 4 KiB
    /// frame `frame`, which must be RAM.
    pub fn fast_install(&mut self, va: u64, kind: usize, key: u64, frame: u64, host: usize) {
        if self.mode != TlbMode::On {
            return;
        }
        let vpn = GuestVirtAddr(va).vpn();
        let i = (vpn & self.mask) as usize;
        if self.entries[i].tag != vpn + 1 {
            return;
        }
        self.fast_gen += 1;
        let f = &mut self.fast[i];
        if f.tag != vpn + 1 || f.frame != frame || f.host != host {
            *f = Fast {
                tag: vpn + 1,
                key: [0; 3],
                frame,
                host,
            };
        }
        f.key[kind] = key;
    }

    /// Point every installed fast entry at another frame (a test of the shadow check).
    #[cfg(test)]
    pub(crate) fn corrupt_fast_entries(&mut self) {
        self.fast_gen += 1;
        for f in self.fast.iter_mut().filter(|f| f.tag != 0) {
            f.frame ^= 0x1000;
            f.host ^= 0x1000;
        }
    }

    /// Invalidate every fast entry at once (O(1)), the modelled entries staying (a change
    /// of the protection-key rights the fast entries were installed under).
    pub fn drop_fast_entries(&mut self) {
        self.fast_flush();
    }

    /// Invalidate every fast entry at once (O(1)).
    fn fast_flush(&mut self) {
        self.fast_gen += 1;
        self.fast_epoch += 1;
        if self.fast_epoch == FAST_EPOCHS {
            self.fast_epoch = 1;
            self.fast.iter_mut().for_each(|f| f.tag = 0);
        }
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
        self.fast[i].tag = 0;
        self.fast_gen += 1;
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
        if self.large_count[large_bucket(vpn) as usize] == 0 {
            // No large entry can cover this page (see `large`).
            return;
        }
        self.large_scan(Some(vpn));
    }

    /// Go through `large`: drop the pairs of slots that no longer hold a large entry of
    /// their bucket (emptying the slots of entries flushed since, as the model has them
    /// empty) and, with `Some(vpn)`, invalidate the large entries that cover `vpn`.
    fn large_scan(&mut self, vpn: Option<u64>) {
        let mut large = std::mem::take(&mut self.large);
        large.retain(|&(i, b)| {
            let e = self.entries[i as usize];
            let keep = match self.valid(&e) {
                Some(t) if t.page_shift > 12 && large_bucket(e.tag - 1) == b => {
                    let span = (t.page_shift - 12) as u64;
                    if vpn.is_some_and(|vpn| (e.tag - 1) >> span == vpn >> span) {
                        self.invalidate(i as usize);
                        false
                    } else {
                        true
                    }
                }
                // A large entry of another bucket (it has its own pair) or a small one.
                Some(_) => false,
                None => {
                    // Flushed since: the slot is empty in the model.
                    self.invalidate(i as usize);
                    false
                }
            };
            if !keep {
                self.large_count[b as usize] -= 1;
            }
            keep
        });
        self.large = large;
    }

    /// Drop stale pairs from `large` (it grows when no flush scans it).
    #[cold]
    fn large_compact(&mut self) {
        self.large_scan(None);
    }

    /// Flush all non-global entries (of `pcid` only, if given), as a CR3 load does: O(1),
    /// by generation.
    pub fn flush_non_global(&mut self, pcid: Option<u16>, cause: FlushCause) {
        self.count(cause);
        self.clock += 1;
        match pcid {
            Some(p) => self.pcid_flushed[p as usize & 0xfff] = self.clock,
            None => self.ng_flushed = self.clock,
        }
        self.fast_flush();
    }

    /// Flush everything, global entries included.
    pub fn flush_all(&mut self, cause: FlushCause) {
        self.count(cause);
        self.entries.iter_mut().for_each(|e| *e = Entry::default());
        self.fast.iter_mut().for_each(|f| f.tag = 0);
        self.large.clear();
        self.large_count.iter_mut().for_each(|c| *c = 0);
        self.fast_flush();
    }

    /// Physical address for `va` if cached (used by debuggers; does not count).
    pub fn peek(&self, va: GuestVirtAddr) -> Option<GuestPhysAddr> {
        let vpn = va.vpn();
        let e = &self.entries[(vpn & self.mask) as usize];
        (e.tag == vpn + 1)
            .then(|| self.valid(e).map(|t| t.phys(va)))
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
            pkey: 0,
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
