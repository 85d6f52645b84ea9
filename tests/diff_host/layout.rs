//! The fixed virtual layout shared by the host run and the emulator run. Both sides see the
//! instruction at the same address and the same data at the same addresses, so pointers
//! (return addresses pushed by CALL, LEA results, branch targets) compare bit for bit.
//!
//! ```text
//! CODE_BASE   prologue: save host registers, load RFLAGS and all 16 GPRs, jmp INSN_ADDR
//! BACK_PAD    landing pad for backward branches
//! INSN_ADDR   the instruction under test, then FALL pad (at INSN_ADDR + len)
//! FWD_PAD     landing pad for forward branches
//! STORE       store the 16 GPRs and RFLAGS, restore the host, return
//! RECOVER     where the signal handler sends a faulting instruction
//! ARENA_BASE  the data the instruction may touch (compared byte for byte afterwards)
//! STATE_BASE  the host-only block with inputs, outputs and saved host registers
//! ```
//!
//! Every landing pad stores its own address in `LANDED` and jumps to `STORE`, so the host
//! run reports where control went; the emulator's RIP after the step must equal it.

/// The code page (read/write/execute on the host).
pub const CODE_BASE: u64 = 0x1000_0000;
pub const CODE_SIZE: usize = 0x1000;
/// Offsets of the code sections inside the code page.
pub const BACK_PAD_OFF: usize = 0x1e0;
pub const INSN_OFF: usize = 0x200;
/// Longest x86 instruction plus one landing pad fits before the forward pad.
pub const FWD_PAD_OFF: usize = 0x220;
pub const STORE_OFF: usize = 0x300;
pub const RECOVER_OFF: usize = 0x400;
pub const INSN_ADDR: u64 = CODE_BASE + INSN_OFF as u64;
pub const BACK_PAD: u64 = CODE_BASE + BACK_PAD_OFF as u64;
pub const FWD_PAD: u64 = CODE_BASE + FWD_PAD_OFF as u64;
/// Bytes of the code page that change from case to case: the instruction, its fall-through
/// pad and the padding up to the forward pad.
pub const PATCH_LEN: usize = FWD_PAD_OFF - INSN_OFF;

/// The data arena: two pages, so page-crossing accesses are exercised. The pages around it
/// are unmapped on the host and in the emulator, so a stray access faults instead of
/// corrupting anything.
pub const ARENA_BASE: u64 = 0x2000_0000;
pub const ARENA_SIZE: usize = 0x2000;
pub const ARENA_END: u64 = ARENA_BASE + ARENA_SIZE as u64;
/// The page boundary inside the arena.
pub const ARENA_MID: u64 = ARENA_BASE + 0x1000;

/// GS base on both sides. It equals the arena base, so GS-relative offsets are small and
/// an emulator that ignored the GS base would address an unmapped page and fault.
pub const GS_BASE: u64 = ARENA_BASE;

/// The host-only state block.
pub const STATE_BASE: u64 = 0x3000_0000;
pub const STATE_SIZE: usize = 0x1000;
/// Offsets in the state block. GPRs are in encoding order (RAX, RCX, RDX, RBX, RSP, RBP,
/// RSI, RDI, R8..R15), as in `Cpu::gpr`.
pub const IN_GPR: u64 = 0x000;
pub const IN_FLAGS: u64 = 0x080;
pub const OUT_GPR: u64 = 0x100;
pub const OUT_FLAGS: u64 = 0x180;
pub const LANDED: u64 = 0x188;
/// Saved host RBX, RBP, R12..R15 and RSP.
pub const SAVE: u64 = 0x200;
pub const SAVE_RSP: u64 = SAVE + 6 * 8;
/// Written by the signal handler.
pub const FAULT_SIG: u64 = 0x280;
pub const FAULT_CODE: u64 = 0x288;
pub const FAULT_ADDR: u64 = 0x290;
pub const FAULT_RIP: u64 = 0x298;
pub const FAULT_FLAGS: u64 = 0x2a0;
pub const FAULT_GPR: u64 = 0x300;
/// The trap number of the fault (ucontext `REG_TRAPNO`): tells #XM and #MF from #DE.
pub const FAULT_TRAPNO: u64 = 0x2a8;
/// FXSAVE images (16-byte aligned, 512 bytes each): the case's x87/SSE input, the state
/// after the instruction, and the host's own state saved around the test.
pub const IN_FX: u64 = 0x400;
pub const OUT_FX: u64 = 0x600;
pub const HOST_FX: u64 = 0x800;
pub const FX_SIZE: usize = 512;
/// A small stack for PUSHFQ after the test (the test may leave RSP anywhere).
pub const SCRATCH_STACK_TOP: u64 = STATE_BASE + 0xfc0;

/// Emulator guest-physical layout: page tables, then the pages behind the virtual ones.
pub mod phys {
    pub const RAM_SIZE: u64 = 4 << 20;
    pub const PML4: u64 = 0x1000;
    pub const PDPT: u64 = 0x2000;
    pub const PD: u64 = 0x3000;
    pub const PT_CODE: u64 = 0x4000;
    pub const PT_ARENA: u64 = 0x5000;
    /// Deliberately not identity-mapped, so a virtual/physical mix-up cannot go unseen.
    pub const CODE: u64 = 0x10_0000;
    pub const ARENA: u64 = 0x20_0000;
}

/// Range of RSP for instructions that use the stack: the middle of the arena, so pushes
/// (ENTER with nesting level 31 pushes 32 slots) and pops stay inside it.
pub const STACK_LO: u64 = ARENA_MID - 0x400;
pub const STACK_HI: u64 = ARENA_MID + 0x400;
