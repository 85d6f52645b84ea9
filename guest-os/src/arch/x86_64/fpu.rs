//! The user FPU: x87 (MMX lives in its registers) and SSE state (Linux's `arch/x86/kernel/fpu/`).
//!
//! The kernel itself is built soft-float (`x86_64-unknown-none` has no SSE), so the
//! registers always hold the *current user task's* state, even while the kernel runs. The
//! state is switched eagerly, as Linux has done since 4.6: `switch_to` saves the outgoing
//! task's registers into its [`FpuState`] and loads the incoming one's. Lazy switching
//! (CR0.TS and a #NM trap on first use) would save the XSAVE/XRSTOR pair for tasks that
//! never touch the FPU, but costs a trap for those that do, leaks timing across tasks and
//! makes every context switch depend on the history of FPU use; Linux dropped it for those
//! reasons.
//!
//! The area is XSAVE's standard (non-compacted) format when the CPU has XSAVE, with XCR0 =
//! x87 | SSE (576 bytes), else FXSAVE's 512 bytes. A signal frame carries it as Linux lays
//! it out ([`crate::proc::signal`]): the area, 64-byte aligned, with `_fpx_sw_bytes` in the
//! legacy area's software-reserved bytes and `FP_XSTATE_MAGIC2` right after it.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// CR0.MP (monitor coprocessor): WAIT/FWAIT honour TS.
const CR0_MP: u64 = 1 << 1;
/// CR0.EM (emulation): x87 and SSE instructions raise #NM / #UD when set.
const CR0_EM: u64 = 1 << 2;
/// CR0.TS (task switched): the lazy-switching trap, never used here.
const CR0_TS: u64 = 1 << 3;
/// CR0.NE (numeric error): x87 errors raise #MF instead of the legacy FERR# interrupt.
const CR0_NE: u64 = 1 << 5;
/// CR4.OSFXSR: the OS saves the state with FXSAVE/XSAVE, so SSE instructions are allowed.
const CR4_OSFXSR: u64 = 1 << 9;
/// CR4.OSXMMEXCPT: unmasked SIMD floating-point exceptions raise #XM (else #UD).
const CR4_OSXMMEXCPT: u64 = 1 << 10;
/// CR4.OSXSAVE: XSAVE/XRSTOR/XGETBV/XSETBV are enabled.
const CR4_OSXSAVE: u64 = 1 << 18;
/// CPUID.1:EDX.FXSR and CPUID.1:ECX.XSAVE.
const CPUID1_EDX_FXSR: u32 = 1 << 24;
const CPUID1_ECX_XSAVE: u32 = 1 << 26;
/// CPUID leaf describing the XSAVE area.
const CPUID_XSTATE_LEAF: u32 = 0xd;

/// XCR0 bits: the x87 and SSE state components (the only ones this kernel enables).
pub const XFEATURE_MASK_FPSSE: u64 = 0b11;
/// Size of the legacy (FXSAVE) region.
pub const FXSAVE_SIZE: usize = 512;
/// Size of the XSAVE header that follows it.
const XSAVE_HDR_SIZE: usize = 64;
/// Room for the area (x87 and SSE need 576 bytes; more would come with AVX).
pub const FPSTATE_CAPACITY: usize = 1024;

/// Offsets inside the legacy region.
const FCW_OFF: usize = 0;
const MXCSR_OFF: usize = 24;
const MXCSR_MASK_OFF: usize = 28;
/// Offset of the software-reserved bytes (`sw_reserved`, where `_fpx_sw_bytes` lives).
pub const SW_RESERVED_OFF: usize = 464;
/// x87 control word after FNINIT: all exceptions masked, 64-bit precision, round to nearest.
const FCW_INIT: u16 = 0x037f;
/// MXCSR at reset: all exceptions masked, round to nearest.
pub const MXCSR_INIT: u32 = 0x1f80;
/// MXCSR_MASK to assume when FXSAVE stores 0 there (SDM Vol. 1 §11.6.6).
const MXCSR_MASK_DEFAULT: u32 = 0xffbf;

/// The save area, aligned as XSAVE requires.
#[repr(C, align(64))]
#[derive(Clone)]
pub struct FpuState(pub [u8; FPSTATE_CAPACITY]);

impl FpuState {
    /// The state a new program starts with (`fpstate_init`): FCW 0x37f, MXCSR 0x1f80,
    /// everything else zero; with XSAVE, an empty XSTATE_BV marks every component as in
    /// its initial configuration.
    pub const fn init() -> FpuState {
        let mut a = [0u8; FPSTATE_CAPACITY];
        let fcw = FCW_INIT.to_le_bytes();
        a[FCW_OFF] = fcw[0];
        a[FCW_OFF + 1] = fcw[1];
        let m = MXCSR_INIT.to_le_bytes();
        let mut i = 0;
        while i < 4 {
            a[MXCSR_OFF + i] = m[i];
            i += 1;
        }
        FpuState(a)
    }

    /// The bytes that make up the state (576 with XSAVE, 512 with FXSAVE).
    pub fn bytes(&self) -> &[u8] {
        &self.0[..xstate_size()]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let n = xstate_size();
        &mut self.0[..n]
    }

    pub fn set_mxcsr(&mut self, v: u32) {
        self.0[MXCSR_OFF..MXCSR_OFF + 4].copy_from_slice(&v.to_le_bytes());
    }

    pub fn mxcsr(&self) -> u32 {
        u32::from_le_bytes([
            self.0[MXCSR_OFF],
            self.0[MXCSR_OFF + 1],
            self.0[MXCSR_OFF + 2],
            self.0[MXCSR_OFF + 3],
        ])
    }
}

/// Whether the CPU has XSAVE (and it is enabled); else FXSAVE is used.
static USE_XSAVE: AtomicBool = AtomicBool::new(false);
/// Bytes of the save area (`fpu_user_cfg.max_size`).
static XSTATE_SIZE: AtomicU32 = AtomicU32::new(FXSAVE_SIZE as u32);
/// The MXCSR bits the CPU supports; setting others faults (#GP on LDMXCSR/FXRSTOR/XRSTOR).
static MXCSR_MASK: AtomicU32 = AtomicU32::new(MXCSR_MASK_DEFAULT);
/// Whether [`init`] ran and found FXSR: without it no user FPU state exists.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether XSAVE is in use (the signal frame then carries an XSAVE header and magics).
pub fn uses_xsave() -> bool {
    USE_XSAVE.load(Ordering::Relaxed)
}

/// Size of the save area in bytes.
pub fn xstate_size() -> usize {
    XSTATE_SIZE.load(Ordering::Relaxed) as usize
}

/// The MXCSR bits that may be set.
pub fn mxcsr_mask() -> u32 {
    MXCSR_MASK.load(Ordering::Relaxed)
}

/// Turn on the FPU for user programs (`fpu__init_cpu` and `fpu__init_system`): CR0.EM and
/// TS clear, MP and NE set; CR4.OSFXSR and OSXMMEXCPT; with XSAVE, CR4.OSXSAVE and XCR0 =
/// x87 | SSE. Then the initial register state is loaded. Returns whether XSAVE is used.
pub fn init() -> bool {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    if leaf1.edx & CPUID1_EDX_FXSR == 0 {
        log::warn!("fpu: no FXSR; user programs cannot use x87 or SSE");
        return false;
    }
    let xsave = leaf1.ecx & CPUID1_ECX_XSAVE != 0;
    // SAFETY: setting the FPU control bits the CPU advertises; the kernel itself never
    // executes FPU or SSE instructions except the save/restore below.
    unsafe {
        let mut cr0: u64;
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags));
        cr0 = (cr0 & !(CR0_EM | CR0_TS)) | CR0_MP | CR0_NE;
        asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
        let mut cr4: u64;
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags));
        cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT;
        if xsave {
            cr4 |= CR4_OSXSAVE;
        }
        asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags));
        if xsave {
            asm!("xsetbv", in("ecx") 0u32, in("eax") XFEATURE_MASK_FPSSE as u32,
                 in("edx") 0u32, options(nomem, nostack));
        }
    }
    if xsave {
        // CPUID.(EAX=0xd,ECX=0):EBX is the size XSAVE needs for the features XCR0 enables.
        let size = core::arch::x86_64::__cpuid_count(CPUID_XSTATE_LEAF, 0).ebx as usize;
        let size = if (FXSAVE_SIZE + XSAVE_HDR_SIZE..=FPSTATE_CAPACITY).contains(&size) {
            size
        } else {
            FXSAVE_SIZE + XSAVE_HDR_SIZE
        };
        XSTATE_SIZE.store(size as u32, Ordering::Relaxed);
    }
    USE_XSAVE.store(xsave, Ordering::Relaxed);
    // The supported MXCSR bits, from an FXSAVE image (0 there means the default mask).
    let mut probe = FpuState([0; FPSTATE_CAPACITY]);
    // SAFETY: FXSAVE stores 512 bytes into the 64-byte-aligned area.
    unsafe { asm!("fxsave64 [{}]", in(reg) probe.0.as_mut_ptr(), options(nostack)) };
    let mask = u32::from_le_bytes(
        probe.0[MXCSR_MASK_OFF..MXCSR_MASK_OFF + 4]
            .try_into()
            .unwrap_or([0; 4]),
    );
    MXCSR_MASK.store(
        if mask == 0 { MXCSR_MASK_DEFAULT } else { mask },
        Ordering::Relaxed,
    );
    ENABLED.store(true, Ordering::Release);
    restore(&FpuState::init());
    xsave
}

/// Whether user FPU state exists (FXSR found at boot).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Save the registers into `st` (`save_fpregs_to_fpstate`).
pub fn save(st: &mut FpuState) {
    if !enabled() {
        return;
    }
    let p = st.0.as_mut_ptr();
    // SAFETY: the area is 64-byte aligned and large enough for XSAVE with XCR0's features
    // (or FXSAVE's 512 bytes); RFBM = x87 | SSE.
    unsafe {
        if uses_xsave() {
            asm!("xsave64 [{}]", in(reg) p, in("eax") XFEATURE_MASK_FPSSE as u32,
                 in("edx") 0u32, options(nostack));
        } else {
            asm!("fxsave64 [{}]", in(reg) p, options(nostack));
        }
    }
}

/// Load the registers from `st` (`restore_fpregs_from_fpstate`). `st` must be valid (see
/// [`sanitize`]): an image with reserved bits set would fault in the kernel.
pub fn restore(st: &FpuState) {
    if !enabled() {
        return;
    }
    let p = st.0.as_ptr();
    // SAFETY: as in `save`; the image is one this kernel saved or sanitised.
    unsafe {
        if uses_xsave() {
            asm!("xrstor64 [{}]", in(reg) p, in("eax") XFEATURE_MASK_FPSSE as u32,
                 in("edx") 0u32, options(nostack));
        } else {
            asm!("fxrstor64 [{}]", in(reg) p, options(nostack));
        }
    }
}

/// Load the initial state (a new program, a signal handler: `fpu__clear_user_states`).
pub fn restore_init() {
    restore(&FpuState::init());
}

/// Why an image from user memory cannot be loaded: XRSTOR or FXRSTOR would raise #GP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadImage {
    /// MXCSR has bits outside MXCSR_MASK.
    Mxcsr,
    /// XSTATE_BV names a component XCR0 does not enable.
    XstateBv,
    /// XCOMP_BV or the header's reserved bytes are not zero (compacted format, or junk).
    Header,
}

/// Check an image before XRSTOR/FXRSTOR loads it, for every condition under which the
/// instruction raises #GP (SDM Vol. 1 §13.8: MXCSR reserved bits, XSTATE_BV bits outside
/// XCR0, a non-zero XCOMP_BV or header reserved bytes in the standard form). Linux lets
/// the instruction fault and fixes it up; this kernel checks first.
pub fn sanitize(st: &FpuState) -> Result<(), BadImage> {
    if st.mxcsr() & !mxcsr_mask() != 0 {
        return Err(BadImage::Mxcsr);
    }
    if uses_xsave() {
        let hdr = &st.0[FXSAVE_SIZE..FXSAVE_SIZE + XSAVE_HDR_SIZE];
        let xstate_bv = u64::from_le_bytes(hdr[..8].try_into().unwrap_or([0; 8]));
        if xstate_bv & !XFEATURE_MASK_FPSSE != 0 {
            return Err(BadImage::XstateBv);
        }
        if hdr[8..].iter().any(|&b| b != 0) {
            return Err(BadImage::Header);
        }
    }
    Ok(())
}

/// Set XSTATE_BV in an XSAVE image (the signal frame marks x87 and SSE as present, as
/// Linux's `save_xstate_epilog` does for programs that read the legacy area only).
pub fn set_xstate_bv(st: &mut FpuState, bv: u64) {
    if uses_xsave() {
        st.0[FXSAVE_SIZE..FXSAVE_SIZE + 8].copy_from_slice(&bv.to_le_bytes());
    }
}

/// Clear the XSAVE header (XSTATE_BV, XCOMP_BV and the reserved bytes).
pub fn clear_header(st: &mut FpuState) {
    if uses_xsave() {
        st.0[FXSAVE_SIZE..FXSAVE_SIZE + XSAVE_HDR_SIZE].fill(0);
    }
}

/// The `si_code` of a SIGFPE for an x87 (#MF) or SIMD (#XM) exception
/// (`fpu__exception_code`): the first unmasked exception in Linux's order.
pub fn exception_code(simd: bool) -> i32 {
    use crate::proc::signal::{FPE_FLTDIV, FPE_FLTINV, FPE_FLTOVF, FPE_FLTRES, FPE_FLTUND};
    let err = if simd {
        let mut mxcsr = 0u32;
        // SAFETY: STMXCSR stores four bytes; CR4.OSFXSR is set once user state exists.
        unsafe { asm!("stmxcsr [{}]", in(reg) &mut mxcsr, options(nostack)) };
        // The exception flags (bits 0-5) whose masks (bits 7-12) are clear.
        (!(mxcsr >> 7) & mxcsr) & 0x3f
    } else {
        let (mut cwd, mut swd) = (0u16, 0u16);
        // SAFETY: FNSTCW/FNSTSW store two bytes each and raise no exception.
        unsafe {
            asm!("fnstcw [{}]", in(reg) &mut cwd, options(nostack));
            asm!("fnstsw [{}]", in(reg) &mut swd, options(nostack));
        }
        u32::from(swd & !cwd) & 0x3f
    };
    if err & 0x01 != 0 {
        FPE_FLTINV
    } else if err & 0x04 != 0 {
        FPE_FLTDIV
    } else if err & 0x08 != 0 {
        FPE_FLTOVF
    } else if err & 0x12 != 0 {
        FPE_FLTUND
    } else if err & 0x20 != 0 {
        FPE_FLTRES
    } else {
        // "Silent" exception: nothing unmasked is pending (Linux reports 0 too).
        0
    }
}
