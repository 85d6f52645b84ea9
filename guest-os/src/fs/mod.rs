//! Filesystems: the VFS (superblocks, inodes, the dentry cache, mounts and the path
//! walk) with tmpfs as the root, into which the initramfs (a newc cpio archive from the
//! boot loader) is unpacked at boot as Linux's rootfs is; /proc beside it; pipes, memfds
//! and the console; all as open files ([`file::File`] with [`file::FileOps`]) in
//! per-process descriptor tables ([`fdtable`]).

pub mod blockdev;
pub mod cgroup;
pub mod chrdev;
pub mod console;
pub mod dcache;
pub mod dirent;
pub mod eventfd;
pub mod ext2;
pub mod fdtable;
pub mod file;
pub mod inode;
pub mod memfd;
pub mod mount;
pub mod namei;
pub mod pipe;
pub mod procfs;
pub mod stat;
pub mod super_block;
pub mod tmpfs;
pub mod vfs_file;

use alloc::sync::Arc;
use alloc::vec::Vec;

use kfs::ramfs::{Ino, Ramfs};
use kfs::{FileType, ROOT_INO};

use crate::mm::{phys_to_virt, PhysAddr};
use crate::syscall::errno::{Errno, EACCES, EISDIR, ENOENT, ENOMEM};
use inode::{Inode, InodeOps};
use mount::Path;

/// `PROC_SUPER_MAGIC`.
const PROC_SUPER_MAGIC: u64 = 0x9fa0;

struct ProcSuper;
static PROC_SUPER: ProcSuper = ProcSuper;

impl super_block::SuperOps for ProcSuper {
    fn statfs(&self, sb: &super_block::SuperBlock) -> Result<super_block::Kstatfs, Errno> {
        Ok(super_block::Kstatfs {
            f_type: sb.s_magic,
            f_bsize: crate::mm::PAGE_SIZE,
            f_namelen: namei::NAME_MAX as u64,
            f_frsize: crate::mm::PAGE_SIZE,
            ..Default::default()
        })
    }
}

/// Mount a fresh tmpfs as `/` (`init_rootfs`), unpack the initramfs at `[paddr,
/// paddr+size)` (PVH module 0) into it (`populate_rootfs`), mount /proc and a tmpfs on
/// /tmp, and give the archive's memory to the page allocator (`free_initrd_mem`).
/// Without an archive (None) the root is empty but for the mount points.
pub fn mount_root(initrd: Option<(u64, u64)>) -> Result<(), &'static str> {
    let (sb, root) = tmpfs::new_fs("rootfs", 0o755).map_err(|_| "rootfs: out of memory")?;
    mount::mount(sb, root.clone(), None, "none").map_err(|_| "rootfs: out of memory")?;
    let mut result = Ok(());
    if let Some((paddr, size)) = initrd {
        result = unpack_initramfs(&root, paddr, size);
        free_initrd_mem(paddr, size);
    }
    let root_inode = root.inode().ok_or("rootfs: no root inode")?;
    for d in [&b"proc"[..], b"tmp", b"mnt", b"dev", b"sys"] {
        if root_inode
            .i_op
            .lookup(&root_inode, d)
            .ok()
            .flatten()
            .is_none()
        {
            let mode = if d == b"tmp" { 0o1777 } else { 0o755 };
            tmpfs::TMPFS_OPS
                .mkdir(&root_inode, d, mode)
                .map_err(|_| "rootfs: cannot make a mount point")?;
        }
    }
    let rootp = mount::root().ok_or("rootfs: not mounted")?;
    let at = |name: &[u8]| -> Result<Path, &'static str> {
        let d = namei::lookup_one(&rootp.dentry, name).map_err(|_| "rootfs: lookup")?;
        Ok(Path {
            mnt: rootp.mnt.clone(),
            dentry: d,
        })
    };
    // /proc: its names come from `procfs::lookup`; the root dentry stands for the mount.
    let proc_sb = file::try_arc(super_block::SuperBlock::new(
        "proc",
        PROC_SUPER_MAGIC,
        // The device /proc's inodes report (`stat::PROC_DEV`).
        (0, stat::PROC_DEV as u32),
        &PROC_SUPER,
        alloc::string::String::from("nosuid,nodev,noexec,relatime"),
    ))
    .map_err(|_| "proc: out of memory")?;
    let (_, proc_root) = tmpfs::new_fs("proc", 0o555).map_err(|_| "proc: out of memory")?;
    mount::mount(proc_sb, proc_root, Some(&at(b"proc")?), "proc")
        .map_err(|_| "proc: cannot mount")?;
    let (tmp_sb, tmp_root) = tmpfs::new_fs("tmpfs", 0o1777).map_err(|_| "tmp: out of memory")?;
    mount::mount(tmp_sb, tmp_root, Some(&at(b"tmp")?), "tmpfs").map_err(|_| "tmp: cannot mount")?;
    // /dev: a tmpfs the kernel fills with the device nodes it has (devtmpfs).
    let (dev_sb, dev_root) = tmpfs::new_fs("devtmpfs", 0o755).map_err(|_| "dev: out of memory")?;
    mount::mount(dev_sb, dev_root, Some(&at(b"dev")?), "devtmpfs")
        .map_err(|_| "dev: cannot mount")?;
    mount_cgroup(&rootp).map_err(|_| "cgroup2: cannot mount /sys/fs/cgroup")?;
    // memory.max writes reclaim and kill in the group through these.
    crate::mm::vmscan::init();
    result
}

/// Make /sys/fs/cgroup in the root tmpfs (/sys is no sysfs yet) and mount the cgroup2
/// filesystem there, as systemd does at boot.
fn mount_cgroup(rootp: &Path) -> Result<(), Errno> {
    let mut d = namei::lookup_one(&rootp.dentry, b"sys")?;
    for name in [&b"fs"[..], b"cgroup"] {
        let dir = d.inode().ok_or(ENOENT)?;
        if dir.i_op.lookup(&dir, name)?.is_none() {
            let made = dir.i_op.mkdir(&dir, name, 0o755)?;
            d.drop_child(name);
            d = d.add_child(name, Some(made))?;
        } else {
            d = namei::lookup_one(&d, name)?;
        }
    }
    cgroup::mount_at(&Path {
        mnt: rootp.mnt.clone(),
        dentry: d,
    })
}

/// Mount the disks that hold ext2: the first at /mnt, each further one at /media/NAME
/// (made in the root tmpfs). Disks without ext2 stay reachable as /dev/NAME only.
pub fn mount_disks() {
    let mut first = true;
    for d in crate::block::disks() {
        // One read of each disk's first page says what it holds.
        let Some(page) = ext2::first_page(&d) else {
            continue;
        };
        if !ext2::is_ext2(&page) {
            // A swap area (`swapon -a`, as a distribution's boot does).
            if let Ok(h) = mm_core::swap::parse_swap_header(&page) {
                if let Err(e) = crate::mm::swapfile::swapon_with_header(d.clone(), h, None) {
                    log::warn!("swapon /dev/{}: {e:?}", d.name());
                }
            }
            continue;
        }
        let target = if first {
            Vec::from(&b"/mnt"[..])
        } else {
            let _ = namei::create(b"/media", namei::NewKind::Dir(0o755));
            let t = alloc::format!("/media/{}", d.name()).into_bytes();
            let _ = namei::create(&t, namei::NewKind::Dir(0o755));
            t
        };
        let at = match namei::lookup(&target, true) {
            Ok(namei::Node::Vfs(p)) => p,
            _ => continue,
        };
        let devname = alloc::format!("/dev/{}", d.name());
        match ext2::mount(d.clone()) {
            Ok((sb, root)) => {
                if mount::mount(sb, root, Some(&at), &devname).is_ok() {
                    first = false;
                }
            }
            Err(e) => log::warn!("EXT2-fs ({}): mount failed: {e:?}", d.name()),
        }
    }
}

/// Make `/dev/NAME` for every disk (`devtmpfs_create_node`), after the drivers probed.
pub fn populate_dev() {
    let Ok(namei::Node::Vfs(dev)) = namei::lookup(b"/dev", true) else {
        return;
    };
    let Some(dir) = dev.inode() else { return };
    for &(name, major, minor, perm) in chrdev::DEV_NODES {
        let mode = stat::S_IFCHR | perm;
        if let Err(e) = tmpfs::mknod(&dir, name.as_bytes(), mode, major, minor) {
            log::warn!("devtmpfs: /dev/{name}: {e:?}");
        }
    }
    for d in crate::block::disks() {
        let (major, minor) = d.devt();
        let mode = blockdev::S_IFBLK | 0o660;
        if let Err(e) = tmpfs::mknod(&dir, d.name().as_bytes(), mode, major, minor) {
            log::warn!("devtmpfs: /dev/{}: {e:?}", d.name());
        }
    }
}

/// Copy every entry of the archive into the tmpfs under `root`, directories first.
fn unpack_initramfs(root: &Arc<dcache::Dentry>, paddr: u64, size: u64) -> Result<(), &'static str> {
    let va = phys_to_virt(PhysAddr::new(paddr), size).ok_or("initramfs outside the direct map")?;
    // SAFETY: the module's bytes are reserved until `free_initrd_mem`, after this returns.
    let archive: &[u8] = unsafe { core::slice::from_raw_parts(va.as_ptr::<u8>(), size as usize) };
    let fs = Ramfs::from_cpio(archive).map_err(|_| "initramfs: malformed newc archive")?;
    let root_inode = root.inode().ok_or("rootfs: no root inode")?;
    // (ramfs directory, tmpfs directory) pairs still to copy.
    let mut todo: Vec<(Ino, Arc<Inode>)> = Vec::new();
    todo.push((ROOT_INO, root_inode));
    while let Some((dir, into)) = todo.pop() {
        let entries = fs.readdir(dir).map_err(|_| "initramfs: bad directory")?;
        for e in entries {
            if e.name == b"." || e.name == b".." {
                continue;
            }
            let st = fs.stat(e.ino).map_err(|_| "initramfs: bad inode")?;
            let data = if e.file_type == FileType::Regular {
                fs.data(e.ino).unwrap_or(&[])
            } else {
                &[]
            };
            let target = fs.readlink(e.ino).ok();
            let made = tmpfs::unpack_entry(&into, e.name, &st, data, target)
                .map_err(|_| "initramfs: out of memory unpacking")?;
            if e.file_type == FileType::Directory {
                todo.push((e.ino, made));
            }
        }
    }
    Ok(())
}

/// Give the archive's whole pages to the buddy allocator (`free_initrd_mem`).
fn free_initrd_mem(paddr: u64, size: u64) {
    let page = crate::mm::PAGE_SIZE;
    let start = paddr.div_ceil(page);
    let end = (paddr + size) / page;
    if end > start {
        crate::mm::page_alloc::with(|a| {
            a.free_boot_range(crate::mm::Pfn(start), crate::mm::Pfn(end))
        });
        crate::kprintln!("Freeing initrd memory: {}K", (end - start) * page / 1024);
    }
}

/// Resolve an absolute path to a node of a mounted filesystem (not /proc).
pub fn lookup(path: &[u8]) -> Result<Path, Errno> {
    match namei::lookup(path, true)? {
        namei::Node::Vfs(p) => Ok(p),
        namei::Node::Proc(_) => Err(EACCES),
    }
}

/// Read `len` bytes at `off` of a regular file into a kernel buffer.
pub fn read_kernel(inode: &Inode, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    let size = inode.size();
    if off >= size {
        return Ok(0);
    }
    let n = ((size - off) as usize).min(buf.len());
    let page = crate::mm::PAGE_SIZE;
    let mut done = 0;
    while done < n {
        let p = off + done as u64;
        let o = (p % page) as usize;
        let k = (page as usize - o).min(n - done);
        match crate::mm::shmem::find_get_page(inode.i_mapping, p / page) {
            Some(pfn) => {
                // SAFETY: `k` bytes inside a page we hold a reference on.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        crate::mm::page_address(pfn).as_ptr::<u8>().add(o),
                        buf[done..].as_mut_ptr(),
                        k,
                    )
                };
                crate::mm::page_alloc::free_pages(pfn, 0);
            }
            None => buf[done..done + k].fill(0),
        }
        done += k;
    }
    Ok(n)
}

/// Read a whole small file (for the runner's control files).
pub fn read_file(path: &[u8]) -> Result<Vec<u8>, Errno> {
    let p = lookup(path)?;
    let inode = p.inode().ok_or(ENOENT)?;
    if inode.is_dir() {
        return Err(EISDIR);
    }
    let size = inode.size() as usize;
    let mut v = Vec::new();
    v.try_reserve_exact(size).map_err(|_| ENOMEM)?;
    v.resize(size, 0);
    let n = read_kernel(&inode, 0, &mut v)?;
    v.truncate(n);
    Ok(v)
}
