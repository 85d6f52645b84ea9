//! The vDSO: a small ELF shared object mapped into every process (AT_SYSINFO_EHDR), whose
//! functions read the time without a system call, and the vvar page it reads (`[vvar]`,
//! mapped just below it, read-only to user space, written by the kernel).
//!
//! Linux builds its vDSO at compile time (vdso2c); here the code is assembled into the
//! kernel image (position-independent, addressing vvar RIP-relatively) and the kernel wraps
//! it in an ELF image at boot: ELF header, PT_LOAD + PT_DYNAMIC, `.dynsym`, `.dynstr`, a
//! System V `.hash`, `.dynamic`, then the code at [`CODE_OFFSET`]. Exported:
//! `__vdso_clock_gettime`, `__vdso_gettimeofday`, `__vdso_time`, `__vdso_getcpu` (and the
//! unprefixed aliases, as Linux).
//!
//! Time is the TSC scaled by the vvar's `mult >> shift` (identity: the syscall clock is the
//! TSC read as nanoseconds, which on vmscope is the instruction count). The coarse clocks
//! read `coarse_ns`, which the scheduler tick updates. Unknown clock ids fall back to the
//! real system call, which returns -EINVAL.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use mm_core::gfp::Gfp;

use crate::mm::addr::Pfn;
use crate::mm::page_alloc::{self, page_address};

/// Where the code sits in the image.
pub const CODE_OFFSET: usize = 0x400;
/// The image is one page; vvar is the page before it.
pub const VDSO_SIZE: u64 = 4096;

/// vvar layout (offsets used by the assembly below).
mod vvar {
    pub const SEQ: usize = 0;
    pub const MULT: usize = 8;
    pub const SHIFT: usize = 16;
    pub const COARSE_NS: usize = 24;
}

global_asm!(
    r#"
    .section .rodata.vdso_code, "a", @progbits
    .balign 16
    .global vdso_code_start, vdso_code_end
vdso_code_start:
    .set .Lvvar, vdso_code_start - {code_offset} - 4096

/* u64 ns() -> rax: TSC * mult >> shift */
.Lns:
    rdtsc
    shlq $32, %rdx
    orq %rdx, %rax
    movq .Lvvar+{mult}(%rip), %rcx
    mulq %rcx
    movq .Lvvar+{shift}(%rip), %rcx
    shrdq %cl, %rdx, %rax
    ret

/* int clock_gettime(clockid_t clk: edi, struct timespec *ts: rsi) */
.Lclock_gettime:
    cmpl $5, %edi            /* CLOCK_REALTIME_COARSE */
    je 2f
    cmpl $6, %edi            /* CLOCK_MONOTONIC_COARSE */
    je 2f
    cmpl $11, %edi           /* TAI; everything above: the system call says EINVAL */
    ja 9f
    cmpl $2, %edi            /* PROCESS/THREAD_CPUTIME: the system call */
    je 9f
    cmpl $3, %edi
    je 9f
    call .Lns
    jmp 3f
2:  movq .Lvvar+{coarse}(%rip), %rax
3:  xorl %edx, %edx
    movl $1000000000, %ecx
    divq %rcx
    movq %rax, 0(%rsi)
    movq %rdx, 8(%rsi)
    xorl %eax, %eax
    ret
9:  movl $228, %eax          /* __NR_clock_gettime */
    syscall
    ret

/* int gettimeofday(struct timeval *tv: rdi, struct timezone *tz: rsi) */
.Lgettimeofday:
    testq %rdi, %rdi
    jz 1f
    call .Lns
    xorl %edx, %edx
    movl $1000000000, %ecx
    divq %rcx
    movq %rax, 0(%rdi)
    movq %rdx, %rax
    xorl %edx, %edx
    movl $1000, %ecx
    divq %rcx
    movq %rax, 8(%rdi)
1:  testq %rsi, %rsi
    jz 2f
    movq $0, (%rsi)
2:  xorl %eax, %eax
    ret

/* time_t time(time_t *t: rdi) */
.Ltime:
    call .Lns
    xorl %edx, %edx
    movl $1000000000, %ecx
    divq %rcx
    testq %rdi, %rdi
    jz 1f
    movq %rax, (%rdi)
1:  ret

/* int getcpu(unsigned *cpu: rdi, unsigned *node: rsi, void *cache) */
.Lgetcpu:
    testq %rdi, %rdi
    jz 1f
    movl $0, (%rdi)
1:  testq %rsi, %rsi
    jz 2f
    movl $0, (%rsi)
2:  xorl %eax, %eax
    ret
vdso_code_end:

    .balign 8
    .global vdso_symbols
/* Offsets of the functions from vdso_code_start, in the order of NAMES. */
vdso_symbols:
    .quad .Lclock_gettime - vdso_code_start
    .quad .Lgettimeofday - vdso_code_start
    .quad .Ltime - vdso_code_start
    .quad .Lgetcpu - vdso_code_start
    .text
"#,
    code_offset = const CODE_OFFSET,
    mult = const vvar::MULT,
    shift = const vvar::SHIFT,
    coarse = const vvar::COARSE_NS,
    options(att_syntax)
);

extern "C" {
    static vdso_code_start: u8;
    static vdso_code_end: u8;
    static vdso_symbols: [u64; 4];
}

/// Exported names: the `__vdso_` ones and the plain aliases, each pointing at a function.
const NAMES: [(&str, usize); 8] = [
    ("__vdso_clock_gettime", 0),
    ("__vdso_gettimeofday", 1),
    ("__vdso_time", 2),
    ("__vdso_getcpu", 3),
    ("clock_gettime", 0),
    ("gettimeofday", 1),
    ("time", 2),
    ("getcpu", 3),
];

static VDSO_PFN: AtomicU64 = AtomicU64::new(0);
static VVAR_PFN: AtomicU64 = AtomicU64::new(0);

/// The frames of the vDSO image and the vvar page.
pub fn pfns() -> Option<(Pfn, Pfn)> {
    match (
        VDSO_PFN.load(Ordering::Relaxed),
        VVAR_PFN.load(Ordering::Relaxed),
    ) {
        (0, _) | (_, 0) => None,
        (v, d) => Some((Pfn(v), Pfn(d))),
    }
}

/// Whether `pfn` is one of the two shared pages (never freed with a process).
pub fn is_vdso_page(pfn: Pfn) -> bool {
    let p = pfn.as_u64();
    p != 0 && (p == VDSO_PFN.load(Ordering::Relaxed) || p == VVAR_PFN.load(Ordering::Relaxed))
}

fn put(img: &mut [u8], off: usize, bytes: &[u8]) {
    img[off..off + bytes.len()].copy_from_slice(bytes);
}

/// Build the image and the vvar page (once, before the first exec).
pub fn init() -> bool {
    if pfns().is_some() {
        return true;
    }
    let (Some(code_pfn), Some(vvar_pfn)) = (
        page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO, 0),
        page_alloc::alloc_pages(Gfp::KERNEL | Gfp::ZERO, 0),
    ) else {
        return false;
    };
    // SAFETY: the pages were just allocated for this, reached through the direct map.
    let img = unsafe {
        core::slice::from_raw_parts_mut(
            page_address(code_pfn).as_mut_ptr::<u8>(),
            VDSO_SIZE as usize,
        )
    };
    // SAFETY: linker-placed code bytes and the symbol offset table.
    let (code, offs) = unsafe {
        let s = &vdso_code_start as *const u8;
        let e = &vdso_code_end as *const u8;
        (
            core::slice::from_raw_parts(s, e.offset_from(s) as usize),
            vdso_symbols,
        )
    };
    if CODE_OFFSET + code.len() > VDSO_SIZE as usize {
        return false;
    }
    // Layout of the first 0x400 bytes.
    const PHOFF: usize = 64;
    const DYNSYM: usize = 0x100;
    const SYMENT: usize = 24;
    const NSYMS: usize = NAMES.len() + 1;
    const DYNSTR: usize = DYNSYM + NSYMS * SYMENT; // 0x1d8
    const HASH: usize = 0x2a0;
    const DYNAMIC: usize = 0x300;
    // ELF header.
    put(img, 0, b"\x7fELF\x02\x01\x01\x00");
    put(img, 16, &3u16.to_le_bytes()); // ET_DYN
    put(img, 18, &62u16.to_le_bytes()); // EM_X86_64
    put(img, 20, &1u32.to_le_bytes());
    put(img, 24, &0u64.to_le_bytes()); // e_entry
    put(img, 32, &(PHOFF as u64).to_le_bytes());
    put(img, 40, &0u64.to_le_bytes()); // no section headers
    put(img, 52, &64u16.to_le_bytes());
    put(img, 54, &56u16.to_le_bytes());
    put(img, 56, &2u16.to_le_bytes());
    put(img, 58, &64u16.to_le_bytes());
    // Program headers: PT_LOAD (R+X, the page) and PT_DYNAMIC.
    let phdr = |img: &mut [u8], at: usize, ty: u32, flags: u32, off: u64, size: u64| {
        put(img, at, &ty.to_le_bytes());
        put(img, at + 4, &flags.to_le_bytes());
        for (i, v) in [off, off, off, size, size, if ty == 1 { 4096 } else { 8 }]
            .iter()
            .enumerate()
        {
            put(img, at + 8 + i * 8, &v.to_le_bytes());
        }
    };
    phdr(img, PHOFF, 1, 5, 0, VDSO_SIZE);
    phdr(img, PHOFF + 56, 2, 4, DYNAMIC as u64, 6 * 16);
    // .dynstr and .dynsym.
    let mut str_off = 1; // index 0 is the empty name
    for (i, (name, f)) in NAMES.iter().enumerate() {
        put(img, DYNSTR + str_off, name.as_bytes());
        let sym = DYNSYM + (i + 1) * SYMENT;
        put(img, sym, &(str_off as u32).to_le_bytes());
        img[sym + 4] = 0x12; // STB_GLOBAL, STT_FUNC
        put(img, sym + 6, &1u16.to_le_bytes()); // a section index other than UNDEF
        put(
            img,
            sym + 8,
            &((CODE_OFFSET as u64) + offs[*f]).to_le_bytes(),
        );
        str_off += name.len() + 1;
    }
    let strsz = str_off;
    if DYNSTR + strsz > HASH {
        return false;
    }
    // .hash: one bucket holding the last symbol, chains down to 1.
    put(img, HASH, &1u32.to_le_bytes());
    put(img, HASH + 4, &(NSYMS as u32).to_le_bytes());
    put(img, HASH + 8, &((NSYMS - 1) as u32).to_le_bytes());
    for i in 0..NSYMS {
        put(
            img,
            HASH + 12 + i * 4,
            &(i.saturating_sub(1) as u32).to_le_bytes(),
        );
    }
    // .dynamic.
    let dyns: [(u64, u64); 6] = [
        (4, HASH as u64),
        (5, DYNSTR as u64),
        (6, DYNSYM as u64),
        (10, strsz as u64),
        (11, SYMENT as u64),
        (0, 0),
    ];
    for (i, (t, v)) in dyns.iter().enumerate() {
        put(img, DYNAMIC + i * 16, &t.to_le_bytes());
        put(img, DYNAMIC + i * 16 + 8, &v.to_le_bytes());
    }
    put(img, CODE_OFFSET, code);
    // vvar: identity scaling, coarse clock from now.
    let vv = page_address(vvar_pfn).as_mut_ptr::<u64>();
    // SAFETY: the vvar page is ours; offsets are within it.
    unsafe {
        vv.add(vvar::SEQ / 8).write_volatile(0);
        vv.add(vvar::MULT / 8).write_volatile(1);
        vv.add(vvar::SHIFT / 8).write_volatile(0);
        vv.add(vvar::COARSE_NS / 8)
            .write_volatile(crate::syscall::info::monotonic_ns());
    }
    VDSO_PFN.store(code_pfn.as_u64(), Ordering::Relaxed);
    VVAR_PFN.store(vvar_pfn.as_u64(), Ordering::Relaxed);
    true
}

/// The scheduler tick: refresh the coarse clock.
pub fn tick() {
    if let Some((_, vvar)) = pfns() {
        let vv = page_address(vvar).as_mut_ptr::<u64>();
        // SAFETY: the kernel's own mapping of the vvar page.
        unsafe {
            let seq = vv.add(vvar::SEQ / 8);
            seq.write_volatile(seq.read_volatile() + 1);
            vv.add(vvar::COARSE_NS / 8)
                .write_volatile(crate::syscall::info::monotonic_ns());
            seq.write_volatile(seq.read_volatile() + 1);
        }
    }
}
