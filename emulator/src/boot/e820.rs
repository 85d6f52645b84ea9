//! The E820-style physical memory map a PC firmware reports. vmscope reproduces exactly
//! what a PVH kernel sees under `qemu-system-x86_64 -machine pc -m SIZE` (QEMU 7.x with
//! SeaBIOS and its default qemu64 CPU), so the same kernel prints the same map on both.

use crate::memory::HIGH_RAM_START;

/// Entry types (ACPI spec, "Address Range Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    Ram = 1,
    Reserved = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: E820Type,
}

/// End of conventional memory as SeaBIOS reports it: the top 1 KiB below 640 KiB is the
/// Extended BIOS Data Area.
pub const EBDA_START: u64 = 0x9fc00;
/// End of conventional memory (the VGA hole starts here).
pub const LOW_MEM_END: u64 = 0xa0000;
/// The BIOS ROM shadow at the top of the first megabyte.
pub const BIOS_ROM_START: u64 = 0xf0000;
pub const ONE_MIB: u64 = 0x10_0000;
/// SeaBIOS keeps the top 128 KiB of low RAM for its own tables (ACPI, SMBIOS, stacks).
pub const FIRMWARE_RESERVED_TOP: u64 = 0x20000;
/// What SeaBIOS's virtio-blk driver takes from the top of low RAM for each disk (its
/// virtqueue, allocated while it probes boot devices): measured on QEMU 7.2 with 1 to 4
/// disks, the reserved top grows by 12 KiB per disk.
pub const SEABIOS_VIRTIO_BLK_RESERVE: u64 = 0x3000;
/// The flash (BIOS image) mapped just below 4 GiB.
pub const BIOS_FLASH_START: u64 = 0xfffc_0000;
/// AMD's HyperTransport hole below 1 TiB, which QEMU reports reserved for AMD CPU models.
pub const AMD_HT_START: u64 = 0xfd_0000_0000;
pub const AMD_HT_END: u64 = 0x100_0000_0000;

/// The map for `below_4g` bytes of RAM under 4 GiB and `above_4g` bytes from 4 GiB up,
/// on a machine with `virtio_disks` virtio-blk disks. Without ACPI (`acpi=off`) SeaBIOS
/// reserves nothing at the top of low RAM for its tables (measured on QEMU 7.2 with no
/// disks; the per-disk reserve is assumed to stay). The machine without ACPI pairs with
/// an Intel CPU model under QEMU (`qemu::QEMU_CPU_MIRROR`), for which QEMU reports no
/// AMD HyperTransport hole.
pub fn qemu_pc_map(below_4g: u64, above_4g: u64, virtio_disks: u64, acpi: bool) -> Vec<E820Entry> {
    let e = |addr: u64, end: u64, kind| E820Entry {
        addr,
        size: end - addr,
        kind,
    };
    let mut map = vec![
        e(0, EBDA_START, E820Type::Ram),
        e(EBDA_START, LOW_MEM_END, E820Type::Reserved),
        e(BIOS_ROM_START, ONE_MIB, E820Type::Reserved),
    ];
    let firmware = if acpi { FIRMWARE_RESERVED_TOP } else { 0 };
    let reserved = firmware + SEABIOS_VIRTIO_BLK_RESERVE * virtio_disks;
    let top = below_4g.saturating_sub(reserved);
    if top > ONE_MIB {
        map.push(e(ONE_MIB, top, E820Type::Ram));
    }
    if below_4g > top.max(ONE_MIB) {
        map.push(e(top.max(ONE_MIB), below_4g, E820Type::Reserved));
    }
    map.push(e(BIOS_FLASH_START, HIGH_RAM_START, E820Type::Reserved));
    if above_4g > 0 {
        map.push(e(HIGH_RAM_START, HIGH_RAM_START + above_4g, E820Type::Ram));
    }
    if acpi {
        map.push(e(AMD_HT_START, AMD_HT_END, E820Type::Reserved));
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usable_kib(m: &[E820Entry]) -> u64 {
        m.iter()
            .filter(|e| e.kind == E820Type::Ram)
            .map(|e| e.size)
            .sum::<u64>()
            / 1024
    }

    #[test]
    fn map_without_acpi_has_no_firmware_reserve() {
        let m = qemu_pc_map(128 << 20, 0, 0, false);
        assert_eq!(
            m[2],
            E820Entry {
                addr: BIOS_ROM_START,
                size: ONE_MIB - BIOS_ROM_START,
                kind: E820Type::Reserved
            }
        );
        assert_eq!(
            m[3],
            E820Entry {
                addr: ONE_MIB,
                size: (128 << 20) - ONE_MIB,
                kind: E820Type::Ram
            }
        );
        assert_eq!(m[4].addr, BIOS_FLASH_START);
        assert_eq!(m.len(), 5, "no AMD HyperTransport hole");
    }

    #[test]
    fn map_128m_matches_qemu() {
        let m = qemu_pc_map(128 << 20, 0, 0, true);
        assert_eq!(usable_kib(&m), 130559);
        assert_eq!(m.iter().filter(|e| e.kind == E820Type::Ram).count(), 2);
        let reserved: u64 = m
            .iter()
            .filter(|e| e.kind == E820Type::Reserved)
            .map(|e| e.size)
            .sum::<u64>()
            / 1024;
        assert_eq!(reserved, 12583361);
    }

    #[test]
    fn map_4g_has_high_ram() {
        let (lo, hi) = crate::memory::pc_ram_split(4 << 30);
        let m = qemu_pc_map(lo, hi, 0, true);
        assert_eq!(usable_kib(&m), 4193791);
        assert_eq!(m.iter().filter(|e| e.kind == E820Type::Ram).count(), 3);
    }
}
