//! The cgroup v2 filesystem (`kernel/cgroup/cgroup.c` over kernfs), mounted at
//! /sys/fs/cgroup at boot as systemd mounts it, with the memory controller
//! ([`crate::mm::memcontrol`]) as its only controller.
//!
//! Directories are groups: mkdir makes a child group, rmdir removes one without live
//! processes or child groups (EBUSY). Each directory holds the interface files of Linux,
//! with its names and formats; the root has only the ones Linux's root has (no
//! memory.max, memory.current, memory.events or cgroup.events). Read-only files are 0444,
//! writable ones 0644, memory.reclaim 0200; opening a file for an access it lacks is
//! EACCES (kernfs's rule, root included). A read produces the whole text at offset 0
//! (seq_file style) and continues from that text; a write takes the whole value in one
//! call (at most a page, E2BIG beyond, as cgroup's `atomic_write_len`).
//!
//! Deviation: the memory controller is on in every group. cgroup.subtree_control
//! records `+memory`/`-memory` (the root starts with it on, as systemd leaves it) and
//! cgroup.controllers reports the parent's choice, but the memory.* files exist in every
//! non-root group and charges go to the task's own group whatever was written.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;

use mm_core::page_counter::{parse_limit, PAGE_COUNTER_MAX};

use super::dcache::Dentry;
use super::file::{File, FileOps};
use super::inode::{DirEntry, Inode, InodeMeta, InodeOps};
use super::mount::Path;
use super::stat::{Kstat, S_IFDIR, S_IFREG};
use super::super_block::{anon_dev, now, Kstatfs, SuperBlock, SuperOps};
use crate::mm::memcontrol as memcg;
use crate::mm::uaccess::{copy_from_user, copy_to_user};
use crate::sync::IrqLock;
use crate::syscall::errno::{
    Errno, SysResult, E2BIG, EACCES, EAGAIN, EBUSY, EEXIST, EINVAL, EISDIR, ENODEV, ENOENT, ENOMEM,
    ENOTDIR,
};

/// `CGROUP2_SUPER_MAGIC`.
pub const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
/// The largest write (`atomic_write_len`: one page).
const MAX_WRITE: usize = crate::mm::PAGE_SIZE as usize;
/// `DT_DIR`, `DT_REG`.
const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;
const PAGE: u64 = crate::mm::PAGE_SIZE;

/// An interface file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgFile {
    Controllers,
    Events,
    Procs,
    Stat,
    SubtreeControl,
    Type,
    MemCurrent,
    MemEvents,
    MemEventsLocal,
    MemHigh,
    MemLow,
    MemMax,
    MemMin,
    MemOomGroup,
    MemPeak,
    MemReclaim,
    MemStat,
    SwapCurrent,
    SwapEvents,
    SwapHigh,
    SwapMax,
    SwapPeak,
}

/// Every file: name, whether the root has it, mode bits.
const FILES: [(CgFile, &str, bool, u32); 22] = [
    (CgFile::Controllers, "cgroup.controllers", true, 0o444),
    (CgFile::Events, "cgroup.events", false, 0o444),
    (CgFile::Procs, "cgroup.procs", true, 0o644),
    (CgFile::Stat, "cgroup.stat", true, 0o444),
    (
        CgFile::SubtreeControl,
        "cgroup.subtree_control",
        true,
        0o644,
    ),
    (CgFile::Type, "cgroup.type", false, 0o644),
    (CgFile::MemCurrent, "memory.current", false, 0o444),
    (CgFile::MemEvents, "memory.events", false, 0o444),
    (CgFile::MemEventsLocal, "memory.events.local", false, 0o444),
    (CgFile::MemHigh, "memory.high", false, 0o644),
    (CgFile::MemLow, "memory.low", false, 0o644),
    (CgFile::MemMax, "memory.max", false, 0o644),
    (CgFile::MemMin, "memory.min", false, 0o644),
    (CgFile::MemOomGroup, "memory.oom.group", false, 0o644),
    (CgFile::MemPeak, "memory.peak", false, 0o444),
    (CgFile::MemReclaim, "memory.reclaim", true, 0o200),
    (CgFile::MemStat, "memory.stat", true, 0o444),
    (CgFile::SwapCurrent, "memory.swap.current", false, 0o444),
    (CgFile::SwapEvents, "memory.swap.events", false, 0o444),
    (CgFile::SwapHigh, "memory.swap.high", false, 0o644),
    (CgFile::SwapMax, "memory.swap.max", false, 0o644),
    (CgFile::SwapPeak, "memory.swap.peak", false, 0o444),
];

/// A cgroup directory: its group, its interface files (name order) and child groups.
pub struct CgDir {
    pub memcg: u16,
    /// The group's serial number: a removed group's directory is stale.
    serial: u64,
    files: Vec<(&'static str, Arc<Inode>)>,
    children: IrqLock<BTreeMap<Vec<u8>, Arc<Inode>>>,
}

/// What a cgroup inode is.
pub enum CgNode {
    Dir(CgDir),
    File {
        memcg: u16,
        serial: u64,
        kind: CgFile,
    },
}

pub struct CgroupFs;
pub static CGROUP_OPS: CgroupFs = CgroupFs;

struct CgroupSuper;
static CGROUP_SUPER: CgroupSuper = CgroupSuper;

impl SuperOps for CgroupSuper {
    fn statfs(&self, sb: &SuperBlock) -> Result<Kstatfs, Errno> {
        Ok(Kstatfs {
            f_type: sb.s_magic,
            f_bsize: PAGE,
            f_namelen: super::namei::NAME_MAX as u64,
            f_frsize: PAGE,
            ..Default::default()
        })
    }
}

fn new_inode(sb: &Arc<SuperBlock>, mode: u32, node: CgNode) -> Result<Arc<Inode>, Errno> {
    let t = now();
    let meta = InodeMeta {
        mode,
        nlink: if mode & S_IFDIR != 0 { 2 } else { 1 },
        atime: t,
        mtime: t,
        ctime: t,
        ..InodeMeta::default()
    };
    let private = crate::mm::slab::try_box(node).map_err(|_| ENOMEM)?
        as Box<dyn core::any::Any + Send + Sync>;
    let inode = super::file::try_arc(Inode::new(sb, &CGROUP_OPS, meta, 0, private))?;
    sb.inode_created();
    Ok(inode)
}

/// A directory inode for group `id` with its interface files.
fn new_dir(sb: &Arc<SuperBlock>, id: u16) -> Result<Arc<Inode>, Errno> {
    let root = memcg::is_root(id);
    let serial = memcg::serial(id).ok_or(ENOENT)?;
    let mut files = Vec::new();
    files.try_reserve_exact(FILES.len()).map_err(|_| ENOMEM)?;
    for &(kind, name, on_root, mode) in FILES.iter() {
        if root && !on_root {
            continue;
        }
        let f = new_inode(
            sb,
            S_IFREG | mode,
            CgNode::File {
                memcg: id,
                serial,
                kind,
            },
        )?;
        files.push((name, f));
    }
    new_inode(
        sb,
        S_IFDIR | 0o755,
        CgNode::Dir(CgDir {
            memcg: id,
            serial,
            files,
            children: IrqLock::new("cgroup_dir", BTreeMap::new()),
        }),
    )
}

fn dir_of(inode: &Inode) -> Result<&CgDir, Errno> {
    match inode.private::<CgNode>() {
        Some(CgNode::Dir(d)) => Ok(d),
        _ => Err(ENOTDIR),
    }
}

/// Mount the cgroup2 filesystem on `at` (/sys/fs/cgroup).
pub fn mount_at(at: &Path) -> Result<(), Errno> {
    memcg::init()?;
    let sb = super::file::try_arc(SuperBlock::new(
        "cgroup2",
        CGROUP2_SUPER_MAGIC,
        anon_dev(),
        &CGROUP_SUPER,
        String::from("nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot"),
    ))?;
    let root = new_dir(&sb, memcg::ROOT_MEM_CGROUP)?;
    super::mount::mount(sb, Dentry::new_root(root), Some(at), "cgroup2")?;
    Ok(())
}

impl InodeOps for CgroupFs {
    fn lookup(&self, dir: &Arc<Inode>, name: &[u8]) -> Result<Option<Arc<Inode>>, Errno> {
        let d = dir_of(dir)?;
        if let Some((_, f)) = d.files.iter().find(|(n, _)| n.as_bytes() == name) {
            return Ok(Some(f.clone()));
        }
        Ok(d.children.lock().get(name).cloned())
    }

    /// `cgroup_mkdir`: a child group.
    fn mkdir(&self, dir: &Arc<Inode>, name: &[u8], _mode: u32) -> Result<Arc<Inode>, Errno> {
        let d = dir_of(dir)?;
        if d.files.iter().any(|(n, _)| n.as_bytes() == name) || d.children.lock().contains_key(name)
        {
            return Err(EEXIST);
        }
        // Names with a '.' prefix of a controller would collide with interface files.
        if name.starts_with(b"cgroup.") || name.starts_with(b"memory.") {
            return Err(EINVAL);
        }
        let mut key = Vec::new();
        key.try_reserve_exact(name.len()).map_err(|_| ENOMEM)?;
        key.extend_from_slice(name);
        // A removed group's directory (kept by an open descriptor) takes no children.
        if memcg::serial(d.memcg) != Some(d.serial) {
            return Err(ENOENT);
        }
        let id = memcg::create(d.memcg, name)?;
        let inode = match new_dir(&dir.i_sb, id) {
            Ok(i) => i,
            Err(e) => {
                let _ = memcg::remove(id);
                return Err(e);
            }
        };
        d.children.lock().insert(key, inode.clone());
        dir.meta.lock().nlink += 1;
        dir.touch();
        Ok(inode)
    }

    /// `cgroup_rmdir`: EBUSY with live processes or child groups.
    fn rmdir(&self, dir: &Arc<Inode>, name: &[u8]) -> Result<(), Errno> {
        let d = dir_of(dir)?;
        let victim = d.children.lock().get(name).cloned().ok_or(ENOENT)?;
        let vd = dir_of(&victim)?;
        if !vd.children.lock().is_empty() {
            return Err(EBUSY);
        }
        memcg::remove(vd.memcg)?;
        d.children.lock().remove(name);
        victim.meta.lock().nlink = 0;
        let mut m = dir.meta.lock();
        m.nlink = m.nlink.saturating_sub(1);
        drop(m);
        dir.touch();
        Ok(())
    }

    /// Interface files and child groups in name order, after `.` and `..`.
    fn readdir(
        &self,
        dir: &Arc<Inode>,
        pos: u64,
        emit: &mut dyn FnMut(DirEntry) -> bool,
    ) -> Result<u64, Errno> {
        let d = dir_of(dir)?;
        let children: Vec<(Vec<u8>, u64)> = {
            let c = d.children.lock();
            let mut v = Vec::new();
            v.try_reserve_exact(c.len()).map_err(|_| ENOMEM)?;
            for (k, i) in c.iter() {
                let mut n = Vec::new();
                n.try_reserve_exact(k.len()).map_err(|_| ENOMEM)?;
                n.extend_from_slice(k);
                v.push((n, i.i_ino));
            }
            v
        };
        let mut entries: Vec<(&[u8], u64, u8)> = Vec::new();
        entries
            .try_reserve_exact(2 + d.files.len() + children.len())
            .map_err(|_| ENOMEM)?;
        entries.push((b".", dir.i_ino, DT_DIR));
        // The VFS fills in `..`'s number.
        entries.push((b"..", 0, DT_DIR));
        let mut rest: Vec<(&[u8], u64, u8)> = Vec::new();
        rest.try_reserve_exact(d.files.len() + children.len())
            .map_err(|_| ENOMEM)?;
        for (n, f) in &d.files {
            rest.push((n.as_bytes(), f.i_ino, DT_REG));
        }
        for (n, ino) in &children {
            rest.push((n, *ino, DT_DIR));
        }
        rest.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries.extend(rest);
        let mut p = pos as usize;
        while p < entries.len() {
            let (name, ino, dtype) = entries[p];
            if !emit(DirEntry {
                name,
                ino,
                dtype,
                next: p as u64 + 1,
            }) {
                break;
            }
            p += 1;
        }
        Ok(p as u64)
    }

    /// O_TRUNC on an interface file does nothing (kernfs ignores it).
    fn set_size(&self, inode: &Arc<Inode>, _size: u64) -> Result<(), Errno> {
        match inode.private::<CgNode>() {
            Some(CgNode::File { .. }) => Ok(()),
            _ => Err(EISDIR),
        }
    }
}

/// An open interface file.
pub struct CgroupFile {
    path: Path,
    inode: Arc<Inode>,
    memcg: u16,
    serial: u64,
    kind: CgFile,
    /// The text produced by the read at offset 0.
    buf: IrqLock<Option<Vec<u8>>>,
}

/// Open an interface file of the cgroup filesystem (`kernfs_fop_open`): EACCES for a
/// read of a file that cannot be read or a write of one that cannot be written.
pub fn open(path: Path, read: bool, write: bool) -> Result<CgroupFile, Errno> {
    let inode = path.inode().ok_or(ENOENT)?;
    let (memcg, serial, kind) = match inode.private::<CgNode>() {
        Some(CgNode::File {
            memcg,
            serial,
            kind,
        }) => (*memcg, *serial, *kind),
        _ => return Err(EISDIR),
    };
    let mode = inode.mode();
    if (read && mode & 0o444 == 0) || (write && mode & 0o222 == 0) {
        return Err(EACCES);
    }
    Ok(CgroupFile {
        path,
        inode,
        memcg,
        serial,
        kind,
        buf: IrqLock::new("cgroup_file", None),
    })
}

/// Whether an inode belongs to the cgroup filesystem.
pub fn is_cgroup_file(inode: &Inode) -> bool {
    inode.i_sb.s_magic == CGROUP2_SUPER_MAGIC && inode.is_reg()
}

/// A limit as memory.max & co. print it: "max" or bytes.
fn tunable(s: &mut String, pages: u64) {
    if pages >= PAGE_COUNTER_MAX {
        s.push_str("max\n");
    } else {
        let _ = writeln!(s, "{}", pages * PAGE);
    }
}

/// The text of a readable file.
fn show(id: u16, kind: CgFile) -> Result<String, Errno> {
    let mut s = String::new();
    s.try_reserve(256).map_err(|_| ENOMEM)?;
    let parent = memcg::parent(id);
    let controllers = |on: bool| if on { "memory\n" } else { "\n" };
    match kind {
        CgFile::Controllers => {
            // The root offers every controller; a child what its parent enabled.
            let on = parent.is_none_or(memcg::subtree_memory);
            s.push_str(controllers(on));
        }
        CgFile::SubtreeControl => s.push_str(controllers(memcg::subtree_memory(id))),
        CgFile::Events => {
            let _ = write!(s, "populated {}\nfrozen 0\n", memcg::populated(id) as u8);
        }
        CgFile::Type => s.push_str("domain\n"),
        CgFile::Stat => {
            let (live, dying) = memcg::descendants(id);
            let _ = write!(s, "nr_descendants {live}\nnr_dying_descendants {dying}\n");
        }
        CgFile::Procs => {
            let pids = memcg::tasks_of(id);
            s.try_reserve(pids.len() * 8).map_err(|_| ENOMEM)?;
            for p in pids {
                let _ = writeln!(s, "{p}");
            }
        }
        CgFile::MemCurrent => {
            let _ = writeln!(s, "{}", memcg::usage(id) * PAGE);
        }
        CgFile::SwapCurrent => {
            let _ = writeln!(s, "{}", memcg::swap_usage(id) * PAGE);
        }
        CgFile::MemPeak => {
            let _ = writeln!(s, "{}", memcg::peak(id, false) * PAGE);
        }
        CgFile::SwapPeak => {
            let _ = writeln!(s, "{}", memcg::peak(id, true) * PAGE);
        }
        CgFile::MemMax => tunable(&mut s, memcg::max(id)),
        CgFile::MemHigh => tunable(&mut s, memcg::high(id)),
        CgFile::MemLow => tunable(&mut s, memcg::low(id)),
        CgFile::MemMin => tunable(&mut s, memcg::min(id)),
        CgFile::SwapMax => tunable(&mut s, memcg::swap_max(id)),
        CgFile::SwapHigh => tunable(&mut s, memcg::swap_high(id)),
        CgFile::MemOomGroup => {
            let _ = writeln!(s, "{}", memcg::oom_group(id) as u8);
        }
        CgFile::MemEvents | CgFile::MemEventsLocal => {
            let ev = memcg::events(id, kind == CgFile::MemEventsLocal);
            for (e, name) in memcg::MEMORY_EVENTS {
                let _ = writeln!(s, "{name} {}", ev[e as usize]);
            }
        }
        CgFile::SwapEvents => {
            let ev = memcg::events(id, false);
            for (e, name) in memcg::SWAP_EVENTS {
                let _ = writeln!(s, "{name} {}", ev[e as usize]);
            }
        }
        CgFile::MemStat => {
            s.try_reserve(1536).map_err(|_| ENOMEM)?;
            for (item, name) in memcg::MEMORY_STAT {
                let v = memcg::stat(id, item).max(0) as u64;
                let v = if item.is_bytes() { v * PAGE } else { v };
                let _ = writeln!(s, "{name} {v}");
            }
        }
        CgFile::MemReclaim => return Err(EINVAL),
    }
    Ok(s)
}

/// A limit write: "max" or bytes with an optional K/M/G/T/P/E suffix, in pages.
fn limit(text: &str) -> Result<u64, Errno> {
    parse_limit(text).map_err(|_| EINVAL)
}

/// Apply a write of `text` to file `kind` of group `id`.
fn store(id: u16, kind: CgFile, text: &str) -> Result<(), Errno> {
    let t = text.trim();
    match kind {
        CgFile::Procs => {
            let pid: i64 = t.parse().map_err(|_| EINVAL)?;
            if !(0..=u32::MAX as i64).contains(&pid) {
                return Err(EINVAL);
            }
            memcg::attach(pid as u32, id)
        }
        CgFile::SubtreeControl => {
            // Every token first, then the changes (all or nothing as Linux's parse).
            let mut want = None;
            for tok in t.split_whitespace() {
                let (on, name) = match tok.as_bytes()[0] {
                    b'+' => (true, &tok[1..]),
                    b'-' => (false, &tok[1..]),
                    _ => return Err(EINVAL),
                };
                if name != "memory" {
                    return Err(EINVAL);
                }
                want = Some(on);
            }
            let Some(on) = want else { return Ok(()) };
            if on {
                // Only a controller in cgroup.controllers can be enabled.
                if memcg::parent(id).is_some_and(|p| !memcg::subtree_memory(p)) {
                    return Err(ENOENT);
                }
            }
            memcg::set_subtree_memory(id, on)
        }
        CgFile::Type => {
            if t == "domain" {
                Ok(())
            } else {
                Err(crate::syscall::errno::EOPNOTSUPP)
            }
        }
        CgFile::MemMax => memcg::try_set_max(id, limit(t)?),
        CgFile::MemHigh => memcg::set_high(id, limit(t)?),
        CgFile::MemLow => memcg::set_low(id, limit(t)?, false),
        CgFile::MemMin => memcg::set_low(id, limit(t)?, true),
        CgFile::SwapMax => memcg::try_set_swap_max(id, limit(t)?),
        CgFile::SwapHigh => memcg::set_swap_high(id, limit(t)?),
        CgFile::MemOomGroup => match t {
            "0" => memcg::set_oom_group(id, false),
            "1" => memcg::set_oom_group(id, true),
            _ => Err(EINVAL),
        },
        CgFile::MemReclaim => {
            // `memory_reclaim`: a byte count ("max" is not one), reclaimed in rounds.
            if t == "max" {
                return Err(EINVAL);
            }
            let want = limit(t)?;
            let mut got = 0;
            for _ in 0..16 {
                if got >= want {
                    break;
                }
                let n = memcg::reclaim(id, want - got);
                if n == 0 {
                    break;
                }
                got += n;
            }
            if got < want {
                return Err(EAGAIN);
            }
            Ok(())
        }
        _ => Err(EINVAL),
    }
}

impl CgroupFile {
    /// ENODEV once the group is removed (kernfs's deactivated node).
    fn live(&self) -> Result<(), Errno> {
        if memcg::serial(self.memcg) == Some(self.serial) {
            Ok(())
        } else {
            Err(ENODEV)
        }
    }
}

impl FileOps for CgroupFile {
    fn read(&self, _: &File, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        // The text is made at offset 0 and kept for the reads that continue it; the
        // lock is not held across the user copy.
        self.live()?;
        let cached = self.buf.lock().take();
        let text = match cached {
            Some(t) if *pos != 0 => t,
            _ => show(self.memcg, self.kind)?.into_bytes(),
        };
        let start = usize::try_from(*pos).unwrap_or(usize::MAX).min(text.len());
        let n = (text.len() - start).min(len);
        let r = copy_to_user(buf, &text[start..start + n]);
        *self.buf.lock() = Some(text);
        r?;
        *pos += n as u64;
        Ok(n as u64)
    }

    fn write(&self, _: &File, buf: u64, len: usize, pos: &mut u64) -> SysResult {
        self.live()?;
        if len > MAX_WRITE {
            return Err(E2BIG);
        }
        let mut b = Vec::new();
        b.try_reserve_exact(len).map_err(|_| ENOMEM)?;
        b.resize(len, 0);
        copy_from_user(&mut b, buf)?;
        let text = core::str::from_utf8(&b).map_err(|_| EINVAL)?;
        store(self.memcg, self.kind, text)?;
        *pos += len as u64;
        Ok(len as u64)
    }

    fn seekable(&self) -> bool {
        true
    }

    fn stat(&self) -> Result<Kstat, Errno> {
        Ok(self.inode.getattr())
    }

    fn vfs_path(&self) -> Option<Path> {
        Some(self.path.clone())
    }

    fn name(&self) -> &'static str {
        "cgroup2"
    }
}
