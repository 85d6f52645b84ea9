//! The kernel's 64-bit GDT and TSS (replacing the boot GDT).
//!
//! Selector layout follows what SYSCALL/SYSRET require (Intel SDM Vol. 2, SYSCALL/SYSRET):
//! with STAR[47:32] = [`KERNEL_CS`], SYSCALL loads CS = KERNEL_CS and SS = KERNEL_CS + 8;
//! with STAR[63:48] = [`KERNEL_DS`], SYSRET to 64-bit mode loads SS = KERNEL_DS + 8 and
//! CS = KERNEL_DS + 16 (both with RPL 3). Hence: kernel code, kernel data, user data,
//! user code, then the TSS (16 bytes in long mode).
//!
//! The TSS supplies RSP0 (the kernel stack for traps from user mode) and the interrupt
//! stack table: #DF, NMI and #MC run on their own known-good stacks (IST1..IST3), so even a
//! kernel stack overflow is reported rather than becoming a triple fault.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::mem::size_of;

/// Kernel code segment (64-bit, DPL 0).
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data/stack segment (DPL 0).
pub const KERNEL_DS: u16 = 0x10;
/// User data/stack segment (DPL 3, RPL 3).
pub const USER_DS: u16 = 0x18 | 3;
/// User code segment (64-bit, DPL 3, RPL 3).
pub const USER_CS: u16 = 0x20 | 3;
/// Task-state segment.
pub const TSS_SEL: u16 = 0x28;

/// IST slots (1-based, as in the IDT gate's IST field).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;
/// #DB gets its own stack too, as in Linux (a debug trap can hit anywhere, even on entry).
pub const IST_DEBUG: u8 = 4;
const IST_STACKS: usize = 4;
/// Size of each IST stack and of the RSP0 stack.
const TRAP_STACK_SIZE: usize = 16 * 1024;

/// Bytes of kernel stacks: the boot kernel stack, RSP0 and the IST stacks (`KernelStack` in
/// /proc/meminfo).
pub fn kernel_stack_bytes() -> u64 {
    (crate::mm::layout::KERNEL_STACK_SIZE + (IST_STACKS + 1) * TRAP_STACK_SIZE) as u64
}

/// Descriptor encodings: base 0, limit 0xfffff, G=1, P=1, accessed.
const DESC_KERNEL_CODE64: u64 = 0x00af_9b00_0000_ffff;
const DESC_KERNEL_DATA: u64 = 0x00cf_9300_0000_ffff;
const DESC_USER_DATA: u64 = 0x00cf_f300_0000_ffff;
const DESC_USER_CODE64: u64 = 0x00af_fb00_0000_ffff;
/// Access byte of an available 64-bit TSS (type 9, P=1).
const TSS_AVAILABLE: u64 = 0x89;

/// The 64-bit TSS (Intel SDM Vol. 3A, Figure 8-11).
#[repr(C, packed)]
pub struct Tss {
    _reserved0: u32,
    pub rsp: [u64; 3],
    _reserved1: u64,
    pub ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    /// Offset of the I/O permission bitmap; past the limit means "no bitmap": every port
    /// access at CPL > IOPL faults.
    pub iomap_base: u16,
}

/// A trap stack preceded by a guard page, which the kernel page tables leave unmapped: an
/// overflow faults instead of running into the neighbouring stack.
#[repr(C, align(4096))]
struct Stack {
    guard: [u8; GUARD_SIZE],
    stack: [u8; TRAP_STACK_SIZE],
}

/// Size of the guard page below each trap stack.
const GUARD_SIZE: usize = 4096;

impl Stack {
    const fn new() -> Stack {
        Stack {
            guard: [0; GUARD_SIZE],
            stack: [0; TRAP_STACK_SIZE],
        }
    }

    fn bottom(&self) -> u64 {
        self.stack.as_ptr() as u64
    }
}

/// GDT, TSS and trap stacks. Written once by [`init`] on the boot CPU before interrupts
/// are enabled, then only read by the CPU.
struct Tables {
    gdt: UnsafeCell<[u64; 7]>,
    tss: UnsafeCell<Tss>,
    ist: UnsafeCell<[Stack; IST_STACKS]>,
    rsp0: UnsafeCell<Stack>,
}

// SAFETY: single CPU; mutated only by `init` before anything else can observe the tables.
unsafe impl Sync for Tables {}

static TABLES: Tables = Tables {
    gdt: UnsafeCell::new([0; 7]),
    tss: UnsafeCell::new(Tss {
        _reserved0: 0,
        rsp: [0; 3],
        _reserved1: 0,
        ist: [0; 7],
        _reserved2: 0,
        _reserved3: 0,
        iomap_base: size_of::<Tss>() as u16,
    }),
    ist: UnsafeCell::new([const { Stack::new() }; IST_STACKS]),
    rsp0: UnsafeCell::new(Stack::new()),
};

#[repr(C, packed)]
struct DescriptorTablePointer {
    limit: u16,
    base: u64,
}

/// Which trap stack contains `addr`: `Some(0)` for the RSP0 stack, `Some(n)` for IST n.
/// Self-tests use it to check where a handler ran.
pub fn trap_stack_of(addr: u64) -> Option<u8> {
    let within = |top: u64| addr < top && addr >= top - TRAP_STACK_SIZE as u64;
    if within(kernel_trap_stack_top()) {
        return Some(0);
    }
    // SAFETY: only the stacks' addresses are computed.
    let ist = unsafe { &*TABLES.ist.get() };
    (1..=IST_STACKS as u8).find(|&n| within(ist[n as usize - 1].bottom() + TRAP_STACK_SIZE as u64))
}

/// The stack of IST slot `ist` (1-based, as in a gate): its lowest address and its top
/// (one past the highest byte). `None` for a slot without a stack.
pub fn ist_stack(ist: u8) -> Option<(u64, u64)> {
    let k = (ist as usize).checked_sub(1).filter(|&k| k < IST_STACKS)?;
    // SAFETY: only an address is computed.
    let bottom = unsafe { (*TABLES.ist.get())[k].bottom() };
    Some((bottom, bottom + TRAP_STACK_SIZE as u64))
}

/// Top (highest address) of the RSP0 stack used for traps from user mode.
pub fn kernel_trap_stack_top() -> u64 {
    // SAFETY: only an address is computed.
    unsafe { (*TABLES.rsp0.get()).bottom() + TRAP_STACK_SIZE as u64 }
}

/// The guard pages below the trap stacks (left unmapped by the kernel page tables).
pub fn guard_pages() -> impl Iterator<Item = u64> {
    // SAFETY: only addresses are computed.
    let (ist, rsp0) = unsafe { (&*TABLES.ist.get(), &*TABLES.rsp0.get()) };
    ist.iter()
        .chain(core::iter::once(rsp0))
        .map(|s| s.guard.as_ptr() as u64)
}

/// Point TSS.RSP0 at `top`: traps and interrupts from user mode land on the current task's
/// kernel stack.
pub fn set_rsp0(top: u64) {
    // SAFETY: single CPU; the CPU reads RSP0 only when entering the kernel from user mode,
    // which cannot happen while the kernel runs.
    unsafe {
        let tss = TABLES.tss.get();
        core::ptr::addr_of_mut!((*tss).rsp)
            .cast::<u64>()
            .write_unaligned(top);
    }
}

/// Load the kernel GDT, reload every segment register and load the task register.
pub fn init() {
    // SAFETY: runs once on the boot CPU with interrupts disabled; nothing else references
    // the tables yet.
    unsafe {
        let tss = &mut *TABLES.tss.get();
        let ist = &*TABLES.ist.get();
        for (k, stack) in ist.iter().enumerate() {
            tss.ist[k] = stack.bottom() + TRAP_STACK_SIZE as u64;
        }
        tss.rsp[0] = kernel_trap_stack_top();

        let tss_base = TABLES.tss.get() as u64;
        let tss_limit = size_of::<Tss>() as u64 - 1;
        let gdt = &mut *TABLES.gdt.get();
        gdt[0] = 0;
        gdt[1] = DESC_KERNEL_CODE64;
        gdt[2] = DESC_KERNEL_DATA;
        gdt[3] = DESC_USER_DATA;
        gdt[4] = DESC_USER_CODE64;
        gdt[5] = (tss_limit & 0xffff)
            | ((tss_base & 0xff_ffff) << 16)
            | (TSS_AVAILABLE << 40)
            | (((tss_limit >> 16) & 0xf) << 48)
            | (((tss_base >> 24) & 0xff) << 56);
        gdt[6] = tss_base >> 32;

        let ptr = DescriptorTablePointer {
            limit: (size_of::<[u64; 7]>() - 1) as u16,
            base: gdt.as_ptr() as u64,
        };
        asm!(
            "lgdt [{ptr}]",
            // Reload CS with a far return: push the selector and the target, then RETFQ.
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ss, {ds:x}",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:x}",
            "mov gs, {tmp:x}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = in(reg) KERNEL_CS as u64,
            ds = in(reg) KERNEL_DS as u64,
            tss = in(reg) TSS_SEL as u64,
            tmp = out(reg) _,
        );
    }
}
