//! SSE4.1 (legacy-encoded XMM forms; SDM Vol. 2 pages of each mnemonic): packed integer
//! min/max/multiply/compare, PACKUSDW, PHMINPOSUW, PTEST, the blends, MPSADBW, the sign and
//! zero extensions, element inserts and extracts, MOVNTDQA, ROUNDPS/PD/SS/SD and DPPS/DPPD.
//! SSE4.1 has its own CPUID bit (leaf 1 ECX bit 19), set only once every form here agrees
//! with the host CPU in the differential test.

use super::super::regs::rflags;
use super::super::Cpu;
use super::int::{build, lane, map2, mask, sx};
use super::{xmm_index, ExecResult};
use crate::bus::Bus;
use crate::cpu::softfp::{Env, Op};
use iced_x86::{Instruction, Mnemonic as M, OpKind};

/// The SSE4.1 mnemonics (every legacy form of each is executed here).
pub const IMPLEMENTED: &[M] = &[
    M::Pmulld,
    M::Pmuldq,
    M::Pminsb,
    M::Pminsd,
    M::Pminuw,
    M::Pminud,
    M::Pmaxsb,
    M::Pmaxsd,
    M::Pmaxuw,
    M::Pmaxud,
    M::Pcmpeqq,
    M::Packusdw,
    M::Phminposuw,
    M::Ptest,
    M::Pblendw,
    M::Pblendvb,
    M::Blendps,
    M::Blendpd,
    M::Blendvps,
    M::Blendvpd,
    M::Mpsadbw,
    M::Pmovsxbw,
    M::Pmovsxbd,
    M::Pmovsxbq,
    M::Pmovsxwd,
    M::Pmovsxwq,
    M::Pmovsxdq,
    M::Pmovzxbw,
    M::Pmovzxbd,
    M::Pmovzxbq,
    M::Pmovzxwd,
    M::Pmovzxwq,
    M::Pmovzxdq,
    M::Pextrb,
    M::Pextrd,
    M::Pextrq,
    M::Pinsrb,
    M::Pinsrd,
    M::Pinsrq,
    M::Extractps,
    M::Insertps,
    M::Movntdqa,
    M::Roundps,
    M::Roundpd,
    M::Roundss,
    M::Roundsd,
    M::Dpps,
    M::Dppd,
];

/// Whether `m` is executed here.
pub fn handles(m: M) -> bool {
    IMPLEMENTED.contains(&m)
}

/// One stage of DPPS/DPPD (the products, the first sums, the last sum) is like one SSE
/// arithmetic instruction: its flags go to MXCSR (an unmasked pre-computation exception
/// hides the post-computation ones) and an unmasked one is #XM before the next stage
/// runs, with the earlier stages' flags already recorded (as on the host CPU).
fn stage(cpu: &mut Cpu, env: &Env) -> ExecResult {
    cpu.sse_fp_flags(env)
}

/// Select lane `k` of `s` where `pick(k)`, else of `d`.
fn blend(d: u128, s: u128, bits: u32, pick: impl Fn(u32) -> bool) -> u128 {
    build(bits, |k| {
        if pick(k) {
            lane(s, bits, k)
        } else {
            lane(d, bits, k)
        }
    })
}

pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let m = i.mnemonic();
    match m {
        M::Pextrb | M::Pextrd | M::Pextrq | M::Extractps => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let imm = i.immediate(2) as u32;
            let (bits, k) = match m {
                M::Pextrb => (8, imm & 15),
                M::Pextrq => (64, imm & 1),
                _ => (32, imm & 3),
            };
            let v = lane(s, bits, k);
            if i.op_kind(0) == OpKind::Register {
                // A register destination is zero-extended to its full width.
                cpu.set_reg(i.op_register(0).full_register(), v);
                Ok(())
            } else {
                cpu.xmm_dst(bus, i, 0, v as u128)
            }
        }
        M::Pinsrb | M::Pinsrd | M::Pinsrq => {
            let imm = i.immediate(2) as u32;
            let (bits, k) = match m {
                M::Pinsrb => (8, imm & 15),
                M::Pinsrq => (64, imm & 1),
                _ => (32, imm & 3),
            };
            let v = cpu.xmm_src(bus, i, 1)? as u64 & mask(bits);
            let x = &mut cpu.fpu.xmm[xmm_index(i.op_register(0))];
            *x = (*x & !((mask(bits) as u128) << (bits * k))) | (v as u128) << (bits * k);
            Ok(())
        }
        M::Insertps => {
            let imm = i.immediate(2) as u32;
            let v = if i.op_kind(1) == OpKind::Register {
                lane(cpu.xmm_src(bus, i, 1)?, 32, imm >> 6)
            } else {
                cpu.xmm_src(bus, i, 1)? as u64 & 0xffff_ffff
            };
            let d0 = xmm_index(i.op_register(0));
            let d = cpu.fpu.xmm[d0];
            let dst = (imm >> 4) & 3;
            cpu.fpu.xmm[d0] = build(32, |k| {
                if imm & (1 << k) != 0 {
                    0
                } else if k == dst {
                    v
                } else {
                    lane(d, 32, k)
                }
            });
            Ok(())
        }
        M::Movntdqa => {
            let v = cpu.xmm_src(bus, i, 1)?;
            cpu.fpu.xmm[xmm_index(i.op_register(0))] = v;
            Ok(())
        }
        M::Ptest => {
            let d = cpu.fpu.xmm[xmm_index(i.op_register(0))];
            let s = cpu.xmm_src(bus, i, 1)?;
            let all = rflags::ZF | rflags::PF | rflags::CF | rflags::OF | rflags::SF | rflags::AF;
            let mut f = 0;
            if s & d == 0 {
                f |= rflags::ZF;
            }
            if s & !d == 0 {
                f |= rflags::CF;
            }
            cpu.rflags = (cpu.rflags & !all) | f;
            Ok(())
        }
        M::Pmovsxbw
        | M::Pmovsxbd
        | M::Pmovsxbq
        | M::Pmovsxwd
        | M::Pmovsxwq
        | M::Pmovsxdq
        | M::Pmovzxbw
        | M::Pmovzxbd
        | M::Pmovzxbq
        | M::Pmovzxwd
        | M::Pmovzxwq
        | M::Pmovzxdq => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let (from, to) = match m {
                M::Pmovsxbw | M::Pmovzxbw => (8, 16),
                M::Pmovsxbd | M::Pmovzxbd => (8, 32),
                M::Pmovsxbq | M::Pmovzxbq => (8, 64),
                M::Pmovsxwd | M::Pmovzxwd => (16, 32),
                M::Pmovsxwq | M::Pmovzxwq => (16, 64),
                _ => (32, 64),
            };
            let signed = matches!(
                m,
                M::Pmovsxbw | M::Pmovsxbd | M::Pmovsxbq | M::Pmovsxwd | M::Pmovsxwq | M::Pmovsxdq
            );
            cpu.fpu.xmm[xmm_index(i.op_register(0))] = build(to, |k| {
                let v = lane(s, from, k);
                if signed {
                    sx(v, from) as u64
                } else {
                    v
                }
            });
            Ok(())
        }
        M::Roundps | M::Roundpd | M::Roundss | M::Roundsd => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let imm = i.immediate(2) as u32;
            let mut env = Env::new(cpu.fpu.mxcsr);
            if imm & 4 == 0 {
                env = env.with_rc(imm & 3);
            }
            let inexact = imm & 8 == 0;
            let d0 = xmm_index(i.op_register(0));
            let d = cpu.fpu.xmm[d0];
            let r = match m {
                M::Roundps => build(32, |k| env.round32(lane(s, 32, k) as u32, inexact) as u64),
                M::Roundpd => build(64, |k| env.round64(lane(s, 64, k), inexact)),
                M::Roundss => (d & !0xffff_ffffu128) | env.round32(s as u32, inexact) as u128,
                _ => (d & !(u64::MAX as u128)) | env.round64(s as u64, inexact) as u128,
            };
            cpu.sse_fp_flags(&env)?;
            cpu.fpu.xmm[d0] = r;
            Ok(())
        }
        M::Dpps | M::Dppd => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let imm = i.immediate(2) as u32;
            let d0 = xmm_index(i.op_register(0));
            let d = cpu.fpu.xmm[d0];
            let csr = cpu.fpu.mxcsr;
            let r = if m == M::Dpps {
                let mut env = Env::new(csr);
                let p: Vec<u32> = (0..4)
                    .map(|k| {
                        if imm & (0x10 << k) != 0 {
                            env.arith32(Op::Mul, lane(d, 32, k) as u32, lane(s, 32, k) as u32)
                        } else {
                            0
                        }
                    })
                    .collect();
                stage(cpu, &env)?;
                let mut env = Env::new(csr);
                let t1 = env.arith32(Op::Add, p[0], p[1]);
                let t2 = env.arith32(Op::Add, p[2], p[3]);
                stage(cpu, &env)?;
                let mut env = Env::new(csr);
                let t = env.arith32(Op::Add, t1, t2) as u64;
                stage(cpu, &env)?;
                build(32, |k| if imm & (1 << k) != 0 { t } else { 0 })
            } else {
                let mut env = Env::new(csr);
                let p: Vec<u64> = (0..2)
                    .map(|k| {
                        if imm & (0x10 << k) != 0 {
                            env.arith64(Op::Mul, lane(d, 64, k), lane(s, 64, k))
                        } else {
                            0
                        }
                    })
                    .collect();
                stage(cpu, &env)?;
                let mut env = Env::new(csr);
                let t = env.arith64(Op::Add, p[0], p[1]);
                stage(cpu, &env)?;
                build(64, |k| if imm & (1 << k) != 0 { t } else { 0 })
            };
            cpu.fpu.xmm[d0] = r;
            Ok(())
        }
        _ => {
            let s = cpu.xmm_src(bus, i, 1)?;
            let d0 = xmm_index(i.op_register(0));
            let d = cpu.fpu.xmm[d0];
            let x0 = cpu.fpu.xmm[0];
            let imm = i.immediate(2) as u32;
            let msb = |v: u128, bits: u32, k: u32| lane(v, bits, k) >> (bits - 1) != 0;
            let r = match m {
                M::Pmulld => map2(d, s, 32, |a, b| a.wrapping_mul(b)),
                M::Pmuldq => build(64, |k| {
                    (sx(lane(d, 32, 2 * k), 32) * sx(lane(s, 32, 2 * k), 32)) as u64
                }),
                M::Pminsb => map2(d, s, 8, |a, b| sx(a, 8).min(sx(b, 8)) as u64),
                M::Pmaxsb => map2(d, s, 8, |a, b| sx(a, 8).max(sx(b, 8)) as u64),
                M::Pminsd => map2(d, s, 32, |a, b| sx(a, 32).min(sx(b, 32)) as u64),
                M::Pmaxsd => map2(d, s, 32, |a, b| sx(a, 32).max(sx(b, 32)) as u64),
                M::Pminuw => map2(d, s, 16, u64::min),
                M::Pmaxuw => map2(d, s, 16, u64::max),
                M::Pminud => map2(d, s, 32, u64::min),
                M::Pmaxud => map2(d, s, 32, u64::max),
                M::Pcmpeqq => map2(d, s, 64, |a, b| if a == b { u64::MAX } else { 0 }),
                M::Packusdw => build(16, |k| {
                    let v = if k < 4 {
                        lane(d, 32, k)
                    } else {
                        lane(s, 32, k - 4)
                    };
                    sx(v, 32).clamp(0, 0xffff) as u64
                }),
                M::Phminposuw => {
                    let (idx, min) = (0..8)
                        .map(|k| (k, lane(s, 16, k)))
                        .min_by_key(|&(k, v)| (v, k))
                        .unwrap_or((0, 0));
                    (min | (idx as u64) << 16) as u128
                }
                M::Pblendw => blend(d, s, 16, |k| imm & (1 << k) != 0),
                M::Blendps => blend(d, s, 32, |k| imm & (1 << k) != 0),
                M::Blendpd => blend(d, s, 64, |k| imm & (1 << k) != 0),
                M::Pblendvb => blend(d, s, 8, |k| msb(x0, 8, k)),
                M::Blendvps => blend(d, s, 32, |k| msb(x0, 32, k)),
                M::Blendvpd => blend(d, s, 64, |k| msb(x0, 64, k)),
                M::Mpsadbw => {
                    let so = 4 * (imm & 3);
                    let dof = 4 * ((imm >> 2) & 1);
                    build(16, |k| {
                        (0..4)
                            .map(|j| lane(d, 8, dof + k + j).abs_diff(lane(s, 8, so + j)))
                            .sum()
                    })
                }
                _ => return Err(cpu.unimplemented(i)),
            };
            cpu.fpu.xmm[d0] = r;
            Ok(())
        }
    }
}
