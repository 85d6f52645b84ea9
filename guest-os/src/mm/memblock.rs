//! Boot memory: the kernel's `memblock` instance, filled from the PVH memory map with the
//! ranges already in use reserved, serving early allocations (page tables, `mem_map`) until
//! the page allocator takes over all free memory and memblock is retired.

use mm_core::memblock::{Memblock, MemblockError};

use super::addr::{phys_to_virt, PhysAddr, PAGE_SIZE};
use crate::boot::e820::E820_TYPE_RAM;
use crate::boot::pvh::{HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo, PvhBootInfo};
use crate::kprintln;
use crate::sync::IrqLock;

/// Low memory Linux on x86 never allocates: real-mode IVT, BIOS data, EBDA, option ROMs
/// (`memblock_reserve(0, SZ_1M)` in `setup_arch`).
pub const LOW_RESERVED: u64 = 1 << 20;

/// The boot allocator, and whether it has been retired.
static MEMBLOCK: IrqLock<(Memblock, bool)> = IrqLock::new("memblock", (Memblock::new(), false));

extern "C" {
    static __kernel_phys_start: u8;
    static __kernel_phys_end: u8;
}

fn page_down(a: u64) -> u64 {
    a & !(PAGE_SIZE - 1)
}

fn page_up(a: u64) -> u64 {
    a.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// The kernel image's physical range.
pub fn kernel_image() -> (u64, u64) {
    // SAFETY: only the addresses of linker symbols are taken.
    unsafe {
        (
            &__kernel_phys_start as *const u8 as u64,
            &__kernel_phys_end as *const u8 as u64,
        )
    }
}

/// Fill memblock from the boot information: RAM from the e820 map (whole pages only), then
/// reservations for low memory, the kernel image, and every boot structure the loader
/// placed in RAM (start_info, memory map, module list, command line, modules).
///
/// Kept out of line (it runs once): inlined, its first statement becomes the first line of
/// `mm::init::init`, and a debugger's `break kernel::mm::init::init` reports the inlined
/// lock instead of the function (tests/gdb.rs).
#[inline(never)]
pub fn init(boot: &PvhBootInfo, start_info_pa: u64) -> Result<(), MemblockError> {
    let mut g = MEMBLOCK.lock();
    let mb = &mut g.0;
    for e in boot.memmap().filter(|e| e.type_ == E820_TYPE_RAM) {
        // Page 0 is not RAM to the kernel (Linux's `trim_bios_range`): it holds the
        // real-mode IVT, and a zero frame number must never look like a valid page.
        let (s, end) = (
            page_up(e.addr).max(PAGE_SIZE),
            page_down(e.addr.saturating_add(e.size)),
        );
        if end > s {
            mb.add(s, end - s)?;
        }
    }
    let reserve = |mb: &mut Memblock, base: u64, size: u64| -> Result<(), MemblockError> {
        if size == 0 {
            return Ok(());
        }
        let (s, e) = (page_down(base), page_up(base.saturating_add(size)));
        mb.reserve(s, e - s)
    };
    reserve(mb, 0, LOW_RESERVED)?;
    let (ks, ke) = kernel_image();
    reserve(mb, ks, ke - ks)?;
    let si: &HvmStartInfo = boot.start_info();
    reserve(
        mb,
        start_info_pa,
        core::mem::size_of::<HvmStartInfo>() as u64,
    )?;
    reserve(
        mb,
        si.memmap_paddr,
        u64::from(si.memmap_entries) * core::mem::size_of::<HvmMemmapTableEntry>() as u64,
    )?;
    reserve(
        mb,
        si.modlist_paddr,
        u64::from(si.nr_modules) * core::mem::size_of::<HvmModlistEntry>() as u64,
    )?;
    reserve(mb, si.cmdline_paddr, boot.cmdline().len() as u64 + 1)?;
    for i in 0..boot.nr_modules() {
        if let Some(m) = boot.module(i) {
            reserve(mb, m.paddr, m.size)?;
        }
    }
    Ok(())
}

/// Split RAM into `n` fake NUMA nodes (`numa=fake=N`) of equal shares of RAM, rounded down
/// to a pageblock (2 MiB; Linux rounds to 32 MiB and spreads the rest, which leaves small
/// machines unbalanced); the last node takes the remainder. Returns the number of nodes.
pub fn split_fake_nodes(n: usize) -> usize {
    const FAKE_NODE_MIN_SIZE: u64 = 2 << 20;
    let mut g = MEMBLOCK.lock();
    let mb = &mut g.0;
    let total = mb.memory.total();
    let n = n.clamp(1, mm_core::zone::MAX_NUMNODES);
    let per = (total / n as u64) & !(FAKE_NODE_MIN_SIZE - 1);
    if n == 1 || per == 0 {
        return 1;
    }
    // Node k starts where the RAM below it reaches k * per bytes.
    let addr_of_ram_offset = |target: u64| {
        let mut acc = 0;
        for r in mb.memory.regions() {
            if acc + r.size > target {
                return r.base + (target - acc);
            }
            acc += r.size;
        }
        u64::MAX
    };
    let mut bounds = [0u64; mm_core::zone::MAX_NUMNODES + 1];
    for (k, b) in bounds.iter_mut().enumerate().take(n + 1).skip(1) {
        *b = if k == n {
            mb.memory.regions().last().map_or(0, |r| r.end())
        } else {
            addr_of_ram_offset(per * k as u64)
        };
    }
    for k in 0..n {
        if mb
            .memory
            .set_node(bounds[k], bounds[k + 1] - bounds[k], k as u8)
            .is_err()
        {
            return k.max(1);
        }
    }
    n
}

/// Allocate `size` zeroed bytes below `max` (top-down), while memblock is live.
pub fn alloc(size: u64, align: u64, max: u64) -> Option<PhysAddr> {
    let pa = alloc_raw(size, align, max)?;
    let va = phys_to_virt(pa, size)?;
    // SAFETY: the range was just reserved for the caller and lies in the direct map.
    unsafe { core::ptr::write_bytes(va.as_mut_ptr::<u8>(), 0, size as usize) };
    Some(pa)
}

/// Allocate `size` bytes below `max` (top-down) without clearing them
/// (`memblock_alloc_raw`): for `mem_map`, whose descriptors are written when initialised,
/// so the frames of descriptors not initialised yet are never touched.
pub fn alloc_raw(size: u64, align: u64, max: u64) -> Option<PhysAddr> {
    let mut g = MEMBLOCK.lock();
    if g.1 {
        return None;
    }
    g.0.alloc_range(size, align, 0, max)
}

/// Run `f` on memblock (for `mm::init`).
pub fn with<R>(f: impl FnOnce(&Memblock) -> R) -> R {
    f(&MEMBLOCK.lock().0)
}

/// Retire memblock: from now on only the page allocator hands out memory.
pub fn retire() {
    MEMBLOCK.lock().1 = true;
}

/// Print the ranges as Linux's `memblock=debug` does.
pub fn print() {
    with(|mb| {
        kprintln!("MEMBLOCK configuration:");
        kprintln!(
            " memory size = {:#x} reserved size = {:#x}",
            mb.memory.total(),
            mb.reserved.total()
        );
        for (name, set) in [("memory", &mb.memory), ("reserved", &mb.reserved)] {
            kprintln!(" {}.cnt  = {:#x}", name, set.regions().len());
            for (i, r) in set.regions().iter().enumerate() {
                kprintln!(
                    " {}[{:#x}]\t[{:#018x}-{:#018x}], {:#018x} bytes on node {}",
                    name,
                    i,
                    r.base,
                    r.end() - 1,
                    r.size,
                    r.nid
                );
            }
        }
    });
}
