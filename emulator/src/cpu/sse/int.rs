//! SSE/SSE2 moves, bitwise logic, packed-integer arithmetic, shifts, shuffles, unpacks,
//! packs and element inserts/extracts (SDM Vol. 2 pages of each mnemonic).

use super::super::Cpu;
use super::{xmm_index, ExecResult};
use crate::bus::Bus;
use iced_x86::{Instruction, Mnemonic as M, OpKind};

/// `n`-bit lanes of a 128-bit value.
#[inline]
pub(crate) fn lane(v: u128, bits: u32, k: u32) -> u64 {
    ((v >> (bits * k)) as u64) & mask(bits)
}
#[inline]
pub(crate) fn mask(bits: u32) -> u64 {
    if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}
/// Build a 128-bit value from lanes produced by `f(k)`.
#[inline]
pub(crate) fn build(bits: u32, mut f: impl FnMut(u32) -> u64) -> u128 {
    (0..128 / bits).fold(0u128, |acc, k| {
        acc | ((f(k) & mask(bits)) as u128) << (bits * k)
    })
}
/// Lane-wise binary operation.
#[inline]
pub(crate) fn map2(a: u128, b: u128, bits: u32, f: impl Fn(u64, u64) -> u64) -> u128 {
    build(bits, |k| f(lane(a, bits, k), lane(b, bits, k)))
}
#[inline]
pub(crate) fn sx(v: u64, bits: u32) -> i64 {
    ((v << (64 - bits)) as i64) >> (64 - bits)
}
fn sat_s(v: i64, bits: u32) -> u64 {
    let max = (1i64 << (bits - 1)) - 1;
    let min = -(1i64 << (bits - 1));
    v.clamp(min, max) as u64 & mask(bits)
}
fn sat_u(v: i64, bits: u32) -> u64 {
    v.clamp(0, mask(bits) as i64) as u64
}
fn all_ones(c: bool, bits: u32) -> u64 {
    if c {
        mask(bits)
    } else {
        0
    }
}

/// Interleave the low (`high` false) or high halves of `a` and `b` in `bits` lanes.
fn unpack(a: u128, b: u128, bits: u32, high: bool) -> u128 {
    let half = 64 / bits;
    let base = if high { half } else { 0 };
    build(bits, |k| {
        let src = base + k / 2;
        if k % 2 == 0 {
            lane(a, bits, src)
        } else {
            lane(b, bits, src)
        }
    })
}

/// A logical or arithmetic shift of every `bits` lane by `count` (counts at least the
/// lane width give 0, or the sign for arithmetic shifts).
pub(super) fn shift(v: u128, bits: u32, count: u64, kind: M) -> u128 {
    build(bits, |k| {
        let x = lane(v, bits, k);
        match kind {
            M::Psllw | M::Pslld | M::Psllq => {
                if count >= bits as u64 {
                    0
                } else {
                    x << count
                }
            }
            M::Psrlw | M::Psrld | M::Psrlq => {
                if count >= bits as u64 {
                    0
                } else {
                    x >> count
                }
            }
            _ => (sx(x, bits) >> count.min(bits as u64 - 1)) as u64,
        }
    })
}

pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let m = i.mnemonic();
    match m {
        // Whole-register or memory-size moves.
        M::Movaps
        | M::Movups
        | M::Movapd
        | M::Movupd
        | M::Movdqa
        | M::Movdqu
        | M::Lddqu
        | M::Movntps
        | M::Movntpd
        | M::Movntdq => {
            let v = cpu.xmm_src(bus, i, 1)?;
            cpu.xmm_dst(bus, i, 0, v)
        }
        // MOVD/MOVQ: a load zero-extends into the XMM register; a store writes the low
        // 32/64 bits; MOVQ xmm, xmm clears bits 127:64.
        M::Movd | M::Movq => {
            let bits = if m == M::Movd { 32 } else { 64 };
            let v = cpu.xmm_src(bus, i, 1)? & mask(bits) as u128;
            cpu.xmm_dst(bus, i, 0, v)
        }
        // MOVSS/MOVSD: register to register merges the low element; a load zeroes the
        // rest; a store writes the element.
        M::Movss | M::Movsd => {
            let bits = if m == M::Movss { 32 } else { 64 };
            let low = mask(bits) as u128;
            let v = cpu.xmm_src(bus, i, 1)? & low;
            if i.op_kind(0) == OpKind::Register && i.op_kind(1) == OpKind::Register {
                let d = xmm_index(i.op_register(0));
                cpu.fpu.xmm[d] = (cpu.fpu.xmm[d] & !low) | v;
                Ok(())
            } else {
                cpu.xmm_dst(bus, i, 0, v)
            }
        }
        // 64-bit halves.
        M::Movlps | M::Movlpd | M::Movhps | M::Movhpd => {
            let high = matches!(m, M::Movhps | M::Movhpd);
            if i.op_kind(0) == OpKind::Memory {
                let s = cpu.xmm_src(bus, i, 1)?;
                let v = if high { s >> 64 } else { s };
                cpu.xmm_dst(bus, i, 0, v & u64::MAX as u128)
            } else {
                let v = cpu.xmm_src(bus, i, 1)? & u64::MAX as u128;
                let d = xmm_index(i.op_register(0));
                let x = &mut cpu.fpu.xmm[d];
                *x = if high {
                    (*x & u64::MAX as u128) | v << 64
                } else {
                    (*x & !(u64::MAX as u128)) | v
                };
                Ok(())
            }
        }
        // SSE3 duplicating moves.
        M::Movsldup | M::Movshdup | M::Movddup => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let r = match m {
                M::Movsldup => build(32, |k| lane(s, 32, k & !1)),
                M::Movshdup => build(32, |k| lane(s, 32, k | 1)),
                _ => build(64, |_| lane(s, 64, 0)),
            };
            cpu.fpu.xmm[xmm_index(i.op_register(0))] = r;
            Ok(())
        }
        M::Movhlps | M::Movlhps => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let d = xmm_index(i.op_register(0));
            let x = &mut cpu.fpu.xmm[d];
            *x = if m == M::Movhlps {
                (*x & !(u64::MAX as u128)) | (s >> 64)
            } else {
                (*x & u64::MAX as u128) | (s << 64)
            };
            Ok(())
        }
        M::Movmskps | M::Movmskpd | M::Pmovmskb => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let bits = match m {
                M::Movmskps => 32,
                M::Movmskpd => 64,
                _ => 8,
            };
            let r = (0..128 / bits).fold(0u64, |a, k| a | (lane(s, bits, k) >> (bits - 1)) << k);
            cpu.set_reg(i.op_register(0), r);
            Ok(())
        }
        M::Pextrw => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let k = (i.immediate(2) & 7) as u32;
            let v = lane(s, 16, k);
            if i.op_kind(0) == OpKind::Register {
                // A register destination is zero-extended to its full width.
                let r = i.op_register(0);
                cpu.set_reg(r.full_register(), v);
                Ok(())
            } else {
                cpu.xmm_dst(bus, i, 0, v as u128)
            }
        }
        M::Pinsrw => {
            let s = cpu.xmm_src(bus, i, 1)? as u64 & 0xffff;
            let k = (i.immediate(2) & 7) as u32;
            let d = xmm_index(i.op_register(0));
            let x = &mut cpu.fpu.xmm[d];
            *x = (*x & !(0xffffu128 << (16 * k))) | (s as u128) << (16 * k);
            Ok(())
        }
        M::Pshufd | M::Pshuflw | M::Pshufhw | M::Shufps | M::Shufpd => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let imm = i.immediate(2) as u32;
            let d0 = xmm_index(i.op_register(0));
            let d = cpu.fpu.xmm[d0];
            let sel = |k: u32| (imm >> (2 * k)) & 3;
            let r = match m {
                M::Pshufd => build(32, |k| lane(s, 32, sel(k))),
                M::Pshuflw => build(16, |k| {
                    if k < 4 {
                        lane(s, 16, sel(k))
                    } else {
                        lane(s, 16, k)
                    }
                }),
                M::Pshufhw => build(16, |k| {
                    if k < 4 {
                        lane(s, 16, k)
                    } else {
                        lane(s, 16, 4 + sel(k - 4))
                    }
                }),
                M::Shufps => build(32, |k| {
                    if k < 2 {
                        lane(d, 32, sel(k))
                    } else {
                        lane(s, 32, sel(k))
                    }
                }),
                _ => lane(d, 64, imm & 1) as u128 | (lane(s, 64, (imm >> 1) & 1) as u128) << 64,
            };
            cpu.fpu.xmm[d0] = r;
            Ok(())
        }
        M::Psllw | M::Pslld | M::Psllq | M::Psrlw | M::Psrld | M::Psrlq | M::Psraw | M::Psrad => {
            let bits = match m {
                M::Psllw | M::Psrlw | M::Psraw => 16,
                M::Pslld | M::Psrld | M::Psrad => 32,
                _ => 64,
            };
            // The count is the immediate or the low 64 bits of the source.
            let count = match i.op_kind(1) {
                OpKind::Immediate8 => i.immediate(1) & 0xff,
                _ => cpu.xmm_src(bus, i, 1)? as u64,
            };
            let d = xmm_index(i.op_register(0));
            cpu.fpu.xmm[d] = shift(cpu.fpu.xmm[d], bits, count, m);
            Ok(())
        }
        // SSSE3 (XMM forms): byte alignment of the concatenation dest:src.
        M::Palignr => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let d0 = xmm_index(i.op_register(0));
            let d = cpu.fpu.xmm[d0];
            let n = (i.immediate(2) & 0xff) as u32;
            let byte = |k: u32| -> u64 {
                match k {
                    0..=15 => lane(s, 8, k),
                    16..=31 => lane(d, 8, k - 16),
                    _ => 0,
                }
            };
            cpu.fpu.xmm[d0] = build(8, |k| byte(k + n));
            Ok(())
        }
        M::Pabsb | M::Pabsw | M::Pabsd => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let bits = match m {
                M::Pabsb => 8,
                M::Pabsw => 16,
                _ => 32,
            };
            cpu.fpu.xmm[xmm_index(i.op_register(0))] =
                build(bits, |k| sx(lane(s, bits, k), bits).unsigned_abs());
            Ok(())
        }
        M::Pslldq | M::Psrldq => {
            let n = (i.immediate(1) & 0xff).min(16) as u32;
            let d = xmm_index(i.op_register(0));
            let x = cpu.fpu.xmm[d];
            cpu.fpu.xmm[d] = if n == 16 {
                0
            } else if m == M::Pslldq {
                x << (8 * n)
            } else {
                x >> (8 * n)
            };
            Ok(())
        }
        _ => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let d0 = xmm_index(i.op_register(0));
            let d = cpu.fpu.xmm[d0];
            let r = binary(m, d, s).ok_or_else(|| cpu.unimplemented(i))?;
            cpu.fpu.xmm[d0] = r;
            Ok(())
        }
    }
}

/// The two-operand packed-integer and logic operations: `d op s`.
pub(super) fn binary(m: M, d: u128, s: u128) -> Option<u128> {
    Some(match m {
        M::Andps | M::Andpd | M::Pand => d & s,
        M::Andnps | M::Andnpd | M::Pandn => !d & s,
        M::Orps | M::Orpd | M::Por => d | s,
        M::Xorps | M::Xorpd | M::Pxor => d ^ s,
        M::Paddb => map2(d, s, 8, u64::wrapping_add),
        M::Paddw => map2(d, s, 16, u64::wrapping_add),
        M::Paddd => map2(d, s, 32, u64::wrapping_add),
        M::Paddq => map2(d, s, 64, u64::wrapping_add),
        M::Psubb => map2(d, s, 8, u64::wrapping_sub),
        M::Psubw => map2(d, s, 16, u64::wrapping_sub),
        M::Psubd => map2(d, s, 32, u64::wrapping_sub),
        M::Psubq => map2(d, s, 64, u64::wrapping_sub),
        M::Paddsb => map2(d, s, 8, |a, b| sat_s(sx(a, 8) + sx(b, 8), 8)),
        M::Paddsw => map2(d, s, 16, |a, b| sat_s(sx(a, 16) + sx(b, 16), 16)),
        M::Psubsb => map2(d, s, 8, |a, b| sat_s(sx(a, 8) - sx(b, 8), 8)),
        M::Psubsw => map2(d, s, 16, |a, b| sat_s(sx(a, 16) - sx(b, 16), 16)),
        M::Paddusb => map2(d, s, 8, |a, b| sat_u(a as i64 + b as i64, 8)),
        M::Paddusw => map2(d, s, 16, |a, b| sat_u(a as i64 + b as i64, 16)),
        M::Psubusb => map2(d, s, 8, |a, b| sat_u(a as i64 - b as i64, 8)),
        M::Psubusw => map2(d, s, 16, |a, b| sat_u(a as i64 - b as i64, 16)),
        M::Pmullw => map2(d, s, 16, |a, b| (sx(a, 16) * sx(b, 16)) as u64),
        M::Pmulhw => map2(d, s, 16, |a, b| ((sx(a, 16) * sx(b, 16)) >> 16) as u64),
        M::Pmulhuw => map2(d, s, 16, |a, b| (a * b) >> 16),
        M::Pmuludq => build(64, |k| {
            lane(d, 64, k) as u32 as u64 * lane(s, 64, k) as u32 as u64
        }),
        M::Pmaddwd => build(32, |k| {
            let p = |j| sx(lane(d, 16, j), 16) * sx(lane(s, 16, j), 16);
            (p(2 * k) + p(2 * k + 1)) as u64
        }),
        M::Pavgb => map2(d, s, 8, |a, b| (a + b + 1) >> 1),
        M::Pavgw => map2(d, s, 16, |a, b| (a + b + 1) >> 1),
        M::Pminub => map2(d, s, 8, u64::min),
        M::Pmaxub => map2(d, s, 8, u64::max),
        M::Pminsw => map2(d, s, 16, |a, b| sx(a, 16).min(sx(b, 16)) as u64),
        M::Pmaxsw => map2(d, s, 16, |a, b| sx(a, 16).max(sx(b, 16)) as u64),
        M::Psadbw => build(64, |k| {
            (0..8)
                .map(|j| lane(d, 8, 8 * k + j).abs_diff(lane(s, 8, 8 * k + j)))
                .sum()
        }),
        M::Pcmpeqb => map2(d, s, 8, |a, b| all_ones(a == b, 8)),
        M::Pcmpeqw => map2(d, s, 16, |a, b| all_ones(a == b, 16)),
        M::Pcmpeqd => map2(d, s, 32, |a, b| all_ones(a == b, 32)),
        M::Pcmpgtb => map2(d, s, 8, |a, b| all_ones(sx(a, 8) > sx(b, 8), 8)),
        M::Pcmpgtw => map2(d, s, 16, |a, b| all_ones(sx(a, 16) > sx(b, 16), 16)),
        M::Pcmpgtd => map2(d, s, 32, |a, b| all_ones(sx(a, 32) > sx(b, 32), 32)),
        M::Unpcklps => unpack(d, s, 32, false),
        M::Unpckhps => unpack(d, s, 32, true),
        M::Unpcklpd | M::Punpcklqdq => unpack(d, s, 64, false),
        M::Unpckhpd | M::Punpckhqdq => unpack(d, s, 64, true),
        M::Punpcklbw => unpack(d, s, 8, false),
        M::Punpcklwd => unpack(d, s, 16, false),
        M::Punpckldq => unpack(d, s, 32, false),
        M::Punpckhbw => unpack(d, s, 8, true),
        M::Punpckhwd => unpack(d, s, 16, true),
        M::Punpckhdq => unpack(d, s, 32, true),
        M::Packsswb => pack(d, s, 16, |v| sat_s(sx(v, 16), 8)),
        M::Packssdw => pack(d, s, 32, |v| sat_s(sx(v, 32), 16)),
        M::Packuswb => pack(d, s, 16, |v| sat_u(sx(v, 16), 8)),
        // SSSE3.
        M::Pshufb => build(8, |k| {
            let c = lane(s, 8, k);
            if c & 0x80 != 0 {
                0
            } else {
                lane(d, 8, (c & 15) as u32)
            }
        }),
        M::Phaddw | M::Phaddd | M::Phaddsw | M::Phsubw | M::Phsubd | M::Phsubsw => {
            let bits = if matches!(m, M::Phaddd | M::Phsubd) {
                32
            } else {
                16
            };
            let n = 128 / bits;
            build(bits, |k| {
                let (src, j) = if k < n / 2 {
                    (d, 2 * k)
                } else {
                    (s, 2 * (k - n / 2))
                };
                let (a, b) = (
                    sx(lane(src, bits, j), bits),
                    sx(lane(src, bits, j + 1), bits),
                );
                match m {
                    M::Phaddw | M::Phaddd => (a + b) as u64,
                    M::Phsubw | M::Phsubd => (a - b) as u64,
                    M::Phaddsw => sat_s(a + b, 16),
                    _ => sat_s(a - b, 16),
                }
            })
        }
        M::Pmaddubsw => build(16, |k| {
            let p = |j| lane(d, 8, j) as i64 * sx(lane(s, 8, j), 8);
            sat_s(p(2 * k) + p(2 * k + 1), 16)
        }),
        M::Pmulhrsw => map2(d, s, 16, |a, b| {
            ((((sx(a, 16) * sx(b, 16)) >> 14) + 1) >> 1) as u64
        }),
        M::Psignb | M::Psignw | M::Psignd => {
            let bits = match m {
                M::Psignb => 8,
                M::Psignw => 16,
                _ => 32,
            };
            map2(d, s, bits, |a, b| match sx(b, bits).signum() {
                -1 => a.wrapping_neg(),
                0 => 0,
                _ => a,
            })
        }
        _ => return None,
    })
}

/// Narrow the `bits` lanes of `d` then `s` to half width with `f`.
fn pack(d: u128, s: u128, bits: u32, f: impl Fn(u64) -> u64) -> u128 {
    let n = 128 / bits;
    build(bits / 2, |k| {
        if k < n {
            f(lane(d, bits, k))
        } else {
            f(lane(s, bits, k - n))
        }
    })
}
