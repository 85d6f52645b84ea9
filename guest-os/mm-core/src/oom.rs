//! The OOM killer's scoring (`mm/oom_kill.c`, `fs/proc/base.c`): which task to kill when
//! reclaim cannot free memory, and what /proc/PID/oom_score shows.
//!
//! A task's badness is the memory killing it would free, in pages (resident pages, swap
//! entries, page tables), shifted by its `oom_score_adj` in thousandths of the memory
//! available (RAM plus swap, or the memcg's limit for a memcg OOM). The highest badness is
//! killed; `oom_score_adj` -1000 exempts a task.

use crate::addr::PAGE_SIZE;

/// `oom_score_adj` that exempts a task (`OOM_SCORE_ADJ_MIN`).
pub const OOM_SCORE_ADJ_MIN: i16 = -1000;
/// The highest `oom_score_adj`: the task goes first (`OOM_SCORE_ADJ_MAX`).
pub const OOM_SCORE_ADJ_MAX: i16 = 1000;
/// The legacy /proc/PID/oom_adj value that exempts a task (`OOM_DISABLE`).
pub const OOM_DISABLE: i16 = -17;
/// The highest legacy `oom_adj` (`OOM_ADJUST_MAX`).
pub const OOM_ADJUST_MAX: i16 = 15;
/// `oom_score_adj` is in thousandths of the memory available.
const ADJ_SCALE: i64 = 1000;

/// `oom_badness`: how much killing the task would free, adjusted. `None` for a task that
/// must not be killed (`oom_score_adj` at [`OOM_SCORE_ADJ_MIN`]; Linux's `LONG_MIN`; the
/// caller also skips kernel threads, tasks without an mm, and tasks being reaped).
/// `totalpages` is RAM plus swap pages for a global OOM, the memcg's max for a memcg OOM.
pub fn oom_badness(
    rss: u64,
    swapents: u64,
    pgtables_bytes: u64,
    oom_score_adj: i16,
    totalpages: u64,
) -> Option<i64> {
    if oom_score_adj <= OOM_SCORE_ADJ_MIN {
        return None;
    }
    let points = rss
        .saturating_add(swapents)
        .saturating_add(pgtables_bytes / PAGE_SIZE)
        .min(i64::MAX as u64) as i64;
    let adj = oom_score_adj.clamp(OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX) as i64
        * (totalpages.min(i64::MAX as u64) as i64 / ADJ_SCALE);
    Some(points.saturating_add(adj))
}

/// `proc_oom_score`: /proc/PID/oom_score, the badness scaled back into 0..=2000 as
/// `(1000 + badness * 1000 / totalpages) * 2 / 3` (so a task using all memory with adj 0
/// scores 1333); 0 for an exempt task.
pub fn proc_oom_score(badness: Option<i64>, totalpages: u64) -> u64 {
    /// The `2 / 3` scaling of the shown score.
    const SHOW_NUM: i128 = 2;
    const SHOW_DEN: i128 = 3;
    let (Some(b), Some(total)) = (badness, (totalpages != 0).then_some(totalpages as i128)) else {
        return 0;
    };
    let scale = ADJ_SCALE as i128;
    // Cannot go negative: the adjustment is at least -999 thousandths of the total.
    ((scale + b as i128 * scale / total) * SHOW_NUM / SHOW_DEN).max(0) as u64
}

/// `select_bad_process`'s choice among candidates `(task, badness)`: the highest badness;
/// a later candidate wins a tie, as `oom_evaluate_task` replaces on `>=`. Exempt tasks
/// (`None`) are never chosen.
pub fn select_victim<T>(candidates: impl IntoIterator<Item = (T, Option<i64>)>) -> Option<T> {
    let mut chosen: Option<(T, i64)> = None;
    for (t, b) in candidates {
        let Some(b) = b else { continue };
        if chosen.as_ref().is_none_or(|&(_, c)| b >= c) {
            chosen = Some((t, b));
        }
    }
    chosen.map(|(t, _)| t)
}

/// Writing the legacy /proc/PID/oom_adj: its -17..=15 scale mapped onto `oom_score_adj`
/// (15 is the maximum, -17 the exemption).
pub fn oom_adj_to_score_adj(oom_adj: i16) -> i16 {
    let oom_adj = oom_adj.clamp(OOM_DISABLE, OOM_ADJUST_MAX);
    if oom_adj == OOM_ADJUST_MAX {
        OOM_SCORE_ADJ_MAX
    } else {
        oom_adj * OOM_SCORE_ADJ_MAX / -OOM_DISABLE
    }
}

/// Reading /proc/PID/oom_adj from `oom_score_adj`.
pub fn score_adj_to_oom_adj(score_adj: i16) -> i16 {
    if score_adj == OOM_SCORE_ADJ_MAX {
        OOM_ADJUST_MAX
    } else {
        // Widened: -1000 * 17 does not fit an i16.
        (score_adj as i32 * -(OOM_DISABLE as i32) / OOM_SCORE_ADJ_MAX as i32) as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOTAL: u64 = 262_144; // 1 GiB of pages

    #[test]
    fn badness() {
        assert_eq!(oom_badness(1000, 0, 0, 0, TOTAL), Some(1000));
        assert_eq!(oom_badness(1000, 200, 3 * 4096, 0, TOTAL), Some(1203));
        // adj 500: half the memory more (262 pages per thousandth).
        assert_eq!(oom_badness(1000, 0, 0, 500, TOTAL), Some(1000 + 500 * 262));
        assert_eq!(oom_badness(1000, 0, 0, -500, TOTAL), Some(1000 - 500 * 262));
        assert_eq!(oom_badness(1000, 0, 0, OOM_SCORE_ADJ_MIN, TOTAL), None);
        assert_eq!(oom_badness(1000, 0, 0, -999, TOTAL), Some(1000 - 999 * 262));
    }

    #[test]
    fn proc_score() {
        assert_eq!(proc_oom_score(None, TOTAL), 0);
        assert_eq!(proc_oom_score(Some(0), TOTAL), 666);
        assert_eq!(proc_oom_score(Some(TOTAL as i64), TOTAL), 1333);
        assert_eq!(proc_oom_score(Some(TOTAL as i64 / 2), TOTAL), 1000);
        let b = oom_badness(0, 0, 0, OOM_SCORE_ADJ_MAX, TOTAL);
        assert_eq!(proc_oom_score(b, TOTAL), 1332);
        // -999 * 262 pages: badness * 1000 / total = -998, (1000 - 998) * 2 / 3 = 1.
        let b = oom_badness(0, 0, 0, -999, TOTAL);
        assert_eq!(proc_oom_score(b, TOTAL), 1);
        assert_eq!(proc_oom_score(Some(5), 0), 0);
    }

    #[test]
    fn victim() {
        assert_eq!(
            select_victim([(1, Some(5)), (2, None), (3, Some(9)), (4, Some(9))]),
            Some(4)
        );
        assert_eq!(select_victim([(1, None::<i64>)]), None);
        assert_eq!(select_victim([(1, Some(-5))]), Some(1));
    }

    #[test]
    fn legacy_oom_adj() {
        assert_eq!(oom_adj_to_score_adj(OOM_DISABLE), OOM_SCORE_ADJ_MIN);
        assert_eq!(oom_adj_to_score_adj(OOM_ADJUST_MAX), OOM_SCORE_ADJ_MAX);
        assert_eq!(oom_adj_to_score_adj(0), 0);
        assert_eq!(oom_adj_to_score_adj(-8), -470);
        assert_eq!(score_adj_to_oom_adj(OOM_SCORE_ADJ_MIN), OOM_DISABLE);
        assert_eq!(score_adj_to_oom_adj(OOM_SCORE_ADJ_MAX), OOM_ADJUST_MAX);
        assert_eq!(score_adj_to_oom_adj(-470), -7);
    }
}
