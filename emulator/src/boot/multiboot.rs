//! Multiboot (version 1) kernels, loaded as `qemu-system-x86_64 -kernel` loads them
//! (QEMU's hw/i386/multiboot.c and its option ROM pc-bios/optionrom/multiboot.S), for
//! kernels such as kvm-unit-tests' `x86/*.flat`:
//!
//! * the header (magic 0x1BADB002, flags, checksum) is searched in the first 8 KiB of the
//!   file at 4-byte steps; with flag bit 16 the header's address fields (the "a.out kludge")
//!   say where the file goes, otherwise the file is an ELF32 whose `PT_LOAD` segments go
//!   to their physical addresses;
//! * after the image (page aligned) QEMU's loader appends the module descriptors, the
//!   command lines (the kernel's is `"<kernel file name> <-append>"`, as QEMU writes it)
//!   and the boot loader name `qemu`, then each module page aligned;
//! * the memory map (`mmap`, the firmware's E820 entries with the 4-byte size prefix)
//!   at [`MMAP_ADDR`], the multiboot information at [`MBI_ADDR`], with `mem_lower` from
//!   INT 12h (the EBDA excluded) and `mem_upper` the RAM contiguous from 1 MiB;
//! * the CPU enters in 32-bit protected mode, paging off, with CS = 0x08 and the data
//!   segments = 0x10 of a flat GDT, EAX = 0x2BADB002, EBX = the information's address,
//!   ECX = the entry point (the option ROM jumps through ECX), interrupts off.
//!
//! The option ROM writes the memory map and the information first and then copies the
//! image, so an image linked over 0x9000 (kvm-unit-tests' `realmode` loads at 0x8000)
//! overwrites them, as here. The multiboot specification leaves ESP and GDTR undefined;
//! QEMU's option ROM leaves the BIOS's real-mode stack (SeaBIOS's is below 0x7000) and a
//! GDT inside the ROM. vmscope writes the same GDT (the ROM's five descriptors) where the
//! first option ROM lives, [`GDT_ADDR`], and starts with ESP = [`BOOT_ESP`].

use super::e820::{self, E820Type};
use super::pvh::BootInfo;
use crate::addr::GuestPhysAddr;
use crate::bus::Bus;
use crate::cpu::regs::{cr0, gpr, rflags, SegReg, Segment};
use crate::cpu::Cpu;
use goblin::elf::{program_header::PT_LOAD, Elf};

/// The header's magic, and what EAX holds at the entry.
pub const HEADER_MAGIC: u32 = 0x1bad_b002;
pub const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;
/// The header must lie entirely in the file's first 8 KiB (12 words at most).
const SEARCH_LEN: usize = 8192;
const HEADER_LEN: usize = 48;
/// Header flag: the address fields are valid (load without reading the ELF headers).
const HEADER_HAS_ADDR: u32 = 1 << 16;
/// Header flag: video mode fields (QEMU warns and ignores them).
const HEADER_HAS_VBE: u32 = 1 << 2;

/// Where QEMU puts the memory map and, 0x500 bytes later, the multiboot information.
pub const MMAP_ADDR: u64 = 0x9000;
pub const MBI_ADDR: u64 = MMAP_ADDR + 0x500;
/// `struct multiboot_info` as QEMU fills it (up to the boot loader name field, and zeroes).
const MBI_SIZE: usize = 88;
/// The GDT of QEMU's multiboot option ROM, in the option ROM area (0xc0000 is where the
/// first option ROM goes without a VGA BIOS).
pub const GDT_ADDR: u64 = 0xc_0000;
/// Below SeaBIOS's boot stack top (0x7000), less what the ROM takes (0x30 bytes).
pub const BOOT_ESP: u64 = 0x7000 - 0x30;
/// Information flags QEMU sets: memory, boot device, command line, modules, memory map,
/// boot loader name.
pub const MBI_FLAGS: u32 = 1 | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9);
/// The boot device QEMU reports (no BIOS drive).
const BOOT_DEVICE: u32 = 0x8000_ffff;
/// The boot loader name QEMU gives.
pub const BOOTLOADER_NAME: &str = "qemu";
/// One module descriptor: start, end, command line, reserved.
const MOD_DESC_SIZE: u64 = 16;
/// One memory-map entry: size (20), base, length, type.
const MMAP_ENTRY_SIZE: u64 = 24;
const MMAP_ENTRY_BODY: u32 = 20;
const PAGE: u64 = 4096;

/// The ROM's GDT: null, 32-bit code, 32-bit data, 16-bit code, 16-bit data.
const ROM_GDT: [u64; 5] = [
    0,
    0x00cf_9a00_0000_ffff,
    0x00cf_9200_0000_ffff,
    0x0000_9e00_0000_ffff,
    0x0000_9200_0000_ffff,
];
pub const BOOT_CS: u16 = 0x08;
pub const BOOT_DS: u16 = 0x10;

#[derive(Debug, thiserror::Error)]
pub enum MultibootError {
    #[error("{0}: a 64-bit ELF with a multiboot header: multiboot loads 32-bit images (as QEMU: \"give a 32bit one\")")]
    Elf64(String),
    #[error("{0}: malformed multiboot image: {1}")]
    Bad(String, String),
    #[error("{name}: multiboot image {start:#x}..{end:#x} is outside usable low RAM")]
    OutsideRam { name: String, start: u64, end: u64 },
    #[error("command line of {0} bytes is too long for a multiboot kernel")]
    CmdlineTooLong(usize),
}

/// The header found in the file: its offset and flags.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub offset: usize,
    pub flags: u32,
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

/// The multiboot header, if the file has one (QEMU's search: 4-byte aligned offsets
/// below 8 KiB - 48, magic + flags + checksum summing to zero).
pub fn find_header(image: &[u8]) -> Option<Header> {
    let limit = image.len().min(SEARCH_LEN).saturating_sub(HEADER_LEN);
    (0..limit).step_by(4).find_map(|i| {
        let flags = le32(image, i + 4);
        let sum = le32(image, i)
            .wrapping_add(flags)
            .wrapping_add(le32(image, i + 8));
        (le32(image, i) == HEADER_MAGIC && sum == 0).then_some(Header { offset: i, flags })
    })
}

/// What the loader put where: fw_cfg exposes the same items QEMU's loader gives its
/// option ROM (kernel address, size, entry and data; the information's address and
/// bytes), since a guest can read them.
#[derive(Debug, Clone)]
pub struct FwCfgItems {
    pub kernel_entry: u32,
    pub kernel_addr: u32,
    pub kernel_data: Vec<u8>,
    pub mbi_addr: u32,
    pub mbi: Vec<u8>,
}

/// The image (loaded to `load_addr`, `size` bytes with its bss) and entry point.
struct Image {
    load_addr: u64,
    /// The bytes from `load_addr` to the end of the bss (zeros where nothing is loaded).
    bytes: Vec<u8>,
    entry: u64,
}

fn bad(name: &str, why: impl Into<String>) -> MultibootError {
    MultibootError::Bad(name.into(), why.into())
}

/// The a.out kludge: the file from the header's `load_addr` on, as its fields say.
fn image_from_addresses(
    name: &str,
    file: &[u8],
    h: Header,
    max_size: u64,
) -> Result<Image, MultibootError> {
    let f = |k: usize| le32(file, h.offset + 4 * k) as u64;
    let (header_addr, load_addr, load_end, bss_end, entry) = (f(3), f(4), f(5), f(6), f(7));
    if header_addr < load_addr {
        return Err(bad(name, "header_addr below load_addr"));
    }
    let text_offset = (h.offset as u64)
        .checked_sub(header_addr - load_addr)
        .ok_or_else(|| bad(name, "header_addr - load_addr beyond the header's offset"))?;
    let load_size = if load_end != 0 {
        load_end
            .checked_sub(load_addr)
            .ok_or_else(|| bad(name, "load_end_addr below load_addr"))?
    } else {
        (file.len() as u64)
            .checked_sub(text_offset)
            .ok_or_else(|| bad(name, "file shorter than the text offset"))?
    };
    let size = if bss_end != 0 {
        if bss_end < load_addr + load_size {
            return Err(bad(name, "bss_end_addr below the end of the loaded image"));
        }
        bss_end - load_addr
    } else {
        load_size
    };
    let end = text_offset + load_size;
    let data = file
        .get(text_offset as usize..end as usize)
        .ok_or_else(|| bad(name, "the load range lies beyond the end of the file"))?;
    if size > max_size {
        return Err(bad(
            name,
            format!("image of {size:#x} bytes is larger than RAM"),
        ));
    }
    let mut bytes = vec![0u8; size as usize];
    bytes[..data.len()].copy_from_slice(data);
    Ok(Image {
        load_addr,
        bytes,
        entry,
    })
}

/// An ELF32 image: its `PT_LOAD` segments at their physical addresses.
fn image_from_elf(name: &str, file: &[u8], max_size: u64) -> Result<Image, MultibootError> {
    let elf = Elf::parse(file).map_err(|e| bad(name, e.to_string()))?;
    if elf.is_64 {
        return Err(MultibootError::Elf64(name.into()));
    }
    let loads: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0)
        .collect();
    let low = loads.iter().map(|p| p.p_paddr).min();
    let high = loads
        .iter()
        .map(|p| p.p_paddr.saturating_add(p.p_memsz))
        .max();
    let (Some(low), Some(high)) = (low, high) else {
        return Err(bad(name, "no loadable segment"));
    };
    if high - low > max_size {
        return Err(bad(name, "segments span more than RAM"));
    }
    let mut bytes = vec![0u8; (high - low) as usize];
    for p in loads {
        if p.p_filesz > p.p_memsz {
            return Err(bad(name, "segment file size above its memory size"));
        }
        let src = p
            .p_offset
            .checked_add(p.p_filesz)
            .and_then(|end| file.get(p.p_offset as usize..end as usize))
            .ok_or_else(|| {
                bad(
                    name,
                    format!("segment at {:#x} lies outside the file", p.p_paddr),
                )
            })?;
        let at = (p.p_paddr - low) as usize;
        bytes[at..at + src.len()].copy_from_slice(src);
    }
    Ok(Image {
        load_addr: low,
        bytes,
        entry: elf.entry,
    })
}

fn page_align(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

/// Load a multiboot kernel whose header is `h` and set up `cpu` for its entry.
#[allow(clippy::too_many_arguments)]
pub fn load(
    bus: &mut Bus,
    cpu: &mut Cpu,
    file: &[u8],
    h: Header,
    name: &str,
    cmdline: &str,
    initrd: Option<(&str, &[u8])>,
) -> Result<(BootInfo, FwCfgItems), MultibootError> {
    if h.flags & HEADER_HAS_VBE != 0 {
        log::warn!("multiboot: {name} asks for a video mode; there is none (as QEMU)");
    }
    // Nothing larger than low RAM can load: check before allocating.
    let max_size = bus.mem.below_4g();
    let image = if h.flags & HEADER_HAS_ADDR != 0 {
        image_from_addresses(name, file, h, max_size)?
    } else {
        image_from_elf(name, file, max_size)?
    };
    let kernel_cmdline = format!("{name} {cmdline}");
    if kernel_cmdline.len() > u16::MAX as usize {
        return Err(MultibootError::CmdlineTooLong(kernel_cmdline.len()));
    }

    // The buffer QEMU's loader builds: image | module descriptors | command lines |
    // boot loader name, page aligned, then each module page aligned.
    let base = image.load_addr;
    let mut buf = image.bytes;
    let image_size = buf.len() as u64;
    let mods_offset = page_align(image_size);
    let mod_count = initrd.is_some() as u64;
    let cmdlines_offset = mods_offset + mod_count * MOD_DESC_SIZE;
    let mut strings = Vec::new();
    let mut add_string = |s: &str| {
        let at = base + cmdlines_offset + strings.len() as u64;
        strings.extend_from_slice(s.as_bytes());
        strings.push(0);
        at
    };
    // QEMU adds the module's command line (its file name) first, then the kernel's.
    let mod_cmdline = initrd.map(|(n, _)| add_string(n));
    let cmdline_addr = add_string(&kernel_cmdline);
    let bootloader_addr = add_string(BOOTLOADER_NAME);
    let strings_end = cmdlines_offset + strings.len() as u64;

    // All of it (checked before anything is allocated) must land in one usable RAM
    // range of the firmware's map.
    let memmap = e820::qemu_pc_map(
        bus.mem.below_4g(),
        bus.mem.above_4g(),
        bus.pci.disk_stats().len() as u64,
        bus.acpi,
    );
    let module_len = initrd.map_or(0, |(_, d)| page_align(d.len() as u64));
    let end = base
        .saturating_add(page_align(strings_end))
        .saturating_add(module_len);
    let usable = memmap
        .iter()
        .any(|e| e.kind == E820Type::Ram && base >= e.addr && end <= e.addr + e.size);
    if !usable {
        return Err(MultibootError::OutsideRam {
            name: name.into(),
            start: base,
            end,
        });
    }

    let mut total = page_align(strings_end);
    buf.resize(total as usize, 0);
    buf[cmdlines_offset as usize..strings_end as usize].copy_from_slice(&strings);
    if let (Some((_, data)), Some(cl)) = (initrd, mod_cmdline) {
        let start = total;
        total = page_align(start + data.len() as u64);
        buf.resize(total as usize, 0);
        buf[start as usize..start as usize + data.len()].copy_from_slice(data);
        let d = mods_offset as usize;
        let desc = [
            (base + start) as u32,
            (base + start + data.len() as u64) as u32,
            cl as u32,
            0,
        ];
        for (k, v) in desc.iter().enumerate() {
            buf[d + 4 * k..d + 4 * k + 4].copy_from_slice(&v.to_le_bytes());
        }
    }

    // The memory map and mem_upper, as the option ROM computes them from INT 15h E820.
    let m = &mut bus.mem;
    let mut a = MMAP_ADDR;
    for e in &memmap {
        m.write(GuestPhysAddr(a), 4, MMAP_ENTRY_BODY as u64);
        m.write(GuestPhysAddr(a + 4), 8, e.addr);
        m.write(GuestPhysAddr(a + 12), 8, e.size);
        m.write(GuestPhysAddr(a + 20), 4, e.kind as u64);
        a += MMAP_ENTRY_SIZE;
    }
    const _: () = assert!(MMAP_ADDR + 32 * MMAP_ENTRY_SIZE <= MBI_ADDR);
    let mut upper_end = e820::ONE_MIB;
    // The map is not ordered: extend until nothing extends (the ROM restarts its scan).
    while let Some(e) = memmap.iter().find(|e| {
        e.kind == E820Type::Ram
            && e.addr >> 32 == 0
            && e.addr <= upper_end
            && upper_end < e.addr + e.size
    }) {
        upper_end = e.addr + e.size;
    }
    let mut mbi = [0u8; MBI_SIZE];
    let mut put = |at: usize, v: u32| mbi[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put(0, MBI_FLAGS);
    put(4, (e820::EBDA_START >> 10) as u32); // INT 12h: base memory in KiB
    put(8, ((upper_end - e820::ONE_MIB) >> 10) as u32);
    put(12, BOOT_DEVICE);
    put(16, cmdline_addr as u32);
    put(20, mod_count as u32);
    put(24, (base + mods_offset) as u32);
    put(44, (memmap.len() as u64 * MMAP_ENTRY_SIZE) as u32);
    put(48, MMAP_ADDR as u32);
    put(64, bootloader_addr as u32);
    m.write_bytes(GuestPhysAddr(MBI_ADDR), &mbi);
    for (k, d) in ROM_GDT.iter().enumerate() {
        m.write(GuestPhysAddr(GDT_ADDR + 8 * k as u64), 8, *d);
    }
    // The image last: it may cover the map and the information (see the module doc).
    m.write_bytes(GuestPhysAddr(base), &buf);

    // The register state the option ROM leaves.
    cpu.cr0 = cr0::PE | cr0::ET;
    cpu.cr4 = 0;
    cpu.efer = 0;
    cpu.cpl = 0;
    cpu.rflags = rflags::FIXED;
    cpu.gpr = [0; 16];
    cpu.gpr[gpr::RAX] = BOOTLOADER_MAGIC as u64;
    cpu.gpr[gpr::RBX] = MBI_ADDR;
    cpu.gpr[gpr::RCX] = image.entry & 0xffff_ffff;
    cpu.gpr[gpr::RSP] = BOOT_ESP;
    cpu.rip = image.entry & 0xffff_ffff;
    cpu.gdtr.base = GDT_ADDR;
    cpu.gdtr.limit = (8 * ROM_GDT.len() - 1) as u16;
    cpu.idtr.base = 0;
    cpu.idtr.limit = 0x3ff; // the real-mode IVT the ROM came from
    let data = Segment::flat32(BOOT_DS, 0x93);
    for s in [SegReg::Es, SegReg::Ss, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
        cpu.seg[s as usize] = data;
    }
    cpu.seg[SegReg::Cs as usize] = Segment::flat32(BOOT_CS, 0x9b);
    log::info!(
        "multiboot: {name}: {image_size:#x} bytes at {base:#x}, entry {:#x}, {} module(s), mbi at {MBI_ADDR:#x}",
        image.entry,
        mod_count
    );
    let info = BootInfo {
        entry: image.entry,
        start_info: MBI_ADDR,
        memmap,
        initrd: initrd.map(|(_, d)| (base + page_align(strings_end), d.len() as u64)),
        segments: vec![(base, base + image_size)],
    };
    let fw = FwCfgItems {
        kernel_entry: image.entry as u32,
        kernel_addr: base as u32,
        kernel_data: buf,
        mbi_addr: MBI_ADDR as u32,
        mbi: mbi.to_vec(),
    };
    Ok((info, fw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [
            HEADER_MAGIC,
            flags,
            0u32.wrapping_sub(HEADER_MAGIC.wrapping_add(flags)),
        ] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }

    #[test]
    fn header_is_found_on_4_byte_steps_with_its_checksum() {
        let mut f = vec![0u8; 64];
        f.extend(header(0));
        f.resize(4096, 0);
        let h = find_header(&f).unwrap();
        assert_eq!((h.offset, h.flags), (64, 0));
        // A wrong checksum, or a header that is not 4-byte aligned, is not one.
        let mut g = f.clone();
        g[72] ^= 1;
        assert!(find_header(&g).is_none());
        let mut u = vec![0u8; 2];
        u.extend(header(0));
        u.resize(4096, 0);
        assert!(find_header(&u).is_none());
        // Beyond 8 KiB it is not searched.
        let mut far = vec![0u8; 8192];
        far.extend(header(0));
        far.resize(9000, 0);
        assert!(find_header(&far).is_none());
    }

    #[test]
    fn aout_kludge_loads_from_the_header_fields() {
        // Header at offset 0, linked to load at 1 MiB, 0x100 bytes of file, bss to +0x2000.
        let load = 0x10_0000u32;
        let mut f = header(HEADER_HAS_ADDR);
        for w in [load, load, load + 0x100, load + 0x2000, load + 0x20] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        f.resize(0x100, 0xcc);
        let h = find_header(&f).unwrap();
        let img = image_from_addresses("k", &f, h, 1 << 30).unwrap();
        assert_eq!(img.load_addr, load as u64);
        assert_eq!(img.entry, load as u64 + 0x20);
        assert_eq!(img.bytes.len(), 0x2000);
        assert_eq!(img.bytes[0x40], 0xcc);
        assert_eq!(img.bytes[0x100], 0);
        // A load range past the end of the file is an error, not a panic.
        let mut short = f.clone();
        short.truncate(0x80);
        assert!(image_from_addresses("k", &short, h, 1 << 30).is_err());
        // A bss end beyond RAM is refused before anything is allocated.
        assert!(image_from_addresses("k", &f, h, 0x1000).is_err());
    }
}
