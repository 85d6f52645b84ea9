//! The TLB model seen from a guest (`selftest=tlb`, guest-os/src/selftest/tlb.rs): a
//! remapped page stays stale until INVLPG or a CR3 reload, `--tlb off` never caches, and
//! `--tlb check` names the RIP of the access that used the stale entry.

mod common;

use common::{qemu_present, stderr, stdout, vmscope};

fn stale_line(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("tlb stale-read at rip="))
        .unwrap_or_else(|| panic!("no stale-read line:\n{out}"))
}

#[test]
fn stale_translation_is_used_until_invlpg() {
    let on = vmscope(&["boot", "--cmdline", "selftest=tlb-stale"]);
    assert_eq!(on.status.code(), Some(0), "{}", stdout(&on));
    assert!(stale_line(&stdout(&on)).ends_with(": old mapping"));
    assert!(stdout(&on).contains("selftest tlb: 3/3 passed"));

    let off = vmscope(&["boot", "--cmdline", "selftest=tlb-stale", "--tlb", "off"]);
    assert_eq!(off.status.code(), Some(0), "{}", stdout(&off));
    assert!(stale_line(&stdout(&off)).ends_with(": new mapping"));
}

#[test]
fn tlb_check_names_the_rip_of_the_missing_invlpg() {
    let o = vmscope(&["boot", "--cmdline", "selftest=tlb-stale", "--tlb", "check"]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let line = stale_line(&out);
    let rip = &line["tlb stale-read at rip=".len()..line.find(':').unwrap()];
    let report = format!("tlb check: stale TLB entry used at rip={rip}: va=0x30000000000");
    assert!(err.contains(&report), "want {report:?} in:\n{err}");
    assert!(err.contains("tlb check: 1 stale TLB uses"), "{err}");
}

#[test]
fn tlb_check_is_silent_on_a_correct_kernel() {
    let o = vmscope(&[
        "boot",
        "--cmdline",
        "selftest=tlb,exceptions,delivery,mm,timer",
        "--tlb",
        "check",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("tlb check: 0 stale TLB uses, 0 spurious page faults"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn stats_count_hits_misses_and_flushes() {
    let o = vmscope(&["boot", "--cmdline", "selftest=tlb", "--stats"]);
    let err = stderr(&o);
    assert!(err.contains("instructions: "), "{err}");
    assert!(err.contains(" 1 invlpg,"), "{err}");
    let off = vmscope(&[
        "boot",
        "--cmdline",
        "selftest=tlb",
        "--stats",
        "--tlb",
        "off",
    ]);
    assert!(stderr(&off).contains("tlb: 0 hits"), "{}", stderr(&off));
}

#[test]
fn qemu_cross_check_tlb_selftest() {
    if !qemu_present() {
        return;
    }
    let a = vmscope(&["boot", "--cmdline", "selftest=tlb"]);
    let b = vmscope(&["boot", "--qemu", "--cmdline", "selftest=tlb"]);
    assert_eq!(stdout(&a), stdout(&b));
    assert_eq!(a.status.code(), b.status.code());
}

/// `--tlb check` over every bundled program (default arguments; the golden runs add the
/// argument variants): no missing INVLPG anywhere in the kernel paths they reach. Two
/// programs at a time (the machine has two cores).
#[test]
fn every_bundled_program_uses_no_stale_tlb_entry() {
    let names: Vec<&str> = vmscope::guest::PROGRAMS.iter().map(|(n, _)| *n).collect();
    assert!(names.len() > 20, "{names:?}");
    let failures: Vec<String> = std::thread::scope(|s| {
        let halves: Vec<_> = names
            .chunks(names.len().div_ceil(2))
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter_map(|name| {
                            let o = vmscope(&["run", "--tlb", "check", name]);
                            let err = stderr(&o);
                            (!err.contains("tlb check: 0 stale TLB uses"))
                                .then(|| format!("{name}: {err}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().expect("a checker thread"))
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
