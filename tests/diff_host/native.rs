//! Running one instruction on the host CPU.
//!
//! The code page holds a fixed snippet (see `layout.rs`): it saves the host's callee-saved
//! registers, loads RFLAGS and all 16 GPRs from the state block, runs the instruction,
//! stores GPRs and RFLAGS back and returns. A fault inside the code page (SIGFPE for #DE,
//! SIGILL for #UD, ...) is caught by a SA_SIGINFO handler running on an alternate stack: it
//! records the signal and the register state at the fault and resumes at `RECOVER`.

use super::layout::*;
use super::{Input, Outcome};
use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Register};
use std::ptr;
use std::sync::atomic::{compiler_fence, Ordering};

/// `arch_prctl` codes (asm/prctl.h); libc does not export them.
const ARCH_SET_GS: libc::c_int = 0x1001;
const ARCH_GET_GS: libc::c_int = 0x1004;
/// Signals the handler takes over while the harness runs.
const SIGNALS: [libc::c_int; 5] = [
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGTRAP,
];
/// Alternate signal stack: the test's RSP points into the arena (or anywhere), so the
/// kernel must not build the signal frame there.
const ALT_STACK_SIZE: usize = 256 * 1024;
/// The host's callee-saved registers, in `SAVE` slot order (RSP is the last slot).
const CALLEE_SAVED: [Register; 6] = [
    Register::RBX,
    Register::RBP,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];
/// RFLAGS the snippet leaves behind: IF and the fixed bit 1 (DF, AC and TF clear, as the
/// ABI and the rest of the process expect).
const CLEAN_RFLAGS: i32 = 0x202;

/// ucontext `gregs` index of each GPR in encoding order.
const GREG_OF: [libc::c_int; 16] = [
    libc::REG_RAX,
    libc::REG_RCX,
    libc::REG_RDX,
    libc::REG_RBX,
    libc::REG_RSP,
    libc::REG_RBP,
    libc::REG_RSI,
    libc::REG_RDI,
    libc::REG_R8,
    libc::REG_R9,
    libc::REG_R10,
    libc::REG_R11,
    libc::REG_R12,
    libc::REG_R13,
    libc::REG_R14,
    libc::REG_R15,
];

fn gpr(i: usize) -> Register {
    Register::RAX + i as u32
}

fn abs(addr: u64) -> MemoryOperand {
    MemoryOperand::with_displ(addr, 8)
}

/// Appends encoded instructions at consecutive addresses.
struct Asm {
    base: u64,
    bytes: Vec<u8>,
}

impl Asm {
    fn new(base: u64) -> Self {
        Asm {
            base,
            bytes: Vec::new(),
        }
    }
    fn here(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }
    fn emit(&mut self, i: Result<Instruction, iced_x86::IcedError>) {
        let i = i.expect("snippet instruction");
        let mut e = Encoder::new(64);
        e.encode(&i, self.here()).expect("encode snippet");
        self.bytes.extend(e.take_buffer());
    }
}

/// A landing pad: record its own address in `LANDED`, then go to `STORE`.
pub fn landing_pad(at: u64) -> Vec<u8> {
    let mut a = Asm::new(at);
    a.emit(Instruction::with2(
        Code::Mov_rm64_imm32,
        abs(STATE_BASE + LANDED),
        at as i32,
    ));
    a.emit(Instruction::with_branch(
        Code::Jmp_rel32_64,
        CODE_BASE + STORE_OFF as u64,
    ));
    a.bytes
}

/// The code page without the instruction under test (INT3 where it will go).
pub fn code_template() -> Vec<u8> {
    let mut page = vec![0xcc; CODE_SIZE];
    let mut put = |off: usize, bytes: &[u8], limit: usize| {
        assert!(off + bytes.len() <= limit, "snippet section overflows");
        page[off..off + bytes.len()].copy_from_slice(bytes);
    };

    // Prologue: save the host, load the test state, go to the instruction.
    let mut a = Asm::new(CODE_BASE);
    for (k, r) in CALLEE_SAVED.iter().enumerate() {
        a.emit(Instruction::with2(
            Code::Mov_rm64_r64,
            abs(STATE_BASE + SAVE + 8 * k as u64),
            *r,
        ));
    }
    a.emit(Instruction::with2(
        Code::Mov_rm64_r64,
        abs(STATE_BASE + SAVE_RSP),
        Register::RSP,
    ));
    // The host's x87/SSE state is kept aside; the case's is loaded.
    a.emit(Instruction::with1(
        Code::Fxsave64_m512byte,
        abs(STATE_BASE + HOST_FX),
    ));
    a.emit(Instruction::with1(
        Code::Fxrstor64_m512byte,
        abs(STATE_BASE + IN_FX),
    ));
    a.emit(Instruction::with1(
        Code::Push_rm64,
        abs(STATE_BASE + IN_FLAGS),
    ));
    a.emit(Ok(Instruction::with(Code::Popfq)));
    for k in (0..16).filter(|&k| k != 4) {
        a.emit(Instruction::with2(
            Code::Mov_r64_rm64,
            gpr(k),
            abs(STATE_BASE + IN_GPR + 8 * k as u64),
        ));
    }
    a.emit(Instruction::with2(
        Code::Mov_r64_rm64,
        Register::RSP,
        abs(STATE_BASE + IN_GPR + 8 * 4),
    ));
    a.emit(Instruction::with_branch(Code::Jmp_rel32_64, INSN_ADDR));
    put(0, &a.bytes, BACK_PAD_OFF);

    put(BACK_PAD_OFF, &landing_pad(BACK_PAD), INSN_OFF);
    put(FWD_PAD_OFF, &landing_pad(FWD_PAD), STORE_OFF);

    // Store the results, then restore the host.
    let mut a = Asm::new(CODE_BASE + STORE_OFF as u64);
    for k in 0..16 {
        a.emit(Instruction::with2(
            Code::Mov_rm64_r64,
            abs(STATE_BASE + OUT_GPR + 8 * k as u64),
            gpr(k),
        ));
    }
    a.emit(Instruction::with2(
        Code::Mov_rm64_imm32,
        Register::RSP,
        SCRATCH_STACK_TOP as i32,
    ));
    a.emit(Ok(Instruction::with(Code::Pushfq)));
    a.emit(Instruction::with1(Code::Pop_r64, Register::RAX));
    a.emit(Instruction::with2(
        Code::Mov_rm64_r64,
        abs(STATE_BASE + OUT_FLAGS),
        Register::RAX,
    ));
    a.emit(Instruction::with1(
        Code::Fxsave64_m512byte,
        abs(STATE_BASE + OUT_FX),
    ));
    a.emit(Instruction::with1(Code::Pushq_imm32, CLEAN_RFLAGS));
    a.emit(Ok(Instruction::with(Code::Popfq)));
    let exit = a.here();
    a.emit(Instruction::with1(
        Code::Fxrstor64_m512byte,
        abs(STATE_BASE + HOST_FX),
    ));
    a.emit(Instruction::with2(
        Code::Mov_r64_rm64,
        Register::RSP,
        abs(STATE_BASE + SAVE_RSP),
    ));
    for (k, r) in CALLEE_SAVED.iter().enumerate() {
        a.emit(Instruction::with2(
            Code::Mov_r64_rm64,
            *r,
            abs(STATE_BASE + SAVE + 8 * k as u64),
        ));
    }
    a.emit(Ok(Instruction::with(Code::Retnq)));
    put(STORE_OFF, &a.bytes, RECOVER_OFF);

    // Recovery after a signal: clean flags on the scratch stack, then the common exit.
    let mut a = Asm::new(CODE_BASE + RECOVER_OFF as u64);
    a.emit(Instruction::with2(
        Code::Mov_rm64_imm32,
        Register::RSP,
        SCRATCH_STACK_TOP as i32,
    ));
    a.emit(Instruction::with1(Code::Pushq_imm32, CLEAN_RFLAGS));
    a.emit(Ok(Instruction::with(Code::Popfq)));
    a.emit(Instruction::with_branch(Code::Jmp_rel32_64, exit));
    put(RECOVER_OFF, &a.bytes, CODE_SIZE);
    page
}

/// The signal handler: a fault inside the code page is recorded and resumed at `RECOVER`;
/// anything else gets the default action (it is a crash of the harness itself).
extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: called by the kernel with valid siginfo/ucontext pointers; the state block
    // is mapped for the lifetime of the handler (it is only installed while `Native` lives).
    unsafe {
        let uc = &mut *(ctx as *mut libc::ucontext_t);
        let gregs = &mut uc.uc_mcontext.gregs;
        let rip = gregs[libc::REG_RIP as usize] as u64;
        if !(CODE_BASE..CODE_BASE + CODE_SIZE as u64).contains(&rip) {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, ptr::null_mut());
            return;
        }
        let st = STATE_BASE as *mut u8;
        let w = |off: u64, v: u64| ptr::write_volatile(st.add(off as usize) as *mut u64, v);
        w(FAULT_SIG, sig as u64);
        w(FAULT_CODE, (*info).si_code as u64);
        w(FAULT_ADDR, (*info).si_addr() as u64);
        w(FAULT_RIP, rip);
        w(FAULT_FLAGS, gregs[libc::REG_EFL as usize] as u64);
        w(FAULT_TRAPNO, gregs[libc::REG_TRAPNO as usize] as u64);
        // The x87/SSE state at the fault, as the kernel saved it (FXSAVE layout).
        let fp = uc.uc_mcontext.fpregs as *const u8;
        if !fp.is_null() {
            ptr::copy_nonoverlapping(fp, st.add(OUT_FX as usize), FX_SIZE);
        }
        for (k, g) in GREG_OF.iter().enumerate() {
            w(FAULT_GPR + 8 * k as u64, gregs[*g as usize] as u64);
        }
        gregs[libc::REG_RIP as usize] = (CODE_BASE + RECOVER_OFF as u64) as i64;
    }
}

/// The host side: fixed mappings, signal handlers, alternate stack and GS base. It holds
/// process-wide resources, so only one may exist at a time (see `mod.rs`); it must be used
/// on the thread that created it (raw pointers keep it `!Send`).
pub struct Native {
    code: *mut u8,
    arena: *mut u8,
    state: *mut u8,
    old_actions: Vec<(libc::c_int, libc::sigaction)>,
    old_altstack: libc::stack_t,
    _altstack: Vec<u8>,
    old_gs: u64,
    /// The host's segment selectors (ES, CS, SS, DS, FS, GS) for the emulator to copy.
    pub selectors: [u16; 6],
}

fn map_fixed(addr: u64, len: usize, prot: libc::c_int) -> Result<*mut u8, String> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED || p as u64 != addr {
        if p != libc::MAP_FAILED {
            // An old kernel that treats the flag as a hint.
            unsafe { libc::munmap(p, len) };
        }
        return Err(format!(
            "cannot map {len:#x} bytes at {addr:#x}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(p as *mut u8)
}

fn read_selectors() -> [u16; 6] {
    let (mut es, mut cs, mut ss, mut ds, mut fs, mut gs): (u16, u16, u16, u16, u16, u16);
    // SAFETY: reading segment selectors has no side effects.
    unsafe {
        std::arch::asm!(
            "mov {0:x}, es", "mov {1:x}, cs", "mov {2:x}, ss",
            "mov {3:x}, ds", "mov {4:x}, fs", "mov {5:x}, gs",
            out(reg) es, out(reg) cs, out(reg) ss, out(reg) ds, out(reg) fs, out(reg) gs,
            options(nomem, nostack, preserves_flags)
        );
    }
    [es, cs, ss, ds, fs, gs]
}

impl Native {
    pub fn new() -> Result<Native, String> {
        let code = map_fixed(
            CODE_BASE,
            CODE_SIZE,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        )?;
        let arena = map_fixed(ARENA_BASE, ARENA_SIZE, libc::PROT_READ | libc::PROT_WRITE)?;
        let state = map_fixed(STATE_BASE, STATE_SIZE, libc::PROT_READ | libc::PROT_WRITE)?;
        let template = code_template();
        // SAFETY: `code` maps CODE_SIZE writable bytes.
        unsafe { ptr::copy_nonoverlapping(template.as_ptr(), code, CODE_SIZE) };

        let mut altstack = vec![0u8; ALT_STACK_SIZE];
        // SAFETY: plain libc calls with valid pointers; the alternate stack lives in `self`.
        unsafe {
            let mut old_altstack: libc::stack_t = std::mem::zeroed();
            let ss = libc::stack_t {
                ss_sp: altstack.as_mut_ptr() as *mut libc::c_void,
                ss_flags: 0,
                ss_size: ALT_STACK_SIZE,
            };
            if libc::sigaltstack(&ss, &mut old_altstack) != 0 {
                return Err("sigaltstack failed".into());
            }
            let mut old_actions = Vec::new();
            for sig in SIGNALS {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut sa.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &sa, &mut old) != 0 {
                    return Err(format!("sigaction({sig}) failed"));
                }
                old_actions.push((sig, old));
            }
            let mut old_gs = 0u64;
            libc::syscall(libc::SYS_arch_prctl, ARCH_GET_GS, &mut old_gs as *mut u64);
            if libc::syscall(libc::SYS_arch_prctl, ARCH_SET_GS, GS_BASE) != 0 {
                return Err("arch_prctl(ARCH_SET_GS) failed".into());
            }
            Ok(Native {
                code,
                arena,
                state,
                old_actions,
                old_altstack,
                _altstack: altstack,
                old_gs,
                selectors: read_selectors(),
            })
        }
    }

    fn st_write(&self, off: u64, v: u64) {
        // SAFETY: `off` is inside the mapped state block.
        unsafe { ptr::write_volatile(self.state.add(off as usize) as *mut u64, v) }
    }
    fn st_read(&self, off: u64) -> u64 {
        // SAFETY: as above.
        unsafe { ptr::read_volatile(self.state.add(off as usize) as *const u64) }
    }

    /// Run the instruction whose bytes (plus fall-through pad) are `patch` on `input`.
    pub fn run(&mut self, patch: &[u8; PATCH_LEN], input: &Input) -> Outcome {
        // SAFETY: the code page and arena are our own fixed mappings; the snippet only
        // touches them, the state block and (for the test) the arena, and returns to us
        // with every callee-saved register restored.
        unsafe {
            ptr::copy_nonoverlapping(patch.as_ptr(), self.code.add(INSN_OFF), PATCH_LEN);
            ptr::copy_nonoverlapping(input.arena.as_ptr(), self.arena, ARENA_SIZE);
        }
        for k in 0..16 {
            self.st_write(IN_GPR + 8 * k, input.gpr[k as usize]);
        }
        self.st_write(IN_FLAGS, input.flags);
        // SAFETY: the state block holds FX_SIZE bytes at IN_FX.
        unsafe {
            ptr::copy_nonoverlapping(input.fx.as_ptr(), self.state.add(IN_FX as usize), FX_SIZE)
        };
        self.st_write(LANDED, 0);
        self.st_write(FAULT_SIG, 0);
        compiler_fence(Ordering::SeqCst);
        // SAFETY: see above; the snippet follows the C calling convention.
        unsafe {
            let f: extern "C" fn() = std::mem::transmute(self.code);
            f();
        }
        compiler_fence(Ordering::SeqCst);
        let mut out = Outcome {
            arena: vec![0; ARENA_SIZE],
            ..Outcome::default()
        };
        // SAFETY: the arena is mapped and ARENA_SIZE long.
        unsafe { ptr::copy_nonoverlapping(self.arena, out.arena.as_mut_ptr(), ARENA_SIZE) };
        out.fx = vec![0; FX_SIZE];
        // SAFETY: as above.
        unsafe {
            ptr::copy_nonoverlapping(
                self.state.add(OUT_FX as usize),
                out.fx.as_mut_ptr(),
                FX_SIZE,
            )
        };
        let sig = self.st_read(FAULT_SIG) as libc::c_int;
        if sig != 0 {
            for k in 0..16 {
                out.gpr[k] = self.st_read(FAULT_GPR + 8 * k as u64);
            }
            out.flags = self.st_read(FAULT_FLAGS);
            out.rip = self.st_read(FAULT_RIP);
            let code = self.st_read(FAULT_CODE) as libc::c_int;
            let addr = self.st_read(FAULT_ADDR);
            let trapno = self.st_read(FAULT_TRAPNO);
            match fault_vector(sig, code, trapno) {
                Ok(v) => {
                    out.fault = Some(v);
                    if v == PF_VECTOR {
                        out.fault_addr = Some(addr);
                    }
                }
                Err(what) => {
                    out.fault = Some(0xff);
                    out.harness_error = Some(format!(
                        "host {what} at rip {:#x} (address {addr:#x})",
                        out.rip
                    ));
                }
            }
        } else {
            for k in 0..16 {
                out.gpr[k] = self.st_read(OUT_GPR + 8 * k as u64);
            }
            out.flags = self.st_read(OUT_FLAGS);
            out.rip = self.st_read(LANDED);
        }
        out
    }
}

/// #PF.
const PF_VECTOR: u8 = 14;

/// The exception vector behind a signal, as Linux reports them (arch/x86/kernel/traps.c).
/// Unknown signals are harness errors.
fn fault_vector(sig: libc::c_int, code: libc::c_int, trapno: u64) -> Result<u8, String> {
    match sig {
        // #DE, #MF and #XM all arrive as SIGFPE; the trap number tells them apart.
        libc::SIGFPE => Ok(trapno as u8),
        libc::SIGILL => Ok(6),
        libc::SIGSEGV if code == libc::SI_KERNEL => Ok(13),
        libc::SIGSEGV => Ok(PF_VECTOR),
        libc::SIGBUS => Ok(17),
        libc::SIGTRAP => Ok(1),
        s => Err(format!("signal {s}")),
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        // SAFETY: restores what `new` changed, then unmaps our own mappings.
        unsafe {
            for (sig, old) in &self.old_actions {
                libc::sigaction(*sig, old, ptr::null_mut());
            }
            libc::sigaltstack(&self.old_altstack, ptr::null_mut());
            libc::syscall(libc::SYS_arch_prctl, ARCH_SET_GS, self.old_gs);
            libc::munmap(self.code as *mut libc::c_void, CODE_SIZE);
            libc::munmap(self.arena as *mut libc::c_void, ARENA_SIZE);
            libc::munmap(self.state as *mut libc::c_void, STATE_SIZE);
        }
    }
}
