//! Compiler-generated code on the CPU: every guest program, built at opt-level 0 and at
//! opt-level 3, runs in vmscope's Linux user mode (`vmscope::linux_user`) and natively on
//! the host. Output and exit status must be identical in all three, and no instruction may
//! be unimplemented.

mod common;

use common::root;
use std::path::PathBuf;
use vmscope::linux_user::{run_static_elf, UserExit};

const MAX_INSNS: u64 = 50_000_000;
const TARGET: &str = "x86_64-unknown-none";

/// Build guest-programs with `profile`; returns the directory holding the binaries.
fn build(profile: &str) -> PathBuf {
    let target_dir = root().join("target").join("guest-programs");
    let mut cmd = common::guest_cargo("guest-programs");
    cmd.args([
        "build",
        "--profile",
        profile,
        "--target",
        TARGET,
        "--target-dir",
    ])
    .arg(&target_dir);
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building guest-programs ({profile}) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir.join(TARGET).join(profile)
}

/// (program, argv, envp) cases; argv[0] is the program name.
fn cases() -> Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)> {
    vec![
        ("hello", vec!["hello"], vec![]),
        (
            "args",
            vec!["args", "x", "second arg"],
            vec!["A=1", "HOME=/"],
        ),
        ("exitcode", vec!["exitcode"], vec![]),
        ("exitcode", vec!["exitcode", "300"], vec![]),
        ("exitcode", vec!["exitcode", "nope"], vec![]),
        ("brk", vec!["brk"], vec![]),
    ]
}

#[test]
fn programs_at_o0_and_o3_match_the_host() {
    let dirs = [("o0", build("o0")), ("o3", build("o3"))];
    for (prog, argv, envp) in cases() {
        // The host Linux oracle: the same static binary, run natively.
        let native_bin = &dirs[1].1.join(prog);
        let native = common::native_command(native_bin, argv[0])
            .args(&argv[1..])
            .envs(envp.iter().map(|e| e.split_once('=').unwrap()))
            .output()
            .expect("run natively");
        for (profile, dir) in &dirs {
            let image = std::fs::read(dir.join(prog)).unwrap();
            let run = run_static_elf(&image, &argv, &envp, MAX_INSNS).unwrap();
            let what = format!("{prog} {argv:?} at {profile}");
            assert_eq!(
                run.exit,
                UserExit::Exited(native.status.code().unwrap()),
                "{what}: stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            );
            common::assert_same_text(
                &format!("{what}: stdout"),
                &String::from_utf8_lossy(&run.stdout),
                &String::from_utf8_lossy(&native.stdout),
            );
            common::assert_same_text(
                &format!("{what}: stderr"),
                &String::from_utf8_lossy(&run.stderr),
                &String::from_utf8_lossy(&native.stderr),
            );
            assert!(
                run.unsupported_syscalls.is_empty(),
                "{what}: {:?}",
                run.unsupported_syscalls
            );
            assert!(run.instructions > 10, "{what}");
        }
    }
}
