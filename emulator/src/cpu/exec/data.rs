//! Data movement: MOV and its extensions, LEA, XCHG, the stack (PUSH/POP/PUSHF/POPF/ENTER/
//! LEAVE), conversions (CBW..CQO), LAHF/SAHF, CMOVcc, SETcc, XLAT, MOVBE.

use super::super::alu::{mask, sext};
use super::super::exception::Exception;
use super::super::regs::{gpr, rflags, SegReg};
use super::{op_size, ExecResult};
use crate::bus::Bus;
use crate::cpu::Cpu;
use iced_x86::{Instruction, Mnemonic as M, OpKind, Register};

pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let m = i.mnemonic();
    match m {
        M::Mov => mov(cpu, bus, i)?,
        M::Movzx => {
            let v = cpu.read_op(bus, i, 1)?;
            cpu.set_reg(i.op_register(0), v);
        }
        M::Movsx | M::Movsxd => {
            let v = cpu.read_op(bus, i, 1)?;
            let s = sext(v, op_size(i, 1));
            cpu.set_reg(i.op_register(0), s & mask(op_size(i, 0)));
        }
        M::Lea => {
            let a = cpu.ea(i);
            cpu.set_reg(i.op_register(0), a & mask(op_size(i, 0)));
        }
        M::Xchg => {
            let a = cpu.read_op_rmw(bus, i, 0)?;
            let b = cpu.read_op_rmw(bus, i, 1)?;
            // Memory first, so a fault leaves the register untouched.
            if i.op_kind(0) == OpKind::Memory {
                cpu.write_op(bus, i, 0, b)?;
                cpu.write_op(bus, i, 1, a)?;
            } else {
                cpu.write_op(bus, i, 1, a)?;
                cpu.write_op(bus, i, 0, b)?;
            }
        }
        M::Push => {
            let size = (-i.stack_pointer_increment()) as u32;
            let v = if i.op_kind(0) == OpKind::Register && i.op_register(0).is_segment_register() {
                // This model zero-extends pushed selectors (as AMD documents).
                cpu.reg(i.op_register(0)) & 0xffff
            } else {
                cpu.read_op(bus, i, 0)?
            };
            cpu.push(bus, v, size)?;
        }
        M::Pop => {
            let size = i.stack_pointer_increment() as u32;
            let saved = cpu.gpr[gpr::RSP];
            let v = cpu.pop(bus, size)?;
            let r = if i.op_kind(0) == OpKind::Register && i.op_register(0).is_segment_register() {
                let seg = SegReg::from_iced(i.op_register(0)).ok_or_else(Exception::ud)?;
                let res = cpu.load_data_segment(bus, seg, v as u16);
                if res.is_ok() && seg == SegReg::Ss {
                    cpu.shadow_until = cpu.icount + 1;
                }
                res
            } else {
                cpu.write_op(bus, i, 0, v)
            };
            if r.is_err() {
                cpu.gpr[gpr::RSP] = saved;
            }
            r?;
        }
        M::Pushf | M::Pushfd | M::Pushfq => {
            let size = (-i.stack_pointer_increment()) as u32;
            let v = cpu.rflags & !(rflags::VM | rflags::RF);
            cpu.push(bus, v & mask(size), size)?;
        }
        M::Popf | M::Popfd | M::Popfq => {
            let size = i.stack_pointer_increment() as u32;
            let v = cpu.pop(bus, size)?;
            popf(cpu, v, size);
        }
        M::Enter => enter(cpu, bus, i)?,
        M::Leave => {
            let size = match i.code() {
                iced_x86::Code::Leavew => 2,
                iced_x86::Code::Leaved => 4,
                _ => 8,
            };
            let sm = mask(cpu.stack_size());
            let saved = cpu.gpr[gpr::RSP];
            cpu.gpr[gpr::RSP] = (cpu.gpr[gpr::RSP] & !sm) | (cpu.gpr[gpr::RBP] & sm);
            match cpu.pop(bus, size) {
                Ok(v) => {
                    let r = match size {
                        2 => Register::BP,
                        4 => Register::EBP,
                        _ => Register::RBP,
                    };
                    cpu.set_reg(r, v);
                }
                Err(e) => {
                    cpu.gpr[gpr::RSP] = saved;
                    return Err(e);
                }
            }
        }
        M::Xlatb => {
            let v = cpu.read_op(bus, i, 0)?;
            cpu.set_reg(Register::AL, v);
        }
        M::Movbe => {
            let size = op_size(i, 0);
            let v = cpu.read_op(bus, i, 1)?;
            let swapped = match size {
                2 => (v as u16).swap_bytes() as u64,
                4 => (v as u32).swap_bytes() as u64,
                _ => v.swap_bytes(),
            };
            cpu.write_op(bus, i, 0, swapped)?;
        }
        M::Cbw => cpu.set_reg(Register::AX, sext(cpu.gpr[0], 1)),
        M::Cwde => cpu.set_reg(Register::EAX, sext(cpu.gpr[0], 2)),
        M::Cdqe => cpu.gpr[0] = sext(cpu.gpr[0], 4),
        M::Cwd => cpu.set_reg(
            Register::DX,
            if cpu.gpr[0] & 0x8000 != 0 { 0xffff } else { 0 },
        ),
        M::Cdq => cpu.set_reg(
            Register::EDX,
            if cpu.gpr[0] & 0x8000_0000 != 0 {
                0xffff_ffff
            } else {
                0
            },
        ),
        M::Cqo => cpu.gpr[2] = if (cpu.gpr[0] as i64) < 0 { u64::MAX } else { 0 },
        M::Lahf => {
            let f = cpu.rflags & (rflags::SF | rflags::ZF | rflags::AF | rflags::PF | rflags::CF);
            cpu.set_reg(Register::AH, f | rflags::FIXED);
        }
        M::Sahf => {
            let ah = cpu.reg(Register::AH);
            let which = rflags::SF | rflags::ZF | rflags::AF | rflags::PF | rflags::CF;
            cpu.set_status_masked(ah, which);
        }
        M::Daa | M::Das => {
            let (al, f) = super::bcd::daa_das(cpu.gpr[0] as u8, cpu.rflags, m == M::Das);
            cpu.set_reg(Register::AL, al as u64);
            cpu.set_status_masked(f, rflags::STATUS);
        }
        M::Aaa | M::Aas => {
            let (ax, f) = super::bcd::aaa_aas(cpu.gpr[0] as u16, cpu.rflags, m == M::Aas);
            cpu.set_reg(Register::AX, ax as u64);
            cpu.set_status_masked(f, rflags::STATUS);
        }
        M::Aam => {
            let base = i.immediate8();
            let (ax, f) =
                super::bcd::aam(cpu.gpr[0] as u16, base, cpu.rflags).ok_or(Exception::de())?;
            cpu.set_reg(Register::AX, ax as u64);
            cpu.set_status_masked(f, rflags::STATUS);
        }
        M::Aad => {
            let (ax, f) = super::bcd::aad(cpu.gpr[0] as u16, i.immediate8(), cpu.rflags);
            cpu.set_reg(Register::AX, ax as u64);
            cpu.set_status_masked(f, rflags::STATUS);
        }
        // Far pointer loads (m16:16, m16:32, m16:64): the offset, then the selector after
        // it; the segment register is loaded (and checked) before the register.
        M::Lds | M::Les | M::Lss | M::Lfs | M::Lgs => {
            let seg = match m {
                M::Lds => SegReg::Ds,
                M::Les => SegReg::Es,
                M::Lss => SegReg::Ss,
                M::Lfs => SegReg::Fs,
                _ => SegReg::Gs,
            };
            let size = op_size(i, 0) as u32;
            let (ms, ea) = (cpu.mem_seg(i), cpu.ea(i));
            let off = cpu.read_mem(bus, ms, ea, size)?;
            let sel_at = ea.wrapping_add(size as u64) & super::addr_mask(i);
            let sel = cpu.read_mem(bus, ms, sel_at, 2)? as u16;
            cpu.load_data_segment(bus, seg, sel)?;
            cpu.set_reg(i.op_register(0), off);
        }
        // SALC (0xd6, undocumented): AL = CF ? 0xff : 0.
        M::Salc => {
            let v = if cpu.flag(rflags::CF) { 0xff } else { 0 };
            cpu.set_reg(Register::AL, v);
        }
        M::Pusha | M::Pushad => {
            let size = if m == M::Pushad { 4 } else { 2 };
            let sp = cpu.gpr[gpr::RSP];
            for r in 0..8 {
                let v = if r == gpr::RSP { sp } else { cpu.gpr[r] };
                cpu.push(bus, v & mask(size), size)?;
            }
        }
        M::Popa | M::Popad => {
            let size = if m == M::Popad { 4 } else { 2 };
            for r in (0..8).rev() {
                let v = cpu.pop(bus, size)?;
                if r != gpr::RSP {
                    let reg = if size == 4 {
                        Register::EAX
                    } else {
                        Register::AX
                    };
                    let reg = iced_reg_from_index(reg, r);
                    cpu.set_reg(reg, v);
                }
            }
        }
        _ => {
            // CMOVcc and SETcc.
            let cc = i.condition_code();
            if i.op_count() == 2 {
                let v = cpu.read_op(bus, i, 1)?;
                let dst = i.op_register(0);
                if cpu.condition(cc) {
                    cpu.set_reg(dst, v);
                } else if dst.size() == 4 {
                    // A 32-bit CMOV writes its destination even when false (upper half zeroed).
                    let cur = cpu.reg(dst);
                    cpu.set_reg(dst, cur);
                }
            } else {
                let v = cpu.condition(cc) as u64;
                cpu.write_op(bus, i, 0, v)?;
            }
        }
    }
    Ok(())
}

/// The register `base + index` (EAX+1 = ECX ...).
fn iced_reg_from_index(base: Register, index: usize) -> Register {
    let regs32 = [
        Register::EAX,
        Register::ECX,
        Register::EDX,
        Register::EBX,
        Register::ESP,
        Register::EBP,
        Register::ESI,
        Register::EDI,
    ];
    let regs16 = [
        Register::AX,
        Register::CX,
        Register::DX,
        Register::BX,
        Register::SP,
        Register::BP,
        Register::SI,
        Register::DI,
    ];
    if base == Register::EAX {
        regs32[index]
    } else {
        regs16[index]
    }
}

fn mov(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let d = if i.op_kind(0) == OpKind::Register {
        i.op_register(0)
    } else {
        Register::None
    };
    let s = if i.op_kind(1) == OpKind::Register {
        i.op_register(1)
    } else {
        Register::None
    };
    if d.is_cr() || d.is_dr() || s.is_cr() || s.is_dr() {
        return super::system::mov_cr_dr(cpu, bus, i);
    }
    if d.is_segment_register() {
        let seg = SegReg::from_iced(d).ok_or_else(Exception::ud)?;
        if seg == SegReg::Cs {
            return Err(Exception::ud());
        }
        let v = cpu.read_op(bus, i, 1)? as u16;
        cpu.load_data_segment(bus, seg, v)?;
        if seg == SegReg::Ss {
            cpu.shadow_until = cpu.icount + 1;
        }
        return Ok(());
    }
    if s.is_segment_register() {
        let v = cpu.reg(s) & 0xffff;
        // To a register: zero-extended to the operand size; to memory: 16 bits.
        return cpu.write_op(bus, i, 0, v);
    }
    let v = cpu.read_op(bus, i, 1)?;
    cpu.write_op(bus, i, 0, v)
}

/// POPF/POPFD/POPFQ privilege rules (SDM Vol. 2, POPF): RF is cleared; VM, VIP, VIF are
/// unaffected; IOPL changes only at CPL 0; IF only when CPL <= IOPL.
fn popf(cpu: &mut Cpu, v: u64, size: u32) {
    let iopl = ((cpu.rflags & rflags::IOPL) >> rflags::IOPL_SHIFT) as u8;
    let mut changeable = rflags::WRITABLE & !(rflags::VM | rflags::VIP | rflags::VIF | rflags::RF);
    if cpu.cpl > 0 {
        changeable &= !rflags::IOPL;
    }
    if cpu.cpl > iopl {
        changeable &= !rflags::IF;
    }
    changeable &= mask(size);
    cpu.rflags = ((cpu.rflags & !changeable) | (v & changeable)) & !rflags::RF | rflags::FIXED;
}

/// ENTER imm16, imm8 (SDM Vol. 2, ENTER), nesting level taken modulo 32.
fn enter(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let alloc = i.immediate(0) & 0xffff;
    let level = (i.immediate(1) & 0x1f) as u32;
    let size: u32 = if cpu.mode64() {
        if i.code() == iced_x86::Code::Enterw_imm16_imm8 {
            2
        } else {
            8
        }
    } else if i.code() == iced_x86::Code::Enterd_imm16_imm8 {
        4
    } else {
        2
    };
    let sm = mask(cpu.stack_size());
    let saved_rsp = cpu.gpr[gpr::RSP];
    let saved_rbp = cpu.gpr[gpr::RBP];
    let r = (|| {
        cpu.push(bus, cpu.gpr[gpr::RBP] & mask(size), size)?;
        let frame = cpu.gpr[gpr::RSP] & sm;
        if level > 0 {
            let mut bp = cpu.gpr[gpr::RBP];
            for _ in 1..level {
                bp = bp.wrapping_sub(size as u64);
                let v = cpu.read_mem(bus, SegReg::Ss, bp & sm, size)?;
                cpu.push(bus, v, size)?;
            }
            cpu.push(bus, frame, size)?;
        }
        let new_sp = (cpu.gpr[gpr::RSP] & sm).wrapping_sub(alloc) & sm;
        // ENTER ends with a write check of an operand-sized word at the final stack
        // pointer (segmentation and paging; nothing is written), so a frame that runs
        // off the stack faults here, not at its first use.
        cpu.probe_write(bus, SegReg::Ss, new_sp, size)?;
        let bpreg = match size {
            2 => Register::BP,
            4 => Register::EBP,
            _ => Register::RBP,
        };
        cpu.set_reg(bpreg, frame);
        cpu.gpr[gpr::RSP] = (cpu.gpr[gpr::RSP] & !sm) | new_sp;
        Ok(())
    })();
    if r.is_err() {
        cpu.gpr[gpr::RSP] = saved_rsp;
        cpu.gpr[gpr::RBP] = saved_rbp;
    }
    r
}
