//! Hierarchical page counters (`mm/page_counter.c`): the usage and limits of memory cgroups
//! (`memory.current`, `memory.max`, `memory.high`, `memory.peak`, `memory.events`' max).
//!
//! A charge is taken at a counter and at all its ancestors, all or nothing: a cgroup's usage
//! always includes its descendants'. The counters live in an arena ([`PageCounters`]) and
//! refer to their parent by index.

use alloc::collections::TryReserveError;
use alloc::vec::Vec;

use crate::addr::PAGE_SIZE;

/// The largest count and the "max" (no limit) value: as many pages as fit in a signed long
/// of bytes (`PAGE_COUNTER_MAX`).
pub const PAGE_COUNTER_MAX: u64 = i64::MAX as u64 / PAGE_SIZE;

/// `set_max` found usage above the new limit (`-EBUSY`): reclaim and retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// A limit string that does not parse (`-EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidLimit;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counter {
    usage: u64,
    max: u64,
    high: u64,
    min: u64,
    low: u64,
    watermark: u64,
    failcnt: u64,
    parent: Option<usize>,
    live: bool,
}

impl Counter {
    const fn new(parent: Option<usize>) -> Self {
        Counter {
            usage: 0,
            max: PAGE_COUNTER_MAX,
            high: PAGE_COUNTER_MAX,
            min: 0,
            low: 0,
            watermark: 0,
            failcnt: 0,
            parent,
            live: true,
        }
    }
}

/// An arena of page counters linked to their parents.
#[derive(Clone, Debug, Default)]
pub struct PageCounters {
    counters: Vec<Counter>,
    /// Slots of removed counters, reused first.
    free: Vec<usize>,
}

impl PageCounters {
    pub const fn new() -> Self {
        PageCounters {
            counters: Vec::new(),
            free: Vec::new(),
        }
    }

    /// `page_counter_init`: a counter with no limits under `parent`. Panics if memory runs
    /// out; see [`PageCounters::try_new_counter`].
    pub fn new_counter(&mut self, parent: Option<usize>) -> usize {
        self.try_new_counter(parent)
            .expect("page counter allocation")
    }

    /// A counter with no limits under `parent`, or the allocation error (cgroup mkdir
    /// reports `-ENOMEM`).
    pub fn try_new_counter(&mut self, parent: Option<usize>) -> Result<usize, TryReserveError> {
        debug_assert!(parent.is_none_or(|p| self.counters[p].live));
        if let Some(id) = self.free.pop() {
            self.counters[id] = Counter::new(parent);
            return Ok(id);
        }
        // Reserve the free-list slot now so remove_counter never allocates.
        self.free
            .try_reserve(self.counters.len() + 1 - self.free.len())?;
        self.counters.try_reserve(1)?;
        self.counters.push(Counter::new(parent));
        Ok(self.counters.len() - 1)
    }

    /// Retire a counter (cgroup removal); its slot is reused. Its charges should have been
    /// moved to the parent (reparenting) or dropped first.
    pub fn remove_counter(&mut self, id: usize) {
        debug_assert!(self.counters[id].live);
        debug_assert!(self
            .counters
            .iter()
            .all(|c| !c.live || c.parent != Some(id)));
        self.counters[id].live = false;
        self.free.push(id);
    }

    /// The counter and its ancestors, bottom up.
    fn chain(&self, id: usize) -> impl Iterator<Item = usize> + '_ {
        core::iter::successors(Some(id), move |&c| self.counters[c].parent)
    }

    /// `page_counter_try_charge`: charge `nr` pages to `id` and every ancestor, unless that
    /// takes one of them over its max; then nothing is charged, that counter's `failcnt`
    /// goes up, and its id is returned (the cgroup to reclaim from). As in Linux, the levels
    /// below the refusing one had the charge for a moment and their peak may show it.
    pub fn try_charge(&mut self, id: usize, nr: u64) -> Result<(), usize> {
        let mut c = Some(id);
        while let Some(i) = c {
            let counter = &mut self.counters[i];
            let new = counter.usage + nr;
            if new > counter.max {
                counter.failcnt += 1;
                // Undo the levels below the one that refused.
                let mut u = Some(id);
                while let Some(j) = u.filter(|&j| j != i) {
                    self.counters[j].usage -= nr;
                    u = self.counters[j].parent;
                }
                return Err(i);
            }
            counter.usage = new;
            counter.watermark = counter.watermark.max(new);
            c = counter.parent;
        }
        Ok(())
    }

    /// `page_counter_charge`: charge regardless of limits (charges that must not fail, such
    /// as those of an exiting or OOM-killed task's allocations).
    pub fn charge(&mut self, id: usize, nr: u64) {
        let mut c = Some(id);
        while let Some(i) = c {
            let counter = &mut self.counters[i];
            counter.usage += nr;
            counter.watermark = counter.watermark.max(counter.usage);
            c = counter.parent;
        }
    }

    /// `page_counter_uncharge`: return `nr` pages at `id` and its ancestors. Uncharging
    /// more than was charged is a kernel bug; as Linux (which warns), the usage stops at 0.
    pub fn uncharge(&mut self, id: usize, nr: u64) {
        let mut c = Some(id);
        while let Some(i) = c {
            let counter = &mut self.counters[i];
            debug_assert!(counter.usage >= nr, "page counter underflow");
            counter.usage = counter.usage.saturating_sub(nr);
            c = counter.parent;
        }
    }

    /// `page_counter_set_max`: set the limit, unless usage is above it already, in which
    /// case the caller (memory.max's write handler) reclaims and tries again, or gives up
    /// and OOM-kills.
    pub fn set_max(&mut self, id: usize, max: u64) -> Result<(), Busy> {
        let c = &mut self.counters[id];
        if c.usage > max {
            return Err(Busy);
        }
        c.max = max.min(PAGE_COUNTER_MAX);
        Ok(())
    }

    /// `page_counter_set_high`: the throttling threshold (reclaim on return to user space,
    /// never a failure).
    pub fn set_high(&mut self, id: usize, high: u64) {
        self.counters[id].high = high.min(PAGE_COUNTER_MAX);
    }

    /// `page_counter_set_min` (memory.min: protection from reclaim). Stored for the
    /// reclaim code; effective-protection propagation is not computed here.
    pub fn set_min(&mut self, id: usize, min: u64) {
        self.counters[id].min = min.min(PAGE_COUNTER_MAX);
    }

    /// `page_counter_set_low` (memory.low: best-effort protection).
    pub fn set_low(&mut self, id: usize, low: u64) {
        self.counters[id].low = low.min(PAGE_COUNTER_MAX);
    }

    pub fn usage(&self, id: usize) -> u64 {
        self.counters[id].usage
    }

    pub fn max(&self, id: usize) -> u64 {
        self.counters[id].max
    }

    pub fn high(&self, id: usize) -> u64 {
        self.counters[id].high
    }

    pub fn min(&self, id: usize) -> u64 {
        self.counters[id].min
    }

    pub fn low(&self, id: usize) -> u64 {
        self.counters[id].low
    }

    /// Peak usage (`memory.peak`).
    pub fn watermark(&self, id: usize) -> u64 {
        self.counters[id].watermark
    }

    /// `page_counter_reset_watermark`.
    pub fn reset_watermark(&mut self, id: usize) {
        let c = &mut self.counters[id];
        c.watermark = c.usage;
    }

    /// Charges refused at this counter (`memory.events`' `max`).
    pub fn failcnt(&self, id: usize) -> u64 {
        self.counters[id].failcnt
    }

    pub fn parent(&self, id: usize) -> Option<usize> {
        self.counters[id].parent
    }

    /// Pages that can still be charged at `id` before it or an ancestor hits its max
    /// (`mem_cgroup_margin`).
    pub fn margin(&self, id: usize) -> u64 {
        self.chain(id)
            .map(|c| self.counters[c].max.saturating_sub(self.counters[c].usage))
            .min()
            .unwrap_or(0)
    }

    /// Whether `id` or an ancestor is above its `high` threshold, and the highest-up such
    /// counter's excess (`mem_cgroup_handle_over_high` picks the worst).
    pub fn over_high(&self, id: usize) -> Option<(usize, u64)> {
        self.chain(id)
            .filter(|&c| self.counters[c].usage > self.counters[c].high)
            .map(|c| (c, self.counters[c].usage - self.counters[c].high))
            .last()
    }
}

/// `page_counter_memparse` as memory.max/high/min/low writes use it: `"max"` for no
/// limit, else a byte count with an optional K/M/G/T/P/E suffix (`memparse`: decimal, `0x`
/// hex or leading-`0` octal), rounded down to pages and capped at [`PAGE_COUNTER_MAX`].
/// Surrounding white space is ignored, as the write handler strips it.
pub fn parse_limit(s: &str) -> Result<u64, InvalidLimit> {
    /// Bits each suffix shifts by.
    const SUFFIXES: [(u8, u32); 6] = [
        (b'k', 10),
        (b'm', 20),
        (b'g', 30),
        (b't', 40),
        (b'p', 50),
        (b'e', 60),
    ];
    const HEX: u32 = 16;
    const OCTAL: u32 = 8;
    const DECIMAL: u32 = 10;
    let s = s.trim();
    if s == "max" {
        return Ok(PAGE_COUNTER_MAX);
    }
    let (radix, digits) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (HEX, h)
    } else if s.len() > 1 && s.starts_with('0') {
        (OCTAL, &s[1..])
    } else {
        (DECIMAL, s)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if end == 0 && radix != OCTAL {
        return Err(InvalidLimit);
    }
    let (num, rest) = digits.split_at(end);
    let mut bytes = if num.is_empty() {
        0
    } else {
        u64::from_str_radix(num, radix).map_err(|_| InvalidLimit)?
    };
    match rest.as_bytes() {
        [] => {}
        [c] => {
            let (_, shift) = SUFFIXES
                .iter()
                .find(|(s, _)| *s == c.to_ascii_lowercase())
                .ok_or(InvalidLimit)?;
            bytes = bytes
                .checked_shl(*shift)
                .filter(|b| b >> shift == bytes)
                .unwrap_or(u64::MAX);
        }
        _ => return Err(InvalidLimit),
    }
    Ok((bytes / PAGE_SIZE).min(PAGE_COUNTER_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    #[test]
    fn hierarchy_all_or_nothing() {
        let mut pc = PageCounters::new();
        let root = pc.new_counter(None);
        let a = pc.new_counter(Some(root));
        let b = pc.new_counter(Some(a));
        pc.set_max(a, 100).unwrap();
        assert_eq!(pc.try_charge(b, 60), Ok(()));
        assert_eq!((pc.usage(b), pc.usage(a), pc.usage(root)), (60, 60, 60));
        assert_eq!(pc.margin(b), 40);
        assert_eq!(pc.try_charge(b, 50), Err(a));
        assert_eq!((pc.usage(b), pc.usage(a), pc.usage(root)), (60, 60, 60));
        assert_eq!((pc.failcnt(a), pc.failcnt(b)), (1, 0));
        assert_eq!(pc.set_max(a, 50), Err(Busy));
        pc.uncharge(b, 20);
        assert_eq!(pc.set_max(a, 50), Ok(()));
        assert_eq!(pc.watermark(a), 60);
        pc.reset_watermark(a);
        assert_eq!(pc.watermark(a), 40);
        pc.charge(b, 30);
        assert_eq!(pc.usage(a), 70);
        pc.set_high(a, 60);
        assert_eq!(pc.over_high(b), Some((a, 10)));
        assert_eq!(pc.margin(b), 0);
        pc.uncharge(b, 70);
        pc.remove_counter(b);
        let c = pc.new_counter(Some(root));
        assert_eq!(c, b, "slot reused");
        assert_eq!(pc.usage(c), 0);
        assert_eq!(pc.max(c), PAGE_COUNTER_MAX);
    }

    #[test]
    fn limits_parse() {
        assert_eq!(parse_limit("max"), Ok(PAGE_COUNTER_MAX));
        assert_eq!(parse_limit(" max\n"), Ok(PAGE_COUNTER_MAX));
        assert_eq!(parse_limit("4096"), Ok(1));
        assert_eq!(parse_limit("4095"), Ok(0));
        assert_eq!(parse_limit("64M"), Ok(16384));
        assert_eq!(parse_limit("1g"), Ok(262144));
        assert_eq!(parse_limit("0x2000"), Ok(2));
        assert_eq!(parse_limit("0"), Ok(0));
        assert_eq!(parse_limit("020000"), Ok(2));
        assert_eq!(parse_limit("16E"), Ok(PAGE_COUNTER_MAX));
        assert_eq!(parse_limit("12Q"), Err(InvalidLimit));
        assert_eq!(parse_limit("1MB"), Err(InvalidLimit));
        assert_eq!(parse_limit(""), Err(InvalidLimit));
        assert_eq!(parse_limit("-1"), Err(InvalidLimit));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Charge(u8, u8),
        Uncharge(u8, u8),
        SetMax(u8, u16),
        Force(u8, u8),
    }

    proptest! {
        /// Random charges against a model of the tree.
        #[test]
        fn counters_match_model(
            parents in proptest::collection::vec(any::<u8>(), 1..12),
            ops in proptest::collection::vec(prop_oneof![
                (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Charge(a, b)),
                (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Uncharge(a, b)),
                (any::<u8>(), any::<u16>()).prop_map(|(a, b)| Op::SetMax(a, b)),
                (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Force(a, b)),
            ], 1..200),
        ) {
            let mut pc = PageCounters::new();
            let mut parent: Vec<Option<usize>> = vec![None];
            pc.new_counter(None);
            for (i, p) in parents.iter().enumerate() {
                let p = *p as usize % (i + 1);
                parent.push(Some(p));
                prop_assert_eq!(pc.new_counter(Some(p)), i + 1);
            }
            let n = parent.len();
            let mut usage = vec![0u64; n];
            let mut max = vec![PAGE_COUNTER_MAX; n];
            let mut peak = vec![0u64; n];
            let mut fail = vec![0u64; n];
            // What each counter charged itself, so uncharges stay legal.
            let mut own = vec![0u64; n];
            let chain = |i: usize| core::iter::successors(Some(i), |&c| parent[c]).collect::<Vec<_>>();
            for o in ops {
                match o {
                    Op::Charge(i, nr) | Op::Force(i, nr) => {
                        let (i, nr) = (i as usize % n, nr as u64);
                        let force = matches!(o, Op::Force(..));
                        let refusing = chain(i).into_iter().find(|&c| usage[c] + nr > max[c]);
                        if force {
                            pc.charge(i, nr);
                        } else {
                            let r = pc.try_charge(i, nr);
                            prop_assert_eq!(r, refusing.map_or(Ok(()), Err));
                            if let Some(c) = refusing {
                                fail[c] += 1;
                                // As in Linux, levels below the refusing one saw the
                                // charge briefly and keep it in their peak.
                                for b in chain(i).into_iter().take_while(|&b| b != c) {
                                    peak[b] = peak[b].max(usage[b] + nr);
                                }
                                continue;
                            }
                        }
                        own[i] += nr;
                        for c in chain(i) { usage[c] += nr; peak[c] = peak[c].max(usage[c]); }
                    }
                    Op::Uncharge(i, nr) => {
                        let i = i as usize % n;
                        let nr = (nr as u64).min(own[i]);
                        pc.uncharge(i, nr);
                        own[i] -= nr;
                        for c in chain(i) { usage[c] -= nr; }
                    }
                    Op::SetMax(i, m) => {
                        let (i, m) = (i as usize % n, m as u64);
                        let r = pc.set_max(i, m);
                        if usage[i] > m { prop_assert_eq!(r, Err(Busy)); } else { prop_assert_eq!(r, Ok(())); max[i] = m; }
                    }
                }
                for c in 0..n {
                    prop_assert_eq!(pc.usage(c), usage[c]);
                    prop_assert_eq!(pc.max(c), max[c]);
                    prop_assert_eq!(pc.watermark(c), peak[c]);
                    prop_assert_eq!(pc.failcnt(c), fail[c]);
                    // Hierarchy: usage covers the children's.
                    let kids: u64 = (0..n).filter(|&k| parent[k] == Some(c)).map(|k| usage[k]).sum();
                    prop_assert!(pc.usage(c) >= kids);
                }
            }
        }
    }
}
