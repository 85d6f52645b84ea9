//! Pressure stall information for memory (`kernel/sched/psi.c`): /proc/pressure/memory,
//! in virtual time. A task is stalled on memory while it reclaims directly (globally or
//! in its memory cgroup) and while it waits for a page it faulted to be read back from
//! swap (thrashing); [`mm_core::psi::PsiGroup`] turns the stalls into totals and the
//! 10 s / 60 s / 300 s averages.
//!
//! What is not modelled yet: the scheduler does not report runnable tasks, so a stalled
//! task is counted as the only one running and `full` equals `some`; with several
//! runnable tasks Linux's `full` would be lower.

use core::sync::atomic::Ordering;

use mm_core::psi::{PsiGroup, TSK_MEMSTALL, TSK_MEMSTALL_RUNNING, TSK_RUNNING};

use crate::proc::timer;
use crate::sync::IrqLock;

static PSI: IrqLock<Option<PsiGroup>> = IrqLock::new("psi", None);

/// The bits a stalled task holds.
const STALLED: u32 = TSK_MEMSTALL | TSK_MEMSTALL_RUNNING | TSK_RUNNING;

fn with<R>(f: impl FnOnce(&mut PsiGroup, u64) -> R) -> R {
    let now = timer::now_ns();
    let mut g = PSI.lock();
    f(g.get_or_insert_with(|| PsiGroup::new(now)), now)
}

/// The current task starts a memory stall (`psi_memstall_enter`); returns whether it
/// was already in one (nested stalls count once), for [`memstall_leave`].
pub fn memstall_enter() -> bool {
    let Some(t) = crate::proc::current() else {
        return true;
    };
    if t.memstall.swap(true, Ordering::AcqRel) {
        return true;
    }
    with(|g, now| g.change(now, 0, STALLED));
    false
}

/// The stall [`memstall_enter`] started ends (`psi_memstall_leave`); `nested` is what it
/// returned.
pub fn memstall_leave(nested: bool) {
    if nested {
        return;
    }
    if let Some(t) = crate::proc::current() {
        if t.memstall.swap(false, Ordering::AcqRel) {
            with(|g, now| g.change(now, STALLED, 0));
        }
    }
}

/// `/proc/pressure/memory`.
pub fn proc_pressure_memory() -> alloc::string::String {
    with(|g, now| g.show_memory(now))
}
