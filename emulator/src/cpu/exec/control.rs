//! Control transfer: near and far JMP/CALL/RET, Jcc, LOOP/JrCXZ, INT n/INT3/INTO/INT1,
//! IRET and SYSCALL/SYSRET (SDM Vol. 2 for each instruction's checks).

use super::super::alu::mask;
use super::super::exception::{vector, Exception};
use super::super::regs::{efer, gpr, rflags, seg_attr, SegReg, Segment};
use super::super::segment::{null_segment, segment_from_descriptor, SEL_RPL_MASK};
use super::ExecResult;
use crate::addr::GuestVirtAddr;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::interrupts::EventSource;
use iced_x86::{Code, Instruction, MemorySize, Mnemonic as M, OpKind};

pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    match i.mnemonic() {
        M::Jmp => jmp(cpu, bus, i),
        M::Call => call(cpu, bus, i),
        M::Ret => {
            let imm = if i.op_count() == 1 {
                i.immediate16() as u64
            } else {
                0
            };
            let size = (i.stack_pointer_increment() as u64 - imm) as u32;
            let target = cpu.read_mem(
                bus,
                SegReg::Ss,
                cpu.gpr[gpr::RSP] & mask(cpu.stack_size()),
                size,
            )?;
            check_near_target(cpu, target)?;
            cpu.pop(bus, size)?;
            adjust_sp(cpu, imm);
            cpu.rip = target;
            Ok(())
        }
        M::Retf => retf(cpu, bus, i),
        M::Loop | M::Loope | M::Loopne | M::Jcxz | M::Jecxz | M::Jrcxz => loop_family(cpu, i),
        M::Int => cpu.software_interrupt(bus, i.immediate8(), EventSource::Software, cpu.rip),
        M::Int3 => cpu.software_interrupt(bus, vector::BP, EventSource::Software, cpu.rip),
        M::Into => {
            if cpu.flag(rflags::OF) {
                cpu.software_interrupt(bus, vector::OF, EventSource::Software, cpu.rip)
            } else {
                Ok(())
            }
        }
        M::Int1 => cpu.software_interrupt(bus, vector::DB, EventSource::Icebp, cpu.rip),
        M::Iret | M::Iretd | M::Iretq => iret(cpu, bus, i),
        M::Syscall => syscall(cpu),
        M::Sysret | M::Sysretq => sysret(cpu, i),
        // Jcc.
        _ => {
            if cpu.condition(i.condition_code()) {
                let t = i.near_branch_target();
                check_near_target(cpu, t)?;
                cpu.rip = t;
            }
            Ok(())
        }
    }
}

/// A near target must be canonical in 64-bit mode and inside CS's limit otherwise.
fn check_near_target(cpu: &Cpu, target: u64) -> ExecResult {
    if cpu.mode64() {
        if !GuestVirtAddr(target).is_canonical48() {
            return Err(Exception::gp0());
        }
    } else if cpu.protected() && target > cpu.seg[SegReg::Cs as usize].limit as u64 {
        return Err(Exception::gp0());
    }
    Ok(())
}

/// Add `n` to the stack pointer with the stack-size wrap.
fn adjust_sp(cpu: &mut Cpu, n: u64) {
    if n == 0 {
        return;
    }
    let m = mask(cpu.stack_size());
    let sp = cpu.gpr[gpr::RSP];
    cpu.gpr[gpr::RSP] = (sp & !m) | (sp.wrapping_add(n) & m);
}

/// Near target of JMP/CALL: relative, register or memory (zero-extended operand size).
fn near_target(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> Result<u64, Exception> {
    match i.op_kind(0) {
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
            Ok(i.near_branch_target())
        }
        _ => cpu.read_op(bus, i, 0),
    }
}

fn is_far(i: &Instruction) -> bool {
    matches!(i.op_kind(0), OpKind::FarBranch16 | OpKind::FarBranch32)
        || matches!(
            i.code(),
            Code::Jmp_m1616
                | Code::Jmp_m1632
                | Code::Jmp_m1664
                | Code::Call_m1616
                | Code::Call_m1632
                | Code::Call_m1664
        )
}

/// Selector and offset of a far JMP/CALL operand, with the operand size in bytes.
fn far_pointer(
    cpu: &mut Cpu,
    bus: &mut Bus,
    i: &Instruction,
) -> Result<(u16, u64, u32), Exception> {
    match i.op_kind(0) {
        OpKind::FarBranch16 => Ok((i.far_branch_selector(), i.far_branch16() as u64, 2)),
        OpKind::FarBranch32 => Ok((i.far_branch_selector(), i.far_branch32() as u64, 4)),
        _ => {
            let off_size = match i.memory_size() {
                MemorySize::SegPtr16 => 2,
                MemorySize::SegPtr32 => 4,
                _ => 8,
            };
            let (seg, ea) = (cpu.mem_seg(i), cpu.ea(i));
            let off = cpu.read_mem(bus, seg, ea, off_size)?;
            let sel = cpu.read_mem(bus, seg, ea.wrapping_add(off_size as u64), 2)? as u16;
            Ok((sel, off, off_size))
        }
    }
}

fn jmp(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    if is_far(i) {
        let (sel, off, _) = far_pointer(cpu, bus, i)?;
        return far_jump(cpu, bus, sel, off);
    }
    let t = near_target(cpu, bus, i)?;
    check_near_target(cpu, t)?;
    cpu.rip = t;
    Ok(())
}

/// Far JMP to a code segment at the current privilege level (real mode: just load).
fn far_jump(cpu: &mut Cpu, bus: &mut Bus, sel: u16, off: u64) -> ExecResult {
    if !cpu.protected() {
        load_real_mode_cs(cpu, sel, off);
        return Ok(());
    }
    let (d, raw) = cpu.far_code_descriptor(bus, sel)?;
    check_far_offset(cpu, &d, off)?;
    let cpl = cpu.cpl;
    cpu.commit_cs(bus, d, raw, cpl)?;
    cpu.rip = off;
    Ok(())
}

/// Real-mode far transfer: CS = selector, base = selector * 16, IP is 16 bits.
fn load_real_mode_cs(cpu: &mut Cpu, sel: u16, off: u64) {
    let cs = &mut cpu.seg[SegReg::Cs as usize];
    cs.selector = sel;
    cs.base = (sel as u64) << 4;
    cpu.rip = off & 0xffff;
}

/// The offset must be within the new CS limit (or canonical for a 64-bit segment).
fn check_far_offset(cpu: &Cpu, d: &Segment, off: u64) -> ExecResult {
    let bad = if cpu.long_mode() && d.long() {
        !GuestVirtAddr(off).is_canonical48()
    } else {
        off > d.limit as u64
    };
    if bad {
        Err(Exception::gp0())
    } else {
        Ok(())
    }
}

fn call(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let size = (-i.stack_pointer_increment()) as u32;
    if is_far(i) {
        let (sel, off, _) = far_pointer(cpu, bus, i)?;
        let size = size / 2;
        let old_cs = cpu.seg[SegReg::Cs as usize].selector as u64;
        let ret = cpu.rip;
        if !cpu.protected() {
            cpu.push(bus, old_cs, size)?;
            cpu.push(bus, ret, size)?;
            load_real_mode_cs(cpu, sel, off);
            return Ok(());
        }
        let (d, raw) = cpu.far_code_descriptor(bus, sel)?;
        check_far_offset(cpu, &d, off)?;
        // Both pushes must succeed before anything is committed.
        let saved_rsp = cpu.gpr[gpr::RSP];
        if let Err(e) = cpu
            .push(bus, old_cs, size)
            .and_then(|_| cpu.push(bus, ret, size))
        {
            cpu.gpr[gpr::RSP] = saved_rsp;
            return Err(e);
        }
        let cpl = cpu.cpl;
        cpu.commit_cs(bus, d, raw, cpl)?;
        cpu.rip = off;
        return Ok(());
    }
    let t = near_target(cpu, bus, i)?;
    check_near_target(cpu, t)?;
    cpu.push(bus, cpu.rip, size)?;
    cpu.rip = t;
    Ok(())
}

/// Far return (same privilege, or to an outer level with SS:RSP popped too).
fn retf(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let imm = if i.op_count() == 1 {
        i.immediate16() as u64
    } else {
        0
    };
    let size = ((i.stack_pointer_increment() as u64 - imm) / 2) as u32;
    let sm = mask(cpu.stack_size());
    let sp = cpu.gpr[gpr::RSP];
    let at = |k: u64| sp.wrapping_add(k * size as u64) & sm;
    let off = cpu.read_mem(bus, SegReg::Ss, at(0), size)?;
    let sel = cpu.read_mem(bus, SegReg::Ss, at(1), size)? as u16;
    if !cpu.protected() {
        load_real_mode_cs(cpu, sel, off);
        adjust_sp(cpu, 2 * size as u64 + imm);
        return Ok(());
    }
    let rpl = (sel & SEL_RPL_MASK) as u8;
    if rpl < cpu.cpl {
        return Err(Exception::gp(sel as u32 & !3));
    }
    let (d, raw) = code_for_return(cpu, bus, sel)?;
    check_far_offset(cpu, &d, off)?;
    if rpl == cpu.cpl {
        cpu.commit_cs(bus, d, raw, rpl)?;
        cpu.rip = off;
        adjust_sp(cpu, 2 * size as u64 + imm);
        return Ok(());
    }
    // Outer privilege: SS:RSP follow the immediate's skipped bytes.
    let base = 2 * size as u64 + imm;
    let new_sp = cpu.read_mem(bus, SegReg::Ss, sp.wrapping_add(base) & sm, size)?;
    let ss_sel = cpu.read_mem(
        bus,
        SegReg::Ss,
        sp.wrapping_add(base + size as u64) & sm,
        size,
    )? as u16;
    let ss = stack_for_return(cpu, bus, ss_sel, rpl, d.long())?;
    cpu.commit_cs(bus, d, raw, rpl)?;
    cpu.seg[SegReg::Ss as usize] = ss;
    cpu.gpr[gpr::RSP] = new_sp.wrapping_add(imm) & mask(cpu.stack_size());
    cpu.rip = off;
    null_inaccessible_segments(cpu);
    Ok(())
}

/// CS checks of RETF/IRET: a code segment whose DPL fits the selector's RPL.
fn code_for_return(cpu: &mut Cpu, bus: &mut Bus, sel: u16) -> Result<(Segment, u64), Exception> {
    let err = sel as u32 & !3;
    if sel & !SEL_RPL_MASK == 0 {
        return Err(Exception::gp0());
    }
    let raw = cpu.read_descriptor(bus, sel)?;
    let d = segment_from_descriptor(sel, raw);
    let rpl = (sel & SEL_RPL_MASK) as u8;
    if d.attr & seg_attr::S == 0 || !d.is_code() {
        return Err(Exception::gp(err));
    }
    let conforming = d.attr & seg_attr::TYPE_DC != 0;
    if (conforming && d.dpl() > rpl) || (!conforming && d.dpl() != rpl) {
        return Err(Exception::gp(err));
    }
    if !d.present() {
        return Err(Exception::np(err));
    }
    if cpu.long_mode() && d.long() && d.db() {
        return Err(Exception::gp(err));
    }
    Ok((d, raw))
}

/// SS checks of RETF/IRET to privilege `rpl`. A null SS is allowed for a 64-bit return
/// to CPL < 3.
fn stack_for_return(
    cpu: &mut Cpu,
    bus: &mut Bus,
    sel: u16,
    rpl: u8,
    to_64: bool,
) -> Result<Segment, Exception> {
    let err = sel as u32 & !3;
    if sel & !SEL_RPL_MASK == 0 {
        if cpu.long_mode() && to_64 && rpl < 3 && (sel & SEL_RPL_MASK) as u8 == rpl {
            let mut n = null_segment(sel);
            n.attr = (rpl as u16) << seg_attr::DPL_SHIFT | seg_attr::DB;
            return Ok(n);
        }
        return Err(Exception::gp0());
    }
    let raw = cpu.read_descriptor(bus, sel)?;
    let d = segment_from_descriptor(sel, raw);
    if (sel & SEL_RPL_MASK) as u8 != rpl
        || d.attr & seg_attr::S == 0
        || d.is_code()
        || d.attr & seg_attr::TYPE_RW == 0
        || d.dpl() != rpl
    {
        return Err(Exception::gp(err));
    }
    if !d.present() {
        return Err(Exception::ss(err));
    }
    let mut d = d;
    d.attr |= seg_attr::TYPE_ACCESSED;
    Ok(d)
}

/// After a return to an outer level, data segments the new CPL may not use become null
/// (SDM Vol. 2, RET/IRET "RETURN-TO-OUTER-PRIVILEGE-LEVEL").
fn null_inaccessible_segments(cpu: &mut Cpu) {
    for s in [SegReg::Es, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
        let seg = cpu.seg[s as usize];
        let conforming_code = seg.is_code() && seg.attr & seg_attr::TYPE_DC != 0;
        if seg.present() && !conforming_code && seg.dpl() < cpu.cpl {
            // The SDM's pseudo-code clears the selector only: the hidden part becomes
            // unusable but keeps its base, which 64-bit mode still uses for FS/GS
            // (kvm-unit-tests' emulator test reads through GS after such an IRET).
            let base = seg.base;
            cpu.seg[s as usize] = null_segment(0);
            cpu.seg[s as usize].base = base;
        }
    }
}

/// LOOP/LOOPE/LOOPNE and JCXZ/JECXZ/JRCXZ: the counter width is the address size,
/// which iced-x86 encodes in the instruction code.
fn loop_family(cpu: &mut Cpu, i: &Instruction) -> ExecResult {
    use Code as C;
    let counter_bytes = match i.code() {
        C::Loop_rel8_16_CX
        | C::Loop_rel8_32_CX
        | C::Loope_rel8_16_CX
        | C::Loope_rel8_32_CX
        | C::Loopne_rel8_16_CX
        | C::Loopne_rel8_32_CX
        | C::Jcxz_rel8_16
        | C::Jcxz_rel8_32 => 2,
        C::Loop_rel8_16_ECX
        | C::Loop_rel8_32_ECX
        | C::Loop_rel8_64_ECX
        | C::Loope_rel8_16_ECX
        | C::Loope_rel8_32_ECX
        | C::Loope_rel8_64_ECX
        | C::Loopne_rel8_16_ECX
        | C::Loopne_rel8_32_ECX
        | C::Loopne_rel8_64_ECX
        | C::Jecxz_rel8_16
        | C::Jecxz_rel8_32
        | C::Jecxz_rel8_64 => 4,
        _ => 8,
    };
    let m = mask(counter_bytes);
    let rcx = cpu.gpr[gpr::RCX];
    let taken = match i.mnemonic() {
        M::Jcxz | M::Jecxz | M::Jrcxz => rcx & m == 0,
        mn => {
            let n = rcx.wrapping_sub(1) & m;
            // ECX is written as a 32-bit register: bits 63:32 of RCX become 0.
            super::string::set_address_register(cpu, gpr::RCX, n, m);
            let zf = cpu.flag(rflags::ZF);
            n != 0
                && match mn {
                    M::Loope => zf,
                    M::Loopne => !zf,
                    _ => true,
                }
        }
    };
    if taken {
        let t = i.near_branch_target();
        check_near_target(cpu, t)?;
        cpu.rip = t;
    }
    Ok(())
}

/// IRET/IRETD/IRETQ: same-level and outer-level returns in protected and long mode.
/// Task returns (NT=1 outside long mode) are outside this model and fault.
fn iret(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let size: u32 = match i.code() {
        Code::Iretw => 2,
        Code::Iretd => 4,
        _ => 8,
    };
    if !cpu.protected() {
        let ip = cpu.pop(bus, size)?;
        let cs = cpu.pop(bus, size)? as u16;
        let fl = cpu.pop(bus, size)?;
        load_real_mode_cs(cpu, cs, ip);
        let keep = if size == 2 {
            !0xffffu64
        } else {
            rflags::VM | rflags::VIF | rflags::VIP
        };
        cpu.rflags = (cpu.rflags & keep) | (fl & !keep & rflags::WRITABLE) | rflags::FIXED;
        cpu.nmi_blocked = false;
        return Ok(());
    }
    if !cpu.long_mode() && cpu.flag(rflags::NT) {
        log::warn!("IRET with NT=1 (task return) is not supported");
        return Err(Exception::gp0());
    }
    let sm = mask(cpu.stack_size());
    let sp = cpu.gpr[gpr::RSP];
    let at = |k: u64| sp.wrapping_add(k * size as u64) & sm;
    let new_rip = cpu.read_mem(bus, SegReg::Ss, at(0), size)?;
    let cs_sel = cpu.read_mem(bus, SegReg::Ss, at(1), size)? as u16;
    let new_flags = cpu.read_mem(bus, SegReg::Ss, at(2), size)?;
    let rpl = (cs_sel & SEL_RPL_MASK) as u8;
    if rpl < cpu.cpl {
        return Err(Exception::gp(cs_sel as u32 & !3));
    }
    let (d, raw) = code_for_return(cpu, bus, cs_sel)?;
    check_far_offset(cpu, &d, new_rip)?;
    // 64-bit mode always pops SS:RSP; other modes only on a privilege change.
    let pops_stack = cpu.mode64() || rpl > cpu.cpl;
    let mut new_stack = None;
    if pops_stack {
        let new_sp = cpu.read_mem(bus, SegReg::Ss, at(3), size)?;
        let ss_sel = cpu.read_mem(bus, SegReg::Ss, at(4), size)? as u16;
        let ss = stack_for_return(cpu, bus, ss_sel, rpl, d.long())?;
        new_stack = Some((new_sp, ss));
    }
    // Flags: IOPL only at CPL 0, IF only when CPL <= IOPL; VM is never set by this model.
    let old_cpl = cpu.cpl;
    let iopl = ((cpu.rflags & rflags::IOPL) >> rflags::IOPL_SHIFT) as u8;
    let mut changeable = rflags::WRITABLE & !rflags::VM & !rflags::VIF & !rflags::VIP;
    if old_cpl > 0 {
        changeable &= !rflags::IOPL;
    }
    if old_cpl > iopl {
        changeable &= !rflags::IF;
    }
    if size == 2 {
        changeable &= 0xffff;
    } else if old_cpl == 0 {
        changeable |= rflags::VIF | rflags::VIP;
    }
    cpu.commit_cs(bus, d, raw, rpl)?;
    cpu.rip = new_rip;
    cpu.rflags = (cpu.rflags & !changeable) | (new_flags & changeable) | rflags::FIXED;
    match new_stack {
        Some((new_sp, ss)) => {
            cpu.seg[SegReg::Ss as usize] = ss;
            cpu.gpr[gpr::RSP] = if cpu.mode64() {
                new_sp
            } else {
                new_sp & mask(size.min(4))
            };
        }
        None => adjust_sp(cpu, 3 * size as u64),
    }
    if rpl > old_cpl {
        null_inaccessible_segments(cpu);
    }
    cpu.nmi_blocked = false;
    Ok(())
}

/// SYSCALL (64-bit mode, SDM Vol. 2): RCX/R11 save RIP/RFLAGS, CS/SS come from STAR,
/// RIP from LSTAR, RFLAGS is masked by FMASK.
fn syscall(cpu: &mut Cpu) -> ExecResult {
    if cpu.efer & efer::SCE == 0 || !cpu.mode64() {
        return Err(Exception::ud());
    }
    cpu.gpr[gpr::RCX] = cpu.rip;
    cpu.gpr[gpr::R11] = cpu.rflags & !rflags::RF;
    let sel = ((cpu.msr.star >> 32) & 0xfffc) as u16;
    cpu.seg[SegReg::Cs as usize] = Segment {
        selector: sel,
        base: 0,
        limit: 0xffff_ffff,
        attr: 0x9b | seg_attr::L | seg_attr::G,
    };
    cpu.seg[SegReg::Ss as usize] = Segment {
        selector: sel + 8,
        base: 0,
        limit: 0xffff_ffff,
        attr: 0x93 | seg_attr::DB | seg_attr::G,
    };
    cpu.cpl = 0;
    cpu.rflags = (cpu.rflags & !cpu.msr.fmask & !rflags::RF) | rflags::FIXED;
    cpu.rip = cpu.msr.lstar;
    Ok(())
}

/// SYSRET: back to CPL 3 with CS/SS from STAR[63:48]; RFLAGS from R11.
fn sysret(cpu: &mut Cpu, i: &Instruction) -> ExecResult {
    if cpu.efer & efer::SCE == 0 || !cpu.mode64() {
        return Err(Exception::ud());
    }
    cpu.require_cpl0()?;
    let to64 = i.code() == Code::Sysretq;
    let rip = if to64 {
        cpu.gpr[gpr::RCX]
    } else {
        cpu.gpr[gpr::RCX] & 0xffff_ffff
    };
    // Intel raises #GP(0) at CPL 0 for a non-canonical RCX (the AMD behaviour differs).
    if !GuestVirtAddr(rip).is_canonical48() {
        return Err(Exception::gp0());
    }
    let base_sel = ((cpu.msr.star >> 48) & 0xffff) as u16;
    let (cs_sel, cs_attr) = if to64 {
        (
            base_sel.wrapping_add(16) | 3,
            0xfb | seg_attr::L | seg_attr::G,
        )
    } else {
        (base_sel | 3, 0xfb | seg_attr::DB | seg_attr::G)
    };
    cpu.seg[SegReg::Cs as usize] = Segment {
        selector: cs_sel,
        base: 0,
        limit: 0xffff_ffff,
        attr: cs_attr,
    };
    cpu.seg[SegReg::Ss as usize] = Segment {
        selector: base_sel.wrapping_add(8) | 3,
        base: 0,
        limit: 0xffff_ffff,
        attr: 0xf3 | seg_attr::DB | seg_attr::G,
    };
    cpu.cpl = 3;
    const SYSRET_FLAGS: u64 = 0x3c_7fd7;
    cpu.rflags = (cpu.gpr[gpr::R11] & SYSRET_FLAGS) | rflags::FIXED;
    cpu.rip = rip;
    Ok(())
}
