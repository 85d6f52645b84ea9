//! The guest kernel's file-system core, free of hardware access so that the same code runs in
//! the kernel and in host tests:
//!
//! * [`cpio`]: a parser for the newc ("070701") cpio format, the format of Linux initramfs
//!   images, that reports malformed or truncated archives as errors instead of panicking;
//! * [`ramfs`]: the in-memory file system an archive unpacks into (directories, regular
//!   files, symbolic links, device nodes), with path lookup, `read`, `stat` and `readdir`;
//! * [`fdtable`]: a process's descriptor table (`files_struct`), generic over the open-file
//!   type;
//! * [`Errno`]: Linux error numbers, so the kernel can return them from system calls as is.

#![cfg_attr(not(test), no_std)]

// The directory tree lives on the heap: the kernel provides a global allocator (kmalloc),
// the host tests std's.
extern crate alloc;

pub mod cpio;
mod errno;
pub mod fdtable;
pub mod ramfs;

pub use errno::Errno;
pub use ramfs::{BuildError, DirEntry, FileType, Ino, Ramfs, Stat, ROOT_INO};

/// Longest path, including its terminating NUL (Linux's `PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Longest file name (one path component, Linux's `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Symbolic links followed in one lookup before it fails with `ELOOP` (Linux's
/// `MAXSYMLINKS`).
pub const MAX_SYMLINKS: u32 = 40;
