//! The page-permission matrix (`selftest=pagematrix`, guest-os/src/selftest/pagematrix.rs):
//! every combination of U/S, R/W and NX at every paging level and leaf size, with CR0.WP,
//! CR4.SMEP, CR4.SMAP + RFLAGS.AC, EFER.NXE, read/write/fetch and CPL 0/3. The guest checks
//! each case against the SDM's rules, and protection keys (PKU, PKS) in a matrix of their own; here vmscope must pass every case with no deviation,
//! and QEMU must print the same lines (its known, documented deviations from the SDM are
//! reported on one extra line, which is the only difference allowed).

mod common;

use common::{qemu_present, stderr, stdout, vmscope};

/// 8^4 + 8^3 + 8^2 page-table configurations x 144 environments.
const CASES: u32 = (4096 + 512 + 64) * 144;
/// Protection keys: 3 leaf sizes x U/S x R/W leaves, x 192 environments (CPL, access,
/// CR0.WP, CR4.PKE, CR4.PKS, AD/WD of the leaf's key in PKRU and IA32_PKRS).
const PK_CASES: u32 = 12 * 192;
const DEVIATION_LINE: &str = "pagematrix: known deviations from the SDM";

/// Whether the guest printed the all-passed summary.
fn all_passed(out: &str) -> bool {
    let want = format!("pagematrix: {CASES} passed, 0 failed");
    let want_pk = format!("pagematrix-pk: {PK_CASES} passed, 0 failed");
    out.lines().any(|l| l == want) && out.lines().any(|l| l == want_pk)
}

#[test]
fn page_permission_matrix_matches_the_sdm_on_vmscope_and_qemu() {
    let o = vmscope(&["boot", "--cmdline", "selftest=pagematrix"]);
    let out = stdout(&o);
    let tail: Vec<&str> = out.lines().rev().take(5).collect();
    assert_eq!(o.status.code(), Some(0), "{tail:?}\n{}", stderr(&o));
    assert!(all_passed(&out), "summary missing: {tail:?}");
    assert!(
        !out.contains(DEVIATION_LINE),
        "vmscope must follow the SDM exactly: {tail:?}"
    );
    let config_lines = out
        .lines()
        .filter(|l| l.starts_with("pagematrix ") && l.ends_with(" ok"))
        .count();
    assert_eq!(config_lines, 4096 + 512 + 64);

    if !qemu_present() {
        return;
    }
    let q = vmscope(&["boot", "--qemu", "--cmdline", "selftest=pagematrix"]);
    let qout = stdout(&q);
    assert_eq!(q.status.code(), Some(0), "qemu: {}", stderr(&q));
    let without_deviations: String = qout
        .lines()
        .filter(|l| !l.starts_with(DEVIATION_LINE))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        without_deviations == out,
        "the matrix differs between vmscope and QEMU; first differing line: {:?}",
        out.lines()
            .zip(without_deviations.lines())
            .find(|(a, b)| a != b)
    );
}
