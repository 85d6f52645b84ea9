//! SSE and SSE2 (legacy-encoded XMM forms), LDMXCSR/STMXCSR, FXSAVE/FXRSTOR, XSAVE and
//! XGETBV/XSETBV. Legacy-encoded forms with XMM (not MMX) operands reach the
//! instruction files, forms with an MMX operand and EMMS reach [`mmx`]; the decision is made on iced-x86's `Code` by [`route`], so a string
//! MOVSD/CMPSD never lands here and an SSE2 MOVSD/CMPSD never lands in the string code.
//! Everything [`implemented`] does not name stops the machine as unimplemented.

mod fp;
mod int;
pub mod mmx;
mod sse41;
mod sse42;
mod state;

use super::exception::{vector, Exception};
use super::fpu_state::mxcsr;
use super::regs::{cr0, cr4};
use super::Cpu;
use crate::bus::Bus;
use iced_x86::Register;
use iced_x86::{Code, EncodingKind, Instruction, Mnemonic as M, OpCodeOperandKind as K, OpKind};

pub use state::{xsave_area_size, XSAVE_LEGACY_SIZE};

type ExecResult = Result<(), Exception>;

/// Bytes of an XMM register.
const XMM_BYTES: u32 = 16;

/// Whether `code` is a legacy-encoded instruction with an XMM operand and no MMX one.
pub fn is_legacy_xmm(code: Code) -> bool {
    let op = code.op_code();
    if op.encoding() != EncodingKind::Legacy {
        return false;
    }
    let kinds = op.op_kinds();
    let xmm = kinds
        .iter()
        .any(|k| matches!(k, K::xmm_reg | K::xmm_rm | K::xmm_or_mem));
    let mmx = kinds
        .iter()
        .any(|k| matches!(k, K::mm_reg | K::mm_rm | K::mm_or_mem));
    xmm && !mmx
}

/// The SSE-family instructions without XMM operands that this module executes.
fn is_state_insn(m: M) -> bool {
    matches!(
        m,
        M::Ldmxcsr
            | M::Stmxcsr
            | M::Fxsave
            | M::Fxsave64
            | M::Fxrstor
            | M::Fxrstor64
            | M::Xsave
            | M::Xsave64
            | M::Xsaveopt
            | M::Xsaveopt64
            | M::Xrstor
            | M::Xrstor64
            | M::Xgetbv
            | M::Xsetbv
            | M::Movnti
            | M::Crc32
    )
}

/// Whether this module handles `code` (it may still report a form unimplemented).
pub fn route(code: Code) -> bool {
    is_legacy_xmm(code) || is_state_insn(code.mnemonic()) || mmx::route(code)
}

/// The mnemonics whose legacy XMM forms are implemented (every such form of them).
pub const IMPLEMENTED: &[M] = &[
    // Moves.
    M::Movaps,
    M::Movups,
    M::Movapd,
    M::Movupd,
    M::Movdqa,
    M::Movdqu,
    M::Movss,
    M::Movsd,
    M::Movlps,
    M::Movhps,
    M::Movlpd,
    M::Movhpd,
    M::Movhlps,
    M::Movlhps,
    M::Movd,
    M::Movq,
    M::Movmskps,
    M::Movmskpd,
    M::Pmovmskb,
    M::Movntps,
    M::Movntpd,
    M::Movntdq,
    M::Lddqu,
    // Logic.
    M::Andps,
    M::Andnps,
    M::Orps,
    M::Xorps,
    M::Andpd,
    M::Andnpd,
    M::Orpd,
    M::Xorpd,
    M::Pand,
    M::Pandn,
    M::Por,
    M::Pxor,
    // Integer arithmetic and compares.
    M::Paddb,
    M::Paddw,
    M::Paddd,
    M::Paddq,
    M::Psubb,
    M::Psubw,
    M::Psubd,
    M::Psubq,
    M::Paddsb,
    M::Paddsw,
    M::Paddusb,
    M::Paddusw,
    M::Psubsb,
    M::Psubsw,
    M::Psubusb,
    M::Psubusw,
    M::Pmullw,
    M::Pmulhw,
    M::Pmulhuw,
    M::Pmuludq,
    M::Pmaddwd,
    M::Pavgb,
    M::Pavgw,
    M::Pminub,
    M::Pmaxub,
    M::Pminsw,
    M::Pmaxsw,
    M::Psadbw,
    M::Pcmpeqb,
    M::Pcmpeqw,
    M::Pcmpeqd,
    M::Pcmpgtb,
    M::Pcmpgtw,
    M::Pcmpgtd,
    // Shifts.
    M::Psllw,
    M::Pslld,
    M::Psllq,
    M::Psrlw,
    M::Psrld,
    M::Psrlq,
    M::Psraw,
    M::Psrad,
    M::Pslldq,
    M::Psrldq,
    // Shuffles, unpacks, packs, inserts and extracts.
    M::Pshufd,
    M::Pshuflw,
    M::Pshufhw,
    M::Shufps,
    M::Shufpd,
    M::Unpcklps,
    M::Unpckhps,
    M::Unpcklpd,
    M::Unpckhpd,
    M::Punpcklbw,
    M::Punpcklwd,
    M::Punpckldq,
    M::Punpcklqdq,
    M::Punpckhbw,
    M::Punpckhwd,
    M::Punpckhdq,
    M::Punpckhqdq,
    M::Packsswb,
    M::Packssdw,
    M::Packuswb,
    M::Pinsrw,
    M::Pextrw,
    // Floating point.
    M::Addps,
    M::Addss,
    M::Addpd,
    M::Addsd,
    M::Subps,
    M::Subss,
    M::Subpd,
    M::Subsd,
    M::Mulps,
    M::Mulss,
    M::Mulpd,
    M::Mulsd,
    M::Divps,
    M::Divss,
    M::Divpd,
    M::Divsd,
    M::Sqrtps,
    M::Sqrtss,
    M::Sqrtpd,
    M::Sqrtsd,
    M::Minps,
    M::Minss,
    M::Minpd,
    M::Minsd,
    M::Maxps,
    M::Maxss,
    M::Maxpd,
    M::Maxsd,
    M::Cmpps,
    M::Cmpss,
    M::Cmppd,
    M::Cmpsd,
    M::Comiss,
    M::Comisd,
    M::Ucomiss,
    M::Ucomisd,
    M::Rcpps,
    M::Rcpss,
    M::Rsqrtps,
    M::Rsqrtss,
    // Conversions.
    M::Cvtsi2ss,
    M::Cvtsi2sd,
    M::Cvtss2si,
    M::Cvtsd2si,
    M::Cvttss2si,
    M::Cvttsd2si,
    M::Cvtss2sd,
    M::Cvtsd2ss,
    M::Cvtps2pd,
    M::Cvtpd2ps,
    M::Cvtdq2ps,
    M::Cvtps2dq,
    M::Cvttps2dq,
    M::Cvtdq2pd,
    M::Cvtpd2dq,
    M::Cvttpd2dq,
    // SSE3 (FISTTP is in the x87 module; LDDQU above).
    M::Addsubps,
    M::Addsubpd,
    M::Haddps,
    M::Haddpd,
    M::Hsubps,
    M::Hsubpd,
    M::Movsldup,
    M::Movshdup,
    M::Movddup,
    // SSSE3 (the MMX forms are in `mmx`).
    M::Pshufb,
    M::Phaddw,
    M::Phaddd,
    M::Phaddsw,
    M::Phsubw,
    M::Phsubd,
    M::Phsubsw,
    M::Pmaddubsw,
    M::Pmulhrsw,
    M::Psignb,
    M::Psignw,
    M::Psignd,
    M::Pabsb,
    M::Pabsw,
    M::Pabsd,
    M::Palignr,
    // State.
    M::Ldmxcsr,
    M::Stmxcsr,
    M::Fxsave,
    M::Fxsave64,
    M::Fxrstor,
    M::Fxrstor64,
    M::Xsave,
    M::Xsave64,
    M::Xsaveopt,
    M::Xsaveopt64,
    M::Xrstor,
    M::Xrstor64,
    M::Xgetbv,
    M::Xsetbv,
    M::Movnti,
];

/// Whether `code` is executed by this module (the rest of what [`route`] accepts stops
/// the machine as unimplemented).
pub fn implemented(code: Code) -> bool {
    if mmx::route(code) {
        return mmx::implemented(code);
    }
    let m = code.mnemonic();
    route(code) && (IMPLEMENTED.contains(&m) || sse41::handles(m) || sse42::handles(m))
}

/// Execute a routed instruction.
pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    if !implemented(i.code()) {
        return Err(cpu.unimplemented(i));
    }
    if mmx::route(i.code()) {
        return mmx::execute(cpu, bus, i);
    }
    match i.mnemonic() {
        M::Ldmxcsr
        | M::Stmxcsr
        | M::Fxsave
        | M::Fxsave64
        | M::Fxrstor
        | M::Fxrstor64
        | M::Xsave
        | M::Xsave64
        | M::Xsaveopt
        | M::Xsaveopt64
        | M::Xrstor
        | M::Xrstor64
        | M::Xgetbv
        | M::Xsetbv => state::execute(cpu, bus, i),
        M::Movnti => {
            let v = cpu.read_op(bus, i, 1)?;
            cpu.write_op(bus, i, 0, v)
        }
        // A general-register instruction: no CR0/CR4 checks.
        M::Crc32 => sse42::execute(cpu, bus, i),
        _ => {
            cpu.sse_available()?;
            if sse41::handles(i.mnemonic()) {
                sse41::execute(cpu, bus, i)
            } else if sse42::handles(i.mnemonic()) {
                sse42::execute(cpu, bus, i)
            } else if fp::handles(i.mnemonic()) {
                fp::execute(cpu, bus, i)
            } else {
                int::execute(cpu, bus, i)
            }
        }
    }
}

/// Index of an XMM register.
#[inline]
pub(crate) fn xmm_index(r: Register) -> usize {
    (r as usize) - (Register::XMM0 as usize)
}

/// Memory forms that need no 16-byte alignment (SDM Vol. 1, 11.6.7, and the
/// instructions' own pages).
fn unaligned_ok(m: M) -> bool {
    matches!(
        m,
        M::Movups
            | M::Movupd
            | M::Movdqu
            | M::Lddqu
            | M::Pcmpestri
            | M::Pcmpestri64
            | M::Pcmpestrm
            | M::Pcmpestrm64
            | M::Pcmpistri
            | M::Pcmpistrm
    )
}

impl Cpu {
    /// The checks of every SSE instruction (SDM Vol. 3A, 13.1 and Table 22-?): #UD with
    /// CR0.EM set or CR4.OSFXSR clear, #NM with CR0.TS set.
    pub(crate) fn sse_available(&self) -> ExecResult {
        if self.cr0 & cr0::EM != 0 || self.cr4 & cr4::OSFXSR == 0 {
            return Err(Exception::ud());
        }
        if self.cr0 & cr0::TS != 0 {
            return Err(Exception::new(vector::NM));
        }
        Ok(())
    }

    /// Linear address of a 16-byte-or-smaller SSE memory operand, with the alignment
    /// rule (#GP(0) for a misaligned 128-bit operand of an aligned form).
    fn sse_linear(&self, i: &Instruction, size: u32, write: bool) -> Result<u64, Exception> {
        let (seg, off) = (self.mem_seg(i), self.ea(i));
        let la = self.linear(seg, off, size, write)?;
        if size == XMM_BYTES && !unaligned_ok(i.mnemonic()) && la & (XMM_BYTES as u64 - 1) != 0 {
            return Err(Exception::gp0());
        }
        Ok(la)
    }

    /// Read `size` bytes (1..16) of the memory operand.
    pub(crate) fn sse_read_mem(
        &mut self,
        bus: &mut Bus,
        i: &Instruction,
        size: u32,
    ) -> Result<u128, Exception> {
        let la = self.sse_linear(i, size, false)?;
        self.read_linear128(bus, la, size)
    }

    /// Read `size` bytes (1..16) at a linear address.
    pub(crate) fn read_linear128(
        &mut self,
        bus: &mut Bus,
        la: u64,
        size: u32,
    ) -> Result<u128, Exception> {
        use crate::mmu::AccessKind;
        if size <= 8 {
            return Ok(self.read_linear(bus, la, size, AccessKind::Read, false)? as u128);
        }
        // Check both halves before returning anything (reads have no side effects).
        let lo = self.read_linear(bus, la, 8, AccessKind::Read, false)?;
        let hi = self.read_linear(bus, la.wrapping_add(8), size - 8, AccessKind::Read, false)?;
        Ok(lo as u128 | (hi as u128) << 64)
    }

    /// Write `size` bytes (1..16) at a linear address: every page is checked first.
    pub(crate) fn write_linear128(
        &mut self,
        bus: &mut Bus,
        la: u64,
        size: u32,
        v: u128,
    ) -> Result<(), Exception> {
        use crate::mmu::AccessKind;
        if size <= 8 {
            return self.write_linear(bus, la, size, v as u64, false);
        }
        self.translate(bus, la, AccessKind::Write, false)?;
        self.translate(
            bus,
            la.wrapping_add(size as u64 - 1),
            AccessKind::Write,
            false,
        )?;
        self.write_linear(bus, la, 8, v as u64, false)?;
        self.write_linear(bus, la.wrapping_add(8), size - 8, (v >> 64) as u64, false)
    }

    /// Write the memory operand (`size` bytes).
    pub(crate) fn sse_write_mem(
        &mut self,
        bus: &mut Bus,
        i: &Instruction,
        size: u32,
        v: u128,
    ) -> Result<(), Exception> {
        let la = self.sse_linear(i, size, true)?;
        self.write_linear128(bus, la, size, v)
    }

    /// Operand `n` as a 128-bit value: an XMM register, a general register
    /// (zero-extended), memory (its size, zero-extended) or an immediate.
    pub(crate) fn xmm_src(
        &mut self,
        bus: &mut Bus,
        i: &Instruction,
        n: u32,
    ) -> Result<u128, Exception> {
        match i.op_kind(n) {
            OpKind::Register => {
                let r = i.op_register(n);
                if r.is_xmm() {
                    Ok(self.fpu.xmm[xmm_index(r)])
                } else {
                    Ok(self.reg(r) as u128)
                }
            }
            OpKind::Memory => {
                let size = i.memory_size().size() as u32;
                self.sse_read_mem(bus, i, size)
            }
            _ => Ok(i.immediate(n) as u128),
        }
    }

    /// Write operand `n`: a whole XMM register, a general register (32-bit writes
    /// zero-extend) or memory of the operand's size.
    pub(crate) fn xmm_dst(
        &mut self,
        bus: &mut Bus,
        i: &Instruction,
        n: u32,
        v: u128,
    ) -> ExecResult {
        match i.op_kind(n) {
            OpKind::Register => {
                let r = i.op_register(n);
                if r.is_xmm() {
                    self.fpu.xmm[xmm_index(r)] = v;
                } else {
                    self.set_reg(r, v as u64);
                }
                Ok(())
            }
            OpKind::Memory => {
                let size = i.memory_size().size() as u32;
                self.sse_write_mem(bus, i, size, v)
            }
            _ => Err(Exception::ud()),
        }
    }

    /// After an SSE floating-point operation: record its exception flags in MXCSR and
    /// raise #XM (#UD with CR4.OSXMMEXCPT clear) if one of them is unmasked, in which
    /// case the destination must not be written (SDM Vol. 1, 11.5.4).
    pub(crate) fn sse_fp_flags(&mut self, env: &crate::cpu::softfp::Env) -> ExecResult {
        let (flags, trap) = env.outcome(self.fpu.mxcsr);
        self.fpu.mxcsr |= flags & mxcsr::FLAGS;
        if trap {
            return Err(if self.cr4 & cr4::OSXMMEXCPT != 0 {
                Exception::new(vector::XM)
            } else {
                Exception::ud()
            });
        }
        Ok(())
    }
}
