//! Memory pressure ([09]): a program that touches four times the guest's memory runs to
//! the end with a swap disk made by util-linux's `mkswap`, and gives the host's checksums
//! (natively, on vmscope and under QEMU); without swap it is OOM-killed with Linux's
//! report, and the next program of the same boot has the memory back.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

/// The guest's memory and the swap disk of the acceptance checks.
const MEM: &str = "64M";
const SWAP_BYTES: u64 = 256 << 20;
/// What `swaphog` touches: four times the guest's memory.
const HOG_MIB: &str = "256";

fn mkswap() -> Option<PathBuf> {
    ["/sbin/mkswap", "/usr/sbin/mkswap"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A fresh swap image of `bytes` (sparse), formatted by mkswap.
struct SwapImage(PathBuf);

impl SwapImage {
    fn new(name: &str, bytes: u64) -> SwapImage {
        let p =
            std::env::temp_dir().join(format!("vmscope-test-{}-{name}.swap", std::process::id()));
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(bytes).unwrap();
        drop(f);
        let tool = mkswap().expect("mkswap (util-linux) is needed for the swap tests");
        let o = Command::new(tool).arg(&p).output().unwrap();
        assert!(o.status.success(), "mkswap: {}", stderr(&o));
        SwapImage(p)
    }

    fn disk(&self) -> String {
        self.0.to_str().unwrap().to_string()
    }
}

impl Drop for SwapImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn swaphog_native() -> String {
    let bin = root().join("target/guest-programs/x86_64-unknown-none/release/swaphog");
    let o = native_command(&bin, "/bin/swaphog")
        .arg(HOG_MIB)
        .output()
        .expect("run swaphog natively");
    assert_eq!(o.status.code(), Some(0), "native: {}", stderr(&o));
    stdout(&o)
}

/// The `N` of a `/proc/vmstat` line `name N` in `text`.
fn vmstat_value(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok())?
    })
}

#[test]
fn a_hog_four_times_the_memory_swaps_and_matches_the_host() {
    let native = swaphog_native();
    let img = SwapImage::new("hog", SWAP_BYTES);
    let disk = img.disk();
    let o = vmscope(&[
        "run", "--mem", MEM, "--disk", &disk, "swaphog", HOG_MIB, "vmstat",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert_same_text(
        "swaphog with swap",
        &out[..native.len().min(out.len())],
        &native,
    );
    let pswpout = vmstat_value(&out, "pswpout").expect("pswpout printed");
    let pswpin = vmstat_value(&out, "pswpin").expect("pswpin printed");
    assert!(
        pswpout > 0 && pswpin > 0,
        "pswpout {pswpout} pswpin {pswpin}"
    );
    if qemu_present() {
        let qimg = SwapImage::new("hog-qemu", SWAP_BYTES);
        let qdisk = qimg.disk();
        let q = vmscope(&[
            "run", "--qemu", "--mem", MEM, "--disk", &qdisk, "swaphog", HOG_MIB,
        ]);
        assert_eq!(q.status.code(), Some(0), "QEMU: {}", stderr(&q));
        assert_same_text("swaphog under QEMU", &stdout(&q), &native);
    }
}

#[test]
fn without_swap_the_hog_is_oom_killed_and_memory_comes_back() {
    let o = vmscope(&["run", "--mem", MEM, "swaphog", HOG_MIB]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(137), "{}\n{err}", stdout(&o));
    assert!(
        err.contains("Out of memory: Killed process") && err.contains("(swaphog)"),
        "{err}"
    );
    let p = vmscope(&["run", "--mem", MEM, "swaphog", HOG_MIB, "parent"]);
    let out = stdout(&p);
    assert_eq!(p.status.code(), Some(0), "{out}\n{}", stderr(&p));
    assert!(out.contains("child killed by signal 9"), "{out}");
    assert!(out.contains("MemFree back within 1%: yes"), "{out}");
    assert!(out.contains("touched 16 MiB again"), "{out}");
}

/// Every kind of page (private and shared anonymous, copy-on-write copies of a file,
/// slots shared after fork, memory moved, protected and partly unmapped while swapped)
/// goes to swap with MADV_PAGEOUT and comes back intact, natively and in the guest; in
/// the guest swapoff brings a swapped range back, and once everything is unmapped no
/// swap is in use.
#[test]
fn every_kind_of_page_survives_swap_and_none_is_left_behind() {
    let bin = root().join("target/guest-programs/x86_64-unknown-none/release/swapstress");
    let native = native_command(&bin, "/bin/swapstress")
        .output()
        .expect("run swapstress natively");
    assert_eq!(native.status.code(), Some(0), "native: {}", stdout(&native));
    let img = SwapImage::new("stress", 64 << 20);
    let disk = img.disk();
    let plain = vmscope(&["run", "--mem", MEM, "--disk", &disk, "swapstress"]);
    assert_same_text("swapstress", &stdout(&plain), &stdout(&native));
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    let img2 = SwapImage::new("stress2", 64 << 20);
    let disk2 = img2.disk();
    let o = vmscope(&[
        "run",
        "--mem",
        MEM,
        "--disk",
        &disk2,
        "swapstress",
        "vmstat",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    for line in [
        "VmSwap after pageout > 0: yes\n",
        "swapoff \"/dev/vda\": ok\n",
        "swap in use after swapoff: 0 kB\n",
        "anonymous after swapoff: ok\n",
        "swapon \"/dev/vda\": ok\n",
        "swap in use after unmapping everything: 0 kB\n",
        "all checks: passed\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

/// /proc/swaps and the boot's swapon of a disk made by mkswap, in Linux's format.
#[test]
fn proc_swaps_lists_the_area_enabled_at_boot() {
    let img = SwapImage::new("procswaps", 16 << 20);
    let disk = img.disk();
    let o = vmscope(&["run", "--disk", &disk, "cat", "/proc/swaps"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
         /dev/vda                                partition\t16380\t\t0\t\t-2\n"
    );
}

/// A memory cgroup at memory.max = 16M with a 64 MiB hog: with swap it swaps (`max`
/// events, the child exits 0), without it the group's OOM killer kills the child; the
/// parent, outside the group, keeps every page resident either way.
#[test]
fn a_memcg_limit_swaps_or_kills_inside_the_group_only() {
    let img = SwapImage::new("memcg", SWAP_BYTES);
    let disk = img.disk();
    let o = vmscope(&["run", "--mem", "128M", "--disk", &disk, "memcg"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains("child: exited with 0\n"), "{out}");
    assert!(out.contains("parent pages resident: 2048/2048\n"), "{out}");
    assert!(
        out.contains("oom 0\n") && out.contains("oom_kill 0\n"),
        "{out}"
    );
    let max_events = out
        .lines()
        .find_map(|l| l.strip_prefix("max "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(max_events > 0, "{out}");
    let o = vmscope(&["run", "--mem", "128M", "memcg"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains("child: killed by signal 9\n"), "{out}");
    assert!(
        out.contains("oom 1\n") && out.contains("oom_kill 1\n"),
        "{out}"
    );
    assert!(out.contains("parent pages resident: 2048/2048\n"), "{out}");
    assert!(
        stderr(&o).contains("Memory cgroup out of memory: Killed process"),
        "{}",
        stderr(&o)
    );
}
