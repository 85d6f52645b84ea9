//! Pre-decoded instruction records (issue [11], stage B): at decode time each instruction
//! gets a [`Rec`] holding the handler chosen for its operation and operand form, register
//! indices, the immediate and the memory operand's parts, so that executing a cached
//! instruction is one indirect call with no re-dispatch on the mnemonic and no reads
//! through iced-x86's accessors.
//!
//! Only the hottest integer forms of 64-bit mode are specialised: MOV, ADD, OR, ADC, SBB,
//! AND, SUB, XOR, CMP, TEST, INC, DEC, LEA, MOVZX, MOVSX(D), IMUL (two and three operands),
//! SHL/SHR/SAR/ROL/ROR of a register, CMOVcc, SETcc, PUSH, POP, Jcc, JMP and CALL (relative,
//! through a register or memory) and RET, with 64-bit addressing, and the no-op family.
//! Everything else gets [`generic`], which runs the instruction through `exec::execute`
//! exactly as before. Each specialised handler makes the same calls in the same order as
//! the generic executor does for that form (the same `read_mem`/`read_mem_rmw`/
//! `write_mem`/`push`/`pop`, the same `alu` functions, flags merged the same way), so
//! faults, TLB counters, memory logs and traces are unchanged by construction;
//! `VMSCOPE_DECODE_SHADOW=1` re-decodes every cached instruction and compares records, and
//! `tests/decode_cache.rs` runs programs under it.

use super::super::alu::{self, lazy, mask, sext, Lazy, Shift};
use super::super::regs::rflags::{CF, OF, PF, SF, ZF};
use super::super::regs::{gpr, rflags, SegReg};
use super::{family, ExecResult, Family};
use crate::addr::GuestVirtAddr;
use crate::bus::Bus;
use crate::cpu::exception::Exception;
use crate::cpu::Cpu;
use iced_x86::{Code, ConditionCode, Instruction, Mnemonic as M, OpKind, Register};

/// A handler: executes the instruction a record stands for. RIP already points at the
/// next instruction.
pub(crate) type Handler = fn(&mut Cpu, &mut Bus, &Rec) -> FastResult;

/// A handler's result: the exception boxed, so that the result is one pointer returned in
/// a register (a 32-byte `Exception` is returned through memory); faults are rare.
pub(crate) type FastResult = Result<(), Box<Exception>>;

/// No register (a memory operand without base or index).
const NONE: u8 = 0xff;

/// A pre-decoded instruction.
#[derive(Clone, Copy)]
pub(crate) struct Rec {
    pub handler: Handler,
    /// RIP of the next instruction, already masked to the code size.
    pub next_ip: u64,
    /// Immediate (as iced-x86's `immediate(n)` gives it), or the branch target.
    pub imm: u64,
    /// Displacement of the memory operand (absolute for RIP-relative operands).
    pub disp: u64,
    /// Decode-cache slot whose `Instruction` the generic handler executes.
    pub slot: u16,
    /// Destination (operand 0) GPR index.
    pub r0: u8,
    /// Source (operand 1) GPR index.
    pub r1: u8,
    /// Memory operand base and index GPR indices (`NONE` if absent), and the scale.
    pub base: u8,
    pub index: u8,
    pub scale: u8,
    /// Segment of the memory operand.
    pub seg: SegReg,
    /// MOVZX/MOVSX source register (any width, read through `Cpu::reg`).
    pub sreg: Register,
    /// Operands 0 and 1 as iced-x86 registers: 8- and 16-bit forms read and write them
    /// through `Cpu::reg`/`Cpu::set_reg`, as the generic executor does.
    pub reg0: Register,
    pub reg1: Register,
}

impl Rec {
    /// The record of an instruction that runs through the generic executor.
    pub fn generic(next_ip: u64, slot: u16) -> Rec {
        Rec {
            handler: generic,
            next_ip,
            imm: 0,
            disp: 0,
            slot,
            r0: 0,
            r1: 0,
            base: NONE,
            index: NONE,
            scale: 0,
            seg: SegReg::Ds,
            sreg: Register::None,
            reg0: Register::None,
            reg1: Register::None,
        }
    }

    /// Same handler and operands (for the shadow check).
    pub fn same(&self, o: &Rec) -> bool {
        self.handler as usize == o.handler as usize
            && self.next_ip == o.next_ip
            && self.imm == o.imm
            && self.disp == o.disp
            && self.r0 == o.r0
            && self.r1 == o.r1
            && self.base == o.base
            && self.index == o.index
            && self.scale == o.scale
            && self.seg == o.seg
            && self.sreg == o.sreg
            && self.reg0 == o.reg0
            && self.reg1 == o.reg1
    }

    /// Which handler (for reports).
    pub fn is_generic(&self) -> bool {
        self.handler as usize == generic as Handler as usize
    }
}

/// May the specialised record of `i` access memory or the bus (a memory operand other
/// than LEA's, or the stack)? A block checks the fast TLB generation, the code-dirty queue
/// and `next_event` after such an instruction only.
pub(crate) fn may_access_memory(i: &Instruction) -> bool {
    if i.mnemonic() == M::Lea {
        return false;
    }
    i.stack_pointer_increment() != 0
        || (0..i.op_count())
            .any(|n| !matches!(i.op_kind(n), OpKind::Register) && !is_imm_kind(i.op_kind(n)))
}

/// An immediate or branch-target operand kind.
fn is_imm_kind(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate8_2nd
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
            | OpKind::NearBranch16
            | OpKind::NearBranch32
            | OpKind::NearBranch64
    )
}

/// The generic executor, on the `Instruction` kept in the record's decode-cache slot.
fn generic(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    // The generic executor reads and writes `rflags` directly.
    cpu.materialize_flags();
    let i = cpu.decoded_instruction(r.slot);
    Ok(super::execute(cpu, bus, &i)?)
}

fn nop(_: &mut Cpu, _: &mut Bus, _: &Rec) -> FastResult {
    Ok(())
}

// ---- the record builder ---------------------------------------------------------------

/// The GPR index of a 32- or 64-bit general register of size `size`; for an 8- or
/// 16-bit register of that size, 0 (its handlers use the `Register` in `reg0`/`reg1`).
fn gpr_of(r: Register, size: u32) -> Option<u8> {
    let n = r as u32;
    match size {
        1 if r.is_gpr8() => Some(0),
        2 if r.is_gpr16() => Some(0),
        8 if (Register::RAX as u32..=Register::R15 as u32).contains(&n) => {
            Some((n - Register::RAX as u32) as u8)
        }
        4 if (Register::EAX as u32..=Register::R15D as u32).contains(&n) => {
            Some((n - Register::EAX as u32) as u8)
        }
        _ => None,
    }
}

/// Operand `n` as a 32/64-bit GPR of `size` bytes.
fn reg_op(i: &Instruction, n: u32, size: u32) -> Option<u8> {
    if i.op_kind(n) != OpKind::Register {
        return None;
    }
    gpr_of(i.op_register(n), size)
}

/// Fill the memory-operand fields when the operand uses 64-bit addressing with a 64-bit
/// base (or RIP) and an optional 64-bit index: the forms whose effective address is
/// `disp + base + index * scale` with no truncation. Anything else stays generic.
fn mem_op(i: &Instruction, rec: &mut Rec) -> bool {
    let base = i.memory_base();
    let index = i.memory_index();
    let b = if base == Register::RIP {
        if index != Register::None {
            return false;
        }
        NONE
    } else if base == Register::None {
        // No base: the address mask would come from the index or the displacement size.
        return false;
    } else {
        match gpr_of(base, 8) {
            Some(b) => b,
            None => return false,
        }
    };
    let x = if index == Register::None {
        NONE
    } else {
        match gpr_of(index, 8) {
            Some(x) => x,
            None => return false,
        }
    };
    let Some(seg) = SegReg::from_iced(i.memory_segment()) else {
        return false;
    };
    rec.base = b;
    rec.index = x;
    rec.scale = i.memory_index_scale() as u8;
    rec.disp = i.memory_displacement64();
    rec.seg = seg;
    true
}

/// The record for `i` decoded at `bitness`; generic unless a specialised form applies.
pub(crate) fn build(i: &Instruction, bitness: u32, next_ip: u64, slot: u16) -> Rec {
    let mut rec = Rec::generic(next_ip, slot);
    if bitness == 64 {
        if i.op_count() > 0 && i.op_kind(0) == OpKind::Register {
            rec.reg0 = i.op_register(0);
        }
        if i.op_count() > 1 && i.op_kind(1) == OpKind::Register {
            rec.reg1 = i.op_register(1);
        }
        if let Some(h) = specialise(i, &mut rec) {
            rec.handler = h;
        }
    }
    rec
}

macro_rules! by_size {
    ($f:ident, $size:expr $(, $c:expr)*) => {
        match $size {
            1 => $f::<$({ $c },)* 1> as Handler,
            2 => $f::<$({ $c },)* 2> as Handler,
            4 => $f::<$({ $c },)* 4> as Handler,
            _ => $f::<$({ $c },)* 8> as Handler,
        }
    };
}

/// The ALU operation numbers of the const-generic handlers.
mod op {
    pub const ADD: u8 = 0;
    pub const OR: u8 = 1;
    pub const ADC: u8 = 2;
    pub const SBB: u8 = 3;
    pub const AND: u8 = 4;
    pub const SUB: u8 = 5;
    pub const XOR: u8 = 6;
    pub const CMP: u8 = 7;
    pub const TEST: u8 = 8;
}

fn alu_handler(o: u8, form: u8, size: u32) -> Handler {
    macro_rules! pick {
        ($o:expr) => {
            match form {
                0 => by_size!(alu_rr, size, $o),
                1 => by_size!(alu_ri, size, $o),
                2 => by_size!(alu_rm, size, $o),
                3 => by_size!(alu_mr, size, $o),
                _ => by_size!(alu_mi, size, $o),
            }
        };
    }
    match o {
        op::ADD => pick!(op::ADD),
        op::OR => pick!(op::OR),
        op::ADC => pick!(op::ADC),
        op::SBB => pick!(op::SBB),
        op::AND => pick!(op::AND),
        op::SUB => pick!(op::SUB),
        op::XOR => pick!(op::XOR),
        op::CMP => pick!(op::CMP),
        _ => pick!(op::TEST),
    }
}

/// The const-generic condition index of `cc` (the order of [`cond`]).
fn cc_index(cc: ConditionCode) -> Option<u8> {
    use ConditionCode as C;
    Some(match cc {
        C::o => 0,
        C::no => 1,
        C::b => 2,
        C::ae => 3,
        C::e => 4,
        C::ne => 5,
        C::be => 6,
        C::a => 7,
        C::s => 8,
        C::ns => 9,
        C::p => 10,
        C::np => 11,
        C::l => 12,
        C::ge => 13,
        C::le => 14,
        C::g => 15,
        C::None => return None,
    })
}

fn is_cmov(m: M) -> bool {
    matches!(
        m,
        M::Cmovo
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
    )
}

fn is_setcc(m: M) -> bool {
    matches!(
        m,
        M::Seto
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
    )
}

fn jcc_handler(cc: ConditionCode) -> Option<Handler> {
    use ConditionCode as C;
    Some(match cc {
        C::o => jcc::<0>,
        C::no => jcc::<1>,
        C::b => jcc::<2>,
        C::ae => jcc::<3>,
        C::e => jcc::<4>,
        C::ne => jcc::<5>,
        C::be => jcc::<6>,
        C::a => jcc::<7>,
        C::s => jcc::<8>,
        C::ns => jcc::<9>,
        C::p => jcc::<10>,
        C::np => jcc::<11>,
        C::l => jcc::<12>,
        C::ge => jcc::<13>,
        C::le => jcc::<14>,
        C::g => jcc::<15>,
        C::None => return None,
    })
}

/// Is operand `n` an immediate (of any width)?
fn is_imm(i: &Instruction, n: u32) -> bool {
    matches!(
        i.op_kind(n),
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

/// Operand size of an integer instruction whose operand 0 is a register or memory: 1, 2,
/// 4 or 8, else `None`.
fn size0(i: &Instruction) -> Option<u32> {
    let s = match i.op_kind(0) {
        OpKind::Register => i.op_register(0).size() as u32,
        OpKind::Memory => i.memory_size().size() as u32,
        _ => return None,
    };
    matches!(s, 1 | 2 | 4 | 8).then_some(s)
}

fn specialise(i: &Instruction, rec: &mut Rec) -> Option<Handler> {
    let code = i.code();
    let fam = family(code);
    if fam == Family::Nop {
        return Some(nop);
    }
    let m = i.mnemonic();
    match m {
        M::Add | M::Or | M::Adc | M::Sbb | M::And | M::Sub | M::Xor | M::Cmp | M::Test => {
            if fam != Family::Arith || i.op_count() != 2 {
                return None;
            }
            let o = match m {
                M::Add => op::ADD,
                M::Or => op::OR,
                M::Adc => op::ADC,
                M::Sbb => op::SBB,
                M::And => op::AND,
                M::Sub => op::SUB,
                M::Xor => op::XOR,
                M::Cmp => op::CMP,
                _ => op::TEST,
            };
            let size = size0(i)?;
            let form = match (i.op_kind(0), i.op_kind(1)) {
                (OpKind::Register, OpKind::Register) => {
                    rec.r0 = reg_op(i, 0, size)?;
                    rec.r1 = reg_op(i, 1, size)?;
                    0
                }
                (OpKind::Register, OpKind::Memory) => {
                    rec.r0 = reg_op(i, 0, size)?;
                    if i.memory_size().size() as u32 != size || !mem_op(i, rec) {
                        return None;
                    }
                    2
                }
                (OpKind::Register, _) if is_imm(i, 1) => {
                    rec.r0 = reg_op(i, 0, size)?;
                    rec.imm = i.immediate(1);
                    1
                }
                (OpKind::Memory, OpKind::Register) => {
                    rec.r1 = reg_op(i, 1, size)?;
                    if !mem_op(i, rec) {
                        return None;
                    }
                    3
                }
                (OpKind::Memory, _) if is_imm(i, 1) => {
                    rec.imm = i.immediate(1);
                    if !mem_op(i, rec) {
                        return None;
                    }
                    4
                }
                _ => return None,
            };
            Some(alu_handler(o, form, size))
        }
        M::Inc | M::Dec => {
            if i.op_count() != 1 {
                return None;
            }
            let size = size0(i)?;
            match i.op_kind(0) {
                OpKind::Register => {
                    rec.r0 = reg_op(i, 0, size)?;
                    Some(if m == M::Inc {
                        by_size!(incdec_r, size, true)
                    } else {
                        by_size!(incdec_r, size, false)
                    })
                }
                OpKind::Memory if mem_op(i, rec) => Some(if m == M::Inc {
                    by_size!(incdec_m, size, true)
                } else {
                    by_size!(incdec_m, size, false)
                }),
                _ => None,
            }
        }
        M::Imul if fam == Family::Arith && (i.op_count() == 2 || i.op_count() == 3) => {
            let size = i.op_register(0).size() as u32;
            if size < 4 {
                return None;
            }
            rec.r0 = reg_op(i, 0, size)?;
            let three = i.op_count() == 3;
            if three {
                if !is_imm(i, 2) {
                    return None;
                }
                rec.imm = i.immediate(2);
            }
            match (i.op_kind(1), three) {
                (OpKind::Register, false) => {
                    rec.r1 = reg_op(i, 1, size)?;
                    Some(by_size!(imul_rr, size))
                }
                (OpKind::Register, true) => {
                    rec.r1 = reg_op(i, 1, size)?;
                    Some(by_size!(imul_rri, size))
                }
                (OpKind::Memory, _) => {
                    if i.memory_size().size() as u32 != size || !mem_op(i, rec) {
                        return None;
                    }
                    Some(if three {
                        by_size!(imul_rmi, size)
                    } else {
                        by_size!(imul_rm, size)
                    })
                }
                _ => None,
            }
        }
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror if fam == Family::Arith => {
            let size = size0(i)?;
            rec.r0 = reg_op(i, 0, size)?;
            let cl = match i.op_count() {
                1 => {
                    rec.imm = 1;
                    false
                }
                2 if i.op_kind(1) == OpKind::Immediate8 => {
                    rec.imm = i.immediate(1);
                    false
                }
                2 if i.op_kind(1) == OpKind::Register && i.op_register(1) == Register::CL => true,
                _ => return None,
            };
            macro_rules! k {
                ($k:expr) => {
                    if cl {
                        by_size!(shift_r, size, $k, true)
                    } else {
                        by_size!(shift_r, size, $k, false)
                    }
                };
            }
            Some(match m {
                M::Shl | M::Sal => k!(0),
                M::Shr => k!(1),
                M::Sar => k!(2),
                M::Rol => k!(3),
                _ => k!(4),
            })
        }
        M::Mov => {
            if i.op_count() != 2 {
                return None;
            }
            let size = size0(i)?;
            match (i.op_kind(0), i.op_kind(1)) {
                (OpKind::Register, OpKind::Register) => {
                    rec.r0 = reg_op(i, 0, size)?;
                    rec.r1 = reg_op(i, 1, size)?;
                    Some(by_size!(mov_rr, size))
                }
                (OpKind::Register, OpKind::Memory) => {
                    rec.r0 = reg_op(i, 0, size)?;
                    if i.memory_size().size() as u32 != size || !mem_op(i, rec) {
                        return None;
                    }
                    Some(by_size!(mov_rm, size))
                }
                (OpKind::Register, _) if is_imm(i, 1) => {
                    rec.r0 = reg_op(i, 0, size)?;
                    rec.imm = i.immediate(1);
                    Some(by_size!(mov_ri, size))
                }
                (OpKind::Memory, OpKind::Register) => {
                    rec.r1 = reg_op(i, 1, size)?;
                    if !mem_op(i, rec) {
                        return None;
                    }
                    Some(by_size!(mov_mr, size))
                }
                (OpKind::Memory, _) if is_imm(i, 1) => {
                    rec.imm = i.immediate(1);
                    if !mem_op(i, rec) {
                        return None;
                    }
                    Some(by_size!(mov_mi, size))
                }
                _ => None,
            }
        }
        M::Lea => {
            let size = i.op_register(0).size() as u32;
            if size < 4 {
                return None;
            }
            rec.r0 = reg_op(i, 0, size)?;
            if i.op_kind(1) != OpKind::Memory || !mem_op(i, rec) {
                return None;
            }
            Some(by_size!(lea, size))
        }
        M::Movzx | M::Movsx | M::Movsxd => {
            let size = i.op_register(0).size() as u32;
            if size < 4 {
                return None;
            }
            rec.r0 = reg_op(i, 0, size)?;
            let ssize = match i.op_kind(1) {
                OpKind::Register => {
                    let s = i.op_register(1);
                    if !s.is_gpr() {
                        return None;
                    }
                    rec.sreg = s;
                    s.size() as u32
                }
                OpKind::Memory => {
                    if !mem_op(i, rec) {
                        return None;
                    }
                    i.memory_size().size() as u32
                }
                _ => return None,
            };
            let mem = i.op_kind(1) == OpKind::Memory;
            let signed = m != M::Movzx;
            macro_rules! ext {
                ($signed:expr) => {
                    match (mem, ssize) {
                        (false, _) => by_size!(ext_r, size, $signed),
                        (true, 1) => by_size!(ext_m, size, $signed, 1),
                        (true, 2) => by_size!(ext_m, size, $signed, 2),
                        (true, 4) => by_size!(ext_m, size, $signed, 4),
                        _ => return None,
                    }
                };
            }
            Some(if signed { ext!(true) } else { ext!(false) })
        }
        M::Push => match code {
            Code::Push_r64 => {
                rec.r0 = reg_op(i, 0, 8)?;
                Some(push_r)
            }
            Code::Pushq_imm32 | Code::Pushq_imm8 => {
                rec.imm = i.immediate(0);
                Some(push_i)
            }
            _ => None,
        },
        M::Pop if code == Code::Pop_r64 => {
            rec.r0 = reg_op(i, 0, 8)?;
            Some(pop_r)
        }
        M::Jmp if i.op_kind(0) == OpKind::NearBranch64 => {
            rec.imm = i.near_branch_target();
            Some(jmp)
        }
        M::Call if code == Code::Call_rel32_64 => {
            rec.imm = i.near_branch_target();
            Some(call)
        }
        M::Ret if code == Code::Retnq => Some(ret),
        M::Jmp | M::Call if code == Code::Jmp_rm64 || code == Code::Call_rm64 => {
            let call = code == Code::Call_rm64;
            match i.op_kind(0) {
                OpKind::Register => {
                    rec.r0 = reg_op(i, 0, 8)?;
                    Some(if call { call_r as Handler } else { jmp_r })
                }
                OpKind::Memory if i.memory_size().size() == 8 && mem_op(i, rec) => {
                    Some(if call { call_m as Handler } else { jmp_m })
                }
                _ => None,
            }
        }
        M::Xchg if i.op_count() == 2 => {
            let size = size0(i).or_else(|| match i.op_kind(1) {
                OpKind::Register => Some(i.op_register(1).size() as u32),
                _ => None,
            })?;
            if !matches!(size, 1 | 2 | 4 | 8) {
                return None;
            }
            match (i.op_kind(0), i.op_kind(1)) {
                (OpKind::Memory, OpKind::Register) => {
                    rec.r1 = reg_op(i, 1, size)?;
                    if i.memory_size().size() as u32 != size || !mem_op(i, rec) {
                        return None;
                    }
                    Some(by_size!(xchg_m, size, false))
                }
                (OpKind::Register, OpKind::Memory) => {
                    rec.r0 = reg_op(i, 0, size)?;
                    if i.memory_size().size() as u32 != size || !mem_op(i, rec) {
                        return None;
                    }
                    Some(by_size!(xchg_m, size, true))
                }
                (OpKind::Register, OpKind::Register) if size >= 4 => {
                    rec.r0 = reg_op(i, 0, size)?;
                    rec.r1 = reg_op(i, 1, size)?;
                    Some(by_size!(xchg_rr, size))
                }
                _ => None,
            }
        }
        M::Neg | M::Not if fam == Family::Arith && i.op_count() == 1 => {
            let size = size0(i)?;
            let neg = m == M::Neg;
            match i.op_kind(0) {
                OpKind::Register => {
                    rec.r0 = reg_op(i, 0, size)?;
                    Some(if neg {
                        by_size!(negnot_r, size, true)
                    } else {
                        by_size!(negnot_r, size, false)
                    })
                }
                OpKind::Memory if mem_op(i, rec) => Some(if neg {
                    by_size!(negnot_m, size, true)
                } else {
                    by_size!(negnot_m, size, false)
                }),
                _ => None,
            }
        }
        M::Pushfq if code == Code::Pushfq => Some(pushfq),
        M::Cli if code == Code::Cli => Some(cli),
        _ if fam == Family::Data && is_cmov(m) => {
            if i.op_count() != 2 || i.op_kind(0) != OpKind::Register {
                return None;
            }
            let size = i.op_register(0).size() as u32;
            if size < 2 {
                return None;
            }
            rec.r0 = reg_op(i, 0, size)?;
            let mem = match i.op_kind(1) {
                OpKind::Register => {
                    rec.r1 = reg_op(i, 1, size)?;
                    false
                }
                OpKind::Memory if i.memory_size().size() as u32 == size && mem_op(i, rec) => true,
                _ => return None,
            };
            let c = cc_index(i.condition_code())?;
            macro_rules! pick {
                ($($c:literal)*) => {
                    match c {
                        $($c => if mem { by_size!(cmov_m, size, $c) } else { by_size!(cmov_r, size, $c) },)*
                        _ => return None,
                    }
                };
            }
            Some(pick!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15))
        }
        _ if fam == Family::Data && is_setcc(m) => {
            if i.op_count() != 1 {
                return None;
            }
            let mem = match i.op_kind(0) {
                OpKind::Register => {
                    reg_op(i, 0, 1)?;
                    false
                }
                OpKind::Memory if i.memory_size().size() == 1 && mem_op(i, rec) => true,
                _ => return None,
            };
            let c = cc_index(i.condition_code())?;
            macro_rules! pick {
                ($($c:literal)*) => {
                    match c {
                        $($c => if mem { setcc_m::<$c> as Handler } else { setcc_r::<$c> },)*
                        _ => return None,
                    }
                };
            }
            Some(pick!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15))
        }
        _ if fam == Family::Control
            && i.op_count() == 1
            && i.op_kind(0) == OpKind::NearBranch64
            && matches!(
                code,
                Code::Jo_rel8_64
                    | Code::Jno_rel8_64
                    | Code::Jb_rel8_64
                    | Code::Jae_rel8_64
                    | Code::Je_rel8_64
                    | Code::Jne_rel8_64
                    | Code::Jbe_rel8_64
                    | Code::Ja_rel8_64
                    | Code::Js_rel8_64
                    | Code::Jns_rel8_64
                    | Code::Jp_rel8_64
                    | Code::Jnp_rel8_64
                    | Code::Jl_rel8_64
                    | Code::Jge_rel8_64
                    | Code::Jle_rel8_64
                    | Code::Jg_rel8_64
                    | Code::Jo_rel32_64
                    | Code::Jno_rel32_64
                    | Code::Jb_rel32_64
                    | Code::Jae_rel32_64
                    | Code::Je_rel32_64
                    | Code::Jne_rel32_64
                    | Code::Jbe_rel32_64
                    | Code::Ja_rel32_64
                    | Code::Js_rel32_64
                    | Code::Jns_rel32_64
                    | Code::Jp_rel32_64
                    | Code::Jnp_rel32_64
                    | Code::Jl_rel32_64
                    | Code::Jge_rel32_64
                    | Code::Jle_rel32_64
                    | Code::Jg_rel32_64
            ) =>
        {
            rec.imm = i.near_branch_target();
            jcc_handler(i.condition_code())
        }
        _ => None,
    }
}

// ---- handlers -----------------------------------------------------------------------------

/// Effective address of the record's memory operand (64-bit addressing: no mask).
#[inline(always)]
fn ea(cpu: &Cpu, r: &Rec) -> u64 {
    let mut a = r.disp;
    if r.base != NONE {
        a = a.wrapping_add(cpu.gpr[r.base as usize]);
    }
    if r.index != NONE {
        a = a.wrapping_add(cpu.gpr[r.index as usize].wrapping_mul(r.scale as u64));
    }
    a
}

/// Write a 32- or 64-bit GPR as `set_reg` does (a 32-bit write zero-extends).
#[inline(always)]
fn set<const S: u32>(cpu: &mut Cpu, n: u8, v: u64) {
    cpu.gpr[n as usize] = v & mask(S);
}

#[inline(always)]
fn get<const S: u32>(cpu: &Cpu, n: u8) -> u64 {
    cpu.gpr[n as usize] & mask(S)
}

/// Operand 0 (a register) of `S` bytes: 8- and 16-bit ones through `Cpu::reg`.
#[inline(always)]
fn get0<const S: u32>(cpu: &Cpu, r: &Rec) -> u64 {
    if S >= 4 {
        get::<S>(cpu, r.r0)
    } else {
        cpu.reg(r.reg0)
    }
}

/// Operand 1 (a register) of `S` bytes.
#[inline(always)]
fn get1<const S: u32>(cpu: &Cpu, r: &Rec) -> u64 {
    if S >= 4 {
        get::<S>(cpu, r.r1)
    } else {
        cpu.reg(r.reg1)
    }
}

/// Write operand 0 (a register) of `S` bytes: 8- and 16-bit ones merge (`Cpu::set_reg`).
#[inline(always)]
fn set0<const S: u32>(cpu: &mut Cpu, r: &Rec, v: u64) {
    if S >= 4 {
        set::<S>(cpu, r.r0, v)
    } else {
        cpu.set_reg(r.reg0, v)
    }
}

/// The ALU operation `O` on `a` and `b`, as `arith::execute` computes it: the result and
/// the operation to record for its flags (lazy flags: computed by the same function with
/// the same operands when read). ADC and SBB read CF.
#[inline(always)]
fn alu_op<const O: u8>(cpu: &mut Cpu, a: u64, b: u64, size: u32) -> (u64, Lazy) {
    let cf = if O == op::ADC || O == op::SBB {
        cpu.flags_now() & CF != 0
    } else {
        false
    };
    let (kind, la, lb, v) = match O {
        op::ADD | op::ADC => (lazy::ADD, a, b, alu::add(a, b, cf, size).0),
        op::SUB | op::CMP | op::SBB => (lazy::SUB, a, b, alu::sub(a, b, cf, size).0),
        op::AND | op::TEST => (lazy::LOGIC, a & b, 0, alu::logic(a & b, size).0),
        op::OR => (lazy::LOGIC, a | b, 0, alu::logic(a | b, size).0),
        _ => (lazy::LOGIC, a ^ b, 0, alu::logic(a ^ b, size).0),
    };
    let l = Lazy {
        op: kind,
        size: size as u8,
        cin: cf,
        a: la,
        b: lb,
        res: v,
    };
    (v, l)
}

/// CMP and TEST write no result.
const fn writes<const O: u8>() -> bool {
    O != op::CMP && O != op::TEST
}

fn alu_rr<const O: u8, const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let (a, b) = (get0::<S>(cpu, r), get1::<S>(cpu, r));
    let (v, l) = alu_op::<O>(cpu, a, b, S);
    if writes::<O>() {
        set0::<S>(cpu, r, v);
    }
    cpu.set_lazy(l);
    Ok(())
}

fn alu_ri<const O: u8, const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let a = get0::<S>(cpu, r);
    let (v, l) = alu_op::<O>(cpu, a, r.imm, S);
    if writes::<O>() {
        set0::<S>(cpu, r, v);
    }
    cpu.set_lazy(l);
    Ok(())
}

fn alu_rm<const O: u8, const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let a = get0::<S>(cpu, r);
    let b = cpu.read_mem(bus, r.seg, ea(cpu, r), S)?;
    let (v, l) = alu_op::<O>(cpu, a, b, S);
    if writes::<O>() {
        set0::<S>(cpu, r, v);
    }
    cpu.set_lazy(l);
    Ok(())
}

fn alu_mr<const O: u8, const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let at = ea(cpu, r);
    let a = if writes::<O>() {
        cpu.read_mem_rmw(bus, r.seg, at, S)?
    } else {
        cpu.read_mem(bus, r.seg, at, S)?
    };
    let b = get1::<S>(cpu, r);
    let (v, l) = alu_op::<O>(cpu, a, b, S);
    if writes::<O>() {
        cpu.write_mem(bus, r.seg, at, S, v)?;
    }
    cpu.set_lazy(l);
    Ok(())
}

fn alu_mi<const O: u8, const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let at = ea(cpu, r);
    let a = if writes::<O>() {
        cpu.read_mem_rmw(bus, r.seg, at, S)?
    } else {
        cpu.read_mem(bus, r.seg, at, S)?
    };
    let (v, l) = alu_op::<O>(cpu, a, r.imm, S);
    if writes::<O>() {
        cpu.write_mem(bus, r.seg, at, S, v)?;
    }
    cpu.set_lazy(l);
    Ok(())
}

/// The lazy record of INC/DEC of `a` (result `v`): CF is left alone.
#[inline(always)]
fn incdec_lazy<const INC: bool, const S: u32>(a: u64, v: u64) -> Lazy {
    Lazy {
        op: if INC { lazy::INC } else { lazy::DEC },
        size: S as u8,
        cin: false,
        a,
        b: 0,
        res: v,
    }
}

/// The lazy record of IMUL of `a` and `b` (result `lo`): `imul`'s flags without AF.
#[inline(always)]
fn imul_lazy<const S: u32>(a: u64, b: u64, lo: u64) -> Lazy {
    Lazy {
        op: lazy::IMUL,
        size: S as u8,
        cin: false,
        a,
        b,
        res: lo,
    }
}

fn incdec_r<const INC: bool, const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let a = get0::<S>(cpu, r);
    let v = if INC {
        alu::inc(a, S).0
    } else {
        alu::dec(a, S).0
    };
    set0::<S>(cpu, r, v);
    cpu.set_lazy(incdec_lazy::<INC, S>(a, v));
    Ok(())
}

fn incdec_m<const INC: bool, const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let at = ea(cpu, r);
    let a = cpu.read_mem_rmw(bus, r.seg, at, S)?;
    let v = if INC {
        alu::inc(a, S).0
    } else {
        alu::dec(a, S).0
    };
    cpu.write_mem(bus, r.seg, at, S, v)?;
    cpu.set_lazy(incdec_lazy::<INC, S>(a, v));
    Ok(())
}

fn imul_rr<const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let (a, b) = (get0::<S>(cpu, r), get1::<S>(cpu, r));
    let lo = alu::imul(a, b, S).0;
    set0::<S>(cpu, r, lo);
    cpu.set_lazy(imul_lazy::<S>(a, b, lo));
    Ok(())
}

fn imul_rri<const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let a = get1::<S>(cpu, r);
    let lo = alu::imul(a, r.imm, S).0;
    set0::<S>(cpu, r, lo);
    cpu.set_lazy(imul_lazy::<S>(a, r.imm, lo));
    Ok(())
}

fn imul_rm<const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let a = get0::<S>(cpu, r);
    let b = cpu.read_mem(bus, r.seg, ea(cpu, r), S)?;
    let lo = alu::imul(a, b, S).0;
    set0::<S>(cpu, r, lo);
    cpu.set_lazy(imul_lazy::<S>(a, b, lo));
    Ok(())
}

fn imul_rmi<const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let a = cpu.read_mem(bus, r.seg, ea(cpu, r), S)?;
    let lo = alu::imul(a, r.imm, S).0;
    set0::<S>(cpu, r, lo);
    cpu.set_lazy(imul_lazy::<S>(a, r.imm, lo));
    Ok(())
}

/// SHL/SHR/SAR/ROL/ROR (`K` 0..4) of a register by an immediate (or 1) or by CL.
fn shift_r<const K: u8, const CL: bool, const S: u32>(
    cpu: &mut Cpu,
    _: &mut Bus,
    r: &Rec,
) -> FastResult {
    let raw = if CL { cpu.gpr[gpr::RCX] & 0xff } else { r.imm };
    let count = raw as u32 & alu::count_mask(S);
    let a = get0::<S>(cpu, r);
    if count == 0 {
        // Masked count 0: no flags, but the (32-bit: zero-extending) write happens.
        set0::<S>(cpu, r, a);
        return Ok(());
    }
    let kind = match K {
        0 => Shift::Shl,
        1 => Shift::Shr,
        2 => Shift::Sar,
        3 => Shift::Rol,
        _ => Shift::Ror,
    };
    // The result does not depend on the incoming flags for these kinds (only RCL/RCR's
    // does); rotates' flags do, and their lazy record applies them to the flags before.
    let v = alu::shift(kind, a, count, S, 0).0;
    set0::<S>(cpu, r, v);
    cpu.set_lazy(Lazy {
        op: [lazy::SHL, lazy::SHR, lazy::SAR, lazy::ROL, lazy::ROR][K as usize],
        size: S as u8,
        cin: false,
        a,
        b: count as u64,
        res: v,
    });
    Ok(())
}

fn mov_rr<const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let v = get1::<S>(cpu, r);
    set0::<S>(cpu, r, v);
    Ok(())
}

fn mov_ri<const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    set0::<S>(cpu, r, r.imm);
    Ok(())
}

fn mov_rm<const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let v = cpu.read_mem(bus, r.seg, ea(cpu, r), S)?;
    set0::<S>(cpu, r, v);
    Ok(())
}

fn mov_mr<const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let v = get1::<S>(cpu, r);
    Ok(cpu.write_mem(bus, r.seg, ea(cpu, r), S, v)?)
}

fn mov_mi<const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    Ok(cpu.write_mem(bus, r.seg, ea(cpu, r), S, r.imm)?)
}

fn lea<const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let a = ea(cpu, r);
    set0::<S>(cpu, r, a);
    Ok(())
}

/// MOVZX/MOVSX/MOVSXD from a register (any GPR, read as `Cpu::reg` reads it).
fn ext_r<const SIGNED: bool, const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let v = cpu.reg(r.sreg);
    let v = if SIGNED {
        sext(v, r.sreg.size() as u32) & mask(S)
    } else {
        v
    };
    set0::<S>(cpu, r, v);
    Ok(())
}

/// MOVZX/MOVSX/MOVSXD from `SS` bytes of memory.
fn ext_m<const SIGNED: bool, const SS: u32, const S: u32>(
    cpu: &mut Cpu,
    bus: &mut Bus,
    r: &Rec,
) -> FastResult {
    let v = cpu.read_mem(bus, r.seg, ea(cpu, r), SS)?;
    let v = if SIGNED { sext(v, SS) & mask(S) } else { v };
    set0::<S>(cpu, r, v);
    Ok(())
}

/// XCHG of memory and a register (`REG0`: the register is operand 0), as
/// `data::execute`: the memory read for a write, the register's value stored, then the
/// register written (a fault leaves it untouched).
fn xchg_m<const REG0: bool, const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let at = ea(cpu, r);
    let v = if REG0 {
        get0::<S>(cpu, r)
    } else {
        get1::<S>(cpu, r)
    };
    let old = cpu.read_mem_rmw(bus, r.seg, at, S)?;
    cpu.write_mem(bus, r.seg, at, S, v)?;
    if REG0 {
        set0::<S>(cpu, r, old);
    } else if S >= 4 {
        set::<S>(cpu, r.r1, old);
    } else {
        cpu.set_reg(r.reg1, old);
    }
    Ok(())
}

/// XCHG of two 32/64-bit registers (operand 1 written first, as `data::execute`).
fn xchg_rr<const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let (a, b) = (get0::<S>(cpu, r), get1::<S>(cpu, r));
    set::<S>(cpu, r.r1, a);
    set::<S>(cpu, r.r0, b);
    Ok(())
}

/// NEG (flags as `arith::execute` merges them, eagerly) or NOT of a register.
fn negnot_r<const NEG: bool, const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let a = get0::<S>(cpu, r);
    if NEG {
        let (v, f) = alu::neg(a, S);
        set0::<S>(cpu, r, v);
        cpu.set_status(f);
    } else {
        set0::<S>(cpu, r, !a & mask(S));
    }
    Ok(())
}

/// NEG or NOT of memory.
fn negnot_m<const NEG: bool, const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let at = ea(cpu, r);
    let a = cpu.read_mem_rmw(bus, r.seg, at, S)?;
    if NEG {
        let (v, f) = alu::neg(a, S);
        cpu.write_mem(bus, r.seg, at, S, v)?;
        cpu.set_status(f);
    } else {
        cpu.write_mem(bus, r.seg, at, S, !a & mask(S))?;
    }
    Ok(())
}

/// PUSHFQ: RFLAGS (status flags materialized) without VM and RF.
fn pushfq(cpu: &mut Cpu, bus: &mut Bus, _: &Rec) -> FastResult {
    let v = cpu.flags_now() & !(rflags::VM | rflags::RF);
    Ok(cpu.push(bus, v, 8)?)
}

/// CLI (64-bit mode, so protected): #GP above IOPL, else IF cleared. Clearing IF makes
/// no pending event deliverable, so `next_event` needs no new look.
fn cli(cpu: &mut Cpu, _: &mut Bus, _: &Rec) -> FastResult {
    if cpu.cpl as u64 > (cpu.rflags & rflags::IOPL) >> rflags::IOPL_SHIFT {
        return Err(Box::new(Exception::gp0()));
    }
    cpu.rflags &= !rflags::IF;
    Ok(())
}

fn push_r(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let v = cpu.gpr[r.r0 as usize];
    Ok(cpu.push(bus, v, 8)?)
}

fn push_i(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    Ok(cpu.push(bus, r.imm, 8)?)
}

fn pop_r(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let v = cpu.pop(bus, 8)?;
    cpu.gpr[r.r0 as usize] = v;
    Ok(())
}

/// A near target must be canonical (64-bit mode).
#[inline(always)]
fn check_target(t: u64) -> ExecResult {
    if GuestVirtAddr(t).is_canonical48() {
        Ok(())
    } else {
        Err(Exception::gp0())
    }
}

fn jmp(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    check_target(r.imm)?;
    cpu.rip = r.imm;
    Ok(())
}

fn call(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    check_target(r.imm)?;
    cpu.push(bus, cpu.rip, 8)?;
    cpu.rip = r.imm;
    Ok(())
}

fn ret(cpu: &mut Cpu, bus: &mut Bus, _: &Rec) -> FastResult {
    // As control.rs: read the target, check it, then pop (two reads, as before).
    let target = cpu.read_mem(bus, SegReg::Ss, cpu.gpr[gpr::RSP], 8)?;
    check_target(target)?;
    cpu.pop(bus, 8)?;
    cpu.rip = target;
    Ok(())
}

/// Condition `C` (the order of iced-x86's `ConditionCode` after `None`).
#[inline(always)]
fn cond<const C: u8>(f: u64) -> bool {
    let b = |x: u64| f & x != 0;
    match C {
        0 => b(OF),
        1 => !b(OF),
        2 => b(CF),
        3 => !b(CF),
        4 => b(ZF),
        5 => !b(ZF),
        6 => b(CF) || b(ZF),
        7 => !b(CF) && !b(ZF),
        8 => b(SF),
        9 => !b(SF),
        10 => b(PF),
        11 => !b(PF),
        12 => b(SF) != b(OF),
        13 => b(SF) == b(OF),
        14 => b(ZF) || b(SF) != b(OF),
        _ => !b(ZF) && b(SF) == b(OF),
    }
}

/// Condition `C` on the current flags: ZF of a pending lazy operation without computing
/// the others where it can (`Lazy::zf`), else on the materialized flags.
#[inline(always)]
fn cond_now<const C: u8>(cpu: &Cpu) -> bool {
    if C == 4 || C == 5 {
        if let Some(zf) = cpu.lazy().zf() {
            return zf == (C == 4);
        }
    }
    cond::<C>(cpu.status_value())
}

/// CMOVcc from a register: as `data::execute`, a false 32-bit CMOV still writes its
/// destination (the upper half zeroed).
fn cmov_r<const C: u8, const S: u32>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let v = get1::<S>(cpu, r);
    cmov_commit::<C, S>(cpu, r, v);
    Ok(())
}

/// CMOVcc from memory: the source is read whatever the condition.
fn cmov_m<const C: u8, const S: u32>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let v = cpu.read_mem(bus, r.seg, ea(cpu, r), S)?;
    cmov_commit::<C, S>(cpu, r, v);
    Ok(())
}

#[inline(always)]
fn cmov_commit<const C: u8, const S: u32>(cpu: &mut Cpu, r: &Rec, v: u64) {
    if cond_now::<C>(cpu) {
        set0::<S>(cpu, r, v);
    } else if S == 4 {
        let cur = get0::<S>(cpu, r);
        set0::<S>(cpu, r, cur);
    }
}

fn setcc_r<const C: u8>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let v = cond_now::<C>(cpu) as u64;
    cpu.set_reg(r.reg0, v);
    Ok(())
}

fn setcc_m<const C: u8>(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let v = cond_now::<C>(cpu) as u64;
    Ok(cpu.write_mem(bus, r.seg, ea(cpu, r), 1, v)?)
}

/// JMP/CALL through a register or memory (near, 64-bit).
fn jmp_r(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    let t = cpu.gpr[r.r0 as usize];
    check_target(t)?;
    cpu.rip = t;
    Ok(())
}

fn jmp_m(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let t = cpu.read_mem(bus, r.seg, ea(cpu, r), 8)?;
    check_target(t)?;
    cpu.rip = t;
    Ok(())
}

fn call_r(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let t = cpu.gpr[r.r0 as usize];
    check_target(t)?;
    cpu.push(bus, cpu.rip, 8)?;
    cpu.rip = t;
    Ok(())
}

fn call_m(cpu: &mut Cpu, bus: &mut Bus, r: &Rec) -> FastResult {
    let t = cpu.read_mem(bus, r.seg, ea(cpu, r), 8)?;
    check_target(t)?;
    cpu.push(bus, cpu.rip, 8)?;
    cpu.rip = t;
    Ok(())
}

fn jcc<const C: u8>(cpu: &mut Cpu, _: &mut Bus, r: &Rec) -> FastResult {
    if cond_now::<C>(cpu) {
        check_target(r.imm)?;
        cpu.rip = r.imm;
    }
    Ok(())
}
