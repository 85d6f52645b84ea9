//! The memory controller (`mm/memcontrol.c`): memory cgroups (v2) as a tree of groups, each
//! with `memory` and `swap` page counters (`mm_core::page_counter`), the memory.events
//! counters and the memory.stat statistics; which group a task belongs to
//! ([`task_memcg`]) and which group a page is charged to (`struct page`'s `memcg_data`,
//! [`page_memcg`]).
//!
//! Ids are Linux's `mem_cgroup_id`: the root group is [`ROOT_MEM_CGROUP`] = 1 and 0 means
//! "no group" (an uncharged page's `memcg_data`). The root group is unlimited; every other
//! group is made by mkdir in the cgroup filesystem (`fs/cgroup.rs`), at most
//! [`MEMCG_MAX_DEPTH`] levels below the root and [`MEMCG_MAX_GROUPS`] groups in all.
//!
//! Charging is hierarchical: a page charged to a group is counted in every ancestor, and a
//! charge fails when it would take the group or any ancestor over memory.max
//! ([`ChargeError::OverMax`] names the one whose limit refused, the group to reclaim from
//! and, failing that, to OOM-kill in). Reclaim and the OOM kill are vmscan's and
//! oom_kill's: this module only counts, except that a write to memory.max below the usage
//! asks them through the hooks [`register_reclaim`] and [`register_oom`].
//!
//! A removed group (rmdir) goes offline at once (its name is free again) but, as Linux's
//! dying memcgs, keeps its id and counters until the last page and swap slot charged to it
//! are uncharged; its ancestors count those meanwhile.
//!
//! Locking: one lock ([`MEMCG`]) that is never held while calling out (hooks, the task
//! list, the page allocator). Do not call into this module with the zone lock held: the
//! page-struct accessors take it.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use mm_core::page::Pages;
use mm_core::page_counter::{PageCounters, PAGE_COUNTER_MAX};

use super::Pfn;
use crate::proc::Task;
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, EBUSY, EEXIST, EINVAL, ENOENT, ENOMEM, ENOSPC, ESRCH};

/// The root group's id (`root_mem_cgroup`; Linux's idr starts at 1 too).
pub const ROOT_MEM_CGROUP: u16 = 1;
/// No group: an uncharged page.
pub const NO_MEMCG: u16 = 0;
/// Levels of groups below the root (Linux's cgroup.max.depth is unlimited by default).
pub const MEMCG_MAX_DEPTH: usize = 8;
/// Groups alive or dying, the root included (Linux's limit is `MEM_CGROUP_ID_MAX`).
pub const MEMCG_MAX_GROUPS: usize = 128;
/// The longest group name (a directory name in the cgroup filesystem).
pub const MEMCG_NAME_MAX: usize = 64;
/// Reclaim attempts a memory.max write makes before the OOM kill
/// (`MAX_RECLAIM_RETRIES`).
const MAX_RECLAIM_RETRIES: usize = 16;

/// memory.events and memory.swap.events counters (`enum memcg_memory_event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum MemcgEvent {
    Low,
    High,
    Max,
    Oom,
    OomKill,
    OomGroupKill,
    SwapHigh,
    SwapMax,
    SwapFail,
}

pub const MEMCG_NR_EVENTS: usize = 9;

/// memory.events' lines, in Linux's order.
pub const MEMORY_EVENTS: [(MemcgEvent, &str); 6] = [
    (MemcgEvent::Low, "low"),
    (MemcgEvent::High, "high"),
    (MemcgEvent::Max, "max"),
    (MemcgEvent::Oom, "oom"),
    (MemcgEvent::OomKill, "oom_kill"),
    (MemcgEvent::OomGroupKill, "oom_group_kill"),
];

/// memory.swap.events' lines.
pub const SWAP_EVENTS: [(MemcgEvent, &str); 3] = [
    (MemcgEvent::SwapHigh, "high"),
    (MemcgEvent::SwapMax, "max"),
    (MemcgEvent::SwapFail, "fail"),
];

/// memory.stat items (`memory_stats[]`), in Linux's order. Sizes ([`MemcgStat::is_bytes`])
/// are added in pages and printed in bytes; the rest are event counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum MemcgStat {
    Anon,
    File,
    KernelStack,
    Pagetables,
    Shmem,
    FileMapped,
    FileDirty,
    FileWriteback,
    Swapcached,
    InactiveAnon,
    ActiveAnon,
    InactiveFile,
    ActiveFile,
    Unevictable,
    WorkingsetRefaultAnon,
    WorkingsetRefaultFile,
    WorkingsetActivateAnon,
    WorkingsetActivateFile,
    WorkingsetRestoreAnon,
    WorkingsetRestoreFile,
    WorkingsetNodereclaim,
    /// Pages scanned; [`MemcgStat::PgscanKswapd`] and [`MemcgStat::PgscanDirect`] count
    /// here too.
    Pgscan,
    /// Pages reclaimed; the kswapd/direct items count here too.
    Pgsteal,
    PgscanKswapd,
    PgscanDirect,
    PgstealKswapd,
    PgstealDirect,
    Pgfault,
    Pgmajfault,
    Pgrefill,
    Pgactivate,
    Pgdeactivate,
    Pglazyfree,
    Pglazyfreed,
}

pub const MEMCG_NR_STAT: usize = 34;

/// Every item with its memory.stat name, in print order.
pub const MEMORY_STAT: [(MemcgStat, &str); MEMCG_NR_STAT] = [
    (MemcgStat::Anon, "anon"),
    (MemcgStat::File, "file"),
    (MemcgStat::KernelStack, "kernel_stack"),
    (MemcgStat::Pagetables, "pagetables"),
    (MemcgStat::Shmem, "shmem"),
    (MemcgStat::FileMapped, "file_mapped"),
    (MemcgStat::FileDirty, "file_dirty"),
    (MemcgStat::FileWriteback, "file_writeback"),
    (MemcgStat::Swapcached, "swapcached"),
    (MemcgStat::InactiveAnon, "inactive_anon"),
    (MemcgStat::ActiveAnon, "active_anon"),
    (MemcgStat::InactiveFile, "inactive_file"),
    (MemcgStat::ActiveFile, "active_file"),
    (MemcgStat::Unevictable, "unevictable"),
    (MemcgStat::WorkingsetRefaultAnon, "workingset_refault_anon"),
    (MemcgStat::WorkingsetRefaultFile, "workingset_refault_file"),
    (
        MemcgStat::WorkingsetActivateAnon,
        "workingset_activate_anon",
    ),
    (
        MemcgStat::WorkingsetActivateFile,
        "workingset_activate_file",
    ),
    (MemcgStat::WorkingsetRestoreAnon, "workingset_restore_anon"),
    (MemcgStat::WorkingsetRestoreFile, "workingset_restore_file"),
    (MemcgStat::WorkingsetNodereclaim, "workingset_nodereclaim"),
    (MemcgStat::Pgscan, "pgscan"),
    (MemcgStat::Pgsteal, "pgsteal"),
    (MemcgStat::PgscanKswapd, "pgscan_kswapd"),
    (MemcgStat::PgscanDirect, "pgscan_direct"),
    (MemcgStat::PgstealKswapd, "pgsteal_kswapd"),
    (MemcgStat::PgstealDirect, "pgsteal_direct"),
    (MemcgStat::Pgfault, "pgfault"),
    (MemcgStat::Pgmajfault, "pgmajfault"),
    (MemcgStat::Pgrefill, "pgrefill"),
    (MemcgStat::Pgactivate, "pgactivate"),
    (MemcgStat::Pgdeactivate, "pgdeactivate"),
    (MemcgStat::Pglazyfree, "pglazyfree"),
    (MemcgStat::Pglazyfreed, "pglazyfreed"),
];

impl MemcgStat {
    /// Whether the item is a size (pages, printed in bytes) rather than an event count.
    pub fn is_bytes(self) -> bool {
        (self as usize) <= MemcgStat::Unevictable as usize
    }
}

/// Why a charge failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChargeError {
    /// The charge would take this group (the charged one or an ancestor) over its
    /// memory.max (or memory.swap.max for [`charge_swap`]): reclaim in it and retry, then
    /// OOM-kill in it.
    OverMax(u16),
}

/// Which counter of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Res {
    Memory = 0,
    Swap = 1,
}

/// A memory cgroup (`struct mem_cgroup`).
pub struct MemCgroup {
    pub id: u16,
    /// Unique over the boot (`cgroup->serial_nr`): tells a group from a later one that
    /// reuses its id (open files of a removed group).
    pub serial: u64,
    /// None for the root.
    pub parent: Option<u16>,
    /// The directory name (empty for the root).
    name: Vec<u8>,
    /// Levels below the root (the root is 0).
    pub level: u8,
    /// The counters' indexes in [`Memcgs::counters`] (memory, swap).
    counter: [usize; 2],
    /// A limit set below the usage (memory.max written while over it): in force for new
    /// charges at once, handed to the counter once usage drops below it.
    pending_max: [Option<u64>; 2],
    /// memory.swap.high (no counter field for it in the swap counter's use).
    swap_high: u64,
    /// Online: visible in the filesystem. An offline group is dying: it lives on until
    /// its charges are gone.
    online: bool,
    /// Online children.
    nr_children: u16,
    /// Hierarchical events (memory.events) and this group's own (memory.events.local).
    events: [u64; MEMCG_NR_EVENTS],
    events_local: [u64; MEMCG_NR_EVENTS],
    /// Statistics of this group and its descendants (memory.stat).
    stat: [i64; MEMCG_NR_STAT],
    /// memory.oom.group.
    pub oom_group: bool,
    /// "memory" in cgroup.subtree_control.
    pub subtree_memory: bool,
}

/// Every group, by id.
pub struct Memcgs {
    groups: Vec<Option<MemCgroup>>,
    next_serial: u64,
    counters: [PageCounters; 2],
}

static MEMCG: IrqLock<Memcgs> = IrqLock::new(
    "memcg",
    Memcgs {
        groups: Vec::new(),
        next_serial: 2,
        counters: [PageCounters::new(), PageCounters::new()],
    },
);

/// vmscan's per-group reclaim (`try_to_free_mem_cgroup_pages`): reclaim up to `nr` pages
/// charged to the group or its descendants; returns the pages reclaimed.
pub type ReclaimFn = fn(memcg: u16, nr_pages: u64) -> u64;
/// The group OOM kill (`mem_cgroup_out_of_memory`): true if a task was killed (or one is
/// already dying), so waiting makes progress.
pub type OomFn = fn(memcg: u16) -> bool;

pub static MEMCG_RECLAIM: IrqLock<Option<ReclaimFn>> = IrqLock::new("memcg_reclaim", None);
pub static MEMCG_OOM: IrqLock<Option<OomFn>> = IrqLock::new("memcg_oom", None);

/// vmscan registers its per-group reclaim here.
pub fn register_reclaim(f: ReclaimFn) {
    *MEMCG_RECLAIM.lock() = Some(f);
}

/// oom_kill registers the group OOM kill here.
pub fn register_oom(f: OomFn) {
    *MEMCG_OOM.lock() = Some(f);
}

/// Reclaim `nr_pages` in `memcg` through the registered hook (0 without one).
pub fn reclaim(memcg: u16, nr_pages: u64) -> u64 {
    let f = *MEMCG_RECLAIM.lock();
    f.map_or(0, |f| f(memcg, nr_pages))
}

fn oom(memcg: u16) -> bool {
    let f = *MEMCG_OOM.lock();
    f.is_some_and(|f| f(memcg))
}

impl Memcgs {
    /// Make the root group on first use.
    fn init(&mut self) -> Result<(), Errno> {
        if !self.groups.is_empty() {
            return Ok(());
        }
        self.groups
            .try_reserve(MEMCG_MAX_GROUPS)
            .map_err(|_| ENOMEM)?;
        let m = self.counters[0].try_new_counter(None).map_err(|_| ENOMEM)?;
        let s = self.counters[1].try_new_counter(None).map_err(|_| ENOMEM)?;
        self.groups.push(None); // id 0: no group
        self.groups.push(Some(MemCgroup {
            id: ROOT_MEM_CGROUP,
            serial: 1,
            parent: None,
            name: Vec::new(),
            level: 0,
            counter: [m, s],
            pending_max: [None, None],
            swap_high: PAGE_COUNTER_MAX,
            online: true,
            nr_children: 0,
            events: [0; MEMCG_NR_EVENTS],
            events_local: [0; MEMCG_NR_EVENTS],
            stat: [0; MEMCG_NR_STAT],
            oom_group: false,
            // As systemd leaves it on every distribution: the memory controller is on
            // for the root's children.
            subtree_memory: true,
        }));
        Ok(())
    }

    fn get(&self, id: u16) -> Option<&MemCgroup> {
        self.groups.get(id as usize)?.as_ref()
    }

    fn get_mut(&mut self, id: u16) -> Option<&mut MemCgroup> {
        self.groups.get_mut(id as usize)?.as_mut()
    }

    /// `id` if it is an online group, else its nearest online ancestor, else the root.
    fn online_or_ancestor(&self, id: u16) -> u16 {
        let mut c = Some(id);
        while let Some(i) = c {
            match self.get(i) {
                Some(g) if g.online => return i,
                Some(g) => c = g.parent,
                None => break,
            }
        }
        ROOT_MEM_CGROUP
    }

    /// The group and its ancestors, bottom up (ids of existing groups only).
    fn chain(&self, id: u16) -> impl Iterator<Item = u16> + '_ {
        core::iter::successors(self.get(id).map(|_| id), move |&c| {
            self.get(c).and_then(|g| g.parent)
        })
    }

    fn counter(&self, id: u16, r: Res) -> Option<usize> {
        self.get(id).map(|g| g.counter[r as usize])
    }

    /// Charge `nr` pages of `r` to `id` and its ancestors, honouring pending limits.
    fn try_charge(&mut self, id: u16, r: Res, nr: u64) -> Result<(), u16> {
        // A limit written below the usage is in force already.
        for c in self.chain(id) {
            let g = self.get(c).expect("chain");
            if let Some(p) = g.pending_max[r as usize] {
                let usage = self.counters[r as usize].usage(g.counter[r as usize]);
                if usage + nr > p {
                    return Err(c);
                }
            }
        }
        let idx = self.counter(id, r).ok_or(ROOT_MEM_CGROUP)?;
        self.counters[r as usize].try_charge(idx, nr).map_err(|i| {
            self.chain(id)
                .find(|&c| self.get(c).is_some_and(|g| g.counter[r as usize] == i))
                .unwrap_or(id)
        })
    }

    /// Uncharge, apply pending limits the usage now allows, and free dying groups whose
    /// last charge went.
    fn uncharge(&mut self, id: u16, r: Res, nr: u64) {
        let Some(idx) = self.counter(id, r) else {
            return;
        };
        self.counters[r as usize].uncharge(idx, nr);
        let mut c = Some(id);
        while let Some(i) = c {
            let Some(g) = self.get(i) else { break };
            let parent = g.parent;
            if let Some(p) = g.pending_max[r as usize] {
                let ci = g.counter[r as usize];
                if self.counters[r as usize].set_max(ci, p).is_ok() {
                    self.get_mut(i).expect("group").pending_max[r as usize] = None;
                }
            }
            self.maybe_free(i);
            c = parent;
        }
    }

    /// Free a dying group with nothing charged and no dying children left.
    fn maybe_free(&mut self, id: u16) {
        let Some(g) = self.get(id) else { return };
        if g.online || g.id == ROOT_MEM_CGROUP {
            return;
        }
        let [m, s] = g.counter;
        if self.counters[0].usage(m) != 0 || self.counters[1].usage(s) != 0 {
            return;
        }
        if self.groups.iter().flatten().any(|c| c.parent == Some(id)) {
            return;
        }
        self.counters[0].remove_counter(m);
        self.counters[1].remove_counter(s);
        self.groups[id as usize] = None;
    }

    fn limit(&self, id: u16, r: Res) -> u64 {
        let Some(g) = self.get(id) else {
            return PAGE_COUNTER_MAX;
        };
        g.pending_max[r as usize]
            .unwrap_or_else(|| self.counters[r as usize].max(g.counter[r as usize]))
    }
}

/// Run `f` on the groups, set up on first use.
fn with<R>(f: impl FnOnce(&mut Memcgs) -> R) -> R {
    let mut g = MEMCG.lock();
    if g.init().is_err() {
        panic!("memcg: no memory for the root group");
    }
    f(&mut g)
}

/// Set up the root group (at boot, before the cgroup filesystem is mounted).
pub fn init() -> Result<(), Errno> {
    MEMCG.lock().init()
}

// ---- tasks ----

/// The group `t` belongs to (`mem_cgroup_from_task`); kernel threads are in the root.
pub fn task_memcg(t: &Task) -> u16 {
    match t.memcg.load(Ordering::Relaxed) {
        NO_MEMCG => ROOT_MEM_CGROUP,
        id => id,
    }
}

/// The group the current task belongs to (the root if none runs yet).
pub fn current_memcg() -> u16 {
    crate::proc::current().map_or(ROOT_MEM_CGROUP, task_memcg)
}

/// Pids of the live (not zombie) processes in `memcg` itself, ascending (cgroup.procs).
pub fn tasks_of(memcg: u16) -> Vec<u32> {
    let mut n = 0;
    for_each_task_of(memcg, |_| n += 1);
    let mut v = Vec::new();
    if v.try_reserve_exact(n).is_err() {
        return v;
    }
    for_each_task_of(memcg, |t| {
        if v.len() < n {
            v.push(t.pid)
        }
    });
    v.sort_unstable();
    v
}

/// Call `f` on every live task of `memcg` itself without allocating (the group OOM
/// killer), under the task-list lock: `f` must not take it.
pub fn for_each_task_of(memcg: u16, mut f: impl FnMut(&'static Task)) {
    crate::proc::sched::for_each(|t| {
        if task_memcg(t) == memcg
            && t.state.load(Ordering::Relaxed) != crate::proc::state::ZOMBIE
            && !t.is_kthread()
        {
            f(t)
        }
    });
}

/// Whether `memcg` or a descendant has a live task (cgroup.events' `populated`).
pub fn populated(memcg: u16) -> bool {
    let mut ids: [u16; MEMCG_MAX_GROUPS] = [0; MEMCG_MAX_GROUPS];
    let mut n = 0;
    with(|m| {
        for g in m.groups.iter().flatten() {
            if m.chain(g.id).any(|c| c == memcg) && n < ids.len() {
                ids[n] = g.id;
                n += 1;
            }
        }
    });
    let ids = &ids[..n];
    let mut found = false;
    crate::proc::sched::for_each(|t| {
        if !found
            && t.state.load(Ordering::Relaxed) != crate::proc::state::ZOMBIE
            && !t.is_kthread()
            && ids.contains(&task_memcg(t))
        {
            found = true;
        }
    });
    found
}

/// Move process `pid` into `memcg` (a cgroup.procs write; `pid` 0 is the writer). Charges
/// stay where they are, as cgroup v2's. Kernel threads cannot move (EINVAL); a group
/// that has the memory controller on for its children takes no processes (EBUSY, "no
/// internal processes"), the root excepted.
pub fn attach(pid: u32, memcg: u16) -> Result<(), Errno> {
    let t = if pid == 0 {
        crate::proc::current().ok_or(ESRCH)?
    } else {
        crate::proc::sched::find(pid).ok_or(ESRCH)?
    };
    if t.state.load(Ordering::Relaxed) == crate::proc::state::ZOMBIE {
        return Err(ESRCH);
    }
    if t.is_kthread() {
        return Err(EINVAL);
    }
    with(|m| {
        let g = m.get(memcg).filter(|g| g.online).ok_or(ENOENT)?;
        if memcg != ROOT_MEM_CGROUP && g.subtree_memory {
            return Err(EBUSY);
        }
        t.memcg.store(memcg, Ordering::Relaxed);
        Ok(())
    })
}

// ---- pages ----

/// The group a page is charged to (`page_memcg`), [`NO_MEMCG`] (0) if none.
pub fn page_memcg(pfn: Pfn) -> u16 {
    super::page_alloc::with(|a| a.page(pfn).memcg_data) as u16
}

/// `mem_cgroup_charge`: charge one page to `memcg` (an offline group's nearest online
/// ancestor; 0 means the root) and every ancestor, unless that would take one of them
/// over memory.max; then nothing is charged, the refusing group's memory.events `max`
/// counts, and `OverMax(it)` tells the caller where to reclaim (and OOM-kill) before
/// retrying. A page already charged is left as it is (Ok).
pub fn charge(pfn: Pfn, memcg: u16) -> Result<(), ChargeError> {
    if page_memcg(pfn) != NO_MEMCG {
        return Ok(());
    }
    let id = with(|m| {
        let id = m.online_or_ancestor(if memcg == NO_MEMCG {
            ROOT_MEM_CGROUP
        } else {
            memcg
        });
        match m.try_charge(id, Res::Memory, 1) {
            Ok(()) => Ok(id),
            Err(over) => {
                event(m, over, MemcgEvent::Max);
                Err(ChargeError::OverMax(over))
            }
        }
    })?;
    super::page_alloc::with(|a| a.page_mut(pfn).memcg_data = id as u64);
    Ok(())
}

/// `mem_cgroup_uncharge`: the page is freed or no longer charged; idempotent (a page
/// not charged is left alone).
pub fn uncharge(pfn: Pfn) {
    let id = super::page_alloc::with(|a| {
        let p = a.page_mut(pfn);
        let id = p.memcg_data as u16;
        p.memcg_data = 0;
        id
    });
    if id != NO_MEMCG {
        with(|m| m.uncharge(id, Res::Memory, 1));
    }
}

/// Move a page's charge to another group's page (`mem_cgroup_migrate`: the old page's
/// charge passes to the new one, which must be uncharged).
pub fn migrate(old: Pfn, new: Pfn) {
    super::page_alloc::with(|a| {
        let id = a.page(old).memcg_data;
        a.page_mut(old).memcg_data = 0;
        a.page_mut(new).memcg_data = id;
    });
}

/// Charge `nr` swap slots to `memcg` (`__mem_cgroup_try_charge_swap`) against
/// memory.swap.max up the hierarchy; on failure memory.swap.events counts `max` at the
/// refusing group and `fail` at `memcg`. The caller records the slots' owner and passes
/// that same id to [`uncharge_swap`]. A dying group is charged as it is (its id lives
/// while it has swap charged); Linux charges the nearest online ancestor instead
/// (`mem_cgroup_id_get_online`): pass [`online_or_ancestor`]'s answer for that. An
/// unknown id (or 0) charges the root.
pub fn charge_swap(memcg: u16, nr: u64) -> Result<(), ChargeError> {
    with(|m| {
        let id = if m.get(memcg).is_some() {
            memcg
        } else {
            ROOT_MEM_CGROUP
        };
        match m.try_charge(id, Res::Swap, nr) {
            Ok(()) => Ok(()),
            Err(over) => {
                event(m, over, MemcgEvent::SwapMax);
                event(m, id, MemcgEvent::SwapFail);
                Err(ChargeError::OverMax(over))
            }
        }
    })
}

/// Return `nr` swap slots charged to `memcg` (the id [`charge_swap`] was given).
pub fn uncharge_swap(memcg: u16, nr: u64) {
    with(|m| {
        let id = if m.get(memcg).is_some() {
            memcg
        } else {
            ROOT_MEM_CGROUP
        };
        m.uncharge(id, Res::Swap, nr)
    })
}

/// `memcg` if it is an online group, else its nearest online ancestor (the root for an
/// unknown id).
pub fn online_or_ancestor(memcg: u16) -> u16 {
    with(|m| m.online_or_ancestor(memcg))
}

// ---- events and statistics ----

fn event(m: &mut Memcgs, id: u16, ev: MemcgEvent) {
    let Some(g) = m.get_mut(id) else { return };
    g.events_local[ev as usize] += 1;
    // `memcg_memory_event`: up to, not including, the root (which has no memory.events).
    let mut c = Some(id);
    while let Some(i) = c {
        if i == ROOT_MEM_CGROUP {
            break;
        }
        let Some(g) = m.get_mut(i) else { break };
        g.events[ev as usize] += 1;
        c = g.parent;
    }
}

/// Count a memory.events event (`memcg_memory_event`): in the group's own
/// memory.events.local and in memory.events of it and its ancestors below the root.
/// `Max` and the swap `max`/`fail` are counted by [`charge`] and [`charge_swap`]; `High`
/// is the reclaimer's (per group over memory.high, as `reclaim_high`), `Oom` and
/// `OomKill` the OOM killer's.
pub fn count_event(memcg: u16, ev: MemcgEvent) {
    with(|m| event(m, memcg, ev))
}

/// Add `delta` to a memory.stat item of `memcg` and its ancestors (sizes in pages).
/// `PgscanKswapd`/`PgscanDirect` also count in `Pgscan`, the `Pgsteal` ones in `Pgsteal`.
pub fn stat_add(memcg: u16, item: MemcgStat, delta: i64) {
    let also = match item {
        MemcgStat::PgscanKswapd | MemcgStat::PgscanDirect => Some(MemcgStat::Pgscan),
        MemcgStat::PgstealKswapd | MemcgStat::PgstealDirect => Some(MemcgStat::Pgsteal),
        _ => None,
    };
    with(|m| {
        let mut c = Some(if memcg == NO_MEMCG {
            ROOT_MEM_CGROUP
        } else {
            memcg
        });
        while let Some(i) = c {
            let Some(g) = m.get_mut(i) else { break };
            g.stat[item as usize] += delta;
            if let Some(a) = also {
                g.stat[a as usize] += delta;
            }
            c = g.parent;
        }
    })
}

/// A memory.stat item of `memcg` (its subtree's total; sizes in pages).
pub fn stat(memcg: u16, item: MemcgStat) -> i64 {
    with(|m| m.get(memcg).map_or(0, |g| g.stat[item as usize]))
}

/// memory.events (`local`: memory.events.local) counters of `memcg`.
pub fn events(memcg: u16, local: bool) -> [u64; MEMCG_NR_EVENTS] {
    with(|m| {
        m.get(memcg).map_or([0; MEMCG_NR_EVENTS], |g| {
            if local {
                g.events_local
            } else {
                g.events
            }
        })
    })
}

// ---- counters and limits ----

/// Pages charged to `memcg` and its descendants (memory.current, in pages).
pub fn usage(memcg: u16) -> u64 {
    with(|m| {
        m.counter(memcg, Res::Memory)
            .map_or(0, |i| m.counters[0].usage(i))
    })
}

/// Swap slots charged (memory.swap.current, in pages).
pub fn swap_usage(memcg: u16) -> u64 {
    with(|m| {
        m.counter(memcg, Res::Swap)
            .map_or(0, |i| m.counters[1].usage(i))
    })
}

/// Peak usage (memory.peak, memory.swap.peak; in pages).
pub fn peak(memcg: u16, swap: bool) -> u64 {
    let r = if swap { Res::Swap } else { Res::Memory };
    with(|m| {
        m.counter(memcg, r)
            .map_or(0, |i| m.counters[r as usize].watermark(i))
    })
}

/// memory.max in pages ([`PAGE_COUNTER_MAX`]: "max").
pub fn max(memcg: u16) -> u64 {
    with(|m| m.limit(memcg, Res::Memory))
}

/// memory.high in pages.
pub fn high(memcg: u16) -> u64 {
    with(|m| {
        m.counter(memcg, Res::Memory)
            .map_or(PAGE_COUNTER_MAX, |i| m.counters[0].high(i))
    })
}

/// memory.low / memory.min in pages.
pub fn low(memcg: u16) -> u64 {
    with(|m| {
        m.counter(memcg, Res::Memory)
            .map_or(0, |i| m.counters[0].low(i))
    })
}

pub fn min(memcg: u16) -> u64 {
    with(|m| {
        m.counter(memcg, Res::Memory)
            .map_or(0, |i| m.counters[0].min(i))
    })
}

/// memory.swap.max in pages.
pub fn swap_max(memcg: u16) -> u64 {
    with(|m| m.limit(memcg, Res::Swap))
}

/// memory.swap.high in pages.
pub fn swap_high(memcg: u16) -> u64 {
    with(|m| m.get(memcg).map_or(PAGE_COUNTER_MAX, |g| g.swap_high))
}

/// Whether `memcg` or an ancestor is above memory.high (the charging task should reclaim
/// before returning to user space: `mem_cgroup_handle_over_high`).
pub fn over_high(memcg: u16) -> bool {
    over_high_group(memcg).is_some()
}

/// The highest-up group of `memcg`'s chain above memory.high, and by how many pages.
pub fn over_high_group(memcg: u16) -> Option<(u16, u64)> {
    with(|m| {
        let idx = m.counter(memcg, Res::Memory)?;
        let (ci, excess) = m.counters[0].over_high(idx)?;
        let g = m
            .chain(memcg)
            .find(|&c| m.counter(c, Res::Memory) == Some(ci))?;
        Some((g, excess))
    })
}

/// Pages that can still be charged to `memcg` before it or an ancestor hits memory.max
/// (`mem_cgroup_margin`).
pub fn margin(memcg: u16) -> u64 {
    with(|m| {
        let Some(idx) = m.counter(memcg, Res::Memory) else {
            return 0;
        };
        let mut margin = m.counters[0].margin(idx);
        for c in m.chain(memcg) {
            if let Some(p) = m.get(c).and_then(|g| g.pending_max[0]) {
                let u = m.counters[0].usage(m.get(c).expect("chain").counter[0]);
                margin = margin.min(p.saturating_sub(u));
            }
        }
        margin
    })
}

/// Set memory.max (`memory_max_write`): the limit is in force at once; while the usage is
/// above it the group is reclaimed (the registered hook), and when reclaim makes no more
/// progress the group's OOM killer runs, until it fits or nothing more can be done (the
/// limit stays: later charges fail until usage drops below it). Root: EINVAL.
pub fn try_set_max(memcg: u16, pages: u64) -> Result<(), Errno> {
    set_limit(memcg, Res::Memory, pages)?;
    let mut reclaims = MAX_RECLAIM_RETRIES;
    // Each pass either reclaims, kills, or stops: bounded by the retries and the tasks.
    for _ in 0..MAX_RECLAIM_RETRIES * 4 {
        let usage = usage(memcg);
        if usage <= pages {
            break;
        }
        if crate::proc::current().is_some_and(crate::proc::signal::has_pending) {
            break;
        }
        if reclaims > 0 {
            reclaims -= 1;
            reclaim(memcg, usage - pages);
            continue;
        }
        count_event(memcg, MemcgEvent::Oom);
        if !oom(memcg) {
            break;
        }
    }
    Ok(())
}

/// Set memory.swap.max (`swap_max_write`: no reclaim; charges over it fail from now).
pub fn try_set_swap_max(memcg: u16, pages: u64) -> Result<(), Errno> {
    set_limit(memcg, Res::Swap, pages)
}

fn set_limit(memcg: u16, r: Res, pages: u64) -> Result<(), Errno> {
    if memcg == ROOT_MEM_CGROUP {
        return Err(EINVAL);
    }
    with(|m| {
        let g = m.get(memcg).ok_or(ENOENT)?;
        let ci = g.counter[r as usize];
        let pending = match m.counters[r as usize].set_max(ci, pages) {
            Ok(()) => None,
            Err(_) => Some(pages),
        };
        m.get_mut(memcg).expect("group").pending_max[r as usize] = pending;
        Ok(())
    })
}

/// Set memory.high (`memory_high_write`: reclaim towards it, never fail).
pub fn set_high(memcg: u16, pages: u64) -> Result<(), Errno> {
    if memcg == ROOT_MEM_CGROUP {
        return Err(EINVAL);
    }
    with(|m| {
        let i = m.counter(memcg, Res::Memory).ok_or(ENOENT)?;
        m.counters[0].set_high(i, pages);
        Ok(())
    })?;
    // As `memory_high_write`: reclaim towards it a bounded number of times.
    for _ in 0..MAX_RECLAIM_RETRIES {
        let u = usage(memcg);
        if u <= pages
            || crate::proc::current().is_some_and(crate::proc::signal::has_pending)
            || reclaim(memcg, u - pages) == 0
        {
            break;
        }
    }
    Ok(())
}

/// Set memory.low / memory.min (stored for the reclaimer).
pub fn set_low(memcg: u16, pages: u64, min: bool) -> Result<(), Errno> {
    if memcg == ROOT_MEM_CGROUP {
        return Err(EINVAL);
    }
    with(|m| {
        let i = m.counter(memcg, Res::Memory).ok_or(ENOENT)?;
        if min {
            m.counters[0].set_min(i, pages)
        } else {
            m.counters[0].set_low(i, pages)
        }
        Ok(())
    })
}

/// Set memory.swap.high.
pub fn set_swap_high(memcg: u16, pages: u64) -> Result<(), Errno> {
    if memcg == ROOT_MEM_CGROUP {
        return Err(EINVAL);
    }
    with(|m| {
        m.get_mut(memcg).ok_or(ENOENT)?.swap_high = pages.min(PAGE_COUNTER_MAX);
        Ok(())
    })
}

// ---- the tree ----

/// The parent group (None for the root or an unknown id).
pub fn parent(memcg: u16) -> Option<u16> {
    with(|m| m.get(memcg).and_then(|g| g.parent))
}

pub fn is_root(memcg: u16) -> bool {
    memcg == ROOT_MEM_CGROUP
}

/// The serial number of online group `memcg` (None: no such online group).
pub fn serial(memcg: u16) -> Option<u64> {
    with(|m| m.get(memcg).filter(|g| g.online).map(|g| g.serial))
}

/// Whether `memcg` is an online group.
pub fn is_online(memcg: u16) -> bool {
    with(|m| m.get(memcg).is_some_and(|g| g.online))
}

/// Call `f` on `memcg` and each ancestor up to the root, bottom up (ids copied out
/// first: `f` may call into this module).
pub fn for_each_ancestor(memcg: u16, mut f: impl FnMut(u16)) {
    let mut ids = [0u16; MEMCG_MAX_DEPTH + 1];
    let n = with(|m| {
        let mut n = 0;
        for c in m.chain(memcg) {
            if n < ids.len() {
                ids[n] = c;
                n += 1;
            }
        }
        n
    });
    for &id in &ids[..n] {
        f(id)
    }
}

/// Whether `memcg` is `ancestor` or below it (`mem_cgroup_is_descendant`).
pub fn is_descendant(memcg: u16, ancestor: u16) -> bool {
    with(|m| m.chain(memcg).any(|c| c == ancestor))
}

/// Online groups, root first then by id (for iterating reclaim over a subtree).
pub fn online_groups() -> Vec<u16> {
    let mut v = Vec::new();
    if v.try_reserve(MEMCG_MAX_GROUPS).is_err() {
        return v;
    }
    with(|m| {
        for g in m.groups.iter().flatten() {
            if g.online {
                v.push(g.id)
            }
        }
    });
    v
}

/// The group's path from the cgroup root ("/" for the root, "/test/a").
pub fn path(memcg: u16) -> Vec<u8> {
    let mut chain = [0u16; MEMCG_MAX_DEPTH + 1];
    with(|m| {
        let mut n = 0;
        for c in m.chain(memcg) {
            if n < chain.len() {
                chain[n] = c;
                n += 1;
            }
        }
        let mut len = 0;
        for &c in &chain[..n] {
            len += m.get(c).map_or(0, |g| g.name.len() + 1);
        }
        let mut p = Vec::new();
        if p.try_reserve(len.max(1)).is_err() {
            return p;
        }
        for &c in chain[..n].iter().rev() {
            if let Some(g) = m.get(c) {
                if g.parent.is_some() {
                    p.push(b'/');
                    p.extend_from_slice(&g.name);
                }
            }
        }
        if p.is_empty() {
            p.push(b'/');
        }
        p
    })
}

/// Make a child group of `parent` named `name` (cgroup mkdir): EEXIST if the name is
/// taken, EAGAIN-like ENOSPC when the tree is full or too deep (Linux: EAGAIN past
/// cgroup.max.depth/descendants), ENOMEM without memory.
pub fn create(parent: u16, name: &[u8]) -> Result<u16, Errno> {
    if name.is_empty() || name.len() > MEMCG_NAME_MAX {
        return Err(EINVAL);
    }
    let mut n = Vec::new();
    n.try_reserve_exact(name.len()).map_err(|_| ENOMEM)?;
    n.extend_from_slice(name);
    with(|m| {
        let p = m.get(parent).filter(|g| g.online).ok_or(ENOENT)?;
        let level = p.level as usize + 1;
        let pc = p.counter;
        if level > MEMCG_MAX_DEPTH {
            return Err(crate::syscall::errno::EAGAIN);
        }
        if m.groups
            .iter()
            .flatten()
            .any(|g| g.online && g.parent == Some(parent) && g.name == name)
        {
            return Err(EEXIST);
        }
        let slot = match m
            .groups
            .iter()
            .position(|g| g.is_none())
            .filter(|&i| i != 0)
        {
            Some(i) => i,
            None if m.groups.len() < MEMCG_MAX_GROUPS => {
                m.groups.try_reserve(1).map_err(|_| ENOMEM)?;
                m.groups.push(None);
                m.groups.len() - 1
            }
            None => return Err(ENOSPC),
        };
        let mc = m.counters[0]
            .try_new_counter(Some(pc[0]))
            .map_err(|_| ENOMEM)?;
        let sc = match m.counters[1].try_new_counter(Some(pc[1])) {
            Ok(s) => s,
            Err(_) => {
                m.counters[0].remove_counter(mc);
                return Err(ENOMEM);
            }
        };
        let id = slot as u16;
        let serial = m.next_serial;
        m.next_serial += 1;
        m.groups[slot] = Some(MemCgroup {
            id,
            serial,
            parent: Some(parent),
            name: n,
            level: level as u8,
            counter: [mc, sc],
            pending_max: [None, None],
            swap_high: PAGE_COUNTER_MAX,
            online: true,
            nr_children: 0,
            events: [0; MEMCG_NR_EVENTS],
            events_local: [0; MEMCG_NR_EVENTS],
            stat: [0; MEMCG_NR_STAT],
            oom_group: false,
            subtree_memory: false,
        });
        m.get_mut(parent).expect("parent").nr_children += 1;
        Ok(id)
    })
}

/// Remove a group (cgroup rmdir): EBUSY while it has live tasks or online children. It
/// goes offline; its id lives on while pages or swap slots are charged to it.
pub fn remove(memcg: u16) -> Result<(), Errno> {
    if memcg == ROOT_MEM_CGROUP {
        return Err(EBUSY);
    }
    let mut busy = false;
    for_each_task_of(memcg, |_| busy = true);
    if busy {
        return Err(EBUSY);
    }
    with(|m| {
        let g = m.get(memcg).filter(|g| g.online).ok_or(ENOENT)?;
        if g.nr_children != 0 {
            return Err(EBUSY);
        }
        let parent = g.parent;
        let g = m.get_mut(memcg).expect("group");
        g.online = false;
        if let Some(p) = parent.and_then(|p| m.get_mut(p)) {
            p.nr_children -= 1;
        }
        m.maybe_free(memcg);
        Ok(())
    })
}

/// Online children and dying descendants (cgroup.stat's nr_descendants,
/// nr_dying_descendants).
pub fn descendants(memcg: u16) -> (u64, u64) {
    with(|m| {
        let mut live = 0;
        let mut dying = 0;
        for g in m.groups.iter().flatten() {
            if g.id != memcg && m.chain(g.id).any(|c| c == memcg) {
                if g.online {
                    live += 1
                } else {
                    dying += 1
                }
            }
        }
        (live, dying)
    })
}

/// "memory" in cgroup.subtree_control (`+memory`/`-memory`): EBUSY to enable it in a
/// non-root group that has processes (no internal processes).
pub fn set_subtree_memory(memcg: u16, on: bool) -> Result<(), Errno> {
    if on && memcg != ROOT_MEM_CGROUP {
        let mut busy = false;
        for_each_task_of(memcg, |_| busy = true);
        if busy {
            return Err(EBUSY);
        }
    }
    with(|m| {
        m.get_mut(memcg).ok_or(ENOENT)?.subtree_memory = on;
        Ok(())
    })
}

pub fn subtree_memory(memcg: u16) -> bool {
    with(|m| m.get(memcg).is_some_and(|g| g.subtree_memory))
}

/// memory.oom.group.
pub fn set_oom_group(memcg: u16, on: bool) -> Result<(), Errno> {
    with(|m| {
        m.get_mut(memcg).ok_or(ENOENT)?.oom_group = on;
        Ok(())
    })
}

pub fn oom_group(memcg: u16) -> bool {
    with(|m| m.get(memcg).is_some_and(|g| g.oom_group))
}
