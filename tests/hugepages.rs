//! Huge pages ([12]): the hugetlb pool and transparent huge pages of the guest kernel,
//! through the `hugepages` guest program (see its header) and the kernel's knobs. The
//! fault counts come from the fault trace (`--fault-trace`, the kernel's `fault`
//! annotations): touching 64 MiB takes one fault per 2 MiB with huge pages, one per 4 KiB
//! without.

mod common;

use common::*;

/// Enough RAM for a 32-page pool next to 64 MiB of THPs.
const MEM: &str = "256M";

/// Run `hugepages MODE` with a fault trace and `--tlb check`; returns stdout, stderr and
/// the trace's page-fault annotations.
fn run(mode: &str, cmdline: &str) -> (String, String, Vec<String>) {
    let trace = std::env::temp_dir().join(format!(
        "vmscope-test-{}-hugepages-{mode}.jsonl",
        std::process::id()
    ));
    let t = trace.to_str().unwrap();
    let mut args = vec!["run", "--mem", MEM, "--tlb", "check", "--fault-trace", t];
    if !cmdline.is_empty() {
        args.extend(["--cmdline", cmdline]);
    }
    args.extend(["hugepages", mode]);
    let o = vmscope(&args);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "hugepages {mode}:\n{out}\n{err}");
    let faults: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"what\":\"fault\""))
        .map(String::from)
        .collect();
    let _ = std::fs::remove_file(&trace);
    assert!(
        err.contains("tlb check: 0 stale TLB uses"),
        "hugepages {mode}: {err}"
    );
    (out, err, faults)
}

/// The `demand_zero` faults at 2 MiB-aligned addresses: the huge-page fills.
fn huge_fills(faults: &[String]) -> usize {
    faults
        .iter()
        .filter(|l| l.contains("\"outcome\":\"demand_zero\""))
        .filter(|l| {
            let a = l.split("\"addr\":\"0x").nth(1).unwrap();
            let a = u64::from_str_radix(a.split('"').next().unwrap(), 16).unwrap();
            a % (2 << 20) == 0
        })
        .count()
}

#[test]
fn hugetlb_pool_mmap_faults_and_meminfo() {
    let (out, _, faults) = run("hugetlb", "");
    for line in [
        "HugePages_Total: 32 HugePages_Free: 32 Hugepagesize: 2048 kB",
        "after mmap: HugePages_Free: 32 HugePages_Rsvd: 32",
        "hugetlb: touched 64 MiB, faults: 32",
        "touched: HugePages_Free: 0 HugePages_Rsvd: 0 Hugetlb: 65536 kB",
        "smaps: Private_Hugetlb: 65536 kB KernelPageSize: 2048 kB Rss: 0 kB",
        "unmapped: HugePages_Free: 32 HugePages_Rsvd: 0",
        "pool emptied: HugePages_Total: 0",
        "selfcheck: ok",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains(": no"), "{out}");
    // 32 fills of 2 MiB, the hugetlb COW copy in the child, and the program's own few.
    assert_eq!(huge_fills(&faults), 32, "{}", faults.join("\n"));
    assert!(faults.len() < 100, "{} faults", faults.len());
    assert!(
        faults.iter().any(|l| l.contains("\"outcome\":\"sigbus\"")),
        "no SIGBUS fault"
    );
}

#[test]
fn thp_madvise_faults_splits_and_fork() {
    let (out, _, faults) = run("thp", "");
    for line in [
        "THPeligible: 1",
        "touched 64 MiB, faults: 32, thp_fault_alloc +32",
        "AnonHugePages: 65536 kB, smaps AnonHugePages: 65536 kB, Rss: 65536 kB",
        "partial munmap: thp_split_pmd +1, AnonHugePages: 63488 kB",
        "partial mprotect: thp_split_pmd +2, AnonHugePages: 61440 kB",
        "after fork: AnonHugePages: 0 kB",
        "unmapped: AnonHugePages: 0 kB",
        "selfcheck: ok",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains(": no"), "{out}");
    assert_eq!(huge_fills(&faults), 32, "{}", faults.join("\n"));
    // Against 16,384 with 4 KiB pages (`baseline_4k_pages`).
    assert!(faults.len() < 100, "{} faults", faults.len());
    // The child's write after fork copied one 4 KiB page.
    assert!(faults
        .iter()
        .any(|l| l.contains("\"pid\":2") && l.contains("cow_copy")));
}

#[test]
fn thp_always_without_madvise() {
    let (out, _, faults) = run("always", "");
    assert!(out.contains("enabled: [always] madvise never"), "{out}");
    assert!(
        out.contains("touched 64 MiB, faults: 32, thp_fault_alloc +32"),
        "{out}"
    );
    assert!(!out.contains(": no"), "{out}");
    assert_eq!(huge_fills(&faults), 32);
}

#[test]
fn baseline_4k_pages_under_madvise_default() {
    let (out, _, faults) = run("4k", "");
    assert!(
        out.contains("AnonHugePages: 0 kB, smaps AnonHugePages: 0 kB"),
        "{out}"
    );
    assert!(out.contains("one fault per 4 KiB page: yes"), "{out}");
    assert!(faults.len() >= 16384, "{} faults", faults.len());
}

#[test]
fn knobs_and_command_line() {
    let o = vmscope(&["run", "--cmdline", "hugepages=4", "cat", "/proc/meminfo"]);
    let out = stdout(&o);
    assert!(out.contains("HugePages_Total:       4\n"), "{out}");
    assert!(out.contains("HugePages_Free:        4\n"), "{out}");
    assert!(out.contains("Hugepagesize:       2048 kB\n"), "{out}");
    assert!(out.contains("Hugetlb:            8192 kB\n"), "{out}");
    assert!(out.contains("AnonHugePages:         0 kB\n"), "{out}");
    let o = vmscope(&[
        "run",
        "--cmdline",
        "hugepages=3",
        "cat",
        "/proc/sys/vm/nr_hugepages",
    ]);
    assert_eq!(stdout(&o), "3\n");
    let o = vmscope(&["run", "cat", "/sys/kernel/mm/transparent_hugepage/enabled"]);
    assert_eq!(stdout(&o), "always [madvise] never\n");
    let o = vmscope(&[
        "run",
        "--cmdline",
        "transparent_hugepage=never",
        "cat",
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ]);
    assert_eq!(stdout(&o), "always madvise [never]\n");
    let o = vmscope(&["run", "cat", "/sys/kernel/mm/transparent_hugepage/defrag"]);
    assert_eq!(stdout(&o), "always defer defer+madvise [madvise] never\n");
}

/// MADV_PAGEOUT reaches THPs: split first, then swapped 4 KiB at a time (as Linux splits
/// before `add_to_swap`); the data comes back from the swap disk.
#[test]
fn pageout_splits_thps_before_swapping() {
    let img = std::env::temp_dir().join(format!(
        "vmscope-test-{}-hugepages.swap",
        std::process::id()
    ));
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mkswap = ["/sbin/mkswap", "/usr/sbin/mkswap"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("mkswap (util-linux) is needed");
    let o = std::process::Command::new(mkswap)
        .arg(&img)
        .output()
        .unwrap();
    assert!(o.status.success(), "mkswap: {}", stderr(&o));
    let o = vmscope(&[
        "run",
        "--mem",
        "128M",
        "--disk",
        img.to_str().unwrap(),
        "--tlb",
        "check",
        "hugepages",
        "pageout",
    ]);
    let _ = std::fs::remove_file(&img);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(
        out.contains("pageout: thp_split_pmd +2, pswpout +1024, AnonHugePages: 4096 kB"),
        "{out}"
    );
    assert!(out.contains("contents back from swap: yes"), "{out}");
    assert!(stderr(&o).contains("tlb check: 0 stale TLB uses"));
}
