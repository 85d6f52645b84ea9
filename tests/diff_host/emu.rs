//! Running one instruction on the emulator's `Cpu`: 64-bit mode at CPL 3 with 4-level
//! paging that maps the code page and the arena at the host's virtual addresses.

use super::layout::{self, phys, *};
use super::{Input, Outcome};
use vmscope::bus::Bus;
use vmscope::cpu::regs::{cr0, cr4, efer, rflags, seg_attr, DescTable, SegReg, Segment};
use vmscope::cpu::{Cpu, CpuStop, Step};
use vmscope::devices::PortBus;
use vmscope::memory::GuestMemory;
use vmscope::mmu::pte;
use vmscope::tlb::{TlbMode, DEFAULT_TLB_ENTRIES};

/// A REP string instruction restarts itself every `REP_CHUNK` iterations; the harness
/// steps until RIP leaves the instruction, at most this many times.
const MAX_STEPS: usize = 64;
/// Page-table entry flags for every level: present, writable, user.
const TABLE_FLAGS: u64 = pte::P | pte::RW | pte::US;

pub struct Emu {
    cpu: Cpu,
    bus: Bus,
}

fn write_u64(bus: &mut Bus, pa: u64, v: u64) {
    assert!(bus.mem.write(vmscope::addr::GuestPhysAddr(pa), 8, v));
}

impl Emu {
    /// `selectors`: the host's ES, CS, SS, DS, FS, GS, so `MOV r, Sreg` reads the same.
    pub fn new(selectors: [u16; 6], code_page: &[u8]) -> Emu {
        let mem = GuestMemory::new(phys::RAM_SIZE).expect("guest RAM");
        let mut bus = Bus::new(mem, PortBus::new());
        // PML4[0] -> PDPT[0] -> PD[va >> 21] -> PT: both regions are below 1 GiB.
        write_u64(&mut bus, phys::PML4, phys::PDPT | TABLE_FLAGS);
        write_u64(&mut bus, phys::PDPT, phys::PD | TABLE_FLAGS);
        let pde = |va: u64| phys::PD + 8 * ((va >> 21) & 511);
        let pte_at = |pt: u64, va: u64| pt + 8 * ((va >> 12) & 511);
        write_u64(&mut bus, pde(CODE_BASE), phys::PT_CODE | TABLE_FLAGS);
        write_u64(&mut bus, pde(ARENA_BASE), phys::PT_ARENA | TABLE_FLAGS);
        write_u64(
            &mut bus,
            pte_at(phys::PT_CODE, CODE_BASE),
            phys::CODE | TABLE_FLAGS,
        );
        for page in 0..(ARENA_SIZE as u64 / 0x1000) {
            write_u64(
                &mut bus,
                pte_at(phys::PT_ARENA, ARENA_BASE + page * 0x1000),
                (phys::ARENA + page * 0x1000) | TABLE_FLAGS,
            );
        }
        assert!(bus
            .mem
            .write_bytes(vmscope::addr::GuestPhysAddr(phys::CODE), code_page));

        let mut cpu = Cpu::new(0, DEFAULT_TLB_ENTRIES, TlbMode::On);
        // CR0.AM as Linux sets it: with RFLAGS.AC a misaligned user access raises #AC.
        cpu.cr0 = cr0::PE | cr0::PG | cr0::WP | cr0::AM | cr0::ET | cr0::NE | cr0::MP;
        cpu.cr4 = cr4::PAE | cr4::OSFXSR | cr4::OSXMMEXCPT;
        cpu.cr3 = phys::PML4;
        cpu.efer = efer::LME | efer::LMA | efer::NXE | efer::SCE;
        let data = |sel: u16| Segment {
            selector: sel,
            base: 0,
            limit: 0xffff_ffff,
            attr: 0xf3 | seg_attr::DB | seg_attr::G,
        };
        let [es, cs, ss, ds, fs, gs] = selectors;
        cpu.seg[SegReg::Es as usize] = data(es);
        cpu.seg[SegReg::Cs as usize] = Segment {
            selector: cs,
            base: 0,
            limit: 0xffff_ffff,
            attr: 0xfb | seg_attr::L | seg_attr::G,
        };
        cpu.seg[SegReg::Ss as usize] = data(ss);
        cpu.seg[SegReg::Ds as usize] = data(ds);
        cpu.seg[SegReg::Fs as usize] = data(fs);
        cpu.seg[SegReg::Gs as usize] = Segment {
            base: GS_BASE,
            ..data(gs)
        };
        cpu.cpl = 3;
        // An empty IDT: any exception escalates to a triple fault, whose report names the
        // first exception. Delivery fails before anything is pushed, so the state after
        // the step is the state at the fault.
        cpu.idtr = DescTable { base: 0, limit: 0 };
        Emu { cpu, bus }
    }

    pub fn run(&mut self, patch: &[u8; PATCH_LEN], input: &Input) -> Outcome {
        let ram = |va: u64| vmscope::addr::GuestPhysAddr(va);
        assert!(self
            .bus
            .mem
            .write_bytes(ram(phys::CODE + INSN_OFF as u64), patch));
        assert!(self.bus.mem.write_bytes(ram(phys::ARENA), &input.arena));
        let cpu = &mut self.cpu;
        cpu.gpr = input.gpr;
        cpu.rflags = input.flags | rflags::FIXED;
        cpu.rip = INSN_ADDR;
        cpu.halted = false;
        cpu.last_unimplemented = None;
        let fx: &[u8; FX_SIZE] = input.fx.as_slice().try_into().expect("FXSAVE image");
        cpu.fpu.fxrstor(fx, true, true, true);
        let mut out = Outcome::default();
        for _ in 0..MAX_STEPS {
            match cpu.step(&mut self.bus) {
                Step::Ok => {}
                Step::Halted => {
                    out.note = Some("emulator halted".into());
                    break;
                }
                Step::Stop(CpuStop::TripleFault { first, .. }) => {
                    out.fault = Some(first.vector);
                    out.fault_addr = first.cr2;
                    break;
                }
                Step::Stop(other) => {
                    out.note = Some(format!("emulator stopped: {other:?}"));
                    break;
                }
            }
            if let Some(u) = &cpu.last_unimplemented {
                out.note = Some(format!("emulator: unimplemented {u}"));
                break;
            }
            if cpu.rip != INSN_ADDR {
                break;
            }
        }
        out.gpr = cpu.gpr;
        out.flags = cpu.rflags;
        out.rip = cpu.rip;
        out.fx = cpu.fpu.fxsave(true).to_vec();
        out.arena = self
            .bus
            .mem
            .slice(ram(phys::ARENA), layout::ARENA_SIZE)
            .expect("arena RAM")
            .to_vec();
        out
    }
}
