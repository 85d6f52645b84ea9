//! Booting a kernel the way `qemu-system-x86_64 -kernel` does: ELF images through the Xen
//! PVH boot protocol ([`pvh`]), bzImages through the Linux/x86 boot protocol ([`bzimage`]),
//! multiboot (v1) images as QEMU's multiboot loader ([`multiboot`]), all with the PC
//! firmware's memory map ([`e820`]).

pub mod acpi_tables;
pub mod bzimage;
pub mod e820;
pub mod firmware_tables;
pub mod multiboot;
pub mod pvh;

/// How a kernel file boots, in QEMU's order of preference: a Linux setup header first,
/// then the PVH note (which wins over a multiboot header in the same ELF), then a
/// multiboot header.
#[derive(Debug, Clone, Copy)]
pub enum KernelKind {
    BzImage,
    Pvh,
    Multiboot(multiboot::Header),
    /// None of these: loading it reports why (as the PVH loader's error).
    Unknown,
}

pub fn kernel_kind(image: &[u8]) -> KernelKind {
    if bzimage::is_bzimage(image) {
        KernelKind::BzImage
    } else if pvh::has_pvh_entry(image) {
        KernelKind::Pvh
    } else if let Some(h) = multiboot::find_header(image) {
        KernelKind::Multiboot(h)
    } else {
        KernelKind::Unknown
    }
}
