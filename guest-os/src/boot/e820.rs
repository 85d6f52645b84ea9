//! e820 memory types, printed the way Linux's `e820__print_table()` prints them.

use core::fmt;

use super::pvh::HvmMemmapTableEntry;
use crate::kprintln;

/// Usable RAM.
pub const E820_TYPE_RAM: u32 = 1;
/// Reserved.
pub const E820_TYPE_RESERVED: u32 = 2;
/// ACPI reclaimable tables.
pub const E820_TYPE_ACPI: u32 = 3;
/// ACPI non-volatile storage.
pub const E820_TYPE_NVS: u32 = 4;
/// Unusable (bad) memory.
pub const E820_TYPE_UNUSABLE: u32 = 5;
/// Persistent memory (ACPI 6).
pub const E820_TYPE_PMEM: u32 = 7;
/// Legacy persistent memory (non-standard type 12).
pub const E820_TYPE_PRAM: u32 = 12;

/// Displays an e820 type as Linux's `e820_print_type()` does.
#[derive(Clone, Copy, Debug)]
pub struct TypeName(pub u32);

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            E820_TYPE_RAM => f.write_str("usable"),
            E820_TYPE_RESERVED => f.write_str("reserved"),
            E820_TYPE_ACPI => f.write_str("ACPI data"),
            E820_TYPE_NVS => f.write_str("ACPI NVS"),
            E820_TYPE_UNUSABLE => f.write_str("unusable"),
            E820_TYPE_PMEM | E820_TYPE_PRAM => write!(f, "persistent (type {})", self.0),
            other => write!(f, "type {other}"),
        }
    }
}

/// Prints one line per entry: `<who>: [mem 0x<start>-0x<end inclusive>] <type>`.
pub fn print_table(who: &str, entries: impl Iterator<Item = HvmMemmapTableEntry>) {
    for e in entries {
        kprintln!(
            "{}: [mem {:#018x}-{:#018x}] {}",
            who,
            e.addr,
            e.addr.wrapping_add(e.size).wrapping_sub(1),
            TypeName(e.type_)
        );
    }
}

/// Totals over a memory map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Bytes in usable (type 1) entries.
    pub usable_bytes: u64,
    /// Number of usable entries.
    pub usable_ranges: u32,
    /// Bytes in all other entries (reserved, ACPI, NVS, unusable, ...).
    pub reserved_bytes: u64,
}

impl Summary {
    /// Adds up `entries`.
    pub fn of(entries: impl Iterator<Item = HvmMemmapTableEntry>) -> Self {
        let mut s = Self::default();
        for e in entries {
            if e.type_ == E820_TYPE_RAM {
                s.usable_bytes = s.usable_bytes.saturating_add(e.size);
                s.usable_ranges += 1;
            } else {
                s.reserved_bytes = s.reserved_bytes.saturating_add(e.size);
            }
        }
        s
    }
}
