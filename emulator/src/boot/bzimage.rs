//! The Linux/x86 boot protocol for bzImage kernels (Documentation/arch/x86/boot.rst), as a
//! boot loader that skips the real-mode setup code uses it: what `qemu-system-x86_64
//! -kernel bzImage` boots, entered the way a 64-bit loader such as GRUB's `linux` command or
//! cloud hypervisors enter it.
//!
//! * The file is the 16-bit setup code (`setup_sects + 1` sectors of 512 bytes, the *setup
//!   header* at offset 0x1f1) followed by the protected-mode kernel (for a compressed
//!   kernel: the decompressor, which unpacks the real kernel itself, KASLR included).
//! * The protected-mode part is loaded at 1 MiB, where QEMU loads it (`prot_addr`); a
//!   relocatable kernel's decompressor moves itself to where it wants to run.
//! * The loader builds the *zero page* (`struct boot_params`): a copy of the setup header with
//!   the loader's fields filled in (type of loader, command line, initrd, heap), and the
//!   E820 memory map the real-mode code would have asked the BIOS for. Everything else the
//!   real-mode code collects (video, APM, EDD, IST) stays zero, as on a machine without
//!   those BIOS services: QEMU's `-vga none` gives the same "colour dummy device".
//! * **64-bit entry** (protocol 2.12+, `xloadflags` XLF_KERNEL_64): long mode, 4-level
//!   paging identity-mapping the first 4 GiB, a GDT with the flat `__BOOT_CS` (0x10, 64-bit)
//!   and `__BOOT_DS` (0x18) the protocol requires, interrupts off, RSI = the zero page, RIP
//!   = load address + 0x200.
//! * **32-bit entry** (older kernels without XLF_KERNEL_64): flat 32-bit protected mode,
//!   paging off, ESI = the zero page, EBP = EDI = EBX = 0, EIP = `code32_start`.
//!
//! Boot information lives below 1 MiB: page tables at [`PAGE_TABLES`], the GDT at
//! [`BOOT_GDT`], the zero page at [`ZERO_PAGE`] and the command line at [`CMDLINE`] (QEMU's
//! `real_addr` and `cmdline_addr` for protocol 2.02+).

use super::e820;
use super::pvh::BootInfo;
use crate::addr::GuestPhysAddr;
use crate::bus::Bus;
use crate::cpu::regs::{cr0, cr4, efer, gpr, rflags, seg_attr, SegReg, Segment};
use crate::cpu::Cpu;
use crate::memory::GuestMemory;

/// Offsets in the zero page (`struct boot_params`, arch/x86/include/uapi/asm/bootparam.h);
/// the setup header's offsets are the same in the file and in the zero page.
mod bp {
    /// `alt_mem_k`: KiB of memory above 1 MiB, for kernels that find no E820 map.
    pub const ALT_MEM_K: usize = 0x1e0;
    /// `e820_entries` (u8) and `e820_table[E820_MAX]` of 20-byte entries.
    pub const E820_ENTRIES: usize = 0x1e8;
    pub const E820_TABLE: usize = 0x2d0;
    pub const E820_ENTRY_SIZE: usize = 20;
    pub const E820_MAX: usize = 128;
    /// Setup header.
    pub const SETUP_SECTS: usize = 0x1f1;
    pub const BOOT_FLAG: usize = 0x1fe;
    pub const JUMP: usize = 0x200;
    pub const HEADER: usize = 0x202;
    pub const VERSION: usize = 0x206;
    pub const TYPE_OF_LOADER: usize = 0x210;
    pub const LOADFLAGS: usize = 0x211;
    pub const CODE32_START: usize = 0x214;
    pub const RAMDISK_IMAGE: usize = 0x218;
    pub const RAMDISK_SIZE: usize = 0x21c;
    pub const HEAP_END_PTR: usize = 0x224;
    pub const CMD_LINE_PTR: usize = 0x228;
    pub const INITRD_ADDR_MAX: usize = 0x22c;
    pub const XLOADFLAGS: usize = 0x236;
    pub const CMDLINE_SIZE: usize = 0x238;
    pub const INIT_SIZE: usize = 0x260;
    /// The zero page is one page.
    pub const SIZE: usize = 0x1000;
}

/// "HdrS", the setup header's magic.
const HDRS: &[u8; 4] = b"HdrS";
const BOOT_FLAG_VALUE: u16 = 0xaa55;
/// `setup_sects` 0 means 4 (protocol, "setup_sects").
const DEFAULT_SETUP_SECTS: usize = 4;
const SECTOR: usize = 512;
/// Protocol 2.12 introduced `xloadflags` and the 64-bit entry.
const PROTOCOL_64BIT_ENTRY: u16 = 0x020c;
/// Protocol 2.02 moved the command line out of the setup segment (`cmd_line_ptr`).
const PROTOCOL_CMDLINE_PTR: u16 = 0x0202;
/// Protocol 2.03 gave `initrd_addr_max`; before it the limit was fixed.
const PROTOCOL_INITRD_MAX: u16 = 0x0203;
const OLD_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;
/// Protocol 2.06 gave `cmdline_size`; before it 255 bytes.
const PROTOCOL_CMDLINE_SIZE: u16 = 0x0206;
const OLD_CMDLINE_SIZE: usize = 255;
/// `loadflags`: LOADED_HIGH (protected-mode code at 1 MiB), CAN_USE_HEAP.
const LOADED_HIGH: u8 = 0x01;
const CAN_USE_HEAP: u8 = 0x80;
/// `xloadflags`: XLF_KERNEL_64 (a 64-bit entry at load address + 0x200).
const XLF_KERNEL_64: u16 = 0x01;
const ENTRY_64_OFFSET: u64 = 0x200;
/// `type_of_loader`: QEMU's own ID (0xb, version 0).
const QEMU_LOADER_ID: u8 = 0xb0;

/// Where QEMU puts the protected-mode kernel.
pub const LOAD_ADDR: u64 = 0x10_0000;
/// Identity-map page tables: PML4, one PDPT, four page directories of 2 MiB pages.
pub const PAGE_TABLES: u64 = 0x1000;
const PML4: u64 = PAGE_TABLES;
const PDPT: u64 = PAGE_TABLES + 0x1000;
const PD0: u64 = PAGE_TABLES + 0x2000;
/// Four directories of 512 two-MiB pages: 4 GiB.
const IDENTITY_GIB: u64 = 4;
pub const BOOT_GDT: u64 = 0x8000;
/// The zero page and the command line (QEMU's `real_addr` and `cmdline_addr`).
pub const ZERO_PAGE: u64 = 0x1_0000;
pub const CMDLINE: u64 = 0x2_0000;
/// The real-mode heap would end here (QEMU's `heap_end_ptr`, relative to the setup code).
const HEAP_END: u16 = (CMDLINE - ZERO_PAGE - 0x200) as u16;
/// Room for the command line: up to the EBDA.
const CMDLINE_ROOM: usize = (e820::EBDA_START - CMDLINE) as usize - 1;

/// `__BOOT_CS` and `__BOOT_DS` of the boot protocol.
pub const BOOT_CS: u16 = 0x10;
pub const BOOT_DS: u16 = 0x18;
/// 64-bit code (L, execute/read, accessed), 32-bit code, and flat data (read/write,
/// accessed) descriptors; the 32-bit entry uses the code32 one at `__BOOT_CS`.
const GDT_CODE64: u64 = 0x00af_9b00_0000_ffff;
const GDT_CODE32: u64 = 0x00cf_9b00_0000_ffff;
const GDT_DATA: u64 = 0x00cf_9300_0000_ffff;
/// Page-table entry bits: present, writable, page size (2 MiB leaf).
const PTE_P: u64 = 1 << 0;
const PTE_W: u64 = 1 << 1;
const PTE_PS: u64 = 1 << 7;
const TWO_MIB: u64 = 2 << 20;
const ENTRIES: u64 = 512;
/// QEMU keeps this much below the top of low RAM out of the initrd's way (ACPI tables).
const QEMU_ACPI_DATA_SIZE: u64 = 0x2_8000;

#[derive(Debug, thiserror::Error)]
pub enum BzImageError {
    #[error("{0}: not a bzImage (no \"HdrS\" setup header at offset 0x202)")]
    NotBzImage(String),
    #[error("{0}: malformed bzImage: {1}")]
    Malformed(String, String),
    #[error("{0}: boot protocol {1}.{2:02} is older than 2.02 (zImage loaded low): not supported")]
    TooOld(String, u16, u16),
    #[error("{name}: RAM too small: the kernel needs {need_kib} KiB from 1 MiB (init_size), the machine has {have_kib} KiB")]
    RamTooSmall {
        name: String,
        need_kib: u64,
        have_kib: u64,
    },
    #[error("command line is {len} bytes; the kernel accepts {max}")]
    CmdlineTooLong { len: usize, max: usize },
    #[error("initrd of {size} bytes does not fit below {max:#x}")]
    InitrdTooBig { size: u64, max: u64 },
}

/// The magic of an xz stream (the kernel's default compression on Debian, CONFIG_KERNEL_XZ).
const XZ_MAGIC: &[u8; 6] = b"\xfd7zXZ\0";
/// Largest kernel ELF unpacked on the host (Debian's 6.1 is 63 MiB).
const MAX_INNER_ELF: u64 = 512 << 20;

/// The ELF kernel (vmlinux) inside a bzImage whose payload is xz-compressed, unpacked on
/// the host for what the image itself does not show: its symbols (kallsyms) and its BTF
/// (the running task), as Linux's scripts/extract-vmlinux unpacks it. `None` for other
/// compressions or a payload that does not unpack to an ELF.
pub fn inner_elf(image: &[u8]) -> Option<Vec<u8>> {
    let hdr = parse_header(image, "").ok()?;
    let payload = &image[hdr.setup_len..];
    let at = payload
        .windows(XZ_MAGIC.len())
        .position(|w| w == XZ_MAGIC)?;
    let mut out = Vec::new();
    let dec = xz2::read::XzDecoder::new(&payload[at..]);
    use std::io::Read;
    // The payload ends in the decompressor's own trailer: read one stream, then stop.
    if dec.take(MAX_INNER_ELF).read_to_end(&mut out).is_err() && out.is_empty() {
        return None;
    }
    out.starts_with(b"\x7fELF").then_some(out)
}

/// True when `image` carries a Linux/x86 setup header.
pub fn is_bzimage(image: &[u8]) -> bool {
    image.get(bp::HEADER..bp::HEADER + 4) == Some(&HDRS[..])
}

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// The parts of the setup header the loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    protocol: u16,
    setup_len: usize,
    /// Bytes of the header proper, from 0x1f1 (`0x202 + jump[1] - 0x1f1`).
    header_len: usize,
    xloadflags: u16,
    initrd_addr_max: u64,
    cmdline_size: usize,
    init_size: u64,
}

fn parse_header(image: &[u8], name: &str) -> Result<Header, BzImageError> {
    if !is_bzimage(image) || image.len() < bp::INIT_SIZE + 4 {
        return Err(BzImageError::NotBzImage(name.into()));
    }
    let bad = |m: &str| BzImageError::Malformed(name.into(), m.into());
    if le16(image, bp::BOOT_FLAG) != BOOT_FLAG_VALUE {
        return Err(bad("boot flag is not 0xaa55"));
    }
    let protocol = le16(image, bp::VERSION);
    if protocol < PROTOCOL_CMDLINE_PTR {
        return Err(BzImageError::TooOld(
            name.into(),
            protocol >> 8,
            protocol & 0xff,
        ));
    }
    let sects = match image[bp::SETUP_SECTS] as usize {
        0 => DEFAULT_SETUP_SECTS,
        n => n,
    };
    let setup_len = (sects + 1) * SECTOR;
    if setup_len >= image.len() {
        return Err(bad("the setup code fills the whole file"));
    }
    // The short jump at 0x200 skips the header: its offset gives the header's end.
    let header_end = bp::HEADER + image[bp::JUMP + 1] as usize;
    if header_end > setup_len || header_end > bp::SIZE || header_end <= bp::INIT_SIZE {
        return Err(bad("setup header length out of range"));
    }
    let ge = |v: u16| protocol >= v;
    Ok(Header {
        protocol,
        setup_len,
        header_len: header_end - bp::SETUP_SECTS,
        xloadflags: if ge(PROTOCOL_64BIT_ENTRY) {
            le16(image, bp::XLOADFLAGS)
        } else {
            0
        },
        initrd_addr_max: if ge(PROTOCOL_INITRD_MAX) {
            le32(image, bp::INITRD_ADDR_MAX) as u64
        } else {
            OLD_INITRD_ADDR_MAX
        },
        cmdline_size: if ge(PROTOCOL_CMDLINE_SIZE) {
            le32(image, bp::CMDLINE_SIZE) as usize
        } else {
            OLD_CMDLINE_SIZE
        },
        init_size: le32(image, bp::INIT_SIZE) as u64,
    })
}

/// The zero page for `hdr`, the memory map and where the initrd went.
fn zero_page(
    image: &[u8],
    hdr: &Header,
    memmap: &[e820::E820Entry],
    initrd: Option<(u64, u64)>,
    ram_kib_above_1m: u64,
) -> Vec<u8> {
    let mut zp = vec![0u8; bp::SIZE];
    let h = bp::SETUP_SECTS..bp::SETUP_SECTS + hdr.header_len;
    zp[h.clone()].copy_from_slice(&image[h]);
    zp[bp::TYPE_OF_LOADER] = QEMU_LOADER_ID;
    zp[bp::LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
    put16(&mut zp, bp::HEAP_END_PTR, HEAP_END);
    put32(&mut zp, bp::CODE32_START, LOAD_ADDR as u32);
    put32(&mut zp, bp::CMD_LINE_PTR, CMDLINE as u32);
    if let Some((addr, size)) = initrd {
        put32(&mut zp, bp::RAMDISK_IMAGE, addr as u32);
        put32(&mut zp, bp::RAMDISK_SIZE, size as u32);
    }
    put32(
        &mut zp,
        bp::ALT_MEM_K,
        ram_kib_above_1m.min(u32::MAX as u64) as u32,
    );
    let n = memmap.len().min(bp::E820_MAX);
    zp[bp::E820_ENTRIES] = n as u8;
    for (k, e) in memmap.iter().take(n).enumerate() {
        let a = bp::E820_TABLE + k * bp::E820_ENTRY_SIZE;
        zp[a..a + 8].copy_from_slice(&e.addr.to_le_bytes());
        zp[a + 8..a + 16].copy_from_slice(&e.size.to_le_bytes());
        put32(&mut zp, a + 16, e.kind as u32);
    }
    zp
}

/// Identity-map the first [`IDENTITY_GIB`] GiB with 2 MiB pages.
fn write_identity_map(m: &mut GuestMemory) {
    let mut tables = vec![0u8; ((2 + IDENTITY_GIB) * 0x1000) as usize];
    let mut set = |table_addr: u64, index: u64, value: u64| {
        let off = (table_addr - PAGE_TABLES + index * 8) as usize;
        tables[off..off + 8].copy_from_slice(&value.to_le_bytes());
    };
    set(PML4, 0, PDPT | PTE_P | PTE_W);
    for g in 0..IDENTITY_GIB {
        let pd = PD0 + g * 0x1000;
        set(PDPT, g, pd | PTE_P | PTE_W);
        for i in 0..ENTRIES {
            let phys = (g * ENTRIES + i) * TWO_MIB;
            set(pd, i, phys | PTE_P | PTE_W | PTE_PS);
        }
    }
    m.write_bytes(GuestPhysAddr(PAGE_TABLES), &tables);
}

/// Load the bzImage `image` and set up `cpu` for its entry. `name` is used in messages.
pub fn load(
    bus: &mut Bus,
    cpu: &mut Cpu,
    image: &[u8],
    name: &str,
    cmdline: &str,
    initrd: Option<&[u8]>,
) -> Result<BootInfo, BzImageError> {
    let hdr = parse_header(image, name)?;
    let below = bus.mem.below_4g();
    let above = bus.mem.above_4g();
    let kernel = &image[hdr.setup_len..];
    let need = (kernel.len() as u64).max(hdr.init_size);
    let low_top = below.saturating_sub(e820::FIRMWARE_RESERVED_TOP);
    if LOAD_ADDR + need > low_top {
        return Err(BzImageError::RamTooSmall {
            name: name.into(),
            need_kib: (LOAD_ADDR + need + e820::FIRMWARE_RESERVED_TOP).div_ceil(1024),
            have_kib: bus.mem.size() >> 10,
        });
    }
    let max_cmdline = hdr.cmdline_size.min(CMDLINE_ROOM);
    if cmdline.len() > max_cmdline {
        return Err(BzImageError::CmdlineTooLong {
            len: cmdline.len(),
            max: max_cmdline,
        });
    }

    // Initrd: as QEMU places it, at the top of low RAM below initrd_addr_max, page aligned,
    // and above the kernel's decompression area.
    let mut initrd_range = None;
    if let Some(data) = initrd {
        let size = data.len() as u64;
        let max = hdr
            .initrd_addr_max
            .min(below.saturating_sub(QEMU_ACPI_DATA_SIZE + 1));
        let addr = (max + 1).checked_sub(size).map(|a| a & !0xfff);
        match addr {
            Some(a) if a >= LOAD_ADDR + need && size <= u32::MAX as u64 => {
                bus.mem.write_bytes(GuestPhysAddr(a), data);
                initrd_range = Some((a, size));
            }
            _ => return Err(BzImageError::InitrdTooBig { size, max }),
        }
    }

    let memmap = e820::qemu_pc_map(below, above, bus.pci.disk_stats().len() as u64, bus.acpi);
    let ram_above_1m = memmap
        .iter()
        .filter(|e| e.kind == e820::E820Type::Ram && e.addr >= e820::ONE_MIB)
        .map(|e| e.size)
        .sum::<u64>()
        >> 10;
    let zp = zero_page(image, &hdr, &memmap, initrd_range, ram_above_1m);
    let m = &mut bus.mem;
    m.write_bytes(GuestPhysAddr(LOAD_ADDR), kernel);
    m.write_bytes(GuestPhysAddr(ZERO_PAGE), &zp);
    let mut cl = cmdline.as_bytes().to_vec();
    cl.push(0);
    m.write_bytes(GuestPhysAddr(CMDLINE), &cl);

    let entry64 = hdr.xloadflags & XLF_KERNEL_64 != 0;
    let code = if entry64 { GDT_CODE64 } else { GDT_CODE32 };
    m.write(GuestPhysAddr(BOOT_GDT), 8, 0);
    m.write(GuestPhysAddr(BOOT_GDT + 8), 8, 0);
    m.write(GuestPhysAddr(BOOT_GDT + BOOT_CS as u64), 8, code);
    m.write(GuestPhysAddr(BOOT_GDT + BOOT_DS as u64), 8, GDT_DATA);

    cpu.gpr = [0; 16];
    cpu.gpr[gpr::RSI] = ZERO_PAGE;
    cpu.rflags = rflags::FIXED;
    cpu.cpl = 0;
    cpu.gdtr.base = BOOT_GDT;
    cpu.gdtr.limit = (BOOT_DS as u64 + 7) as u16;
    cpu.idtr.base = 0;
    cpu.idtr.limit = 0;
    let data = Segment::flat32(BOOT_DS, 0x93);
    for s in [SegReg::Es, SegReg::Ss, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
        cpu.seg[s as usize] = data;
    }
    let entry = if entry64 {
        write_identity_map(m);
        cpu.cr3 = PML4;
        cpu.cr4 = cr4::PAE;
        cpu.efer = efer::LME | efer::LMA;
        cpu.cr0 = cr0::PE | cr0::ET | cr0::PG;
        cpu.seg[SegReg::Cs as usize] = Segment {
            selector: BOOT_CS,
            base: 0,
            limit: 0xffff_ffff,
            attr: 0x9b | seg_attr::L | seg_attr::G,
        };
        LOAD_ADDR + ENTRY_64_OFFSET
    } else {
        cpu.cr0 = cr0::PE | cr0::ET;
        cpu.cr4 = 0;
        cpu.efer = 0;
        cpu.seg[SegReg::Cs as usize] = Segment::flat32(BOOT_CS, 0x9b);
        LOAD_ADDR
    };
    cpu.rip = entry;
    // A present, busy TSS and an empty LDT, as the CPU holds after reset.
    cpu.tr = Segment {
        selector: 0,
        base: 0,
        limit: 0xffff,
        attr: 0x8b,
    };
    cpu.ldtr = Segment {
        selector: 0,
        base: 0,
        limit: 0,
        attr: 0,
    };
    log::info!(
        "bzImage: {name}: protocol {}.{:02}, {} entry at {entry:#x}, {} KiB at {LOAD_ADDR:#x}, init_size {} KiB, zero page at {ZERO_PAGE:#x}",
        hdr.protocol >> 8,
        hdr.protocol & 0xff,
        if entry64 { "64-bit" } else { "32-bit" },
        kernel.len() >> 10,
        hdr.init_size >> 10,
    );
    Ok(BootInfo {
        entry,
        start_info: ZERO_PAGE,
        memmap,
        initrd: initrd_range,
        segments: vec![(LOAD_ADDR, LOAD_ADDR + need)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal image: setup header of protocol 2.15 with the 64-bit entry flag.
    fn image(setup_sects: u8, protocol: u16) -> Vec<u8> {
        let mut img = vec![0u8; (setup_sects as usize + 1) * SECTOR + 4096];
        img[bp::SETUP_SECTS] = setup_sects;
        put16(&mut img, bp::BOOT_FLAG, BOOT_FLAG_VALUE);
        img[bp::JUMP] = 0xeb;
        img[bp::JUMP + 1] = 0x6a; // header ends at 0x26c, as in Linux 6.1
        img[bp::HEADER..bp::HEADER + 4].copy_from_slice(HDRS);
        put16(&mut img, bp::VERSION, protocol);
        put16(&mut img, bp::XLOADFLAGS, XLF_KERNEL_64);
        put32(&mut img, bp::INITRD_ADDR_MAX, 0x7fff_ffff);
        put32(&mut img, bp::CMDLINE_SIZE, 2047);
        put32(&mut img, bp::INIT_SIZE, 0x10_0000);
        img
    }

    #[test]
    fn header_fields() {
        let h = parse_header(&image(27, 0x020f), "k").unwrap();
        assert_eq!(h.setup_len, 28 * SECTOR);
        assert_eq!(h.header_len, 0x26c - 0x1f1);
        assert_eq!(h.xloadflags & XLF_KERNEL_64, XLF_KERNEL_64);
        assert_eq!(h.cmdline_size, 2047);
        // setup_sects 0 means 4.
        assert_eq!(
            parse_header(&image(0, 0x020f), "k").unwrap().setup_len,
            5 * SECTOR
        );
        // No 64-bit entry before 2.12, whatever the byte says.
        assert_eq!(parse_header(&image(4, 0x020b), "k").unwrap().xloadflags, 0);
    }

    #[test]
    fn rejects_bad_images() {
        assert!(matches!(
            parse_header(b"\x7fELF", "k"),
            Err(BzImageError::NotBzImage(_))
        ));
        let mut img = image(4, 0x020f);
        put16(&mut img, bp::BOOT_FLAG, 0);
        assert!(matches!(
            parse_header(&img, "k"),
            Err(BzImageError::Malformed(..))
        ));
        assert!(matches!(
            parse_header(&image(4, 0x0201), "k"),
            Err(BzImageError::TooOld(..))
        ));
        let mut img = image(4, 0x020f);
        img[bp::SETUP_SECTS] = 200; // more setup than file
        assert!(matches!(
            parse_header(&img, "k"),
            Err(BzImageError::Malformed(..))
        ));
        let mut img = image(4, 0x020f);
        img[bp::JUMP + 1] = 0x10; // header too short to hold init_size
        assert!(matches!(
            parse_header(&img, "k"),
            Err(BzImageError::Malformed(..))
        ));
    }

    #[test]
    fn inner_elf_unpacks_an_xz_payload() {
        use std::io::Write;
        let elf = b"\x7fELF and the rest of a kernel".to_vec();
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(&elf).unwrap();
        let xz = enc.finish().unwrap();
        let mut img = image(4, 0x020f);
        let at = 5 * SECTOR + 0x300;
        img[at..at + xz.len()].copy_from_slice(&xz);
        // Whatever follows the stream (the decompressor's trailer) is ignored.
        assert_eq!(inner_elf(&img), Some(elf));
        // Not xz, or xz of something else: nothing.
        assert_eq!(inner_elf(&image(4, 0x020f)), None);
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(b"not an ELF").unwrap();
        let xz = enc.finish().unwrap();
        let mut img = image(4, 0x020f);
        img[at..at + xz.len()].copy_from_slice(&xz);
        assert_eq!(inner_elf(&img), None);
    }

    #[test]
    fn zero_page_fields() {
        let img = image(4, 0x020f);
        let h = parse_header(&img, "k").unwrap();
        let map = e820::qemu_pc_map(128 << 20, 0, 0, false);
        let zp = zero_page(&img, &h, &map, Some((0x700_0000, 0x1234)), 1000);
        assert_eq!(&zp[bp::HEADER..bp::HEADER + 4], HDRS);
        assert_eq!(zp[bp::TYPE_OF_LOADER], QEMU_LOADER_ID);
        assert_eq!(zp[bp::LOADFLAGS] & LOADED_HIGH, LOADED_HIGH);
        assert_eq!(le32(&zp, bp::CMD_LINE_PTR), CMDLINE as u32);
        assert_eq!(le32(&zp, bp::RAMDISK_IMAGE), 0x700_0000);
        assert_eq!(le32(&zp, bp::RAMDISK_SIZE), 0x1234);
        assert_eq!(zp[bp::E820_ENTRIES] as usize, map.len());
        let last = bp::E820_TABLE + (map.len() - 1) * bp::E820_ENTRY_SIZE;
        let e = map[map.len() - 1];
        assert_eq!(
            u64::from_le_bytes(zp[last..last + 8].try_into().unwrap()),
            e.addr
        );
        assert_eq!(le32(&zp, last + 16), e.kind as u32);
        // The sentinel byte stays 0: the kernel trusts the header copy.
        assert_eq!(zp[0x1ef], 0);
    }
}
