//! Filesystems: the initramfs (a newc cpio archive from the boot loader, unpacked into the
//! read-only ramfs of the `kfs` crate) as the root, /proc beside it, pipes, memfds and the
//! console, all as open files ([`file::File`] with [`file::FileOps`]) in per-process
//! descriptor tables ([`fdtable`]).

pub mod blockdev;
pub mod console;
pub mod dirent;
pub mod eventfd;
pub mod fdtable;
pub mod file;
pub mod memfd;
pub mod namei;
pub mod pipe;
pub mod procfs;
pub mod ramfile;
pub mod stat;

use kfs::ramfs::{Ino, Ramfs};

use crate::mm::{phys_to_virt, PhysAddr};
use crate::sync::IrqLock;
use crate::syscall::errno::{Errno, ENOENT};

static ROOT: IrqLock<Option<Ramfs<'static>>> = IrqLock::new("rootfs", None);

/// Mount the initramfs at `[paddr, paddr+size)` (PVH module 0) as `/`. The archive stays in
/// memory memblock reserved at boot, so file data is borrowed from it, never copied.
pub fn mount_initramfs(paddr: u64, size: u64) -> Result<(), &'static str> {
    let va = phys_to_virt(PhysAddr::new(paddr), size).ok_or("initramfs outside the direct map")?;
    // SAFETY: the module's bytes are reserved for the kernel's lifetime and never written.
    let archive: &'static [u8] =
        unsafe { core::slice::from_raw_parts(va.as_ptr::<u8>(), size as usize) };
    let fs = Ramfs::from_cpio(archive).map_err(|_| "initramfs: malformed newc archive")?;
    *ROOT.lock() = Some(fs);
    Ok(())
}

fn errno(e: kfs::Errno) -> Errno {
    Errno(e.0)
}

/// Run `f` on the root filesystem.
pub fn with_root<R>(f: impl FnOnce(&Ramfs<'static>) -> Result<R, kfs::Errno>) -> Result<R, Errno> {
    match ROOT.lock().as_ref() {
        Some(fs) => f(fs).map_err(errno),
        None => Err(ENOENT),
    }
}

/// Resolve an absolute path.
pub fn lookup(path: &[u8]) -> Result<Ino, Errno> {
    with_root(|fs| fs.lookup(path))
}

/// The whole contents of a regular file, borrowed from the archive.
pub fn file_data(ino: Ino) -> Result<&'static [u8], Errno> {
    with_root(|fs| {
        let d = fs.data(ino)?;
        // SAFETY: ramfs data borrows the 'static archive (see `mount_initramfs`) and the
        // filesystem is never unmounted, so the bytes outlive any caller.
        Ok(unsafe { core::slice::from_raw_parts(d.as_ptr(), d.len()) })
    })
}

/// Read a whole small file (for the runner's control files).
pub fn read_file(path: &[u8]) -> Result<&'static [u8], Errno> {
    file_data(lookup(path)?)
}
