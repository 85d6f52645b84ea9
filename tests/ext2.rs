//! ext2 on a virtio disk under the guest kernel: the VFS, the page cache, writeback and the
//! clean unmount, checked against real oracles: the same program natively on the host and
//! under QEMU with the same disk, and e2fsprogs (`e2fsck -fn`, `debugfs`) on the images a
//! run leaves.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_same_text, native_command, qemu_present, root, stderr, stdout, vmscope};

/// Finds an e2fsprogs tool on PATH or in the sbin directories, or fails saying what to
/// install.
fn tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/sbin", "/usr/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found: install e2fsprogs"))
}

/// A scratch directory, removed afterwards.
struct Dir(PathBuf);
impl Dir {
    fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("vmscope-ext2-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `mke2fs -t ext2 -b BS -d SRC IMG SIZE` with a fixed UUID and time.
fn mkfs(src: &Path, img: &Path, block_size: u32, size_kb: u32) {
    let out = Command::new(tool("mke2fs"))
        .args(["-q", "-F", "-t", "ext2", "-b", &block_size.to_string()])
        .args(["-U", "4a8f2a6e-1d4e-4c4b-9a1f-2e6f8c3b5d70"])
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .arg("-d")
        .arg(src)
        .arg(img)
        .arg(size_kb.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mke2fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_fsck_clean(img: &Path) {
    let out = Command::new(tool("e2fsck"))
        .arg("-fn")
        .arg(img)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "e2fsck -fn {}:\n{}{}",
        img.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn debugfs_cat(img: &Path, path: &str) -> Vec<u8> {
    let out = Command::new(tool("debugfs"))
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(img)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// The contents `pagecache write` writes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i * 7 + i / 4096) % 251) as u8)
        .collect()
}

/// A small tree to start an image from.
fn populate(src: &Path) {
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("hello.txt"), "hello from ext2\n").unwrap();
    let numbers: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    std::fs::write(src.join("sub/numbers"), numbers).unwrap();
    std::os::unix::fs::symlink("hello.txt", src.join("link")).unwrap();
}

fn run_disk(img: &Path, args: &[&str]) -> Output {
    let mut v = vec!["run", "--disk", img.to_str().unwrap()];
    v.extend_from_slice(args);
    vmscope(&v)
}

fn guest_bin(name: &str) -> PathBuf {
    root()
        .join("target/guest-programs/x86_64-unknown-none/release")
        .join(name)
}

/// The `files` program on ext2 (data, names, links, unlinked-while-open, private and
/// shared mappings, SIGBUS, msync): the same as natively in a host directory and under
/// QEMU with a copy of the same disk; both images fsck-clean afterwards, at 1 KiB and
/// 4 KiB blocks.
#[test]
fn files_on_ext2_match_the_host_and_qemu() {
    let d = Dir::new("files");
    populate(&d.join("src"));
    let host = d.join("host-files");
    let native = native_command(&guest_bin("files"), "/bin/files")
        .arg(&host)
        .output()
        .unwrap();
    assert_eq!(native.status.code(), Some(0), "{}", stdout(&native));
    for bs in [1024, 4096] {
        let img = d.join(&format!("vm-{bs}.img"));
        mkfs(&d.join("src"), &img, bs, 8192);
        let o = run_disk(&img, &["files", "/mnt/files"]);
        assert_same_text(
            &format!("block size {bs} ({})", stderr(&o)),
            &stdout(&o),
            &stdout(&native),
        );
        assert_eq!(o.status.code(), Some(0));
        assert_fsck_clean(&img);
        if qemu_present() {
            let qimg = d.join(&format!("qemu-{bs}.img"));
            mkfs(&d.join("src"), &qimg, bs, 8192);
            let q = run_disk(&qimg, &["--qemu", "files", "/mnt/files"]);
            assert_eq!(
                stdout(&q),
                stdout(&native),
                "QEMU, block size {bs}: {}",
                stderr(&q)
            );
            assert_fsck_clean(&qimg);
        }
    }
}

/// A file written without any sync reaches the disk: writeback and the clean unmount at
/// the end of the run. debugfs reads back exactly the bytes, e2fsck finds the image clean,
/// and the flusher is a kernel thread visible in /proc.
#[test]
fn writes_reach_the_disk_without_sync() {
    let d = Dir::new("write");
    populate(&d.join("src"));
    for (bs, bytes) in [(1024u32, 300_000usize), (4096, 1 << 20)] {
        let img = d.join(&format!("w-{bs}.img"));
        mkfs(&d.join("src"), &img, bs, 8192);
        let o = run_disk(
            &img,
            &["pagecache", "write", "/mnt/out", &bytes.to_string()],
        );
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).contains(&format!("wrote {bytes} bytes")),
            "{}",
            stdout(&o)
        );
        assert!(
            stdout(&o).contains("kernel thread: flush-252:0"),
            "{}",
            stdout(&o)
        );
        assert_eq!(debugfs_cat(&img, "/out"), pattern(bytes), "block size {bs}");
        assert_eq!(debugfs_cat(&img, "/hello.txt"), b"hello from ext2\n");
        assert_fsck_clean(&img);
    }
}

/// Reading a 64 MiB file twice: the first pass reads ahead (fewer than one disk request
/// per 64 KiB), the second comes from the page cache (no major fault, no disk request),
/// and read(2) after the mapping finds every page cached.
#[test]
fn the_second_read_comes_from_the_page_cache() {
    let d = Dir::new("read");
    let src = d.join("src");
    std::fs::create_dir_all(&src).unwrap();
    const SIZE: usize = 64 << 20;
    std::fs::write(src.join("big"), pattern(SIZE)).unwrap();
    let img = d.join("big.img");
    mkfs(&src, &img, 4096, 80 << 10);
    let o = run_disk(&img, &["--mem", "256M", "pagecache", "read", "/mnt/big"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    let nums = |line: &str| -> Vec<u64> {
        out.lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("no {line:?} in {out}"))
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let p1 = nums("mmap pass 1:");
    let p2 = nums("mmap pass 2:");
    // [pass, major faults, disk reads, sum]
    assert!(p1[1] > 0, "the first pass must read the disk: {out}");
    assert!(
        p1[2] < (SIZE / (64 << 10)) as u64,
        "readahead: {} requests for 64 MiB\n{out}",
        p1[2]
    );
    assert_eq!((p2[1], p2[2]), (0, 0), "the second pass: {out}");
    assert_eq!(p1[3], p2[3]);
    assert!(
        out.contains("read(2): 67108864 bytes, 0 disk reads, pattern ok"),
        "{out}"
    );
}

/// Major faults and writeback show in the fault trace: `"major":true` on the faults that
/// read the disk, and `writeback` events.
#[test]
fn the_fault_trace_shows_major_faults_and_writeback() {
    let d = Dir::new("trace");
    let src = d.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), pattern(1 << 20)).unwrap();
    let img = d.join("t.img");
    mkfs(&src, &img, 4096, 8192);
    let trace = d.join("read.jsonl");
    let o = run_disk(
        &img,
        &[
            "--fault-trace",
            trace.to_str().unwrap(),
            "pagecache",
            "read",
            "/mnt/f",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = std::fs::read_to_string(&trace).unwrap();
    let major = t.lines().filter(|l| l.contains("\"major\":true")).count();
    assert!(major > 0, "no major fault in the trace");
    assert!(
        t.lines()
            .filter(|l| l.contains("\"what\":\"fault\""))
            .count()
            > major
    );
    let trace = d.join("write.jsonl");
    let o = run_disk(
        &img,
        &[
            "--fault-trace",
            trace.to_str().unwrap(),
            "pagecache",
            "write",
            "/mnt/w",
            "200000",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = std::fs::read_to_string(&trace).unwrap();
    assert!(
        t.contains("\"what\":\"writeback\""),
        "no writeback in the trace"
    );
    assert_fsck_clean(&img);
    // The timeline: the flusher is a task of its own (a track), writebacks are slices.
    let timeline = d.join("write.json");
    let o = run_disk(
        &img,
        &[
            "--timeline",
            timeline.to_str().unwrap(),
            "pagecache",
            "write",
            "/mnt/w2",
            "200000",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tl = std::fs::read_to_string(&timeline).unwrap();
    assert!(
        tl.contains("flush-252:0"),
        "no flusher track in the timeline"
    );
    assert!(
        tl.contains("\"cat\":\"writeback\""),
        "no writeback slice in the timeline"
    );
}

/// Damaged images (random blocks overwritten, seeded): the mount fails or the damaged
/// files give errors, and the kernel never panics or hangs.
#[test]
fn corrupt_ext2_images_never_panic_the_kernel() {
    let d = Dir::new("corrupt");
    populate(&d.join("src"));
    let clean = d.join("clean.img");
    mkfs(&d.join("src"), &clean, 1024, 2048);
    let bytes = std::fs::read(&clean).unwrap();
    let blocks = bytes.len() / 1024;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for case in 0..12 {
        let mut img = bytes.clone();
        // The first blocks hold the superblock, descriptors, bitmaps and inode table.
        let damaged = 1 + (case % 4) * 2;
        for _ in 0..damaged {
            let b = if next() % 2 == 0 {
                (next() % 48) as usize
            } else {
                (next() as usize) % blocks
            };
            for x in &mut img[b * 1024..(b + 1) * 1024] {
                *x = next() as u8;
            }
        }
        let p = d.join(&format!("c{case}.img"));
        std::fs::write(&p, &img).unwrap();
        for args in [
            &["files", "/mnt/files"][..],
            &["cat", "/mnt/hello.txt", "/mnt/sub/numbers"],
        ] {
            let mut v = vec!["--max-insns", "3000000000"];
            v.extend_from_slice(args);
            let o = run_disk(&p, &v);
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert!(!all.contains("Kernel panic"), "case {case} {args:?}: {all}");
            let code = o.status.code();
            assert!(
                code.is_some() && code != Some(143),
                "case {case} {args:?}: status {code:?}\n{all}"
            );
        }
    }
}
