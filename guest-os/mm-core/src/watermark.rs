//! Zone watermarks and the lowmem reserve, computed from RAM size as Linux does
//! (`calculate_min_free_kbytes`, `__setup_per_zone_wmarks`, `setup_per_zone_lowmem_reserve`).
//!
//! - `min_free_kbytes = sqrt(16 * lowmem_kbytes)`, clamped to [128, 262144];
//! - each zone's `min` is its share of that, proportional to its managed pages;
//! - `low = min + gap`, `high = min + 2 * gap`, `gap = max(min / 4, managed * 10 / 10000)`
//!   (watermark_scale_factor 10 = 0.1% of the zone);
//! - `lowmem_reserve[j]` of zone `i`: pages an allocation that could have used zone `j > i`
//!   must leave free in zone `i` (ratios 256 for DMA and DMA32, 32 for Normal), so that
//!   allocations that *need* low memory still find some.

use crate::gfp::MAX_NR_ZONES;

/// Watermark indices.
pub const WMARK_MIN: usize = 0;
pub const WMARK_LOW: usize = 1;
pub const WMARK_HIGH: usize = 2;

/// `sysctl_lowmem_reserve_ratio` for DMA, DMA32, Normal.
pub const LOWMEM_RESERVE_RATIO: [u64; MAX_NR_ZONES] = [256, 256, 32];
/// `watermark_scale_factor` (in 1/10000 of the zone).
pub const WATERMARK_SCALE_FACTOR: u64 = 10;
/// Clamp of `min_free_kbytes`.
pub const MIN_FREE_KBYTES_RANGE: (u64, u64) = (128, 262_144);

/// Integer square root (`int_sqrt`), bit by bit: no floating point in the kernel.
pub fn int_sqrt(x: u64) -> u64 {
    let mut rem = x;
    let mut root = 0u64;
    let mut bit = 1u64 << 62;
    while bit > x {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// `min_free_kbytes` for `lowmem_pages` managed pages (all zones on 64-bit).
pub fn min_free_kbytes(lowmem_pages: u64) -> u64 {
    let kbytes = lowmem_pages * (crate::addr::PAGE_SIZE >> 10);
    int_sqrt(kbytes * 16).clamp(MIN_FREE_KBYTES_RANGE.0, MIN_FREE_KBYTES_RANGE.1)
}

/// Watermarks `[min, low, high]` of a zone of `managed` pages, when all zones together
/// manage `total` pages (`__setup_per_zone_wmarks`).
pub fn zone_watermark(managed: u64, total: u64, min_free_kbytes: u64) -> [u64; 3] {
    let pages_min = min_free_kbytes >> (crate::addr::PAGE_SHIFT - 10);
    let min = (pages_min * managed).checked_div(total).unwrap_or(0);
    let gap = (min / 4).max(managed * WATERMARK_SCALE_FACTOR / 10_000);
    [min, min + gap, min + 2 * gap]
}

/// Watermarks of each zone with the given managed pages.
pub fn zone_watermarks(
    managed: &[u64],
    min_free_kbytes: u64,
) -> impl Iterator<Item = [u64; 3]> + '_ {
    let total: u64 = managed.iter().sum();
    managed
        .iter()
        .map(move |&m| zone_watermark(m, total, min_free_kbytes))
}

/// `lowmem_reserve` of zone `i` given every zone's managed pages (one node).
pub fn lowmem_reserve(managed: &[u64; MAX_NR_ZONES], i: usize) -> [u64; MAX_NR_ZONES] {
    let mut r = [0; MAX_NR_ZONES];
    let mut sum = 0;
    for j in i + 1..MAX_NR_ZONES {
        sum += managed[j];
        r[j] = sum / LOWMEM_RESERVE_RATIO[i];
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_free_kbytes_matches_linux_table() {
        // Linux's comment table: 16MB: 512k, 32MB: 724k, 64MB: 1024k, 128MB: 1448k,
        // 256MB: 2048k, 512MB: 2896k, 1024MB: 4096k, 16GB: 16384k.
        for (mib, k) in [
            (16, 512),
            (32, 724),
            (64, 1024),
            (128, 1448),
            (256, 2048),
            (1024, 4096),
            (16384, 16384),
        ] {
            assert_eq!(min_free_kbytes(mib * 256), k, "{mib} MiB");
        }
        assert_eq!(min_free_kbytes(1), 128);
    }

    #[test]
    fn watermarks_split_by_zone_size() {
        // A 128 MiB machine: DMA 3,999 managed, DMA32 28,000.
        let m = [3999, 28000];
        let w: Vec<_> = zone_watermarks(&m, 1448).collect();
        // pages_min = 362; DMA: 362 * 3999 / 31999 = 45; gap = max(11, 3) = 11.
        assert_eq!(w[0], [45, 56, 67]);
        // DMA32: 362 * 28000 / 31999 = 316; gap = max(79, 28) = 79.
        assert_eq!(w[1], [316, 395, 474]);
    }

    #[test]
    fn lowmem_reserve_protects_lower_zones() {
        let m = [3999, 500_000, 1_000_000];
        assert_eq!(lowmem_reserve(&m, 0), [0, 500_000 / 256, 1_500_000 / 256]);
        assert_eq!(lowmem_reserve(&m, 1), [0, 0, 1_000_000 / 256]);
        assert_eq!(lowmem_reserve(&m, 2), [0, 0, 0]);
        for x in [0, 1, 2, 3, 4, 99, 100, 1 << 40, u64::MAX] {
            let r = int_sqrt(x) as u128;
            assert!(r * r <= x as u128 && (r + 1) * (r + 1) > x as u128, "{x}");
        }
    }
}
