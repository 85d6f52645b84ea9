//! The differential test of the emulator's CPU against the host CPU (see
//! `tests/diff_host/mod.rs` for the method and `check.rs` for what is masked).
//!
//! The default `cargo test --release` runs a quick pass of `QUICK_CASES` cases. The big run:
//!
//! ```sh
//! VMSCOPE_DIFF_CASES=1000000 VMSCOPE_DIFF_SEED=1 \
//!     cargo test --release --test diff_cpu -- --nocapture
//! ```
//!
//! It prints the cases per instruction class and the mismatches, with the first few in full.
//! Needs an x86-64 Linux host with BMI1/BMI2/LZCNT/POPCNT/MOVBE/CMPXCHG16B (forms the host
//! lacks are left out and show as untested in the summary).

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

#[path = "diff_host/mod.rs"]
mod diff_host;

use diff_host::{catalogue, check, native, Config};

/// Cases in the default test run: a few seconds.
const QUICK_CASES: u64 = 100_000;

#[test]
fn emulator_matches_the_host_cpu() {
    let cfg = Config::from_env(QUICK_CASES);
    let report = diff_host::run(&cfg);
    println!("{}", report.summary());
    for d in &report.details {
        println!("{d}");
    }
    assert_eq!(
        (report.mismatches, report.harness_errors),
        (0, 0),
        "mismatches / harness errors (run with --nocapture for details)\n{}\n{}",
        report.summary(),
        report.details.join("\n")
    );
}

/// The snippet around the instruction decodes as intended: absolute (not RIP-relative)
/// state-block addresses, and landing pads that jump to the store code.
#[test]
fn snippet_is_well_formed() {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic};
    let page = native::code_template();
    let mut d = Decoder::with_ip(
        64,
        &page[..diff_host::layout::BACK_PAD_OFF],
        diff_host::layout::CODE_BASE,
        DecoderOptions::NONE,
    );
    let mut n = 0;
    while d.can_decode() {
        let i = d.decode();
        if i.mnemonic() == Mnemonic::INVALID || i.mnemonic() == Mnemonic::Int3 {
            break;
        }
        if i.op_count() > 0 && (0..i.op_count()).any(|k| i.op_kind(k) == iced_x86::OpKind::Memory) {
            assert!(!i.is_ip_rel_memory_operand(), "{i}");
            assert_eq!(i.memory_base(), iced_x86::Register::None, "{i}");
        }
        n += 1;
    }
    // 7 saves, FXSAVE of the host and FXRSTOR of the case, push+popfq, 16 loads, jmp.
    assert_eq!(n, 7 + 2 + 2 + 16 + 1);
}

/// Every class has forms, and the catalogue includes the edge forms the harness promises.
#[test]
fn catalogue_covers_every_class() {
    let cat = catalogue::Catalogue::build();
    for (name, codes) in &cat.classes {
        assert!(!codes.is_empty(), "class {name} has no forms");
    }
    use iced_x86::Code as C;
    for c in [
        C::Mov_AL_moffs8,
        C::Mov_r64_imm64,
        C::Cmpxchg16b_m128,
        C::Retnq_imm16,
        C::Loop_rel8_64_ECX,
        C::Jrcxz_rel8_64,
        C::Enterq_imm16_imm8,
        C::Xlat_m8,
        C::VEX_Mulx_r64_r64_rm64,
    ] {
        assert!(cat.class_of(c).is_some(), "{c:?} missing");
    }
    // Vendor-specific 16-bit near branches are left out.
    assert!(cat.class_of(C::Call_rm16).is_none());
}

/// Every SSE form the emulator executes is drawn by the differential test, except the
/// ones listed here with the reason.
#[test]
fn every_implemented_simd_form_is_tested() {
    use iced_x86::{Code, Mnemonic as M};
    let cat = catalogue::Catalogue::build();
    // XSAVE/XRSTOR/XGETBV/XSETBV: the host's XCR0 enables AVX (and more), so its XSAVE
    // images and XGETBV differ by design; MOVNTI is a plain store (tested); XSETBV is
    // privileged. These have unit tests in the emulator.
    let untested = [
        // x87 transcendentals: double-precision approximations (README).
        M::F2xm1,
        M::Fyl2x,
        M::Fyl2xp1,
        M::Fptan,
        M::Fpatan,
        M::Fsin,
        M::Fcos,
        M::Fsincos,
        // WAIT + FNINIT and friends: two instructions, each tested.
        M::Finit,
        M::Fclex,
        M::Fstcw,
        M::Fstsw,
        M::Fstenv,
        M::Fsave,
        M::Xsave,
        M::Xsave64,
        M::Xsaveopt,
        M::Xsaveopt64,
        M::Xrstor,
        M::Xrstor64,
        M::Xgetbv,
        M::Xsetbv,
    ];
    let mut missing = Vec::new();
    for code in Code::values() {
        let implemented =
            vmscope::cpu::sse::implemented(code) || vmscope::cpu::x87::implemented(code);
        if implemented && cat.class_of(code).is_none() && !untested.contains(&code.mnemonic()) {
            missing.push(code);
        }
    }
    assert!(missing.is_empty(), "not in the catalogue: {missing:?}");
}

/// A planted difference is reported.
#[test]
fn a_wrong_result_is_reported() {
    let mut host = diff_host::Outcome {
        arena: vec![0; diff_host::layout::ARENA_SIZE],
        ..Default::default()
    };
    host.flags = 0x202;
    let mut emu = host.clone();
    assert!(check::compare(&host, &emu, &check::Mask::default()).is_empty());
    emu.gpr[3] = 1;
    emu.flags |= 1;
    emu.arena[5] = 9;
    let d = check::compare(&host, &emu, &check::Mask::default());
    assert_eq!(d.len(), 3, "{d:?}");
    let mask = check::Mask {
        flags: 1,
        ..Default::default()
    };
    // An XMM difference too.
    host.fx = vec![0; 512];
    emu.fx = vec![0; 512];
    emu.fx[160 + 16 * 3] = 1;
    assert!(check::compare(&host, &emu, &mask)
        .iter()
        .any(|d| d.starts_with("xmm3")));
    emu.fx[160 + 16 * 3] = 0;
    assert_eq!(check::compare(&host, &emu, &mask).len(), 2);
}
