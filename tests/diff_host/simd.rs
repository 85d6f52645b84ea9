//! The x87/SSE side of the differential test: input FXSAVE images (XMM registers full of
//! edge-case floats and integers, random MXCSR: every rounding mode, DAZ, FTZ, sticky
//! flags, sometimes unmasked exceptions so #XM is compared too), memory operands seeded
//! with the same values, and the comparison of the FXSAVE images after the instruction.
//!
//! Not compared (documented, never silently): FOP, FIP and FDP (an AMD host stores them
//! only while an x87 exception is pending, Intel always), MXCSR_MASK (AMD reports its
//! misaligned-exception-mask bit 17, Intel and vmscope 0xffff), and the 6 reserved bytes
//! of each ST slot. RCPPS/RCPSS/RSQRTPS/RSQRTSS results are compared within the
//! architectural error bound (|relative error| <= 1.5 * 2^-12) instead of bit for bit:
//! their tables differ between vendors.

use super::check::Mask;
use super::rng::Rng;
use iced_x86::{Code, Mnemonic as M};
use vmscope::cpu::fpu_state::{fx, mxcsr};

/// Whether the case runs an SSE instruction (and so gets a random x87/SSE input state).
pub fn is_simd(code: Code) -> bool {
    vmscope::cpu::sse::route(code)
}

/// An interesting single-precision value.
pub fn f32_value(rng: &mut Rng) -> u32 {
    let sign = (rng.bool() as u32) << 31;
    let m = rng.next_u64() as u32 & 0x7f_ffff;
    sign | match rng.below(16) {
        0 => 0,
        1 => 0x3f80_0000,                          // 1.0
        2 => m.max(1),                             // denormal
        3 => 0x0080_0000 | (m & 0xf),              // near the smallest normal
        4 => 0x7f7f_ffff - (m & 0xf),              // near the largest
        5 => 0x7f80_0000,                          // infinity
        6 => 0x7fc0_0000 | (m & 0x3f_ffff),        // QNaN
        7 => 0x7f80_0000 | (m & 0x3f_ffff).max(1), // SNaN
        // Around the integer conversion limits 2^31 and 2^63, and half-way values.
        8 => (0x4f00_0000 + (rng.below(5) as u32)).wrapping_sub(2),
        9 => (0x5f00_0000 + (rng.below(5) as u32)).wrapping_sub(2),
        10 => 0x3f00_0000 + (rng.below(3) as u32) * 0x0040_0000, // 0.5, 0.75, 1.0
        // Small integers and moderate exponents, so sums and products stay finite.
        11 | 12 => ((rng.below(40) as u32 + 107) << 23) | m,
        _ => rng.next_u64() as u32 & 0x7fff_ffff,
    }
}

/// An interesting double-precision value.
pub fn f64_value(rng: &mut Rng) -> u64 {
    let sign = (rng.bool() as u64) << 63;
    let m = rng.next_u64() & 0xf_ffff_ffff_ffff;
    sign | match rng.below(16) {
        0 => 0,
        1 => 0x3ff0_0000_0000_0000,
        2 => m.max(1),
        3 => 0x0010_0000_0000_0000 | (m & 0xf),
        4 => 0x7fef_ffff_ffff_ffff - (m & 0xf),
        5 => 0x7ff0_0000_0000_0000,
        6 => 0x7ff8_0000_0000_0000 | (m & 0x7_ffff_ffff_ffff),
        7 => 0x7ff0_0000_0000_0000 | (m & 0x7_ffff_ffff_ffff).max(1),
        8 => (0x41e0_0000_0000_0000u64 + rng.below(5)).wrapping_sub(2),
        9 => (0x43e0_0000_0000_0000u64 + rng.below(5)).wrapping_sub(2),
        10 => 0x41df_ffff_ffe0_0000 + rng.below(0x40_0000), // near 2^31 - 1
        // Doubles that are (nearly) representable as floats, for CVTSD2SS.
        11 => ((rng.below(300) + 0x380 - 20) << 52) | (m & !0x1fff_ffff),
        12 => ((rng.below(60) + 1000) << 52) | m,
        _ => rng.next_u64() & 0x7fff_ffff_ffff_ffff,
    }
}

/// 16 bytes of lanes: single or double floats, or edge-case integers.
pub fn xmm_value(rng: &mut Rng) -> u128 {
    let mut v = 0u128;
    match rng.below(4) {
        0 => {
            for k in 0..4 {
                v |= (f32_value(rng) as u128) << (32 * k);
            }
        }
        1 => {
            for k in 0..2 {
                v |= (f64_value(rng) as u128) << (64 * k);
            }
        }
        2 => {
            for k in 0..2 {
                v |= (super::gen::interesting(rng) as u128) << (64 * k);
            }
        }
        _ => v = (rng.next_u64() as u128) << 64 | rng.next_u64() as u128,
    }
    v
}

/// A random MXCSR: any rounding mode, DAZ/FTZ, sticky flags; usually all exceptions
/// masked, sometimes some unmasked.
pub fn mxcsr_value(rng: &mut Rng) -> u32 {
    let mut v = (rng.below(4) as u32) << mxcsr::RC_SHIFT;
    if rng.chance(1, 4) {
        v |= mxcsr::DAZ;
    }
    if rng.chance(1, 4) {
        v |= mxcsr::FTZ;
    }
    if rng.chance(1, 4) {
        v |= rng.below(64) as u32;
    }
    v |= if rng.chance(1, 5) {
        (rng.below(64) as u32) << mxcsr::MASK_SHIFT
    } else {
        mxcsr::MASKS
    };
    v
}

/// The FXSAVE image a case starts from: FNINIT's x87 state; for SSE forms random XMM
/// registers and MXCSR, otherwise zeros and the default MXCSR.
pub fn fx_input(rng: &mut Rng, code: Code) -> Vec<u8> {
    let mut s = vmscope::cpu::fpu_state::FpuState::default();
    if is_simd(code) {
        let share = rng.chance(1, 8);
        for k in 0..16 {
            s.xmm[k] = xmm_value(rng);
        }
        if share {
            // Equal operands (x - x, compares of equal values).
            let (a, b) = (rng.below(16) as usize, rng.below(16) as usize);
            s.xmm[a] = s.xmm[b];
        }
        s.mxcsr = mxcsr_value(rng);
    }
    s.fxsave(true).to_vec()
}

/// Seed the 16 bytes at arena offset `off` (clipped to the arena) with lane values.
pub fn seed_memory(rng: &mut Rng, arena: &mut [u8], off: usize) {
    let v = xmm_value(rng).to_le_bytes();
    for (k, b) in v.iter().enumerate() {
        if let Some(x) = arena.get_mut(off + k) {
            *x = *b;
        }
    }
}

/// Masks for the approximate instructions.
pub fn approx_lanes(i: &iced_x86::Instruction) -> Option<(u32, u8)> {
    match i.mnemonic() {
        M::Rcpps | M::Rsqrtps => Some((32, 0xf)),
        M::Rcpss | M::Rsqrtss => Some((32, 0x1)),
        _ => None,
    }
}

fn within_bound(h: u32, e: u32) -> bool {
    let (hf, ef) = (f32::from_bits(h), f32::from_bits(e));
    if hf.is_nan() || ef.is_nan() {
        return hf.is_nan() && ef.is_nan();
    }
    if hf.is_infinite() || ef.is_infinite() || hf == 0.0 || ef == 0.0 {
        return h == e;
    }
    // Both within 1.5 * 2^-12 of the true value: within 3 * 2^-12 of each other.
    ((hf as f64 - ef as f64) / hf as f64).abs() <= 3.0 / 4096.0
}

/// Differences between two FXSAVE images.
pub fn compare_fx(host: &[u8], emu: &[u8], mask: &Mask) -> Vec<String> {
    let mut d = Vec::new();
    if host.len() < fx::END || emu.len() < fx::END {
        return d;
    }
    let field = |b: &[u8], o: usize, n: usize| -> u128 {
        let mut w = [0u8; 16];
        w[..n].copy_from_slice(&b[o..o + n]);
        u128::from_le_bytes(w)
    };
    let check = |d: &mut Vec<String>, name: String, o: usize, n: usize| {
        let (h, e) = (field(host, o, n), field(emu, o, n));
        if h != e {
            d.push(format!(
                "{name}: host {h:#0w$x} emulator {e:#0w$x}",
                w = 2 * n + 2
            ));
        }
    };
    check(&mut d, "fcw".into(), fx::FCW, 2);
    check(&mut d, "fsw".into(), fx::FSW, 2);
    check(&mut d, "ftw (abridged)".into(), fx::FTW, 1);
    check(&mut d, "mxcsr".into(), fx::MXCSR, 4);
    for k in 0..8 {
        check(&mut d, format!("st({k})"), fx::ST0 + k * fx::ST_STRIDE, 10);
    }
    for k in 0..16 {
        let o = fx::XMM0 + 16 * k;
        if let Some((_, lanes, lmask)) = mask.approx_xmm.iter().find(|a| a.0 == k) {
            let (h, e) = (field(host, o, 16), field(emu, o, 16));
            for l in 0..(128 / lanes) {
                let (hl, el) = ((h >> (lanes * l)) as u32, (e >> (lanes * l)) as u32);
                let ok = if lmask & (1 << l) != 0 {
                    within_bound(hl, el)
                } else {
                    hl == el
                };
                if !ok {
                    d.push(format!(
                        "xmm{k} lane {l}: host {hl:#010x} emulator {el:#010x}"
                    ));
                }
            }
            continue;
        }
        check(&mut d, format!("xmm{k}"), o, 16);
    }
    d
}

/// MXCSR and the XMM operands of a case's input, for mismatch reports.
pub fn describe_input(i: &iced_x86::Instruction, input: &super::Input) -> String {
    let fxi = &input.fx;
    let csr = u32::from_le_bytes(fxi[fx::MXCSR..fx::MXCSR + 4].try_into().unwrap());
    let mut s = format!("  in:   mxcsr={csr:#06x}");
    for n in 0..i.op_count() {
        if i.op_kind(n) == iced_x86::OpKind::Register && i.op_register(n).is_xmm() {
            let k = i.op_register(n).number();
            let o = fx::XMM0 + 16 * k;
            let v = u128::from_le_bytes(fxi[o..o + 16].try_into().unwrap());
            s += &format!(" xmm{k}={v:#034x}");
        }
    }
    s + "\n"
}
