//! `blkdev PATH [ro]`: reads and writes a block device (or, natively, a disk image file)
//! at byte offsets that are unaligned, cross sectors and pages, and are large (beyond
//! the 1 MiB a virtio request carries, so the kernel splits them); finds the size with
//! `lseek(SEEK_END)`, `fsync`s, reads everything back and prints what it read as
//! checksums. The same output natively, on vmscope and under QEMU means the same bytes
//! went to the same places; the test then compares the image files too.
//!
//! `blkdev PATH read [BYTES]` only reads the whole device sequentially, BYTES (default
//! 65536) per read, and prints the total and the hash: a sequential-read benchmark.
//!
//! With `ro`, the device is expected to be read-only: a write must fail, and the program
//! prints how (`EPERM` from the guest kernel, as Linux's `blkdev_write_iter`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use vmrt::sys::fs::{close, lseek, open, read, write, O_RDONLY, O_RDWR, SEEK_END, SEEK_SET};
use vmrt::sys::nr::SYS_fsync;
use vmrt::sys::{check, syscall1, SysResult};
use vmrt::{eprintln, println};

vmrt::entry!(main);

/// FNV-1a, 64 bits.
fn fnv(data: &[u8], mut h: u64) -> u64 {
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The pattern byte of case `case` at disk offset `off`.
fn pattern(case: u64, off: u64) -> u8 {
    (off.wrapping_mul(31) ^ case.wrapping_mul(0x9e37_79b9) ^ (off >> 9)) as u8
}

fn fsync(fd: i32) -> SysResult<usize> {
    // SAFETY: fsync takes no pointers.
    check(unsafe { syscall1(SYS_fsync, fd as usize) })
}

fn pread_all(fd: i32, off: u64, buf: &mut [u8]) -> SysResult<usize> {
    lseek(fd, off as i64, SEEK_SET)?;
    let mut done = 0;
    while done < buf.len() {
        match read(fd, &mut buf[done..])? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

fn pwrite_all(fd: i32, off: u64, buf: &[u8]) -> SysResult<usize> {
    lseek(fd, off as i64, SEEK_SET)?;
    let mut done = 0;
    while done < buf.len() {
        match write(fd, &buf[done..])? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// Read `fd` to its end in `bs`-byte reads: (bytes, FNV hash).
fn read_all(fd: i32, bs: usize) -> (u64, u64) {
    let mut h = FNV_START;
    let mut total = 0u64;
    let mut buf = vec![0u8; bs];
    loop {
        match read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h = fnv(&buf[..n], h);
                total += n as u64;
            }
            Err(e) => {
                println!("read: {e:?}");
                break;
            }
        }
    }
    (total, h)
}

fn show<T: core::fmt::Display>(r: SysResult<T>) -> alloc::string::String {
    match r {
        Ok(v) => alloc::format!("{v}"),
        Err(e) => alloc::format!("{e:?}"),
    }
}

fn main() -> i32 {
    let args: Vec<_> = vmrt::env::args().collect();
    if args.len() < 2 {
        eprintln!("usage: blkdev PATH [ro]");
        return 2;
    }
    let mut path = args[1].as_bytes().to_vec();
    path.push(0);
    let Ok(cpath) = core::ffi::CStr::from_bytes_with_nul(&path) else {
        return 2;
    };
    let ro = args.get(2).is_some_and(|a| a.as_bytes() == b"ro");
    if args.get(2).is_some_and(|a| a.as_bytes() == b"read") {
        let bs = args
            .get(3)
            .and_then(|a| core::str::from_utf8(a.as_bytes()).ok()?.parse().ok())
            .unwrap_or(65536usize)
            .max(1);
        return match open(cpath, O_RDONLY, 0) {
            Ok(fd) => {
                let (total, h) = read_all(fd, bs);
                println!("read {total} bytes in {bs}-byte reads, hash {h:016x}");
                0
            }
            Err(e) => {
                eprintln!("blkdev: open: {e}");
                1
            }
        };
    }
    let fd = match open(cpath, if ro { O_RDONLY } else { O_RDWR }, 0) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("blkdev: open: {e}");
            return 1;
        }
    };
    let size = match lseek(fd, 0, SEEK_END) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("blkdev: lseek: {e}");
            return 1;
        }
    };
    println!("size {size}");
    let mut head = [0u8; 64];
    println!("read 0+64: {}", show(pread_all(fd, 0, &mut head)));
    println!("head hash {:016x}", fnv(&head, FNV_START));

    if ro {
        // A read-only disk: writing must fail (the descriptor is read-only natively too;
        // the guest refuses it for the disk itself, so try through O_RDWR as well).
        let buf = [0x5au8; 512];
        println!("write on O_RDONLY: {}", show(pwrite_all(fd, 0, &buf)));
        let cpath2 = cpath;
        match open(cpath2, O_RDWR, 0) {
            Ok(fd2) => {
                println!("open O_RDWR: ok");
                println!("write on O_RDWR: {}", show(pwrite_all(fd2, 512, &buf)));
                println!("fsync: {}", show(fsync(fd2)));
                let _ = close(fd2);
            }
            Err(e) => println!("open O_RDWR: {e:?}"),
        }
    } else {
        // (offset, length): aligned, single bytes, sector and page crossings, the last
        // bytes of the disk, a large run and one beyond a request's 1 MiB.
        let cases: [(u64, u64); 10] = [
            (0, 512),
            (1, 1),
            (511, 2),
            (1000, 3000),
            (4095, 2),
            (3 * 4096 - 100, 8292),
            (size - 700, 700),
            (12345, 300_000),
            ((2 << 20) + 17, 1_500_000),
            (size - 1, 1),
        ];
        for (i, &(off, len)) in cases.iter().enumerate() {
            if off + len > size {
                println!("case {i}: skipped (disk too small)");
                continue;
            }
            let buf: Vec<u8> = (0..len).map(|k| pattern(i as u64, off + k)).collect();
            println!("write {off}+{len}: {}", show(pwrite_all(fd, off, &buf)));
        }
        println!("fsync: {}", show(fsync(fd)));
        for (i, &(off, len)) in cases.iter().enumerate() {
            if off + len > size {
                continue;
            }
            // Read a little around the region too (neighbours must be intact).
            let lo = off.saturating_sub(3);
            let hi = (off + len + 3).min(size);
            let mut buf = vec![0u8; (hi - lo) as usize];
            let r = pread_all(fd, lo, &mut buf);
            let later = cases[i + 1..]
                .iter()
                .any(|&(o, l)| o < off + len && off < o + l);
            let ok = later
                || (0..len).all(|k| buf[(off - lo + k) as usize] == pattern(i as u64, off + k));
            println!(
                "read {lo}+{}: {} hash {:016x}{}",
                hi - lo,
                show(r),
                fnv(&buf, FNV_START),
                if ok { "" } else { " MISMATCH" }
            );
        }
    }
    // The whole disk in 64 KiB reads.
    if let Err(e) = lseek(fd, 0, SEEK_SET) {
        println!("lseek: {e:?}");
    }
    let (total, h) = read_all(fd, 65536);
    println!("whole disk: {total} bytes, hash {h:016x}");
    // At the end: nothing more to read.
    let mut b = [0u8; 16];
    println!("read at end: {}", show(pread_all(fd, size, &mut b)));
    println!("close: {}", show(close(fd).map(|_| 0)));
    0
}
