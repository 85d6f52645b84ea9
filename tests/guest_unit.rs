//! Runs the host-side unit tests of the guest crates (their pure parts: the user runtime's
//! parsers and allocator, and later the kernel's mm algorithms) so that the one test command
//! covers them. They build for the host target in their own target directory.

mod common;

use std::process::Command;

fn host_triple() -> String {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("host triple")
}

fn cargo_test_in(dir: &str, package: &str) {
    let mut cmd = common::guest_cargo(dir);
    cmd.args([
        "test",
        "-p",
        package,
        "--target",
        &host_triple(),
        "--target-dir",
    ])
    .arg(common::root().join("target").join("guest-host"));
    let out = cmd.output().expect("run cargo test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo test -p {package} in {dir} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The run must have executed tests, not silently nothing.
    assert!(text.contains("test result: ok."), "{text}");
}

#[test]
fn guest_runtime_unit_tests_pass_on_the_host() {
    cargo_test_in("guest-programs", "vmrt");
}
