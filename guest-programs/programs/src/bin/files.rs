//! `files [DIR]`: files as a C program sees them, on a writable filesystem. In the
//! directory DIR (else `$FILES_DIR`, else `/tmp/files-test`; created and removed again):
//! - create, write, read back, pwrite past the end (a hole reads as zeros), O_APPEND,
//!   ftruncate down and up, O_TRUNC, O_EXCL, O_DIRECTORY, EISDIR;
//! - mkdir/rmdir (EEXIST, ENOENT, ENOTEMPTY), rename with Linux's rules (EINVAL into its
//!   own subtree, EISDIR, ENOTDIR, ENOTEMPTY, RENAME_NOREPLACE), link counts, symlinks
//!   (readlink, stat through, lstat, dangling), a sorted directory listing with types;
//! - a file unlinked while open lives until its last close;
//! - mmap: MAP_PRIVATE copies on write and leaves the file alone; MAP_SHARED writes reach
//!   read(2) and write(2) reaches the mapping; a child's write through a shared mapping
//!   is seen by its parent; a page past the end of the file is SIGBUS, also after a
//!   truncate shrank the file under the mapping; msync.
//!
//! Only what is the same on any Linux filesystem is printed: errnos, sizes of regular
//! files, link counts, contents, never inode numbers, times or block counts. The same
//! output natively on the host (in a scratch directory) and in the guest.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use vmrt::io::Report;
use vmrt::println;
use vmrt::sys::fs::{
    close, fstat, lseek, open, read, write, O_APPEND, O_CREAT, O_DIRECTORY, O_EXCL, O_RDONLY,
    O_RDWR, O_TRUNC, O_WRONLY,
};
use vmrt::sys::mm::{mmap, munmap, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE};
use vmrt::sys::nr::*;
use vmrt::sys::proc::{exit_group, fork, wait4, Fork};
use vmrt::sys::{call, Errno};

vmrt::entry!(main);

const AT_FDCWD: usize = -100isize as usize;
const AT_REMOVEDIR: usize = 0x200;
const RENAME_NOREPLACE: usize = 1;
const S_IFMT: u32 = 0o170000;
const MS_SYNC: usize = 4;

fn sys(n: usize, args: &[usize]) -> Result<usize, Errno> {
    // SAFETY: pointers passed are valid for the call.
    unsafe { call(n, args) }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn err<T>(r: Result<T, Errno>) -> String {
    match r {
        Ok(_) => String::from("ok"),
        Err(e) => format!("{e:?}"),
    }
}

struct Dir(String);

impl Dir {
    fn p(&self, name: &str) -> CString {
        c(&format!("{}/{}", self.0, name))
    }
    fn mkdir(&self, name: &str) -> Result<usize, Errno> {
        sys(SYS_mkdir, &[self.p(name).as_ptr() as usize, 0o755])
    }
    fn rmdir(&self, name: &str) -> Result<usize, Errno> {
        sys(SYS_rmdir, &[self.p(name).as_ptr() as usize])
    }
    fn unlink(&self, name: &str) -> Result<usize, Errno> {
        sys(SYS_unlink, &[self.p(name).as_ptr() as usize])
    }
    fn rename(&self, a: &str, b: &str) -> Result<usize, Errno> {
        sys(
            SYS_rename,
            &[self.p(a).as_ptr() as usize, self.p(b).as_ptr() as usize],
        )
    }
    fn link(&self, a: &str, b: &str) -> Result<usize, Errno> {
        sys(
            SYS_link,
            &[self.p(a).as_ptr() as usize, self.p(b).as_ptr() as usize],
        )
    }
    fn symlink(&self, target: &str, name: &str) -> Result<usize, Errno> {
        sys(
            SYS_symlink,
            &[c(target).as_ptr() as usize, self.p(name).as_ptr() as usize],
        )
    }
    fn open(&self, name: &str, flags: u32) -> Result<i32, Errno> {
        open(&self.p(name), flags, 0o644)
    }
    fn stat(&self, name: &str, follow: bool) -> Result<vmrt::sys::fs::Stat, Errno> {
        let mut st = vmrt::sys::fs::Stat::default();
        let n = if follow { SYS_stat } else { SYS_lstat };
        sys(
            n,
            &[self.p(name).as_ptr() as usize, &mut st as *mut _ as usize],
        )
        .map(|_| st)
    }
    fn readlink(&self, name: &str) -> Result<String, Errno> {
        let mut b = [0u8; 256];
        let n = sys(
            SYS_readlink,
            &[
                self.p(name).as_ptr() as usize,
                b.as_mut_ptr() as usize,
                b.len(),
            ],
        )?;
        Ok(String::from_utf8_lossy(&b[..n]).into())
    }
    /// The sorted entries of `name` with their types (`d` directory, `f` file, `l` link).
    fn list(&self, name: &str) -> Result<Vec<String>, Errno> {
        let fd = open(&self.p(name), O_RDONLY | O_DIRECTORY, 0)?;
        let mut buf = vec![0u8; 512];
        let mut v = Vec::new();
        loop {
            let n = vmrt::sys::fs::getdents64(fd, &mut buf)?;
            if n == 0 {
                break;
            }
            let mut off = 0;
            while off < n {
                let reclen = u16::from_le_bytes([buf[off + 16], buf[off + 17]]) as usize;
                let t = buf[off + 18];
                let name = &buf[off + 19..off + reclen];
                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                let kind = match t {
                    4 => 'd',
                    8 => 'f',
                    10 => 'l',
                    _ => '?',
                };
                v.push(format!("{kind} {}", String::from_utf8_lossy(&name[..end])));
                off += reclen;
            }
        }
        let _ = close(fd);
        v.sort();
        Ok(v)
    }
}

fn read_all(fd: i32, off: i64) -> Vec<u8> {
    let _ = lseek(fd, off, 0);
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    while let Ok(n) = read(fd, &mut b) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[..n]);
    }
    out
}

fn pwrite(fd: i32, data: &[u8], off: usize) -> Result<usize, Errno> {
    sys(
        SYS_pwrite64,
        &[fd as usize, data.as_ptr() as usize, data.len(), off],
    )
}

fn pread(fd: i32, buf: &mut [u8], off: usize) -> Result<usize, Errno> {
    sys(
        SYS_pread64,
        &[fd as usize, buf.as_mut_ptr() as usize, buf.len(), off],
    )
}

fn size(fd: i32) -> i64 {
    fstat(fd).map_or(-1, |s| s.st_size)
}

/// Run `f` in a child; how it ended: `exit N` or `signal N`.
fn in_child(f: impl FnOnce() -> i32) -> String {
    match fork() {
        Ok(Fork::Child) => exit_group(f()),
        Ok(Fork::Parent(pid)) => match wait4(pid, 0) {
            Ok((_, s)) if s.signaled() => format!("signal {}", s.term_signal()),
            Ok((_, s)) => format!("exit {}", s.exit_status()),
            Err(e) => format!("wait: {e:?}"),
        },
        Err(e) => format!("fork: {e:?}"),
    }
}

fn main() -> i32 {
    let mut r = Report::new();
    let base = match vmrt::env::arg(1).or_else(|| vmrt::env::var("FILES_DIR")) {
        Some(d) => String::from(d.to_str().unwrap_or("/tmp/files-test")),
        None => String::from("/tmp/files-test"),
    };
    let top = c(&base);
    println!(
        "mkdir the test directory: {}",
        err(sys(SYS_mkdir, &[top.as_ptr() as usize, 0o755]))
    );
    let d = Dir(base);

    // ---- data ----
    let fd = d.open("f", O_RDWR | O_CREAT | O_EXCL).unwrap_or(-1);
    r.check("create f", fd >= 0);
    println!("write: {:?}", write(fd, b"hello world"));
    println!("size after write: {}", size(fd));
    println!("read back: {:?}", String::from_utf8_lossy(&read_all(fd, 0)));
    println!("lseek SEEK_END: {:?}", lseek(fd, 0, 2));
    println!("pwrite at 8192: {:?}", pwrite(fd, b"tail!", 8192));
    println!("size with a hole: {}", size(fd));
    let mut hole = [1u8; 16];
    println!("pread of the hole: {:?}", pread(fd, &mut hole, 4096));
    r.check("the hole reads as zeros", hole.iter().all(|&b| b == 0));
    let mut t = [0u8; 8];
    println!("pread across the end: {:?}", pread(fd, &mut t, 8194));
    println!("pread past the end: {:?}", pread(fd, &mut t, 9000));
    println!(
        "ftruncate to 5: {}",
        err(sys(SYS_ftruncate, &[fd as usize, 5]))
    );
    println!("after: {:?}", String::from_utf8_lossy(&read_all(fd, 0)));
    println!(
        "ftruncate to 10000: {}",
        err(sys(SYS_ftruncate, &[fd as usize, 10000]))
    );
    let all = read_all(fd, 0);
    r.check(
        "growing reads zeros past the old end",
        all.len() == 10000 && all[5..].iter().all(|&b| b == 0),
    );
    let _ = close(fd);
    let fa = d.open("f", O_WRONLY | O_APPEND).unwrap_or(-1);
    let _ = lseek(fa, 0, 0);
    println!("O_APPEND write: {:?}", write(fa, b"+end"));
    println!("size after append: {}", size(fa));
    let _ = close(fa);
    let ft = d.open("f", O_WRONLY | O_TRUNC).unwrap_or(-1);
    println!("O_TRUNC size: {}", size(ft));
    let _ = write(ft, b"0123456789");
    let _ = close(ft);
    println!(
        "O_CREAT|O_EXCL on it: {}",
        err(d.open("f", O_CREAT | O_EXCL | O_WRONLY))
    );
    println!("O_DIRECTORY on it: {}", err(d.open("f", O_DIRECTORY)));
    println!("f/x: {}", err(d.open("f/x", O_RDONLY)));
    println!("creat of new/: {}", err(d.open("new/", O_CREAT | O_WRONLY)));

    // ---- names ----
    println!("mkdir a: {}", err(d.mkdir("a")));
    println!("mkdir a again: {}", err(d.mkdir("a")));
    println!("mkdir x/y: {}", err(d.mkdir("x/y")));
    println!("mkdir a/b: {}", err(d.mkdir("a/b")));
    println!("open a O_WRONLY: {}", err(d.open("a", O_WRONLY)));
    println!("a has links: {:?}", d.stat("a", true).map(|s| s.st_nlink));
    println!("rmdir a (not empty): {}", err(d.rmdir("a")));
    println!("rename a into a/b: {}", err(d.rename("a", "a/b/c")));
    println!("rename f over a: {}", err(d.rename("f", "a")));
    println!("rename a over f: {}", err(d.rename("a", "f")));
    println!("mkdir e: {}", err(d.mkdir("e")));
    println!("rename e over a (not empty): {}", err(d.rename("e", "a")));
    println!("rename e over a/b (empty): {}", err(d.rename("e", "a/b")));
    println!("e is gone: {}", err(d.stat("e", true)));
    println!("rename f to a/g: {}", err(d.rename("f", "a/g")));
    println!("f is gone: {}", err(d.stat("f", true)));
    println!(
        "a/g has its data: {:?}",
        d.open("a/g", O_RDONLY)
            .map(|fd| String::from_utf8_lossy(&read_all(fd, 0)).into_owned())
    );
    println!("link a/g h: {}", err(d.link("a/g", "h")));
    println!("links: {:?}", d.stat("h", true).map(|s| s.st_nlink));
    println!("link a/g h again: {}", err(d.link("a/g", "h")));
    println!("link of a directory: {}", err(d.link("a", "a2")));
    let noreplace = sys(
        SYS_renameat2,
        &[
            AT_FDCWD,
            d.p("h").as_ptr() as usize,
            AT_FDCWD,
            d.p("a/g").as_ptr() as usize,
            RENAME_NOREPLACE,
        ],
    );
    println!("RENAME_NOREPLACE onto a/g: {}", err(noreplace));
    println!(
        "rename h onto a/g (same inode): {}",
        err(d.rename("h", "a/g"))
    );
    println!("h still there: {}", err(d.stat("h", true)));
    println!("unlink a/g: {}", err(d.unlink("a/g")));
    println!(
        "links of h now: {:?}",
        d.stat("h", true).map(|s| s.st_nlink)
    );
    println!(
        "symlink to a/missing: {}",
        err(d.symlink("a/missing", "dangling"))
    );
    println!("stat through it: {}", err(d.stat("dangling", true)));
    println!(
        "lstat is a link: {:?}",
        d.stat("dangling", false)
            .map(|s| s.st_mode & S_IFMT == 0o120000)
    );
    println!("symlink l to h: {}", err(d.symlink("h", "l")));
    println!("readlink l: {:?}", d.readlink("l"));
    println!(
        "stat l size (of h): {:?}",
        d.stat("l", true).map(|s| s.st_size)
    );
    println!(
        "lstat l size (of the target string): {:?}",
        d.stat("l", false).map(|s| s.st_size)
    );
    println!("symlink onto h: {}", err(d.symlink("x", "h")));
    println!("unlink a directory: {}", err(d.unlink("a")));
    println!("rmdir a file: {}", err(d.rmdir("h")));
    println!("rmdir a/b/.: {}", err(d.rmdir("a/b/.")));
    println!("listing: {:?}", d.list(""));
    println!("listing of a: {:?}", d.list("a"));

    // ---- unlinked while open ----
    let fo = d.open("h", O_RDWR).unwrap_or(-1);
    println!("unlink h while open: {}", err(d.unlink("h")));
    println!("stat h: {}", err(d.stat("h", true)));
    println!("fstat links: {:?}", fstat(fo).map(|s| s.st_nlink));
    println!(
        "still readable: {:?}",
        String::from_utf8_lossy(&read_all(fo, 0))
    );
    println!("still writable: {:?}", pwrite(fo, b"!", 10));
    let _ = close(fo);

    // ---- mappings ----
    let fm = d.open("m", O_RDWR | O_CREAT).unwrap_or(-1);
    let page: Vec<u8> = (0..PAGE_SIZE).map(|i| (i % 251) as u8).collect();
    let _ = write(fm, &page);
    let _ = write(fm, b"second page");
    println!("m size: {}", size(fm));
    // SAFETY: fresh mappings of the file; no other references into them.
    unsafe {
        let p = mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fm, 0);
        match p {
            Ok(p) => {
                let s = core::slice::from_raw_parts_mut(p, 2 * PAGE_SIZE);
                r.check(
                    "a private mapping shows the file",
                    s[..PAGE_SIZE] == page[..],
                );
                println!(
                    "private mapping, past the end of the file (same page): {:?}",
                    &s[PAGE_SIZE + 9..PAGE_SIZE + 14]
                );
                s[0] = 0xee;
                let mut b = [0u8; 1];
                let _ = pread(fm, &mut b, 0);
                println!("a private write leaves the file alone: {}", b[0] == page[0]);
                let _ = munmap(p, 2 * PAGE_SIZE);
            }
            Err(e) => println!("mmap private: {e:?}"),
        }
        let p = mmap(0, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fm, 0);
        match p {
            Ok(p) => {
                let s = core::slice::from_raw_parts_mut(p, 2 * PAGE_SIZE);
                s[1] = b'S';
                let mut b = [0u8; 1];
                let _ = pread(fm, &mut b, 1);
                println!("a shared write reaches read(2): {}", b[0] == b'S');
                let _ = pwrite(fm, b"W", 2);
                println!("write(2) reaches the mapping: {}", s[2] == b'W');
                let child = in_child(|| {
                    s[3] = b'C';
                    0
                });
                println!(
                    "child writing the shared mapping: {child}; parent sees it: {}",
                    s[3] == b'C'
                );
                println!(
                    "msync: {}",
                    err(sys(SYS_msync, &[p as usize, 2 * PAGE_SIZE, MS_SYNC]))
                );
                // The third page lies wholly past the end of the file.
                let third = p.add(2 * PAGE_SIZE);
                println!(
                    "touching a page past the end: {}",
                    in_child(|| i32::from(core::ptr::read_volatile(third)))
                );
                println!(
                    "ftruncate to 100: {}",
                    err(sys(SYS_ftruncate, &[fm as usize, 100]))
                );
                println!(
                    "the second page after the truncate: {}",
                    in_child(|| i32::from(core::ptr::read_volatile(p.add(PAGE_SIZE))))
                );
                println!(
                    "the tail of the first page reads zeros: {}",
                    (100..PAGE_SIZE).all(|i| s[i] == 0)
                );
                let _ = munmap(p, 3 * PAGE_SIZE);
            }
            Err(e) => println!("mmap shared: {e:?}"),
        }
    }
    let _ = close(fm);

    // ---- clean up ----
    for f in ["m", "l", "dangling"] {
        let _ = d.unlink(f);
    }
    println!("rmdir a/b: {}", err(d.rmdir("a/b")));
    println!("rmdir a: {}", err(d.rmdir("a")));
    println!(
        "rmdir the test directory: {}",
        err(sys(
            SYS_unlinkat,
            &[AT_FDCWD, top.as_ptr() as usize, AT_REMOVEDIR]
        ))
    );
    r.exit_status()
}
