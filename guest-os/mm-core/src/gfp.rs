//! GFP ("get free pages") flags: what an allocation may do to succeed and where its memory
//! may come from. Bit values are Linux 6.1's (`include/linux/gfp_types.h`), so a flag word
//! printed by vmscope reads the same as one printed by Linux.
//!
//! What each flag means here, with no reclaim yet (reclaim and the OOM killer come later):
//! - zone modifiers `DMA`, `DMA32` pick the highest zone the memory may come from; the
//!   allocation falls back to lower zones only ([`Gfp::zone`]);
//! - `MOVABLE` / `RECLAIMABLE` pick the migratetype free list ([`Gfp::migratetype`]);
//! - `HIGH` lets the allocation dip to half the min watermark, `ATOMIC` ("harder") a further
//!   quarter: atomic context cannot wait for reclaim, so it gets a reserve;
//! - `ZERO` returns zeroed memory;
//! - `NOFAIL` may not fail: it ignores watermarks, and if no page exists at all the kernel
//!   panics ("out of memory") because nothing else can free memory yet;
//! - `NOWARN` suppresses the allocation-failure message;
//! - `DIRECT_RECLAIM` (in `GFP_KERNEL`) marks a caller that may sleep; `GFP_NOWAIT` and
//!   `GFP_ATOMIC` lack it and so never wait.

use core::fmt;
use core::ops::{BitAnd, BitOr};

/// A set of GFP flags.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Gfp(pub u32);

impl Gfp {
    pub const DMA: Gfp = Gfp(0x01);
    pub const HIGHMEM: Gfp = Gfp(0x02);
    pub const DMA32: Gfp = Gfp(0x04);
    pub const MOVABLE: Gfp = Gfp(0x08);
    pub const RECLAIMABLE: Gfp = Gfp(0x10);
    pub const HIGH: Gfp = Gfp(0x20);
    pub const IO: Gfp = Gfp(0x40);
    pub const FS: Gfp = Gfp(0x80);
    pub const ZERO: Gfp = Gfp(0x100);
    pub const ATOMIC: Gfp = Gfp(0x200);
    pub const DIRECT_RECLAIM: Gfp = Gfp(0x400);
    pub const KSWAPD_RECLAIM: Gfp = Gfp(0x800);
    pub const WRITE: Gfp = Gfp(0x1000);
    pub const NOWARN: Gfp = Gfp(0x2000);
    pub const RETRY_MAYFAIL: Gfp = Gfp(0x4000);
    pub const NOFAIL: Gfp = Gfp(0x8000);
    pub const NORETRY: Gfp = Gfp(0x10000);
    pub const MEMALLOC: Gfp = Gfp(0x20000);
    pub const COMP: Gfp = Gfp(0x40000);
    pub const NOMEMALLOC: Gfp = Gfp(0x80000);
    pub const HARDWALL: Gfp = Gfp(0x100000);
    pub const THISNODE: Gfp = Gfp(0x200000);
    pub const ACCOUNT: Gfp = Gfp(0x400000);

    /// `__GFP_RECLAIM`.
    pub const RECLAIM: Gfp = Gfp(Self::DIRECT_RECLAIM.0 | Self::KSWAPD_RECLAIM.0);

    /// Ordinary kernel allocations: may sleep, reclaim, do I/O.
    pub const KERNEL: Gfp = Gfp(Self::RECLAIM.0 | Self::IO.0 | Self::FS.0);
    /// Cannot sleep; may use reserves below the min watermark.
    pub const GFP_ATOMIC: Gfp = Gfp(Self::HIGH.0 | Self::ATOMIC.0 | Self::KSWAPD_RECLAIM.0);
    /// Cannot sleep, no reserves.
    pub const NOWAIT: Gfp = Self::KSWAPD_RECLAIM;
    /// Memory for user space that the kernel also touches.
    pub const USER: Gfp = Gfp(Self::KERNEL.0 | Self::HARDWALL.0);
    /// User pages: movable, may come from any zone.
    pub const HIGHUSER_MOVABLE: Gfp = Gfp(Self::USER.0 | Self::HIGHMEM.0 | Self::MOVABLE.0);
    /// `GFP_DMA`: the ISA DMA zone (below 16 MiB).
    pub const GFP_DMA: Gfp = Self::DMA;
    /// `GFP_DMA32`: below 4 GiB.
    pub const GFP_DMA32: Gfp = Self::DMA32;

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Gfp) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: Gfp) -> bool {
        self.0 & other.0 != 0
    }

    /// The highest zone this allocation may use (`gfp_zone()`).
    pub const fn zone(self) -> ZoneType {
        if self.intersects(Self::DMA) {
            ZoneType::Dma
        } else if self.intersects(Self::DMA32) {
            ZoneType::Dma32
        } else {
            ZoneType::Normal
        }
    }

    /// The free-list type (`gfp_migratetype()`).
    pub const fn migratetype(self) -> MigrateType {
        if self.intersects(Self::MOVABLE) {
            MigrateType::Movable
        } else if self.intersects(Self::RECLAIMABLE) {
            MigrateType::Reclaimable
        } else {
            MigrateType::Unmovable
        }
    }
}

impl BitOr for Gfp {
    type Output = Gfp;
    fn bitor(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 | rhs.0)
    }
}

impl BitAnd for Gfp {
    type Output = Gfp;
    fn bitand(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 & rhs.0)
    }
}

impl fmt::Debug for Gfp {
    /// `GFP_KERNEL|__GFP_ZERO`-style names, as Linux's `%pGg` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const COMPOSITES: [(Gfp, &str); 5] = [
            (Gfp::HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"),
            (Gfp::USER, "GFP_USER"),
            (Gfp::KERNEL, "GFP_KERNEL"),
            (Gfp::GFP_ATOMIC, "GFP_ATOMIC"),
            (Gfp::NOWAIT, "GFP_NOWAIT"),
        ];
        const BITS: [(Gfp, &str); 23] = [
            (Gfp::DMA, "__GFP_DMA"),
            (Gfp::HIGHMEM, "__GFP_HIGHMEM"),
            (Gfp::DMA32, "__GFP_DMA32"),
            (Gfp::MOVABLE, "__GFP_MOVABLE"),
            (Gfp::RECLAIMABLE, "__GFP_RECLAIMABLE"),
            (Gfp::HIGH, "__GFP_HIGH"),
            (Gfp::IO, "__GFP_IO"),
            (Gfp::FS, "__GFP_FS"),
            (Gfp::ZERO, "__GFP_ZERO"),
            (Gfp::ATOMIC, "__GFP_ATOMIC"),
            (Gfp::DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"),
            (Gfp::KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"),
            (Gfp::WRITE, "__GFP_WRITE"),
            (Gfp::NOWARN, "__GFP_NOWARN"),
            (Gfp::RETRY_MAYFAIL, "__GFP_RETRY_MAYFAIL"),
            (Gfp::NOFAIL, "__GFP_NOFAIL"),
            (Gfp::NORETRY, "__GFP_NORETRY"),
            (Gfp::MEMALLOC, "__GFP_MEMALLOC"),
            (Gfp::COMP, "__GFP_COMP"),
            (Gfp::NOMEMALLOC, "__GFP_NOMEMALLOC"),
            (Gfp::HARDWALL, "__GFP_HARDWALL"),
            (Gfp::THISNODE, "__GFP_THISNODE"),
            (Gfp::ACCOUNT, "__GFP_ACCOUNT"),
        ];
        let mut rest = self.0;
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { "|" };
            first = false;
            f.write_str(s)
        };
        for (g, name) in COMPOSITES {
            if rest & g.0 == g.0 && g.0 != 0 {
                sep(f)?;
                f.write_str(name)?;
                rest &= !g.0;
            }
        }
        for (g, name) in BITS {
            if rest & g.0 != 0 {
                sep(f)?;
                f.write_str(name)?;
                rest &= !g.0;
            }
        }
        if rest != 0 {
            sep(f)?;
            write!(f, "{rest:#x}")?;
        }
        if self.0 == 0 {
            f.write_str("0")?;
        }
        Ok(())
    }
}

/// Memory zones, lowest first (`enum zone_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ZoneType {
    /// Below 16 MiB: reachable by ISA DMA.
    Dma = 0,
    /// Below 4 GiB: reachable by 32-bit DMA.
    Dma32 = 1,
    /// Everything else.
    Normal = 2,
}

/// Number of zone types.
pub const MAX_NR_ZONES: usize = 3;

impl ZoneType {
    /// All zone types, lowest first.
    pub const ALL: [ZoneType; MAX_NR_ZONES] = [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal];

    /// Linux's name for the zone (`/proc/zoneinfo`, `/proc/buddyinfo`).
    pub const fn name(self) -> &'static str {
        match self {
            ZoneType::Dma => "DMA",
            ZoneType::Dma32 => "DMA32",
            ZoneType::Normal => "Normal",
        }
    }

    /// The zone type with index `i`.
    pub const fn from_index(i: usize) -> Option<ZoneType> {
        match i {
            0 => Some(ZoneType::Dma),
            1 => Some(ZoneType::Dma32),
            2 => Some(ZoneType::Normal),
            _ => None,
        }
    }
}

/// Free-list types that group pages by mobility, so that unmovable allocations do not
/// scatter over memory that could otherwise be compacted into large blocks
/// (`enum migratetype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum MigrateType {
    Unmovable = 0,
    Movable = 1,
    Reclaimable = 2,
    /// Pageblocks reserved for high-order atomic allocations.
    HighAtomic = 3,
    /// Pageblocks being isolated (never allocated from).
    Isolate = 4,
}

/// Number of migratetypes with free lists.
pub const MIGRATE_TYPES: usize = 5;
/// Types the per-CPU lists cache (`MIGRATE_PCPTYPES`).
pub const MIGRATE_PCPTYPES: usize = 3;

impl MigrateType {
    /// All migratetypes in Linux's order.
    pub const ALL: [MigrateType; MIGRATE_TYPES] = [
        MigrateType::Unmovable,
        MigrateType::Movable,
        MigrateType::Reclaimable,
        MigrateType::HighAtomic,
        MigrateType::Isolate,
    ];

    /// Name as `/proc/pagetypeinfo` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            MigrateType::Unmovable => "Unmovable",
            MigrateType::Movable => "Movable",
            MigrateType::Reclaimable => "Reclaimable",
            MigrateType::HighAtomic => "HighAtomic",
            MigrateType::Isolate => "Isolate",
        }
    }

    /// The migratetype with index `i`.
    pub const fn from_index(i: usize) -> MigrateType {
        match i {
            0 => MigrateType::Unmovable,
            1 => MigrateType::Movable,
            2 => MigrateType::Reclaimable,
            3 => MigrateType::HighAtomic,
            _ => MigrateType::Isolate,
        }
    }

    /// The types to steal from when this type's lists are empty, in order (`fallbacks[]`).
    pub const fn fallbacks(self) -> &'static [MigrateType] {
        match self {
            MigrateType::Unmovable => &[MigrateType::Reclaimable, MigrateType::Movable],
            MigrateType::Movable => &[MigrateType::Reclaimable, MigrateType::Unmovable],
            MigrateType::Reclaimable => &[MigrateType::Unmovable, MigrateType::Movable],
            MigrateType::HighAtomic | MigrateType::Isolate => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_and_migratetype_from_flags() {
        assert_eq!(Gfp::KERNEL.zone(), ZoneType::Normal);
        assert_eq!((Gfp::KERNEL | Gfp::DMA).zone(), ZoneType::Dma);
        assert_eq!((Gfp::KERNEL | Gfp::DMA32).zone(), ZoneType::Dma32);
        assert_eq!(Gfp::HIGHUSER_MOVABLE.migratetype(), MigrateType::Movable);
        assert_eq!(
            (Gfp::KERNEL | Gfp::RECLAIMABLE).migratetype(),
            MigrateType::Reclaimable
        );
        assert_eq!(Gfp::KERNEL.migratetype(), MigrateType::Unmovable);
    }

    #[test]
    fn debug_names_like_linux() {
        assert_eq!(
            format!("{:?}", Gfp::KERNEL | Gfp::ZERO),
            "GFP_KERNEL|__GFP_ZERO"
        );
        assert_eq!(format!("{:?}", Gfp::GFP_ATOMIC), "GFP_ATOMIC");
        assert_eq!(format!("{:?}", Gfp(0)), "0");
    }
}
