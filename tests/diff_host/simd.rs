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
use vmscope::cpu::fpu_state::{fcw, fsw, fx, mxcsr, F80};

/// Whether the case runs an SSE instruction (and so gets a random x87/SSE input state).
pub fn is_simd(code: Code) -> bool {
    vmscope::cpu::sse::route(code) || is_x87(code)
}

/// Whether the case runs an x87 instruction (random x87 stack and control word).
pub fn is_x87(code: Code) -> bool {
    vmscope::cpu::x87::route(code)
}

/// Whether the case runs an MMX form (random x87 stack, tags and MMX registers in, the
/// x87 state after the x87-to-MMX transition out).
pub fn is_mmx(code: Code) -> bool {
    vmscope::cpu::sse::mmx::route(code)
}

/// MMi in an FXSAVE image (the image holds ST(i) in stack order: MMk is ST((k - TOP) & 7)).
pub fn fx_mm_slot(fxi: &[u8], k: usize) -> usize {
    let fsw_v = u16::from_le_bytes([fxi[fx::FSW], fxi[fx::FSW + 1]]);
    let top = ((fsw_v & fsw::TOP) >> fsw::TOP_SHIFT) as usize;
    fx::ST0 + ((k + 8 - top) & 7) * fx::ST_STRIDE
}

/// Set MMk (bits 63:0 of Rk) in an FXSAVE image.
pub fn set_fx_mm(fxi: &mut [u8], k: usize, v: u64) {
    let o = fx_mm_slot(fxi, k);
    fxi[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// An interesting 80-bit value (supported encodings only: unnormals, pseudo-NaNs and
/// pseudo-infinities are invalid operands whose handling the two vendors need not share).
pub fn f80_value(rng: &mut Rng) -> F80 {
    let sign = if rng.bool() { 0x8000 } else { 0 };
    let m = rng.next_u64();
    let (signif, exp) = match rng.below(14) {
        0 => (0, 0),
        1 => (1 << 63, 0x3fff),
        2 => (m >> 1 | 1, 0),                                        // denormal
        3 => ((m | 1 << 63) & !0xff, 0x3fff + rng.below(64) as u16), // integral-ish
        4 => (1 << 63, 0x7fff),                                      // infinity
        5 => (m | 3 << 62, 0x7fff),                                  // QNaN
        6 => ((m | 1 << 63) & !(1 << 62) | 1, 0x7fff),               // SNaN
        7 => (m | 1 << 63, 1 + rng.below(8) as u16),                 // near the smallest normal
        8 => (m | 1 << 63, 0x7ffe - rng.below(8) as u16),            // near the largest
        9 => {
            // A double converted exactly.
            let d = f64_value(rng);
            let f = vmscope::cpu::fpu_state::F80::default();
            let _ = f;
            return f64_to_f80(d);
        }
        _ => (m | 1 << 63, 0x3fff - 40 + rng.below(80) as u16),
    };
    F80 {
        signif,
        sign_exp: exp | sign,
    }
}

fn f64_to_f80(d: u64) -> F80 {
    let sign = ((d >> 63) as u16) << 15;
    let e = (d >> 52) & 0x7ff;
    let m = d & 0xf_ffff_ffff_ffff;
    match e {
        0 if m == 0 => F80 {
            signif: 0,
            sign_exp: sign,
        },
        0 => {
            // Denormal double: normal in 80 bits.
            let lz = m.leading_zeros() as u64 - 11;
            F80 {
                signif: m << (11 + lz),
                sign_exp: sign | (0x3fff - 1022 - lz as u16),
            }
        }
        0x7ff => F80 {
            signif: 1 << 63 | m << 11,
            sign_exp: sign | 0x7fff,
        },
        _ => F80 {
            signif: 1 << 63 | m << 11,
            sign_exp: sign | (e as u16 + 0x3fff - 1023),
        },
    }
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
    if is_x87(code) {
        s.set_top(rng.below(8) as usize);
        s.ftw = 0;
        for k in 0..8 {
            if rng.chance(1, 4) {
                s.ftw |= 3 << (2 * s.phys(k));
                s.st[s.phys(k)] = if rng.bool() {
                    f80_value(rng)
                } else {
                    F80::default()
                };
            } else {
                let v = f80_value(rng);
                s.set_st(k, v);
            }
        }
        // Precision 24/53/64 bits (not the reserved 01), any rounding, usually every
        // exception masked.
        let pc = [0u16, 2, 3][rng.below(3) as usize];
        // Overflow and underflow stay masked: their unmasked x87 response (a result
        // with a wrapped exponent) is not implemented; the emulator stops there.
        let masks = if rng.chance(17, 20) {
            fcw::MASKS
        } else {
            rng.below(64) as u16 | fsw::OE | fsw::UE
        };
        s.fcw = fcw::FIXED | masks | pc << fcw::PC_SHIFT | (rng.below(4) as u16) << fcw::RC_SHIFT;
        // Sticky flags that do not leave an exception pending (that case is drawn
        // apart: #MF at the instruction).
        let mut flags = if rng.chance(1, 4) {
            rng.below(64) as u16 & masks
        } else {
            0
        };
        if rng.chance(1, 50) {
            flags |= fsw::PE | fsw::ES | fsw::B;
            s.fcw &= !fsw::PE;
        }
        let cc = rng.below(16) as u16;
        let ccbits = (cc & 7) << 8 | (cc >> 3) << 14;
        s.fsw = (s.fsw & fsw::TOP) | flags | ccbits;
    }
    if is_mmx(code) {
        mmx_state(rng, &mut s);
    }
    s.fxsave(true).to_vec()
}

/// The x87 state an MMX case starts from: any TOP, any tags (empty ones too), registers
/// holding x87 values or MMX values (exponent all ones or random), usually every x87
/// exception masked and sometimes one pending (#MF before the instruction).
fn mmx_state(rng: &mut Rng, s: &mut vmscope::cpu::fpu_state::FpuState) {
    s.set_top(rng.below(8) as usize);
    s.ftw = rng.next_u64() as u16;
    if rng.chance(1, 4) {
        s.ftw = if rng.bool() { 0 } else { 0xffff };
    }
    for k in 0..8 {
        let signif = match rng.below(3) {
            0 => super::gen::interesting(rng),
            _ => xmm_value(rng) as u64,
        };
        s.st[k] = match rng.below(4) {
            0 => f80_value(rng),
            1 => F80 {
                signif,
                sign_exp: rng.next_u64() as u16,
            },
            _ => F80 {
                signif,
                sign_exp: 0xffff,
            },
        };
    }
    if rng.chance(1, 8) {
        // Equal operands.
        let (a, b) = (rng.below(8) as usize, rng.below(8) as usize);
        s.st[a].signif = s.st[b].signif;
    }
    // FXRSTOR keeps only empty or not: a tag is recomputed from the register.
    let masks = if rng.chance(9, 10) {
        fcw::MASKS
    } else {
        rng.below(64) as u16
    };
    s.fcw = fcw::FIXED | masks | (3 << fcw::PC_SHIFT) | (rng.below(4) as u16) << fcw::RC_SHIFT;
    let mut flags = if rng.chance(1, 4) {
        rng.below(64) as u16 & masks
    } else {
        0
    };
    if rng.chance(1, 30) {
        flags |= fsw::PE | fsw::ES | fsw::B;
        s.fcw &= !fsw::PE;
    }
    let cc = rng.below(16) as u16;
    s.fsw = (s.fsw & fsw::TOP) | flags | (cc & 7) << 8 | (cc >> 3) << 14;
}

/// Seed an x87 memory operand of `size` bytes (2, 4, 8 or 10) at arena offset `off`.
pub fn seed_x87_memory(rng: &mut Rng, arena: &mut [u8], off: usize, ms: iced_x86::MemorySize) {
    use iced_x86::MemorySize as S;
    let bytes: Vec<u8> = match ms {
        S::Float32 => f32_value(rng).to_le_bytes().to_vec(),
        S::Float64 => f64_value(rng).to_le_bytes().to_vec(),
        S::Float80 => f80_value(rng).to_bytes().to_vec(),
        S::Int16 | S::Int32 | S::Int64 => {
            super::gen::interesting(rng).to_le_bytes()[..ms.size()].to_vec()
        }
        _ => return,
    };
    for (k, b) in bytes.iter().enumerate() {
        if let Some(x) = arena.get_mut(off + k) {
            *x = *b;
        }
    }
}

/// FSW bits the SDM calls undefined after `m` (C0, C2, C3 after most loads, stores and
/// arithmetic; C0 and C3 after the trigonometric ones).
pub fn undefined_fsw(m: M) -> u16 {
    use M::*;
    let c023 = fsw::C0 | fsw::C2 | fsw::C3;
    match m {
        Fcom | Fcomp | Fcompp | Fucom | Fucomp | Fucompp | Ficom | Ficomp | Ftst | Fxam | Fprem
        | Fprem1 | Fninit | Finit | Fnclex | Fclex | Fldenv | Frstor | Fnsave | Fsave | Fnstsw
        | Fstsw | Fnstcw | Fstcw | Fnstenv | Fstenv | Fldcw | Wait | Fnop => 0,
        Fsin | Fcos | Fsincos | Fptan => fsw::C0 | fsw::C3,
        // C1: the SDM says cleared, an AMD host leaves it.
        Fcomi | Fcomip | Fucomi | Fucomip => fsw::C1,
        _ => c023,
    }
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
    {
        let (h, e) = (
            field(host, fx::FSW, 2) as u16,
            field(emu, fx::FSW, 2) as u16,
        );
        if (h ^ e) & !mask.fsw != 0 {
            d.push(format!("fsw: host {h:#06x} emulator {e:#06x}"));
        }
    }
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
    if is_x87(i.code()) || is_mmx(i.code()) {
        let w = |o: usize| u16::from_le_bytes([fxi[o], fxi[o + 1]]);
        s += &format!(
            " fcw={:#06x} fsw={:#06x} ftw={:#04x}",
            w(fx::FCW),
            w(fx::FSW),
            fxi[fx::FTW]
        );
        for k in 0..8 {
            let o = fx::ST0 + 16 * k;
            let v = u128::from_le_bytes({
                let mut b = [0u8; 16];
                b[..10].copy_from_slice(&fxi[o..o + 10]);
                b
            });
            s += &format!("\n    st({k})={v:#022x}");
        }
    }
    s + "\n"
}
