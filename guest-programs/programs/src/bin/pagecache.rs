//! `pagecache write PATH BYTES` | `pagecache read PATH`: the page cache of a disk file,
//! seen from user space.
//!
//! - `write`: writes BYTES bytes of a fixed pattern (byte `i` is `(i * 7 + i / 4096) % 251`)
//!   to PATH in 64 KiB pieces and exits without any sync: the kernel's writeback and its
//!   clean unmount must get the bytes to the disk. Prints the names of the kernel's
//!   flusher threads (`flush-MAJ:MIN` in /proc/PID/stat) it finds afterwards.
//! - `bench DIR SRC N`: guest-time figures for `scripts/bench-files.sh`: writes 16 MiB
//!   to DIR/bench and fsyncs it (MiB/s), reads the file SRC that nothing has read yet
//!   (MiB/s, from the disk), then does N cached 4 KiB `pread`s of it (the script takes the
//!   instructions per read from two runs' `--stats`).
//! - `read`: maps PATH and touches every page, twice, then reads it with read(2) in
//!   64 KiB pieces (checking the pattern at every 509th byte); for each pass prints the
//!   major faults it took (`/proc/self/stat` field 12), the disk's completed reads
//!   (`/proc/diskstats`, vda) and a checksum.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::ffi::CString;
use alloc::string::String;
use alloc::vec;
use vmrt::println;
use vmrt::sys::fs::{close, fstat, open, read, write, O_CREAT, O_RDONLY, O_TRUNC, O_WRONLY};
use vmrt::sys::mm::{mmap, munmap, MAP_SHARED, PAGE_SIZE, PROT_READ};

vmrt::entry!(main);

const CHUNK: usize = 64 * 1024;

fn pattern(i: u64) -> u8 {
    ((i * 7 + i / 4096) % 251) as u8
}

/// Field `n` (1-based) of /proc/self/stat, after the command in parentheses.
fn stat_field(n: usize) -> u64 {
    let text = vmrt::io::read_file(c"/proc/self/stat").unwrap_or_default();
    let s = String::from_utf8_lossy(&text);
    let after = s.rfind(')').map_or("", |i| &s[i + 1..]);
    // Fields after the command start at 3.
    after
        .split_whitespace()
        .nth(n - 3)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Reads completed on vda (`/proc/diskstats` field 4).
fn disk_reads() -> u64 {
    let text = vmrt::io::read_file(c"/proc/diskstats").unwrap_or_default();
    let s = String::from_utf8_lossy(&text);
    s.lines()
        .find(|l| l.split_whitespace().nth(2) == Some("vda"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn write_file(path: &CString, bytes: u64) -> i32 {
    let fd = match open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644) {
        Ok(fd) => fd,
        Err(e) => {
            println!("open: {e:?}");
            return 1;
        }
    };
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < bytes {
        let n = (bytes - done).min(CHUNK as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(done + i as u64);
        }
        match write(fd, &buf[..n]) {
            Ok(w) if w == n => done += n as u64,
            r => {
                println!("write at {done}: {r:?}");
                return 1;
            }
        }
    }
    let _ = close(fd);
    println!("wrote {done} bytes");
    // The kernel threads that write dirty pages back.
    if let Ok(fd) = open(c"/proc", O_RDONLY | vmrt::sys::fs::O_DIRECTORY, 0) {
        let mut d = [0u8; 4096];
        while let Ok(n) = vmrt::sys::fs::getdents64(fd, &mut d) {
            if n == 0 {
                break;
            }
            for e in vmrt::sys::fs::DirEntries::new(&d[..n]) {
                let name = String::from_utf8_lossy(e.name);
                if !name.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let p = CString::new(alloc::format!("/proc/{name}/stat")).unwrap_or_default();
                let t = vmrt::io::read_file(&p).unwrap_or_default();
                let t = String::from_utf8_lossy(&t);
                if let (Some(a), Some(b)) = (t.find('('), t.rfind(')')) {
                    if t[a + 1..b].starts_with("flush-") {
                        println!("kernel thread: {}", &t[a + 1..b]);
                    }
                }
            }
        }
        let _ = close(fd);
    }
    0
}

fn read_file(path: &CString) -> i32 {
    let fd = match open(path, O_RDONLY, 0) {
        Ok(fd) => fd,
        Err(e) => {
            println!("open: {e:?}");
            return 1;
        }
    };
    let size = fstat(fd).map_or(0, |s| s.st_size as usize);
    // SAFETY: a fresh shared read-only mapping of the whole file.
    let p = match unsafe { mmap(0, size, PROT_READ, MAP_SHARED, fd, 0) } {
        Ok(p) => p,
        Err(e) => {
            println!("mmap: {e:?}");
            return 1;
        }
    };
    for pass in 1..=2 {
        let (f0, r0) = (stat_field(12), disk_reads());
        let mut sum = 0u64;
        let mut off = 0;
        while off < size {
            // SAFETY: inside the mapping.
            sum = sum.wrapping_add(u64::from(unsafe { core::ptr::read_volatile(p.add(off)) }));
            off += PAGE_SIZE;
        }
        println!(
            "mmap pass {pass}: {} major faults, {} disk reads, sum {sum}",
            stat_field(12) - f0,
            disk_reads() - r0
        );
    }
    // SAFETY: not used afterwards.
    let _ = unsafe { munmap(p, size) };
    let r0 = disk_reads();
    let mut buf = vec![0u8; CHUNK];
    let mut sum = 0u64;
    let mut total = 0u64;
    let mut ok = true;
    loop {
        match read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Every 509th byte (a prime stride, so every offset in a page is met):
                // checking all 64 MiB would cost the guest over a billion instructions.
                let mut i = (509 - total % 509) % 509;
                while (i as usize) < n {
                    let b = buf[i as usize];
                    ok &= b == pattern(total + i);
                    sum = sum.wrapping_add(u64::from(b));
                    i += 509;
                }
                total += n as u64;
            }
            Err(e) => {
                println!("read: {e:?}");
                return 1;
            }
        }
    }
    println!(
        "read(2): {total} bytes, {} disk reads, pattern {}",
        disk_reads() - r0,
        if ok { "ok" } else { "WRONG" }
    );
    let _ = close(fd);
    i32::from(!ok)
}

/// Nanoseconds of the monotonic clock (virtual time on vmscope).
fn now_ns() -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: a valid timespec for the call.
    let _ = unsafe {
        vmrt::sys::call(
            vmrt::sys::nr::SYS_clock_gettime,
            &[1, ts.as_mut_ptr() as usize],
        )
    };
    ts[0] as u64 * 1_000_000_000 + ts[1] as u64
}

fn mib_per_s(bytes: u64, ns: u64) -> u64 {
    (bytes * 1_000_000_000 / ns.max(1)) >> 20
}

fn bench(dir: &str, src: &str, n: u64) -> i32 {
    const WRITE_BYTES: u64 = 16 << 20;
    let Ok(out) = CString::new(alloc::format!("{dir}/bench")) else {
        return 2;
    };
    let Ok(fd) = open(&out, O_WRONLY | O_CREAT | O_TRUNC, 0o644) else {
        println!("open {dir}/bench failed");
        return 1;
    };
    let buf = vec![0x5au8; CHUNK];
    let t0 = now_ns();
    let mut done = 0;
    while done < WRITE_BYTES {
        if write(fd, &buf) != Ok(CHUNK) {
            println!("write failed");
            return 1;
        }
        done += CHUNK as u64;
    }
    // SAFETY: a valid descriptor.
    let _ = unsafe { vmrt::sys::call(vmrt::sys::nr::SYS_fsync, &[fd as usize]) };
    let t1 = now_ns();
    let _ = close(fd);
    println!(
        "sequential write + fsync: {} MiB/s (guest time)",
        mib_per_s(done, t1 - t0)
    );
    let Ok(src_c) = CString::new(src) else {
        return 2;
    };
    let Ok(fd) = open(&src_c, O_RDONLY, 0) else {
        println!("open {src} failed");
        return 1;
    };
    let mut rbuf = vec![0u8; CHUNK];
    let t0 = now_ns();
    let mut total = 0u64;
    while let Ok(k) = read(fd, &mut rbuf) {
        if k == 0 {
            break;
        }
        total += k as u64;
    }
    let t1 = now_ns();
    println!(
        "sequential read from the disk: {} MiB/s (guest time)",
        mib_per_s(total, t1 - t0)
    );
    let mut page = [0u8; 4096];
    let t0 = now_ns();
    for _ in 0..n {
        // SAFETY: a valid buffer.
        let _ = unsafe {
            vmrt::sys::call(
                vmrt::sys::nr::SYS_pread64,
                &[fd as usize, page.as_mut_ptr() as usize, page.len(), 0],
            )
        };
    }
    let t1 = now_ns();
    println!(
        "{n} cached 4 KiB reads: {} ns each (guest time)",
        (t1 - t0) / n.max(1)
    );
    let _ = close(fd);
    0
}

fn main() -> i32 {
    let arg = |i| vmrt::env::arg(i).map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned());
    let (Some(cmd), Some(path)) = (arg(1), arg(2)) else {
        println!("usage: pagecache write PATH BYTES | pagecache read PATH");
        return 2;
    };
    let Ok(path) = CString::new(path) else {
        return 2;
    };
    match cmd.as_str() {
        "write" => write_file(&path, arg(3).and_then(|b| b.parse().ok()).unwrap_or(0)),
        "read" => read_file(&path),
        "bench" => {
            let src = arg(3).unwrap_or_default();
            let n = arg(4).and_then(|v| v.parse().ok()).unwrap_or(1000);
            let dir = String::from_utf8_lossy(path.as_bytes()).into_owned();
            bench(&dir, &src, n)
        }
        _ => 2,
    }
}
