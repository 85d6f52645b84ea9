//! The Xen PVH boot ABI: `struct hvm_start_info` and the tables it points to
//! (Xen `include/public/arch-x86/hvm/start_info.h`).
//!
//! All structures are read from physical memory through the boot direct map and copied out
//! with unaligned reads, so nothing here depends on how the loader aligned them. The command
//! line is borrowed in place: whoever later reclaims boot-loader memory must copy it first.

use core::fmt;
use core::mem::size_of;
use core::ptr;

use crate::mm::layout::BOOT_MAP_SIZE;
use crate::mm::{phys_to_virt, PhysAddr};

/// `hvm_start_info.magic`: "xEn3" with the high bit of each byte cleared and set again.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// Lowest `hvm_start_info.version` with a memory map (version 1 added `memmap_*`).
pub const HVM_START_INFO_MIN_VERSION: u32 = 1;
/// Longest command line read (Linux's x86 COMMAND_LINE_SIZE); longer ones are truncated.
pub const COMMAND_LINE_SIZE: usize = 2048;

/// `struct hvm_start_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HvmStartInfo {
    /// Must be [`XEN_HVM_START_MAGIC_VALUE`].
    pub magic: u32,
    /// Version of this structure.
    pub version: u32,
    /// SIF_xxx flags.
    pub flags: u32,
    /// Number of entries in the module list.
    pub nr_modules: u32,
    /// Physical address of an array of [`HvmModlistEntry`].
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line (0: none).
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP (0: not provided).
    pub rsdp_paddr: u64,
    /// Physical address of an array of [`HvmMemmapTableEntry`] (version >= 1).
    pub memmap_paddr: u64,
    /// Number of entries in the memory map (version >= 1).
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// `struct hvm_memmap_table_entry`: one e820-style memory range.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvmMemmapTableEntry {
    /// Base physical address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// e820 type (see [`super::e820`]).
    pub type_: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// `struct hvm_modlist_entry`: one boot module (the first one is the initrd).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvmModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Size of the module in bytes.
    pub size: u64,
    /// Physical address of the module's command line (0: none).
    pub cmdline_paddr: u64,
    /// Must be zero.
    pub reserved: u64,
}

const _: () = assert!(size_of::<HvmStartInfo>() == 56);
const _: () = assert!(size_of::<HvmMemmapTableEntry>() == 24);
const _: () = assert!(size_of::<HvmModlistEntry>() == 32);

/// Why the boot information could not be used.
#[derive(Clone, Copy, Debug)]
pub enum PvhError {
    /// `magic` is not [`XEN_HVM_START_MAGIC_VALUE`].
    BadMagic(u32),
    /// `version` is older than [`HVM_START_INFO_MIN_VERSION`].
    UnsupportedVersion(u32),
    /// A structure lies outside the boot direct map.
    Unmapped(&'static str),
}

impl fmt::Display for PvhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PvhError::BadMagic(magic) => write!(
                f,
                "PVH: bad hvm_start_info magic {magic:#010x} (expected {XEN_HVM_START_MAGIC_VALUE:#010x})"
            ),
            PvhError::UnsupportedVersion(v) => write!(
                f,
                "PVH: unsupported hvm_start_info version {v} (need >= {HVM_START_INFO_MIN_VERSION})"
            ),
            PvhError::Unmapped(what) => write!(f, "PVH: {what} is outside the boot mapping"),
        }
    }
}

/// Reads a `T` at physical address `pa` through the boot direct map.
fn read_phys<T: Copy>(pa: PhysAddr, what: &'static str) -> Result<T, PvhError> {
    let va = phys_to_virt(pa, size_of::<T>() as u64).ok_or(PvhError::Unmapped(what))?;
    // SAFETY: the range is inside the boot direct map, which maps RAM/firmware memory; `T` is
    // plain old data, so any bit pattern is valid.
    Ok(unsafe { ptr::read_unaligned(va.as_ptr::<T>()) })
}

/// Validated boot information from the PVH loader.
#[derive(Clone, Copy, Debug)]
pub struct PvhBootInfo {
    start_info: HvmStartInfo,
    cmdline: &'static [u8],
}

impl PvhBootInfo {
    /// Reads and validates the `hvm_start_info` at `start_info_pa`.
    pub fn from_phys(start_info_pa: PhysAddr) -> Result<Self, PvhError> {
        let start_info: HvmStartInfo = read_phys(start_info_pa, "hvm_start_info")?;
        if start_info.magic != XEN_HVM_START_MAGIC_VALUE {
            return Err(PvhError::BadMagic(start_info.magic));
        }
        if start_info.version < HVM_START_INFO_MIN_VERSION {
            return Err(PvhError::UnsupportedVersion(start_info.version));
        }
        let info = Self {
            start_info,
            cmdline: read_cmdline(PhysAddr::new(start_info.cmdline_paddr))?,
        };
        // Check the tables up front so the accessors below cannot fail.
        let memmap_len =
            u64::from(start_info.memmap_entries) * size_of::<HvmMemmapTableEntry>() as u64;
        if phys_to_virt(PhysAddr::new(start_info.memmap_paddr), memmap_len).is_none() {
            return Err(PvhError::Unmapped("memory map"));
        }
        let modlist_len = u64::from(start_info.nr_modules) * size_of::<HvmModlistEntry>() as u64;
        if phys_to_virt(PhysAddr::new(start_info.modlist_paddr), modlist_len).is_none() {
            return Err(PvhError::Unmapped("module list"));
        }
        Ok(info)
    }

    /// The raw `hvm_start_info`.
    pub fn start_info(&self) -> &HvmStartInfo {
        &self.start_info
    }

    /// The kernel command line, without the terminating NUL (empty if none was given).
    pub fn cmdline(&self) -> &'static [u8] {
        self.cmdline
    }

    /// The memory-map entries, in the order the loader gave them.
    pub fn memmap(&self) -> impl Iterator<Item = HvmMemmapTableEntry> + Clone {
        let base = self.start_info.memmap_paddr;
        (0..u64::from(self.start_info.memmap_entries)).map(move |i| {
            let pa = PhysAddr::new(base + i * size_of::<HvmMemmapTableEntry>() as u64);
            read_phys(pa, "memory map").expect("memory map checked in from_phys")
        })
    }

    /// Number of boot modules.
    pub fn nr_modules(&self) -> u32 {
        self.start_info.nr_modules
    }

    /// Boot module `index` (module 0 is the initrd), if present.
    pub fn module(&self, index: u32) -> Option<HvmModlistEntry> {
        if index >= self.start_info.nr_modules {
            return None;
        }
        let offset = u64::from(index) * size_of::<HvmModlistEntry>() as u64;
        let pa = PhysAddr::new(self.start_info.modlist_paddr + offset);
        Some(read_phys(pa, "module list").expect("module list checked in from_phys"))
    }
}

/// Borrows the NUL-terminated command line at `pa` (at most [`COMMAND_LINE_SIZE`] bytes).
fn read_cmdline(pa: PhysAddr) -> Result<&'static [u8], PvhError> {
    if pa.is_null() {
        return Ok(&[]);
    }
    let va = phys_to_virt(pa, 1).ok_or(PvhError::Unmapped("command line"))?;
    // Stop at COMMAND_LINE_SIZE, and at the end of the direct map.
    let max = (BOOT_MAP_SIZE - pa.as_u64()).min(COMMAND_LINE_SIZE as u64) as usize;
    let base = va.as_ptr::<u8>();
    let mut len = 0;
    // SAFETY: `[pa, pa + max)` is inside the boot direct map.
    while len < max && unsafe { base.add(len).read() } != 0 {
        len += 1;
    }
    // SAFETY: as above; the loader's memory is not reused while the kernel holds this slice.
    Ok(unsafe { core::slice::from_raw_parts(base, len) })
}
