//! virtio disks (`--disk`): the guest program `blkdev` reads and writes a disk at
//! unaligned offsets, across sectors and pages and in large pieces, on vmscope
//! (`/dev/vda`), under QEMU, and natively against an image file; the outputs and the
//! three image files afterwards must be identical. Also: read-only disks, bad `--disk`
//! arguments, writes surviving an instruction-limit stop, and PCI configuration space
//! as the kernel reads it, identical to QEMU's.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

const DISK_BYTES: usize = 8 << 20;

/// Deterministic, incompressible image contents (xorshift64).
fn image_bytes() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(DISK_BYTES);
    while v.len() < DISK_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn blkdev_bin() -> PathBuf {
    root().join("target/guest-programs/x86_64-unknown-none/release/blkdev")
}

/// The environment `vmscope run` gives a program.
fn native_blkdev(args: &[&str]) -> Output {
    native_command(&blkdev_bin(), "/bin/blkdev")
        .args(args)
        .env("HOME", "/")
        .env("PATH", "/bin")
        .env("TERM", "dumb")
        .env("VMSCOPE_BIN", "/bin")
        .output()
        .expect("run blkdev natively")
}

fn read(p: &str) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn assert_same_run(a: &Output, b: &Output, what: &str) {
    assert_eq!(a.status.code(), b.status.code(), "{what}: status");
    assert_eq!(stdout(a), stdout(b), "{what}: stdout");
    assert_eq!(stderr(a), stderr(b), "{what}: stderr");
}

#[test]
fn blkdev_matches_native_and_qemu_and_images_agree() {
    let original = image_bytes();
    let vm_img = Scratch::new("disk-vm.img", &original);
    let native_img = Scratch::new("disk-native.img", &original);
    let vm = vmscope(&[
        "run",
        "--stats",
        "--disk",
        vm_img.path(),
        "blkdev",
        "/dev/vda",
    ]);
    assert_eq!(vm.status.code(), Some(0), "{}", stderr(&vm));
    let out = stdout(&vm);
    assert!(!out.contains("MISMATCH"), "{out}");
    assert!(out.contains("write 2097169+1500000: 1500000"), "{out}");
    assert!(out.contains("fsync: 0"), "{out}");
    assert!(
        out.contains(&format!("whole disk: {DISK_BYTES} bytes")),
        "{out}"
    );
    // --stats: the disk's counters (the stats lines are the only stderr output).
    let err = stderr(&vm);
    let disk_line = err
        .lines()
        .find(|l| l.starts_with("disk 0 ("))
        .unwrap_or_else(|| panic!("no disk statistics: {err}"));
    assert!(disk_line.contains("1 flushes, 0 errors"), "{disk_line}");
    assert!(disk_line.contains("sectors read"), "{disk_line}");

    let native = native_blkdev(&[native_img.path()]);
    assert_eq!(native.status.code(), Some(0), "{}", stderr(&native));
    assert_eq!(stdout(&native), out, "vmscope vs native stdout");
    let vm_bytes = read(vm_img.path());
    assert!(vm_bytes != original, "the run wrote nothing");
    assert!(
        vm_bytes == read(native_img.path()),
        "vmscope's and the native image differ"
    );

    if qemu_present() {
        let q_img = Scratch::new("disk-qemu.img", &original);
        let q = vmscope(&[
            "run",
            "--qemu",
            "--disk",
            q_img.path(),
            "blkdev",
            "/dev/vda",
        ]);
        assert_eq!(q.status.code(), Some(0), "{}", stderr(&q));
        assert_eq!(stdout(&q), out, "vmscope vs QEMU stdout");
        assert_eq!(stderr(&q), "", "QEMU run stderr");
        assert!(
            vm_bytes == read(q_img.path()),
            "vmscope's and QEMU's image differ"
        );
    }
}

#[test]
fn read_only_disk_refuses_writes_alike() {
    let original = image_bytes();
    let img = Scratch::new("disk-ro.img", &original);
    let ro = format!("{}:ro", img.path());
    let vm = vmscope(&["run", "--disk", &ro, "blkdev", "/dev/vda", "ro"]);
    assert_eq!(vm.status.code(), Some(0), "{}", stderr(&vm));
    let out = stdout(&vm);
    assert!(out.contains("write on O_RDONLY: EBADF"), "{out}");
    assert!(out.contains("write on O_RDWR: EPERM"), "{out}");
    assert!(read(img.path()) == original, "a read-only disk changed");
    if qemu_present() {
        let q = vmscope(&["run", "--qemu", "--disk", &ro, "blkdev", "/dev/vda", "ro"]);
        assert_same_run(&vm, &q, "read-only disk, vmscope vs QEMU");
        assert!(
            read(img.path()) == original,
            "a read-only disk changed under QEMU"
        );
    }
}

fn assert_bad_disk(args: &[&str], needle: &str) {
    let o = vmscope(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "{args:?}: output on stdout");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one line, got: {err}");
    assert!(lines[0].starts_with("vmscope: error: "), "{args:?}: {err}");
    assert!(lines[0].contains(needle), "{args:?}: {err}");
}

#[test]
fn bad_disks_give_one_line_and_status_2() {
    let dir = std::env::temp_dir();
    let odd = Scratch::new("disk-odd.img", &[0u8; 1000]);
    let empty = Scratch::new("disk-empty.img", b"");
    let mut cases: Vec<(String, &str)> = vec![
        ("/nonexistent/disk.img".into(), "No such file"),
        (dir.to_str().unwrap().into(), "is a directory"),
        (odd.path().into(), "not a positive multiple of 512"),
        (empty.path().into(), "not a positive multiple of 512"),
        (
            format!("{}:ro", odd.path()),
            "not a positive multiple of 512",
        ),
    ];
    let unreadable = Scratch::new("disk-unreadable.img", &[0u8; 512]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(unreadable.path(), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        cases.push((unreadable.path().into(), "Permission denied"));
    }
    let qemu = qemu_present();
    for (disk, needle) in &cases {
        assert_bad_disk(&["run", "--disk", disk, "hello"], needle);
        assert_bad_disk(&["boot", "--disk", disk], needle);
        if qemu {
            assert_bad_disk(&["run", "--qemu", "--disk", disk, "hello"], needle);
        }
    }
}

fn instructions(o: &Output) -> u64 {
    stderr(o)
        .lines()
        .find_map(|l| l.strip_prefix("instructions: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no instruction count: {}", stderr(o)))
}

#[test]
fn writes_survive_an_instruction_limit_stop() {
    let original = image_bytes();
    let full = Scratch::new("disk-full.img", &original);
    let o = vmscope(&[
        "run",
        "--stats",
        "--tlb",
        "check",
        "--disk",
        full.path(),
        "blkdev",
        "/dev/vda",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The block paths miss no TLB invalidation either.
    let err = stderr(&o);
    assert!(err.contains("tlb check: 0 stale TLB uses"), "{err}");
    let total = instructions(&o);
    // Three quarters in, every write and the fsync are done and the program is reading
    // the whole disk back: the machine stops there (143) and the file must already hold
    // everything the full run wrote.
    let cut = Scratch::new("disk-cut.img", &original);
    let limit = (total * 3 / 4).to_string();
    let o = vmscope(&[
        "run",
        "--max-insns",
        &limit,
        "--disk",
        cut.path(),
        "blkdev",
        "/dev/vda",
    ]);
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert!(
        !stdout(&o).contains("whole disk:"),
        "the run was not cut short"
    );
    assert!(
        read(cut.path()) == read(full.path()),
        "writes lost at the stop"
    );
}

fn pci_dump(extra: &[&str], disks: &[&Path]) -> (Output, Option<Output>) {
    let mut args: Vec<String> = vec!["boot".into(), "--cmdline".into(), "pci=dump".into()];
    for d in disks {
        args.push("--disk".into());
        args.push(d.to_str().unwrap().into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let vm = vmscope(&a);
    let q = qemu_present().then(|| {
        let mut a = a.clone();
        a.insert(1, "--qemu");
        vmscope(&a)
    });
    (vm, q)
}

#[test]
fn pci_configuration_space_matches_qemu() {
    let d1 = Scratch::new("disk-pci1.img", &[0u8; 1 << 20]);
    let d2 = Scratch::new("disk-pci2.img", &[0u8; 2 << 20]);
    let ro = format!("{}:ro", d2.path());
    for disks in [vec![], vec![Path::new(d1.path()), Path::new(&ro)]] {
        let (vm, q) = pci_dump(&[], &disks);
        assert_eq!(vm.status.code(), Some(0), "{}", stderr(&vm));
        let out = stdout(&vm);
        // The chipset, then the disks from 00:02.0, with SeaBIOS's BARs and IRQ lines.
        assert!(out.contains("0000:00:00.0 [8086:1237]"), "{out}");
        assert!(out.contains("0000:00:01.0 [8086:7000]"), "{out}");
        assert!(out.contains("0000:00:01.1 [8086:7010]"), "{out}");
        assert!(out.contains("0000:00:01.3 [8086:7113]"), "{out}");
        if !disks.is_empty() {
            assert!(out.contains("0000:00:02.0 [1af4:1001]"), "{out}");
            assert!(out.contains("0000:00:03.0 [1af4:1001]"), "{out}");
            // BAR0 (I/O 0xc000), BAR1 (0xfebfe000), BAR4 (0xfebf4000, 64-bit pref.).
            assert!(
                out.contains("  10: 0000c001 febfe000 00000000 00000000"),
                "{out}"
            );
            assert!(
                out.contains("  20: febf400c 00000000 00000000 00021af4"),
                "{out}"
            );
            assert!(
                out.contains(
                    "capabilities: [(98, 11), (84, 09), (70, 09), (60, 09), (50, 09), (40, 09)]"
                ),
                "{out}"
            );
        }
        if let Some(q) = q {
            assert_eq!(q.status.code(), Some(0), "{}", stderr(&q));
            assert_eq!(stdout(&q), out, "vmscope vs QEMU, {} disks", disks.len());
        }
    }
}

#[test]
fn proc_diskstats_lists_the_disks() {
    let a = Scratch::new("disk-stats-a.img", &[0u8; 1 << 20]);
    let b = Scratch::new("disk-stats-b.img", &[0u8; 1 << 20]);
    let args = [
        "run",
        "--disk",
        a.path(),
        "--disk",
        b.path(),
        "cat",
        "/proc/diskstats",
    ];
    let vm = vmscope(&args);
    assert_eq!(vm.status.code(), Some(0), "{}", stderr(&vm));
    // Linux's format: major, minor (16 per virtio disk), name, 17 counters. The only I/O
    // is the kernel's look at each disk's first page for an ext2 superblock at boot (one
    // read of 8 sectors), as Linux reads partition tables.
    let probe = format!(" 1 0 8{}", " 0".repeat(14));
    assert_eq!(
        stdout(&vm),
        format!(" 252       0 vda{probe}\n 252      16 vdb{probe}\n")
    );
    if qemu_present() {
        let mut q = args.to_vec();
        q.insert(1, "--qemu");
        let qemu = vmscope(&q);
        assert_eq!(qemu.status.code(), Some(0), "{}", stderr(&qemu));
        // The time columns (milliseconds reading, writing, doing I/O, weighted, discarding,
        // flushing) are real time under QEMU: compare the counts.
        let counts = |o: &Output| -> Vec<Vec<String>> {
            stdout(o)
                .lines()
                .map(|l| {
                    l.split_whitespace()
                        .enumerate()
                        .filter(|(i, _)| ![6, 10, 12, 13, 17, 19].contains(i))
                        .map(|(_, w)| w.to_string())
                        .collect()
                })
                .collect()
        };
        assert_eq!(
            counts(&vm),
            counts(&qemu),
            "/proc/diskstats, vmscope vs QEMU"
        );
    }
}
