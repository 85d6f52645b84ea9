//! System instructions: control and debug registers, MSRs, descriptor-table registers,
//! LTR/LLDT, SWAPGS, HLT, CLI/STI, port I/O with the TSS I/O-permission bitmap, CPUID,
//! RDTSC(P), TLB and cache maintenance (INVLPG, INVPCID, WBINVD, CLFLUSH), STAC/CLAC and
//! the FS/GS base instructions. Anything not listed raises #UD through
//! [`Cpu::unimplemented`], which logs the instruction once.

use super::super::cpuid::{cpuid, Vendor};
use super::super::exception::Exception;
use super::super::msr_ext;
use super::super::regs::{cr0, cr4, efer, gpr, msr, rflags, SegReg};
use super::ExecResult;
use crate::addr::GuestVirtAddr;
use crate::bus::Bus;
use crate::cpu::Cpu;
use crate::mmu::{AccessKind, MAXPHYADDR};
use crate::tlb::FlushCause;
use iced_x86::{Instruction, Mnemonic as M, OpKind, Register};

/// CR3 bit 63: with CR4.PCIDE=1, a MOV to CR3 that keeps the PCID's TLB entries.
const CR3_NO_FLUSH: u64 = 1 << 63;
/// CR3 bits that hold the page-table base (below MAXPHYADDR).
const CR3_ADDR_MASK: u64 = ((1u64 << MAXPHYADDR) - 1) & !0xfff;
/// Offset of the I/O-map base field in the 32- and 64-bit TSS.
const TSS_IOMAP_BASE: u64 = 0x66;
/// Smallest TSS limit that contains the I/O-map base field.
const TSS_MIN_LIMIT_IOMAP: u64 = 0x67;
/// DR6/DR7 bits 63:32 must be zero.
const DR_UPPER: u64 = 0xffff_ffff_0000_0000;
/// Valid PAT memory types (0 UC, 1 WC, 4 WT, 5 WP, 6 WB, 7 UC-).
const PAT_VALID_TYPES: [u8; 6] = [0, 1, 4, 5, 6, 7];

/// VERR/VERW (SDM Vol. 2): whether the segment `sel` names could be read (written) at
/// the current CPL and the selector's RPL. Never faults on the descriptor: a null
/// selector, one beyond the table limit, a system descriptor or an unreadable descriptor
/// all just give ZF=0. (Linux's MDS mitigation runs VERW on every return to user mode for
/// its side effect of clearing CPU buffers; here it only sets ZF.)
fn verify_segment(cpu: &mut Cpu, bus: &mut Bus, sel: u16, write: bool) -> bool {
    const S: u64 = 1 << 44;
    const CODE: u64 = 1 << 43;
    const CONFORMING: u64 = 1 << 42;
    const READ_WRITE: u64 = 1 << 41;
    if sel & !3 == 0 {
        return false;
    }
    let Ok(raw) = cpu.read_descriptor(bus, sel) else {
        return false;
    };
    if raw & S == 0 {
        return false;
    }
    let dpl = ((raw >> 45) & 3) as u16;
    let conforming_code = raw & CODE != 0 && raw & CONFORMING != 0;
    if !conforming_code && dpl < (cpu.cpl as u16).max(sel & 3) {
        return false;
    }
    if write {
        raw & CODE == 0 && raw & READ_WRITE != 0
    } else {
        raw & CODE == 0 || raw & READ_WRITE != 0
    }
}

pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    match i.mnemonic() {
        M::Rdmsr => {
            cpu.require_cpl0()?;
            let v = read_msr(cpu, bus, cpu.gpr[gpr::RCX] as u32)?;
            cpu.gpr[gpr::RAX] = v & 0xffff_ffff;
            cpu.gpr[gpr::RDX] = v >> 32;
        }
        M::Wrmsr => {
            cpu.require_cpl0()?;
            let v = (cpu.gpr[gpr::RDX] << 32) | (cpu.gpr[gpr::RAX] & 0xffff_ffff);
            write_msr(cpu, bus, cpu.gpr[gpr::RCX] as u32, v)?;
        }
        M::Lgdt | M::Lidt => {
            cpu.require_cpl0()?;
            let (seg, off) = (cpu.mem_seg(i), cpu.ea(i));
            let limit = cpu.read_mem(bus, seg, off, 2)? as u16;
            let base = if cpu.mode64() {
                cpu.read_mem(bus, seg, off + 2, 8)?
            } else {
                let b = cpu.read_mem(bus, seg, off + 2, 4)?;
                // A 16-bit operand size loads only 24 bits of base.
                if i.code().op_code().operand_size() == 16 {
                    b & 0xff_ffff
                } else {
                    b
                }
            };
            if cpu.mode64() && !GuestVirtAddr(base).is_canonical48() {
                return Err(Exception::gp0());
            }
            let t = if i.mnemonic() == M::Lgdt {
                &mut cpu.gdtr
            } else {
                &mut cpu.idtr
            };
            t.base = base;
            t.limit = limit;
        }
        M::Sgdt | M::Sidt => {
            let t = if i.mnemonic() == M::Sgdt {
                cpu.gdtr
            } else {
                cpu.idtr
            };
            let (seg, off) = (cpu.mem_seg(i), cpu.ea(i));
            cpu.write_mem(bus, seg, off, 2, t.limit as u64)?;
            let n = if cpu.mode64() { 8 } else { 4 };
            cpu.write_mem(bus, seg, off + 2, n, t.base)?;
        }
        M::Lldt | M::Ltr => {
            if !cpu.protected() {
                return Err(Exception::ud());
            }
            cpu.require_cpl0()?;
            let sel = cpu.read_op(bus, i, 0)? as u16;
            if i.mnemonic() == M::Ltr {
                cpu.load_task_register(bus, sel)?;
            } else {
                cpu.load_ldt(bus, sel)?;
            }
        }
        M::Sldt | M::Str => {
            if !cpu.protected() {
                return Err(Exception::ud());
            }
            let sel = if i.mnemonic() == M::Str {
                cpu.tr.selector
            } else {
                cpu.ldtr.selector
            };
            // A register destination is zero-extended; memory gets 16 bits.
            cpu.write_op(bus, i, 0, sel as u64)?;
        }
        M::Verr | M::Verw => {
            if !cpu.protected() {
                return Err(Exception::ud());
            }
            let sel = cpu.read_op(bus, i, 0)? as u16;
            let ok = verify_segment(cpu, bus, sel, i.mnemonic() == M::Verw);
            cpu.set_flag(rflags::ZF, ok);
        }
        M::Smsw => cpu.write_op(bus, i, 0, cpu.cr0)?,
        M::Lmsw => {
            cpu.require_cpl0()?;
            let v = cpu.read_op(bus, i, 0)? & 0xf;
            // LMSW can set PE but never clear it.
            let pe = (cpu.cr0 | v) & cr0::PE;
            let new = (cpu.cr0 & !0xf) | (v & 0xe) | pe;
            set_cr0(cpu, new)?;
        }
        M::Clts => {
            cpu.require_cpl0()?;
            cpu.cr0 &= !cr0::TS;
        }
        M::Swapgs => {
            if !cpu.mode64() {
                return Err(Exception::ud());
            }
            cpu.require_cpl0()?;
            let gs = &mut cpu.seg[SegReg::Gs as usize].base;
            std::mem::swap(gs, &mut cpu.msr.kernel_gs_base);
        }
        M::Hlt => {
            cpu.require_cpl0()?;
            cpu.halted = true;
        }
        M::Cli | M::Sti => {
            if cpu.protected() && cpu.cpl > iopl(cpu) {
                return Err(Exception::gp0());
            }
            if i.mnemonic() == M::Cli {
                cpu.rflags &= !rflags::IF;
            } else {
                if !cpu.flag(rflags::IF) {
                    // Interrupts stay blocked until after the next instruction.
                    cpu.shadow_until = cpu.icount + 1;
                }
                cpu.rflags |= rflags::IF;
            }
        }
        M::In => {
            let size = i.op_register(0).size() as u32;
            let port = port_operand(cpu, i, 1);
            check_io_permission(cpu, bus, port, size)?;
            let v = bus.port_read(port, size as u8);
            cpu.set_reg(i.op_register(0), v as u64);
        }
        M::Out => {
            let size = i.op_register(1).size() as u32;
            let port = port_operand(cpu, i, 0);
            check_io_permission(cpu, bus, port, size)?;
            let v = cpu.reg(i.op_register(1)) as u32;
            bus.port_write(port, size as u8, v);
            if let Some(va) = bus.pvport.take_annotation() {
                cpu.annotation(bus, va);
            }
        }
        M::Cpuid => {
            let st = super::super::cpuid::CpuidState {
                apic_id: cpu.id,
                vendor: cpu.vendor,
                cr4: cpu.cr4,
                xcr0: cpu.fpu.xcr0,
                apic_enabled: cpu.msr.apic_base & crate::devices::lapic::APIC_BASE_ENABLE != 0,
            };
            let (a, b, c, d) = cpuid(cpu.gpr[gpr::RAX] as u32, cpu.gpr[gpr::RCX] as u32, &st);
            cpu.gpr[gpr::RAX] = a as u64;
            cpu.gpr[gpr::RBX] = b as u64;
            cpu.gpr[gpr::RCX] = c as u64;
            cpu.gpr[gpr::RDX] = d as u64;
        }
        M::Rdtsc | M::Rdtscp => {
            if cpu.cr4 & cr4::TSD != 0 && cpu.cpl > 0 {
                return Err(Exception::gp0());
            }
            let t = cpu.tsc();
            cpu.gpr[gpr::RAX] = t & 0xffff_ffff;
            cpu.gpr[gpr::RDX] = t >> 32;
            if i.mnemonic() == M::Rdtscp {
                cpu.gpr[gpr::RCX] = cpu.msr.tsc_aux & 0xffff_ffff;
            }
        }
        // RDPKRU/WRPKRU (SDM Vol. 2): any CPL; #UD without CR4.PKE, #GP(0) unless ECX (and
        // for WRPKRU EDX) is 0.
        M::Rdpkru | M::Wrpkru => {
            if cpu.cr4 & cr4::PKE == 0 {
                return Err(Exception::ud());
            }
            if cpu.gpr[gpr::RCX] as u32 != 0 {
                return Err(Exception::gp0());
            }
            if i.mnemonic() == M::Rdpkru {
                cpu.gpr[gpr::RAX] = cpu.pkru as u64;
                cpu.gpr[gpr::RDX] = 0;
            } else {
                if cpu.gpr[gpr::RDX] as u32 != 0 {
                    return Err(Exception::gp0());
                }
                let (pkru, pkrs) = (cpu.pkru, cpu.pkrs);
                cpu.pkru = cpu.gpr[gpr::RAX] as u32;
                cpu.pk_changed(pkru, pkrs);
            }
        }
        M::Invlpg => {
            cpu.require_cpl0()?;
            let la = linear_no_check(cpu, i);
            // INVLPG of a non-canonical address is a no-op (SDM Vol. 2, INVLPG).
            if !cpu.mode64() || GuestVirtAddr(la).is_canonical48() {
                cpu.tlb.flush_page(GuestVirtAddr(la), FlushCause::Invlpg);
            }
            cpu.mmu_event(bus, "invlpg", la, None);
        }
        M::Invpcid => invpcid(cpu, bus, i)?,
        M::Wbinvd | M::Invd => cpu.require_cpl0()?,
        M::Clflush | M::Clflushopt | M::Clwb => {
            // Checked like a one-byte read; no caches are modelled here.
            let (seg, off) = (cpu.mem_seg(i), cpu.ea(i));
            let la = cpu.linear(seg, off, 1, false)?;
            cpu.translate(bus, la, AccessKind::Read, false)?;
        }
        M::Stac | M::Clac => {
            if cpu.cpl > 0 {
                return Err(Exception::ud());
            }
            cpu.set_flag(rflags::AC, i.mnemonic() == M::Stac);
        }
        M::Rdfsbase | M::Rdgsbase | M::Wrfsbase | M::Wrgsbase => {
            if !cpu.mode64() || cpu.cr4 & cr4::FSGSBASE == 0 {
                return Err(Exception::ud());
            }
            let seg = if matches!(i.mnemonic(), M::Rdfsbase | M::Wrfsbase) {
                SegReg::Fs
            } else {
                SegReg::Gs
            };
            let r = i.op_register(0);
            if matches!(i.mnemonic(), M::Rdfsbase | M::Rdgsbase) {
                cpu.set_reg(r, cpu.seg[seg as usize].base);
            } else {
                let v = cpu.reg(r);
                if !GuestVirtAddr(v).is_canonical48() {
                    return Err(Exception::gp0());
                }
                cpu.seg[seg as usize].base = v;
            }
        }
        M::Ud0 | M::Ud1 | M::Ud2 => return Err(Exception::ud()),
        // Instructions of features this CPU does not have: #UD, as on such a CPU (VMX
        // and SMX are not reported in CPUID.1:ECX, SVM and RDPRU not in 0x80000001 /
        // 0x80000008; VMX instructions outside VMX operation #UD in any case).
        M::Vmcall
        | M::Vmlaunch
        | M::Vmresume
        | M::Vmxoff
        | M::Vmxon
        | M::Vmptrld
        | M::Vmptrst
        | M::Vmclear
        | M::Vmread
        | M::Vmwrite
        | M::Invept
        | M::Invvpid
        | M::Vmfunc
        | M::Vmmcall
        | M::Vmrun
        | M::Vmload
        | M::Vmsave
        | M::Stgi
        | M::Clgi
        | M::Skinit
        | M::Invlpga
        | M::Getsec
        | M::Rdpru => return Err(Exception::ud()),
        _ => return Err(cpu.unimplemented(i)),
    }
    Ok(())
}

impl Cpu {
    /// The time-stamp counter: virtual time is the instruction count.
    pub fn tsc(&self) -> u64 {
        self.icount.wrapping_add(self.msr.tsc_offset)
    }
}

fn iopl(cpu: &Cpu) -> u8 {
    ((cpu.rflags & rflags::IOPL) >> rflags::IOPL_SHIFT) as u8
}

fn port_operand(cpu: &Cpu, i: &Instruction, n: u32) -> u16 {
    match i.op_kind(n) {
        OpKind::Register => cpu.reg(Register::DX) as u16,
        _ => i.immediate8() as u16,
    }
}

/// Linear address of a memory operand without limit checks (INVLPG).
fn linear_no_check(cpu: &Cpu, i: &Instruction) -> u64 {
    let seg = cpu.mem_seg(i);
    let off = cpu.ea(i);
    let s = &cpu.seg[seg as usize];
    if cpu.mode64() {
        match seg {
            SegReg::Fs | SegReg::Gs => s.base.wrapping_add(off),
            _ => off,
        }
    } else {
        s.base.wrapping_add(off) & 0xffff_ffff
    }
}

/// I/O permission (SDM Vol. 1, 19.5): in protected mode with CPL > IOPL every byte of the
/// access must have a clear bit in the TSS I/O-permission bitmap.
pub(super) fn check_io_permission(
    cpu: &mut Cpu,
    bus: &mut Bus,
    port: u16,
    size: u32,
) -> ExecResult {
    if !cpu.protected() || cpu.cpl <= iopl(cpu) {
        return Ok(());
    }
    let tr = cpu.tr;
    let limit = tr.limit as u64;
    if !tr.present() || limit < TSS_MIN_LIMIT_IOMAP {
        return Err(Exception::gp0());
    }
    let base = cpu.read_linear(bus, tr.base + TSS_IOMAP_BASE, 2, AccessKind::Read, true)?;
    let byte = base + port as u64 / 8;
    if byte + 1 > limit {
        return Err(Exception::gp0());
    }
    let bits = cpu.read_linear(bus, tr.base + byte, 2, AccessKind::Read, true)?;
    let want = ((1u64 << size) - 1) << (port % 8);
    if bits & want != 0 {
        return Err(Exception::gp0());
    }
    Ok(())
}

/// MOV to/from CR0, CR2, CR3, CR4, CR8 and DR0-DR7.
pub fn mov_cr_dr(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    cpu.require_cpl0()?;
    let d = i.op_register(0);
    let s = i.op_register(1);
    let width = if cpu.mode64() { u64::MAX } else { 0xffff_ffff };
    if d.is_cr() {
        let v = cpu.reg(s) & width;
        match d {
            Register::CR0 => set_cr0(cpu, v)?,
            Register::CR2 => cpu.cr2 = v,
            Register::CR3 => {
                let old = cpu.cr3;
                set_cr3(cpu, v)?;
                cpu.mmu_event(bus, "cr3", v, Some(old));
            }
            Register::CR4 => {
                let old = cpu.cr4;
                set_cr4(cpu, v)?;
                cpu.mmu_event(bus, "cr4", v, Some(old));
            }
            Register::CR8 => {
                if v & !0xf != 0 {
                    return Err(Exception::gp0());
                }
                // CR8 is TPR[7:4] of the local APIC (SDM 10.8.6.1); TPR[3:0] become 0.
                cpu.cr8 = v;
                bus.lapic.set_tpr((v as u8) << 4);
                bus.kick();
            }
            _ => return Err(Exception::ud()),
        }
    } else if s.is_cr() {
        let v = match s {
            Register::CR0 => cpu.cr0,
            Register::CR2 => cpu.cr2,
            Register::CR3 => cpu.cr3,
            Register::CR4 => cpu.cr4,
            Register::CR8 => (bus.lapic.tpr() >> 4) as u64,
            _ => return Err(Exception::ud()),
        };
        cpu.set_reg(d, v & width);
    } else if d.is_dr() {
        let n = dr_index(cpu, d)?;
        let v = cpu.reg(s) & width;
        if (n == 6 || n == 7) && v & DR_UPPER != 0 {
            return Err(Exception::gp0());
        }
        cpu.dr[n] = match n {
            // DR6 bits 4..11 and 16..31 read as 1 (bit 12 reads as 0); DR7 bit 10 as 1.
            6 => v | 0xffff_0ff0,
            7 => (v | 0x400) & !0xd800,
            _ => v,
        };
    } else {
        let n = dr_index(cpu, s)?;
        cpu.set_reg(d, cpu.dr[n] & width);
    }
    Ok(())
}

/// DR4/DR5 alias DR6/DR7 unless CR4.DE is set, when they are #UD.
fn dr_index(cpu: &Cpu, r: Register) -> Result<usize, Exception> {
    let n = (r as u32 - Register::DR0 as u32) as usize;
    match n {
        4 | 5 if cpu.cr4 & cr4::DE != 0 => Err(Exception::ud()),
        4 | 5 => Ok(n + 2),
        0..=7 => Ok(n),
        _ => Err(Exception::ud()),
    }
}

/// MOV to CR0 with the SDM's #GP checks and the long-mode activation rules.
fn set_cr0(cpu: &mut Cpu, v: u64) -> ExecResult {
    let v = v | cr0::ET;
    if v & !cr0::VALID != 0
        || (v & cr0::PG != 0 && v & cr0::PE == 0)
        || (v & cr0::NW != 0 && v & cr0::CD == 0)
    {
        return Err(Exception::gp0());
    }
    let old = cpu.cr0;
    let enabling_pg = v & cr0::PG != 0 && old & cr0::PG == 0;
    let disabling_pg = v & cr0::PG == 0 && old & cr0::PG != 0;
    if enabling_pg && cpu.efer & efer::LME != 0 {
        // Long-mode activation needs PAE and a CS without L (SDM 10.8.5).
        if cpu.cr4 & cr4::PAE == 0 || cpu.seg[SegReg::Cs as usize].long() {
            return Err(Exception::gp0());
        }
        cpu.efer |= efer::LMA;
    }
    if disabling_pg {
        if cpu.mode64() {
            return Err(Exception::gp0());
        }
        cpu.efer &= !efer::LMA;
    }
    cpu.cr0 = v;
    if (old ^ v) & (cr0::PG | cr0::WP | cr0::PE) != 0 {
        cpu.tlb.flush_all(FlushCause::Other);
    }
    Ok(())
}

/// MOV to CR3: reserved-bit checks, then the TLB flush (none with PCIDE and bit 63 set).
fn set_cr3(cpu: &mut Cpu, v: u64) -> ExecResult {
    let pcide = cpu.cr4 & cr4::PCIDE != 0;
    let no_flush = pcide && v & CR3_NO_FLUSH != 0;
    let v = if pcide { v & !CR3_NO_FLUSH } else { v };
    if cpu.long_mode() && v & !(CR3_ADDR_MASK | 0xfff) != 0 {
        return Err(Exception::gp0());
    }
    cpu.cr3 = v;
    if !no_flush {
        let pcid = if pcide { Some(cpu.pcid()) } else { None };
        cpu.tlb.flush_non_global(pcid, FlushCause::Cr3);
    }
    Ok(())
}

/// MOV to CR4: supported bits only; PAE stays on in long mode; PCIDE needs long mode and
/// PCID 0; paging-mode bits flush the whole TLB.
fn set_cr4(cpu: &mut Cpu, v: u64) -> ExecResult {
    let old = cpu.cr4;
    if v & !cr4::SUPPORTED != 0 {
        return Err(Exception::gp0());
    }
    if cpu.long_mode() && v & cr4::PAE == 0 {
        return Err(Exception::gp0());
    }
    if v & cr4::PCIDE != 0 && old & cr4::PCIDE == 0 && (!cpu.long_mode() || cpu.cr3 & 0xfff != 0) {
        return Err(Exception::gp0());
    }
    cpu.cr4 = v;
    if (old ^ v) & cr4::TLB_FLUSH_BITS != 0 {
        cpu.tlb.flush_all(FlushCause::Cr4);
    }
    Ok(())
}

fn read_msr(cpu: &Cpu, bus: &Bus, n: u32) -> Result<u64, Exception> {
    Ok(match n {
        msr::IA32_TSC => cpu.tsc(),
        msr::IA32_APIC_BASE => bus.lapic.apic_base(),
        // No microcode is ever loaded: the signature reads 0 (as QEMU TCG).
        msr::IA32_BIOS_SIGN_ID => 0,
        msr::IA32_SYSENTER_CS => cpu.msr.sysenter_cs,
        msr::IA32_SYSENTER_ESP => cpu.msr.sysenter_esp,
        msr::IA32_SYSENTER_EIP => cpu.msr.sysenter_eip,
        msr::IA32_MISC_ENABLE => cpu.msr.misc_enable,
        msr::IA32_PAT => cpu.msr.pat,
        msr::IA32_EFER => cpu.efer,
        msr::IA32_STAR => cpu.msr.star,
        msr::IA32_LSTAR => cpu.msr.lstar,
        msr::IA32_CSTAR => cpu.msr.cstar,
        msr::IA32_FMASK => cpu.msr.fmask,
        msr::IA32_FS_BASE => cpu.seg[SegReg::Fs as usize].base,
        msr::IA32_GS_BASE => cpu.seg[SegReg::Gs as usize].base,
        msr::IA32_KERNEL_GS_BASE => cpu.msr.kernel_gs_base,
        msr::IA32_TSC_AUX => cpu.msr.tsc_aux,
        msr::IA32_PKRS => cpu.pkrs as u64,
        n if cpu.vendor == Vendor::Amd && msr_ext::AMD_PMU.contains(&n) => {
            cpu.msr.ext.amd_pmu_read(n)
        }
        _ => match cpu.msr.ext.read(n) {
            Some(v) => v,
            None => {
                log::debug!("rdmsr of unknown MSR {n:#x}: #GP");
                return Err(Exception::gp0());
            }
        },
    })
}

fn write_msr(cpu: &mut Cpu, bus: &mut Bus, n: u32, v: u64) -> ExecResult {
    let canonical = |v: u64| {
        if GuestVirtAddr(v).is_canonical48() {
            Ok(v)
        } else {
            Err(Exception::gp0())
        }
    };
    match n {
        msr::IA32_TSC => cpu.msr.tsc_offset = v.wrapping_sub(cpu.icount),
        msr::IA32_APIC_BASE => {
            // Bits 0-7 and 9 are reserved, and EXTD (x2APIC) too: CPUID does not offer it.
            const APIC_BASE_RESERVED: u64 =
                !((1u64 << MAXPHYADDR) - 1) | 0x2ff | crate::devices::lapic::APIC_BASE_EXTD;
            if v & APIC_BASE_RESERVED != 0 {
                return Err(Exception::gp0());
            }
            bus.lapic.set_apic_base(v);
            cpu.msr.apic_base = bus.lapic.apic_base();
            if let Some(page) = bus.lapic.mmio_base() {
                if bus.mem.slice(crate::addr::GuestPhysAddr(page), 1).is_some() {
                    log::warn!("local APIC moved onto RAM at {page:#x}: RAM shadows it");
                }
            }
            bus.kick();
        }
        msr::IA32_SYSENTER_CS => cpu.msr.sysenter_cs = v & 0xffff,
        msr::IA32_SYSENTER_ESP => cpu.msr.sysenter_esp = canonical(v)?,
        msr::IA32_SYSENTER_EIP => cpu.msr.sysenter_eip = canonical(v)?,
        msr::IA32_MISC_ENABLE => cpu.msr.misc_enable = v,
        msr::IA32_PAT => {
            if (0..8).any(|k| !PAT_VALID_TYPES.contains(&((v >> (8 * k)) as u8))) {
                return Err(Exception::gp0());
            }
            cpu.msr.pat = v;
        }
        msr::IA32_EFER => {
            if v & !efer::SUPPORTED != 0 {
                return Err(Exception::gp0());
            }
            // LME cannot change while paging is on; LMA is read-only.
            if cpu.paging() && (v ^ cpu.efer) & efer::LME != 0 {
                return Err(Exception::gp0());
            }
            let old = cpu.efer;
            cpu.efer = (v & !efer::LMA) | (old & efer::LMA);
            if (old ^ cpu.efer) & efer::NXE != 0 {
                cpu.tlb.flush_all(FlushCause::Other);
            }
        }
        msr::IA32_STAR => cpu.msr.star = v,
        msr::IA32_LSTAR => cpu.msr.lstar = canonical(v)?,
        msr::IA32_CSTAR => cpu.msr.cstar = canonical(v)?,
        msr::IA32_FMASK => cpu.msr.fmask = v & 0xffff_ffff,
        msr::IA32_FS_BASE => cpu.seg[SegReg::Fs as usize].base = canonical(v)?,
        msr::IA32_GS_BASE => cpu.seg[SegReg::Gs as usize].base = canonical(v)?,
        msr::IA32_KERNEL_GS_BASE => cpu.msr.kernel_gs_base = canonical(v)?,
        // Software writes 0 before CPUID to read the microcode revision back: ignored.
        msr::IA32_BIOS_SIGN_ID => {}
        msr::IA32_TSC_AUX => {
            if v >> 32 != 0 {
                return Err(Exception::gp0());
            }
            cpu.msr.tsc_aux = v;
        }
        msr::IA32_PKRS => {
            // Bits 63:32 are reserved (SDM Vol. 4, Table 2-2).
            if v >> 32 != 0 {
                return Err(Exception::gp0());
            }
            let (pkru, pkrs) = (cpu.pkru, cpu.pkrs);
            cpu.pkrs = v as u32;
            cpu.pk_changed(pkru, pkrs);
        }
        n if cpu.vendor == Vendor::Amd && msr_ext::AMD_PMU.contains(&n) => {
            cpu.msr.ext.amd_pmu_write(n, v)
        }
        _ => match cpu.msr.ext.write(n, v) {
            Some(true) => {}
            Some(false) => return Err(Exception::gp0()),
            None => {
                log::debug!("wrmsr of unknown MSR {n:#x} = {v:#x}: #GP");
                return Err(Exception::gp0());
            }
        },
    }
    Ok(())
}

/// INVPCID (SDM Vol. 2): type in a register, a 16-byte descriptor {PCID, address} in memory.
fn invpcid(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    const INDIVIDUAL: u64 = 0;
    const SINGLE_CONTEXT: u64 = 1;
    const ALL_INCL_GLOBAL: u64 = 2;
    const ALL_NON_GLOBAL: u64 = 3;
    cpu.require_cpl0()?;
    let ty = cpu.reg(i.op_register(0));
    let (seg, off) = (cpu.mem_seg(i), cpu.ea(i));
    let lo = cpu.read_mem(bus, seg, off, 8)?;
    let addr = cpu.read_mem(bus, seg, off + 8, 8)?;
    if ty > ALL_NON_GLOBAL || lo > 0xfff {
        return Err(Exception::gp0());
    }
    let pcid = lo as u16;
    let pcide = cpu.cr4 & cr4::PCIDE != 0;
    match ty {
        INDIVIDUAL => {
            if !GuestVirtAddr(addr).is_canonical48() || (!pcide && pcid != 0) {
                return Err(Exception::gp0());
            }
            cpu.tlb.flush_page(GuestVirtAddr(addr), FlushCause::Invpcid);
        }
        SINGLE_CONTEXT => {
            if !pcide && pcid != 0 {
                return Err(Exception::gp0());
            }
            cpu.tlb.flush_non_global(Some(pcid), FlushCause::Invpcid);
        }
        ALL_INCL_GLOBAL => cpu.tlb.flush_all(FlushCause::Invpcid),
        _ => cpu.tlb.flush_non_global(None, FlushCause::Invpcid),
    }
    cpu.mmu_event(bus, "invpcid", addr, Some(ty));
    Ok(())
}
