//! Swap entries, their page-table encoding, mkswap headers, and one swap area's slot map
//! (Linux's `swp_entry_t`, `arch/x86/include/asm/pgtable_64.h`, `union swap_header` and
//! `swap_info_struct::swap_map` from `mm/swapfile.c`).
//!
//! A swapped-out page is named by a [`SwpEntry`]: the swap area ("type", the index in the
//! kernel's swap_info table) and the slot ("offset", in pages) in that area. In a page table
//! it is stored as a non-present PTE ([`swp_entry_to_pte`]). Each area keeps a byte per slot
//! ([`SwapMap`]) counting the PTEs (and shmem/swap-cache users) that refer to the slot.

use alloc::collections::TryReserveError;
use alloc::string::String;
use alloc::vec::Vec;

use crate::addr::PAGE_SIZE;
use crate::pgtable::{pte, Pte};

/// Bits of a swap entry that name the swap area (`MAX_SWAPFILES_SHIFT`).
pub const MAX_SWAPFILES_SHIFT: u32 = 5;
/// Swap types Linux takes from the top of the type space for non-swap uses of swap PTEs:
/// device-private/exclusive entries (4), migration entries (3), hwpoison (1) and PTE
/// markers (1). We have none of them yet but keep the numbers free so that the types stay
/// compatible when they arrive.
pub const SWP_RESERVED_TYPES: usize = 4 + 3 + 1 + 1;
/// Swap areas that can be active at once (`MAX_SWAPFILES`, 23 as on a typical x86-64
/// Linux 6.1 configuration).
pub const MAX_SWAPFILES: usize = (1 << MAX_SWAPFILES_SHIFT) - SWP_RESERVED_TYPES;

/// Where the type sits in the architecture-independent entry value: an XArray value
/// entry has 63 bits (`BITS_PER_XA_VALUE`), the type takes the top ones of those.
const SWP_TYPE_SHIFT: u32 = 63 - MAX_SWAPFILES_SHIFT;
/// The offset bits of the architecture-independent value.
const SWP_OFFSET_MASK: u64 = (1 << SWP_TYPE_SHIFT) - 1;

/// x86-64 swap PTE layout: the type in the top [`SWP_TYPE_BITS`] bits; the offset, bit-
/// inverted, from the bit above PROTNONE up to the type. Inverting the offset means the
/// "address" bits of a non-present PTE point at the top of the physical address space, where
/// there is no cacheable memory, so an L1 Terminal Fault speculative load through it leaks
/// nothing (the L1TF mitigation).
pub const SWP_TYPE_BITS: u32 = MAX_SWAPFILES_SHIFT;
/// First PTE bit of the offset: above `_PAGE_BIT_PROTNONE` (bit 8), so PRESENT and
/// PROTNONE stay clear and the entry never looks mapped.
pub const SWP_OFFSET_FIRST_BIT: u32 = pte::PROTNONE.trailing_zeros() + 1;
/// Shift that drops the type bits when the offset is packed in (`SWP_OFFSET_SHIFT`).
const SWP_OFFSET_SHIFT: u32 = SWP_OFFSET_FIRST_BIT + SWP_TYPE_BITS;
/// Offset bits that fit in a PTE (50).
pub const SWP_OFFSET_BITS: u32 = u64::BITS - SWP_OFFSET_SHIFT;
/// The largest slot number a swap PTE can hold. The all-ones offset is left out: with type
/// 0 it would encode as PTE 0 (`pte_none`), i.e. as no entry at all. (Linux's
/// `generic_max_swapfile_size` allows it, but mkswap's 32-bit `last_page` keeps real areas
/// far below either limit.)
pub const MAX_SWAP_OFFSET: u64 = (1 << SWP_OFFSET_BITS) - 2;

/// A swap entry (`swp_entry_t`): swap area and slot, as `type << 58 | offset` so that entries
/// order by area, then slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SwpEntry(pub u64);

impl SwpEntry {
    /// `swp_entry(type, offset)`.
    pub const fn new(type_: usize, offset: u64) -> SwpEntry {
        debug_assert!(type_ < 1 << MAX_SWAPFILES_SHIFT && offset <= MAX_SWAP_OFFSET);
        SwpEntry(((type_ as u64) << SWP_TYPE_SHIFT) | (offset & SWP_OFFSET_MASK))
    }

    /// `swp_type`: the swap area.
    pub const fn type_(self) -> usize {
        (self.0 >> SWP_TYPE_SHIFT) as usize
    }

    /// `swp_offset`: the slot in the area.
    pub const fn offset(self) -> u64 {
        self.0 & SWP_OFFSET_MASK
    }
}

/// `swp_entry_to_pte`: the non-present PTE that stands for a swapped-out page.
pub const fn swp_entry_to_pte(e: SwpEntry) -> Pte {
    // Shifting the inverted offset up to the top and back down leaves its high bits (which
    // do not fit) out and zeros below SWP_OFFSET_FIRST_BIT.
    let offset = (!e.offset() << SWP_OFFSET_SHIFT) >> SWP_TYPE_BITS;
    Pte(offset | ((e.type_() as u64) << (u64::BITS - SWP_TYPE_BITS)))
}

/// `pte_to_swp_entry`, for PTEs that hold one: `None` for an empty PTE and for anything
/// mapped (PRESENT or PROTNONE).
pub const fn pte_to_swp_entry(p: Pte) -> Option<SwpEntry> {
    if p.is_none() || p.is_present() {
        return None;
    }
    let type_ = (p.0 >> (u64::BITS - SWP_TYPE_BITS)) as usize;
    let offset = (!p.0 << SWP_TYPE_BITS) >> SWP_OFFSET_SHIFT;
    Some(SwpEntry(((type_ as u64) << SWP_TYPE_SHIFT) | offset))
}

// ---------------------------------------------------------------------------------------
// mkswap headers
// ---------------------------------------------------------------------------------------

/// The header's size: one page (mkswap writes it for the page size of the machine that will
/// use the area; ours is 4 KiB).
pub const SWAP_HEADER_SIZE: usize = PAGE_SIZE as usize;
/// Length of the signature at the end of the header page.
const SWAP_MAGIC_LEN: usize = 10;
/// Where the signature starts (`magic.magic`).
pub const SWAP_MAGIC_OFFSET: usize = SWAP_HEADER_SIZE - SWAP_MAGIC_LEN;
/// The signature of a version-1 header (everything since Linux 2.2).
pub const SWAP_MAGIC: &[u8; SWAP_MAGIC_LEN] = b"SWAPSPACE2";
/// The signature of the pre-2.2 bitmap format ("v0"), which Linux no longer accepts.
pub const SWAP_MAGIC_V0: &[u8; SWAP_MAGIC_LEN] = b"SWAP-SPACE";
/// `info.bootbits`: room left for a disk label or boot loader.
const BOOTBITS_SIZE: usize = 1024;
/// Offsets of `union swap_header.info`'s fields (all native-endian, as mkswap writes them).
const VERSION_OFFSET: usize = BOOTBITS_SIZE;
const LAST_PAGE_OFFSET: usize = VERSION_OFFSET + 4;
const NR_BADPAGES_OFFSET: usize = LAST_PAGE_OFFSET + 4;
const UUID_OFFSET: usize = NR_BADPAGES_OFFSET + 4;
const UUID_SIZE: usize = 16;
const LABEL_OFFSET: usize = UUID_OFFSET + UUID_SIZE;
const LABEL_SIZE: usize = 16;
/// `info.padding`: 117 words of padding before the bad-page list.
const PADDING_WORDS: usize = 117;
/// `info.badpages`: the bad-page list, up to the signature.
pub const BADPAGES_OFFSET: usize = LABEL_OFFSET + LABEL_SIZE + 4 * PADDING_WORDS;
/// The only header version there is.
pub const SWAP_HEADER_VERSION: u32 = 1;
/// Bad pages that fit between the list's start and the signature (`MAX_SWAP_BADPAGES`, 637).
pub const MAX_SWAP_BADPAGES: usize = (SWAP_MAGIC_OFFSET - BADPAGES_OFFSET) / 4;

/// A parsed mkswap header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwapHeader {
    pub version: u32,
    /// The last usable page of the area (its size in pages minus one).
    pub last_page: u32,
    pub nr_badpages: u32,
    pub uuid: [u8; 16],
    /// The volume label, NUL-padded.
    pub label: [u8; 16],
    /// The bad pages' numbers.
    pub badpages: Vec<u32>,
}

/// Why a header was refused (`sys_swapon`'s `-EINVAL`; the names follow Linux's messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapHeaderError {
    /// Less than a page given.
    Short,
    /// "Unable to find swap-space signature".
    NoSignature,
    /// The old "SWAP-SPACE" format.
    OldVersion,
    /// "Unable to handle swap header version %d".
    UnsupportedVersion(u32),
    /// "Empty swap-file": `last_page` is 0.
    Empty,
    /// More bad pages than the header has room for.
    TooManyBadPages(u32),
    /// A bad page 0 (the header) or beyond `last_page`.
    BadPageOutOfRange(u32),
}

fn read_u32(page: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&page[at..at + 4]);
    u32::from_ne_bytes(b)
}

/// Parse the first page of a swap area, as `sys_swapon`'s `read_swap_header` and the bad-page
/// checks of `setup_swap_map_and_extents` do. A header written on a machine of the other
/// byte order (version 1 byte-swapped) is byte-swapped on the fly, as Linux does.
pub fn parse_swap_header(page: &[u8]) -> Result<SwapHeader, SwapHeaderError> {
    let page = page.get(..SWAP_HEADER_SIZE).ok_or(SwapHeaderError::Short)?;
    let magic = &page[SWAP_MAGIC_OFFSET..];
    if magic == SWAP_MAGIC_V0 {
        return Err(SwapHeaderError::OldVersion);
    }
    if magic != SWAP_MAGIC {
        return Err(SwapHeaderError::NoSignature);
    }
    let mut version = read_u32(page, VERSION_OFFSET);
    let swapped = version != SWAP_HEADER_VERSION && version.swap_bytes() == SWAP_HEADER_VERSION;
    let fix = |v: u32| if swapped { v.swap_bytes() } else { v };
    version = fix(version);
    if version != SWAP_HEADER_VERSION {
        return Err(SwapHeaderError::UnsupportedVersion(version));
    }
    let last_page = fix(read_u32(page, LAST_PAGE_OFFSET));
    let nr_badpages = fix(read_u32(page, NR_BADPAGES_OFFSET));
    if last_page == 0 {
        return Err(SwapHeaderError::Empty);
    }
    if nr_badpages as usize > MAX_SWAP_BADPAGES {
        return Err(SwapHeaderError::TooManyBadPages(nr_badpages));
    }
    let badpages: Vec<u32> = (0..nr_badpages as usize)
        .map(|i| fix(read_u32(page, BADPAGES_OFFSET + 4 * i)))
        .collect();
    if let Some(&b) = badpages.iter().find(|&&b| b == 0 || b > last_page) {
        return Err(SwapHeaderError::BadPageOutOfRange(b));
    }
    let mut uuid = [0; UUID_SIZE];
    uuid.copy_from_slice(&page[UUID_OFFSET..UUID_OFFSET + UUID_SIZE]);
    let mut label = [0; LABEL_SIZE];
    label.copy_from_slice(&page[LABEL_OFFSET..LABEL_OFFSET + LABEL_SIZE]);
    Ok(SwapHeader {
        version,
        last_page,
        nr_badpages,
        uuid,
        label,
        badpages,
    })
}

impl SwapHeader {
    /// The slots the area may use, header included (`read_swap_header`'s result, the swap
    /// map's length): `last_page + 1`, capped by what a swap entry can address and by
    /// `u32::MAX` (Linux's `p->max` is an unsigned int). 0 means "refuse": the header says the
    /// area is larger than the `device_pages` pages of the device or file behind it ("Swap
    /// area shorter than signature indicates"). `device_pages` 0 means the size is unknown.
    /// (Linux also refuses bad-page lists on regular files; that check is the caller's, who
    /// knows what the area is.)
    pub fn max_pages(&self, device_pages: u64) -> u64 {
        let mut maxpages = MAX_SWAP_OFFSET + 1;
        if self.last_page == 0 {
            return 0;
        }
        if maxpages > self.last_page as u64 {
            maxpages = (self.last_page as u64 + 1).min(u32::MAX as u64);
        }
        if device_pages != 0 && maxpages > device_pages {
            return 0;
        }
        maxpages
    }

    /// The label up to its first NUL, if it is UTF-8.
    pub fn label_str(&self) -> Option<&str> {
        let end = self
            .label
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(LABEL_SIZE);
        core::str::from_utf8(&self.label[..end]).ok()
    }
}

/// A UUID in its usual text form (`%pUb`): 8-4-4-4-12 lower-case hex digits.
pub fn format_uuid(uuid: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    /// Byte indices after which a dash goes.
    const DASH_AFTER: [usize; 4] = [3, 5, 7, 9];
    let mut s = String::with_capacity(36);
    for (i, b) in uuid.iter().enumerate() {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
        if DASH_AFTER.contains(&i) {
            s.push('-');
        }
    }
    s
}

/// `vm_swap_full`: more than half of all swap is in use. Reclaim and swap-in then free
/// the swap slot of a page they hold in memory (the page is dirtied instead) rather than
/// keep both copies.
pub fn vm_swap_full(nr_swap_pages_free: u64, total_swap_pages: u64) -> bool {
    /// Swap counts as full when free slots are under 1 / this of all.
    const FULL_RATIO: u64 = 2;
    nr_swap_pages_free * FULL_RATIO < total_swap_pages
}

/// The first line of /proc/swaps.
pub const PROC_SWAPS_HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";

/// One line of /proc/swaps (`swap_show`) for an area at `path` of `usable_pages` slots
/// ([`SwapMap::usable_pages`]) with `inuse_pages` used, at priority `prio`. Sizes are in KiB.
/// The path is escaped as `seq_file_path` does (space, tab, newline and backslash as `\ooo`)
/// and padded to 40 columns; a tab follows numbers under 8 digits to keep the columns.
pub fn proc_swaps_line(
    path: &str,
    partition: bool,
    usable_pages: u64,
    inuse_pages: u64,
    prio: i32,
) -> String {
    /// The path column's width.
    const PATH_COLUMN: usize = 40;
    /// Numbers below this get a second tab.
    const NARROW_NUMBER: u64 = 10_000_000;
    const KIB_SHIFT: u32 = crate::addr::PAGE_SHIFT - 10;
    let mut line = String::new();
    for c in path.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\\') {
            let b = c as u8;
            line.push('\\');
            for shift in [6, 3, 0] {
                line.push((b'0' + ((b >> shift) & 7)) as char);
            }
        } else {
            line.push(c);
        }
    }
    let pad = PATH_COLUMN.saturating_sub(line.len()).max(1);
    line.extend(core::iter::repeat_n(' ', pad));
    let bytes = usable_pages << KIB_SHIFT;
    let inuse = inuse_pages << KIB_SHIFT;
    let tab = |n: u64| if n < NARROW_NUMBER { "\t" } else { "" };
    line + &alloc::format!(
        "{}\t{}\t{}{}\t{}{}\n",
        if partition { "partition" } else { "file\t" },
        bytes,
        tab(bytes),
        inuse,
        tab(inuse),
        prio
    )
}

/// The priority of an area swapped on without one (`swapon` with no `-p`): Linux counts
/// down from -2, so areas enabled later are used after earlier ones. `nth` counts the areas
/// enabled so far without a priority, from 0.
pub const fn default_swap_priority(nth: u32) -> i32 {
    /// The first default priority.
    const FIRST_DEFAULT_PRIO: i32 = -2;
    FIRST_DEFAULT_PRIO - nth as i32
}

// ---------------------------------------------------------------------------------------
// The slot map
// ---------------------------------------------------------------------------------------

/// Map byte: the slot's page is in the swap cache (a flag on top of the use count).
pub const SWAP_HAS_CACHE: u8 = 0x40;
/// Map byte: a bad slot (and the header's slot 0), never handed out.
pub const SWAP_MAP_BAD: u8 = 0x3f;
/// The highest use count a map byte holds. Linux chains "count continuation" pages to go
/// further; we do not, so [`SwapMap::duplicate`] of a slot at this count fails with
/// [`SwapMapError::CountMax`], which callers turn into `-ENOMEM` as Linux does when
/// `add_swap_count_continuation` cannot get a page (fork fails, or the unmap keeps the page).
pub const SWAP_MAP_MAX: u8 = 0x3e;
/// Slots handed out consecutively before the allocator looks for a fresh free run
/// (`SWAPFILE_CLUSTER`), so that pages swapped out together sit together on disk.
pub const SWAPFILE_CLUSTER: u64 = 256;

/// Why a swap map operation failed (errno in [`SwapMapError::errno`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapMapError {
    /// The slot is past the area's end ("Bad swap offset entry", `-EINVAL`).
    OutOfRange,
    /// A bad slot (`-ENOENT`).
    Bad,
    /// The slot is free or has no users left (`-ENOENT`).
    NotInUse,
    /// The slot's page is already in the swap cache (`-EEXIST`).
    Exists,
    /// The use count is at [`SWAP_MAP_MAX`] (`-ENOMEM`, see there).
    CountMax,
}

impl SwapMapError {
    /// The (positive) errno Linux returns for this case.
    pub const fn errno(self) -> i32 {
        /// errno values (asm-generic/errno-base.h).
        const ENOENT: i32 = 2;
        const ENOMEM: i32 = 12;
        const EEXIST: i32 = 17;
        const EINVAL: i32 = 22;
        match self {
            SwapMapError::OutOfRange => EINVAL,
            SwapMapError::Bad | SwapMapError::NotInUse => ENOENT,
            SwapMapError::Exists => EEXIST,
            SwapMapError::CountMax => ENOMEM,
        }
    }
}

/// Bits per bitmap word.
const WORD_BITS: u64 = u64::BITS as u64;

/// One swap area's `swap_map`: a use count per slot, plus bitmaps that make the searches
/// (free slots for allocation, used slots for swapoff) word-at-a-time.
#[derive(Clone, Debug)]
pub struct SwapMap {
    map: Vec<u8>,
    /// A bit per slot whose map byte is non-zero (used, cached, bad, or the header).
    occupied: Vec<u64>,
    /// A bit per bad slot (the header's included).
    bad: Vec<u64>,
    /// Slots handed out and not yet freed (`inuse_pages`).
    inuse: u64,
    /// Slots that can be handed out (`si->pages`).
    usable: u64,
    /// Where the next allocation looks first (`cluster_next`).
    cluster_next: u64,
    /// Allocations left before looking for a new free run (`cluster_nr`).
    cluster_nr: u64,
}

fn bitmap(len: u64) -> Result<Vec<u64>, TryReserveError> {
    let words = len.div_ceil(WORD_BITS) as usize;
    let mut v = Vec::new();
    v.try_reserve_exact(words)?;
    v.resize(words, 0);
    Ok(v)
}

fn set_bit(b: &mut [u64], i: u64, on: bool) {
    let w = &mut b[(i / WORD_BITS) as usize];
    if on {
        *w |= 1 << (i % WORD_BITS);
    } else {
        *w &= !(1 << (i % WORD_BITS));
    }
}

/// The first index in `from..to` whose bit in `words` (inverted if `invert`) is set.
fn find_bit(words: &[u64], from: u64, to: u64, invert: bool, mask: Option<&[u64]>) -> Option<u64> {
    let mut i = from;
    while i < to {
        let wi = (i / WORD_BITS) as usize;
        let mut w = if invert { !words[wi] } else { words[wi] };
        if let Some(m) = mask {
            w &= !m[wi];
        }
        w &= !0u64 << (i % WORD_BITS);
        if w != 0 {
            let found = wi as u64 * WORD_BITS + w.trailing_zeros() as u64;
            return (found < to).then_some(found);
        }
        i = (wi as u64 + 1) * WORD_BITS;
    }
    None
}

impl SwapMap {
    /// The map of an area of `pages` slots (the header's `max_pages`), with the given bad
    /// slots. Slot 0 holds the header and, like bad slots, is never handed out; bad numbers
    /// past the end are ignored, as in `setup_swap_map_and_extents`. Fails only if the
    /// map's memory cannot be allocated (swapon's `-ENOMEM`).
    pub fn try_new(pages: u64, badpages: &[u32]) -> Result<Self, TryReserveError> {
        let mut map = Vec::new();
        map.try_reserve_exact(pages as usize)?;
        map.resize(pages as usize, 0);
        let mut s = SwapMap {
            map,
            occupied: bitmap(pages)?,
            bad: bitmap(pages)?,
            inuse: 0,
            usable: 0,
            cluster_next: 1,
            cluster_nr: 0,
        };
        let header = core::iter::once(0u64).filter(|_| pages > 0);
        for b in header.chain(badpages.iter().map(|&b| b as u64)) {
            if b < pages && s.map[b as usize] != SWAP_MAP_BAD {
                s.map[b as usize] = SWAP_MAP_BAD;
                set_bit(&mut s.occupied, b, true);
                set_bit(&mut s.bad, b, true);
            }
        }
        let nbad = s.bad.iter().map(|w| w.count_ones() as u64).sum::<u64>();
        s.usable = pages - nbad;
        Ok(s)
    }

    /// Slots in the area (`si->max`), header and bad ones included.
    pub fn max(&self) -> u64 {
        self.map.len() as u64
    }

    /// Slots that can hold pages: all but the header and the bad ones (`si->pages`).
    pub fn usable_pages(&self) -> u64 {
        self.usable
    }

    /// Slots handed out and not freed (`si->inuse_pages`).
    pub fn inuse_pages(&self) -> u64 {
        self.inuse
    }

    /// The map byte of `off` (`SWAP_MAP_BAD` past the end).
    pub fn raw(&self, off: u64) -> u8 {
        self.map.get(off as usize).copied().unwrap_or(SWAP_MAP_BAD)
    }

    /// `swap_count`: the slot's users apart from the swap cache.
    pub fn count(&self, off: u64) -> u8 {
        self.raw(off) & !SWAP_HAS_CACHE
    }

    /// Whether the slot's page is in the swap cache.
    pub fn has_cache(&self, off: u64) -> bool {
        let b = self.raw(off);
        b != SWAP_MAP_BAD && b & SWAP_HAS_CACHE != 0
    }

    /// Whether the slot is free (can be handed out).
    pub fn is_free(&self, off: u64) -> bool {
        self.map.get(off as usize) == Some(&0)
    }

    /// Whether the slot is bad (or the header).
    pub fn is_bad(&self, off: u64) -> bool {
        self.raw(off) == SWAP_MAP_BAD
    }

    /// `get_swap_pages` for one slot (`scan_swap_map_slots`' rotating-disk path): hand out a
    /// free slot, owned by the swap cache (`SWAP_HAS_CACHE`, no users yet) for `add_to_swap`.
    /// Slots go out consecutively from a cursor; every [`SWAPFILE_CLUSTER`] allocations the
    /// cursor moves to the first free run of that length from the area's start, so that the
    /// area fills from the front and neighbouring pages share disk locality. `None` when full.
    pub fn alloc(&mut self) -> Option<u64> {
        if self.inuse >= self.usable {
            return None;
        }
        let max = self.max();
        if self.cluster_nr == 0 {
            if self.usable - self.inuse >= SWAPFILE_CLUSTER {
                if let Some(start) = self.find_free_run(SWAPFILE_CLUSTER) {
                    self.cluster_next = start;
                }
            }
            self.cluster_nr = SWAPFILE_CLUSTER - 1;
        } else {
            self.cluster_nr -= 1;
        }
        let from = self.cluster_next.min(max);
        let off = find_bit(&self.occupied, from, max, true, None)
            .or_else(|| find_bit(&self.occupied, 1, from, true, None))?;
        self.map[off as usize] = SWAP_HAS_CACHE;
        set_bit(&mut self.occupied, off, true);
        self.inuse += 1;
        self.cluster_next = off + 1;
        Some(off)
    }

    /// The first run of `len` free slots from the area's start.
    fn find_free_run(&self, len: u64) -> Option<u64> {
        let max = self.max();
        let mut start = find_bit(&self.occupied, 1, max, true, None)?;
        loop {
            let end = (start + len).min(max);
            match find_bit(&self.occupied, start, end, false, None) {
                None if end - start == len => return Some(start),
                None => return None,
                Some(used) => start = find_bit(&self.occupied, used, max, true, None)?,
            }
        }
    }

    fn check(&self, off: u64) -> Result<u8, SwapMapError> {
        match self.map.get(off as usize) {
            None => Err(SwapMapError::OutOfRange),
            Some(&SWAP_MAP_BAD) => Err(SwapMapError::Bad),
            Some(&b) => Ok(b),
        }
    }

    /// `swap_duplicate`: one more user (a PTE copied at fork, or the PTE that replaces a
    /// page being swapped out). The slot must be in use or cached.
    pub fn duplicate(&mut self, off: u64) -> Result<(), SwapMapError> {
        let b = self.check(off)?;
        let count = b & !SWAP_HAS_CACHE;
        if b == 0 {
            return Err(SwapMapError::NotInUse);
        }
        if count >= SWAP_MAP_MAX {
            return Err(SwapMapError::CountMax);
        }
        self.map[off as usize] = b + 1;
        Ok(())
    }

    /// `swapcache_prepare`: claim the right to read the slot into the swap cache. Fails with
    /// `Exists` if its page is (being) cached already, `NotInUse` if nobody uses the slot.
    pub fn swapcache_prepare(&mut self, off: u64) -> Result<(), SwapMapError> {
        let b = self.check(off)?;
        if b & SWAP_HAS_CACHE != 0 {
            Err(SwapMapError::Exists)
        } else if b == 0 {
            Err(SwapMapError::NotInUse)
        } else {
            self.map[off as usize] = b | SWAP_HAS_CACHE;
            Ok(())
        }
    }

    /// Set the slot's byte to `b`, freeing the slot if it becomes 0 (`swap_entry_free`).
    fn store(&mut self, off: u64, b: u8) -> u8 {
        self.map[off as usize] = b;
        if b == 0 {
            set_bit(&mut self.occupied, off, false);
            self.inuse -= 1;
        }
        b
    }

    /// `swap_free`: one user less. Returns the remaining map byte; 0 means the slot is free.
    /// A slot without users (free, cache only, bad, out of range) is left alone, as Linux
    /// reports and ignores such a free.
    pub fn free(&mut self, off: u64) -> u8 {
        match self.check(off) {
            Ok(b) if b & !SWAP_HAS_CACHE != 0 => self.store(off, b - 1),
            Ok(b) => {
                debug_assert!(false, "swap_free of slot {off} without users ({b:#x})");
                b
            }
            Err(_) => self.raw(off),
        }
    }

    /// Drop the swap cache's claim (`put_swap_folio`, or `delete_from_swap_cache`'s).
    /// Returns the remaining map byte; 0 means the slot is free.
    pub fn put_cache(&mut self, off: u64) -> u8 {
        match self.check(off) {
            Ok(b) if b & SWAP_HAS_CACHE != 0 => self.store(off, b & !SWAP_HAS_CACHE),
            Ok(b) => {
                debug_assert!(false, "put_swap_folio of uncached slot {off} ({b:#x})");
                b
            }
            Err(_) => self.raw(off),
        }
    }

    /// The first slot from `from` on that is in use or cached (`find_next_to_unuse` for
    /// swapoff). Word-at-a-time through a bitmap: a whole-area walk costs `max / 64` words
    /// plus one step per used slot.
    pub fn next_used(&self, from: u64) -> Option<u64> {
        find_bit(&self.occupied, from, self.max(), false, Some(&self.bad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    #[test]
    fn entry_fields() {
        let e = SwpEntry::new(3, 12345);
        assert_eq!((e.type_(), e.offset()), (3, 12345));
        assert!(SwpEntry::new(0, 5) < SwpEntry::new(1, 0));
        assert_eq!(MAX_SWAPFILES, 23);
        assert_eq!(SWP_OFFSET_FIRST_BIT, 9);
        assert_eq!(SWP_OFFSET_BITS, 50);
    }

    #[test]
    fn pte_layout_matches_linux() {
        // Type in bits 59..63, offset inverted in bits 9..58.
        let p = swp_entry_to_pte(SwpEntry::new(1, 0));
        assert_eq!(p.0, (1 << 59) | (((1u64 << 50) - 1) << 9));
        let p = swp_entry_to_pte(SwpEntry::new(0, 1));
        assert_eq!(p.0, ((1u64 << 50) - 2) << 9);
        assert_eq!(p.0 & 0x1ff, 0);
        // The largest offset still gives a non-zero PTE.
        let p = swp_entry_to_pte(SwpEntry::new(0, MAX_SWAP_OFFSET));
        assert_eq!(p.0, 1 << 9);
        assert_eq!(pte_to_swp_entry(Pte::NONE), None);
        assert_eq!(pte_to_swp_entry(Pte(pte::PRESENT | (1 << 12))), None);
        assert_eq!(pte_to_swp_entry(Pte(pte::PROTNONE | (1 << 12))), None);
    }

    proptest! {
        #[test]
        fn pte_round_trip_never_present(type_ in 0usize..32, offset in 0u64..=MAX_SWAP_OFFSET) {
            let e = SwpEntry::new(type_, offset);
            let p = swp_entry_to_pte(e);
            prop_assert!(!p.is_none());
            prop_assert!(!p.is_present() && !p.is_protnone() && !p.is_accessible());
            prop_assert_eq!(pte_to_swp_entry(p), Some(e));
        }
    }

    /// A header as util-linux mkswap (2.38) writes it: zeroed page, version 1, last_page,
    /// nr_badpages, UUID, label, bad-page list, signature.
    fn mkswap_header(last_page: u32, bad: &[u32], uuid: [u8; 16], label: &str) -> Vec<u8> {
        let mut p = vec![0u8; SWAP_HEADER_SIZE];
        p[1024..1028].copy_from_slice(&1u32.to_ne_bytes());
        p[1028..1032].copy_from_slice(&last_page.to_ne_bytes());
        p[1032..1036].copy_from_slice(&(bad.len() as u32).to_ne_bytes());
        p[1036..1052].copy_from_slice(&uuid);
        p[1052..1052 + label.len()].copy_from_slice(label.as_bytes());
        for (i, b) in bad.iter().enumerate() {
            p[1536 + 4 * i..1540 + 4 * i].copy_from_slice(&b.to_ne_bytes());
        }
        p[4086..].copy_from_slice(b"SWAPSPACE2");
        p
    }

    const UUID: [u8; 16] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
        0xef,
    ];

    #[test]
    fn parses_mkswap_header() {
        assert_eq!((BADPAGES_OFFSET, MAX_SWAP_BADPAGES), (1536, 637));
        let h = parse_swap_header(&mkswap_header(2559, &[7, 9], UUID, "swappy")).unwrap();
        assert_eq!((h.version, h.last_page, h.nr_badpages), (1, 2559, 2));
        assert_eq!(h.badpages, [7, 9]);
        assert_eq!(h.label_str(), Some("swappy"));
        assert_eq!(format_uuid(&h.uuid), "12345678-9abc-def0-0123-456789abcdef");
        assert_eq!(h.max_pages(2560), 2560);
        assert_eq!(h.max_pages(0), 2560);
        assert_eq!(h.max_pages(4096), 2560);
        assert_eq!(h.max_pages(2559), 0, "device shorter than the header says");
    }

    #[test]
    fn rejects_bad_headers() {
        use SwapHeaderError::*;
        let good = mkswap_header(100, &[], UUID, "");
        assert_eq!(parse_swap_header(&good[..4095]), Err(Short));
        let mut p = good.clone();
        p[4086..].copy_from_slice(b"SWAP-SPACE");
        assert_eq!(parse_swap_header(&p), Err(OldVersion));
        p[4086..].copy_from_slice(b"NOTASWAP!!");
        assert_eq!(parse_swap_header(&p), Err(NoSignature));
        let mut p = good.clone();
        p[1024..1028].copy_from_slice(&2u32.to_ne_bytes());
        assert_eq!(parse_swap_header(&p), Err(UnsupportedVersion(2)));
        assert_eq!(
            parse_swap_header(&mkswap_header(0, &[], UUID, "")),
            Err(Empty)
        );
        let mut p = good.clone();
        p[1032..1036].copy_from_slice(&638u32.to_ne_bytes());
        assert_eq!(parse_swap_header(&p), Err(TooManyBadPages(638)));
        assert_eq!(
            parse_swap_header(&mkswap_header(100, &[101], UUID, "")),
            Err(BadPageOutOfRange(101))
        );
        assert_eq!(
            parse_swap_header(&mkswap_header(100, &[0], UUID, "")),
            Err(BadPageOutOfRange(0))
        );
    }

    #[test]
    fn other_endian_header_is_swapped() {
        let mut p = mkswap_header(100, &[5], UUID, "");
        for at in [1024, 1028, 1032, 1536] {
            p[at..at + 4].reverse();
        }
        let h = parse_swap_header(&p).unwrap();
        assert_eq!(
            (h.version, h.last_page, h.badpages.as_slice()),
            (1, 100, &[5][..])
        );
    }

    /// Run the host's mkswap on a temporary file, if there is one, and parse the result.
    #[test]
    fn parses_host_mkswap_output() {
        let Some(mkswap) = ["/sbin/mkswap", "/usr/sbin/mkswap"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        else {
            return;
        };
        let path = std::env::temp_dir().join(format!("mm-core-swap-{}", std::process::id()));
        const PAGES: u64 = 1024;
        std::fs::write(&path, vec![0u8; (PAGES * PAGE_SIZE) as usize]).unwrap();
        let out = std::process::Command::new(mkswap)
            .args([
                "-L",
                "vmscope",
                "-U",
                "12345678-9abc-def0-0123-456789abcdef",
            ])
            .arg(&path)
            .output();
        let data = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        match out {
            Ok(o) if o.status.success() => {}
            _ => return, // mkswap present but unusable here: nothing to check
        }
        let h = parse_swap_header(&data).unwrap();
        assert_eq!(h.last_page as u64, PAGES - 1);
        assert_eq!(h.label_str(), Some("vmscope"));
        assert_eq!(format_uuid(&h.uuid), "12345678-9abc-def0-0123-456789abcdef");
        assert_eq!(h.max_pages(PAGES), PAGES);
    }

    #[test]
    fn proc_swaps_format() {
        // As Linux 6.1 prints a 512 MiB swap file with 1 MiB used, and a partition.
        assert_eq!(
            alloc::format!(
                "{PROC_SWAPS_HEADER}{}",
                proc_swaps_line("/swapfile", false, 131071, 256, -2)
            ),
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
             /swapfile                               file\t\t524284\t\t1024\t\t-2\n"
        );
        assert_eq!(
            proc_swaps_line("/dev/vdb", true, 1 << 22, 0, 5),
            "/dev/vdb                                partition\t16777216\t0\t\t5\n"
        );
        let long = "/a/very/long/path/that/is/longer/than/forty/columns";
        assert!(proc_swaps_line(long, false, 1, 0, -2).starts_with(&alloc::format!("{long} file")));
        assert!(proc_swaps_line("/my swap", false, 1, 0, -3).starts_with("/my\\040swap "));
        assert_eq!(
            (default_swap_priority(0), default_swap_priority(2)),
            (-2, -4)
        );
    }

    #[test]
    fn swap_full_at_half() {
        assert!(!vm_swap_full(50, 100));
        assert!(vm_swap_full(49, 100));
        assert!(!vm_swap_full(0, 0));
    }

    #[test]
    fn map_lifecycle() {
        let mut m = SwapMap::try_new(16, &[3, 40]).unwrap();
        assert_eq!(m.usable_pages(), 14);
        assert!(m.is_bad(0) && m.is_bad(3));
        let a = m.alloc().unwrap();
        assert_eq!(a, 1);
        assert!(m.has_cache(a) && m.count(a) == 0);
        assert_eq!(m.duplicate(a), Ok(())); // the PTE
        assert_eq!(m.count(a), 1);
        assert_eq!(m.swapcache_prepare(a), Err(SwapMapError::Exists));
        assert_eq!(m.put_cache(a), 1); // page reclaimed, PTE remains
        assert_eq!(m.swapcache_prepare(a), Ok(())); // swapin
        assert_eq!(m.free(a), SWAP_HAS_CACHE); // PTE now maps the page
        assert_eq!(m.put_cache(a), 0);
        assert!(m.is_free(a) && m.inuse_pages() == 0);
        assert_eq!(m.duplicate(a), Err(SwapMapError::NotInUse));
        assert_eq!(m.swapcache_prepare(a), Err(SwapMapError::NotInUse));
        assert_eq!(m.duplicate(3), Err(SwapMapError::Bad));
        assert_eq!(m.duplicate(16), Err(SwapMapError::OutOfRange));
        assert_eq!(SwapMapError::CountMax.errno(), 12);
    }

    #[test]
    fn count_saturates_at_max() {
        let mut m = SwapMap::try_new(4, &[]).unwrap();
        let a = m.alloc().unwrap();
        for _ in 0..SWAP_MAP_MAX {
            m.duplicate(a).unwrap();
        }
        assert_eq!(m.duplicate(a), Err(SwapMapError::CountMax));
        assert_eq!(m.count(a), SWAP_MAP_MAX);
    }

    #[test]
    fn fills_every_usable_slot_and_skips_bad() {
        let mut m = SwapMap::try_new(1000, &[10, 500, 999]).unwrap();
        let mut got = Vec::new();
        while let Some(s) = m.alloc() {
            got.push(s);
        }
        got.sort();
        let want: Vec<u64> = (1..1000).filter(|s| ![10, 500, 999].contains(s)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn allocations_are_contiguous_and_restart_at_a_free_cluster() {
        let mut m = SwapMap::try_new(4096, &[]).unwrap();
        let first: Vec<u64> = (0..300).map(|_| m.alloc().unwrap()).collect();
        assert_eq!(first, (1..301).collect::<Vec<_>>());
        // Free a 256-slot hole at the front: the next cluster starts there.
        for s in 1..300 {
            m.put_cache(s);
        }
        let mut next = Vec::new();
        for _ in 0..SWAPFILE_CLUSTER {
            next.push(m.alloc().unwrap());
        }
        // 44 of the cluster that began at 257 were used; the remaining 212 continue after
        // slot 300, then the search for a fresh run finds the hole at the front.
        let want: Vec<u64> = (301..513).chain(1..45).collect();
        assert_eq!(next, want);
    }

    #[test]
    fn next_used_skips_free_and_bad() {
        let mut m = SwapMap::try_new(65536, &[5]).unwrap();
        let mut slots = Vec::new();
        for _ in 0..2000 {
            slots.push(m.alloc().unwrap());
        }
        for &s in &slots {
            if s % 3 != 0 {
                m.put_cache(s);
            }
        }
        let mut seen = Vec::new();
        let mut at = 0;
        while let Some(s) = m.next_used(at) {
            seen.push(s);
            at = s + 1;
        }
        let want: Vec<u64> = slots.iter().copied().filter(|s| s % 3 == 0).collect();
        assert_eq!(seen, want);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Alloc,
        Dup(u16),
        Prepare(u16),
        Free(u16),
        PutCache(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Alloc),
            2 => any::<u16>().prop_map(Op::Dup),
            1 => any::<u16>().prop_map(Op::Prepare),
            2 => any::<u16>().prop_map(Op::Free),
            2 => any::<u16>().prop_map(Op::PutCache),
        ]
    }

    proptest! {
        /// Random operations against a model of (count, cached) per slot.
        #[test]
        fn map_matches_model(
            pages in 2u64..700,
            bad in proptest::collection::vec(1u32..700, 0..8),
            ops in proptest::collection::vec(op(), 1..600),
        ) {
            let mut m = SwapMap::try_new(pages, &bad).unwrap();
            // (count, cache) per slot, None for bad
            let mut model: Vec<Option<(u8, bool)>> = (0..pages)
                .map(|s| (s != 0 && !bad.contains(&(s as u32))).then_some((0, false)))
                .collect();
            let used = |model: &Vec<Option<(u8, bool)>>| model.iter().flatten().filter(|&&(c, h)| c > 0 || h).count() as u64;
            prop_assert_eq!(m.usable_pages(), model.iter().flatten().count() as u64);
            for o in ops {
                match o {
                    Op::Alloc => match m.alloc() {
                        Some(s) => {
                            let e = model[s as usize].as_mut().expect("bad slot handed out");
                            prop_assert_eq!(*e, (0, false), "slot {} handed out twice", s);
                            *e = (0, true);
                        }
                        None => prop_assert_eq!(used(&model), m.usable_pages()),
                    },
                    Op::Dup(s) => {
                        let s = s as u64 % pages;
                        let r = m.duplicate(s);
                        match &mut model[s as usize] {
                            None => prop_assert_eq!(r, Err(SwapMapError::Bad)),
                            Some((0, false)) => prop_assert_eq!(r, Err(SwapMapError::NotInUse)),
                            Some((c, _)) if *c == SWAP_MAP_MAX => prop_assert_eq!(r, Err(SwapMapError::CountMax)),
                            Some((c, _)) => { prop_assert_eq!(r, Ok(())); *c += 1; }
                        }
                    }
                    Op::Prepare(s) => {
                        let s = s as u64 % pages;
                        let r = m.swapcache_prepare(s);
                        match &mut model[s as usize] {
                            None => prop_assert_eq!(r, Err(SwapMapError::Bad)),
                            Some((_, true)) => prop_assert_eq!(r, Err(SwapMapError::Exists)),
                            Some((0, false)) => prop_assert_eq!(r, Err(SwapMapError::NotInUse)),
                            Some((_, h)) => { prop_assert_eq!(r, Ok(())); *h = true; }
                        }
                    }
                    Op::Free(s) => {
                        let s = s as u64 % pages;
                        if let Some((c, h)) = &mut model[s as usize] {
                            if *c > 0 {
                                *c -= 1;
                                let b = m.free(s);
                                prop_assert_eq!(b, *c | if *h { SWAP_HAS_CACHE } else { 0 });
                            }
                        }
                    }
                    Op::PutCache(s) => {
                        let s = s as u64 % pages;
                        if let Some((c, h)) = &mut model[s as usize] {
                            if *h {
                                *h = false;
                                prop_assert_eq!(m.put_cache(s), *c);
                            }
                        }
                    }
                }
                prop_assert_eq!(m.inuse_pages(), used(&model));
            }
            for (s, e) in model.iter().enumerate() {
                let s = s as u64;
                match e {
                    None => prop_assert!(m.is_bad(s)),
                    Some((c, h)) => {
                        prop_assert_eq!((m.count(s), m.has_cache(s)), (*c, *h));
                        prop_assert_eq!(m.is_free(s), *c == 0 && !*h);
                    }
                }
            }
            let mut at = 0;
            let mut walked = Vec::new();
            while let Some(s) = m.next_used(at) { walked.push(s); at = s + 1; }
            let want: Vec<u64> = (0..pages).filter(|&s| matches!(model[s as usize], Some((c, h)) if c > 0 || h)).collect();
            prop_assert_eq!(walked, want);
        }
    }
}
