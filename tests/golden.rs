//! Golden fault traces: every bundled program runs under `vmscope run --fault-trace`, and
//! its trace, normalised with the golden preset (no instruction counts, kernel addresses
//! as "kernel", no timer interrupts or CR3/CR4 values; see `tracediff::Normalize::golden`),
//! must equal `tests/golden/NAME.jsonl`. A difference fails with `vmscope trace diff`'s
//! report: the first divergent event with context, and a summary.
//!
//! After a deliberate change, re-bless with `UPDATE_GOLDEN=1 cargo test --release --test
//! golden` and review `git diff tests/golden`.

mod common;

use common::{root, VMSCOPE};
use std::process::Command;
use vmscope::tracediff::{diff, Normalize, Trace};

/// (golden name, program, arguments).
const CASES: &[(&str, &str, &[&str])] = &[
    ("hello", "hello", &[]),
    ("args", "args", &["x", "second arg", "--flag"]),
    ("exitcode", "exitcode", &[]),
    ("brk", "brk", &[]),
    ("mmap", "mmap", &[]),
    ("stack", "stack", &[]),
    ("segv", "segv", &[]),
    ("segv-uncaught", "segv", &["uncaught"]),
    ("efault", "efault", &[]),
    ("vdso", "vdso", &[]),
    ("forkcow", "forkcow", &[]),
    ("wait", "wait", &[]),
    ("execchain", "execchain", &[]),
    ("stopcont", "stopcont", &[]),
    ("vfork", "vfork", &[]),
    ("maps", "maps", &[]),
    ("ps", "ps", &[]),
    ("pmap", "pmap", &[]),
    ("free", "free", &[]),
    ("vmstat", "vmstat", &[]),
    ("cat-smaps", "cat", &["/proc/self/smaps"]),
    ("fileshare", "fileshare", &[]),
    ("sigreturn", "sigreturn", &[]),
    ("sparse", "sparse", &[]),
    ("protnone", "protnone", &[]),
    ("shmanon", "shmanon", &[]),
];

/// Cases that run on an ext2 disk made for them (see [`disk_image`]): file-backed
/// programs, with major faults, readahead and writeback in their traces.
const DISK_CASES: &[(&str, &str, &[&str])] = &[
    ("pagecache-read", "pagecache", &["read", "/mnt/f"]),
    (
        "pagecache-write",
        "pagecache",
        &["write", "/mnt/w", "100000"],
    ),
];

/// A deterministic ext2 image holding `/f` (256 KiB of `pagecache`'s pattern): mke2fs
/// with a fixed UUID, hash seed and time.
fn disk_image(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vmscope-golden-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let data: Vec<u8> = (0..256u64 << 10)
        .map(|i| ((i * 7 + i / 4096) % 251) as u8)
        .collect();
    std::fs::write(dir.join("src/f"), data).unwrap();
    let img = dir.join("disk.img");
    let mke2fs = ["/sbin/mke2fs", "/usr/sbin/mke2fs", "mke2fs"]
        .into_iter()
        .find(|p| !p.starts_with('/') || std::path::Path::new(p).exists())
        .unwrap();
    let o = Command::new(mke2fs)
        .args(["-q", "-F", "-t", "ext2", "-b", "4096"])
        .args(["-U", "4a8f2a6e-1d4e-4c4b-9a1f-2e6f8c3b5d70"])
        .args(["-E", "hash_seed=4a8f2a6e-1d4e-4c4b-9a1f-2e6f8c3b5d70"])
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .arg("-d")
        .arg(dir.join("src"))
        .arg(&img)
        .arg("4096")
        .output()
        .expect("mke2fs (e2fsprogs) is needed");
    assert!(
        o.status.success(),
        "mke2fs: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    img
}

/// Run one case and return its raw JSON Lines trace. Every run is also under `--tlb check`:
/// no bundled program may use a stale TLB entry (a missing INVLPG in the guest kernel).
fn trace_of(name: &str, program: &str, args: &[&str]) -> String {
    trace_with(name, program, args, None)
}

fn trace_with(name: &str, program: &str, args: &[&str], disk: Option<&std::path::Path>) -> String {
    let file = std::env::temp_dir().join(format!(
        "vmscope-golden-{}-{name}.jsonl",
        std::process::id()
    ));
    let mut cmd = Command::new(VMSCOPE);
    cmd.arg("run");
    if let Some(d) = disk {
        cmd.arg("--disk").arg(d);
    }
    let o = cmd
        .arg("--fault-trace")
        .arg(&file)
        .args(["--tlb", "check"])
        .arg(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run vmscope");
    let code = o.status.code().unwrap_or(-1);
    assert!(
        code < 140,
        "{name}: vmscope stopped with status {code}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("tlb check: 0 stale TLB uses"),
        "{name}: the TLB checker found stale uses:\n{err}"
    );
    let text = std::fs::read_to_string(&file).expect("read the trace");
    std::fs::remove_file(&file).ok();
    text
}

#[test]
fn every_program_matches_its_golden_fault_trace() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let dir = root().join("tests/golden");
    let norm = Normalize::golden();
    let mut failures = Vec::new();
    let cases = CASES
        .iter()
        .map(|c| (c, false))
        .chain(DISK_CASES.iter().map(|c| (c, true)));
    for ((name, program, args), on_disk) in cases {
        let img = on_disk.then(|| disk_image(name));
        let raw = trace_with(name, program, args, img.as_deref());
        if let Some(i) = &img {
            let _ = std::fs::remove_dir_all(i.parent().unwrap());
        }
        let fresh = Trace::parse(&raw, &norm).expect("parse the trace");
        assert!(!fresh.is_empty(), "{name}: empty trace");
        let path = dir.join(format!("{name}.jsonl"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, fresh.to_jsonl()).unwrap();
            continue;
        }
        let golden = match std::fs::read_to_string(&path) {
            Ok(t) => Trace::parse(&t, &norm).expect("parse the golden trace"),
            Err(e) => {
                failures.push(format!(
                    "{name}: no golden trace {} ({e}); run with UPDATE_GOLDEN=1",
                    path.display()
                ));
                continue;
            }
        };
        let golden_name = format!("tests/golden/{name}.jsonl");
        let r = diff(&golden, &fresh, (&golden_name, "this run"), 3);
        if !r.equal {
            let cmd: Vec<&str> = std::iter::once(*program)
                .chain(args.iter().copied())
                .collect();
            failures.push(format!(
                "{name} (vmscope run {}):\n{}",
                cmd.join(" "),
                r.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden fault traces differ (UPDATE_GOLDEN=1 re-blesses after a deliberate change):\n\n{}",
        failures.len(),
        CASES.len() + DISK_CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn two_runs_give_byte_identical_fault_traces() {
    let a = trace_of("twice-a", "forkcow", &[]);
    let b = trace_of("twice-b", "forkcow", &[]);
    assert!(a.lines().count() > 50);
    assert!(a == b, "two runs of forkcow gave different fault traces");
    // And the annotations are there: fork, COW copies, exit.
    for needle in [
        "\"what\":\"fork\"",
        "\"outcome\":\"cow_copy\"",
        "\"what\":\"exit\"",
    ] {
        assert!(a.contains(needle), "no {needle} in the trace");
    }
}
