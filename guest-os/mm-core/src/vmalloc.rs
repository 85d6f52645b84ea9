//! The vmalloc address-space allocator: Linux's `vmap_area` bookkeeping (`mm/vmalloc.c`) as a
//! plain data structure.
//!
//! [`VmapAreas`] hands out page-granular ranges of a virtual window `[start, end)` that the
//! kernel chooses. Linux x86-64 uses `VMALLOC_START` = 0xffffc90000000000 and 32 TiB
//! ([`LINUX_VMALLOC_START`], [`LINUX_VMALLOC_SIZE`]); the vmscope kernel passes a smaller
//! window of its own. This module only does the bookkeeping: page tables, backing pages and
//! TLB flushes are the caller's business.
//!
//! As in Linux:
//! - allocation is first fit from the bottom of the window: the area starts at the lowest
//!   `align`-aligned address where it fits (`alloc_vmap_area`);
//! - every area is followed by one unmapped guard page (areas without `VM_NO_GUARD`), so a
//!   linear overrun faults instead of running into the next area. The guard page is part of
//!   the reserved range: no other area overlaps it, and [`VmapAreas::find`] reports it;
//! - `/proc/vmallocinfo` lines ([`Area`]'s `Display`, [`VmapAreas::write_vmallocinfo`]) and
//!   the `/proc/meminfo` counters ([`VmapAreas::used_bytes`], [`VmapAreas::total_bytes`])
//!   count the way `s_show()` and `meminfo_proc_show()` do.
//!
//! Differences from Linux:
//! - **Capacity limit**: at most `N` areas exist at once (a const generic), kept in an array
//!   sorted by address, because this crate allocates nothing. Linux keeps areas in an
//!   augmented red-black tree without limit. When the table is full, [`VmapAreas::alloc`]
//!   fails with [`VmallocError::TableFull`] even if address space is left. Allocation and
//!   free are O(N).
//! - Freed ranges are reusable immediately. Linux frees lazily (`purge_vmap_area_lazy`) to
//!   batch TLB flushes; here the caller must flush the freed range before it is handed out
//!   again, that is before the next [`VmapAreas::alloc`].
//! - The caller is a `&'static str` tag (a function name), where Linux stores a return
//!   address and prints it with `%pS`.

use core::fmt;

use crate::addr::{PhysAddr, VirtAddr, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE};

/// Linux x86-64's `VMALLOC_START` (4-level paging).
pub const LINUX_VMALLOC_START: u64 = 0xffff_c900_0000_0000;
/// The size of Linux x86-64's vmalloc window: 32 TiB (`VMALLOC_SIZE_TB`).
pub const LINUX_VMALLOC_SIZE: u64 = 32 << 40;

/// The size of the guard gap after every area.
pub const GUARD_SIZE: u64 = PAGE_SIZE;

/// What an area is used for: the `VM_*` flag that `/proc/vmallocinfo` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AreaKind {
    /// `vmalloc()`: pages allocated for the area and owned by it (`VM_ALLOC`).
    Vmalloc,
    /// `vmalloc_user()`: as [`AreaKind::Vmalloc`], zeroed and mappable to user space
    /// (`VM_ALLOC | VM_USERMAP`).
    VmallocUser,
    /// `vmap()`: existing pages mapped contiguously; the area does not own them (`VM_MAP`).
    Vmap,
    /// `ioremap()`: device memory at `phys` (`VM_IOREMAP`).
    Ioremap {
        /// The physical address mapped at the area's start.
        phys: PhysAddr,
    },
}

impl AreaKind {
    /// Whether the area owns its backing pages (they count in `VmallocUsed` and `pages=`).
    pub const fn owns_pages(self) -> bool {
        matches!(self, AreaKind::Vmalloc | AreaKind::VmallocUser)
    }

    /// The physical address of an ioremap area.
    pub const fn phys(self) -> Option<PhysAddr> {
        match self {
            AreaKind::Ioremap { phys } => Some(phys),
            _ => None,
        }
    }

    /// The flag words `s_show()` prints, in its order.
    fn flag_names(self) -> &'static str {
        match self {
            AreaKind::Vmalloc => " vmalloc",
            AreaKind::VmallocUser => " vmalloc user",
            AreaKind::Vmap => " vmap",
            AreaKind::Ioremap { .. } => " ioremap",
        }
    }
}

/// Why an allocation or a free failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmallocError {
    /// `alloc` with size 0.
    ZeroSize,
    /// `alloc` with an alignment that is not a power of two.
    BadAlign,
    /// The area and its guard page would not fit in the whole (empty) window.
    TooLarge,
    /// No free range of the window can hold the area, its guard page and the alignment.
    OutOfSpace,
    /// All `N` area slots are in use.
    TableFull,
    /// `free` of an address that is not the start of an area.
    NotFound,
}

impl fmt::Display for VmallocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VmallocError::ZeroSize => "zero-sized allocation",
            VmallocError::BadAlign => "alignment is not a power of two",
            VmallocError::TooLarge => "allocation larger than the vmalloc window",
            VmallocError::OutOfSpace => "vmalloc address space exhausted",
            VmallocError::TableFull => "vmap area table full",
            VmallocError::NotFound => "no vmap area starts at this address",
        })
    }
}

/// One busy range: the usable pages, followed by a guard page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Area {
    start: VirtAddr,
    /// Usable size in pages, guard page excluded.
    size_pages: u64,
    kind: AreaKind,
    caller: &'static str,
    /// Pages the area owns (Linux's `vm_struct.nr_pages`): `size_pages` for vmalloc areas,
    /// 0 for vmap and ioremap.
    nr_pages: u64,
}

impl Area {
    const EMPTY: Area = Area {
        start: VirtAddr::new(0),
        size_pages: 0,
        kind: AreaKind::Vmap,
        caller: "",
        nr_pages: 0,
    };

    /// The first usable address (what `alloc` returned).
    pub const fn start(&self) -> VirtAddr {
        self.start
    }

    /// Usable size in bytes, guard page excluded (`get_vm_area_size()`).
    pub const fn size(&self) -> u64 {
        self.size_pages << PAGE_SHIFT
    }

    /// Usable size in pages, guard page excluded.
    pub const fn size_pages(&self) -> u64 {
        self.size_pages
    }

    /// The end of the usable range, which is the start of the guard page.
    pub const fn end(&self) -> VirtAddr {
        VirtAddr::new(self.start.as_u64() + self.size())
    }

    /// Reserved size in bytes, guard page included (Linux's `vm_struct.size`, which
    /// `/proc/vmallocinfo` prints).
    pub const fn reserved_size(&self) -> u64 {
        self.size() + GUARD_SIZE
    }

    /// The end of the reserved range (after the guard page).
    pub const fn reserved_end(&self) -> VirtAddr {
        VirtAddr::new(self.start.as_u64() + self.reserved_size())
    }

    pub const fn kind(&self) -> AreaKind {
        self.kind
    }

    /// The physical address of an ioremap area.
    pub const fn phys(&self) -> Option<PhysAddr> {
        self.kind.phys()
    }

    /// Who allocated the area.
    pub const fn caller(&self) -> &'static str {
        self.caller
    }

    /// Pages the area owns (`pages=` in `/proc/vmallocinfo`, counted in `VmallocUsed`).
    pub const fn nr_pages(&self) -> u64 {
        self.nr_pages
    }

    /// Whether `addr` lies in the reserved range, guard page included.
    pub const fn contains(&self, addr: VirtAddr) -> bool {
        addr.as_u64().wrapping_sub(self.start.as_u64()) < self.reserved_size()
    }

    /// Whether `addr` lies in the guard page: an access there overran the area.
    pub const fn in_guard(&self, addr: VirtAddr) -> bool {
        addr.as_u64().wrapping_sub(self.end().as_u64()) < GUARD_SIZE
    }
}

impl fmt::Display for Area {
    /// The area's `/proc/vmallocinfo` line without the newline, as Linux's `s_show()`:
    /// `"0x%px-0x%px %7ld %pS pages=%d phys=%pa ioremap"` (range and size include the
    /// guard page; `pages=` only when the area owns pages, `phys=` only for ioremap with a
    /// non-zero address).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "0x{:016x}-0x{:016x} {:7}",
            self.start.as_u64(),
            self.reserved_end().as_u64(),
            self.reserved_size()
        )?;
        if !self.caller.is_empty() {
            write!(f, " {}", self.caller)?;
        }
        if self.nr_pages != 0 {
            write!(f, " pages={}", self.nr_pages)?;
        }
        if let Some(phys) = self.phys() {
            if !phys.is_null() {
                // `%pa`: 0x and every hex digit of a 64-bit phys_addr_t.
                write!(f, " phys=0x{:016x}", phys.as_u64())?;
            }
        }
        f.write_str(self.kind.flag_names())
    }
}

/// The vmalloc window and its busy areas, at most `N` of them.
#[derive(Clone, Debug)]
pub struct VmapAreas<const N: usize> {
    start: u64,
    end: u64,
    /// `areas[..len]`, sorted by start address; reserved ranges do not overlap.
    areas: [Area; N],
    len: usize,
}

fn align_up(addr: u64, align: u64) -> Option<u64> {
    Some(addr.checked_add(align - 1)? & !(align - 1))
}

impl<const N: usize> VmapAreas<N> {
    /// An empty allocator over `[start, end)`.
    ///
    /// # Panics
    /// If `start` or `end` is not page-aligned or the window holds fewer than two pages (one
    /// usable, one guard): the window is a build-time constant of the kernel.
    pub const fn new(start: VirtAddr, end: VirtAddr) -> Self {
        let (s, e) = (start.as_u64(), end.as_u64());
        assert!(
            s & PAGE_MASK == 0 && e & PAGE_MASK == 0,
            "vmalloc window not page-aligned"
        );
        assert!(s < e && e - s >= 2 * PAGE_SIZE, "vmalloc window too small");
        VmapAreas {
            start: s,
            end: e,
            areas: [Area::EMPTY; N],
            len: 0,
        }
    }

    /// The first address of the window (`VMALLOC_START`).
    pub const fn window_start(&self) -> VirtAddr {
        VirtAddr::new(self.start)
    }

    /// The end of the window, exclusive (`VMALLOC_END`; Linux's is inclusive).
    pub const fn window_end(&self) -> VirtAddr {
        VirtAddr::new(self.end)
    }

    /// The number of busy areas.
    pub const fn len(&self) -> usize {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most areas that can exist at once (`N`).
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Reserve `size` bytes (rounded up to whole pages) plus a guard page, starting at the
    /// lowest address of the window that is a multiple of `align`.
    ///
    /// `align` is a power of two in bytes; values below [`PAGE_SIZE`] (0 and 1 included)
    /// mean page alignment. `caller` names the allocator for `/proc/vmallocinfo`.
    pub fn alloc(
        &mut self,
        size: u64,
        align: u64,
        kind: AreaKind,
        caller: &'static str,
    ) -> Result<VirtAddr, VmallocError> {
        if size == 0 {
            return Err(VmallocError::ZeroSize);
        }
        let align = match align {
            0 | 1 => PAGE_SIZE,
            a if !a.is_power_of_two() => return Err(VmallocError::BadAlign),
            a => a.max(PAGE_SIZE),
        };
        let size_pages = match size.checked_add(PAGE_MASK) {
            Some(s) => s >> PAGE_SHIFT,
            None => return Err(VmallocError::TooLarge),
        };
        let window = self.end - self.start;
        let reserved = size_pages << PAGE_SHIFT; // cannot overflow: size_pages < 2^52
        if reserved >= window {
            // `reserved + GUARD_SIZE > window`: no room for the guard page.
            return Err(VmallocError::TooLarge);
        }
        let reserved = reserved + GUARD_SIZE;
        if self.len == N {
            return Err(VmallocError::TableFull);
        }
        let (index, start) = self.first_fit(reserved, align)?;
        let area = Area {
            start: VirtAddr::new(start),
            size_pages,
            kind,
            caller,
            nr_pages: if kind.owns_pages() { size_pages } else { 0 },
        };
        self.areas.copy_within(index..self.len, index + 1);
        self.areas[index] = area;
        self.len += 1;
        Ok(area.start)
    }

    /// The lowest `align`-aligned start of a free range of `reserved` bytes, and the index
    /// the new area takes in the sorted table.
    fn first_fit(&self, reserved: u64, align: u64) -> Result<(usize, u64), VmallocError> {
        let mut hole_start = self.start;
        for i in 0..=self.len {
            let hole_end = if i < self.len {
                self.areas[i].start.as_u64()
            } else {
                self.end
            };
            let Some(cand) = align_up(hole_start, align) else {
                break; // every later hole is higher still
            };
            if cand <= hole_end && hole_end - cand >= reserved {
                return Ok((i, cand));
            }
            if i < self.len {
                hole_start = self.areas[i].reserved_end().as_u64();
            }
        }
        Err(VmallocError::OutOfSpace)
    }

    /// The index of the area whose reserved range contains `addr`.
    fn index_of(&self, addr: VirtAddr) -> Option<usize> {
        let areas = &self.areas[..self.len];
        // The number of areas starting at or below `addr`; the last of them may contain it.
        let n = areas.partition_point(|a| a.start <= addr);
        let i = n.checked_sub(1)?;
        areas[i].contains(addr).then_some(i)
    }

    /// Release the area that starts at `addr` and return it; its range (guard page
    /// included) becomes free at once. Any other address, inside an area or not, is
    /// [`VmallocError::NotFound`] and changes nothing.
    pub fn free(&mut self, addr: VirtAddr) -> Result<Area, VmallocError> {
        let i = self.index_of(addr).ok_or(VmallocError::NotFound)?;
        let area = self.areas[i];
        if area.start != addr {
            return Err(VmallocError::NotFound);
        }
        self.areas.copy_within(i + 1..self.len, i);
        self.len -= 1;
        self.areas[self.len] = Area::EMPTY;
        Ok(area)
    }

    /// The area whose reserved range (guard page included) contains `addr`, for fault
    /// diagnosis; [`Area::in_guard`] tells an overrun into the guard page.
    pub fn find(&self, addr: VirtAddr) -> Option<&Area> {
        self.index_of(addr).map(|i| &self.areas[i])
    }

    /// The busy areas in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Area> + '_ {
        self.areas[..self.len].iter()
    }

    /// The free ranges of the window in address order, as `(start, bytes)`. Guard pages
    /// are not free.
    pub fn free_ranges(&self) -> impl Iterator<Item = (VirtAddr, u64)> + '_ {
        let starts =
            core::iter::once(self.start).chain(self.iter().map(|a| a.reserved_end().as_u64()));
        let ends = self
            .iter()
            .map(|a| a.start.as_u64())
            .chain(core::iter::once(self.end));
        starts
            .zip(ends)
            .filter(|(s, e)| e > s)
            .map(|(s, e)| (VirtAddr::new(s), e - s))
    }

    /// `VmallocTotal` of `/proc/meminfo`, in bytes: the size of the window.
    pub const fn total_bytes(&self) -> u64 {
        self.end - self.start
    }

    /// `VmallocUsed` of `/proc/meminfo`, in bytes: pages owned by vmalloc areas
    /// (`vmalloc_nr_pages()`); vmap and ioremap areas and guard pages do not count.
    pub fn used_bytes(&self) -> u64 {
        self.iter().map(|a| a.nr_pages).sum::<u64>() << PAGE_SHIFT
    }

    /// Bytes reserved by areas, guard pages included: the window minus its free ranges.
    pub fn reserved_bytes(&self) -> u64 {
        self.iter().map(|a| a.reserved_size()).sum()
    }

    /// The largest free range in bytes (what `VmallocChunk` counted before Linux 4.4 made
    /// it 0). An area of up to this size minus the guard page fits at page alignment.
    pub fn largest_free(&self) -> u64 {
        self.free_ranges().map(|(_, n)| n).max().unwrap_or(0)
    }

    /// Write `/proc/vmallocinfo`: one line per area, in address order.
    pub fn write_vmallocinfo<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        self.iter().try_for_each(|a| writeln!(w, "{a}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K: u64 = PAGE_SIZE;

    fn window(pages: u64) -> (VirtAddr, VirtAddr) {
        (
            VirtAddr::new(LINUX_VMALLOC_START),
            VirtAddr::new(LINUX_VMALLOC_START + pages * K),
        )
    }

    fn va(off: u64) -> VirtAddr {
        VirtAddr::new(LINUX_VMALLOC_START + off)
    }

    #[test]
    fn first_fit_with_guard_pages() {
        let (s, e) = window(64);
        let mut v = VmapAreas::<8>::new(s, e);
        assert_eq!(v.alloc(4 * K, 1, AreaKind::Vmalloc, "a"), Ok(va(0)));
        // Rounded up to 2 pages, after a's 4 pages and guard.
        assert_eq!(v.alloc(K + 1, 0, AreaKind::Vmalloc, "b"), Ok(va(5 * K)));
        assert_eq!(v.alloc(K, K, AreaKind::Vmap, "c"), Ok(va(8 * K)));
        // Free a: a 3-page request fits in its 5-page hole (3 + guard), lowest first.
        assert_eq!(v.free(va(0)).map(|a| a.caller()), Ok("a"));
        assert_eq!(v.alloc(3 * K, 0, AreaKind::Vmalloc, "d"), Ok(va(0)));
        // The one page left in that hole cannot hold a page and its guard.
        assert_eq!(v.alloc(K, 0, AreaKind::Vmalloc, "e"), Ok(va(10 * K)));
        let starts: Vec<_> = v.iter().map(|a| (a.caller(), a.start())).collect();
        assert_eq!(
            starts,
            [
                ("d", va(0)),
                ("b", va(5 * K)),
                ("c", va(8 * K)),
                ("e", va(10 * K))
            ]
        );
    }

    #[test]
    fn alignment_skips_to_the_next_multiple() {
        let (s, e) = window(1024);
        let mut v = VmapAreas::<8>::new(s, e);
        v.alloc(K, 0, AreaKind::Vmalloc, "x").unwrap();
        // 64 KiB alignment: the first multiple above x's guard page.
        assert_eq!(v.alloc(K, 16 * K, AreaKind::Vmalloc, "y"), Ok(va(16 * K)));
        // The hole below y is still used first by unaligned requests.
        assert_eq!(v.alloc(13 * K, 0, AreaKind::Vmalloc, "z"), Ok(va(2 * K)));
        assert_eq!(v.alloc(K, 0, AreaKind::Vmalloc, "w"), Ok(va(18 * K)));
        assert_eq!(
            v.alloc(K, 3 * K, AreaKind::Vmalloc, "bad"),
            Err(VmallocError::BadAlign)
        );
    }

    #[test]
    fn errors() {
        let (s, e) = window(8);
        let mut v = VmapAreas::<2>::new(s, e);
        assert_eq!(
            v.alloc(0, 0, AreaKind::Vmalloc, "z"),
            Err(VmallocError::ZeroSize)
        );
        assert_eq!(
            v.alloc(8 * K, 0, AreaKind::Vmalloc, "big"),
            Err(VmallocError::TooLarge)
        );
        assert_eq!(
            v.alloc(u64::MAX, 0, AreaKind::Vmalloc, "huge"),
            Err(VmallocError::TooLarge)
        );
        // 7 pages + guard is exactly the window.
        assert_eq!(v.alloc(7 * K, 0, AreaKind::Vmalloc, "all"), Ok(va(0)));
        assert_eq!(
            v.alloc(K, 0, AreaKind::Vmalloc, "more"),
            Err(VmallocError::OutOfSpace)
        );
        assert_eq!(v.largest_free(), 0);
        v.free(va(0)).unwrap();
        v.alloc(K, 0, AreaKind::Vmalloc, "1").unwrap();
        v.alloc(K, 0, AreaKind::Vmalloc, "2").unwrap();
        assert_eq!(
            v.alloc(K, 0, AreaKind::Vmalloc, "3"),
            Err(VmallocError::TableFull)
        );
        // An alignment beyond the window is out of space, not a panic.
        assert_eq!(v.free(va(2 * K)).unwrap().caller(), "2");
        assert_eq!(
            v.alloc(K, 1 << 63, AreaKind::Vmalloc, "a"),
            Err(VmallocError::OutOfSpace)
        );
    }

    #[test]
    fn free_of_a_wrong_address_changes_nothing() {
        let (s, e) = window(16);
        let mut v = VmapAreas::<4>::new(s, e);
        let a = v.alloc(2 * K, 0, AreaKind::Vmalloc, "a").unwrap();
        for bad in [
            va(K),
            va(2 * K),
            va(3 * K),
            va(8 * K),
            va(u64::MAX - LINUX_VMALLOC_START),
        ] {
            assert_eq!(v.free(bad), Err(VmallocError::NotFound), "{bad:x}");
        }
        assert_eq!(v.free(VirtAddr::new(0)), Err(VmallocError::NotFound));
        assert_eq!(v.len(), 1);
        assert_eq!(v.free(a).map(|a| a.size()), Ok(2 * K));
        assert_eq!(v.free(a), Err(VmallocError::NotFound));
    }

    #[test]
    fn find_reports_the_guard_page() {
        let (s, e) = window(16);
        let mut v = VmapAreas::<4>::new(s, e);
        v.alloc(2 * K, 0, AreaKind::Vmalloc, "a").unwrap();
        v.alloc(K, 0, AreaKind::Vmalloc, "b").unwrap();
        let a = v.find(va(K + 8)).unwrap();
        assert_eq!((a.caller(), a.in_guard(va(K + 8))), ("a", false));
        let g = v.find(va(2 * K + 8)).unwrap();
        assert_eq!((g.caller(), g.in_guard(va(2 * K + 8))), ("a", true));
        assert_eq!(v.find(va(3 * K)).map(|a| a.caller()), Some("b"));
        assert!(v.find(va(4 * K)).unwrap().in_guard(va(4 * K)));
        assert!(v.find(va(5 * K)).is_none());
        assert!(v.find(VirtAddr::new(LINUX_VMALLOC_START - 1)).is_none());
    }

    #[test]
    fn vmallocinfo_and_meminfo_like_linux() {
        let (s, _) = window(0);
        let mut v = VmapAreas::<8>::new(s, VirtAddr::new(LINUX_VMALLOC_START + (1 << 30)));
        v.alloc(4 * K, 0, AreaKind::Vmalloc, "caller").unwrap();
        let phys = PhysAddr::new(0xfed0_0000);
        v.alloc(K, 0, AreaKind::Ioremap { phys }, "hpet_enable+0x2d/0x2a0")
            .unwrap();
        v.alloc(2 * K, 0, AreaKind::Vmap, "").unwrap();
        v.alloc(K, 0, AreaKind::VmallocUser, "bpf").unwrap();
        let mut out = String::new();
        v.write_vmallocinfo(&mut out).unwrap();
        assert_eq!(
            out,
            "0xffffc90000000000-0xffffc90000005000   20480 caller pages=4 vmalloc\n\
             0xffffc90000005000-0xffffc90000007000    8192 hpet_enable+0x2d/0x2a0 \
             phys=0x00000000fed00000 ioremap\n\
             0xffffc90000007000-0xffffc9000000a000   12288 vmap\n\
             0xffffc9000000a000-0xffffc9000000c000    8192 bpf pages=1 vmalloc user\n"
        );
        assert_eq!(v.used_bytes(), 5 * K);
        assert_eq!(v.reserved_bytes(), 12 * K);
        assert_eq!(v.total_bytes(), 1 << 30);
        assert_eq!(v.largest_free(), (1 << 30) - 12 * K);
        assert_eq!(v.free_ranges().count(), 1);
    }

    /// One step of a random workload.
    #[derive(Clone, Debug)]
    enum Op {
        Alloc {
            pages: u64,
            align_shift: u32,
        },
        /// Free the `n % len`-th area.
        Free(usize),
        /// Free an address that may or may not start an area.
        FreeAt(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1u64..40, 0u32..18).prop_map(|(pages, align_shift)| Op::Alloc { pages, align_shift }),
            2 => any::<usize>().prop_map(Op::Free),
            1 => (0u64..300).prop_map(Op::FreeAt),
        ]
    }

    const WINDOW_PAGES: u64 = 256;
    const CAP: usize = 12;

    /// The structural invariants, and that the free ranges are exactly the complement.
    fn check(v: &VmapAreas<CAP>, aligns: &[(VirtAddr, u64)]) {
        let (ws, we) = (v.window_start().as_u64(), v.window_end().as_u64());
        let areas: Vec<&Area> = v.iter().collect();
        assert_eq!(areas.len(), v.len());
        assert!(v.len() <= CAP);
        for a in &areas {
            assert!(a.size_pages() >= 1);
            assert!(a.start().as_u64() >= ws && a.reserved_end().as_u64() <= we);
            assert_eq!(a.start().as_u64() & PAGE_MASK, 0);
            let align = aligns.iter().find(|(s, _)| *s == a.start()).unwrap().1;
            assert_eq!(a.start().as_u64() % align, 0);
        }
        for w in areas.windows(2) {
            // Sorted, and the guard page of one ends at or before the next start.
            assert!(
                w[0].reserved_end() <= w[1].start(),
                "{:?} overlaps {:?}",
                w[0],
                w[1]
            );
        }
        let free: u64 = v.free_ranges().map(|(_, n)| n).sum();
        assert_eq!(free + v.reserved_bytes(), v.total_bytes());
        assert_eq!(v.used_bytes(), v.reserved_bytes() - K * v.len() as u64);
    }

    /// Brute-force first fit over the reserved ranges.
    fn model_first_fit(v: &VmapAreas<CAP>, reserved: u64, align: u64) -> Option<u64> {
        let (ws, we) = (v.window_start().as_u64(), v.window_end().as_u64());
        let mut cand = ws.next_multiple_of(align);
        while cand + reserved <= we {
            let end = cand + reserved;
            let clash = v
                .iter()
                .any(|a| cand < a.reserved_end().as_u64() && a.start().as_u64() < end);
            if !clash {
                return Some(cand);
            }
            cand += align;
        }
        None
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_alloc_free(ops in proptest::collection::vec(op(), 1..120)) {
            let (s, e) = window(WINDOW_PAGES);
            let mut v = VmapAreas::<CAP>::new(s, e);
            // The alignment each live area was allocated with.
            let mut aligns: Vec<(VirtAddr, u64)> = Vec::new();
            for op in ops {
                match op {
                    Op::Alloc { pages, align_shift } => {
                        let align = 1u64 << align_shift;
                        let eff = align.max(K);
                        let expect = if v.len() == CAP {
                            Err(VmallocError::TableFull)
                        } else {
                            model_first_fit(&v, (pages + 1) * K, eff)
                                .map(VirtAddr::new)
                                .ok_or(VmallocError::OutOfSpace)
                        };
                        let got = v.alloc(pages * K, align, AreaKind::Vmalloc, "prop");
                        prop_assert_eq!(got, expect);
                        if let Ok(a) = got {
                            aligns.push((a, eff));
                            let area = v.find(a).unwrap();
                            prop_assert_eq!(area.start(), a);
                            prop_assert_eq!(area.size_pages(), pages);
                        }
                    }
                    Op::Free(n) => {
                        if v.is_empty() {
                            continue;
                        }
                        let start = v.iter().nth(n % v.len()).unwrap().start();
                        prop_assert_eq!(v.free(start).map(|a| a.start()), Ok(start));
                        aligns.retain(|(s, _)| *s != start);
                        prop_assert!(v.find(start).is_none());
                    }
                    Op::FreeAt(page) => {
                        let addr = va(page * K / 2);
                        let is_start = v.iter().any(|a| a.start() == addr);
                        let before = v.len();
                        let r = v.free(addr);
                        prop_assert_eq!(r.is_ok(), is_start);
                        prop_assert_eq!(v.len(), before - usize::from(is_start));
                        aligns.retain(|(s, _)| *s != addr || !is_start);
                    }
                }
                check(&v, &aligns);
            }
            // Freeing everything leaves the whole window as one free range.
            let starts: Vec<VirtAddr> = v.iter().map(|a| a.start()).collect();
            for s in starts {
                v.free(s).unwrap();
            }
            prop_assert!(v.is_empty());
            let free: Vec<_> = v.free_ranges().collect();
            prop_assert_eq!(free, vec![(v.window_start(), v.total_bytes())]);
            prop_assert_eq!(v.largest_free(), v.total_bytes());
            prop_assert_eq!(v.used_bytes(), 0);
        }
    }

    #[test]
    fn the_property_test_reaches_both_limits() {
        // The property test's window and capacity reach both error paths: 12 one-page
        // areas fill the table; 6 areas of 39 pages + guard fill the 256-page window.
        let (s, e) = window(WINDOW_PAGES);
        let mut v = VmapAreas::<CAP>::new(s, e);
        for _ in 0..CAP {
            v.alloc(K, 0, AreaKind::Vmalloc, "t").unwrap();
        }
        assert_eq!(
            v.alloc(K, 0, AreaKind::Vmalloc, "t"),
            Err(VmallocError::TableFull)
        );
        let mut v = VmapAreas::<CAP>::new(s, e);
        for _ in 0..6 {
            v.alloc(39 * K, 0, AreaKind::Vmalloc, "t").unwrap();
        }
        assert_eq!(
            v.alloc(39 * K, 0, AreaKind::Vmalloc, "t"),
            Err(VmallocError::OutOfSpace)
        );
    }
}
