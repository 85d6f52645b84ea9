//! The OOM killer (`mm/oom_kill.c`), the part a page fault needs when it can get neither a
//! page nor a page table (`VM_FAULT_OOM` → `pagefault_out_of_memory` → `out_of_memory`):
//! choose the task whose death frees the most (`oom_badness`: resident pages + swap
//! entries + page-table pages; there is no swap yet), log it in Linux's words, and kill it
//! with SIGKILL. There is no reclaim to try first ([09] adds it).
//!
//! Linux never picks init (pid 1) and panics when nothing else is killable; here init is
//! chosen as a last resort instead, so a lone program that exhausts memory dies with
//! status 137 rather than taking the machine down.

use core::sync::atomic::Ordering;

use crate::proc::signal::{self, SigInfo, SIGKILL, SI_KERNEL};
use crate::proc::{state, Task};

/// The pid of init, which Linux's `oom_unkillable_task` exempts.
const INIT_PID: u32 = 1;
/// KiB per page.
const PAGE_KB: u64 = 4;

/// What the report prints about a victim.
struct Badness {
    points: u64,
    total_vm: u64,
    anon: u64,
    file: u64,
    shmem: u64,
    pgtables: u64,
}

/// `oom_badness` of `t`, or `None` if it has no address space or is exiting.
fn badness(t: &Task) -> Option<Badness> {
    if t.state.load(Ordering::Acquire) == state::ZOMBIE {
        return None;
    }
    let g = t.mm.lock();
    let mm = g.as_ref()?;
    // +1 for the PML4, as Linux's mm_pgtables_bytes counts every level.
    let pgtables = mm.pgtables + 1;
    Some(Badness {
        points: mm.rss + pgtables,
        total_vm: mm.vmas.stat().total_vm,
        anon: mm.rss_stat.anon,
        file: mm.rss_stat.file,
        shmem: mm.rss_stat.shmem,
        pgtables,
    })
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
        let exiting = alive && t.mm.lock().is_none();
        if dying.is_none() && ((alive && signal::kill_pending(t)) || exiting) {
            dying = Some(t);
        }
    });
    if let Some(t) = dying {
        return t;
    }
    let mut best: Option<(&'static Task, Badness)> = None;
    crate::proc::sched::for_each(|t| {
        if t.pid == INIT_PID {
            return;
        }
        if let Some(b) = badness(t) {
            if best.as_ref().is_none_or(|(_, cur)| b.points > cur.points) {
                best = Some((t, b));
            }
        }
    });
    let (victim, b) = match best {
        Some(v) => v,
        None => {
            let b = badness(faulter).unwrap_or(Badness {
                points: 0,
                total_vm: 0,
                anon: 0,
                file: 0,
                shmem: 0,
                pgtables: 0,
            });
            (faulter, b)
        }
    };
    let comm = *victim.comm.lock();
    let n = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
    let name = core::str::from_utf8(&comm[..n]).unwrap_or("?");
    log::error!(
        "Out of memory: Killed process {} ({}) total-vm:{}kB, anon-rss:{}kB, file-rss:{}kB, shmem-rss:{}kB, UID:0 pgtables:{}kB oom_score_adj:0",
        victim.pid,
        name,
        b.total_vm * PAGE_KB,
        b.anon * PAGE_KB,
        b.file * PAGE_KB,
        b.shmem * PAGE_KB,
        b.pgtables * PAGE_KB
    );
    crate::trace::oom_kill(victim.pid);
    signal::send(
        victim,
        SIGKILL,
        SigInfo {
            signo: SIGKILL,
            code: SI_KERNEL,
            addr: 0,
            pid: 0,
        },
    );
    victim
}
