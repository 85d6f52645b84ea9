//! SSE/SSE2 floating point: arithmetic, square root, min/max, compares, COMIS/UCOMIS,
//! reciprocal approximations and conversions, all through [`crate::cpu::softfp::Env`]
//! (MXCSR rounding, DAZ/FTZ, exception flags; #XM leaves the destination unchanged).

use super::super::regs::rflags;
use super::super::softfp::{Env, Ieee, Op, Ord3};
use super::super::Cpu;
use super::int::{build, lane, mask};
use super::{xmm_index, ExecResult};
use crate::bus::Bus;
use iced_x86::{Instruction, Mnemonic as M};

pub fn handles(m: M) -> bool {
    matches!(
        m,
        M::Addps
            | M::Addss
            | M::Addpd
            | M::Addsd
            | M::Subps
            | M::Subss
            | M::Subpd
            | M::Subsd
            | M::Mulps
            | M::Mulss
            | M::Mulpd
            | M::Mulsd
            | M::Divps
            | M::Divss
            | M::Divpd
            | M::Divsd
            | M::Sqrtps
            | M::Sqrtss
            | M::Sqrtpd
            | M::Sqrtsd
            | M::Minps
            | M::Minss
            | M::Minpd
            | M::Minsd
            | M::Maxps
            | M::Maxss
            | M::Maxpd
            | M::Maxsd
            | M::Cmpps
            | M::Cmpss
            | M::Cmppd
            | M::Cmpsd
            | M::Comiss
            | M::Comisd
            | M::Ucomiss
            | M::Ucomisd
            | M::Rcpps
            | M::Rcpss
            | M::Rsqrtps
            | M::Rsqrtss
            | M::Cvtsi2ss
            | M::Cvtsi2sd
            | M::Cvtss2si
            | M::Cvtsd2si
            | M::Cvttss2si
            | M::Cvttsd2si
            | M::Cvtss2sd
            | M::Cvtsd2ss
            | M::Cvtps2pd
            | M::Cvtpd2ps
            | M::Cvtdq2ps
            | M::Cvtps2dq
            | M::Cvttps2dq
            | M::Cvtdq2pd
            | M::Cvtpd2dq
            | M::Cvttpd2dq
            | M::Addsubps
            | M::Addsubpd
            | M::Haddps
            | M::Haddpd
            | M::Hsubps
            | M::Hsubpd
    )
}

/// Element width and whether the operation is scalar (low element only).
fn shape(m: M) -> (u32, bool) {
    use M::*;
    match m {
        Addps | Subps | Mulps | Divps | Sqrtps | Minps | Maxps | Cmpps | Rcpps | Rsqrtps => {
            (32, false)
        }
        Addpd | Subpd | Mulpd | Divpd | Sqrtpd | Minpd | Maxpd | Cmppd => (64, false),
        Addss | Subss | Mulss | Divss | Sqrtss | Minss | Maxss | Cmpss | Rcpss | Rsqrtss => {
            (32, true)
        }
        _ => (64, true),
    }
}

/// One element of an arithmetic operation.
fn elem(env: &mut Env, m: M, bits: u32, a: u64, b: u64, imm: u8) -> u64 {
    use M::*;
    let op = match m {
        Addps | Addss | Addpd | Addsd => Some(Op::Add),
        Subps | Subss | Subpd | Subsd => Some(Op::Sub),
        Mulps | Mulss | Mulpd | Mulsd => Some(Op::Mul),
        Divps | Divss | Divpd | Divsd => Some(Op::Div),
        _ => None,
    };
    if let Some(op) = op {
        return if bits == 32 {
            env.arith32(op, a as u32, b as u32) as u64
        } else {
            env.arith64(op, a, b)
        };
    }
    match m {
        Sqrtps | Sqrtss | Sqrtpd | Sqrtsd => {
            if bits == 32 {
                env.sqrt32(b as u32) as u64
            } else {
                env.sqrt64(b)
            }
        }
        Minps | Minss | Minpd | Minsd | Maxps | Maxss | Maxpd | Maxsd => {
            let max = matches!(m, Maxps | Maxss | Maxpd | Maxsd);
            if bits == 32 {
                env.minmax(a as u32, b as u32, max) as u64
            } else {
                env.minmax(a, b, max)
            }
        }
        Rcpps | Rcpss => rcp32(b as u32) as u64,
        Rsqrtps | Rsqrtss => rsqrt32(b as u32) as u64,
        _ => {
            // CMPPS/CMPSS/CMPPD/CMPSD predicates 0-7 (SDM Vol. 2, Table 3-7): EQ, LT, LE,
            // UNORD, NEQ, NLT, NLE, ORD; LT/LE and their negations signal on QNaNs.
            let p = imm & 7;
            let signaling = matches!(p, 1 | 2 | 5 | 6);
            let o = if bits == 32 {
                env.compare(a as u32, b as u32, signaling)
            } else {
                env.compare(a, b, signaling)
            };
            let t = match p {
                0 => o == Ord3::Equal,
                1 => o == Ord3::Less,
                2 => matches!(o, Ord3::Less | Ord3::Equal),
                3 => o == Ord3::Unordered,
                4 => o != Ord3::Equal,
                5 => o != Ord3::Less,
                6 => !matches!(o, Ord3::Less | Ord3::Equal),
                _ => o != Ord3::Unordered,
            };
            if t {
                mask(bits)
            } else {
                0
            }
        }
    }
}

/// Bits of precision RCPPS/RSQRTPS keep (Intel: relative error at most 1.5 * 2^-12).
const APPROX_BITS: u32 = 12;

/// RCPSS/RCPPS: the exact reciprocal, truncated to `APPROX_BITS` significand bits.
/// Documented approximation: hardware tables differ between vendors (and generations),
/// so the differential test checks only the error bound for these. Denormal inputs are
/// treated as zeros and tiny results flush to zero, as on Intel hardware; MXCSR is not
/// touched.
fn rcp32(a: u32) -> u32 {
    approx(a, |x| 1.0 / x)
}
/// RSQRTSS/RSQRTPS: as [`rcp32`] for 1/sqrt(x); negative non-zero inputs give the
/// default NaN.
fn rsqrt32(a: u32) -> u32 {
    if a.is_nan() {
        return a.quiet();
    }
    if a.is_neg() && !(a.is_zero() || a.is_denormal()) {
        return 0xffc0_0000;
    }
    approx(a, |x| 1.0 / x.sqrt())
}
fn approx(a: u32, f: impl Fn(f64) -> f64) -> u32 {
    if a.is_nan() {
        return a.quiet();
    }
    let x = if a.is_denormal() { a.signed_zero() } else { a };
    let r = f(f32::from_bits(x) as f64);
    let r32 = r as f32;
    if r32.is_infinite() || r32 == 0.0 {
        return r32.to_bits();
    }
    if !r32.is_normal() {
        // Tiny: flushed to a signed zero.
        return r32.to_bits() & 0x8000_0000;
    }
    // Truncate the double to APPROX_BITS fraction bits, then exact as f32.
    let bits = r.to_bits() & !((1u64 << (52 - APPROX_BITS)) - 1);
    (f64::from_bits(bits) as f32).to_bits()
}

pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let m = i.mnemonic();
    let mut env = Env::new(cpu.fpu.mxcsr);
    match m {
        M::Comiss | M::Comisd | M::Ucomiss | M::Ucomisd => {
            let a = cpu.fpu.xmm[xmm_index(i.op_register(0))];
            let b = cpu.xmm_src(bus, i, 1)?;
            let signaling = matches!(m, M::Comiss | M::Comisd);
            let o = if matches!(m, M::Comiss | M::Ucomiss) {
                env.compare(a as u32, b as u32, signaling)
            } else {
                env.compare(a as u64, b as u64, signaling)
            };
            cpu.sse_fp_flags(&env)?;
            // ZF,PF,CF = 111 unordered, 000 greater, 001 less, 100 equal; OF, SF, AF clear.
            let f = match o {
                Ord3::Unordered => rflags::ZF | rflags::PF | rflags::CF,
                Ord3::Greater => 0,
                Ord3::Less => rflags::CF,
                Ord3::Equal => rflags::ZF,
            };
            let all = rflags::ZF | rflags::PF | rflags::CF | rflags::OF | rflags::SF | rflags::AF;
            cpu.rflags = (cpu.rflags & !all) | f;
            Ok(())
        }
        M::Cvtsi2ss | M::Cvtsi2sd => {
            let src = cpu.xmm_src(bus, i, 1)? as u64;
            let bits64 = i.op1_kind() == iced_x86::OpKind::Register && i.op_register(1).size() == 8
                || i.memory_size().size() == 8;
            let r = match (m, bits64) {
                (M::Cvtsi2ss, false) => env.i32_to_f32(src as i32) as u64,
                (M::Cvtsi2ss, true) => env.i64_to_f32(src as i64) as u64,
                (_, false) => env.i32_to_f64(src as i32),
                (_, true) => env.i64_to_f64(src as i64),
            };
            cpu.sse_fp_flags(&env)?;
            let w = if m == M::Cvtsi2ss { 32 } else { 64 };
            merge_low(cpu, i, w, r);
            Ok(())
        }
        M::Cvtss2si | M::Cvtsd2si | M::Cvttss2si | M::Cvttsd2si => {
            let src = cpu.xmm_src(bus, i, 1)?;
            let bits64 = i.op_register(0).size() == 8;
            let trunc = matches!(m, M::Cvttss2si | M::Cvttsd2si);
            let r = if matches!(m, M::Cvtss2si | M::Cvttss2si) {
                env.f32_to_int(src as u32, bits64, trunc)
            } else {
                env.f64_to_int(src as u64, bits64, trunc)
            };
            cpu.sse_fp_flags(&env)?;
            cpu.set_reg(i.op_register(0), r);
            Ok(())
        }
        M::Cvtss2sd => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let r = env.f32_to_f64(s as u32);
            cpu.sse_fp_flags(&env)?;
            merge_low(cpu, i, 64, r);
            Ok(())
        }
        M::Cvtsd2ss => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let r = env.f64_to_f32(s as u64) as u64;
            cpu.sse_fp_flags(&env)?;
            merge_low(cpu, i, 32, r);
            Ok(())
        }
        M::Cvtps2pd
        | M::Cvtpd2ps
        | M::Cvtdq2ps
        | M::Cvtps2dq
        | M::Cvttps2dq
        | M::Cvtdq2pd
        | M::Cvtpd2dq
        | M::Cvttpd2dq => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let r = match m {
                M::Cvtps2pd => build(64, |k| env.f32_to_f64(lane(s, 32, k) as u32)),
                M::Cvtdq2pd => build(64, |k| env.i32_to_f64(lane(s, 32, k) as i32)),
                M::Cvtdq2ps => build(32, |k| env.i32_to_f32(lane(s, 32, k) as i32) as u64),
                M::Cvtps2dq | M::Cvttps2dq => build(32, |k| {
                    env.f32_to_int(lane(s, 32, k) as u32, false, m == M::Cvttps2dq)
                }),
                // Two results in the low half, zeros above.
                M::Cvtpd2ps => build(32, |k| {
                    if k < 2 {
                        env.f64_to_f32(lane(s, 64, k)) as u64
                    } else {
                        0
                    }
                }),
                _ => build(32, |k| {
                    if k < 2 {
                        env.f64_to_int(lane(s, 64, k), false, m == M::Cvttpd2dq)
                    } else {
                        0
                    }
                }),
            };
            cpu.sse_fp_flags(&env)?;
            cpu.fpu.xmm[xmm_index(i.op_register(0))] = r;
            Ok(())
        }
        // SSE3 horizontal and alternating operations.
        M::Addsubps | M::Addsubpd | M::Haddps | M::Haddpd | M::Hsubps | M::Hsubpd => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let d0 = xmm_index(i.op_register(0));
            let d = cpu.fpu.xmm[d0];
            let bits = if matches!(m, M::Addsubps | M::Haddps | M::Hsubps) {
                32
            } else {
                64
            };
            let n = 128 / bits;
            let op = |env: &mut Env, o: Op, a: u64, b: u64| {
                if bits == 32 {
                    env.arith32(o, a as u32, b as u32) as u64
                } else {
                    env.arith64(o, a, b)
                }
            };
            let r = build(bits, |k| match m {
                // Even elements subtract, odd ones add.
                M::Addsubps | M::Addsubpd => {
                    let o = if k % 2 == 0 { Op::Sub } else { Op::Add };
                    op(&mut env, o, lane(d, bits, k), lane(s, bits, k))
                }
                // Pairs of the destination, then pairs of the source.
                _ => {
                    let o = if matches!(m, M::Haddps | M::Haddpd) {
                        Op::Add
                    } else {
                        Op::Sub
                    };
                    let (src, j) = if k < n / 2 {
                        (d, 2 * k)
                    } else {
                        (s, 2 * (k - n / 2))
                    };
                    op(&mut env, o, lane(src, bits, j), lane(src, bits, j + 1))
                }
            });
            cpu.sse_fp_flags(&env)?;
            cpu.fpu.xmm[d0] = r;
            Ok(())
        }
        _ => {
            let (bits, scalar) = shape(m);
            let s = cpu.xmm_src(bus, i, 1)?;
            let d0 = xmm_index(i.op_register(0));
            let d = cpu.fpu.xmm[d0];
            let imm = if i.op_count() > 2 {
                i.immediate(2) as u8
            } else {
                0
            };
            let r = if scalar {
                let low = elem(&mut env, m, bits, lane(d, bits, 0), lane(s, bits, 0), imm);
                (d & !(mask(bits) as u128)) | low as u128
            } else {
                build(bits, |k| {
                    elem(&mut env, m, bits, lane(d, bits, k), lane(s, bits, k), imm)
                })
            };
            cpu.sse_fp_flags(&env)?;
            cpu.fpu.xmm[d0] = r;
            Ok(())
        }
    }
}

/// Replace the low `bits` of the destination XMM register, keeping the rest.
fn merge_low(cpu: &mut Cpu, i: &Instruction, bits: u32, v: u64) {
    let d = xmm_index(i.op_register(0));
    let low = mask(bits) as u128;
    cpu.fpu.xmm[d] = (cpu.fpu.xmm[d] & !low) | (v as u128 & low);
}
