//! System tests of memory cgroups (v2): the memory controller's data model
//! (`selftest=memcg`), the cgroup2 filesystem at /sys/fs/cgroup, and the `memcg` program
//! (a 16M group with a 64 MiB hog while a process outside keeps its pages).

mod common;

use common::{stderr, stdout, vmscope};

#[test]
fn memcg_selftest_passes() {
    let o = vmscope(&["boot", "--cmdline", "selftest=memcg"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    let summary = out
        .lines()
        .find(|l| l.starts_with("selftest memcg: "))
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    let (pass, total) = summary["selftest memcg: ".len()..]
        .trim_end_matches(" passed")
        .split_once('/')
        .expect("pass/total");
    assert_eq!(pass, total, "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn cgroup2_is_mounted_with_linux_root_files() {
    let o = vmscope(&[
        "run",
        "cat",
        "/proc/mounts",
        "/sys/fs/cgroup/cgroup.controllers",
        "/sys/fs/cgroup/cgroup.subtree_control",
        "/sys/fs/cgroup/cgroup.procs",
        "/sys/fs/cgroup/cgroup.stat",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(
        out.contains(
            "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0\n"
        ),
        "{out}"
    );
    assert!(
        out.ends_with("memory\nmemory\n1\nnr_descendants 0\nnr_dying_descendants 0\n"),
        "{out}"
    );
    // The root has no limits, as Linux's.
    let o = vmscope(&["run", "cat", "/sys/fs/cgroup/memory.max"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("ENOENT") || stdout(&o).contains("ENOENT"));
}

#[test]
fn memcg_program_keeps_the_outside_resident() {
    let o = vmscope(&["run", "memcg"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    for line in [
        "memory.max: 16777216\n",
        "cgroup.procs lists the child alone: yes\n",
        "child's /proc/PID/cgroup: 0::/test\n",
        "rmdir with the child inside: EBUSY",
        "parent pages resident: 2048/2048\n",
        "memory.current: 0 KiB\n",
        "rmdir once the child is gone: ok\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}
