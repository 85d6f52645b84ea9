//! The vDSO: a small ELF shared object mapped into every process (AT_SYSINFO_EHDR), whose
//! functions read the time without a system call, and the vvar page it reads (`[vvar]`,
//! mapped just below it, read-only to user space, written by the kernel).
//!
//! The image is built separately, as Linux builds its vDSO: the crate `guest-os/vdso` is
//! compiled position-independent and linked with `-shared` and `linker/vdso.ld` into
//! `linux-vdso.so.1` (see `guest-os/build.rs`), and the kernel embeds that file. At the
//! first exec, [`init`] checks the image ([`validate`]), copies it into pages of its own
//! and sets up the vvar page; every exec then maps both (`Mm::map_vdso`), and page faults
//! in them map these same frames (`Mm::fill`).
//!
//! Time is the TSC scaled by the vvar's `mult >> shift` (identity: the syscall clock is the
//! TSC read as nanoseconds, which on vmscope is the instruction count). The coarse clocks
//! read `coarse_ns`, which the scheduler tick updates under the sequence count `seq` (odd
//! while an update is in progress). The REALTIME clocks add `realtime_offset_ns`, which
//! boot (from the RTC) and clock_settime set.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use goblin::elf::header::{EM_X86_64, ET_DYN};
use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_DYNAMIC, PT_LOAD};
use goblin::elf::sym::STT_FUNC;
use goblin::elf::Elf;
use mm_core::gfp::Gfp;

use crate::mm::addr::Pfn;
use crate::mm::page_alloc::{self, page_address};

/// The shared object built from `guest-os/vdso` (path set by build.rs).
static IMAGE: &[u8] = include_bytes!(env!("VMSCOPE_VDSO_SO"));

const PAGE_SIZE: usize = 4096;
/// The most pages the image may take (it takes one today).
pub const MAX_VDSO_PAGES: usize = 4;
/// The vvar area below the image: one page (`vvar_page` in linker/vdso.ld).
pub const VVAR_PAGES: usize = 1;
/// The soname every Linux x86-64 vDSO has.
const SONAME: &str = "linux-vdso.so.1";
/// The functions the image must define (their unprefixed weak aliases come along).
pub const FUNCTIONS: [&str; 4] = [
    "__vdso_clock_gettime",
    "__vdso_gettimeofday",
    "__vdso_time",
    "__vdso_getcpu",
];
/// The linker script's name for the start of the vvar area.
const VVAR_SYMBOL: &str = "vvar_page";

/// vvar layout, shared with `guest-os/vdso/src/main.rs` (`struct Vvar`).
mod vvar {
    pub const SEQ: usize = 0;
    pub const MULT: usize = 8;
    pub const SHIFT: usize = 16;
    pub const COARSE_NS: usize = 24;
    pub const REALTIME_OFFSET_NS: usize = 32;
}

/// Checks the embedded image and returns the number of pages it occupies. The kernel maps
/// the file as it is, unrelocated, with the vvar page right below it, so the image must be
/// an x86-64 ET_DYN with one R+X PT_LOAD at file offset 0 and address 0 (no bss), a
/// PT_DYNAMIC, no dynamic relocations, the soname `linux-vdso.so.1`, the [`FUNCTIONS`]
/// defined as functions inside the PT_LOAD, and `vvar_page` at `-VVAR_PAGES` pages.
pub fn validate(image: &[u8]) -> Result<usize, &'static str> {
    let elf = Elf::parse(image).map_err(|_| "not a well-formed ELF file")?;
    if !elf.is_64 || !elf.little_endian || elf.header.e_machine != EM_X86_64 {
        return Err("not a 64-bit little-endian x86-64 ELF file");
    }
    if elf.header.e_type != ET_DYN {
        return Err("not a shared object (ET_DYN)");
    }
    let mut loads = elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD);
    let (Some(load), None) = (loads.next(), loads.next()) else {
        return Err("not exactly one PT_LOAD");
    };
    if load.p_offset != 0
        || load.p_vaddr != 0
        || load.p_filesz != load.p_memsz
        || load.p_flags & (PF_R | PF_W | PF_X) != PF_R | PF_X
        || load.p_filesz as usize > image.len()
    {
        return Err("PT_LOAD is not one read-only executable file range from offset 0");
    }
    if !elf.program_headers.iter().any(|p| p.p_type == PT_DYNAMIC) {
        return Err("no PT_DYNAMIC");
    }
    if !elf.dynrelas.is_empty() || !elf.dynrels.is_empty() || !elf.pltrelocs.is_empty() {
        return Err("has dynamic relocations (the image is mapped unrelocated)");
    }
    if elf.soname != Some(SONAME) {
        return Err("soname is not linux-vdso.so.1");
    }
    for name in FUNCTIONS {
        let defined = elf.dynsyms.iter().any(|s| {
            elf.dynstrtab.get_at(s.st_name) == Some(name)
                && s.st_shndx != 0
                && s.st_type() == STT_FUNC
                && s.st_value.saturating_add(s.st_size) <= load.p_filesz
        });
        if !defined {
            return Err("a __vdso_ function is missing from .dynsym");
        }
    }
    let vvar_at = elf
        .syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some(VVAR_SYMBOL))
        .map(|s| s.st_value);
    if vvar_at != Some((VVAR_PAGES * PAGE_SIZE).wrapping_neg() as u64) {
        return Err("vvar_page is not the page below the image");
    }
    let pages = image.len().div_ceil(PAGE_SIZE);
    if pages > MAX_VDSO_PAGES {
        return Err("larger than MAX_VDSO_PAGES");
    }
    Ok(pages)
}

/// 0: not tried yet; 1: ready; 2: the image was rejected (logged once).
static STATE: AtomicU8 = AtomicU8::new(0);
static VDSO_PAGES: AtomicU64 = AtomicU64::new(0);
static VDSO_PFNS: [AtomicU64; MAX_VDSO_PAGES] = [const { AtomicU64::new(0) }; MAX_VDSO_PAGES];
static VVAR_PFN: AtomicU64 = AtomicU64::new(0);

/// Pages of the image (0 until [`init`] succeeded).
pub fn vdso_pages() -> usize {
    VDSO_PAGES.load(Ordering::Relaxed) as usize
}

/// The frame of page `index` of the image.
pub fn vdso_pfn(index: usize) -> Option<Pfn> {
    match VDSO_PFNS.get(index)?.load(Ordering::Relaxed) {
        0 => None,
        p => Some(Pfn(p)),
    }
}

/// The frame of the vvar page.
pub fn vvar_pfn() -> Option<Pfn> {
    match VVAR_PFN.load(Ordering::Relaxed) {
        0 => None,
        p => Some(Pfn(p)),
    }
}

/// Whether `pfn` is one of the shared vDSO or vvar pages (never freed with a process).
pub fn is_vdso_page(pfn: Pfn) -> bool {
    let p = pfn.as_u64();
    p != 0
        && (p == VVAR_PFN.load(Ordering::Relaxed)
            || VDSO_PFNS.iter().any(|f| f.load(Ordering::Relaxed) == p))
}

/// Check the image, copy it into pages and set up the vvar page (once, at the first exec).
/// False if there is no vDSO: processes then run without one (no AT_SYSINFO_EHDR).
pub fn init() -> bool {
    match STATE.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let pages = match validate(IMAGE) {
        Ok(p) => p,
        Err(e) => {
            log::error!("vdso: the embedded image is unusable: {e}; running without a vDSO");
            STATE.store(2, Ordering::Relaxed);
            return false;
        }
    };
    let Some(vvar) = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO, 0) else {
        return false;
    };
    let mut pfns = [0u64; MAX_VDSO_PAGES];
    for (i, chunk) in IMAGE.chunks(PAGE_SIZE).enumerate() {
        let Some(pfn) = page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO, 0) else {
            for p in &pfns[..i] {
                page_alloc::free_pages(Pfn(*p), 0);
            }
            page_alloc::free_pages(vvar, 0);
            return false;
        };
        // SAFETY: the page was just allocated for this and is reached through the direct
        // map; the chunk is at most a page.
        unsafe {
            core::ptr::copy_nonoverlapping(
                chunk.as_ptr(),
                page_address(pfn).as_mut_ptr::<u8>(),
                chunk.len(),
            );
        }
        pfns[i] = pfn.as_u64();
    }
    // vvar: identity scaling, coarse clock from now.
    let vv = page_address(vvar).as_mut_ptr::<u64>();
    // SAFETY: the vvar page is ours; offsets are within it.
    unsafe {
        vv.add(vvar::SEQ / 8).write_volatile(0);
        vv.add(vvar::MULT / 8).write_volatile(1);
        vv.add(vvar::SHIFT / 8).write_volatile(0);
        vv.add(vvar::COARSE_NS / 8)
            .write_volatile(crate::syscall::info::monotonic_ns());
        vv.add(vvar::REALTIME_OFFSET_NS / 8)
            .write_volatile(super::timer::realtime_offset_ns());
    }
    for (slot, pfn) in VDSO_PFNS.iter().zip(pfns) {
        slot.store(pfn, Ordering::Relaxed);
    }
    VVAR_PFN.store(vvar.as_u64(), Ordering::Relaxed);
    VDSO_PAGES.store(pages as u64, Ordering::Relaxed);
    STATE.store(1, Ordering::Relaxed);
    true
}

/// clock_settime moved CLOCK_REALTIME: publish the new offset under the sequence count.
pub fn set_realtime_offset(off: u64) {
    if let Some(vvar) = vvar_pfn() {
        let vv = page_address(vvar).as_mut_ptr::<u64>();
        // SAFETY: the kernel's own mapping of the vvar page.
        unsafe {
            let seq = vv.add(vvar::SEQ / 8);
            seq.write_volatile(seq.read_volatile() + 1);
            vv.add(vvar::REALTIME_OFFSET_NS / 8).write_volatile(off);
            seq.write_volatile(seq.read_volatile() + 1);
        }
    }
}

/// The scheduler tick: refresh the coarse clock.
pub fn tick() {
    if let Some(vvar) = vvar_pfn() {
        let vv = page_address(vvar).as_mut_ptr::<u64>();
        // SAFETY: the kernel's own mapping of the vvar page.
        unsafe {
            let seq = vv.add(vvar::SEQ / 8);
            seq.write_volatile(seq.read_volatile() + 1);
            vv.add(vvar::COARSE_NS / 8)
                .write_volatile(crate::syscall::info::monotonic_ns());
            seq.write_volatile(seq.read_volatile() + 1);
        }
    }
}
