//! MMX: the instructions with MMX-register operands (MMX itself, the MMX forms SSE, SSE2
//! and SSSE3 added, MOVQ2DQ/MOVDQ2Q and the MMX/XMM conversions) and EMMS.
//!
//! MM0-7 are bits 63:0 of the x87 physical registers R0-R7 (SDM Vol. 1, 9.2; Vol. 3A,
//! 12.2). Every instruction here except EMMS, and except the conversions whose only
//! MMX-sized operand is in memory, makes the x87-to-MMX transition (Vol. 3A, 12.2 and
//! Table 12-2): TOP becomes 0 and every tag valid; a write to MMi also sets bits 79:64 of
//! Ri to all ones. EMMS marks every tag empty and, like every MMX instruction, sets TOP to
//! 0. Checks before executing (the exception tables for MMX and legacy SIMD/MMX
//! instructions, Vol. 2 and Vol. 3A ch. 23): CR0.EM is #UD (also CR4.OSFXSR clear for the
//! conversions with floating-point exceptions), CR0.TS is #NM, a pending unmasked x87
//! exception is #MF (with CR0.NE, as the x87 instructions do). The transition happens
//! once the operands are read: a #PF or #GP leaves the x87 state as it was, a SIMD
//! floating-point exception (#XM) of a conversion comes after it (as on the host CPU).

use super::super::exception::{vector, Exception};
use super::super::fpu_state::fsw;
use super::super::regs::{cr0, cr4};
use super::super::Cpu;
use super::int::{binary, build, lane, shift, sx};
use super::{xmm_index, ExecResult};
use crate::bus::Bus;
use crate::cpu::softfp::Env;
use iced_x86::{
    Code, CpuidFeature, EncodingKind, Instruction, Mnemonic as M, OpCodeOperandKind as K, OpKind,
    Register,
};

/// Whether `code` is a legacy-encoded instruction with an MMX operand, or EMMS.
pub fn route(code: Code) -> bool {
    let op = code.op_code();
    op.encoding() == EncodingKind::Legacy
        && (code == Code::Emms
            || op
                .op_kinds()
                .iter()
                .any(|k| matches!(k, K::mm_reg | K::mm_rm | K::mm_or_mem)))
}

/// The mnemonics whose MMX forms are implemented (every such form), besides the ones
/// the XMM list of the parent module names.
const MMX_ONLY: &[M] = &[
    M::Emms,
    M::Pshufw,
    M::Movq2dq,
    M::Movdq2q,
    M::Maskmovq,
    M::Movntq,
    M::Cvtpi2ps,
    M::Cvtps2pi,
    M::Cvttps2pi,
    M::Cvtpi2pd,
    M::Cvtpd2pi,
    M::Cvttpd2pi,
];

/// Whether `code` (an MMX form by [`route`]) is executed: the MMX, SSE, SSE2 and SSSE3
/// forms; the 3DNow! and Cyrix EMMI ones stop the machine as unimplemented.
pub fn implemented(code: Code) -> bool {
    let m = code.mnemonic();
    route(code)
        && code.op_code().mode64()
        && (MMX_ONLY.contains(&m) || super::IMPLEMENTED.contains(&m))
        && Instruction::with(code).cpuid_features().iter().all(|f| {
            matches!(
                f,
                CpuidFeature::MMX | CpuidFeature::SSE | CpuidFeature::SSE2 | CpuidFeature::SSSE3
            )
        })
}

/// Index of an MMX register.
#[inline]
fn mm_index(r: Register) -> usize {
    (r as usize) - (Register::MM0 as usize)
}

/// The conversions that raise SIMD floating-point exceptions (and need CR4.OSFXSR).
fn fp_conversion(m: M) -> bool {
    matches!(
        m,
        M::Cvtpi2ps | M::Cvtps2pi | M::Cvttps2pi | M::Cvtpi2pd | M::Cvtpd2pi | M::Cvttpd2pi
    )
}

/// Whether the instruction touches an MMX register (then it checks for a pending x87
/// exception and makes the x87-to-MMX transition). CVTPI2PS/CVTPI2PD with a memory
/// source do not (SDM: "if the source operand is an MMX register").
fn touches_mm(i: &Instruction) -> bool {
    i.mnemonic() == M::Emms
        || (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_mm())
}

impl Cpu {
    /// MMi.
    #[inline]
    pub(crate) fn mm(&self, k: usize) -> u64 {
        self.fpu.st[k].signif
    }

    /// Write MMi: bits 79:64 of Ri become all ones.
    #[inline]
    pub(crate) fn set_mm(&mut self, k: usize, v: u64) {
        self.fpu.st[k].signif = v;
        self.fpu.st[k].sign_exp = 0xffff;
    }

    /// The x87-to-MMX transition: TOP 0, every tag valid.
    #[inline]
    fn enter_mmx(&mut self) {
        self.fpu.fsw &= !fsw::TOP;
        self.fpu.ftw = 0;
    }

    /// Operand `n` as 64 bits: an MMX register, the low half of an XMM register, a
    /// general register, memory of its size (zero-extended) or an immediate.
    fn mmx_src(&mut self, bus: &mut Bus, i: &Instruction, n: u32) -> Result<u64, Exception> {
        match i.op_kind(n) {
            OpKind::Register => {
                let r = i.op_register(n);
                Ok(if r.is_mm() {
                    self.mm(mm_index(r))
                } else if r.is_xmm() {
                    self.fpu.xmm[xmm_index(r)] as u64
                } else {
                    self.reg(r)
                })
            }
            OpKind::Memory => {
                let size = i.memory_size().size() as u32;
                Ok(self.sse_read_mem(bus, i, size)? as u64)
            }
            _ => Ok(i.immediate(n)),
        }
    }

    /// Write operand `n`: an MMX register, a whole XMM register (zero-extended), a
    /// general register (32-bit writes zero-extend) or memory of the operand's size.
    fn mmx_dst(&mut self, bus: &mut Bus, i: &Instruction, n: u32, v: u64) -> ExecResult {
        match i.op_kind(n) {
            OpKind::Register => {
                let r = i.op_register(n);
                if r.is_mm() {
                    self.set_mm(mm_index(r), v);
                } else if r.is_xmm() {
                    self.fpu.xmm[xmm_index(r)] = v as u128;
                } else {
                    self.set_reg(r, v);
                }
                Ok(())
            }
            OpKind::Memory => {
                let size = i.memory_size().size() as u32;
                self.sse_write_mem(bus, i, size, v as u128)
            }
            _ => Err(Exception::ud()),
        }
    }

    /// The checks of an MMX instruction, in the SDM's order.
    fn mmx_available(&self, i: &Instruction) -> ExecResult {
        if self.cr0 & cr0::EM != 0 || (fp_conversion(i.mnemonic()) && self.cr4 & cr4::OSFXSR == 0) {
            return Err(Exception::ud());
        }
        if self.cr0 & cr0::TS != 0 {
            return Err(Exception::new(vector::NM));
        }
        if touches_mm(i) && self.fpu.fsw & fsw::ES != 0 && self.cr0 & cr0::NE != 0 {
            return Err(Exception::new(vector::MF));
        }
        Ok(())
    }
}

/// Execute an implemented MMX form.
pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    cpu.mmx_available(i)?;
    let m = i.mnemonic();
    if m == M::Emms {
        // Every tag empty, and TOP 0 (SDM Vol. 3A, Table 12-2; the host agrees).
        cpu.fpu.ftw = 0xffff;
        cpu.fpu.fsw &= !fsw::TOP;
        return Ok(());
    }
    run(cpu, bus, i, m)?;
    if touches_mm(i) {
        cpu.enter_mmx();
    }
    Ok(())
}

/// Write the 64-bit result to the MMX register operand 0.
fn set_dst_mm(cpu: &mut Cpu, i: &Instruction, v: u64) {
    cpu.set_mm(mm_index(i.op_register(0)), v);
}

fn run(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction, m: M) -> ExecResult {
    match m {
        M::Movd => {
            let v = cpu.mmx_src(bus, i, 1)? & 0xffff_ffff;
            cpu.mmx_dst(bus, i, 0, v)
        }
        M::Movq | M::Movntq | M::Movq2dq | M::Movdq2q => {
            let v = cpu.mmx_src(bus, i, 1)?;
            cpu.mmx_dst(bus, i, 0, v)
        }
        M::Pshufw => {
            let s = cpu.mmx_src(bus, i, 1)?;
            let imm = i.immediate(2) as u32;
            let r = (0..4).fold(0u64, |a, k| {
                a | ((s >> (16 * ((imm >> (2 * k)) & 3))) & 0xffff) << (16 * k)
            });
            set_dst_mm(cpu, i, r);
            Ok(())
        }
        M::Pinsrw => {
            let s = cpu.mmx_src(bus, i, 1)? & 0xffff;
            let k = (i.immediate(2) & 3) as u32;
            let d = mm_index(i.op_register(0));
            let r = (cpu.mm(d) & !(0xffff << (16 * k))) | s << (16 * k);
            cpu.set_mm(d, r);
            Ok(())
        }
        M::Pextrw => {
            let s = cpu.mmx_src(bus, i, 1)?;
            let k = (i.immediate(2) & 3) as u32;
            cpu.set_reg(i.op_register(0).full_register(), (s >> (16 * k)) & 0xffff);
            Ok(())
        }
        M::Pmovmskb => {
            let s = cpu.mmx_src(bus, i, 1)?;
            let r = (0..8).fold(0u64, |a, k| a | ((s >> (8 * k + 7)) & 1) << k);
            cpu.set_reg(i.op_register(0), r);
            Ok(())
        }
        M::Maskmovq => maskmovq(cpu, bus, i),
        M::Psllw | M::Pslld | M::Psllq | M::Psrlw | M::Psrld | M::Psrlq | M::Psraw | M::Psrad => {
            let bits = match m {
                M::Psllw | M::Psrlw | M::Psraw => 16,
                M::Pslld | M::Psrld | M::Psrad => 32,
                _ => 64,
            };
            // The count is the immediate or all 64 bits of the source.
            let count = match i.op_kind(1) {
                OpKind::Immediate8 => i.immediate(1) & 0xff,
                _ => cpu.mmx_src(bus, i, 1)?,
            };
            let d = mm_index(i.op_register(0));
            let r = shift(cpu.mm(d) as u128, bits, count, m) as u64;
            cpu.set_mm(d, r);
            Ok(())
        }
        M::Palignr => {
            let s = cpu.mmx_src(bus, i, 1)?;
            let d0 = mm_index(i.op_register(0));
            let cat = (cpu.mm(d0) as u128) << 64 | s as u128;
            let n = (i.immediate(2) & 0xff) as u32;
            let r = if n >= 16 { 0 } else { (cat >> (8 * n)) as u64 };
            cpu.set_mm(d0, r);
            Ok(())
        }
        M::Pabsb | M::Pabsw | M::Pabsd => {
            let s = cpu.mmx_src(bus, i, 1)? as u128;
            let bits = match m {
                M::Pabsb => 8,
                M::Pabsw => 16,
                _ => 32,
            };
            let r = build(bits, |k| sx(lane(s, bits, k), bits).unsigned_abs()) as u64;
            set_dst_mm(cpu, i, r);
            Ok(())
        }
        M::Cvtpi2ps | M::Cvtpi2pd | M::Cvtps2pi | M::Cvttps2pi | M::Cvtpd2pi | M::Cvttpd2pi => {
            convert(cpu, bus, i, m)
        }
        _ => {
            let s = cpu.mmx_src(bus, i, 1)?;
            let d0 = mm_index(i.op_register(0));
            let d = cpu.mm(d0);
            let r = mmx_binary(m, d, s).ok_or_else(|| cpu.unimplemented(i))?;
            cpu.set_mm(d0, r);
            Ok(())
        }
    }
}

/// The two-operand operations on 64-bit values: the XMM ones of `int` where the 128-bit
/// computation's low half is the 64-bit one, the rest rearranged so it is.
fn mmx_binary(m: M, d: u64, s: u64) -> Option<u64> {
    let (d1, s1) = (d as u128, s as u128);
    let both = d1 | s1 << 64;
    Some(match m {
        // High halves: the low unpack of the upper 32 bits.
        M::Punpckhbw | M::Punpckhwd | M::Punpckhdq => {
            let low = match m {
                M::Punpckhbw => M::Punpcklbw,
                M::Punpckhwd => M::Punpcklwd,
                _ => M::Punpckldq,
            };
            binary(low, d1 >> 32, s1 >> 32)? as u64
        }
        // Packs and horizontal operations take dest's lanes then source's: with the two
        // side by side in 128 bits, the first half of the result is the 64-bit one.
        M::Packsswb
        | M::Packssdw
        | M::Packuswb
        | M::Phaddw
        | M::Phaddd
        | M::Phaddsw
        | M::Phsubw
        | M::Phsubd
        | M::Phsubsw => binary(m, both, 0)? as u64,
        // PSHUFB selects with the low 3 bits of each control byte.
        M::Pshufb => (0..8).fold(0u64, |a, k| {
            let c = (s >> (8 * k)) & 0xff;
            let b = if c & 0x80 != 0 {
                0
            } else {
                (d >> (8 * (c & 7))) & 0xff
            };
            a | b << (8 * k)
        }),
        _ => binary(m, d1, s1)? as u64,
    })
}

/// MASKMOVQ: store the bytes of the first register whose mask byte (in the second) has
/// its top bit set, at DS:rDI (segment overridable). Every selected byte's page is
/// checked before any is written.
fn maskmovq(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    use crate::mmu::AccessKind;
    let data = cpu.mm(mm_index(i.op_register(1)));
    let sel = cpu.mm(mm_index(i.op_register(2)));
    let amask = match i.op_kind(0) {
        OpKind::MemorySegEDI => 0xffff_ffff,
        OpKind::MemorySegDI => 0xffff,
        _ => u64::MAX,
    };
    let seg = cpu.mem_seg(i);
    let off = cpu.gpr[super::super::regs::gpr::RDI] & amask;
    let picked: Vec<u32> = (0..8).filter(|k| (sel >> (8 * k + 7)) & 1 != 0).collect();
    let mut las = Vec::with_capacity(picked.len());
    for &k in &picked {
        let la = cpu.linear(seg, off.wrapping_add(k as u64) & amask, 1, true)?;
        cpu.translate(bus, la, AccessKind::Write, false)?;
        las.push(la);
    }
    for (&k, &la) in picked.iter().zip(&las) {
        cpu.write_linear(bus, la, 1, (data >> (8 * k)) & 0xff, false)?;
    }
    Ok(())
}

/// The conversions between packed doubleword integers in MMX registers (or memory) and
/// packed floats in XMM registers (or memory), with MXCSR's rounding and exceptions.
fn convert(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction, m: M) -> ExecResult {
    let mut env = Env::new(cpu.fpu.mxcsr);
    // The transition precedes a SIMD floating-point exception (#XM leaves TOP 0 and the
    // tags valid on the host), but follows the operand read (a #PF/#GP does not).
    let transition = touches_mm(i);
    match m {
        M::Cvtpi2ps | M::Cvtpi2pd => {
            let s = cpu.mmx_src(bus, i, 1)?;
            let d0 = xmm_index(i.op_register(0));
            let r = if m == M::Cvtpi2ps {
                let lo = env.i32_to_f32(s as u32 as i32) as u128;
                let hi = env.i32_to_f32((s >> 32) as u32 as i32) as u128;
                (cpu.fpu.xmm[d0] & !(u64::MAX as u128)) | lo | hi << 32
            } else {
                let lo = env.i32_to_f64(s as u32 as i32) as u128;
                let hi = env.i32_to_f64((s >> 32) as u32 as i32) as u128;
                lo | hi << 64
            };
            if transition {
                cpu.enter_mmx();
            }
            cpu.sse_fp_flags(&env)?;
            cpu.fpu.xmm[d0] = r;
        }
        M::Cvtps2pi | M::Cvttps2pi => {
            let s = cpu.mmx_src(bus, i, 1)?;
            let t = m == M::Cvttps2pi;
            let lo = env.f32_to_int(s as u32, false, t) & 0xffff_ffff;
            let hi = env.f32_to_int((s >> 32) as u32, false, t) & 0xffff_ffff;
            cpu.enter_mmx();
            cpu.sse_fp_flags(&env)?;
            set_dst_mm(cpu, i, lo | hi << 32);
        }
        _ => {
            // The source is 128 bits (aligned in memory).
            let s = cpu.xmm_src(bus, i, 1)?;
            let t = m == M::Cvttpd2pi;
            let lo = env.f64_to_int(s as u64, false, t) & 0xffff_ffff;
            let hi = env.f64_to_int((s >> 64) as u64, false, t) & 0xffff_ffff;
            cpu.enter_mmx();
            cpu.sse_fp_flags(&env)?;
            set_dst_mm(cpu, i, lo | hi << 32);
        }
    }
    Ok(())
}
