//! The dentry cache (`fs/dcache.c`): names bound to inodes, as a tree per superblock.
//!
//! A dentry knows its name, its parent (weakly: a parent lives while its cached children
//! are reachable from the root, and a removed directory's dentry simply loses it) and its
//! inode, or none: a *negative* dentry records that a name does not exist, so the next
//! lookup of a missing name (PATH searches, O_CREAT checks) does not ask the filesystem
//! again. Children are cached in their parent's map; the VFS keeps the cache true on
//! create (`d_instantiate`), unlink/rmdir (`d_delete`) and rename (`d_move`).

use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::inode::Inode;
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, ENOMEM};

/// Dentries alive and negative ones among them (`/proc/sys/fs/dentry-state`'s first
/// fields).
pub static NR_DENTRY: AtomicU64 = AtomicU64::new(0);
pub static NR_NEGATIVE: AtomicU64 = AtomicU64::new(0);

pub struct Dentry {
    pub d_name: IrqLock<Vec<u8>>,
    d_parent: IrqLock<Weak<Dentry>>,
    d_inode: IrqLock<Option<Arc<Inode>>>,
    d_children: IrqLock<BTreeMap<Vec<u8>, Arc<Dentry>>>,
    /// Mounts on this dentry (`DCACHE_MOUNTED`).
    pub d_mounted: AtomicU32,
}

impl Dentry {
    /// A root dentry (`d_make_root`).
    pub fn new_root(inode: Arc<Inode>) -> Arc<Dentry> {
        NR_DENTRY.fetch_add(1, Ordering::Relaxed);
        Arc::new(Dentry {
            d_name: IrqLock::new("d_name", Vec::from(&b"/"[..])),
            d_parent: IrqLock::new("d_parent", Weak::new()),
            d_inode: IrqLock::new("d_inode", Some(inode)),
            d_children: IrqLock::new("d_children", BTreeMap::new()),
            d_mounted: AtomicU32::new(0),
        })
    }

    pub fn inode(&self) -> Option<Arc<Inode>> {
        self.d_inode.lock().clone()
    }

    pub fn is_negative(&self) -> bool {
        self.d_inode.lock().is_none()
    }

    pub fn parent(&self) -> Option<Arc<Dentry>> {
        self.d_parent.lock().upgrade()
    }

    pub fn name(&self) -> Vec<u8> {
        self.d_name.lock().clone()
    }

    /// Whether this dentry is still in its parent's map (a deleted directory that is
    /// somebody's working directory is not: `d_unhashed`).
    pub fn is_hashed(self: &Arc<Dentry>) -> bool {
        match self.parent() {
            None => true,
            Some(p) => {
                let name = self.name();
                p.d_children
                    .lock()
                    .get(&name)
                    .is_some_and(|c| Arc::ptr_eq(c, self))
            }
        }
    }

    /// The cached child `name` (`d_lookup`), positive or negative.
    pub fn child(&self, name: &[u8]) -> Option<Arc<Dentry>> {
        self.d_children.lock().get(name).cloned()
    }

    /// Cache the result of a filesystem lookup or create under `name` (`d_add`),
    /// replacing any cached entry.
    pub fn add_child(
        self: &Arc<Dentry>,
        name: &[u8],
        inode: Option<Arc<Inode>>,
    ) -> Result<Arc<Dentry>, Errno> {
        let mut n = Vec::new();
        n.try_reserve(name.len()).map_err(|_| ENOMEM)?;
        n.extend_from_slice(name);
        let negative = inode.is_none();
        let d = super::file::try_arc(Dentry {
            d_name: IrqLock::new("d_name", n.clone()),
            d_parent: IrqLock::new("d_parent", Arc::downgrade(self)),
            d_inode: IrqLock::new("d_inode", inode),
            d_children: IrqLock::new("d_children", BTreeMap::new()),
            d_mounted: AtomicU32::new(0),
        })?;
        NR_DENTRY.fetch_add(1, Ordering::Relaxed);
        if negative {
            NR_NEGATIVE.fetch_add(1, Ordering::Relaxed);
        }
        self.d_children.lock().insert(n, d.clone());
        Ok(d)
    }

    /// Forget the cached child `name` (`d_drop`): its entry changed underneath.
    pub fn drop_child(&self, name: &[u8]) -> Option<Arc<Dentry>> {
        self.d_children.lock().remove(name)
    }

    /// Drop the cached dentries below this one that nobody else holds (the dcache
    /// shrinker, `shrink_dcache_sb`), `depth` levels down; returns how many went. The
    /// names stay in the filesystem: the next lookup asks it again.
    pub fn prune(&self, depth: u32) -> usize {
        let mut gone = 0;
        if depth > 0 {
            let children: alloc::vec::Vec<Arc<Dentry>> =
                self.d_children.lock().values().cloned().collect();
            for d in &children {
                gone += d.prune(depth - 1);
            }
        }
        let mut map = self.d_children.lock();
        let before = map.len();
        map.retain(|_, d| {
            Arc::strong_count(d) > 1
                || d.d_mounted.load(Ordering::Relaxed) > 0
                || !d.d_children.lock().is_empty()
        });
        gone + before - map.len()
    }

    /// Move this dentry to `new_parent` under `new_name` (`d_move` after a rename).
    pub fn move_to(self: &Arc<Dentry>, new_parent: &Arc<Dentry>, new_name: &[u8]) {
        if let Some(old) = self.parent() {
            let name = self.name();
            let mut c = old.d_children.lock();
            if c.get(&name).is_some_and(|d| Arc::ptr_eq(d, self)) {
                c.remove(&name);
            }
        }
        *self.d_name.lock() = new_name.to_vec();
        *self.d_parent.lock() = Arc::downgrade(new_parent);
        new_parent
            .d_children
            .lock()
            .insert(new_name.to_vec(), self.clone());
    }

    /// Whether `self` is `ancestor` or below it (`is_subdir`), following parents.
    pub fn is_subdir(self: &Arc<Dentry>, ancestor: &Arc<Dentry>) -> bool {
        let mut cur = Some(self.clone());
        // Parents only go up; a tree is never deeper than PATH_MAX components.
        for _ in 0..super::namei::PATH_MAX {
            match cur {
                Some(d) if Arc::ptr_eq(&d, ancestor) => return true,
                Some(d) => cur = d.parent(),
                None => return false,
            }
        }
        false
    }
}

impl Drop for Dentry {
    fn drop(&mut self) {
        NR_DENTRY.fetch_sub(1, Ordering::Relaxed);
        if self.d_inode.lock().is_none() {
            NR_NEGATIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Drop every unused dentry of every mount (`drop_caches` 2, the dentry half).
pub fn shrink_all() -> usize {
    super::mount::all()
        .iter()
        .map(|m| m.root.prune(super::namei::PATH_MAX as u32 / 2))
        .sum()
}
