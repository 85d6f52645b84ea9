//! Physical and virtual address newtypes, and translation through the boot direct map.

use core::fmt;

use super::layout::{BOOT_MAP_SIZE, KERNEL_VMA};

/// A physical address.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysAddr(u64);

/// A virtual (linear) address.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtAddr(u64);

impl PhysAddr {
    /// Wraps a raw physical address.
    pub const fn new(addr: u64) -> Self {
        Self(addr)
    }

    /// The raw address.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether this is address 0 (PVH uses 0 for "absent").
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }

    /// `self + offset`, or `None` on overflow.
    pub const fn checked_add(self, offset: u64) -> Option<Self> {
        match self.0.checked_add(offset) {
            Some(a) => Some(Self(a)),
            None => None,
        }
    }
}

impl VirtAddr {
    /// Wraps a raw virtual address.
    pub const fn new(addr: u64) -> Self {
        Self(addr)
    }

    /// The raw address.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The address as a raw pointer.
    pub const fn as_ptr<T>(self) -> *const T {
        self.0 as *const T
    }

    /// The address as a raw mutable pointer.
    pub const fn as_mut_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }
}

impl fmt::LowerHex for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// Whether the physical range `[pa, pa + len)` lies inside the boot direct map.
pub const fn direct_map_contains(pa: PhysAddr, len: u64) -> bool {
    match pa.0.checked_add(len) {
        Some(end) => end <= BOOT_MAP_SIZE,
        None => false,
    }
}

/// Translates a physical address through the boot direct map (`KERNEL_VMA + pa`), or `None`
/// if `[pa, pa + len)` is not covered by it (only the first [`BOOT_MAP_SIZE`] bytes are).
pub const fn phys_to_virt(pa: PhysAddr, len: u64) -> Option<VirtAddr> {
    if direct_map_contains(pa, len) {
        Some(VirtAddr(KERNEL_VMA + pa.0))
    } else {
        None
    }
}
