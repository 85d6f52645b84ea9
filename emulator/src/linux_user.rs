//! User-mode emulation of static Linux x86-64 executables, in the manner of
//! `qemu-x86_64`: the program runs at CPL 3 on the emulated CPU, with real paging, and
//! each SYSCALL enters a tiny supervisor stub (`hlt; sysretq`). The host serves the
//! system call at the `hlt`, and `sysretq` then returns to the program.
//!
//! This mode exists so the CPU can be tested on compiler-generated code against the host
//! Linux oracle (the same binary runs natively) without the guest kernel. The guest kernel's
//! own process support is the product path. Only the calls the bundled runtime makes are
//! served. Every other call returns -ENOSYS.

use crate::addr::{GuestPhysAddr, GuestVirtAddr};
use crate::bus::Bus;
use crate::cpu::regs::{cr0, cr4, efer, gpr, seg_attr, SegReg, Segment};
use crate::cpu::{Cpu, CpuStop, Step};
use crate::devices::PortBus;
use crate::memory::GuestMemory;
use crate::mmu::{pte, Access, AccessKind, PagingMode};
use crate::tlb::{FlushCause, TlbMode};
use goblin::elf::{program_header::PT_LOAD, Elf};

const RAM: u64 = 256 << 20;
const PAGE: u64 = 4096;
/// Supervisor page holding the GDT, the TSS, the IDT stubs and the SYSCALL stub.
const KERNEL_PAGE: u64 = 0xffff_8000_0000_0000;
const SYSCALL_STUB: u64 = KERNEL_PAGE;
/// `hlt; sysretq`.
const SYSCALL_STUB_CODE: [u8; 4] = [0xf4, 0x48, 0x0f, 0x07];
/// One `hlt` per vector: the halted RIP tells which exception arrived.
const EXC_STUBS: u64 = KERNEL_PAGE + 0x100;
const GDT: u64 = KERNEL_PAGE + 0x800;
const TSS: u64 = KERNEL_PAGE + 0x900;
const IDT: u64 = KERNEL_PAGE + 0x1000;
const KERNEL_STACK_TOP: u64 = KERNEL_PAGE + 0x4000;
const KERNEL_PAGES: u64 = 4;
const KERNEL_CS: u16 = 0x08;
const USER_DS: u16 = 0x1b;
const USER_CS: u16 = 0x23;
/// STAR: SYSCALL CS = 0x08 (SS 0x10); SYSRET CS = 0x10 + 16 | 3, SS = 0x10 + 8 | 3.
const STAR_VALUE: u64 = (0x10 << 48) | ((KERNEL_CS as u64) << 32);
/// SFMASK as Linux sets it: TF, DF, IF, IOPL, AC, NT cleared on SYSCALL.
const FMASK_VALUE: u64 = 0x47700;
const USER_STACK_TOP: u64 = 0x7fff_ffff_f000;
const USER_STACK_PAGES: u64 = 64;
const MMAP_BASE: u64 = 0x7f00_0000_0000;
/// How far the program break may grow (larger requests fail, as RLIMIT_DATA would).
const BRK_LIMIT: u64 = 1 << 30;
const ENOSYS: i64 = 38;
const EINVAL: i64 = 22;
const ENOMEM: i64 = 12;
const EBADF: i64 = 9;
const EFAULT: i64 = 14;

/// How the program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserExit {
    /// exit/exit_group with this status (low 8 bits, as a parent sees it).
    Exited(i32),
    /// An exception the program did not survive (vector, RIP, CR2).
    Fault { vector: u8, rip: u64, cr2: u64 },
    /// The emulator stopped: unimplemented instruction, instruction limit, triple fault.
    Stopped(String),
}

#[derive(Debug, Clone)]
pub struct UserRun {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: UserExit,
    pub instructions: u64,
    /// System calls that were answered with -ENOSYS.
    pub unsupported_syscalls: Vec<u64>,
}

struct Process {
    cpu: Cpu,
    bus: Bus,
    next_frame: u64,
    pml4: u64,
    brk_start: u64,
    brk: u64,
    mmap_next: u64,
}

impl Process {
    fn alloc_frame(&mut self) -> Result<u64, String> {
        let f = self.next_frame;
        if f + PAGE > RAM {
            return Err("out of guest memory".into());
        }
        self.next_frame += PAGE;
        self.bus
            .mem
            .write_bytes(GuestPhysAddr(f), &[0; PAGE as usize]);
        Ok(f)
    }

    /// Map `va` (page) to a fresh zeroed frame (or keep the existing one), adding `flags`.
    fn map(&mut self, va: u64, flags: u64) -> Result<u64, String> {
        let mut table = self.pml4;
        for level in (1..4).rev() {
            let idx = (va >> (12 + 9 * level)) & 0x1ff;
            let e_addr = GuestPhysAddr(table + idx * 8);
            let e = self.bus.mem.read(e_addr, 8).unwrap_or(0);
            table = if e & pte::P != 0 {
                e & crate::mmu::ADDR_MASK
            } else {
                let t = self.alloc_frame()?;
                let user = if va < KERNEL_PAGE { pte::US } else { 0 };
                self.bus.mem.write(e_addr, 8, t | pte::P | pte::RW | user);
                t
            };
        }
        let e_addr = GuestPhysAddr(table + ((va >> 12) & 0x1ff) * 8);
        let e = self.bus.mem.read(e_addr, 8).unwrap_or(0);
        if e & pte::P != 0 {
            // Shared page between two segments: union of the rights.
            let mut n = e | (flags & (pte::RW | pte::US));
            if flags & pte::NX == 0 {
                n &= !pte::NX;
            }
            self.bus.mem.write(e_addr, 8, n);
            return Ok(e & crate::mmu::ADDR_MASK);
        }
        let f = self.alloc_frame()?;
        self.bus.mem.write(e_addr, 8, f | pte::P | flags);
        Ok(f)
    }

    fn unmap(&mut self, va: u64) {
        if let Some(e_addr) = self.leaf_entry(va) {
            self.bus.mem.write(e_addr, 8, 0);
        }
    }

    fn leaf_entry(&self, va: u64) -> Option<GuestPhysAddr> {
        let mut table = self.pml4;
        for level in (1..4).rev() {
            let e = self.bus.mem.read(
                GuestPhysAddr(table + ((va >> (12 + 9 * level)) & 0x1ff) * 8),
                8,
            )?;
            if e & pte::P == 0 {
                return None;
            }
            table = e & crate::mmu::ADDR_MASK;
        }
        Some(GuestPhysAddr(table + ((va >> 12) & 0x1ff) * 8))
    }

    /// Copy into user memory, as the kernel would (no rights check: setup only).
    fn poke(&mut self, va: u64, data: &[u8]) -> Result<(), String> {
        for (k, b) in data.iter().enumerate() {
            let a = va + k as u64;
            let pa = self
                .cpu
                .debug_translate(&mut self.bus, a)
                .ok_or_else(|| format!("poke {a:#x}: unmapped"))?;
            self.bus.mem.write(pa, 1, *b as u64);
        }
        Ok(())
    }

    /// Read user memory for a system call, with the user's rights (EFAULT on failure).
    fn user_read(&mut self, va: u64, len: u64) -> Result<Vec<u8>, i64> {
        let mode = PagingMode {
            smap: false,
            ..self.cpu.paging_mode()
        };
        let mut out = Vec::with_capacity(len as usize);
        for k in 0..len {
            let a = va.wrapping_add(k);
            let t = crate::mmu::walk(
                &mut self.bus.mem,
                &mode,
                GuestVirtAddr(a),
                Access::new(AccessKind::Read, true),
                false,
            )
            .map_err(|_| EFAULT)?;
            out.push(
                self.bus
                    .mem
                    .read(t.phys(GuestVirtAddr(a)), 1)
                    .ok_or(EFAULT)? as u8,
            );
        }
        Ok(out)
    }

    fn flush_tlb(&mut self) {
        self.cpu.tlb.flush_all(FlushCause::Other);
    }
}

/// Run a static x86-64 Linux executable with `argv` and `envp`, for at most `max_insns`.
pub fn run_static_elf(
    image: &[u8],
    argv: &[&str],
    envp: &[&str],
    max_insns: u64,
) -> Result<UserRun, String> {
    let elf = Elf::parse(image).map_err(|e| format!("not an ELF executable: {e}"))?;
    if !elf.is_64
        || elf.header.e_machine != goblin::elf::header::EM_X86_64
        || elf.interpreter.is_some()
    {
        return Err("only static x86-64 executables are supported".into());
    }
    let mem = GuestMemory::new(RAM).map_err(|e| e.to_string())?;
    let mut p = Process {
        cpu: Cpu::new(0, crate::tlb::DEFAULT_TLB_ENTRIES, TlbMode::On),
        bus: Bus::new(mem, PortBus::new()),
        next_frame: 0x10_0000,
        pml4: 0,
        brk_start: 0,
        brk: 0,
        mmap_next: MMAP_BASE,
    };
    p.pml4 = p.alloc_frame()?;

    // The supervisor page: stubs, GDT, TSS, IDT, kernel stack.
    for k in 0..KERNEL_PAGES {
        p.map(KERNEL_PAGE + k * PAGE, pte::RW)?;
    }
    setup_cpu(&mut p)?;
    p.poke(SYSCALL_STUB, &SYSCALL_STUB_CODE)?;
    p.poke(EXC_STUBS, &[0xf4; 256])?;
    let gdt: [u64; 5] = [
        0,
        0x00af_9b00_0000_ffff,
        0x00cf_9300_0000_ffff,
        0x00cf_f300_0000_ffff,
        0x00af_fb00_0000_ffff,
    ];
    for (k, d) in gdt.iter().enumerate() {
        p.poke(GDT + 8 * k as u64, &d.to_le_bytes())?;
    }
    p.poke(TSS + 4, &KERNEL_STACK_TOP.to_le_bytes())?;
    for v in 0..256u64 {
        let h = EXC_STUBS + v;
        let lo =
            (h & 0xffff) | ((KERNEL_CS as u64) << 16) | (0x8e << 40) | (((h >> 16) & 0xffff) << 48);
        p.poke(IDT + 16 * v, &lo.to_le_bytes())?;
        p.poke(IDT + 16 * v + 8, &(h >> 32).to_le_bytes())?;
    }

    // The program's segments.
    let mut end = 0;
    for ph in elf.program_headers.iter().filter(|ph| ph.p_type == PT_LOAD) {
        let (start, stop) = (ph.p_vaddr, ph.p_vaddr + ph.p_memsz);
        let mut flags = pte::US;
        if ph.p_flags & goblin::elf::program_header::PF_W != 0 {
            flags |= pte::RW;
        }
        if ph.p_flags & goblin::elf::program_header::PF_X == 0 {
            flags |= pte::NX;
        }
        let mut va = start & !(PAGE - 1);
        while va < stop {
            p.map(va, flags)?;
            va += PAGE;
        }
        let off = ph.p_offset as usize;
        let data = image
            .get(off..off + ph.p_filesz as usize)
            .ok_or("segment outside the file")?;
        p.poke(start, data)?;
        end = end.max(stop);
    }
    p.brk_start = end.div_ceil(PAGE) * PAGE;
    p.brk = p.brk_start;

    // The initial stack (System V ABI, Figure 3.9).
    for k in 1..=USER_STACK_PAGES {
        p.map(USER_STACK_TOP - k * PAGE, pte::US | pte::RW | pte::NX)?;
    }
    let mut sp = USER_STACK_TOP;
    let mut push_bytes = |p: &mut Process, b: &[u8]| -> Result<u64, String> {
        sp -= b.len() as u64;
        p.poke(sp, b)?;
        Ok(sp)
    };
    let random = push_bytes(&mut p, b"vmscope-random16")?;
    let mut arg_ptrs = Vec::new();
    for a in argv {
        let mut s = a.as_bytes().to_vec();
        s.push(0);
        arg_ptrs.push(push_bytes(&mut p, &s)?);
    }
    let mut env_ptrs = Vec::new();
    for e in envp {
        let mut s = e.as_bytes().to_vec();
        s.push(0);
        env_ptrs.push(push_bytes(&mut p, &s)?);
    }
    let phdr = elf
        .program_headers
        .iter()
        .find(|ph| ph.p_type == PT_LOAD && ph.p_offset == 0)
        .map_or(0, |ph| ph.p_vaddr + elf.header.e_phoff);
    let auxv: [(u64, u64); 8] = [
        (3, phdr),
        (4, elf.header.e_phentsize as u64),
        (5, elf.header.e_phnum as u64),
        (6, PAGE),
        (9, elf.entry),
        (25, random),
        (23, 0),
        (0, 0),
    ];
    let mut words: Vec<u64> = vec![argv.len() as u64];
    words.extend(&arg_ptrs);
    words.push(0);
    words.extend(&env_ptrs);
    words.push(0);
    for (k, v) in auxv {
        words.push(k);
        words.push(v);
    }
    sp = (sp - words.len() as u64 * 8) & !0xf;
    for (k, w) in words.iter().enumerate() {
        p.poke(sp + 8 * k as u64, &w.to_le_bytes())?;
    }

    // Enter user mode.
    p.cpu.gpr = [0; 16];
    p.cpu.gpr[gpr::RSP] = sp;
    p.cpu.rip = elf.entry;
    p.cpu.seg[SegReg::Cs as usize] = Segment {
        selector: USER_CS,
        base: 0,
        limit: 0xffff_ffff,
        attr: 0xfb | seg_attr::L | seg_attr::G,
    };
    let udata = Segment {
        selector: USER_DS,
        base: 0,
        limit: 0xffff_ffff,
        attr: 0xf3 | seg_attr::DB | seg_attr::G,
    };
    for s in [SegReg::Ss, SegReg::Ds, SegReg::Es] {
        p.cpu.seg[s as usize] = udata;
    }
    for s in [SegReg::Fs, SegReg::Gs] {
        p.cpu.seg[s as usize] = Segment {
            selector: 0,
            base: 0,
            limit: 0,
            attr: 0,
        };
    }
    p.cpu.cpl = 3;
    p.cpu.rflags = 0x202;
    p.flush_tlb();

    let mut run = UserRun {
        stdout: Vec::new(),
        stderr: Vec::new(),
        exit: UserExit::Exited(0),
        instructions: 0,
        unsupported_syscalls: Vec::new(),
    };
    loop {
        if p.cpu.icount >= max_insns {
            run.exit = UserExit::Stopped(format!(
                "instruction limit {max_insns} reached at rip={:#x}",
                p.cpu.rip
            ));
            break;
        }
        match p.cpu.step(&mut p.bus) {
            Step::Ok => {}
            Step::Halted => {
                let at = p.cpu.rip.wrapping_sub(1);
                if at == SYSCALL_STUB {
                    if let Some(status) = syscall(&mut p, &mut run) {
                        run.exit = UserExit::Exited(status & 0xff);
                        break;
                    }
                    p.cpu.halted = false;
                } else if (EXC_STUBS..EXC_STUBS + 256).contains(&at) {
                    let vector = (at - EXC_STUBS) as u8;
                    let has_code = matches!(vector, 8 | 10..=14 | 17);
                    let frame = p.cpu.gpr[gpr::RSP] + if has_code { 8 } else { 0 };
                    let rip = p
                        .cpu
                        .debug_translate(&mut p.bus, frame)
                        .and_then(|pa| p.bus.mem.read(pa, 8))
                        .unwrap_or(0);
                    run.exit = UserExit::Fault {
                        vector,
                        rip,
                        cr2: p.cpu.cr2,
                    };
                    break;
                } else {
                    run.exit = UserExit::Stopped(format!("halted at {at:#x}"));
                    break;
                }
            }
            Step::Stop(CpuStop::TripleFault { .. }) => {
                run.exit = UserExit::Stopped("triple fault".into());
                break;
            }
            Step::Stop(s) => {
                run.exit = UserExit::Stopped(format!("{s:?}"));
                break;
            }
        }
        if let Some(text) = p.cpu.last_unimplemented.take() {
            run.exit = UserExit::Stopped(format!(
                "unimplemented instruction {text} at rip={:#x}",
                p.cpu.insn_rip
            ));
            break;
        }
    }
    run.instructions = p.cpu.icount;
    Ok(run)
}

fn setup_cpu(p: &mut Process) -> Result<(), String> {
    let c = &mut p.cpu;
    c.cr0 = cr0::PE | cr0::PG | cr0::WP | cr0::ET;
    c.cr4 = cr4::PAE;
    c.cr3 = p.pml4;
    c.efer = efer::LME | efer::LMA | efer::NXE | efer::SCE;
    c.msr.star = STAR_VALUE;
    c.msr.lstar = SYSCALL_STUB;
    c.msr.fmask = FMASK_VALUE;
    c.gdtr.base = GDT;
    c.gdtr.limit = 5 * 8 - 1;
    c.idtr.base = IDT;
    c.idtr.limit = 256 * 16 - 1;
    c.tr = Segment {
        selector: 0x28,
        base: TSS,
        limit: 0x67,
        attr: 0x8b,
    };
    Ok(())
}

/// Serve the system call in RAX. `Some(status)` ends the program.
fn syscall(p: &mut Process, run: &mut UserRun) -> Option<i32> {
    let g = p.cpu.gpr;
    let (nr, a0, a1, a2) = (g[gpr::RAX], g[gpr::RDI], g[gpr::RSI], g[gpr::RDX]);
    let ret: i64 = match nr {
        // write
        1 => match a0 {
            1 | 2 => match p.user_read(a1, a2) {
                Ok(b) => {
                    if a0 == 1 {
                        &mut run.stdout
                    } else {
                        &mut run.stderr
                    }
                    .extend_from_slice(&b);
                    a2 as i64
                }
                Err(e) => -e,
            },
            _ => -EBADF,
        },
        // mmap(addr, len, prot, flags, fd, off): anonymous private mappings only.
        9 => {
            const MAP_ANONYMOUS: u64 = 0x20;
            let flags = g[gpr::R10];
            let len = a1.div_ceil(PAGE) * PAGE;
            if flags & MAP_ANONYMOUS == 0 || len == 0 {
                -EINVAL
            } else {
                let base = p.mmap_next;
                let mut ok = true;
                for k in 0..len / PAGE {
                    ok &= p.map(base + k * PAGE, pte::US | pte::RW | pte::NX).is_ok();
                }
                p.mmap_next += len + PAGE;
                if ok {
                    base as i64
                } else {
                    -ENOMEM
                }
            }
        }
        // munmap
        11 => {
            for k in 0..a1.div_ceil(PAGE) {
                p.unmap((a0 & !(PAGE - 1)) + k * PAGE);
            }
            p.flush_tlb();
            0
        }
        // brk
        12 => {
            let new = a0;
            if new >= p.brk_start && new <= p.brk_start + BRK_LIMIT {
                let (old_end, new_end) = (p.brk.div_ceil(PAGE) * PAGE, new.div_ceil(PAGE) * PAGE);
                let mut ok = true;
                let mut va = old_end;
                while va < new_end {
                    ok &= p.map(va, pte::US | pte::RW | pte::NX).is_ok();
                    va += PAGE;
                }
                let mut va = new_end;
                while va < old_end {
                    p.unmap(va);
                    va += PAGE;
                }
                p.flush_tlb();
                if ok {
                    p.brk = new;
                }
            }
            p.brk as i64
        }
        // rt_sigaction, rt_sigprocmask, sigaltstack: accepted, no signals are delivered.
        13 | 14 | 131 => 0,
        // getpid, gettid
        39 | 186 => 1,
        // exit, exit_group
        60 | 231 => return Some(a0 as i32),
        // arch_prctl(ARCH_SET_FS)
        158 if a0 == 0x1002 => {
            p.cpu.seg[SegReg::Fs as usize].base = a1;
            0
        }
        // set_tid_address
        218 => 1,
        _ => {
            run.unsupported_syscalls.push(nr);
            -ENOSYS
        }
    };
    p.cpu.gpr[gpr::RAX] = ret as u64;
    None
}
