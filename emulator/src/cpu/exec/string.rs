//! String instructions (MOVS, STOS, LODS, SCAS, CMPS, INS, OUTS) with REP/REPE/REPNE.
//! Each iteration commits RSI/RDI/RCX before the next, so a fault mid-string restarts
//! exactly where it stopped (SDM Vol. 1, 7.3.9.2). A REP runs at most `REP_CHUNK`
//! iterations per step and then re-executes, so interrupts are taken between chunks.

use super::super::alu::{self, mask};
use super::super::regs::{gpr, rflags, SegReg};
use super::super::REP_CHUNK;
use super::system::check_io_permission;
use super::ExecResult;
use crate::bus::Bus;
use crate::cpu::Cpu;
use iced_x86::{Instruction, Mnemonic as M, OpKind};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Movs,
    Stos,
    Lods,
    Scas,
    Cmps,
    Ins,
    Outs,
}

/// Address size of a string instruction, from its implicit memory operand kinds.
fn address_bytes(i: &Instruction) -> u32 {
    for n in 0..i.op_count() {
        match i.op_kind(n) {
            OpKind::MemorySegSI | OpKind::MemoryESDI | OpKind::MemorySegDI => return 2,
            OpKind::MemorySegESI | OpKind::MemoryESEDI | OpKind::MemorySegEDI => return 4,
            OpKind::MemorySegRSI | OpKind::MemoryESRDI | OpKind::MemorySegRDI => return 8,
            _ => {}
        }
    }
    8
}

/// Update RSI, RDI or RCX with the address size's width. It is a register write of that
/// width: a 32-bit write zero-extends into bits 63:32 (SDM Vol. 1, 3.4.1.1), a 16-bit one
/// keeps bits 63:16.
pub(super) fn set_address_register(cpu: &mut Cpu, r: usize, v: u64, amask: u64) {
    cpu.gpr[r] = if amask == 0xffff {
        (cpu.gpr[r] & !0xffff) | (v & 0xffff)
    } else {
        v & amask
    };
}

pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let kind = match i.mnemonic() {
        M::Movsb | M::Movsw | M::Movsd | M::Movsq => Kind::Movs,
        M::Stosb | M::Stosw | M::Stosd | M::Stosq => Kind::Stos,
        M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq => Kind::Lods,
        M::Scasb | M::Scasw | M::Scasd | M::Scasq => Kind::Scas,
        M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq => Kind::Cmps,
        M::Insb | M::Insw | M::Insd => Kind::Ins,
        _ => Kind::Outs,
    };
    let size = i.memory_size().size() as u32;
    let amask = mask(address_bytes(i));
    let src_seg = SegReg::from_iced(i.memory_segment()).unwrap_or(SegReg::Ds);
    let rep = i.has_repe_prefix() || i.has_repne_prefix();
    // REPE/REPNE only terminate on ZF for SCAS and CMPS.
    let cond = match kind {
        Kind::Scas | Kind::Cmps if i.has_repe_prefix() => Some(true),
        Kind::Scas | Kind::Cmps if i.has_repne_prefix() => Some(false),
        _ => None,
    };
    if matches!(kind, Kind::Ins | Kind::Outs) {
        let port = cpu.gpr[gpr::RDX] as u16;
        check_io_permission(cpu, bus, port, size)?;
    }
    let step = if cpu.flag(rflags::DF) {
        (size as u64).wrapping_neg()
    } else {
        size as u64
    };
    let acc = match size {
        1 => iced_x86::Register::AL,
        2 => iced_x86::Register::AX,
        4 => iced_x86::Register::EAX,
        _ => iced_x86::Register::RAX,
    };
    let bump = |cpu: &mut Cpu, r: usize| {
        let v = cpu.gpr[r].wrapping_add(step);
        set_address_register(cpu, r, v, amask);
    };

    // REP STOS/MOVS forward with 64-bit addressing: whole runs of elements within a page
    // at once when they are all fast TLB hits (`Cpu::rep_bulk`: the same accesses, hits,
    // bytes and register values as single iterations).
    let bulk = rep
        && amask == u64::MAX
        && step == size as u64
        && matches!(kind, Kind::Stos | Kind::Movs)
        && cpu.rep_bulk_allowed(bus);
    let stos_val = if bulk && kind == Kind::Stos {
        cpu.reg(acc)
    } else {
        0
    };
    let mut done = 0u64;
    loop {
        if rep {
            if cpu.gpr[gpr::RCX] & amask == 0 {
                return Ok(());
            }
            if done == REP_CHUNK {
                // Come back for the rest after pending events have had their chance.
                cpu.rip = cpu.insn_rip;
                return Ok(());
            }
        }
        if bulk {
            let max = cpu.gpr[gpr::RCX].min(REP_CHUNK - done);
            let src = (kind == Kind::Movs).then(|| (src_seg, cpu.gpr[gpr::RSI]));
            let n = cpu.rep_bulk(bus, src, cpu.gpr[gpr::RDI], size, stos_val, max);
            if n != 0 {
                let bytes = n * size as u64;
                cpu.gpr[gpr::RDI] = cpu.gpr[gpr::RDI].wrapping_add(bytes);
                if kind == Kind::Movs {
                    cpu.gpr[gpr::RSI] = cpu.gpr[gpr::RSI].wrapping_add(bytes);
                }
                cpu.gpr[gpr::RCX] -= n;
                done += n;
                continue;
            }
        }
        let si = cpu.gpr[gpr::RSI] & amask;
        let di = cpu.gpr[gpr::RDI] & amask;
        match kind {
            Kind::Movs => {
                let v = cpu.read_mem(bus, src_seg, si, size)?;
                cpu.write_mem(bus, SegReg::Es, di, size, v)?;
                bump(cpu, gpr::RSI);
                bump(cpu, gpr::RDI);
            }
            Kind::Stos => {
                let v = cpu.reg(acc);
                cpu.write_mem(bus, SegReg::Es, di, size, v)?;
                bump(cpu, gpr::RDI);
            }
            Kind::Lods => {
                let v = cpu.read_mem(bus, src_seg, si, size)?;
                cpu.set_reg(acc, v);
                bump(cpu, gpr::RSI);
            }
            Kind::Scas => {
                let v = cpu.read_mem(bus, SegReg::Es, di, size)?;
                let (_, f) = alu::sub(cpu.reg(acc), v, false, size);
                cpu.set_status(f);
                bump(cpu, gpr::RDI);
            }
            Kind::Cmps => {
                let a = cpu.read_mem(bus, src_seg, si, size)?;
                let b = cpu.read_mem(bus, SegReg::Es, di, size)?;
                let (_, f) = alu::sub(a, b, false, size);
                cpu.set_status(f);
                bump(cpu, gpr::RSI);
                bump(cpu, gpr::RDI);
            }
            Kind::Ins => {
                // The destination is checked (translated) before the port is read, so a
                // fault does not lose the input.
                let la = cpu.linear(SegReg::Es, di, size, true)?;
                cpu.translate(bus, la, crate::mmu::AccessKind::Write, false)?;
                let v = bus.port_read(cpu.gpr[gpr::RDX] as u16, size as u8) as u64;
                cpu.write_mem(bus, SegReg::Es, di, size, v)?;
                bump(cpu, gpr::RDI);
            }
            Kind::Outs => {
                let v = cpu.read_mem(bus, src_seg, si, size)?;
                bus.port_write(cpu.gpr[gpr::RDX] as u16, size as u8, v as u32);
                if let Some(va) = bus.pvport.take_annotation() {
                    cpu.annotation(bus, va);
                }
                bump(cpu, gpr::RSI);
            }
        }
        if !rep {
            return Ok(());
        }
        let c = cpu.gpr[gpr::RCX].wrapping_sub(1);
        set_address_register(cpu, gpr::RCX, c, amask);
        done += 1;
        if let Some(want_zf) = cond {
            if cpu.flag(rflags::ZF) != want_zf {
                return Ok(());
            }
        }
        if bus.exit_request.is_some() {
            // A device stopped the machine (e.g. OUTS to isa-debug-exit).
            if cpu.gpr[gpr::RCX] & amask != 0 {
                cpu.rip = cpu.insn_rip;
            }
            return Ok(());
        }
    }
}
