//! Instruction execution, keyed on iced-x86's `Mnemonic` (and `Code` where forms differ).
//! Each family lives in its own file; this file holds the dispatch and the operand access
//! helpers they share (register/memory/immediate operands, effective addresses).

mod arith;
mod bcd;
mod control;
mod data;
pub(crate) mod fast;
mod string;
mod system;
#[cfg(test)]
mod tests;

use super::exception::Exception;
use super::regs::SegReg;
use super::Cpu;
use crate::bus::Bus;
use iced_x86::{Code, EncodingKind, Instruction, Mnemonic as M, OpKind, Register};

pub type ExecResult = Result<(), Exception>;

/// The executor an instruction goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Data,
    Arith,
    Control,
    String,
    /// No architectural effect in this model.
    Nop,
    /// SSE/SSE2 and the FPU-state instructions (`cpu::sse`).
    Simd,
    /// The x87 FPU (`cpu::x87`).
    X87,
    /// System instructions, and the unimplemented rest.
    System,
}

/// Route by mnemonic, except where iced-x86 gives unrelated instructions one mnemonic:
/// the string MOVSD/CMPSD and the SSE2 MOVSD/CMPSD are told apart by their `Code`.
/// XOP, EVEX, MVEX and 3DNow! forms are never executed (their mnemonics can name integer
/// instructions, e.g. XOP BEXTR with an immediate, which the BMI1 code must not run).
pub(crate) fn family(code: Code) -> Family {
    if !matches!(code.encoding(), EncodingKind::Legacy | EncodingKind::VEX) {
        return Family::System;
    }
    match code.mnemonic() {
        M::Movsd if code != Code::Movsd_m32_m32 => Family::Simd,
        M::Cmpsd if code != Code::Cmpsd_m32_m32 => Family::Simd,
        // Data movement.
        M::Mov
        | M::Movzx
        | M::Movsx
        | M::Movsxd
        | M::Lea
        | M::Xchg
        | M::Push
        | M::Pop
        | M::Pushf
        | M::Pushfd
        | M::Pushfq
        | M::Popf
        | M::Popfd
        | M::Popfq
        | M::Enter
        | M::Leave
        | M::Xlatb
        | M::Movbe
        | M::Cbw
        | M::Cwde
        | M::Cdqe
        | M::Cwd
        | M::Cdq
        | M::Cqo
        | M::Lahf
        | M::Sahf
        | M::Daa
        | M::Das
        | M::Aaa
        | M::Aas
        | M::Aam
        | M::Aad
        | M::Salc
        | M::Lds
        | M::Les
        | M::Lss
        | M::Lfs
        | M::Lgs
        | M::Cmovo
        | M::Cmovno
        | M::Cmovb
        | M::Cmovae
        | M::Cmove
        | M::Cmovne
        | M::Cmovbe
        | M::Cmova
        | M::Cmovs
        | M::Cmovns
        | M::Cmovp
        | M::Cmovnp
        | M::Cmovl
        | M::Cmovge
        | M::Cmovle
        | M::Cmovg
        | M::Seto
        | M::Setno
        | M::Setb
        | M::Setae
        | M::Sete
        | M::Setne
        | M::Setbe
        | M::Seta
        | M::Sets
        | M::Setns
        | M::Setp
        | M::Setnp
        | M::Setl
        | M::Setge
        | M::Setle
        | M::Setg
        | M::Pusha
        | M::Pushad
        | M::Popa
        | M::Popad => Family::Data,

        // Arithmetic, logic, shifts, bit operations.
        M::Add
        | M::Adc
        | M::Sub
        | M::Sbb
        | M::Cmp
        | M::And
        | M::Or
        | M::Xor
        | M::Test
        | M::Inc
        | M::Dec
        | M::Neg
        | M::Not
        | M::Mul
        | M::Imul
        | M::Div
        | M::Idiv
        | M::Shl
        | M::Sal
        | M::Shr
        | M::Sar
        | M::Rol
        | M::Ror
        | M::Rcl
        | M::Rcr
        | M::Shld
        | M::Shrd
        | M::Bt
        | M::Bts
        | M::Btr
        | M::Btc
        | M::Bsf
        | M::Bsr
        | M::Tzcnt
        | M::Lzcnt
        | M::Popcnt
        | M::Bswap
        | M::Xadd
        | M::Cmpxchg
        | M::Cmpxchg8b
        | M::Cmpxchg16b
        | M::Andn
        | M::Bextr
        | M::Blsi
        | M::Blsmsk
        | M::Blsr
        | M::Bzhi
        | M::Pdep
        | M::Pext
        | M::Sarx
        | M::Shlx
        | M::Shrx
        | M::Rorx
        | M::Mulx
        | M::Cmc
        | M::Clc
        | M::Stc
        | M::Cld
        | M::Std => Family::Arith,

        // Control transfer.
        M::Jmp
        | M::Jo
        | M::Jno
        | M::Jb
        | M::Jae
        | M::Je
        | M::Jne
        | M::Jbe
        | M::Ja
        | M::Js
        | M::Jns
        | M::Jp
        | M::Jnp
        | M::Jl
        | M::Jge
        | M::Jle
        | M::Jg
        | M::Call
        | M::Ret
        | M::Retf
        | M::Loop
        | M::Loope
        | M::Loopne
        | M::Jcxz
        | M::Jecxz
        | M::Jrcxz
        | M::Int
        | M::Int3
        | M::Into
        | M::Int1
        | M::Iret
        | M::Iretd
        | M::Iretq
        | M::Syscall
        | M::Sysret
        | M::Sysretq => Family::Control,

        // String instructions.
        M::Movsb
        | M::Movsw
        | M::Movsd
        | M::Movsq
        | M::Stosb
        | M::Stosw
        | M::Stosd
        | M::Stosq
        | M::Lodsb
        | M::Lodsw
        | M::Lodsd
        | M::Lodsq
        | M::Scasb
        | M::Scasw
        | M::Scasd
        | M::Scasq
        | M::Cmpsb
        | M::Cmpsw
        | M::Cmpsd
        | M::Cmpsq
        | M::Insb
        | M::Insw
        | M::Insd
        | M::Outsb
        | M::Outsw
        | M::Outsd => Family::String,

        // No architectural effect in this model.
        M::Nop
        | M::Pause
        | M::Lfence
        | M::Sfence
        | M::Mfence
        | M::Endbr64
        | M::Endbr32
        | M::Prefetchnta
        | M::Prefetcht0
        | M::Prefetcht1
        | M::Prefetcht2
        | M::Prefetchw => Family::Nop,

        _ if super::sse::route(code) => Family::Simd,
        _ if super::x87::route(code) => Family::X87,
        _ => Family::System,
    }
}

/// Execute one decoded instruction. RIP already points at the next instruction.
pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    match family(i.code()) {
        Family::Data => data::execute(cpu, bus, i),
        Family::Arith => arith::execute(cpu, bus, i),
        Family::Control => control::execute(cpu, bus, i),
        Family::String => string::execute(cpu, bus, i),
        Family::Nop => Ok(()),
        Family::Simd => super::sse::execute(cpu, bus, i),
        Family::X87 => super::x87::execute(cpu, bus, i),
        Family::System => system::execute(cpu, bus, i),
    }
}

/// Size in bytes of operand `n`.
#[inline]
pub(crate) fn op_size(i: &Instruction, n: u32) -> u32 {
    match i.op_kind(n) {
        OpKind::Register => i.op_register(n).size() as u32,
        OpKind::Memory => i.memory_size().size() as u32,
        OpKind::Immediate8 | OpKind::Immediate8_2nd => 1,
        OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
        OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
        _ => 8,
    }
}

/// Address-size mask of the memory operand (from its base/index registers, else the
/// displacement size).
#[inline]
fn addr_mask(i: &Instruction) -> u64 {
    let base = i.memory_base();
    let index = i.memory_index();
    let size = if base != Register::None {
        base.size()
    } else if index != Register::None {
        index.size()
    } else {
        i.memory_displ_size() as usize
    };
    match size {
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

impl Cpu {
    /// Effective address (segment offset) of the memory operand.
    #[inline]
    pub(crate) fn ea(&self, i: &Instruction) -> u64 {
        let base = i.memory_base();
        let mut a = i.memory_displacement64();
        if base == Register::RIP || base == Register::EIP {
            return a & addr_mask(i);
        }
        if base != Register::None {
            a = a.wrapping_add(self.reg(base));
        }
        let index = i.memory_index();
        if index != Register::None {
            a = a.wrapping_add(self.reg(index).wrapping_mul(i.memory_index_scale() as u64));
        }
        a & addr_mask(i)
    }

    /// Segment of the memory operand.
    #[inline]
    pub(crate) fn mem_seg(&self, i: &Instruction) -> SegReg {
        SegReg::from_iced(i.memory_segment()).unwrap_or(SegReg::Ds)
    }

    /// Read operand `n` (register, memory or immediate) with its own size.
    #[inline]
    pub(crate) fn read_op(
        &mut self,
        bus: &mut Bus,
        i: &Instruction,
        n: u32,
    ) -> Result<u64, Exception> {
        match i.op_kind(n) {
            OpKind::Register => Ok(self.reg(i.op_register(n))),
            OpKind::Memory => {
                let (seg, off) = (self.mem_seg(i), self.ea(i));
                self.read_mem(bus, seg, off, i.memory_size().size() as u32)
            }
            _ => Ok(i.immediate(n)),
        }
    }

    /// Read operand `n` that will be written back (RMW translation for memory).
    #[inline]
    pub(crate) fn read_op_rmw(
        &mut self,
        bus: &mut Bus,
        i: &Instruction,
        n: u32,
    ) -> Result<u64, Exception> {
        match i.op_kind(n) {
            OpKind::Memory => {
                let (seg, off) = (self.mem_seg(i), self.ea(i));
                self.read_mem_rmw(bus, seg, off, i.memory_size().size() as u32)
            }
            _ => self.read_op(bus, i, n),
        }
    }

    /// Write operand `n` (register or memory).
    #[inline]
    pub(crate) fn write_op(
        &mut self,
        bus: &mut Bus,
        i: &Instruction,
        n: u32,
        v: u64,
    ) -> Result<(), Exception> {
        match i.op_kind(n) {
            OpKind::Register => {
                self.set_reg(i.op_register(n), v);
                Ok(())
            }
            OpKind::Memory => {
                let (seg, off) = (self.mem_seg(i), self.ea(i));
                self.write_mem(bus, seg, off, i.memory_size().size() as u32, v)
            }
            _ => Err(Exception::ud()),
        }
    }

    /// The condition of Jcc/SETcc/CMOVcc.
    #[inline]
    pub(crate) fn condition(&self, cc: iced_x86::ConditionCode) -> bool {
        use super::regs::rflags::{CF, OF, PF, SF, ZF};
        use iced_x86::ConditionCode as C;
        let f = |b| self.rflags & b != 0;
        match cc {
            C::o => f(OF),
            C::no => !f(OF),
            C::b => f(CF),
            C::ae => !f(CF),
            C::e => f(ZF),
            C::ne => !f(ZF),
            C::be => f(CF) || f(ZF),
            C::a => !f(CF) && !f(ZF),
            C::s => f(SF),
            C::ns => !f(SF),
            C::p => f(PF),
            C::np => !f(PF),
            C::l => f(SF) != f(OF),
            C::ge => f(SF) == f(OF),
            C::le => f(ZF) || f(SF) != f(OF),
            C::g => !f(ZF) && f(SF) == f(OF),
            C::None => true,
        }
    }

    /// #GP(0) unless CPL is 0 (privileged instructions).
    #[inline]
    pub(crate) fn require_cpl0(&self) -> Result<(), Exception> {
        if self.cpl != 0 {
            Err(Exception::gp0())
        } else {
            Ok(())
        }
    }
}
