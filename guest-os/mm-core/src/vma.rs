//! The process address-space map: the set of `vm_area_struct`s an `mm_struct` owns, with the
//! semantics of Linux's `mm/mmap.c`, `mm/vma.c`, `mm/mprotect.c` and `mm/mremap.c`, as a plain
//! data structure.
//!
//! [`VmaTree`] only keeps the bookkeeping: which ranges are mapped, how, and the `mm`
//! counters (`total_vm`, `data_vm`, ...). Page tables, page freeing, TLB flushes, file
//! references, rlimits other than the stack's and overcommit accounting stay with the kernel;
//! every operation that drops or moves mapped ranges returns them so the kernel can act.
//!
//! As in Linux:
//! - VMAs are half-open page-aligned ranges that never overlap; `find_vma` is "first VMA ending
//!   above addr";
//! - a new or changed range merges with neighbours that have the same flags (`VM_SOFTDIRTY`
//!   ignored), the same backing, contiguous `pgoff` and compatible `anon_vma`, unless
//!   `VM_SPECIAL` is set (`vma_merge_new_range`/`vma_modify`);
//! - munmap splits at both ends, mprotect splits and re-merges, mmap placement is top-down
//!   below `mmap_base` with a bottom-up fallback and keeps `stack_guard_gap` below
//!   `VM_GROWSDOWN` VMAs (x86's `arch_get_unmapped_area_topdown`);
//! - `/proc/PID/maps` lines are byte-identical to `show_map_vma()`.
//!
//! Differences from Linux, all deliberate:
//! - **Atomic operations**: every operation validates before changing anything, so an error
//!   leaves the tree untouched. Linux's mprotect applies the change up to a hole and then
//!   fails with ENOMEM; here it fails without changing anything.
//! - `max_map_count` is enforced as "no operation may grow the count beyond the limit";
//!   Linux lets mmap reach limit + 1.
//! - Gap search walks the VMAs (O(n) worst case); the maple tree tracks the largest gap per
//!   node to make it O(log n).
//! - `insert`/`insert_merged` refuse overlaps with EEXIST, which says what is wrong;
//!   `insert_vm_struct` returns ENOMEM.
//! - Allocation failure of the tree's nodes is not reported (BTreeMap has no fallible insert);
//!   the kernel's allocator decides what happens.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use core::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Bound, Not};

use crate::addr::{VirtAddr, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE};

/// `vm_flags_t`: a VMA's `VM_*` bits, with Linux's values (`include/linux/mm.h`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct VmFlags(pub u64);

pub const VM_NONE: VmFlags = VmFlags(0);
pub const VM_READ: VmFlags = VmFlags(0x1);
pub const VM_WRITE: VmFlags = VmFlags(0x2);
pub const VM_EXEC: VmFlags = VmFlags(0x4);
pub const VM_SHARED: VmFlags = VmFlags(0x8);
/// The `VM_MAY*` bits are the ceiling mprotect may raise `VM_READ..VM_SHARED` to; each sits
/// four bits above the bit it permits.
pub const VM_MAYREAD: VmFlags = VmFlags(0x10);
pub const VM_MAYWRITE: VmFlags = VmFlags(0x20);
pub const VM_MAYEXEC: VmFlags = VmFlags(0x40);
pub const VM_MAYSHARE: VmFlags = VmFlags(0x80);
pub const VM_GROWSDOWN: VmFlags = VmFlags(0x100);
pub const VM_UFFD_MISSING: VmFlags = VmFlags(0x200);
pub const VM_PFNMAP: VmFlags = VmFlags(0x400);
pub const VM_UFFD_WP: VmFlags = VmFlags(0x1000);
pub const VM_LOCKED: VmFlags = VmFlags(0x2000);
pub const VM_IO: VmFlags = VmFlags(0x4000);
pub const VM_SEQ_READ: VmFlags = VmFlags(0x8000);
pub const VM_RAND_READ: VmFlags = VmFlags(0x1_0000);
pub const VM_DONTCOPY: VmFlags = VmFlags(0x2_0000);
pub const VM_DONTEXPAND: VmFlags = VmFlags(0x4_0000);
pub const VM_LOCKONFAULT: VmFlags = VmFlags(0x8_0000);
pub const VM_ACCOUNT: VmFlags = VmFlags(0x10_0000);
pub const VM_NORESERVE: VmFlags = VmFlags(0x20_0000);
pub const VM_HUGETLB: VmFlags = VmFlags(0x40_0000);
pub const VM_SYNC: VmFlags = VmFlags(0x80_0000);
pub const VM_WIPEONFORK: VmFlags = VmFlags(0x200_0000);
pub const VM_DONTDUMP: VmFlags = VmFlags(0x400_0000);
pub const VM_SOFTDIRTY: VmFlags = VmFlags(0x800_0000);
pub const VM_MIXEDMAP: VmFlags = VmFlags(0x1000_0000);
pub const VM_HUGEPAGE: VmFlags = VmFlags(0x2000_0000);
pub const VM_NOHUGEPAGE: VmFlags = VmFlags(0x4000_0000);
pub const VM_MERGEABLE: VmFlags = VmFlags(0x8000_0000);

/// The bits mprotect sets (`VM_ACCESS_FLAGS`).
pub const VM_ACCESS_FLAGS: VmFlags = VmFlags(0x7);
/// VMAs that are never merged or expanded: their pages are not ordinary memory.
pub const VM_SPECIAL: VmFlags = VmFlags(VM_IO.0 | VM_DONTEXPAND.0 | VM_PFNMAP.0 | VM_MIXEDMAP.0);
/// The stack's growth direction on x86 (`VM_STACK`).
pub const VM_STACK: VmFlags = VM_GROWSDOWN;
/// x86-64's `VM_DATA_DEFAULT_FLAGS` without `READ_IMPLIES_EXEC`: brk and stack use it.
pub const VM_DATA_DEFAULT_FLAGS: VmFlags =
    VmFlags(VM_READ.0 | VM_WRITE.0 | VM_MAYREAD.0 | VM_MAYWRITE.0 | VM_MAYEXEC.0);
/// The initial stack's flags (`VM_STACK_FLAGS`): shown as `rw-p`.
pub const VM_STACK_FLAGS: VmFlags = VmFlags(VM_STACK.0 | VM_DATA_DEFAULT_FLAGS.0 | VM_ACCOUNT.0);
/// The heap's flags as `do_brk_flags()` builds them (no `mm->def_flags`).
pub const VM_BRK_FLAGS: VmFlags = VmFlags(VM_DATA_DEFAULT_FLAGS.0 | VM_ACCOUNT.0);

impl VmFlags {
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: VmFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub const fn intersects(self, other: VmFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// `calc_vm_prot_bits()`: `PROT_READ`/`PROT_WRITE`/`PROT_EXEC` (1, 2, 4) have the same
    /// values as `VM_READ`/`VM_WRITE`/`VM_EXEC`; other bits are dropped.
    pub const fn from_prot(prot: u32) -> VmFlags {
        VmFlags(prot as u64 & VM_ACCESS_FLAGS.0)
    }

    /// `vm_stat_account()`'s first class: executable, not writable, not stack.
    pub const fn is_exec_mapping(self) -> bool {
        self.0 & (VM_EXEC.0 | VM_WRITE.0 | VM_STACK.0) == VM_EXEC.0
    }

    /// Stack (grows down).
    pub const fn is_stack_mapping(self) -> bool {
        self.0 & VM_STACK.0 == VM_STACK.0
    }

    /// Private writable, not stack: what `RLIMIT_DATA` limits.
    pub const fn is_data_mapping(self) -> bool {
        self.0 & (VM_WRITE.0 | VM_SHARED.0 | VM_STACK.0) == VM_WRITE.0
    }
}

impl fmt::Debug for VmFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VmFlags({:#x})", self.0)
    }
}

impl BitOr for VmFlags {
    type Output = VmFlags;
    fn bitor(self, rhs: VmFlags) -> VmFlags {
        VmFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for VmFlags {
    fn bitor_assign(&mut self, rhs: VmFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for VmFlags {
    type Output = VmFlags;
    fn bitand(self, rhs: VmFlags) -> VmFlags {
        VmFlags(self.0 & rhs.0)
    }
}

impl BitAndAssign for VmFlags {
    fn bitand_assign(&mut self, rhs: VmFlags) {
        self.0 &= rhs.0;
    }
}

impl Not for VmFlags {
    type Output = VmFlags;
    fn not(self) -> VmFlags {
        VmFlags(!self.0)
    }
}

/// Why an operation failed; [`VmaError::errno`] gives the Linux errno the syscall returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmaError {
    /// ENOMEM: no room, range not mapped where it must be, or a limit reached.
    NoMemory,
    /// EINVAL: misaligned address, zero or wrapping length, bad flags.
    Invalid,
    /// EEXIST: the range is already (partly) mapped.
    Exists,
    /// EACCES: the protection exceeds the VMA's `VM_MAY*` bits.
    Access,
    /// EFAULT: no suitable VMA at the address (mremap, stack growth).
    Fault,
    /// EPERM: below `mmap_min_addr`.
    Permission,
    /// EOVERFLOW: the file offset would wrap.
    Overflow,
}

impl VmaError {
    /// The positive errno value (the syscall returns its negation).
    pub const fn errno(self) -> i32 {
        match self {
            VmaError::NoMemory => 12,
            VmaError::Invalid => 22,
            VmaError::Exists => 17,
            VmaError::Access => 13,
            VmaError::Fault => 14,
            VmaError::Permission => 1,
            VmaError::Overflow => 75,
        }
    }
}

impl fmt::Display for VmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VmaError::NoMemory => "ENOMEM",
            VmaError::Invalid => "EINVAL",
            VmaError::Exists => "EEXIST",
            VmaError::Access => "EACCES",
            VmaError::Fault => "EFAULT",
            VmaError::Permission => "EPERM",
            VmaError::Overflow => "EOVERFLOW",
        })
    }
}

/// Longest file name kept per VMA, in bytes; longer names are cut at a char boundary.
pub const MAP_NAME_MAX: usize = 64;

/// A file name for `/proc/PID/maps`, stored inline so that [`Vma`] stays `Copy` and the tree
/// does not need the kernel's file objects to print itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapName {
    len: u8,
    bytes: [u8; MAP_NAME_MAX],
}

impl MapName {
    /// `name`, truncated to [`MAP_NAME_MAX`] bytes at a char boundary.
    pub fn new(name: &str) -> MapName {
        let mut len = name.len().min(MAP_NAME_MAX);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; MAP_NAME_MAX];
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        MapName {
            len: len as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for MapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A mapped file as the VMA sees it: `id` is the kernel's handle (what `vm_file` points to);
/// device, inode and name are what `/proc/PID/maps` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileRef {
    pub id: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub ino: u64,
    pub name: MapName,
}

impl FileRef {
    pub fn new(id: u64, dev_major: u32, dev_minor: u32, ino: u64, name: &str) -> FileRef {
        FileRef {
            id,
            dev_major,
            dev_minor,
            ino,
            name: MapName::new(name),
        }
    }
}

/// What backs a VMA. Two VMAs merge only with equal backings.
///
/// The heap and the stack are `Anon` as in Linux: `/proc/PID/maps` names them `[heap]` and
/// `[stack]` from their position ([`MapsContext`]). `Special` is for mappings with their own
/// `vm_ops->name` (`[vdso]`, `[vvar]`); a kernel that prefers to tag its heap
/// `Special("[heap]")` gets that name printed, but then anonymous mmaps never merge into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backing {
    Anon,
    File(FileRef),
    Special(&'static str),
}

/// One VMA: `[start, end)`, page aligned, non-empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vma {
    pub start: VirtAddr,
    /// Exclusive.
    pub end: VirtAddr,
    pub flags: VmFlags,
    /// The page offset of `start` in the file; for anonymous VMAs `start >> PAGE_SHIFT`,
    /// which keeps neighbours' offsets contiguous so they can merge.
    pub pgoff: u64,
    pub backing: Backing,
    /// The `anon_vma` the kernel's rmap uses, once a page was faulted in. `None` merges with
    /// anything; two different ids never merge (`is_mergeable_anon_vma`).
    pub anon: Option<u64>,
}

/// The `mm_struct` fields the `/proc/PID/maps` names `[heap]` and `[stack]` depend on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapsContext {
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
}

impl Vma {
    /// An anonymous private-style VMA (`pgoff = start >> PAGE_SHIFT`).
    pub const fn anon(start: VirtAddr, end: VirtAddr, flags: VmFlags) -> Vma {
        Vma {
            start,
            end,
            flags,
            pgoff: start.as_u64() >> PAGE_SHIFT,
            backing: Backing::Anon,
            anon: None,
        }
    }

    /// A file VMA mapping the file from page `pgoff` on.
    pub const fn file(
        start: VirtAddr,
        end: VirtAddr,
        flags: VmFlags,
        file: FileRef,
        pgoff: u64,
    ) -> Vma {
        Vma {
            start,
            end,
            flags,
            pgoff,
            backing: Backing::File(file),
            anon: None,
        }
    }

    /// A special mapping (`_install_special_mapping`): pgoff 0, `VM_DONTEXPAND` added so it
    /// never merges or grows.
    pub const fn special(
        start: VirtAddr,
        end: VirtAddr,
        flags: VmFlags,
        name: &'static str,
    ) -> Vma {
        Vma {
            start,
            end,
            flags: VmFlags(flags.0 | VM_DONTEXPAND.0),
            pgoff: 0,
            backing: Backing::Special(name),
            anon: None,
        }
    }

    /// Size in bytes.
    pub const fn size(&self) -> u64 {
        self.end.as_u64().wrapping_sub(self.start.as_u64())
    }

    /// Size in pages (`vma_pages()`).
    pub const fn pages(&self) -> u64 {
        self.size() >> PAGE_SHIFT
    }

    pub const fn contains(&self, addr: VirtAddr) -> bool {
        self.start.as_u64() <= addr.as_u64() && addr.as_u64() < self.end.as_u64()
    }

    /// Any of read, write, exec (`vma_is_accessible()`).
    pub const fn is_accessible(&self) -> bool {
        self.flags.intersects(VM_ACCESS_FLAGS)
    }

    /// The lowest address another mapping may end at below this VMA: `stack_guard_gap` below
    /// a stack (`vm_start_gap()`).
    pub const fn start_gap(&self, stack_guard_gap: u64) -> u64 {
        if self.flags.contains(VM_GROWSDOWN) {
            self.start.as_u64().saturating_sub(stack_guard_gap)
        } else {
            self.start.as_u64()
        }
    }

    /// Whether `next`, starting where `self` ends, can become one VMA with `self`.
    pub fn can_merge_with(&self, next: &Vma) -> bool {
        self.end == next.start
            && (self.flags.0 ^ next.flags.0) & !VM_SOFTDIRTY.0 == 0
            && !self.flags.intersects(VM_SPECIAL)
            && self.backing == next.backing
            && self.pgoff.checked_add(self.pages()) == Some(next.pgoff)
            && (self.anon.is_none() || next.anon.is_none() || self.anon == next.anon)
    }

    /// `self` and `next` as one VMA; only for pairs [`Vma::can_merge_with`] accepts.
    fn merged(&self, next: &Vma) -> Vma {
        Vma {
            end: next.end,
            flags: self.flags | (next.flags & VM_SOFTDIRTY),
            anon: self.anon.or(next.anon),
            ..*self
        }
    }

    /// The part `[from, to)` of this VMA, offset adjusted; the range must lie inside.
    fn slice(&self, from: u64, to: u64) -> Vma {
        Vma {
            start: VirtAddr::new(from),
            end: VirtAddr::new(to),
            pgoff: self
                .pgoff
                .wrapping_add((from - self.start.as_u64()) >> PAGE_SHIFT),
            ..*self
        }
    }

    /// Checks a caller-built VMA before it enters the tree.
    fn validate(&self) -> Result<(), VmaError> {
        let (s, e) = (self.start.as_u64(), self.end.as_u64());
        if s & PAGE_MASK != 0 || e & PAGE_MASK != 0 || s >= e {
            return Err(VmaError::Invalid);
        }
        if self.pgoff.checked_add(self.pages()).is_none() {
            return Err(VmaError::Overflow);
        }
        Ok(())
    }

    /// This VMA's `/proc/PID/maps` line, without the newline.
    pub fn maps_line<'a>(&'a self, ctx: &'a MapsContext) -> MapsLine<'a> {
        MapsLine { vma: self, ctx }
    }

    /// The name `get_vma_name()` picks: file path, special name, then `[heap]`/`[stack]` by
    /// position. The flag says whether it is a path (which gets `\n` escaped).
    fn maps_name<'a>(&'a self, ctx: &MapsContext) -> Option<(&'a str, bool)> {
        let (s, e) = (self.start.as_u64(), self.end.as_u64());
        match &self.backing {
            Backing::File(f) => Some((f.name.as_str(), true)),
            Backing::Special(name) => Some((name, false)),
            // vma_is_initial_heap() / vma_is_initial_stack() of Linux 6.x.
            Backing::Anon if s < ctx.brk && e > ctx.start_brk => Some(("[heap]", false)),
            Backing::Anon if s <= ctx.start_stack && e >= ctx.start_stack => {
                Some(("[stack]", false))
            }
            Backing::Anon => None,
        }
    }
}

/// One `/proc/PID/maps` line ([`Vma::maps_line`]).
pub struct MapsLine<'a> {
    vma: &'a Vma,
    ctx: &'a MapsContext,
}

/// Counts what goes through it, for `seq_pad()`'s column.
struct Counting<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    n: usize,
}

impl fmt::Write for Counting<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.n += s.len();
        self.f.write_str(s)
    }
}

/// `show_vma_header_prefix()` pads to this column (`25 + sizeof(void *) * 6 - 1`) before
/// the space that precedes the name.
const MAPS_NAME_PAD: usize = 72;

impl fmt::Display for MapsLine<'_> {
    /// `%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu `, then, for named VMAs, spaces up to
    /// column 72, one more space and the name. The offset is in bytes and only shown for file
    /// VMAs; `s` means `VM_MAYSHARE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let v = self.vma;
        let (off, major, minor, ino) = match &v.backing {
            Backing::File(file) => (
                v.pgoff << PAGE_SHIFT,
                file.dev_major,
                file.dev_minor,
                file.ino,
            ),
            _ => (0, 0, 0, 0),
        };
        let bit = |flag: VmFlags, c: char| if v.flags.contains(flag) { c } else { '-' };
        let mut w = Counting { f, n: 0 };
        write!(
            w,
            "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {} ",
            v.start.as_u64(),
            v.end.as_u64(),
            bit(VM_READ, 'r'),
            bit(VM_WRITE, 'w'),
            bit(VM_EXEC, 'x'),
            if v.flags.contains(VM_MAYSHARE) {
                's'
            } else {
                'p'
            },
            off,
            major,
            minor,
            ino
        )?;
        let Some((name, is_path)) = v.maps_name(self.ctx) else {
            return Ok(());
        };
        while w.n < MAPS_NAME_PAD {
            w.write_char(' ')?;
        }
        w.write_char(' ')?;
        if !is_path {
            return w.write_str(name);
        }
        // seq_path(m, path, "\n"): a newline in a path is printed as octal.
        let mut parts = name.split('\n');
        if let Some(first) = parts.next() {
            w.write_str(first)?;
        }
        for part in parts {
            w.write_str("\\012")?;
            w.write_str(part)?;
        }
        Ok(())
    }
}

/// The `mm_struct` counters `vm_stat_account()` keeps, in pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmStat {
    /// Every mapped page.
    pub total_vm: u64,
    /// Pages of `VM_LOCKED` VMAs.
    pub locked_vm: u64,
    /// Private writable, non-stack pages (`RLIMIT_DATA`).
    pub data_vm: u64,
    /// Executable, non-writable, non-stack pages.
    pub exec_vm: u64,
    /// Stack pages.
    pub stack_vm: u64,
}

impl VmStat {
    /// Adds (or with `remove`, subtracts) a VMA's pages to its classes.
    fn account(&mut self, flags: VmFlags, pages: u64, remove: bool) {
        let apply = |c: &mut u64| {
            *c = if remove {
                c.wrapping_sub(pages)
            } else {
                c.wrapping_add(pages)
            }
        };
        apply(&mut self.total_vm);
        if flags.contains(VM_LOCKED) {
            apply(&mut self.locked_vm);
        }
        if flags.is_exec_mapping() {
            apply(&mut self.exec_vm);
        } else if flags.is_stack_mapping() {
            apply(&mut self.stack_vm);
        } else if flags.is_data_mapping() {
            apply(&mut self.data_vm);
        }
    }
}

/// x86-64's user address-space end with 4-level paging (`TASK_SIZE_MAX`).
pub const TASK_SIZE_MAX: u64 = (1 << 47) - PAGE_SIZE;
/// Linux's default `stack_guard_gap`: 256 pages.
pub const DEFAULT_STACK_GUARD_GAP: u64 = 256 << PAGE_SHIFT;
/// Linux's default `vm.mmap_min_addr` on x86.
pub const DEFAULT_MMAP_MIN_ADDR: u64 = 65536;
/// Linux's default `vm.max_map_count` (`USHRT_MAX - 5`).
pub const DEFAULT_MAX_MAP_COUNT: usize = 65530;

/// Where mmap places things: the `mm_struct` layout fields and sysctls that
/// `get_unmapped_area` and stack growth read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmapLayout {
    /// End of user space (`TASK_SIZE`).
    pub task_size: u64,
    /// Top of the top-down mmap area (`mm->mmap_base`), below the stack's reserve.
    pub mmap_base: u64,
    /// Start of the bottom-up fallback search (`mm->mmap_legacy_base`).
    pub legacy_base: u64,
    /// Nothing is mapped below this (`vm.mmap_min_addr`).
    pub mmap_min_addr: u64,
    /// Kept free below `VM_GROWSDOWN` VMAs (`stack_guard_gap`).
    pub stack_guard_gap: u64,
}

impl MmapLayout {
    /// x86's `arch_pick_mmap_layout()` for a task of `task_size` with stack limit
    /// `stack_rlimit`: `mmap_base` leaves the stack limit, the guard gap and (when
    /// randomizing) the stack's 16 GiB random range below `task_size`, clamped to
    /// [128 MiB, 5/6 of the space]; `random` is the page-aligned mmap randomization, `None`
    /// without `PF_RANDOMIZE`.
    pub fn new(task_size: u64, stack_rlimit: u64, random: Option<u64>) -> MmapLayout {
        let task_size = task_size & !PAGE_MASK;
        let stack_random = if random.is_some() {
            0x3f_ffff << PAGE_SHIFT
        } else {
            0
        };
        let rnd = random.unwrap_or(0) & !PAGE_MASK;
        let pad = stack_random + DEFAULT_STACK_GUARD_GAP;
        let gap = stack_rlimit.checked_add(pad).unwrap_or(stack_rlimit);
        let gap = gap.clamp(128 << 20, (task_size / 6 * 5).max(128 << 20));
        let base = task_size.saturating_sub(gap).saturating_sub(rnd);
        let legacy = (task_size / 3).next_multiple_of(PAGE_SIZE);
        MmapLayout {
            task_size,
            mmap_base: base.next_multiple_of(PAGE_SIZE),
            legacy_base: legacy.saturating_add(rnd).min(task_size),
            mmap_min_addr: DEFAULT_MMAP_MIN_ADDR,
            stack_guard_gap: DEFAULT_STACK_GUARD_GAP,
        }
    }
}

/// How mmap picks the address (`MAP_FIXED`, `MAP_FIXED_NOREPLACE`, neither).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// The hint is used when free, otherwise a free range is searched.
    Anywhere,
    /// Exactly the hint; whatever is there is replaced (the caller unmaps it).
    Fixed,
    /// Exactly the hint, EEXIST if anything is mapped there.
    FixedNoReplace,
}

/// A `brk()` call: the requested break plus the `mm` fields it is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrkRequest {
    /// The new break the caller asked for (unaligned).
    pub brk: u64,
    /// `mm->brk`: the current break (unaligned).
    pub cur_brk: u64,
    /// `mm->start_brk`.
    pub start_brk: u64,
    /// The lowest allowed break: `start_brk`, or `end_data` with `CONFIG_COMPAT_BRK` and no
    /// randomization.
    pub min_brk: u64,
    /// Flags of new heap pages: [`VM_BRK_FLAGS`] plus `mm->def_flags`.
    pub flags: VmFlags,
}

/// What a successful `brk()` changed; the kernel then stores the requested break in `mm->brk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrkOutcome {
    /// Same page-aligned break: only `mm->brk` changes.
    Unchanged,
    /// `[start, end)` is newly mapped (populate it if `VM_LOCKED`).
    Grown { start: VirtAddr, end: VirtAddr },
    /// These pieces were unmapped: free their pages.
    Shrunk(Vec<Vma>),
}

/// `(start, start + PAGE_ALIGN(len))` for a page-aligned `start`, or `None` when `len`
/// rounds past the end of the address space.
fn page_range(start: u64, len: u64) -> Option<(u64, u64)> {
    let len = len.checked_add(PAGE_MASK)? & !PAGE_MASK;
    Some((start, start.checked_add(len)?))
}

/// Merges neighbouring pieces where at least one of them is new or changed (the flag), the
/// way Linux only merges around the range an operation touched. Greedy from the left: with
/// three-way anon conflicts it merges with the lower VMA first, like `vma_merge`.
fn merge_pieces(pieces: Vec<(Vma, bool)>) -> Vec<Vma> {
    let mut out: Vec<(Vma, bool)> = Vec::with_capacity(pieces.len());
    for (v, changed) in pieces {
        if let Some((last, last_changed)) = out.last_mut() {
            if (*last_changed || changed) && last.can_merge_with(&v) {
                *last = last.merged(&v);
                *last_changed = true;
                continue;
            }
        }
        out.push((v, changed));
    }
    out.into_iter().map(|(v, _)| v).collect()
}

/// The VMAs around `[start, end)`: those intersecting it and the ones touching its ends.
struct Span {
    /// The VMA ending exactly where the window (range or first affected VMA) starts.
    prev: Option<Vma>,
    affected: Vec<Vma>,
    /// The VMA starting exactly where the window (range or last affected VMA) ends.
    next: Option<Vma>,
}

impl Span {
    /// `prev`, `affected`, `next` in address order.
    fn all(&self) -> Vec<Vma> {
        let mut v = Vec::with_capacity(self.affected.len() + 2);
        v.extend(self.prev);
        v.extend_from_slice(&self.affected);
        v.extend(self.next);
        v
    }
}

/// The VMAs of one address space, in a B-tree keyed by each VMA's (exclusive) end.
///
/// Keyed by end because the hot lookup is `find_vma(addr)`, "the first VMA ending above
/// addr" (every page fault): with end keys it is a single range query. Linux's maple tree is
/// likewise a B-tree over ranges searched by their last address. Start-keyed lookups
/// (`find_exact`, the neighbour before a range) are also one query, since the previous VMA
/// of one starting at `s` is the one whose key is `s`. VMAs never overlap, so both orders are
/// the address order.
#[derive(Clone, Debug)]
pub struct VmaTree {
    by_end: BTreeMap<u64, Vma>,
    stat: VmStat,
    max_map_count: usize,
}

impl Default for VmaTree {
    fn default() -> Self {
        Self::new()
    }
}

impl VmaTree {
    /// An empty address space with Linux's default `max_map_count`.
    pub const fn new() -> Self {
        VmaTree {
            by_end: BTreeMap::new(),
            stat: VmStat {
                total_vm: 0,
                locked_vm: 0,
                data_vm: 0,
                exec_vm: 0,
                stack_vm: 0,
            },
            max_map_count: DEFAULT_MAX_MAP_COUNT,
        }
    }

    /// The number of VMAs (`mm->map_count`).
    pub fn len(&self) -> usize {
        self.by_end.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_end.is_empty()
    }

    /// The most VMAs an operation may leave (`vm.max_map_count`).
    pub fn max_map_count(&self) -> usize {
        self.max_map_count
    }

    /// Lowering the limit below the current count only stops further growth.
    pub fn set_max_map_count(&mut self, max: usize) {
        self.max_map_count = max;
    }

    /// The `vm_stat_account()` counters.
    pub fn stat(&self) -> VmStat {
        self.stat
    }

    /// All VMAs in address order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Vma> + '_ {
        self.by_end.values()
    }

    /// The first VMA ending above `addr`; it may start above `addr` (Linux `find_vma`).
    pub fn find_vma(&self, addr: VirtAddr) -> Option<&Vma> {
        self.first_ending_after(addr.as_u64())
    }

    /// The VMA containing `addr` (`vma_lookup`).
    pub fn vma_lookup(&self, addr: VirtAddr) -> Option<&Vma> {
        self.find_vma(addr).filter(|v| v.start <= addr)
    }

    /// The VMA before `find_vma(addr)`'s, i.e. the last one ending at or below `addr`
    /// (`find_vma_prev`'s second result).
    pub fn find_vma_prev(&self, addr: VirtAddr) -> Option<&Vma> {
        let v = self.find_vma(addr);
        let limit = v.map_or(u64::MAX, |v| v.start.as_u64());
        self.by_end.range(..=limit).next_back().map(|(_, v)| v)
    }

    /// The first VMA intersecting `[start, end)`.
    pub fn find_vma_intersection(&self, start: VirtAddr, end: VirtAddr) -> Option<&Vma> {
        self.find_vma(start).filter(|v| v.start < end)
    }

    /// The VMA spanning exactly `[start, end)` (`find_exact_vma`).
    pub fn find_exact(&self, start: VirtAddr, end: VirtAddr) -> Option<&Vma> {
        self.by_end.get(&end.as_u64()).filter(|v| v.start == start)
    }

    /// The VMAs intersecting `[start, end)`, in address order.
    pub fn range(&self, start: VirtAddr, end: VirtAddr) -> impl Iterator<Item = &Vma> + '_ {
        self.intersecting(start.as_u64(), end.as_u64())
    }

    /// Writes `/proc/PID/maps`: one line per VMA.
    pub fn write_maps<W: fmt::Write>(&self, w: &mut W, ctx: &MapsContext) -> fmt::Result {
        self.iter()
            .try_for_each(|v| writeln!(w, "{}", v.maps_line(ctx)))
    }

    fn first_ending_after(&self, addr: u64) -> Option<&Vma> {
        self.by_end
            .range((Bound::Excluded(addr), Bound::Unbounded))
            .next()
            .map(|(_, v)| v)
    }

    fn intersecting(&self, start: u64, end: u64) -> impl Iterator<Item = &Vma> + '_ {
        self.by_end
            .range((Bound::Excluded(start), Bound::Unbounded))
            .map(|(_, v)| v)
            .take_while(move |v| v.start.as_u64() < end)
    }

    fn span(&self, start: u64, end: u64) -> Span {
        let affected: Vec<Vma> = self.intersecting(start, end).copied().collect();
        // The window's ends: the range's, or further out where a VMA straddles them.
        let lo = affected
            .first()
            .map_or(start, |v| v.start.as_u64().min(start));
        let hi = affected.last().map_or(end, |v| v.end.as_u64().max(end));
        Span {
            prev: self.by_end.get(&lo).copied(),
            affected,
            next: self
                .first_ending_after(hi)
                .filter(|v| v.start.as_u64() == hi)
                .copied(),
        }
    }

    fn link(&mut self, v: Vma) {
        self.stat.account(v.flags, v.pages(), false);
        self.by_end.insert(v.end.as_u64(), v);
    }

    fn unlink(&mut self, end: u64) -> Option<Vma> {
        let v = self.by_end.remove(&end)?;
        self.stat.account(v.flags, v.pages(), true);
        Some(v)
    }

    /// Replaces the VMAs `old` by `new`, both in address order, unless that would raise the
    /// count above `max_map_count`. VMAs present in both are left in place.
    fn replace(&mut self, old: &[Vma], new: &[Vma]) -> Result<(), VmaError> {
        let after = self.len() - old.len() + new.len();
        if new.len() > old.len() && after > self.max_map_count {
            return Err(VmaError::NoMemory);
        }
        // Equal VMAs have equal ends, so one pass over both sorted lists finds them.
        let mut same = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < old.len() && j < new.len() {
            match old[i].end.cmp(&new[j].end) {
                core::cmp::Ordering::Less => i += 1,
                core::cmp::Ordering::Greater => j += 1,
                core::cmp::Ordering::Equal => {
                    if old[i] == new[j] {
                        same.push((i, j));
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        let mut keep = same.iter().peekable();
        for (i, o) in old.iter().enumerate() {
            if keep.next_if(|(k, _)| *k == i).is_none() {
                self.unlink(o.end.as_u64());
            }
        }
        let mut keep = same.iter().peekable();
        for (j, n) in new.iter().enumerate() {
            if keep.next_if(|(_, k)| *k == j).is_none() {
                self.link(*n);
            }
        }
        Ok(())
    }

    /// Adds `vma` as it is, without merging (`insert_vm_struct`, used for the initial stack
    /// and special mappings). EEXIST if any of its range is mapped.
    pub fn insert(&mut self, vma: Vma) -> Result<(), VmaError> {
        vma.validate()?;
        if self.find_vma_intersection(vma.start, vma.end).is_some() {
            return Err(VmaError::Exists);
        }
        self.replace(&[], &[vma])
    }

    /// Adds `vma` into a free range, merged with compatible neighbours (mmap's
    /// `vma_merge_new_range`). Returns the VMA that now covers the range. EEXIST if any of the
    /// range is mapped: MAP_FIXED callers unmap first, or use [`VmaTree::map_fixed`].
    pub fn insert_merged(&mut self, vma: Vma) -> Result<Vma, VmaError> {
        vma.validate()?;
        let span = self.span(vma.start.as_u64(), vma.end.as_u64());
        if !span.affected.is_empty() {
            return Err(VmaError::Exists);
        }
        let mut pieces = Vec::with_capacity(3);
        pieces.extend(span.prev.map(|v| (v, false)));
        pieces.push((vma, true));
        pieces.extend(span.next.map(|v| (v, false)));
        let new = merge_pieces(pieces);
        self.replace(&span.all(), &new)?;
        Ok(new
            .iter()
            .find(|v| v.contains(vma.start))
            .copied()
            .unwrap_or(vma))
    }

    /// MAP_FIXED's `mmap_region`: unmaps whatever is in `vma`'s range, then maps `vma` merged
    /// with its neighbours, as one step. Returns the unmapped pieces.
    pub fn map_fixed(&mut self, vma: Vma) -> Result<Vec<Vma>, VmaError> {
        vma.validate()?;
        let (start, end) = (vma.start.as_u64(), vma.end.as_u64());
        let span = self.span(start, end);
        let mut pieces = Vec::with_capacity(5);
        let mut removed = Vec::with_capacity(span.affected.len());
        pieces.extend(span.prev.map(|v| (v, false)));
        for a in &span.affected {
            let (s, e) = (a.start.as_u64(), a.end.as_u64());
            if s < start {
                pieces.push((a.slice(s, start), false));
            }
            removed.push(a.slice(s.max(start), e.min(end)));
        }
        pieces.push((vma, true));
        // Only the last affected VMA can reach past `end`.
        if let Some(last) = span.affected.last() {
            let e = last.end.as_u64();
            if e > end {
                pieces.push((last.slice(end, e), false));
            }
        }
        pieces.extend(span.next.map(|v| (v, false)));
        self.replace(&span.all(), &merge_pieces(pieces))?;
        Ok(removed)
    }

    /// Splits the VMA containing `addr` at `addr` (`split_vma`); the upper part's `pgoff`
    /// advances. Returns false, changing nothing, when `addr` is a VMA boundary or unmapped.
    pub fn split(&mut self, addr: VirtAddr) -> Result<bool, VmaError> {
        let a = addr.as_u64();
        if a & PAGE_MASK != 0 {
            return Err(VmaError::Invalid);
        }
        let Some(v) = self.vma_lookup(addr).copied() else {
            return Ok(false);
        };
        if v.start == addr {
            return Ok(false);
        }
        let (s, e) = (v.start.as_u64(), v.end.as_u64());
        self.replace(&[v], &[v.slice(s, a), v.slice(a, e)])?;
        Ok(true)
    }

    /// munmap: removes `[start, start + PAGE_ALIGN(len))` from every VMA it touches, splitting
    /// VMAs that straddle either end. Unmapped parts of the range are fine. Returns the removed
    /// pieces (offsets adjusted) in address order so the kernel can free their pages.
    pub fn unmap(&mut self, start: VirtAddr, len: u64) -> Result<Vec<Vma>, VmaError> {
        let start = start.as_u64();
        if start & PAGE_MASK != 0 || len == 0 {
            return Err(VmaError::Invalid);
        }
        let (start, end) = page_range(start, len).ok_or(VmaError::Invalid)?;
        self.unmap_range(start, end)
    }

    fn unmap_range(&mut self, start: u64, end: u64) -> Result<Vec<Vma>, VmaError> {
        let affected: Vec<Vma> = self.intersecting(start, end).copied().collect();
        if affected.is_empty() {
            return Ok(Vec::new());
        }
        let mut keep = Vec::with_capacity(2);
        let mut removed = Vec::with_capacity(affected.len());
        for a in &affected {
            let (s, e) = (a.start.as_u64(), a.end.as_u64());
            if s < start {
                keep.push(a.slice(s, start));
            }
            removed.push(a.slice(s.max(start), e.min(end)));
            if e > end {
                keep.push(a.slice(end, e));
            }
        }
        self.replace(&affected, &keep)?;
        Ok(removed)
    }

    /// Removes every VMA (exit_mmap) and returns them.
    pub fn unmap_all(&mut self) -> Vec<Vma> {
        self.stat = VmStat::default();
        core::mem::take(&mut self.by_end).into_values().collect()
    }

    /// Set `set` and clear `clear` in the flags of every VMA in `[start, start + len)`,
    /// splitting at the range's edges and merging after, as `madvise_update_vma` does
    /// for MADV_HUGEPAGE / MADV_NOHUGEPAGE. ENOMEM (`NoMemory`) if part of the range is
    /// unmapped; nothing changes then.
    pub fn update_flags(
        &mut self,
        start: VirtAddr,
        len: u64,
        set: VmFlags,
        clear: VmFlags,
    ) -> Result<(), VmaError> {
        let start = start.as_u64();
        if start & PAGE_MASK != 0 {
            return Err(VmaError::Invalid);
        }
        if len == 0 {
            return Ok(());
        }
        let (start, end) = page_range(start, len).ok_or(VmaError::NoMemory)?;
        let span = self.span(start, end);
        let mut pos = start;
        let mut pieces = Vec::with_capacity(span.affected.len() + 4);
        pieces.extend(span.prev.map(|v| (v, false)));
        for a in &span.affected {
            let (s, e) = (a.start.as_u64(), a.end.as_u64());
            if s > pos {
                return Err(VmaError::NoMemory);
            }
            pos = e;
            let flags = (a.flags & !clear) | set;
            if flags == a.flags {
                pieces.push((*a, false));
                continue;
            }
            let lo = s.max(start);
            let hi = e.min(end);
            if s < lo {
                pieces.push((a.slice(s, lo), false));
            }
            pieces.push((
                Vma {
                    flags,
                    ..a.slice(lo, hi)
                },
                true,
            ));
            if hi < e {
                pieces.push((a.slice(hi, e), false));
            }
        }
        if pos < end {
            return Err(VmaError::NoMemory);
        }
        pieces.extend(span.next.map(|v| (v, false)));
        self.replace(&span.all(), &merge_pieces(pieces))?;
        Ok(())
    }

    /// mprotect: sets the access bits of `[start, start + PAGE_ALIGN(len))` to `prot` (only
    /// `VM_READ|VM_WRITE|VM_EXEC`; other bits are EINVAL). The range must be mapped without
    /// holes (ENOMEM) and every VMA must permit `prot` through its `VM_MAY*` bits (EACCES);
    /// the first problem in address order decides, and nothing changes on error. Changed
    /// parts split off and merge with compatible neighbours.
    ///
    /// Making a private, unaccounted VMA writable sets `VM_ACCOUNT` as Linux does; the
    /// return value is the number of pages newly charged that way, for the kernel's commit
    /// accounting.
    pub fn mprotect(&mut self, start: VirtAddr, len: u64, prot: VmFlags) -> Result<u64, VmaError> {
        let start = start.as_u64();
        if start & PAGE_MASK != 0 || prot.intersects(!VM_ACCESS_FLAGS) {
            return Err(VmaError::Invalid);
        }
        if len == 0 {
            return Ok(0);
        }
        let (start, end) = page_range(start, len).ok_or(VmaError::NoMemory)?;
        let span = self.span(start, end);
        let mut pos = start;
        let mut pieces = Vec::with_capacity(span.affected.len() + 4);
        let mut charged = 0;
        pieces.extend(span.prev.map(|v| (v, false)));
        for a in &span.affected {
            let (s, e) = (a.start.as_u64(), a.end.as_u64());
            if s > pos {
                return Err(VmaError::NoMemory);
            }
            pos = e;
            let mut flags = (a.flags & !VM_ACCESS_FLAGS) | prot;
            // Each access bit needs its VM_MAY* bit, four places up.
            if flags.0 & !(flags.0 >> 4) & VM_ACCESS_FLAGS.0 != 0 {
                return Err(VmaError::Access);
            }
            let lo = s.max(start);
            let hi = e.min(end);
            if flags.contains(VM_WRITE)
                && !a
                    .flags
                    .intersects(VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE)
            {
                flags |= VM_ACCOUNT;
                charged += (hi - lo) >> PAGE_SHIFT;
            }
            if flags == a.flags {
                pieces.push((*a, false));
                continue;
            }
            if s < lo {
                pieces.push((a.slice(s, lo), false));
            }
            pieces.push((
                Vma {
                    flags,
                    ..a.slice(lo, hi)
                },
                true,
            ));
            if hi < e {
                pieces.push((a.slice(hi, e), false));
            }
        }
        if pos < end {
            return Err(VmaError::NoMemory);
        }
        pieces.extend(span.next.map(|v| (v, false)));
        self.replace(&span.all(), &merge_pieces(pieces))?;
        Ok(charged)
    }

    /// Whether `[addr, addr + len)` is free with the stack guard gap below the next VMA kept.
    fn fits_at(&self, addr: u64, len: u64, guard: u64) -> bool {
        match (self.first_ending_after(addr), addr.checked_add(len)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(v), Some(end)) => end <= v.start_gap(guard),
        }
    }

    /// The highest `len`-byte range in `[low, high)` that [`Self::fits_at`] accepts
    /// (`unmapped_area_topdown`).
    fn top_down(&self, len: u64, low: u64, high: u64, guard: u64) -> Option<u64> {
        let fits = |lo: u64, hi: u64| hi >= lo && hi - lo >= len;
        if !fits(low, high) {
            return None;
        }
        // The VMA just above the range limits its top by its start gap.
        let mut gap_hi = self
            .first_ending_after(high)
            .map_or(high, |v| v.start_gap(guard).min(high));
        for v in self.by_end.range(..=high).rev().map(|(_, v)| v) {
            let gap_lo = v.end.as_u64().max(low);
            if fits(gap_lo, gap_hi) {
                return Some(gap_hi - len);
            }
            // Every lower gap ends at or below v's start. The guard gap only limits the gap
            // right below v: it may reach past the next VMA down, which then bounds its own gap.
            if !fits(low, v.start.as_u64()) {
                return None;
            }
            gap_hi = v.start_gap(guard);
        }
        fits(low, gap_hi).then(|| gap_hi - len)
    }

    /// The lowest `len`-byte range in `[low, high)` that [`Self::fits_at`] accepts
    /// (`unmapped_area`).
    fn bottom_up(&self, len: u64, low: u64, high: u64, guard: u64) -> Option<u64> {
        let mut cand = low;
        let fits_below = |cand: u64, limit: u64| cand.checked_add(len).is_some_and(|e| e <= limit);
        for v in self
            .by_end
            .range((Bound::Excluded(low), Bound::Unbounded))
            .map(|(_, v)| v)
        {
            if !fits_below(cand, high) {
                return None;
            }
            if fits_below(cand, v.start_gap(guard)) {
                return Some(cand);
            }
            cand = cand.max(v.end.as_u64());
        }
        fits_below(cand, high).then_some(cand)
    }

    /// Picks the address for an mmap of `len` bytes (rounded up to pages), as x86's
    /// `arch_get_unmapped_area_topdown` with `__get_unmapped_area`'s checks:
    /// - `Fixed`/`FixedNoReplace`: the hint itself, if page aligned (EINVAL), inside
    ///   `task_size` (ENOMEM) and not below `mmap_min_addr` (EPERM); `FixedNoReplace` fails
    ///   with EEXIST when anything is mapped there. `Fixed` does not look at existing VMAs: the
    ///   caller replaces them ([`VmaTree::map_fixed`]).
    /// - `Anywhere`: a non-zero hint (rounded down to a page, raised to `mmap_min_addr`) is
    ///   used when free and below the next VMA's start gap; otherwise the highest fitting
    ///   range ending at or below `mmap_base`, then the lowest from `legacy_base` up to
    ///   `task_size`; ENOMEM when neither exists.
    ///
    /// Free means also at least `stack_guard_gap` below any `VM_GROWSDOWN` VMA.
    pub fn get_unmapped_area(
        &self,
        len: u64,
        hint: VirtAddr,
        placement: Placement,
        layout: &MmapLayout,
    ) -> Result<VirtAddr, VmaError> {
        if len == 0 {
            return Err(VmaError::Invalid);
        }
        let len = len.checked_add(PAGE_MASK).ok_or(VmaError::NoMemory)? & !PAGE_MASK;
        let task_size = layout.task_size;
        if len > task_size {
            return Err(VmaError::NoMemory);
        }
        let guard = layout.stack_guard_gap;
        let mut addr = hint.as_u64();
        if placement != Placement::Anywhere {
            if addr > task_size - len {
                return Err(VmaError::NoMemory);
            }
            if addr & PAGE_MASK != 0 {
                return Err(VmaError::Invalid);
            }
            if addr < layout.mmap_min_addr {
                return Err(VmaError::Permission);
            }
            if placement == Placement::FixedNoReplace
                && self
                    .find_vma_intersection(hint, VirtAddr::new(addr + len))
                    .is_some()
            {
                return Err(VmaError::Exists);
            }
            return Ok(hint);
        }
        let low = layout.mmap_min_addr.max(PAGE_SIZE);
        if addr != 0 {
            // round_hint_to_min(), then x86's hint check.
            addr &= !PAGE_MASK;
            if addr < layout.mmap_min_addr {
                addr = layout
                    .mmap_min_addr
                    .checked_next_multiple_of(PAGE_SIZE)
                    .unwrap_or(u64::MAX);
            }
            if addr <= task_size - len && self.fits_at(addr, len, guard) {
                return Ok(VirtAddr::new(addr));
            }
        }
        self.top_down(len, low, layout.mmap_base.min(task_size), guard)
            .or_else(|| self.bottom_up(len, layout.legacy_base.max(low), task_size, guard))
            .map(VirtAddr::new)
            .ok_or(VmaError::NoMemory)
    }

    /// Grows the `VM_GROWSDOWN` VMA above `addr` down to cover `addr`'s page, for a fault
    /// below the stack (`expand_downwards`). Returns the pages added (0 when `addr` is already
    /// mapped).
    ///
    /// EFAULT when no VMA is above `addr` or it does not grow down; EPERM below
    /// `mmap_min_addr`; ENOMEM when the VMA below (unless itself a stack or inaccessible)
    /// would be closer than `stack_guard_gap`, when the stack would exceed `stack_rlimit`
    /// bytes, or when its offset would go negative.
    pub fn expand_stack(
        &mut self,
        addr: VirtAddr,
        layout: &MmapLayout,
        stack_rlimit: u64,
    ) -> Result<u64, VmaError> {
        let v = *self.find_vma(addr).ok_or(VmaError::Fault)?;
        if v.start <= addr {
            return Ok(0);
        }
        if !v.flags.contains(VM_GROWSDOWN) {
            return Err(VmaError::Fault);
        }
        let a = addr.as_u64() & !PAGE_MASK;
        if a < layout.mmap_min_addr {
            return Err(VmaError::Permission);
        }
        if let Some(prev) = self.by_end.range(..=a).next_back().map(|(_, p)| p) {
            if !prev.flags.contains(VM_GROWSDOWN)
                && prev.is_accessible()
                && a - prev.end.as_u64() < layout.stack_guard_gap
            {
                return Err(VmaError::NoMemory);
            }
        }
        let grow = (v.start.as_u64() - a) >> PAGE_SHIFT;
        if grow > v.pgoff || v.end.as_u64() - a > stack_rlimit {
            return Err(VmaError::NoMemory);
        }
        let grown = Vma {
            start: VirtAddr::new(a),
            pgoff: v.pgoff - grow,
            ..v
        };
        self.replace(&[v], &[grown])?;
        Ok(grow)
    }

    /// mremap's checks for growing `[addr, addr + old_len)` to `new_len` bytes where it is
    /// (`vma_to_resize` + `vma_expandable`). Returns the piece to add after the VMA, `None`
    /// when the size does not change.
    fn check_grow_in_place(
        &self,
        addr: VirtAddr,
        old_len: u64,
        new_len: u64,
        layout: &MmapLayout,
    ) -> Result<Option<Vma>, VmaError> {
        let a = addr.as_u64();
        let align = |l: u64| l.checked_add(PAGE_MASK).map(|l| l & !PAGE_MASK);
        let (Some(old_len), Some(new_len)) = (align(old_len), align(new_len)) else {
            return Err(VmaError::Invalid);
        };
        if a & PAGE_MASK != 0 || old_len == 0 || new_len == 0 || new_len < old_len {
            return Err(VmaError::Invalid);
        }
        let v = *self.vma_lookup(addr).ok_or(VmaError::Fault)?;
        let to_end = v.end.as_u64() - a;
        if old_len > to_end {
            return Err(VmaError::Fault);
        }
        if new_len == old_len {
            return Ok(None);
        }
        if v.flags.intersects(VM_DONTEXPAND | VM_PFNMAP) {
            return Err(VmaError::Fault);
        }
        if old_len != to_end {
            return Err(VmaError::NoMemory);
        }
        let new_end = a
            .checked_add(new_len)
            .filter(|&e| e <= layout.task_size)
            .ok_or(VmaError::NoMemory)?;
        if self
            .find_vma_intersection(v.end, VirtAddr::new(new_end))
            .is_some()
        {
            return Err(VmaError::NoMemory);
        }
        let ext = Vma {
            end: VirtAddr::new(new_end),
            ..v.slice(v.end.as_u64(), v.end.as_u64())
        };
        // VM_SPECIAL or a wrapping offset: vma_merge_extend() fails.
        if ext.validate().is_err() || !v.can_merge_with(&ext) {
            return Err(VmaError::NoMemory);
        }
        Ok(Some(ext))
    }

    /// Whether mremap can grow `[addr, addr + old_len)` to `new_len` without moving it: the
    /// range ends where its VMA ends and the space after it is free and inside `task_size`.
    /// Errors as [`VmaTree::grow_in_place`].
    pub fn can_grow_in_place(
        &self,
        addr: VirtAddr,
        old_len: u64,
        new_len: u64,
        layout: &MmapLayout,
    ) -> Result<(), VmaError> {
        self.check_grow_in_place(addr, old_len, new_len, layout)
            .map(|_| ())
    }

    /// mremap growing in place: extends the VMA and merges it with the next one when
    /// compatible (`vma_merge_extend`). EINVAL for misaligned `addr`, zero lengths or
    /// `new_len < old_len` (shrink with [`VmaTree::unmap`]); EFAULT when `addr` is unmapped,
    /// the old range leaves its VMA, or the VMA is `VM_DONTEXPAND`/`VM_PFNMAP`; ENOMEM when it
    /// cannot grow where it is.
    pub fn grow_in_place(
        &mut self,
        addr: VirtAddr,
        old_len: u64,
        new_len: u64,
        layout: &MmapLayout,
    ) -> Result<(), VmaError> {
        match self.check_grow_in_place(addr, old_len, new_len, layout)? {
            Some(ext) => self.insert_merged(ext).map(|_| ()),
            None => Ok(()),
        }
    }

    /// mremap moving `[old_addr, old_addr + old_len)` (inside one VMA) to `new_addr`, with
    /// `new_len >= old_len` (shrink first with [`VmaTree::unmap`], as Linux does). The moved
    /// VMA keeps flags, backing, anon and offset, and merges at its new place when it can.
    /// Returns the source piece: the kernel moves its page tables to `new_addr`.
    ///
    /// EINVAL for misalignment, zero lengths, `new_len < old_len` or overlapping ranges; ENOMEM
    /// beyond `task_size` or within 3 of `max_map_count` (Linux's `move_vma` margin); EFAULT
    /// when the source is not inside one VMA, or must grow and is `VM_DONTEXPAND`/`VM_PFNMAP`;
    /// EEXIST when the destination is mapped (unmap it first for `MREMAP_FIXED`).
    pub fn move_range(
        &mut self,
        old_addr: VirtAddr,
        old_len: u64,
        new_addr: VirtAddr,
        new_len: u64,
        layout: &MmapLayout,
    ) -> Result<Vma, VmaError> {
        let (oa, na) = (old_addr.as_u64(), new_addr.as_u64());
        if oa & PAGE_MASK != 0 || na & PAGE_MASK != 0 || old_len == 0 || new_len == 0 {
            return Err(VmaError::Invalid);
        }
        let (_, old_end) = page_range(oa, old_len).ok_or(VmaError::Invalid)?;
        let (_, new_end) = page_range(na, new_len).ok_or(VmaError::NoMemory)?;
        let (old_len, new_len) = (old_end - oa, new_end - na);
        if new_len < old_len || (old_end > na && new_end > oa) {
            return Err(VmaError::Invalid);
        }
        if new_end > layout.task_size {
            return Err(VmaError::NoMemory);
        }
        let v = *self.vma_lookup(old_addr).ok_or(VmaError::Fault)?;
        if old_end > v.end.as_u64() {
            return Err(VmaError::Fault);
        }
        if new_len > old_len && v.flags.intersects(VM_DONTEXPAND | VM_PFNMAP) {
            return Err(VmaError::Fault);
        }
        if self.len().saturating_add(3) >= self.max_map_count {
            return Err(VmaError::NoMemory);
        }
        if self
            .find_vma_intersection(new_addr, VirtAddr::new(new_end))
            .is_some()
        {
            return Err(VmaError::Exists);
        }
        let source = v.slice(oa, old_end);
        let moved = Vma {
            start: new_addr,
            end: VirtAddr::new(new_end),
            ..source
        };
        moved.validate()?;
        // Neither step can fail now: the count margin covers a split plus a new VMA, and the
        // destination does not overlap the source.
        self.unmap_range(oa, old_end)?;
        self.insert_merged(moved)?;
        Ok(source)
    }

    /// brk(): moves the heap's end as Linux's `sys_brk` does. On error the kernel leaves
    /// `mm->brk` as it was and returns it (the errno is only diagnostic); on success it stores
    /// `req.brk`.
    ///
    /// - below `min_brk`: EINVAL;
    /// - same page-aligned end as `cur_brk`: [`BrkOutcome::Unchanged`];
    /// - shrinking unmaps `[PAGE_ALIGN(brk), PAGE_ALIGN(cur_brk))`, but fails (ENOMEM) when
    ///   nothing is mapped there;
    /// - growing maps `[PAGE_ALIGN(cur_brk), PAGE_ALIGN(brk))` anonymous with `req.flags`,
    ///   extending the heap VMA below when it ends there (and above `start_brk`). It fails
    ///   with ENOMEM past `task_size`, or unless a page (plus the guard gap below a stack)
    ///   stays free before the next VMA.
    ///
    /// `RLIMIT_DATA` (`check_data_rlimit`) is the kernel's check, before calling.
    pub fn brk(&mut self, req: BrkRequest, layout: &MmapLayout) -> Result<BrkOutcome, VmaError> {
        if req.brk < req.min_brk {
            return Err(VmaError::Invalid);
        }
        let align = |a: u64| a.checked_add(PAGE_MASK).map(|a| a & !PAGE_MASK);
        let (Some(newbrk), Some(oldbrk)) = (align(req.brk), align(req.cur_brk)) else {
            return Err(VmaError::NoMemory);
        };
        if newbrk == oldbrk {
            return Ok(BrkOutcome::Unchanged);
        }
        if req.brk <= req.cur_brk {
            if self.intersecting(newbrk, oldbrk).next().is_none() {
                return Err(VmaError::NoMemory);
            }
            return self.unmap_range(newbrk, oldbrk).map(BrkOutcome::Shrunk);
        }
        // check_brk_limits(): the MAP_FIXED range check.
        if newbrk > layout.task_size {
            return Err(VmaError::NoMemory);
        }
        if let Some(next) = self.first_ending_after(oldbrk) {
            if newbrk.saturating_add(PAGE_SIZE) > next.start_gap(layout.stack_guard_gap) {
                return Err(VmaError::NoMemory);
            }
        }
        let heap = Vma::anon(VirtAddr::new(oldbrk), VirtAddr::new(newbrk), req.flags);
        // do_brk_flags() only extends the VMA right below, and only if it is part of the heap.
        let prev = self
            .by_end
            .get(&oldbrk)
            .copied()
            .filter(|p| oldbrk > req.start_brk && p.can_merge_with(&heap));
        match prev {
            Some(p) => self.replace(&[p], &[p.merged(&heap)])?,
            None => self.replace(&[], &[heap])?,
        }
        Ok(BrkOutcome::Grown {
            start: heap.start,
            end: heap.end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;
    use proptest::prelude::*;

    const P: u64 = PAGE_SIZE;
    /// Private anonymous read/write as mmap makes it: accounted.
    const RW: VmFlags = VM_BRK_FLAGS;
    /// Private read-only: not accounted.
    const RO: VmFlags = VmFlags(VM_DATA_DEFAULT_FLAGS.0 & !VM_WRITE.0);

    /// Page number to address.
    fn va(page: u64) -> VirtAddr {
        VirtAddr::new(page * P)
    }

    fn anon(s: u64, e: u64, flags: VmFlags) -> Vma {
        Vma::anon(va(s), va(e), flags)
    }

    fn file(id: u64) -> FileRef {
        FileRef::new(id, 8, 1, 1000 + id, "/lib/libfoo.so")
    }

    fn fvma(s: u64, e: u64, flags: VmFlags, id: u64, pgoff: u64) -> Vma {
        Vma::file(va(s), va(e), flags, file(id), pgoff)
    }

    /// The VMAs as (start page, end page).
    fn ranges(t: &VmaTree) -> Vec<(u64, u64)> {
        t.iter()
            .map(|v| (v.start.as_u64() / P, v.end.as_u64() / P))
            .collect()
    }

    fn recount(t: &VmaTree) -> VmStat {
        let mut s = VmStat::default();
        for v in t.iter() {
            s.account(v.flags, v.pages(), false);
        }
        s
    }

    /// task_size 1000 pages, mmap_base 800, legacy base 300, min 16 pages, guard 4 pages.
    fn layout() -> MmapLayout {
        MmapLayout {
            task_size: 1000 * P,
            mmap_base: 800 * P,
            legacy_base: 300 * P,
            mmap_min_addr: 16 * P,
            stack_guard_gap: 4 * P,
        }
    }

    fn tree(vmas: &[Vma]) -> VmaTree {
        let mut t = VmaTree::new();
        for v in vmas {
            t.insert(*v).unwrap();
        }
        t
    }

    #[test]
    fn flag_values_are_linux() {
        let bits = [
            (VM_READ, 0x1),
            (VM_WRITE, 0x2),
            (VM_EXEC, 0x4),
            (VM_SHARED, 0x8),
            (VM_MAYREAD, 0x10),
            (VM_MAYWRITE, 0x20),
            (VM_MAYEXEC, 0x40),
            (VM_MAYSHARE, 0x80),
            (VM_GROWSDOWN, 0x100),
            (VM_PFNMAP, 0x400),
            (VM_LOCKED, 0x2000),
            (VM_IO, 0x4000),
            (VM_DONTCOPY, 0x20000),
            (VM_DONTEXPAND, 0x40000),
            (VM_ACCOUNT, 0x100000),
            (VM_NORESERVE, 0x200000),
            (VM_HUGETLB, 0x400000),
            (VM_SOFTDIRTY, 0x8000000),
            (VM_MIXEDMAP, 0x10000000),
            (VM_MERGEABLE, 0x80000000),
        ];
        for (f, b) in bits {
            assert_eq!(f.bits(), b);
        }
        assert_eq!(VM_SPECIAL.bits(), 0x10044400);
        assert_eq!(VM_STACK_FLAGS.bits(), 0x100173);
        assert_eq!(VM_BRK_FLAGS.bits(), 0x100073);
        assert_eq!(VmFlags::from_prot(7 | 0x100), VM_READ | VM_WRITE | VM_EXEC);
        assert!((VM_READ | VM_EXEC).is_exec_mapping());
        assert!(!(VM_READ | VM_EXEC | VM_WRITE).is_exec_mapping());
        assert!(VM_STACK_FLAGS.is_stack_mapping() && !VM_STACK_FLAGS.is_data_mapping());
        assert!(RW.is_data_mapping() && !(RW | VM_SHARED).is_data_mapping());
    }

    #[test]
    fn errnos() {
        let e = [
            (VmaError::NoMemory, 12),
            (VmaError::Invalid, 22),
            (VmaError::Exists, 17),
            (VmaError::Access, 13),
            (VmaError::Fault, 14),
            (VmaError::Permission, 1),
            (VmaError::Overflow, 75),
        ];
        for (err, n) in e {
            assert_eq!(err.errno(), n, "{err}");
        }
    }

    #[test]
    fn lookups() {
        let t = tree(&[anon(10, 20, RW), anon(30, 40, RO)]);
        assert_eq!(t.len(), 2);
        let start = |v: Option<&Vma>| v.map(|v| v.start.as_u64() / P);
        assert_eq!(start(t.find_vma(va(0))), Some(10));
        assert_eq!(start(t.find_vma(va(15))), Some(10));
        assert_eq!(start(t.find_vma(va(20))), Some(30));
        assert_eq!(start(t.find_vma(VirtAddr::new(40 * P - 1))), Some(30));
        assert_eq!(start(t.find_vma(va(40))), None);
        assert_eq!(start(t.vma_lookup(va(25))), None);
        assert_eq!(start(t.vma_lookup(va(19))), Some(10));
        assert_eq!(start(t.find_vma_prev(va(25))), Some(10));
        assert_eq!(start(t.find_vma_prev(va(35))), Some(10));
        assert_eq!(start(t.find_vma_prev(va(50))), Some(30));
        assert_eq!(start(t.find_vma_prev(va(5))), None);
        assert_eq!(start(t.find_vma_intersection(va(20), va(30))), None);
        assert_eq!(start(t.find_vma_intersection(va(19), va(31))), Some(10));
        assert_eq!(start(t.find_vma_intersection(va(20), va(31))), Some(30));
        assert_eq!(start(t.find_exact(va(30), va(40))), Some(30));
        assert_eq!(start(t.find_exact(va(31), va(40))), None);
        assert_eq!(t.range(va(15), va(35)).count(), 2);
        assert_eq!(t.range(va(20), va(30)).count(), 0);
        assert_eq!(t.iter().next_back().unwrap().start, va(30));
    }

    #[test]
    fn insert_refuses_overlaps_and_bad_vmas() {
        let mut t = tree(&[anon(10, 20, RW)]);
        assert_eq!(t.insert(anon(19, 21, RW)), Err(VmaError::Exists));
        assert_eq!(t.insert(anon(5, 30, RW)), Err(VmaError::Exists));
        assert_eq!(t.insert_merged(anon(15, 16, RW)), Err(VmaError::Exists));
        let mut bad = anon(30, 31, RW);
        bad.end = VirtAddr::new(31 * P + 1);
        assert_eq!(t.insert(bad), Err(VmaError::Invalid));
        assert_eq!(t.insert(anon(30, 30, RW)), Err(VmaError::Invalid));
        assert_eq!(t.insert(anon(31, 30, RW)), Err(VmaError::Invalid));
        assert_eq!(
            t.insert(fvma(30, 32, RO, 1, u64::MAX - 1)),
            Err(VmaError::Overflow)
        );
        assert_eq!(ranges(&t), [(10, 20)]);
        // Adjacent is fine, and insert() does not merge.
        t.insert(anon(20, 30, RW)).unwrap();
        assert_eq!(ranges(&t), [(10, 20), (20, 30)]);
        assert_eq!(t.stat().total_vm, 20);
    }

    #[test]
    fn mmap_next_to_identical_vma_merges() {
        let mut t = tree(&[anon(10, 20, RW), anon(30, 40, RW)]);
        // With the previous one.
        let v = t.insert_merged(anon(20, 25, RW)).unwrap();
        assert_eq!((v.start, v.end, v.pgoff), (va(10), va(25), 10));
        // With both: three become one.
        let v = t.insert_merged(anon(25, 30, RW)).unwrap();
        assert_eq!((v.start, v.end), (va(10), va(40)));
        assert_eq!(ranges(&t), [(10, 40)]);
        // With the next one only (top-down mmap places new VMAs below the last).
        let v = t.insert_merged(anon(5, 10, RW)).unwrap();
        assert_eq!((v.start, v.end, v.pgoff), (va(5), va(40), 5));
        assert_eq!(t.len(), 1);
        assert_eq!(t.stat(), recount(&t));
        assert_eq!(t.stat().data_vm, 35);
    }

    #[test]
    fn merge_needs_same_flags_backing_offset_and_anon() {
        // Files: offsets must continue.
        let mut t = tree(&[fvma(10, 20, RO, 1, 0)]);
        t.insert_merged(fvma(20, 22, RO, 1, 10)).unwrap();
        assert_eq!(ranges(&t), [(10, 22)]);
        t.insert_merged(fvma(22, 24, RO, 1, 13)).unwrap();
        t.insert_merged(fvma(24, 26, RO, 2, 14)).unwrap();
        t.insert_merged(fvma(26, 28, RW, 2, 16)).unwrap();
        t.insert_merged(anon(28, 30, RW)).unwrap();
        assert_eq!(t.len(), 5);

        // VM_SPECIAL never merges.
        let mut t = tree(&[anon(10, 20, RW | VM_DONTEXPAND)]);
        t.insert_merged(anon(20, 30, RW | VM_DONTEXPAND)).unwrap();
        assert_eq!(t.len(), 2);
        let vdso = Vma::special(va(40), va(42), VM_READ | VM_EXEC, "[vdso]");
        t.insert_merged(vdso).unwrap();
        t.insert_merged(Vma::special(va(42), va(44), VM_READ | VM_EXEC, "[vdso]"))
            .unwrap();
        assert_eq!(t.len(), 4);

        // VM_SOFTDIRTY is ignored and kept.
        let mut t = tree(&[anon(10, 20, RW | VM_SOFTDIRTY)]);
        let v = t.insert_merged(anon(20, 30, RW)).unwrap();
        assert_eq!((v.end, v.flags), (va(30), RW | VM_SOFTDIRTY));

        // anon_vma: None merges with anything, two different ids never.
        let with = |s, e, id| Vma {
            anon: id,
            ..anon(s, e, RW)
        };
        let mut t = tree(&[with(10, 20, Some(1))]);
        let v = t.insert_merged(with(20, 30, None)).unwrap();
        assert_eq!((v.start, v.anon), (va(10), Some(1)));
        t.insert_merged(with(30, 40, Some(2))).unwrap();
        assert_eq!(ranges(&t), [(10, 30), (30, 40)]);
        // Between incompatible neighbours the new VMA joins the lower one.
        let mut t = tree(&[with(10, 20, Some(1)), with(30, 40, Some(2))]);
        let v = t.insert_merged(with(20, 30, None)).unwrap();
        assert_eq!((v.start, v.end, v.anon), (va(10), va(30), Some(1)));
        assert_eq!(ranges(&t), [(10, 30), (30, 40)]);
    }

    #[test]
    fn split_adjusts_offsets() {
        let mut t = tree(&[fvma(10, 20, RO, 1, 5)]);
        assert_eq!(t.split(va(14)), Ok(true));
        let v: Vec<_> = t.iter().map(|v| (v.start, v.end, v.pgoff)).collect();
        assert_eq!(v, [(va(10), va(14), 5), (va(14), va(20), 9)]);
        assert_eq!(t.split(va(14)), Ok(false));
        assert_eq!(t.split(va(10)), Ok(false));
        assert_eq!(t.split(va(25)), Ok(false));
        assert_eq!(t.split(VirtAddr::new(15 * P + 1)), Err(VmaError::Invalid));
        t.set_max_map_count(2);
        assert_eq!(t.split(va(16)), Err(VmaError::NoMemory));
        assert_eq!(t.len(), 2);
        assert_eq!(t.stat().total_vm, 10);
    }

    #[test]
    fn munmap_in_the_middle_leaves_two_vmas() {
        let mut t = tree(&[fvma(10, 20, RO, 1, 100)]);
        let removed = t.unmap(va(13), 2 * P).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!((removed[0].start, removed[0].end), (va(13), va(15)));
        assert_eq!(removed[0].pgoff, 103);
        assert_eq!(ranges(&t), [(10, 13), (15, 20)]);
        assert_eq!(t.find_vma(va(15)).unwrap().pgoff, 105);
        assert_eq!(t.stat().total_vm, 8);
    }

    #[test]
    fn munmap_spanning_three_vmas() {
        let mut t = tree(&[anon(10, 20, RW), anon(20, 30, RO), fvma(30, 40, RO, 1, 0)]);
        // An unaligned length rounds up to whole pages.
        let removed = t.unmap(va(15), 20 * P - 100).unwrap();
        let r: Vec<_> = removed
            .iter()
            .map(|v| (v.start.as_u64() / P, v.end.as_u64() / P, v.pgoff))
            .collect();
        assert_eq!(r, [(15, 20, 15), (20, 30, 20), (30, 35, 0)]);
        assert_eq!(ranges(&t), [(10, 15), (35, 40)]);
        assert_eq!(t.find_vma(va(35)).unwrap().pgoff, 5);
        assert_eq!(t.stat(), recount(&t));
        assert_eq!(t.stat().data_vm, 5);
    }

    #[test]
    fn munmap_errors_and_holes() {
        let mut t = tree(&[anon(10, 20, RW)]);
        assert_eq!(t.unmap(VirtAddr::new(P + 1), P), Err(VmaError::Invalid));
        assert_eq!(t.unmap(va(10), 0), Err(VmaError::Invalid));
        assert_eq!(t.unmap(va(10), u64::MAX), Err(VmaError::Invalid));
        assert_eq!(t.unmap(va(30), 5 * P), Ok(vec![]));
        assert_eq!(t.unmap(va(5), 5 * P), Ok(vec![]));
        // Exactly covering removes the VMA whole.
        assert_eq!(t.unmap(va(0), 40 * P).unwrap(), [anon(10, 20, RW)]);
        assert!(t.is_empty());
        assert_eq!(t.stat(), VmStat::default());
    }

    #[test]
    fn mprotect_middle_splits_into_three_and_restoring_merges_back() {
        let orig = anon(10, 20, RW | VM_ACCOUNT);
        let mut t = tree(&[orig]);
        assert_eq!(t.mprotect(va(13), 2 * P, VM_READ), Ok(0));
        assert_eq!(ranges(&t), [(10, 13), (13, 15), (15, 20)]);
        let mid = t.vma_lookup(va(13)).unwrap();
        assert_eq!((mid.flags, mid.pgoff), (RO | VM_ACCOUNT, 13));
        assert_eq!(t.stat().data_vm, 8);
        assert_eq!(t.mprotect(va(13), 2 * P, VM_READ | VM_WRITE), Ok(0));
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), [orig]);
        assert_eq!(t.stat().data_vm, 10);
    }

    #[test]
    fn mprotect_merges_whole_vmas_and_skips_unchanged_ones() {
        let mut t = tree(&[anon(10, 20, RW), anon(20, 30, RO)]);
        t.mprotect(va(20), 10 * P, VM_READ | VM_WRITE).unwrap();
        assert_eq!(ranges(&t), [(10, 30)]);
        // An unchanged range does not split.
        t.mprotect(va(12), 3 * P, VM_READ | VM_WRITE).unwrap();
        assert_eq!(ranges(&t), [(10, 30)]);
        // Unaligned end rounds up; the tail joins an identical neighbour after the change.
        t.insert(anon(30, 40, RO | VM_ACCOUNT)).unwrap();
        t.mprotect(va(25), 5 * P - 1, VM_READ).unwrap();
        assert_eq!(ranges(&t), [(10, 25), (25, 40)]);
        assert_eq!(t.mprotect(va(10), 0, VM_READ), Ok(0));
        assert_eq!(
            t.mprotect(VirtAddr::new(10 * P + 8), P, VM_READ),
            Err(VmaError::Invalid)
        );
        assert_eq!(t.mprotect(va(10), P, VM_SHARED), Err(VmaError::Invalid));
        assert_eq!(
            t.mprotect(va(10), u64::MAX, VM_READ),
            Err(VmaError::NoMemory)
        );
        assert_eq!(ranges(&t), [(10, 25), (25, 40)]);
    }

    #[test]
    fn mprotect_needs_the_whole_range_mapped() {
        let mut t = tree(&[anon(10, 20, RW), anon(25, 30, RW)]);
        let before: Vec<Vma> = t.iter().copied().collect();
        for (s, n) in [(10, 20), (5, 10), (15, 6), (26, 5)] {
            assert_eq!(
                t.mprotect(va(s), n * P, VM_READ),
                Err(VmaError::NoMemory),
                "{s}+{n}"
            );
        }
        // Atomic: Linux would have changed [10, 20) before finding the hole.
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), before);
    }

    #[test]
    fn update_flags_splits_at_the_edges_and_merges_back() {
        let mut t = tree(&[anon(10, 30, RW)]);
        // MADV_HUGEPAGE on the middle: three VMAs, the middle one flagged.
        assert_eq!(
            t.update_flags(va(14), 4 * P, VM_HUGEPAGE, VM_NOHUGEPAGE),
            Ok(())
        );
        assert_eq!(ranges(&t), [(10, 14), (14, 18), (18, 30)]);
        let flagged: Vec<bool> = t.iter().map(|v| v.flags.contains(VM_HUGEPAGE)).collect();
        assert_eq!(flagged, [false, true, false]);
        // Again on a range with a hole: ENOMEM, nothing changed.
        assert_eq!(
            t.update_flags(va(25), 10 * P, VM_HUGEPAGE, VM_NONE),
            Err(VmaError::NoMemory)
        );
        assert_eq!(ranges(&t), [(10, 14), (14, 18), (18, 30)]);
        // Clearing it merges the three again.
        assert_eq!(t.update_flags(va(10), 20 * P, VM_NONE, VM_HUGEPAGE), Ok(()));
        assert_eq!(ranges(&t), [(10, 30)]);
    }

    #[test]
    fn mprotect_checks_may_bits() {
        let no_maywrite = VM_READ | VM_MAYREAD | VM_MAYEXEC;
        let mut t = tree(&[fvma(10, 20, no_maywrite, 1, 0), anon(25, 30, RW)]);
        assert_eq!(t.mprotect(va(12), P, VM_WRITE), Err(VmaError::Access));
        assert_eq!(t.mprotect(va(12), P, VM_EXEC), Ok(0));
        // The first problem in address order decides.
        assert_eq!(
            t.mprotect(va(14), 20 * P, VM_READ | VM_WRITE),
            Err(VmaError::Access)
        );
        assert_eq!(t.mprotect(va(18), 12 * P, VM_READ), Err(VmaError::NoMemory));
        assert_eq!(ranges(&t), [(10, 12), (12, 13), (13, 20), (25, 30)]);
    }

    #[test]
    fn mprotect_write_charges_unaccounted_private_pages() {
        // A read-only private mapping is not accounted; making it writable charges it.
        let mut t = tree(&[anon(10, 20, RO)]);
        assert_eq!(t.mprotect(va(12), 2 * P, VM_READ | VM_WRITE), Ok(2));
        assert_eq!(t.vma_lookup(va(12)).unwrap().flags, RW | VM_ACCOUNT);
        // VM_ACCOUNT stays, so restoring does not merge back (as in Linux).
        assert_eq!(t.mprotect(va(12), 2 * P, VM_READ), Ok(0));
        assert_eq!(ranges(&t), [(10, 12), (12, 14), (14, 20)]);
        // Shared and NORESERVE mappings are not charged.
        let mut t = tree(&[
            anon(10, 20, RO | VM_SHARED | VM_MAYSHARE),
            anon(20, 30, RO | VM_NORESERVE),
        ]);
        assert_eq!(t.mprotect(va(10), 20 * P, VM_READ | VM_WRITE), Ok(0));
    }

    #[test]
    fn map_fixed_replaces_and_merges() {
        let mut t = tree(&[anon(10, 30, RW)]);
        let removed = t.map_fixed(anon(15, 20, RO)).unwrap();
        assert_eq!(removed, [anon(15, 20, RW)]);
        assert_eq!(ranges(&t), [(10, 15), (15, 20), (20, 30)]);
        // Mapping the original back over it joins all three.
        t.map_fixed(anon(15, 20, RW)).unwrap();
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), [anon(10, 30, RW)]);
        // Over a hole and two VMAs.
        t.insert(anon(40, 50, RO)).unwrap();
        let removed = t.map_fixed(fvma(25, 45, RO, 1, 0)).unwrap();
        assert_eq!(removed, [anon(25, 30, RW), anon(40, 45, RO)]);
        assert_eq!(ranges(&t), [(10, 25), (25, 45), (45, 50)]);
        assert_eq!(t.stat(), recount(&t));
        t.set_max_map_count(3);
        assert_eq!(t.map_fixed(anon(30, 31, RW)), Err(VmaError::NoMemory));
        assert_eq!(ranges(&t), [(10, 25), (25, 45), (45, 50)]);
    }

    #[test]
    fn map_fixed_over_a_hole_and_a_vma_merges_with_the_vma_below() {
        // Found by the page model: the range starts in a hole, so the neighbour to merge with
        // ends at the range's start, not at the first replaced VMA's.
        let mut t = tree(&[anon(10, 20, RW), anon(21, 22, RO)]);
        t.map_fixed(anon(20, 22, RW)).unwrap();
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), [anon(10, 22, RW)]);
        // Same at the top end: the range ends in a hole next to a compatible VMA.
        let mut t = tree(&[anon(10, 11, RO), anon(12, 20, RW)]);
        t.map_fixed(anon(10, 12, RW)).unwrap();
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), [anon(10, 20, RW)]);
    }

    #[test]
    fn get_unmapped_area_top_down() {
        let l = layout();
        let any = Placement::Anywhere;
        let mut t = VmaTree::new();
        let gua = |t: &VmaTree, len: u64, hint: VirtAddr| t.get_unmapped_area(len, hint, any, &l);
        // Empty: right below mmap_base.
        assert_eq!(gua(&t, 10 * P, va(0)), Ok(va(790)));
        t.insert(anon(780, 800, RW)).unwrap();
        assert_eq!(gua(&t, 10 * P, va(0)), Ok(va(770)));
        // The highest gap that fits: [790, 795) is too small.
        let mut t2 = tree(&[anon(795, 800, RW), anon(760, 790, RW)]);
        assert_eq!(gua(&t2, 10 * P, va(0)), Ok(va(750)));
        assert_eq!(gua(&t2, 5 * P - 7, va(0)), Ok(va(790)));
        // An mmap there merges with its identical neighbour above.
        t2.insert_merged(anon(750, 760, RW)).unwrap();
        assert_eq!(ranges(&t2), [(750, 790), (795, 800)]);
        // Hints: used when free, rounded down, raised to mmap_min_addr.
        assert_eq!(gua(&t, 10 * P, va(100)), Ok(va(100)));
        assert_eq!(gua(&t, 10 * P, VirtAddr::new(100 * P + 5)), Ok(va(100)));
        assert_eq!(gua(&t, 10 * P, va(1)), Ok(va(16)));
        assert_eq!(gua(&t, 10 * P, va(775)), Ok(va(770)));
        assert_eq!(gua(&t, 10 * P, va(995)), Ok(va(770)));
        // Above mmap_base, a free hint is still fine.
        assert_eq!(gua(&t, 10 * P, va(900)), Ok(va(900)));
        assert_eq!(gua(&t, 0, va(0)), Err(VmaError::Invalid));
        assert_eq!(gua(&t, 1001 * P, va(0)), Err(VmaError::NoMemory));
        assert_eq!(gua(&t, u64::MAX, va(0)), Err(VmaError::NoMemory));
    }

    #[test]
    fn get_unmapped_area_falls_back_bottom_up_then_enomem() {
        let l = layout();
        let any = Placement::Anywhere;
        // Nothing free below mmap_base: the lowest fit from legacy_base up.
        let mut t = tree(&[anon(16, 800, RW), anon(800, 810, RW)]);
        assert_eq!(t.get_unmapped_area(10 * P, va(0), any, &l), Ok(va(810)));
        t.insert(anon(810, 995, RW)).unwrap();
        assert_eq!(
            t.get_unmapped_area(10 * P, va(0), any, &l),
            Err(VmaError::NoMemory)
        );
        assert_eq!(t.get_unmapped_area(5 * P, va(0), any, &l), Ok(va(995)));
        // Below mmap_min_addr nothing is handed out.
        let t = tree(&[anon(16, 1000, RW)]);
        assert_eq!(
            t.get_unmapped_area(P, va(0), any, &l),
            Err(VmaError::NoMemory)
        );
    }

    #[test]
    fn get_unmapped_area_fixed() {
        let l = layout();
        let t = tree(&[anon(100, 110, RW)]);
        let fixed = |len, addr, p| t.get_unmapped_area(len, addr, p, &l);
        // MAP_FIXED takes the hint over existing mappings: the caller unmaps them.
        assert_eq!(fixed(10 * P, va(105), Placement::Fixed), Ok(va(105)));
        assert_eq!(
            fixed(10 * P, va(105), Placement::FixedNoReplace),
            Err(VmaError::Exists)
        );
        assert_eq!(fixed(10 * P, va(90), Placement::FixedNoReplace), Ok(va(90)));
        assert_eq!(
            fixed(10 * P, va(110), Placement::FixedNoReplace),
            Ok(va(110))
        );
        assert_eq!(
            fixed(P, VirtAddr::new(200 * P + 1), Placement::Fixed),
            Err(VmaError::Invalid)
        );
        assert_eq!(
            fixed(10 * P, va(991), Placement::Fixed),
            Err(VmaError::NoMemory)
        );
        assert_eq!(fixed(10 * P, va(990), Placement::Fixed), Ok(va(990)));
        assert_eq!(
            fixed(P, va(15), Placement::Fixed),
            Err(VmaError::Permission)
        );
        assert_eq!(fixed(P, va(0), Placement::Fixed), Err(VmaError::Permission));
    }

    #[test]
    fn get_unmapped_area_keeps_the_stack_guard_gap() {
        let mut l = layout();
        l.mmap_base = 1000 * P;
        let any = Placement::Anywhere;
        let stack = anon(900, 1000, VM_STACK_FLAGS);
        let t = tree(&[stack]);
        // 4 guard pages below the stack.
        assert_eq!(t.get_unmapped_area(10 * P, va(0), any, &l), Ok(va(886)));
        // A hint inside the gap is refused, just below it accepted.
        assert_eq!(t.get_unmapped_area(10 * P, va(888), any, &l), Ok(va(886)));
        assert_eq!(t.get_unmapped_area(2 * P, va(894), any, &l), Ok(va(894)));
        // The gap only applies below stacks, and only to what ends there.
        let t = tree(&[anon(700, 710, VM_STACK_FLAGS), anon(710, 1000, RW)]);
        assert_eq!(t.get_unmapped_area(10 * P, va(0), any, &l), Ok(va(686)));
        let t = tree(&[anon(700, 710, RW), anon(710, 1000, RW)]);
        assert_eq!(t.get_unmapped_area(10 * P, va(0), any, &l), Ok(va(690)));
        // A gap narrower than stack_guard_gap + len under a stack is skipped.
        let t = tree(&[anon(700, 705, RW), anon(712, 1000, VM_STACK_FLAGS)]);
        assert_eq!(t.get_unmapped_area(4 * P, va(0), any, &l), Ok(va(696)));
        assert_eq!(t.get_unmapped_area(3 * P, va(0), any, &l), Ok(va(705)));
        // A guard gap reaching below the next VMA down does not hide the gap under that VMA
        // (found by the brute-force property).
        let t = tree(&[anon(23, 24, RW), anon(24, 1000, VM_STACK_FLAGS)]);
        assert_eq!(t.get_unmapped_area(7 * P, va(0), any, &l), Ok(va(16)));
    }

    #[test]
    fn expand_stack_grows_down_within_limits() {
        let l = layout();
        let mut t = tree(&[anon(900, 1000, VM_STACK_FLAGS)]);
        assert_eq!(t.stat().stack_vm, 100);
        // A fault 10 pages below, mid-page.
        assert_eq!(
            t.expand_stack(VirtAddr::new(890 * P + 123), &l, 1 << 30),
            Ok(10)
        );
        let s = *t.find_vma(va(890)).unwrap();
        assert_eq!((s.start, s.end, s.pgoff), (va(890), va(1000), 890));
        assert_eq!(t.stat().stack_vm, 110);
        assert_eq!(t.expand_stack(va(950), &l, 1 << 30), Ok(0));
        // RLIMIT_STACK: 110 pages now, 120 would be 1 page too many.
        assert_eq!(
            t.expand_stack(va(880), &l, 119 * P),
            Err(VmaError::NoMemory)
        );
        assert_eq!(t.expand_stack(va(881), &l, 119 * P), Ok(9));
        // The guard gap to an accessible VMA below.
        t.insert(anon(870, 875, RW)).unwrap();
        assert_eq!(
            t.expand_stack(va(878), &l, 1 << 30),
            Err(VmaError::NoMemory)
        );
        assert_eq!(t.expand_stack(va(879), &l, 1 << 30), Ok(2));
        // Unless it is inaccessible (a PROT_NONE guard mapping).
        t.mprotect(va(870), 5 * P, VM_NONE).unwrap();
        assert_eq!(t.expand_stack(va(875), &l, 1 << 30), Ok(4));
        assert_eq!(t.stat(), recount(&t));
        // Not a stack above, nothing above, below mmap_min_addr.
        assert_eq!(t.expand_stack(va(860), &l, 1 << 30), Err(VmaError::Fault));
        assert_eq!(t.expand_stack(va(1000), &l, 1 << 30), Err(VmaError::Fault));
        let mut t = tree(&[anon(20, 30, VM_STACK_FLAGS)]);
        assert_eq!(
            t.expand_stack(va(15), &l, 1 << 30),
            Err(VmaError::Permission)
        );
    }

    #[test]
    fn mremap_grow_in_place() {
        let l = layout();
        let mut t = tree(&[anon(10, 20, RW), anon(30, 40, RW), anon(50, 60, RO)]);
        assert_eq!(t.can_grow_in_place(va(10), 10 * P, 15 * P, &l), Ok(()));
        t.grow_in_place(va(10), 10 * P, 15 * P, &l).unwrap();
        assert_eq!(ranges(&t), [(10, 25), (30, 40), (50, 60)]);
        // Growing up to the next compatible VMA merges with it.
        t.grow_in_place(va(10), 15 * P, 20 * P, &l).unwrap();
        assert_eq!(ranges(&t), [(10, 40), (50, 60)]);
        assert_eq!(t.stat().total_vm, 40);
        // Into the next VMA, or not from the VMA's end: ENOMEM (caller may move instead).
        assert_eq!(
            t.grow_in_place(va(10), 30 * P, 41 * P, &l),
            Err(VmaError::NoMemory)
        );
        assert_eq!(
            t.grow_in_place(va(10), 20 * P, 25 * P, &l),
            Err(VmaError::NoMemory)
        );
        assert_eq!(
            t.grow_in_place(va(50), 10 * P, 951 * P, &l),
            Err(VmaError::NoMemory)
        );
        // The range must lie in one VMA that can expand.
        assert_eq!(t.grow_in_place(va(45), P, 2 * P, &l), Err(VmaError::Fault));
        assert_eq!(
            t.grow_in_place(va(35), 6 * P, 8 * P, &l),
            Err(VmaError::Fault)
        );
        assert_eq!(
            t.grow_in_place(va(35), 5 * P, 4 * P, &l),
            Err(VmaError::Invalid)
        );
        assert_eq!(t.grow_in_place(va(35), 5 * P, 5 * P, &l), Ok(()));
        let mut t = tree(&[anon(10, 20, RW | VM_DONTEXPAND), anon(30, 40, RW | VM_IO)]);
        assert_eq!(
            t.can_grow_in_place(va(10), 10 * P, 11 * P, &l),
            Err(VmaError::Fault)
        );
        assert_eq!(
            t.grow_in_place(va(30), 10 * P, 11 * P, &l),
            Err(VmaError::NoMemory)
        );
        assert_eq!(ranges(&t), [(10, 20), (30, 40)]);
    }

    #[test]
    fn mremap_move() {
        let l = layout();
        let mut t = tree(&[fvma(10, 20, RO, 1, 100)]);
        let src = t.move_range(va(12), 2 * P, va(50), 2 * P, &l).unwrap();
        assert_eq!((src.start, src.end, src.pgoff), (va(12), va(14), 102));
        let v: Vec<_> = t.iter().map(|v| (v.start, v.end, v.pgoff)).collect();
        assert_eq!(
            v,
            [
                (va(10), va(12), 100),
                (va(14), va(20), 104),
                (va(50), va(52), 102)
            ]
        );
        // Moving it back joins everything again.
        t.move_range(va(50), 2 * P, va(12), 2 * P, &l).unwrap();
        assert_eq!(
            t.iter().copied().collect::<Vec<_>>(),
            [fvma(10, 20, RO, 1, 100)]
        );
        // Move and grow.
        t.move_range(va(10), 10 * P, va(60), 15 * P, &l).unwrap();
        assert_eq!(
            t.iter().copied().collect::<Vec<_>>(),
            [fvma(60, 75, RO, 1, 100)]
        );
        assert_eq!(t.stat().total_vm, 15);
        let m = |t: &mut VmaTree, o, ol, n, nl| t.move_range(va(o), ol * P, va(n), nl * P, &l);
        assert_eq!(m(&mut t, 60, 5, 62, 5), Err(VmaError::Invalid));
        assert_eq!(m(&mut t, 60, 5, 50, 3), Err(VmaError::Invalid));
        assert_eq!(m(&mut t, 60, 5, 64, 5), Err(VmaError::Invalid));
        assert_eq!(m(&mut t, 60, 5, 70, 5), Err(VmaError::Exists));
        assert_eq!(m(&mut t, 70, 6, 100, 6), Err(VmaError::Fault));
        assert_eq!(m(&mut t, 80, 1, 100, 1), Err(VmaError::Fault));
        assert_eq!(m(&mut t, 60, 1, 998, 3), Err(VmaError::NoMemory));
        t.insert(anon(100, 101, RW)).unwrap();
        assert_eq!(m(&mut t, 60, 2, 99, 2), Err(VmaError::Exists));
        t.set_max_map_count(5);
        assert_eq!(m(&mut t, 60, 2, 200, 2), Err(VmaError::NoMemory));
        assert_eq!(ranges(&t), [(60, 75), (100, 101)]);
        let mut t = tree(&[anon(10, 20, RW | VM_DONTEXPAND)]);
        assert_eq!(m(&mut t, 10, 2, 50, 3), Err(VmaError::Fault));
        assert!(m(&mut t, 10, 2, 50, 2).is_ok());
    }

    fn brk_req(brk: u64, cur_brk: u64) -> BrkRequest {
        BrkRequest {
            brk,
            cur_brk,
            start_brk: 100 * P,
            min_brk: 100 * P,
            flags: VM_BRK_FLAGS,
        }
    }

    #[test]
    fn brk_grows_shrinks_and_merges() {
        let l = layout();
        // The bss ends where the heap starts; the first heap VMA is separate from it.
        let mut t = tree(&[anon(90, 100, VM_BRK_FLAGS)]);
        let start = 100 * P;
        assert_eq!(
            t.brk(brk_req(start + 5000, start), &l),
            Ok(BrkOutcome::Grown {
                start: va(100),
                end: va(102)
            })
        );
        assert_eq!(ranges(&t), [(90, 100), (100, 102)]);
        // Within the same page: nothing to map.
        assert_eq!(
            t.brk(brk_req(start + 2 * P, start + 5000), &l),
            Ok(BrkOutcome::Unchanged)
        );
        // Growing extends the heap VMA.
        assert!(t.brk(brk_req(start + 3 * P + 1, start + 2 * P), &l).is_ok());
        assert_eq!(ranges(&t), [(90, 100), (100, 104)]);
        assert_eq!(t.stat().data_vm, 14);
        let ctx = MapsContext {
            start_brk: start,
            brk: start + 3 * P + 1,
            start_stack: 0,
        };
        let mut maps = String::new();
        t.write_maps(&mut maps, &ctx).unwrap();
        assert!(maps.ends_with(" [heap]\n") && maps.lines().count() == 2);
        // Shrinking unmaps whole pages above the new break.
        assert_eq!(
            t.brk(brk_req(start + P, start + 3 * P + 1), &l),
            Ok(BrkOutcome::Shrunk(vec![anon(101, 104, VM_BRK_FLAGS)]))
        );
        assert_eq!(ranges(&t), [(90, 100), (100, 101)]);
        // Not below min_brk.
        assert_eq!(
            t.brk(brk_req(start - 1, start + P), &l),
            Err(VmaError::Invalid)
        );
        // Shrinking where nothing is mapped fails (the heap was munmapped).
        t.unmap(va(100), P).unwrap();
        assert_eq!(
            t.brk(brk_req(start, start + P), &l),
            Err(VmaError::NoMemory)
        );
    }

    #[test]
    fn brk_stops_a_page_before_the_next_vma() {
        let l = layout();
        let start = 100 * P;
        let mut t = tree(&[anon(110, 120, RW)]);
        // Up to 109 pages leaves one free page: fine; one byte more is not.
        assert_eq!(
            t.brk(brk_req(109 * P + 1, start), &l),
            Err(VmaError::NoMemory)
        );
        assert!(t.brk(brk_req(109 * P, start), &l).is_ok());
        assert_eq!(ranges(&t), [(100, 109), (110, 120)]);
        // Below a stack, the guard gap too.
        let mut t = tree(&[anon(110, 120, VM_STACK_FLAGS)]);
        assert_eq!(t.brk(brk_req(106 * P, start), &l), Err(VmaError::NoMemory));
        assert!(t.brk(brk_req(105 * P, start), &l).is_ok());
        // Not past TASK_SIZE.
        let mut t = VmaTree::new();
        assert_eq!(
            t.brk(brk_req(1000 * P + 1, start), &l),
            Err(VmaError::NoMemory)
        );
        assert!(t.brk(brk_req(1000 * P, start), &l).is_ok());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn proc_maps_lines_match_linux() {
        let ctx = MapsContext {
            start_brk: 0x5573_9916_8000,
            brk: 0x5573_9918_9000,
            start_stack: 0x7ffd_1234_5678,
        };
        let cat = FileRef::new(7, 0xfe, 0, 247030, "/usr/bin/cat");
        let text = Vma::file(
            VirtAddr::new(0x5573_6323_5000),
            VirtAddr::new(0x5573_6323_a000),
            VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYEXEC,
            cat,
            2,
        );
        let line = |v: &Vma| alloc::format!("{}", v.maps_line(&ctx));
        assert_eq!(
            line(&text),
            "557363235000-55736323a000 r-xp 00002000 fe:00 247030                     /usr/bin/cat"
        );
        let heap = Vma::anon(
            VirtAddr::new(0x5573_9916_8000),
            VirtAddr::new(0x5573_9918_9000),
            VM_BRK_FLAGS,
        );
        assert_eq!(
            line(&heap),
            "557399168000-557399189000 rw-p 00000000 00:00 0                          [heap]"
        );
        let plain = Vma::anon(
            VirtAddr::new(0x7f8b_f768_c000),
            VirtAddr::new(0x7f8b_f76a_e000),
            RW,
        );
        assert_eq!(
            line(&plain),
            "7f8bf768c000-7f8bf76ae000 rw-p 00000000 00:00 0 "
        );
        let gconv = FileRef::new(
            8,
            0xfe,
            0,
            325745,
            "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
        );
        let shared = Vma::file(
            VirtAddr::new(0x7f8b_f78f_4000),
            VirtAddr::new(0x7f8b_f78f_b000),
            VM_READ | VM_MAYREAD | VM_MAYSHARE,
            gconv,
            0,
        );
        assert_eq!(
            line(&shared),
            "7f8bf78f4000-7f8bf78fb000 r--s 00000000 fe:00 325745                     \
             /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache"
        );
        let vvar = Vma::special(
            VirtAddr::new(0x7f8b_f78f_e000),
            VirtAddr::new(0x7f8b_f790_2000),
            VM_READ | VM_MAYREAD,
            "[vvar]",
        );
        assert_eq!(
            line(&vvar),
            "7f8bf78fe000-7f8bf7902000 r--p 00000000 00:00 0                          [vvar]"
        );
        let stack = Vma::anon(
            VirtAddr::new(0x7ffd_1232_6000),
            VirtAddr::new(0x7ffd_1234_7000),
            VM_STACK_FLAGS,
        );
        assert!(line(&stack).ends_with(" 0                          [stack]"));
        // Short addresses are zero-padded to 8 digits; the name still starts at column 73.
        let low = Vma::file(va(0x400), va(0x40b), VM_READ | VM_EXEC, cat, 0);
        let l = line(&low);
        assert!(l.starts_with("00400000-0040b000 r-xp 00000000 fe:00 247030 "));
        assert_eq!(l.find('/'), Some(73));
        // A prefix past the column gets a single space; newlines in paths are escaped.
        let odd = FileRef::new(9, 0x103, 0x1ff, u64::MAX, "/tmp/a\nb");
        let high = Vma::file(
            VirtAddr::new(0xffff_ffff_ffff_e000),
            VirtAddr::new(0xffff_ffff_ffff_f000),
            VM_WRITE | VM_MAYSHARE,
            odd,
            0xffff_ffff,
        );
        assert_eq!(
            line(&high),
            concat!(
                "ffffffffffffe000-fffffffffffff000 -w-s ffffffff000 103:1ff ",
                "18446744073709551615  /tmp/a\\012b"
            )
        );
        let t = tree(&[low, plain]);
        let mut out = String::new();
        t.write_maps(&mut out, &ctx).unwrap();
        assert_eq!(out.lines().count(), 2);
        assert!(out.ends_with("rw-p 00000000 00:00 0 \n"));
    }

    #[test]
    fn map_names_are_cut_at_char_boundaries() {
        let long = "é".repeat(40);
        let n = MapName::new(&long);
        assert_eq!(n.as_str().len(), 64);
        let n = MapName::new(&alloc::format!("a{long}"));
        assert_eq!(n.as_str().len(), 63);
        assert_eq!(MapName::new("x").as_str(), "x");
    }

    #[test]
    fn layout_like_linux_without_randomization() {
        let l = MmapLayout::new(TASK_SIZE_MAX, 8 << 20, None);
        // The familiar addresses of a non-randomized x86-64 process.
        assert_eq!(l.mmap_base, 0x7fff_f7ff_f000);
        assert_eq!(l.legacy_base, 0x2aaa_aaaa_b000);
        assert_eq!(l.stack_guard_gap, 1 << 20);
        assert_eq!(l.mmap_min_addr, 0x10000);
        // A huge stack rlimit is capped at 5/6 of the space; randomization moves the base.
        let l = MmapLayout::new(TASK_SIZE_MAX, u64::MAX, None);
        assert_eq!(
            l.mmap_base,
            (TASK_SIZE_MAX - TASK_SIZE_MAX / 6 * 5).next_multiple_of(P)
        );
        let l = MmapLayout::new(TASK_SIZE_MAX, 8 << 20, Some(0x1234_5000));
        assert_eq!(
            l.mmap_base,
            TASK_SIZE_MAX - (8 << 20) - (1 << 20) - (0x3f_ffff << 12) - 0x1234_5000
        );
        // Tiny spaces do not panic.
        let l = MmapLayout::new(P, 0, None);
        assert_eq!(l.mmap_base, 0);
    }

    #[test]
    fn counters_follow_vm_stat_account() {
        let mut t = tree(&[
            fvma(10, 20, VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYEXEC, 1, 0),
            fvma(20, 25, VM_READ | VM_MAYREAD, 1, 10),
            anon(30, 40, RW | VM_LOCKED),
            anon(40, 45, RW | VM_SHARED | VM_MAYSHARE),
            anon(50, 60, VM_STACK_FLAGS | VM_EXEC),
        ]);
        let s = t.stat();
        assert_eq!(
            s,
            VmStat {
                total_vm: 40,
                locked_vm: 10,
                data_vm: 10,
                exec_vm: 10,
                stack_vm: 10
            }
        );
        // mprotect moves pages between classes.
        t.mprotect(va(10), 5 * P, VM_READ).unwrap();
        t.mprotect(va(30), 5 * P, VM_READ | VM_EXEC).unwrap();
        assert_eq!((t.stat().exec_vm, t.stat().data_vm), (10, 5));
        assert_eq!(t.stat(), recount(&t));
        let n = t.len();
        assert_eq!(t.unmap_all().len(), n);
        assert!(t.is_empty());
        assert_eq!(t.stat(), VmStat::default());
    }

    #[test]
    fn thousands_of_vmas() {
        // Alternating flags, unmerged: one mprotect over all of them leaves one VMA.
        let mut t = VmaTree::new();
        for i in 0..4000 {
            let flags = if i % 2 == 0 { RW } else { RO | VM_ACCOUNT };
            t.insert(anon(10 + i, 11 + i, flags)).unwrap();
        }
        assert_eq!(t.mprotect(va(10), 4000 * P, VM_READ), Ok(0));
        assert_eq!(ranges(&t), [(10, 4010)]);
        assert_eq!(t.stat(), recount(&t));
        let removed = t.unmap(va(11), 3998 * P).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(ranges(&t), [(10, 11), (4009, 4010)]);
    }

    #[test]
    fn max_map_count_blocks_growth_only() {
        let mut t = tree(&[anon(10, 20, RW), anon(30, 40, RO)]);
        t.set_max_map_count(2);
        assert_eq!(t.unmap(va(12), P), Err(VmaError::NoMemory));
        assert_eq!(t.mprotect(va(12), P, VM_READ), Err(VmaError::NoMemory));
        assert_eq!(t.insert(anon(50, 51, RW)), Err(VmaError::NoMemory));
        assert_eq!(ranges(&t), [(10, 20), (30, 40)]);
        // Operations that do not add VMAs still work at the limit.
        t.unmap(va(10), 2 * P).unwrap();
        t.mprotect(va(30), 10 * P, VM_READ | VM_WRITE).unwrap();
        t.insert_merged(anon(40, 41, RW)).unwrap();
        assert_eq!(ranges(&t), [(12, 20), (30, 41)]);
    }

    // Property tests: random map/unmap/mprotect/split in a small window against a model
    // holding each page's state.

    /// The window's first page and size in pages.
    const BASE: u64 = 16;
    const WIN: usize = 48;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct PageState {
        flags: VmFlags,
        /// 0 anonymous, otherwise the file id.
        backing: u8,
        pgoff: u64,
        /// Special (never merged) VMAs: which VMA the page belongs to; 0 otherwise.
        id: u32,
    }

    type Model = [Option<PageState>; WIN];

    fn backing_of(b: u8) -> Backing {
        match b {
            0 => Backing::Anon,
            b => Backing::File(file(u64::from(b))),
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Map {
            start: u64,
            len: u64,
            prot: u64,
            may: u64,
            shared: bool,
            noreserve: bool,
            special: bool,
            backing: u8,
            pgoff: u64,
        },
        Unmap {
            start: u64,
            len: u64,
        },
        Protect {
            start: u64,
            len: u64,
            prot: u64,
        },
        Split {
            at: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let range = || (0..WIN as u64, 1u64..16);
        prop_oneof![
            4 => (
                range(),
                0u64..8,
                0u64..8,
                any::<bool>(),
                prop::bool::weighted(0.2),
                prop::bool::weighted(0.1),
                0u8..3,
                0u64..6,
            )
                .prop_map(|((start, len), prot, may, shared, noreserve, special, backing, pgoff)| {
                    Op::Map { start, len, prot, may, shared, noreserve, special, backing, pgoff }
                }),
            3 => range().prop_map(|(start, len)| Op::Unmap { start, len }),
            4 => (range(), 0u64..8).prop_map(|((start, len), prot)| Op::Protect { start, len, prot }),
            1 => (0..WIN as u64).prop_map(|at| Op::Split { at }),
        ]
    }

    /// Checks removed pieces against the model's pages before the change.
    fn check_removed(removed: &[Vma], before: &Model, start: usize, len: usize) {
        let mapped = before[start..start + len].iter().flatten().count() as u64;
        assert_eq!(removed.iter().map(|v| v.pages()).sum::<u64>(), mapped);
        for r in removed {
            for (k, page) in (r.start.as_u64() / P..r.end.as_u64() / P).enumerate() {
                let st = before[(page - BASE) as usize].expect("removed an unmapped page");
                assert_eq!(st.flags, r.flags);
                assert_eq!(backing_of(st.backing), r.backing);
                assert_eq!(st.pgoff, r.pgoff + k as u64);
            }
        }
    }

    /// Whether page state `b` can follow `a` inside one VMA of a maximally merged tree.
    fn continues(a: &PageState, b: &PageState) -> bool {
        a.flags == b.flags
            && a.backing == b.backing
            && a.pgoff + 1 == b.pgoff
            && (!a.flags.intersects(VM_SPECIAL) || a.id == b.id)
    }

    fn check(t: &VmaTree, model: &Model, maximal: bool) {
        let vmas: Vec<Vma> = t.iter().copied().collect();
        assert_eq!(t.len(), vmas.len());
        for v in &vmas {
            assert!(v.start < v.end);
            assert_eq!(v.start.as_u64() & PAGE_MASK, 0);
            assert_eq!(v.end.as_u64() & PAGE_MASK, 0);
        }
        for w in vmas.windows(2) {
            assert!(w[0].end <= w[1].start, "overlap {:?} {:?}", w[0], w[1]);
            if maximal {
                assert!(
                    !w[0].can_merge_with(&w[1]),
                    "unmerged {:?} {:?}",
                    w[0],
                    w[1]
                );
            }
        }
        // Page by page, through the lookup functions.
        for (i, st) in model.iter().enumerate() {
            let addr = va(BASE + i as u64);
            match (t.vma_lookup(addr), st) {
                (None, None) => {}
                (Some(v), Some(st)) => {
                    assert_eq!(v.flags, st.flags, "page {i}");
                    assert_eq!(v.backing, backing_of(st.backing), "page {i}");
                    assert_eq!(
                        v.pgoff + (addr.as_u64() - v.start.as_u64()) / P,
                        st.pgoff,
                        "page {i}"
                    );
                }
                (v, st) => panic!("page {i}: tree {v:?}, model {st:?}"),
            }
        }
        // Maximal merging: the VMAs are exactly the model's runs.
        if maximal {
            let mut runs: Vec<(u64, u64, PageState)> = Vec::new();
            for (i, st) in model.iter().enumerate() {
                let Some(st) = st else { continue };
                let page = BASE + i as u64;
                match runs.last_mut() {
                    Some(last)
                        if last.1 == page && i > 0 && continues(&model[i - 1].unwrap(), st) =>
                    {
                        last.1 = page + 1;
                    }
                    _ => runs.push((page, page + 1, *st)),
                }
            }
            let got: Vec<_> = vmas
                .iter()
                .map(|v| {
                    (
                        v.start.as_u64() / P,
                        v.end.as_u64() / P,
                        v.flags,
                        v.pgoff,
                        v.backing,
                    )
                })
                .collect();
            let want: Vec<_> = runs
                .iter()
                .map(|(s, e, st)| (*s, *e, st.flags, st.pgoff, backing_of(st.backing)))
                .collect();
            assert_eq!(got, want);
        }
        assert_eq!(t.stat(), recount(t));
        assert_eq!(t.stat().total_vm, model.iter().flatten().count() as u64);
    }

    fn run_ops(ops: Vec<Op>) {
        let mut t = VmaTree::new();
        let mut model: Model = [None; WIN];
        let mut next_id = 1u32;
        let mut split_seen = false;
        for op in ops {
            match op {
                Op::Map {
                    start,
                    len,
                    prot,
                    may,
                    shared,
                    noreserve,
                    special,
                    backing,
                    pgoff,
                } => {
                    let len = len.min(WIN as u64 - start);
                    let (s, e) = (BASE + start, BASE + start + len);
                    let mut flags = VmFlags(prot | ((prot | may) << 4));
                    if shared {
                        flags |= VM_SHARED | VM_MAYSHARE;
                    }
                    if noreserve {
                        flags |= VM_NORESERVE;
                    }
                    if special {
                        flags |= VM_DONTEXPAND;
                    }
                    let vma = match backing {
                        0 => Vma::anon(va(s), va(e), flags),
                        b => Vma::file(va(s), va(e), flags, file(u64::from(b)), pgoff),
                    };
                    let before = model;
                    let removed = t.map_fixed(vma).unwrap();
                    check_removed(&removed, &before, start as usize, len as usize);
                    let id = if special {
                        next_id += 1;
                        next_id
                    } else {
                        0
                    };
                    for k in 0..len {
                        model[(start + k) as usize] = Some(PageState {
                            flags,
                            backing,
                            pgoff: if backing == 0 { s + k } else { pgoff + k },
                            id,
                        });
                    }
                }
                Op::Unmap { start, len } => {
                    let len = len.min(WIN as u64 - start);
                    let before = model;
                    let removed = t.unmap(va(BASE + start), len * P).unwrap();
                    check_removed(&removed, &before, start as usize, len as usize);
                    model[start as usize..(start + len) as usize].fill(None);
                }
                Op::Protect { start, len, prot } => {
                    let len = len.min(WIN as u64 - start);
                    let range = start as usize..(start + len) as usize;
                    let prot = VmFlags(prot);
                    let mut expect = Ok(0);
                    let mut updated = model;
                    let mut last_old_id = None;
                    for i in range.clone() {
                        let Some(st) = model[i] else {
                            expect = Err(VmaError::NoMemory);
                            break;
                        };
                        let mut flags = (st.flags & !VM_ACCESS_FLAGS) | prot;
                        if flags.0 & !(flags.0 >> 4) & 7 != 0 {
                            expect = Err(VmaError::Access);
                            break;
                        }
                        if flags.contains(VM_WRITE)
                            && !st.flags.intersects(
                                VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE,
                            )
                        {
                            flags |= VM_ACCOUNT;
                            expect = expect.map(|c| c + 1);
                        }
                        let mut id = st.id;
                        if flags != st.flags && st.id != 0 {
                            // A changed part of a special VMA becomes a VMA of its own.
                            if last_old_id != Some(st.id) {
                                next_id += 1;
                                last_old_id = Some(st.id);
                            }
                            id = next_id;
                        } else {
                            last_old_id = None;
                        }
                        updated[i] = Some(PageState { flags, id, ..st });
                    }
                    let got = t.mprotect(va(BASE + start), len * P, prot);
                    assert_eq!(got, expect);
                    if got.is_ok() {
                        model = updated;
                    }
                }
                Op::Split { at } => {
                    if t.split(va(BASE + at)) == Ok(true) {
                        split_seen = true;
                    }
                }
            }
            check(&t, &model, !split_seen);
        }
    }

    fn gap_fits(t: &VmaTree, a: u64, len: u64, guard: u64) -> bool {
        t.iter()
            .find(|v| v.end.as_u64() > a)
            .is_none_or(|v| a + len <= v.start_gap(guard))
    }

    /// Brute-force placement over every page, in the order Linux tries them.
    fn brute_force_area(t: &VmaTree, len: u64, hint: u64, l: &MmapLayout) -> Option<u64> {
        let g = l.stack_guard_gap;
        if hint != 0 {
            let a = (hint & !PAGE_MASK).max(l.mmap_min_addr);
            if a + len <= l.task_size && gap_fits(t, a, len, g) {
                return Some(a);
            }
        }
        let low = l.mmap_min_addr.max(P);
        let high = l.mmap_base.min(l.task_size);
        let mut a = high.checked_sub(len)?;
        while high >= len && a >= low {
            if gap_fits(t, a, len, g) {
                return Some(a);
            }
            a = a.checked_sub(P)?;
        }
        let mut a = l.legacy_base.max(low);
        while a + len <= l.task_size {
            if gap_fits(t, a, len, g) {
                return Some(a);
            }
            a += P;
        }
        None
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn vma_ops_match_page_model(ops in proptest::collection::vec(op(), 1..80)) {
            run_ops(ops);
        }

        #[test]
        fn vma_get_unmapped_area_matches_brute_force(
            vmas in proptest::collection::vec((0u64..64, 1u64..8, prop::bool::weighted(0.3)), 0..10),
            len in 1u64..12,
            hint in prop_oneof![Just(0u64), 0u64..70],
            mmap_base in 20u64..64,
            legacy_base in 0u64..48,
            guard in 0u64..5,
            placement in prop_oneof![
                6 => Just(Placement::Anywhere),
                1 => Just(Placement::Fixed),
                1 => Just(Placement::FixedNoReplace),
            ],
        ) {
            let mut t = VmaTree::new();
            for (s, n, stack) in vmas {
                let flags = if stack { VM_STACK_FLAGS } else { RW };
                let _ = t.insert(anon(s, s + n, flags));
            }
            let l = MmapLayout {
                task_size: 64 * P,
                mmap_base: mmap_base * P,
                legacy_base: legacy_base * P,
                mmap_min_addr: 2 * P,
                stack_guard_gap: guard * P,
            };
            let got = t.get_unmapped_area(len * P - 5, va(hint), placement, &l);
            let (len, hint) = (len * P, hint * P);
            let want = match placement {
                Placement::Anywhere => brute_force_area(&t, len, hint, &l)
                    .map(VirtAddr::new)
                    .ok_or(VmaError::NoMemory),
                _ if hint + len > l.task_size => Err(VmaError::NoMemory),
                _ if hint < l.mmap_min_addr => Err(VmaError::Permission),
                Placement::FixedNoReplace
                    if t.iter().any(|v| v.start.as_u64() < hint + len && hint < v.end.as_u64()) =>
                {
                    Err(VmaError::Exists)
                }
                _ => Ok(VirtAddr::new(hint)),
            };
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn model_catches_special_vmas_and_accounting() {
        // A fixed sequence through the property test's paths: a special VMA split by mprotect
        // stays three VMAs after restoring, and RO->RW charges pages.
        run_ops(vec![
            Op::Map {
                start: 0,
                len: 10,
                prot: 1,
                may: 7,
                shared: false,
                noreserve: false,
                special: true,
                backing: 0,
                pgoff: 0,
            },
            Op::Protect {
                start: 3,
                len: 2,
                prot: 3,
            },
            Op::Protect {
                start: 3,
                len: 2,
                prot: 1,
            },
            Op::Map {
                start: 10,
                len: 5,
                prot: 1,
                may: 7,
                shared: false,
                noreserve: false,
                special: false,
                backing: 1,
                pgoff: 0,
            },
            Op::Map {
                start: 15,
                len: 5,
                prot: 1,
                may: 7,
                shared: false,
                noreserve: false,
                special: false,
                backing: 1,
                pgoff: 5,
            },
            Op::Protect {
                start: 12,
                len: 10,
                prot: 2,
            },
            Op::Unmap { start: 4, len: 12 },
        ]);
    }
}
