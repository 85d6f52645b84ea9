//! System tests of the guest's physical memory manager: `selftest=mm` on vmscope and QEMU
//! (identical text), with fake NUMA and slub_debug, the /proc reports against the firmware
//! memory map at two RAM sizes, and the allocator benchmark's instruction counts.
//!
//! QEMU tests print a visible SKIP when qemu-system-x86_64 is missing, unless
//! VMSCOPE_REQUIRE_QEMU=1 (as in CI), when they fail instead.

mod common;

use common::{qemu_present, stderr, stdout, vmscope};

/// Run `selftest=mm` with extra command-line words; assert it passed; return stdout.
fn mm_selftest(extra: &str, qemu: bool) -> String {
    let cmdline = format!("selftest=mm {extra}");
    let mut args = vec!["boot", "--cmdline", cmdline.trim()];
    if qemu {
        args.push("--qemu");
    }
    let o = vmscope(&args);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    let summary = out
        .lines()
        .find(|l| l.starts_with("selftest mm: "))
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    let (pass, total) = summary["selftest mm: ".len()..]
        .trim_end_matches(" passed")
        .split_once('/')
        .expect("pass/total");
    assert_eq!(pass, total, "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    out
}

#[test]
fn mm_selftest_passes_and_returns_every_page() {
    let out = mm_selftest("", false);
    for case in [
        "boot-layout",
        "buddy-random",
        "gfp-zones",
        "zeroed-hot-cold",
        "compound-refcount",
        "bad-free-rejected",
        "mobility-grouping",
        "watermarks",
        "fragmentation",
        "slab-cache",
        "slab-debug",
        "kmalloc-classes",
        "global-alloc",
        "vmalloc",
        "everything-returned",
    ] {
        assert!(out.contains(&format!("mm {case}: ok\n")), "{case}:\n{out}");
    }
    // The debug reports name the cache and the object, in Linux's words.
    assert!(
        out.contains("BUG selftest_debug: Object already free at 0x"),
        "{out}"
    );
    assert!(
        out.contains("BUG selftest_debug: Right Redzone overwritten at 0x"),
        "{out}"
    );
    assert!(
        out.contains("BUG selftest_debug: Poison overwritten at 0x"),
        "{out}"
    );
    assert!(out.contains("BUG: Bad page state: pfn:0x"), "{out}");
}

#[test]
fn mm_selftest_is_identical_on_qemu() {
    if !qemu_present() {
        return;
    }
    let ours = mm_selftest("", false);
    let theirs = mm_selftest("", true);
    assert_eq!(ours, theirs, "vmscope and QEMU runs differ");
}

#[test]
fn mm_selftest_with_fake_numa_and_slub_debug() {
    let out = mm_selftest("numa=fake=2 slub_debug", false);
    assert!(out.contains("Initmem setup node 1 [mem "), "{out}");
    assert!(out.contains("mm numa: ok\n"), "{out}");
}

/// RAM pages of each zone, from the `BIOS-e820: ... usable` lines, as the kernel counts them:
/// whole pages, page 0 excluded (Linux's trim_bios_range).
fn ram_pages_per_zone(out: &str) -> [u64; 3] {
    const LIMITS: [(u64, u64); 3] = [(0, 4096), (4096, 1 << 20), (1 << 20, u64::MAX)];
    let mut pages = [0; 3];
    for l in out
        .lines()
        .filter(|l| l.starts_with("BIOS-e820: ") && l.ends_with(" usable"))
    {
        let range = &l[l.find("[mem ").unwrap() + 5..l.find(']').unwrap()];
        let (s, e) = range.split_once('-').unwrap();
        let s = u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
        let e = u64::from_str_radix(e.trim_start_matches("0x"), 16).unwrap() + 1;
        let (first, end) = (s.div_ceil(4096).max(1), e / 4096);
        for (z, (lo, hi)) in LIMITS.iter().enumerate() {
            pages[z] += end.min(*hi).saturating_sub(first.max(*lo));
        }
    }
    pages
}

fn meminfo_kb(out: &str, key: &str) -> u64 {
    let l = out
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}:\n{out}"));
    l[key.len() + 1..]
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

/// /proc/buddyinfo adds up to MemFree, /proc/zoneinfo's present pages equal the RAM of the
/// firmware map in each zone's range, and MemTotal is what the zones manage.
fn check_reports(mem: &str, zones: &[&str]) {
    let o = vmscope(&[
        "boot",
        "--mem",
        mem,
        "--cmdline",
        "kmem=meminfo,buddyinfo,zoneinfo",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));

    let buddy_pages: u64 = out
        .lines()
        .filter(|l| {
            l.starts_with("Node ")
                && l.contains(", zone ")
                && l.split_whitespace().count() == 4 + 11
        })
        .map(|l| {
            l.split_whitespace()
                .skip(4)
                .enumerate()
                .map(|(order, n)| n.parse::<u64>().unwrap() << order)
                .sum::<u64>()
        })
        .sum();
    assert!(buddy_pages > 0, "{out}");
    assert_eq!(buddy_pages * 4, meminfo_kb(&out, "MemFree"), "{out}");

    let ram = ram_pages_per_zone(&out);
    let zoneinfo = &out[out.find("==> /proc/zoneinfo <==").unwrap()..];
    let mut managed_total = 0;
    for (z, name) in ["DMA", "DMA32", "Normal"].iter().enumerate() {
        let header = format!("Node 0, zone {name:>8}\n");
        let section = &zoneinfo[zoneinfo
            .find(&header)
            .unwrap_or_else(|| panic!("{header}{out}"))..];
        let field = |f: &str| -> u64 {
            section
                .lines()
                .take_while(|l| !l.starts_with("  start_pfn"))
                .find(|l| l.trim_start().starts_with(f))
                .map_or(0, |l| l.trim_start()[f.len()..].trim().parse().unwrap())
        };
        if zones.contains(name) {
            assert_eq!(
                field("present "),
                ram[z],
                "{name} present pages vs e820:\n{out}"
            );
            assert!(
                field("managed ") > 0 && field("managed ") <= ram[z],
                "{out}"
            );
            managed_total += field("managed ");
        } else {
            assert_eq!(ram[z], 0, "{out}");
        }
    }
    assert_eq!(managed_total * 4, meminfo_kb(&out, "MemTotal"), "{out}");
}

#[test]
fn reports_match_the_ram_map_at_128_mib() {
    check_reports("128M", &["DMA", "DMA32"]);
}

#[test]
fn reports_match_the_ram_map_at_5_gib_with_a_normal_zone() {
    check_reports("5G", &["DMA", "DMA32", "Normal"]);
}

#[test]
fn mmbench_counts_instructions_deterministically() {
    let run = || {
        let o = vmscope(&["boot", "--cmdline", "selftest=mmbench"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    };
    let a = run();
    let lines: Vec<&str> = a.lines().filter(|l| l.starts_with("mmbench ")).collect();
    assert_eq!(lines.len(), 4, "{a}");
    for l in &lines {
        let n: u64 = l
            .split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap_or(0);
        assert!(n > 10 && n < 1_000_000, "{l}");
    }
    assert_eq!(a, run(), "two runs differ");
}
