//! Address newtypes. A guest-physical address and a guest-virtual (linear) address are
//! different kinds of number; mixing them up is the classic emulator bug, so the type system
//! keeps them apart. Host pointers never leave `memory.rs`.

use std::fmt;

/// A guest-physical address: what the MMU produces and what RAM and MMIO devices decode.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GuestPhysAddr(pub u64);

/// A guest-virtual (linear) address: segment base + offset, before paging.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GuestVirtAddr(pub u64);

/// Size of a small page (4 KiB).
pub const PAGE_SIZE: u64 = 4096;
/// Mask of the offset bits within a 4 KiB page.
pub const PAGE_OFFSET_MASK: u64 = PAGE_SIZE - 1;

impl GuestPhysAddr {
    pub const fn new(v: u64) -> Self {
        Self(v)
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    pub const fn add(self, off: u64) -> Self {
        Self(self.0.wrapping_add(off))
    }
    /// Page frame number of this address.
    pub const fn pfn(self) -> u64 {
        self.0 >> 12
    }
}

impl GuestVirtAddr {
    pub const fn new(v: u64) -> Self {
        Self(v)
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    pub const fn add(self, off: u64) -> Self {
        Self(self.0.wrapping_add(off))
    }
    /// Virtual page number (address >> 12).
    pub const fn vpn(self) -> u64 {
        self.0 >> 12
    }
    pub const fn page_offset(self) -> u64 {
        self.0 & PAGE_OFFSET_MASK
    }
    /// Canonical in 48-bit (4-level) addressing: bits 63..47 all equal.
    pub const fn is_canonical48(self) -> bool {
        let top = (self.0 as i64) >> 47;
        top == 0 || top == -1
    }
}

impl fmt::Debug for GuestPhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P:{:#x}", self.0)
    }
}
impl fmt::Display for GuestPhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}
impl fmt::Debug for GuestVirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V:{:#x}", self.0)
    }
}
impl fmt::Display for GuestVirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn canonical() {
        assert!(GuestVirtAddr(0x0000_7fff_ffff_ffff).is_canonical48());
        assert!(GuestVirtAddr(0xffff_8000_0000_0000).is_canonical48());
        assert!(!GuestVirtAddr(0x0000_8000_0000_0000).is_canonical48());
        assert!(!GuestVirtAddr(0xfff0_0000_0000_0000).is_canonical48());
    }
}
