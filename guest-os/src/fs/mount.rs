//! Mounts (`struct mount`, `fs/namespace.c`): which filesystem's root is seen at which
//! dentry of which other mount, and `/proc/mounts`.
//!
//! One namespace for the whole system. The root mount has no parent; every other mount
//! names its parent mount and the dentry it covers there (which carries `d_mounted`), so
//! the path walk crosses into a mount going down and back out of it at `..`.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::Ordering;

use super::dcache::Dentry;
use super::super_block::SuperBlock;
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, ENOMEM};

pub struct Mount {
    pub mnt_id: u32,
    pub sb: Arc<SuperBlock>,
    pub root: Arc<Dentry>,
    /// The mount this one is attached to and the dentry it covers there (None: `/`).
    pub parent: Option<(Arc<Mount>, Arc<Dentry>)>,
    /// The source `/proc/mounts` prints first (`none`, `/dev/vda`...).
    pub devname: String,
}

/// A location in the tree: a mount and a dentry in it (`struct path`).
#[derive(Clone)]
pub struct Path {
    pub mnt: Arc<Mount>,
    pub dentry: Arc<Dentry>,
}

impl Path {
    pub fn inode(&self) -> Option<Arc<super::inode::Inode>> {
        self.dentry.inode()
    }
}

static MOUNTS: IrqLock<Vec<Arc<Mount>>> = IrqLock::new("mounts", Vec::new());

/// Mount `sb` with root dentry `root` on `at` (None: as `/`).
pub fn mount(
    sb: Arc<SuperBlock>,
    root: Arc<Dentry>,
    at: Option<&Path>,
    devname: &str,
) -> Result<Arc<Mount>, Errno> {
    let mut mounts = MOUNTS.lock();
    mounts.try_reserve(1).map_err(|_| ENOMEM)?;
    let m = super::file::try_arc(Mount {
        mnt_id: 21 + mounts.len() as u32,
        sb,
        root,
        parent: at.map(|p| (p.mnt.clone(), p.dentry.clone())),
        devname: String::from(devname),
    })?;
    if let Some(p) = at {
        p.dentry.d_mounted.fetch_add(1, Ordering::Relaxed);
    }
    mounts.push(m.clone());
    Ok(m)
}

/// The root of the namespace.
pub fn root() -> Option<Path> {
    let mounts = MOUNTS.lock();
    let m = mounts.iter().find(|m| m.parent.is_none())?;
    Some(Path {
        mnt: m.clone(),
        dentry: m.root.clone(),
    })
}

/// The mount on top of `p`, if any (`lookup_mnt`); the latest mount on a dentry wins.
pub fn mounted_on(p: &Path) -> Option<Arc<Mount>> {
    if p.dentry.d_mounted.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let mounts = MOUNTS.lock();
    mounts
        .iter()
        .rev()
        .find(|m| {
            m.parent
                .as_ref()
                .is_some_and(|(pm, d)| Arc::ptr_eq(pm, &p.mnt) && Arc::ptr_eq(d, &p.dentry))
        })
        .cloned()
}

/// Go down through every mount stacked on `p` (`follow_mount`).
pub fn follow_mounts(mut p: Path) -> Path {
    // Each step enters a different mount; there are finitely many.
    for _ in 0..64 {
        match mounted_on(&p) {
            Some(m) => {
                p = Path {
                    dentry: m.root.clone(),
                    mnt: m,
                }
            }
            None => break,
        }
    }
    p
}

/// Every mount, in mount order.
pub fn all() -> Vec<Arc<Mount>> {
    MOUNTS.lock().clone()
}

/// The mount point of `m` as a path string.
pub fn mount_point(m: &Arc<Mount>) -> Vec<u8> {
    let p = Path {
        mnt: m.clone(),
        dentry: m.root.clone(),
    };
    super::namei::d_path(&p).unwrap_or_else(|_| Vec::from(&b"?"[..]))
}

/// `/proc/mounts`: `SOURCE TARGET TYPE OPTIONS 0 0`, one line a mount.
pub fn proc_mounts() -> String {
    let mut s = String::new();
    for m in all() {
        let target = mount_point(&m);
        let _ = writeln!(
            s,
            "{} {} {} {}{}{} 0 0",
            m.devname,
            String::from_utf8_lossy(&target),
            m.sb.s_type,
            if m.sb.read_only { "ro" } else { "rw" },
            if m.sb.options.is_empty() { "" } else { "," },
            m.sb.options
        );
    }
    s
}
