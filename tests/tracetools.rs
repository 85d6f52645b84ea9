//! The trace tools from the command line: `--fault-trace` in both formats, `trace diff`
//! exit statuses and report, `trace show`, and the `--timeline` Perfetto JSON.

mod common;

use common::{stdout, vmscope};
use std::path::{Path, PathBuf};

/// A temporary directory, removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("vmscope-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
use serde_json::Value;

fn run_traced(dir: &Scratch, name: &str, extra: &[&str], program: &str) -> String {
    let path = dir.path().join(name);
    let p = path.to_str().unwrap();
    let mut args = vec!["run", "--fault-trace", p];
    args.extend_from_slice(extra);
    args.push(program);
    let o = vmscope(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    p.to_string()
}

#[test]
fn trace_diff_reports_equal_different_and_bad_input() {
    let dir = Scratch::new("tracetools-diff");
    let a = run_traced(&dir, "a.jsonl", &[], "forkcow");
    let b = run_traced(&dir, "b.jsonl", &[], "forkcow");
    let o = vmscope(&["trace", "diff", &a, &b]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).starts_with("traces are equal"));

    // Another program diverges at its exec; the report names both files and the field.
    let c = run_traced(&dir, "c.jsonl", &[], "wait");
    let o = vmscope(&["trace", "diff", "--ignore", "icount", &a, &c]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("first divergence:"), "{out}");
    assert!(out.contains("differs in:"), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("summary: traces differ:"),
        "{out}"
    );

    // A different build of the kernel would move instruction counts: --golden ignores them.
    let shifted = dir.path().join("shifted.jsonl");
    let text = std::fs::read_to_string(&a).unwrap();
    let moved: String = text
        .lines()
        .map(|l| l.replacen("\"icount\":", "\"icount\":1", 1) + "\n")
        .collect();
    std::fs::write(&shifted, moved).unwrap();
    let s = shifted.to_str().unwrap();
    assert_eq!(vmscope(&["trace", "diff", &a, s]).status.code(), Some(1));
    assert_eq!(
        vmscope(&["trace", "diff", "--golden", &a, s]).status.code(),
        Some(0)
    );

    let junk = dir.path().join("junk.jsonl");
    std::fs::write(&junk, "not json\n").unwrap();
    assert_eq!(
        vmscope(&["trace", "diff", &a, junk.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        vmscope(&["trace", "diff", &a, "/nonexistent"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn text_format_and_show_agree() {
    let dir = Scratch::new("tracetools-text");
    let j = run_traced(&dir, "t.jsonl", &[], "segv");
    let t = run_traced(&dir, "t.txt", &["--fault-trace-format", "text"], "segv");
    let shown = stdout(&vmscope(&["trace", "show", &j]));
    assert_eq!(shown, std::fs::read_to_string(&t).unwrap());
    assert!(shown.contains("-> sigsegv_maperr"), "{shown}");
    assert!(shown.contains("signal SIGSEGV code 1"), "{shown}");
}

#[test]
fn timeline_is_perfetto_json_with_tasks_syscalls_and_faults() {
    let dir = Scratch::new("tracetools-timeline");
    let path = dir.path().join("t.json");
    let o = vmscope(&["run", "--timeline", path.to_str().unwrap(), "forkcow"]);
    assert_eq!(o.status.code(), Some(0));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let ev = doc["traceEvents"].as_array().expect("traceEvents");
    let named = |n: &str| {
        ev.iter()
            .any(|e| e["ph"] == "M" && e["args"]["name"].as_str() == Some(n))
    };
    assert!(named("vmscope CPUs") && named("cpu0"));
    assert!(
        named("forkcow[1]") && named("forkcow[2]"),
        "a process track per task"
    );
    let slices = |cat: &str| {
        ev.iter()
            .filter(|e| e["ph"] == "X" && e["cat"] == cat)
            .count()
    };
    assert!(slices("sched") >= 3, "run slices on the CPU track");
    assert!(slices("syscall") >= 10);
    assert!(slices("fault") >= 10);
    assert!(ev
        .iter()
        .any(|e| e["name"] == "cow_copy" && e["dur"].as_f64() > Some(0.0)));
    assert!(
        ev.iter().any(|e| e["name"] == "wait4"),
        "the parent's wait4"
    );
    for e in ev.iter().filter(|e| e["ph"] == "X") {
        assert!(e["ts"].as_f64().is_some() && e["dur"].as_f64().is_some_and(|d| d >= 0.0));
    }
}
