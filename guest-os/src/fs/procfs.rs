//! /proc: process and memory reports as files, in Linux's formats (`fs/proc`).
//!
//! A file's text is generated when it is opened (a snapshot, as Linux's `single_open`
//! files effectively are for small reads) and read from that buffer; directories list the
//! processes and the report files. Everything is read-only.
//!
//! ```text
//! /proc/{meminfo,buddyinfo,pagetypeinfo,zoneinfo,slabinfo,vmallocinfo,vmstat,stat}
//! /proc/self -> /proc/<current pid>
//! /proc/<pid>/{cmdline,maps,smaps,stat,status}
//! ```

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use super::file::{File, FileOps};
use super::stat::{Kstat, PROC_DEV, S_IFDIR, S_IFREG};
use crate::mm::uaccess::copy_to_user;
use crate::proc::{self, sched, state, Task};
use crate::syscall::errno::{Errno, SysResult, EINVAL, ENOENT, ENOTDIR};

/// A /proc node reached by a path.
pub enum Node {
    /// `/proc` itself.
    Root,
    /// `/proc/<pid>`, `/proc/<pid>/task` or `/proc/<pid>/task/<tid>`.
    Dir(DirId),
    /// A file with its contents.
    File(Vec<u8>),
    /// A symbolic link (`/proc/PID/exe`) and its target.
    Link(Vec<u8>),
}

/// A directory below /proc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirId {
    /// `/proc/<pid>`: a process (a thread group, named by its leader's PID; a thread's
    /// TID is accepted too, as Linux's hidden entries).
    Pid(u32),
    /// `/proc/<pid>/task`: the threads of the group.
    Tasks(u32),
    /// `/proc/<pid>/task/<tid>`: one thread.
    Thread(u32, u32),
}

impl DirId {
    /// The directory's canonical path.
    pub fn path(self) -> Vec<u8> {
        match self {
            DirId::Pid(p) => format!("/proc/{p}"),
            DirId::Tasks(p) => format!("/proc/{p}/task"),
            DirId::Thread(p, t) => format!("/proc/{p}/task/{t}"),
        }
        .into_bytes()
    }

    /// Its inode number (distinct per directory; /proc's numbering is its own).
    pub fn ino(self) -> u64 {
        match self {
            DirId::Pid(p) => 0x1000 + p as u64,
            DirId::Tasks(p) => (1 << 40) + p as u64,
            DirId::Thread(_, t) => (2 << 40) + t as u64,
        }
    }
}

/// Files directly under /proc.
const ROOT_FILES: [&str; 15] = [
    "version",
    "uptime",
    "loadavg",
    "cmdline",
    "meminfo",
    "buddyinfo",
    "pagetypeinfo",
    "zoneinfo",
    "slabinfo",
    "vmallocinfo",
    "vmstat",
    "stat",
    "filesystems",
    "diskstats",
    "swaps",
];
/// Files in a process directory.
const PID_FILES: [&str; 11] = [
    "cmdline",
    "comm",
    "maps",
    "smaps",
    "stat",
    "status",
    "limits",
    "mounts",
    "oom_score",
    "oom_score_adj",
    "cgroup",
];

/// Resolve `path` if it is under /proc (`None` otherwise).
pub fn lookup(path: &[u8]) -> Option<Result<Node, Errno>> {
    let p = core::str::from_utf8(path).ok()?;
    let rest = p.strip_prefix("/proc")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let parts: Vec<&str> = rest
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    Some(resolve(&parts))
}

fn resolve(parts: &[&str]) -> Result<Node, Errno> {
    match parts {
        [] => Ok(Node::Root),
        [name] if ROOT_FILES.contains(name) => Ok(Node::File(root_file(name))),
        // `/proc/mounts` is a link to the reader's own view.
        ["mounts"] => Ok(Node::Link(Vec::from(&b"self/mounts"[..]))),
        ["pressure", "memory"] => Ok(Node::File(
            crate::mm::psi::proc_pressure_memory().into_bytes(),
        )),
        ["thread-self"] => {
            let t = proc::current().ok_or(ENOENT)?;
            Ok(Node::Dir(DirId::Thread(t.tgid(), t.pid)))
        }
        ["thread-self", file] => {
            let t = proc::current().ok_or(ENOENT)?;
            pid_file(t, file)
        }
        [pid] => pid_of(pid).map(|p| Node::Dir(DirId::Pid(p))),
        ["vmscope", rest @ ..] => vmscope_node(rest),
        [pid, "task"] => pid_of(pid).map(|p| Node::Dir(DirId::Tasks(p))),
        [pid, "task", tid] => thread_of(pid, tid).map(|(p, t)| Node::Dir(DirId::Thread(p, t.pid))),
        [pid, "task", tid, file] => thread_of(pid, tid).and_then(|(_, t)| pid_file(t, file)),
        [pid, file] => {
            let pid = pid_of(pid)?;
            let t = sched::find(pid).ok_or(ENOENT)?;
            pid_file(t, file)
        }
        ["sys", "vm", "swappiness"] => Ok(Node::File(
            format!(
                "{}\n",
                crate::mm::vmscan::SWAPPINESS.load(Ordering::Relaxed)
            )
            .into_bytes(),
        )),
        ["sys", "vm", "nr_hugepages"] => Ok(Node::File(
            format!("{}\n", crate::mm::hugetlb::counts().0).into_bytes(),
        )),
        ["sys", "kernel", "randomize_va_space"] => Ok(Node::File(
            format!("{}\n", crate::mm::aslr::level()).into_bytes(),
        )),
        [name, ..] if ROOT_FILES.contains(name) => Err(ENOTDIR),
        _ => Err(ENOENT),
    }
}

/// `/sys/kernel/mm/transparent_hugepage/{enabled,defrag,hpage_pmd_size,use_zero_page}`
/// (there is no sysfs; these files are served as /proc's are). `None` for other paths.
pub fn lookup_sys(path: &[u8]) -> Option<Result<Node, Errno>> {
    let p = core::str::from_utf8(path).ok()?;
    let name = p.strip_prefix("/sys/kernel/mm/transparent_hugepage/")?;
    Some(
        crate::mm::huge_memory::sysfs_read(name)
            .map(|t| Node::File(t.into_bytes()))
            .ok_or(ENOENT),
    )
}

/// A file in a process's or thread's directory.
fn pid_file(t: &'static Task, file: &str) -> Result<Node, Errno> {
    match file {
        "maps" => Ok(Node::File(maps(t))),
        "smaps" => Ok(Node::File(smaps(t))),
        "cmdline" => Ok(Node::File(t.cmdline.lock().clone())),
        "comm" => Ok(Node::File(format!("{}\n", comm(t)).into_bytes())),
        "stat" => Ok(Node::File(stat(t))),
        "status" => Ok(Node::File(status(t))),
        "exe" => Ok(Node::Link(t.exe.lock().clone())),
        // cgroup v2's one line: hierarchy 0, no controllers named, the path.
        "cgroup" => {
            let mut v = Vec::from(&b"0::"[..]);
            v.extend_from_slice(&crate::mm::memcontrol::path(
                crate::mm::memcontrol::task_memcg(t),
            ));
            v.push(b'\n');
            Ok(Node::File(v))
        }
        "limits" => Ok(Node::File(limits(t))),
        "mounts" => Ok(Node::File(crate::fs::mount::proc_mounts().into_bytes())),
        "oom_score" => Ok(Node::File(
            format!("{}\n", crate::mm::oom_kill::oom_score(t)).into_bytes(),
        )),
        "oom_score_adj" => Ok(Node::File(
            format!("{}\n", t.oom_score_adj.load(Ordering::Relaxed)).into_bytes(),
        )),
        "task" => Err(ENOTDIR),
        _ => Err(ENOENT),
    }
}

/// The live threads of `t`'s group, leader first (`/proc/PID/task`): a leader that
/// exited while its threads run is still listed (a zombie), as on Linux.
fn group_threads(t: &'static Task) -> Vec<&'static Task> {
    let leader = t.group_leader_static();
    let mut v = alloc::vec![leader];
    v.extend(
        leader
            .threads
            .lock()
            .iter()
            .copied()
            .filter(|x| x.state.load(Ordering::Acquire) != state::ZOMBIE),
    );
    v
}

/// `/proc/PID/task/TID`: TID must be a thread of PID's group.
fn thread_of(pid: &str, tid: &str) -> Result<(u32, &'static Task), Errno> {
    let p = pid_of(pid)?;
    let tid: u32 = tid.parse().map_err(|_| ENOENT)?;
    let t = sched::find(tid).ok_or(ENOENT)?;
    if t.tgid() != sched::find(p).ok_or(ENOENT)?.tgid() {
        return Err(ENOENT);
    }
    Ok((p, t))
}

/// `/proc/vmscope/NAME`: the kernel's own debugging files (the memory self-check), kept
/// apart from Linux's files. Reading `selfcheck` runs the checks of `mm::debug_vm`.
fn vmscope_node(rest: &[&str]) -> Result<Node, Errno> {
    match rest {
        [name] => crate::mm::debug_vm::proc_file(name)
            .map(Node::File)
            .ok_or(ENOENT),
        _ => Err(ENOENT),
    }
}

fn pid_of(s: &str) -> Result<u32, Errno> {
    // `/proc/self` is the process (the thread group), not the calling thread.
    let pid = if s == "self" {
        proc::current().map(|t| t.tgid()).ok_or(ENOENT)?
    } else {
        s.parse().map_err(|_| ENOENT)?
    };
    sched::find(pid).map(|t| t.pid).ok_or(ENOENT)
}

/// Directory entries of a /proc directory (`None`: /proc itself): (name, is_dir, inode).
pub fn readdir(dir: Option<DirId>) -> Vec<(String, bool, u64)> {
    let mut v = Vec::new();
    let files = |v: &mut Vec<(String, bool, u64)>, base: u64| {
        for (i, f) in PID_FILES.iter().enumerate() {
            v.push((String::from(*f), false, (base << 8) + i as u64));
        }
    };
    match dir {
        None => {
            // Processes only: threads are reached through /proc/PID/task (their TIDs
            // still resolve, unlisted, as on Linux).
            for t in sched::all().into_iter().filter(|t| t.is_leader()) {
                v.push((format!("{}", t.pid), true, DirId::Pid(t.pid).ino()));
            }
            v.push((String::from("self"), true, 0x0fff));
            v.push((String::from("thread-self"), true, 0x0ffd));
            v.push((String::from("mounts"), false, 0x0ffe));
            for (i, f) in ROOT_FILES.iter().enumerate() {
                v.push((String::from(*f), false, 0x100 + i as u64));
            }
        }
        Some(DirId::Pid(pid)) => {
            v.push((String::from("task"), true, DirId::Tasks(pid).ino()));
            files(&mut v, pid as u64);
        }
        Some(DirId::Tasks(pid)) => {
            if let Some(t) = sched::find(pid) {
                for th in group_threads(t) {
                    v.push((
                        format!("{}", th.pid),
                        true,
                        DirId::Thread(pid, th.pid).ino(),
                    ));
                }
            }
        }
        Some(DirId::Thread(_, tid)) => files(&mut v, (1 << 32) + tid as u64),
    }
    v
}

/// Most bytes a generated /proc file may have.
const MAX_FILE: usize = 64 << 10;

/// A `fmt::Write` into a buffer allocated up front that never grows: the memory reports are
/// written with the page allocator's lock held, where allocating would re-enter it.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.0.capacity() - self.0.len();
        let n = s.len().min(room);
        self.0.extend_from_slice(&s.as_bytes()[..n]);
        if n < s.len() {
            Err(core::fmt::Error)
        } else {
            Ok(())
        }
    }
}

fn root_file(name: &str) -> Vec<u8> {
    if crate::mm::proc::FILES.contains(&name) {
        let mut c = Capped(Vec::with_capacity(MAX_FILE));
        let _ = crate::mm::proc::write(name, &mut c);
        return c.0;
    }
    let mut s = String::new();
    match name {
        "vmstat" => {
            let _ = vmstat(&mut s);
        }
        "filesystems" => {
            // `nodev` marks filesystems that need no block device.
            for (nodev, name) in [(true, "tmpfs"), (true, "proc"), (true, "rootfs")] {
                let _ = writeln!(s, "{}\t{name}", if nodev { "nodev" } else { "" });
            }
        }
        "diskstats" => crate::block::write_diskstats(&mut s),
        "swaps" => s = crate::mm::swapfile::proc_swaps(),
        "stat" => {
            // CPU times are not accounted yet: one CPU line of zeros, as a machine that has
            // not ticked.
            let _ = writeln!(s, "cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0");
            let _ = writeln!(
                s,
                "btime {}\nprocesses {}\nprocs_running 1\nprocs_blocked 0",
                crate::proc::timer::realtime_offset_ns() / 1_000_000_000,
                sched::all().len()
            );
        }
        "version" => {
            let _ = writeln!(
                s,
                "Linux version {} (vmscope kernel {}) {}",
                crate::syscall::info::UTS_RELEASE,
                env!("CARGO_PKG_VERSION"),
                crate::syscall::info::UTS_VERSION
            );
        }
        // Seconds since boot and seconds idle, in hundredths; idle time is not
        // accounted (0.00).
        "uptime" => {
            let cs = crate::proc::timer::now_ns() / 10_000_000;
            let _ = writeln!(s, "{}.{:02} 0.00", cs / 100, cs % 100);
        }
        // Load is not computed (no load tracking yet): 0.00; then runnable/total tasks
        // and the last PID given out, as Linux's fields.
        "loadavg" => {
            let all = sched::all();
            let running = all
                .iter()
                .filter(|t| t.state.load(Ordering::Acquire) == state::RUNNABLE)
                .count();
            let _ = writeln!(
                s,
                "0.00 0.00 0.00 {}/{} {}",
                running,
                all.len(),
                sched::last_pid()
            );
        }
        "cmdline" => {
            let mut v = crate::cmdline::saved().to_vec();
            v.push(b'\n');
            return v;
        }
        _ => {}
    }
    s.into_bytes()
}

/// /proc/vmstat: the counters that exist, with Linux's names. (Collected first, written
/// after the allocator's lock is released.)
fn vmstat(s: &mut String) -> core::fmt::Result {
    let (free, zones, stats) = crate::mm::page_alloc::with(|a| {
        let mut z = [(0u64, 0u64); 3];
        for zone in a.zones() {
            z[zone.zone_type as usize].0 += zone.stats.pgalloc;
            z[zone.zone_type as usize].1 += zone.stats.pgfree;
        }
        (a.nr_free_pages(), z, a.stats)
    });
    let (minflt, majflt) = sched::all().iter().fold((0, 0), |(a, b), t| {
        (
            a + t.min_flt.load(Ordering::Relaxed),
            b + t.maj_flt.load(Ordering::Relaxed),
        )
    });
    use crate::mm::filemap;
    let (file_pages, dirty, writeback) = filemap::counters();
    let shmem = crate::mm::shmem::total_pages();
    let (bg, limit) = crate::mm::writeback::thresholds();
    writeln!(s, "nr_free_pages {free}")?;
    writeln!(s, "nr_file_pages {}", file_pages + shmem)?;
    writeln!(s, "nr_dirty {dirty}")?;
    writeln!(s, "nr_writeback {writeback}")?;
    writeln!(s, "nr_shmem {shmem}")?;
    writeln!(s, "nr_dirty_threshold {limit}")?;
    writeln!(s, "nr_dirty_background_threshold {bg}")?;
    // pgpgin/pgpgout count KiB, as Linux's do.
    let kib = crate::mm::PAGE_SIZE / 1024;
    writeln!(
        s,
        "pgpgin {}",
        filemap::PGPGIN.load(Ordering::Relaxed) * kib
    )?;
    writeln!(
        s,
        "pgpgout {}",
        filemap::PGPGOUT.load(Ordering::Relaxed) * kib
    )?;
    writeln!(s, "pgalloc_dma {}", zones[0].0)?;
    writeln!(s, "pgalloc_dma32 {}", zones[1].0)?;
    writeln!(s, "pgalloc_normal {}", zones[2].0)?;
    writeln!(s, "pgfree {}", zones.iter().map(|z| z.1).sum::<u64>())?;
    // Major faults are counted as they happen (exited tasks' too); the per-task counts
    // of live tasks give the rest.
    let majflt = filemap::PGMAJFAULT.load(Ordering::Relaxed).max(majflt);
    writeln!(s, "pgfault {}", minflt + majflt)?;
    writeln!(s, "pgmajfault {majflt}")?;
    {
        use crate::mm::huge_memory as thp;
        let r = |c: &core::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        writeln!(s, "nr_anon_transparent_hugepages {}", r(&thp::NR_ANON_THPS))?;
        writeln!(s, "thp_fault_alloc {}", r(&thp::THP_FAULT_ALLOC))?;
        writeln!(s, "thp_fault_fallback {}", r(&thp::THP_FAULT_FALLBACK))?;
        writeln!(
            s,
            "thp_fault_fallback_charge {}",
            r(&thp::THP_FAULT_FALLBACK_CHARGE)
        )?;
        writeln!(s, "thp_collapse_alloc 0")?;
        writeln!(s, "thp_split_page {}", r(&thp::THP_SPLIT_PAGE))?;
        writeln!(s, "thp_split_pmd {}", r(&thp::THP_SPLIT_PMD))?;
    }
    writeln!(
        s,
        "balance_dirty_pages_throttled {}",
        crate::mm::writeback::NR_THROTTLED.load(Ordering::Relaxed)
    )?;
    use crate::mm::vmscan::stat as v;
    let r = |c: &core::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let lru = crate::mm::vmscan::lru_sizes();
    use mm_core::lru::LruList;
    writeln!(
        s,
        "nr_inactive_anon {}",
        lru[LruList::InactiveAnon as usize]
    )?;
    writeln!(s, "nr_active_anon {}", lru[LruList::ActiveAnon as usize])?;
    writeln!(
        s,
        "nr_inactive_file {}",
        lru[LruList::InactiveFile as usize]
    )?;
    writeln!(s, "nr_active_file {}", lru[LruList::ActiveFile as usize])?;
    writeln!(s, "nr_unevictable {}", lru[LruList::Unevictable as usize])?;
    writeln!(s, "nr_swapcached {}", crate::mm::swap_state::nr_pages())?;
    writeln!(s, "pswpin {}", r(&crate::mm::swapfile::PSWPIN))?;
    writeln!(s, "pswpout {}", r(&crate::mm::swapfile::PSWPOUT))?;
    writeln!(
        s,
        "workingset_refault_anon {}",
        r(&v::WORKINGSET_REFAULT_ANON)
    )?;
    writeln!(
        s,
        "workingset_refault_file {}",
        r(&v::WORKINGSET_REFAULT_FILE)
    )?;
    writeln!(
        s,
        "workingset_activate_anon {}",
        r(&v::WORKINGSET_ACTIVATE_ANON)
    )?;
    writeln!(
        s,
        "workingset_activate_file {}",
        r(&v::WORKINGSET_ACTIVATE_FILE)
    )?;
    writeln!(
        s,
        "workingset_restore_anon {}",
        r(&v::WORKINGSET_RESTORE_ANON)
    )?;
    writeln!(
        s,
        "workingset_restore_file {}",
        r(&v::WORKINGSET_RESTORE_FILE)
    )?;
    writeln!(s, "pgactivate {}", r(&v::PGACTIVATE))?;
    writeln!(s, "pgdeactivate {}", r(&v::PGDEACTIVATE))?;
    writeln!(s, "pgrotated {}", r(&v::PGROTATED))?;
    writeln!(s, "pgrefill {}", r(&v::PGREFILL))?;
    writeln!(s, "pgsteal_kswapd {}", r(&v::PGSTEAL_KSWAPD))?;
    writeln!(s, "pgsteal_direct {}", r(&v::PGSTEAL_DIRECT))?;
    writeln!(s, "pgscan_kswapd {}", r(&v::PGSCAN_KSWAPD))?;
    writeln!(s, "pgscan_direct {}", r(&v::PGSCAN_DIRECT))?;
    writeln!(s, "pgscan_anon {}", r(&v::PGSCAN_ANON))?;
    writeln!(s, "pgscan_file {}", r(&v::PGSCAN_FILE))?;
    writeln!(s, "pgsteal_anon {}", r(&v::PGSTEAL_ANON))?;
    writeln!(s, "pgsteal_file {}", r(&v::PGSTEAL_FILE))?;
    writeln!(s, "slabs_scanned {}", r(&v::SLABS_SCANNED))?;
    writeln!(s, "pageoutrun {}", r(&v::PAGEOUTRUN))?;
    writeln!(s, "allocstall {}", stats.allocstall + r(&v::ALLOCSTALL))?;
    writeln!(s, "oom_kill {}", r(&crate::mm::oom_kill::OOM_KILLS))?;
    writeln!(s, "swap_ra {}", r(&crate::mm::swap_state::SWAP_RA))?;
    writeln!(s, "kswapd_wakeups {}", stats.kswapd_wakeups)
}

fn comm(t: &Task) -> String {
    let c = *t.comm.lock();
    let n = c.iter().position(|&b| b == 0).unwrap_or(c.len());
    String::from_utf8_lossy(&c[..n]).into_owned()
}

fn state_char(t: &Task) -> char {
    match t.state.load(Ordering::Acquire) {
        state::SLEEPING => 'S',
        state::ZOMBIE => 'Z',
        state::STOPPED => 'T',
        state::DISK_SLEEP => 'D',
        _ => 'R',
    }
}

/// (VmSize pages, RSS pages, stack pages, data pages, exec pages).
fn mem_of(t: &Task) -> (u64, u64, u64, u64, u64) {
    t.mm().lock().as_ref().map_or((0, 0, 0, 0, 0), |mm| {
        let st = mm.vmas.stat();
        (st.total_vm, mm.rss, st.stack_vm, st.data_vm, st.exec_vm)
    })
}

/// Resident pages by kind (anon, file, shmem) and page-table pages with the PML4
/// (`VmPTE`), for /proc/PID/status.
fn rss_of(t: &Task) -> (u64, u64, u64, u64) {
    t.mm().lock().as_ref().map_or((0, 0, 0, 0), |mm| {
        let r = &mm.rss_stat;
        (r.anon, r.file, r.shmem, mm.pgtables + 1)
    })
}

/// Swap entries of `t`'s address space (`MM_SWAPENTS`).
fn swap_of(t: &Task) -> u64 {
    t.mm().lock().as_ref().map_or(0, |mm| mm.swapents)
}

fn maps(t: &Task) -> Vec<u8> {
    let mut s = String::new();
    if let Some(mm) = t.mm().lock().as_ref() {
        let ctx = mm_core::vma::MapsContext {
            start_brk: mm.start_brk,
            brk: mm.brk,
            start_stack: mm.start_stack,
        };
        let _ = mm.vmas.write_maps(&mut s, &ctx);
    }
    s.into_bytes()
}

/// `VmFlags:` mnemonics of `show_smap_vma_flags`.
fn vm_flag_names(f: mm_core::vma::VmFlags) -> String {
    use mm_core::vma::*;
    let table: [(VmFlags, &str); 17] = [
        (VM_READ, "rd"),
        (VM_WRITE, "wr"),
        (VM_EXEC, "ex"),
        (VM_SHARED, "sh"),
        (VM_MAYREAD, "mr"),
        (VM_MAYWRITE, "mw"),
        (VM_MAYEXEC, "me"),
        (VM_MAYSHARE, "ms"),
        (VM_GROWSDOWN, "gd"),
        (VM_LOCKED, "lo"),
        (VM_DONTEXPAND, "de"),
        (VM_ACCOUNT, "ac"),
        (VM_NORESERVE, "nr"),
        (VM_HUGETLB, "ht"),
        (VM_SOFTDIRTY, "sd"),
        (VM_HUGEPAGE, "hg"),
        (VM_NOHUGEPAGE, "nh"),
    ];
    let mut s = String::new();
    for (bit, name) in table {
        if f.contains(bit) {
            s.push_str(name);
            s.push(' ');
        }
    }
    s
}

/// /proc/PID/smaps: each maps line followed by the memory it uses, in Linux's layout.
fn smaps(t: &Task) -> Vec<u8> {
    let mut out = String::new();
    let g = t.mm().lock();
    let Some(mm) = g.as_ref() else {
        return Vec::new();
    };
    let ctx = mm_core::vma::MapsContext {
        start_brk: mm.start_brk,
        brk: mm.brk,
        start_stack: mm.start_stack,
    };
    let vmas: Vec<mm_core::vma::Vma> = mm.vmas.iter().copied().collect();
    for v in &vmas {
        let c = mm.smaps_counts(v);
        let _ = writeln!(out, "{}", v.maps_line(&ctx));
        let kb = |pages: u64| pages * 4;
        let hugetlb = v.flags.contains(mm_core::vma::VM_HUGETLB);
        let page_kb = if hugetlb { 2048 } else { 4 };
        let (shared_huge, private_huge) = if v.flags.contains(mm_core::vma::VM_SHARED) {
            (kb(c[9]), 0)
        } else {
            (0, kb(c[9]))
        };
        let rows: [(&str, u64); 20] = [
            ("Size", kb(v.pages())),
            ("KernelPageSize", page_kb),
            ("MMUPageSize", page_kb),
            ("Rss", kb(c[0])),
            ("Pss", c[1] * 4 / 64),
            ("Shared_Clean", kb(c[2])),
            ("Shared_Dirty", kb(c[3])),
            ("Private_Clean", kb(c[4])),
            ("Private_Dirty", kb(c[5])),
            ("Referenced", kb(c[6])),
            ("Anonymous", kb(c[7])),
            ("LazyFree", 0),
            ("AnonHugePages", kb(c[8])),
            ("ShmemPmdMapped", 0),
            ("FilePmdMapped", 0),
            ("Shared_Hugetlb", shared_huge),
            ("Private_Hugetlb", private_huge),
            ("Swap", 0),
            ("SwapPss", 0),
            ("Locked", 0),
        ];
        for (name, val) in rows {
            let label = format!("{name}:");
            let _ = writeln!(out, "{label:<16}{val:>8} kB");
        }
        let _ = writeln!(
            out,
            "THPeligible:    {}",
            crate::mm::huge_memory::thp_eligible(v) as u8
        );
        let _ = writeln!(out, "VmFlags: {}", vm_flag_names(v.flags));
    }
    out.into_bytes()
}

/// /proc/PID/stat: the 52 fields of `do_task_stat`, with what exists filled in.
fn stat(t: &Task) -> Vec<u8> {
    use crate::proc::cputime::{children_usage, process_usage, thread_usage, to_clock_t};
    let (vm, rss, ..) = mem_of(t);
    // A process's directory shows the process's times, a thread's its own.
    let usage = if t.is_leader() {
        process_usage(t)
    } else {
        thread_usage(t)
    };
    let (utime, stime) = usage.split();
    let (cutime, cstime) = children_usage(t).split();
    let (start_stack, start_brk, brk) = t
        .mm()
        .lock()
        .as_ref()
        .map_or((0, 0, 0), |m| (m.start_stack, m.start_brk, m.brk));
    let mut s = String::new();
    let _ = write!(
        s,
        "{} ({}) {} {} {} {} 0 -1 4194304 {} 0 {} 0 {} {} {} {} 20 0 {} 0 {} {} {} 18446744073709551615 0 0 {} 0 0 0 0 0 0 0 0 0 {} 0 0 0 0 0 0 0 {} {} 0 0 0 0 {}",
        t.pid,
        comm(t),
        state_char(t),
        t.leader().ppid.load(Ordering::Relaxed),
        t.leader().pgid.load(Ordering::Relaxed),
        t.leader().sid.load(Ordering::Relaxed),
        t.min_flt.load(Ordering::Relaxed),
        t.maj_flt.load(Ordering::Relaxed),
        to_clock_t(utime),
        to_clock_t(stime),
        to_clock_t(cutime),
        to_clock_t(cstime),
        thread_count(t),
        to_clock_t(t.start_time.load(Ordering::Relaxed)),
        vm * 4096,
        rss,
        start_stack,
        t.leader().exit_signal.load(Ordering::Relaxed),
        start_brk,
        brk,
        t.exit_code.load(Ordering::Relaxed)
    );
    s.push('\n');
    s.into_bytes()
}

/// /proc/PID/limits (`proc_pid_limits`): the resource limits in Linux's columns.
fn limits(t: &Task) -> Vec<u8> {
    use crate::proc::rlimit::RLIM_INFINITY;
    const NAMES: [(&str, &str); 16] = [
        ("Max cpu time", "seconds"),
        ("Max file size", "bytes"),
        ("Max data size", "bytes"),
        ("Max stack size", "bytes"),
        ("Max core file size", "bytes"),
        ("Max resident set", "bytes"),
        ("Max processes", "processes"),
        ("Max open files", "files"),
        ("Max locked memory", "bytes"),
        ("Max address space", "bytes"),
        ("Max file locks", "locks"),
        ("Max pending signals", "signals"),
        ("Max msgqueue size", "bytes"),
        ("Max nice priority", ""),
        ("Max realtime priority", ""),
        ("Max realtime timeout", "us"),
    ];
    let rlim = *t.rlim.lock();
    let mut s = format!(
        "{:<25} {:<20} {:<20} {:<10}\n",
        "Limit", "Soft Limit", "Hard Limit", "Units"
    );
    let val = |v: u64| {
        if v == RLIM_INFINITY {
            String::from("unlimited")
        } else {
            format!("{v}")
        }
    };
    for ((name, unit), r) in NAMES.iter().zip(rlim.iter()) {
        let _ = write!(s, "{:<25} {:<20} {:<20} ", name, val(r.cur), val(r.max));
        if unit.is_empty() {
            s.push('\n');
        } else {
            let _ = writeln!(s, "{unit:<10}");
        }
    }
    s.into_bytes()
}

/// The live threads of `t`'s group (a zombie leader whose threads run is not counted).
fn thread_count(t: &Task) -> usize {
    let leader = t.leader();
    let others = leader
        .threads
        .lock()
        .iter()
        .filter(|x| x.state.load(Ordering::Acquire) != state::ZOMBIE)
        .count();
    others
        + usize::from(leader.state.load(Ordering::Acquire) != state::ZOMBIE)
            .max(usize::from(others == 0))
}

/// /proc/PID/status: the lines of `proc_pid_status` that exist here.
fn status(t: &Task) -> Vec<u8> {
    let (vm, rss, stack, data, exe) = mem_of(t);
    let (anon, file, shmem, pte) = rss_of(t);
    let state = match state_char(t) {
        'S' => "S (sleeping)",
        'Z' => "Z (zombie)",
        'T' => "T (stopped)",
        'D' => "D (disk sleep)",
        _ => "R (running)",
    };
    let mut s = String::new();
    let kb = |p: u64| p * 4;
    let _ = write!(
        s,
        "Name:\t{}\nUmask:\t{:04o}\nState:\t{}\nTgid:\t{}\nNgid:\t0\nPid:\t{}\nPPid:\t{}\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t{}\n\
VmPeak:\t{:>8} kB\nVmSize:\t{:>8} kB\nVmLck:\t{:>8} kB\nVmPin:\t{:>8} kB\nVmHWM:\t{:>8} kB\nVmRSS:\t{:>8} kB\nRssAnon:\t{:>8} kB\nRssFile:\t{:>8} kB\nRssShmem:\t{:>8} kB\n\
VmData:\t{:>8} kB\nVmStk:\t{:>8} kB\nVmExe:\t{:>8} kB\nVmLib:\t{:>8} kB\nVmPTE:\t{:>8} kB\nVmSwap:\t{:>8} kB\nThreads:\t{}\n",
        comm(t),
        t.umask().load(Ordering::Relaxed),
        state,
        t.tgid(),
        t.pid,
        t.leader().ppid.load(Ordering::Relaxed),
        t.files().lock().max_fds().next_multiple_of(64),
        kb(vm),
        kb(vm),
        0,
        0,
        kb(rss),
        kb(rss),
        kb(anon),
        kb(file),
        kb(shmem),
        kb(data),
        kb(stack),
        kb(exe),
        0,
        kb(pte),
        kb(swap_of(t)),
        thread_count(t)
    );
    s.into_bytes()
}

/// What a write to a writable /proc file sets.
#[derive(Clone, Copy, Debug)]
pub enum Sink {
    /// `/proc/PID/oom_score_adj`.
    OomScoreAdj(u32),
    /// `/proc/sys/vm/swappiness`.
    Swappiness,
    /// `/proc/sys/vm/nr_hugepages`.
    NrHugepages,
    /// `/sys/kernel/mm/transparent_hugepage/NAME` (enabled, defrag).
    Thp(&'static str),
}

/// The tunable behind an absolute /proc path, if it is writable.
pub fn sink_of(path: &[u8]) -> Option<Sink> {
    let p = core::str::from_utf8(path).ok()?;
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    match parts.as_slice() {
        ["proc", "sys", "vm", "swappiness"] => Some(Sink::Swappiness),
        ["proc", "sys", "vm", "nr_hugepages"] => Some(Sink::NrHugepages),
        ["sys", "kernel", "mm", "transparent_hugepage", "enabled"] => Some(Sink::Thp("enabled")),
        ["sys", "kernel", "mm", "transparent_hugepage", "defrag"] => Some(Sink::Thp("defrag")),
        ["proc", pid, "oom_score_adj"] => pid_of(pid).ok().map(Sink::OomScoreAdj),
        _ => None,
    }
}

/// Parse the decimal integer a tunable write holds (trailing newline allowed).
fn parse_int(bytes: &[u8]) -> Result<i64, Errno> {
    let s = core::str::from_utf8(bytes).map_err(|_| EINVAL)?;
    s.trim().parse().map_err(|_| EINVAL)
}

impl Sink {
    fn set(self, bytes: &[u8]) -> Result<(), Errno> {
        if let Sink::Thp(name) = self {
            let v = core::str::from_utf8(bytes).map_err(|_| EINVAL)?;
            return if crate::mm::huge_memory::sysfs_write(name, v) {
                Ok(())
            } else {
                Err(EINVAL)
            };
        }
        let v = parse_int(bytes)?;
        match self {
            Sink::OomScoreAdj(pid) => {
                use crate::mm::oom_kill::{OOM_SCORE_ADJ_MAX, OOM_SCORE_ADJ_MIN};
                if !(OOM_SCORE_ADJ_MIN as i64..=OOM_SCORE_ADJ_MAX as i64).contains(&v) {
                    return Err(EINVAL);
                }
                let t = sched::find(pid).ok_or(crate::syscall::errno::ESRCH)?;
                t.oom_score_adj.store(v as i32, Ordering::Relaxed);
            }
            Sink::Swappiness => {
                if !(0..=crate::mm::vmscan::MAX_SWAPPINESS as i64).contains(&v) {
                    return Err(EINVAL);
                }
                crate::mm::vmscan::SWAPPINESS.store(v as u64, Ordering::Relaxed);
            }
            Sink::NrHugepages => {
                if v < 0 {
                    return Err(EINVAL);
                }
                crate::mm::hugetlb::set_nr_hugepages(v as u64);
            }
            Sink::Thp(_) => {}
        }
        Ok(())
    }
}

/// An open /proc file: its text as generated at open, and for a tunable what a write sets.
pub struct ProcFile {
    pub data: Vec<u8>,
    pub sink: Option<Sink>,
}

/// The longest value a tunable takes.
const MAX_TUNABLE: usize = 64;

impl FileOps for ProcFile {
    fn write(&self, _: &File, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        let sink = self.sink.ok_or(EINVAL)?;
        if len > MAX_TUNABLE {
            return Err(EINVAL);
        }
        let mut b = [0u8; MAX_TUNABLE];
        crate::mm::uaccess::copy_from_user(&mut b[..len], buf)?;
        sink.set(&b[..len])?;
        *pos += len as u64;
        Ok(len as u64)
    }

    fn read(&self, _: &File, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        let start = usize::try_from(*pos)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let n = (self.data.len() - start).min(len);
        copy_to_user(buf, &self.data[start..start + n])?;
        *pos += n as u64;
        Ok(n as u64)
    }

    fn seekable(&self) -> bool {
        true
    }

    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn stat(&self) -> Result<Kstat, Errno> {
        // /proc files report size 0, as Linux's.
        let mut k = Kstat::new(PROC_DEV, 5, S_IFREG | 0o444, 1, 0);
        k.blksize = 1024;
        Ok(k)
    }

    fn name(&self) -> &'static str {
        "proc"
    }
}

/// An open /proc directory (`None`: /proc itself).
pub struct ProcDir {
    pub dir: Option<DirId>,
}

impl FileOps for ProcDir {
    fn read(&self, _: &File, _: u64, _: usize, _: &mut u64) -> SysResult {
        Err(crate::syscall::errno::EISDIR)
    }

    fn seekable(&self) -> bool {
        true
    }

    /// ".", "..", then the entries.
    fn getdents(&self, _: &File, buf: u64, count: usize, pos: &mut u64) -> SysResult {
        const DT_DIR: u8 = 4;
        const DT_REG: u8 = 8;
        let mut entries: Vec<(String, bool, u64)> =
            alloc::vec![(".".into(), true, 1), ("..".into(), true, 1)];
        entries.extend(readdir(self.dir));
        let mut out = Vec::new();
        let mut p = usize::try_from(*pos).unwrap_or(usize::MAX);
        while p < entries.len() {
            let (name, dir, ino) = &entries[p];
            if !super::dirent::put_dirent(
                &mut out,
                count,
                *ino,
                p as u64 + 1,
                if *dir { DT_DIR } else { DT_REG },
                name.as_bytes(),
            ) {
                if out.is_empty() {
                    return Err(crate::syscall::errno::EINVAL);
                }
                break;
            }
            p += 1;
        }
        copy_to_user(buf, &out)?;
        *pos = p as u64;
        Ok(out.len() as u64)
    }

    fn stat(&self) -> Result<Kstat, Errno> {
        let ino = self.dir.map_or(1, DirId::ino);
        let mut k = Kstat::new(PROC_DEV, ino, S_IFDIR | 0o555, 2, 0);
        k.blksize = 1024;
        Ok(k)
    }

    fn is_dir(&self) -> bool {
        true
    }

    fn path(&self) -> Option<Vec<u8>> {
        Some(match self.dir {
            None => b"/proc".to_vec(),
            Some(d) => d.path(),
        })
    }

    fn name(&self) -> &'static str {
        "proc"
    }
}
