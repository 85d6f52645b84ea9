//! The Xen PVH boot protocol for ELF kernels, as QEMU's `-kernel` implements it
//! (xen/include/public/arch-x86/hvm/start_info.h and docs/misc/pvh.pandoc in Xen):
//!
//! * the kernel ELF carries the note `Xen`/XEN_ELFNOTE_PHYS32_ENTRY with its 32-bit entry;
//! * PT_LOAD segments are placed at their *physical* addresses (`p_paddr`);
//! * the CPU starts in 32-bit protected mode, paging off, flat 4 GiB CS (execute/read) and
//!   DS/ES/SS (read/write), a 32-bit TSS in TR, EBX = physical address of `hvm_start_info`;
//! * `hvm_start_info` (version 1) points at the command line, the module list (module 0 is
//!   the initramfs) and an E820-style memory map.
//!
//! The boot information lives in low memory at [`BOOT_INFO_BASE`]..[`BOOT_INFO_END`]; the
//! guest must treat it as in use until it has copied what it needs.

use super::e820::{self, E820Entry};
use crate::addr::GuestPhysAddr;
use crate::bus::Bus;
use crate::cpu::regs::{cr0, rflags, seg_attr, SegReg, Segment};
use crate::cpu::Cpu;
use goblin::elf::{program_header::PT_LOAD, Elf};

/// `hvm_start_info.magic` ("xEn3" with the top bit cleared).
pub const HVM_START_MAGIC: u32 = 0x336e_c578;
/// Version 1 adds the memory map.
pub const HVM_START_VERSION: u32 = 1;
/// XEN_ELFNOTE_PHYS32_ENTRY.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// Physical layout of the boot information (all below 1 MiB, in the first usable range).
pub const BOOT_INFO_BASE: u64 = 0x6000;
pub const BOOT_GDT: u64 = 0x6000;
pub const BOOT_TSS: u64 = 0x6100;
pub const START_INFO: u64 = 0x7000;
/// `struct hvm_start_info` is 56 bytes; the memory map follows it.
const START_INFO_SIZE: u64 = 56;
const MEMMAP: u64 = START_INFO + 0x40;
const MEMMAP_ENTRY_SIZE: u64 = 24;
const MAX_MEMMAP_ENTRIES: u64 = 32;
const MODLIST: u64 = 0x7800;
const MODLIST_ENTRY_SIZE: u64 = 32;
const CMDLINE: u64 = 0x8000;
pub const BOOT_INFO_END: u64 = 0x9000;
/// Longest command line, without its terminating NUL.
pub const MAX_CMDLINE: usize = (BOOT_INFO_END - CMDLINE) as usize - 1;

/// Boot GDT selectors (the layout QEMU's PVH option ROM uses: code 0x10, data 0x18).
pub const BOOT_CS: u16 = 0x10;
pub const BOOT_DS: u16 = 0x18;
pub const BOOT_TR: u16 = 0x20;
/// Flat 4 GiB 32-bit code (execute/read, accessed) and data (read/write, accessed).
const GDT_CODE32: u64 = 0x00cf_9b00_0000_ffff;
const GDT_DATA32: u64 = 0x00cf_9300_0000_ffff;
/// Minimal 32-bit TSS limit.
const TSS32_LIMIT: u64 = 0x67;
/// Access byte of a present, busy 32-bit TSS.
const TSS32_BUSY_ACCESS: u16 = 0x8b;

/// QEMU keeps this much below the top of low RAM out of the initrd's way (ACPI tables).
const QEMU_ACPI_DATA_SIZE: u64 = 0x28000;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("{0}: not an ELF file")]
    NotElf(String),
    #[error("{0}: malformed ELF: {1}")]
    BadElf(String, String),
    #[error("{0}: no PVH entry point (ELF note \"Xen\" type 18, XEN_ELFNOTE_PHYS32_ENTRY), no multiboot header and no Linux setup header: vmscope boots PVH ELF kernels, multiboot kernels and bzImages")]
    NoPvhNote(String),
    #[error("{name}: RAM too small: segment {start:#x}..{end:#x} needs {need_mib} MiB of RAM, the machine has {have_kib} KiB")]
    RamTooSmall {
        name: String,
        start: u64,
        end: u64,
        need_mib: u64,
        have_kib: u64,
    },
    #[error("{name}: segment {start:#x}..{end:#x} is outside usable RAM")]
    OutsideRam { name: String, start: u64, end: u64 },
    #[error("RAM too small: {have_kib} KiB; a PC machine needs at least {need_kib} KiB")]
    MachineTooSmall { have_kib: u64, need_kib: u64 },
    #[error("initrd of {size} bytes does not fit in low RAM (limit {max:#x})")]
    InitrdTooBig { size: u64, max: u64 },
    #[error("command line is {0} bytes; the limit is {MAX_CMDLINE}")]
    CmdlineTooLong(usize),
}

/// What the loader did, for logs and reports.
#[derive(Debug, Clone)]
pub struct BootInfo {
    pub entry: u64,
    pub start_info: u64,
    pub memmap: Vec<E820Entry>,
    pub initrd: Option<(u64, u64)>,
    /// Physical ranges the kernel image occupies.
    pub segments: Vec<(u64, u64)>,
}

/// The PVH entry point from one note, if it is XEN_ELFNOTE_PHYS32_ENTRY.
fn entry_of(n: &goblin::elf::note::Note) -> Option<u64> {
    if n.name != "Xen" || n.n_type != XEN_ELFNOTE_PHYS32_ENTRY {
        return None;
    }
    match n.desc.len() {
        4 => Some(u32::from_le_bytes(n.desc[..4].try_into().ok()?) as u64),
        8 => Some(u64::from_le_bytes(n.desc[..8].try_into().ok()?)),
        _ => None,
    }
}

/// The PVH entry point from the ELF notes (program headers first, then sections).
fn pvh_entry(elf: &Elf, bytes: &[u8]) -> Option<u64> {
    if let Some(e) = elf
        .iter_note_headers(bytes)
        .and_then(|mut it| it.find_map(|n| n.ok().as_ref().and_then(entry_of)))
    {
        return Some(e);
    }
    elf.iter_note_sections(bytes, None)
        .and_then(|mut it| it.find_map(|n| n.ok().as_ref().and_then(entry_of)))
}

/// Whether `image` is an ELF with a PVH entry note.
pub fn has_pvh_entry(image: &[u8]) -> bool {
    image.starts_with(b"\x7fELF")
        && Elf::parse(image).is_ok_and(|elf| pvh_entry(&elf, image).is_some())
}

/// Load `kernel` and set up `cpu` for the PVH entry. `name` is used in messages.
pub fn load(
    bus: &mut Bus,
    cpu: &mut Cpu,
    kernel: &[u8],
    name: &str,
    cmdline: &str,
    initrd: Option<&[u8]>,
) -> Result<BootInfo, BootError> {
    let below = bus.mem.below_4g();
    let above = bus.mem.above_4g();
    let min_ram = e820::ONE_MIB + e820::FIRMWARE_RESERVED_TOP + e820::ONE_MIB;
    if kernel.len() < 4 || &kernel[..4] != b"\x7fELF" {
        return Err(BootError::NotElf(name.into()));
    }
    let elf = Elf::parse(kernel).map_err(|e| BootError::BadElf(name.into(), e.to_string()))?;
    let entry = pvh_entry(&elf, kernel).ok_or_else(|| BootError::NoPvhNote(name.into()))?;
    if below < min_ram {
        return Err(BootError::MachineTooSmall {
            have_kib: below >> 10,
            need_kib: min_ram >> 10,
        });
    }
    if cmdline.len() > MAX_CMDLINE {
        return Err(BootError::CmdlineTooLong(cmdline.len()));
    }

    // Usable RAM for the image: [1 MiB, top of low RAM - firmware area) and high RAM.
    let low_top = below - e820::FIRMWARE_RESERVED_TOP;
    let high = (
        crate::memory::HIGH_RAM_START,
        crate::memory::HIGH_RAM_START + above,
    );
    let mut segments = Vec::new();
    for ph in elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0)
    {
        let (start, end) = (ph.p_paddr, ph.p_paddr.checked_add(ph.p_memsz));
        let end = end.ok_or_else(|| BootError::BadElf(name.into(), "segment wraps".into()))?;
        let file_end = ph.p_offset.checked_add(ph.p_filesz);
        if ph.p_filesz > ph.p_memsz || file_end.is_none_or(|e| e > kernel.len() as u64) {
            return Err(BootError::BadElf(
                name.into(),
                format!("segment at {start:#x} lies outside the file"),
            ));
        }
        let in_low = start >= e820::ONE_MIB && end <= low_top;
        let in_high = start >= high.0 && end <= high.1;
        if !in_low && !in_high {
            if start >= e820::ONE_MIB && end <= e820::BIOS_FLASH_START {
                let need = end + e820::FIRMWARE_RESERVED_TOP;
                return Err(BootError::RamTooSmall {
                    name: name.into(),
                    start,
                    end,
                    need_mib: need.div_ceil(e820::ONE_MIB),
                    have_kib: bus.mem.size() >> 10,
                });
            }
            return Err(BootError::OutsideRam {
                name: name.into(),
                start,
                end,
            });
        }
        let data = &kernel[ph.p_offset as usize..(ph.p_offset + ph.p_filesz) as usize];
        let ok = bus.mem.write_bytes(GuestPhysAddr(start), data)
            && bus.mem.write_bytes(
                GuestPhysAddr(start + ph.p_filesz),
                &vec![0; (ph.p_memsz - ph.p_filesz) as usize],
            );
        if !ok {
            return Err(BootError::OutsideRam {
                name: name.into(),
                start,
                end,
            });
        }
        segments.push((start, end));
    }

    // Initramfs: as high in low RAM as QEMU puts it, page aligned.
    let mut initrd_range = None;
    if let Some(data) = initrd {
        let max = below - QEMU_ACPI_DATA_SIZE;
        let size = data.len() as u64;
        let addr = max.checked_sub(size).map(|a| a & !0xfff);
        let clash = |a: u64| segments.iter().any(|&(s, e)| a < e && s < a + size);
        match addr {
            Some(a) if a >= e820::ONE_MIB && !clash(a) => {
                bus.mem.write_bytes(GuestPhysAddr(a), data);
                initrd_range = Some((a, size));
            }
            _ => return Err(BootError::InitrdTooBig { size, max }),
        }
    }

    // hvm_start_info, memory map, module list, command line.
    let memmap = e820::qemu_pc_map(below, above, bus.pci.disk_stats().len() as u64, bus.acpi);
    debug_assert!(memmap.len() as u64 <= MAX_MEMMAP_ENTRIES);
    const _: () = assert!(MEMMAP >= START_INFO + START_INFO_SIZE);
    let bus_acpi = bus.acpi;
    let m = &mut bus.mem;
    let w32 =
        |m: &mut crate::memory::GuestMemory, a: u64, v: u32| m.write(GuestPhysAddr(a), 4, v as u64);
    let w64 = |m: &mut crate::memory::GuestMemory, a: u64, v: u64| m.write(GuestPhysAddr(a), 8, v);
    m.write_bytes(
        GuestPhysAddr(BOOT_INFO_BASE),
        &[0; (BOOT_INFO_END - BOOT_INFO_BASE) as usize],
    );
    w32(m, START_INFO, HVM_START_MAGIC);
    w32(m, START_INFO + 4, HVM_START_VERSION);
    w32(m, START_INFO + 8, 0); // flags
    w32(m, START_INFO + 12, initrd_range.is_some() as u32);
    w64(
        m,
        START_INFO + 16,
        if initrd_range.is_some() { MODLIST } else { 0 },
    );
    w64(m, START_INFO + 24, CMDLINE);
    // rsdp_paddr: QEMU's PVH option ROM finds the RSDP in the BIOS area and passes it.
    let rsdp = if bus_acpi {
        super::acpi_tables::RSDP_ADDR
    } else {
        0
    };
    w64(m, START_INFO + 32, rsdp);
    w64(m, START_INFO + 40, MEMMAP);
    w32(m, START_INFO + 48, memmap.len() as u32);
    for (k, e) in memmap.iter().enumerate() {
        let a = MEMMAP + k as u64 * MEMMAP_ENTRY_SIZE;
        w64(m, a, e.addr);
        w64(m, a + 8, e.size);
        w32(m, a + 16, e.kind as u32);
    }
    if let Some((a, size)) = initrd_range {
        w64(m, MODLIST, a);
        w64(m, MODLIST + 8, size);
        const _: () = assert!(MODLIST + MODLIST_ENTRY_SIZE <= CMDLINE);
    }
    m.write_bytes(GuestPhysAddr(CMDLINE), cmdline.as_bytes());

    // Boot GDT and TSS, then the register state the PVH spec gives.
    w64(m, BOOT_GDT + BOOT_CS as u64, GDT_CODE32);
    w64(m, BOOT_GDT + BOOT_DS as u64, GDT_DATA32);
    let tss_desc = TSS32_LIMIT
        | ((BOOT_TSS & 0xff_ffff) << 16)
        | ((TSS32_BUSY_ACCESS as u64) << 40)
        | ((BOOT_TSS >> 24) << 56);
    w64(m, BOOT_GDT + BOOT_TR as u64, tss_desc);

    cpu.cr0 = cr0::PE | cr0::ET;
    cpu.cr4 = 0;
    cpu.efer = 0;
    cpu.cpl = 0;
    cpu.rflags = rflags::FIXED;
    cpu.gpr = [0; 16];
    cpu.gpr[crate::cpu::regs::gpr::RBX] = START_INFO;
    cpu.rip = entry;
    cpu.gdtr.base = BOOT_GDT;
    cpu.gdtr.limit = (BOOT_TR as u64 + 7) as u16;
    cpu.idtr.base = 0;
    cpu.idtr.limit = 0;
    let code = Segment::flat32(BOOT_CS, 0x9b);
    let data = Segment::flat32(BOOT_DS, 0x93);
    for s in [SegReg::Es, SegReg::Ss, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
        cpu.seg[s as usize] = data;
    }
    cpu.seg[SegReg::Cs as usize] = code;
    cpu.tr = Segment {
        selector: BOOT_TR,
        base: BOOT_TSS,
        limit: TSS32_LIMIT as u32,
        attr: TSS32_BUSY_ACCESS,
    };
    cpu.ldtr = Segment {
        selector: 0,
        base: 0,
        limit: 0,
        attr: 0,
    };
    debug_assert!(cpu.seg[SegReg::Cs as usize].attr & seg_attr::DB != 0);

    log::info!(
        "pvh: {name}: entry {entry:#x}, {} segment(s), start_info at {START_INFO:#x}, {} e820 entries",
        segments.len(),
        memmap.len()
    );
    Ok(BootInfo {
        entry,
        start_info: START_INFO,
        memmap,
        initrd: initrd_range,
        segments,
    })
}
