//! MXCSR loads and stores, FXSAVE/FXRSTOR (SDM Vol. 2, FXSAVE: Table 3-53 for the 64-bit
//! layout), XSAVE/XSAVEOPT/XRSTOR in the standard (non-compacted) format with XCR0 limited
//! to x87|SSE|PKRU, and XGETBV/XSETBV.

use super::super::exception::{vector, Exception};
use super::super::fpu_state::{fx, mxcsr, xcr0, FpuState};
use super::super::regs::{cr0, cr4, gpr};
use super::super::Cpu;
use super::ExecResult;
use crate::bus::Bus;
use iced_x86::{Instruction, Mnemonic as M};

/// The legacy region of an XSAVE area (the FXSAVE image).
pub const XSAVE_LEGACY_SIZE: u32 = fx::SIZE as u32;
/// The XSAVE header follows the legacy region and is 64 bytes long.
const XSAVE_HEADER: u64 = fx::SIZE as u64;
const XSAVE_HEADER_SIZE: u32 = 64;
/// XSAVE areas must be 64-byte aligned; FXSAVE images 16-byte aligned.
const XSAVE_ALIGN: u64 = 64;
const FXSAVE_ALIGN: u64 = 16;
/// XCOMP_BV bit 63: the compacted format (XRSTOR here supports only the standard one).
const XCOMP_COMPACTED: u64 = 1 << 63;

/// Size of the XSAVE area for the features in `xcr0` (CPUID.(EAX=0DH,ECX=0):EBX): x87 and
/// SSE both live in the legacy region; PKRU (component 9) ends the area at its standard
/// offset.
pub fn xsave_area_size(xcr0: u64) -> u32 {
    if xcr0 & xcr0::PKRU != 0 {
        xcr0::PKRU_OFFSET + xcr0::PKRU_SIZE
    } else {
        XSAVE_LEGACY_SIZE + XSAVE_HEADER_SIZE
    }
}

/// #NM/#UD checks of FXSAVE/FXRSTOR (SDM Vol. 2, FXSAVE "Protected Mode Exceptions").
fn fx_available(cpu: &Cpu) -> ExecResult {
    if cpu.cr0 & (cr0::TS | cr0::EM) != 0 {
        return Err(Exception::new(vector::NM));
    }
    Ok(())
}

/// #UD/#NM checks of the XSAVE family.
fn xsave_available(cpu: &Cpu) -> ExecResult {
    if cpu.cr4 & cr4::OSXSAVE == 0 {
        return Err(Exception::ud());
    }
    if cpu.cr0 & cr0::TS != 0 {
        return Err(Exception::new(vector::NM));
    }
    Ok(())
}

/// Linear address of the memory operand, aligned to `align` (#GP(0) otherwise).
fn aligned_la(
    cpu: &Cpu,
    i: &Instruction,
    size: u32,
    align: u64,
    write: bool,
) -> Result<u64, Exception> {
    let (seg, off) = (cpu.mem_seg(i), cpu.ea(i));
    let la = cpu.linear(seg, off, size, write)?;
    if la & (align - 1) != 0 {
        return Err(Exception::gp0());
    }
    Ok(la)
}

fn read_block(cpu: &mut Cpu, bus: &mut Bus, la: u64, out: &mut [u8]) -> ExecResult {
    for (k, chunk) in out.chunks_mut(8).enumerate() {
        let v = cpu.read_linear128(bus, la.wrapping_add(8 * k as u64), chunk.len() as u32)?;
        chunk.copy_from_slice(&(v as u64).to_le_bytes()[..chunk.len()]);
    }
    Ok(())
}

/// Write `data` at `la` after checking that every page of it is writable.
fn write_block(cpu: &mut Cpu, bus: &mut Bus, la: u64, data: &[u8]) -> ExecResult {
    use crate::mmu::AccessKind;
    let mut page = la & !0xfff;
    let end = la.wrapping_add(data.len() as u64 - 1);
    loop {
        cpu.translate(bus, page.max(la), AccessKind::Write, false)?;
        if page == end & !0xfff {
            break;
        }
        page = page.wrapping_add(0x1000);
    }
    for (k, chunk) in data.chunks(8).enumerate() {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        cpu.write_linear(
            bus,
            la.wrapping_add(8 * k as u64),
            chunk.len() as u32,
            u64::from_le_bytes(b),
            false,
        )?;
    }
    Ok(())
}

/// FXRSTOR and XRSTOR: reserved MXCSR bits are #GP(0).
fn check_mxcsr(v: u32) -> ExecResult {
    if v & !mxcsr::MASK != 0 {
        return Err(Exception::gp0());
    }
    Ok(())
}

pub fn execute(cpu: &mut Cpu, bus: &mut Bus, i: &Instruction) -> ExecResult {
    let m = i.mnemonic();
    match m {
        M::Ldmxcsr | M::Stmxcsr => {
            cpu.sse_available()?;
            if m == M::Ldmxcsr {
                let v = cpu.read_op(bus, i, 0)? as u32;
                check_mxcsr(v)?;
                cpu.fpu.mxcsr = v;
            } else {
                cpu.write_op(bus, i, 0, cpu.fpu.mxcsr as u64)?;
            }
        }
        M::Fxsave | M::Fxsave64 => {
            fx_available(cpu)?;
            let la = aligned_la(cpu, i, fx::SIZE as u32, FXSAVE_ALIGN, true)?;
            let mut img = [0u8; fx::SIZE];
            read_block(cpu, bus, la, &mut img[fx::END..])?;
            cpu.fpu.fxsave_into(&mut img, m == M::Fxsave64);
            // With CR4.OSFXSR clear the SSE state is not saved (SDM: implementation
            // dependent; this CPU leaves that part of the image as it was).
            let end = if cpu.cr4 & cr4::OSFXSR != 0 {
                fx::END
            } else {
                fx::MXCSR
            };
            write_block(cpu, bus, la, &img[..end])?;
        }
        M::Fxrstor | M::Fxrstor64 => {
            fx_available(cpu)?;
            let la = aligned_la(cpu, i, fx::SIZE as u32, FXSAVE_ALIGN, false)?;
            let mut img = [0u8; fx::SIZE];
            read_block(cpu, bus, la, &mut img)?;
            check_mxcsr(FpuState::image_mxcsr(&img))?;
            let sse = cpu.cr4 & cr4::OSFXSR != 0;
            cpu.fpu.fxrstor(&img, m == M::Fxrstor64, true, sse);
        }
        M::Xsave | M::Xsave64 | M::Xsaveopt | M::Xsaveopt64 => {
            xsave_available(cpu)?;
            let size = xsave_area_size(cpu.fpu.xcr0);
            let la = aligned_la(cpu, i, size, XSAVE_ALIGN, true)?;
            let rfbm = cpu.fpu.xcr0 & edx_eax(cpu);
            let rex_w = matches!(m, M::Xsave64 | M::Xsaveopt64);
            let mut img = [0u8; fx::SIZE];
            read_block(cpu, bus, la, &mut img)?;
            let mut saved = img;
            cpu.fpu.fxsave_into(&mut saved, rex_w);
            if rfbm & xcr0::X87 != 0 {
                img[..fx::MXCSR].copy_from_slice(&saved[..fx::MXCSR]);
                img[fx::ST0..fx::XMM0].copy_from_slice(&saved[fx::ST0..fx::XMM0]);
            }
            if rfbm & xcr0::SSE != 0 {
                img[fx::MXCSR..fx::ST0].copy_from_slice(&saved[fx::MXCSR..fx::ST0]);
                img[fx::XMM0..fx::END].copy_from_slice(&saved[fx::XMM0..fx::END]);
            }
            let hdr = la.wrapping_add(XSAVE_HEADER);
            let bv = cpu.read_linear128(bus, hdr, 8)? as u64;
            // XINUSE is reported as 1 for every saved component (allowed: SDM 13.6).
            let bv = (bv & !rfbm) | rfbm;
            let pkru_la = la.wrapping_add(xcr0::PKRU_OFFSET as u64);
            cpu.translate(bus, hdr, crate::mmu::AccessKind::Write, false)?;
            if rfbm & xcr0::PKRU != 0 {
                cpu.translate(bus, pkru_la, crate::mmu::AccessKind::Write, false)?;
            }
            write_block(cpu, bus, la, &img[..fx::END])?;
            if rfbm & xcr0::PKRU != 0 {
                cpu.write_linear(bus, pkru_la, 8, cpu.pkru as u64, false)?;
            }
            cpu.write_linear(bus, hdr, 8, bv, false)?;
        }
        M::Xrstor | M::Xrstor64 => {
            xsave_available(cpu)?;
            let size = xsave_area_size(cpu.fpu.xcr0);
            let la = aligned_la(cpu, i, size, XSAVE_ALIGN, false)?;
            let rfbm = cpu.fpu.xcr0 & edx_eax(cpu);
            let mut img = [0u8; fx::SIZE];
            read_block(cpu, bus, la, &mut img)?;
            let mut hdr = [0u8; XSAVE_HEADER_SIZE as usize];
            read_block(cpu, bus, la.wrapping_add(XSAVE_HEADER), &mut hdr)?;
            let bv = u64::from_le_bytes(hdr[..8].try_into().unwrap());
            let comp = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
            // Standard format only: XCOMP_BV and the reserved header bytes must be 0, and
            // XSTATE_BV may name only enabled components.
            if comp & XCOMP_COMPACTED != 0
                || comp != 0
                || hdr[16..].iter().any(|&b| b != 0)
                || bv & !cpu.fpu.xcr0 != 0
            {
                return Err(Exception::gp0());
            }
            if rfbm & xcr0::SSE != 0 {
                check_mxcsr(FpuState::image_mxcsr(&img))?;
            }
            // PKRU: from the area when XSTATE_BV names it, else its initial value 0.
            let pkru = if rfbm & xcr0::PKRU != 0 {
                Some(if bv & xcr0::PKRU != 0 {
                    let at = la.wrapping_add(xcr0::PKRU_OFFSET as u64);
                    cpu.read_linear128(bus, at, 4)? as u32
                } else {
                    0
                })
            } else {
                None
            };
            if let Some(v) = pkru {
                let (old_pkru, old_pkrs) = (cpu.pkru, cpu.pkrs);
                cpu.pkru = v;
                cpu.pk_changed(old_pkru, old_pkrs);
            }
            let rex_w = m == M::Xrstor64;
            if rfbm & xcr0::X87 != 0 {
                if bv & xcr0::X87 != 0 {
                    cpu.fpu.fxrstor(&img, rex_w, true, false);
                } else {
                    cpu.fpu.finit();
                    cpu.fpu.st = Default::default();
                }
            }
            if rfbm & xcr0::SSE != 0 {
                cpu.fpu.mxcsr = FpuState::image_mxcsr(&img);
                if bv & xcr0::SSE != 0 {
                    let csr = cpu.fpu.mxcsr;
                    cpu.fpu.fxrstor(&img, rex_w, false, true);
                    cpu.fpu.mxcsr = csr;
                } else {
                    cpu.fpu.xmm = [0; 16];
                }
            }
        }
        M::Xgetbv => {
            if cpu.cr4 & cr4::OSXSAVE == 0 {
                return Err(Exception::ud());
            }
            if cpu.gpr[gpr::RCX] as u32 != 0 {
                return Err(Exception::gp0());
            }
            cpu.gpr[gpr::RAX] = cpu.fpu.xcr0 & 0xffff_ffff;
            cpu.gpr[gpr::RDX] = cpu.fpu.xcr0 >> 32;
        }
        M::Xsetbv => {
            if cpu.cr4 & cr4::OSXSAVE == 0 {
                return Err(Exception::ud());
            }
            cpu.require_cpl0()?;
            let v = edx_eax(cpu);
            if cpu.gpr[gpr::RCX] as u32 != 0 || v & xcr0::X87 == 0 || v & !xcr0::SUPPORTED != 0 {
                return Err(Exception::gp0());
            }
            cpu.fpu.xcr0 = v;
        }
        _ => return Err(cpu.unimplemented(i)),
    }
    Ok(())
}

fn edx_eax(cpu: &Cpu) -> u64 {
    (cpu.gpr[gpr::RDX] << 32) | (cpu.gpr[gpr::RAX] & 0xffff_ffff)
}
