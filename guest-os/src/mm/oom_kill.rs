//! The OOM killer (`mm/oom_kill.c`), for a fault or allocation that found no memory after
//! reclaim (`VM_FAULT_OOM` → `pagefault_out_of_memory` → `out_of_memory`): choose the task
//! whose death frees the most (`oom_badness`: resident pages + swap entries + page-table
//! pages, adjusted by `oom_score_adj`; -1000 exempts), report it in Linux's words (the
//! "invoked oom-killer" header, the memory summary and task table at warning level, the
//! "Killed process" line at error level, which a `quiet` console still shows), kill it
//! with SIGKILL, and let the OOM reaper free its anonymous memory at once if it is not the
//! running task (`oom_reap_task`), so memory comes back before the victim runs again.
//!
//! Linux never picks init (pid 1) and panics when nothing else is killable; here init is
//! chosen as a last resort instead, so a lone program that exhausts memory dies with
//! status 137 rather than taking the machine down.

use core::sync::atomic::{AtomicU64, Ordering};

use mm_core::vma::{Backing, VM_SHARED};

use crate::proc::signal::{self, SigInfo, SIGKILL, SI_KERNEL};
use crate::proc::{state, Task};

/// The pid of init, which Linux's `oom_unkillable_task` exempts.
const INIT_PID: u32 = 1;
/// KiB per page.
const PAGE_KB: u64 = 4;
/// Bytes per page-table page.
const PAGE_BYTES: u64 = 4096;
/// `OOM_SCORE_ADJ_MIN`: never chosen.
pub const OOM_SCORE_ADJ_MIN: i32 = -1000;
pub const OOM_SCORE_ADJ_MAX: i32 = 1000;

/// `/proc/vmstat` oom_kill.
pub static OOM_KILLS: AtomicU64 = AtomicU64::new(0);

/// What the report prints about a task.
#[derive(Clone, Copy, Default)]
struct Badness {
    points: Option<i64>,
    rss: u64,
    total_vm: u64,
    anon: u64,
    file: u64,
    shmem: u64,
    swapents: u64,
    /// Page-table pages, the PML4 included (Linux's `mm_pgtables_bytes` counts every level).
    pgtables: u64,
    adj: i32,
}

/// Usable RAM plus swap, the scale of `oom_score_adj` (`totalpages`).
fn totalpages() -> u64 {
    let ram = super::page_alloc::with(|a| a.totalram_pages());
    ram + super::swapfile::si_swapinfo().0
}

/// `oom_badness` of `t`, or `None` if it has no address space (or it is locked in the middle
/// of a fault and cannot be looked at), or it is exiting.
fn badness(t: &Task, total: u64) -> Option<Badness> {
    if t.state.load(Ordering::Acquire) == state::ZOMBIE {
        return None;
    }
    let g = t.mm().try_lock()?;
    let mm = g.as_ref()?;
    let pgtables = mm.pgtables + 1;
    let adj = t.oom_score_adj.load(Ordering::Relaxed);
    Some(Badness {
        points: mm_core::oom::oom_badness(
            mm.rss,
            mm.swapents,
            pgtables * PAGE_BYTES,
            adj as i16,
            total,
        ),
        rss: mm.rss,
        total_vm: mm.vmas.stat().total_vm,
        anon: mm.rss_stat.anon,
        file: mm.rss_stat.file,
        shmem: mm.rss_stat.shmem,
        swapents: mm.swapents,
        pgtables,
        adj,
    })
}

/// `/proc/PID/oom_score`.
pub fn oom_score(t: &Task) -> u64 {
    let total = totalpages();
    mm_core::oom::proc_oom_score(badness(t, total).and_then(|b| b.points), total)
}

fn comm_of(t: &Task) -> alloc::string::String {
    let comm = *t.comm.lock();
    let n = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
    alloc::string::String::from_utf8_lossy(&comm[..n]).into_owned()
}

/// The header and memory summary Linux prints first (`dump_header`): at warning level.
fn dump_header(faulter: &Task, total: u64) {
    log::warn!(
        "{} invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj={}",
        comm_of(faulter),
        faulter.oom_score_adj.load(Ordering::Relaxed)
    );
    let x = super::proc::meminfo_extra();
    let free = super::page_alloc::with(|a| a.nr_free_pages());
    log::warn!("Mem-Info:");
    log::warn!(
        "active_anon:{} inactive_anon:{} isolated_anon:0\n active_file:{} inactive_file:{} isolated_file:0\n unevictable:{} dirty:{} writeback:{}\n slab_reclaimable:{} slab_unreclaimable:{}\n mapped:{} shmem:{} pagetables:{}\n free:{} free_pcp:0 free_cma:0",
        x.active_anon,
        x.inactive_anon,
        x.active_file,
        x.inactive_file,
        x.unevictable,
        x.dirty,
        x.writeback,
        x.slab_reclaimable,
        x.slab_unreclaimable,
        x.mapped,
        x.shmem,
        x.page_tables,
        free
    );
    let (swap_total, swap_free) = super::swapfile::si_swapinfo();
    log::warn!("{} pages in swap cache", super::swap_state::nr_pages());
    log::warn!("Free swap  = {}kB", swap_free * PAGE_KB);
    log::warn!("Total swap = {}kB", swap_total * PAGE_KB);
    log::warn!("{} pages RAM", total - swap_total);
    log::warn!("Tasks state (memory values in pages):");
    log::warn!(
        "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name"
    );
    crate::proc::sched::for_each(|t| {
        if let Some(b) = badness(t, total) {
            log::warn!(
                "[{:>7}] {:>5} {:>5} {:>8} {:>8} {:>14} {:>8} {:>13} {}",
                t.pid,
                0,
                t.pid,
                b.total_vm,
                b.rss,
                b.pgtables * PAGE_BYTES,
                b.swapents,
                b.adj,
                comm_of(t)
            );
        }
    });
}

/// Choose and kill a victim for a fault of `faulter` that found no memory. Returns the
/// victim. Must be called with no mm lock held.
pub fn out_of_memory(faulter: &'static Task) -> &'static Task {
    // A victim that has not died yet, perhaps still tearing its address space down (which
    // reschedules between pieces): wait for it rather than kill another
    // (`oom_evaluate_task` aborts on `tsk_is_oom_victim`).
    let mut dying: Option<&'static Task> = None;
    crate::proc::sched::for_each(|t| {
        let alive = t.state.load(Ordering::Acquire) != state::ZOMBIE;
        // Exiting: the address space is out of the task but not yet freed.
        let exiting = alive
            && t.mm().try_lock().is_some_and(|g| g.is_none())
            && !t.kthread.load(Ordering::Relaxed);
        if dying.is_none() && ((alive && signal::kill_pending(t)) || exiting) {
            dying = Some(t);
        }
    });
    if let Some(t) = dying {
        return t;
    }
    let total = totalpages();
    dump_header(faulter, total);
    let (victim, b) = select_victim(faulter, total, |_| true);
    let name = comm_of(victim);
    log::warn!(
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task={},pid={},uid=0",
        name,
        victim.pid
    );
    kill_victim(victim, &b, "Out of memory");
    victim
}

/// The memory cgroup OOM killer (`mem_cgroup_out_of_memory`): `memcg` (or a group below
/// it) cannot get under its memory.max by reclaim; the task of that subtree whose death
/// frees the most dies. Other groups are never touched. Counts `oom` and `oom_kill` in the
/// group's memory.events. Returns the victim (`faulter` itself if it is the only choice).
pub fn mem_cgroup_out_of_memory(faulter: &'static Task, memcg: u16) -> &'static Task {
    use super::memcontrol as mc;
    mc::count_event(memcg, mc::MemcgEvent::Oom);
    // A victim of the group still dying: wait for it.
    let mut dying: Option<&'static Task> = None;
    let mut groups = [0u16; mc::MEMCG_MAX_GROUPS];
    let mut n = 0;
    for g in mc::online_groups() {
        if mc::is_descendant(g, memcg) && n < groups.len() {
            groups[n] = g;
            n += 1;
        }
    }
    let in_group =
        |t: &Task| groups[..n].contains(&mc::task_memcg(t)) || mc::task_memcg(t) == memcg;
    crate::proc::sched::for_each(|t| {
        if in_group(t)
            && t.state.load(Ordering::Acquire) != state::ZOMBIE
            && signal::kill_pending(t)
            && dying.is_none()
        {
            dying = Some(t);
        }
    });
    if let Some(t) = dying {
        return t;
    }
    let total = mc::max(memcg).min(totalpages()).max(1);
    log::warn!(
        "{} invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj={}",
        comm_of(faulter),
        faulter.oom_score_adj.load(Ordering::Relaxed)
    );
    let path = alloc::string::String::from_utf8_lossy(&mc::path(memcg)).into_owned();
    log::warn!(
        "memory: usage {}kB, limit {}kB, failcnt 0",
        mc::usage(memcg) * PAGE_KB,
        mc::max(memcg).saturating_mul(PAGE_KB)
    );
    log::warn!(
        "swap: usage {}kB, limit {}kB, failcnt 0",
        mc::swap_usage(memcg) * PAGE_KB,
        mc::swap_max(memcg).saturating_mul(PAGE_KB)
    );
    let (victim, b) = select_victim(faulter, total, in_group);
    log::warn!(
        "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg={},task_memcg={},task={},pid={},uid=0",
        path,
        alloc::string::String::from_utf8_lossy(&mc::path(mc::task_memcg(victim))),
        comm_of(victim),
        victim.pid
    );
    mc::count_event(memcg, mc::MemcgEvent::OomKill);
    kill_victim(victim, &b, "Memory cgroup out of memory");
    victim
}

/// The task among those `eligible` whose death frees the most (`select_bad_process`):
/// never init or a kernel thread; `faulter` itself when none is left.
fn select_victim(
    faulter: &'static Task,
    total: u64,
    eligible: impl Fn(&Task) -> bool,
) -> (&'static Task, Badness) {
    let mut best: Option<(&'static Task, Badness, i64)> = None;
    crate::proc::sched::for_each(|t| {
        if !eligible(t) || t.pid == INIT_PID || t.kthread.load(Ordering::Relaxed) {
            return;
        }
        if let Some(b) = badness(t, total) {
            if let Some(p) = b.points {
                if best.as_ref().is_none_or(|(_, _, cur)| p > *cur) {
                    best = Some((t, b, p));
                }
            }
        }
    });
    match best {
        Some((t, b, _)) => (t, b),
        None => (faulter, badness(faulter, total).unwrap_or_default()),
    }
}

/// Report and kill the victim (`oom_kill_process`): the "Killed process" line at error
/// level after `what`, the counter and trace event, SIGKILL, and the OOM reaper unless the
/// victim is the running task.
fn kill_victim(victim: &'static Task, b: &Badness, what: &str) {
    log::error!(
        "{what}: Killed process {} ({}) total-vm:{}kB, anon-rss:{}kB, file-rss:{}kB, shmem-rss:{}kB, UID:0 pgtables:{}kB oom_score_adj:{}",
        victim.pid,
        comm_of(victim),
        b.total_vm * PAGE_KB,
        b.anon * PAGE_KB,
        b.file * PAGE_KB,
        b.shmem * PAGE_KB,
        b.pgtables * PAGE_KB,
        b.adj
    );
    OOM_KILLS.fetch_add(1, Ordering::Relaxed);
    crate::trace::oom_kill(victim.pid);
    signal::send_process(
        victim,
        SIGKILL,
        SigInfo {
            signo: SIGKILL,
            code: SI_KERNEL,
            addr: 0,
            pid: 0,
            status: 0,
        },
    );
    if !crate::proc::current().is_some_and(|c| core::ptr::eq(c, victim)) {
        oom_reap(victim);
    }
}

/// The OOM reaper (`oom_reap_task_mm`): free the victim's private anonymous memory now,
/// without waiting for it to run and exit. Skipped if its address space is busy.
fn oom_reap(victim: &'static Task) {
    let Some(mut g) = victim.mm().try_lock() else {
        return;
    };
    let Some(mm) = g.as_mut() else { return };
    let ranges: alloc::vec::Vec<(u64, u64)> = mm
        .vmas
        .iter()
        .filter(|v| matches!(v.backing, Backing::Anon) && !v.flags.contains(VM_SHARED))
        .map(|v| (v.start.as_u64(), v.end.as_u64()))
        .collect();
    for (s, e) in ranges {
        mm.zap_range(s, e);
    }
    log::info!(
        "oom_reaper: reaped process {} ({}), now anon-rss:{}kB, file-rss:{}kB, shmem-rss:{}kB",
        victim.pid,
        comm_of(victim),
        mm.rss_stat.anon * PAGE_KB,
        mm.rss_stat.file * PAGE_KB,
        mm.rss_stat.shmem * PAGE_KB
    );
}
